//! The ranks of an MPI job as a [`Collective`] (rsmpi over the system's MPI library).
//!
//! Every exchange is a blocking MPI collective watched by a thread: when one waits longer
//! than [`timeout`] (a rank died without the launcher ending the job, or hangs), this rank
//! prints which exchange it was waiting in and exits with [`STALLED_EXIT`], so that the
//! launcher ends the whole job instead of leaving it hanging.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agents::ppo::Collective;
use anyhow::{Result, bail};
use mpi::Count;
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

/// The environment variable that sets the bounded wait of an exchange, in seconds.
pub const TIMEOUT_ENV: &str = "FBRL_MPI_TIMEOUT_S";

/// The bounded wait when [`TIMEOUT_ENV`] is unset: 10 minutes (an exchange waits for the
/// slowest rank's rollout or update, which on a big model can take minutes).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Exit status of a rank that gave up waiting for the others.
pub const STALLED_EXIT: i32 = 75;

/// The message tag of the rollout-preemption notices of `update` (MPI guarantees tags up to
/// 32 767).
fn done_tag(update: usize) -> i32 {
    1 + (update % 30_000) as i32
}

/// The bounded wait of an exchange: [`TIMEOUT_ENV`] seconds, or [`DEFAULT_TIMEOUT`].
pub fn timeout() -> Duration {
    std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64)
}

/// What the watchdog sees: when the exchange under way began (ms since `origin`, 0: none)
/// and which it is.
struct Watch {
    origin: Instant,
    since_ms: AtomicU64,
    what: std::sync::Mutex<&'static str>,
}

/// This process's rank in an MPI job (`MPI_COMM_WORLD`).
pub struct MpiGroup {
    // Dropping the universe finalises MPI: it lives as long as the group.
    _universe: Universe,
    world: SimpleCommunicator,
    watch: Arc<Watch>,
    /// Exchanges so far: calls, bytes this rank sent, seconds spent in them.
    exchanged: std::cell::Cell<(u64, u64, f64)>,
}

/// What a rank's exchanges cost so far ([`MpiGroup::exchanged`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exchanged {
    /// Number of collective calls.
    pub calls: u64,
    /// Bytes this rank contributed.
    pub bytes: u64,
    /// Seconds spent in them (waiting for the slowest rank included).
    pub seconds: f64,
}

impl MpiGroup {
    /// Initialises MPI. Refused outside an MPI launcher (no `mpirun`/`srun` environment):
    /// a process started on its own would train alone.
    pub fn init() -> Result<Self> {
        if super::mpi_launcher().is_none() {
            bail!(
                "--distributed mpi needs an MPI launcher: start it with `mpirun -np N fbrl train \
                 --distributed mpi …` or `srun --mpi=pmix fbrl train --distributed mpi …` (none \
                 of OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK is set)"
            );
        }
        let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Funneled) else {
            bail!("MPI is already initialised in this process");
        };
        let world = universe.world();
        let watch = Arc::new(Watch {
            origin: Instant::now(),
            since_ms: AtomicU64::new(0),
            what: std::sync::Mutex::new(""),
        });
        let limit = timeout();
        let (rank, size) = (world.rank(), world.size());
        {
            let watch = Arc::clone(&watch);
            std::thread::Builder::new()
                .name("fbrl-mpi-watchdog".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_millis(200));
                        let since = watch.since_ms.load(Ordering::Acquire);
                        if since == 0 {
                            continue;
                        }
                        let now = watch.origin.elapsed().as_millis() as u64;
                        if now.saturating_sub(since) > limit.as_millis() as u64 {
                            let what = *watch.what.lock().unwrap_or_else(|e| e.into_inner());
                            eprintln!(
                                "fbrl: rank {rank} of {size}: no answer from every rank for {:.0} s \
                                 in the exchange `{what}` (a rank died or hangs); ending this rank so that \
                                 the launcher ends the job (set {TIMEOUT_ENV} to wait longer)",
                                limit.as_secs_f64()
                            );
                            std::process::exit(STALLED_EXIT);
                        }
                    }
                })?;
        }
        Ok(Self {
            _universe: universe,
            world,
            watch,
            exchanged: std::cell::Cell::new((0, 0, 0.0)),
        })
    }

    /// Ends every rank of the job (`MPI_Abort`) with exit status `code`.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    /// The calls, bytes and seconds of this rank's exchanges so far.
    pub fn exchanged(&self) -> Exchanged {
        let (calls, bytes, seconds) = self.exchanged.get();
        Exchanged {
            calls,
            bytes,
            seconds,
        }
    }

    fn watched<T>(&self, what: &'static str, bytes: usize, f: impl FnOnce() -> T) -> T {
        *self.watch.what.lock().unwrap_or_else(|e| e.into_inner()) = what;
        let t0 = Instant::now();
        let now = (self.watch.origin.elapsed().as_millis() as u64).max(1);
        self.watch.since_ms.store(now, Ordering::Release);
        let out = f();
        self.watch.since_ms.store(0, Ordering::Release);
        let (c, b, s) = self.exchanged.get();
        self.exchanged
            .set((c + 1, b + bytes as u64, s + t0.elapsed().as_secs_f64()));
        out
    }
}

impl Collective for MpiGroup {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_reduce_sum_f32(&self, xs: &mut [f32], what: &'static str) {
        let send = xs.to_vec();
        self.watched(what, 4 * xs.len(), || {
            self.world
                .all_reduce_into(&send[..], xs, SystemOperation::sum())
        });
    }

    fn all_reduce_sum_f64(&self, xs: &mut [f64], what: &'static str) {
        let send = xs.to_vec();
        self.watched(what, 8 * xs.len(), || {
            self.world
                .all_reduce_into(&send[..], xs, SystemOperation::sum())
        });
    }

    fn notify_done(&self, update: usize) {
        // One byte per rank: sent eagerly by MPI, so this does not wait for the receivers.
        let tag = done_tag(update);
        let me = self.rank();
        for r in (0..self.size()).filter(|&r| r != me) {
            self.world
                .process_at_rank(r as i32)
                .send_with_tag(&1u8, tag);
        }
    }

    fn poll_done(&self, update: usize) -> usize {
        let tag = done_tag(update);
        let mut seen = 0;
        while let Some((msg, _)) = self
            .world
            .any_process()
            .immediate_matched_probe_with_tag(tag)
        {
            let (_notice, _): (u8, _) = msg.matched_receive();
            seen += 1;
        }
        seen
    }

    fn wait_done(&self, update: usize, count: usize) {
        let tag = done_tag(update);
        self.watched("rollout preemption notices", 0, || {
            for _ in 0..count {
                let (_notice, _): (u8, _) = self.world.any_process().receive_with_tag(tag);
            }
        });
    }

    fn all_gather_bytes(&self, bytes: &[u8], what: &'static str) -> Vec<Vec<u8>> {
        self.watched(what, bytes.len(), || {
            let size = self.size();
            let mine = bytes.len() as Count;
            let mut counts = vec![0 as Count; size];
            self.world.all_gather_into(&mine, &mut counts[..]);
            let displs: Vec<Count> = counts
                .iter()
                .scan(0, |at, &c| {
                    let d = *at;
                    *at += c;
                    Some(d)
                })
                .collect();
            let total: Count = counts.iter().sum();
            let mut buf = vec![0u8; total as usize];
            {
                let mut partition = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
                self.world.all_gather_varcount_into(bytes, &mut partition);
            }
            counts
                .iter()
                .zip(&displs)
                .map(|(&c, &d)| buf[d as usize..(d + c) as usize].to_vec())
                .collect()
        })
    }
}
