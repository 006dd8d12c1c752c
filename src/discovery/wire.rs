//! The etcd v3 JSON gateway's wire format, as pure functions of bytes: the request bodies healthd
//! sends, the answers and watch lines it reads, base64, and Dynamo's key and value layout
//! (`shared/spec/discovery.md`, sections 2 and 4). No I/O; `gateway.rs` moves these bytes.
//!
//! Quirks of the gateway handled here: keys and values are base64; int64 fields (ids, TTLs,
//! revisions) are JSON strings; fields at their default value are left out of answers (a missing
//! `succeeded` is false, a missing event `type` is PUT, a keepalive answer without `TTL` means the
//! lease is gone).

use crate::json::{self, Json};

/// Dynamo's instances prefix (0.6 and later) and the end of its range (last byte + 1).
pub const PREFIX: &str = "v1/instances/";
const PREFIX_END: &str = "v1/instances0";

/// What etcd said instead of an answer, or why its bytes are not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(what: &str) -> WireError {
    WireError(format!("unexpected answer from etcd: {what}"))
}

// ---- requests ----------------------------------------------------------------------------------

pub fn grant(ttl: u32) -> String {
    format!("{{\"TTL\":{ttl}}}")
}

/// The body of keepalive and revoke: the lease id, as the decimal string int64s travel as.
pub fn lease(id: u64) -> String {
    format!("{{\"ID\":\"{id}\"}}")
}

/// A lease's remaining TTL and the keys bound to it (the registrar's check of what etcd holds).
pub fn time_to_live(id: u64) -> String {
    format!("{{\"ID\":\"{id}\",\"keys\":true}}")
}

/// Put `key` = `value` bound to `lease`, only if the key does not exist yet.
pub fn create(key: &str, value: &str, lease: u64) -> String {
    let k = base64(key.as_bytes());
    format!(
        "{{\"compare\":[{{\"key\":\"{k}\",\"target\":\"VERSION\",\"version\":\"0\"}}],\
         \"success\":[{{\"requestPut\":{{\"key\":\"{k}\",\"value\":\"{}\",\"lease\":\"{lease}\"}}}}]}}",
        base64(value.as_bytes())
    )
}

/// Delete `key` only if it is the one created at `revision` (not a later re-creation).
pub fn delete_created(key: &str, revision: u64) -> String {
    let k = base64(key.as_bytes());
    format!(
        "{{\"compare\":[{{\"key\":\"{k}\",\"target\":\"CREATE\",\"create_revision\":\"{revision}\"}}],\
         \"success\":[{{\"requestDeleteRange\":{{\"key\":\"{k}\"}}}}]}}"
    )
}

pub fn delete(key: &str) -> String {
    format!("{{\"key\":\"{}\"}}", base64(key.as_bytes()))
}

/// One page of a range over Dynamo's whole instances prefix (all namespaces): keys from `from`
/// (the prefix itself for the first page) at `revision` (0 = the newest), at most `limit` of them.
pub fn range(from: &[u8], revision: u64, limit: u32) -> String {
    let mut out = format!(
        "{{\"key\":\"{}\",\"range_end\":\"{}\"",
        base64(from),
        base64(PREFIX_END.as_bytes())
    );
    if revision > 0 {
        out.push_str(&format!(",\"revision\":\"{revision}\""));
    }
    if limit > 0 {
        out.push_str(&format!(",\"limit\":\"{limit}\""));
    }
    out.push('}');
    out
}

/// The frontend's confirmation: how many keys the prefix holds and the most recently modified one
/// (keys only), read linearizably; the watched list must agree with both.
pub fn newest() -> String {
    format!(
        "{{\"key\":\"{}\",\"range_end\":\"{}\",\"limit\":\"1\",\"sort_order\":\"DESCEND\",\"sort_target\":\"MOD\",\"keys_only\":true}}",
        base64(PREFIX.as_bytes()),
        base64(PREFIX_END.as_bytes()),
    )
}

/// A watch on the prefix from `revision` on.
pub fn watch(revision: u64) -> String {
    format!(
        "{{\"create_request\":{{\"key\":\"{}\",\"range_end\":\"{}\",\"start_revision\":\"{revision}\"}}}}",
        base64(PREFIX.as_bytes()),
        base64(PREFIX_END.as_bytes()),
    )
}

pub fn authenticate(user: &str, password: &str) -> String {
    let mut out = String::from("{\"name\":");
    json::write_str(user, &mut out);
    out.push_str(",\"password\":");
    json::write_str(password, &mut out);
    out.push('}');
    out
}

// ---- Dynamo's layout ---------------------------------------------------------------------------

/// `v1/instances/{namespace}/{component}/{endpoint}/{lease hex}`.
pub fn key(namespace: &str, component: &str, endpoint: &str, lease: u64) -> String {
    format!("{PREFIX}{namespace}/{component}/{endpoint}/{lease:x}")
}

/// The value a Dynamo worker of that name and lease writes, with its NATS subject.
pub fn value(namespace: &str, component: &str, endpoint: &str, lease: u64) -> String {
    format!(
        "{{\"type\":\"Endpoint\",\"component\":\"{component}\",\"endpoint\":\"{endpoint}\",\
         \"namespace\":\"{namespace}\",\"instance_id\":{lease},\
         \"transport\":{{\"nats_tcp\":\"{namespace}_{component}.{endpoint}-{lease:x}\"}}}}"
    )
}

/// One registered instance, as the frontend lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instance {
    pub namespace: String,
    pub component: String,
    pub endpoint: String,
    pub instance_id: u64,
    /// `device_type`, when the value has one.
    pub device_type: Option<String>,
    /// The transport object as found, re-emitted as compact JSON.
    pub transport: String,
}

/// Reads one key and value; the error says why the frontend skips it. The key must be the 0.6+
/// layout and agree with the value (names and the hex id); `"type"`, when present, must be
/// `Endpoint`; `instance_id` must be an exact u64.
pub fn instance(key: &[u8], value: &[u8]) -> Result<Instance, String> {
    let shown = String::from_utf8_lossy(key);
    read_instance(key, value).map_err(|why| format!("{shown}: {why}"))
}

fn read_instance(key: &[u8], value: &[u8]) -> Result<Instance, &'static str> {
    let key = std::str::from_utf8(key).map_err(|_| "the key is not UTF-8")?;
    let parts: Vec<&str> = key
        .strip_prefix(PREFIX)
        .ok_or("the key is outside v1/instances/")?
        .split('/')
        .collect();
    let [ns, comp, ep, hex] = parts[..] else {
        return Err("expected v1/instances/NS/COMPONENT/ENDPOINT/HEX");
    };
    let doc = json::parse(value).map_err(|_| "the value is not JSON")?;
    let text = |name: &str| doc.get(name).and_then(Json::as_str);
    if doc
        .get("type")
        .is_some_and(|t| t.as_str() != Some("Endpoint"))
    {
        return Err("\"type\" is not \"Endpoint\"");
    }
    if text("namespace") != Some(ns)
        || text("component") != Some(comp)
        || text("endpoint") != Some(ep)
    {
        return Err("the value's namespace, component or endpoint differs from the key's");
    }
    let id = match doc.get("instance_id") {
        Some(Json::Number(n)) => n.parse::<u64>().ok(),
        _ => None,
    }
    .ok_or("\"instance_id\" is not a whole u64")?;
    if format!("{id:x}") != hex {
        return Err("the key's id does not match \"instance_id\"");
    }
    let mut transport = String::new();
    match doc.get("transport") {
        Some(t @ Json::Object(_)) => t.write(&mut transport),
        _ => return Err("no \"transport\" object"),
    }
    let device_type = match doc.get("device_type") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(_) => return Err("\"device_type\" is not a string"),
    };
    Ok(Instance {
        namespace: ns.to_string(),
        component: comp.to_string(),
        endpoint: ep.to_string(),
        instance_id: id,
        device_type,
        transport,
    })
}

// ---- answers -----------------------------------------------------------------------------------

/// Parses an answer body; an etcd error object (`{"error":..,"code":..,"message":..}`, or a
/// streamed `{"error":{...}}`) becomes its message.
pub fn answer(body: &[u8]) -> Result<Json, WireError> {
    let doc = json::parse(body).map_err(|e| bad(&e.to_string()))?;
    let error = match doc.get("error") {
        Some(Json::String(s)) => Some(s.clone()),
        Some(e @ Json::Object(_)) => e.get("message").and_then(Json::as_str).map(str::to_string),
        _ => None,
    };
    match error {
        Some(e) => Err(WireError(format!("etcd: {e}"))),
        None => Ok(doc),
    }
}

/// An int64 field that the gateway writes as a string (absent = 0).
fn int(doc: &Json, name: &str) -> Result<u64, WireError> {
    match doc.get(name) {
        None => Ok(0),
        Some(Json::String(s)) | Some(Json::Number(s)) => s
            .parse()
            .map_err(|_| bad(&format!("\"{name}\" is not a whole number"))),
        Some(_) => Err(bad(&format!("\"{name}\" is not a number"))),
    }
}

/// The revision an answer was made at (a successful put's own revision); 0 when unreadable.
pub fn revision_of(doc: &Json) -> u64 {
    revision(doc).unwrap_or(0)
}

fn revision(doc: &Json) -> Result<u64, WireError> {
    doc.get("header").map_or(Ok(0), |h| int(h, "revision"))
}

/// A grant: the new lease id.
pub fn granted(doc: &Json) -> Result<u64, WireError> {
    match int(doc, "ID")? {
        0 => Err(bad("a lease grant without an ID")),
        id => Ok(id),
    }
}

/// A keepalive (one streamed `{"result":...}`): whether the lease still exists.
pub fn alive(doc: &Json) -> Result<bool, WireError> {
    let result = doc.get("result").unwrap_or(doc);
    Ok(int(result, "TTL")? > 0)
}

/// A time-to-live answer: the keys bound to the lease, or `None` when the lease is gone (etcd
/// answers a TTL of -1 then).
pub fn lease_keys(doc: &Json) -> Result<Option<Vec<Vec<u8>>>, WireError> {
    if matches!(doc.get("TTL"), Some(Json::String(t)) | Some(Json::Number(t)) if t.starts_with('-'))
    {
        return Ok(None);
    }
    if int(doc, "TTL")? == 0 {
        return Ok(None);
    }
    let keys = match doc.get("keys") {
        None => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|k| k.as_str().and_then(unbase64))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("a lease key is not base64"))?,
        Some(_) => return Err(bad("\"keys\" is not a list")),
    };
    Ok(Some(keys))
}

/// The endpoint of one of this worker's keys (`namespace`, `component` and lease as given).
pub fn endpoint_of<'a>(
    key: &'a [u8],
    namespace: &str,
    component: &str,
    lease: u64,
) -> Option<&'a str> {
    let key = std::str::from_utf8(key).ok()?;
    let rest = key
        .strip_prefix(PREFIX)?
        .strip_prefix(namespace)?
        .strip_prefix('/')?
        .strip_prefix(component)?
        .strip_prefix('/')?;
    let (endpoint, hex) = rest.split_once('/')?;
    (hex == format!("{lease:x}") && !endpoint.contains('/')).then_some(endpoint)
}

/// A transaction: whether its comparison held.
pub fn succeeded(doc: &Json) -> bool {
    doc.get("succeeded") == Some(&Json::Bool(true))
}

/// A range: its revision and every `(key, value)` it holds, or its count when asked for one.
pub struct Range {
    pub revision: u64,
    /// How many keys match (all of them, also when `limit` cut the list).
    pub count: u64,
    /// The highest `mod_revision` among the keys returned.
    pub latest: u64,
    pub kvs: Vec<(Vec<u8>, Vec<u8>)>,
    /// More keys follow the last one (a page of a limited range).
    pub more: bool,
}

pub fn range_answer(doc: &Json) -> Result<Range, WireError> {
    let mut latest = 0;
    let kvs = match doc.get("kvs") {
        None => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|i| {
                latest = latest.max(int(i, "mod_revision")?);
                kv(i)
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("\"kvs\" is not a list")),
    };
    Ok(Range {
        revision: revision(doc)?,
        count: int(doc, "count")?,
        latest,
        kvs,
        more: doc.get("more") == Some(&Json::Bool(true)),
    })
}

fn kv(item: &Json) -> Result<(Vec<u8>, Vec<u8>), WireError> {
    let field = |name| match item.get(name) {
        None => Ok(Vec::new()),
        Some(Json::String(s)) => unbase64(s).ok_or_else(|| bad("a key or value is not base64")),
        Some(_) => Err(bad("a key or value is not a string")),
    };
    Ok((field("key")?, field("value")?))
}

/// One event of a watch: a put (`Some(value)`) or a delete (`None`) of a key.
pub type Event = (Vec<u8>, Option<Vec<u8>>);

/// One line of a watch stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Watched {
    /// The watch is established.
    Created,
    /// Events, in order, up to `revision`.
    /// `latest`: the highest `mod_revision` among the events' keys.
    Events {
        revision: u64,
        latest: u64,
        events: Vec<Event>,
    },
    /// The start revision was compacted away: range again.
    Compacted,
    /// etcd ended the watch (canceled, or an error in the stream).
    Ended(String),
}

pub fn watched(line: &[u8]) -> Result<Watched, WireError> {
    let doc = answer(line).map_err(|e| WireError(e.0.clone()))?;
    let result = doc
        .get("result")
        .ok_or_else(|| bad("a watch line without \"result\""))?;
    if int(result, "compact_revision")? > 0 {
        return Ok(Watched::Compacted);
    }
    if result.get("canceled") == Some(&Json::Bool(true)) {
        let why = result
            .get("cancel_reason")
            .and_then(Json::as_str)
            .unwrap_or("canceled");
        return Ok(Watched::Ended(format!("etcd ended the watch: {why}")));
    }
    let mut events = Vec::new();
    let mut latest = 0;
    if let Some(list) = result.get("events") {
        let Json::Array(list) = list else {
            return Err(bad("\"events\" is not a list"));
        };
        for e in list {
            let item = e.get("kv").ok_or_else(|| bad("an event without \"kv\""))?;
            latest = latest.max(int(item, "mod_revision")?);
            let (key, value) = kv(item)?;
            let put = match e.get("type").and_then(Json::as_str) {
                None | Some("PUT") => true,
                Some("DELETE") => false,
                Some(_) => return Err(bad("an event type other than PUT or DELETE")),
            };
            events.push((key, put.then_some(value)));
        }
    }
    if result.get("created") == Some(&Json::Bool(true)) && events.is_empty() {
        return Ok(Watched::Created);
    }
    Ok(Watched::Events {
        revision: revision(result)?,
        latest,
        events,
    })
}

/// An authenticate answer: the token.
pub fn token(doc: &Json) -> Result<String, WireError> {
    doc.get("token")
        .and_then(Json::as_str)
        .map(str::to_string)
        .ok_or_else(|| bad("no token"))
}

/// Whether an error from etcd means "log in again" (simple tokens expire after 5 minutes).
pub fn auth_expired(e: &WireError) -> bool {
    let m = e.0.to_ascii_lowercase();
    m.contains("token") || m.contains("unauthenticated")
}

/// Whether an error means the lease no longer exists.
pub fn lease_gone(e: &WireError) -> bool {
    e.0.contains("lease not found")
}

// ---- base64 (RFC 4648, with padding) -----------------------------------------------------------

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn unbase64(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for (c, chunk) in s.chunks(4).enumerate() {
        let last = c == s.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for (i, b) in chunk[..4 - pad].iter().enumerate() {
            let v = B64.iter().position(|x| x == b)? as u32;
            n |= v << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Bits past the last byte must be zero (one encoding per value).
        if (pad == 1 && bytes[2] != 0) || (pad == 2 && (bytes[1] != 0 || bytes[2] != 0)) {
            return None;
        }
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_is_strict() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("v1/instances/", "djEvaW5zdGFuY2VzLw=="),
            ("v1/instances0", "djEvaW5zdGFuY2VzMA=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
            assert_eq!(unbase64(coded).as_deref(), Some(plain.as_bytes()));
        }
        for bad in ["Zg=", "Z===", "Zh==", "Zm=v", "Zm9v!A==", "Zg==Zg=="] {
            assert_eq!(unbase64(bad), None, "{bad}");
        }
    }

    #[test]
    fn dynamo_layout() {
        let id = 7587888160958627365;
        assert_eq!(
            key("dynamo", "backend", "generate", id),
            "v1/instances/dynamo/backend/generate/694d98147d54be25"
        );
        let v = value("dynamo", "backend", "generate", id);
        assert_eq!(
            v,
            r#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":7587888160958627365,"transport":{"nats_tcp":"dynamo_backend.generate-694d98147d54be25"}}"#
        );
        let k = key("dynamo", "backend", "generate", id);
        let got = instance(k.as_bytes(), v.as_bytes()).unwrap();
        assert_eq!(got.instance_id, id);
        assert_eq!(
            got.transport,
            r#"{"nats_tcp":"dynamo_backend.generate-694d98147d54be25"}"#
        );
        // Without "type", another transport, a device type: listed as found.
        let v = r#"{"component":"c","endpoint":"e","namespace":"n","instance_id":255,"device_type":"cuda","transport":{"tcp":"10.0.0.1:9000/ff/e"}}"#;
        let got = instance(b"v1/instances/n/c/e/ff", v.as_bytes()).unwrap();
        assert_eq!(got.device_type.as_deref(), Some("cuda"));
        assert_eq!(got.transport, r#"{"tcp":"10.0.0.1:9000/ff/e"}"#);
        for (k, v) in [
            ("v1/instances/n/c/e", v),
            ("v1/instances/n/c/e/fe", v),
            ("v1/instances/n/c/x/ff", v),
            ("instances/n/c/e:ff", v),
            ("v1/instances/n/c/e/ff", "{"),
            (
                "v1/instances/n/c/e/ff",
                r#"{"component":"c","endpoint":"e","namespace":"n","instance_id":2.55e2,"transport":{}}"#,
            ),
            (
                "v1/instances/n/c/e/ff",
                r#"{"type":"Model","component":"c","endpoint":"e","namespace":"n","instance_id":255,"transport":{}}"#,
            ),
            (
                "v1/instances/n/c/e/ff",
                r#"{"component":"c","endpoint":"e","namespace":"n","instance_id":255}"#,
            ),
        ] {
            assert!(instance(k.as_bytes(), v.as_bytes()).is_err(), "{k} {v}");
        }
    }

    #[test]
    fn requests() {
        assert_eq!(grant(10), r#"{"TTL":10}"#);
        assert_eq!(lease(5), r#"{"ID":"5"}"#);
        assert_eq!(
            range(PREFIX.as_bytes(), 0, 0),
            r#"{"key":"djEvaW5zdGFuY2VzLw==","range_end":"djEvaW5zdGFuY2VzMA=="}"#
        );
        assert_eq!(
            range(b"k", 9, 500),
            r#"{"key":"aw==","range_end":"djEvaW5zdGFuY2VzMA==","revision":"9","limit":"500"}"#
        );
        assert_eq!(
            create("k", "v", 7),
            r#"{"compare":[{"key":"aw==","target":"VERSION","version":"0"}],"success":[{"requestPut":{"key":"aw==","value":"dg==","lease":"7"}}]}"#
        );
        assert_eq!(
            authenticate("u\"", "p\\"),
            r#"{"name":"u\"","password":"p\\"}"#
        );
    }

    #[test]
    fn answers_and_watch_lines() {
        let doc = answer(br#"{"header":{"revision":"9"},"ID":"2324035785526934021","TTL":"10"}"#)
            .unwrap();
        assert_eq!(granted(&doc).unwrap(), 2324035785526934021);
        assert!(alive(&answer(br#"{"result":{"ID":"1","TTL":"10"}}"#).unwrap()).unwrap());
        assert!(!alive(&answer(br#"{"result":{"ID":"1"}}"#).unwrap()).unwrap());
        assert!(succeeded(&answer(br#"{"succeeded":true}"#).unwrap()));
        let ttl = answer(br#"{"ID":"5","TTL":"9","grantedTTL":"10","keys":["aw=="]}"#).unwrap();
        assert_eq!(lease_keys(&ttl).unwrap(), Some(vec![b"k".to_vec()]));
        let gone = answer(br#"{"ID":"5","TTL":"-1","grantedTTL":"0"}"#).unwrap();
        assert_eq!(lease_keys(&gone).unwrap(), None);
        let k = key("dynamo", "backend", "generate", 255);
        assert_eq!(
            endpoint_of(k.as_bytes(), "dynamo", "backend", 255),
            Some("generate")
        );
        assert_eq!(endpoint_of(k.as_bytes(), "dynamo", "backend", 254), None);
        assert_eq!(endpoint_of(k.as_bytes(), "dynamo", "other", 255), None);
        assert!(!succeeded(&answer(br#"{"header":{}}"#).unwrap()));
        let e =
            answer(br#"{"error":"etcdserver: requested lease not found","code":5}"#).unwrap_err();
        assert!(lease_gone(&e), "{e}");
        let e =
            answer(br#"{"error":{"grpc_code":14,"message":"etcdserver: no leader"}}"#).unwrap_err();
        assert_eq!(e.0, "etcd: etcdserver: no leader");
        let r = range_answer(
            &answer(br#"{"header":{"revision":"12"},"kvs":[{"key":"aw==","value":"dg=="}],"count":"1"}"#)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(r.revision, 12);
        assert_eq!(r.kvs, vec![(b"k".to_vec(), b"v".to_vec())]);
        assert_eq!(
            watched(br#"{"result":{"header":{"revision":"3"},"created":true}}"#).unwrap(),
            Watched::Created
        );
        assert_eq!(
            watched(br#"{"result":{"header":{"revision":"4"},"events":[{"kv":{"key":"aw==","value":"dg=="}},{"type":"DELETE","kv":{"key":"aw=="}}]}}"#).unwrap(),
            Watched::Events {
                revision: 4,
                latest: 0,
                events: vec![(b"k".to_vec(), Some(b"v".to_vec())), (b"k".to_vec(), None)]
            }
        );
        assert_eq!(
            watched(br#"{"result":{"compact_revision":"2","canceled":true}}"#).unwrap(),
            Watched::Compacted
        );
        assert!(matches!(
            watched(br#"{"result":{"canceled":true}}"#).unwrap(),
            Watched::Ended(_)
        ));
        for junk in [&b"{"[..], b"[]", br#"{"result":{"events":{}}}"#, b"\xff"] {
            assert!(watched(junk).is_err());
        }
    }
}
