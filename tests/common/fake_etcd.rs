//! A fake etcd v3 JSON gateway for black-box discovery tests: a std `TcpListener` on 127.0.0.1:0,
//! one thread per connection (at most `MAX_CONNS` at once), an in-memory key space with leases,
//! revisions and watches, and fault modes switched at run time. It speaks the shapes of
//! `shared/spec/discovery.md` section 4 (int64 as strings, keys and values base64, default-valued
//! fields left out, `OrigName` field names in answers in proto order; requests may use either
//! spelling; answers over 2048 bytes chunked, as Go's net/http sends them) and records every
//! request it receives so tests can assert what healthd sent. Calls: lease grant, keepalive (one
//! shot or a long chunked stream), revoke and timetolive (with keys); kv range (prefix, `limit`
//! pages with `more`, `count_only`), put, deleterange, txn (compares on version, create, mod,
//! value, lease); watch (start revision, history, compaction); auth authenticate with tokens.
//! A call it does not know is named on stderr (shown with a failing test's output).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Connections served at once; more are closed at accept (the fake must stay bounded whatever
/// the client does).
pub const MAX_CONNS: usize = 64;
/// The size of the `Huge` answer: 100 MB, streamed from one small buffer, never allocated.
pub const HUGE: u64 = 100 * 1024 * 1024;

/// Lease ids handed out in order (then `0x1000 + n`): the first is the example of the spec
/// (7587888160958627365); the second has leading zero nibbles, so its hex is 14 digits.
pub const LEASE_IDS: [i64; 2] = [0x694d_9814_7d54_be25, 0x00c0_ffee_0000_beef];

/// How the fake answers, switchable at run time with [`FakeEtcd::set_fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A working gateway.
    Good,
    /// Binary garbage instead of HTTP, then close (open watch streams get it mid-stream).
    Garbage,
    /// HTTP 500 with an etcd error body (open watch streams are closed).
    Http500,
    /// Watches: the created line, then half of a line, then close. Other calls answer normally.
    CutWatch,
    /// Watches end cleanly (the terminating chunk) right after `created`, without a cancel line
    /// (a gateway or proxy timing the stream out). Other calls answer normally.
    EndWatch,
    /// A 100 MB answer to everything (open watch streams get a 100 MB line).
    Huge,
    /// Read requests, answer nothing, ever (open watch streams fall silent forever).
    Silent,
    /// Read the request, then close with SO_LINGER 0 (a TCP reset).
    Reset,
    /// Keepalive answers without `TTL` (the lease is gone) and the lease and its keys vanish.
    LeaseGone,
    /// Every full range answer also carries keys whose key or value does not parse.
    BadRange,
    /// A member without a leader: unary calls answer 503 "etcdserver: no leader"; streaming
    /// calls (watch, keepalive) answer 200 with one streamed error line, as the gateway does,
    /// and open watch streams get that line and end.
    NoLeader,
    /// Every answer trickles out one byte per 100 ms (each read gets something, the whole answer
    /// takes half a minute): only a deadline per call, not per read, ends it.
    Trickle,
    /// Every request is held for 1.5 s, then applied and answered (a member that hangs and
    /// recovers): the client has given up by then, but the change still lands, late.
    Delay,
    /// Open and new watch streams stay open but deliver nothing after `created` (a stuck
    /// member, or a proxy that buffers the stream); every other call answers normally.
    StallWatch,
}

/// A request the fake received: the path, the JSON body (`Null` when not JSON), the raw body,
/// headers with lower-case names, and the fault mode it met.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub body: Value,
    pub raw: Vec<u8>,
    pub headers: Vec<(String, String)>,
    pub fault: Fault,
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One key as the fake stores it.
#[derive(Clone, Debug)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub lease: i64,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    /// The value in base64, encoded once (values can be megabytes).
    value_b64: String,
}

impl Kv {
    fn new(key: &[u8], value: Vec<u8>, lease: i64, create: i64, modified: i64, version: i64) -> Kv {
        Kv {
            key: key.to_vec(),
            value_b64: b64(&value),
            value,
            lease,
            create_revision: create,
            mod_revision: modified,
            version,
        }
    }

    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

enum Msg {
    /// One watch answer line (without the newline).
    Line(String),
    /// Send the first half of this line, then cut the stream.
    Cut(String),
}

struct Watcher {
    key: Vec<u8>,
    end: Vec<u8>,
    /// The start revision: as etcd, no event below it is delivered (a start in the future
    /// waits for the revision to get there).
    from: i64,
    tx: mpsc::Sender<Msg>,
    /// Set to end the stream at once (the member went away).
    gone: Arc<AtomicBool>,
}

enum Op {
    Put(Vec<u8>, Vec<u8>, i64),
    Delete(Vec<u8>, Vec<u8>),
}

struct Store {
    fault: Fault,
    rev: i64,
    compacted: i64,
    kvs: BTreeMap<Vec<u8>, Kv>,
    /// Live leases: id -> (TTL, expiry).
    leases: BTreeMap<i64, (i64, Instant)>,
    granted: usize,
    /// (revision, key, event JSON) of every change, for watches with a start revision.
    history: Vec<(i64, Vec<u8>, String)>,
    watchers: Vec<Watcher>,
    log: Vec<Request>,
    /// User and password when auth is on; the tokens it accepts.
    auth: Option<(String, String)>,
    tokens: Vec<String>,
    issued: usize,
}

struct Shared {
    store: Mutex<Store>,
    stop: AtomicBool,
    conns: AtomicUsize,
    refused: AtomicUsize,
    watches_open: AtomicUsize,
    huge_done: AtomicUsize,
    huge_bytes: AtomicUsize,
    compacted_answers: AtomicUsize,
}

/// The running fake; dropping it stops every thread.
pub struct FakeEtcd {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeEtcd {
    /// Starts a fake in `Good` mode on 127.0.0.1 with an ephemeral port.
    pub fn start() -> FakeEtcd {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake etcd");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            store: Mutex::new(Store {
                fault: Fault::Good,
                rev: 1,
                compacted: 0,
                kvs: BTreeMap::new(),
                leases: BTreeMap::new(),
                granted: 0,
                history: Vec::new(),
                watchers: Vec::new(),
                log: Vec::new(),
                auth: None,
                tokens: Vec::new(),
                issued: 0,
            }),
            stop: AtomicBool::new(false),
            conns: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            watches_open: AtomicUsize::new(0),
            huge_done: AtomicUsize::new(0),
            huge_bytes: AtomicUsize::new(0),
            compacted_answers: AtomicUsize::new(0),
        });
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if s.conns.fetch_add(1, Ordering::SeqCst) >= MAX_CONNS {
                    s.conns.fetch_sub(1, Ordering::SeqCst);
                    s.refused.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let _ = serve(&s, conn);
                    s.conns.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        FakeEtcd { addr, shared }
    }

    /// `http://127.0.0.1:PORT`, for `ETCD_ENDPOINTS`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_fault(&self, f: Fault) {
        self.store().fault = f;
    }

    pub fn fault(&self) -> Fault {
        self.store().fault
    }

    /// Turns auth on: `/v3/auth/authenticate` with this user and password hands out a token,
    /// and every other call needs it in `Authorization`.
    pub fn require_auth(&self, user: &str, password: &str) {
        self.store().auth = Some((user.to_string(), password.to_string()));
    }

    /// Invalidates every token (simple tokens expire after 5 minutes): the next call answers
    /// 401 "invalid auth token".
    pub fn expire_tokens(&self) {
        self.store().tokens.clear();
    }

    /// Tokens handed out so far.
    pub fn tokens_issued(&self) -> usize {
        self.store().issued
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.store().log.clone()
    }

    /// Requests so far to `path` (e.g. `/v3/kv/txn`).
    pub fn requests_to(&self, path: &str) -> Vec<Request> {
        self.store()
            .log
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The stored key `key`, if present.
    pub fn key(&self, key: &str) -> Option<Kv> {
        self.store().kvs.get(key.as_bytes()).cloned()
    }

    /// Every stored key, in key order.
    pub fn keys(&self) -> Vec<Kv> {
        self.store().kvs.values().cloned().collect()
    }

    /// Live lease ids.
    pub fn leases(&self) -> Vec<i64> {
        self.store().leases.keys().copied().collect()
    }

    /// How many leases were granted so far.
    pub fn granted(&self) -> usize {
        self.store().granted
    }

    /// Writes `key` = `value` without a lease (as another process would); watchers see it.
    pub fn put(&self, key: &str, value: &str) {
        self.mutate(
            vec![Op::Put(
                key.as_bytes().to_vec(),
                value.as_bytes().to_vec(),
                0,
            )],
            false,
        );
    }

    /// Deletes every key starting with `prefix`, in one revision.
    pub fn delete_prefix(&self, prefix: &str) {
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().unwrap() += 1;
        self.mutate(vec![Op::Delete(prefix.as_bytes().to_vec(), end)], false);
    }

    /// Deletes `key`; watchers see it.
    pub fn delete(&self, key: &str) {
        self.mutate(vec![Op::Delete(key.as_bytes().to_vec(), Vec::new())], false);
    }

    /// Writes `key` = `value`, but every open watch stream gets only the first half of the
    /// event's line and is then cut. The change stays in the history (a watch that resumes
    /// from a revision sees it), and in the key space.
    pub fn put_and_cut(&self, key: &str, value: &str) {
        self.mutate(
            vec![Op::Put(
                key.as_bytes().to_vec(),
                value.as_bytes().to_vec(),
                0,
            )],
            true,
        );
    }

    /// Deletes `key` and cuts every open watch stream in the middle of that event's line.
    pub fn delete_and_cut(&self, key: &str) {
        self.mutate(vec![Op::Delete(key.as_bytes().to_vec(), Vec::new())], true);
    }

    /// etcd back without its data (restored from nothing, or a new cluster at the same address):
    /// every key and lease gone, the revision back to 1, the history empty, and every open watch
    /// stream closed (the member restarted). Lease ids go on from where they were.
    pub fn wipe(&self) {
        let mut st = self.store();
        st.kvs.clear();
        st.leases.clear();
        st.history.clear();
        st.rev = 1;
        st.compacted = 0;
        for w in st.watchers.drain(..) {
            w.gone.store(true, Ordering::SeqCst);
        }
    }

    /// Revokes every lease behind the client's back (what expiry or another client does): the
    /// bound keys vanish, and the next keepalive answers without `TTL`.
    pub fn revoke_all(&self) {
        let mut st = self.store();
        let ids: Vec<i64> = st.leases.keys().copied().collect();
        for id in ids {
            revoke(&mut st, id, false);
        }
    }

    /// Writes `key` = `value`, compacts the history up to that revision and cuts every open
    /// watch stream mid-line, all at once: a watch that resumes from the revision after the last
    /// one it saw is cancelled with `compact_revision` and must range again.
    pub fn put_compact_and_cut(&self, key: &str, value: &str) {
        let mut st = self.store();
        apply(
            &mut st,
            vec![Op::Put(
                key.as_bytes().to_vec(),
                value.as_bytes().to_vec(),
                0,
            )],
            true,
        );
        st.compacted = st.rev;
        let c = st.compacted;
        st.history.retain(|(r, _, _)| *r > c);
    }

    /// Watches answered "compacted" (cancelled) so far.
    pub fn compacted_answers(&self) -> usize {
        self.shared.compacted_answers.load(Ordering::SeqCst)
    }

    /// Compacts the history up to the current revision: a watch starting at or below it is
    /// cancelled with `compact_revision`.
    pub fn compact(&self) {
        let mut st = self.store();
        st.compacted = st.rev;
        let c = st.compacted;
        st.history.retain(|(r, _, _)| *r > c);
    }

    /// The current revision.
    pub fn revision(&self) -> i64 {
        self.store().rev
    }

    /// Watch streams open right now.
    pub fn watches_open(&self) -> usize {
        self.shared.watches_open.load(Ordering::SeqCst)
    }

    /// `Huge` answers that ended (fully sent, or the client closed), and bytes sent in them.
    pub fn huge_done(&self) -> (usize, usize) {
        (
            self.shared.huge_done.load(Ordering::SeqCst),
            self.shared.huge_bytes.load(Ordering::SeqCst),
        )
    }

    /// Connections open right now, and connections closed at accept because of `MAX_CONNS`.
    pub fn connections(&self) -> (usize, usize) {
        (
            self.shared.conns.load(Ordering::SeqCst),
            self.shared.refused.load(Ordering::SeqCst),
        )
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        lock(&self.shared)
    }

    fn mutate(&self, ops: Vec<Op>, cut: bool) {
        let mut st = self.store();
        apply(&mut st, ops, cut);
    }
}

impl Drop for FakeEtcd {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

// ---------------------------------------------------------------------------------------------
// The key space.

/// Locks the store and expires leases whose TTL ran out (as etcd does), deleting their keys.
fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Store> {
    let mut st = s.store.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let expired: Vec<i64> = st
        .leases
        .iter()
        .filter(|(_, (_, at))| *at <= now)
        .map(|(id, _)| *id)
        .collect();
    for id in expired {
        revoke(&mut st, id, false);
    }
    st
}

/// A JSON object built in field order (etcd prints fields in proto order, `header` first;
/// serde_json's map would sort them).
struct Obj(Vec<String>);

impl Obj {
    fn new() -> Obj {
        Obj(Vec::new())
    }

    /// A field whose value is already JSON.
    fn raw(mut self, name: &str, json: impl Into<String>) -> Obj {
        self.0.push(format!("\"{name}\":{}", json.into()));
        self
    }

    /// A string field (int64 fields are strings too).
    fn s(self, name: &str, value: impl std::fmt::Display) -> Obj {
        let v = value.to_string();
        // Base64 and numbers need no escaping (and can be megabytes long: keep it cheap).
        let plain = v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=-.".contains(&b));
        let v = if plain {
            format!("\"{v}\"")
        } else {
            serde_json::to_string(&v).unwrap()
        };
        self.raw(name, v)
    }

    fn done(self) -> String {
        format!("{{{}}}", self.0.join(","))
    }
}

fn header(st: &Store) -> String {
    Obj::new()
        .s("cluster_id", "14841639068965178418")
        .s("member_id", "10276657743932975437")
        .s("revision", st.rev)
        .s("raft_term", "2")
        .done()
}

fn kv_json(kv: &Kv) -> String {
    let mut o = Obj::new()
        .s("key", b64(&kv.key))
        .s("create_revision", kv.create_revision)
        .s("mod_revision", kv.mod_revision)
        .s("version", kv.version);
    if !kv.value.is_empty() {
        o = o.raw("value", format!("\"{}\"", kv.value_b64));
    }
    if kv.lease != 0 {
        o = o.s("lease", kv.lease);
    }
    o.done()
}

/// A watch answer line with events.
fn events_line(h: &str, events: &[String]) -> String {
    let inner = Obj::new()
        .raw("header", h)
        .raw("events", format!("[{}]", events.join(",")))
        .done();
    Obj::new().raw("result", inner).done()
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        key == start
    } else if end == [0] {
        key >= start
    } else {
        key >= start && key < end
    }
}

/// Applies `ops` as one revision; sends the events to the watchers (or cuts them).
fn apply(st: &mut Store, ops: Vec<Op>, cut: bool) -> Vec<usize> {
    let rev = st.rev + 1;
    let mut events: Vec<(Vec<u8>, String)> = Vec::new();
    let mut deleted = Vec::new();
    for op in ops {
        match op {
            Op::Put(key, value, lease) => {
                let kv = match st.kvs.get(&key) {
                    Some(old) => Kv::new(
                        &key,
                        value,
                        lease,
                        old.create_revision,
                        rev,
                        old.version + 1,
                    ),
                    None => Kv::new(&key, value, lease, rev, rev, 1),
                };
                events.push((key.clone(), Obj::new().raw("kv", kv_json(&kv)).done()));
                st.kvs.insert(key, kv);
                deleted.push(0);
            }
            Op::Delete(key, end) => {
                let gone: Vec<Vec<u8>> = st
                    .kvs
                    .keys()
                    .filter(|k| in_range(k, &key, &end))
                    .cloned()
                    .collect();
                deleted.push(gone.len());
                for k in gone {
                    st.kvs.remove(&k);
                    let kv = Obj::new().s("key", b64(&k)).s("mod_revision", rev).done();
                    let e = Obj::new().s("type", "DELETE").raw("kv", kv).done();
                    events.push((k.clone(), e));
                }
            }
        }
    }
    if events.is_empty() {
        return deleted;
    }
    st.rev = rev;
    for (k, e) in &events {
        st.history.push((rev, k.clone(), e.clone()));
    }
    let h = header(st);
    st.watchers.retain(|w| {
        let mine: Vec<String> = events
            .iter()
            .filter(|(k, _)| in_range(k, &w.key, &w.end) && rev >= w.from)
            .map(|(_, e)| e.clone())
            .collect();
        if mine.is_empty() {
            return true;
        }
        let line = events_line(&h, &mine);
        let msg = if cut { Msg::Cut(line) } else { Msg::Line(line) };
        w.tx.send(msg).is_ok()
    });
    deleted
}

fn revoke(st: &mut Store, id: i64, cut: bool) -> bool {
    if st.leases.remove(&id).is_none() {
        return false;
    }
    let bound: Vec<Op> = st
        .kvs
        .values()
        .filter(|kv| kv.lease == id)
        .map(|kv| Op::Delete(kv.key.clone(), Vec::new()))
        .collect();
    apply(st, bound, cut);
    true
}

// ---------------------------------------------------------------------------------------------
// HTTP.

struct Http {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
    /// A chunked body of a streaming call that has not ended yet.
    open_body: bool,
}

/// Reads with a short timeout so the thread notices `stop`; `Ok(0)` is end of stream.
fn read_some(s: &Shared, conn: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match conn.read(buf) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if s.stop.load(Ordering::SeqCst) {
                    return Ok(0);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(m: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.to_string())
}

/// Reads until `buf` holds at least `want` bytes.
fn fill(s: &Shared, conn: &mut TcpStream, buf: &mut Vec<u8>, want: usize) -> io::Result<()> {
    let mut chunk = [0u8; 16384];
    while buf.len() < want {
        let n = read_some(s, conn, &mut chunk)?;
        if n == 0 {
            return Err(bad("body cut"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

/// Reads one `\r\n`-terminated line from `buf` (reading more as needed), without the CRLF.
fn crlf_line(s: &Shared, conn: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    loop {
        if let Some(i) = find(buf, b"\r\n") {
            let line = buf[..i].to_vec();
            buf.drain(..i + 2);
            return Ok(line);
        }
        if buf.len() > 65536 {
            return Err(bad("line too long"));
        }
        let want = buf.len() + 1;
        fill(s, conn, buf, want)?;
    }
}

/// The next chunk of a chunked body; `None` after the last one (and its trailers).
fn next_chunk(s: &Shared, conn: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    let line = crlf_line(s, conn, buf)?;
    let text = String::from_utf8_lossy(&line).into_owned();
    let size = usize::from_str_radix(text.split(';').next().unwrap().trim(), 16)
        .map_err(|_| bad("chunk size"))?;
    if size == 0 {
        while !crlf_line(s, conn, buf)?.is_empty() {}
        return Ok(None);
    }
    if size > 1 << 20 {
        return Err(bad("chunk too big"));
    }
    fill(s, conn, buf, size + 2)?;
    let data = buf[..size].to_vec();
    buf.drain(..size + 2);
    Ok(Some(data))
}

/// The complete JSON values at the start of `pending`, removed from it.
fn json_messages(pending: &mut Vec<u8>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut it = serde_json::Deserializer::from_slice(pending).into_iter::<Value>();
    let mut used = 0;
    while let Some(Ok(v)) = it.next() {
        used = it.byte_offset();
        out.push(v);
    }
    pending.drain(..used);
    out
}

/// Reads one request (head and body, `Content-Length` or chunked). `None` on a clean end. A
/// chunked body of a streaming call (watch, keepalive) is read only up to its first complete
/// JSON message, as the gateway does: the rest may come later (`open_body`).
fn read_request(s: &Shared, conn: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<Http>> {
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 65536 {
            return Err(bad("head too long"));
        }
        let n = read_some(s, conn, &mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let hv = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let close = hv("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let streaming = path == "/v3/watch" || path == "/v3/lease/keepalive";
    let mut open_body = false;
    let body = if hv("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        while let Some(data) = next_chunk(s, conn, buf)? {
            body.extend_from_slice(&data);
            if body.len() > 1 << 20 {
                return Err(bad("body too big"));
            }
            let mut probe = body.clone();
            if streaming && !json_messages(&mut probe).is_empty() {
                open_body = true;
                break;
            }
        }
        body
    } else {
        let len: usize = hv("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if len > 1 << 20 {
            return Err(bad("body too big"));
        }
        fill(s, conn, buf, len)?;
        buf.drain(..len).collect()
    };
    Ok(Some(Http {
        method,
        path,
        headers,
        body,
        close,
        open_body,
    }))
}

/// An answer as etcd's gateway (Go's net/http) sends it: `Content-Length` when the body is at most
/// 2048 bytes, else chunked (in pieces of at most 4096 bytes).
fn respond(conn: &mut TcpStream, status: u16, body: &str) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };
    if body.len() <= 2048 {
        let msg = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nGrpc-Metadata-Content-Type: application/grpc\r\nDate: Thu, 03 Dec 2026 14:00:00 GMT\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        return conn.write_all(msg.as_bytes());
    }
    let mut msg = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nGrpc-Metadata-Content-Type: application/grpc\r\nDate: Thu, 03 Dec 2026 14:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for piece in body.as_bytes().chunks(4096) {
        msg.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        msg.extend_from_slice(piece);
        msg.extend_from_slice(b"\r\n");
    }
    msg.extend_from_slice(b"0\r\n\r\n");
    conn.write_all(&msg)
}

fn etcd_error(status: u16, code: u32, message: &str) -> (u16, String) {
    let o = Obj::new()
        .s("error", message)
        .raw("code", code.to_string())
        .s("message", message);
    (status, o.done())
}

const GARBAGE: &[u8] =
    b"\x00\xff\xfe\x16\x03\x01 garbage \x1b[31m}}}{{\"result\":\x00\r\n\r\nHTTP/9 ???\r\n\xc3\x28\n";

/// SO_LINGER 0, then close: the peer gets a TCP reset.
fn reset(conn: TcpStream) {
    let lg = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own with a valid, correctly sized struct.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &lg as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(conn);
}

/// Answers nothing, ever: reads and discards until the peer closes or the fake stops.
fn hold(s: &Shared, conn: &mut TcpStream) {
    let mut sink = [0u8; 4096];
    while matches!(read_some(s, conn, &mut sink), Ok(n) if n > 0) {}
}

/// Streams `HUGE` bytes: a `Content-Length` answer, or (`chunked`) one endless line inside an
/// open chunked stream. Gives up when the client stops reading for 5 s or closes.
fn stream_huge(s: &Shared, conn: &mut TcpStream, chunked: bool) {
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    let block = vec![b'A'; 65536];
    let mut sent: u64 = 0;
    let mut go = || -> io::Result<()> {
        if !chunked {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nGrpc-Metadata-Content-Type: application/grpc\r\nDate: Thu, 03 Dec 2026 14:00:00 GMT\r\nContent-Length: {HUGE}\r\n\r\n"
            );
            conn.write_all(head.as_bytes())?;
            let start = b"{\"header\":{\"revision\":\"2\"},\"ID\":\"";
            conn.write_all(start)?;
            sent += start.len() as u64;
        }
        while sent < HUGE && !s.stop.load(Ordering::SeqCst) {
            let n = (HUGE - sent).min(block.len() as u64) as usize;
            if chunked {
                conn.write_all(format!("{n:x}\r\n").as_bytes())?;
                conn.write_all(&block[..n])?;
                conn.write_all(b"\r\n")?;
            } else {
                conn.write_all(&block[..n])?;
            }
            sent += n as u64;
            s.huge_bytes.fetch_add(n, Ordering::SeqCst);
        }
        Ok(())
    };
    let _ = go();
    s.huge_done.fetch_add(1, Ordering::SeqCst);
}

/// With auth on, the error for a call without a valid token (authenticate itself is open).
fn unauthorized(s: &Shared, req: &Http) -> Option<(u16, String)> {
    let st = lock(s);
    st.auth.as_ref()?;
    if req.path == "/v3/auth/authenticate" {
        return None;
    }
    match req.headers.iter().find(|(n, _)| n == "authorization") {
        None => Some(etcd_error(400, 3, "etcdserver: user name is empty")),
        Some((_, t)) if st.tokens.contains(t) => None,
        Some(_) => Some(etcd_error(401, 16, "etcdserver: invalid auth token")),
    }
}

/// Records a request message; returns the fault mode it meets.
fn log(s: &Shared, req: &Http, body: &Value, raw: &[u8]) -> Fault {
    let mut st = lock(s);
    let fault = st.fault;
    st.log.push(Request {
        path: req.path.clone(),
        body: body.clone(),
        raw: raw.to_vec(),
        headers: req.headers.clone(),
        fault,
        at: Instant::now(),
    });
    fault
}

fn serve(s: &Shared, mut conn: TcpStream) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_millis(200)))?;
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(s, &mut conn, &mut buf)? else {
            return Ok(());
        };
        let body: Value = serde_json::Deserializer::from_slice(&req.body)
            .into_iter::<Value>()
            .next()
            .and_then(Result::ok)
            .unwrap_or(Value::Null);
        let fault = log(s, &req, &body, &req.body);
        let fault = if fault == Fault::Delay {
            std::thread::sleep(Duration::from_millis(1500));
            Fault::Good
        } else {
            fault
        };
        match fault {
            Fault::Silent => {
                hold(s, &mut conn);
                return Ok(());
            }
            Fault::Reset => {
                reset(conn);
                return Ok(());
            }
            Fault::Garbage => {
                let _ = conn.write_all(GARBAGE);
                return Ok(());
            }
            Fault::Huge => {
                stream_huge(s, &mut conn, false);
                return Ok(());
            }
            Fault::Trickle => {
                let answer = if req.path == "/v3/watch" || req.path == "/v3/lease/keepalive" {
                    let line = r#"{"result":{"header":{"revision":"2"},"created":true}}"#;
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nGrpc-Metadata-Content-Type: application/grpc\r\nDate: Thu, 03 Dec 2026 14:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{line}\n\r\n",
                        line.len() + 1
                    )
                } else {
                    let (status, v) = call(&mut lock(s), &req.path, &body, Fault::Good);
                    format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nGrpc-Metadata-Content-Type: application/grpc\r\nDate: Thu, 03 Dec 2026 14:00:00 GMT\r\nContent-Length: {}\r\n\r\n{v}",
                        v.len()
                    )
                };
                for b in answer.as_bytes() {
                    if s.stop.load(Ordering::SeqCst) || conn.write_all(&[*b]).is_err() {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                hold(s, &mut conn);
                return Ok(());
            }
            Fault::Http500 => {
                let (status, v) = etcd_error(500, 2, "etcdserver: request timed out");
                respond(&mut conn, status, &v.to_string())?;
            }
            Fault::NoLeader if req.path == "/v3/watch" || req.path == "/v3/lease/keepalive" => {
                conn.write_all(CHUNKED_HEAD)?;
                chunk(&mut conn, NO_LEADER_LINE)?;
                conn.write_all(b"0\r\n\r\n")?;
                if req.open_body {
                    return Ok(());
                }
            }
            Fault::NoLeader => {
                let (status, v) = etcd_error(503, 14, "etcdserver: no leader");
                respond(&mut conn, status, &v)?;
            }
            _ if req.method != "POST" => {
                let (status, v) = etcd_error(405, 12, "Method Not Allowed");
                respond(&mut conn, status, &v.to_string())?;
            }
            _ if let Some((status, v)) = unauthorized(s, &req) => {
                respond(&mut conn, status, &v)?;
            }
            _ if req.path == "/v3/watch" => {
                watch(s, conn, &body);
                return Ok(());
            }
            _ if req.path == "/v3/lease/keepalive" => {
                conn.write_all(CHUNKED_HEAD)?;
                keepalive(s, &mut conn, &body, fault)?;
                if req.open_body {
                    // A long keepalive stream: one answer line per message, until the body ends.
                    let mut pending = req.body.clone();
                    json_messages(&mut pending);
                    while let Some(data) = next_chunk(s, &mut conn, &mut buf)? {
                        pending.extend_from_slice(&data);
                        for m in json_messages(&mut pending) {
                            let fault = log(s, &req, &m, &data);
                            keepalive(s, &mut conn, &m, fault)?;
                        }
                    }
                }
                conn.write_all(b"0\r\n\r\n")?;
            }
            _ => {
                let (status, v) = {
                    let mut st = lock(s);
                    call(&mut st, &req.path, &body, fault)
                };
                respond(&mut conn, status, &v.to_string())?;
            }
        }
        if req.close {
            return Ok(());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gateway calls.

/// A field in either spelling (`range_end` or `rangeEnd`).
fn field<'a>(v: &'a Value, snake: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(snake) {
        return Some(x);
    }
    let mut camel = String::new();
    let mut up = false;
    for c in snake.chars() {
        if c == '_' {
            up = true;
        } else if up {
            camel.push(c.to_ascii_uppercase());
            up = false;
        } else {
            camel.push(c);
        }
    }
    v.get(camel.as_str())
}

/// An int64 field: a JSON string (what the gateway prints) or a number.
fn int(v: &Value, name: &str) -> Option<i64> {
    match field(v, name)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn bytes(v: &Value, name: &str) -> Option<Vec<u8>> {
    field(v, name).and_then(Value::as_str).and_then(unb64)
}

fn flag(v: &Value, name: &str) -> bool {
    field(v, name).and_then(Value::as_bool).unwrap_or(false)
}

fn lease_not_found() -> (u16, String) {
    etcd_error(404, 5, "etcdserver: requested lease not found")
}

fn range(st: &Store, req: &Value, fault: Fault) -> String {
    let key = bytes(req, "key").unwrap_or_default();
    let end = bytes(req, "range_end").unwrap_or_default();
    let mut found: Vec<&Kv> = st
        .kvs
        .values()
        .filter(|kv| in_range(&kv.key, &key, &end))
        .collect();
    // etcd sorts the whole range, then applies the limit; a target other than KEY with order
    // NONE means ASCEND.
    let target = match field(req, "sort_target") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Number(n)) => ["KEY", "VERSION", "CREATE", "MOD", "VALUE"]
            .get(n.as_u64().unwrap_or(0) as usize)
            .unwrap_or(&"KEY")
            .to_string(),
        _ => "KEY".to_string(),
    };
    let order = match field(req, "sort_order") {
        Some(Value::String(o)) => o.clone(),
        Some(Value::Number(n)) => ["NONE", "ASCEND", "DESCEND"]
            .get(n.as_u64().unwrap_or(0) as usize)
            .unwrap_or(&"NONE")
            .to_string(),
        _ => "NONE".to_string(),
    };
    let order = if order == "NONE" && target != "KEY" {
        "ASCEND".to_string()
    } else {
        order
    };
    if order != "NONE" {
        found.sort_by(|a, b| match target.as_str() {
            "VERSION" => a.version.cmp(&b.version),
            "CREATE" => a.create_revision.cmp(&b.create_revision),
            "MOD" => a.mod_revision.cmp(&b.mod_revision),
            "VALUE" => a.value.cmp(&b.value),
            _ => a.key.cmp(&b.key),
        });
        if order == "DESCEND" {
            found.reverse();
        }
    }
    let keys_only = flag(req, "keys_only");
    let mut kvs: Vec<String> = found
        .into_iter()
        .map(|kv| {
            if keys_only {
                kv_json(&Kv::new(
                    &kv.key,
                    Vec::new(),
                    kv.lease,
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                ))
            } else {
                kv_json(kv)
            }
        })
        .collect();
    let count_only = flag(req, "count_only");
    if fault == Fault::BadRange && !count_only && !end.is_empty() {
        let bad = |k: &[u8], v: &[u8]| kv_json(&Kv::new(k, v.to_vec(), 0, 1, 1, 1));
        kvs.insert(0, bad(b"v1/instances/dynamo/backend/generate/", b"{"));
        kvs.push(bad(b"v1/instances/\xff\xfe/x/y/zz", b"\x00\xff not json"));
        kvs.push(bad(
            b"v1/instances/dynamo/backend/generate/123",
            br#"{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":-1,"transport":{}}"#,
        ));
    }
    let mut o = Obj::new().raw("header", header(st));
    let count = kvs.len();
    let limit = int(req, "limit").unwrap_or(0).max(0) as usize;
    let more = limit > 0 && count > limit && !count_only;
    if more {
        kvs.truncate(limit);
    }
    if !count_only && !kvs.is_empty() {
        o = o.raw("kvs", format!("[{}]", kvs.join(",")));
    }
    if more {
        o = o.raw("more", "true");
    }
    if count > 0 {
        o = o.s("count", count);
    }
    o.done()
}

fn compare(st: &Store, c: &Value) -> bool {
    let key = bytes(c, "key").unwrap_or_default();
    let kv = st.kvs.get(&key);
    let target = match field(c, "target") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(1) => "CREATE",
            Some(2) => "MOD",
            Some(3) => "VALUE",
            Some(4) => "LEASE",
            _ => "VERSION",
        }
        .to_string(),
        _ => "VERSION".to_string(),
    };
    let result = match field(c, "result") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(1) => "GREATER",
            Some(2) => "LESS",
            Some(3) => "NOT_EQUAL",
            _ => "EQUAL",
        }
        .to_string(),
        _ => "EQUAL".to_string(),
    };
    let ord = if target == "VALUE" {
        let have = kv.map(|k| k.value.clone()).unwrap_or_default();
        have.cmp(&bytes(c, "value").unwrap_or_default())
    } else {
        let (have, name) = match target.as_str() {
            "CREATE" => (kv.map_or(0, |k| k.create_revision), "create_revision"),
            "MOD" => (kv.map_or(0, |k| k.mod_revision), "mod_revision"),
            "LEASE" => (kv.map_or(0, |k| k.lease), "lease"),
            _ => (kv.map_or(0, |k| k.version), "version"),
        };
        have.cmp(&int(c, name).unwrap_or(0))
    };
    use std::cmp::Ordering::*;
    match result.as_str() {
        "GREATER" => ord == Greater,
        "LESS" => ord == Less,
        "NOT_EQUAL" => ord != Equal,
        _ => ord == Equal,
    }
}

fn call(st: &mut Store, path: &str, req: &Value, fault: Fault) -> (u16, String) {
    match path {
        "/v3/lease/grant" => {
            let ttl = int(req, "TTL").unwrap_or(0);
            if ttl <= 0 {
                return etcd_error(400, 3, "etcdserver: lease TTL must be positive");
            }
            let id = match int(req, "ID").unwrap_or(0) {
                0 => LEASE_IDS
                    .get(st.granted)
                    .copied()
                    .unwrap_or(0x1000 + st.granted as i64),
                id => id,
            };
            if st.leases.contains_key(&id) {
                return etcd_error(400, 9, "etcdserver: lease already exists");
            }
            st.leases
                .insert(id, (ttl, Instant::now() + Duration::from_secs(ttl as u64)));
            st.granted += 1;
            (
                200,
                Obj::new()
                    .raw("header", header(st))
                    .s("ID", id)
                    .s("TTL", ttl)
                    .done(),
            )
        }
        "/v3/lease/timetolive" | "/v3/kv/lease/timetolive" => {
            let id = int(req, "ID").unwrap_or(0);
            let mut o = Obj::new().raw("header", header(st)).s("ID", id);
            match st.leases.get(&id) {
                None => o = o.s("TTL", -1),
                Some((ttl, expiry)) => {
                    let left = expiry.saturating_duration_since(Instant::now());
                    o = o
                        .s("TTL", left.as_secs() + u64::from(left.subsec_nanos() > 0))
                        .s("grantedTTL", ttl);
                    if flag(req, "keys") {
                        let keys: Vec<String> = st
                            .kvs
                            .values()
                            .filter(|kv| kv.lease == id)
                            .map(|kv| format!("\"{}\"", b64(&kv.key)))
                            .collect();
                        if !keys.is_empty() {
                            o = o.raw("keys", format!("[{}]", keys.join(",")));
                        }
                    }
                }
            }
            (200, o.done())
        }
        "/v3/lease/revoke" => {
            let id = int(req, "ID").unwrap_or(0);
            if revoke(st, id, false) {
                (200, Obj::new().raw("header", header(st)).done())
            } else {
                lease_not_found()
            }
        }
        "/v3/kv/range" => (200, range(st, req, fault)),
        "/v3/kv/put" => {
            let key = bytes(req, "key").unwrap_or_default();
            let value = bytes(req, "value").unwrap_or_default();
            let lease = int(req, "lease").unwrap_or(0);
            if key.is_empty() {
                return etcd_error(400, 3, "etcdserver: key is not provided");
            }
            if lease != 0 && !st.leases.contains_key(&lease) {
                return lease_not_found();
            }
            apply(st, vec![Op::Put(key, value, lease)], false);
            (200, Obj::new().raw("header", header(st)).done())
        }
        "/v3/kv/deleterange" => {
            let key = bytes(req, "key").unwrap_or_default();
            let end = bytes(req, "range_end").unwrap_or_default();
            let n = apply(st, vec![Op::Delete(key, end)], false)[0];
            let mut o = Obj::new().raw("header", header(st));
            if n > 0 {
                o = o.s("deleted", n);
            }
            (200, o.done())
        }
        "/v3/kv/txn" => txn(st, req, fault),
        "/v3/auth/authenticate" => {
            let name = field(req, "name").and_then(Value::as_str).unwrap_or("");
            let password = field(req, "password").and_then(Value::as_str).unwrap_or("");
            match &st.auth {
                Some((u, p)) if u == name && p == password => {}
                Some(_) => {
                    return etcd_error(
                        400,
                        3,
                        "etcdserver: authentication failed, invalid user ID or password",
                    );
                }
                None => return etcd_error(400, 9, "etcdserver: authentication is not enabled"),
            }
            st.issued += 1;
            let token = format!("fake.{}.{}", st.issued, st.rev);
            st.tokens.push(token.clone());
            (
                200,
                Obj::new()
                    .raw("header", header(st))
                    .s("token", token)
                    .done(),
            )
        }
        _ => {
            // Shown with a failing test's output: the fake lacks a call healthd now makes.
            eprintln!("fake etcd: no such gateway call {path} (body {req})");
            etcd_error(404, 5, "Not Found")
        }
    }
}

fn txn(st: &mut Store, req: &Value, fault: Fault) -> (u16, String) {
    let empty = Vec::new();
    let compares = field(req, "compare")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let ok = compares.iter().all(|c| compare(st, c));
    let branch = if ok { "success" } else { "failure" };
    let ops = field(req, branch)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    // Check every lease first: a txn either applies whole or fails.
    for op in &ops {
        if let Some(p) = field(op, "request_put") {
            let lease = int(p, "lease").unwrap_or(0);
            if lease != 0 && !st.leases.contains_key(&lease) {
                return lease_not_found();
            }
        }
    }
    let mut responses = Vec::new();
    let mut writes = Vec::new();
    let mut kinds = Vec::new();
    for op in &ops {
        if let Some(p) = field(op, "request_put") {
            writes.push(Op::Put(
                bytes(p, "key").unwrap_or_default(),
                bytes(p, "value").unwrap_or_default(),
                int(p, "lease").unwrap_or(0),
            ));
            kinds.push("put");
        } else if let Some(d) = field(op, "request_delete_range") {
            writes.push(Op::Delete(
                bytes(d, "key").unwrap_or_default(),
                bytes(d, "range_end").unwrap_or_default(),
            ));
            kinds.push("delete");
        } else if let Some(r) = field(op, "request_range") {
            responses.push(Obj::new().raw("response_range", range(st, r, fault)).done());
        }
    }
    let deleted = apply(st, writes, false);
    for (kind, n) in kinds.iter().zip(deleted) {
        let h = header(st);
        responses.push(match *kind {
            "put" => Obj::new()
                .raw("response_put", Obj::new().raw("header", h).done())
                .done(),
            _ if n > 0 => Obj::new()
                .raw(
                    "response_delete_range",
                    Obj::new().raw("header", h).s("deleted", n).done(),
                )
                .done(),
            _ => Obj::new()
                .raw("response_delete_range", Obj::new().raw("header", h).done())
                .done(),
        });
    }
    let mut o = Obj::new().raw("header", header(st));
    if ok {
        o = o.raw("succeeded", "true");
    }
    if !responses.is_empty() {
        o = o.raw("responses", format!("[{}]", responses.join(",")));
    }
    (200, o.done())
}

/// A streaming call's error as the gateway streams it (HTTP 200, then this line).
const NO_LEADER_LINE: &str = r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#;

const CHUNKED_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nGrpc-Metadata-Content-Type: application/grpc\r\nDate: Thu, 03 Dec 2026 14:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n";

fn chunk(conn: &mut TcpStream, line: &str) -> io::Result<()> {
    let data = format!("{line}\n");
    conn.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
}

/// One keepalive answer line (inside the chunked answer the caller opened).
fn keepalive(s: &Shared, conn: &mut TcpStream, req: &Value, fault: Fault) -> io::Result<()> {
    let id = int(req, "ID").unwrap_or(0);
    let line = {
        let mut st = lock(s);
        if fault == Fault::LeaseGone {
            revoke(&mut st, id, false);
        }
        let mut r = Obj::new().raw("header", header(&st)).s("ID", id);
        if let Some((ttl, expiry)) = st.leases.get_mut(&id) {
            *expiry = Instant::now() + Duration::from_secs(*ttl as u64);
            r = r.s("TTL", *ttl);
        }
        Obj::new().raw("result", r.done()).done()
    };
    chunk(conn, &line)
}

fn peer_closed(conn: &TcpStream) -> bool {
    let _ = conn.set_nonblocking(true);
    let mut b = [0u8; 1];
    let closed = match conn.peek(&mut b) {
        Ok(n) => n == 0,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    };
    let _ = conn.set_nonblocking(false);
    closed
}

fn watch(s: &Shared, mut conn: TcpStream, req: &Value) {
    s.watches_open.fetch_add(1, Ordering::SeqCst);
    let _ = watch_stream(s, &mut conn, req);
    s.watches_open.fetch_sub(1, Ordering::SeqCst);
    if matches!(lock(s).fault, Fault::Reset) {
        reset(conn);
    }
}

fn cut(conn: &mut TcpStream, line: &str) -> io::Result<()> {
    let half = &line[..line.len() / 2];
    conn.write_all(format!("{:x}\r\n{half}\r\n", half.len()).as_bytes())
}

fn watch_stream(s: &Shared, conn: &mut TcpStream, req: &Value) -> io::Result<()> {
    let create = field(req, "create_request").cloned().unwrap_or(Value::Null);
    let key = bytes(&create, "key").unwrap_or_default();
    let end = bytes(&create, "range_end").unwrap_or_default();
    let start = int(&create, "start_revision").unwrap_or(0);
    let (tx, rx) = mpsc::channel();
    let gone = Arc::new(AtomicBool::new(false));
    let (created, replay, compacted) = {
        let mut st = lock(s);
        let h = header(&st);
        let created = Obj::new()
            .raw(
                "result",
                Obj::new()
                    .raw("header", h.clone())
                    .raw("created", "true")
                    .done(),
            )
            .done();
        if start > 0 && start <= st.compacted {
            let c = st.compacted;
            let inner = Obj::new()
                .raw("header", h.clone())
                .raw("canceled", "true")
                .s("compact_revision", c)
                .done();
            let cancel = Obj::new().raw("result", inner).done();
            (created, vec![cancel], true)
        } else {
            let evs: Vec<String> = if start > 0 {
                st.history
                    .iter()
                    .filter(|(r, k, _)| *r >= start && in_range(k, &key, &end))
                    .map(|(_, _, e)| e.clone())
                    .collect()
            } else {
                Vec::new()
            };
            let replay = if evs.is_empty() {
                Vec::new()
            } else {
                vec![events_line(&h, &evs)]
            };
            st.watchers.push(Watcher {
                key,
                end,
                from: start,
                tx,
                gone: Arc::clone(&gone),
            });
            (created, replay, false)
        }
    };
    conn.write_all(CHUNKED_HEAD)?;
    chunk(conn, &created)?;
    for line in &replay {
        chunk(conn, line)?;
    }
    if compacted {
        s.compacted_answers.fetch_add(1, Ordering::SeqCst);
        return conn.write_all(b"0\r\n\r\n");
    }
    loop {
        if s.stop.load(Ordering::SeqCst) || gone.load(Ordering::SeqCst) || peer_closed(conn) {
            return Ok(());
        }
        let fault = lock(s).fault;
        match fault {
            Fault::Garbage => return conn.write_all(GARBAGE),
            Fault::Http500 | Fault::Reset => return Ok(()),
            Fault::EndWatch => return conn.write_all(b"0\r\n\r\n"),
            Fault::NoLeader => {
                chunk(conn, NO_LEADER_LINE)?;
                return conn.write_all(b"0\r\n\r\n");
            }
            Fault::Huge => {
                stream_huge(s, conn, true);
                return Ok(());
            }
            Fault::Silent => {
                drop(rx);
                hold(s, conn);
                return Ok(());
            }
            Fault::CutWatch => {
                let kv = kv_json(&Kv::new(
                    b"v1/instances/dynamo/backend/generate/cut",
                    b"{}".to_vec(),
                    0,
                    1,
                    1,
                    1,
                ));
                let h = header(&lock(s));
                let e = Obj::new().raw("kv", kv).done();
                return cut(conn, &events_line(&h, &[e]));
            }
            _ => {}
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Msg::Line(_)) if lock(s).fault == Fault::StallWatch => {}
            Ok(Msg::Line(line)) => chunk(conn, &line)?,
            Ok(Msg::Cut(line)) => return cut(conn, &line),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Base64 (standard alphabet, padded), as the gateway encodes keys and values.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn b64(data: &[u8]) -> String {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    String::from_utf8(out).unwrap()
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for b in text.bytes().filter(|&b| b != b'=') {
        let v = B64.iter().position(|&x| x == b)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[test]
fn base64_round_trips_and_matches_the_spec_example() {
    assert_eq!(b64(b"v1/instances/"), "djEvaW5zdGFuY2VzLw==");
    assert_eq!(b64(b"v1/instances0"), "djEvaW5zdGFuY2VzMA==");
    for s in [&b""[..], b"a", b"ab", b"abc", b"abcd", b"\xff\x00\xfe"] {
        assert_eq!(unb64(&b64(s)).unwrap(), s);
    }
}

/// One gateway call over a fresh connection, for the fake's own tests: (status, body).
pub fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // Join the chunks; a streamed answer (keepalive) is its first line.
        let mut joined = String::new();
        let mut left = rest;
        while let Some((size, after)) = left.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            joined.push_str(&after[..n]);
            left = after[n..].strip_prefix("\r\n").unwrap_or("");
        }
        joined.lines().next().unwrap_or("").to_string()
    } else {
        rest.to_string()
    };
    (status, body)
}

#[test]
fn fake_speaks_the_gateway() {
    let fake = FakeEtcd::start();
    let a = fake.addr;
    let (st, grant) = post(a, "/v3/lease/grant", r#"{"TTL":"5"}"#);
    assert_eq!(st, 200);
    let g: Value = serde_json::from_str(&grant).unwrap();
    assert_eq!(
        (g["ID"].as_str(), g["TTL"].as_str()),
        (Some("7587888160958627365"), Some("5"))
    );
    let key = b64(b"v1/instances/a/b/c/1");
    let txn = format!(
        r#"{{"compare":[{{"key":"{key}","target":"VERSION","version":"0"}}],"success":[{{"requestPut":{{"key":"{key}","value":"{}","lease":"7587888160958627365"}}}}]}}"#,
        b64(b"v")
    );
    let (_, r) = post(a, "/v3/kv/txn", &txn);
    assert!(r.contains(r#""succeeded":true"#), "{r}");
    let (_, r) = post(a, "/v3/kv/txn", &txn);
    assert!(!r.contains("succeeded"), "{r}");
    let prefix = r#"{"key":"djEvaW5zdGFuY2VzLw==","range_end":"djEvaW5zdGFuY2VzMA=="}"#;
    // A long answer comes chunked, as Go's net/http sends it.
    for i in 0..40 {
        fake.put(&format!("v1/instances/long/{i}"), &"x".repeat(100));
    }
    let (_, r) = post(a, "/v3/kv/range", prefix);
    let v: Value = serde_json::from_str(&r).unwrap_or_else(|e| panic!("{e}: {r}"));
    assert_eq!(v["count"].as_str(), Some("41"));
    // The newest key alone (the frontend's confirmation): sorted by MOD, descending, keys only.
    fake.put("v1/instances/long/10", "newer");
    let (_, r) = post(
        a,
        "/v3/kv/range",
        r#"{"key":"djEvaW5zdGFuY2VzLw==","range_end":"djEvaW5zdGFuY2VzMA==","limit":"1","sort_order":"DESCEND","sort_target":"MOD","keys_only":true}"#,
    );
    let v: Value = serde_json::from_str(&r).unwrap();
    assert_eq!(
        (
            v["kvs"][0]["key"].as_str(),
            v["kvs"][0].get("value"),
            v["more"].as_bool(),
            v["count"].as_str()
        ),
        (
            Some(b64(b"v1/instances/long/10").as_str()),
            None,
            Some(true),
            Some("41")
        ),
        "{r}"
    );
    fake.delete_prefix("v1/instances/long/");
    let (_, r) = post(a, "/v3/kv/range", prefix);
    let v: Value = serde_json::from_str(&r).unwrap();
    assert_eq!(v["kvs"][0]["key"].as_str(), Some(key.as_str()));
    assert_eq!(v["kvs"][0]["lease"].as_str(), Some("7587888160958627365"));
    assert_eq!(v["count"].as_str(), Some("1"));
    let (_, r) = post(
        a,
        "/v3/kv/range",
        r#"{"key":"djEvaW5zdGFuY2VzLw==","range_end":"djEvaW5zdGFuY2VzMA==","count_only":true}"#,
    );
    assert!(r.contains(r#""count":"1""#) && !r.contains("kvs"), "{r}");

    // A watch: the created line, then the event of a put.
    let mut w = TcpStream::connect(a).unwrap();
    w.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let body =
        r#"{"create_request":{"key":"djEvaW5zdGFuY2VzLw==","range_end":"djEvaW5zdGFuY2VzMA=="}}"#;
    write!(
        w,
        "POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut got = Vec::new();
    let mut read_until = |w: &mut TcpStream, needle: &str| {
        let end = Instant::now() + Duration::from_secs(5);
        while !String::from_utf8_lossy(&got).contains(needle) {
            assert!(
                Instant::now() < end,
                "no {needle:?} in {:?}",
                String::from_utf8_lossy(&got)
            );
            let mut b = [0u8; 4096];
            if let Ok(n) = w.read(&mut b) {
                got.extend_from_slice(&b[..n]);
            }
        }
    };
    read_until(&mut w, r#""created":true"#);
    fake.put("v1/instances/x", "y");
    read_until(
        &mut w,
        &format!(r#"{{"kv":{{"key":"{}""#, b64(b"v1/instances/x")),
    );

    let (_, r) = post(a, "/v3/lease/keepalive", r#"{"ID":"7587888160958627365"}"#);
    assert!(
        r.starts_with(r#"{"result":{"#) && r.contains(r#""TTL":"5""#),
        "{r}"
    );
    let (_, r) = post(
        a,
        "/v3/lease/timetolive",
        r#"{"ID":"7587888160958627365","keys":true}"#,
    );
    assert!(
        r.contains(&format!(r#""grantedTTL":"5","keys":["{key}"]"#)),
        "{r}"
    );
    let (st, _) = post(a, "/v3/lease/revoke", r#"{"ID":"7587888160958627365"}"#);
    assert_eq!(st, 200);
    read_until(&mut w, r#""type":"DELETE""#);
    assert!(fake.key("v1/instances/a/b/c/1").is_none());
    let (_, r) = post(a, "/v3/lease/keepalive", r#"{"ID":"7587888160958627365"}"#);
    assert!(!r.contains("TTL") && r.contains("\"ID\""), "{r}");
    let (_, r) = post(a, "/v3/lease/timetolive", r#"{"ID":"7587888160958627365"}"#);
    assert!(r.contains(r#""TTL":"-1""#), "{r}");
    let (st, r) = post(
        a,
        "/v3/kv/put",
        &format!(r#"{{"key":"{key}","value":"","lease":"7587888160958627365"}}"#),
    );
    assert_eq!(st, 404, "{r}");
    let (_, r) = post(
        a,
        "/v3/kv/deleterange",
        &format!(r#"{{"key":"{}"}}"#, b64(b"v1/instances/x")),
    );
    assert!(r.contains(r#""deleted":"1""#), "{r}");

    fake.set_fault(Fault::Http500);
    let (st, r) = post(a, "/v3/kv/range", prefix);
    assert_eq!(st, 500);
    assert!(r.contains(r#""code":2"#), "{r}");
    fake.set_fault(Fault::Reset);
    let mut s = TcpStream::connect(a).unwrap();
    s.write_all(b"POST /v3/kv/range HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    let mut b = [0u8; 16];
    let r = s.read(&mut b);
    assert!(
        r.as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
}

/// Opens a watch on the instances prefix and reads for up to `within`; returns what came.
fn watch_read(addr: SocketAddr, within: Duration) -> (String, bool) {
    let mut w = TcpStream::connect(addr).unwrap();
    w.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let body =
        r#"{"create_request":{"key":"djEvaW5zdGFuY2VzLw==","range_end":"djEvaW5zdGFuY2VzMA=="}}"#;
    let req = format!(
        "POST /v3/watch HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    w.write_all(req.as_bytes()).unwrap();
    let end = Instant::now() + within;
    let mut got = Vec::new();
    let mut eof = false;
    while Instant::now() < end && got.len() < 1 << 20 {
        let mut b = [0u8; 65536];
        match w.read(&mut b) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                eof = true;
                break;
            }
            Err(_) => {}
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), eof)
}

#[test]
fn fake_fault_modes_behave_as_documented() {
    let fake = FakeEtcd::start();
    let a = fake.addr;
    let prefix = r#"{"key":"djEvaW5zdGFuY2VzLw==","range_end":"djEvaW5zdGFuY2VzMA=="}"#;
    fake.put("v1/instances/a", "1");

    // A watch cut in the middle of an event line.
    let fake2 = &fake;
    let reader = std::thread::scope(|sc| {
        let h = sc.spawn(move || watch_read(a, Duration::from_secs(5)));
        let end = Instant::now() + Duration::from_secs(5);
        while fake2.watches_open() == 0 {
            assert!(Instant::now() < end, "no watch");
            std::thread::sleep(Duration::from_millis(2));
        }
        fake2.put_and_cut("v1/instances/b", "2");
        h.join().unwrap()
    });
    let (text, eof) = reader;
    assert!(eof, "{text}");
    let last = text.rsplit("\r\n").nth(1).unwrap();
    assert!(
        last.starts_with(r#"{"result":{"header":"#) && !last.ends_with('\n'),
        "{text}"
    );

    fake.set_fault(Fault::CutWatch);
    let (text, eof) = watch_read(a, Duration::from_secs(5));
    assert!(eof && text.contains(r#""created":true"#), "{text}");
    assert!(!text.ends_with("0\r\n\r\n"), "{text}");

    fake.set_fault(Fault::BadRange);
    let (_, r) = post(a, "/v3/kv/range", prefix);
    let v: Value = serde_json::from_str(&r).unwrap();
    assert_eq!(v["kvs"].as_array().unwrap().len(), 5, "{r}");

    fake.set_fault(Fault::Garbage);
    let mut s = TcpStream::connect(a).unwrap();
    s.write_all(b"POST /v3/kv/range HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    assert_eq!(out, GARBAGE);

    fake.set_fault(Fault::Silent);
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.write_all(b"POST /v3/kv/range HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    let mut b = [0u8; 16];
    assert!(s.read(&mut b).is_err(), "silent answers nothing");
    drop(s);

    fake.set_fault(Fault::Huge);
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"POST /v3/kv/range HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    let mut got = vec![0u8; 1 << 20];
    let mut n = 0;
    while n < got.len() {
        n += s.read(&mut got[n..]).unwrap();
    }
    assert!(String::from_utf8_lossy(&got[..200]).contains("Content-Length: 104857600\r\n"));
    drop(s);
    let end = Instant::now() + Duration::from_secs(10);
    while fake.huge_done().0 < 1 {
        assert!(Instant::now() < end, "the huge answer never ended");
        std::thread::sleep(Duration::from_millis(5));
    }

    fake.set_fault(Fault::NoLeader);
    let (st, r) = post(a, "/v3/kv/range", prefix);
    assert_eq!((st, r.contains(r#""code":14"#)), (503, true), "{r}");
    let (st, r) = post(a, "/v3/lease/keepalive", r#"{"ID":"1"}"#);
    assert_eq!((st, r.as_str()), (200, NO_LEADER_LINE));

    fake.set_fault(Fault::LeaseGone);
    let (_, g) = post(a, "/v3/lease/grant", r#"{"TTL":10}"#);
    assert!(g.contains(r#""ID":"7587888160958627365""#), "{g}");
    let (_, r) = post(a, "/v3/lease/keepalive", r#"{"ID":"7587888160958627365"}"#);
    assert!(
        r.contains(r#""ID":"7587888160958627365""#) && !r.contains("TTL"),
        "{r}"
    );
    assert!(fake.leases().is_empty());

    // Bounded: connections past MAX_CONNS are closed at once.
    fake.set_fault(Fault::Good);
    let held: Vec<TcpStream> = (0..MAX_CONNS + 8)
        .map(|_| TcpStream::connect(a).unwrap())
        .collect();
    let end = Instant::now() + Duration::from_secs(10);
    while fake.connections().1 < 8 {
        assert!(Instant::now() < end, "{:?}", fake.connections());
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(held);
}

#[test]
fn fake_streams_keepalive_over_a_chunked_body() {
    let fake = FakeEtcd::start();
    let (_, g) = post(fake.addr, "/v3/lease/grant", r#"{"TTL":"7"}"#);
    assert!(g.contains(r#""TTL":"7""#), "{g}");
    let mut s = TcpStream::connect(fake.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let msg = r#"{"ID":"7587888160958627365"}"#;
    write!(
        s,
        "POST /v3/lease/keepalive HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{msg}\r\n",
        msg.len()
    )
    .unwrap();
    let mut got = Vec::new();
    let mut until = |s: &mut TcpStream, n: usize| {
        while String::from_utf8_lossy(&got)
            .matches(r#""TTL":"7""#)
            .count()
            < n
        {
            let mut b = [0u8; 4096];
            let k = s.read(&mut b).unwrap();
            assert!(k > 0, "{:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&b[..k]);
        }
    };
    until(&mut s, 1);
    write!(s, "{:x}\r\n{msg}\r\n0\r\n\r\n", msg.len()).unwrap();
    until(&mut s, 2);
    assert_eq!(fake.requests_to("/v3/lease/keepalive").len(), 2);
}
