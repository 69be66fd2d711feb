//! Deploy a trained policy: load the policy file a run wrote and play one episode with it.
//!
//! ```text
//! fbrl train --env cue-recall --policy feedback --total-steps 200000 --run-dir runs/cue
//! cargo run --release --example deploy -- runs/cue/policy.fbrl 7
//! ```
//!
//! Only the `agents` and `envs` crates are used: a program that deploys a policy needs
//! `agents` (which brings `envs`), not `fbrl`. The policy file holds the weights, the
//! architecture and the observation normaliser, so raw observations go in.

use std::error::Error;
use std::path::Path;

use agents::Agent;
use envs::{CueRecall, CueRecallConfig, Env};

/// Plays one greedy episode of CueRecall (default settings) with reset seed `seed`;
/// returns the episode's return and length.
pub fn play(policy: &Path, seed: u64) -> Result<(f32, usize), Box<dyn Error>> {
    let agent = Agent::load(policy)?;
    let mut env = CueRecall::new(CueRecallConfig::default())?;
    let mut obs = vec![0.0; agent.obs_dim()];
    let mut memory = agent.initial_memory(1);
    env.reset(seed, &mut obs)?;
    let (mut ret, mut len) = (0.0, 0);
    loop {
        let acted = agent.act(&obs, &mut memory, true)?;
        let step = env.step(acted.action(0).as_action(), &mut obs)?;
        (ret, len) = (ret + step.reward, len + 1);
        if step.done() {
            return Ok((ret, len));
        }
    }
}

#[allow(dead_code)]
fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(policy), seed) = (args.get(1), args.get(2)) else {
        return Err("usage: deploy POLICY_FILE [SEED]".into());
    };
    let seed = seed.map_or(Ok(0), |s| s.parse())?;
    let (ret, len) = play(Path::new(policy), seed)?;
    println!("episode with seed {seed}: return {ret}, {len} steps");
    Ok(())
}
