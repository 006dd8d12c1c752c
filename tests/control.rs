//! Black-box tests of host-process control: the readiness file (writes of every kind, garbage,
//! size, FIFOs, symlink swaps), signals (storms, SIGHUP, drain timing), `healthd set` (including
//! races) and the client commands `probe`, `wait` and `status` against live, not-ready and closed
//! ports. Real binary, real files, real signals; every wait is a poll with a deadline.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Healthd, command, poll, run};

/// A fresh directory under the system temp dir, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let dir = std::env::temp_dir().join(format!("healthd-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Tmp(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Starts healthd watching `file`, with extra settings.
fn watching(file: &Path, env: &[(&str, &str)]) -> Healthd {
    let mut full = vec![("HEALTHD_READY_FILE", s(file))];
    full.extend_from_slice(env);
    Healthd::start(&full, &[])
}

/// Polls until the health path answers `status`.
fn until_status(h: &Healthd, status: u16) {
    poll(&format!("/health to answer {status}"), || {
        h.get("/health").status == status
    });
}

/// Polls until the health body's endpoints object is exactly `endpoints`.
fn until_endpoints(h: &Healthd, endpoints: &str) {
    let want = format!(",\"endpoints\":{endpoints}}}");
    poll(&format!("endpoints {endpoints}"), || {
        h.get("/health").body.ends_with(&want)
    });
}

/// Writes `text` to a temporary file in the same directory and renames it over `path`.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-test");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn in_place_and_renamed_writes() {
    let t = Tmp::new("writes");
    let f = t.path("ready");
    let h = watching(&f, &[]);
    assert_eq!(
        h.get("/health").status,
        503,
        "missing file: starting status"
    );
    let log = h.stderr();
    let line = format!("; readiness from: file {}, SIGUSR1/SIGUSR2;", s(&f));
    assert!(log.contains(&line), "{log}");
    std::fs::write(&f, "").unwrap();
    until_status(&h, 200);
    std::fs::write(&f, "notready\n").unwrap();
    until_status(&h, 503);
    replace(
        &f,
        "# comment\nready\ngenerate = ready\nclear_kv_blocks=notready\n",
    );
    until_status(&h, 200);
    until_endpoints(
        &h,
        "{\"clear_kv_blocks\":\"notready\",\"generate\":\"ready\"}",
    );
    replace(&f, "ready\n");
    until_endpoints(&h, "{}");
    assert!(
        h.stderr()
            .contains(&format!("healthd: file: read {}; now ready\n", s(&f)))
    );
}

#[test]
fn required_endpoints_follow_the_file() {
    let t = Tmp::new("required");
    let f = t.path("ready");
    let h = watching(
        &f,
        &[("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[generate]")],
    );
    until_endpoints(&h, "{\"generate\":\"notready\"}");
    std::fs::write(&f, "generate=ready\n").unwrap();
    until_status(&h, 200);
    std::fs::write(&f, "generate=notready\nready\n").unwrap();
    until_status(&h, 503);
}

#[test]
fn delete_recreate_and_a_directory_that_appears_later() {
    let t = Tmp::new("recreate");
    let f = t.path("a/b/ready");
    let h = watching(&f, &[]);
    assert_eq!(h.get("/health").status, 503);
    std::fs::create_dir_all(t.path("a/b")).unwrap();
    std::fs::write(&f, "ready\n").unwrap();
    until_status(&h, 200);
    std::fs::remove_file(&f).unwrap();
    until_status(&h, 503);
    std::fs::write(&f, "ready\n").unwrap();
    until_status(&h, 200);
    // The whole directory goes away and comes back.
    std::fs::remove_dir_all(t.path("a")).unwrap();
    until_status(&h, 503);
    std::fs::create_dir_all(t.path("a/b")).unwrap();
    std::fs::write(&f, "").unwrap();
    until_status(&h, 200);
    // And the watcher rests once its directory is back (it once chased its own stale events,
    // spinning a core): well under a tenth of the CPU over a second.
    let busy = common::cpu_ticks(h.child.id());
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_secs(1) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let used = common::cpu_ticks(h.child.id()) - busy;
    assert!(
        used < 10,
        "healthd used {used} clock ticks in 1 s while idle, watching {}",
        s(&f)
    );
}

#[test]
fn garbage_keeps_the_last_good_state_with_one_warning() {
    let t = Tmp::new("garbage");
    let f = t.path("ready");
    std::fs::write(&f, "ready\n").unwrap();
    let h = watching(&f, &[]);
    assert_eq!(h.get("/health").status, 200, "read before listening");
    replace(&f, "notready\nthis is = garbage\n");
    let warning = format!(
        "healthd: warning: readiness file {} line 2: \"this is = garbage\": expected ready, notready, NAME=ready or NAME=notready (# starts a comment); keeping the last good state\n",
        s(&f)
    );
    h.wait_log(&warning);
    assert_eq!(h.get("/health").status, 200, "last good state kept");
    // Unrelated activity in the directory re-reads the same garbage: no second warning.
    std::fs::write(t.path("other"), "x").unwrap();
    h.signal(libc::SIGUSR2);
    until_status(&h, 503);
    assert_eq!(h.stderr().matches(&warning).count(), 1);
    replace(&f, "ready\n");
    until_status(&h, 200);
}

#[test]
fn a_large_file_is_refused() {
    let t = Tmp::new("large");
    let f = t.path("ready");
    std::fs::write(&f, "notready\n").unwrap();
    let h = watching(&f, &[]);
    let big = format!("ready\n{}", "# padding\n".repeat(10_000));
    replace(&f, &big);
    h.wait_log(&format!(
        "warning: readiness file {} is larger than 64 KiB; keeping the last good state",
        s(&f)
    ));
    assert_eq!(h.get("/health").status, 503);
}

#[test]
fn a_fifo_or_directory_never_blocks() {
    let t = Tmp::new("fifo");
    let f = t.path("ready");
    std::fs::write(&f, "ready\n").unwrap();
    let h = watching(&f, &[]);
    std::fs::remove_file(&f).unwrap();
    until_status(&h, 503);
    let c = std::ffi::CString::new(s(&f)).unwrap();
    // SAFETY: creating a FIFO at a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    h.wait_log("is a FIFO, not a regular file; keeping the last good state");
    h.signal(libc::SIGHUP);
    h.wait_log("SIGHUP: re-reading");
    assert_eq!(h.get("/health").status, 503, "still serving");
    std::fs::remove_file(&f).unwrap();
    std::fs::create_dir(&f).unwrap();
    h.wait_log("is a directory, not a regular file; keeping the last good state");
    std::fs::remove_dir(&f).unwrap();
    std::fs::write(&f, "").unwrap();
    until_status(&h, 200);
}

#[test]
fn a_fifo_or_bad_file_at_start_exits_2() {
    let t = Tmp::new("badstart");
    let f = t.path("ready");
    std::fs::write(&f, "ready\nnope\n").unwrap();
    let (code, _, err) = run(
        &[("HEALTHD_READY_FILE", s(&f)), ("DYN_SYSTEM_PORT", "0")],
        &[],
    );
    assert_eq!(code, 2);
    assert_eq!(
        err,
        format!(
            "healthd: error: HEALTHD_READY_FILE {}: line 2: \"nope\": expected ready, notready, NAME=ready or NAME=notready (# starts a comment)\n",
            s(&f)
        )
    );
    std::fs::remove_file(&f).unwrap();
    let c = std::ffi::CString::new(s(&f)).unwrap();
    // SAFETY: creating a FIFO at a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let (code, _, err) = run(
        &[("HEALTHD_READY_FILE", s(&f)), ("DYN_SYSTEM_PORT", "0")],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.ends_with("is a FIFO, not a regular file\n"), "{err}");
}

#[test]
fn symlink_swaps_are_followed() {
    // How Kubernetes updates a ConfigMap volume: ready -> ..data/ready, ..data -> ..v1; an update
    // writes ..v2 and renames a new ..data symlink over the old one.
    let t = Tmp::new("symlink");
    std::fs::create_dir(t.path("..v1")).unwrap();
    std::fs::write(t.path("..v1/ready"), "notready\n").unwrap();
    std::os::unix::fs::symlink("..v1", t.path("..data")).unwrap();
    std::os::unix::fs::symlink("..data/ready", t.path("ready")).unwrap();
    let h = watching(
        &t.path("ready"),
        &[("DYN_SYSTEM_STARTING_HEALTH_STATUS", "ready")],
    );
    assert_eq!(h.get("/health").status, 503);
    std::fs::create_dir(t.path("..v2")).unwrap();
    std::fs::write(t.path("..v2/ready"), "ready\ngenerate=ready\n").unwrap();
    std::os::unix::fs::symlink("..v2", t.path("..data_tmp")).unwrap();
    std::fs::rename(t.path("..data_tmp"), t.path("..data")).unwrap();
    until_status(&h, 200);
    until_endpoints(&h, "{\"generate\":\"ready\"}");
}

#[test]
fn the_safety_poll_catches_what_inotify_does_not_announce() {
    // A hard link appears with IN_CREATE only (no close): healthd waits for a close that never
    // comes, and the slow safety poll picks the file up.
    let t = Tmp::new("hardlink");
    let f = t.path("ready");
    let h = watching(&f, &[]);
    std::fs::create_dir(t.path("elsewhere")).unwrap();
    std::fs::write(t.path("elsewhere/ready"), "ready\n").unwrap();
    std::fs::hard_link(t.path("elsewhere/ready"), &f).unwrap();
    until_status(&h, 200);
}

#[test]
fn sighup_rereads_the_file_now() {
    let t = Tmp::new("sighup");
    let f = t.path("ready");
    std::fs::write(&f, "ready\n").unwrap();
    let h = watching(&f, &[]);
    assert_eq!(h.get("/health").status, 200);
    h.signal(libc::SIGUSR2);
    until_status(&h, 503);
    h.signal(libc::SIGHUP);
    until_status(&h, 200);
    h.wait_log(&format!("healthd: SIGHUP: re-reading {}\n", s(&f)));
}

#[test]
fn sighup_without_a_file_is_a_warning() {
    let h = Healthd::start(&[], &[]);
    h.signal(libc::SIGHUP);
    h.wait_log("healthd: warning: SIGHUP ignored: no readiness file is configured\n");
    assert_eq!(h.get("/health").status, 503);
}

#[test]
fn signal_storms_are_harmless_and_signals_set_not_toggle() {
    let h = Healthd::start(&[("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[a, b]")], &[]);
    // Mixed storm: the kernel keeps one pending bit per signal, so the order of a USR1 and a USR2
    // sent back to back is not kept; the server must survive and keep answering.
    for i in 0..500 {
        h.signal(if i % 2 == 0 {
            libc::SIGUSR2
        } else {
            libc::SIGUSR1
        });
    }
    assert!(matches!(h.get("/health").status, 200 | 503));
    // A storm of one signal always ends in its state (never toggled an even number of times).
    for _ in 0..301 {
        h.signal(libc::SIGUSR1);
    }
    poll("ready after a SIGUSR1 storm", || {
        h.get("/health").status == 200 || {
            h.signal(libc::SIGUSR1);
            false
        }
    });
    until_endpoints(&h, "{\"a\":\"ready\",\"b\":\"ready\"}");
    for _ in 0..301 {
        h.signal(libc::SIGUSR2);
    }
    until_status(&h, 503);
    until_endpoints(&h, "{\"a\":\"notready\",\"b\":\"notready\"}");
    assert_eq!(h.get("/live").status, 503);
}

#[test]
fn drain_answers_not_ready_for_the_grace_period_then_exits_0() {
    let mut h = Healthd::start(
        &[
            ("DYN_SYSTEM_STARTING_HEALTH_STATUS", "ready"),
            ("HEALTHD_SHUTDOWN_GRACE", "1500ms"),
        ],
        &[],
    );
    assert_eq!(h.get("/health").status, 200);
    let sent = Instant::now();
    h.signal(libc::SIGTERM);
    until_status(&h, 503);
    assert!(sent.elapsed() < Duration::from_millis(1500));
    let status = h
        .wait_exit(Duration::from_secs(10))
        .expect("exits after the grace");
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0));
    assert!(took >= Duration::from_millis(1500), "exited after {took:?}");
}

#[test]
fn set_without_a_file_exits_2() {
    let (code, out, err) = run(&[], &["set", "ready"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(
        err,
        "healthd: error: set needs a readiness file: set HEALTHD_READY_FILE or pass --ready-file PATH (the same file healthd serve watches)\n"
    );
}

#[test]
fn set_usage_errors_exit_2() {
    let t = Tmp::new("setusage");
    let f = t.path("ready");
    let env = [("HEALTHD_READY_FILE", s(&f))];
    let cases: &[(&[&str], &str)] = &[
        (
            &["set", "yes"],
            "healthd: error: set: \"yes\" is not a state: expected ready or notready\n",
        ),
        (
            &["set", "a", "ready", "b"],
            "healthd: error: set: 3 arguments; usage: healthd set ready|notready, or healthd set NAME ready|notready [NAME ready|notready ...]\n",
        ),
        (
            &["set", "a b", "ready"],
            "healthd: error: set: endpoint \"a b\": names use letters, digits, '_', '-' and '.' (at most 128)\n",
        ),
    ];
    for (args, want) in cases {
        let (code, _, err) = run(&env, args);
        assert_eq!((code, err.as_str()), (2, *want), "{args:?}");
    }
    assert!(!f.exists(), "nothing written on a usage error");
}

#[test]
fn set_edits_the_file_the_server_watches() {
    let t = Tmp::new("set");
    let f = t.path("run/ready");
    let h = watching(
        &f,
        &[("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[generate]")],
    );
    let env = [("HEALTHD_READY_FILE", s(&f))];
    assert_eq!(run(&env, &["set", "generate", "ready"]).0, 0);
    until_status(&h, 200);
    assert_eq!(run(&env, &["set", "notready"]).0, 0);
    assert_eq!(
        run(
            &[],
            &[
                "set",
                "--ready-file",
                s(&f),
                "x",
                "ready",
                "generate",
                "notready"
            ]
        )
        .0,
        0
    );
    until_status(&h, 503);
    until_endpoints(&h, "{\"generate\":\"notready\",\"x\":\"ready\"}");
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "notready\nx=ready\ngenerate=notready\n"
    );
    // The same bytes written again still count: a signal changed the state in between.
    h.signal(libc::SIGUSR1);
    until_status(&h, 200);
    assert_eq!(run(&env, &["set", "generate", "notready"]).0, 0);
    until_status(&h, 503);
    // Only the readiness file and the lock file remain: no temporary files left behind.
    let mut names: Vec<_> = std::fs::read_dir(t.path("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".ready.lock", "ready"]);
}

#[test]
fn concurrent_sets_lose_no_update() {
    let t = Tmp::new("race");
    let f = t.path("ready");
    let n = 24;
    let children: Vec<_> = (0..n)
        .map(|i| {
            command(
                &[("HEALTHD_READY_FILE", s(&f))],
                &["set", &format!("ep{i}"), "ready"],
            )
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&f).unwrap();
    for i in 0..n {
        assert!(
            text.lines().any(|l| l == format!("ep{i}=ready")),
            "ep{i} lost:\n{text}"
        );
    }
    assert_eq!(text.lines().count(), n);
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn probe_exit_codes_live_notready_closed_and_usage() {
    let h = Healthd::start(&[("DYN_SYSTEM_STARTING_HEALTH_STATUS", "ready")], &[]);
    let port = h.port().to_string();
    let env = [("DYN_SYSTEM_PORT", port.as_str())];
    assert_eq!(
        run(&env, &["probe"]),
        (
            0,
            format!("healthy: 200 http://127.0.0.1:{port}/health\n"),
            String::new()
        )
    );
    assert_eq!(
        run(&[], &["probe", &format!("http://127.0.0.1:{port}/live")]).1,
        format!("healthy: 200 http://127.0.0.1:{port}/live\n")
    );
    assert_eq!(run(&env, &["probe", "/nope"]).0, 1, "404 is not healthy");
    h.signal(libc::SIGUSR2);
    until_status(&h, 503);
    assert_eq!(
        run(&env, &["probe"]),
        (
            1,
            format!("unhealthy: 503 http://127.0.0.1:{port}/health\n"),
            String::new()
        )
    );
    let closed = closed_port().to_string();
    assert_eq!(
        run(&[("DYN_SYSTEM_PORT", &closed)], &["probe"]),
        (
            1,
            format!("unhealthy: connection refused http://127.0.0.1:{closed}/health\n"),
            String::new()
        )
    );
    let (code, out, err) = run(&[], &["probe", "http://example.com/health"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.starts_with("healthd: error: \"http://example.com/health\": the host must be an IP address or localhost"), "{err}");
    assert_eq!(run(&[], &["probe", "--timeout", "soon"]).0, 2);
    assert_eq!(run(&[("DYN_SYSTEM_PORT", "0")], &["probe"]).0, 2);
}

#[test]
fn probe_times_out_on_a_silent_server() {
    // Accepted by the kernel's backlog, never answered.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health", silent.local_addr().unwrap());
    let started = Instant::now();
    let (code, out, _) = run(&[], &["probe", &url, "--timeout", "300ms"]);
    assert_eq!(
        (code, out),
        (1, format!("unhealthy: timed out after 300ms {url}\n"))
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn wait_returns_once_ready_or_times_out() {
    let h = Healthd::start(&[], &[]);
    let url = format!("http://{}/health", h.addr);
    let (code, out, _) = run(&[], &["wait", &url, "--timeout", "300ms"]);
    assert_eq!(
        (code, out),
        (
            1,
            format!("timed out after 300ms; last: unhealthy: 503 {url}\n")
        )
    );
    let waiter = command(&[], &["wait", &url, "--timeout", "20s"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    h.signal(libc::SIGUSR1);
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("healthy: 200 {url}\n")
    );
    let closed = format!("http://127.0.0.1:{}/health", closed_port());
    assert_eq!(run(&[], &["wait", &closed, "--timeout", "200ms"]).0, 1);
}

#[test]
fn status_shows_status_endpoints_and_uptime() {
    let h = Healthd::start(
        &[("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[generate, b]")],
        &[],
    );
    let url = format!("http://{}/health", h.addr);
    let (code, out, _) = run(&[], &["status", &url]);
    assert_eq!(code, 1);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(format!("status:    notready (503 from {url})").as_str())
    );
    assert_eq!(lines.next(), Some("process:   notready"));
    assert_eq!(lines.next(), Some("draining:  no"));
    assert!(lines.next().unwrap().starts_with("uptime:    "), "{out}");
    assert_eq!(
        lines.collect::<Vec<_>>(),
        ["endpoints:", "  b         notready", "  generate  notready"]
    );
    h.signal(libc::SIGUSR1);
    until_status(&h, 200);
    let (code, out, _) = run(&[], &["status", &url]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!(
            "status:    ready (200 from {url})\nprocess:   ready\ndraining:  no\n"
        )),
        "{out}"
    );
    h.signal(libc::SIGTERM);
    until_status(&h, 503);
    let (code, out, _) = run(&[], &["status", &url]);
    assert_eq!(code, 1);
    assert!(out.contains("\ndraining:  yes (shutting down)\n"), "{out}");
    let closed = format!("http://127.0.0.1:{}/health", closed_port());
    assert_eq!(
        run(&[], &["status", &closed]),
        (
            1,
            format!("unreachable: connection refused {closed}\n"),
            String::new()
        )
    );
}

#[test]
fn readiness_file_is_polled_when_inotify_is_unavailable() {
    // In a user namespace of its own whose inotify instance limit is 0 (a per-namespace limit
    // since Linux 5.11), inotify_init1 fails with EMFILE as on a host that ran out of instances;
    // the host's own limit is untouched.
    let t = Tmp::new("no-inotify");
    let f = t.path("ready");
    let mut cmd = std::process::Command::new("/usr/bin/unshare");
    cmd.env_clear()
        .env("DYN_SYSTEM_PORT", "0")
        .env("DYN_SYSTEM_HOST", "127.0.0.1")
        .env("HEALTHD_READY_FILE", s(&f))
        .args([
            "--user",
            "--map-root-user",
            "/bin/sh",
            "-c",
            "echo 0 > /proc/sys/user/max_inotify_instances && exec \"$0\"",
            common::BIN,
        ]);
    let h = Healthd::spawn(cmd);
    h.wait_log(
        "healthd: warning: inotify unavailable (Too many open files (os error 24)); checking",
    );
    assert_eq!(h.get("/health").status, 503, "no file yet");
    replace(&f, "ready\n");
    until_status(&h, 200);
    std::fs::write(&f, "notready\n").unwrap();
    until_status(&h, 503);
    std::fs::remove_file(&f).unwrap();
    replace(&f, "# comment only: ready\n");
    until_status(&h, 200);
}
