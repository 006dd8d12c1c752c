//! Name resolution for `ETCD_ENDPOINTS` hosts without NSS or `getaddrinfo` (a static binary in an
//! empty root has neither), done the way a Kubernetes pod or a Docker container (embedded DNS at
//! 127.0.0.11) resolves names:
//!
//! 1. an IP literal (`10.0.0.1`, `::1`, `[::1]`) is used as is;
//! 2. `/etc/hosts`: every address on a line naming the host (name or alias, any case), in file
//!    order; `localhost` is 127.0.0.1 and ::1 unless the file names it;
//! 3. DNS over UDP to the `/etc/resolv.conf` name servers (up to 3; none listed or no file:
//!    127.0.0.1, as glibc), through its `search` (or `domain`) list in glibc's order for `ndots`;
//!    A and AAAA are asked together; IPv4 addresses come first, then IPv6.
//!
//! Both files are read afresh on every lookup (the kubelet and Docker rewrite them) with
//! [`file::read`]: non-blocking, regular files only, at most 64 KiB; a missing or unusable file
//! counts as empty.
//!
//! Time: nothing blocks past the caller's deadline. One *try* sends both questions to one server
//! and waits for both answers at most `timeout:N` seconds of resolv.conf, default 1 s (not glibc's
//! 5 s: a lost datagram is better sent again soon, and the caller's deadline rules anyway), clamped
//! to 1..=5 s, and never past the deadline. Every server is tried in order, for `attempts:N` rounds
//! (default 2, clamped to 1..=5). A reply counts only from the server asked (a connected socket, and
//! the source is checked), with the query's random id, the QR bit and the question echoed; anything
//! else is ignored and the wait goes on.
//!
//! Outcomes per candidate name: addresses end the lookup; NXDOMAIN, or no data for both types, moves
//! to the next candidate; SERVFAIL, a refusal (also ICMP port unreachable) or silence moves to the
//! next server; when no server gave an answer the next candidate follows if one of them failed
//! (as glibc), but silence from every server ends the lookup (the other candidates would wait just
//! as long). CNAME chains are followed within the
//! answer section. A truncated (TC) reply is used for the complete records it holds: there is no TCP
//! fallback, since an etcd member name has a handful of addresses and fits in 512 bytes. Not done:
//! EDNS, `options rotate`/`single-request`, `RES_OPTIONS`/`LOCALDOMAIN`, IPv6 zone ids.

// The etcd client (issue 13, being built) is the caller; until it lands only the tests are.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::source::file::{self, Snapshot};

const MAX_SERVERS: usize = 3;
const MAX_SEARCH: usize = 32;
const DEFAULT_NDOTS: u32 = 1;
const MAX_NDOTS: u32 = 15;
/// Seconds one try waits for its answers (resolv.conf `timeout:N` within 1..=5).
const DEFAULT_TIMEOUT: u32 = 1;
const MAX_TIMEOUT: u32 = 5;
/// Rounds over the server list (resolv.conf `attempts:N` within 1..=5).
const DEFAULT_ATTEMPTS: u32 = 2;
const MAX_ATTEMPTS: u32 = 5;
/// A name has at most 127 labels, so more jumps than this is a compression loop.
const MAX_JUMPS: usize = 128;
const MAX_CNAME_HOPS: usize = 16;

pub(crate) const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
pub(crate) const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const NOERROR: u8 = 0;
const NXDOMAIN: u8 = 3;

/// Where the resolver reads its configuration, and the port its name servers listen on.
#[derive(Debug, Clone)]
pub struct Resolver {
    hosts: PathBuf,
    resolv_conf: PathBuf,
    port: u16,
}

impl Resolver {
    /// `/etc/hosts`, `/etc/resolv.conf`, name servers on port 53.
    pub fn system() -> Resolver {
        Resolver::with_files("/etc/hosts".into(), "/etc/resolv.conf".into(), 53)
    }

    /// Other files and another DNS port (for tests and scripts).
    pub fn with_files(hosts: PathBuf, resolv_conf: PathBuf, port: u16) -> Resolver {
        Resolver {
            hosts,
            resolv_conf,
            port,
        }
    }

    /// Every address of `host` with `port`, within `deadline`; the error is one short phrase
    /// such as "etcd-0.etcd: no such host (tried etcd-0.etcd.default.svc.cluster.local, ...)" or
    /// "etcd-0.etcd: no answer from 10.96.0.10 within 1s".
    pub fn lookup(
        &self,
        host: &str,
        port: u16,
        deadline: Instant,
    ) -> Result<Vec<SocketAddr>, String> {
        let ips = self.lookup_ips(host, deadline)?;
        Ok(ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }

    fn lookup_ips(&self, host: &str, deadline: Instant) -> Result<Vec<IpAddr>, String> {
        if let Some(ip) = ip_literal(host) {
            return Ok(vec![ip]);
        }
        if let Err(why) = encode_name(host) {
            return Err(format!("{host}: not a valid host name: {why}"));
        }
        let listed = hosts_lookup(&read_text(&self.hosts), host);
        if !listed.is_empty() {
            return Ok(listed);
        }
        if host.trim_end_matches('.').eq_ignore_ascii_case("localhost") {
            return Ok(vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()]);
        }
        let conf = parse_resolv_conf(&read_text(&self.resolv_conf));
        // Servers are named in errors as resolv.conf spells them (no IPv6 formatting code).
        let (mut servers, mut named) = (Vec::new(), Vec::new());
        for (ip, text) in &conf.servers {
            servers.push(SocketAddr::new(*ip, self.port));
            named.push(text.as_str());
        }
        if servers.is_empty() {
            servers.push(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.port));
            named.push("127.0.0.1");
        }
        let named = named.join(", ");
        let wait = Duration::from_secs(conf.timeout.into());
        let started = Instant::now();
        let (mut tried, mut failed) = (Vec::new(), false);
        for name in candidates(host, &conf.search, conf.ndots) {
            if encode_name(&name).is_err() {
                continue; // too long with this suffix
            }
            let (mut outcome, mut answered) = (Try::Silent, false);
            'rounds: for _ in 0..conf.attempts {
                for server in &servers {
                    let now = Instant::now();
                    if now >= deadline {
                        break 'rounds;
                    }
                    outcome = ask(*server, &name, deadline.min(now + wait));
                    match outcome {
                        Try::Found(_) | Try::NoSuch => break 'rounds,
                        Try::Failed => answered = true,
                        Try::Silent => {}
                    }
                }
            }
            tried.push(name);
            match outcome {
                // Some server failed, others were silent: a failure, not silence.
                Try::Silent if answered => failed = true,
                Try::Found(ips) => return Ok(ips),
                Try::NoSuch => {}
                Try::Failed => failed = true,
                Try::Silent => {
                    let took = show(started.elapsed());
                    return Err(format!("{host}: no answer from {named} within {took}"));
                }
            }
        }
        let list = tried.join(", ");
        if failed {
            return Err(format!(
                "{host}: name server {named} failed or refused (tried {list})"
            ));
        }
        Err(format!("{host}: no such host (tried {list})"))
    }
}

/// What one try (one server, both questions) found.
#[derive(Debug, PartialEq)]
enum Try {
    /// Addresses: A answers first, then AAAA.
    Found(Vec<IpAddr>),
    /// NXDOMAIN, or no data of either type: the next candidate.
    NoSuch,
    /// SERVFAIL, REFUSED, an unusable reply: the next server.
    Failed,
    /// No (complete) answer in time: the next server.
    Silent,
}

/// The one function that does network I/O: both questions for `name` to `server`, then waits
/// until both answers arrived or `until`.
fn ask(server: SocketAddr, name: &str, until: Instant) -> Try {
    let ids = random_ids();
    let (Ok(qa), Ok(qaaaa)) = (
        build_query(ids[0], name, TYPE_A),
        build_query(ids[1], name, TYPE_AAAA),
    ) else {
        return Try::Failed;
    };
    let any: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let Ok(sock) = UdpSocket::bind(any) else {
        return Try::Failed;
    };
    if sock.connect(server).is_err() || sock.send(&qa).is_err() || sock.send(&qaaaa).is_err() {
        return Try::Failed;
    }
    let mut got: [Option<Answer>; 2] = [None, None];
    let mut buf = [0u8; 4096];
    while got.iter().any(Option::is_none) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if from.ip() == server.ip() && from.port() == server.port() => {
                for (i, qtype) in [TYPE_A, TYPE_AAAA].into_iter().enumerate() {
                    if got[i].is_none()
                        && let Ok(a) = parse_answer(&buf[..n], ids[i], name, qtype)
                    {
                        got[i] = Some(a);
                        break;
                    }
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // ICMP port unreachable: nobody serves DNS there.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return Try::Failed,
            Err(_) => break,
        }
    }
    classify(&got)
}

/// Both answers (or what arrived in time) -> the outcome of the try. An address in either answer
/// wins (a server that never answers AAAA must not hide its A records); NXDOMAIN is about the
/// name, so one is enough.
fn classify(got: &[Option<Answer>; 2]) -> Try {
    let mut ips = Vec::new();
    for ip in got.iter().flatten().flat_map(|a| a.addrs.iter()) {
        if !ips.contains(ip) {
            ips.push(*ip);
        }
    }
    if !ips.is_empty() {
        return Try::Found(ips);
    }
    let answers = || got.iter().flatten();
    if answers().any(|a| a.rcode == NXDOMAIN) {
        return Try::NoSuch;
    }
    if got.iter().any(Option::is_none) {
        return Try::Silent;
    }
    // No data is only final when the reply was complete; a truncated empty one proves nothing.
    if answers().all(|a| a.rcode == NOERROR && !a.truncated) {
        return Try::NoSuch;
    }
    Try::Failed
}

/// Two different random query ids (`getrandom`; the clock if that fails).
fn random_ids() -> [u16; 2] {
    let mut b = [0u8; 4];
    // SAFETY: writes at most 4 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 4, libc::GRND_NONBLOCK) };
    if n != 4 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32);
        b = (t.wrapping_mul(2_654_435_761) ^ std::process::id()).to_le_bytes();
    }
    let a = u16::from_le_bytes([b[0], b[1]]);
    let mut c = u16::from_le_bytes([b[2], b[3]]);
    if c == a {
        c = !a;
    }
    [a, c]
}

fn read_text(path: &std::path::Path) -> String {
    match file::read(path) {
        Snapshot::Bytes(b, _) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    }
}

/// A duration in whole milliseconds below a second, else whole seconds (no float formatting).
fn show(d: Duration) -> String {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{}s", (ms + 500) / 1000)
    }
}

// ---- IP literals and /etc/hosts ---------------------------------------------------------------

/// `10.0.0.1`, `::1` and `[::1]` are addresses; anything else is a name.
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Every address in a hosts file listing `name` (canonical name or alias, any case, a trailing
/// dot ignored), in file order without repeats. `#` starts a comment; unparsable lines are skipped.
pub(crate) fn hosts_lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.trim_end_matches('.');
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if words.any(|w| w.trim_end_matches('.').eq_ignore_ascii_case(name)) && !found.contains(&ip)
        {
            found.push(ip);
        }
    }
    found
}

// ---- /etc/resolv.conf and the candidate names --------------------------------------------------

/// What resolv.conf says (the parts used here).
#[derive(Debug, PartialEq)]
pub(crate) struct Conf {
    /// At most three, each with its text; empty means 127.0.0.1.
    pub(crate) servers: Vec<(IpAddr, String)>,
    /// Suffixes without their trailing dot.
    pub(crate) search: Vec<String>,
    pub(crate) ndots: u32,
    /// Seconds.
    pub(crate) timeout: u32,
    pub(crate) attempts: u32,
}

/// glibc's reading: `nameserver ADDR` (the first three usable ones), `search` and `domain` (the
/// last such line wins), `options ndots:N timeout:N attempts:N`; `#` and `;` start comments;
/// anything else is ignored.
pub(crate) fn parse_resolv_conf(text: &str) -> Conf {
    let mut conf = Conf {
        servers: Vec::new(),
        search: Vec::new(),
        ndots: DEFAULT_NDOTS,
        timeout: DEFAULT_TIMEOUT,
        attempts: DEFAULT_ATTEMPTS,
    };
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(word) = words.next()
                    && let Ok(ip) = word.parse::<IpAddr>()
                    && conf.servers.len() < MAX_SERVERS
                {
                    conf.servers.push((ip, word.to_string()));
                }
            }
            Some(key @ ("search" | "domain")) => {
                let words = words.take(if key == "domain" { 1 } else { MAX_SEARCH });
                conf.search = words
                    .map(|w| w.trim_end_matches('.').to_string())
                    .filter(|w| !w.is_empty())
                    .collect();
            }
            Some("options") => {
                for (key, value) in words.filter_map(|w| w.split_once(':')) {
                    let Ok(n) = value.parse::<u32>() else {
                        continue;
                    };
                    match key {
                        "ndots" => conf.ndots = n.min(MAX_NDOTS),
                        "timeout" => conf.timeout = n.clamp(1, MAX_TIMEOUT),
                        "attempts" => conf.attempts = n.clamp(1, MAX_ATTEMPTS),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    conf
}

/// The names to ask for, in glibc's order: a name ending in `.` only as is; a name with at least
/// `ndots` dots as is first, then with each search suffix; otherwise the suffixes first.
pub(crate) fn candidates(name: &str, search: &[String], ndots: u32) -> Vec<String> {
    if let Some(absolute) = name.strip_suffix('.') {
        return vec![absolute.to_string()];
    }
    let mut out: Vec<String> = Vec::new();
    let dots = name.bytes().filter(|b| *b == b'.').count();
    if dots >= ndots as usize {
        out.push(name.to_string());
    }
    for suffix in search {
        let full = format!("{name}.{suffix}");
        if !out.contains(&full) {
            out.push(full);
        }
    }
    if dots < ndots as usize && !out.iter().any(|n| n == name) {
        out.push(name.to_string());
    }
    out
}

// ---- DNS messages (RFC 1035) ---------------------------------------------------------------------

/// `name` in wire form (length-prefixed labels, lower case, the final zero byte): at most 63 bytes
/// a label and 253 a name (255 on the wire); one trailing dot is allowed.
fn encode_name(name: &str) -> Result<Vec<u8>, &'static str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("the name is empty");
    }
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        if label.is_empty() {
            return Err("a label is empty");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 bytes");
        }
        out.push(label.len() as u8);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    if out.len() > 255 {
        return Err("the name is longer than 253 bytes");
    }
    Ok(out)
}

/// A standard query: header with RD set, one question `name` `qtype` IN.
pub(crate) fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, &'static str> {
    let mut q = Vec::with_capacity(12 + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(&encode_name(name)?);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

/// What a reply to one of our questions says.
#[derive(Debug, PartialEq)]
pub(crate) struct Answer {
    pub(crate) rcode: u8,
    pub(crate) truncated: bool,
    /// The `qtype` addresses of the name or of its CNAME chain, in answer order.
    pub(crate) addrs: Vec<IpAddr>,
}

/// Reads the reply to question (`id`, `name`, `qtype`). An error means "not our answer, or not a
/// usable one"; nothing in `packet` can make this panic or loop.
pub(crate) fn parse_answer(
    packet: &[u8],
    id: u16,
    name: &str,
    qtype: u16,
) -> Result<Answer, &'static str> {
    let qname = encode_name(name)?;
    if packet.len() < 12 {
        return Err("packet cut short");
    }
    if be16(packet, 0)? != id {
        return Err("another id");
    }
    let flags = be16(packet, 2)?;
    let (rcode, truncated) = ((flags & 0xF) as u8, flags & 0x0200 != 0);
    if flags & 0x8000 == 0 || (flags >> 11) & 0xF != 0 {
        return Err("not a reply to a standard query");
    }
    let (qdcount, ancount) = (be16(packet, 4)?, be16(packet, 6)?);
    let failure = rcode != NOERROR && rcode != NXDOMAIN;
    if qdcount == 0 && failure {
        // Some servers drop the question from FORMERR, SERVFAIL and REFUSED replies.
        let addrs = Vec::new();
        return Ok(Answer {
            rcode,
            truncated,
            addrs,
        });
    }
    if qdcount != 1 {
        return Err("not one question");
    }
    let (owner, pos) = read_name(packet, 12)?;
    if owner != qname || be16(packet, pos)? != qtype || be16(packet, pos + 2)? != CLASS_IN {
        return Err("another question");
    }
    let mut records = Vec::new();
    let mut pos = pos + 4;
    let ancount = if rcode == NOERROR { ancount } else { 0 };
    for _ in 0..ancount {
        match read_record(packet, pos) {
            Ok((r, next)) => {
                records.push(r);
                pos = next;
            }
            Err(_) if truncated => break, // keep the complete records
            Err(e) => return Err(e),
        }
    }
    // The CNAME chain from the question's name, within the answer section.
    let mut names = vec![qname];
    for _ in 0..MAX_CNAME_HOPS {
        let last = &names[names.len() - 1];
        let next = records
            .iter()
            .find(|r| r.rtype == TYPE_CNAME && r.class == CLASS_IN && &r.owner == last);
        match next {
            Some(r) if !names.contains(&r.data) => names.push(r.data.clone()),
            _ => break,
        }
    }
    let mut addrs = Vec::new();
    for r in &records {
        if r.rtype == qtype && r.class == CLASS_IN && names.contains(&r.owner) {
            addrs.push(match <[u8; 16]>::try_from(&r.data[..]) {
                Ok(v6) => IpAddr::from(v6),
                Err(_) => IpAddr::from([r.data[0], r.data[1], r.data[2], r.data[3]]),
            });
        }
    }
    Ok(Answer {
        rcode,
        truncated,
        addrs,
    })
}

/// One resource record: its owner in wire form, type, class and data (a CNAME's target in wire
/// form; the checked 4 or 16 bytes of A and AAAA).
struct Record {
    owner: Vec<u8>,
    rtype: u16,
    class: u16,
    data: Vec<u8>,
}

fn read_record(p: &[u8], pos: usize) -> Result<(Record, usize), &'static str> {
    let (owner, pos) = read_name(p, pos)?;
    let (rtype, class) = (be16(p, pos)?, be16(p, pos + 2)?);
    let start = pos + 10;
    let end = start + be16(p, pos + 8)? as usize;
    let rdata = p.get(start..end).ok_or("record data cut short")?;
    let data = match (rtype, rdata.len()) {
        (TYPE_CNAME, _) => match read_name(p, start)? {
            (target, next) if next == end => target,
            _ => return Err("CNAME data of the wrong length"),
        },
        (TYPE_A, 4) | (TYPE_AAAA, 16) => rdata.to_vec(),
        (TYPE_A | TYPE_AAAA, _) => return Err("address data of the wrong length"),
        _ => Vec::new(),
    };
    let r = Record {
        owner,
        rtype,
        class,
        data,
    };
    Ok((r, end))
}

/// The name at `pos` in wire form (lower case), and where the data after it starts. Compression
/// pointers are followed at most [`MAX_JUMPS`] times; the name may not exceed 255 bytes.
fn read_name(p: &[u8], mut pos: usize) -> Result<(Vec<u8>, usize), &'static str> {
    let (mut out, mut after, mut jumps) = (Vec::new(), None, 0);
    loop {
        let len = *p.get(pos).ok_or("name cut short")? as usize;
        match len & 0xC0 {
            0 if len == 0 => break,
            0 => {
                let label = p.get(pos + 1..pos + 1 + len).ok_or("name cut short")?;
                out.push(len as u8);
                out.extend(label.iter().map(u8::to_ascii_lowercase));
                if out.len() >= 255 {
                    return Err("name too long");
                }
                pos += 1 + len;
            }
            0xC0 => {
                let low = *p.get(pos + 1).ok_or("name cut short")? as usize;
                after.get_or_insert(pos + 2);
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err("compression loop");
                }
                pos = ((len & 0x3F) << 8) | low;
            }
            _ => return Err("unknown label type"),
        }
    }
    out.push(0);
    Ok((out, after.unwrap_or(pos + 1)))
}

fn be16(p: &[u8], at: usize) -> Result<u16, &'static str> {
    match p.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err("packet cut short"),
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // tables of cases read best inline
pub mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    // ---- pure parts -----------------------------------------------------------------------------

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn ip_literals_are_used_as_is() {
        let cases: &[(&str, Option<&str>)] = &[
            ("10.0.0.1", Some("10.0.0.1")),
            ("::1", Some("::1")),
            ("[::1]", Some("::1")),
            ("[fd00::2]", Some("fd00::2")),
            ("[::1", None),
            ("localhost", None),
            ("10.0.0.256", None),
            ("etcd-0.etcd", None),
        ];
        for (host, want) in cases {
            let want = want.map(|w| w.parse::<IpAddr>().unwrap());
            assert_eq!(ip_literal(host), want, "{host}");
        }
    }

    #[test]
    fn hosts_file_table() {
        let text = "# a comment\n127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n\
                    10.0.0.5   etcd-0.etcd.ns.svc  etcd-0   # the member\n\
                    garbage line here\n10.0.0.6 ETCD-0\n\n fd00::5 etcd-0 \n10.0.0.5 etcd-0\n\
                    300.1.1.1 bad\n#10.0.0.9 etcd-0\n";
        let cases: &[(&str, &[&str])] = &[
            ("etcd-0", &["10.0.0.5", "10.0.0.6", "fd00::5"]),
            ("Etcd-0", &["10.0.0.5", "10.0.0.6", "fd00::5"]),
            ("etcd-0.", &["10.0.0.5", "10.0.0.6", "fd00::5"]),
            ("etcd-0.etcd.ns.svc", &["10.0.0.5"]),
            ("localhost", &["127.0.0.1", "::1"]),
            ("ip6-localhost", &["::1"]),
            ("etcd", &[]),
            ("bad", &[]),
            ("line", &[]),
            ("the", &[]),
        ];
        for (name, want) in cases {
            assert_eq!(hosts_lookup(text, name), ips(want), "{name}");
        }
    }

    #[test]
    fn resolv_conf_table() {
        let check = |text: &str, servers: &[&str], search: &[&str], n: [u32; 3]| {
            let c = parse_resolv_conf(text);
            let want = Conf {
                servers: servers
                    .iter()
                    .map(|s| (s.parse().unwrap(), s.to_string()))
                    .collect(),
                search: search.iter().map(|s| s.to_string()).collect(),
                ndots: n[0],
                timeout: n[1],
                attempts: n[2],
            };
            assert_eq!(c, want, "{text:?}");
        };
        check("", &[], &[], [1, 1, 2]);
        check(
            "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local \
             cluster.local\noptions ndots:5\n",
            &["10.96.0.10"],
            &[
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
            ],
            [5, 1, 2],
        );
        // Docker's embedded DNS.
        check(
            "nameserver 127.0.0.11\nsearch .\noptions edns0 trust-ad ndots:0\n",
            &["127.0.0.11"],
            &[],
            [0, 1, 2],
        );
        check(
            "nameserver 1.1.1.1\nnameserver\tfd00::53\nnameserver 2.2.2.2\nnameserver 3.3.3.3\n",
            &["1.1.1.1", "fd00::53", "2.2.2.2"],
            &[],
            [1, 1, 2],
        );
        check(
            "# c\n; c\nnameserver 1.1.1.1 # inline\nnameserver bogus\nnameserver fe80::1%eth0\n\
             nameserver [::1]\nsearch a.example. b\ndomain ignored.example\n",
            &["1.1.1.1"],
            &["ignored.example"],
            [1, 1, 2],
        );
        check(
            "domain corp.example x\nsearch s1 s2\n",
            &[],
            &["s1", "s2"],
            [1, 1, 2],
        );
        check(
            "options ndots:99 timeout:30 attempts:0\noptions rotate timeout:x attempts:3\n",
            &[],
            &[],
            [15, 5, 3],
        );
        check("options timeout:0 ndots:2\n", &[], &[], [2, 1, 2]);
        check(
            "search a b ; c\nnonsense words\nNAMESERVER 9.9.9.9\n",
            &[],
            &["a", "b"],
            [1, 1, 2],
        );
    }

    #[test]
    fn candidate_order_table() {
        let k8s = [
            "default.svc.cluster.local",
            "svc.cluster.local",
            "cluster.local",
        ];
        let cases: &[(&str, &[&str], u32, &[&str])] = &[
            (
                "etcd-0.etcd",
                &k8s,
                5,
                &[
                    "etcd-0.etcd.default.svc.cluster.local",
                    "etcd-0.etcd.svc.cluster.local",
                    "etcd-0.etcd.cluster.local",
                    "etcd-0.etcd",
                ],
            ),
            (
                "etcd.ns.svc.cluster.local",
                &k8s,
                4,
                &[
                    "etcd.ns.svc.cluster.local",
                    "etcd.ns.svc.cluster.local.default.svc.cluster.local",
                    "etcd.ns.svc.cluster.local.svc.cluster.local",
                    "etcd.ns.svc.cluster.local.cluster.local",
                ],
            ),
            ("etcd.example.com.", &k8s, 5, &["etcd.example.com"]),
            ("etcd", &[], 1, &["etcd"]),
            ("etcd", &["a"], 1, &["etcd.a", "etcd"]),
            ("etcd", &["a"], 0, &["etcd", "etcd.a"]),
            ("etcd.x", &["a", "a"], 1, &["etcd.x", "etcd.x.a"]),
            ("etcd.x", &[], 5, &["etcd.x"]),
        ];
        for (name, search, ndots, want) in cases {
            let search: Vec<String> = search.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                candidates(name, &search, *ndots),
                *want,
                "{name} ndots:{ndots}"
            );
        }
    }

    #[test]
    fn query_table() {
        let long = "a".repeat(63);
        let name_253 = [&long[..], &long, &long, &"b".repeat(61)].join(".");
        assert_eq!(name_253.len(), 253);
        let cases: &[(&str, u16, Result<&[u8], &str>)] = &[
            (
                "Etcd-0.ns",
                TYPE_A,
                Ok(b"\x12\x34\x01\x00\0\x01\0\0\0\0\0\0\x06etcd-0\x02ns\0\0\x01\0\x01"),
            ),
            (
                "a.",
                TYPE_AAAA,
                Ok(b"\x12\x34\x01\x00\0\x01\0\0\0\0\0\0\x01a\0\0\x1c\0\x01"),
            ),
            ("", TYPE_A, Err("the name is empty")),
            (".", TYPE_A, Err("the name is empty")),
            ("a..b", TYPE_A, Err("a label is empty")),
            (".a", TYPE_A, Err("a label is empty")),
            ("a..", TYPE_A, Err("a label is empty")),
            (
                &format!("{long}a.b"),
                TYPE_A,
                Err("a label is longer than 63 bytes"),
            ),
            (
                &format!("{name_253}b"),
                TYPE_A,
                Err("the name is longer than 253 bytes"),
            ),
        ];
        for (name, qtype, want) in cases {
            let got = build_query(0x1234, name, *qtype);
            assert_eq!(got.as_deref(), want.as_deref(), "{name}");
        }
        assert_eq!(
            build_query(1, &name_253, TYPE_A).unwrap().len(),
            12 + 255 + 4
        );
        assert_eq!(
            build_query(1, &format!("{name_253}."), TYPE_A)
                .unwrap()
                .len(),
            271
        );
    }

    // ---- answers --------------------------------------------------------------------------------

    /// What a test server does with a question.
    #[derive(Debug, Clone)]
    pub enum Act {
        /// NOERROR with these addresses (those of the asked type; none = no data).
        Records(Vec<IpAddr>),
        /// NOERROR: a CNAME to the target, then the target's addresses (owner compressed to
        /// the CNAME's data).
        Cname(&'static str, Vec<IpAddr>),
        /// This RCODE, no answers.
        Rcode(u8),
        /// No answer at all.
        Silent,
    }

    /// The name (dotted, as sent) and type of a query, if it is one.
    pub fn question(q: &[u8]) -> Option<(String, u16, usize)> {
        let mut pos = 12;
        let mut labels = Vec::new();
        loop {
            let len = *q.get(pos)? as usize;
            if len == 0 {
                break;
            }
            labels.push(String::from_utf8_lossy(q.get(pos + 1..pos + 1 + len)?).into_owned());
            pos += 1 + len;
        }
        let qtype = u16::from_be_bytes([*q.get(pos + 1)?, *q.get(pos + 2)?]);
        Some((labels.join("."), qtype, pos + 5))
    }

    /// The reply a test server sends to query `q` (written independently of the parser).
    pub fn reply(q: &[u8], act: &Act) -> Option<Vec<u8>> {
        let (_, qtype, qend) = question(q)?;
        let (rcode, cname, addrs) = match act {
            Act::Records(a) => (0, None, a.clone()),
            Act::Cname(t, a) => (0, Some(*t), a.clone()),
            Act::Rcode(r) => (*r, None, Vec::new()),
            Act::Silent => return None,
        };
        let rdata = |ip: &IpAddr| match (ip, qtype) {
            (IpAddr::V4(v4), TYPE_A) => Some(v4.octets().to_vec()),
            (IpAddr::V6(v6), TYPE_AAAA) => Some(v6.octets().to_vec()),
            _ => None,
        };
        let datas: Vec<Vec<u8>> = addrs.iter().filter_map(rdata).collect();
        let ancount = datas.len() + usize::from(cname.is_some());
        let mut p = q[..2].to_vec();
        p.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1, 0, ancount as u8, 0, 0, 0, 0]);
        p.extend_from_slice(&q[12..qend]);
        let mut owner = [0xC0, 12];
        if let Some(target) = cname {
            let name = encode_name(target).unwrap();
            p.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, name.len() as u8]);
            owner = [0xC0, p.len() as u8];
            p.extend_from_slice(&name);
        }
        for d in datas {
            p.extend_from_slice(&owner);
            p.extend_from_slice(&qtype.to_be_bytes());
            p.extend_from_slice(&[0, 1, 0, 0, 0, 60, 0, d.len() as u8]);
            p.extend_from_slice(&d);
        }
        Some(p)
    }

    fn answer(rcode: u8, truncated: bool, addrs: &[&str]) -> Answer {
        Answer {
            rcode,
            truncated,
            addrs: ips(addrs),
        }
    }

    #[test]
    fn answer_table() {
        let q = build_query(0x4242, "etcd.ns", TYPE_A).unwrap();
        let q6 = build_query(0x4242, "etcd.ns", TYPE_AAAA).unwrap();
        let both = Act::Records(ips(&["10.0.0.1", "fd00::1", "10.0.0.2"]));
        let good = reply(&q, &both).unwrap();
        let with = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut p = good.clone();
            edit(&mut p);
            p
        };
        let cname = reply(&q, &Act::Cname("etcd-0.etcd.ns", ips(&["10.0.0.9"]))).unwrap();
        // A CNAME to elsewhere, and records of an unrelated owner (pointer to "ns").
        let mut stray = reply(&q, &Act::Cname("other.ns", Vec::new())).unwrap();
        stray[7] = 2;
        stray.extend_from_slice(&[0xC0, 17, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 6, 6, 6, 6]);
        // Owner of the answer is a pointer to itself.
        let mut looped = reply(&q, &Act::Records(Vec::new())).unwrap();
        looped[7] = 1;
        let at = looped.len() as u8;
        looped.extend_from_slice(&[0xC0, at, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 1, 1, 1]);
        let cases: Vec<(&str, Vec<u8>, u16, Result<Answer, &str>)> = vec![
            (
                "A",
                good.clone(),
                TYPE_A,
                Ok(answer(0, false, &["10.0.0.1", "10.0.0.2"])),
            ),
            (
                "AAAA",
                reply(&q6, &both).unwrap(),
                TYPE_AAAA,
                Ok(answer(0, false, &["fd00::1"])),
            ),
            (
                "nodata",
                reply(&q, &Act::Records(Vec::new())).unwrap(),
                TYPE_A,
                Ok(answer(0, false, &[])),
            ),
            (
                "nxdomain",
                reply(&q, &Act::Rcode(3)).unwrap(),
                TYPE_A,
                Ok(answer(3, false, &[])),
            ),
            (
                "servfail",
                reply(&q, &Act::Rcode(2)).unwrap(),
                TYPE_A,
                Ok(answer(2, false, &[])),
            ),
            (
                "servfail without question",
                with(&|p| {
                    p.truncate(12);
                    p[3] = 0x82;
                    p[5] = 0;
                }),
                TYPE_A,
                Ok(answer(2, false, &[])),
            ),
            ("cname", cname, TYPE_A, Ok(answer(0, false, &["10.0.0.9"]))),
            ("unrelated owners", stray, TYPE_A, Ok(answer(0, false, &[]))),
            (
                "question any case",
                with(&|p| p[13] = b'E'),
                TYPE_A,
                Ok(answer(0, false, &["10.0.0.1", "10.0.0.2"])),
            ),
            (
                "truncated, cut mid-record",
                with(&|p| {
                    p[2] |= 0x02;
                    p.truncate(p.len() - 2);
                }),
                TYPE_A,
                Ok(answer(0, true, &["10.0.0.1"])),
            ),
            (
                "cut mid-record",
                with(&|p| {
                    p.truncate(p.len() - 2);
                }),
                TYPE_A,
                Err("record data cut short"),
            ),
            ("other id", with(&|p| p[1] ^= 1), TYPE_A, Err("another id")),
            (
                "a query",
                with(&|p| p[2] &= 0x7F),
                TYPE_A,
                Err("not a reply to a standard query"),
            ),
            (
                "opcode",
                with(&|p| p[2] |= 0x10),
                TYPE_A,
                Err("not a reply to a standard query"),
            ),
            (
                "other type",
                good.clone(),
                TYPE_AAAA,
                Err("another question"),
            ),
            (
                "other name",
                with(&|p| p[14] = b'x'),
                TYPE_A,
                Err("another question"),
            ),
            (
                "other class",
                with(&|p| p[24] = 3),
                TYPE_A,
                Err("another question"),
            ),
            (
                "two questions",
                with(&|p| p[5] = 2),
                TYPE_A,
                Err("not one question"),
            ),
            (
                "no question",
                with(&|p| p[5] = 0),
                TYPE_A,
                Err("not one question"),
            ),
            (
                "short header",
                good[..11].to_vec(),
                TYPE_A,
                Err("packet cut short"),
            ),
            ("empty", Vec::new(), TYPE_A, Err("packet cut short")),
            (
                "question cut",
                good[..20].to_vec(),
                TYPE_A,
                Err("name cut short"),
            ),
            (
                "more answers than sent",
                with(&|p| p[7] = 9),
                TYPE_A,
                Err("name cut short"),
            ),
            (
                "A of 5 bytes",
                with(&|p| {
                    let n = p.len();
                    p[n - 5] = 5;
                    p.push(0);
                }),
                TYPE_A,
                Err("address data of the wrong length"),
            ),
            ("compression loop", looped, TYPE_A, Err("compression loop")),
            (
                "label type 0x40",
                with(&|p| p[25] = 0x40),
                TYPE_A,
                Err("unknown label type"),
            ),
        ];
        for (what, packet, qtype, want) in cases {
            assert_eq!(
                parse_answer(&packet, 0x4242, "etcd.ns", qtype),
                want,
                "{what}"
            );
        }
    }

    #[test]
    fn classify_table() {
        use Try::*;
        let a = |rcode, tc, addrs: &[&str]| Some(answer(rcode, tc, addrs));
        let cases: Vec<([Option<Answer>; 2], Try)> = vec![
            (
                [a(0, false, &["1.1.1.1"]), a(0, false, &["::1"])],
                Found(ips(&["1.1.1.1", "::1"])),
            ),
            (
                [a(0, false, &[]), a(0, false, &["::1"])],
                Found(ips(&["::1"])),
            ),
            ([a(0, false, &["1.1.1.1"]), None], Found(ips(&["1.1.1.1"]))),
            (
                [a(0, false, &["1.1.1.1", "1.1.1.1"]), a(2, false, &[])],
                Found(ips(&["1.1.1.1"])),
            ),
            ([a(0, false, &[]), a(0, false, &[])], NoSuch),
            ([a(3, false, &[]), a(3, false, &[])], NoSuch),
            ([a(3, false, &[]), None], NoSuch),
            ([a(0, false, &[]), a(3, false, &[])], NoSuch),
            ([a(0, false, &[]), None], Silent),
            ([None, None], Silent),
            ([a(2, false, &[]), a(2, false, &[])], Failed),
            ([a(0, false, &[]), a(5, false, &[])], Failed),
            ([a(0, true, &[]), a(0, false, &[])], Failed),
        ];
        for (got, want) in cases {
            assert_eq!(classify(&got), want, "{got:?}");
        }
    }

    #[test]
    fn durations_show_without_floats() {
        for (ms, want) in [
            (0, "0ms"),
            (300, "300ms"),
            (999, "999ms"),
            (1000, "1s"),
            (1499, "1s"),
            (2600, "3s"),
        ] {
            assert_eq!(show(Duration::from_millis(ms)), want);
        }
    }

    #[test]
    fn ids_differ() {
        for _ in 0..100 {
            let [a, b] = random_ids();
            assert_ne!(a, b);
        }
    }

    // ---- end to end against test servers ------------------------------------------------------

    type Rule = fn(&str) -> Act;

    /// A UDP DNS server on `ip` (port 0: any) answering by `rule`, recording every question. With
    /// `tricks`, each reply is preceded by one with another id and one from another port.
    struct Server {
        port: u16,
        asked: Arc<Mutex<Vec<(String, u16)>>>,
    }

    fn server(ip: &str, port: u16, rule: Rule, tricks: bool) -> std::io::Result<Server> {
        let sock = UdpSocket::bind((ip.parse::<IpAddr>().unwrap(), port))?;
        let other = UdpSocket::bind((ip.parse::<IpAddr>().unwrap(), 0))?;
        let port = sock.local_addr()?.port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                let q = &buf[..n];
                let Some((name, qtype, _)) = question(q) else {
                    continue;
                };
                log.lock().unwrap().push((name.clone(), qtype));
                let Some(r) = reply(q, &rule(&name)) else {
                    continue;
                };
                if tricks {
                    let mut wrong = r.clone();
                    wrong[0] ^= 0x5A;
                    let _ = sock.send_to(&wrong, from);
                    let _ = other.send_to(&r, from);
                }
                let _ = sock.send_to(&r, from);
            }
        });
        Ok(Server { port, asked })
    }

    fn k8s_rule(name: &str) -> Act {
        match name {
            "etcd-0.etcd.default.svc.cluster.local" => Act::Records(ips(&["10.1.0.1", "fd00::1"])),
            "etcd.other.svc.cluster.local" => Act::Records(ips(&["10.1.0.2"])),
            "alias.example" => {
                Act::Cname("etcd-0.etcd.default.svc.cluster.local", ips(&["10.1.0.1"]))
            }
            "v6only.example" => Act::Records(ips(&["fd00::6", "fd00::7"])),
            "broken.example" => Act::Rcode(2),
            _ => Act::Rcode(3),
        }
    }

    struct Files(PathBuf);

    impl Files {
        fn new(hosts: &str, resolv_conf: &str) -> Files {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("healthd-resolve-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("hosts"), hosts).unwrap();
            std::fs::write(dir.join("resolv.conf"), resolv_conf).unwrap();
            Files(dir)
        }
        fn resolver(&self, port: u16) -> Resolver {
            Resolver::with_files(self.0.join("hosts"), self.0.join("resolv.conf"), port)
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const K8S: &str = "search default.svc.cluster.local svc.cluster.local cluster.local\n\
                       nameserver 127.0.0.1\noptions ndots:5\n";

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn literals_hosts_and_localhost_need_no_server() {
        let none = Resolver::with_files("/nonexistent/hosts".into(), "/nonexistent/r".into(), 1);
        let cases: &[(&str, &[&str])] = &[
            ("10.2.3.4", &["10.2.3.4:2379"]),
            ("[::1]", &["[::1]:2379"]),
            ("fd00::9", &["[fd00::9]:2379"]),
            ("localhost", &["127.0.0.1:2379", "[::1]:2379"]),
            ("LocalHost.", &["127.0.0.1:2379", "[::1]:2379"]),
        ];
        for (host, want) in cases {
            assert_eq!(none.lookup(host, 2379, soon()), Ok(addrs(want)), "{host}");
        }
        let f = Files::new(
            "10.9.9.9 localhost\n10.0.0.7 etcd-0 etcd-0.etcd\nfd00::7 ETCD-0\n",
            "",
        );
        let r = f.resolver(1);
        assert_eq!(r.lookup("localhost", 1, soon()), Ok(addrs(&["10.9.9.9:1"])));
        assert_eq!(
            r.lookup("Etcd-0", 1, soon()),
            Ok(addrs(&["10.0.0.7:1", "[fd00::7]:1"]))
        );
        assert_eq!(
            r.lookup("etcd-0.etcd", 1, soon()),
            Ok(addrs(&["10.0.0.7:1"]))
        );
        let bad = "a".repeat(64);
        assert_eq!(
            r.lookup(&bad, 1, soon()),
            Err(format!(
                "{bad}: not a valid host name: a label is longer than 63 bytes"
            ))
        );
        assert_eq!(
            r.lookup("a..b", 1, soon()),
            Err("a..b: not a valid host name: a label is empty".into())
        );
        // The system files are whatever this machine has; a literal needs neither.
        assert_eq!(
            Resolver::system().lookup("127.0.0.1", 80, soon()),
            Ok(addrs(&["127.0.0.1:80"]))
        );
    }

    #[test]
    fn kubernetes_search_order_with_ndots_5() {
        let s = server("127.0.0.1", 0, k8s_rule, false).unwrap();
        let f = Files::new("", K8S);
        let r = f.resolver(s.port);
        assert_eq!(
            r.lookup("etcd-0.etcd", 2379, soon()),
            Ok(addrs(&["10.1.0.1:2379", "[fd00::1]:2379"]))
        );
        let asked = std::mem::take(&mut *s.asked.lock().unwrap());
        let mut names: Vec<_> = asked.iter().map(|(n, _)| n.as_str()).collect();
        names.dedup();
        assert_eq!(names, ["etcd-0.etcd.default.svc.cluster.local"]);
        let types: Vec<u16> = asked.iter().map(|(_, t)| *t).collect();
        assert_eq!(types, [TYPE_A, TYPE_AAAA]);

        // Another namespace: the first suffix answers NXDOMAIN, the second has it.
        assert_eq!(
            r.lookup("etcd.other", 1, soon()),
            Ok(addrs(&["10.1.0.2:1"]))
        );
        let asked = std::mem::take(&mut *s.asked.lock().unwrap());
        let mut names: Vec<_> = asked.iter().map(|(n, _)| n.as_str()).collect();
        names.dedup();
        assert_eq!(
            names,
            [
                "etcd.other.default.svc.cluster.local",
                "etcd.other.svc.cluster.local"
            ]
        );

        assert_eq!(
            r.lookup("nothing", 1, soon()),
            Err(
                "nothing: no such host (tried nothing.default.svc.cluster.local, \
                 nothing.svc.cluster.local, nothing.cluster.local, nothing)"
                    .into()
            )
        );
        // Absolute names skip the search list; CNAMEs are followed; AAAA-only names work.
        assert_eq!(
            r.lookup("alias.example.", 1, soon()),
            Ok(addrs(&["10.1.0.1:1"]))
        );
        assert_eq!(
            r.lookup("v6only.example.", 1, soon()),
            Ok(addrs(&["[fd00::6]:1", "[fd00::7]:1"]))
        );
        assert_eq!(
            r.lookup("broken.example.", 1, soon()),
            Err(
                "broken.example.: name server 127.0.0.1 failed or refused (tried broken.example)"
                    .into()
            )
        );
        // Files are read on every lookup.
        std::fs::write(f.0.join("hosts"), "10.5.5.5 nothing\n").unwrap();
        assert_eq!(r.lookup("nothing", 1, soon()), Ok(addrs(&["10.5.5.5:1"])));
    }

    #[test]
    fn stray_packets_and_wrong_ids_are_ignored() {
        let s = server("127.0.0.1", 0, k8s_rule, true).unwrap();
        let f = Files::new("", K8S);
        let got = f.resolver(s.port).lookup("etcd-0.etcd", 1, soon());
        assert_eq!(got, Ok(addrs(&["10.1.0.1:1", "[fd00::1]:1"])));
    }

    #[test]
    fn missing_or_unusable_files_mean_defaults() {
        // No resolv.conf: 127.0.0.1, ndots:1 (the name as is first), no search list.
        let s = server("127.0.0.1", 0, k8s_rule, false).unwrap();
        let dir = std::env::temp_dir();
        let r = Resolver::with_files("/nonexistent/hosts".into(), "/nonexistent/r".into(), s.port);
        let full = "etcd-0.etcd.default.svc.cluster.local";
        assert_eq!(
            r.lookup(full, 1, soon()),
            Ok(addrs(&["10.1.0.1:1", "[fd00::1]:1"]))
        );
        assert_eq!(
            r.lookup("etcd-0", 1, soon()),
            Err("etcd-0: no such host (tried etcd-0)".into())
        );
        // A directory in place of either file counts as empty.
        let r = Resolver::with_files(dir.clone(), dir, s.port);
        assert_eq!(
            r.lookup("localhost", 1, soon()),
            Ok(addrs(&["127.0.0.1:1", "[::1]:1"]))
        );
        assert_eq!(
            r.lookup(full, 1, soon()),
            Ok(addrs(&["10.1.0.1:1", "[fd00::1]:1"]))
        );
    }

    #[test]
    fn docker_embedded_dns() {
        // Docker writes `nameserver 127.0.0.11` and `options ndots:0`; container names are bare.
        let s = server(
            "127.0.0.11",
            0,
            |n| match n {
                "etcd" => Act::Records(ips(&["172.18.0.2"])),
                _ => Act::Rcode(3),
            },
            false,
        )
        .unwrap();
        let f = Files::new(
            "",
            "nameserver 127.0.0.11
search .
options edns0 trust-ad ndots:0
",
        );
        assert_eq!(
            f.resolver(s.port).lookup("etcd", 2379, soon()),
            Ok(addrs(&["172.18.0.2:2379"]))
        );
        assert_eq!(s.asked.lock().unwrap().len(), 2);
    }

    /// Two servers on one port: `first` on 127.0.0.1 (what it does: `rule`), a good one on
    /// 127.0.0.2.
    fn pair(rule: Rule) -> (Server, Server) {
        for _ in 0..20 {
            let good = server("127.0.0.2", 0, k8s_rule, false).unwrap();
            if let Ok(first) = server("127.0.0.1", good.port, rule, false) {
                return (first, good);
            }
        }
        panic!("no port free on both 127.0.0.1 and 127.0.0.2");
    }

    #[test]
    fn failing_servers_move_to_the_next_one() {
        let conf = format!("{K8S}nameserver 127.0.0.2\n");
        // SERVFAIL at once, and nothing listening at all (ICMP refusal): no waiting.
        let (bad, _good) = pair(|_| Act::Rcode(2));
        let f = Files::new("", &conf);
        let t0 = Instant::now();
        assert_eq!(
            f.resolver(bad.port).lookup("etcd-0.etcd", 1, soon()),
            Ok(addrs(&["10.1.0.1:1", "[fd00::1]:1"]))
        );
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        let good = server("127.0.0.2", 0, k8s_rule, false).unwrap();
        let t0 = Instant::now();
        assert_eq!(
            f.resolver(good.port).lookup("etcd-0.etcd", 1, soon()),
            Ok(addrs(&["10.1.0.1:1", "[fd00::1]:1"]))
        );
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        // Silence: the next server after one timeout (1 s).
        let (_silent, good) = pair(|_| Act::Silent);
        let t0 = Instant::now();
        assert_eq!(
            f.resolver(good.port).lookup("etcd-0.etcd", 1, soon()),
            Ok(addrs(&["10.1.0.1:1", "[fd00::1]:1"]))
        );
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(950) && took < Duration::from_secs(2),
            "{took:?}"
        );
        // One silent, one failing: a failure (the next candidate follows), not silence.
        let f = Files::new(
            "",
            "nameserver 127.0.0.1\nnameserver 127.0.0.2\noptions attempts:1\n",
        );
        assert_eq!(
            f.resolver(good.port).lookup("broken.example.", 1, soon()),
            Err(
                "broken.example.: name server 127.0.0.1, 127.0.0.2 failed or refused \
                 (tried broken.example)"
                    .into()
            )
        );
    }

    #[test]
    fn the_deadline_holds_against_a_silent_server() {
        let s = server("127.0.0.1", 0, |_| Act::Silent, false).unwrap();
        let f = Files::new("", "nameserver 127.0.0.1\noptions timeout:5 attempts:5\n");
        for ms in [0, 300] {
            let t0 = Instant::now();
            let got = f
                .resolver(s.port)
                .lookup("etcd-0", 1, t0 + Duration::from_millis(ms));
            let took = t0.elapsed();
            let err = got.unwrap_err();
            assert!(
                err.starts_with("etcd-0: no answer from 127.0.0.1 within "),
                "{err}"
            );
            assert!(
                took >= Duration::from_millis(ms) && took < Duration::from_millis(ms + 150),
                "{took:?}"
            );
        }
        // Without a deadline in the way, attempts x timeout bound it: 2 x 1 s by default.
        let f = Files::new("", "nameserver 127.0.0.1\n");
        let t0 = Instant::now();
        let err = f.resolver(s.port).lookup("etcd-0", 1, soon()).unwrap_err();
        assert_eq!(err, "etcd-0: no answer from 127.0.0.1 within 2s");
        assert!(
            t0.elapsed() < Duration::from_millis(2300),
            "{:?}",
            t0.elapsed()
        );
    }
}
