//! `healthd run`: start the one supervised child. Its environment gains `NOTIFY_SOCKET` (and the
//! readiness file, when one is configured); signals are forwarded and its exit is noticed by the
//! signal thread (`source/signals.rs`), which is also the only code that reaps.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicI32;

use crate::log::info;
use crate::source::signals::Child;

/// Why the child could not be started: the message and the exit code (127 not found, 126 not
/// executable), which `serve` hands on to `main`.
#[derive(Debug)]
pub struct ChildError {
    pub message: String,
    pub code: u8,
}

/// Starts the child; 127 when the command does not exist, 126 when it cannot be executed.
///
/// Done with `fork` and `execve`, as tini does, rather than `std::process::Command`, which costs
/// about 40 KB in the static binary (issue 6) for features a single child never uses. Everything
/// is prepared before `fork`; the child only resets its signal state and calls `execve`, all
/// async-signal-safe. An `execve` failure travels back over a close-on-exec pipe.
pub fn spawn(
    argv: &[String],
    notify: Option<&str>,
    ready_file: Option<&Path>,
) -> Result<Child, ChildError> {
    let mut extra: Vec<(&str, OsString)> = Vec::new();
    if let Some(n) = notify {
        extra.push(("NOTIFY_SOCKET", n.into()));
    }
    if let Some(f) = ready_file {
        extra.push(("HEALTHD_READY_FILE", f.as_os_str().to_owned()));
    }
    let exec = Exec::prepare(argv, &extra).map_err(|e| spawn_error(argv, &e))?;
    let pid = exec.fork().map_err(|e| spawn_error(argv, &e))?;
    info!("started child {pid}: {argv:?}");
    Ok(Child {
        pid,
        exit: Arc::new(AtomicI32::new(-1)),
    })
}

/// Replaces healthd with the child (when there is no server to run); returns only on failure.
pub fn exec(argv: &[String]) -> ChildError {
    let e = match Exec::prepare(argv, &[]) {
        Ok(exec) => {
            exec.reset_signals();
            exec.execve()
        }
        Err(e) => e,
    };
    spawn_error(argv, &e)
}

/// A command ready to run: the resolved program, argv and the environment as C strings, and the
/// null-terminated pointer arrays `execve` takes (built before any `fork`: the child must not
/// allocate).
struct Exec {
    path: CString,
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl Exec {
    /// Resolves the program like `execvp` does (a name without `/` is looked up in `PATH`) and
    /// builds the environment: healthd's own, with `extra` replacing or adding variables.
    fn prepare(argv: &[String], extra: &[(&str, OsString)]) -> io::Result<Exec> {
        let c = |bytes: &[u8]| {
            CString::new(bytes)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte"))
        };
        let program = find_program(&argv[0])?;
        let mut envp = Vec::new();
        for (k, v) in std::env::vars_os() {
            if !extra.iter().any(|(name, _)| OsStr::new(name) == k) {
                envp.push(c(&[k.as_bytes(), b"=", v.as_bytes()].concat())?);
            }
        }
        for (k, v) in extra {
            envp.push(c(&[k.as_bytes(), b"=", v.as_bytes()].concat())?);
        }
        let args: Vec<CString> = argv
            .iter()
            .map(|a| c(a.as_bytes()))
            .collect::<io::Result<_>>()?;
        // The pointers stay valid: each CString's bytes live on the heap, owned by `_strings`.
        let pointers = |strings: &[CString]| {
            strings
                .iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        Ok(Exec {
            path: c(program.as_os_str().as_bytes())?,
            argv: pointers(&args),
            envp: pointers(&envp),
            _strings: args.into_iter().chain(envp).collect(),
        })
    }

    /// Forks; the child execs. Returns the child's pid once its `execve` has succeeded.
    fn fork(&self) -> io::Result<i32> {
        let mut pipe = [-1; 2];
        // SAFETY: pipe2 fills the local array.
        if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let [read_end, write_end] = pipe;
        // SAFETY: between fork and execve the child calls only async-signal-safe functions
        // (sigprocmask, signal, execve, write, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // In the child: on success execve never returns and the pipe closes on exec.
            self.reset_signals();
            let errno = self.execve().raw_os_error().unwrap_or(libc::EINVAL);
            // SAFETY: writes four bytes from a local; _exit skips atexit handlers.
            unsafe {
                libc::write(write_end, (&raw const errno).cast(), 4);
                libc::_exit(127);
            }
        }
        let forked = io::Error::last_os_error();
        // SAFETY: closing our copy of the write end, which nothing else uses.
        unsafe { libc::close(write_end) };
        if pid < 0 {
            // SAFETY: as above, for the read end.
            unsafe { libc::close(read_end) };
            return Err(forked);
        }
        let mut errno = [0u8; 4];
        let n = loop {
            // SAFETY: reads at most four bytes into a local array.
            let n = unsafe { libc::read(read_end, errno.as_mut_ptr().cast(), 4) };
            if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break n;
            }
        };
        // SAFETY: as above.
        unsafe { libc::close(read_end) };
        if n == 4 {
            // The child could not exec and has exited: collect it (unless the signal thread,
            // which reaps every child, already has).
            // SAFETY: waits for this one child only.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)));
        }
        Ok(pid)
    }

    /// The child starts with the signal state a program expects: every signal healthd handles or
    /// ignores back at its default, then nothing blocked (healthd blocks its handled signals
    /// outside the signal thread). Dispositions go first, so a signal arriving before `execve`
    /// acts on the child as it would after, instead of reaching healthd's handlers (which would
    /// report it to the parent's signal thread).
    fn reset_signals(&self) {
        // SAFETY: signal, sigemptyset and sigprocmask are async-signal-safe and change only this
        // process's (or the forked child's) own signal state.
        unsafe {
            for sig in [
                libc::SIGTERM,
                libc::SIGINT,
                libc::SIGHUP,
                libc::SIGQUIT,
                libc::SIGUSR1,
                libc::SIGUSR2,
                libc::SIGCHLD,
                libc::SIGPIPE,
            ] {
                libc::signal(sig, libc::SIG_DFL);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        }
    }

    /// Calls `execve`; returns only its error.
    fn execve(&self) -> io::Error {
        // SAFETY: every pointer is to a NUL-terminated string owned by `self`, and both arrays
        // end with a null pointer.
        unsafe { libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
        io::Error::last_os_error()
    }
}

/// `name` itself when it holds a `/`, else the first executable `name` in `PATH` (or, with no
/// `PATH`, in `/usr/local/bin:/usr/bin:/bin`); `NotFound` when there is none.
fn find_program(name: &str) -> io::Result<PathBuf> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut denied = None;
    for dir in std::env::split_paths(&path) {
        let candidate = if dir.as_os_str().is_empty() {
            PathBuf::from(name)
        } else {
            dir.join(name)
        };
        let Ok(c) = CString::new(candidate.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: access only reads the NUL-terminated path.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 && !candidate.is_dir() {
            return Ok(candidate);
        }
        if candidate.exists() {
            denied = Some(io::Error::from_raw_os_error(libc::EACCES));
        }
    }
    Err(denied.unwrap_or_else(|| io::Error::from_raw_os_error(libc::ENOENT)))
}

fn spawn_error(argv: &[String], e: &std::io::Error) -> ChildError {
    let code = if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    ChildError {
        message: format!("cannot run {:?}: {e}", argv[0]),
        code,
    }
}
