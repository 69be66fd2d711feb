//! Plays one GridMaze episode and prints its ASCII render step by step, then the episode's
//! statistics; optionally saves the episode as an animated GIF.
//!
//! ```text
//! cargo run --release -p envs --example ascii_episode -- [--policy random|wall-follower|oracle]
//!     [--size 7] [--horizon 64] [--mode multi|single] [--egocentric] [--seed 0]
//!     [--show 6] [--gif PATH] [--cell-px 16] [--delay-cs 15]
//! ```

use std::error::Error;
use std::str::FromStr;

use envs::{
    ActionBuf, ActionMode, ActionSpace, Env, GridMaze, GridMazeConfig, MazeMode, ReferencePolicy,
    derive_seed, save_gif,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Command-line options.
struct Args {
    /// Which scripted policy plays.
    policy: ReferencePolicy,
    /// Maze configuration.
    cfg: GridMazeConfig,
    /// Seed of the episode (and of the random policy).
    seed: u64,
    /// Number of steps printed as ASCII (the first ones; the last step is always printed).
    show: usize,
    /// Where to write the GIF of the whole episode, if anywhere.
    gif: Option<String>,
    /// Pixels per maze cell in the GIF.
    cell_px: usize,
    /// GIF frame delay in hundredths of a second.
    delay_cs: u16,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let mut a = Args {
        policy: ReferencePolicy::Random,
        cfg: GridMazeConfig::multi(7, 64),
        seed: 0,
        show: 6,
        gif: None,
        cell_px: 16,
        delay_cs: 15,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--egocentric" {
            a.cfg.actions = ActionMode::Egocentric;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            println!(
                "usage: ascii_episode [--policy random|wall-follower|oracle] [--size N] \
                 [--horizon N] [--mode multi|single] [--egocentric] [--seed N] [--show N] \
                 [--gif PATH] [--cell-px N] [--delay-cs N]"
            );
            std::process::exit(0);
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value (see --help)"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value:?}: {e}");
        match flag.as_str() {
            "--policy" => a.policy = ReferencePolicy::from_str(&value).map_err(|e| bad(&e))?,
            "--size" => a.cfg.size = value.parse().map_err(|e| bad(&e))?,
            "--horizon" => a.cfg.horizon = value.parse().map_err(|e| bad(&e))?,
            "--mode" => {
                a.cfg.mode = match value.as_str() {
                    "multi" => MazeMode::Multi,
                    "single" => MazeMode::Single,
                    _ => return Err(bad(&"use multi or single").into()),
                }
            }
            "--seed" => a.seed = value.parse().map_err(|e| bad(&e))?,
            "--show" => a.show = value.parse().map_err(|e| bad(&e))?,
            "--gif" => a.gif = Some(value),
            "--cell-px" => a.cell_px = value.parse().map_err(|e| bad(&e))?,
            "--delay-cs" => a.delay_cs = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag} (see --help)").into()),
        }
    }
    Ok(a)
}

/// A uniformly random action of a discrete or multi-discrete `space`, each value drawn among
/// those `mask` allows.
fn random_action(space: &ActionSpace, mask: Option<&[bool]>, rng: &mut ChaCha8Rng) -> ActionBuf {
    let nvec = match space {
        ActionSpace::Discrete(d) => vec![d.n],
        ActionSpace::MultiDiscrete(m) => m.nvec.clone(),
        ActionSpace::Box(_) => unreachable!("GridMaze actions are discrete"),
    };
    let mut start = 0;
    let values: Vec<usize> = nvec
        .iter()
        .map(|&n| {
            let allowed: Vec<usize> = (0..n)
                .filter(|&v| mask.is_none_or(|m| m[start + v]))
                .collect();
            start += n;
            allowed[rng.random_range(0..allowed.len())]
        })
        .collect();
    match space {
        ActionSpace::Discrete(_) => ActionBuf::Discrete(values[0]),
        _ => ActionBuf::MultiDiscrete(values),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    let mut env = GridMaze::new(args.cfg.clone())?;
    let mut obs = vec![0.0; env.observation_space().flat_len()];
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(args.seed, 1));
    env.reset(args.seed, &mut obs)?;

    println!(
        "{} | policy {} | seed {} | view {v}x{v} | obs_dim {} | actions {:?}",
        env.name(),
        args.policy,
        args.seed,
        obs.len(),
        env.config().actions,
        v = env.config().view_side(),
    );
    println!("legend: # wall, % wall in view, . floor in view, G goal, A agent (^>v< facing)\n");
    println!("step 0 (reset)\n{}", env.ascii());
    let mut frames = vec![env.frame(args.cell_px)];
    let mut shown_gap = false;
    loop {
        let action = match args.policy {
            ReferencePolicy::Random => {
                random_action(&env.action_space(), env.action_mask(), &mut rng)
            }
            ReferencePolicy::Oracle => ActionBuf::Discrete(env.oracle_action()),
            ReferencePolicy::WallFollower => ActionBuf::Discrete(env.wall_follower_action()),
        };
        let step = env.step(action.as_action(), &mut obs)?;
        if args.gif.is_some() {
            frames.push(env.frame(args.cell_px));
        }
        let t = env.time_step() as usize;
        let goal_reached = step.info.counts.get(envs::GOALS) == Some(1.0);
        if t <= args.show || step.done() || goal_reached {
            let note = match (goal_reached, env.config().mode) {
                (true, MazeMode::Multi) => "  <- goal reached, agent respawned",
                (true, MazeMode::Single) => "  <- goal reached",
                _ => "",
            };
            println!(
                "step {t}: {action}, reward {:.2}{note}\n{}",
                step.reward,
                env.ascii()
            );
            shown_gap = false;
        } else if !shown_gap {
            println!("...\n");
            shown_gap = true;
        }
        if step.done() {
            println!(
                "episode over ({}): {}",
                if step.terminated {
                    "terminated"
                } else {
                    "truncated"
                },
                env.episode_stats()
            );
            break;
        }
    }
    if let Some(path) = &args.gif {
        save_gif(path, &frames, args.delay_cs)?;
        println!("wrote {} frames to {path}", frames.len());
    }
    Ok(())
}
