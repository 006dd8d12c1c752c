//! Black-box tests of `scripts/entrypoint.sh`: it starts healthd and the app, flips readiness once
//! the app is ready, forwards SIGTERM and exits with the app's exit code.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{BIN, parse, poll};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/entrypoint.sh");

struct Entrypoint {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
    dir: PathBuf,
}

impl Entrypoint {
    /// Runs the entrypoint with `app` (a shell command) and waits for healthd's `listening on`.
    fn start(name: &str, app: &str, ready_check: &str) -> Entrypoint {
        let dir = std::env::temp_dir().join(format!("healthd-ep-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new("sh")
            .arg(SCRIPT)
            .args(["sh", "-c", app])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HEALTHD", BIN)
            .env("HEALTHD_READY_FILE", dir.join("ready"))
            .env("READY_CHECK", ready_check)
            .env("DYN_SYSTEM_PORT", "0")
            .env("DYN_SYSTEM_HOST", "127.0.0.1")
            .env("HEALTHD_SHUTDOWN_GRACE", "1h")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut addr = None;
        poll("listening on", || {
            let l = log.lock().unwrap();
            addr = l
                .split("listening on ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|a| a.parse().ok());
            addr.is_some()
        });
        Entrypoint {
            child,
            addr: addr.unwrap(),
            log,
            dir,
        }
    }

    fn status(&self) -> Option<u16> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        Some(parse(&out).status)
    }

    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "entrypoint did not exit; stderr:\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Entrypoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- entrypoint stderr ---\n{}", self.log.lock().unwrap());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn ready_when_the_app_is_then_sigterm_is_forwarded_and_its_code_returned() {
    // The app becomes ready when the test creates `go`, and exits 7 on SIGTERM.
    let app = "trap 'exit 7' TERM; while [ ! -e go ]; do sleep 0.05; done; touch app-up; \
               while :; do sleep 0.05; done";
    let mut ep = Entrypoint::start("term", app, "test -e app-up");
    assert_eq!(ep.status(), Some(503), "not ready before the app is");
    std::fs::write(ep.dir.join("go"), "").unwrap();
    poll("ready", || ep.status() == Some(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(ep.child.id() as i32, libc::SIGTERM) };
    assert_eq!(ep.wait_exit(), 7, "the app's exit code");
    poll("healthd drained on the forwarded SIGTERM", || {
        ep.log
            .lock()
            .unwrap()
            .contains("healthd: signal: SIGTERM; now notready")
    });
    assert!(ep.status().is_none(), "healthd is gone too");
}

#[test]
fn the_apps_own_exit_code_is_returned() {
    let mut ep = Entrypoint::start("exit", "while [ ! -e go ]; do sleep 0.05; done; exit 3", "");
    poll("ready at once without READY_CHECK", || {
        ep.status() == Some(200)
    });
    std::fs::write(ep.dir.join("go"), "").unwrap();
    assert_eq!(ep.wait_exit(), 3);
}
