//! The one place that talks to etcd: HTTP/1.1 `POST`s to the JSON gateway of one member at a time,
//! over plain `TcpStream`s, every call bounded by a deadline (1 s), every body by a cap.
//!
//! Failover: a call that cannot connect, times out, or gets a 5xx (etcd's "no leader", "request
//! timed out") moves on to the next member in `ETCD_ENDPOINTS` and tries again, once around the
//! list. Names are resolved at every connect (`resolve.rs`), so a member that moved is found. With
//! a user login the token is fetched before the first call and again whenever etcd rejects it.
//! The watch is the one long-lived request: [`Gateway::watch`] returns a [`Stream`] of lines.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::resolve::Resolver;
use super::wire::{self, WireError};
use crate::config::{Etcd, EtcdEndpoint};
use crate::json::Json;

/// Each call's deadline: connect, send and the whole answer.
pub const DEADLINE: Duration = Duration::from_secs(1);
/// The largest answer or watch line read; anything bigger is refused (a lying etcd cannot make
/// healthd allocate more). Ranges are read in pages well below this.
const MAX_BODY: usize = 4 << 20;
/// How an answer over [`MAX_BODY`] is refused (the watcher then asks for smaller pages).
pub const TOO_LARGE: &str = "the answer is too large";
/// Response heads larger than this are refused.
const MAX_HEAD: usize = 16 << 10;

/// A client of one etcd cluster.
pub struct Gateway {
    endpoints: Vec<EtcdEndpoint>,
    current: usize,
    resolver: Resolver,
    auth: Option<(String, String)>,
    token: Option<String>,
}

/// Why a call failed: `member` is set when the member itself failed (try another).
struct Failure {
    error: WireError,
    member: bool,
}

impl Gateway {
    pub fn new(etcd: &Etcd) -> Gateway {
        Gateway {
            endpoints: etcd.endpoints.clone(),
            current: 0,
            resolver: Resolver::system(),
            auth: etcd.auth.clone(),
            token: None,
        }
    }

    /// The member calls go to now.
    pub fn member(&self) -> &EtcdEndpoint {
        &self.endpoints[self.current]
    }

    /// Moves on to the next member (a watch that broke, a confirmation that failed).
    pub fn next_member(&mut self) {
        self.current = (self.current + 1) % self.endpoints.len();
    }

    /// One unary call (`path` such as `/v3/kv/range`), failing over around the members once.
    pub fn call(&mut self, path: &str, body: &str) -> Result<Json, WireError> {
        let mut last = None;
        for _ in 0..self.endpoints.len() {
            match self.call_member(path, body) {
                Ok(doc) => return Ok(doc),
                Err(f) if f.member => {
                    last = Some(f.error);
                    self.next_member();
                }
                Err(f) => return Err(f.error),
            }
        }
        Err(last.unwrap_or_else(|| WireError("no etcd endpoints".into())))
    }

    /// One unary call on the current member only (the watcher's confirmation of its member).
    pub fn call_here(&mut self, path: &str, body: &str) -> Result<Json, WireError> {
        self.call_member(path, body).map_err(|f| f.error)
    }

    /// A call on the current member only, logging in (again) when needed.
    fn call_member(&mut self, path: &str, body: &str) -> Result<Json, Failure> {
        let deadline = Instant::now() + DEADLINE;
        self.login(deadline)?;
        match self.post(path, body, deadline) {
            Err(f) if !f.member && self.auth.is_some() && wire::auth_expired(&f.error) => {
                self.token = None;
                self.login(deadline)?;
                self.post(path, body, deadline)
            }
            other => other,
        }
    }

    fn login(&mut self, deadline: Instant) -> Result<(), Failure> {
        let Some((user, password)) = &self.auth else {
            return Ok(());
        };
        if self.token.is_some() {
            return Ok(());
        }
        let body = wire::authenticate(user, password);
        let doc = self.post("/v3/auth/authenticate", &body, deadline)?;
        self.token = Some(wire::token(&doc).map_err(|error| Failure {
            error,
            member: true,
        })?);
        Ok(())
    }

    /// One request, its whole answer read (or only its first line for the streaming keepalive).
    fn post(&self, path: &str, body: &str, deadline: Instant) -> Result<Json, Failure> {
        let mut conn = self.open(path, body, deadline)?;
        let first_line = path.ends_with("/keepalive");
        let status = conn.status;
        let bytes = conn
            .body(first_line, deadline)
            .map_err(|e| self.transport(e))?;
        let doc = wire::answer(&bytes).map_err(|error| Failure {
            member: status >= 500 || unavailable(&error),
            error,
        })?;
        if status >= 300 {
            return Err(Failure {
                error: WireError(format!("etcd answered {status}")),
                member: status >= 500,
            });
        }
        Ok(doc)
    }

    /// Starts a watch from `revision` on the current member (no failover: the caller decides).
    pub fn watch(&mut self, revision: u64) -> Result<Stream, WireError> {
        let deadline = Instant::now() + DEADLINE;
        let fail = |f: Failure| f.error;
        self.login(deadline).map_err(fail)?;
        let conn = self
            .open("/v3/watch", &wire::watch(revision), deadline)
            .map_err(fail)?;
        if conn.status != 200 {
            return Err(WireError(format!(
                "etcd answered {} to a watch",
                conn.status
            )));
        }
        Ok(Stream {
            conn,
            line: Vec::new(),
            scanned: 0,
        })
    }

    /// Connects to the current member, sends the request and reads the answer's head.
    fn open(&self, path: &str, body: &str, deadline: Instant) -> Result<Conn, Failure> {
        let m = self.member();
        let addrs = self
            .resolver
            .lookup(&m.host, m.port, deadline)
            .map_err(|e| Failure {
                error: WireError(format!("{m}: {e}")),
                member: true,
            })?;
        let mut last = io::Error::from(io::ErrorKind::NotFound);
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, left(deadline).map_err(|e| self.transport(e))?)
            {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let mut s = stream.ok_or_else(|| self.transport(last))?;
        let _ = s.set_nodelay(true);
        let auth = match &self.token {
            Some(t) => format!("Authorization: {t}\r\n"),
            None => String::new(),
        };
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
            m.host,
            m.port,
            body.len()
        );
        let io = |e| self.transport(e);
        s.set_write_timeout(Some(left(deadline).map_err(io)?))
            .map_err(io)?;
        s.write_all(req.as_bytes()).map_err(io)?;
        let mut conn = Conn {
            s,
            buf: Vec::new(),
            pos: 0,
            status: 0,
            chunked: false,
            length: None,
        };
        conn.head(deadline).map_err(io)?;
        Ok(conn)
    }

    fn transport(&self, e: io::Error) -> Failure {
        let what = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("no answer within {}s", DEADLINE.as_secs())
            }
            io::ErrorKind::ConnectionRefused => "connection refused".into(),
            _ => e.to_string(),
        };
        Failure {
            error: WireError(format!("{}: {what}", self.member())),
            member: true,
        }
    }
}

/// Errors that mean "this member cannot serve now" even when they come with a 4xx.
fn unavailable(e: &WireError) -> bool {
    let m = &e.0;
    m.contains("no leader") || m.contains("timed out") || m.contains("unavailable")
}

fn left(deadline: Instant) -> io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One HTTP connection whose request has been sent: the buffered bytes and the answer's framing.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    pos: usize,
    status: u16,
    chunked: bool,
    /// `Content-Length`, for unchunked bodies; `None` = until the connection closes.
    length: Option<usize>,
}

impl Conn {
    /// Reads more bytes, waiting until `deadline` at most; false at end of stream.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.s.set_read_timeout(Some(left(deadline)?))?;
        let mut chunk = [0u8; 16 << 10];
        loop {
            match self.s.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn head(&mut self, deadline: Instant) -> io::Result<()> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    self.status = resp.code.unwrap_or(0);
                    for h in resp.headers.iter() {
                        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
                        if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            self.chunked = value.eq_ignore_ascii_case("chunked");
                        } else if h.name.eq_ignore_ascii_case("content-length") {
                            self.length =
                                Some(value.parse().map_err(|_| invalid("a bad Content-Length"))?);
                        }
                    }
                    if self.length.is_some_and(|l| l > MAX_BODY) {
                        return Err(invalid(TOO_LARGE));
                    }
                    self.pos = n;
                    return Ok(());
                }
                Ok(httparse::Status::Partial) if self.buf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => {
                    return Err(invalid("the answer head is too large"));
                }
                Err(_) => return Err(invalid("not an HTTP answer")),
            }
            if !self.fill(deadline)? {
                return Err(invalid("the connection closed before an answer"));
            }
        }
    }

    /// The next piece of body bytes (chunk framing removed); empty at the end of the body.
    fn next_data(&mut self, deadline: Instant) -> io::Result<Vec<u8>> {
        if !self.chunked {
            if self.length == Some(0) {
                return Ok(Vec::new());
            }
            if self.pos == self.buf.len() && !self.fill(deadline)? {
                return match self.length {
                    None => Ok(Vec::new()),
                    Some(_) => Err(invalid("the answer was cut short")),
                };
            }
            let mut n = self.buf.len() - self.pos;
            if let Some(l) = &mut self.length {
                n = n.min(*l);
                *l -= n;
            }
            let out = self.buf[self.pos..self.pos + n].to_vec();
            self.pos += n;
            return Ok(out);
        }
        // A chunk: HEX[;ext]\r\n DATA \r\n; the zero-size chunk ends the body. Nothing is
        // consumed until the whole chunk is buffered, so a read that times out mid-chunk (the
        // watch waits with a deadline) leaves the framing intact for the next call.
        loop {
            let pending = &self.buf[self.pos..];
            if let Some(i) = pending.windows(2).position(|w| w == b"\r\n") {
                let size_text = std::str::from_utf8(&pending[..i]).unwrap_or("");
                let size =
                    usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| invalid("a bad chunk size"))?;
                if size > MAX_BODY {
                    return Err(invalid("a chunk is too large"));
                }
                if pending.len() >= i + 2 + size + 2 {
                    let out = pending[i + 2..i + 2 + size].to_vec();
                    self.pos += i + 2 + size + 2;
                    if size == 0 {
                        self.chunked = false;
                        self.length = Some(0);
                    }
                    return Ok(out);
                }
            } else if pending.len() > 64 {
                return Err(invalid("a bad chunk size line"));
            }
            if !self.fill(deadline)? {
                return Err(invalid("the stream was cut"));
            }
        }
    }

    /// The whole body (or its first line), capped.
    fn body(&mut self, first_line: bool, deadline: Instant) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let data = self.next_data(deadline)?;
            if data.is_empty() {
                return Ok(out);
            }
            let seen = out.len();
            out.extend_from_slice(&data);
            if out.len() > MAX_BODY {
                return Err(invalid(TOO_LARGE));
            }
            // Only the new bytes are looked at: a large answer is read in linear time.
            if first_line && let Some(i) = out[seen..].iter().position(|b| *b == b'\n') {
                out.truncate(seen + i);
                return Ok(out);
            }
        }
    }
}

/// A watch stream: one JSON object per line.
pub struct Stream {
    conn: Conn,
    line: Vec<u8>,
    /// How much of `line` is known to hold no newline (so a long line is scanned once).
    scanned: usize,
}

impl Stream {
    /// The next complete line, waiting until `until`; `Ok(None)` when `until` passed first.
    /// A stream that ends or is cut (even mid-line) is an error: the caller ranges again.
    pub fn next_line(&mut self, until: Instant) -> Result<Option<Vec<u8>>, WireError> {
        loop {
            if let Some(i) = self.line[self.scanned..]
                .iter()
                .position(|b| *b == b'\n')
                .map(|i| i + self.scanned)
            {
                self.scanned = 0;
                let rest = self.line.split_off(i + 1);
                let mut line = std::mem::replace(&mut self.line, rest);
                line.truncate(i);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            self.scanned = self.line.len();
            if self.line.len() > MAX_BODY {
                return Err(WireError("a watch line is too large".into()));
            }
            match self.conn.next_data(until) {
                Ok(d) if d.is_empty() => return Err(WireError("etcd closed the watch".into())),
                Ok(d) => self.line.extend_from_slice(&d),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= until {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(WireError(format!("the watch broke: {e}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-connection server that reads the request, then writes `pieces` with `pause` between.
    fn serve(pieces: Vec<Vec<u8>>, pause: Duration) -> Gateway {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            for p in pieces {
                if s.write_all(&p).is_err() {
                    return;
                }
                std::thread::sleep(pause);
            }
        });
        Gateway::new(&Etcd {
            endpoints: vec![EtcdEndpoint {
                host: "127.0.0.1".into(),
                port,
            }],
            lease_ttl: 10,
            auth: None,
        })
    }

    #[test]
    fn unary_answers_with_length_or_chunks() {
        let mut g = serve(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{\"succeeded\":tr".to_vec(),
                b"ue}".to_vec(),
            ],
            Duration::from_millis(20),
        );
        assert!(wire::succeeded(&g.call("/v3/kv/txn", "{}").unwrap()));
        let mut g = serve(
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"ID\"\r\n".to_vec(),
                b"6\r\n:\"42\"}\r\n0\r\n\r\n".to_vec(),
            ],
            Duration::from_millis(20),
        );
        assert_eq!(
            wire::granted(&g.call("/v3/lease/grant", "{}").unwrap()).unwrap(),
            42
        );
        let mut g = serve(
            vec![b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 43\r\n\r\n{\"error\":\"etcdserver: no leader\",\"code\":14}".to_vec()],
            Duration::ZERO,
        );
        assert_eq!(
            g.call("/v3/kv/range", "{}").unwrap_err().0,
            "etcd: etcdserver: no leader"
        );
    }

    #[test]
    fn liars_are_refused_without_reading_everything() {
        let big = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 100 << 20);
        let mut g = serve(vec![big.into_bytes()], Duration::ZERO);
        assert!(
            g.call("/v3/kv/range", "{}")
                .unwrap_err()
                .0
                .contains("too large")
        );
        let mut g = serve(vec![b"garbage\r\n\r\n".to_vec()], Duration::ZERO);
        assert!(
            g.call("/v3/kv/range", "{}")
                .unwrap_err()
                .0
                .contains("not an HTTP answer")
        );
        let mut g = serve(
            vec![b"HTTP/1.1 200 OK\r\n".to_vec()],
            Duration::from_secs(3),
        );
        let t = Instant::now();
        assert!(
            g.call("/v3/kv/range", "{}")
                .unwrap_err()
                .0
                .contains("no answer within 1s")
        );
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_watch_waits_mid_chunk_and_reads_on() {
        let mut g = serve(
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                b"a\r\n{\"a\":1}\n{\"".to_vec(),
                b"\r\n5\r\nb\":2}\r\n".to_vec(),
                b"2\r\n\n\n\r\n".to_vec(),
                b"3\r\n{\"c".to_vec(),
            ],
            Duration::from_millis(150),
        );
        let mut s = g.watch(1).unwrap();
        let soon = || Instant::now() + Duration::from_millis(50);
        let mut lines = Vec::new();
        let until = Instant::now() + Duration::from_secs(3);
        loop {
            match s.next_line(soon()) {
                Ok(Some(l)) => lines.push(String::from_utf8(l).unwrap()),
                Ok(None) => assert!(Instant::now() < until, "no progress"),
                Err(e) => {
                    assert_eq!(e.0, "the watch broke: the stream was cut");
                    break;
                }
            }
        }
        assert_eq!(lines, vec!["{\"a\":1}", "{\"b\":2}"]);
    }
}
