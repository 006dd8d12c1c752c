//! `/metrics`: the Prometheus text format. Dynamo's `dynamo_component_uptime_seconds` gauge,
//! then healthd's own `healthd_*` series (readiness, endpoints, draining, requests by route and
//! code, state changes by source). Also owns [`RequestCounts`], the per-route request counters.

use std::fmt::Write as _;
use std::time::Instant;

use super::{Head, PROMETHEUS};
use crate::discovery::{self, Views};
use crate::state::{Seconds, State};

/// Requests answered, by route label and status code. A handful of distinct pairs exist, so a
/// small vector beats a map.
#[derive(Debug, Default, Clone)]
pub struct RequestCounts {
    counts: Vec<(&'static str, u16, u64)>,
}

impl RequestCounts {
    pub fn add(&mut self, route: &'static str, code: u16) {
        match self
            .counts
            .iter_mut()
            .find(|(r, c, _)| *r == route && *c == code)
        {
            Some(entry) => entry.2 += 1,
            None => {
                self.counts.push((route, code, 1));
                self.counts.sort_unstable();
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u16, u64)> + '_ {
        self.counts.iter().copied()
    }
}

/// Renders every series into `body`.
pub fn render(
    state: &State,
    counts: &RequestCounts,
    views: &Views,
    now: Instant,
    body: &mut Vec<u8>,
) -> Head {
    let mut out = String::with_capacity(1024);
    let up = Seconds(state.uptime(now), 6);
    let b = |v: bool| u8::from(v);
    let _ = write!(
        out,
        "# HELP dynamo_component_uptime_seconds Total uptime of the DistributedRuntime in seconds\n\
         # TYPE dynamo_component_uptime_seconds gauge\n\
         dynamo_component_uptime_seconds {up}\n\
         # HELP healthd_ready 1 when healthd reports ready, else 0.\n\
         # TYPE healthd_ready gauge\n\
         healthd_ready {}\n\
         # HELP healthd_process_ready 1 when the process status is ready, else 0.\n\
         # TYPE healthd_process_ready gauge\n\
         healthd_process_ready {}\n\
         # HELP healthd_live 1 while the host process is alive and its heartbeat fresh, else 0.\n\
         # TYPE healthd_live gauge\n\
         healthd_live {}\n\
         # HELP healthd_draining 1 once shutdown has begun, else 0.\n\
         # TYPE healthd_draining gauge\n\
         healthd_draining {}\n",
        b(state.health().is_ready()),
        b(state.process().is_ready()),
        b(state.liveness(now).is_live()),
        b(state.draining()),
    );
    if let Some(age) = state.heartbeat_age(now) {
        let _ = write!(
            out,
            "# HELP healthd_heartbeat_age_seconds Time since the last heartbeat.\n\
             # TYPE healthd_heartbeat_age_seconds gauge\n\
             healthd_heartbeat_age_seconds {}\n",
            Seconds(age, 3)
        );
    }
    out.push_str(
        "# HELP healthd_endpoint_ready 1 when the endpoint is ready, else 0.\n\
         # TYPE healthd_endpoint_ready gauge\n",
    );
    for (name, h) in state.endpoints() {
        let _ = writeln!(
            out,
            "healthd_endpoint_ready{{endpoint=\"{name}\"}} {}",
            b(h.is_ready())
        );
    }
    out.push_str(
        "# HELP healthd_http_requests_total Requests answered, by route and status code.\n\
         # TYPE healthd_http_requests_total counter\n",
    );
    for (route, code, n) in counts.iter() {
        let _ = writeln!(
            out,
            "healthd_http_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"
        );
    }
    out.push_str(
        "# HELP healthd_state_changes_total State changes, by the source that made them.\n\
         # TYPE healthd_state_changes_total counter\n",
    );
    for (source, n) in state.changes() {
        let _ = writeln!(
            out,
            "healthd_state_changes_total{{source=\"{}\"}} {n}",
            source.as_str()
        );
    }
    etcd(views, now, &mut out);
    body.extend_from_slice(out.as_bytes());
    Head::new(200, PROMETHEUS)
}

/// The cluster view's series, when discovery is on.
fn etcd(views: &Views, now: Instant, out: &mut String) {
    let gauge =
        |out: &mut String, name: &str, help: &str, kind: &str, value: &dyn std::fmt::Display| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
    let connected = "1 while etcd answers, else 0.";
    if let Some(r) = &views.registry {
        let r = discovery::lock(r).clone();
        // Past the lease's expiry nothing the registrar last heard can be trusted.
        let held = r.held(now);
        gauge(
            out,
            "healthd_etcd_connected",
            connected,
            "gauge",
            &u8::from(r.connected && held),
        );
        gauge(
            out,
            "healthd_etcd_lease_held",
            "1 while this process holds its etcd lease.",
            "gauge",
            &u8::from(held),
        );
        gauge(
            out,
            "healthd_etcd_leases_granted_total",
            "Leases granted to this process (a new one after each loss).",
            "counter",
            &r.grants,
        );
        gauge(
            out,
            "healthd_etcd_registered_endpoints",
            "Endpoints registered in etcd under the current lease.",
            "gauge",
            &if held { r.registered } else { 0 },
        );
    }
    if let Some(c) = &views.cluster {
        let c = discovery::lock(c);
        gauge(
            out,
            "healthd_etcd_connected",
            connected,
            "gauge",
            &u8::from(c.connected()),
        );
        gauge(
            out,
            "healthd_etcd_instances",
            "Instances in the watched list.",
            "gauge",
            &c.len(),
        );
        if let Some(age) = c.sync_age(now) {
            gauge(
                out,
                "healthd_etcd_sync_age_seconds",
                "Seconds since etcd last confirmed the list.",
                "gauge",
                &Seconds(age, 3),
            );
        }
        gauge(
            out,
            "healthd_etcd_keys_skipped_total",
            "Instance keys skipped because they do not parse.",
            "counter",
            &c.skipped_total(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Health, Source, Update};
    use std::time::Duration;

    #[test]
    fn series() {
        let t0 = Instant::now();
        let mut s = State::new(t0, Health::NotReady, vec!["generate".into()]);
        s.apply(
            Update::Endpoint("generate".into(), Health::Ready),
            Source::File,
        );
        let mut c = RequestCounts::default();
        c.add("health", 200);
        c.add("health", 200);
        c.add("metrics", 200);
        let mut body = Vec::new();
        let head = render(
            &s,
            &c,
            &Views::default(),
            t0 + Duration::from_millis(2500),
            &mut body,
        );
        assert_eq!(head, Head::new(200, PROMETHEUS));
        let text = String::from_utf8(body).unwrap();
        for line in [
            "# TYPE dynamo_component_uptime_seconds gauge",
            "dynamo_component_uptime_seconds 2.500000",
            "healthd_ready 1",
            "healthd_process_ready 0",
            "healthd_draining 0",
            "healthd_live 1",
            "healthd_endpoint_ready{endpoint=\"generate\"} 1",
            "healthd_http_requests_total{route=\"health\",code=\"200\"} 2",
            "healthd_http_requests_total{route=\"metrics\",code=\"200\"} 1",
            "healthd_state_changes_total{source=\"file\"} 1",
            "healthd_state_changes_total{source=\"signal\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
