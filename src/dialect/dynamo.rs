//! The Dynamo system status server dialect: the body shared by the health and live paths.
//!
//! `{"status":"ready","uptime":{"secs":18,"nanos":356504530},"endpoints":{"generate":"ready"}}`:
//! keys in this order, endpoints sorted, `{}` when there are none; 200 when ready, 503 when not.
//! healthd sends `application/json` where Dynamo sends `text/plain` (clients parse the JSON).

use std::time::Instant;

use serde::Serialize;
use serde::ser::SerializeMap;

use super::{Head, JSON, write_json};
use crate::state::State;

#[derive(Serialize)]
struct Body<'a> {
    status: &'static str,
    uptime: Uptime,
    endpoints: Endpoints<'a>,
}

#[derive(Serialize)]
struct Uptime {
    secs: u64,
    nanos: u32,
}

struct Endpoints<'a>(&'a State);

impl Serialize for Endpoints<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (name, h) in self.0.endpoints() {
            map.serialize_entry(name, h.as_str())?;
        }
        map.end()
    }
}

/// The health (and live) answer: 200 when ready, 503 when not.
pub fn health(state: &State, now: Instant, body: &mut Vec<u8>) -> Head {
    let health = state.health();
    let up = state.uptime(now);
    write_json(
        body,
        &Body {
            status: health.as_str(),
            uptime: Uptime {
                secs: up.as_secs(),
                nanos: up.subsec_nanos(),
            },
            endpoints: Endpoints(state),
        },
    );
    Head::new(if health.is_ready() { 200 } else { 503 }, JSON)
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
