//! The bodies of the `fbrl` subcommands.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;

use agents::Policy;
use envs::Env;

use super::{EvalArgs, ExportArgs, PlotArgs, RenderArgs};
use crate::checkpoint::{self, VerifiedCheckpoint};
use crate::config::{TrainConfig, build_env, build_env_for_render};
use crate::eval::{self, ActionSelection, EVAL_SEED_OFFSET};
use crate::plot::{RefLine, RunsPlotOptions};
use crate::run_dir::{CHECKPOINT_DIR, CONFIG_FILE, POLICY_FILE};

pub(super) use super::train::train;

/// A trained policy with the config of its run.
pub struct LoadedPolicy {
    /// The run's resolved config.
    pub config: TrainConfig,
    /// The checkpoint the weights came from.
    pub checkpoint: VerifiedCheckpoint,
    /// The policy, on `device`.
    pub policy: Policy,
    /// The device the policy lives on.
    pub device: Device,
}

/// Finds the run directory and checkpoint folder of `path`: a run directory (its latest
/// checkpoint), a checkpoint folder (`<run>/checkpoint/update_N`) or a file inside one.
fn locate(path: &Path) -> Result<(PathBuf, PathBuf)> {
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    if path.join(CONFIG_FILE).is_file() {
        let root = path.join(CHECKPOINT_DIR);
        let ckpt = checkpoint::latest_checkpoint(&root)?.with_context(|| {
            format!(
                "run {} has no checkpoint yet ({} holds no `latest`)",
                path.display(),
                root.display()
            )
        })?;
        return Ok((path.to_path_buf(), ckpt));
    }
    let dir = if path.is_file() {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    };
    if dir.join("manifest.json").is_file() {
        // <run>/checkpoint/update_N
        if let Some(run) = dir.parent().and_then(Path::parent)
            && run.join(CONFIG_FILE).is_file()
        {
            return Ok((run.to_path_buf(), dir));
        }
        bail!(
            "checkpoint {} is not inside a run directory (expected <run>/{CHECKPOINT_DIR}/<name> with <run>/{CONFIG_FILE})",
            dir.display()
        );
    }
    bail!(
        "{} is neither a run directory (with {CONFIG_FILE}) nor a checkpoint folder (with manifest.json)",
        path.display()
    )
}

/// Loads the policy of a run directory or checkpoint (see [`locate`]).
pub fn load_policy(path: &Path) -> Result<LoadedPolicy> {
    let (run, ckpt_dir) = locate(path)?;
    let config = TrainConfig::load(run.join(CONFIG_FILE))?;
    let checkpoint = if path.join(CONFIG_FILE).is_file() {
        // A run directory: its newest checkpoint, even if a running trainer rotates it now.
        checkpoint::open_latest(&run.join(CHECKPOINT_DIR))?
    } else {
        checkpoint::open_checkpoint(&ckpt_dir)?
    };
    // A config.toml edited by hand since the checkpoint would evaluate another env or fail
    // on the weights' shapes: the checkpoint's own record decides, as for `--resume`.
    if let Some(key) = checkpoint.differing_key(&config)? {
        bail!(
            "`{key}` in {} differs from the config the checkpoint {} was trained with (was \
             config.toml edited?); restore it to evaluate this run",
            run.join(CONFIG_FILE).display(),
            checkpoint.dir.display()
        );
    }
    let device = Device::default();
    let env = build_env(&config.env)?;
    let obs_dim = env.observation_space().flat_len();
    let policy = config
        .policy
        .init_for_env(&*env, &device)
        .context("cannot build the run's policy")?;
    let policy = checkpoint.load_model(policy)?;
    checkpoint.check_normalizers(&config, obs_dim)?;
    Ok(LoadedPolicy {
        config,
        checkpoint,
        policy,
        device,
    })
}

/// The observation width and action distribution of a loaded run: from its env, or — for a
/// custom env the CLI cannot build — from the policy file the run wrote.
fn run_shapes(loaded: &LoadedPolicy, path: &Path) -> Result<(usize, agents::ActionDist)> {
    match build_env(&loaded.config.env) {
        Ok(env) => Ok((
            env.observation_space().flat_len(),
            agents::ActionDist::from_space(&env.action_space()),
        )),
        Err(build_error) => {
            let (run, _) = locate(path)?;
            let file = run.join(POLICY_FILE);
            let header = agents::read_policy_header(&file).with_context(|| {
                format!(
                    "cannot build the run's env ({build_error}) and cannot read its policy file"
                )
            })?;
            Ok((header.obs_dim, header.action_dist()))
        }
    }
}

/// `fbrl export`.
pub(super) fn export(args: ExportArgs) -> Result<()> {
    let loaded = load_policy(&args.path)?;
    let (obs_dim, dist) = run_shapes(&loaded, &args.path)?;
    let obs_norm = loaded.checkpoint.state.rollout.obs_norm.as_ref();
    if args.onnx {
        let summary = agents::onnx::export_onnx(
            &agents::onnx::OnnxExport {
                policy: &loaded.policy,
                action: &dist,
                obs_normalizer: obs_norm,
                obs_dim,
            },
            &args.output,
        )?;
        let list = |io: &[(String, Vec<i64>)]| {
            io.iter()
                .map(|(name, shape)| format!("{name} {shape:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "wrote {} (ONNX, {} nodes; batch dimension -1)\n  inputs:  {}\n  outputs: {}",
            args.output.display(),
            summary.nodes,
            list(&summary.inputs),
            list(&summary.outputs)
        );
    } else {
        agents::save_policy_with_normalizer(
            &args.output,
            &loaded.policy,
            &loaded.config.policy,
            obs_dim,
            &dist,
            obs_norm,
        )?;
        println!(
            "wrote {} ({} policy, checkpoint {}{})",
            args.output.display(),
            loaded.policy.kind(),
            loaded.checkpoint.dir.display(),
            if obs_norm.is_some() {
                ", observation normaliser included"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// `fbrl eval`.
pub(super) fn eval(args: EvalArgs) -> Result<()> {
    let loaded = load_policy(&args.path)?;
    let eval_seed = args
        .seed
        .unwrap_or_else(|| loaded.config.seed.wrapping_add(EVAL_SEED_OFFSET));
    let env_cfg = loaded.config.env.clone();
    let report = eval::evaluate(
        &loaded.policy,
        loaded.checkpoint.state.rollout.obs_norm.as_ref(),
        &|| Ok(build_env(&env_cfg)?),
        args.episodes,
        eval_seed,
        args.actions.selection(),
        &loaded.device,
    )?;
    if args.json {
        let out = serde_json::json!({
            "run": args.path,
            "checkpoint": loaded.checkpoint.dir,
            "updates_done": loaded.checkpoint.state.updates_done,
            "env_steps": loaded.checkpoint.state.env_steps,
            "env": loaded.config.env.name(),
            "policy": loaded.config.policy.kind().name(),
            "report": report,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let state = &loaded.checkpoint.state;
    println!(
        "checkpoint   {} (update {}, {} env steps)",
        loaded.checkpoint.dir.display(),
        state.updates_done,
        state.env_steps
    );
    println!(
        "evaluation   {} episodes of {}, {} actions, held-out seeds from eval seed {}",
        report.episodes,
        loaded.config.env.name(),
        match report.actions {
            ActionSelection::Greedy => "greedy",
            ActionSelection::Sample => "sampled",
        },
        report.eval_seed
    );
    println!(
        "mean return  {:.3} ± {:.3} (std; min {:.3}, max {:.3})",
        report.return_mean, report.return_std, report.return_min, report.return_max
    );
    for (name, mean) in &report.counts.0 {
        println!("{:<12} {mean:.3}", format!("{name}/ep."));
    }
    match report.success_rate {
        Some(s) => println!("success rate {:.1} %", 100.0 * s),
        None => println!("success rate n/a (the task reports none)"),
    }
    println!("mean length  {:.1} steps", report.length_mean);
    Ok(())
}

/// `fbrl render`.
pub(super) fn render(args: RenderArgs) -> Result<()> {
    let loaded = load_policy(&args.path)?;
    let seed = args.seed.unwrap_or_else(|| {
        eval::eval_episode_seed(loaded.config.seed.wrapping_add(EVAL_SEED_OFFSET), 0)
    });
    let env = build_env_for_render(&loaded.config.env)?;
    let obs_norm = loaded.checkpoint.state.rollout.obs_norm.as_ref();
    let ep = eval::record_episode(
        &loaded.policy,
        obs_norm,
        env,
        seed,
        args.actions.selection(),
        &loaded.device,
        args.attention,
        Some(args.max_steps as usize),
    )
    .with_context(|| {
        let what = if args.attention {
            " with --attention"
        } else {
            ""
        };
        format!("cannot record an episode of {}{what}", args.path.display())
    })?;
    let result = ep.result;
    if result.truncated && result.length >= args.max_steps {
        eprintln!(
            "the episode was cut after {} steps (--max-steps); the GIF shows those",
            result.length
        );
    }
    let frames = if args.attention {
        crate::attention_view::draw(&ep)
    } else {
        ep.frames
    };
    envs::save_gif(&args.output, &frames, args.delay_cs)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let counts: String = result
        .counts
        .iter()
        .map(|(name, total)| format!(", {total} {name}"))
        .collect();
    println!(
        "wrote {} ({} frames): seed {seed}, return {:.3}{counts}, {} steps",
        args.output.display(),
        frames.len(),
        result.ret,
        result.length
    );
    Ok(())
}

fn parse_ref(s: &str) -> Result<RefLine> {
    let (label, value) = s
        .rsplit_once('=')
        .with_context(|| format!("--ref {s:?}: expected LABEL=VALUE"))?;
    let value: f64 = value
        .trim()
        .parse()
        .with_context(|| format!("--ref {s:?}: `{value}` is not a number"))?;
    if !value.is_finite() {
        bail!("--ref {s:?}: the value must be a finite number, got {value}");
    }
    Ok(RefLine::new(label.trim(), value))
}

/// `fbrl plot`.
pub(super) fn plot(args: PlotArgs) -> Result<()> {
    if args.smooth == 0 {
        bail!("--smooth must be at least 1 (1 = no smoothing)");
    }
    if args.output.is_dir() {
        bail!(
            "-o {}: is a directory; give the PNG file to write (an SVG is written beside it)",
            args.output.display()
        );
    }
    let png = args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !png {
        bail!(
            "-o {}: the output is a PNG file (an SVG is written beside it): give a path ending \
             in .png",
            args.output.display()
        );
    }
    let opts = RunsPlotOptions {
        x_axis: args.x,
        smooth: args.smooth,
        metric: args.metric.clone(),
        group_by: args.group_by,
        title: args.title.clone(),
        refs: args
            .refs
            .iter()
            .map(|r| parse_ref(r))
            .collect::<Result<_>>()?,
        ..RunsPlotOptions::default()
    };
    let saved = crate::plot::plot_runs(&args.runs, &args.output, &opts)?;
    println!("wrote {} and {}", saved.png.display(), saved.svg.display());
    Ok(())
}
