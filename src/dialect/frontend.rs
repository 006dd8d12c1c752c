//! The Dynamo frontend's health view (`HEALTHD_ROLE=frontend`): its `/health` lists the workers'
//! endpoints it can route to, its `/live` says the frontend process is up.
//!
//! - `/live`: 200 `{"status":"live","message":"Service is live"}`; once draining, 503
//!   `{"status":"shutting_down","message":"Service is shutting down"}`.
//! - `/health`: always 200 (as Dynamo's frontend). With no ready endpoint:
//!   `{"instances":[],"message":"No endpoints available","status":"unhealthy"}`; otherwise
//!   `{"endpoints":["dyn://ns.comp.ep",...],"instances":[...],"status":"healthy"}`.
//!
//! With `ETCD_ENDPOINTS` (the cluster view) the instances are those registered in etcd, from the
//! watched cache ([`cluster_health`]): listed as found, sorted by namespace, component, endpoint and
//! id; a list etcd has not confirmed within one TTL is never shown as healthy.
//!
//! Without it, "registered" means "declared ready": every known endpoint whose state is ready is
//! one instance of `dyn://{namespace}.{component}.{endpoint}`. Keys are in Dynamo's (alphabetical) order. An
//! instance id is a full u64 derived from the `dyn://` name (FNV-1a, 64 bit), so it is the same on
//! every start and for every replica that serves the same name.

use std::time::{Instant, UNIX_EPOCH};

use super::{Head, JSON};
use crate::discovery::cluster::Cluster;
use crate::discovery::wire::Instance;
use crate::json::write_str;
use crate::state::{Health, State};

/// Where the frontend's endpoints live: the `{namespace}.{component}` of `dyn://` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub namespace: String,
    pub component: String,
}

/// `/live`: the frontend is live until shutdown begins.
pub fn live(state: &State, body: &mut Vec<u8>) -> Head {
    let (status, text): (u16, &[u8]) = if state.draining() {
        (
            503,
            br#"{"status":"shutting_down","message":"Service is shutting down"}"#,
        )
    } else {
        (200, br#"{"status":"live","message":"Service is live"}"#)
    };
    body.extend_from_slice(text);
    Head::new(status, JSON)
}

/// `/health`: the ready endpoints as `dyn://` names and instances; 200 either way. Each carries
/// the NATS subject a Dynamo worker of that name and id would use, for clients that parse it.
pub fn health(state: &State, names: &Names, body: &mut Vec<u8>) -> Head {
    // `state.endpoints()` is sorted and unique, so the instances are in the cluster view's order.
    let instances: Vec<Instance> = state
        .endpoints()
        .filter(|(_, h)| *h == Health::Ready)
        .map(|(e, _)| {
            let id = instance_id(&dyn_name(names, e));
            Instance {
                namespace: names.namespace.clone(),
                component: names.component.clone(),
                endpoint: e.to_string(),
                instance_id: id,
                device_type: None,
                transport: format!(
                    "{{\"nats_tcp\":\"{}_{}.{e}-{id:x}\"}}",
                    names.namespace, names.component
                ),
            }
        })
        .collect();
    if instances.is_empty() {
        return unhealthy("No endpoints available", body);
    }
    body.extend_from_slice(&render(&instances.iter().collect::<Vec<_>>()));
    Head::new(200, JSON)
}

/// `{"instances":[],"message":...,"status":"unhealthy"}`, 200 as Dynamo answers it.
fn unhealthy(message: &str, body: &mut Vec<u8>) -> Head {
    let mut out = String::from("{\"instances\":[],\"message\":");
    write_str(message, &mut out);
    out.push_str(",\"status\":\"unhealthy\"}");
    body.extend_from_slice(out.as_bytes());
    Head::new(200, JSON)
}

/// `/health` from the cluster view: the registered instances, or why there are none to show. The
/// healthy body is rendered once per change of the list and kept with it.
pub fn cluster_health(cluster: &mut Cluster, now: Instant, body: &mut Vec<u8>) -> Head {
    if !cluster.in_sync(now) {
        let (since, why) = cluster.unavailable_since();
        let secs = since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let message = format!(
            "Discovery unavailable since {} ({why})",
            crate::http::date::rfc3339(secs)
        );
        return unhealthy(&message, body);
    }
    if cluster.len() == 0 {
        return unhealthy("No endpoints available", body);
    }
    if cluster.rendered.is_none() {
        cluster.rendered = Some(render(&cluster.sorted()));
    }
    body.extend_from_slice(cluster.rendered.as_deref().unwrap_or_default());
    Head::new(200, JSON)
}

/// The healthy body. Written by hand: `transport` is re-emitted as etcd holds it, and 10,000
/// instances render without a serde tree in between.
fn render(all: &[&Instance]) -> Vec<u8> {
    let mut out = String::with_capacity(64 + all.len() * 200);
    out.push_str("{\"endpoints\":[");
    let mut names: Vec<String> = all
        .iter()
        .map(|i| format!("dyn://{}.{}.{}", i.namespace, i.component, i.endpoint))
        .collect();
    names.sort_unstable();
    names.dedup();
    for (n, name) in names.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        write_str(name, &mut out);
    }
    out.push_str("],\"instances\":[");
    for (n, i) in all.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str("{\"component\":");
        write_str(&i.component, &mut out);
        if let Some(d) = &i.device_type {
            out.push_str(",\"device_type\":");
            write_str(d, &mut out);
        }
        out.push_str(",\"endpoint\":");
        write_str(&i.endpoint, &mut out);
        out.push_str(&format!(
            ",\"instance_id\":{},\"namespace\":",
            i.instance_id
        ));
        write_str(&i.namespace, &mut out);
        out.push_str(",\"transport\":");
        out.push_str(&i.transport);
        out.push('}');
    }
    out.push_str("],\"status\":\"healthy\"}");
    out.into_bytes()
}

/// `dyn://{namespace}.{component}.{endpoint}`.
pub fn dyn_name(names: &Names, endpoint: &str) -> String {
    format!("dyn://{}.{}.{endpoint}", names.namespace, names.component)
}

/// FNV-1a (64 bit) of the `dyn://` name: deterministic and using the whole u64 range.
pub fn instance_id(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::wire;
    use crate::state::{Source, Update};
    use std::time::{Duration, SystemTime};

    #[test]
    fn cluster_view() {
        let t0 = Instant::now();
        let mut c = Cluster::new(
            Duration::from_secs(10),
            UNIX_EPOCH + Duration::from_secs(1_795_437_296),
        );
        let mut b = Vec::new();
        check(
            cluster_health(&mut c, t0, &mut b),
            &b,
            200,
            r#"{"instances":[],"message":"Discovery unavailable since 2026-11-23T12:34:56Z (not connected to etcd yet)","status":"unhealthy"}"#,
        );
        let id = 7587888160958627365u64;
        let k = wire::key("dynamo", "backend", "generate", id);
        let v = wire::value("dynamo", "backend", "generate", id);
        let other = r#"{"component":"backend","device_type":"cuda","endpoint":"generate","namespace":"dynamo","instance_id":16,"transport":{"tcp":"10.0.0.2:9000/10/generate"}}"#;
        c.replace(
            vec![
                (k.into_bytes(), v.into_bytes()),
                (
                    b"v1/instances/dynamo/backend/generate/10".to_vec(),
                    other.as_bytes().to_vec(),
                ),
                (b"v1/instances/a/b/c/1".to_vec(), b"junk".to_vec()),
            ],
            3,
        );
        c.confirm(t0, SystemTime::now());
        b.clear();
        check(
            cluster_health(&mut c, t0, &mut b),
            &b,
            200,
            concat!(
                r#"{"endpoints":["dyn://dynamo.backend.generate"],"instances":["#,
                r#"{"component":"backend","device_type":"cuda","endpoint":"generate","instance_id":16,"namespace":"dynamo","transport":{"tcp":"10.0.0.2:9000/10/generate"}},"#,
                r#"{"component":"backend","endpoint":"generate","instance_id":7587888160958627365,"namespace":"dynamo","transport":{"nats_tcp":"dynamo_backend.generate-694d98147d54be25"}}"#,
                r#"],"status":"healthy"}"#
            ),
        );
        b.clear();
        cluster_health(&mut c, t0 + Duration::from_secs(11), &mut b);
        assert!(String::from_utf8_lossy(&b).contains("Discovery unavailable since "));
        c.replace(vec![], 4);
        b.clear();
        check(
            cluster_health(&mut c, t0, &mut b),
            &b,
            200,
            r#"{"instances":[],"message":"No endpoints available","status":"unhealthy"}"#,
        );
    }

    fn check(head: Head, body: &[u8], status: u16, json: &str) {
        assert_eq!(head, Head::new(status, JSON));
        assert_eq!(std::str::from_utf8(body).unwrap(), json);
    }

    #[test]
    fn ids_are_fnv1a_64() {
        // Published FNV-1a test vectors.
        assert_eq!(instance_id(""), 0xcbf29ce484222325);
        assert_eq!(instance_id("a"), 0xaf63dc4c8601ec8c);
        assert_eq!(instance_id("foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn answers_in_every_state() {
        let names = Names {
            namespace: "dynamo".into(),
            component: "backend".into(),
        };
        let mut s = State::new(Instant::now(), Health::NotReady, vec!["generate".into()]);
        let mut b = Vec::new();
        check(
            health(&s, &names, &mut b),
            &b,
            200,
            r#"{"instances":[],"message":"No endpoints available","status":"unhealthy"}"#,
        );
        b.clear();
        check(
            live(&s, &mut b),
            &b,
            200,
            r#"{"status":"live","message":"Service is live"}"#,
        );
        s.apply(Update::All(Health::Ready), Source::Signal);
        s.apply(Update::Endpoint("clear".into(), Health::Ready), Source::Cli);
        s.apply(
            Update::Endpoint("off".into(), Health::NotReady),
            Source::Cli,
        );
        let (g, c) = (
            instance_id("dyn://dynamo.backend.generate"),
            instance_id("dyn://dynamo.backend.clear"),
        );
        b.clear();
        check(
            health(&s, &names, &mut b),
            &b,
            200,
            &format!(
                concat!(
                    r#"{{"endpoints":["dyn://dynamo.backend.clear","dyn://dynamo.backend.generate"],"instances":["#,
                    r#"{{"component":"backend","endpoint":"clear","instance_id":{c},"namespace":"dynamo","transport":{{"nats_tcp":"dynamo_backend.clear-{c:x}"}}}},"#,
                    r#"{{"component":"backend","endpoint":"generate","instance_id":{g},"namespace":"dynamo","transport":{{"nats_tcp":"dynamo_backend.generate-{g:x}"}}}}"#,
                    r#"],"status":"healthy"}}"#
                ),
                c = c,
                g = g
            ),
        );
        s.apply(Update::Drain, Source::Signal);
        b.clear();
        check(
            live(&s, &mut b),
            &b,
            503,
            r#"{"status":"shutting_down","message":"Service is shutting down"}"#,
        );
        b.clear();
        check(
            health(&s, &names, &mut b),
            &b,
            200,
            r#"{"instances":[],"message":"No endpoints available","status":"unhealthy"}"#,
        );
    }
}
