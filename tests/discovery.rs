//! Issue 13, "Bad input and faults" that need no real etcd: every discovery setting wrong in the
//! ways users type it (exit 2, one line), and the real binary against a fake etcd JSON gateway
//! (`common/fake_etcd.rs`) that answers well or fails in every way the spec lists: garbage, 500s,
//! cut watch streams, 100 MB bodies, silence, resets, lost leases, keys that do not parse. Local
//! health never depends on etcd; the worker's keys and the frontend's list follow the interface
//! (`notes/etcd-interface.md`). Every wait is a poll with a deadline; short TTLs (2 s).

mod common;
#[path = "common/fake_etcd.rs"]
mod fake_etcd;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Healthd, fds, mask_uptime, poll, rss_kib, run};
use fake_etcd::{FakeEtcd, Fault, LEASE_IDS, b64};
use serde_json::Value;

const TTL: &str = "2";
const LIVE: &str = r#"{"status":"live","message":"Service is live"}"#;
const NONE: &str = r#"{"instances":[],"message":"No endpoints available","status":"unhealthy"}"#;
const UNAVAILABLE: &str = r#"{"instances":[],"message":"Discovery unavailable since "#;
/// The harness's normal request deadline: every local probe must answer within it.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A fresh directory under the system temp dir, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let dir = std::env::temp_dir().join(format!("healthd-disc-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Tmp(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("ready")
    }

    fn file_str(&self) -> String {
        self.file().to_str().unwrap().to_string()
    }

    /// Replaces the readiness file atomically.
    fn write(&self, text: &str) {
        let tmp = self.0.join(".ready.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.file()).unwrap();
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The worker key of the interface.
fn worker_key(ns: &str, comp: &str, ep: &str, lease: i64) -> String {
    format!("v1/instances/{ns}/{comp}/{ep}/{:x}", lease as u64)
}

/// The worker value of the interface, byte for byte.
fn worker_value(ns: &str, comp: &str, ep: &str, lease: i64) -> String {
    format!(
        r#"{{"type":"Endpoint","component":"{comp}","endpoint":"{ep}","namespace":"{ns}","instance_id":{id},"transport":{{"nats_tcp":"{ns}_{comp}.{ep}-{id:x}"}}}}"#,
        id = lease as u64
    )
}

/// The sample value of a metric (a line `name value`), if present.
fn metric(h: &Healthd, name: &str) -> Option<String> {
    let body = h.get("/metrics").body;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_string))
}

fn wait_metric(h: &Healthd, name: &str, value: &str) {
    poll(&format!("{name} {value}"), || {
        metric(h, name).as_deref() == Some(value)
    });
}

/// Requests to `path` whose JSON body satisfies `pred`.
fn sent(fake: &FakeEtcd, path: &str, pred: impl Fn(&Value) -> bool) -> usize {
    fake.requests_to(path)
        .iter()
        .filter(|r| pred(&r.body))
        .count()
}

/// A field in either JSON spelling the gateway accepts (`request_put` or `requestPut`).
fn field<'a>(v: &'a Value, snake: &str) -> Option<&'a Value> {
    v.get(snake).or_else(|| {
        let camel: String = snake
            .split('_')
            .enumerate()
            .map(|(i, p)| {
                if i == 0 {
                    p.to_string()
                } else {
                    p[..1].to_uppercase() + &p[1..]
                }
            })
            .collect();
        v.get(camel.as_str())
    })
}

/// An int64 field as the gateway accepts it: a JSON string or a number.
fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Seconds since the epoch of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SSZ` (optionally with
/// fractional seconds), or `None` when it is not one.
fn rfc3339_utc(t: &str) -> Option<u64> {
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let d: Vec<u64> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let time = time.split('.').next()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || hms.len() != 3 || date.len() != 10 || time.len() != 8 {
        return None;
    }
    let (y, m, day) = (d[0], d[1], d[2]);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hms[0] > 23 || hms[1] > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

/// Asserts `body` is the interface's "Discovery unavailable since <time> (<reason>)" answer with
/// a time near now.
fn assert_unavailable(body: &str) {
    let rest = body
        .strip_prefix(UNAVAILABLE)
        .and_then(|r| r.strip_suffix(r#")","status":"unhealthy"}"#))
        .unwrap_or_else(|| panic!("not the unavailable answer: {body}"));
    let (time, reason) = rest
        .split_once(" (")
        .unwrap_or_else(|| panic!("no (reason) in {body}"));
    assert!(!reason.is_empty(), "empty reason in {body}");
    let at = rfc3339_utc(time).unwrap_or_else(|| panic!("not RFC 3339 UTC: {time:?} in {body}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        at <= now + 1 && now - at < 120,
        "time {time} is not near now in {body}"
    );
}

fn is_unavailable(body: &str) -> bool {
    body.starts_with(UNAVAILABLE)
}

// ---------------------------------------------------------------------------------------------
// 1. Settings.

/// Runs healthd with `env` (plus port 0 on loopback, in case it wrongly starts) and asserts exit
/// 2, nothing on stdout, and exactly one stderr line starting `healthd: error: NAME="VALUE": `.
/// Returns the line.
fn refused(env: &[(&str, &str)], args: &[&str], name: &str, value: &str) -> String {
    let mut full = vec![
        ("DYN_SYSTEM_PORT", "0"),
        ("DYN_SYSTEM_HOST", "127.0.0.1"),
        ("DYN_HTTP_PORT", "0"),
    ];
    full.extend_from_slice(env);
    let (code, out, err) = run(&full, args);
    let ctx = format!("env {env:?} args {args:?}: exit {code}, stdout {out:?}, stderr {err:?}");
    assert_eq!(code, 2, "{ctx}");
    assert_eq!(out, "", "{ctx}");
    assert_eq!(err.lines().count(), 1, "one line: {ctx}");
    assert!(err.ends_with('\n'), "{ctx}");
    let prefix = format!("healthd: error: {name}={value:?}: ");
    assert!(err.starts_with(&prefix), "want prefix {prefix:?}: {ctx}");
    assert!(
        err.len() > prefix.len() + 10,
        "says what is accepted: {ctx}"
    );
    err
}

/// Registration on against an unreachable member, so that every etcd setting is in use.
fn registering(dead: &str) -> Vec<(&str, &str)> {
    vec![("HEALTHD_REGISTER", "on"), ("ETCD_ENDPOINTS", dead)]
}

#[test]
fn bad_etcd_endpoints_exit_2_naming_the_value() {
    for bad in [
        "etcd:2379",
        "etcd-0.etcd:2379",
        "http://",
        "http://:2379",
        "http://h:0",
        "http://h:99999",
        "http://h:2379/path",
        "a,,b",
        "http://a:1,,http://b:2",
        "http://a:1,",
        ",http://a:1",
        "http://h:x",
        "http://h:-1",
        "http://h:2379?x=1",
        "http://user@h:2379",
        "ftp://h:2379",
        "http://[::1:2379",
        "http://h h:2379",
    ] {
        refused(
            &[("HEALTHD_REGISTER", "on"), ("ETCD_ENDPOINTS", bad)],
            &[],
            "ETCD_ENDPOINTS",
            bad,
        );
    }
}

#[test]
fn https_endpoints_exit_2_saying_tls_is_not_supported() {
    for bad in [
        "https://x:2379",
        "https://etcd-0.etcd:2379",
        "http://a:2379,https://b:2379",
    ] {
        let line = refused(
            &[("HEALTHD_REGISTER", "on"), ("ETCD_ENDPOINTS", bad)],
            &[],
            "ETCD_ENDPOINTS",
            bad,
        );
        assert!(line.contains("TLS"), "{line}");
    }
    let line = refused(
        &[("HEALTHD_ROLE", "frontend")],
        &["--etcd-endpoints", "https://x:2379"],
        "--etcd-endpoints",
        "https://x:2379",
    );
    assert!(line.contains("TLS"), "{line}");
}

#[test]
fn any_tls_file_setting_exits_2_saying_tls_is_not_supported() {
    let dead = format!("http://127.0.0.1:{}", dead_port());
    for var in [
        "ETCD_AUTH_CA",
        "ETCD_AUTH_CLIENT_CERT",
        "ETCD_AUTH_CLIENT_KEY",
    ] {
        let mut env = registering(&dead);
        env.push((var, "/etc/etcd/pki/file.pem"));
        let line = refused(&env, &[], var, "/etc/etcd/pki/file.pem");
        assert!(line.contains("TLS"), "{line}");
        // Also without any other etcd setting: the file alone is the mistake.
        let line = refused(&[(var, "/x.pem")], &[], var, "/x.pem");
        assert!(line.contains("TLS"), "{line}");
    }
    for flag in [
        "--etcd-auth-ca",
        "--etcd-auth-client-cert",
        "--etcd-auth-client-key",
    ] {
        let line = refused(&registering(&dead), &[flag, "/ca.pem"], flag, "/ca.pem");
        assert!(line.contains("TLS"), "{line}");
    }
}

#[test]
fn bad_lease_ttl_exits_2() {
    let dead = format!("http://127.0.0.1:{}", dead_port());
    for bad in [
        "0",
        "1",
        "3601",
        "-5",
        "10s",
        "abc",
        "1.5",
        "2e1",
        "0x10",
        "99999999999999999999",
    ] {
        let mut env = registering(&dead);
        env.push(("ETCD_LEASE_TTL", bad));
        let line = refused(&env, &[], "ETCD_LEASE_TTL", bad);
        assert!(line.contains("3600"), "says what is accepted: {line}");
    }
    let line = refused(
        &registering(&dead),
        &["--etcd-lease-ttl", "1"],
        "--etcd-lease-ttl",
        "1",
    );
    assert!(line.contains("3600"), "{line}");
}

#[test]
fn username_and_password_come_together() {
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let mut env = registering(&dead);
    env.push(("ETCD_AUTH_USERNAME", "root"));
    let line = refused(&env, &[], "ETCD_AUTH_USERNAME", "root");
    assert!(line.contains("ETCD_AUTH_PASSWORD"), "{line}");

    let line = refused(
        &registering(&dead),
        &["--etcd-auth-username", "root"],
        "--etcd-auth-username",
        "root",
    );
    assert!(
        line.contains("PASSWORD") || line.contains("password"),
        "{line}"
    );
}

/// A password alone is refused, and the line names the missing user name. The secret itself is
/// not echoed: error lines end up in logs that more people read than the pod spec.
#[test]
fn password_without_username_exits_2_without_printing_the_password() {
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let mut env = registering(&dead);
    env.push(("ETCD_AUTH_PASSWORD", "hunter2-secret"));
    let mut full = vec![("DYN_SYSTEM_PORT", "0"), ("DYN_SYSTEM_HOST", "127.0.0.1")];
    full.extend(env);
    let (code, out, err) = run(&full, &[]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.starts_with("healthd: error: ETCD_AUTH_"), "{err:?}");
    assert!(err.contains("ETCD_AUTH_USERNAME"), "{err:?}");
    assert!(!err.contains("hunter2"), "the password is echoed: {err:?}");
}

#[test]
fn register_accepts_only_on_and_off() {
    let dead = format!("http://127.0.0.1:{}", dead_port());
    for bad in ["yes", "true", "ON", "On", "1", "enabled", "no", "false"] {
        refused(
            &[("HEALTHD_REGISTER", bad), ("ETCD_ENDPOINTS", &dead)],
            &[],
            "HEALTHD_REGISTER",
            bad,
        );
    }
    refused(
        &[("ETCD_ENDPOINTS", &dead)],
        &["--register", "yes"],
        "--register",
        "yes",
    );
}

#[test]
fn register_on_needs_endpoints() {
    let line = refused(&[("HEALTHD_REGISTER", "on")], &[], "HEALTHD_REGISTER", "on");
    assert!(line.contains("ETCD_ENDPOINTS"), "{line}");
    let line = refused(&[], &["--register", "on"], "--register", "on");
    assert!(
        line.contains("ETCD_ENDPOINTS") || line.contains("--etcd-endpoints"),
        "{line}"
    );
}

#[test]
fn register_on_is_refused_in_the_frontend_role() {
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let mut full = vec![
        ("DYN_SYSTEM_PORT", "0"),
        ("DYN_HTTP_PORT", "0"),
        ("DYN_SYSTEM_HOST", "127.0.0.1"),
    ];
    full.extend([
        ("HEALTHD_ROLE", "frontend"),
        ("HEALTHD_REGISTER", "on"),
        ("ETCD_ENDPOINTS", dead.as_str()),
    ]);
    let (code, out, err) = run(&full, &[]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("healthd: error: HEALTHD_REGISTER=\"on\": ")
            || err.starts_with("healthd: error: HEALTHD_ROLE=\"frontend\": "),
        "{err:?}"
    );
    assert!(
        err.contains("frontend") && err.contains("HEALTHD_REGISTER"),
        "{err:?}"
    );
}

/// Bad etcd values are refused also where etcd would not be contacted (a worker without
/// registration): a typo should not wait for the day registration is switched on.
#[test]
fn bad_etcd_values_are_refused_even_when_unused() {
    refused(
        &[("ETCD_ENDPOINTS", "etcd:2379")],
        &[],
        "ETCD_ENDPOINTS",
        "etcd:2379",
    );
    refused(&[("ETCD_LEASE_TTL", "1")], &[], "ETCD_LEASE_TTL", "1");
    refused(
        &[("HEALTHD_ROLE", "frontend"), ("ETCD_LEASE_TTL", "abc")],
        &[],
        "ETCD_LEASE_TTL",
        "abc",
    );
}

#[test]
fn valid_etcd_values_start() {
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let list = format!(
        " {dead} , http://[::1]:2379,http://etcd-0.etcd.ns.svc.cluster.local:2379, http://localhost "
    );
    for env in [
        vec![("ETCD_LEASE_TTL", "2")],
        vec![("ETCD_LEASE_TTL", "3600")],
        vec![("ETCD_LEASE_TTL", " 10 ")],
        vec![("ETCD_ENDPOINTS", list.as_str())],
        vec![("ETCD_ENDPOINTS", "http://10.0.0.1")],
        vec![
            ("HEALTHD_REGISTER", "off"),
            ("ETCD_ENDPOINTS", dead.as_str()),
        ],
        vec![("HEALTHD_REGISTER", "")],
        vec![("ETCD_AUTH_CA", ""), ("ETCD_AUTH_CLIENT_KEY", "")],
        vec![
            ("ETCD_AUTH_USERNAME", "root"),
            ("ETCD_AUTH_PASSWORD", "pw"),
            ("ETCD_ENDPOINTS", dead.as_str()),
        ],
        vec![
            ("HEALTHD_REGISTER", "on"),
            ("ETCD_ENDPOINTS", dead.as_str()),
            ("ETCD_LEASE_TTL", "2"),
        ],
        vec![
            ("HEALTHD_REGISTER", "on"),
            ("ETCD_ENDPOINTS", dead.as_str()),
            ("ETCD_LEASE_TTL", "3600"),
        ],
    ] {
        let h = Healthd::start(&env, &[]);
        let r = h.get("/health");
        assert_eq!(
            (r.status, mask_uptime(&r.body).as_str()),
            (
                503,
                r#"{"status":"notready","uptime":{"secs":S,"nanos":N},"endpoints":{}}"#
            ),
            "{env:?}"
        );
    }
    let h = Healthd::start(
        &[],
        &[
            "--register",
            "on",
            "--etcd-endpoints",
            &dead,
            "--etcd-lease-ttl",
            "2",
        ],
    );
    assert_eq!(h.get("/health").status, 503);
    let h = Healthd::start(
        &[
            ("HEALTHD_ROLE", "frontend"),
            ("DYN_HTTP_PORT", "0"),
            ("ETCD_ENDPOINTS", dead.as_str()),
            ("ETCD_LEASE_TTL", "3600"),
        ],
        &[],
    );
    assert_eq!(h.get("/live").body, LIVE);
    let h = Healthd::start(
        &[
            ("HEALTHD_ROLE", "frontend"),
            ("DYN_HTTP_PORT", "0"),
            ("HEALTHD_REGISTER", "off"),
        ],
        &[],
    );
    assert_eq!(h.get("/health").body, NONE);
}

// ---------------------------------------------------------------------------------------------
// 2. Workers: local health never depends on etcd.

/// Everything a worker serves locally, as (path, status, body) with the uptime masked and, in
/// `/metrics`, the uptime value masked and the `healthd_etcd_*` families left out. Asserts each
/// probe answers within `PROBE_DEADLINE`.
fn local_view(h: &Healthd) -> Vec<(String, u16, String)> {
    const PATHS: [&str; 12] = [
        "/health",
        "/live",
        "/ready",
        "/metrics",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/generate/ready",
        "/v1.0/healthz",
        "/v1.0/healthz/outbound",
        "/livez",
        "/readyz?verbose",
        "/metadata",
    ];
    PATHS
        .iter()
        .map(|p| {
            let t = Instant::now();
            let r = h.get(p);
            let took = t.elapsed();
            assert!(
                took < PROBE_DEADLINE,
                "{p} took {took:?}\nstderr:\n{}",
                h.stderr()
            );
            let body = if *p == "/metrics" {
                r.body
                    .lines()
                    .filter(|l| !l.contains("healthd_etcd_"))
                    .map(
                        |l| match l.strip_prefix("dynamo_component_uptime_seconds ") {
                            Some(_) => "dynamo_component_uptime_seconds U",
                            None => l,
                        },
                    )
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                mask_uptime(&r.body)
            };
            (p.to_string(), r.status, body)
        })
        .collect()
}

/// A worker with one ready endpoint, registering with `fake` when given.
fn worker(tmp: &Tmp, fake: Option<&FakeEtcd>) -> Healthd {
    let file = tmp.file_str();
    let url = fake.map(FakeEtcd::url);
    let mut env = vec![
        ("HEALTHD_READY_FILE", file.as_str()),
        ("HEALTHD_SHUTDOWN_GRACE", "1h"),
    ];
    if let Some(url) = &url {
        env.extend([
            ("HEALTHD_REGISTER", "on"),
            ("ETCD_ENDPOINTS", url.as_str()),
            ("ETCD_LEASE_TTL", TTL),
        ]);
    }
    Healthd::start(&env, &[])
}

/// The one key for `generate` bound to a live lease, with the exact value for that lease.
fn registered(fake: &FakeEtcd) -> bool {
    let prefix = "v1/instances/dynamo/backend/generate/";
    let keys: Vec<_> = fake
        .keys()
        .into_iter()
        .filter(|k| k.key.starts_with(prefix.as_bytes()))
        .collect();
    let leases = fake.leases();
    keys.len() == 1
        && leases.contains(&keys[0].lease)
        && String::from_utf8_lossy(&keys[0].key)
            == worker_key("dynamo", "backend", "generate", keys[0].lease)
        && keys[0].value_str() == worker_value("dynamo", "backend", "generate", keys[0].lease)
}

/// Compares the faulty worker with a reference worker without etcd for `for_at_least`, probing
/// both in lockstep; asserts the faulty one is still running.
fn same_as_without_etcd(faulty: &mut Healthd, reference: &Healthd, for_at_least: Duration) {
    let end = Instant::now() + for_at_least;
    loop {
        let (a, b) = (local_view(faulty), local_view(reference));
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "faulty vs reference\nstderr:\n{}", faulty.stderr());
        }
        assert!(
            faulty.child.try_wait().unwrap().is_none(),
            "healthd exited\nstderr:\n{}",
            faulty.stderr()
        );
        // No descriptor piles up: at most the one etcd call in flight (and its stream) more.
        let (fa, fr) = (fds(faulty.child.id()), fds(reference.child.id()));
        assert!(fa <= fr + 3, "{fa} descriptors open, {fr} without etcd");
        if Instant::now() >= end {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A registering worker against `fault`: from the start, then registered in good mode, then the
/// fault again. Local routes answer exactly like a worker without etcd, promptly, throughout;
/// the process never exits; after the fault it registers again.
fn worker_survives(fault: Fault, name: &str) {
    let fake = FakeEtcd::start();
    fake.set_fault(fault);
    let (t1, t2) = (
        Tmp::new(&format!("{name}-f")),
        Tmp::new(&format!("{name}-r")),
    );
    for t in [&t1, &t2] {
        t.write("ready\ngenerate=ready\n");
    }
    let mut faulty = worker(&t1, Some(&fake));
    let reference = worker(&t2, None);
    // From the start: a few retry rounds (the backoff caps at 800 ms).
    same_as_without_etcd(&mut faulty, &reference, Duration::from_millis(1200));
    assert!(
        !fake.requests().is_empty(),
        "healthd never called the fake\nstderr:\n{}",
        faulty.stderr()
    );

    fake.set_fault(Fault::Good);
    poll("registered after the fault cleared", || registered(&fake));
    same_as_without_etcd(&mut faulty, &reference, Duration::ZERO);

    // After registering: longer than the TTL, so the lease runs out meanwhile.
    fake.set_fault(fault);
    same_as_without_etcd(&mut faulty, &reference, Duration::from_millis(2200));

    let back = Instant::now();
    fake.set_fault(Fault::Good);
    poll("registered again", || registered(&fake));
    // "Everything re-registered within 1 s of etcd answering" (asserted loosely, at 2 s; faults
    // that left the key in place have nothing to re-register).
    let answered = fake
        .requests()
        .iter()
        .filter(|r| r.at >= back && r.fault == Fault::Good)
        .map(|r| r.at)
        .min();
    if let Some(at) = answered {
        let took = at.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "re-registered {took:?} after etcd answered"
        );
    }
    same_as_without_etcd(&mut faulty, &reference, Duration::ZERO);
    if fault == Fault::LeaseGone {
        assert!(fake.granted() >= 2, "a new lease after the lease was gone");
    }
    assert_eq!(
        metric(&faulty, "healthd_etcd_lease_held").as_deref(),
        Some("1")
    );
}

#[test]
fn worker_survives_garbage() {
    worker_survives(Fault::Garbage, "garbage");
}

#[test]
fn worker_survives_http_500() {
    worker_survives(Fault::Http500, "500");
}

#[test]
fn worker_survives_cut_watch_streams() {
    worker_survives(Fault::CutWatch, "cut");
}

#[test]
fn worker_survives_silence() {
    worker_survives(Fault::Silent, "silent");
}

#[test]
fn worker_survives_trickling_answers() {
    worker_survives(Fault::Trickle, "trickle");
}

#[test]
fn worker_survives_a_member_without_leader() {
    worker_survives(Fault::NoLeader, "noleader");
}

#[test]
fn worker_survives_resets() {
    worker_survives(Fault::Reset, "reset");
}

#[test]
fn worker_survives_lease_gone_on_keepalive() {
    worker_survives(Fault::LeaseGone, "leasegone");
}

#[test]
fn worker_survives_unparsable_keys_in_ranges() {
    worker_survives(Fault::BadRange, "badrange");
}

/// 100 MB answers to every call: healthd neither stores them (RSS stays under 16 MiB) nor
/// stalls its local routes.
#[test]
fn worker_survives_100_mb_bodies_in_bounded_memory() {
    let fake = FakeEtcd::start();
    fake.set_fault(Fault::Huge);
    let (t1, t2) = (Tmp::new("huge-f"), Tmp::new("huge-r"));
    for t in [&t1, &t2] {
        t.write("ready\ngenerate=ready\n");
    }
    let mut faulty = worker(&t1, Some(&fake));
    let reference = worker(&t2, None);
    let pid = faulty.child.id();
    let max_kib = 16 * 1024;
    poll("two 100 MB answers ended", || {
        same_as_without_etcd(&mut faulty, &reference, Duration::ZERO);
        assert!(rss_kib(pid) < max_kib, "VmRSS {} KiB", rss_kib(pid));
        fake.huge_done().0 >= 2
    });
    same_as_without_etcd(&mut faulty, &reference, Duration::from_millis(1000));
    let rss = rss_kib(pid);
    assert!(
        rss < max_kib,
        "VmRSS {rss} KiB after {:?} (answers, bytes sent)",
        fake.huge_done()
    );
    fake.set_fault(Fault::Good);
    poll("registered after the fault cleared", || registered(&fake));
    assert!(rss_kib(pid) < max_kib);
    assert!(faulty.child.try_wait().unwrap().is_none());
}

/// Fail before you serve: a worker that cannot bind exits 2 and never contacts etcd (no key for
/// a healthd that never answered 200).
#[test]
fn worker_that_cannot_bind_exits_2_without_contacting_etcd() {
    let fake = FakeEtcd::start();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let tmp = Tmp::new("nobind");
    tmp.write("ready\ngenerate=ready\n");
    let file = tmp.file_str();
    let url = fake.url();
    let (code, out, err) = run(
        &[
            ("DYN_SYSTEM_PORT", port.as_str()),
            ("DYN_SYSTEM_HOST", "127.0.0.1"),
            ("HEALTHD_READY_FILE", file.as_str()),
            ("HEALTHD_REGISTER", "on"),
            ("ETCD_ENDPOINTS", url.as_str()),
            ("ETCD_LEASE_TTL", TTL),
        ],
        &[],
    );
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
    assert_eq!(fake.connections(), (0, 0));
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

/// A worker with `ETCD_ENDPOINTS` but registration off never contacts etcd.
#[test]
fn worker_without_register_never_contacts_etcd() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("noreg");
    tmp.write("ready\ngenerate=ready\n");
    let file = tmp.file_str();
    let url = fake.url();
    let h = Healthd::start(
        &[
            ("HEALTHD_READY_FILE", file.as_str()),
            ("ETCD_ENDPOINTS", url.as_str()),
            ("ETCD_LEASE_TTL", TTL),
        ],
        &[],
    );
    assert_eq!(h.get("/health").status, 200);
    // Longer than a keepalive period and the first grant would take.
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        assert_eq!(h.get("/health").status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(fake.requests().len(), 0, "{:?}", fake.requests());
    assert_eq!(fake.connections(), (0, 0));
    let m = h.get("/metrics").body;
    assert!(!m.contains("healthd_etcd_"), "{m}");
}

// ---------------------------------------------------------------------------------------------
// 3. Workers in good mode: the keys of the interface.

/// Asserts for `span` that the fake holds no key (a worker that is not ready registers nothing).
fn no_keys_for(fake: &FakeEtcd, span: Duration) {
    let end = Instant::now() + span;
    while Instant::now() < end {
        assert!(fake.keys().is_empty(), "{:?}", fake.keys());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The txn that writes `key` = `value` with `lease`, create-if-absent (a compare on the key's
/// version, or create revision, being 0).
fn is_create_txn(body: &Value, key: &str, value: &str, lease: i64) -> bool {
    let kb = b64(key.as_bytes());
    let empty = Vec::new();
    let compares = field(body, "compare")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let guarded = compares.iter().any(|c| {
        let target = field(c, "target")
            .and_then(Value::as_str)
            .unwrap_or("VERSION");
        let result = field(c, "result")
            .and_then(Value::as_str)
            .unwrap_or("EQUAL");
        let n = match target {
            "CREATE" => int(field(c, "create_revision")).unwrap_or(0),
            "VERSION" => int(field(c, "version")).unwrap_or(0),
            _ => return false,
        };
        field(c, "key").and_then(Value::as_str) == Some(kb.as_str()) && result == "EQUAL" && n == 0
    });
    let puts = field(body, "success")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    guarded
        && puts.iter().any(|op| {
            field(op, "request_put").is_some_and(|p| {
                field(p, "key").and_then(Value::as_str) == Some(kb.as_str())
                    && field(p, "value").and_then(Value::as_str)
                        == Some(b64(value.as_bytes()).as_str())
                    && int(field(p, "lease")) == Some(lease)
            })
        })
}

#[test]
fn worker_registers_exactly_the_interface_key_while_ready() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("good");
    let file = tmp.file_str();
    let url = fake.url();
    let env = [
        ("HEALTHD_READY_FILE", file.as_str()),
        ("HEALTHD_REGISTER", "on"),
        ("ETCD_ENDPOINTS", url.as_str()),
        ("ETCD_LEASE_TTL", TTL),
        ("HEALTHD_SHUTDOWN_GRACE", "1h"),
    ];
    let h = Healthd::start(&env, &[]);
    let id = LEASE_IDS[0];
    let key = worker_key("dynamo", "backend", "generate", id);
    let value = worker_value("dynamo", "backend", "generate", id);
    assert_eq!(key, "v1/instances/dynamo/backend/generate/694d98147d54be25");
    assert_eq!(
        value,
        r#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":7587888160958627365,"transport":{"nats_tcp":"dynamo_backend.generate-694d98147d54be25"}}"#
    );
    no_keys_for(&fake, Duration::from_millis(500));

    // Ready through the readiness file: the txn of the interface.
    tmp.write("ready\ngenerate=ready\n");
    poll("the generate key", || fake.key(&key).is_some());
    let kv = fake.key(&key).unwrap();
    assert_eq!((kv.value_str(), kv.lease), (value.clone(), id));
    assert!(
        sent(&fake, "/v3/kv/txn", |b| is_create_txn(b, &key, &value, id)) >= 1,
        "a create-if-absent txn: {:?}",
        fake.requests_to("/v3/kv/txn")
    );
    assert_eq!(fake.keys().len(), 1);
    assert_eq!(sent(&fake, "/v3/lease/grant", |_| true), 1);
    wait_metric(&h, "healthd_etcd_registered_endpoints", "1");
    assert_eq!(metric(&h, "healthd_etcd_lease_held").as_deref(), Some("1"));
    assert_eq!(
        metric(&h, "healthd_etcd_leases_granted_total").as_deref(),
        Some("1")
    );

    // The endpoint not ready through `healthd set`: the key goes.
    let set = |args: &[&str]| {
        let mut a = vec!["set"];
        a.extend_from_slice(args);
        let (code, _, err) = run(&[("HEALTHD_READY_FILE", file.as_str())], &a);
        assert_eq!(code, 0, "{err}");
    };
    set(&["generate", "notready"]);
    poll("the key deleted", || fake.key(&key).is_none());
    assert_eq!(h.get("/health").status, 200, "the process is still ready");
    wait_metric(&h, "healthd_etcd_registered_endpoints", "0");
    set(&["generate", "ready"]);
    poll("the key back", || fake.key(&key).is_some());

    // The process not ready (overall 503): no key although the endpoint is ready.
    set(&["notready"]);
    poll("the key deleted when the process is not ready", || {
        fake.key(&key).is_none()
    });
    assert_eq!(h.get("/health").status, 503);
    set(&["ready"]);
    poll("the key back when ready", || fake.key(&key).is_some());
    assert_eq!(fake.keys().len(), 1);
    assert_eq!(fake.granted(), 1, "one lease all along");

    // SIGTERM: the drain revokes the lease; healthd keeps answering.
    h.signal(libc::SIGTERM);
    poll("the lease revoked", || {
        sent(&fake, "/v3/lease/revoke", |b| {
            int(field(b, "ID")) == Some(id)
        }) == 1
    });
    assert!(fake.keys().is_empty());
    assert!(fake.leases().is_empty());
    assert_eq!(h.get("/health").status, 503);
}

#[test]
fn worker_registers_only_when_overall_ready_and_uses_namespace_and_component() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("multi");
    let file = tmp.file_str();
    let url = fake.url();
    tmp.write("ready\ngenerate=ready\nclear_kv_blocks=notready\nprefill=ready\n");
    let h = Healthd::start(
        &[
            ("HEALTHD_READY_FILE", file.as_str()),
            ("HEALTHD_REGISTER", "on"),
            ("ETCD_ENDPOINTS", url.as_str()),
            ("ETCD_LEASE_TTL", TTL),
            (
                "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS",
                "[generate, clear_kv_blocks]",
            ),
            ("HEALTHD_NAMESPACE", "ns1"),
        ],
        &["--component", "worker"],
    );
    assert_eq!(h.get("/health").status, 503);
    let id = LEASE_IDS[0];
    // Required clear_kv_blocks is not ready, so nothing is registered.
    no_keys_for(&fake, Duration::from_millis(500));

    tmp.write("ready\ngenerate=ready\nclear_kv_blocks=ready\nprefill=ready\nextra=notready\n");
    let want: Vec<(String, String)> = ["clear_kv_blocks", "generate", "prefill"]
        .iter()
        .map(|ep| {
            (
                worker_key("ns1", "worker", ep, id),
                worker_value("ns1", "worker", ep, id),
            )
        })
        .collect();
    let have = || {
        fake.keys()
            .iter()
            .map(|k| (String::from_utf8_lossy(&k.key).into_owned(), k.value_str()))
            .collect::<Vec<_>>()
    };
    poll("three keys", || have() == want);
    assert!(fake.keys().iter().all(|k| k.lease == id));
    wait_metric(&h, "healthd_etcd_registered_endpoints", "3");

    // Two TTLs later: still the one lease, kept alive (every TTL/3), the keys unchanged.
    let end = Instant::now() + Duration::from_millis(4500);
    while Instant::now() < end {
        assert_eq!(have(), want);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(fake.granted(), 1);
    assert!(sent(&fake, "/v3/lease/keepalive", |_| true) >= 4);
    assert_eq!(
        sent(&fake, "/v3/lease/grant", |b| int(field(b, "TTL"))
            == Some(2)),
        1,
        "the grant asks for ETCD_LEASE_TTL"
    );

    // SIGUSR2: everything not ready, every key goes.
    h.signal(libc::SIGUSR2);
    poll("no keys after SIGUSR2", || fake.keys().is_empty());
}

/// SIGTERM while etcd hangs: the revoke has its deadline; the drain ends on time with exit 0, and
/// a second SIGTERM still exits at once.
#[test]
fn worker_drains_on_time_while_etcd_hangs() {
    for second in [false, true] {
        let fake = FakeEtcd::start();
        let tmp = Tmp::new(&format!("hang-{second}"));
        tmp.write("ready\ngenerate=ready\n");
        let file = tmp.file_str();
        let url = fake.url();
        let grace = if second { "1h" } else { "300ms" };
        let mut h = Healthd::start(
            &[
                ("HEALTHD_READY_FILE", file.as_str()),
                ("HEALTHD_REGISTER", "on"),
                ("ETCD_ENDPOINTS", url.as_str()),
                ("ETCD_LEASE_TTL", TTL),
                ("HEALTHD_SHUTDOWN_GRACE", grace),
            ],
            &[],
        );
        poll("registered", || registered(&fake));
        fake.set_fault(Fault::Silent);
        h.signal(libc::SIGTERM);
        if second {
            poll("draining", || h.get("/health").status == 503);
            h.signal(libc::SIGTERM);
        }
        let status = h.wait_exit(Duration::from_secs(4));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "second SIGTERM: {second}\nstderr:\n{}",
            h.stderr()
        );
    }
}

/// etcd silent for longer than the TTL: etcd has expired the lease (no keepalive for a TTL), so
/// the worker cannot hold it any more, nor have endpoints registered under it; /metrics says so
/// before etcd is back to tell it.
#[test]
fn worker_metrics_drop_the_lease_after_an_outage_longer_than_the_ttl() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("longout");
    tmp.write("ready\ngenerate=ready\n");
    let h = worker(&tmp, Some(&fake));
    poll("registered", || registered(&fake));
    wait_metric(&h, "healthd_etcd_registered_endpoints", "1");
    fake.set_fault(Fault::Silent);
    let at = Instant::now();
    poll("connected 0", || {
        metric(&h, "healthd_etcd_connected").as_deref() == Some("0")
    });
    // The lease is certainly gone in etcd once a TTL passed since the fault.
    poll("lease_held 0 after the TTL", || {
        metric(&h, "healthd_etcd_lease_held").as_deref() == Some("0")
            && metric(&h, "healthd_etcd_registered_endpoints").as_deref() == Some("0")
    });
    assert!(
        at.elapsed() >= Duration::from_secs(1),
        "not before the lease could expire"
    );
    // A keepalive that reached the silent fake may have renewed it there just before: the
    // fake's own expiry follows within a TTL.
    poll("the fake expired it too", || fake.leases().is_empty());
}

/// etcd silent for less than the TTL: the worker keeps its lease and its key.
#[test]
fn worker_keeps_its_lease_through_a_short_outage() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("short");
    tmp.write("ready\ngenerate=ready\n");
    let file = tmp.file_str();
    let url = fake.url();
    let h = Healthd::start(
        &[
            ("HEALTHD_READY_FILE", file.as_str()),
            ("HEALTHD_REGISTER", "on"),
            ("ETCD_ENDPOINTS", url.as_str()),
            ("ETCD_LEASE_TTL", "10"),
        ],
        &[],
    );
    let key = worker_key("dynamo", "backend", "generate", LEASE_IDS[0]);
    poll("registered", || fake.key(&key).is_some());
    fake.set_fault(Fault::Silent);
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        assert_eq!(h.get("/health").status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    fake.set_fault(Fault::Good);
    let before = fake.requests().len();
    poll("a keepalive answered after the outage", || {
        fake.requests()[before..]
            .iter()
            .any(|r| r.path == "/v3/lease/keepalive" && r.fault == Fault::Good)
    });
    assert_eq!(fake.granted(), 1, "the same lease");
    assert!(fake.key(&key).is_some());
    assert_eq!(fake.keys().len(), 1);
    assert_eq!(
        metric(&h, "healthd_etcd_leases_granted_total").as_deref(),
        Some("1")
    );
}

/// Not live (a missed heartbeat) means not registered; the next heartbeat registers again.
#[test]
fn worker_deregisters_while_not_live() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("hb");
    tmp.write("ready\ngenerate=ready\n");
    let file = tmp.file_str();
    let url = fake.url();
    let h = Healthd::start(
        &[
            ("HEALTHD_READY_FILE", file.as_str()),
            ("HEALTHD_REGISTER", "on"),
            ("ETCD_ENDPOINTS", url.as_str()),
            ("ETCD_LEASE_TTL", TTL),
            ("HEALTHD_HEARTBEAT_TIMEOUT", "1s"),
        ],
        &[],
    );
    let key = worker_key("dynamo", "backend", "generate", LEASE_IDS[0]);
    poll("registered", || fake.key(&key).is_some());
    poll("not live without a heartbeat", || {
        metric(&h, "healthd_live").as_deref() == Some("0")
    });
    poll("the key deleted while not live", || {
        fake.key(&key).is_none()
    });
    let (code, _, err) = run(
        &[("HEALTHD_READY_FILE", file.as_str())],
        &["set", "--heartbeat"],
    );
    assert_eq!(code, 0, "{err}");
    poll("registered again after the heartbeat", || {
        fake.key(&key).is_some()
    });
}

/// Under `healthd run`, the child dying makes healthd not live: the key goes at once, the drain
/// revokes the lease, and healthd exits with the child's status.
#[test]
fn supervised_worker_deregisters_when_its_child_dies() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("run");
    tmp.write("ready\ngenerate=ready\n");
    let file = tmp.file_str();
    let url = fake.url();
    let mut h = Healthd::start(
        &[
            ("HEALTHD_READY_FILE", file.as_str()),
            ("HEALTHD_REGISTER", "on"),
            ("ETCD_ENDPOINTS", url.as_str()),
            ("ETCD_LEASE_TTL", TTL),
            ("HEALTHD_SHUTDOWN_GRACE", "300ms"),
        ],
        &["run", "--", "sleep", "1000"],
    );
    poll("registered", || registered(&fake));
    let pid = h.child.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let child: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: killing the test's own grandchild.
    unsafe { libc::kill(child, libc::SIGKILL) };
    poll("the key deleted", || fake.keys().is_empty());
    let status = h.wait_exit(Duration::from_secs(5)).expect("healthd exits");
    assert_eq!(status.code(), Some(128 + 9));
    assert_eq!(
        sent(&fake, "/v3/lease/revoke", |b| int(field(b, "ID"))
            == Some(LEASE_IDS[0])),
        1,
        "the drain revoked the lease"
    );
}

/// SIGINT drains like SIGTERM: the lease is revoked.
#[test]
fn worker_revokes_its_lease_on_sigint() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("sigint");
    tmp.write("ready\ngenerate=ready\n");
    let h = worker(&tmp, Some(&fake));
    poll("registered", || registered(&fake));
    h.signal(libc::SIGINT);
    poll("the lease revoked", || {
        sent(&fake, "/v3/lease/revoke", |b| {
            int(field(b, "ID")) == Some(LEASE_IDS[0])
        }) == 1
    });
    assert!(fake.keys().is_empty());
}

/// With a user login the worker authenticates, sends the token on every call, and logs in again
/// when the token expires, keeping its lease.
#[test]
fn worker_authenticates_and_renews_an_expired_token() {
    let fake = FakeEtcd::start();
    fake.require_auth("root", "s3cret");
    let tmp = Tmp::new("auth");
    tmp.write("ready\ngenerate=ready\n");
    let file = tmp.file_str();
    let url = fake.url();
    let env = [
        ("HEALTHD_READY_FILE", file.as_str()),
        ("HEALTHD_REGISTER", "on"),
        ("ETCD_ENDPOINTS", url.as_str()),
        ("ETCD_LEASE_TTL", TTL),
        ("ETCD_AUTH_USERNAME", "root"),
        ("ETCD_AUTH_PASSWORD", "s3cret"),
    ];
    let h = Healthd::start(&env, &[]);
    poll("registered", || registered(&fake));
    let logins = fake.requests_to("/v3/auth/authenticate");
    assert!(!logins.is_empty());
    assert_eq!(
        (
            logins[0].body["name"].as_str(),
            logins[0].body["password"].as_str()
        ),
        (Some("root"), Some("s3cret"))
    );
    assert!(
        fake.requests_to("/v3/kv/txn").iter().all(|r| r
            .header("authorization")
            .is_some_and(|t| t.starts_with("fake."))),
        "the token on every txn"
    );

    fake.expire_tokens();
    let issued = fake.tokens_issued();
    poll("a new token", || fake.tokens_issued() > issued);
    // Still the same lease, and flips still reach etcd.
    let (code, _, err) = run(
        &[("HEALTHD_READY_FILE", file.as_str())],
        &["set", "generate", "notready"],
    );
    assert_eq!(code, 0, "{err}");
    poll("the key deleted", || fake.keys().is_empty());
    let (code, _, err) = run(
        &[("HEALTHD_READY_FILE", file.as_str())],
        &["set", "generate", "ready"],
    );
    assert_eq!(code, 0, "{err}");
    poll("registered again", || registered(&fake));
    assert_eq!(fake.granted(), 1, "the lease outlived the token");
    assert_eq!(h.get("/health").status, 200);
    assert!(
        !h.stderr().contains("s3cret"),
        "the password is logged: {}",
        h.stderr()
    );
}

/// A wrong password: local health as usual, nothing registered, the process keeps trying.
#[test]
fn worker_with_a_wrong_password_keeps_serving() {
    let fake = FakeEtcd::start();
    fake.require_auth("root", "s3cret");
    let tmp = Tmp::new("badauth");
    tmp.write("ready\ngenerate=ready\n");
    let file = tmp.file_str();
    let url = fake.url();
    let mut h = Healthd::start(
        &[
            ("HEALTHD_READY_FILE", file.as_str()),
            ("HEALTHD_REGISTER", "on"),
            ("ETCD_ENDPOINTS", url.as_str()),
            ("ETCD_LEASE_TTL", TTL),
            ("ETCD_AUTH_USERNAME", "root"),
            ("ETCD_AUTH_PASSWORD", "wrong-pw"),
        ],
        &[],
    );
    poll("two login attempts", || {
        fake.requests_to("/v3/auth/authenticate").len() >= 2
    });
    assert!(fake.keys().is_empty());
    assert_eq!(h.get("/health").status, 200);
    assert!(h.child.try_wait().unwrap().is_none());
    assert!(
        !h.stderr().contains("wrong-pw"),
        "the password is logged: {}",
        h.stderr()
    );
}

/// The lease vanishes behind healthd's back (expired in a partition, revoked by someone else):
/// the next keepalive answers without TTL, healthd takes a new lease and registers again.
#[test]
fn worker_reregisters_with_a_new_lease_when_the_lease_is_gone() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("regrant");
    tmp.write("ready\ngenerate=ready\n");
    let mut h = worker(&tmp, Some(&fake));
    let first = worker_key("dynamo", "backend", "generate", LEASE_IDS[0]);
    poll("registered", || fake.key(&first).is_some());

    fake.revoke_all();
    assert!(fake.keys().is_empty());
    let second = worker_key("dynamo", "backend", "generate", LEASE_IDS[1]);
    assert_eq!(
        second,
        "v1/instances/dynamo/backend/generate/c0ffee0000beef"
    );
    poll("registered with the new lease", || {
        fake.key(&second).is_some()
    });
    let kv = fake.key(&second).unwrap();
    assert_eq!(
        (kv.value_str(), kv.lease),
        (
            worker_value("dynamo", "backend", "generate", LEASE_IDS[1]),
            LEASE_IDS[1]
        )
    );
    assert!(
        fake.requests_to("/v3/lease/keepalive")
            .iter()
            .any(|r| int(field(&r.body, "ID")) == Some(LEASE_IDS[0])),
        "the loss was found by a keepalive"
    );
    assert_eq!(fake.keys().len(), 1);
    wait_metric(&h, "healthd_etcd_leases_granted_total", "2");
    assert_eq!(metric(&h, "healthd_etcd_lease_held").as_deref(), Some("1"));
    assert!(h.child.try_wait().unwrap().is_none());
    assert_eq!(h.get("/health").status, 200);
}

/// The first member refuses connections: the worker registers through the second.
#[test]
fn worker_fails_over_to_the_second_endpoint() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("wfail");
    tmp.write("ready\ngenerate=ready\n");
    let file = tmp.file_str();
    let list = format!("http://127.0.0.1:{},{}", dead_port(), fake.url());
    let h = Healthd::start(
        &[
            ("HEALTHD_READY_FILE", file.as_str()),
            ("HEALTHD_REGISTER", "on"),
            ("ETCD_ENDPOINTS", list.as_str()),
            ("ETCD_LEASE_TTL", TTL),
        ],
        &[],
    );
    poll("registered through the second member", || registered(&fake));
    assert_eq!(h.get("/health").status, 200);
}

// ---------------------------------------------------------------------------------------------
// 4. The frontend: the list from etcd.

const ID_A: u64 = 7587888160958627365; // 0x694d98147d54be25

/// Good and bad keys, as other processes write them.
fn seed(fake: &FakeEtcd) {
    let good = [
        (
            "v1/instances/dynamo/backend/generate/694d98147d54be25".to_string(),
            worker_value("dynamo", "backend", "generate", ID_A as i64),
        ),
        (
            "v1/instances/dynamo/backend/generate/1a".to_string(),
            r#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":26,"transport":{"tcp":"10.0.0.7:9000/1a/generate"},"device_type":"cuda"}"#.to_string(),
        ),
        (
            // Fields in another order, spaces: re-emitted compact, keys sorted.
            "v1/instances/dynamo/prefill/generate/ff".to_string(),
            r#"{ "instance_id": 255, "transport": {"http": "http://10.0.0.8:8080/v1/rpc/generate"}, "namespace": "dynamo", "endpoint": "generate", "component": "prefill", "type": "Endpoint" }"#.to_string(),
        ),
        (
            // A full u64 that no float carries exactly.
            "v1/instances/alpha/backend/clear_kv_blocks/ffffffffffffffff".to_string(),
            r#"{"type":"Endpoint","component":"backend","endpoint":"clear_kv_blocks","namespace":"alpha","instance_id":18446744073709551615,"transport":{"nats_tcp":"alpha_backend.clear_kv_blocks-ffffffffffffffff"},"device_type":"cpu"}"#.to_string(),
        ),
    ];
    for (k, v) in good {
        fake.put(&k, &v);
    }
    // Ids whose order as numbers differs from their order as hex or decimal text.
    put_one(fake, "generate", 0x10);
    put_one(fake, "generate", 0x9);
    let ok = |ns: &str, comp: &str, ep: &str, id: u64| {
        format!(
            r#"{{"type":"Endpoint","component":"{comp}","endpoint":"{ep}","namespace":"{ns}","instance_id":{id},"transport":{{"nats_tcp":"x"}}}}"#
        )
    };
    // Ten keys that do not parse.
    fake.put("v1/instances/dynamo/backend/generate/b1", "not json");
    fake.put(
        "v1/instances/dynamo/backend/generate",
        &ok("dynamo", "backend", "generate", 0x1b),
    );
    fake.put(
        "v1/instances/dynamo/backend/decode/1c",
        &ok("dynamo", "backend", "generate", 0x1c),
    );
    fake.put(
        "v1/instances/dynamo/backend/generate/1d",
        &ok("dynamo", "backend", "generate", 0x1e),
    );
    fake.put(
        "v1/instances/dynamo/backend/generate/1f",
        r#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":31.0,"transport":{"nats_tcp":"x"}}"#,
    );
    fake.put(
        "v1/instances/dynamo/backend/generate/xyz",
        &ok("dynamo", "backend", "generate", 0),
    );
    fake.put(
        "v1/instances/dynamo/backend/generate/20",
        &ok("other", "backend", "generate", 0x20),
    );
    fake.put(
        "v1/instances/dynamo/backend/generate/21",
        &ok("dynamo", "other", "generate", 0x21),
    );
    fake.put(
        "v1/instances/dynamo/backend/generate/ffffffffffffffff",
        r#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":-1,"transport":{"nats_tcp":"x"}}"#,
    );
    fake.put(
        "v1/instances/dynamo/backend/generate/10000000000000000",
        r#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":18446744073709551616,"transport":{"nats_tcp":"x"}}"#,
    );
}

const SEEDED: &str = concat!(
    r#"{"endpoints":["dyn://alpha.backend.clear_kv_blocks","dyn://dynamo.backend.generate","dyn://dynamo.prefill.generate"],"instances":["#,
    r#"{"component":"backend","device_type":"cpu","endpoint":"clear_kv_blocks","instance_id":18446744073709551615,"namespace":"alpha","transport":{"nats_tcp":"alpha_backend.clear_kv_blocks-ffffffffffffffff"}},"#,
    r#"{"component":"backend","endpoint":"generate","instance_id":9,"namespace":"dynamo","transport":{"nats_tcp":"dynamo_backend.generate-9"}},"#,
    r#"{"component":"backend","endpoint":"generate","instance_id":16,"namespace":"dynamo","transport":{"nats_tcp":"dynamo_backend.generate-10"}},"#,
    r#"{"component":"backend","device_type":"cuda","endpoint":"generate","instance_id":26,"namespace":"dynamo","transport":{"tcp":"10.0.0.7:9000/1a/generate"}},"#,
    r#"{"component":"backend","endpoint":"generate","instance_id":7587888160958627365,"namespace":"dynamo","transport":{"nats_tcp":"dynamo_backend.generate-694d98147d54be25"}},"#,
    r#"{"component":"prefill","endpoint":"generate","instance_id":255,"namespace":"dynamo","transport":{"http":"http://10.0.0.8:8080/v1/rpc/generate"}}"#,
    r#"],"status":"healthy"}"#
);

/// One instance for `ep`/`id` (nats transport, default namespace and component).
fn one(ep: &str, id: u64) -> String {
    format!(
        r#"{{"component":"backend","endpoint":"{ep}","instance_id":{id},"namespace":"dynamo","transport":{{"nats_tcp":"dynamo_backend.{ep}-{id:x}"}}}}"#
    )
}

fn put_one(fake: &FakeEtcd, ep: &str, id: u64) {
    fake.put(
        &format!("v1/instances/dynamo/backend/{ep}/{id:x}"),
        &worker_value("dynamo", "backend", ep, id as i64),
    );
}

/// The healthy body for instances of `dynamo.backend.generate` with `ids` (ascending).
fn healthy(ids: &[u64]) -> String {
    let list: Vec<String> = ids.iter().map(|&i| one("generate", i)).collect();
    format!(
        r#"{{"endpoints":["dyn://dynamo.backend.generate"],"instances":[{}],"status":"healthy"}}"#,
        list.join(",")
    )
}

fn frontend(endpoints: &str) -> Healthd {
    Healthd::start(
        &[
            ("HEALTHD_ROLE", "frontend"),
            ("DYN_HTTP_PORT", "0"),
            ("ETCD_ENDPOINTS", endpoints),
            ("ETCD_LEASE_TTL", TTL),
            ("HEALTHD_SHUTDOWN_GRACE", "1h"),
        ],
        &[],
    )
}

/// Polls until the frontend's /health is exactly `want` (checking /live on the way).
fn until_health(h: &Healthd, want: &str) {
    poll(&format!("/health = {want}"), || {
        let t = Instant::now();
        let r = h.get("/health");
        assert!(
            t.elapsed() < PROBE_DEADLINE,
            "/health took {:?}",
            t.elapsed()
        );
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_live(h);
        r.body == want
    });
}

fn assert_live(h: &Healthd) {
    let t = Instant::now();
    let r = h.get("/live");
    assert!(t.elapsed() < PROBE_DEADLINE, "/live took {:?}", t.elapsed());
    assert_eq!((r.status, r.body.as_str()), (200, LIVE), "{}", h.stderr());
}

#[test]
fn frontend_lists_the_seeded_instances_exactly_and_counts_skipped_keys() {
    let fake = FakeEtcd::start();
    seed(&fake);
    let h = frontend(&fake.url());
    until_health(&h, SEEDED);
    wait_metric(&h, "healthd_etcd_connected", "1");
    assert_eq!(metric(&h, "healthd_etcd_instances").as_deref(), Some("6"));
    assert_eq!(
        metric(&h, "healthd_etcd_keys_skipped_total").as_deref(),
        Some("10"),
        "\n{}",
        h.get("/metrics").body
    );
    let age: f64 = metric(&h, "healthd_etcd_sync_age_seconds")
        .expect("sync age after the first sync")
        .parse()
        .unwrap();
    assert!((0.0..10.0).contains(&age), "{age}");
    // The range the frontend made covers the instances prefix.
    assert!(
        sent(&fake, "/v3/kv/range", |b| {
            field(b, "key").and_then(Value::as_str) == Some("djEvaW5zdGFuY2VzLw==")
                && field(b, "range_end").and_then(Value::as_str) == Some("djEvaW5zdGFuY2VzMA==")
        }) >= 1,
        "{:?}",
        fake.requests_to("/v3/kv/range")
    );
    // Stable: the same answer over more than one confirm period, which is a linearizable
    // range (never `serializable`).
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        assert_eq!(h.get("/health").body, SEEDED);
        std::thread::sleep(Duration::from_millis(100));
    }
    // The confirmation: the newest key of the prefix (keys only, one) with the prefix's count.
    let confirm = |b: &Value| {
        is_confirmation(b) && field(b, "sort_target").and_then(Value::as_str) == Some("MOD")
    };
    assert!(
        sent(&fake, "/v3/kv/range", confirm) >= 1,
        "{:?}",
        fake.requests_to("/v3/kv/range")
    );
    assert_eq!(
        sent(&fake, "/v3/kv/range", |b| {
            field(b, "serializable").and_then(Value::as_bool) == Some(true)
        }),
        0
    );
    assert_eq!(
        metric(&h, "healthd_etcd_keys_skipped_total").as_deref(),
        Some("10"),
        "each bad key counted once"
    );
}

/// More instances than one page of a range: all listed, in order.
#[test]
fn frontend_lists_more_instances_than_one_page() {
    let fake = FakeEtcd::start();
    let ids: Vec<u64> = (1..=1201).collect();
    for &id in &ids {
        put_one(&fake, "generate", id);
    }
    let h = frontend(&fake.url());
    until_health(&h, &healthy(&ids));
    assert_eq!(
        metric(&h, "healthd_etcd_instances").as_deref(),
        Some("1201")
    );
    put_one(&fake, "generate", 5000);
    let mut more = ids.clone();
    more.push(5000);
    until_health(&h, &healthy(&more));
}

#[test]
fn frontend_follows_watch_events() {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    let h = frontend(&fake.url());
    until_health(&h, &healthy(&[ID_A]));
    poll("a watch open", || fake.watches_open() >= 1);

    put_one(&fake, "generate", 0x2b);
    until_health(&h, &healthy(&[0x2b, ID_A]));
    fake.delete(&format!("v1/instances/dynamo/backend/generate/{ID_A:x}"));
    until_health(&h, &healthy(&[0x2b]));
    fake.delete("v1/instances/dynamo/backend/generate/2b");
    until_health(&h, NONE);
    // A bad key arriving by watch is skipped and counted too.
    fake.put("v1/instances/dynamo/backend/generate/b1", "{");
    poll("the bad key counted", || {
        metric(&h, "healthd_etcd_keys_skipped_total").as_deref() == Some("1")
    });
    assert_eq!(h.get("/health").body, NONE);
    put_one(&fake, "generate", 0x2c);
    until_health(&h, &healthy(&[0x2c]));
    assert_eq!(metric(&h, "healthd_etcd_instances").as_deref(), Some("1"));
    // An update of a known key replaces its instance; a transport is shown as found (compact,
    // its own field order kept).
    fake.put(
        "v1/instances/dynamo/backend/generate/2c",
        r#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":44,"transport":{"tcp": {"port": 9000, "host": "10.0.0.9", "tags": ["b", "a"], "tls": false, "x": null}},"device_type":"cuda"}"#,
    );
    until_health(
        &h,
        concat!(
            r#"{"endpoints":["dyn://dynamo.backend.generate"],"instances":[{"component":"backend","device_type":"cuda","endpoint":"generate","instance_id":44,"namespace":"dynamo","#,
            r#""transport":{"tcp":{"port":9000,"host":"10.0.0.9","tags":["b","a"],"tls":false,"x":null}}}],"status":"healthy"}"#
        ),
    );
}

/// A worker and a frontend on one etcd: the frontend lists exactly what the worker registered,
/// and the worker's SIGTERM (one revoke, every key deleted in one watch event) empties the list.
#[test]
fn a_frontend_lists_what_a_worker_registers() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("e2e");
    tmp.write("ready\ngenerate=ready\nprefill=ready\nclear_kv_blocks=ready\n");
    let w = worker(&tmp, Some(&fake));
    let f = frontend(&fake.url());
    let id = LEASE_IDS[0] as u64;
    let want = format!(
        r#"{{"endpoints":["dyn://dynamo.backend.clear_kv_blocks","dyn://dynamo.backend.generate","dyn://dynamo.backend.prefill"],"instances":[{},{},{}],"status":"healthy"}}"#,
        one("clear_kv_blocks", id),
        one("generate", id),
        one("prefill", id)
    );
    until_health(&f, &want);
    tmp.write("ready\ngenerate=ready\nprefill=notready\nclear_kv_blocks=ready\n");
    let want = format!(
        r#"{{"endpoints":["dyn://dynamo.backend.clear_kv_blocks","dyn://dynamo.backend.generate"],"instances":[{},{}],"status":"healthy"}}"#,
        one("clear_kv_blocks", id),
        one("generate", id),
    );
    until_health(&f, &want);
    w.signal(libc::SIGTERM);
    until_health(&f, NONE);
}

#[test]
fn frontend_with_no_keys_says_no_endpoints() {
    let fake = FakeEtcd::start();
    let h = frontend(&fake.url());
    until_health(&h, NONE);
    wait_metric(&h, "healthd_etcd_instances", "0");
    wait_metric(&h, "healthd_etcd_connected", "1");
}

/// A watch stream cut in the middle of an event line: healthd reconnects and ends with the right
/// list (the change carried by the cut line is not lost).
#[test]
fn frontend_recovers_from_a_watch_cut_mid_line() {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    let h = frontend(&fake.url());
    until_health(&h, &healthy(&[ID_A]));
    poll("a watch open", || fake.watches_open() >= 1);
    let watches = fake.requests_to("/v3/watch").len();
    let ranges = full_ranges(&fake);

    fake.put_and_cut(
        "v1/instances/dynamo/backend/generate/2b",
        &worker_value("dynamo", "backend", "generate", 0x2b),
    );
    until_health(&h, &healthy(&[0x2b, ID_A]));
    poll("a new watch", || {
        fake.requests_to("/v3/watch").len() > watches && fake.watches_open() >= 1
    });
    assert!(full_ranges(&fake) > ranges, "ranged again after the cut");

    let watches = fake.requests_to("/v3/watch").len();
    let ranges = full_ranges(&fake);
    fake.delete_and_cut(&format!("v1/instances/dynamo/backend/generate/{ID_A:x}"));
    until_health(&h, &healthy(&[0x2b]));
    poll("a new watch", || {
        fake.requests_to("/v3/watch").len() > watches && fake.watches_open() >= 1
    });
    assert!(full_ranges(&fake) > ranges, "ranged again after the cut");
    // And the new watch works.
    put_one(&fake, "generate", 0x2c);
    until_health(&h, &healthy(&[0x2b, 0x2c]));
}

/// The frontend's confirmation: the prefix's newest key (keys only, one) and its count.
fn is_confirmation(b: &Value) -> bool {
    field(b, "keys_only").and_then(Value::as_bool) == Some(true)
        && field(b, "limit").and_then(Value::as_str) == Some("1")
}

/// Ranges that list keys (not the confirmations).
fn full_ranges(fake: &FakeEtcd) -> usize {
    sent(fake, "/v3/kv/range", |b| !is_confirmation(b))
}

/// A watch cut right after a change that was then compacted away: resuming from the next revision
/// is answered "compacted", so healthd must range again; either way the list ends right.
#[test]
fn frontend_recovers_from_a_compacted_revision() {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    let h = frontend(&fake.url());
    until_health(&h, &healthy(&[ID_A]));
    poll("a watch open", || fake.watches_open() >= 1);
    let ranges = fake.requests_to("/v3/kv/range").len();
    fake.put_compact_and_cut(
        "v1/instances/dynamo/backend/generate/2b",
        &worker_value("dynamo", "backend", "generate", 0x2b),
    );
    until_health(&h, &healthy(&[0x2b, ID_A]));
    assert!(
        sent(&fake, "/v3/kv/range", |b| !is_confirmation(b)) > 0
            && fake.requests_to("/v3/kv/range").len() > ranges,
        "ranged again"
    );
    put_one(&fake, "generate", 0x2c);
    until_health(&h, &healthy(&[0x2b, 0x2c, ID_A]));
}

/// Every new watch is cut right after its created line while the keys change: once the streams
/// hold again, the list is right and followed.
#[test]
fn frontend_recovers_from_watch_streams_cut_repeatedly() {
    watch_streams_break_repeatedly(Fault::CutWatch);
}

/// Every new watch ends cleanly (no cancel line, no error) right after its created line.
#[test]
fn frontend_recovers_from_watch_streams_that_end_cleanly() {
    watch_streams_break_repeatedly(Fault::EndWatch);
}

/// A member that ends every watch right after creating it (a proxy with a short stream timeout):
/// each round ranges the whole prefix again, so the rounds must back off like failed ones
/// ("backoff after a full round capped at 800 ms") instead of hammering etcd.
#[test]
fn frontend_backs_off_when_every_watch_ends_at_once() {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    let h = frontend(&fake.url());
    until_health(&h, &healthy(&[ID_A]));
    fake.set_fault(Fault::EndWatch);
    let before = full_ranges(&fake);
    // With the backoff doubling from 100 ms to its 800 ms cap, at most about 8 rounds fit in
    // 2 s; without it, about 25.
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        assert_live(&h);
        std::thread::sleep(Duration::from_millis(100));
    }
    let rounds = full_ranges(&fake) - before;
    assert!(rounds <= 10, "{rounds} full ranges in 2 s");
}

fn watch_streams_break_repeatedly(fault: Fault) {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    let h = frontend(&fake.url());
    until_health(&h, &healthy(&[ID_A]));
    // Every watch breaks right after it is created, while the keys change.
    fake.set_fault(fault);
    put_one(&fake, "generate", 0x2b);
    fake.delete(&format!("v1/instances/dynamo/backend/generate/{ID_A:x}"));
    poll("several watch attempts", || {
        fake.requests_to("/v3/watch").len() >= 3
    });
    assert_live(&h);
    fake.set_fault(Fault::Good);
    until_health(&h, &healthy(&[0x2b]));
    put_one(&fake, "generate", 0x2c);
    until_health(&h, &healthy(&[0x2b, 0x2c]));
}

/// `fault` after a good sync: the list stays, then after one TTL without confirmation the answer
/// is "Discovery unavailable since ..."; /live never changes; when the fake recovers the list
/// comes back, and later changes are seen (the watch is alive again).
fn frontend_outage(fault: Fault) {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    let mut h = frontend(&fake.url());
    until_health(&h, &healthy(&[ID_A]));
    wait_metric(&h, "healthd_etcd_connected", "1");

    let at = Instant::now();
    fake.set_fault(fault);
    let list = healthy(&[ID_A]);
    poll("discovery unavailable", || {
        assert_live(&h);
        let r = h.get("/health");
        assert_eq!(r.status, 200);
        if !is_unavailable(&r.body) {
            assert_eq!(
                r.body, list,
                "the last list is shown until it is unavailable"
            );
        }
        is_unavailable(&r.body)
    });
    // Not before one TTL after the last answer etcd gave (the confirmation can only be later
    // than that answer), and not long after one TTL from the fault (asserted loosely).
    let seen = Instant::now();
    let last_good = fake
        .requests()
        .iter()
        .filter(|r| r.fault == Fault::Good && r.at <= at)
        .map(|r| r.at)
        .max()
        .unwrap();
    let ttl = Duration::from_secs(TTL.parse().unwrap());
    assert!(
        seen + Duration::from_millis(50) >= last_good + ttl,
        "unavailable {:?} after etcd's last answer (TTL {TTL} s)",
        seen - last_good
    );
    assert!(
        seen - at < Duration::from_secs(5),
        "unavailable only {:?} after the fault",
        seen - at
    );
    assert_unavailable(&h.get("/health").body);
    wait_metric(&h, "healthd_etcd_connected", "0");
    let (open, refused) = fake.connections();
    assert!(
        open <= 2 && refused == 0,
        "connections held at the fake: {open}, refused {refused}"
    );
    assert!(h.child.try_wait().is_ok_and(|s| s.is_none()));
    // The metric agrees with the message: not confirmed for longer than the TTL.
    let age: f64 = metric(&h, "healthd_etcd_sync_age_seconds")
        .expect("sync age after a sync")
        .parse()
        .unwrap();
    assert!(age >= 1.9, "sync age {age} while unavailable");

    // Back, with what changed meanwhile.
    fake.delete(&format!("v1/instances/dynamo/backend/generate/{ID_A:x}"));
    put_one(&fake, "generate", 0x2a);
    fake.set_fault(Fault::Good);
    until_health(&h, &healthy(&[0x2a]));
    wait_metric(&h, "healthd_etcd_connected", "1");
    put_one(&fake, "generate", 0x2b);
    until_health(&h, &healthy(&[0x2a, 0x2b]));
}

#[test]
fn frontend_outage_garbage() {
    frontend_outage(Fault::Garbage);
}

#[test]
fn frontend_outage_http_500() {
    frontend_outage(Fault::Http500);
}

#[test]
fn frontend_outage_silence() {
    frontend_outage(Fault::Silent);
}

#[test]
fn frontend_outage_trickle() {
    frontend_outage(Fault::Trickle);
}

#[test]
fn frontend_outage_resets() {
    frontend_outage(Fault::Reset);
}

/// 100 MB answers: unavailable, bounded memory, back when the fake recovers.
#[test]
fn frontend_outage_100_mb_bodies() {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    let h = frontend(&fake.url());
    until_health(&h, &healthy(&[ID_A]));
    fake.set_fault(Fault::Huge);
    let pid = h.child.id();
    poll("discovery unavailable", || {
        assert_live(&h);
        assert!(rss_kib(pid) < 16 * 1024, "VmRSS {} KiB", rss_kib(pid));
        is_unavailable(&h.get("/health").body)
    });
    poll("two 100 MB answers ended", || fake.huge_done().0 >= 2);
    assert!(rss_kib(pid) < 16 * 1024, "VmRSS {} KiB", rss_kib(pid));
    fake.set_fault(Fault::Good);
    until_health(&h, &healthy(&[ID_A]));
}

#[test]
fn frontend_with_every_member_down_is_unavailable_and_live() {
    let list = format!(
        "http://127.0.0.1:{},http://127.0.0.1:{}",
        dead_port(),
        dead_port()
    );
    let h = frontend(&list);
    poll("discovery unavailable", || {
        assert_live(&h);
        is_unavailable(&h.get("/health").body)
    });
    assert_unavailable(&h.get("/health").body);
    assert_eq!(metric(&h, "healthd_etcd_connected").as_deref(), Some("0"));
    assert_eq!(
        metric(&h, "healthd_etcd_sync_age_seconds"),
        None,
        "never synced"
    );
}

/// A frontend that never reaches etcd says so once in its log (as a worker does), naming the
/// member: the operator of a mistyped ETCD_ENDPOINTS should not need to curl /health to learn it.
#[test]
fn frontend_that_never_reaches_etcd_says_so_in_its_log() {
    let port = dead_port();
    let h = frontend(&format!("http://127.0.0.1:{port}"));
    poll("discovery unavailable", || {
        is_unavailable(&h.get("/health").body)
    });
    let member = format!("127.0.0.1:{port}");
    poll("a warning naming the member", || {
        h.stderr()
            .lines()
            .any(|l| l.contains("warning") && l.contains(&member))
    });
}

#[test]
fn frontend_fails_over_from_a_dead_first_member() {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    // Spaces around items are ignored.
    let list = format!(" http://127.0.0.1:{} , {} ", dead_port(), fake.url());
    let h = frontend(&list);
    until_health(&h, &healthy(&[ID_A]));
    put_one(&fake, "generate", 0x2b);
    until_health(&h, &healthy(&[0x2b, ID_A]));
}

/// The first member fails in `fault`; the frontend lists from the second, and follows it.
fn frontend_fails_over_from(fault: Fault) {
    let first = FakeEtcd::start();
    first.set_fault(fault);
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    let h = frontend(&format!("{},{}", first.url(), fake.url()));
    until_health(&h, &healthy(&[ID_A]));
    put_one(&fake, "generate", 0x2b);
    until_health(&h, &healthy(&[0x2b, ID_A]));
    assert!(!first.requests().is_empty(), "the first member was tried");
}

#[test]
fn frontend_fails_over_from_a_first_member_without_leader() {
    frontend_fails_over_from(Fault::NoLeader);
}

#[test]
fn frontend_fails_over_from_a_first_member_answering_500() {
    frontend_fails_over_from(Fault::Http500);
}

#[test]
fn frontend_fails_over_from_a_first_member_answering_garbage() {
    frontend_fails_over_from(Fault::Garbage);
}

#[test]
fn frontend_fails_over_from_a_first_member_trickling() {
    frontend_fails_over_from(Fault::Trickle);
}

#[test]
fn frontend_fails_over_from_a_first_member_resetting() {
    frontend_fails_over_from(Fault::Reset);
}

/// Two members with the same keys; the watched one loses its leader: the frontend moves to the
/// other, ranges there and follows it.
#[test]
fn frontend_moves_to_the_next_member_when_the_watched_one_loses_its_leader() {
    let (m1, m2) = (FakeEtcd::start(), FakeEtcd::start());
    for m in [&m1, &m2] {
        put_one(m, "generate", ID_A);
    }
    let h = frontend(&format!("{},{}", m1.url(), m2.url()));
    until_health(&h, &healthy(&[ID_A]));
    poll("watching the first member", || m1.watches_open() == 1);
    m1.set_fault(Fault::NoLeader);
    // Only the second member has the new key (the two fakes are not one cluster).
    put_one(&m2, "generate", 0x2b);
    until_health(&h, &healthy(&[0x2b, ID_A]));
    poll("watching the second member", || m2.watches_open() == 1);
}

/// The worker's member loses its leader: it fails over and registers on the next member.
#[test]
fn worker_moves_to_the_next_member_when_its_member_loses_its_leader() {
    let (m1, m2) = (FakeEtcd::start(), FakeEtcd::start());
    let tmp = Tmp::new("wnoleader");
    tmp.write("ready\ngenerate=ready\n");
    let file = tmp.file_str();
    let list = format!("{},{}", m1.url(), m2.url());
    let h = Healthd::start(
        &[
            ("HEALTHD_READY_FILE", file.as_str()),
            ("HEALTHD_REGISTER", "on"),
            ("ETCD_ENDPOINTS", list.as_str()),
            ("ETCD_LEASE_TTL", TTL),
        ],
        &[],
    );
    poll("registered on the first member", || registered(&m1));
    m1.set_fault(Fault::NoLeader);
    poll("registered on the second member", || registered(&m2));
    assert_eq!(h.get("/health").status, 200);
}

/// A worker whose first member fails in `fault` registers through the second.
fn worker_fails_over_from(fault: Fault) {
    let first = FakeEtcd::start();
    first.set_fault(fault);
    let fake = FakeEtcd::start();
    let tmp = Tmp::new(&format!("wfo-{fault:?}"));
    tmp.write("ready\ngenerate=ready\n");
    let file = tmp.file_str();
    let list = format!("{},{}", first.url(), fake.url());
    let h = Healthd::start(
        &[
            ("HEALTHD_READY_FILE", file.as_str()),
            ("HEALTHD_REGISTER", "on"),
            ("ETCD_ENDPOINTS", list.as_str()),
            ("ETCD_LEASE_TTL", TTL),
        ],
        &[],
    );
    poll("registered through the second member", || registered(&fake));
    assert!(!first.requests().is_empty(), "the first member was tried");
    assert_eq!(h.get("/health").status, 200);
}

#[test]
fn worker_fails_over_from_a_first_member_without_leader() {
    worker_fails_over_from(Fault::NoLeader);
}

#[test]
fn worker_fails_over_from_a_hung_first_member() {
    worker_fails_over_from(Fault::Silent);
}

#[test]
fn worker_fails_over_from_a_first_member_trickling() {
    worker_fails_over_from(Fault::Trickle);
}

#[test]
fn worker_fails_over_from_a_first_member_answering_500() {
    worker_fails_over_from(Fault::Http500);
}

/// A member that hangs and later applies what it was sent: a delete that lands after healthd gave
/// up on it, and after the endpoint became ready again, does not leave the ready endpoint
/// unregistered for good.
#[test]
fn worker_converges_after_late_writes_from_a_hung_member() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("late");
    tmp.write("ready\ngenerate=ready\n");
    let file = tmp.file_str();
    let _h = worker(&tmp, Some(&fake));
    poll("registered", || registered(&fake));
    fake.set_fault(Fault::Delay);
    let set = |args: &[&str]| {
        let mut a = vec!["set"];
        a.extend_from_slice(args);
        let (code, _, err) = run(&[("HEALTHD_READY_FILE", file.as_str())], &a);
        assert_eq!(code, 0, "{err}");
    };
    set(&["generate", "notready"]);
    poll("the delete sent", || {
        fake.requests().iter().any(|r| {
            r.fault == Fault::Delay && (r.path == "/v3/kv/txn" || r.path == "/v3/kv/deleterange")
        })
    });
    set(&["generate", "ready"]);
    // The retry after the first deadline meets the hung member too.
    poll("a second call to the hung member", || {
        fake.requests()
            .iter()
            .filter(|r| r.fault == Fault::Delay)
            .count()
            >= 2
    });
    fake.set_fault(Fault::Good);
    let calm = Instant::now() + Duration::from_millis(1600);
    poll("registered after every late write landed", || {
        Instant::now() > calm && registered(&fake)
    });
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        assert!(registered(&fake), "{:?}", fake.keys());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A key deleted behind the worker's back (an operator's `etcdctl del`, a restore) while its
/// lease lives on: "a key exists exactly while its endpoint is ready", so it comes back.
#[test]
fn worker_restores_a_key_deleted_behind_its_back() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("foreigndel");
    tmp.write("ready\ngenerate=ready\n");
    let _h = worker(&tmp, Some(&fake));
    let key = worker_key("dynamo", "backend", "generate", LEASE_IDS[0]);
    poll("registered", || fake.key(&key).is_some());
    fake.delete(&key);
    poll("the key written again", || fake.key(&key).is_some());
    assert!(registered(&fake));
}

/// A watch that stays open but stops delivering (a stuck member, a buffering proxy) while the
/// member answers ranges: the frontend must not show a stale list as in sync for ever; within
/// a few TTLs it shows the new key (or says the list is unavailable).
#[test]
fn frontend_does_not_trust_a_stalled_watch_for_ever() {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    let h = frontend(&fake.url());
    until_health(&h, &healthy(&[ID_A]));
    fake.set_fault(Fault::StallWatch);
    put_one(&fake, "generate", 0x2b);
    poll("the new key or unavailable", || {
        let body = h.get("/health").body;
        body == healthy(&[0x2b, ID_A]) || is_unavailable(&body)
    });
}

/// The same with an update of a key that exists (the count does not change, the newest
/// modification revision does).
#[test]
fn frontend_does_not_trust_a_stalled_watch_that_missed_an_update() {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    put_one(&fake, "generate", 0x2b);
    let h = frontend(&fake.url());
    until_health(&h, &healthy(&[0x2b, ID_A]));
    fake.set_fault(Fault::StallWatch);
    fake.put(
        "v1/instances/dynamo/backend/generate/2b",
        r#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":43,"transport":{"nats_tcp":"moved"}}"#,
    );
    let moved = format!(
        r#"{{"endpoints":["dyn://dynamo.backend.generate"],"instances":[{{"component":"backend","endpoint":"generate","instance_id":43,"namespace":"dynamo","transport":{{"nats_tcp":"moved"}}}},{}],"status":"healthy"}}"#,
        one("generate", ID_A)
    );
    poll("the update or unavailable", || {
        let body = h.get("/health").body;
        body == moved || is_unavailable(&body)
    });
}

#[test]
fn frontend_fails_over_from_a_hung_first_member() {
    let hung = FakeEtcd::start();
    hung.set_fault(Fault::Silent);
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    let list = format!("{},{}", hung.url(), fake.url());
    let h = frontend(&list);
    until_health(&h, &healthy(&[ID_A]));
    put_one(&fake, "generate", 0x2b);
    until_health(&h, &healthy(&[0x2b, ID_A]));
    assert!(!hung.requests().is_empty(), "the first member was tried");
}

/// The frontend logs in too; an expired token is renewed and the list keeps following etcd.
#[test]
fn frontend_authenticates_and_renews_an_expired_token() {
    let fake = FakeEtcd::start();
    fake.require_auth("reader", "pw");
    put_one(&fake, "generate", ID_A);
    let url = fake.url();
    let h = Healthd::start(
        &[
            ("HEALTHD_ROLE", "frontend"),
            ("DYN_HTTP_PORT", "0"),
            ("ETCD_ENDPOINTS", url.as_str()),
            ("ETCD_LEASE_TTL", TTL),
            ("ETCD_AUTH_USERNAME", "reader"),
            ("ETCD_AUTH_PASSWORD", "pw"),
        ],
        &[],
    );
    until_health(&h, &healthy(&[ID_A]));
    fake.expire_tokens();
    let issued = fake.tokens_issued();
    poll("a new token", || fake.tokens_issued() > issued);
    put_one(&fake, "generate", 0x2b);
    until_health(&h, &healthy(&[0x2b, ID_A]));
    // Confirmations keep succeeding with the new token: never unavailable over a TTL.
    let end = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < end {
        assert_eq!(h.get("/health").body, healthy(&[0x2b, ID_A]));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A wrong password on the frontend: unavailable (never synced), /live as always.
#[test]
fn frontend_with_a_wrong_password_is_unavailable() {
    let fake = FakeEtcd::start();
    fake.require_auth("reader", "pw");
    put_one(&fake, "generate", ID_A);
    let url = fake.url();
    let h = Healthd::start(
        &[
            ("HEALTHD_ROLE", "frontend"),
            ("DYN_HTTP_PORT", "0"),
            ("ETCD_ENDPOINTS", url.as_str()),
            ("ETCD_LEASE_TTL", TTL),
            ("ETCD_AUTH_USERNAME", "reader"),
            ("ETCD_AUTH_PASSWORD", "nope"),
        ],
        &[],
    );
    poll("discovery unavailable", || {
        assert_live(&h);
        is_unavailable(&h.get("/health").body)
    });
    assert_unavailable(&h.get("/health").body);
}

/// Names and transports with quotes, backslashes, control characters and non-ASCII text: the
/// body stays valid JSON and says what etcd holds (listed with the same strings, or skipped and
/// counted), never a broken or injected document.
#[test]
fn frontend_escapes_what_it_renders() {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    let transport = r#"{"nats_tcp":"caf\u00e9 \"q\" \\ \/ \u0001\n\t end","x":"</script>"}"#;
    fake.put(
        "v1/instances/dynamo/backend/generate/2b",
        &format!(
            r#"{{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":43,"transport":{transport},"device_type":"gpu \"x\" \u00fc"}}"#
        ),
    );
    fake.put(
        "v1/instances/we\"i\\rd/backend/generate/2c",
        r#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"we\"i\\rd","instance_id":44,"transport":{"nats_tcp":"x"}}"#,
    );
    fake.put(
        "v1/instances/ns\u{e9}/b\u{1}c/generate/2d",
        "{\"type\":\"Endpoint\",\"component\":\"b\\u0001c\",\"endpoint\":\"generate\",\"namespace\":\"ns\u{e9}\",\"instance_id\":45,\"transport\":{\"nats_tcp\":\"x\"}}",
    );
    let h = frontend(&fake.url());
    poll("the list", || {
        h.get("/health").body.contains(r#""status":"healthy""#)
    });
    let body = h.get("/health").body;
    let doc: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let instances = doc["instances"].as_array().unwrap();
    let find = |id: u64| {
        instances
            .iter()
            .find(|i| i["instance_id"].as_u64() == Some(id))
    };
    let want: Value = serde_json::from_str(transport).unwrap();
    let i = find(43).unwrap_or_else(|| panic!("43 missing: {body}"));
    assert_eq!(i["transport"], want, "{body}");
    assert_eq!(
        i["device_type"].as_str(),
        Some("gpu \"x\" \u{fc}"),
        "{body}"
    );
    let listed = [44, 45].iter().filter(|&&id| find(id).is_some()).count();
    if let Some(i) = find(44) {
        assert_eq!(i["namespace"].as_str(), Some("we\"i\\rd"), "{body}");
    }
    if let Some(i) = find(45) {
        assert_eq!(
            (i["namespace"].as_str(), i["component"].as_str()),
            (Some("ns\u{e9}"), Some("b\u{1}c")),
            "{body}"
        );
    }
    let endpoints = doc["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1 + listed, "{body}");
    assert_eq!(
        metric(&h, "healthd_etcd_keys_skipped_total"),
        Some((2 - listed).to_string()),
        "{body}"
    );
    // The metrics text stays parseable too: one sample per line.
    let m = h.get("/metrics").body;
    assert!(
        m.lines()
            .all(|l| l.starts_with('#') || l.rsplit_once(' ').is_some()),
        "{m}"
    );
}

/// One value as large as etcd accepts (its default request limit is 1.5 MiB) under the instances
/// prefix: a key that does not parse, so it is skipped and counted, and the good key is listed.
/// The range answer is under 2 MB.
#[test]
fn frontend_skips_a_value_as_large_as_etcd_allows() {
    huge_values_next_to_a_good_key(1);
}

/// Three such values: one page of the range is then larger than healthd's 4 MiB answer cap. They
/// are still only keys that do not parse; they must not hide the good key.
#[test]
fn frontend_is_not_blinded_by_a_few_huge_values() {
    huge_values_next_to_a_good_key(3);
}

fn huge_values_next_to_a_good_key(n: usize) {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    let junk = "j".repeat(1400 * 1024);
    for i in 0..n {
        fake.put(&format!("v1/instances/dynamo/backend/generate/{i}"), &junk);
    }
    let h = frontend(&fake.url());
    until_health(&h, &healthy(&[ID_A]));
    wait_metric(&h, "healthd_etcd_keys_skipped_total", &n.to_string());
}

/// Ranges that carry undecodable keys and values next to good ones: the good ones are listed,
/// the bad ones counted.
#[test]
fn frontend_skips_undecodable_keys_in_a_range() {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    fake.set_fault(Fault::BadRange);
    let h = frontend(&fake.url());
    until_health(&h, &healthy(&[ID_A]));
    wait_metric(&h, "healthd_etcd_keys_skipped_total", "3");
    put_one(&fake, "generate", 0x2b);
    until_health(&h, &healthy(&[0x2b, ID_A]));
}

/// etcd back without its data (revision 1 again): the frontend ranges the new data (a watch
/// resumed from the old revision would wait for a revision that may never come), and the worker
/// registers again under a new lease, which the frontend lists.
#[test]
fn etcd_back_without_its_data() {
    let fake = FakeEtcd::start();
    let tmp = Tmp::new("wipe");
    tmp.write("ready\ngenerate=ready\n");
    let _w = worker(&tmp, Some(&fake));
    // Revisions well past what the wiped etcd will reach soon.
    for i in 0..20 {
        fake.put("v1/other/x", &i.to_string());
    }
    let f = frontend(&fake.url());
    let first = LEASE_IDS[0] as u64;
    let list = |id: u64| {
        format!(
            r#"{{"endpoints":["dyn://dynamo.backend.generate"],"instances":[{}],"status":"healthy"}}"#,
            one("generate", id)
        )
    };
    until_health(&f, &list(first));
    fake.wipe();
    let second = LEASE_IDS[1] as u64;
    until_health(&f, &list(second));
    assert!(registered(&fake));
    // And the frontend follows the new revisions.
    put_one(&fake, "prefill", 0x2b);
    poll("the new key listed", || {
        f.get("/health")
            .body
            .contains("dyn://dynamo.backend.prefill")
    });
}

/// Keys that stop parsing later (an update by another writer) drop out of the list, and come
/// back when fixed.
#[test]
fn frontend_drops_a_key_whose_update_does_not_parse() {
    let fake = FakeEtcd::start();
    put_one(&fake, "generate", ID_A);
    put_one(&fake, "generate", 0x2b);
    let h = frontend(&fake.url());
    until_health(&h, &healthy(&[0x2b, ID_A]));
    fake.put("v1/instances/dynamo/backend/generate/2b", "garbage");
    until_health(&h, &healthy(&[ID_A]));
    poll("counted", || {
        metric(&h, "healthd_etcd_keys_skipped_total").as_deref() == Some("1")
    });
    // Fixed by its writer: listed again; broken again: dropped again.
    put_one(&fake, "generate", 0x2b);
    until_health(&h, &healthy(&[0x2b, ID_A]));
    fake.put("v1/instances/dynamo/backend/generate/2b", "{}");
    until_health(&h, &healthy(&[ID_A]));
    let skipped: u64 = metric(&h, "healthd_etcd_keys_skipped_total")
        .unwrap()
        .parse()
        .unwrap();
    assert!(skipped >= 1, "a total never goes down");
}
