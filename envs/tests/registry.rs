//! Every registered built-in env: its defaults load from a TOML table that names only its
//! `kind`, it passes `check_env`, the same seed gives the same episode, and the guard refuses
//! steps before `reset` and after the end.

use envs::EnvConfig;
#[cfg(feature = "gymnasium")]
use envs::{ActionBuf, ActionSpace, BuiltinEnv, EnvError, EnvExt, check_env};

#[test]
fn every_builtin_env_loads_from_its_kind_alone_and_round_trips() {
    for b in EnvConfig::BUILTIN {
        let text = format!("kind = \"{}\"\n", b.kind);
        let cfg: EnvConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", b.kind));
        assert_eq!(cfg, (b.default)(), "{}", b.kind);
        let back: EnvConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        // An unknown key is an error naming it.
        let e = toml::from_str::<EnvConfig>(&format!("{text}bogus = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{}: {e}", b.kind);
    }
    let e = toml::from_str::<EnvConfig>("kind = \"nope\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("gridmaze"), "{e}");
}

#[cfg(feature = "gymnasium")]
#[test]
fn every_builtin_env_passes_check_env_and_is_deterministic_and_guarded() {
    for b in EnvConfig::BUILTIN {
        let cfg = (b.default)();
        let mut env = cfg.build().unwrap();
        check_env(&mut env).unwrap_or_else(|e| panic!("{}: {e}", b.kind));
        let mut fresh = cfg.build().unwrap();
        let action = first_action(&fresh.action_space());
        assert_eq!(
            fresh.step_vec(action.as_action()).unwrap_err(),
            EnvError::NotReset,
            "{}",
            b.kind
        );
        let episode = |env: &mut Box<dyn envs::Env>| {
            let mut obs = vec![env.reset_vec(7).unwrap()];
            loop {
                let (o, s) = env.step_vec(action.as_action()).unwrap();
                obs.push(o);
                if s.done() {
                    break (obs, s);
                }
            }
        };
        let (first, last) = episode(&mut env);
        assert_eq!(episode(&mut fresh), (first, last), "{}", b.kind);
        let after = env.step_vec(action.as_action()).unwrap_err();
        assert_eq!(after, EnvError::StepAfterDone, "{}", b.kind);
        assert!(BuiltinEnv::find(&b.cli_name()).is_some());
    }
}

/// The first action of `space`: 0 in every discrete dimension, the lower bound of a box.
#[cfg(feature = "gymnasium")]
fn first_action(space: &ActionSpace) -> ActionBuf {
    match space {
        ActionSpace::Discrete(_) => ActionBuf::Discrete(0),
        ActionSpace::MultiDiscrete(m) => ActionBuf::MultiDiscrete(vec![0; m.nvec.len()]),
        ActionSpace::Box(b) => ActionBuf::Continuous(b.low.clone()),
    }
}
