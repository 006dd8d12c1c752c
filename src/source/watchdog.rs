//! The heartbeat watchdog's voice: liveness goes stale by the clock, not by an update, so this
//! thread wakes when the heartbeat deadline passes and logs the loss once. (Recovery is logged by
//! `source::apply` when the next heartbeat arrives.) It sleeps until the deadline: no busy polling.

use std::time::{Duration, Instant};

use super::{Shared, lock};
use crate::log::warning;

/// Starts the thread when a heartbeat timeout is configured.
pub fn spawn(state: Shared) -> std::io::Result<()> {
    if lock(&state).heartbeat_deadline().is_none() {
        return Ok(());
    }
    super::thread::detach("watchdog", move || {
        let mut reported = false;
        loop {
            let now = Instant::now();
            let (liveness, deadline) = {
                let s = lock(&state);
                (s.liveness(now), s.heartbeat_deadline())
            };
            if liveness.is_live() {
                reported = false;
            } else if !reported {
                warning!("{}; reporting not live", liveness.reason());
                reported = true;
            }
            // Wake just after the deadline; once stale, look again each second for recovery.
            let wait = match deadline {
                Some(d) if d > now => d - now + Duration::from_millis(1),
                _ => Duration::from_secs(1),
            };
            std::thread::sleep(wait);
        }
    })
}
