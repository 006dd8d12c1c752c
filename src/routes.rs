//! The route table: path and method in, a dialect's answer out. Owns 404, 405 (with `Allow`) and
//! the rule that `HEAD` is answered like `GET` (the HTTP layer drops the body), and checks at start
//! that no configured path collides with another route. Pure: state and time come in.

use std::time::Instant;

use crate::config::{Config, ConfigError, LiveMode};
use crate::dialect::metrics::{self, RequestCounts};
use crate::dialect::{Head, JSON, TEXT, dynamo, write_json};
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
}

impl Route {
    pub fn label(self) -> &'static str {
        match self {
            Route::DynamoHealth(label) => label,
            Route::DynamoLive => "live",
            Route::Metrics => "metrics",
            Route::Metadata => "metadata",
            Route::Engine => "engine",
        }
    }
}

/// Routes whose path is fixed (everything but the configurable health and live paths).
fn fixed(path: &str) -> Option<Route> {
    match path {
        "/metrics" => Some(Route::Metrics),
        "/metadata" => Some(Route::Metadata),
        p if p.starts_with("/engine/") => Some(Route::Engine),
        _ => None,
    }
}

/// The route table for one configuration.
#[derive(Debug, Clone)]
pub struct Router {
    health_path: String,
    live_path: String,
    live_mode: LiveMode,
}

impl Router {
    /// Builds the table, refusing a health or live path that another route already answers.
    pub fn new(config: &Config) -> Result<Router, ConfigError> {
        for (var, path) in [
            ("DYN_SYSTEM_HEALTH_PATH", &config.health_path),
            ("DYN_SYSTEM_LIVE_PATH", &config.live_path),
        ] {
            if let Some(route) = fixed(path) {
                return Err(ConfigError::new(
                    config.origin_of(var),
                    path,
                    format!(
                        "collides with the {} route healthd serves; choose another path",
                        route.label()
                    ),
                ));
            }
        }
        Ok(Router {
            health_path: config.health_path.clone(),
            live_path: config.live_path.clone(),
            live_mode: config.live_mode,
        })
    }

    /// The route for `path` (query already removed), if any.
    pub fn route(&self, path: &str) -> Option<Route> {
        if path == self.health_path {
            Some(Route::DynamoHealth("health"))
        } else if path == self.live_path {
            Some(Route::DynamoLive)
        } else if path == "/ready" {
            // Dynamo's docs promise /ready; its code never had it. Same answer as health.
            Some(Route::DynamoHealth("ready"))
        } else {
            fixed(path)
        }
    }

    /// Answers one request: writes the body into `body` (empty on entry) and returns the head and
    /// the route label for metrics.
    pub fn respond(
        &self,
        method: &str,
        path: &str,
        state: &State,
        counts: &RequestCounts,
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
            Route::Metrics => metrics::render(state, counts, now, body),
            Route::Metadata => {
                body.extend_from_slice(b"Discovery metadata not available");
                Head::new(404, TEXT)
            }
            Route::Engine => {
                #[derive(serde::Serialize)]
                struct NotFound<'a> {
                    error: &'a str,
                    message: String,
                }
                let message = format!("Route {path} not found");
                write_json(
                    body,
                    &NotFound {
                        error: "Route not found",
                        message,
                    },
                );
                Head::new(404, JSON)
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
            &state,
            &RequestCounts::default(),
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
