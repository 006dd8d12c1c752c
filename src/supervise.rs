//! `healthd run`: start the one supervised child. Its environment gains `NOTIFY_SOCKET` (and the
//! readiness file, when one is configured); signals are forwarded and its exit is noticed by the
//! signal thread (`source/signals.rs`), which is also the only code that reaps.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicI32;

use crate::log::info;
use crate::serve::StartError;
use crate::source::signals::Child;

/// Starts the child; 127 when the command does not exist, 126 when it cannot be executed.
pub fn spawn(
    argv: &[String],
    notify: Option<&str>,
    ready_file: Option<&std::path::Path>,
) -> Result<Child, StartError> {
    let mut cmd = command(argv);
    // healthd blocks its handled signals outside the signal thread; the child must start with
    // none blocked, or it could not be stopped by SIGTERM.
    // SAFETY: only sigemptyset and sigprocmask run between fork and exec; both are
    // async-signal-safe and touch only the child's own mask.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    if let Some(n) = notify {
        cmd.env("NOTIFY_SOCKET", n);
    }
    if let Some(f) = ready_file {
        cmd.env("HEALTHD_READY_FILE", f);
    }
    let child = cmd.spawn().map_err(|e| spawn_error(argv, &e))?;
    let pid = child.id() as i32;
    // The child is reaped by the signal thread (waitpid), never through `std::process::Child`.
    drop(child);
    info!("started child {pid}: {argv:?}");
    Ok(Child {
        pid,
        exit: Arc::new(AtomicI32::new(-1)),
    })
}

/// Replaces healthd with the child (when there is no server to run); returns only on failure.
pub fn exec(argv: &[String]) -> StartError {
    let e = command(argv).exec();
    spawn_error(argv, &e)
}

fn command(argv: &[String]) -> Command {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    cmd
}

fn spawn_error(argv: &[String], e: &std::io::Error) -> StartError {
    let code = if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    StartError {
        message: format!("cannot run {:?}: {e}", argv[0]),
        code,
    }
}
