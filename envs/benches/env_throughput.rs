//! Env steps per second: one GridMaze, and VecEnvs of 64 and 1024 envs stepped sequentially,
//! with rayon and with `Parallelism::Auto`, for 9×9 and 15×15 mazes (multi mode, 3×3 view,
//! random actions, a new maze generated at every episode start). Also counts heap allocations
//! per step in the timed loops (expected: 0).
//!
//! Run: `cargo bench -p envs --bench env_throughput` (about a minute). `ENV_BENCH_STEPS` sets the
//! env steps per measurement (default 1 000 000). Every round measures all variants back to
//! back. Throughputs are the best of [`REPS`] rounds, and `vs seq` is the ratio of those
//! bests (what each path can do when the machine lets it; the floors use it). `median` is the
//! median over the rounds of the ratio to the sequential path measured in the same round: how
//! a typical round went on a shared machine.

use std::alloc::System;
use std::hint::black_box;
use std::time::Instant;

use envs::{Env, GridMaze, GridMazeConfig, Parallelism, VecEnv, derive_seed};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Repetitions per measurement (rounds of the VecEnv variants); the best throughput and the
/// median paired ratio are reported. On a shared virtual machine the cores' speed drifts
/// for seconds at a time, so the rounds of one measurement span several seconds.
const REPS: usize = 15;
/// Length of the pre-drawn random action table (a power of two).
const ACTIONS: usize = 1 << 16;

/// One measurement: steps per second and heap allocations per env step.
#[derive(Clone, Copy)]
struct Measure {
    steps_per_s: f64,
    allocs_per_step: f64,
}

fn action_table(n_actions: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    (0..ACTIONS)
        .map(|_| rng.random_range(0..n_actions))
        .collect()
}

/// Best of [`REPS`] runs of `f(steps) -> (seconds, allocations)`.
fn best(steps: u64, mut f: impl FnMut(u64) -> (f64, u64)) -> Measure {
    let mut out = Measure {
        steps_per_s: 0.0,
        allocs_per_step: 0.0,
    };
    for _ in 0..REPS {
        let (secs, allocs) = f(steps);
        let rate = steps as f64 / secs;
        if rate > out.steps_per_s {
            out.steps_per_s = rate;
        }
        out.allocs_per_step = out.allocs_per_step.max(allocs as f64 / steps as f64);
    }
    out
}

/// One env stepped in a plain loop on this thread, reset (new maze) whenever it ends.
fn single_env(cfg: &GridMazeConfig, steps: u64) -> Measure {
    let mut env = GridMaze::new(cfg.clone()).expect("valid config");
    let table = action_table(cfg.num_actions());
    let mut obs = vec![0.0f32; cfg.obs_len()];
    let mut episodes = 0u64;
    env.reset(0, &mut obs).expect("reset");
    best(steps, |steps| {
        let region = Region::new(GLOBAL);
        let start = Instant::now();
        for t in 0..steps as usize {
            let s = env
                .step(table[t & (ACTIONS - 1)].into(), &mut obs)
                .expect("step");
            if s.done() {
                episodes += 1;
                env.reset(derive_seed(0, episodes), &mut obs)
                    .expect("reset");
            }
        }
        black_box(&obs);
        let secs = start.elapsed().as_secs_f64();
        let c = region.change();
        (secs, (c.allocations + c.reallocations) as u64)
    })
}

/// How a VecEnv variant is driven in the benchmark.
#[derive(Clone, Copy, PartialEq)]
enum Caller {
    /// `step` is called from the main thread, outside any rayon pool.
    Outside,
    /// The stepping loop runs inside `pool.install` (as the trainer does): rayon work starts
    /// on a worker thread.
    InPool,
}

/// Result of one VecEnv variant in [`vec_envs`].
#[derive(Clone)]
struct VariantResult {
    /// Best throughput and worst allocation count over the rounds.
    best: Measure,
    /// Best throughput divided by variant 0's best.
    best_ratio: f64,
    /// Median over the rounds of this variant's throughput divided by variant 0's in the same
    /// round.
    median_ratio: f64,
    /// Whether the variant stepped with rayon.
    uses_rayon: bool,
}

/// Median of `v` (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// VecEnvs of `n` envs, one per `(parallelism, caller)` variant, measured round-robin over
/// [`REPS`] rounds (so that every variant sees the same background load); `steps` counts env
/// steps per measurement (`steps / n` VecEnv steps). Ratios are against variant 0.
fn vec_envs(
    cfg: &GridMazeConfig,
    n: usize,
    variants: &[(Parallelism, Caller)],
    steps: u64,
    pool: &rayon::ThreadPool,
) -> Vec<VariantResult> {
    let table = action_table(cfg.num_actions());
    let iters = (steps as usize / n).max(1);
    let mut venvs: Vec<VecEnv<GridMaze>> = variants
        .iter()
        .map(|&(p, _)| {
            let mut venv = VecEnv::from_fn(n, 0, |_| GridMaze::new(cfg.clone()))
                .expect("valid config")
                .with_parallelism(p);
            venv.reset().expect("reset");
            venv
        })
        .collect();
    let mut out = vec![
        VariantResult {
            best: Measure {
                steps_per_s: 0.0,
                allocs_per_step: 0.0,
            },
            best_ratio: 0.0,
            median_ratio: 0.0,
            uses_rayon: false,
        };
        variants.len()
    ];
    // Per variant, its throughput in each round.
    let mut rates = vec![Vec::with_capacity(REPS); variants.len()];
    // Offsets into the action table: a fixed stride, wrapped.
    let offset = |k: usize| (k * 97) % (ACTIONS - n);
    // Runs `count` VecEnv steps; returns (seconds, allocations, used rayon).
    let run = |venv: &mut VecEnv<GridMaze>, first: usize, count: usize| {
        let uses_rayon = venv.uses_rayon();
        let region = Region::new(GLOBAL);
        let start = Instant::now();
        for k in first..first + count {
            let o = offset(k);
            black_box(venv.step(&table[o..o + n]).expect("step"));
        }
        let secs = start.elapsed().as_secs_f64();
        let c = region.change();
        (secs, (c.allocations + c.reallocations) as u64, uses_rayon)
    };
    for round in 0..=REPS {
        for (v, venv) in venvs.iter_mut().enumerate() {
            // Round 0 is the warm-up: one full episode per env grows the per-env action
            // logs to their final size.
            let count = if round == 0 {
                cfg.horizon as usize + 1
            } else {
                iters
            };
            let first = round * iters;
            let (secs, allocs, uses_rayon) = match variants[v].1 {
                Caller::Outside => run(venv, first, count),
                Caller::InPool => pool.install(|| run(venv, first, count)),
            };
            if round == 0 {
                continue;
            }
            let env_steps = (count * n) as f64;
            let rate = env_steps / secs;
            rates[v].push(rate);
            let m = &mut out[v];
            m.best.steps_per_s = m.best.steps_per_s.max(rate);
            m.best.allocs_per_step = m.best.allocs_per_step.max(allocs as f64 / env_steps);
            m.uses_rayon = uses_rayon;
        }
    }
    let base = rates[0].clone();
    let base_best = out[0].best.steps_per_s;
    for (m, r) in out.iter_mut().zip(&rates) {
        let mut ratios: Vec<f64> = r.iter().zip(&base).map(|(a, b)| a / b).collect();
        m.median_ratio = median(&mut ratios);
        m.best_ratio = m.best.steps_per_s / base_best;
    }
    out
}

fn mega(x: f64) -> String {
    format!("{:.2}", x / 1e6)
}

fn main() {
    let steps: u64 = std::env::var("ENV_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let threads = rayon::current_num_threads();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    println!(
        "GridMaze throughput: env steps/s (best of {REPS} × {steps} steps), random actions, \
         multi mode, 3×3 view, a new maze every episode; rayon: {threads} threads"
    );
    println!(
        "caller `outside`: step called from the main thread; `in pool`: the loop runs inside \
         pool.install, as the trainer does"
    );
    println!(
        "M steps/s: best of {REPS} rounds; vs seq: ratio of the bests; median: median over the \
         rounds of the ratio to the sequential path measured in the same round"
    );
    let variants = [
        (Parallelism::Sequential, Caller::Outside),
        (Parallelism::Rayon, Caller::Outside),
        (Parallelism::Auto, Caller::Outside),
        (Parallelism::Rayon, Caller::InPool),
        (Parallelism::Auto, Caller::InPool),
    ];
    let mut floors = Vec::new();
    for size in [9usize, 15] {
        let horizon = (size * size) as u32;
        let cfg = GridMazeConfig::multi(size, horizon);
        println!();
        println!(
            "{size}×{size} maze, horizon {horizon}, obs length {}",
            cfg.obs_len()
        );
        println!(
            "{:<20} {:>5}  {:<11} {:<9} {:>9}  {:>8}  {:>8}  {:>11}",
            "setup", "envs", "path", "caller", "M steps/s", "vs seq", "median", "allocs/step"
        );
        let one = single_env(&cfg, steps);
        println!(
            "{:<20} {:>5}  {:<11} {:<9} {:>9}  {:>8}  {:>8}  {:>11.4}",
            "one env, plain loop",
            1,
            "-",
            "-",
            mega(one.steps_per_s),
            "",
            "",
            one.allocs_per_step
        );
        if size == 9 {
            floors.push((
                "one 9×9 env on one core ≥ 5 M steps/s".to_string(),
                one.steps_per_s >= 5e6,
                format!("{} M", mega(one.steps_per_s)),
            ));
        }
        for n in [64usize, 1024] {
            let res = vec_envs(&cfg, n, &variants, steps, &pool);
            for (&(p, caller), r) in variants.iter().zip(&res) {
                let path = match p {
                    Parallelism::Sequential => "sequential",
                    Parallelism::Rayon => "rayon",
                    Parallelism::Auto if r.uses_rayon => "auto→rayon",
                    Parallelism::Auto => "auto→seq",
                };
                let caller = match caller {
                    Caller::Outside => "outside",
                    Caller::InPool => "in pool",
                };
                println!(
                    "{:<20} {:>5}  {:<11} {:<9} {:>9}  {:>7.2}×  {:>7.2}×  {:>11.4}",
                    "VecEnv",
                    n,
                    path,
                    caller,
                    mega(r.best.steps_per_s),
                    r.best_ratio,
                    r.median_ratio,
                    r.best.allocs_per_step
                );
            }
            if n == 1024 {
                for (v, caller) in [(1, "outside"), (3, "in pool")] {
                    let (r, m) = (res[v].best_ratio, res[v].median_ratio);
                    floors.push((
                        format!(
                            "{size}×{size}, 1024 envs, caller {caller}: rayon ≥ 1.6× sequential \
                             ({threads} threads)"
                        ),
                        r >= 1.6,
                        format!("{r:.2}× (median round {m:.2}×)"),
                    ));
                }
            }
            // Auto is never slower than sequential: where it picks the sequential path it runs
            // the very same code; where it picks rayon, rayon must measure at least as fast.
            for (auto, rayon, caller) in [(2, 1, "outside"), (4, 3, "in pool")] {
                let r = res[rayon].best_ratio;
                let (ok, value) = if res[auto].uses_rayon {
                    (
                        r >= 1.0,
                        format!("picks rayon, which runs at {r:.2}× sequential"),
                    )
                } else {
                    (
                        true,
                        format!("picks the sequential path (rayon would run at {r:.2}×)"),
                    )
                };
                floors.push((
                    format!(
                        "{size}×{size}, {n} envs, caller {caller}: Auto not slower than sequential"
                    ),
                    ok,
                    value,
                ));
            }
        }
    }

    // Where rayon starts to pay (9×9), which sets Auto's thresholds.
    let cfg = GridMazeConfig::multi(9, 81);
    let sizes = [32usize, 64, 128, 256, 512, 1024, 2048, 4096];
    println!();
    println!("rayon / sequential by number of envs (9×9, ratio of the bests):");
    print!("{:>16}", "envs");
    for n in sizes {
        print!("{n:>7}");
    }
    println!();
    let sweep = [
        (Parallelism::Sequential, Caller::Outside),
        (Parallelism::Rayon, Caller::Outside),
        (Parallelism::Rayon, Caller::InPool),
    ];
    let ratios: Vec<Vec<f64>> = sizes
        .iter()
        .map(|&n| {
            let res = vec_envs(&cfg, n, &sweep, steps / 2, &pool);
            vec![res[1].best_ratio, res[2].best_ratio]
        })
        .collect();
    for (row, label) in ["caller outside", "caller in pool"].iter().enumerate() {
        print!("{label:>16}");
        for r in &ratios {
            print!("{:>6.2}×", r[row]);
        }
        println!();
    }

    println!();
    println!("floors:");
    for (what, ok, value) in &floors {
        println!("  {} {what}: {value}", if *ok { "PASS" } else { "FAIL" });
    }
}
