//! Bring your own environment: a tiny "remember the light" task, checked with `check_env`,
//! trained with PPO and plotted.
//!
//! ```text
//! cargo run --release --example custom_env
//! ```
//!
//! The task: a light is shown on the first step only (left or right); the agent then walks
//! down a dark corridor of `delay` steps and at the junction must turn towards the side the
//! light was on. Without memory the best it can do is guess (success 50 %). The env also
//! counts the steps the agent dawdles at the junction (its own per-episode count `waits`,
//! logged as the column `waits_mean` of `metrics.csv`).

use anyhow::Result;
use fbrl::agents::ppo::PpoConfig;
use fbrl::agents::{PolicyConfig, PolicyKind};
use fbrl::envs::{Action, ActionSpace, BoxSpace, Env, EnvError, Info, Step, check_env};
use fbrl::plot::{RefLine, RunsPlotOptions, plot_runs};
use fbrl::{CustomEnvConfig, EnvConfig, MetricsRow, TrainConfig, TrainOptions};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Remember the light: observation `[light_left, light_right, at_junction, progress]`,
/// actions `0 = turn left`, `1 = turn right`, `2 = walk on`.
struct RememberTheLight {
    delay: u32,
    space: BoxSpace,
    rng: ChaCha8Rng,
    light_left: bool,
    t: u32,
    done: bool,
}

impl RememberTheLight {
    fn new(delay: u32) -> Self {
        Self {
            delay,
            space: BoxSpace::uniform(4, 0.0, 1.0),
            rng: ChaCha8Rng::seed_from_u64(0),
            light_left: true,
            t: 0,
            done: true,
        }
    }

    fn observe(&self, obs: &mut [f32]) {
        let first = self.t == 0;
        obs[0] = f32::from(u8::from(first && self.light_left));
        obs[1] = f32::from(u8::from(first && !self.light_left));
        obs[2] = f32::from(u8::from(self.t >= self.delay));
        obs[3] = self.t.min(self.delay) as f32 / self.delay as f32;
    }
}

impl Env for RememberTheLight {
    fn observation_space(&self) -> &BoxSpace {
        &self.space
    }

    fn action_space(&self) -> ActionSpace {
        ActionSpace::discrete(3)
    }

    fn reset(&mut self, seed: u64, obs: &mut [f32]) -> Result<(), EnvError> {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.light_left = self.rng.random::<bool>();
        self.t = 0;
        self.done = false;
        self.observe(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Result<Step, EnvError> {
        // Anything but 0, 1 or 2 is refused with an error naming it.
        let action = action.discrete(3)?;
        if self.done {
            return Err(EnvError::StepAfterDone);
        }
        let at_junction = self.t >= self.delay;
        // A count is reported on every step (0 when nothing happened), so that every episode
        // has a total, 0 included.
        let waited = at_junction && action == 2;
        let mut step = Step {
            info: Info::default().with_count("waits", f32::from(u8::from(waited))),
            ..Step::default()
        };
        if at_junction && action != 2 {
            // At the junction, a turn ends the episode: +1 towards the light, 0 otherwise.
            let correct = (action == 0) == self.light_left;
            step.reward = if correct { 1.0 } else { 0.0 };
            step.terminated = true;
            step.info.success = Some(correct);
        } else {
            self.t += 1;
            // Dawdling at the junction is cut off by a time limit.
            step.truncated = self.t >= 2 * self.delay + 4;
        }
        self.done = step.done();
        self.observe(obs);
        Ok(step)
    }

    /// The counts the env reports, declared so that metrics.csv has a column for each.
    fn episode_counts(&self) -> &'static [&'static str] {
        &["waits"]
    }

    fn name(&self) -> String {
        format!("remember_the_light_{}", self.delay)
    }
}

fn main() -> Result<()> {
    let delay = 4;

    // 1. Check the env: spaces, determinism under a seed, the done contract, bad actions.
    let report = check_env(&mut RememberTheLight::new(delay))?;
    println!("check_env: {report}");

    // 2. Train with PPO on 16 copies of it: a small GRU (memory) and an MLP (no memory).
    let mut runs = Vec::new();
    for kind in [PolicyKind::Gru, PolicyKind::Mlp] {
        let cfg = TrainConfig {
            seed: 1,
            num_envs: 16,
            num_steps: 32,
            total_steps: 16 * 32 * 80, // 80 updates
            checkpoint_every: 0,
            threads: 1,
            // An empty name: the run takes the env's own `Env::name`.
            env: EnvConfig::Custom(CustomEnvConfig {
                name: String::new(),
                params: toml::toml! { delay = 4 },
            }),
            policy: PolicyConfig::preset(kind)
                .with("d_model", 32)
                .unwrap()
                .with("hidden", 32)
                .unwrap(),
            ppo: PpoConfig {
                learning_rate: 1e-3,
                ..PpoConfig::default()
            },
            ..TrainConfig::default()
        };
        // The trainer creates `runs/remember_the_light_4__<kind>__<seed>__<time>/`.
        let opts = TrainOptions {
            progress: Some(Box::new(move |row: &MetricsRow| {
                if row.update.is_multiple_of(20) {
                    println!(
                        "  {kind:<4} update {:>2}  success rate {:.2}  waits/episode {:.2}",
                        row.update,
                        row.success_rate,
                        row.counts.get("waits").unwrap_or(f64::NAN)
                    );
                }
            })),
            ..TrainOptions::default()
        };
        let summary = fbrl::train(&cfg, |_| Ok(RememberTheLight::new(delay)), opts)?;
        println!(
            "{kind}: {} updates in {:.1} s → {}",
            summary.updates_done,
            summary.wall_time_s,
            summary.run_dir.display()
        );
        runs.push(summary.run_dir);
    }

    // 3. Plot the success rate of both against env steps (mean over seeds per policy; one
    //    seed each here).
    let png = runs[0].with_file_name("remember_the_light.png");
    let plot = RunsPlotOptions {
        metric: Some("success_rate".to_string()),
        smooth: 5,
        title: Some(format!("Remember the light (delay {delay})")),
        refs: vec![RefLine::new("chance (no memory)", 0.5)],
        ..RunsPlotOptions::default()
    };
    plot_runs(&runs, &png, &plot)?;
    println!("wrote {}", png.display());
    Ok(())
}
