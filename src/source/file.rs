//! The readiness file (`HEALTHD_READY_FILE`): its line format, reading it safely, and watching it.
//!
//! Format (a shell can write it): `ready` / `notready` on a line of its own set the process status,
//! `NAME=ready` / `NAME=notready` declare an endpoint, `#` starts a comment, blank lines and
//! surrounding spaces are ignored, a later line wins over an earlier one. A file that exists means
//! the process is ready unless a bare `notready` says otherwise (so `touch` is enough); a missing
//! file declares nothing (back to the starting and seeded states). The file is the whole truth each
//! time it is read: every read replaces what the previous read declared.
//!
//! Reading never blocks or crashes: the file is opened non-blocking (a FIFO with no writer opens
//! and is refused), it must be a regular file, and at most [`MAX_BYTES`] are read. A partial or
//! garbage file keeps the last good state and draws one warning naming the line.
//!
//! Watching: inotify on the *directory* (not the file), so rename-replace, in-place writes, delete,
//! re-create and symlink swaps (Kubernetes ConfigMap volumes swap a `..data` symlink) all wake the
//! watcher; while the directory does not exist the nearest existing ancestor is watched until it
//! appears. In-place writes are picked up on close (`IN_CLOSE_WRITE`), not on each `write`, so a
//! shell's truncate-then-write is never seen half done. A slow safety poll backs inotify up (and
//! replaces it where it is unavailable). Nothing is applied or logged unless the file was written
//! since the previous read (other bytes, or another inode or timestamp).

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Shared, apply};
use crate::config::check_endpoint_name;
use crate::log::{info, warning};
use crate::state::{Health, Source, Update};

/// Reads are capped: a readiness file is a few lines; anything bigger is a mistake.
pub const MAX_BYTES: usize = 64 * 1024;

/// How often the safety poll looks at the file while inotify watches the directory.
const BACKSTOP: Duration = Duration::from_secs(2);
/// How long a just-created empty file may still be being written.
const SETTLE: Duration = Duration::from_millis(100);
/// How often it looks when inotify is unavailable.
const POLL_ONLY: Duration = Duration::from_secs(1);

/// What a file declares: the process status and the endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub process: Health,
    pub endpoints: BTreeMap<String, Health>,
}

/// One meaningful line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// Blank or a comment.
    Nothing,
    Process(Health),
    Endpoint(&'a str, Health),
}

/// The accepted forms, for error messages.
pub const EXPECTED: &str =
    "expected ready, notready, NAME=ready or NAME=notready (# starts a comment)";

/// Parses one line (pure).
pub fn parse_line(raw: &str) -> Result<Line<'_>, &'static str> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Line::Nothing);
    }
    if let Some(h) = Health::parse(line) {
        return Ok(Line::Process(h));
    }
    let (name, value) = line.split_once('=').ok_or(EXPECTED)?;
    let (name, value) = (name.trim(), value.trim());
    let health = Health::parse(value).ok_or(EXPECTED)?;
    check_endpoint_name(name)?;
    Ok(Line::Endpoint(name, health))
}

/// Parses a whole file (pure). The error names the first bad line: `line 3: "xyz": expected ...`.
pub fn parse(bytes: &[u8]) -> Result<Declared, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Declared {
        process: Health::Ready,
        endpoints: BTreeMap::new(),
    };
    for (i, raw) in text.lines().enumerate() {
        match parse_line(raw) {
            Ok(Line::Nothing) => {}
            Ok(Line::Process(h)) => out.process = h,
            Ok(Line::Endpoint(name, h)) => {
                out.endpoints.insert(name.to_string(), h);
            }
            Err(why) => return Err(format!("line {}: {:?}: {why}", i + 1, shorten(raw.trim()))),
        }
    }
    Ok(out)
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Identifies one version of a file: device, inode, mtime and ctime (seconds, nanoseconds).
pub type Stamp = [i64; 6];

/// What reading the path found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// No file (also: a dangling symlink, or a missing directory).
    Missing,
    /// A regular file of at most [`MAX_BYTES`]: its bytes, and which write it is (device, inode,
    /// mtime, ctime), so that re-writing the same bytes (`healthd set ready` after a SIGUSR2)
    /// still counts as news, while unrelated events in the directory do not.
    Bytes(Vec<u8>, Stamp),
    /// Something that cannot be used, and why (one phrase).
    Unusable(String),
}

/// Reads `path` without ever blocking: opened `O_NONBLOCK`, checked to be a regular file (a FIFO,
/// directory or device is refused), at most [`MAX_BYTES`] read.
pub fn read(path: &Path) -> Snapshot {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if missing(&e) => return Snapshot::Missing,
        Err(e) => return Snapshot::Unusable(format!("cannot be opened: {e}")),
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => return Snapshot::Unusable(format!("cannot be examined: {e}")),
    };
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Snapshot::Unusable(format!("is {what}, not a regular file"));
    }
    let mut bytes = Vec::new();
    match file.take(MAX_BYTES as u64 + 1).read_to_end(&mut bytes) {
        Ok(_) if bytes.len() > MAX_BYTES => {
            Snapshot::Unusable(format!("is larger than {} KiB", MAX_BYTES / 1024))
        }
        Ok(_) => Snapshot::Bytes(
            bytes,
            [
                meta.dev() as i64,
                meta.ino() as i64,
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
            ],
        ),
        Err(e) => Snapshot::Unusable(format!("cannot be read: {e}")),
    }
}

fn missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// Turns a snapshot into the update it asks for, or the reason to keep the last good state.
pub fn interpret(snap: &Snapshot) -> Result<Update, String> {
    match snap {
        Snapshot::Missing => Ok(Update::Replace {
            process: None,
            endpoints: BTreeMap::new(),
        }),
        Snapshot::Bytes(b, _) => parse(b).map(|d| Update::Replace {
            process: Some(d.process),
            endpoints: d.endpoints,
        }),
        Snapshot::Unusable(why) => Err(why.clone()),
    }
}

/// The readiness file as a source: reads it and applies what it declares.
pub struct FileSource {
    path: PathBuf,
    state: Shared,
    /// The previous read; the lock also serialises the watcher and SIGHUP.
    last: Mutex<Option<Snapshot>>,
}

impl FileSource {
    /// The first read, before serving: a file that exists but cannot be used is an error (exit 2),
    /// so a broken deployment fails at start instead of answering "not ready" forever.
    pub fn start(path: PathBuf, state: Shared) -> Result<Arc<FileSource>, String> {
        let snap = read(&path);
        let update = interpret(&snap)
            .map_err(|why| format!("HEALTHD_READY_FILE {}: {why}", path.display()))?;
        if snap != Snapshot::Missing {
            apply(
                &state,
                update,
                Source::File,
                &format!("read {}", path.display()),
            );
        }
        Ok(Arc::new(FileSource {
            path,
            state,
            last: Mutex::new(Some(snap)),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file; applies it if its content changed since the last read (or `force`).
    pub fn refresh(&self, force: bool) {
        self.refresh_inner(force, true);
    }

    /// Like `refresh(false)`, but when nothing says the file is complete (`closed`), a freshly
    /// modified empty file is left alone and `false` returned: it is most likely a shell's
    /// `echo notready > file` between its truncate and its write, and "empty" means ready.
    fn refresh_settled(&self, closed: bool) -> bool {
        self.refresh_inner(false, closed)
    }

    fn refresh_inner(&self, force: bool, complete: bool) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let snap = read(&self.path);
        if !force && last.as_ref() == Some(&snap) {
            return true;
        }
        if !complete
            && matches!(&snap, Snapshot::Bytes(b, _) if b.is_empty())
            && recently_modified(&self.path)
        {
            return false;
        }
        let shown = self.path.display();
        match interpret(&snap) {
            Ok(update) => {
                let what = match snap {
                    Snapshot::Missing => format!("{shown} is missing"),
                    _ => format!("read {shown}"),
                };
                apply(&self.state, update, Source::File, &what);
                // Any write or touch of an existing file is progress (heartbeat watchdog).
                if !matches!(snap, Snapshot::Missing) {
                    let beat = Update::Heartbeat(Instant::now());
                    apply(
                        &self.state,
                        beat,
                        Source::File,
                        &format!("{shown} touched: heartbeat resumed"),
                    );
                }
            }
            Err(why) => warning!("readiness file {shown} {why}; keeping the last good state"),
        }
        *last = Some(snap);
        true
    }
}

fn recently_modified(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < SETTLE))
}

/// Starts the watcher thread (inotify on the directory plus a slow safety poll).
pub fn spawn(source: Arc<FileSource>) -> io::Result<()> {
    super::thread::detach("ready-file", move || match Inotify::new(source.path()) {
        Ok(mut ino) => {
            let mut timeout = BACKSTOP;
            loop {
                let woke = ino.wait(timeout);
                if woke.rewatch || !ino.watching_dir {
                    ino.watch();
                }
                timeout = BACKSTOP;
                if woke.refresh && !source.refresh_settled(woke.closed) {
                    // Probably caught between a shell's truncate and its write: look again
                    // shortly (its close event usually comes first).
                    timeout = SETTLE;
                }
            }
        }
        Err(e) => {
            warning!(
                "inotify unavailable ({e}); checking {} every {:?} instead",
                source.path().display(),
                POLL_ONLY
            );
            loop {
                std::thread::sleep(POLL_ONLY);
                source.refresh(false);
            }
        }
    })
}

/// Events that matter in the file's directory.
const DIR_MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_ATTRIB
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;
/// Events that may mean a missing directory on the way appeared.
const ANCESTOR_MASK: u32 = libc::IN_CREATE
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;

/// What one wait saw.
struct Woke {
    /// The watch must be set up again (directory created, deleted or moved).
    rewatch: bool,
    /// The file may have changed (or the safety poll is due).
    refresh: bool,
    /// A writer closed our file or renamed one onto it: what is there now is complete.
    closed: bool,
}

/// An inotify instance watching the file's directory, or its nearest existing ancestor.
struct Inotify {
    fd: i32,
    dir: PathBuf,
    name: Vec<u8>,
    wd: Option<i32>,
    watching_dir: bool,
    /// A watch failed for another reason than "missing" (watch limit, permissions): said once.
    warned: bool,
}

impl Inotify {
    fn new(path: &Path) -> io::Result<Inotify> {
        // SAFETY: plain syscall; the descriptor is owned by the returned value and closed on drop.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        let mut ino = Inotify {
            fd,
            dir,
            name,
            wd: None,
            watching_dir: false,
            warned: false,
        };
        ino.watch();
        Ok(ino)
    }

    /// (Re)places the one watch: on the directory if it exists, else on the nearest ancestor.
    fn watch(&mut self) {
        if let Some(wd) = self.wd.take() {
            // SAFETY: removing our own watch; an already-gone watch just fails.
            unsafe { libc::inotify_rm_watch(self.fd, wd) };
        }
        self.watching_dir = false;
        let mut candidate = Some(self.dir.as_path());
        let mut first = true;
        while let Some(dir) = candidate {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let mask = if first { DIR_MASK } else { ANCESTOR_MASK };
            match self.add(dir.as_os_str(), mask) {
                Ok(wd) => {
                    self.wd = Some(wd);
                    self.watching_dir = first;
                    return;
                }
                // Not there (yet): watch the parent until it appears.
                Err(e) if missing(&e) => {}
                Err(e) => {
                    if !self.warned {
                        self.warned = true;
                        warning!(
                            "cannot watch {} ({e}); noticing changes to the readiness file within {:?} instead",
                            dir.display(),
                            BACKSTOP
                        );
                    }
                    return;
                }
            }
            first = false;
            candidate = dir.parent();
        }
    }

    fn add(&self, dir: &OsStr, mask: u32) -> io::Result<i32> {
        let c = CString::new(dir.as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: a valid NUL-terminated path and our own inotify descriptor.
        let wd = unsafe { libc::inotify_add_watch(self.fd, c.as_ptr(), mask) };
        if wd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(wd)
        }
    }

    /// Whether what was just created at our name is a regular file (not a symlink, FIFO, ...).
    fn created_regular(&self) -> bool {
        let path = self.dir.join(OsStr::from_bytes(&self.name));
        std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
    }

    /// Waits up to `timeout` for events, drains them, and says whether the watch must move.
    fn wait(&mut self, timeout: Duration) -> Woke {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
        let mut woke = Woke {
            rewatch: false,
            refresh: n <= 0,
            closed: false,
        };
        if n <= 0 {
            return woke;
        }
        // Aligned for `inotify_event`.
        let mut buf = [0u64; 1024];
        loop {
            // SAFETY: reading into our own buffer of the given length.
            let len = unsafe {
                libc::read(
                    self.fd,
                    buf.as_mut_ptr().cast(),
                    std::mem::size_of_val(&buf),
                )
            };
            if len <= 0 {
                break;
            }
            let bytes = &u64_bytes(&buf)[..len as usize];
            let mut off = 0;
            let head = std::mem::size_of::<libc::inotify_event>();
            while off + head <= bytes.len() {
                // SAFETY: the kernel wrote a whole event at `off`; read_unaligned copes with any
                // alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(bytes[off..].as_ptr().cast()) };
                let name_len = ev.len as usize;
                let name = &bytes[off + head..(off + head + name_len).min(bytes.len())];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                off += head + name_len;
                // Only events of the current watch count: removing a replaced watch queues an
                // IN_IGNORED for it, which must not move the new watch again (that looped).
                if Some(ev.wd) != self.wd {
                    continue;
                }
                let self_gone = ev.mask
                    & (libc::IN_IGNORED
                        | libc::IN_DELETE_SELF
                        | libc::IN_MOVE_SELF
                        | libc::IN_Q_OVERFLOW)
                    != 0;
                if self_gone || !self.watching_dir {
                    woke.rewatch = true;
                    woke.refresh = true;
                } else if name == self.name.as_slice()
                    && ev.mask & libc::IN_CREATE != 0
                    && self.created_regular()
                {
                    // A new regular file at our name is still empty: wait for its close, so a
                    // shell's `echo notready > file` is never read as the empty "ready" file.
                } else {
                    woke.refresh = true;
                    woke.closed |= name == self.name.as_slice()
                        && ev.mask & (libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO) != 0;
                }
            }
        }
        woke
    }
}

/// The bytes of a `u64` buffer.
fn u64_bytes(buf: &[u64]) -> &[u8] {
    // SAFETY: any u64 buffer is a valid byte buffer of eight times the length.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), std::mem::size_of_val(buf)) }
}

impl Drop for Inotify {
    fn drop(&mut self) {
        // SAFETY: closing our own descriptor once.
        unsafe { libc::close(self.fd) };
    }
}

/// The same file with `updates` applied, for `healthd set` (pure): lines setting what changes are
/// removed, the new values appended; comments and other lines stay. Unparsable lines are dropped
/// and reported (they would keep the file from ever being read).
pub fn edit(current: &str, updates: &[(Option<&str>, Health)]) -> (String, Vec<String>) {
    let touches = |line: &Line<'_>| match line {
        Line::Nothing => false,
        Line::Process(_) => updates.iter().any(|(n, _)| n.is_none()),
        Line::Endpoint(name, _) => updates.iter().any(|(n, _)| *n == Some(*name)),
    };
    let mut out = String::new();
    let mut dropped = Vec::new();
    for (i, raw) in current.lines().enumerate() {
        match parse_line(raw) {
            Ok(line) if touches(&line) => {}
            Ok(_) => {
                out.push_str(raw);
                out.push('\n');
            }
            Err(why) => dropped.push(format!("line {}: {:?}: {why}", i + 1, shorten(raw.trim()))),
        }
    }
    // Later lines win, so only the last update of a name is written.
    for (i, (name, h)) in updates.iter().enumerate() {
        if updates[i + 1..].iter().any(|(n, _)| n == name) {
            continue;
        }
        match name {
            None => out.push_str(h.as_str()),
            Some(n) => {
                out.push_str(n);
                out.push('=');
                out.push_str(h.as_str());
            }
        }
        out.push('\n');
    }
    (out, dropped)
}

/// Logs that SIGHUP asked for a re-read.
pub fn log_reload(path: &Path) {
    info!("SIGHUP: re-reading {}", path.display());
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // tables of cases read best inline
mod tests {
    use super::*;
    use Health::{NotReady, Ready};

    fn check(text: &str) -> Result<(Health, Vec<(&str, Health)>), String> {
        parse(text.as_bytes()).map(|d| {
            let eps = d
                .endpoints
                .iter()
                .map(|(n, h)| (leak(n), *h))
                .collect::<Vec<_>>();
            (d.process, eps)
        })
    }

    fn leak(s: &str) -> &'static str {
        Box::leak(s.to_string().into_boxed_str())
    }

    #[test]
    fn format_table() {
        let ok: &[(&str, Health, &[(&str, Health)])] = &[
            ("", Ready, &[]),
            ("\n\n# nothing\n", Ready, &[]),
            ("ready\n", Ready, &[]),
            ("notready", NotReady, &[]),
            ("  notready  \r\n", NotReady, &[]),
            ("notready\nready\n", Ready, &[]),
            ("generate=ready\n", Ready, &[("generate", Ready)]),
            (
                "notready\n generate = notready \n# c\nclear_kv_blocks=ready\n",
                NotReady,
                &[("clear_kv_blocks", Ready), ("generate", NotReady)],
            ),
            ("a=ready\na=notready\n", Ready, &[("a", NotReady)]),
            ("a.b-c_1=ready", Ready, &[("a.b-c_1", Ready)]),
        ];
        for (text, process, eps) in ok {
            assert_eq!(check(text), Ok((*process, eps.to_vec())), "{text:?}");
        }
        let bad: &[(&str, &str)] = &[
            ("Ready\n", "line 1: \"Ready\""),
            ("ready\ngarbage\n", "line 2: \"garbage\""),
            ("a=yes\n", "line 1: \"a=yes\""),
            ("a b=ready\n", "line 1: \"a b=ready\""),
            ("=ready\n", "line 1: \"=ready\""),
            ("gen=rea", "line 1: \"gen=rea\""),
            (
                "ready # trailing comment\n",
                "line 1: \"ready # trailing comment\"",
            ),
        ];
        for (text, prefix) in bad {
            let e = check(text).unwrap_err();
            assert!(e.starts_with(prefix), "{text:?}: {e}");
        }
        assert_eq!(
            check("x").unwrap_err(),
            format!("line 1: \"x\": {EXPECTED}")
        );
        assert_eq!(
            check("a/b=ready").unwrap_err(),
            "line 1: \"a/b=ready\": names use letters, digits, '_', '-' and '.' (at most 128)"
        );
    }

    #[test]
    fn interpret_missing_and_unusable() {
        assert_eq!(
            interpret(&Snapshot::Missing),
            Ok(Update::Replace {
                process: None,
                endpoints: BTreeMap::new()
            })
        );
        assert_eq!(
            interpret(&Snapshot::Bytes(b"notready\na=ready\n".to_vec(), [0; 6])),
            Ok(Update::Replace {
                process: Some(NotReady),
                endpoints: [("a".to_string(), Ready)].into_iter().collect()
            })
        );
        assert_eq!(
            interpret(&Snapshot::Unusable("is a FIFO, not a regular file".into())),
            Err("is a FIFO, not a regular file".to_string())
        );
    }

    #[test]
    fn edit_table() {
        let cases: &[(&str, &[(Option<&str>, Health)], &str, usize)] = &[
            ("", &[(None, Ready)], "ready\n", 0),
            ("ready\n", &[(None, NotReady)], "notready\n", 0),
            (
                "# keep\nready\na=ready",
                &[(Some("a"), NotReady)],
                "# keep\nready\na=notready\n",
                0,
            ),
            (
                "a=ready\nb=ready\n",
                &[(Some("b"), NotReady), (Some("c"), Ready)],
                "a=ready\nb=notready\nc=ready\n",
                0,
            ),
            (
                "junk\na=ready\n",
                &[(Some("a"), Ready), (Some("a"), NotReady)],
                "a=notready\n",
                1,
            ),
        ];
        for (current, updates, want, dropped) in cases {
            let (got, d) = edit(current, updates);
            assert_eq!((got.as_str(), d.len()), (*want, *dropped), "{current:?}");
            assert!(parse(got.as_bytes()).is_ok());
        }
    }
}
