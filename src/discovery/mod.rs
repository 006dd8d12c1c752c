//! Discovery: the cluster view on etcd (Dynamo's discovery plane, `shared/spec/discovery.md`).
//! Workers with `HEALTHD_REGISTER=on` register their ready endpoints under one lease
//! ([`register`]); the frontend role lists every registered instance from a watched cache
//! ([`watch`] feeding [`cluster::Cluster`]).
//!
//! etcd is never in the path of local health: each side runs on its own thread, reads the local
//! state only through a snapshot under the state lock (never held across I/O), and publishes what
//! it learned into its own small shared value, which `/metrics` and the frontend's `/health`
//! render. An etcd that is down, hung or lying costs those threads time, never a probe.

pub mod cluster;
mod gateway;
pub mod register;
pub mod resolve;
pub mod watch;
pub mod wire;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cluster::Cluster;

/// What the worker's registrar last knew, for `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    pub connected: bool,
    /// The lease (= this process's instance id) while it is held.
    pub lease: Option<u64>,
    /// When the lease runs out unless etcd hears from this process again (the last keepalive
    /// plus the TTL): past it the lease counts as lost, whatever the registrar last heard.
    pub expires: Option<Instant>,
    pub grants: u64,
    /// Endpoints whose keys etcd confirmed under the current lease.
    pub registered: usize,
}

impl Registry {
    /// Whether the lease is held at `now` (granted or kept alive within its TTL).
    pub fn held(&self, now: Instant) -> bool {
        self.lease.is_some() && self.expires.is_some_and(|e| now < e)
    }
}

/// The discovery values the routes render: set in the role that uses them.
#[derive(Debug, Clone, Default)]
pub struct Views {
    pub registry: Option<Arc<Mutex<Registry>>>,
    pub cluster: Option<Arc<Mutex<Cluster>>>,
}

/// Locks a discovery value; a panic elsewhere while holding it must not take serving down.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Backoff between failed rounds: doubling from 100 ms, capped at 800 ms (so a lease is back
/// within 1 s of etcd answering again), with jitter so that many pods do not retry in step.
pub struct Backoff(Duration);

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(100);
    pub const CAP: Duration = Duration::from_millis(800);

    pub fn new() -> Backoff {
        Backoff(Backoff::FIRST)
    }

    pub fn reset(&mut self) {
        self.0 = Backoff::FIRST;
    }

    /// The next pause: between half and all of the current step, then the step doubles.
    pub fn next(&mut self) -> Duration {
        let step = self.0;
        self.0 = (step * 2).min(Backoff::CAP);
        let spread = step.as_nanos() as u64 / 2;
        step / 2 + Duration::from_nanos(jitter() % spread.max(1))
    }
}

/// A cheap pseudo-random number (no `rand` crate): the clock's nanoseconds, mixed.
fn jitter() -> u64 {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64 ^ d.as_secs());
    let mut x = n ^ (Instant::now().elapsed().as_nanos() as u64) ^ u64::from(std::process::id());
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut b = Backoff::new();
        let mut steps = Vec::new();
        for _ in 0..6 {
            steps.push(b.next());
        }
        for (got, step) in steps.iter().zip([100, 200, 400, 800, 800, 800]) {
            let step = Duration::from_millis(step);
            assert!(*got >= step / 2 && *got <= step, "{got:?} {step:?}");
        }
        b.reset();
        assert!(b.next() <= Backoff::FIRST);
    }
}
