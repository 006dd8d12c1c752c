//! healthd: Dynamo-compatible health and liveness endpoints for any container.
//!
//! `main` is the table of contents: parse the command line, read the environment once, run the
//! command, pick the exit code. It is the only place that reads the process environment or exits.

mod cli;
mod config;
mod dialect;
mod http;
mod log;
mod routes;
mod serve;
mod source;
mod state;
mod supervise;

use std::collections::BTreeMap;
use std::process::ExitCode;

/// Exit codes, as documented in `--help` and the README.
mod exit {
    pub const SUCCESS: u8 = 0;
    #[allow(dead_code)]
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
}

fn main() -> ExitCode {
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
    ExitCode::from(run(&args, &env))
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

/// Prints the one-line error and returns the configuration exit code.
fn fail(e: impl std::fmt::Display) -> u8 {
    log::line("error: ", format_args!("{e}"));
    exit::USAGE
}
