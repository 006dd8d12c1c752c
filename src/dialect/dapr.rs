//! The Dapr sidecar health routes: `/v1.0/healthz` (ready) and `/v1.0/healthz/outbound` (live).
//!
//! daprd answers 204 with no body when healthy and 500 with its error JSON when not. Its SDKs wait
//! on the outbound route ("the sidecar is up, even if the app is not"), so healthd maps outbound to
//! live (not draining) and the plain route to the overall readiness.

use super::{Head, JSON, write_json};
use crate::state::Liveness;
use crate::state::State;

pub const HEALTHZ: &str = "/v1.0/healthz";
pub const OUTBOUND: &str = "/v1.0/healthz/outbound";

/// The paths this dialect answers, for the router and the collision check.
pub fn matches(path: &str) -> bool {
    path == HEALTHZ || path == OUTBOUND
}

/// Dapr's error body: `{"errorCode":...,"message":...}`.
struct Error {
    error_code: &'static str,
    message: &'static str,
}

fn answer(healthy: bool, error: Error, body: &mut Vec<u8>) -> Head {
    if healthy {
        // 204 carries neither body nor content type (the codec writes neither).
        return Head::new(204, JSON);
    }
    write_json(body, |o| {
        o.str("errorCode", error.error_code)
            .str("message", error.message)
    });
    Head::new(500, JSON)
}

/// `GET /v1.0/healthz`: 204 when ready, else 500 `ERR_HEALTH_NOT_READY`.
pub fn healthz(state: &State, live: Liveness, body: &mut Vec<u8>) -> Head {
    let error = Error {
        error_code: "ERR_HEALTH_NOT_READY",
        message: "dapr is not ready",
    };
    answer(state.health().is_ready() && live.is_live(), error, body)
}

/// `GET /v1.0/healthz/outbound`: 204 while live (not draining, heartbeat fresh, child running),
/// else 500 `ERR_OUTBOUND_HEALTH_NOT_READY`.
pub fn outbound(state: &State, live: Liveness, body: &mut Vec<u8>) -> Head {
    let error = Error {
        error_code: "ERR_OUTBOUND_HEALTH_NOT_READY",
        message: "dapr outbound is not ready",
    };
    answer(!state.draining() && live.is_live(), error, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Health, Source, Update};
    use std::time::Instant;

    fn check(
        f: fn(&State, Liveness, &mut Vec<u8>) -> Head,
        state: &State,
        status: u16,
        json: &str,
    ) {
        let mut body = Vec::new();
        let head = f(state, Liveness::Live, &mut body);
        assert_eq!((head.status, head.content_type), (status, JSON));
        assert_eq!(String::from_utf8(body).unwrap(), json);
    }

    #[test]
    fn not_live_fails_both() {
        let s = State::new(Instant::now(), Health::Ready, vec![]);
        for f in [
            healthz as fn(&State, Liveness, &mut Vec<u8>) -> Head,
            outbound,
        ] {
            assert_eq!(f(&s, Liveness::Exited(1), &mut Vec::new()).status, 500);
        }
    }

    #[test]
    fn answers_in_every_state() {
        let mut s = State::new(Instant::now(), Health::NotReady, vec![]);
        check(
            healthz,
            &s,
            500,
            r#"{"errorCode":"ERR_HEALTH_NOT_READY","message":"dapr is not ready"}"#,
        );
        check(outbound, &s, 204, "");
        s.apply(Update::Process(Health::Ready), Source::Cli);
        check(healthz, &s, 204, "");
        s.apply(Update::Drain, Source::Signal);
        check(
            outbound,
            &s,
            500,
            r#"{"errorCode":"ERR_OUTBOUND_HEALTH_NOT_READY","message":"dapr outbound is not ready"}"#,
        );
        assert!(matches(HEALTHZ) && matches(OUTBOUND) && !matches("/v1.0/healthz/"));
    }
}
