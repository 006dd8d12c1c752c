//! Test harness: spawn the real binary with a clean environment on an ephemeral port, talk HTTP
//! to it over plain sockets, send it signals, and poll with deadlines (never fixed sleeps). On a
//! failing test the child's stderr is printed.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_healthd");

/// A running healthd.
pub struct Healthd {
    pub child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A command with an empty environment plus `env`.
pub fn command(env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().envs(env.iter().copied()).args(args);
    cmd
}

/// Runs healthd to completion (for commands that exit): (exit code, stdout, stderr).
pub fn run(env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut child = command(env, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn healthd");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            return (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("healthd {args:?} did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Healthd {
    /// Starts `healthd` with a clean environment: `DYN_SYSTEM_PORT=0` and
    /// `DYN_SYSTEM_HOST=127.0.0.1` unless `env` sets them. Waits for `listening on`.
    pub fn start(env: &[(&str, &str)], args: &[&str]) -> Healthd {
        let mut full: Vec<(&str, &str)> =
            vec![("DYN_SYSTEM_PORT", "0"), ("DYN_SYSTEM_HOST", "127.0.0.1")];
        full.retain(|(k, _)| !env.iter().any(|(e, _)| e == k));
        full.extend_from_slice(env);
        Healthd::spawn(command(&full, args))
    }

    /// Spawns a prepared `command` (for tests that adjust the child, e.g. its limits) and waits
    /// for `listening on`.
    pub fn spawn(mut cmd: Command) -> Healthd {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn healthd");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                {
                    let mut l = sink.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(a) => a.parse().expect("listening address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "healthd never said 'listening on'; stderr:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Healthd { child, addr, log }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Everything healthd wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Polls until stderr contains `needle` (10 s deadline).
    pub fn wait_log(&self, needle: &str) {
        poll(&format!("log line {needle:?}"), || {
            self.stderr().contains(needle)
        });
    }

    /// One request over a fresh connection with `Connection: close`.
    pub fn req(&self, method: &str, path: &str) -> Response {
        let raw = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        parse(&self.raw(raw.as_bytes()))
    }

    pub fn get(&self, path: &str) -> Response {
        self.req("GET", path)
    }

    /// Sends raw bytes on a fresh connection and reads until the server closes (5 s deadline).
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(bytes).expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits up to `within` for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }
}

impl Drop for Healthd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- healthd stderr ---\n{}", self.stderr());
        }
    }
}

/// Parses a full HTTP/1.x response (one; the body is whatever follows the head).
pub fn parse(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Polls `cond` every few milliseconds until true; panics after 10 s naming `what`.
pub fn poll(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Replaces the uptime numbers of a Dynamo body so it can be compared exactly.
pub fn mask_uptime(body: &str) -> String {
    let re_start = body.find("\"uptime\":{").map(|i| i + 10);
    match re_start {
        Some(s) => {
            let end = body[s..].find('}').map(|e| s + e).unwrap();
            let inner = &body[s..end];
            let ok = inner.starts_with("\"secs\":")
                && inner.contains(",\"nanos\":")
                && inner
                    .replace("\"secs\":", "")
                    .replace(",\"nanos\":", "")
                    .bytes()
                    .all(|b| b.is_ascii_digit());
            assert!(ok, "uptime not secs/nanos integers: {inner}");
            format!("{}\"secs\":S,\"nanos\":N{}", &body[..s], &body[end..])
        }
        None => body.to_string(),
    }
}

// ---- what /proc says about a process --------------------------------------------------------

/// Open descriptors of a process.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// User plus system CPU time of a process, in clock ticks (1/100 s).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}
