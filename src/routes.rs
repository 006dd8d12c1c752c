//! The route table: path and method in, a dialect's answer out. Owns 404, 405 (with `Allow`) and
//! the rule that `HEAD` is answered like `GET` (the HTTP layer drops the body), and checks at start
//! that no configured path collides with another route. Pure: state and time come in.

use std::time::Instant;

use crate::config::{Config, ConfigError, Dialects, LiveMode, Role};
use crate::dialect::frontend::{self, Names};
use crate::dialect::metrics::{self, RequestCounts};
use crate::dialect::{Head, JSON, TEXT, dapr, dynamo, k8s, kserve, write_json};
use crate::discovery::{self, Views};
use crate::state::State;

/// A route; its label names it in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The Dynamo health body: the health path and the `/ready` alias.
    DynamoHealth(&'static str),
    /// The Dynamo live path (like health, or shallow: see `HEALTHD_LIVE`).
    DynamoLive,
    Metrics,
    Metadata,
    Engine,
    /// The frontend role's health and live paths.
    FrontendHealth,
    FrontendLive,
    KserveLive,
    KserveReady,
    KserveModel,
    KserveMetadata,
    DaprHealthz,
    DaprOutbound,
    Livez,
    Readyz,
}

impl Route {
    pub fn label(self) -> &'static str {
        match self {
            Route::DynamoHealth(label) => label,
            Route::DynamoLive => "live",
            Route::Metrics => "metrics",
            Route::Metadata => "metadata",
            Route::Engine => "engine",
            Route::FrontendHealth => "health",
            Route::FrontendLive => "live",
            Route::KserveLive => "kserve_live",
            Route::KserveReady => "kserve_ready",
            Route::KserveModel => "kserve_model_ready",
            Route::KserveMetadata => "kserve_metadata",
            Route::DaprHealthz => "dapr_healthz",
            Route::DaprOutbound => "dapr_outbound",
            Route::Livez => "livez",
            Route::Readyz => "readyz",
        }
    }
}

/// Routes whose path is fixed, apart from the dialect sets: `/metrics` always, and the system
/// status server's `/metadata` and `/engine/*` in the worker role.
fn fixed(role: Role, path: &str) -> Option<Route> {
    match path {
        "/metrics" => Some(Route::Metrics),
        "/metadata" if role == Role::Worker => Some(Route::Metadata),
        p if p.starts_with("/engine/") && role == Role::Worker => Some(Route::Engine),
        _ => None,
    }
}

/// The route of an enabled dialect set for `path`, if any.
fn dialect(sets: &Dialects, path: &str) -> Option<Route> {
    if sets.kserve && kserve::matches(path) {
        return Some(match path {
            "/v2" => Route::KserveMetadata,
            "/v2/health/live" => Route::KserveLive,
            "/v2/health/ready" => Route::KserveReady,
            _ => Route::KserveModel,
        });
    }
    if sets.dapr && dapr::matches(path) {
        return Some(if path == dapr::HEALTHZ {
            Route::DaprHealthz
        } else {
            Route::DaprOutbound
        });
    }
    if sets.k8s && k8s::matches(path) {
        return Some(if path.starts_with("/livez") {
            Route::Livez
        } else {
            Route::Readyz
        });
    }
    None
}

/// The route table for one configuration.
#[derive(Debug, Clone)]
pub struct Router {
    role: Role,
    health_path: String,
    live_path: String,
    live_mode: LiveMode,
    sets: Dialects,
    names: Names,
    /// One line per dialect set left out because it collides (for the start-up log).
    pub dropped: Vec<String>,
}

impl Router {
    /// Builds the table, refusing a health or live path that another route already answers. A
    /// dialect set that collides is refused when `HEALTHD_DIALECTS` named it, and left out (see
    /// `dropped`) when it is only there by default.
    pub fn new(config: &Config) -> Result<Router, ConfigError> {
        let role = config.role;
        let paths = match role {
            Role::Worker => [
                ("DYN_SYSTEM_HEALTH_PATH", &config.health_path),
                ("DYN_SYSTEM_LIVE_PATH", &config.live_path),
            ],
            Role::Frontend => [
                ("DYN_HTTP_SVC_HEALTH_PATH", &config.http_health_path),
                ("DYN_HTTP_SVC_LIVE_PATH", &config.http_live_path),
            ],
        };
        let mut sets = config.dialects;
        let mut dropped = Vec::new();
        for (var, path) in paths {
            let name = config.origin_of(var);
            if let Some(route) = fixed(role, path) {
                return Err(ConfigError::new(
                    name,
                    path,
                    format!(
                        "collides with the {} route healthd serves; choose another path",
                        route.label()
                    ),
                ));
            }
            let mut only = |set: &str, on: &mut bool, matches: fn(&str) -> bool| {
                if !*on || !matches(path) {
                    return Ok(());
                }
                if config.dialects.explicit {
                    return Err(ConfigError::new(
                        name,
                        path,
                        format!(
                            "collides with the {set} routes healthd serves; choose another path or leave {set} out of {}",
                            config.origin_of("HEALTHD_DIALECTS")
                        ),
                    ));
                }
                *on = false;
                dropped.push(format!(
                    "{set} routes left out: {name}={path} is one of their paths (set HEALTHD_DIALECTS to choose)"
                ));
                Ok(())
            };
            only("kserve", &mut sets.kserve, kserve::matches)?;
            only("dapr", &mut sets.dapr, dapr::matches)?;
            only("k8s", &mut sets.k8s, k8s::matches)?;
        }
        let (health_path, live_path) = match role {
            Role::Worker => (&config.health_path, &config.live_path),
            Role::Frontend => (&config.http_health_path, &config.http_live_path),
        };
        Ok(Router {
            role,
            health_path: health_path.clone(),
            live_path: live_path.clone(),
            live_mode: config.live_mode,
            sets,
            names: config.names.clone(),
            dropped,
        })
    }

    /// The dialect sets actually served (after leaving out colliding ones).
    pub fn dialects(&self) -> Dialects {
        self.sets
    }

    /// The route for `path` (query already removed), if any.
    pub fn route(&self, path: &str) -> Option<Route> {
        let frontend = self.role == Role::Frontend;
        if path == self.health_path {
            Some(if frontend {
                Route::FrontendHealth
            } else {
                Route::DynamoHealth("health")
            })
        } else if path == self.live_path {
            Some(if frontend {
                Route::FrontendLive
            } else {
                Route::DynamoLive
            })
        } else if path == "/ready" && !frontend {
            // Dynamo's docs promise /ready; its code never had it. Same answer as health.
            Some(Route::DynamoHealth("ready"))
        } else {
            fixed(self.role, path).or_else(|| dialect(&self.sets, path))
        }
    }

    /// Answers one request: writes the body into `body` (empty on entry) and returns the head and
    /// the route label for metrics. `query` is the raw query string (without `?`); only the
    /// Kubernetes routes read it.
    #[allow(clippy::too_many_arguments)]
    pub fn respond(
        &self,
        method: &str,
        path: &str,
        query: &str,
        state: &State,
        counts: &RequestCounts,
        views: &Views,
        now: Instant,
        body: &mut Vec<u8>,
    ) -> (Head, &'static str) {
        let Some(route) = self.route(path) else {
            body.extend_from_slice(b"Route not found");
            return (Head::new(404, TEXT), "unknown");
        };
        if method != "GET" && method != "HEAD" {
            let head = Head {
                allow: true,
                ..Head::new(405, TEXT)
            };
            return (head, route.label());
        }
        let head = match route {
            Route::DynamoHealth(_) => dynamo::health(state, now, body),
            Route::DynamoLive => dynamo::live(state, now, self.live_mode, body),
            Route::Metrics => metrics::render(state, counts, views, now, body),
            Route::Metadata => {
                body.extend_from_slice(b"Discovery metadata not available");
                Head::new(404, TEXT)
            }
            Route::Engine => {
                let message = format!("Route {path} not found");
                write_json(body, |o| {
                    o.str("error", "Route not found").str("message", &message)
                });
                Head::new(404, JSON)
            }
            Route::FrontendHealth => match &views.cluster {
                Some(c) => frontend::cluster_health(&mut discovery::lock(c), now, body),
                None => frontend::health(state, &self.names, body),
            },
            Route::FrontendLive => frontend::live(state, body),
            Route::KserveLive => kserve::live(state, state.liveness(now), body),
            Route::KserveReady => kserve::ready(state, state.liveness(now), body),
            Route::KserveModel => {
                kserve::model_ready(state, kserve::model_of(path).unwrap_or_default(), body)
            }
            Route::KserveMetadata => kserve::metadata(body),
            Route::DaprHealthz => dapr::healthz(state, state.liveness(now), body),
            Route::DaprOutbound => dapr::outbound(state, state.liveness(now), body),
            Route::Livez | Route::Readyz => {
                k8s::respond(state, state.liveness(now), path, query, body)
            }
        };
        (head, route.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Health;
    use std::collections::BTreeMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        crate::config::load(&env, &[]).map(|l| l.config)
    }

    fn check(router: &Router, method: &str, path: &str) -> (u16, &'static str, bool, String) {
        let state = State::new(Instant::now(), Health::Ready, vec![]);
        let mut body = Vec::new();
        let (head, _) = router.respond(
            method,
            path,
            "",
            &state,
            &RequestCounts::default(),
            &Views::default(),
            Instant::now(),
            &mut body,
        );
        let body = String::from_utf8(body).unwrap();
        let prefix: String = body.chars().take(11).collect();
        (head.status, head.content_type, head.allow, prefix)
    }

    #[test]
    fn table() {
        let r = Router::new(&config(&[]).unwrap()).unwrap();
        type Want<'a> = (u16, &'a str, bool, &'a str);
        let cases: &[(&str, &str, Want)] = &[
            ("GET", "/health", (200, JSON, false, "{\"status\":\"")),
            ("HEAD", "/health", (200, JSON, false, "{\"status\":\"")),
            ("GET", "/live", (200, JSON, false, "{\"status\":\"")),
            ("GET", "/ready", (200, JSON, false, "{\"status\":\"")),
            ("POST", "/health", (405, TEXT, true, "")),
            ("OPTIONS", "/live", (405, TEXT, true, "")),
            ("GET", "/health/", (404, TEXT, false, "Route not fo")),
            ("POST", "/nope", (404, TEXT, false, "Route not fo")),
            (
                "GET",
                "/metrics",
                (200, crate::dialect::PROMETHEUS, false, "# HELP dyna"),
            ),
            ("GET", "/metadata", (404, TEXT, false, "Discovery m")),
            ("GET", "/engine/x", (404, JSON, false, "{\"error\":\"R")),
            (
                "GET",
                "/v2/health/live",
                (200, JSON, false, "{\"live\":true}"),
            ),
            (
                "GET",
                "/v2/health/ready",
                (200, JSON, false, "{\"ready\":true"),
            ),
            (
                "GET",
                "/v2/models/x/ready",
                (404, JSON, false, "{\"error\":\"R"),
            ),
            ("GET", "/v2", (200, JSON, false, "{\"name\":\"hea")),
            ("POST", "/v2/health/ready", (405, TEXT, true, "")),
            ("GET", "/v1.0/healthz", (204, JSON, false, "")),
            ("GET", "/v1.0/healthz/outbound", (204, JSON, false, "")),
            ("GET", "/livez", (200, TEXT, false, "ok")),
            ("GET", "/readyz", (200, TEXT, false, "ok")),
            ("GET", "/readyz/nope", (404, TEXT, false, "Route not fo")),
        ];
        for (method, path, (status, ct, allow, prefix)) in cases {
            let got = check(&r, method, path);
            let prefix: String = prefix.chars().take(11).collect();
            assert_eq!(got, (*status, *ct, *allow, prefix), "{method} {path}");
        }
    }

    #[test]
    fn custom_paths_replace_defaults() {
        let c = config(&[
            ("DYN_SYSTEM_HEALTH_PATH", "/hz"),
            ("DYN_SYSTEM_LIVE_PATH", "/lz"),
        ])
        .unwrap();
        let r = Router::new(&c).unwrap();
        assert_eq!(r.route("/hz"), Some(Route::DynamoHealth("health")));
        assert_eq!(r.route("/lz"), Some(Route::DynamoLive));
        assert_eq!(r.route("/health"), None);
        assert_eq!(r.route("/live"), None);
    }

    #[test]
    fn dialect_collisions_drop_by_default_and_fail_when_chosen() {
        let c = config(&[("DYN_SYSTEM_HEALTH_PATH", "/readyz")]).unwrap();
        let r = Router::new(&c).unwrap();
        assert_eq!(r.route("/readyz"), Some(Route::DynamoHealth("health")));
        assert_eq!(r.route("/livez"), None);
        assert_eq!(r.route("/v2/health/live"), Some(Route::KserveLive));
        assert_eq!(
            r.dropped,
            [
                "k8s routes left out: DYN_SYSTEM_HEALTH_PATH=/readyz is one of their paths (set HEALTHD_DIALECTS to choose)"
            ]
        );
        let c = config(&[
            ("DYN_SYSTEM_LIVE_PATH", "/v2/models/m/ready"),
            ("HEALTHD_DIALECTS", "kserve,dapr"),
        ])
        .unwrap();
        assert_eq!(
            Router::new(&c).unwrap_err().to_string(),
            "DYN_SYSTEM_LIVE_PATH=\"/v2/models/m/ready\": collides with the kserve routes healthd serves; choose another path or leave kserve out of HEALTHD_DIALECTS"
        );
        let c = config(&[
            ("DYN_SYSTEM_LIVE_PATH", "/v1.0/healthz"),
            ("HEALTHD_DIALECTS", "kserve,k8s"),
        ])
        .unwrap();
        let r = Router::new(&c).unwrap();
        assert_eq!(r.route("/v1.0/healthz"), Some(Route::DynamoLive));
        assert_eq!(r.route("/v1.0/healthz/outbound"), None);
        assert!(r.dropped.is_empty());
        let c = config(&[("HEALTHD_DIALECTS", "none")]).unwrap();
        let r = Router::new(&c).unwrap();
        assert_eq!((r.route("/v2"), r.route("/livez")), (None, None));
    }

    #[test]
    fn frontend_role_routes() {
        let c = config(&[
            ("HEALTHD_ROLE", "frontend"),
            ("DYN_SYSTEM_HEALTH_PATH", "/metrics"),
            ("DYN_HTTP_SVC_LIVE_PATH", "/alive"),
        ])
        .unwrap();
        let r = Router::new(&c).unwrap();
        assert_eq!(r.route("/health"), Some(Route::FrontendHealth));
        assert_eq!(r.route("/alive"), Some(Route::FrontendLive));
        assert_eq!(r.route("/live"), None);
        assert_eq!(r.route("/ready"), None);
        assert_eq!(r.route("/metadata"), None);
        assert_eq!(r.route("/metrics"), Some(Route::Metrics));
        let c = config(&[
            ("HEALTHD_ROLE", "frontend"),
            ("DYN_HTTP_SVC_HEALTH_PATH", "/metrics"),
        ])
        .unwrap();
        assert_eq!(
            Router::new(&c).unwrap_err().to_string(),
            "DYN_HTTP_SVC_HEALTH_PATH=\"/metrics\": collides with the metrics route healthd serves; choose another path"
        );
    }

    #[test]
    fn collisions_are_refused() {
        let c = config(&[("DYN_SYSTEM_HEALTH_PATH", "/metrics")]).unwrap();
        assert_eq!(
            Router::new(&c).unwrap_err().to_string(),
            "DYN_SYSTEM_HEALTH_PATH=\"/metrics\": collides with the metrics route healthd serves; choose another path"
        );
        let c = config(&[("DYN_SYSTEM_LIVE_PATH", "/engine/x")]).unwrap();
        assert!(Router::new(&c).is_err());
        let c = config(&[("DYN_SYSTEM_LIVE_PATH", "/ready")]).unwrap();
        assert_eq!(
            Router::new(&c).unwrap().route("/ready"),
            Some(Route::DynamoLive)
        );
    }
}
