//! Sources: what changes the state from outside (signals, the readiness file, the notify socket,
//! the app's URL). Each source lives in its own file and only
//! ever speaks to the state through [`apply`], which logs one line per change naming the source.

pub mod file;
pub mod notify;
pub mod signals;
pub mod thread;
pub mod url;
pub mod watchdog;

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::log::info;
use crate::state::{Source, State, Update};

/// The state shared by the HTTP loop and the sources. The lock is held only to read or apply,
/// never across I/O.
pub type Shared = Arc<Mutex<State>>;

/// Locks the state; a panic elsewhere while holding it must not take serving down with it.
pub fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Applies `update` from `source`; logs one line (`what` says what happened) if anything changed.
pub fn apply(shared: &Shared, update: Update, source: Source, what: &str) -> bool {
    let mut state = lock(shared);
    let changed = state.apply(update, source);
    if changed {
        let health = state.health();
        drop(state);
        info!("{}: {what}; now {}", source.as_str(), health.as_str());
        changes::bump();
    }
    changed
}

/// A generation counter of local state changes, for the one reader that acts on them from
/// another thread (the etcd registrar): it waits here instead of polling the state.
pub mod changes {
    use super::*;

    static GENERATION: Mutex<u64> = Mutex::new(0);
    static WAKE: Condvar = Condvar::new();

    /// Records that the state changed and wakes the waiters.
    pub fn bump() {
        *GENERATION.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        WAKE.notify_all();
    }

    /// The current generation.
    pub fn current() -> u64 {
        *GENERATION.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the generation differs from `seen` or `until` passes; returns the generation.
    pub fn wait(seen: u64, until: Instant) -> u64 {
        let mut g = GENERATION.lock().unwrap_or_else(|e| e.into_inner());
        while *g == seen {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                break;
            };
            g = WAKE
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *g
    }
}
