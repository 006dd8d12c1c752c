//! The Kubernetes apiserver-style probe routes: `/livez`, `/readyz`, one check alone at
//! `/livez/{check}` or `/readyz/{check}`, `?verbose` and `?exclude={check}` (repeatable).
//!
//! `/readyz` checks, in order: `process` (only when no endpoints are required, because then the
//! process status decides readiness), one check per required endpoint, and `shutdown`, which
//! fails once draining began. The verdict is therefore always the same as the Dynamo health
//! path's. `/livez` has one check, `ping`, that passes as long as healthd answers, so that
//! liveness stays ok while readiness fails during a drain (the Kubernetes drain pattern).
//! Output follows `k8s.io/apiserver/pkg/server/healthz`: `ok`, or one `[+]name ok` /
//! `[-]name failed: reason withheld` line per check and a verdict line; failures are always
//! verbose and answer 500.

use std::fmt::Write as _;

use super::{Head, TEXT};
use crate::state::Liveness;
use crate::state::{Health, State};

/// The paths this dialect answers, for the router and the collision check.
pub fn matches(path: &str) -> bool {
    probe_of(path).is_some()
}

/// `(probe name, check name)` for `/livez`, `/readyz`, `/livez/{check}`, `/readyz/{check}`.
fn probe_of(path: &str) -> Option<(&'static str, Option<&str>)> {
    for probe in ["livez", "readyz"] {
        if let Some(rest) = path.strip_prefix('/').and_then(|p| p.strip_prefix(probe)) {
            if rest.is_empty() {
                return Some((probe, None));
            }
            if let Some(check) = rest.strip_prefix('/').filter(|c| !c.is_empty()) {
                return Some((probe, Some(check)));
            }
        }
    }
    None
}

/// One check: its name and, when it fails, why (shown only on the single-check route).
struct Check {
    name: String,
    failure: Option<String>,
}

fn checks(probe: &str, state: &State, live: Liveness) -> Vec<Check> {
    let check = |name: &str, failure: Option<String>| Check {
        name: name.to_string(),
        failure,
    };
    // Liveness checks fail both probes (a stuck process is neither live nor ready). They are
    // listed only where they can fail: with a heartbeat watchdog, or once the child exited.
    let mut out = Vec::new();
    match live {
        Liveness::Exited(_) => out.push(check("child", Some(live.reason()))),
        Liveness::Stale(_) => out.push(check("heartbeat", Some(live.reason()))),
        Liveness::Live if state.heartbeat_deadline().is_some() => {
            out.push(check("heartbeat", None))
        }
        Liveness::Live => {}
    }
    if probe == "livez" {
        out.insert(0, check("ping", None));
        return out;
    }
    if state.required().is_empty() {
        let ok = state.process().is_ready();
        out.push(check("process", (!ok).then(|| "process not ready".into())));
    }
    for name in state.required() {
        let ok = state.endpoint(name) == Some(Health::Ready);
        out.push(check(
            name,
            (!ok).then(|| format!("endpoint {name} not ready")),
        ));
    }
    let failure = state
        .draining()
        .then(|| "process is shutting down".to_string());
    out.push(check("shutdown", failure));
    out
}

/// Answers `/livez`, `/readyz` or one of their checks; `query` is the raw query string.
pub fn respond(state: &State, live: Liveness, path: &str, query: &str, body: &mut Vec<u8>) -> Head {
    let Some((probe, single)) = probe_of(path) else {
        body.extend_from_slice(b"Route not found");
        return Head::new(404, TEXT);
    };
    let all = checks(probe, state, live);
    if let Some(name) = single {
        return match all.iter().find(|c| c.name == name) {
            None => {
                body.extend_from_slice(b"Route not found");
                Head::new(404, TEXT)
            }
            Some(Check { failure: None, .. }) => {
                body.extend_from_slice(b"ok");
                Head::new(200, TEXT)
            }
            Some(Check {
                failure: Some(why), ..
            }) => {
                let _ = writeln!(Text(body), "internal server error: {why}");
                Head::new(500, TEXT)
            }
        };
    }
    let mut verbose = false;
    let mut excluded: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("verbose", _) => verbose = true,
            ("exclude", name) if !name.is_empty() => excluded.push(name),
            _ => {}
        }
    }
    let mut lines = String::new();
    let mut failed = false;
    for c in &all {
        if excluded.contains(&c.name.as_str()) {
            excluded.retain(|e| *e != c.name);
            let _ = writeln!(lines, "[+]{} excluded: ok", c.name);
        } else if c.failure.is_some() {
            failed = true;
            let _ = writeln!(lines, "[-]{} failed: reason withheld", c.name);
        } else {
            let _ = writeln!(lines, "[+]{} ok", c.name);
        }
    }
    if !excluded.is_empty() {
        excluded.sort_unstable();
        excluded.dedup();
        let quoted: Vec<String> = excluded.iter().map(|e| format!("{e:?}")).collect();
        let _ = writeln!(
            lines,
            "warn: some health checks cannot be excluded: no matches for {}",
            quoted.join(",")
        );
    }
    let status = if failed {
        let _ = writeln!(lines, "{probe} check failed");
        500
    } else if verbose {
        let _ = writeln!(lines, "{probe} check passed");
        200
    } else {
        lines = "ok".to_string();
        200
    };
    body.extend_from_slice(lines.as_bytes());
    Head::new(status, TEXT)
}

/// `fmt::Write` into a body buffer.
struct Text<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Source, Update};
    use std::time::Instant;

    fn check(state: &State, target: &str, status: u16, text: &str) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut body = Vec::new();
        let head = respond(state, Liveness::Live, path, query, &mut body);
        assert_eq!(
            (
                head.status,
                head.content_type,
                String::from_utf8(body).unwrap().as_str()
            ),
            (status, TEXT, text),
            "{target}"
        );
    }

    #[test]
    fn process_status_decides_without_required_endpoints() {
        let mut s = State::new(Instant::now(), Health::NotReady, vec![]);
        let failed = "[-]process failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n";
        check(&s, "/readyz", 500, failed);
        check(&s, "/readyz?verbose", 500, failed);
        check(&s, "/readyz?exclude=process", 200, "ok");
        check(
            &s,
            "/readyz?exclude=process&verbose=1&exclude=nope&exclude=process",
            200,
            "[+]process excluded: ok\n[+]shutdown ok\nwarn: some health checks cannot be excluded: no matches for \"nope\"\nreadyz check passed\n",
        );
        check(
            &s,
            "/readyz/process",
            500,
            "internal server error: process not ready\n",
        );
        check(&s, "/readyz/shutdown", 200, "ok");
        check(&s, "/readyz/nope", 404, "Route not found");
        check(&s, "/livez", 200, "ok");
        check(
            &s,
            "/livez?verbose",
            200,
            "[+]ping ok\nlivez check passed\n",
        );
        check(&s, "/livez/ping", 200, "ok");
        s.apply(Update::Process(Health::Ready), Source::Cli);
        check(&s, "/readyz", 200, "ok");
        check(
            &s,
            "/readyz?verbose",
            200,
            "[+]process ok\n[+]shutdown ok\nreadyz check passed\n",
        );
        s.apply(Update::Drain, Source::Signal);
        check(
            &s,
            "/readyz?verbose",
            500,
            "[-]process failed: reason withheld\n[-]shutdown failed: reason withheld\nreadyz check failed\n",
        );
        check(
            &s,
            "/readyz/shutdown",
            500,
            "internal server error: process is shutting down\n",
        );
        check(&s, "/livez", 200, "ok");
    }

    #[test]
    fn one_check_per_required_endpoint() {
        let mut s = State::new(
            Instant::now(),
            Health::NotReady,
            vec!["a".into(), "b".into()],
        );
        s.apply(Update::Endpoint("a".into(), Health::Ready), Source::Cli);
        check(
            &s,
            "/readyz",
            500,
            "[+]a ok\n[-]b failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n",
        );
        check(&s, "/readyz/a", 200, "ok");
        check(
            &s,
            "/readyz/b",
            500,
            "internal server error: endpoint b not ready\n",
        );
        check(&s, "/readyz?exclude=b", 200, "ok");
        assert!(
            matches("/readyz/a")
                && matches("/livez")
                && !matches("/readyz/")
                && !matches("/readyzz")
        );
    }
}
