//! The sd_notify socket: a Unix datagram socket (a path, or `@name` in the abstract namespace)
//! that speaks systemd's notify protocol, so daemons that already call `sd_notify` (or run
//! `systemd-notify`) can tell healthd how they are doing without knowing about healthd.
//!
//! | line | effect |
//! |---|---|
//! | `READY=1` | process ready |
//! | `RELOADING=1` | process not ready (until the next `READY=1`) |
//! | `STOPPING=1` | drain: not ready from now on (healthd keeps answering until it is stopped) |
//! | `WATCHDOG=1` | heartbeat (see `HEALTHD_HEARTBEAT_TIMEOUT`) |
//! | `STATUS=text` | free-form status, shown in logs and `healthd status` |
//! | `HEALTHD_ENDPOINT=name=ready` | an endpoint's state (`ready` or `notready`); healthd's own key |
//!
//! Other systemd keys (`MAINPID=`, `ERRNO=`, ...) are accepted and ignored; anything else is
//! ignored with a warning. Parsing is pure ([`parse`]); the thread only receives and applies.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Instant;

use super::{Shared, apply};
use crate::config::check_endpoint_name;
use crate::log::warning;
use crate::state::{Health, Source, Update};

/// One understood line of a notify datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Ready,
    Reloading,
    Stopping,
    Watchdog,
    Status(String),
    Endpoint(String, Health),
}

/// systemd keys that mean nothing to healthd but are not mistakes.
const IGNORED_KEYS: &[&str] = &[
    "MAINPID",
    "ERRNO",
    "BUSERROR",
    "EXIT_STATUS",
    "MONOTONIC_USEC",
    "WATCHDOG_USEC",
    "EXTEND_TIMEOUT_USEC",
    "FDSTORE",
    "FDSTOREREMOVE",
    "FDNAME",
    "FDPOLL",
    "NOTIFYACCESS",
    "BARRIER",
];

/// Parses one datagram: the understood lines, and one problem description per bad line.
pub fn parse(datagram: &[u8]) -> (Vec<Msg>, Vec<String>) {
    let mut msgs = Vec::new();
    let mut problems = Vec::new();
    let Ok(text) = std::str::from_utf8(datagram) else {
        problems.push("datagram is not UTF-8 text".to_string());
        return (msgs, problems);
    };
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let Some((key, value)) = line.split_once('=') else {
            problems.push(format!("{line:?}: expected KEY=VALUE"));
            continue;
        };
        let msg = match (key, value) {
            ("READY", "1") => Msg::Ready,
            ("RELOADING", "1") => Msg::Reloading,
            ("STOPPING", "1") => Msg::Stopping,
            ("WATCHDOG", "1") => Msg::Watchdog,
            ("STATUS", text) => {
                Msg::Status(text.chars().filter(|c| !c.is_control()).take(200).collect())
            }
            ("HEALTHD_ENDPOINT", v) => match v.split_once('=') {
                Some((name, state)) if check_endpoint_name(name).is_ok() => {
                    match Health::parse(state) {
                        Some(h) => Msg::Endpoint(name.to_string(), h),
                        None => {
                            problems.push(format!(
                                "{line:?}: expected HEALTHD_ENDPOINT=NAME=ready|notready"
                            ));
                            continue;
                        }
                    }
                }
                _ => {
                    problems.push(format!(
                        "{line:?}: expected HEALTHD_ENDPOINT=NAME=ready|notready (names use letters, digits, '_', '-', '.')"
                    ));
                    continue;
                }
            },
            (k, _) if IGNORED_KEYS.contains(&k) => continue,
            _ => {
                problems.push(format!("{line:?}: unknown key or value"));
                continue;
            }
        };
        msgs.push(msg);
    }
    (msgs, problems)
}

/// Binds the socket: a path (a stale socket file there is replaced) or `@name` (abstract).
pub fn bind(spec: &str) -> io::Result<UnixDatagram> {
    if let Some(name) = spec.strip_prefix('@') {
        let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
        return UnixDatagram::bind_addr(&addr);
    }
    if let Ok(meta) = std::fs::symlink_metadata(spec) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            std::fs::remove_file(spec)?;
        }
    }
    UnixDatagram::bind(spec)
}

/// Receives datagrams on a thread of its own and applies them.
pub fn spawn(sock: UnixDatagram, state: Shared) -> io::Result<()> {
    super::thread::detach("notify", move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warning!("notify socket: receive failed ({e}); retrying");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
            };
            let (msgs, problems) = parse(&buf[..n]);
            for p in problems {
                warning!("notify socket: ignoring {p}");
            }
            for msg in msgs {
                handle(&state, msg);
            }
        }
    })
}

fn handle(state: &Shared, msg: Msg) {
    let (update, what) = match msg {
        Msg::Ready => (Update::Process(Health::Ready), "READY=1".to_string()),
        Msg::Reloading => (Update::Process(Health::NotReady), "RELOADING=1".to_string()),
        Msg::Stopping => (Update::Drain, "STOPPING=1".to_string()),
        Msg::Watchdog => (
            Update::Heartbeat(Instant::now()),
            "WATCHDOG=1: heartbeat resumed".to_string(),
        ),
        Msg::Status(text) => (Update::Status(text.clone()), format!("STATUS={text}")),
        Msg::Endpoint(name, h) => {
            let what = format!("HEALTHD_ENDPOINT={name}={}", h.as_str());
            (Update::Endpoint(name, h), what)
        }
    };
    apply(state, update, Source::Notify, &what);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[u8], msgs: &[Msg], problems: usize) {
        let (m, p) = parse(input);
        assert_eq!(m, msgs, "{input:?}");
        assert_eq!(p.len(), problems, "{input:?}: {p:?}");
    }

    #[test]
    fn table() {
        use Msg::*;
        check(b"READY=1", &[Ready], 0);
        check(
            b"READY=1\nSTATUS=Serving 3 models\n",
            &[Ready, Status("Serving 3 models".into())],
            0,
        );
        check(b"MAINPID=42\nREADY=1", &[Ready], 0);
        check(b"WATCHDOG=1", &[Watchdog], 0);
        check(b"STOPPING=1", &[Stopping], 0);
        check(b"RELOADING=1\nMONOTONIC_USEC=1", &[Reloading], 0);
        check(
            b"HEALTHD_ENDPOINT=generate=ready",
            &[Endpoint("generate".into(), Health::Ready)],
            0,
        );
        check(b"HEALTHD_ENDPOINT=generate=up", &[], 1);
        check(b"HEALTHD_ENDPOINT=a b=ready", &[], 1);
        check(b"READY=2", &[], 1);
        check(b"garbage", &[], 1);
        check(b"\xff\xfe", &[], 1);
        check(b"", &[], 0);
        check(b"NOPE=1\nREADY=1", &[Ready], 1);
    }
}
