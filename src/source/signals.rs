//! Signals from the host process. They *set* state, never toggle it (signals coalesce):
//!
//! | signal | `healthd serve` | `healthd run` |
//! |---|---|---|
//! | SIGUSR1 | process ready and every known endpoint ready | same (kept by healthd) |
//! | SIGUSR2 | process not ready and every known endpoint not ready | same (kept by healthd) |
//! | SIGHUP | re-read the readiness file now | forwarded to the child |
//! | SIGTERM, SIGINT | drain: not ready at once, answer for the grace period, exit 0; a second one exits at once | forwarded; healthd reports not ready and waits for the child |
//! | SIGQUIT | default action | forwarded to the child |
//! | SIGCHLD | reap exited children (healthd may be PID 1) | same; the child's exit starts the drain |
//!
//! [`install`] must run before any other thread starts, so that every thread inherits the
//! handlers and no signal finds the default action (as PID 1 the kernel would ignore it).

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook::iterator::Signals;

use super::{Shared, apply};
use crate::http::Stopper;
use crate::log::{info, warning};
use crate::state::{Health, Source, Update};

/// The signals healthd always handles; `healthd run` adds SIGQUIT (forwarded to the child).
const HANDLED: [i32; 6] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD];

/// Registers the handlers (before any thread exists), then blocks these signals in this thread,
/// so every later thread inherits the block and only the signal thread (which unblocks them)
/// receives them: the kernel then wakes that thread directly instead of interrupting another one
/// that would have to wake it (one wake-up instead of two on the signal-to-answer path). A signal
/// that arrives before the signal thread runs stays pending; none is lost. `supervising` adds
/// SIGQUIT, which is then forwarded to the child instead of taking its default action. (The child
/// of `healthd run` starts with an empty mask: `supervise.rs` clears it before exec.)
pub fn install(supervising: bool) -> io::Result<Signals> {
    let mut sigs = HANDLED.to_vec();
    if supervising {
        sigs.push(SIGQUIT);
    }
    let signals = Signals::new(&sigs)?;
    mask(libc::SIG_BLOCK, &sigs)?;
    Ok(signals)
}

/// Blocks or unblocks `sigs` in the calling thread.
fn mask(how: i32, sigs: &[i32]) -> io::Result<()> {
    // SAFETY: a zeroed sigset_t is valid storage; sigemptyset/sigaddset initialise it and
    // pthread_sigmask only changes the calling thread's mask.
    let rc = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &sig in sigs {
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

/// The supervised child of `healthd run`: its pid, and where its exit code lands (-1 while it
/// runs).
#[derive(Clone)]
pub struct Child {
    pub pid: i32,
    pub exit: Arc<AtomicI32>,
}

/// Everything the signal thread acts on.
pub struct Handling {
    pub state: Shared,
    pub stopper: Arc<Stopper>,
    pub grace: Duration,
    pub reload: Option<Reload>,
    pub child: Option<Child>,
}

/// Handles signals on a thread of its own until the process exits.
pub fn spawn(mut signals: Signals, h: Handling) -> io::Result<()> {
    super::thread::detach("signals", move || {
        if let Err(e) = mask(
            libc::SIG_UNBLOCK,
            &[SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD, SIGQUIT],
        ) {
            warning!("cannot unblock signals in the signal thread: {e}");
        }
        let mut draining = false;
        // A child that exited before this thread started raised SIGCHLD already; look once.
        h.reap();
        for sig in signals.forever() {
            match (sig, &h.child) {
                (SIGUSR1, _) => {
                    apply(
                        &h.state,
                        Update::All(Health::Ready),
                        Source::Signal,
                        "SIGUSR1",
                    );
                }
                (SIGUSR2, _) => {
                    apply(
                        &h.state,
                        Update::All(Health::NotReady),
                        Source::Signal,
                        "SIGUSR2",
                    );
                }
                (SIGCHLD, _) => h.reap(),
                (SIGTERM | SIGINT | SIGHUP | SIGQUIT, Some(child)) => {
                    let shutdown = sig == SIGTERM || sig == SIGINT;
                    let code = child.exit.load(Ordering::SeqCst);
                    if code >= 0 {
                        // Only this thread reaps, so an exited child's pid is never signalled.
                        if shutdown {
                            info!(
                                "{}: child already exited, exiting now with {code}",
                                name(sig)
                            );
                            std::process::exit(code);
                        }
                        continue;
                    }
                    if shutdown {
                        apply(&h.state, Update::Drain, Source::Signal, name(sig));
                    }
                    // SAFETY: kill on the pid of our own, not yet reaped, child.
                    unsafe { libc::kill(child.pid, sig) };
                    info!("{}: forwarded to child {}", name(sig), child.pid);
                }
                (SIGHUP, None) => match &h.reload {
                    Some(reload) => reload(),
                    None => warning!("SIGHUP ignored: no readiness file is configured"),
                },
                (SIGTERM | SIGINT, None) if draining => {
                    info!("{}: second shutdown signal, exiting now", name(sig));
                    std::process::exit(0);
                }
                (SIGTERM | SIGINT, None) => {
                    draining = true;
                    apply(&h.state, Update::Drain, Source::Signal, name(sig));
                    info!(
                        "{}: draining for {:?} (reporting not ready), then exiting; send it again to exit now",
                        name(sig),
                        h.grace
                    );
                    h.stopper.stop_after(h.grace);
                }
                _ => {}
            }
        }
    })
}

impl Handling {
    /// Collects every exited child so none lingers as a zombie; when the supervised child is
    /// among them, records its code, reports not live and starts the drain.
    fn reap(&self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with WNOHANG only inspects this process's children.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            let Some(child) = self.child.as_ref().filter(|c| c.pid == pid) else {
                continue;
            };
            let code = exit_code(status);
            child.exit.store(code, Ordering::SeqCst);
            super::lock(&self.state).apply(Update::Exited(code), Source::Signal);
            super::changes::bump();
            apply(&self.state, Update::Drain, Source::Signal, "child exited");
            info!(
                "child {pid} exited with code {code}; draining for {:?}, then exiting with {code}",
                self.grace
            );
            self.stopper.stop_after(self.grace);
        }
    }
}

/// The shell's convention: the exit status, or 128+N when killed by signal N.
pub fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

fn name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGHUP => "SIGHUP",
        SIGQUIT => "SIGQUIT",
        _ => "signal",
    }
}
