//! `healthd set`: edits the readiness file the way a running healthd reads it, atomically.
//!
//! `set ready|notready` sets the process status; `set NAME STATE [NAME STATE ...]` declares
//! endpoints. Each call takes an exclusive `flock` on `.<file>.lock` in the file's directory, reads
//! the current file, edits it ([`file::edit`], pure), writes a temporary file in the same directory
//! and renames it over the original, so a watcher never sees a half-written file and concurrent
//! calls lose no update. No fsync: readiness does not outlive the container.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::config::check_endpoint_name;
use crate::log::warning;
use crate::source::file::{self, Snapshot};
use crate::state::Health;

/// One requested change: `None` is the process status.
pub type Change = (Option<String>, Health);

/// Parses the arguments of `set` (pure): `STATE` or `NAME STATE` pairs.
pub fn parse(args: &[String]) -> Result<Vec<Change>, String> {
    const USAGE: &str = "usage: healthd set ready|notready, or healthd set NAME ready|notready [NAME ready|notready ...]";
    let state = |v: &str| {
        Health::parse(v)
            .ok_or_else(|| format!("set: {v:?} is not a state: expected ready or notready"))
    };
    match args {
        [] => Err(USAGE.to_string()),
        [one] => Ok(vec![(None, state(one)?)]),
        _ if args.len() % 2 == 1 => Err(format!("set: {} arguments; {USAGE}", args.len())),
        _ => args
            .chunks(2)
            .map(|pair| {
                check_endpoint_name(&pair[0])
                    .map_err(|e| format!("set: endpoint {:?}: {e}", pair[0]))?;
                Ok((Some(pair[0].clone()), state(&pair[1])?))
            })
            .collect(),
    }
}

/// `set --heartbeat`: marks the readiness file as just written (its content unchanged), which the
/// watcher counts as a heartbeat. A missing file is an error: creating it would declare "ready".
pub fn touch(path: &Path) -> Result<(), String> {
    let shown = path.display();
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .map_err(|e| {
            format!(
                "set --heartbeat: cannot touch the readiness file {shown}: {e} (write it once first, e.g. healthd set notready)"
            )
        })
}

/// Applies `changes` to the file at `path` (creating it, and its directory, if needed).
pub fn run(path: &Path, changes: &[Change]) -> Result<(), String> {
    let shown = path.display();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| format!("readiness file {shown}: not a file name"))?;
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;

    let _lock = lock(&dir.join(dotted(name, ".lock")))?;
    let current = match file::read(path) {
        Snapshot::Missing => String::new(),
        Snapshot::Bytes(b, _) => String::from_utf8_lossy(&b).into_owned(),
        Snapshot::Unusable(why) => return Err(format!("readiness file {shown} {why}")),
    };
    let updates: Vec<(Option<&str>, Health)> =
        changes.iter().map(|(n, h)| (n.as_deref(), *h)).collect();
    let (text, dropped) = file::edit(&current, &updates);
    for d in dropped {
        warning!("readiness file {shown} {d}; dropped it");
    }

    let tmp = dir.join(dotted(name, &format!(".{}.tmp", std::process::id())));
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| fs::rename(&tmp, path));
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write readiness file {shown}: {e}")
    })
}

/// `.NAME` + `suffix`: hidden helper files next to the readiness file.
fn dotted(name: &std::ffi::OsStr, suffix: &str) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(suffix);
    s
}

/// Takes the exclusive lock; it is released when the returned file is closed.
fn lock(path: &Path) -> Result<File, String> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(|e| format!("cannot open lock file {}: {e}", path.display()))?;
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(f);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::{NotReady, Ready};

    fn check(args: &[&str]) -> Result<Vec<Change>, String> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments() {
        assert_eq!(check(&["ready"]), Ok(vec![(None, Ready)]));
        assert_eq!(check(&["notready"]), Ok(vec![(None, NotReady)]));
        assert_eq!(
            check(&["generate", "ready", "b", "notready"]),
            Ok(vec![
                (Some("generate".into()), Ready),
                (Some("b".into()), NotReady)
            ])
        );
        assert_eq!(
            check(&["yes"]).unwrap_err(),
            "set: \"yes\" is not a state: expected ready or notready"
        );
        assert!(check(&[]).unwrap_err().starts_with("usage: healthd set"));
        assert!(
            check(&["a", "ready", "b"])
                .unwrap_err()
                .starts_with("set: 3 arguments")
        );
        assert_eq!(
            check(&["a/b", "ready"]).unwrap_err(),
            "set: endpoint \"a/b\": names use letters, digits, '_', '-' and '.' (at most 128)"
        );
    }
}
