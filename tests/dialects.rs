//! The other dialects as their clients see them: KServe v2 / Triton, Dapr, Kubernetes
//! `/livez`/`/readyz` and the Dynamo frontend role, pinned to exact status, headers and bytes in
//! every state (not ready, ready, draining), plus route-set selection and collisions.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Healthd, Response, parse, poll, run};

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// Asserts status, exact content type and length (none at all on 204), `cache-control: no-store`
/// and exact body; then that HEAD answers the same head without a body and that POST is 405 with
/// `Allow`, both `no-store` too.
fn exact(h: &Healthd, path: &str, status: u16, content_type: &str, body: &str) {
    let r = h.get(path);
    check(&r, path, status, content_type, body);
    let head = h.req("HEAD", path);
    assert_eq!(head.status, status, "HEAD {path}");
    assert_eq!(head.body, "", "HEAD {path}");
    assert_eq!(
        head.header("content-length"),
        r.header("content-length"),
        "HEAD {path}"
    );
    assert_eq!(
        head.header("content-type"),
        r.header("content-type"),
        "HEAD {path}"
    );
    assert_eq!(
        head.header("cache-control"),
        Some("no-store"),
        "HEAD {path}"
    );
    let post = h.req("POST", path);
    assert_eq!(
        (
            post.status,
            post.header("allow"),
            post.header("cache-control"),
            post.body.as_str()
        ),
        (405, Some("GET, HEAD"), Some("no-store"), ""),
        "POST {path}"
    );
}

fn check(r: &Response, what: &str, status: u16, content_type: &str, body: &str) {
    assert_eq!(r.status, status, "{what}: {r:?}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    if status == 204 {
        assert_eq!(r.header("content-type"), None, "{what}");
        assert_eq!(r.header("content-length"), None, "{what}");
    } else {
        assert_eq!(r.header("content-type"), Some(content_type), "{what}");
        assert_eq!(
            r.header("content-length"),
            Some(body.len().to_string().as_str()),
            "{what}"
        );
    }
    assert_eq!(r.body, body, "{what}");
}

/// Starts healthd with `generate` required, not ready, and a long grace so draining can be seen.
fn start(extra: &[(&str, &str)]) -> Healthd {
    let mut env = vec![
        ("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[generate]"),
        ("HEALTHD_SHUTDOWN_GRACE", "1h"),
    ];
    env.extend_from_slice(extra);
    Healthd::start(&env, &[])
}

fn make_ready(h: &Healthd) {
    h.signal(libc::SIGUSR1);
    poll("ready after SIGUSR1", || h.get("/health").status == 200);
}

fn drain(h: &Healthd) {
    h.signal(libc::SIGTERM);
    h.wait_log("draining");
}

#[test]
fn kserve_v2_in_every_state() {
    let h = start(&[]);
    let meta = format!(
        r#"{{"name":"healthd","version":"{}","extensions":[]}}"#,
        env!("CARGO_PKG_VERSION")
    );
    let unknown = r#"{"error":"Request for unknown model: 'nope' is not found"}"#;
    let model_not_ready = r#"{"error":"Model 'generate' is not ready"}"#;

    exact(&h, "/v2/health/live", 200, JSON, r#"{"live":true}"#);
    exact(
        &h,
        "/v2/health/ready",
        400,
        JSON,
        r#"{"error":"Server not ready"}"#,
    );
    exact(&h, "/v2/models/generate/ready", 400, JSON, model_not_ready);
    exact(
        &h,
        "/v2/models/generate/versions/1/ready",
        400,
        JSON,
        model_not_ready,
    );
    exact(&h, "/v2/models/nope/ready", 404, JSON, unknown);
    exact(&h, "/v2", 200, JSON, &meta);

    make_ready(&h);
    exact(&h, "/v2/health/live", 200, JSON, r#"{"live":true}"#);
    exact(&h, "/v2/health/ready", 200, JSON, r#"{"ready":true}"#);
    let ready = r#"{"name":"generate","ready":true}"#;
    exact(&h, "/v2/models/generate/ready", 200, JSON, ready);
    exact(&h, "/v2/models/generate/versions/7/ready", 200, JSON, ready);
    exact(&h, "/v2/models/nope/ready", 404, JSON, unknown);
    exact(&h, "/v2", 200, JSON, &meta);

    drain(&h);
    let exiting = r#"{"error":"Server exiting"}"#;
    exact(&h, "/v2/health/live", 503, JSON, exiting);
    exact(&h, "/v2/health/ready", 503, JSON, exiting);
    exact(&h, "/v2/models/generate/ready", 400, JSON, model_not_ready);
    exact(&h, "/v2", 200, JSON, &meta);

    for other in [
        "/v2/",
        "/v2/models/generate",
        "/v2/health",
        "/v2/models//ready",
    ] {
        check(&h.get(other), other, 404, TEXT, "Route not found");
    }
}

#[test]
fn dapr_in_every_state() {
    let h = start(&[]);
    let not_ready = r#"{"errorCode":"ERR_HEALTH_NOT_READY","message":"dapr is not ready"}"#;
    exact(&h, "/v1.0/healthz", 500, JSON, not_ready);
    exact(&h, "/v1.0/healthz/outbound", 204, "", "");

    make_ready(&h);
    exact(&h, "/v1.0/healthz", 204, "", "");
    exact(&h, "/v1.0/healthz/outbound", 204, "", "");

    drain(&h);
    exact(&h, "/v1.0/healthz", 500, JSON, not_ready);
    exact(
        &h,
        "/v1.0/healthz/outbound",
        500,
        JSON,
        r#"{"errorCode":"ERR_OUTBOUND_HEALTH_NOT_READY","message":"dapr outbound is not ready"}"#,
    );
    // A Dapr API token is ignored; the query string too.
    let r = parse(&h.raw(
        b"GET /v1.0/healthz?appid=x HTTP/1.1\r\ndapr-api-token: secret\r\nConnection: close\r\n\r\n",
    ));
    check(&r, "token", 500, JSON, not_ready);
}

#[test]
fn kubernetes_livez_readyz_with_required_endpoints() {
    let h = start(&[]);
    let failed = "[-]generate failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n";
    exact(&h, "/readyz", 500, TEXT, failed);
    exact(&h, "/readyz?verbose", 500, TEXT, failed);
    exact(&h, "/readyz?exclude=generate", 200, TEXT, "ok");
    exact(
        &h,
        "/readyz?verbose&exclude=generate&exclude=nope",
        200,
        TEXT,
        "[+]generate excluded: ok\n[+]shutdown ok\nwarn: some health checks cannot be excluded: no matches for \"nope\"\nreadyz check passed\n",
    );
    exact(
        &h,
        "/readyz/generate",
        500,
        TEXT,
        "internal server error: endpoint generate not ready\n",
    );
    exact(&h, "/readyz/shutdown", 200, TEXT, "ok");
    exact(&h, "/livez", 200, TEXT, "ok");
    exact(
        &h,
        "/livez?verbose=true",
        200,
        TEXT,
        "[+]ping ok\nlivez check passed\n",
    );
    exact(&h, "/livez/ping", 200, TEXT, "ok");

    make_ready(&h);
    exact(&h, "/readyz", 200, TEXT, "ok");
    exact(
        &h,
        "/readyz?verbose",
        200,
        TEXT,
        "[+]generate ok\n[+]shutdown ok\nreadyz check passed\n",
    );
    exact(&h, "/readyz/generate", 200, TEXT, "ok");
    exact(&h, "/livez", 200, TEXT, "ok");

    drain(&h);
    exact(
        &h,
        "/readyz",
        500,
        TEXT,
        "[-]generate failed: reason withheld\n[-]shutdown failed: reason withheld\nreadyz check failed\n",
    );
    exact(
        &h,
        "/readyz/shutdown",
        500,
        TEXT,
        "internal server error: process is shutting down\n",
    );
    exact(&h, "/livez", 200, TEXT, "ok");
    exact(
        &h,
        "/livez?verbose",
        200,
        TEXT,
        "[+]ping ok\nlivez check passed\n",
    );

    for other in ["/readyz/", "/readyz/nope", "/livez/nope", "/readyzz"] {
        check(&h.get(other), other, 404, TEXT, "Route not found");
    }
}

#[test]
fn kubernetes_readyz_follows_the_process_status_without_required_endpoints() {
    let h = Healthd::start(&[], &[]);
    let failed = "[-]process failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n";
    exact(&h, "/readyz", 500, TEXT, failed);
    exact(
        &h,
        "/readyz/process",
        500,
        TEXT,
        "internal server error: process not ready\n",
    );
    make_ready(&h);
    exact(
        &h,
        "/readyz?verbose",
        200,
        TEXT,
        "[+]process ok\n[+]shutdown ok\nreadyz check passed\n",
    );
    h.signal(libc::SIGUSR2);
    poll("not ready after SIGUSR2", || h.get("/readyz").status == 500);
    exact(&h, "/readyz", 500, TEXT, failed);
}

/// FNV-1a, 64 bit: how the frontend role derives an instance id from a `dyn://` name.
fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[test]
fn frontend_role_in_every_state() {
    let h = Healthd::start(
        &[
            ("HEALTHD_ROLE", "frontend"),
            ("DYN_HTTP_PORT", "0"),
            ("DYN_SYSTEM_PORT", "-1"),
            (
                "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS",
                "[generate, clear_kv_blocks]",
            ),
            ("HEALTHD_NAMESPACE", "ns"),
            ("HEALTHD_SHUTDOWN_GRACE", "1h"),
        ],
        &[],
    );
    let unhealthy = r#"{"instances":[],"message":"No endpoints available","status":"unhealthy"}"#;
    let live = r#"{"status":"live","message":"Service is live"}"#;
    exact(&h, "/health", 200, JSON, unhealthy);
    exact(&h, "/live", 200, JSON, live);
    for gone in ["/ready", "/metadata", "/engine/x"] {
        check(&h.get(gone), gone, 404, TEXT, "Route not found");
    }

    h.signal(libc::SIGUSR1);
    poll("healthy after SIGUSR1", || {
        h.get("/health").body.contains("healthy\"}") && !h.get("/health").body.contains("unhealthy")
    });
    let (c, g) = (
        fnv1a("dyn://ns.backend.clear_kv_blocks"),
        fnv1a("dyn://ns.backend.generate"),
    );
    let healthy = format!(
        concat!(
            r#"{{"endpoints":["dyn://ns.backend.clear_kv_blocks","dyn://ns.backend.generate"],"instances":["#,
            r#"{{"component":"backend","endpoint":"clear_kv_blocks","instance_id":{c},"namespace":"ns","transport":{{"nats_tcp":"ns_backend.clear_kv_blocks-{c:x}"}}}},"#,
            r#"{{"component":"backend","endpoint":"generate","instance_id":{g},"namespace":"ns","transport":{{"nats_tcp":"ns_backend.generate-{g:x}"}}}}"#,
            r#"],"status":"healthy"}}"#
        ),
        c = c,
        g = g
    );
    exact(&h, "/health", 200, JSON, &healthy);
    exact(&h, "/live", 200, JSON, live);
    // The dialect sets render the same state in the frontend role.
    exact(&h, "/v2/health/ready", 200, JSON, r#"{"ready":true}"#);

    drain(&h);
    exact(&h, "/health", 200, JSON, unhealthy);
    exact(
        &h,
        "/live",
        503,
        JSON,
        r#"{"status":"shutting_down","message":"Service is shutting down"}"#,
    );
    assert!(h.stderr().contains("role frontend"), "{}", h.stderr());
}

#[test]
fn frontend_role_custom_paths() {
    let h = Healthd::start(
        &[
            ("HEALTHD_ROLE", "frontend"),
            ("DYN_HTTP_PORT", "0"),
            ("DYN_HTTP_SVC_HEALTH_PATH", "/fe/health"),
            ("DYN_HTTP_SVC_LIVE_PATH", "/fe/live"),
        ],
        &["--component", "worker"],
    );
    assert_eq!(h.get("/fe/health").status, 200);
    assert_eq!(h.get("/fe/live").status, 200);
    for gone in ["/health", "/live"] {
        check(&h.get(gone), gone, 404, TEXT, "Route not found");
    }
}

#[test]
fn route_sets_can_be_chosen() {
    let h = Healthd::start(&[("HEALTHD_DIALECTS", "none")], &[]);
    for gone in ["/v2/health/live", "/v1.0/healthz", "/livez", "/readyz"] {
        check(&h.get(gone), gone, 404, TEXT, "Route not found");
    }
    assert_eq!(h.get("/health").status, 503, "Dynamo routes stay");
    assert!(
        h.stderr().contains("role worker; dialects: dynamo\n"),
        "{}",
        h.stderr()
    );
    drop(h);

    let h = Healthd::start(&[], &["--dialects", "dapr, k8s"]);
    check(
        &h.get("/v2/health/live"),
        "kserve off",
        404,
        TEXT,
        "Route not found",
    );
    assert_eq!(h.get("/v1.0/healthz/outbound").status, 204);
    assert_eq!(h.get("/livez").status, 200);
    assert!(
        h.stderr().contains("dialects: dynamo, dapr, k8s\n"),
        "{}",
        h.stderr()
    );
}

#[test]
fn a_colliding_set_is_left_out_by_default_and_refused_when_chosen() {
    let h = Healthd::start(&[("DYN_SYSTEM_LIVE_PATH", "/livez")], &[]);
    h.wait_log("warning: k8s routes left out: DYN_SYSTEM_LIVE_PATH=/livez is one of their paths");
    let r = h.get("/livez");
    assert_eq!(r.status, 503);
    assert!(r.body.starts_with(r#"{"status":"notready""#), "{r:?}");
    check(
        &h.get("/readyz"),
        "k8s left out",
        404,
        TEXT,
        "Route not found",
    );
    assert_eq!(h.get("/v2/health/live").status, 200, "other sets stay");
    drop(h);

    for (env, args, want) in [
        (
            vec![
                ("DYN_SYSTEM_LIVE_PATH", "/livez"),
                ("HEALTHD_DIALECTS", "all"),
            ],
            vec![],
            "healthd: error: DYN_SYSTEM_LIVE_PATH=\"/livez\": collides with the k8s routes healthd serves; choose another path or leave k8s out of HEALTHD_DIALECTS\n",
        ),
        (
            vec![("HEALTHD_DIALECTS", "kserve")],
            vec!["--health-path", "/v2/health/ready"],
            "healthd: error: --health-path=\"/v2/health/ready\": collides with the kserve routes healthd serves; choose another path or leave kserve out of HEALTHD_DIALECTS\n",
        ),
        (
            vec![("HEALTHD_DIALECTS", "triton")],
            vec![],
            "healthd: error: HEALTHD_DIALECTS=\"triton\": expected all, none, or a comma-separated list of kserve, dapr, k8s\n",
        ),
        (
            vec![("HEALTHD_ROLE", "router")],
            vec![],
            "healthd: error: HEALTHD_ROLE=\"router\": expected worker or frontend\n",
        ),
        (
            vec![
                ("HEALTHD_ROLE", "frontend"),
                ("DYN_HTTP_SVC_HEALTH_PATH", "/metrics"),
            ],
            vec![],
            "healthd: error: DYN_HTTP_SVC_HEALTH_PATH=\"/metrics\": collides with the metrics route healthd serves; choose another path\n",
        ),
    ] {
        let mut full = vec![("DYN_SYSTEM_PORT", "0"), ("DYN_HTTP_PORT", "0")];
        full.extend(env);
        let (code, out, err) = run(&full, &args);
        assert_eq!((code, out.as_str(), err.as_str()), (2, "", want));
    }
}

#[test]
fn keep_alive_mixes_204_and_bodies() {
    let h = start(&[]);
    let mut s = TcpStream::connect(h.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /v1.0/healthz/outbound HTTP/1.1\r\n\r\nGET /v2/health/ready HTTP/1.1\r\n\r\nHEAD /v1.0/healthz/outbound HTTP/1.1\r\n\r\nGET /readyz/generate HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    // Every answer starts with a status line; a body without a trailing newline runs into it.
    let statuses: Vec<&str> = out.split("HTTP/1.1 ").skip(1).map(|a| &a[..3]).collect();
    assert_eq!(statuses, ["204", "400", "204", "500"], "{out}");
    assert!(
        out.ends_with("internal server error: endpoint generate not ready\n"),
        "{out}"
    );
}

#[test]
fn metrics_count_dialect_routes() {
    let h = start(&[]);
    h.get("/v2/health/ready");
    h.get("/v1.0/healthz/outbound");
    h.get("/readyz?verbose");
    let m = h.get("/metrics").body;
    for want in [
        "healthd_http_requests_total{route=\"kserve_ready\",code=\"400\"} 1",
        "healthd_http_requests_total{route=\"dapr_outbound\",code=\"204\"} 1",
        "healthd_http_requests_total{route=\"readyz\",code=\"500\"} 1",
    ] {
        assert!(m.lines().any(|l| l == want), "missing {want:?} in\n{m}");
    }
}
