//! The KServe v2 / Open Inference Protocol health routes (Triton, KServe): `/v2/health/live`,
//! `/v2/health/ready`, `/v2/models/{name}[/versions/{v}]/ready` and the `/v2` server metadata.
//!
//! Codes follow the protocol and Triton (200 = true, 400 = false, 503 `Server exiting` while
//! draining, 404 for an unknown model); bodies follow KServe (JSON on true and on false, always
//! `application/json` without a charset, because some clients parse the body). A model is an
//! endpoint name; live = not draining; ready = the overall readiness.

use super::{Head, JSON, write_json};
use crate::state::Liveness;
use crate::state::{Health, State};

/// The paths this dialect answers, for the router and the collision check.
pub fn matches(path: &str) -> bool {
    matches!(path, "/v2" | "/v2/health/live" | "/v2/health/ready") || model_of(path).is_some()
}

/// The model named by `/v2/models/{name}/ready` or `/v2/models/{name}/versions/{v}/ready`.
/// healthd has no model versions: any version answers like the model.
pub fn model_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v2/models/")?.strip_suffix("/ready")?;
    let mut parts = rest.split('/');
    let name = parts.next().filter(|n| !n.is_empty())?;
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => Some(name),
        (Some("versions"), Some(v), None) if !v.is_empty() => Some(name),
        _ => None,
    }
}

fn error(status: u16, message: &str, body: &mut Vec<u8>) -> Head {
    write_json(body, |o| o.str("error", message));
    Head::new(status, JSON)
}

/// Triton's answer while shutting down.
const EXITING: &str = "Server exiting";

/// `GET /v2/health/live`: 200 `{"live":true}`, 503 while draining, 400 when not live (stale
/// heartbeat, exited child).
pub fn live(state: &State, live: Liveness, body: &mut Vec<u8>) -> Head {
    if state.draining() {
        return error(503, EXITING, body);
    }
    if !live.is_live() {
        return error(400, &format!("Server not live: {}", live.reason()), body);
    }
    body.extend_from_slice(br#"{"live":true}"#);
    Head::new(200, JSON)
}

/// `GET /v2/health/ready`: 200 `{"ready":true}`, 400 when not ready, 503 while draining.
pub fn ready(state: &State, live: Liveness, body: &mut Vec<u8>) -> Head {
    if state.draining() {
        return error(503, EXITING, body);
    }
    if state.health().is_ready() && live.is_live() {
        body.extend_from_slice(br#"{"ready":true}"#);
        Head::new(200, JSON)
    } else {
        error(400, "Server not ready", body)
    }
}

/// `GET /v2/models/{name}/ready`: 200 `{"name":...,"ready":true}`, 400 not ready, 404 unknown.
pub fn model_ready(state: &State, name: &str, body: &mut Vec<u8>) -> Head {
    match state.endpoint(name) {
        Some(Health::Ready) => {
            write_json(body, |o| o.str("name", name).raw("ready", "true"));
            Head::new(200, JSON)
        }
        Some(Health::NotReady) => error(400, &format!("Model '{name}' is not ready"), body),
        // Triton's wording for a model it does not know.
        None => error(
            404,
            &format!("Request for unknown model: '{name}' is not found"),
            body,
        ),
    }
}

/// `GET /v2`: server metadata; healthd implements no protocol extensions.
pub fn metadata(body: &mut Vec<u8>) -> Head {
    write_json(body, |o| {
        o.str("name", "healthd")
            .str("version", env!("CARGO_PKG_VERSION"))
            .raw("extensions", "[]")
    });
    Head::new(200, JSON)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Source, Update};
    use std::time::Instant;

    fn check(head: Head, body: Vec<u8>, status: u16, json: &str) {
        assert_eq!(head, Head::new(status, JSON));
        assert_eq!(String::from_utf8(body).unwrap(), json);
    }

    fn run(f: impl Fn(&mut Vec<u8>) -> Head) -> (Head, Vec<u8>) {
        let mut body = Vec::new();
        let head = f(&mut body);
        (head, body)
    }

    #[test]
    fn paths() {
        for (path, model) in [
            ("/v2/models/generate/ready", Some("generate")),
            ("/v2/models/generate/versions/1/ready", Some("generate")),
            ("/v2/models//ready", None),
            ("/v2/models/generate/versions//ready", None),
            ("/v2/models/generate/versions/1/x/ready", None),
            ("/v2/models/a/b/ready", None),
            ("/v2/models/generate", None),
            ("/v2/models/generate/ready/", None),
        ] {
            assert_eq!(model_of(path), model, "{path}");
        }
        assert!(matches("/v2") && matches("/v2/health/live") && !matches("/v2/"));
    }

    #[test]
    fn answers_in_every_state() {
        let mut s = State::new(Instant::now(), Health::NotReady, vec!["generate".into()]);
        let (h, b) = run(|b| live(&s, Liveness::Live, b));
        check(h, b, 200, r#"{"live":true}"#);
        let (h, b) = run(|b| ready(&s, Liveness::Live, b));
        check(h, b, 400, r#"{"error":"Server not ready"}"#);
        let (h, b) = run(|b| model_ready(&s, "generate", b));
        check(h, b, 400, r#"{"error":"Model 'generate' is not ready"}"#);
        let (h, b) = run(|b| model_ready(&s, "nope", b));
        check(
            h,
            b,
            404,
            r#"{"error":"Request for unknown model: 'nope' is not found"}"#,
        );
        s.apply(Update::All(Health::Ready), Source::Signal);
        let (h, b) = run(|b| ready(&s, Liveness::Live, b));
        check(h, b, 200, r#"{"ready":true}"#);
        let (h, b) = run(|b| model_ready(&s, "generate", b));
        check(h, b, 200, r#"{"name":"generate","ready":true}"#);
        let (h, b) = run(|b| live(&s, Liveness::Exited(3), b));
        check(
            h,
            b,
            400,
            r#"{"error":"Server not live: child exited with code 3"}"#,
        );
        let (h, _) = run(|b| ready(&s, Liveness::Exited(3), b));
        assert_eq!(h.status, 400, "not live means not ready");
        s.apply(Update::Drain, Source::Signal);
        for f in [live, ready] {
            let (h, b) = run(|b| f(&s, Liveness::Live, b));
            check(h, b, 503, r#"{"error":"Server exiting"}"#);
        }
        let (h, b) = run(metadata);
        check(
            h,
            b,
            200,
            &format!(
                r#"{{"name":"healthd","version":"{}","extensions":[]}}"#,
                env!("CARGO_PKG_VERSION")
            ),
        );
    }
}
