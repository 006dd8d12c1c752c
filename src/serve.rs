//! `healthd serve`: wires configuration, state, sources and the responder together, in the order
//! that keeps the promise "fail before you serve; never die while serving": everything fallible
//! (routes, signal handlers, the first read of the readiness file, bind) happens before the `listening on` line.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::Config;
use crate::dialect::Head;
use crate::dialect::metrics::RequestCounts;
use crate::http::{self, Handler, Request};
use crate::log::info;
use crate::routes::Router;
use crate::source::file::{self, FileSource};
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
    // The first read of the readiness file is part of "fail before you serve".
    let file = match &config.ready_file {
        Some(path) => Some(FileSource::start(path.clone(), Arc::clone(&state))?),
        None => None,
    };
    let server = http::Server::bind(addr, http::Limits::default()).map_err(|e| {
        format!("cannot listen on {addr}: {e} (set DYN_SYSTEM_PORT or --port to a free port, or 0 for any)")
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
    source::signals::spawn(
        signals,
        Arc::clone(&state),
        server.stopper(),
        config.shutdown_grace,
        reload,
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
        "health path {}, live path {}, also /ready and /metrics; starting {}; required endpoints [{}]; readiness from: {from}",
        config.health_path,
        config.live_path,
        config.starting.as_str(),
        config.required.join(", "),
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
            self.router
                .respond(req.method, req.path, &state, &self.counts, now, body)
        };
        self.counts.add(label, head.status);
        head
    }
}
