//! `healthd serve`: wires configuration, state, sources and the responder together, in the order
//! that keeps the promise "fail before you serve; never die while serving": everything fallible
//! (routes, signal handlers, the first read of the readiness file, bind) happens before the `listening on` line.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::{Config, LiveMode, Role};
use crate::dialect::Head;
use crate::dialect::metrics::RequestCounts;
use crate::discovery::cluster::Cluster;
use crate::discovery::{Registry, Views, register, watch};
use crate::http::{self, Handler, Request};
use crate::log::{info, warning};
use crate::routes::Router;
use crate::source::file::{self, FileSource};
use crate::source::{self, Shared};
use crate::state::State;
use crate::supervise;

/// Why serving could not start; `main` turns it into an exit code (2, or 126/127 when the child
/// of `healthd run` cannot be started).
#[derive(Debug)]
pub struct StartError {
    pub message: String,
    pub code: u8,
}

impl From<String> for StartError {
    fn from(message: String) -> Self {
        StartError { message, code: 2 }
    }
}

impl From<supervise::ChildError> for StartError {
    fn from(e: supervise::ChildError) -> Self {
        StartError {
            message: e.message,
            code: e.code,
        }
    }
}

/// Runs the server until shutdown and returns the exit code: 0 after a drain (or when disabled by
/// configuration), or the supervised child's code under `healthd run` (`child` is its argv).
pub fn run(config: Config, child: Option<Vec<String>>) -> Result<u8, StartError> {
    let router = Router::new(&config).map_err(|e| e.to_string())?;
    let addr = match config.listen {
        Ok(addr) => addr,
        Err(why) => {
            if let Some(argv) = child {
                // Nothing to serve: become the child, so signals and the exit code are its own.
                info!("server disabled ({why}); running {argv:?} in healthd's place");
                return Err(supervise::exec(&argv).into());
            }
            info!("server disabled ({why}); exiting");
            return Ok(0);
        }
    };
    let signals = source::signals::install(child.is_some())
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let state: Shared = Arc::new(Mutex::new(
        State::new(Instant::now(), config.starting, config.required.clone())
            .with_heartbeat(config.heartbeat_timeout),
    ));
    // The first read of the readiness file is part of "fail before you serve".
    let file = match &config.ready_file {
        Some(path) => Some(FileSource::start(path.clone(), Arc::clone(&state))?),
        None => None,
    };
    let port_setting = match config.role {
        Role::Worker => "DYN_SYSTEM_PORT or --port",
        Role::Frontend => "DYN_HTTP_PORT or --http-port",
    };
    let server = http::Server::bind(addr, http::Limits::default()).map_err(|e| {
        format!("cannot listen on {addr}: {e} (set {port_setting} to a free port, or 0 for any)")
    })?;
    let bound = server
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let reload = file.clone().map(|f| -> source::signals::Reload {
        Box::new(move || {
            file::log_reload(f.path());
            f.refresh(true);
        })
    });
    // `healthd run` always has a notify socket: the abstract namespace needs no writable path.
    let notify = config.notify_socket.clone().or_else(|| {
        child
            .as_ref()
            .map(|_| format!("@healthd-{}", std::process::id()))
    });
    if let Some(name) = &notify {
        let sock = source::notify::bind(name).map_err(|e| {
            format!("cannot bind the notify socket {name}: {e} (HEALTHD_NOTIFY_SOCKET)")
        })?;
        source::notify::spawn(sock, Arc::clone(&state))
            .map_err(|e| format!("cannot start the notify thread: {e}"))?;
    }
    if let Some(url) = &config.ready_url {
        let name = config.origin_of("HEALTHD_READY_URL");
        let target = if url.starts_with("http://") {
            crate::client::target(Some(url), &config)
        } else {
            Err("expected a URL such as http://127.0.0.1:8080/healthz".into())
        }
        .map_err(|e| format!("{name}={url:?}: {e}"))?;
        source::url::spawn(target, Arc::clone(&state))
            .map_err(|e| format!("cannot start the ready-url poller: {e}"))?;
    }
    source::watchdog::spawn(Arc::clone(&state))
        .map_err(|e| format!("cannot start the watchdog thread: {e}"))?;
    let views = discovery(&config, &state)?;
    let child = match child {
        Some(argv) => Some(supervise::spawn(
            &argv,
            notify.as_deref(),
            config.ready_file.as_deref(),
        )?),
        None => None,
    };
    source::signals::spawn(
        signals,
        source::signals::Handling {
            state: Arc::clone(&state),
            stopper: server.stopper(),
            grace: config.shutdown_grace,
            reload,
            child: child.clone(),
        },
    )
    .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    let from = match &file {
        Some(f) => {
            file::spawn(Arc::clone(f))
                .map_err(|e| format!("cannot start the readiness-file watcher: {e}"))?;
            format!("file {}, SIGUSR1/SIGUSR2", f.path().display())
        }
        None => "SIGUSR1/SIGUSR2 (no HEALTHD_READY_FILE)".to_string(),
    };

    info!(
        "health path {}, live path {} ({}), also /ready and /metrics; starting {}; required endpoints [{}]; readiness from: {from}{}; heartbeat {}",
        config.health_path,
        config.live_path,
        match config.live_mode {
            LiveMode::Dynamo => "dynamo",
            LiveMode::Shallow => "shallow",
        },
        config.starting.as_str(),
        config.required.join(", "),
        notify
            .as_deref()
            .map(|n| format!(", notify socket {n}"))
            .unwrap_or_default(),
        config
            .heartbeat_timeout
            .map(|t| format!("every {t:?}"))
            .unwrap_or_else(|| "off".into()),
    );
    for line in &router.dropped {
        warning!("{line}");
    }
    let sets = router.dialects().names();
    let frontend = match config.role {
        Role::Worker => String::new(),
        Role::Frontend => format!(
            " (frontend health path {}, live path {}; the system paths above are not served)",
            config.http_health_path, config.http_live_path
        ),
    };
    info!(
        "role {}{frontend}; dialects: dynamo{}{}",
        config.role.as_str(),
        if sets.is_empty() { "" } else { ", " },
        sets.join(", ")
    );
    info!("listening on {bound}");
    let mut app = App {
        router,
        state,
        counts: RequestCounts::default(),
        views,
    };
    server
        .run(&mut app)
        .map_err(|e| format!("cannot start the event loop: {e}"))?;
    let code = child.map_or(0, |c| {
        c.exit
            .load(std::sync::atomic::Ordering::SeqCst)
            .clamp(0, 255) as u8
    });
    info!("stopped");
    Ok(code)
}

/// The cluster view's thread, when the configuration asks for one: the registrar of a worker with
/// `HEALTHD_REGISTER=on`, or the frontend's watcher. Neither is waited for: etcd may be down.
fn discovery(config: &Config, state: &Shared) -> Result<Views, String> {
    let Some(etcd) = &config.etcd else {
        return Ok(Views::default());
    };
    let members: Vec<String> = etcd.endpoints.iter().map(ToString::to_string).collect();
    let members = members.join(",");
    let failed = |e| format!("cannot start the etcd thread: {e}");
    match config.role {
        Role::Worker => {
            let registry = Arc::new(Mutex::new(Registry::default()));
            register::spawn(
                etcd,
                config.names.clone(),
                Arc::clone(state),
                Arc::clone(&registry),
            )
            .map_err(failed)?;
            info!(
                "etcd: registering ready endpoints as v1/instances/{}/{}/ENDPOINT/LEASE at {members} (lease ttl {}s)",
                config.names.namespace, config.names.component, etcd.lease_ttl
            );
            Ok(Views {
                registry: Some(registry),
                cluster: None,
            })
        }
        Role::Frontend => {
            let ttl = std::time::Duration::from_secs(u64::from(etcd.lease_ttl));
            let cluster = Arc::new(Mutex::new(Cluster::new(ttl, std::time::SystemTime::now())));
            watch::spawn(etcd, Arc::clone(&cluster)).map_err(failed)?;
            info!(
                "etcd: listing v1/instances/ (every namespace) from {members}; a list not confirmed for {}s is shown as unavailable",
                etcd.lease_ttl
            );
            Ok(Views {
                registry: None,
                cluster: Some(cluster),
            })
        }
    }
}

/// The handler the responder calls: routes a request against the shared state.
struct App {
    router: Router,
    state: Shared,
    counts: RequestCounts,
    views: Views,
}

impl Handler for App {
    fn handle(&mut self, req: &Request<'_>, body: &mut Vec<u8>) -> Head {
        let now = Instant::now();
        let (head, label) = {
            let state = source::lock(&self.state);
            self.router.respond(
                req.method,
                req.path,
                req.query,
                &state,
                &self.counts,
                &self.views,
                now,
                body,
            )
        };
        self.counts.add(label, head.status);
        head
    }
}
