//! Liveness that means something: the heartbeat watchdog, shallow liveness, the sd_notify
//! socket, and `healthd run` (exit codes, signal forwarding, NOTIFY_SOCKET for the child).

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

use common::{Healthd, poll, run};

const PATH: (&str, &str) = ("PATH", "/usr/local/bin:/usr/bin:/bin");

/// A fresh directory for sockets and marker files.
fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("healthd-live-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn send(sock: &str, msg: &[u8]) {
    let s = UnixDatagram::unbound().unwrap();
    match sock.strip_prefix('@') {
        Some(name) => {
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            s.send_to_addr(msg, &addr).unwrap();
        }
        None => {
            s.send_to(msg, sock).unwrap();
        }
    }
}

/// healthd with a notify socket and a heartbeat watchdog of `timeout`, plus `extra` settings;
/// returns it and the socket path to send `WATCHDOG=1` to.
fn watched(name: &str, timeout: &str, extra: &[(&str, &str)]) -> (Healthd, String) {
    let sock = tmpdir(name).join("notify").to_string_lossy().into_owned();
    let mut env = vec![
        ("HEALTHD_NOTIFY_SOCKET", sock.as_str()),
        ("HEALTHD_HEARTBEAT_TIMEOUT", timeout),
    ];
    env.extend_from_slice(extra);
    (Healthd::start(&env, &[]), sock)
}

#[test]
fn heartbeat_expires_and_recovers_over_the_notify_socket() {
    let (h, sock) = watched("hb", "300ms", &[("HEALTHD_LIVE", "shallow")]);
    // Shallow: live while the heartbeat is fresh, though not ready.
    assert_eq!(h.get("/live").status, 200);
    assert_eq!(h.get("/health").status, 503);
    poll("/live to fail once the heartbeat is stale", || {
        h.get("/live").status == 503
    });
    h.wait_log("no heartbeat for");
    let m = h.get("/metrics").body;
    assert!(m.lines().any(|l| l == "healthd_live 0"), "{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with("healthd_heartbeat_age_seconds ")),
        "{m}"
    );

    send(&sock, b"WATCHDOG=1");
    poll("/live to recover after WATCHDOG=1", || {
        h.get("/live").status == 200
    });
    h.wait_log("notify: WATCHDOG=1: heartbeat resumed; now notready");
}

#[test]
fn dynamo_live_mode_follows_health_and_liveness() {
    let (h, sock) = watched(
        "dyn",
        "200ms",
        &[("DYN_SYSTEM_STARTING_HEALTH_STATUS", "ready")],
    );
    poll("stale heartbeat fails /live and /health", || {
        h.get("/live").status == 503 && h.get("/health").status == 503
    });
    let body = h.get("/live").body;
    assert!(body.starts_with(r#"{"status":"notready","#), "{body}");
    send(&sock, b"WATCHDOG=1");
    poll("recovery", || h.get("/live").status == 200);
}

#[test]
fn notify_messages_set_state_and_bad_ones_are_ignored() {
    let name = format!("@healthd-test-{}", std::process::id());
    let h = Healthd::start(
        &[
            ("HEALTHD_NOTIFY_SOCKET", &name),
            ("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[generate]"),
        ],
        &[],
    );
    send(&name, b"READY=1\nSTATUS=loading weights\nMAINPID=1");
    h.wait_log("notify: READY=1; now notready");
    h.wait_log("notify: STATUS=loading weights");
    assert_eq!(
        h.get("/health").status,
        503,
        "the required endpoint is still notready"
    );
    send(&name, b"HEALTHD_ENDPOINT=generate=ready");
    poll("ready once generate is", || h.get("/health").status == 200);
    send(&name, b"\xff\xfe garbage");
    send(&name, b"HEALTHD_ENDPOINT=generate=maybe\nNOPE");
    h.wait_log("notify socket: ignoring datagram is not UTF-8 text");
    h.wait_log("notify socket: ignoring \"HEALTHD_ENDPOINT=generate=maybe\"");
    h.wait_log("notify socket: ignoring \"NOPE\": expected KEY=VALUE");
    assert_eq!(h.get("/health").status, 200, "bad datagrams change nothing");
    send(&name, b"STOPPING=1");
    poll("STOPPING=1 drains", || h.get("/health").status == 503);
}

#[test]
fn run_exits_with_the_childs_code() {
    // (shell command, expected healthd exit code)
    let cases: &[(&str, i32)] = &[
        ("exit 0", 0),
        ("exit 1", 1),
        ("exit 2", 2),
        ("exit 127", 127),
        ("exit 255", 255),
        ("kill -TERM $$", 128 + libc::SIGTERM),
        ("kill -KILL $$", 128 + libc::SIGKILL),
        ("kill -SEGV $$", 128 + libc::SIGSEGV),
    ];
    for (script, want) in cases {
        let env = [
            PATH,
            ("DYN_SYSTEM_PORT", "0"),
            ("DYN_SYSTEM_HOST", "127.0.0.1"),
            ("HEALTHD_SHUTDOWN_GRACE", "0"),
        ];
        let (code, _, stderr) = run(&env, &["run", "--", "sh", "-c", script]);
        assert_eq!(code, *want, "{script}: {stderr}");
        assert!(
            stderr.contains(&format!("exited with code {want}")),
            "{script}: {stderr}"
        );
    }
}

#[test]
fn run_reports_a_missing_command() {
    let env = [
        PATH,
        ("DYN_SYSTEM_PORT", "0"),
        ("DYN_SYSTEM_HOST", "127.0.0.1"),
    ];
    let (code, _, stderr) = run(&env, &["run", "--", "/nonexistent/app"]);
    assert_eq!(code, 127, "{stderr}");
    assert!(
        stderr.contains("healthd: error: cannot run \"/nonexistent/app\""),
        "{stderr}"
    );
    let (code, _, stderr) = run(&env, &["run", "--", "healthd-no-such-program"]);
    assert_eq!(code, 127, "{stderr}");
    assert!(
        stderr.contains(
            "healthd: error: cannot run \"healthd-no-such-program\": No such file or directory"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = run(&env, &["run"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn run_forwards_sigterm_and_drains_while_the_child_stops() {
    let dir = tmpdir("fwd");
    let marker = dir.join("trapped");
    let script = format!(
        "trap 'exit 42' TERM; touch {}; while :; do sleep 0.05; done",
        marker.display()
    );
    let mut h = Healthd::start(
        &[
            PATH,
            ("HEALTHD_SHUTDOWN_GRACE", "0"),
            ("DYN_SYSTEM_STARTING_HEALTH_STATUS", "ready"),
        ],
        &["run", "--", "sh", "-c", &script],
    );
    poll("the child to install its trap", || marker.exists());
    assert_eq!(h.get("/health").status, 200);
    h.signal(libc::SIGTERM);
    let status = h
        .wait_exit(Duration::from_secs(10))
        .expect("healthd exits after the child");
    assert_eq!(status.code(), Some(42));
    let log = h.stderr();
    assert!(log.contains("SIGTERM: forwarded to child"), "{log}");
    assert!(log.contains("exited with code 42"), "{log}");
}

#[test]
fn run_child_exit_means_not_live_and_a_second_signal_exits_with_its_code() {
    let mut h = Healthd::start(
        &[
            PATH,
            ("HEALTHD_SHUTDOWN_GRACE", "1h"),
            ("DYN_SYSTEM_STARTING_HEALTH_STATUS", "ready"),
        ],
        &["run", "--live=shallow", "--", "sh", "-c", "exit 3"],
    );
    h.wait_log("exited with code 3");
    poll("/live fails once the child exited", || {
        h.get("/live").status == 503
    });
    assert_eq!(h.get("/health").status, 503);
    h.signal(libc::SIGTERM);
    let status = h.wait_exit(Duration::from_secs(5)).expect("exits at once");
    assert_eq!(status.code(), Some(3));
}

#[test]
fn run_reports_a_command_that_cannot_be_executed() {
    let dir = std::env::temp_dir().join(format!("healthd-noexec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("not-executable");
    std::fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
    for port in ["0", "-1"] {
        let env = [
            PATH,
            ("DYN_SYSTEM_PORT", port),
            ("DYN_SYSTEM_HOST", "127.0.0.1"),
        ];
        let (code, _, stderr) = run(&env, &["run", "--", file.to_str().unwrap()]);
        assert_eq!(code, 126, "port {port}: {stderr}");
        assert!(
            stderr.contains("Permission denied"),
            "port {port}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_passes_the_environment_and_replaces_the_readiness_file_variable() {
    let dir = std::env::temp_dir().join(format!("healthd-runenv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ready = dir.join("ready");
    let env = [
        PATH,
        ("DYN_SYSTEM_PORT", "0"),
        ("DYN_SYSTEM_HOST", "127.0.0.1"),
        ("HEALTHD_SHUTDOWN_GRACE", "0"),
        ("APP_SETTING", "kept as is"),
        ("HEALTHD_READY_FILE", ready.to_str().unwrap()),
    ];
    let script =
        "echo \"$APP_SETTING\"; env | grep -c '^HEALTHD_READY_FILE='; echo \"$HEALTHD_READY_FILE\"";
    let (code, stdout, stderr) = run(&env, &["run", "--", "sh", "-c", script]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, format!("kept as is\n1\n{}\n", ready.display()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_gives_the_child_default_signal_state() {
    // healthd ignores SIGPIPE and blocks its handled signals; the child must see neither, with the
    // server on (healthd supervises) and off (healthd execs the command).
    for port in ["0", "-1"] {
        let env = [
            PATH,
            ("DYN_SYSTEM_PORT", port),
            ("DYN_SYSTEM_HOST", "127.0.0.1"),
            ("HEALTHD_SHUTDOWN_GRACE", "0"),
        ];
        let (code, stdout, stderr) = run(&env, &["run", "--", "cat", "/proc/self/status"]);
        assert_eq!(code, 0, "port {port}: {stderr}");
        if port == "-1" {
            assert!(
                stderr.contains("server disabled (DYN_SYSTEM_PORT=-1 is negative); running [\"cat\", \"/proc/self/status\"] in healthd's place"),
                "{stderr}"
            );
        }
        let mask = |name: &str| {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} in {stdout}"));
            u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
        };
        assert_eq!(mask("SigBlk:"), 0, "port {port}: blocked signals");
        let pipe = 1u64 << (libc::SIGPIPE - 1);
        assert_eq!(mask("SigIgn:") & pipe, 0, "port {port}: SIGPIPE ignored");
    }
}

#[test]
fn run_exports_notify_socket_to_the_child() {
    let script = "import os, socket, time\n\
                  a = os.environ['NOTIFY_SOCKET']\n\
                  a = '\\0' + a[1:] if a.startswith('@') else a\n\
                  s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                  s.sendto(b'READY=1', a)\n\
                  parent = os.getppid()\n\
                  while os.getppid() == parent:\n\
                  \x20   time.sleep(0.05)\n";
    let h = Healthd::start(&[PATH], &["run", "--", "python3", "-c", script]);
    poll("the child's READY=1 to make healthd ready", || {
        h.get("/health").status == 200
    });
    h.wait_log("notify: READY=1; now ready");
}

#[test]
fn a_stale_heartbeat_fails_liveness_in_every_dialect() {
    let (h, sock) = watched(
        "dialects",
        "200ms",
        &[("DYN_SYSTEM_STARTING_HEALTH_STATUS", "ready")],
    );
    poll("the heartbeat to go stale", || {
        h.get("/v2/health/live").status == 400
    });
    let r = h.get("/v2/health/live");
    assert!(
        r.body
            .starts_with(r#"{"error":"Server not live: no heartbeat for "#),
        "{}",
        r.body
    );
    assert_eq!(h.get("/v2/health/ready").status, 400);
    assert_eq!(h.get("/v1.0/healthz/outbound").status, 500);
    assert_eq!(h.get("/v1.0/healthz").status, 500);
    let r = h.get("/livez?verbose");
    assert_eq!(r.status, 500);
    assert!(
        r.body.contains("[-]heartbeat failed: reason withheld"),
        "{}",
        r.body
    );
    assert_eq!(h.get("/readyz").status, 500);

    send(&sock, b"WATCHDOG=1");
    poll("recovery", || h.get("/v2/health/live").status == 200);
    assert_eq!(h.get("/v1.0/healthz/outbound").status, 204);
    let r = h.get("/livez?verbose");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("[+]heartbeat ok"), "{}", r.body);
}

#[test]
fn touching_the_readiness_file_is_a_heartbeat() {
    let dir = tmpdir("touch");
    let file = dir.join("ready").to_string_lossy().into_owned();
    std::fs::write(&file, "ready\n").unwrap();
    let env = [
        ("HEALTHD_READY_FILE", file.as_str()),
        ("HEALTHD_HEARTBEAT_TIMEOUT", "300ms"),
    ];
    let h = Healthd::start(&env, &[]);
    assert_eq!(h.get("/health").status, 200);
    poll("the heartbeat to go stale", || h.get("/live").status == 503);
    assert_eq!(h.get("/health").status, 503, "not live means not ready");

    let (code, _, stderr) = run(&env, &["set", "--heartbeat"]);
    assert_eq!(code, 0, "{stderr}");
    poll("set --heartbeat to recover liveness", || {
        h.get("/live").status == 200
    });
    h.wait_log("touched: heartbeat resumed");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "ready\n",
        "content unchanged"
    );

    let missing = dir.join("nope").to_string_lossy().into_owned();
    let (code, _, stderr) = run(&[("HEALTHD_READY_FILE", &missing)], &["set", "--heartbeat"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("set --heartbeat: cannot touch the readiness file"),
        "{stderr}"
    );
    assert!(
        !std::path::Path::new(&missing).exists(),
        "a heartbeat never creates the file"
    );
}

/// A tiny HTTP server answering every request with the status in `status` (0 = close at once).
fn fake_app(status: std::sync::Arc<std::sync::atomic::AtomicU16>) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let code = status.load(std::sync::atomic::Ordering::SeqCst);
            let _ = write!(
                c,
                "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    port
}

#[test]
fn ready_url_ties_readiness_to_the_apps_own_health() {
    use std::sync::atomic::{AtomicU16, Ordering};
    let status = std::sync::Arc::new(AtomicU16::new(503));
    let port = fake_app(status.clone());
    let url = format!("http://127.0.0.1:{port}/healthz");
    let h = Healthd::start(&[], &["--ready-url", &url]);
    assert_eq!(h.get("/health").status, 503);
    status.store(200, Ordering::SeqCst);
    poll("ready once the app answers 200", || {
        h.get("/health").status == 200
    });
    h.wait_log(&format!("url: {url} answered 200; now ready"));
    status.store(500, Ordering::SeqCst);
    poll("not ready once the app answers 500", || {
        h.get("/health").status == 503
    });

    let (code, _, stderr) = run(
        &[("DYN_SYSTEM_PORT", "0")],
        &["--ready-url", "localhost:1/x"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("healthd: error: --ready-url=\"localhost:1/x\": "),
        "{stderr}"
    );
}
