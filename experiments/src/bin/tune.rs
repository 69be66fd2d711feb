//! Tuning with the same budget for every policy: a learning rate × entropy coefficient sweep
//! for each arm of a maze preset, a few seeds per setting, the best setting per arm by final
//! training reward.
//!
//! ```text
//! cargo run --release -p experiments --bin tune -- --preset quick --seeds 2 --jobs 2
//! ```
//!
//! Writes `tuning.csv` (every setting: per-seed finals, mean and 95 % CI), `chosen.csv` (the
//! best setting per arm), one heat map per arm (`heatmap_<arm>.png` + `.svg`) and the
//! generated block of `README.md` to `--out`. The chosen values are printed as TOML lines for
//! the presets' `[[arms]]` (`learning_rate`, `ent_coef`). Runs live in deterministic
//! directories under `--runs-dir`; the same command resumes unfinished runs and skips finished
//! ones.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use experiments::preset::{self, Arm, PerArm, Preset, select_arms};
use experiments::report::{self, cell};
use experiments::runner::{self, Job};
use experiments::shard::{self, GridArgs};
use fbrl::curves::{self, Run, Summary};
use fbrl::plot::HeatMap;

/// Sweep learning rate × entropy coefficient per policy on a maze preset.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Preset name (`experiments/configs/maze_<NAME>.toml`) or a path to a preset TOML file;
    /// its budget, env and PPO settings are used for every run, its `[[arms]]` are tuned.
    #[arg(long, default_value = "quick")]
    preset: String,
    /// Comma-separated arms to tune (default: all of the preset's).
    #[arg(long, value_delimiter = ',')]
    policies: Option<Vec<String>>,
    /// Learning rates to try (the same for every arm).
    #[arg(long, value_delimiter = ',', default_value = "1e-4,2.5e-4,5e-4,1e-3")]
    lrs: Vec<f64>,
    /// Instead of `--lrs`: factors of each arm's own learning rate (its `learning_rate` in
    /// the preset, else `train.ppo.learning_rate`), e.g. `0.5,1,2` tries half, the same and
    /// twice each arm's rate. `ARM:FACTOR` adds a factor for one arm only (a grid extended
    /// where that arm's optimum was at an edge), e.g. `0.5,1,2,transformer:0.25`.
    #[arg(long, value_delimiter = ',', conflicts_with = "lrs")]
    lr_factors: Option<Vec<String>>,
    /// `--lr-factors` parsed.
    #[arg(skip)]
    factor_grid: Option<PerArm>,
    /// Entropy coefficients to try.
    #[arg(long, value_delimiter = ',', default_value = "0.003,0.01")]
    ent_coefs: Vec<f64>,
    /// Seeds per setting.
    #[arg(long, default_value_t = 2)]
    seeds: u64,
    /// Folder for the tables, heat maps and README (default: `<runs-dir>/<preset>/report`,
    /// untracked, so that a quick sweep never overwrites a committed results folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Root of the run directories (`<runs-dir>/<preset>/<arm>__lr<lr>__ent<ent>__<seed>`).
    #[arg(long, default_value = "runs/tune")]
    runs_dir: PathBuf,
    /// Runs at once, progress display, sharding over a cluster and `--report-only`.
    #[command(flatten)]
    grid: GridArgs,
}

impl Args {
    /// The report folder (resolved in `main`).
    fn out(&self) -> &Path {
        self.out.as_deref().expect("resolved in main")
    }

    /// The learning rates tried for `arm`: `--lrs`, or the `--lr-factors` that apply to it
    /// times the arm's rate (to 6 significant digits, so that 3 × 1e-3 is named 0.003 in its
    /// run folder), smallest first.
    fn lrs_of(&self, arm: &Arm, preset: &Preset) -> Vec<f64> {
        match &self.factor_grid {
            None => self.lrs.clone(),
            Some(factors) => {
                let base = arm.learning_rate.unwrap_or(preset.train.ppo.learning_rate);
                let mut lrs: Vec<f64> = factors
                    .for_arm(&arm.name)
                    .iter()
                    .map(|f| format!("{:.5e}", f * base).parse().expect("a number"))
                    .collect();
                lrs.sort_by(f64::total_cmp);
                lrs
            }
        }
    }
}

/// `--lr-factors` items: `FACTOR` (every arm) or `ARM:FACTOR` (that arm only). Every arm
/// must get at least one factor, and no arm the same factor twice.
fn parse_factors(items: &[String], arms: &[Arm]) -> Result<PerArm> {
    let grid = PerArm::parse("--lr-factors", "a factor", items, arms)?;
    for arm in arms {
        let mine = grid.for_arm(&arm.name);
        if mine.is_empty() {
            bail!("--lr-factors: no factor applies to arm {}", arm.name);
        }
        check_values("lr-factors", &mine, false)?;
    }
    Ok(grid)
}

/// One point of the grid: an arm with one learning rate and entropy coefficient.
struct Setting {
    arm: Arm,
    lr: f64,
    ent: f64,
    dirs: Vec<PathBuf>,
}

/// What one setting reached.
struct Scored {
    /// Final reward of each seed that trained to its end.
    finals: Vec<f64>,
    /// The update at which each diverged seed stopped (non-finite loss or gradient).
    diverged: Vec<usize>,
    /// Mean and CI over `finals`; `None` when a seed diverged (the setting is never chosen).
    summary: Option<Summary>,
}

impl Scored {
    /// The table cell: the summary, or which seeds diverged where.
    fn describe(&self) -> String {
        match &self.summary {
            Some(s) => fmt_summary(s),
            None => format!(
                "diverged ({} of {} seeds; update {})",
                self.diverged.len(),
                self.diverged.len() + self.finals.len(),
                self.diverged
                    .iter()
                    .map(|u| u.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

fn check_values(name: &str, values: &[f64], allow_zero: bool) -> Result<()> {
    if values.is_empty() {
        bail!("--{name}: give at least one value");
    }
    for v in values {
        if !v.is_finite() || *v < 0.0 || (*v == 0.0 && !allow_zero) {
            bail!(
                "--{name}: {v} is not a valid value (must be {})",
                if allow_zero { "≥ 0" } else { "> 0" }
            );
        }
    }
    // The same number written twice (`1e-3,0.001`) would train the same runs twice.
    for (i, v) in values.iter().enumerate() {
        if let Some(w) = values[..i].iter().find(|w| *w == v) {
            bail!("--{name}: {w} is listed twice (as {w} and {v}); give each value once");
        }
    }
    Ok(())
}

/// The runs of the grid, grouped by setting, and the jobs that train them.
fn grid(
    preset: &Preset,
    arms: &[Arm],
    args: &Args,
    runs_root: &Path,
    threads: usize,
) -> (Vec<Setting>, Vec<Job>) {
    let mut settings = Vec::new();
    let mut jobs = Vec::new();
    for arm in arms {
        for lr in args.lrs_of(arm, preset) {
            for &ent in &args.ent_coefs {
                let mut dirs = Vec::new();
                for seed in 0..args.seeds {
                    let mut config = preset.run_config(arm, seed, threads);
                    config.ppo.learning_rate = lr;
                    config.ppo.ent_coef = ent as f32;
                    let dir = runs_root.join(format!("{}__lr{lr}__ent{ent}__{seed}", arm.name));
                    jobs.push(Job {
                        name: format!("{} lr {lr} ent {ent} seed {seed}", arm.name),
                        dir: dir.clone(),
                        cost: arm.cost_per_step() * config.total_steps as f64,
                        config,
                    });
                    dirs.push(dir);
                }
                settings.push(Setting {
                    arm: arm.clone(),
                    lr,
                    ent,
                    dirs,
                });
            }
        }
    }
    (settings, jobs)
}

/// Final training reward of every seed of a setting (`metric` over the last `fraction` of
/// env steps); a seed that diverged is recorded as such, and its setting gets no summary.
fn score(setting: &Setting, metric: &str, fraction: f64) -> Result<Scored> {
    let mut finals = Vec::new();
    let mut diverged = Vec::new();
    for dir in &setting.dirs {
        if let Some(d) = fbrl::run_dir::divergence(dir) {
            diverged.push(d.update);
            continue;
        }
        let run = Run::load(dir)?;
        let pts = run.metrics.xy("env_steps", metric)?;
        finals.push(
            curves::final_value(&pts, fraction)
                .with_context(|| format!("{}: no episode finished", dir.display()))?,
        );
    }
    let summary = if diverged.is_empty() {
        curves::mean_ci95(&finals)
    } else {
        None
    };
    Ok(Scored {
        finals,
        diverged,
        summary,
    })
}

fn main() -> Result<()> {
    runner::experiment_main(|args, _started| run(args))
}

/// Trains the sweep `args` ask for, then scores it and writes the tables, heat maps and README.
fn run(mut args: Args) -> Result<()> {
    check_values("lrs", &args.lrs, false)?;
    check_values("ent-coefs", &args.ent_coefs, true)?;
    experiments::preset::check_seeds(args.seeds)?;
    let path = preset::preset_path("maze", &args.preset);
    let preset = Preset::load(&path)?;
    let e = &preset.experiment;
    let arms = select_arms(&preset.arms, args.policies.as_deref())?;
    if let Some(items) = &args.lr_factors {
        args.factor_grid = Some(parse_factors(items, &arms)?);
    }
    let metric = match preset.train.env {
        fbrl::EnvConfig::Gridmaze(_) => "goals_mean",
        _ => "return_mean",
    };
    let runs_root = args.runs_dir.join(&e.name);
    if args.out.is_none() {
        args.out = Some(runs_root.join("report"));
    }
    let n_lrs: usize = arms.iter().map(|a| args.lrs_of(a, &preset).len()).sum();
    let n_runs = n_lrs * args.ent_coefs.len() * args.seeds as usize;
    let jobs_at_once = args.grid.at_once(n_runs);
    let threads = (runner::cores() / jobs_at_once).max(1);
    let (settings, jobs) = grid(&preset, &arms, &args, &runs_root, threads);
    eprintln!(
        "tune {}: {} arms, {n_lrs} (arm, learning rate) pairs × {} entropy coefficients × {} \
         seeds = {n_runs} runs of {} env steps, {jobs_at_once} at a time × {threads} threads → {}",
        e.name,
        arms.len(),
        args.ent_coefs.len(),
        args.seeds,
        preset.train.total_steps,
        runs_root.display()
    );
    let Some(run_report) = shard::train_grid(&args.grid, &jobs, jobs_at_once, &runs_root, None)?
    else {
        return Ok(());
    };
    eprintln!(
        "training done in {:.0} s ({} run(s) diverged); scoring",
        run_report.wall_s, run_report.diverged
    );

    let scored = settings
        .iter()
        .map(|s| score(s, metric, e.final_fraction))
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(args.out())
        .with_context(|| format!("cannot create {}", args.out().display()))?;
    write_tables(&args, &settings, &scored, metric)?;
    let chosen = choose(&arms, &settings, &scored)?;
    write_heatmaps(&args, &chosen, &settings, &scored, metric, &e.name)?;
    write_readme(&args, &preset, &settings, &scored, &chosen, metric)?;
    println!("chosen settings (for the presets' [[arms]]):");
    for (arm, i) in &chosen {
        let (s, r) = (&settings[*i], &scored[*i]);
        println!(
            "  {}: learning_rate = {}, ent_coef = {}   # final {metric} {}",
            arm.name,
            s.lr,
            s.ent,
            r.describe()
        );
    }
    println!("wrote {}", args.out().display());
    Ok(())
}

/// The best setting of each arm: the highest mean final reward over seeds (ties: the first
/// in grid order, i.e. the smaller learning rate, then the smaller entropy coefficient).
/// A setting with a diverged seed is never chosen; an arm whose every setting diverged is an
/// error naming it.
fn choose<'a>(
    arms: &'a [Arm],
    settings: &[Setting],
    scored: &[Scored],
) -> Result<Vec<(&'a Arm, usize)>> {
    arms.iter()
        .map(|arm| {
            let mean = |i: usize| scored[i].summary.as_ref().map(|s| s.mean);
            let best = settings
                .iter()
                .enumerate()
                .filter(|(i, s)| s.arm.name == arm.name && mean(*i).is_some())
                .fold(None::<usize>, |best, (i, _)| match best {
                    Some(b) if mean(b) >= mean(i) => Some(b),
                    _ => Some(i),
                });
            match best {
                Some(b) => Ok((arm, b)),
                None => bail!(
                    "arm {}: every setting diverged (a non-finite loss or gradient); try smaller \
                     learning rates",
                    arm.name
                ),
            }
        })
        .collect()
}

/// The learning rates of `arm`'s settings, in grid order, each once.
fn lrs_tried(settings: &[Setting], arm: &str) -> Vec<f64> {
    let mut lrs: Vec<f64> = Vec::new();
    for s in settings.iter().filter(|s| s.arm.name == arm) {
        if !lrs.contains(&s.lr) {
            lrs.push(s.lr);
        }
    }
    lrs
}

fn fmt_summary(s: &Summary) -> String {
    if s.n > 1 {
        format!("{:.3} [{:.3}, {:.3}]", s.mean, s.ci_low, s.ci_high)
    } else {
        format!("{:.3}", s.mean)
    }
}

fn write_tables(args: &Args, settings: &[Setting], scored: &[Scored], metric: &str) -> Result<()> {
    let rows: Vec<Vec<String>> = settings
        .iter()
        .zip(scored)
        .map(|(s, r)| {
            vec![
                s.arm.name.clone(),
                s.lr.to_string(),
                s.ent.to_string(),
                (r.finals.len() + r.diverged.len()).to_string(),
                r.finals
                    .iter()
                    .map(|v| format!("{v:.4}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                r.diverged
                    .iter()
                    .map(|u| u.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                cell(r.summary.as_ref().map(|x| x.mean)),
                cell(r.summary.as_ref().map(|x| x.ci_low)),
                cell(r.summary.as_ref().map(|x| x.ci_high)),
            ]
        })
        .collect();
    let final_col = format!("final_{metric}_per_seed");
    report::write_csv(
        &args.out().join("tuning.csv"),
        &[
            "policy",
            "learning_rate",
            "ent_coef",
            "seeds",
            &final_col,
            "diverged_at_update",
            "mean",
            "ci95_low",
            "ci95_high",
        ],
        &rows,
    )
}

fn write_heatmaps(
    args: &Args,
    chosen: &[(&Arm, usize)],
    settings: &[Setting],
    scored: &[Scored],
    metric: &str,
    preset: &str,
) -> Result<()> {
    for (arm, best) in chosen {
        let best = &settings[*best];
        let lrs = lrs_tried(settings, &arm.name);
        let highlight = lrs
            .iter()
            .position(|&lr| lr == best.lr)
            .zip(args.ent_coefs.iter().position(|&ent| ent == best.ent));
        let value = |lr: f64, ent: f64| {
            settings
                .iter()
                .zip(scored)
                .find(|(s, _)| s.arm.name == arm.name && s.lr == lr && s.ent == ent)
                .and_then(|(_, r)| r.summary.as_ref().map(|x| x.mean))
        };
        let map = HeatMap {
            title: format!("{}: final {metric}, {preset} preset", arm.name),
            x_label: "entropy coefficient".into(),
            y_label: "learning rate".into(),
            columns: args.ent_coefs.iter().map(|v| format!("{v}")).collect(),
            rows: lrs.iter().map(|v| v.to_string()).collect(),
            values: lrs
                .iter()
                .map(|&lr| args.ent_coefs.iter().map(|&ent| value(lr, ent)).collect())
                .collect(),
            highlight,
            note: Some(format!(
                "Mean over {} seed(s) of the final training reward (last part of the env steps). \
                 Framed: the chosen setting.",
                args.seeds
            )),
            size: (900, 700),
        };
        map.save(&args.out().join(format!("heatmap_{}.png", arm.name)))?;
    }
    Ok(())
}

fn write_readme(
    args: &Args,
    preset: &Preset,
    settings: &[Setting],
    scored: &[Scored],
    chosen: &[(&Arm, usize)],
    metric: &str,
) -> Result<()> {
    let e = &preset.experiment;
    let chosen_rows: Vec<Vec<String>> = chosen
        .iter()
        .map(|(arm, i)| {
            let (s, r) = (&settings[*i], &scored[*i]);
            vec![
                arm.name.clone(),
                s.lr.to_string(),
                s.ent.to_string(),
                r.finals.len().to_string(),
                cell(r.summary.as_ref().map(|x| x.mean)),
                cell(r.summary.as_ref().map(|x| x.ci_low)),
                cell(r.summary.as_ref().map(|x| x.ci_high)),
            ]
        })
        .collect();
    report::write_csv(
        &args.out().join("chosen.csv"),
        &[
            "policy",
            "learning_rate",
            "ent_coef",
            "seeds",
            "mean",
            "ci95_low",
            "ci95_high",
        ],
        &chosen_rows,
    )?;
    let mut table = String::from("| policy | learning rate |");
    for ent in &args.ent_coefs {
        table.push_str(&format!(" ent {ent} |"));
    }
    table.push_str("\n|---|---:|");
    table.push_str(&"---:|".repeat(args.ent_coefs.len()));
    table.push('\n');
    for (arm, best) in chosen {
        for lr in lrs_tried(settings, &arm.name) {
            table.push_str(&format!("| {} | {lr} |", arm.name));
            for &ent in &args.ent_coefs {
                let i = settings
                    .iter()
                    .position(|s| s.arm.name == arm.name && s.lr == lr && s.ent == ent)
                    .expect("grid point");
                let mark = if i == *best { " **←**" } else { "" };
                table.push_str(&format!(" {}{mark} |", scored[i].describe()));
            }
            table.push('\n');
        }
    }
    let mut toml = String::new();
    for (arm, i) in chosen {
        toml.push_str(&format!(
            "{}: learning_rate = {}, ent_coef = {}\n",
            arm.name, settings[*i].lr, settings[*i].ent
        ));
    }
    let generated = format!(
        "Command:\n\n```sh\n{}cargo run --release -p experiments --bin tune -- {}\n```\n\nMachine: {}. Preset `{}` ({}): {} env steps per run, the \
         preset's PPO settings except the two swept; {} seed(s) per setting. Score: final \
         `{metric}` (mean over the last {:.0} % of env steps, training rollouts), mean [95 % \
         Student-t CI] over seeds. **←** marks the setting chosen for each arm (highest mean; a \
         setting with a seed that diverged, i.e. stopped on a non-finite loss or gradient, is \
         never chosen).\n\n\
         {table}\nChosen (`chosen.csv`, for the presets' `[[arms]]`):\n\n```text\n{toml}```\n\n\
         Files: `tuning.csv` (every setting and seed), `chosen.csv`, `heatmap_<policy>.png` / \
         `.svg`.\n",
        report::env_prefix(),
        report::command_line()
            .split_once(' ')
            .map_or("", |(_, a)| a),
        report::machine(),
        e.name,
        e.title,
        preset.train.total_steps,
        args.seeds,
        e.final_fraction * 100.0,
    );
    report::update_readme(
        &args.out().join("README.md"),
        "Tuning: learning rate × entropy coefficient per policy",
        &generated,
    )
}
