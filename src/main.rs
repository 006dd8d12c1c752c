//! healthd: Dynamo-compatible health and liveness endpoints for any container.
//!
//! `main` is the table of contents: parse the command line, read the environment once, run the
//! command, pick the exit code. It is the only place that reads the process environment or exits.

mod cli;
mod config;
mod dialect;
#[cfg(test)]
mod fuzz;
mod http;
mod log;
mod routes;
mod serve;
mod source;
mod state;

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
        cli::Command::Serve(flags) => {
            let loaded = match config::load(env, &flags) {
                Ok(l) => l,
                Err(e) => return fail(e),
            };
            for w in &loaded.warnings {
                log::warning!("{w}");
            }
            match serve::run(loaded.config) {
                Ok(()) => exit::SUCCESS,
                Err(e) => fail(e),
            }
        }
    }
}

/// Prints the one-line error and returns the configuration exit code.
fn fail(e: impl std::fmt::Display) -> u8 {
    log::line("error: ", format_args!("{e}"));
    exit::USAGE
}
