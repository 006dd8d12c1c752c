//! `healthd serve`: wires configuration, state, sources and the responder together, in the order
//! that keeps the promise "fail before you serve; never die while serving": everything fallible
//! (routes, signal handlers, bind) happens before the `listening on` line.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::Config;
use crate::config::Role;
use crate::dialect::Head;
use crate::dialect::metrics::RequestCounts;
use crate::http::{self, Handler, Request};
use crate::log::{info, warning};
use crate::routes::Router;
use crate::source::{self, Shared};
use crate::state::State;

/// Why serving could not start; `main` turns it into exit code 2.
pub type StartError = String;

/// Runs the server until shutdown. `Ok(())` is a clean exit (also: disabled by configuration).
pub fn run(config: Config) -> Result<(), StartError> {
    let router = Router::new(&config).map_err(|e| e.to_string())?;
    let addr = match config.listen {
        Ok(addr) => addr,
        Err(why) => {
            info!("server disabled ({why}); exiting");
            return Ok(());
        }
    };
    let signals =
        source::signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let state: Shared = Arc::new(Mutex::new(State::new(
        Instant::now(),
        config.starting,
        config.required.clone(),
    )));
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
    source::signals::spawn(
        signals,
        Arc::clone(&state),
        server.stopper(),
        config.shutdown_grace,
        None,
    )
    .map_err(|e| format!("cannot start the signal thread: {e}"))?;

    info!(
        "health path {}, live path {}, also /ready and /metrics; starting {}; required endpoints [{}]; readiness from: SIGUSR1/SIGUSR2",
        config.health_path,
        config.live_path,
        config.starting.as_str(),
        config.required.join(", "),
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
    };
    server
        .run(&mut app)
        .map_err(|e| format!("cannot start the event loop: {e}"))?;
    info!("stopped");
    Ok(())
}

/// The handler the responder calls: routes a request against the shared state.
struct App {
    router: Router,
    state: Shared,
    counts: RequestCounts,
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
                now,
                body,
            )
        };
        self.counts.add(label, head.status);
        head
    }
}
