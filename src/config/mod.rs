//! Configuration: environment pairs and command-line flags in, a validated [`Config`] out.
//!
//! Pure: the caller hands in the environment (read once by `main`) and the flags; nothing here
//! touches the process, files or sockets. Every error names the variable or flag, the bad value and
//! what is accepted, so the operator can fix it from the one line they see. The module is split by
//! concern: [`settings`] is the table every setting comes from (`--help`, the README and the parser
//! read it), [`values`] the parsers of single values, [`etcd`] the cluster-view settings, [`typos`]
//! the warnings about ignored names; this file merges variables and flags and assembles [`Config`].

mod etcd;
mod settings;
mod typos;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::dialect::frontend::Names;
use crate::state::Health;

pub use etcd::{Etcd, EtcdEndpoint};
pub use settings::SETTINGS;
#[cfg(test)]
pub use typos::one_edit_apart;
use values::{
    check_dyn_name, parse_dialects, parse_path, parse_port, parse_ready_file, parse_socket_name,
};
pub use values::{check_endpoint_name, parse_duration, parse_endpoint_list, parse_host};

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
    /// The etcd cluster, when discovery is on: a worker that registers, or a frontend that lists.
    pub etcd: Option<Etcd>,
    /// `HEALTHD_REGISTER=on`: the worker registers its ready endpoints in `etcd`.
    pub register: bool,
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
    let raw = Raw::merge(env, flags)?;
    let role = raw.choice(
        "HEALTHD_ROLE",
        Role::Worker,
        &[("worker", Role::Worker), ("frontend", Role::Frontend)],
        "expected worker or frontend",
    )?;
    let (health_path, live_path) = raw.path_pair(
        ("DYN_SYSTEM_HEALTH_PATH", "DYN_SYSTEM_LIVE_PATH"),
        "the health path and the live path must differ",
        true,
    )?;
    let (http_health_path, http_live_path) = raw.path_pair(
        ("DYN_HTTP_SVC_HEALTH_PATH", "DYN_HTTP_SVC_LIVE_PATH"),
        "the frontend health path and live path must differ",
        role == Role::Frontend,
    )?;
    let name = |var| {
        raw.parse(var, |v| check_dyn_name(v).map(|()| v.to_string()))
            .map(|v| v.unwrap_or_else(|| setting_default(var).to_string()))
    };
    let names = Names {
        namespace: name("HEALTHD_NAMESPACE")?,
        component: name("HEALTHD_COMPONENT")?,
    };
    let (etcd, register) = etcd::load(&raw, role)?;
    let config = Config {
        listen: listen(&raw, role)?,
        starting: raw.choice(
            "DYN_SYSTEM_STARTING_HEALTH_STATUS",
            Health::NotReady,
            &[("ready", Health::Ready), ("notready", Health::NotReady)],
            "expected ready or notready",
        )?,
        required: raw
            .parse("DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS", parse_endpoint_list)?
            .unwrap_or_default(),
        health_path,
        live_path,
        dialects: raw
            .parse("HEALTHD_DIALECTS", parse_dialects)?
            .unwrap_or(Dialects::ALL),
        role,
        http_health_path,
        http_live_path,
        names,
        shutdown_grace: raw
            .parse("HEALTHD_SHUTDOWN_GRACE", parse_duration)?
            .unwrap_or(Duration::from_secs(5)),
        heartbeat_timeout: match raw.get("HEALTHD_HEARTBEAT_TIMEOUT") {
            None | Some((_, "off")) => None,
            Some(_) => raw.parse("HEALTHD_HEARTBEAT_TIMEOUT", |v| match parse_duration(v) {
                Ok(d) if !d.is_zero() => Ok(d),
                _ => Err("expected a duration above zero such as 10s, or off"),
            })?,
        },
        live_mode: raw.choice(
            "HEALTHD_LIVE",
            LiveMode::Dynamo,
            &[("dynamo", LiveMode::Dynamo), ("shallow", LiveMode::Shallow)],
            "expected dynamo or shallow",
        )?,
        notify_socket: raw.parse("HEALTHD_NOTIFY_SOCKET", |v| {
            parse_socket_name(v).map(str::to_string)
        })?,
        ready_url: raw.get("HEALTHD_READY_URL").map(|(_, v)| v.to_string()),
        ready_file: raw.parse("HEALTHD_READY_FILE", parse_ready_file)?,
        etcd,
        register,
        origin: raw.0.iter().map(|(k, (n, _))| (*k, n.clone())).collect(),
    };
    Ok(Loaded {
        config,
        warnings: typos::unknown_name_warnings(env),
    })
}

/// The address to listen on, or why the server is off. The frontend listens on its own port;
/// `DYN_SYSTEM_PORT` and `DYN_SYSTEM_ENABLED` are the worker's.
fn listen(raw: &Raw, role: Role) -> Result<Result<SocketAddr, Disabled>, ConfigError> {
    let enabled = raw.choice(
        "DYN_SYSTEM_ENABLED",
        true,
        &[("true", true), ("false", false)],
        "expected true or false",
    )?;
    let port = raw.parse("DYN_SYSTEM_PORT", parse_port)?.unwrap_or(8081);
    let http_port = raw.parse("DYN_HTTP_PORT", parse_port)?.unwrap_or(8000);
    let host = raw
        .parse("DYN_SYSTEM_HOST", parse_host)?
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    Ok(match role {
        Role::Frontend if http_port < 0 => Err(Disabled::NegativeHttpPort(http_port)),
        Role::Frontend => Ok(SocketAddr::new(host, http_port as u16)),
        Role::Worker if !enabled => Err(Disabled::NotEnabled),
        Role::Worker if port < 0 => Err(Disabled::NegativePort(port)),
        Role::Worker => Ok(SocketAddr::new(host, port as u16)),
    })
}

/// The default of `var` as the settings table shows it.
fn setting_default(var: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|s| s.var == var)
        .map_or("", |s| s.default)
}

/// The set values, by variable: `(the name that set it, the value)`, a flag winning over its
/// variable. Values are trimmed when read.
struct Raw(BTreeMap<&'static str, (String, String)>);

impl Raw {
    fn merge(
        env: &BTreeMap<String, String>,
        flags: &[(String, String)],
    ) -> Result<Raw, ConfigError> {
        let mut raw = BTreeMap::new();
        for s in SETTINGS {
            // Empty, or only spaces (which are trimmed): unset, as the README promises.
            if let Some(v) = env.get(s.var).filter(|v| !v.trim().is_empty()) {
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
            if value.trim().is_empty() {
                raw.remove(s.var);
            } else {
                raw.insert(s.var, (flag.clone(), value.clone()));
            }
        }
        Ok(Raw(raw))
    }

    /// `(name that set it, trimmed value)`, or `None` when unset.
    fn get(&self, var: &str) -> Option<(&str, &str)> {
        self.0.get(var).map(|(n, v)| (n.as_str(), v.trim()))
    }

    /// The value of `var` through `parse`; an error names the setting and the value.
    fn parse<T, E: Into<String>>(
        &self,
        var: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(var) {
            None => Ok(None),
            Some((n, v)) => parse(v).map(Some).map_err(|e| ConfigError::new(n, v, e)),
        }
    }

    /// One of a few words, or `default` when unset.
    fn choice<T: Copy>(
        &self,
        var: &str,
        default: T,
        words: &[(&str, T)],
        expected: &str,
    ) -> Result<T, ConfigError> {
        self.parse(var, |v| {
            words
                .iter()
                .find(|(w, _)| *w == v)
                .map(|(_, t)| *t)
                .ok_or(expected)
        })
        .map(|t| t.unwrap_or(default))
    }

    /// A health path and a live path (defaults from the table) that must differ when `distinct`.
    fn path_pair(
        &self,
        (health, live): (&'static str, &'static str),
        differ: &str,
        distinct: bool,
    ) -> Result<(String, String), ConfigError> {
        let path = |var| {
            self.parse(var, |v| parse_path(v).map(str::to_string))
                .map(|p| p.unwrap_or_else(|| setting_default(var).to_string()))
        };
        let (h, l) = (path(health)?, path(live)?);
        if distinct && h == l {
            let (n, _) = self.get(live).or(self.get(health)).unwrap_or((live, ""));
            return Err(ConfigError::new(n, &l, differ));
        }
        Ok((h, l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment from pairs (the sibling modules' tests use it too).
    pub(super) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
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
    fn blank_values_are_unset() {
        assert_eq!(check(&[("DYN_SYSTEM_PORT", "   ")]), check(&[]));
        assert_eq!(check(&[("ETCD_ENDPOINTS", " \t ")]), check(&[]));
        let flags = [("--port".to_string(), "  ".to_string())];
        assert_eq!(
            load(&env(&[("DYN_SYSTEM_PORT", "9000")]), &flags).map(|l| l.config),
            load(&env(&[]), &[]).map(|l| l.config)
        );
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
}
