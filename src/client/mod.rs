//! `healthd probe`, `wait` and `status`: a tiny blocking HTTP/1.1 client over one `TcpStream`, for
//! images with no shell and no curl (`HEALTHCHECK CMD ["/healthd","probe"]`, kubelet exec probes,
//! entrypoint scripts, `kubectl exec ... healthd status`).
//!
//! IP literals only (and `localhost` = 127.0.0.1): a scratch image has no resolver. Every request is
//! one `GET` on a fresh connection with `Connection: close`, bounded by one deadline covering
//! connect, write and read. Target parsing is pure and tested with tables.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::config::{Config, parse_host};
use crate::json::{self, Json};

/// Default time limits, as documented in `--help` and the README.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between the attempts of `wait`.
const WAIT_INTERVAL: Duration = Duration::from_millis(100);
/// Responses are small; anything past this is not read.
const MAX_RESPONSE: usize = 1024 * 1024;

/// Where to send the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.addr, self.path)
    }
}

/// The target of a client command (pure): `None` = the configured port and health path on
/// 127.0.0.1 (or on the configured host when it is a specific address); `/PATH` = that path there;
/// `http://IP[:PORT][/PATH]` = exactly that (a URL without a path gets the health path).
pub fn target(arg: Option<&str>, config: &Config) -> Result<Target, String> {
    let local = || -> Result<SocketAddr, String> {
        let addr = config.listen.as_ref().map_err(|why| {
            format!(
                "the server is disabled ({why}); pass a URL such as http://127.0.0.1:8081/health"
            )
        })?;
        if addr.port() == 0 {
            return Err(format!(
                "{}=0 means any free port; pass the port the server logged, e.g. http://127.0.0.1:PORT{}",
                config.origin_of("DYN_SYSTEM_PORT"),
                config.health_path
            ));
        }
        let ip = if addr.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            addr.ip()
        };
        Ok(SocketAddr::new(ip, addr.port()))
    };
    // The frontend role serves its own health path (DYN_HTTP_SVC_HEALTH_PATH).
    let health_path = match config.role {
        crate::config::Role::Worker => &config.health_path,
        crate::config::Role::Frontend => &config.http_health_path,
    };
    match arg {
        None => Ok(Target {
            addr: local()?,
            path: health_path.clone(),
        }),
        Some(p) if p.starts_with('/') => Ok(Target {
            addr: local()?,
            path: check_path(p)?.to_string(),
        }),
        Some(url) => parse_url(url, health_path),
    }
}

fn check_path(p: &str) -> Result<&str, String> {
    if p.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(p)
    } else {
        Err(format!("{p:?}: a path has no spaces or control characters"))
    }
}

fn parse_url(url: &str, default_path: &str) -> Result<Target, String> {
    const EXPECTED: &str = "expected a path such as /health or a URL such as http://127.0.0.1:8081/health (IP literals only)";
    let bad = |why: &str| format!("{url:?}: {why}; {EXPECTED}");
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// is supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, default_path),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        (&authority[..h.len() + 2], after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let ip = parse_host(host).map_err(|_| bad("the host must be an IP address or localhost"))?;
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("the port must be 1..65535"))?,
    };
    Ok(Target {
        addr: SocketAddr::new(ip, port),
        path: check_path(path)?.to_string(),
    })
}

/// An answer: the status code and the body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One `GET` within `timeout`; the error is a short phrase ("connection refused", "timed out").
pub fn get(target: &Target, timeout: Duration) -> Result<Reply, String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("timed out after {}", show(timeout)))
    };
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("timed out after {}", show(timeout))
        }
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        _ => e.to_string(),
    };
    let mut s = TcpStream::connect_timeout(&target.addr, left()?).map_err(io)?;
    s.set_write_timeout(Some(left()?)).map_err(io)?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: healthd/{}\r\nConnection: close\r\n\r\n",
        target.path,
        target.addr,
        env!("CARGO_PKG_VERSION")
    );
    s.write_all(req.as_bytes()).map_err(io)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        s.set_read_timeout(Some(left()?)).map_err(io)?;
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(reply) = complete(&buf, n == 0)? {
            return Ok(reply);
        }
        if n == 0 {
            return Err("the connection closed before a complete response".to_string());
        }
        if buf.len() > MAX_RESPONSE {
            return Err("the response is too large".to_string());
        }
    }
}

/// A complete response in `buf`, if there is one yet (pure).
fn complete(buf: &[u8], eof: bool) -> Result<Option<Reply>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP response ({e})")),
    };
    let status = resp.code.unwrap_or(0);
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok()
        });
    let body = &buf[head_len..];
    match length {
        Some(len) if body.len() >= len => Ok(Some(Reply {
            status,
            body: body[..len].to_vec(),
        })),
        None if eof => Ok(Some(Reply {
            status,
            body: body.to_vec(),
        })),
        _ => Ok(None),
    }
}

/// `probe`: exit 0 on 200..399, else 1; prints one line.
pub fn probe(target: &Target, timeout: Duration) -> bool {
    let (ok, line) = attempt(target, timeout);
    println!("{line}");
    ok
}

fn attempt(target: &Target, timeout: Duration) -> (bool, String) {
    match get(target, timeout) {
        Ok(r) if (200..400).contains(&r.status) => {
            (true, format!("healthy: {} {target}", r.status))
        }
        Ok(r) => (false, format!("unhealthy: {} {target}", r.status)),
        Err(e) => (false, format!("unhealthy: {e} {target}")),
    }
}

/// `wait`: probes every 100 ms until success (true) or `timeout` (false); prints one line.
pub fn wait(target: &Target, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let (ok, line) = attempt(target, left.clamp(Duration::from_millis(1), PROBE_TIMEOUT));
        if ok {
            println!("{line}");
            return true;
        }
        if Instant::now() + WAIT_INTERVAL >= deadline {
            println!("timed out after {}; last: {line}", show(timeout));
            return false;
        }
        std::thread::sleep(WAIT_INTERVAL);
    }
}

/// `status`: a human-readable view of the health body; true when ready.
pub fn status(target: &Target, timeout: Duration) -> bool {
    let reply = match get(target, timeout) {
        Ok(r) => r,
        Err(e) => {
            println!("unreachable: {e} {target}");
            return false;
        }
    };
    // Best effort: the process status and draining come from healthd's own /metrics.
    let metrics_target = Target {
        addr: target.addr,
        path: "/metrics".to_string(),
    };
    let metrics = get(&metrics_target, timeout)
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned());
    match render_status(&reply, target, metrics.as_deref()) {
        Ok((ready, text)) => {
            print!("{text}");
            ready
        }
        Err(e) => {
            println!("unexpected answer from {target}: {} ({e})", reply.status);
            false
        }
    }
}

/// The health body (and healthd's metrics, when available) as `status` shows them (pure).
fn render_status(
    reply: &Reply,
    target: &Target,
    metrics: Option<&str>,
) -> Result<(bool, String), String> {
    let body = json::parse(&reply.body).map_err(|e| e.to_string())?;
    let status = body
        .get("status")
        .and_then(Json::as_str)
        .ok_or("no \"status\" string")?;
    if let Some(Json::Array(instances)) = body.get("instances") {
        return render_instances(status, reply, target, &body, instances);
    }
    let uptime = match body.get("uptime").and_then(|u| u.get("secs")) {
        Some(Json::Number(n)) => n.parse::<u64>().ok(),
        _ => None,
    }
    .ok_or("no whole \"uptime\".\"secs\"")?;
    let mut endpoints = Vec::new();
    match body.get("endpoints") {
        None => {}
        Some(Json::Object(members)) => {
            for (i, (name, state)) in members.iter().enumerate() {
                let state = state
                    .as_str()
                    .ok_or("an endpoint state that is not a string")?;
                // A repeated name counts once, with its last state (as a map keeps it).
                if !members[i + 1..].iter().any(|(n, _)| n == name) {
                    endpoints.push((name.as_str(), state));
                }
            }
        }
        Some(_) => return Err("\"endpoints\" is not an object".into()),
    }
    endpoints.sort_unstable();
    let mut out = format!("status:    {status} ({} from {target})\n", reply.status);
    let gauge = |name: &str| {
        metrics?.lines().find_map(|l| {
            let v = l.strip_prefix(name)?.strip_prefix(' ')?;
            Some(v.trim() == "1")
        })
    };
    if let (Some(process), Some(draining)) =
        (gauge("healthd_process_ready"), gauge("healthd_draining"))
    {
        let process = if process { "ready" } else { "notready" };
        let draining = if draining {
            "yes (shutting down)"
        } else {
            "no"
        };
        out.push_str(&format!("process:   {process}\ndraining:  {draining}\n"));
    }
    let none = if endpoints.is_empty() { " none" } else { "" };
    out.push_str(&format!(
        "uptime:    {}\nendpoints:{none}\n",
        show_secs(uptime)
    ));
    let width = endpoints
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    for (name, state) in &endpoints {
        out.push_str(&format!("  {name:<width$}  {state}\n"));
    }
    Ok((status == "ready" && reply.status == 200, out))
}

/// A frontend's `/health`: its status, its message when it has one, and a table of instances.
fn render_instances(
    status: &str,
    reply: &Reply,
    target: &Target,
    body: &Json,
    instances: &[Json],
) -> Result<(bool, String), String> {
    let mut out = format!("status:    {status} ({} from {target})\n", reply.status);
    if let Some(m) = body.get("message").and_then(Json::as_str) {
        out.push_str(&format!("message:   {m}\n"));
    }
    let mut rows = Vec::new();
    for i in instances {
        let field = |name| i.get(name).and_then(Json::as_str).unwrap_or("?");
        let id = match i.get("instance_id") {
            Some(Json::Number(n)) => n.parse::<u64>().map_or(n.clone(), |id| format!("{id:x}")),
            _ => "?".into(),
        };
        let name = format!(
            "dyn://{}.{}.{}",
            field("namespace"),
            field("component"),
            field("endpoint")
        );
        rows.push((name, id));
    }
    out.push_str(&format!("instances: {}\n", rows.len()));
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, id) in &rows {
        out.push_str(&format!("  {name:<width$}  {id}\n"));
    }
    Ok((status == "healthy" && reply.status == 200, out))
}

fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn show_secs(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        86400.. => format!("{}d {}h {}m", s / 86400, s % 86400 / 3600, s % 3600 / 60),
        _ => format!("{}h {}m {}s", s / 3600, s % 3600 / 60, s % 60),
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // tables of cases read best inline
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::config::load(&env, &[]).unwrap().config
    }

    fn check(arg: Option<&str>, env: &[(&str, &str)]) -> Result<String, String> {
        target(arg, &config(env)).map(|t| t.to_string())
    }

    #[test]
    fn targets() {
        let ok: &[(Option<&str>, &[(&str, &str)], &str)] = &[
            (None, &[], "http://127.0.0.1:8081/health"),
            (
                None,
                &[("DYN_SYSTEM_PORT", "9000")],
                "http://127.0.0.1:9000/health",
            ),
            (
                None,
                &[("DYN_SYSTEM_HOST", "::")],
                "http://127.0.0.1:8081/health",
            ),
            (
                None,
                &[("DYN_SYSTEM_HOST", "::1")],
                "http://[::1]:8081/health",
            ),
            (
                None,
                &[("DYN_SYSTEM_HEALTH_PATH", "/hz")],
                "http://127.0.0.1:8081/hz",
            ),
            (Some("/live"), &[], "http://127.0.0.1:8081/live"),
            (
                Some("http://10.0.0.1:99/x?y=1"),
                &[],
                "http://10.0.0.1:99/x?y=1",
            ),
            (
                Some("http://localhost:99"),
                &[],
                "http://127.0.0.1:99/health",
            ),
            (Some("http://[::1]:7/a"), &[], "http://[::1]:7/a"),
            (Some("http://127.0.0.1/"), &[], "http://127.0.0.1:80/"),
        ];
        for (arg, env, want) in ok {
            assert_eq!(check(*arg, env).as_deref(), Ok(*want), "{arg:?} {env:?}");
        }
        let bad: &[(Option<&str>, &[(&str, &str)], &str)] = &[
            (Some("https://127.0.0.1/"), &[], "only http://"),
            (Some("http://example.com/"), &[], "the host must be an IP"),
            (
                Some("http://127.0.0.1:0/"),
                &[],
                "the port must be 1..65535",
            ),
            (
                Some("http://127.0.0.1:x/"),
                &[],
                "the port must be 1..65535",
            ),
            (Some("health"), &[], "only http://"),
            (
                None,
                &[("DYN_SYSTEM_PORT", "0")],
                "DYN_SYSTEM_PORT=0 means any free port",
            ),
            (None, &[("DYN_SYSTEM_PORT", "-1")], "the server is disabled"),
        ];
        for (arg, env, want) in bad {
            let e = check(*arg, env).unwrap_err();
            assert!(e.contains(want), "{arg:?} {env:?}: {e}");
        }
    }

    #[test]
    fn responses() {
        let r = complete(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        assert!(
            complete(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nok", false)
                .unwrap()
                .is_none()
        );
        assert!(complete(b"HTTP/1.1 503 Se", false).unwrap().is_none());
        let r = complete(b"HTTP/1.0 503 X\r\n\r\nbody", true)
            .unwrap()
            .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (503, &b"body"[..]));
        assert!(complete(b"garbage\r\n\r\n", false).is_err());
    }

    #[test]
    fn status_view_of_a_frontend() {
        let t = target(None, &config(&[("HEALTHD_ROLE", "frontend")])).unwrap();
        assert_eq!(t.to_string(), "http://127.0.0.1:8000/health");
        let reply = Reply {
            status: 200,
            body: br#"{"endpoints":["dyn://dynamo.backend.generate"],"instances":[{"component":"backend","endpoint":"generate","instance_id":7587888160958627365,"namespace":"dynamo","transport":{}},{"component":"backend","endpoint":"generate","instance_id":16,"namespace":"dynamo","transport":{}}],"status":"healthy"}"#.to_vec(),
        };
        assert_eq!(
            render_status(&reply, &t, None).unwrap(),
            (
                true,
                "status:    healthy (200 from http://127.0.0.1:8000/health)\ninstances: 2\n  dyn://dynamo.backend.generate  694d98147d54be25\n  dyn://dynamo.backend.generate  10\n".to_string()
            )
        );
        let reply = Reply {
            status: 200,
            body: br#"{"instances":[],"message":"No endpoints available","status":"unhealthy"}"#
                .to_vec(),
        };
        assert_eq!(
            render_status(&reply, &t, None).unwrap(),
            (
                false,
                "status:    unhealthy (200 from http://127.0.0.1:8000/health)\nmessage:   No endpoints available\ninstances: 0\n".to_string()
            )
        );
    }

    #[test]
    fn status_view() {
        let t = target(None, &config(&[])).unwrap();
        let reply = Reply {
            status: 503,
            body: br#"{"status":"notready","uptime":{"secs":3725,"nanos":1},"endpoints":{"generate":"notready","b":"ready"}}"#.to_vec(),
        };
        assert_eq!(
            render_status(&reply, &t, None).unwrap(),
            (
                false,
                "status:    notready (503 from http://127.0.0.1:8081/health)\nuptime:    1h 2m 5s\nendpoints:\n  b         ready\n  generate  notready\n"
                    .to_string()
            )
        );
        let reply = Reply {
            status: 200,
            body: br#"{"status":"ready","uptime":{"secs":5,"nanos":1},"endpoints":{}}"#.to_vec(),
        };
        let metrics =
            "# HELP healthd_process_ready x\nhealthd_process_ready 1\nhealthd_draining 0\n";
        let (ready, text) = render_status(&reply, &t, Some(metrics)).unwrap();
        assert!(ready);
        assert_eq!(
            text,
            "status:    ready (200 from http://127.0.0.1:8081/health)\nprocess:   ready\ndraining:  no\nuptime:    5s\nendpoints: none\n"
        );
        assert!(
            render_status(
                &Reply {
                    status: 404,
                    body: b"Route not found".to_vec()
                },
                &t,
                None
            )
            .is_err()
        );
    }

    #[test]
    fn status_view_of_odd_bodies() {
        let t = target(None, &config(&[])).unwrap();
        let view = |body: &str| {
            render_status(
                &Reply {
                    status: 200,
                    body: body.as_bytes().to_vec(),
                },
                &t,
                None,
            )
        };
        // No endpoints member, extra members, a repeated endpoint (its last state counts).
        let (ready, text) = view(
            r#"{"uptime":{"secs":61},"status":"ready","extra":[1,{"x":null}],"endpoints":{"a":"notready","b":"ready","a":"ready"}}"#,
        )
        .unwrap();
        assert!(ready);
        assert_eq!(
            text,
            "status:    ready (200 from http://127.0.0.1:8081/health)\nuptime:    1m 1s\nendpoints:\n  a  ready\n  b  ready\n"
        );
        let (_, text) = view(r#"{"status":"notready","uptime":{"secs":0}}"#).unwrap();
        assert!(text.ends_with("uptime:    0s\nendpoints: none\n"), "{text}");
        for (body, error) in [
            (r#"{"uptime":{"secs":1}}"#, r#"no "status" string"#),
            (
                r#"{"status":1,"uptime":{"secs":1}}"#,
                r#"no "status" string"#,
            ),
            (
                r#"{"status":"ready","uptime":{"secs":1.5}}"#,
                r#"no whole "uptime"."secs""#,
            ),
            (
                r#"{"status":"ready","uptime":{"secs":-1}}"#,
                r#"no whole "uptime"."secs""#,
            ),
            (r#"{"status":"ready"}"#, r#"no whole "uptime"."secs""#),
            (
                r#"{"status":"ready","uptime":{"secs":1},"endpoints":[]}"#,
                r#""endpoints" is not an object"#,
            ),
            (
                r#"{"status":"ready","uptime":{"secs":1},"endpoints":{"a":true}}"#,
                "an endpoint state that is not a string",
            ),
            (
                r#"{"status":"ready""#,
                "not JSON: expected ',' or '}' at byte 17",
            ),
        ] {
            assert_eq!(view(body), Err(error.to_string()), "{body}");
        }
    }
}
