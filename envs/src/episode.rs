//! [`EpisodeGuard`]: the bookkeeping every env's `step` shares — no step before `reset` or
//! after the episode ended, the time limit, the step count and the episode's statistics — kept
//! once, so that an env's `step` holds only its dynamics (Gymnasium's `TimeLimit` and
//! `RecordEpisodeStatistics`, as a field of the env).
//!
//! ```
//! # use envs::{EnvError, EpisodeGuard, Step};
//! let mut guard = EpisodeGuard::new(2);
//! assert_eq!(guard.check_step(), Err(EnvError::NotReset));
//! guard.start();
//! // In `step`: refuse a step the episode does not allow (`begin_step` also checks the action
//! // and the observation buffer against the env's spaces), run the dynamics, then count it.
//! guard.check_step().unwrap();
//! let mut step = Step { reward: 1.0, ..Step::default() };
//! guard.finish_step(&mut step);
//! assert!(!step.done());
//! let mut step = Step::default();
//! guard.finish_step(&mut step);
//! assert!(step.truncated && guard.stats().length == 2 && guard.stats().ret == 1.0);
//! assert_eq!(guard.check_step(), Err(EnvError::StepAfterDone));
//! ```

use crate::env::{Action, ActionSpace, BoxSpace, EnvError, EpisodeStats, Step};

/// The episode state of one env: whether an episode runs, its step count against the time
/// limit, and its running [`EpisodeStats`]. An env calls [`EpisodeGuard::start`] in `reset`,
/// [`EpisodeGuard::check_step`] first in `step` and [`EpisodeGuard::finish_step`] after its
/// dynamics.
#[derive(Clone, Debug)]
pub struct EpisodeGuard {
    time_limit: u32,
    fail_on_truncation: bool,
    started: bool,
    done: bool,
    t: u32,
    stats: EpisodeStats,
}

impl EpisodeGuard {
    /// A guard that truncates each episode after `time_limit` steps (unless that step
    /// terminated it); no episode has started.
    pub fn new(time_limit: u32) -> Self {
        Self {
            time_limit,
            fail_on_truncation: false,
            started: false,
            done: false,
            t: 0,
            stats: EpisodeStats::default(),
        }
    }

    /// This guard, for a task with a success criterion: an episode cut by the time limit is
    /// a failure (`Info::success = Some(false)` on its last step).
    pub fn failing_on_truncation(mut self) -> Self {
        self.fail_on_truncation = true;
        self
    }

    /// Starts a new episode: step count 0, fresh statistics.
    pub fn start(&mut self) {
        self.started = true;
        self.done = false;
        self.t = 0;
        self.stats = EpisodeStats::default();
    }

    /// Whether `step` may run now: [`EnvError::NotReset`] before the first episode,
    /// [`EnvError::StepAfterDone`] after the episode ended.
    pub fn check_step(&self) -> Result<(), EnvError> {
        if !self.started {
            Err(EnvError::NotReset)
        } else if self.done {
            Err(EnvError::StepAfterDone)
        } else {
            Ok(())
        }
    }

    /// The whole preamble of a `step`: [`Self::check_step`], then `action` against the env's
    /// action space `actions` and the observation buffer `obs` against its observation space
    /// `observations`; the first failing check's error. (A discrete env reads and checks its
    /// action in one go with `action.discrete(n)`, after [`Self::check_step`].)
    pub fn begin_step(
        &self,
        actions: &ActionSpace,
        action: Action<'_>,
        observations: &BoxSpace,
        obs: &[f32],
    ) -> Result<(), EnvError> {
        self.check_step()?;
        actions.check(action)?;
        observations.check_buffer(obs)
    }

    /// Counts the step whose dynamics gave `step`: the step count grows by one, the time limit
    /// truncates the episode (unless it terminated), the statistics take the step in, and an
    /// ended episode refuses further steps. Returns the new step count.
    pub fn finish_step(&mut self, step: &mut Step) -> u32 {
        self.t += 1;
        if !step.terminated && self.t >= self.time_limit {
            step.truncated = true;
            if self.fail_on_truncation {
                step.info.success = Some(false);
            }
        }
        self.done = step.done();
        self.stats.record(step, self.t);
        self.t
    }

    /// Steps taken in the current episode.
    pub fn elapsed(&self) -> u32 {
        self.t
    }

    /// Whether the current episode has ended (a `step` now is an error until `start`).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Statistics of the current episode so far (final once it has ended).
    pub fn stats(&self) -> EpisodeStats {
        self.stats
    }

    /// The time limit, in steps.
    pub fn time_limit(&self) -> u32 {
        self.time_limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminating_step_at_the_limit_is_not_truncated() {
        let mut g = EpisodeGuard::new(1).failing_on_truncation();
        g.start();
        let mut step = Step {
            terminated: true,
            ..Step::default()
        };
        step.info.success = Some(true);
        assert_eq!(g.finish_step(&mut step), 1);
        assert!(!step.truncated && step.info.success == Some(true));
        assert_eq!(g.stats().success, Some(true));
        assert!(g.is_done());
    }

    #[test]
    fn truncation_fails_a_task_with_a_success_criterion_and_start_clears() {
        let mut g = EpisodeGuard::new(1).failing_on_truncation();
        g.start();
        let mut step = Step::default();
        g.finish_step(&mut step);
        assert!(step.truncated && step.info.success == Some(false));
        assert_eq!(g.stats().success, Some(false));
        assert!(g.stats().truncated);
        g.start();
        assert_eq!(g.check_step(), Ok(()));
        assert_eq!((g.elapsed(), g.stats()), (0, EpisodeStats::default()));
        let mut plain = EpisodeGuard::new(1);
        plain.start();
        let mut step = Step::default();
        plain.finish_step(&mut step);
        assert!(step.truncated && step.info.success.is_none());
    }
}
