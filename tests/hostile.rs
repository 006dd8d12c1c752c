//! Regression tests for faults the attack suite (`scripts/suites/attack.sh`) found. The suite
//! itself drives the release binary with hostile clients; these pin each fault it found at the
//! smallest scale that reproduces it.

mod common;

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Healthd, command};

/// Lets this test process hold a flood of connections.
fn raise_own_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(8192);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// healthd started with 64 descriptors (so at most 32 connections) under a flood of idle
/// connections: every probe is still answered. Found by the attack suite (case F): a probe
/// accepted in the same batch as newer flood connections was evicted, unread, as the oldest.
#[test]
fn probes_are_answered_at_the_connection_cap_under_a_flood() {
    raise_own_nofile();
    let mut cmd = command(
        &[("DYN_SYSTEM_PORT", "0"), ("DYN_SYSTEM_HOST", "127.0.0.1")],
        &[],
    );
    // SAFETY: setrlimit is async-signal-safe; the child runs nothing else before exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
    let h = Healthd::spawn(cmd);
    let done = Arc::new(AtomicUsize::new(0));
    let floods: Vec<_> = (0..4)
        .map(|_| {
            let (done, addr) = (Arc::clone(&done), h.addr);
            std::thread::spawn(move || {
                let mut held = Vec::new();
                while held.len() < 1500 {
                    if let Ok(s) = TcpStream::connect(addr) {
                        held.push(s);
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let mut probes = 0;
    while done.load(Ordering::SeqCst) < floods.len() || probes < 20 {
        let raw = h.raw(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(
            raw.starts_with(b"HTTP/1.1 503 "),
            "probe {probes} under the flood: {:?}\nstderr:\n{}",
            String::from_utf8_lossy(&raw),
            h.stderr()
        );
        probes += 1;
    }
    for f in floods {
        f.join().unwrap();
    }
}
