//! The Dynamo system status server dialect: the body shared by the health and live paths.
//!
//! `{"status":"ready","uptime":{"secs":18,"nanos":356504530},"endpoints":{"generate":"ready"}}`:
//! keys in this order, endpoints sorted, `{}` when there are none; 200 when ready, 503 when not.
//! healthd sends `application/json` where Dynamo sends `text/plain` (clients parse the JSON).

use std::time::Instant;

use super::{Head, JSON, write_json};
use crate::config::LiveMode;
use crate::state::State;

/// The health answer: 200 when ready, 503 when not. A process that is not live (stale heartbeat,
/// exited child) is not ready either.
pub fn health(state: &State, now: Instant, body: &mut Vec<u8>) -> Head {
    let ready = state.health().is_ready() && state.liveness(now).is_live();
    render(state, now, ready, body);
    Head::new(if ready { 200 } else { 503 }, JSON)
}

/// The live answer. `Dynamo` mode: exactly the health answer (Dynamo runs one handler for both).
/// `Shallow` mode: 200 whenever the process is live, whatever the readiness; the body still
/// describes readiness.
pub fn live(state: &State, now: Instant, mode: LiveMode, body: &mut Vec<u8>) -> Head {
    match mode {
        LiveMode::Dynamo => health(state, now, body),
        LiveMode::Shallow => {
            let live = state.liveness(now).is_live();
            let ready = live && state.health().is_ready();
            render(state, now, ready, body);
            Head::new(if live { 200 } else { 503 }, JSON)
        }
    }
}

fn render(state: &State, now: Instant, ready: bool, body: &mut Vec<u8>) {
    let up = state.uptime(now);
    let uptime = format!(
        "{{\"secs\":{},\"nanos\":{}}}",
        up.as_secs(),
        up.subsec_nanos()
    );
    let mut endpoints = String::new();
    let mut map = crate::json::Object::new(&mut endpoints);
    for (name, h) in state.endpoints() {
        map = map.str(name, h.as_str());
    }
    map.end();
    write_json(body, |o| {
        o.str("status", if ready { "ready" } else { "notready" })
            .raw("uptime", &uptime)
            .raw("endpoints", &endpoints)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Health, Source, Update};
    use std::time::Duration;

    /// Renders `state` at `t0 + 18.356504530 s` and compares status and exact bytes.
    fn check(state: &State, t0: Instant, status: u16, json: &str) {
        let mut body = Vec::new();
        let head = health(state, t0 + Duration::new(18, 356_504_530), &mut body);
        assert_eq!(head, Head::new(status, JSON));
        assert_eq!(String::from_utf8(body).unwrap(), json);
    }

    #[test]
    fn documented_examples() {
        let t0 = Instant::now();
        let mut s = State::new(t0, Health::NotReady, vec!["generate".into()]);
        check(
            &s,
            t0,
            503,
            r#"{"status":"notready","uptime":{"secs":18,"nanos":356504530},"endpoints":{"generate":"notready"}}"#,
        );
        for n in ["generate", "clear_kv_blocks", "load_metrics"] {
            s.apply(Update::Endpoint(n.into(), Health::Ready), Source::File);
        }
        check(
            &s,
            t0,
            200,
            r#"{"status":"ready","uptime":{"secs":18,"nanos":356504530},"endpoints":{"clear_kv_blocks":"ready","generate":"ready","load_metrics":"ready"}}"#,
        );
    }

    #[test]
    fn live_modes() {
        let t0 = Instant::now();
        let notready = State::new(t0, Health::NotReady, vec![]);
        let body = r#"{"status":"notready","uptime":{"secs":18,"nanos":356504530},"endpoints":{}}"#;
        let at = t0 + Duration::new(18, 356_504_530);
        let mut out = Vec::new();
        assert_eq!(live(&notready, at, LiveMode::Dynamo, &mut out).status, 503);
        out.clear();
        assert_eq!(live(&notready, at, LiveMode::Shallow, &mut out).status, 200);
        assert_eq!(String::from_utf8(out).unwrap(), body);

        let stale =
            State::new(t0, Health::Ready, vec![]).with_heartbeat(Some(Duration::from_secs(10)));
        let mut out = Vec::new();
        assert_eq!(live(&stale, at, LiveMode::Shallow, &mut out).status, 503);
        out.clear();
        assert_eq!(
            health(&stale, at, &mut out).status,
            503,
            "not live means not ready"
        );
        assert_eq!(String::from_utf8(out).unwrap(), body);
        assert_eq!(
            health(&stale, t0 + Duration::from_secs(5), &mut Vec::new()).status,
            200
        );
    }

    #[test]
    fn empty_endpoints_is_an_object() {
        let t0 = Instant::now();
        let s = State::new(t0, Health::Ready, vec![]);
        check(
            &s,
            t0,
            200,
            r#"{"status":"ready","uptime":{"secs":18,"nanos":356504530},"endpoints":{}}"#,
        );
    }
}
