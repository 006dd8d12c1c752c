//! Configuration: environment pairs and command-line flags in, a validated [`Config`] out.
//!
//! This module owns the table of settings ([`SETTINGS`]): every variable, its flag, its default and
//! its help line. `--help`, the README and the parser all read that one table. Parsing is pure: the
//! caller hands in the environment (read once by `main`) and the flags; nothing here touches the
//! process, files or sockets. Every error names the variable or flag, the bad value and what is
//! accepted, so the operator can fix it from the one line they see.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::dialect::frontend::Names;
use crate::state::Health;

/// Which Dynamo view healthd presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Dynamo's per-process system status server (`DYN_SYSTEM_*`).
    Worker,
    /// Dynamo's frontend `/health` and `/live` (`DYN_HTTP_*`).
    Frontend,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Frontend => "frontend",
        }
    }
}

/// The route sets served besides the Dynamo one. `explicit` is false when `HEALTHD_DIALECTS` was
/// not set: then a set whose paths collide with a configured path is left out (with a warning)
/// instead of refusing to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialects {
    pub kserve: bool,
    pub dapr: bool,
    pub k8s: bool,
    pub explicit: bool,
}

impl Dialects {
    pub const ALL: Dialects = Dialects {
        kserve: true,
        dapr: true,
        k8s: true,
        explicit: false,
    };

    /// The enabled set names, for the start-up log.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("kserve", self.kserve),
            ("dapr", self.dapr),
            ("k8s", self.k8s),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect()
    }
}

/// One setting: an environment variable, the `healthd serve` flag that overrides it, its default
/// as shown to the user, and one line of help.
pub struct Setting {
    pub var: &'static str,
    pub flag: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every setting healthd reads. Order is the order of `--help` and the README table.
pub const SETTINGS: &[Setting] = &[
    Setting {
        var: "DYN_SYSTEM_PORT",
        flag: "--port",
        default: "8081",
        help: "port of the system status server; 0 = any free port, negative = server off",
    },
    Setting {
        var: "DYN_SYSTEM_HOST",
        flag: "--host",
        default: "0.0.0.0",
        help: "address to bind: an IPv4 or IPv6 literal (or localhost)",
    },
    Setting {
        var: "DYN_SYSTEM_ENABLED",
        flag: "--enabled",
        default: "true",
        help: "false turns the server off (healthd logs one line and exits 0)",
    },
    Setting {
        var: "DYN_SYSTEM_STARTING_HEALTH_STATUS",
        flag: "--starting-health-status",
        default: "notready",
        help: "status before the host process says anything: ready or notready",
    },
    Setting {
        var: "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS",
        flag: "--use-endpoint-health-status",
        default: "[]",
        help: "endpoints that must all be ready, e.g. [generate, clear_kv_blocks]",
    },
    Setting {
        var: "DYN_SYSTEM_HEALTH_PATH",
        flag: "--health-path",
        default: "/health",
        help: "path of the health route",
    },
    Setting {
        var: "DYN_SYSTEM_LIVE_PATH",
        flag: "--live-path",
        default: "/live",
        help: "path of the liveness route",
    },
    Setting {
        var: "HEALTHD_DIALECTS",
        flag: "--dialects",
        default: "all",
        help: "route sets served besides Dynamo's: all (those that do not collide), none, or a list of kserve, dapr, k8s",
    },
    Setting {
        var: "HEALTHD_ROLE",
        flag: "--role",
        default: "worker",
        help: "worker (Dynamo's system status server) or frontend: the Dynamo frontend's /health and /live, on DYN_HTTP_PORT",
    },
    Setting {
        var: "DYN_HTTP_PORT",
        flag: "--http-port",
        default: "8000",
        help: "port of the frontend role, used instead of DYN_SYSTEM_PORT (0 = any free port, negative = server off)",
    },
    Setting {
        var: "DYN_HTTP_SVC_HEALTH_PATH",
        flag: "--http-health-path",
        default: "/health",
        help: "path of the frontend role's health route",
    },
    Setting {
        var: "DYN_HTTP_SVC_LIVE_PATH",
        flag: "--http-live-path",
        default: "/live",
        help: "path of the frontend role's liveness route",
    },
    Setting {
        var: "HEALTHD_NAMESPACE",
        flag: "--namespace",
        default: "dynamo",
        help: "namespace of the frontend role's dyn://namespace.component.endpoint names",
    },
    Setting {
        var: "HEALTHD_COMPONENT",
        flag: "--component",
        default: "backend",
        help: "component of the frontend role's dyn://namespace.component.endpoint names",
    },
    Setting {
        var: "HEALTHD_SHUTDOWN_GRACE",
        flag: "--shutdown-grace",
        default: "5s",
        help: "after SIGTERM/SIGINT, keep answering (not ready) this long, then exit 0",
    },
    Setting {
        var: "HEALTHD_HEARTBEAT_TIMEOUT",
        flag: "--heartbeat-timeout",
        default: "off",
        help: "not live unless the host shows progress this often (WATCHDOG=1 on the notify socket)",
    },
    Setting {
        var: "HEALTHD_LIVE",
        flag: "--live",
        default: "dynamo",
        help: "dynamo: the live path answers like the health path; shallow: 200 while alive",
    },
    Setting {
        var: "HEALTHD_READY_URL",
        flag: "--ready-url",
        default: "none",
        help: "poll this http://IP:PORT/PATH every second; its 200..399 sets the process ready",
    },
    Setting {
        var: "HEALTHD_NOTIFY_SOCKET",
        flag: "--notify-socket",
        default: "off (healthd run: @healthd-PID)",
        help: "sd_notify datagram socket: a path, or @name for the abstract namespace",
    },
    Setting {
        var: "HEALTHD_READY_FILE",
        flag: "--ready-file",
        default: "none",
        help: "readiness file to watch (and that healthd set edits): lines ready, notready, NAME=ready",
    },
];

/// What the Dynamo live path means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveMode {
    /// Dynamo's behaviour: the live path answers exactly like the health path.
    Dynamo,
    /// 200 whenever the process is alive (heartbeat fresh, child running), whatever the readiness.
    Shallow,
}

/// Why the server does not run at all (a valid configuration that says "off").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disabled {
    /// `DYN_SYSTEM_ENABLED=false`.
    NotEnabled,
    /// A negative `DYN_SYSTEM_PORT`.
    NegativePort(i64),
    /// A negative `DYN_HTTP_PORT` in the frontend role.
    NegativeHttpPort(i64),
}

impl fmt::Display for Disabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disabled::NotEnabled => write!(f, "DYN_SYSTEM_ENABLED=false"),
            Disabled::NegativePort(p) => write!(f, "DYN_SYSTEM_PORT={p} is negative"),
            Disabled::NegativeHttpPort(p) => write!(f, "DYN_HTTP_PORT={p} is negative"),
        }
    }
}

/// The validated configuration of `healthd serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `Err` when the configuration turns the server off.
    pub listen: Result<SocketAddr, Disabled>,
    pub starting: Health,
    /// Required endpoints, sorted and de-duplicated.
    pub required: Vec<String>,
    pub health_path: String,
    pub live_path: String,
    /// The route sets served besides Dynamo's.
    pub dialects: Dialects,
    pub role: Role,
    /// The frontend role's health and live paths (`DYN_HTTP_SVC_*`).
    pub http_health_path: String,
    pub http_live_path: String,
    /// `{namespace}.{component}` of the frontend role's `dyn://` names.
    pub names: Names,
    pub shutdown_grace: Duration,
    pub heartbeat_timeout: Option<Duration>,
    pub live_mode: LiveMode,
    pub notify_socket: Option<String>,
    /// `HEALTHD_READY_URL`, checked by the client's URL parser at start.
    pub ready_url: Option<String>,
    /// The readiness file (`HEALTHD_READY_FILE`), if any.
    pub ready_file: Option<PathBuf>,
    /// Which setting supplied each non-default value ("DYN_SYSTEM_PORT" or "--port"), so that
    /// later validation (route collisions) can name it.
    pub origin: BTreeMap<&'static str, String>,
}

impl Config {
    /// The name to show in an error about `var`: the flag if a flag set it, else the variable.
    pub fn origin_of(&self, var: &'static str) -> &str {
        self.origin.get(var).map(String::as_str).unwrap_or(var)
    }
}

/// A configuration error: which setting, the value it had, and what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub expected: String,
}

impl ConfigError {
    pub fn new(name: &str, value: &str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            name: name.to_string(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.name, self.value, self.expected)
    }
}

/// The result of loading: the configuration plus warnings about ignored names.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Builds the configuration from the environment and `(flag, value)` pairs; a flag wins over its
/// variable, an empty value counts as unset.
pub fn load(
    env: &BTreeMap<String, String>,
    flags: &[(String, String)],
) -> Result<Loaded, ConfigError> {
    let mut raw: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
    for s in SETTINGS {
        if let Some(v) = env.get(s.var).filter(|v| !v.is_empty()) {
            raw.insert(s.var, (s.var.to_string(), v.clone()));
        }
    }
    for (flag, value) in flags {
        let Some(s) = SETTINGS.iter().find(|s| s.flag == flag) else {
            return Err(ConfigError::new(
                flag,
                value,
                "unknown flag; see healthd --help",
            ));
        };
        if value.is_empty() {
            raw.remove(s.var);
        } else {
            raw.insert(s.var, (flag.clone(), value.clone()));
        }
    }
    let get = |var: &'static str| raw.get(var).map(|(n, v)| (n.as_str(), v.trim()));

    let enabled = match get("DYN_SYSTEM_ENABLED") {
        None => true,
        Some((_, "true")) => true,
        Some((_, "false")) => false,
        Some((n, v)) => return Err(ConfigError::new(n, v, "expected true or false")),
    };
    let port = match get("DYN_SYSTEM_PORT") {
        None => 8081,
        Some((n, v)) => parse_port(v).map_err(|e| ConfigError::new(n, v, e))?,
    };
    let host = match get("DYN_SYSTEM_HOST") {
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some((n, v)) => parse_host(v).map_err(|e| ConfigError::new(n, v, e))?,
    };
    let starting = match get("DYN_SYSTEM_STARTING_HEALTH_STATUS") {
        None => Health::NotReady,
        Some((_, "ready")) => Health::Ready,
        Some((_, "notready")) => Health::NotReady,
        Some((n, v)) => return Err(ConfigError::new(n, v, "expected ready or notready")),
    };
    let required = match get("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS") {
        None => Vec::new(),
        Some((n, v)) => parse_endpoint_list(v).map_err(|e| ConfigError::new(n, v, e))?,
    };
    let path = |var: &'static str, default: &str| match get(var) {
        None => Ok(default.to_string()),
        Some((n, v)) => parse_path(v)
            .map(str::to_string)
            .map_err(|e| ConfigError::new(n, v, e)),
    };
    let health_path = path("DYN_SYSTEM_HEALTH_PATH", "/health")?;
    let live_path = path("DYN_SYSTEM_LIVE_PATH", "/live")?;
    if health_path == live_path {
        let (n, _) = get("DYN_SYSTEM_LIVE_PATH")
            .or(get("DYN_SYSTEM_HEALTH_PATH"))
            .unwrap_or(("DYN_SYSTEM_LIVE_PATH", ""));
        return Err(ConfigError::new(
            n,
            &live_path,
            "the health path and the live path must differ",
        ));
    }
    let dialects = match get("HEALTHD_DIALECTS") {
        None => Dialects::ALL,
        Some((n, v)) => parse_dialects(v).map_err(|e| ConfigError::new(n, v, e))?,
    };
    let role = match get("HEALTHD_ROLE") {
        None | Some((_, "worker")) => Role::Worker,
        Some((_, "frontend")) => Role::Frontend,
        Some((n, v)) => return Err(ConfigError::new(n, v, "expected worker or frontend")),
    };
    let http_port = match get("DYN_HTTP_PORT") {
        None => 8000,
        Some((n, v)) => parse_port(v).map_err(|e| ConfigError::new(n, v, e))?,
    };
    let http_health_path = path("DYN_HTTP_SVC_HEALTH_PATH", "/health")?;
    let http_live_path = path("DYN_HTTP_SVC_LIVE_PATH", "/live")?;
    if role == Role::Frontend && http_health_path == http_live_path {
        let (n, _) = get("DYN_HTTP_SVC_LIVE_PATH")
            .or(get("DYN_HTTP_SVC_HEALTH_PATH"))
            .unwrap_or(("DYN_HTTP_SVC_LIVE_PATH", ""));
        return Err(ConfigError::new(
            n,
            &http_live_path,
            "the frontend health path and live path must differ",
        ));
    }
    let name = |var: &'static str, default: &str| match get(var) {
        None => Ok(default.to_string()),
        Some((n, v)) => check_dyn_name(v)
            .map(|()| v.to_string())
            .map_err(|e| ConfigError::new(n, v, e)),
    };
    let names = Names {
        namespace: name("HEALTHD_NAMESPACE", "dynamo")?,
        component: name("HEALTHD_COMPONENT", "backend")?,
    };
    let shutdown_grace = match get("HEALTHD_SHUTDOWN_GRACE") {
        None => Duration::from_secs(5),
        Some((n, v)) => parse_duration(v).map_err(|e| ConfigError::new(n, v, e))?,
    };
    let ready_file = match get("HEALTHD_READY_FILE") {
        None => None,
        Some((n, v)) => Some(parse_ready_file(v).map_err(|e| ConfigError::new(n, v, e))?),
    };

    let heartbeat_timeout = match get("HEALTHD_HEARTBEAT_TIMEOUT") {
        None | Some((_, "off")) => None,
        Some((n, v)) => match parse_duration(v) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                return Err(ConfigError::new(
                    n,
                    v,
                    "expected a duration above zero such as 10s, or off",
                ));
            }
        },
    };
    let live_mode = match get("HEALTHD_LIVE") {
        None | Some((_, "dynamo")) => LiveMode::Dynamo,
        Some((_, "shallow")) => LiveMode::Shallow,
        Some((n, v)) => return Err(ConfigError::new(n, v, "expected dynamo or shallow")),
    };
    let ready_url = get("HEALTHD_READY_URL").map(|(_, v)| v.to_string());
    let notify_socket = match get("HEALTHD_NOTIFY_SOCKET") {
        None => None,
        Some((n, v)) => Some(
            parse_socket_name(v)
                .map_err(|e| ConfigError::new(n, v, e))?
                .to_string(),
        ),
    };

    let listen = if role == Role::Frontend {
        // The frontend listens on its own port; DYN_SYSTEM_PORT/ENABLED are the worker's.
        if http_port < 0 {
            Err(Disabled::NegativeHttpPort(http_port))
        } else {
            Ok(SocketAddr::new(host, http_port as u16))
        }
    } else if !enabled {
        Err(Disabled::NotEnabled)
    } else if port < 0 {
        Err(Disabled::NegativePort(port))
    } else {
        Ok(SocketAddr::new(host, port as u16))
    };
    let origin = raw.iter().map(|(k, (n, _))| (*k, n.clone())).collect();
    Ok(Loaded {
        config: Config {
            listen,
            starting,
            required,
            health_path,
            live_path,
            dialects,
            role,
            http_health_path,
            http_live_path,
            names,
            shutdown_grace,
            heartbeat_timeout,
            live_mode,
            notify_socket,
            ready_url,
            ready_file,
            origin,
        },
        warnings: unknown_name_warnings(env),
    })
}

/// `DYN_SYSTEM_PORT`: an integer; negative means off, 0 means any free port.
fn parse_port(v: &str) -> Result<i64, &'static str> {
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
fn parse_dialects(v: &str) -> Result<Dialects, &'static str> {
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
fn check_dyn_name(v: &str) -> Result<(), &'static str> {
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
fn parse_path(v: &str) -> Result<&str, &'static str> {
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
fn parse_socket_name(v: &str) -> Result<&str, &'static str> {
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
fn parse_ready_file(v: &str) -> Result<PathBuf, &'static str> {
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

/// Warnings for ignored names: any unknown `HEALTHD_*` variable, and a `DYN_SYSTEM_*` variable that
/// is one edit away from a known one (Dynamo ignores unknown names silently; a typo then leaves the
/// default in force, which is the hardest mistake to see).
fn unknown_name_warnings(env: &BTreeMap<String, String>) -> Vec<String> {
    let names: Vec<(&str, Vec<char>)> = SETTINGS
        .iter()
        .map(|s| s.var)
        .chain(EXTRA_KNOWN.iter().copied())
        .map(|k| (k, k.chars().collect()))
        .collect();
    let mut out = Vec::new();
    for name in env.keys() {
        if names.iter().any(|(k, _)| k == name) {
            continue;
        }
        let chars: Vec<char> = name.chars().collect();
        let near = names
            .iter()
            .find(|(_, k)| one_edit_apart(k, &chars))
            .map(|(k, _)| *k);
        if let Some(near) = near {
            out.push(format!(
                "ignoring {name}: unknown variable; did you mean {near}?"
            ));
        } else if name.starts_with("HEALTHD_") {
            out.push(format!(
                "ignoring {name}: unknown variable; see healthd --help"
            ));
        }
    }
    out
}

/// Variables read elsewhere (not serve settings) that must not draw an "unknown" warning.
const EXTRA_KNOWN: &[&str] = &[];

/// Whether `a` and `b` are exactly one edit apart: one character changed, inserted or removed, or
/// two neighbours swapped (`PROT` is one edit from `PORT`). Linear and allocation-free: it runs
/// for every variable in the environment against every setting at each start, and a full
/// edit-distance table there cost milliseconds of start-up.
pub fn one_edit_apart(a: &[char], b: &[char]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let Some(i) = short.iter().zip(long).position(|(x, y)| x != y) else {
        // Equal up to the shorter length: one apart only when one character longer.
        return long.len() != short.len();
    };
    if short.len() == long.len() {
        let changed = short[i + 1..] == long[i + 1..];
        let swapped = i + 1 < short.len()
            && short[i] == long[i + 1]
            && short[i + 1] == long[i]
            && short[i + 2..] == long[i + 2..];
        changed || swapped
    } else {
        short[i..] == long[i + 1..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn check(pairs: &[(&str, &str)]) -> Result<Config, String> {
        load(&env(pairs), &[])
            .map(|l| l.config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = check(&[]).unwrap();
        assert_eq!(c.listen, Ok("0.0.0.0:8081".parse().unwrap()));
        assert_eq!(c.starting, Health::NotReady);
        assert!(c.required.is_empty());
        assert_eq!(
            (c.health_path.as_str(), c.live_path.as_str()),
            ("/health", "/live")
        );
        assert_eq!(c.shutdown_grace, Duration::from_secs(5));
        assert_eq!(c.ready_file, None);
    }

    #[test]
    fn ready_files() {
        for (v, want) in [
            ("/run/healthd/ready", Ok("/run/healthd/ready")),
            ("ready", Ok("ready")),
            (" /tmp/r ", Ok("/tmp/r")),
            ("/tmp/", Err(())),
            (".", Err(())),
            ("/tmp/..", Err(())),
        ] {
            let got = check(&[("HEALTHD_READY_FILE", v)]);
            match (want, got) {
                (Ok(w), Ok(c)) => assert_eq!(c.ready_file, Some(PathBuf::from(w)), "{v:?}"),
                (Err(()), Err(e)) => assert_eq!(
                    e,
                    format!(
                        "HEALTHD_READY_FILE={v:?}: expected the path of a file, such as /run/healthd/ready (not a directory)"
                    )
                ),
                (w, g) => panic!("{v:?}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn ports() {
        type Want = Result<Result<u16, Disabled>, ()>;
        let cases: &[(&str, Want)] = &[
            ("0", Ok(Ok(0))),
            ("1", Ok(Ok(1))),
            ("8081", Ok(Ok(8081))),
            ("40000", Ok(Ok(40000))),
            ("65535", Ok(Ok(65535))),
            ("", Ok(Ok(8081))),
            (" 9000 ", Ok(Ok(9000))),
            ("-1", Ok(Err(Disabled::NegativePort(-1)))),
            ("-40000", Ok(Err(Disabled::NegativePort(-40000)))),
            ("65536", Err(())),
            ("abc", Err(())),
            ("8081.0", Err(())),
            ("0x10", Err(())),
        ];
        for (v, want) in cases {
            let got = check(&[("DYN_SYSTEM_PORT", v)]);
            match (want, got) {
                (Ok(w), Ok(c)) => assert_eq!(c.listen.map(|a| a.port()), *w, "port {v:?}"),
                (Err(()), Err(e)) => assert_eq!(
                    e,
                    format!(
                        "DYN_SYSTEM_PORT={v:?}: expected an integer from -1 to 65535 (0 = any free port, negative disables the server)"
                    )
                ),
                (w, g) => panic!("port {v:?}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn hosts() {
        for (v, want) in [
            ("127.0.0.1", Some("127.0.0.1")),
            ("::", Some("::")),
            ("[::1]", Some("::1")),
            ("::1", Some("::1")),
            ("localhost", Some("127.0.0.1")),
            ("example.com", None),
            ("[127.0.0.1", None),
        ] {
            let got = check(&[("DYN_SYSTEM_HOST", v)]).map(|c| c.listen.unwrap().ip().to_string());
            assert_eq!(got.ok().as_deref(), want, "host {v:?}");
        }
    }

    #[test]
    fn enabled_and_starting() {
        assert_eq!(
            check(&[("DYN_SYSTEM_ENABLED", "false")]).unwrap().listen,
            Err(Disabled::NotEnabled)
        );
        assert!(
            check(&[("DYN_SYSTEM_ENABLED", "true")])
                .unwrap()
                .listen
                .is_ok()
        );
        assert_eq!(
            check(&[("DYN_SYSTEM_ENABLED", "yes")]).unwrap_err(),
            "DYN_SYSTEM_ENABLED=\"yes\": expected true or false"
        );
        assert_eq!(
            check(&[("DYN_SYSTEM_STARTING_HEALTH_STATUS", "ready")])
                .unwrap()
                .starting,
            Health::Ready
        );
        assert_eq!(
            check(&[("DYN_SYSTEM_STARTING_HEALTH_STATUS", "Ready")]).unwrap_err(),
            "DYN_SYSTEM_STARTING_HEALTH_STATUS=\"Ready\": expected ready or notready"
        );
    }

    #[test]
    fn endpoint_lists() {
        let ok: &[(&str, &[&str])] = &[
            ("[]", &[]),
            ("[ ]", &[]),
            ("[\"generate\"]", &["generate"]),
            (
                "[generate, clear_kv_blocks]",
                &["clear_kv_blocks", "generate"],
            ),
            ("[\"a\", \"b\"]", &["a", "b"]),
            ("['a','a']", &["a"]),
        ];
        for (v, want) in ok {
            assert_eq!(parse_endpoint_list(v).unwrap(), *want, "{v}");
        }
        for v in [
            "generate",
            "[a,,b]",
            "[a,]",
            "[\"a b\"]",
            "[\"\"]",
            "[a",
            "[a/b]",
        ] {
            assert!(parse_endpoint_list(v).is_err(), "{v} should fail");
        }
    }

    #[test]
    fn paths() {
        let c = check(&[
            ("DYN_SYSTEM_HEALTH_PATH", "/healthz"),
            ("DYN_SYSTEM_LIVE_PATH", "/alive"),
        ])
        .unwrap();
        assert_eq!(
            (c.health_path.as_str(), c.live_path.as_str()),
            ("/healthz", "/alive")
        );
        assert!(check(&[("DYN_SYSTEM_HEALTH_PATH", "health")]).is_err());
        assert!(check(&[("DYN_SYSTEM_LIVE_PATH", "/a b")]).is_err());
        assert_eq!(
            check(&[("DYN_SYSTEM_LIVE_PATH", "/health")]).unwrap_err(),
            "DYN_SYSTEM_LIVE_PATH=\"/health\": the health path and the live path must differ"
        );
    }

    #[test]
    fn flags_win_and_are_named() {
        let flags = vec![("--port".to_string(), "9000".to_string())];
        let l = load(&env(&[("DYN_SYSTEM_PORT", "7000")]), &flags).unwrap();
        assert_eq!(l.config.listen.clone().unwrap().port(), 9000);
        assert_eq!(l.config.origin_of("DYN_SYSTEM_PORT"), "--port");
        let bad = vec![("--port".to_string(), "x".to_string())];
        assert!(
            load(&env(&[]), &bad)
                .unwrap_err()
                .to_string()
                .starts_with("--port=\"x\"")
        );
        let unknown = vec![("--nope".to_string(), "1".to_string())];
        assert_eq!(
            load(&env(&[]), &unknown).unwrap_err().to_string(),
            "--nope=\"1\": unknown flag; see healthd --help"
        );
    }

    #[test]
    fn liveness_settings() {
        let c = check(&[]).unwrap();
        assert_eq!(
            (c.heartbeat_timeout, c.live_mode, c.notify_socket),
            (None, LiveMode::Dynamo, None)
        );
        let c = check(&[
            ("HEALTHD_HEARTBEAT_TIMEOUT", "10s"),
            ("HEALTHD_LIVE", "shallow"),
            ("HEALTHD_NOTIFY_SOCKET", "@healthd"),
        ])
        .unwrap();
        assert_eq!(c.heartbeat_timeout, Some(Duration::from_secs(10)));
        assert_eq!(c.live_mode, LiveMode::Shallow);
        assert_eq!(c.notify_socket.as_deref(), Some("@healthd"));
        assert!(check(&[("HEALTHD_HEARTBEAT_TIMEOUT", "0")]).is_err());
        assert!(check(&[("HEALTHD_LIVE", "deep")]).is_err());
        assert!(check(&[("HEALTHD_NOTIFY_SOCKET", "@")]).is_err());
        assert!(check(&[("HEALTHD_NOTIFY_SOCKET", &"x".repeat(200))]).is_err());
    }

    #[test]
    fn durations() {
        for (v, ms) in [
            ("5s", 5000),
            ("500ms", 500),
            ("2m", 120_000),
            ("1.5", 1500),
            ("0", 0),
            ("0.25s", 250),
            (".5", 500),
            ("2.", 2000),
            ("1.0005m", 60_030),
        ] {
            assert_eq!(parse_duration(v).unwrap(), Duration::from_millis(ms), "{v}");
        }
        assert_eq!(
            parse_duration("1.5ms").unwrap(),
            Duration::from_micros(1500)
        );
        assert_eq!(
            parse_duration("0.0000000019").unwrap(),
            Duration::from_nanos(1)
        );
        for v in [
            "",
            "-1s",
            "5x",
            "s",
            "1e3",
            "inf",
            ".",
            "1.2.3",
            "+1",
            "99999999999999999999",
        ] {
            assert!(parse_duration(v).is_err(), "{v}");
        }
    }

    #[test]
    fn dialects_role_and_frontend() {
        let c = check(&[]).unwrap();
        assert_eq!((c.dialects, c.role), (Dialects::ALL, Role::Worker));
        assert_eq!(
            (c.http_health_path.as_str(), c.http_live_path.as_str()),
            ("/health", "/live")
        );
        assert_eq!(
            (c.names.namespace.as_str(), c.names.component.as_str()),
            ("dynamo", "backend")
        );
        for (v, want) in [
            ("all", Some(["kserve", "dapr", "k8s"].as_slice())),
            ("none", Some(&[])),
            ("k8s, dapr", Some(&["dapr", "k8s"])),
            ("dynamo,kserve", Some(&["kserve"])),
            ("kserve,", None),
            ("triton", None),
        ] {
            let got = check(&[("HEALTHD_DIALECTS", v)])
                .map(|c| (c.dialects.names(), c.dialects.explicit));
            match want {
                Some(w) => assert_eq!(got, Ok((w.to_vec(), true)), "{v}"),
                None => assert_eq!(
                    got.unwrap_err(),
                    format!(
                        "HEALTHD_DIALECTS={v:?}: expected all, none, or a comma-separated list of kserve, dapr, k8s"
                    )
                ),
            }
        }
        let c = check(&[("HEALTHD_ROLE", "frontend"), ("DYN_SYSTEM_PORT", "9")]).unwrap();
        assert_eq!(c.listen, Ok("0.0.0.0:8000".parse().unwrap()));
        let c = check(&[("HEALTHD_ROLE", "frontend"), ("DYN_HTTP_PORT", "-1")]).unwrap();
        assert_eq!(c.listen, Err(Disabled::NegativeHttpPort(-1)));
        assert_eq!(
            check(&[("HEALTHD_ROLE", "router")]).unwrap_err(),
            "HEALTHD_ROLE=\"router\": expected worker or frontend"
        );
        assert_eq!(
            check(&[("HEALTHD_NAMESPACE", "a.b")]).unwrap_err(),
            "HEALTHD_NAMESPACE=\"a.b\": expected letters, digits, '_' and '-' (no dots; at most 64)"
        );
        assert_eq!(
            check(&[
                ("HEALTHD_ROLE", "frontend"),
                ("DYN_HTTP_SVC_LIVE_PATH", "/health")
            ])
            .unwrap_err(),
            "DYN_HTTP_SVC_LIVE_PATH=\"/health\": the frontend health path and live path must differ"
        );
    }

    #[test]
    fn one_edit() {
        let apart = |a: &str, b: &str| {
            let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            (one_edit_apart(&a, &b), one_edit_apart(&b, &a))
        };
        for (a, b) in [
            ("PORT", "PROT"),
            ("PORT", "PORX"),
            ("PORT", "XORT"),
            ("PORT", "PORTS"),
            ("PORT", "SPORT"),
            ("PORT", "POT"),
            ("PORT", "PORé"),
            ("", "A"),
            ("AB", "BA"),
        ] {
            assert_eq!(apart(a, b), (true, true), "{a} {b}");
        }
        for (a, b) in [
            ("PORT", "PORT"),
            ("PORT", "TROP"),
            ("PORT", "OPTR"),
            ("PORT", "PXRX"),
            ("PORT", "PO"),
            ("PORT", "XPORTX"),
            ("PORT", "POTRS"),
            ("", ""),
            ("ABC", "CBA"),
        ] {
            assert_eq!(apart(a, b), (false, false), "{a} {b}");
        }
    }

    #[test]
    fn typo_warnings() {
        let w = unknown_name_warnings(&env(&[
            ("DYN_SYSTEM_PROT", "1"),
            ("DYN_SYSTEM_OTHER_THING", "1"),
            ("HEALTHD_X", ""),
        ]));
        assert_eq!(
            w,
            vec![
                "ignoring DYN_SYSTEM_PROT: unknown variable; did you mean DYN_SYSTEM_PORT?"
                    .to_string(),
                "ignoring HEALTHD_X: unknown variable; see healthd --help".to_string(),
            ]
        );
    }
}
