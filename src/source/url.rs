//! `HEALTHD_READY_URL`: ties the process status to the host process's own health URL. A thread
//! GETs it once a second (one fresh connection, 1 s timeout) and sets the process ready on
//! 200..399, not ready otherwise (refused, timeout, any other status). Only changes are logged.

use std::time::Duration;

use super::{Shared, apply};
use crate::client::{self, Target};
use crate::state::{Health, Source, Update};

const EVERY: Duration = Duration::from_secs(1);

/// Starts the poller.
pub fn spawn(target: Target, state: Shared) -> std::io::Result<()> {
    super::thread::detach("ready-url", move || {
        loop {
            let (health, what) = match client::get(&target, EVERY) {
                Ok(r) if (200..400).contains(&r.status) => {
                    (Health::Ready, format!("{target} answered {}", r.status))
                }
                Ok(r) => (Health::NotReady, format!("{target} answered {}", r.status)),
                Err(e) => (Health::NotReady, format!("{target}: {e}")),
            };
            apply(&state, Update::Process(health), Source::Url, &what);
            std::thread::sleep(EVERY);
        }
    })
}
