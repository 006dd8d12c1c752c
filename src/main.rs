#![cfg_attr(not(test), no_main)]
//! healthd: Dynamo-compatible health and liveness endpoints for any container.
//!
//! `main` is the table of contents: parse the command line, read the environment once, run the
//! command, pick the exit code. It is the only place that reads the environment for settings
//! (`supervise` hands it on to a child unread), and every normal end returns through it; the two
//! exceptions are a second shutdown signal, which exits from the signal thread at once, and a
//! forked child whose `execve` failed.

mod cli;
mod client;
mod config;
mod dialect;
mod discovery;
#[cfg(test)]
mod fuzz;
mod http;
mod json;
mod log;
mod routes;
mod serve;
mod set;
mod source;
mod startup;
mod state;
mod supervise;

use std::collections::BTreeMap;

/// Exit codes, as documented in `--help` and the README.
mod exit {
    pub const SUCCESS: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
}

/// A C `main`: std's own start-up is left out to keep the static binary small; `startup` does
/// the part of it that healthd needs.
#[cfg_attr(not(test), unsafe(no_mangle))]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    startup::begin();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let code = run(&args, &env);
    startup::finish();
    libc::c_int::from(code)
}

fn run(args: &[String], env: &BTreeMap<String, String>) -> u8 {
    let command = match cli::parse(args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match command {
        cli::Command::Help => {
            print!("{}", cli::help());
            exit::SUCCESS
        }
        cli::Command::Version => {
            println!("healthd {}", env!("CARGO_PKG_VERSION"));
            exit::SUCCESS
        }
        cli::Command::Serve(flags) => serve(env, &flags, None),
        cli::Command::Run { flags, argv } => serve(env, &flags, Some(argv)),
        cli::Command::Set(args) => {
            let config = match client_config(env, &args) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let Some(path) = config.ready_file else {
                return fail(
                    "set needs a readiness file: set HEALTHD_READY_FILE or pass --ready-file PATH \
                     (the same file healthd serve watches)",
                );
            };
            let done = if args.heartbeat && args.words.is_empty() {
                set::touch(&path)
            } else {
                set::parse(&args.words).and_then(|changes| set::run(&path, &changes))
            };
            match done {
                Ok(()) => exit::SUCCESS,
                Err(e) => fail(e),
            }
        }
        cli::Command::Probe(args) => client(env, &args, client::PROBE_TIMEOUT, client::probe),
        cli::Command::Wait(args) => client(env, &args, client::WAIT_TIMEOUT, client::wait),
        cli::Command::Status(args) => client(env, &args, client::PROBE_TIMEOUT, client::status),
    }
}

/// `serve` and `run`: load the configuration, then serve (and supervise `child`).
fn serve(
    env: &BTreeMap<String, String>,
    flags: &[(String, String)],
    child: Option<Vec<String>>,
) -> u8 {
    let loaded = match config::load(env, flags) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    for w in &loaded.warnings {
        log::warning!("{w}");
    }
    match serve::run(loaded.config, child) {
        Ok(code) => code,
        Err(e) => {
            log::line("error: ", format_args!("{}", e.message));
            e.code
        }
    }
}

/// The configuration a client command sees: the same variables and flags as `serve`.
fn client_config(
    env: &BTreeMap<String, String>,
    args: &cli::ClientArgs,
) -> Result<config::Config, config::ConfigError> {
    let loaded = config::load(env, &args.flags)?;
    for w in &loaded.warnings {
        log::warning!("{w}");
    }
    Ok(loaded.config)
}

/// Runs `probe`, `wait` or `status`: 0 when healthy, 1 when not, 2 on usage errors.
fn client(
    env: &BTreeMap<String, String>,
    args: &cli::ClientArgs,
    default_timeout: std::time::Duration,
    command: fn(&client::Target, std::time::Duration) -> bool,
) -> u8 {
    let config = match client_config(env, args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let timeout = match &args.timeout {
        None => default_timeout,
        Some(v) => match config::parse_duration(v) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                return fail(config::ConfigError::new(
                    "--timeout",
                    v,
                    "expected a positive duration such as 500ms, 5s or 2m",
                ));
            }
        },
    };
    let target = match client::target(args.words.first().map(String::as_str), &config) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if command(&target, timeout) {
        exit::SUCCESS
    } else {
        exit::FAILURE
    }
}

/// Prints the one-line error and returns the configuration exit code.
fn fail(e: impl std::fmt::Display) -> u8 {
    log::line("error: ", format_args!("{e}"));
    exit::USAGE
}
