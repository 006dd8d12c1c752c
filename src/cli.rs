//! The command line: argv in, a [`Command`] out, plus `--help` and `--version` text. Pure: the
//! arguments come in as strings; nothing here reads the environment or exits.

use crate::config::SETTINGS;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `healthd [serve] [--flag value ...]`: the flags as `(flag, value)` pairs.
    Serve(Vec<(String, String)>),
    /// `healthd run [--flag value ...] [--] CMD [ARGS...]`: serve and supervise CMD.
    Run {
        flags: Vec<(String, String)>,
        argv: Vec<String>,
    },
    Help,
    Version,
}

/// A usage error: one line for the operator (exit 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; see healthd --help", self.0)
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, UsageError> {
    let (sub, rest) = match args.first().map(String::as_str) {
        None => ("serve", &args[..0]),
        Some(a) if a.starts_with('-') => ("serve", args),
        Some(a) => (a, &args[1..]),
    };
    // For `run`, only the arguments before the child's command belong to healthd.
    let own = match sub {
        "run" => {
            &rest[..rest
                .iter()
                .position(|a| !a.starts_with('-'))
                .unwrap_or(rest.len())]
        }
        _ => rest,
    };
    if own.iter().any(|a| a == "-h" || a == "--help") || sub == "help" {
        return Ok(Command::Help);
    }
    if own.iter().any(|a| a == "-V" || a == "--version") || sub == "version" {
        return Ok(Command::Version);
    }
    match sub {
        "serve" => parse_flags(rest).map(Command::Serve),
        "run" => parse_run(rest),
        other => Err(UsageError(format!(
            "unknown command {other:?} (expected serve or run)"
        ))),
    }
}

/// `[--flag value ...] [--] CMD [ARGS...]`: flags up to `--` or the first word that is not a flag.
fn parse_run(args: &[String]) -> Result<Command, UsageError> {
    let mut i = 0;
    let mut flag_args = Vec::new();
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with("--") {
            break;
        }
        flag_args.push(a.clone());
        if !a.contains('=')
            && let Some(v) = args.get(i + 1)
        {
            flag_args.push(v.clone());
            i += 1;
        }
        i += 1;
    }
    let argv = args[i..].to_vec();
    if argv.is_empty() {
        return Err(UsageError(
            "healthd run needs a command to run, e.g. healthd run -- python app.py".into(),
        ));
    }
    let flags = parse_flags(&flag_args)?;
    Ok(Command::Run { flags, argv })
}

/// `--name value` or `--name=value`, each a known serve flag.
fn parse_flags(args: &[String]) -> Result<Vec<(String, String)>, UsageError> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        if !name.starts_with("--") || !SETTINGS.iter().any(|s| s.flag == name) {
            return Err(UsageError(format!("unknown argument {arg:?}")));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| UsageError(format!("{name} needs a value")))?,
        };
        out.push((name.to_string(), value));
    }
    Ok(out)
}

/// `healthd --help`: commands, then every setting with its variable, flag and default.
pub fn help() -> String {
    let mut s = format!(
        "healthd {}: Dynamo-compatible health and liveness endpoints for any container\n\n\
         USAGE:\n    healthd [serve] [FLAGS]     serve the health endpoints (the default)\n\
         \x20   healthd run [FLAGS] [--] CMD [ARGS...]\n\
         \x20                               serve, and supervise CMD: exports NOTIFY_SOCKET, forwards\n\
         \x20                               SIGTERM/SIGINT/SIGHUP/SIGQUIT, exits with its code\n\
         \x20   healthd --help | --version\n\n\
         SETTINGS (a flag wins over its variable; an empty value counts as unset):\n",
        env!("CARGO_PKG_VERSION")
    );
    for set in SETTINGS {
        s.push_str(&format!(
            "    {:<38} {:<28} default {}\n        {}\n",
            set.var, set.flag, set.default, set.help
        ));
    }
    s.push_str(
        "\nEXIT CODES:\n    0  success (also: server disabled by configuration)\n\
         \x20   1  not ready, probe failed or timed out\n\
         \x20   2  bad flag or variable, or the address could not be bound\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str]) -> Result<Command, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&args).map_err(|e| e.to_string())
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn table() {
        assert_eq!(check(&[]), Ok(Command::Serve(vec![])));
        assert_eq!(check(&["serve"]), Ok(Command::Serve(vec![])));
        assert_eq!(
            check(&["--port", "0", "--host=::1"]),
            Ok(Command::Serve(vec![
                pair("--port", "0"),
                pair("--host", "::1")
            ]))
        );
        assert_eq!(check(&["serve", "--help"]), Ok(Command::Help));
        assert_eq!(check(&["-h"]), Ok(Command::Help));
        assert_eq!(check(&["--version"]), Ok(Command::Version));
        assert_eq!(
            check(&["--port"]),
            Err("--port needs a value; see healthd --help".to_string())
        );
        assert_eq!(
            check(&["--bogus", "1"]),
            Err("unknown argument \"--bogus\"; see healthd --help".to_string())
        );
        assert_eq!(
            check(&["frobnicate"]),
            Err(
                "unknown command \"frobnicate\" (expected serve or run); see healthd --help"
                    .to_string()
            )
        );
        let run = |flags: Vec<(String, String)>, argv: &[&str]| {
            Ok(Command::Run {
                flags,
                argv: argv.iter().map(|s| s.to_string()).collect(),
            })
        };
        assert_eq!(check(&["run", "sleep", "1"]), run(vec![], &["sleep", "1"]));
        assert_eq!(
            check(&["run", "--port", "0", "--", "app", "--help"]),
            run(vec![pair("--port", "0")], &["app", "--help"])
        );
        assert_eq!(
            check(&["run", "--live=shallow", "app", "-x"]),
            run(vec![pair("--live", "shallow")], &["app", "-x"])
        );
        assert!(check(&["run"]).is_err());
        assert!(check(&["run", "--"]).is_err());
    }

    #[test]
    fn help_lists_every_setting() {
        let h = help();
        for s in SETTINGS {
            assert!(h.contains(s.var) && h.contains(s.flag), "{}", s.var);
        }
    }
}
