//! The cluster-view settings (`ETCD_*`, `HEALTHD_REGISTER`): which etcd members to talk to, the
//! lease TTL, the optional user login, and whether this worker registers. Pure, like the rest of
//! `config`; names in `ETCD_ENDPOINTS` are kept as written and resolved later by
//! `discovery::resolve`, at every connect.

use super::{ConfigError, Raw, Role};

/// One etcd client URL, `http://HOST:PORT`: HOST an IP literal (v6 in brackets) or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdEndpoint {
    /// As written, without brackets around a v6 literal.
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for EtcdEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etcd {
    pub endpoints: Vec<EtcdEndpoint>,
    /// Lease TTL in whole seconds; also the frontend's staleness bound.
    pub lease_ttl: u32,
    /// `(user, password)` for `/v3/auth/authenticate`.
    pub auth: Option<(String, String)>,
}

const TLS_VARS: [&str; 3] = [
    "ETCD_AUTH_CA",
    "ETCD_AUTH_CLIENT_CERT",
    "ETCD_AUTH_CLIENT_KEY",
];

const NO_TLS: &str = "TLS to etcd is not supported; give healthd a plain http:// client URL \
                      (a private network, or a local TLS-terminating proxy in front of etcd)";

/// The etcd settings and `HEALTHD_REGISTER`: `Some` when this role uses etcd (a registering worker,
/// or a frontend with `ETCD_ENDPOINTS`); everything is still validated when it is set but unused.
pub(super) fn load(raw: &Raw, role: Role) -> Result<(Option<Etcd>, bool), ConfigError> {
    for var in TLS_VARS {
        if let Some((n, v)) = raw.get(var) {
            return Err(ConfigError::new(n, v, NO_TLS));
        }
    }
    let register = raw.choice(
        "HEALTHD_REGISTER",
        false,
        &[("on", true), ("off", false)],
        "expected on or off",
    )?;
    let endpoints = raw.parse("ETCD_ENDPOINTS", parse_endpoints)?;
    let lease_ttl = raw.parse("ETCD_LEASE_TTL", parse_ttl)?.unwrap_or(10);
    let auth = match (raw.get("ETCD_AUTH_USERNAME"), raw.get("ETCD_AUTH_PASSWORD")) {
        (None, None) => None,
        (Some((_, u)), Some((_, p))) => Some((u.to_string(), p.to_string())),
        (Some((n, v)), None) => {
            return Err(ConfigError::new(
                n,
                v,
                "set ETCD_AUTH_PASSWORD too (both or neither)",
            ));
        }
        (None, Some((n, _))) => {
            return Err(ConfigError::new(
                n,
                "***",
                "set ETCD_AUTH_USERNAME too (both or neither)",
            ));
        }
    };
    if register && role == Role::Frontend {
        let (n, v) = raw
            .get("HEALTHD_REGISTER")
            .unwrap_or(("HEALTHD_REGISTER", "on"));
        return Err(ConfigError::new(
            n,
            v,
            "the frontend role only reads etcd; register from the workers (HEALTHD_ROLE=worker)",
        ));
    }
    let Some(endpoints) = endpoints else {
        if register {
            let (n, v) = raw
                .get("HEALTHD_REGISTER")
                .unwrap_or(("HEALTHD_REGISTER", "on"));
            return Err(ConfigError::new(
                n,
                v,
                "registration needs ETCD_ENDPOINTS, such as http://etcd:2379",
            ));
        }
        return Ok((None, false));
    };
    let used = register || role == Role::Frontend;
    let etcd = Etcd {
        endpoints,
        lease_ttl,
        auth,
    };
    Ok((used.then_some(etcd), register))
}

/// `ETCD_LEASE_TTL`: whole seconds, 2..=3600.
fn parse_ttl(v: &str) -> Result<u32, &'static str> {
    match v.parse::<u32>() {
        Ok(t) if (2..=3600).contains(&t) && v.bytes().all(|b| b.is_ascii_digit()) => Ok(t),
        _ => Err("expected whole seconds from 2 to 3600, such as 10"),
    }
}

/// `ETCD_ENDPOINTS`: `http://HOST[:PORT]` items separated by commas (port 2379 when left out).
fn parse_endpoints(v: &str) -> Result<Vec<EtcdEndpoint>, String> {
    const EXPECTED: &str = "expected comma-separated http://HOST:PORT URLs such as http://etcd-0.etcd:2379,http://10.0.0.5:2379";
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim) {
        if item.starts_with("https://") {
            return Err(NO_TLS.to_string());
        }
        let one = parse_endpoint(item).map_err(|why| format!("{item:?}: {why}; {EXPECTED}"))?;
        if !out.contains(&one) {
            out.push(one);
        }
    }
    Ok(out)
}

fn parse_endpoint(item: &str) -> Result<EtcdEndpoint, &'static str> {
    let rest = item
        .strip_prefix("http://")
        .ok_or("the URL must start with http://")?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('/') || authority.contains('?') || authority.contains('@') {
        return Err("give only the scheme, host and port (no path, query or user)");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unclosed '['")?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| "brackets hold an IPv6 address")?;
        match after {
            "" => (h, None),
            a => (
                h,
                Some(a.strip_prefix(':').ok_or("expected :PORT after ']'")?),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && (host.contains(':')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    if !name_ok {
        return Err("the host must be an IP address or a DNS name");
    }
    let port = match port {
        None => 2379,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("the port must be 1..65535")?,
    };
    Ok(EtcdEndpoint {
        host: host.to_ascii_lowercase(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::super::load as load_all;
    use super::super::tests::env;

    fn check(pairs: &[(&str, &str)]) -> Result<String, String> {
        load_all(&env(pairs), &[])
            .map(|l| match l.config.etcd {
                None => format!("off register={}", l.config.register),
                Some(e) => format!(
                    "{} ttl={} auth={} register={}",
                    e.endpoints
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    e.lease_ttl,
                    e.auth.is_some(),
                    l.config.register
                ),
            })
            .map_err(|e| e.to_string())
    }

    const FRONT: (&str, &str) = ("HEALTHD_ROLE", "frontend");

    #[test]
    fn endpoints() {
        for (v, want) in [
            ("http://etcd:2379", "http://etcd:2379"),
            ("http://10.0.0.1", "http://10.0.0.1:2379"),
            ("http://[::1]:2380/", "http://[::1]:2380"),
            (
                " http://a.b.svc:1 , http://B:2,http://b:2",
                "http://a.b.svc:1,http://b:2",
            ),
        ] {
            let got = check(&[FRONT, ("ETCD_ENDPOINTS", v)]).unwrap();
            assert_eq!(
                got,
                format!("{want} ttl=10 auth=false register=false"),
                "{v:?}"
            );
        }
        for v in [
            "etcd:2379",
            "http://",
            "http://:2379",
            "http://h:0",
            "http://h:99999",
            "http://h:x",
            "http://h:2379/path",
            "a,,b",
            "http://[::1",
            "http://[zz]:1",
            "http://u@h:1",
            "http://h h:1",
        ] {
            let e = check(&[FRONT, ("ETCD_ENDPOINTS", v)]).unwrap_err();
            assert!(e.starts_with(&format!("ETCD_ENDPOINTS={v:?}: ")), "{e}");
            assert!(e.contains("http://HOST:PORT"), "{e}");
        }
        let e = check(&[FRONT, ("ETCD_ENDPOINTS", "https://etcd:2379")]).unwrap_err();
        assert!(e.contains("TLS to etcd is not supported"), "{e}");
    }

    #[test]
    fn tls_ttl_auth_register() {
        for var in super::TLS_VARS {
            let e = check(&[(var, "/etc/ca.pem")]).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "{var}=\"/etc/ca.pem\": TLS to etcd is not supported"
                )),
                "{e}"
            );
        }
        let ep = ("ETCD_ENDPOINTS", "http://127.0.0.1:2379");
        for (v, ok) in [
            ("2", true),
            ("3600", true),
            ("10", true),
            ("1", false),
            ("0", false),
            ("3601", false),
            ("-5", false),
            ("10s", false),
            ("1.5", false),
            ("+5", false),
        ] {
            let got = check(&[FRONT, ep, ("ETCD_LEASE_TTL", v)]);
            assert_eq!(got.is_ok(), ok, "{v:?}: {got:?}");
        }
        assert!(
            check(&[FRONT, ep, ("ETCD_AUTH_USERNAME", "u")])
                .unwrap_err()
                .contains("both or neither")
        );
        assert!(
            !check(&[FRONT, ep, ("ETCD_AUTH_PASSWORD", "secret")])
                .unwrap_err()
                .contains("secret")
        );
        assert_eq!(
            check(&[
                ("HEALTHD_REGISTER", "on"),
                ep,
                ("ETCD_AUTH_USERNAME", "u"),
                ("ETCD_AUTH_PASSWORD", "p")
            ])
            .unwrap(),
            "http://127.0.0.1:2379 ttl=10 auth=true register=true"
        );
        // A worker that does not register never talks to etcd, even with ETCD_ENDPOINTS set.
        assert_eq!(check(&[ep]).unwrap(), "off register=false");
        assert_eq!(
            check(&[("HEALTHD_REGISTER", "yes")]).unwrap_err(),
            "HEALTHD_REGISTER=\"yes\": expected on or off"
        );
        assert!(
            check(&[("HEALTHD_REGISTER", "on")])
                .unwrap_err()
                .contains("needs ETCD_ENDPOINTS")
        );
        assert!(
            check(&[FRONT, ep, ("HEALTHD_REGISTER", "on")])
                .unwrap_err()
                .contains("only reads etcd")
        );
    }
}
