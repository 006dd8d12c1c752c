//! No health answer may be stored by a cache (issue 15): every response healthd sends carries
//! exactly one `cache-control: no-store`, whatever the dialect, the state, the status class, the
//! method (GET, HEAD, a refused POST) or the role, and so do the codec's own error answers
//! (400, 431, 505). Also pins the exact header lines of one answer of each shape.

mod common;

use common::{Healthd, Response, parse, poll};

/// Asserts exactly one `cache-control` header, `no-store`.
fn no_store(r: &Response, what: &str) {
    let values: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(values, ["no-store"], "{what}: {r:?}");
}

/// GET and HEAD on `path` answer `status` with `no-store`; POST is 405 (404 on a path no route
/// knows) with `no-store`.
fn every_method(h: &Healthd, path: &str, status: u16) {
    let get = h.get(path);
    for (method, r) in [("GET", get.clone()), ("HEAD", h.req("HEAD", path))] {
        assert_eq!(r.status, status, "{method} {path}: {r:?}");
        no_store(&r, &format!("{method} {path}"));
    }
    let r = h.req("POST", path);
    let unknown = get.status == 404 && get.body == "Route not found";
    let refused = if unknown { 404 } else { 405 };
    assert_eq!(r.status, refused, "POST {path}");
    no_store(&r, &format!("POST {path}"));
}

/// The header lines of one raw answer, the date value masked.
fn head_lines(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap();
    head.split("\r\n")
        .map(|l| match l.strip_prefix("date: ") {
            Some(d) => {
                assert!(d.ends_with(" GMT"), "{l}");
                "date: D".to_string()
            }
            None => l.to_string(),
        })
        .collect()
}

#[test]
fn every_worker_route_in_every_state_is_no_store() {
    let h = Healthd::start(
        &[
            ("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[generate]"),
            ("HEALTHD_SHUTDOWN_GRACE", "1h"),
        ],
        &[],
    );
    let always = [
        ("/metrics", 200),
        ("/metadata", 404),
        ("/engine/x", 404),
        ("/nope", 404),
        ("/v2", 200),
        ("/v2/models/nope/ready", 404),
        ("/livez", 200),
        ("/livez/ping", 200),
    ];
    let not_ready = [
        ("/health", 503),
        ("/live", 503),
        ("/ready", 503),
        ("/v2/health/live", 200),
        ("/v2/health/ready", 400),
        ("/v2/models/generate/ready", 400),
        ("/v2/models/generate/versions/1/ready", 400),
        ("/v1.0/healthz", 500),
        ("/v1.0/healthz/outbound", 204),
        ("/readyz", 500),
        ("/readyz?verbose", 500),
    ];
    for (path, status) in always.iter().chain(&not_ready) {
        every_method(&h, path, *status);
    }

    h.signal(libc::SIGUSR1);
    poll("ready after SIGUSR1", || h.get("/health").status == 200);
    for (path, status) in [
        ("/health", 200),
        ("/live", 200),
        ("/ready", 200),
        ("/v2/health/ready", 200),
        ("/v2/models/generate/ready", 200),
        ("/v1.0/healthz", 204),
        ("/readyz", 200),
        ("/readyz?verbose", 200),
    ] {
        every_method(&h, path, status);
    }
    for (path, status) in always {
        every_method(&h, path, status);
    }

    h.signal(libc::SIGTERM);
    h.wait_log("draining");
    for (path, status) in [
        ("/health", 503),
        ("/v2/health/live", 503),
        ("/v2/health/ready", 503),
        ("/v1.0/healthz/outbound", 500),
        ("/readyz", 500),
        ("/livez", 200),
        ("/metrics", 200),
    ] {
        every_method(&h, path, status);
    }
}

#[test]
fn frontend_role_is_no_store() {
    let h = Healthd::start(
        &[
            ("HEALTHD_ROLE", "frontend"),
            ("DYN_HTTP_PORT", "0"),
            ("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", "[generate]"),
        ],
        &[],
    );
    // The frontend's health answers 200 with or without instances (Dynamo's frontend).
    let routes = [
        ("/health", 200),
        ("/live", 200),
        ("/metrics", 200),
        ("/v2/health/ready", 400),
        ("/nope", 404),
        ("/metadata", 404),
    ];
    for (path, status) in routes {
        every_method(&h, path, status);
    }
    h.signal(libc::SIGUSR1);
    poll("an instance after SIGUSR1", || {
        h.get("/health").body.contains("\"instances\":[{")
    });
    for (path, status) in routes {
        let status = if path == "/v2/health/ready" {
            200
        } else {
            status
        };
        every_method(&h, path, status);
    }
}

#[test]
fn codec_error_answers_are_no_store() {
    let h = Healthd::start(&[], &[]);
    let big = [
        b"GET /health HTTP/1.1\r\nX: ".as_slice(),
        &vec![b'a'; 20_000],
        b"\r\n\r\n",
    ]
    .concat();
    let many = [
        b"GET /health HTTP/1.1\r\n".as_slice(),
        &b"A: b\r\n".repeat(100),
        b"\r\n",
    ]
    .concat();
    for (input, status) in [
        (b"\x00\x01\x02garbage\r\n\r\n".as_slice(), 400),
        (
            b"GET /health HTTP/1.1\r\nContent-Length: x\r\n\r\n".as_slice(),
            400,
        ),
        (&big, 431),
        (&many, 431),
        (b"GET / HTTP/2.0\r\n\r\n".as_slice(), 505),
        (
            b"POST /health HTTP/1.1\r\nContent-Length: 1000000000000\r\n\r\n".as_slice(),
            405,
        ),
        (b"GET /health HTTP/1.0\r\n\r\n".as_slice(), 503),
    ] {
        let r = parse(&h.raw(input));
        assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(input));
        no_store(&r, &format!("{status}"));
    }
}

#[test]
fn header_lines_are_exact() {
    let h = Healthd::start(&[("DYN_SYSTEM_STARTING_HEALTH_STATUS", "ready")], &[]);
    let get = h.get("/v2/health/ready");
    assert_eq!(get.body, r#"{"ready":true}"#);
    let close = "connection: close";
    for (request, want) in [
        (
            "GET /v2/health/ready HTTP/1.1\r\nConnection: close\r\n\r\n",
            vec![
                "HTTP/1.1 200 OK",
                "content-type: application/json",
                "content-length: 14",
                "date: D",
                "cache-control: no-store",
                close,
            ],
        ),
        (
            "HEAD /v2/health/ready HTTP/1.1\r\nConnection: close\r\n\r\n",
            vec![
                "HTTP/1.1 200 OK",
                "content-type: application/json",
                "content-length: 14",
                "date: D",
                "cache-control: no-store",
                close,
            ],
        ),
        (
            "GET /v1.0/healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
            vec![
                "HTTP/1.1 204 No Content",
                "date: D",
                "cache-control: no-store",
                close,
            ],
        ),
        (
            "DELETE /livez HTTP/1.1\r\nConnection: close\r\n\r\n",
            vec![
                "HTTP/1.1 405 Method Not Allowed",
                "content-type: text/plain; charset=utf-8",
                "content-length: 0",
                "date: D",
                "cache-control: no-store",
                "allow: GET, HEAD",
                close,
            ],
        ),
        (
            "GET /nope HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /x HTTP/1.0\r\n\r\n",
            vec![
                "HTTP/1.1 404 Not Found",
                "content-type: text/plain; charset=utf-8",
                "content-length: 15",
                "date: D",
                "cache-control: no-store",
                "connection: keep-alive",
            ],
        ),
        (
            "GET / HTTP/2.0\r\n\r\n",
            vec![
                "HTTP/1.1 505 HTTP Version Not Supported",
                "content-type: text/plain; charset=utf-8",
                "content-length: 26",
                "date: D",
                "cache-control: no-store",
                close,
            ],
        ),
    ] {
        assert_eq!(head_lines(&h.raw(request.as_bytes())), want, "{request:?}");
    }
}
