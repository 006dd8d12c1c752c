//! Signals from the host process. They *set* state, never toggle it (signals coalesce):
//!
//! | signal | effect |
//! |---|---|
//! | SIGUSR1 | process ready and every known endpoint ready |
//! | SIGUSR2 | process not ready and every known endpoint not ready |
//! | SIGHUP | re-read the readiness file now (when one is configured) |
//! | SIGTERM, SIGINT | drain: not ready at once, keep answering for the grace period, exit 0; a second one exits at once |
//! | SIGCHLD | reap exited children (healthd may be PID 1, where orphans land) |
//!
//! [`install`] must run before any other thread starts, so that every thread inherits the
//! handlers and no signal finds the default action (as PID 1 the kernel would ignore it).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

use super::{Shared, apply};
use crate::http::Stopper;
use crate::log::{info, warning};
use crate::state::{Health, Source, Update};

const HANDLED: [i32; 6] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD];

/// Registers the handlers (before any thread exists), then blocks these signals in this thread,
/// so every later thread inherits the block and only the signal thread (which unblocks them)
/// receives them: the kernel then wakes that thread directly instead of interrupting another one
/// that would have to wake it (one wake-up instead of two on the signal-to-answer path). A signal
/// that arrives before the signal thread runs stays pending; none is lost.
pub fn install() -> io::Result<Signals> {
    let signals = Signals::new(HANDLED)?;
    mask(libc::SIG_BLOCK)?;
    Ok(signals)
}

/// Blocks or unblocks [`HANDLED`] in the calling thread.
fn mask(how: i32) -> io::Result<()> {
    // SAFETY: a zeroed sigset_t is valid storage; sigemptyset/sigaddset initialise it and
    // pthread_sigmask only changes the calling thread's mask.
    let rc = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in HANDLED {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(how, &set, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// What SIGHUP does: re-read the readiness file, if there is one.
pub type Reload = Box<dyn Fn() + Send>;

/// Handles signals on a thread of its own until the process exits.
pub fn spawn(
    mut signals: Signals,
    state: Shared,
    stopper: Arc<Stopper>,
    grace: Duration,
    reload: Option<Reload>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Err(e) = mask(libc::SIG_UNBLOCK) {
                warning!("cannot unblock signals in the signal thread: {e}");
            }
            let mut draining = false;
            for sig in signals.forever() {
                match sig {
                    SIGUSR1 => {
                        apply(&state, Update::All(Health::Ready), Source::Signal, "SIGUSR1");
                    }
                    SIGUSR2 => {
                        apply(&state, Update::All(Health::NotReady), Source::Signal, "SIGUSR2");
                    }
                    SIGHUP => match &reload {
                        Some(reload) => reload(),
                        None => warning!("SIGHUP ignored: no readiness file is configured"),
                    },
                    SIGTERM | SIGINT if draining => {
                        info!("{}: second shutdown signal, exiting now", name(sig));
                        std::process::exit(0);
                    }
                    SIGTERM | SIGINT => {
                        draining = true;
                        apply(&state, Update::Drain, Source::Signal, name(sig));
                        info!(
                            "{}: draining for {:?} (reporting not ready), then exiting; send it again to exit now",
                            name(sig),
                            grace
                        );
                        stopper.stop_after(grace);
                    }
                    SIGCHLD => reap(),
                    _ => {}
                }
            }
        })
        .map(drop)
}

fn name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "signal",
    }
}

/// Collects every exited child so none lingers as a zombie.
fn reap() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG only inspects this process's children.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
}
