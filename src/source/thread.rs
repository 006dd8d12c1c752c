//! Detached, named threads for the sources, made with `pthread_create` directly.
//!
//! Every source thread runs for the life of the process and is never joined, so `std::thread`'s
//! join handles, packets and scoped-thread machinery buy nothing here; in the static binary they
//! cost about 77 KB, which is most of what stood between healthd and its 1.3 MB size goal
//! (issue 6). A panic on one of these threads aborts the process, exactly as it does under
//! `std::thread` with `panic = "abort"` (the profile healthd ships with).

use std::ffi::{CString, c_void};
use std::io;

/// Stack for a source thread. The sources keep their buffers on the heap; the deepest stack use
/// is a JSON reader at its nesting limit (at most 128 levels).
const STACK: usize = 512 * 1024;

/// What the new thread receives: its name and its work.
type Job = (CString, Box<dyn FnOnce() + Send + 'static>);

/// Runs `f` on a new detached thread named `name` (as seen in `/proc/PID/task/*/comm`, at most 15
/// bytes).
pub fn detach(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    let short: Vec<u8> = name.bytes().filter(|&b| b != 0).take(15).collect();
    let name = CString::new(short).unwrap_or_default();
    let job: Box<Job> = Box::new((name, Box::new(f)));
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: `attr` is initialised before use and destroyed after; `start` takes back ownership
    // of `arg` exactly once, and only when pthread_create succeeded (otherwise it is freed here).
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let r = libc::pthread_attr_init(&mut attr);
        if r != 0 {
            drop(Box::from_raw(arg.cast::<Job>()));
            return Err(io::Error::from_raw_os_error(r));
        }
        libc::pthread_attr_setstacksize(&mut attr, STACK);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        let mut id: libc::pthread_t = 0;
        let r = libc::pthread_create(&mut id, &attr, start, arg);
        libc::pthread_attr_destroy(&mut attr);
        if r != 0 {
            drop(Box::from_raw(arg.cast::<Job>()));
            return Err(io::Error::from_raw_os_error(r));
        }
    }
    Ok(())
}

extern "C" fn start(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` came from `Box::into_raw` in `detach` and is taken back only here.
    let (name, job) = *unsafe { Box::from_raw(arg.cast::<Job>()) };
    // Named from inside with prctl: naming another thread would open /proc/self/task/N/comm, a
    // runtime file (a scratch root has no /proc).
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    job();
    std::ptr::null_mut()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn runs_the_job_on_a_named_thread() {
        let (tx, rx) = mpsc::channel();
        detach("healthd-test-thread-name", move || {
            let comm = std::fs::read_to_string("/proc/thread-self/comm").unwrap_or_default();
            tx.send(comm.trim_end().to_string()).unwrap();
        })
        .unwrap();
        let comm = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(comm, "healthd-test-th");
    }
}
