//! Process start-up: the part of std's runtime that healthd keeps.
//!
//! healthd's `main` is a plain C `main` (`#![no_main]` in `main.rs`), because std's start-up code
//! (its stack-overflow handler, which parses `/proc/self/maps` with glibc's `sscanf`, thread
//! naming and the like) costs about 110 KB in the static binary: most of the way to its size goal
//! (issue 6). Of what std's start-up does, two duties matter to a server, and this module owns
//! them:
//!
//! - **Standard descriptors are open.** A process started with fd 0, 1 or 2 closed would hand that
//!   number to its first socket, and log lines would then go to a client. Closed ones are opened
//!   on `/dev/null`, as std does; where there is no `/dev/null` (an empty `FROM scratch` root),
//!   on a pipe whose other end is closed, so writes fail quietly and reads see end of file.
//! - **SIGPIPE is ignored**, so a peer that hangs up turns into an `EPIPE` error instead of
//!   killing the process. Children started by `healthd run` get the default back: std's `Command`
//!   resets SIGPIPE in the child unless std's own start-up ran with a non-default setting, which
//!   it does not here.
//!
//! std still works as usual from here on: `std::env::args_os` is filled by glibc before `main`,
//! and stdout is flushed by [`finish`].

use std::io::Write;

/// Runs first in `main`.
pub fn begin() {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only reads the descriptor's flags.
        let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
        if closed {
            reopen(fd);
        }
    }
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// Runs last in `main`: what `print!` buffered reaches stdout before the process exits.
pub fn finish() {
    let _ = std::io::stdout().flush();
}

/// Fills the closed descriptor `fd` (0, 1 or 2). The lowest free number is `fd` itself, because
/// the descriptors below it are open (checked in order).
fn reopen(fd: libc::c_int) {
    let flags = if fd == 0 {
        libc::O_RDONLY
    } else {
        libc::O_WRONLY
    };
    // SAFETY: plain system calls on a NUL-terminated literal and a local array.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), flags);
        if null == fd {
            return;
        }
        if null >= 0 {
            libc::close(null);
        }
        let mut ends = [-1; 2];
        if libc::pipe(ends.as_mut_ptr()) != 0 {
            return;
        }
        // The read end for stdin, the write end otherwise, moved onto `fd`; the other end is
        // closed (when it landed on `fd`, `dup2` replaces it).
        let (keep, other) = if fd == 0 {
            (ends[0], ends[1])
        } else {
            (ends[1], ends[0])
        };
        if other != fd {
            libc::close(other);
        }
        if keep != fd {
            libc::dup2(keep, fd);
            libc::close(keep);
        }
    }
}
