//! Stopping a run cleanly on SIGINT (Ctrl-C) and SIGTERM (what a cluster scheduler sends
//! before it kills a job).
//!
//! [`StopFlag::install`] registers handlers that only record the signal; the trainer checks the
//! flag after every update, writes a checkpoint and returns
//! [`Interrupted`](crate::trainer::Interrupted), and the program exits with `128 + signal`
//! (130 for SIGINT, 143 for SIGTERM). A second signal while the first is being handled exits at
//! once with that status, for a user who does not want to wait for the current update.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

/// The signals that stop a run.
pub const STOP_SIGNALS: [i32; 2] = [SIGINT, SIGTERM];

/// A shared "please stop" request: 0 while none, else the number of the signal that asked.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicUsize>);

impl StopFlag {
    /// A flag no signal is connected to (set it with [`StopFlag::request`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A flag set by SIGINT and SIGTERM; a second such signal exits the process at once with
    /// `128 + signal`.
    pub fn install() -> Result<Self> {
        let flag = Self::new();
        let armed = Arc::new(AtomicBool::new(false));
        for sig in STOP_SIGNALS {
            // Registered first, so it sees `armed` as the previous signal left it.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&armed))
                .with_context(|| format!("cannot install a handler for {}", signal_name(sig)))?;
            signal_hook::flag::register(sig, Arc::clone(&armed))
                .with_context(|| format!("cannot install a handler for {}", signal_name(sig)))?;
            signal_hook::flag::register_usize(sig, Arc::clone(&flag.0), sig as usize)
                .with_context(|| format!("cannot install a handler for {}", signal_name(sig)))?;
        }
        Ok(flag)
    }

    /// Records a stop request as if `signal` had arrived.
    pub fn request(&self, signal: i32) {
        self.0.store(signal.max(1) as usize, Ordering::SeqCst);
    }

    /// The signal that asked to stop, if any.
    pub fn requested(&self) -> Option<i32> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }
}

/// `SIGINT`, `SIGTERM`, or `signal N`.
pub fn signal_name(signal: i32) -> String {
    match signal {
        SIGINT => "SIGINT".to_string(),
        SIGTERM => "SIGTERM".to_string(),
        s => format!("signal {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_records_the_first_request() {
        let flag = StopFlag::new();
        assert_eq!(flag.requested(), None);
        flag.request(SIGTERM);
        assert_eq!(flag.requested(), Some(SIGTERM));
        assert_eq!(signal_name(SIGINT), "SIGINT");
        assert_eq!(signal_name(SIGTERM), "SIGTERM");
    }
}
