//! Parsers of single setting values (pure): ports, hosts, paths, durations, endpoint lists and the
//! small vocabularies. Each returns what is accepted as its error, for [`super::ConfigError`].

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use super::Dialects;

/// `DYN_SYSTEM_PORT`: an integer; negative means off, 0 means any free port.
pub(super) fn parse_port(v: &str) -> Result<i64, &'static str> {
    const EXPECTED: &str =
        "expected an integer from -1 to 65535 (0 = any free port, negative disables the server)";
    match v.parse::<i64>() {
        Ok(p) if p <= 65535 => Ok(p),
        _ => Err(EXPECTED),
    }
}

/// `DYN_SYSTEM_HOST`: IP literals only, because a scratch image has no resolver.
pub fn parse_host(v: &str) -> Result<IpAddr, &'static str> {
    if v.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let bare = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v);
    bare.parse::<IpAddr>().map_err(|_| {
        "expected an IP address such as 0.0.0.0, 127.0.0.1, :: or [::1] (host names are not resolved)"
    })
}

/// The figment array syntax Dynamo accepts: `[]`, `[generate]`, `["a", "b"]`, `[a, 'b']`.
pub fn parse_endpoint_list(v: &str) -> Result<Vec<String>, String> {
    const EXPECTED: &str =
        "expected a list in brackets such as [generate] or [\"generate\", \"clear_kv_blocks\"]";
    let inner = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| EXPECTED.to_string())?;
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for item in inner.split(',') {
        let item = item.trim();
        let name = match item.as_bytes() {
            [q @ (b'"' | b'\''), .., last] if last == q && item.len() >= 2 => {
                &item[1..item.len() - 1]
            }
            _ => item,
        };
        if name.is_empty() {
            return Err(format!("{EXPECTED}; an item is empty"));
        }
        check_endpoint_name(name).map_err(|e| format!("endpoint {name:?}: {e}"))?;
        names.push(name.to_string());
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Endpoint names travel through URLs, the readiness file and metric labels, so they are limited
/// to a safe alphabet.
pub fn check_endpoint_name(name: &str) -> Result<(), &'static str> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err("names use letters, digits, '_', '-' and '.' (at most 128)")
    }
}

/// `HEALTHD_DIALECTS`: `all`, `none`, or a comma-separated list of set names (`dynamo` is
/// accepted and always on).
pub(super) fn parse_dialects(v: &str) -> Result<Dialects, &'static str> {
    const EXPECTED: &str = "expected all, none, or a comma-separated list of kserve, dapr, k8s";
    let mut d = Dialects {
        kserve: false,
        dapr: false,
        k8s: false,
        explicit: true,
    };
    match v {
        "all" => {
            return Ok(Dialects {
                explicit: true,
                ..Dialects::ALL
            });
        }
        "none" => return Ok(d),
        _ => {}
    }
    for item in v.split(',').map(str::trim) {
        match item {
            "kserve" => d.kserve = true,
            "dapr" => d.dapr = true,
            "k8s" => d.k8s = true,
            "dynamo" => {}
            _ => return Err(EXPECTED),
        }
    }
    Ok(d)
}

/// A namespace or component of a `dyn://namespace.component.endpoint` name: no dots, which
/// separate the parts.
pub(super) fn check_dyn_name(v: &str) -> Result<(), &'static str> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("expected letters, digits, '_' and '-' (no dots; at most 64)")
    }
}

/// A route path: starts with '/', no query, fragment, spaces or control characters.
pub(super) fn parse_path(v: &str) -> Result<&str, &'static str> {
    let ok = v.starts_with('/')
        && v.len() <= 256
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
    if ok {
        Ok(v)
    } else {
        Err("expected a path starting with '/' (no spaces, '?' or '#'), such as /health")
    }
}

/// A Unix socket address: a path, or `@name` in the abstract namespace (108 bytes at most).
pub(super) fn parse_socket_name(v: &str) -> Result<&str, &'static str> {
    let ok = v.len() > 1
        && v.len() < 108
        && !v.contains('\0')
        && (v.starts_with('@') || !v.ends_with('/'));
    if ok {
        Ok(v)
    } else {
        Err("expected a socket path (under 108 bytes) or @name for the abstract namespace")
    }
}

/// `HEALTHD_READY_FILE`: a file path (its directory may appear later); not a directory name.
pub(super) fn parse_ready_file(v: &str) -> Result<PathBuf, &'static str> {
    if v.ends_with('/') || v == "." || v == ".." || v.ends_with("/.") || v.ends_with("/..") {
        return Err("expected the path of a file, such as /run/healthd/ready (not a directory)");
    }
    Ok(PathBuf::from(v))
}

/// Durations: `500ms`, `5s`, `2m`, `1h`, or a bare number of seconds (`1.5`). Decimals are read
/// exactly, in integers, to the nanosecond (digits past the ninth are dropped); no floating point,
/// which keeps float parsing out of the static binary.
pub fn parse_duration(v: &str) -> Result<Duration, &'static str> {
    const EXPECTED: &str = "expected a duration such as 500ms, 5s, 2m or a number of seconds";
    let v = v.trim();
    let (num, unit) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let (mul, div): (u128, u128) = match unit {
        "ms" => (1, 1000),
        "s" => (1, 1),
        "m" => (60, 1),
        "h" => (3600, 1),
        _ => return Err(EXPECTED),
    };
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(EXPECTED);
    }
    // Nanoseconds as a u128: a whole part beyond u64 is out of Duration's range anyway.
    let mut nanos: u128 = 0;
    for b in whole.bytes() {
        nanos = nanos * 10 + u128::from(b - b'0');
        if nanos > u128::from(u64::MAX) {
            return Err(EXPECTED);
        }
    }
    nanos *= 1_000_000_000;
    let mut place = 100_000_000;
    for b in frac.bytes().take(9) {
        nanos += u128::from(b - b'0') * place;
        place /= 10;
    }
    let nanos = nanos * mul / div;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| EXPECTED)?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}
