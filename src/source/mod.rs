//! Sources: what changes the state from outside (signals, the readiness file, the notify socket). Each source lives in its own file and only
//! ever speaks to the state through [`apply`], which logs one line per change naming the source.

pub mod file;
pub mod notify;
pub mod signals;
mod thread;
pub mod url;
pub mod watchdog;

use std::sync::{Arc, Mutex, MutexGuard};

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
    }
    changed
}
