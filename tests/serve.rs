//! `healthd serve` as users run it: the Dynamo routes, bodies, codes and headers, configuration
//! errors and exit codes, disabled servers, and the HTTP behaviour probers rely on.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Healthd, mask_uptime, parse, run};

const NOTREADY_EMPTY: &str =
    r#"{"status":"notready","uptime":{"secs":S,"nanos":N},"endpoints":{}}"#;
const READY_EMPTY: &str = r#"{"status":"ready","uptime":{"secs":S,"nanos":N},"endpoints":{}}"#;

#[test]
fn defaults_answer_503_notready_on_health_live_and_ready() {
    let h = Healthd::start(&[], &[]);
    for path in ["/health", "/live", "/ready", "/health?verbose=1"] {
        let r = h.get(path);
        assert_eq!(r.status, 503, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
        assert!(r.header("date").is_some_and(|d| d.ends_with(" GMT")));
        assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
        assert_eq!(mask_uptime(&r.body), NOTREADY_EMPTY, "{path}");
    }
}

#[test]
fn starting_ready_answers_200() {
    let h = Healthd::start(&[("DYN_SYSTEM_STARTING_HEALTH_STATUS", "ready")], &[]);
    let r = h.get("/health");
    assert_eq!(
        (r.status, mask_uptime(&r.body).as_str()),
        (200, READY_EMPTY)
    );
    let r = h.get("/live");
    assert_eq!(r.status, 200);
}

#[test]
fn documented_example_notready_with_required_endpoint() {
    let h = Healthd::start(
        &[("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[\"generate\"]")],
        &[],
    );
    let r = h.get("/health");
    assert_eq!(r.status, 503);
    assert_eq!(
        mask_uptime(&r.body),
        r#"{"status":"notready","uptime":{"secs":S,"nanos":N},"endpoints":{"generate":"notready"}}"#
    );
}

#[test]
fn documented_example_ready_after_sigusr1() {
    let h = Healthd::start(
        &[(
            "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS",
            "[generate, clear_kv_blocks, load_metrics]",
        )],
        &[],
    );
    h.signal(libc::SIGUSR1);
    common::poll("200 after SIGUSR1", || h.get("/health").status == 200);
    let r = h.get("/health");
    assert_eq!(
        mask_uptime(&r.body),
        r#"{"status":"ready","uptime":{"secs":S,"nanos":N},"endpoints":{"clear_kv_blocks":"ready","generate":"ready","load_metrics":"ready"}}"#
    );
    h.wait_log("signal: SIGUSR1; now ready");
}

#[test]
fn starting_ready_with_required_list_is_ready_at_once() {
    let h = Healthd::start(
        &[
            ("DYN_SYSTEM_STARTING_HEALTH_STATUS", "ready"),
            ("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[generate]"),
        ],
        &[],
    );
    let r = h.get("/health");
    assert_eq!(r.status, 200);
    assert_eq!(
        mask_uptime(&r.body),
        r#"{"status":"ready","uptime":{"secs":S,"nanos":N},"endpoints":{"generate":"ready"}}"#
    );
}

#[test]
fn custom_paths_replace_the_defaults() {
    let h = Healthd::start(
        &[
            ("DYN_SYSTEM_HEALTH_PATH", "/healthz"),
            ("DYN_SYSTEM_LIVE_PATH", "/alive"),
        ],
        &[],
    );
    assert_eq!(h.get("/healthz").status, 503);
    assert_eq!(h.get("/alive").status, 503);
    for gone in ["/health", "/live"] {
        let r = h.get(gone);
        assert_eq!(
            (r.status, r.body.as_str()),
            (404, "Route not found"),
            "{gone}"
        );
    }
}

#[test]
fn flags_override_variables() {
    let h = Healthd::start(
        &[("DYN_SYSTEM_HEALTH_PATH", "/from-env")],
        &[
            "serve",
            "--health-path",
            "/from-flag",
            "--starting-health-status=ready",
        ],
    );
    assert_eq!(h.get("/from-flag").status, 200);
    assert_eq!(h.get("/from-env").status, 404);
}

#[test]
fn not_found_method_not_allowed_and_head() {
    let h = Healthd::start(&[], &[]);
    let r = h.get("/nope");
    assert_eq!((r.status, r.body.as_str()), (404, "Route not found"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        h.get("/health/").status,
        404,
        "a trailing slash is another path"
    );
    assert_eq!(h.req("DELETE", "/nope").status, 404);

    for method in ["POST", "PUT", "OPTIONS", "DELETE", "PATCH"] {
        let r = h.req(method, "/health");
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.body, "");
    }

    let get = h.get("/live");
    let head = h.req("HEAD", "/live");
    assert_eq!(head.status, 503);
    assert_eq!(head.body, "");
    assert_eq!(head.header("content-length"), get.header("content-length"));
    assert_eq!(head.header("content-type"), Some("application/json"));
    assert_eq!(head.header("cache-control"), Some("no-store"));
}

#[test]
fn metrics_metadata_and_engine() {
    let h = Healthd::start(
        &[("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[generate]")],
        &[],
    );
    h.get("/health");
    let r = h.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let lines: Vec<&str> = r.body.lines().collect();
    for want in [
        "# HELP dynamo_component_uptime_seconds Total uptime of the DistributedRuntime in seconds",
        "# TYPE dynamo_component_uptime_seconds gauge",
        "healthd_ready 0",
        "healthd_endpoint_ready{endpoint=\"generate\"} 0",
        "healthd_http_requests_total{route=\"health\",code=\"503\"} 1",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{}", r.body);
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("dynamo_component_uptime_seconds "))
    );

    let r = h.get("/metadata");
    assert_eq!(
        (r.status, r.body.as_str()),
        (404, "Discovery metadata not available")
    );
    let r = h.get("/engine/flush");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.body,
        r#"{"error":"Route not found","message":"Route /engine/flush not found"}"#
    );
}

#[test]
fn keep_alive_pipelining_and_http10() {
    let h = Healthd::start(&[], &[]);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Three pipelined requests on one connection, the last one asking to close.
    s.write_all(b"GET /live HTTP/1.1\r\n\r\nHEAD /live HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(out.matches("HTTP/1.1 ").count(), 3, "{out}");
    let third = out.rfind("HTTP/1.1 404").expect("404 last");
    assert!(out[..third].matches("HTTP/1.1 503").count() == 2);
    assert!(out.ends_with("Route not found"));

    // HTTP/1.0 closes by default and gets an HTTP/1.1 answer.
    let r = parse(&h.raw(b"GET /health HTTP/1.0\r\n\r\n"));
    assert_eq!((r.status, r.header("connection")), (503, Some("close")));
}

#[test]
fn bad_requests_get_an_answer_and_a_close() {
    let h = Healthd::start(&[], &[]);
    for (input, status) in [
        (b"GET / HTTP/2.0\r\n\r\n".as_slice(), 505),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".as_slice(), 505),
        (b"\x00\x01\x02garbage\r\n\r\n".as_slice(), 400),
        (
            b"POST /health HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n".as_slice(),
            405,
        ),
    ] {
        let r = parse(&h.raw(input));
        assert_eq!(r.status, status, "{input:?}");
    }
    let big = [
        b"GET /health HTTP/1.1\r\nX: ".as_slice(),
        &vec![b'a'; 20_000],
        b"\r\n\r\n",
    ]
    .concat();
    assert_eq!(parse(&h.raw(&big)).status, 431);
    assert_eq!(h.get("/health").status, 503, "still serving");
}

#[test]
fn sigterm_drains_then_exits_zero() {
    let mut h = Healthd::start(
        &[
            ("DYN_SYSTEM_STARTING_HEALTH_STATUS", "ready"),
            ("HEALTHD_SHUTDOWN_GRACE", "300ms"),
        ],
        &[],
    );
    assert_eq!(h.get("/health").status, 200);
    h.signal(libc::SIGTERM);
    h.wait_log("draining");
    assert_eq!(h.get("/health").status, 503, "not ready while draining");
    let status = h
        .wait_exit(Duration::from_secs(5))
        .expect("exits after the grace period");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn second_sigterm_exits_at_once() {
    let mut h = Healthd::start(&[("HEALTHD_SHUTDOWN_GRACE", "1h")], &[]);
    h.signal(libc::SIGTERM);
    h.wait_log("draining");
    h.signal(libc::SIGINT);
    let status = h
        .wait_exit(Duration::from_secs(5))
        .expect("second signal exits at once");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn startup_logs_name_the_address_and_configuration() {
    let h = Healthd::start(&[("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[a, b]")], &[]);
    let log = h.stderr();
    assert!(
        log.contains(&format!("healthd: listening on 127.0.0.1:{}\n", h.port())),
        "{log}"
    );
    assert!(log.contains("required endpoints [a, b]"), "{log}");
    assert!(log.lines().all(|l| l.starts_with("healthd: ")), "{log}");
}

#[test]
fn bad_configuration_exits_2_naming_variable_value_and_accepted() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "DYN_SYSTEM_PORT",
            "abc",
            "expected an integer from -1 to 65535",
        ),
        (
            "DYN_SYSTEM_PORT",
            "8081.0",
            "expected an integer from -1 to 65535",
        ),
        (
            "DYN_SYSTEM_PORT",
            "70000",
            "expected an integer from -1 to 65535",
        ),
        ("DYN_SYSTEM_HOST", "example.com", "expected an IP address"),
        ("DYN_SYSTEM_ENABLED", "yes", "expected true or false"),
        (
            "DYN_SYSTEM_STARTING_HEALTH_STATUS",
            "healthy",
            "expected ready or notready",
        ),
        (
            "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS",
            "generate",
            "expected a list in brackets",
        ),
        (
            "DYN_SYSTEM_HEALTH_PATH",
            "health",
            "expected a path starting with '/'",
        ),
        (
            "DYN_SYSTEM_LIVE_PATH",
            "/metrics",
            "collides with the metrics route",
        ),
        ("DYN_SYSTEM_HEALTH_PATH", "/live", "must differ"),
        ("HEALTHD_SHUTDOWN_GRACE", "soon", "expected a duration"),
    ];
    for (var, value, expected) in cases {
        let (code, stdout, stderr) = run(&[("DYN_SYSTEM_PORT", "0"), (var, value)], &[]);
        assert_eq!(code, 2, "{var}={value}: {stderr}");
        assert_eq!(stdout, "");
        let want = format!("healthd: error: {var}=\"{value}\": ");
        assert!(
            stderr.starts_with(&want) && stderr.contains(expected),
            "{var}={value}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("listening"), "nothing is bound");
    }
    let (code, _, stderr) = run(&[], &["--port", "nope"]);
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("healthd: error: --port=\"nope\": "),
        "{stderr}"
    );
    let (code, _, stderr) = run(&[], &["--frobnicate"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown argument \"--frobnicate\""),
        "{stderr}"
    );
}

#[test]
fn bind_failure_exits_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, _, stderr) = run(
        &[("DYN_SYSTEM_HOST", "127.0.0.1"), ("DYN_SYSTEM_PORT", &port)],
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn disabled_server_logs_and_exits_0() {
    for (var, value) in [("DYN_SYSTEM_ENABLED", "false"), ("DYN_SYSTEM_PORT", "-1")] {
        let (code, _, stderr) = run(&[(var, value)], &[]);
        assert_eq!(code, 0, "{var}={value}: {stderr}");
        assert!(
            stderr.contains("server disabled") && !stderr.contains("listening"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1);
    }
}

#[test]
fn empty_values_count_as_unset_and_typos_warn() {
    let h = Healthd::start(
        &[
            ("DYN_SYSTEM_STARTING_HEALTH_STATUS", ""),
            ("DYN_SYSTEM_PROT", "9"),
        ],
        &[],
    );
    assert_eq!(h.get("/health").status, 503);
    assert!(
        h.stderr()
            .contains("healthd: warning: ignoring DYN_SYSTEM_PROT: unknown variable; did you mean DYN_SYSTEM_PORT?"),
        "{}",
        h.stderr()
    );
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(&[], &["--help"]);
    assert_eq!(code, 0);
    for var in [
        "DYN_SYSTEM_PORT",
        "DYN_SYSTEM_HOST",
        "DYN_SYSTEM_ENABLED",
        "DYN_SYSTEM_STARTING_HEALTH_STATUS",
        "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS",
        "DYN_SYSTEM_HEALTH_PATH",
        "DYN_SYSTEM_LIVE_PATH",
        "HEALTHD_SHUTDOWN_GRACE",
    ] {
        assert!(out.contains(var), "{var} missing from --help");
    }
    let (code, out, _) = run(&[], &["--version"]);
    assert_eq!(
        (code, out.trim()),
        (0, concat!("healthd ", env!("CARGO_PKG_VERSION")))
    );
}

#[test]
fn every_help_variable_is_in_the_readme() {
    let (_, help, _) = run(&[], &["--help"]);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for word in help.split_whitespace() {
        let word = word.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        if (word.starts_with("DYN_") || word.starts_with("HEALTHD_") || word.starts_with("ETCD_"))
            && !readme.contains(word)
        {
            panic!("{word} is in --help but not in README.md");
        }
    }
}

#[test]
fn closed_standard_descriptors_are_reopened_on_dev_null() {
    use std::os::unix::process::CommandExt;
    let mut cmd = common::command(
        &[("DYN_SYSTEM_PORT", "0"), ("DYN_SYSTEM_HOST", "127.0.0.1")],
        &[],
    );
    // SAFETY: close(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(0);
            libc::close(1);
            Ok(())
        });
    }
    let h = Healthd::spawn(cmd);
    let pid = h.child.id();
    for fd in [0, 1] {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        assert_eq!(target.to_str(), Some("/dev/null"), "fd {fd}");
    }
    let r = h.get("/health");
    assert_eq!(r.status, 503);
    assert_eq!(mask_uptime(&r.body), NOTREADY_EMPTY);
}
