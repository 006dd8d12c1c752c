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
    /// `healthd set STATE | NAME STATE ...`: edit the readiness file.
    Set(ClientArgs),
    /// `healthd probe [PATH|URL] [--timeout DUR]`: one GET, exit 0 on 2xx/3xx.
    Probe(ClientArgs),
    /// `healthd wait [PATH|URL] [--timeout DUR]`: probe until it succeeds or the time is up.
    Wait(ClientArgs),
    /// `healthd status [PATH|URL] [--timeout DUR]`: a human-readable view of a running healthd.
    Status(ClientArgs),
    Help,
    Version,
}

/// Arguments of the client commands: positional words, serve flags (they locate the server or the
/// readiness file the same way `serve` does) and `--timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientArgs {
    pub words: Vec<String>,
    pub flags: Vec<(String, String)>,
    pub timeout: Option<String>,
    /// `set --heartbeat`: show progress (touch the readiness file).
    pub heartbeat: bool,
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
        "set" => parse_client(rest, false, usize::MAX).map(Command::Set),
        "probe" => parse_client(rest, true, 1).map(Command::Probe),
        "wait" => parse_client(rest, true, 1).map(Command::Wait),
        "status" => parse_client(rest, true, 1).map(Command::Status),
        other => Err(UsageError(format!(
            "unknown command {other:?} (expected serve, run, set, probe, wait or status)"
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

/// Words, serve flags and (if `timeout`) `--timeout`; at most `max_words` words.
fn parse_client(
    args: &[String],
    timeout: bool,
    max_words: usize,
) -> Result<ClientArgs, UsageError> {
    let mut out = ClientArgs::default();
    let mut flags = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if !arg.starts_with("--") {
            if out.words.len() == max_words {
                return Err(UsageError(format!("unexpected argument {arg:?}")));
            }
            out.words.push(arg.clone());
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| UsageError(format!("{name} needs a value")))
        };
        if !timeout && arg == "--heartbeat" {
            out.heartbeat = true;
        } else if timeout && name == "--timeout" {
            out.timeout = Some(value()?);
        } else if SETTINGS.iter().any(|s| s.flag == name) {
            flags.push((name.to_string(), value()?));
        } else {
            return Err(UsageError(format!("unknown argument {arg:?}")));
        }
    }
    out.flags = flags;
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
         \x20   healthd set ready|notready  set the process status in the readiness file\n\
         \x20   healthd set NAME STATE ...  declare endpoints ready or notready in the readiness file\n\
         \x20   healthd set --heartbeat     show progress: touch the readiness file (HEALTHD_HEARTBEAT_TIMEOUT)\n\
         \x20   healthd probe [PATH|URL]    one GET of the health path; exit 0 on 200..399 (--timeout, default 2s)\n\
         \x20   healthd wait [PATH|URL]     probe every 100ms until healthy (--timeout, default 60s)\n\
         \x20   healthd status [PATH|URL]   show status, endpoints and uptime of a running healthd\n\
         \x20   healthd --help | --version\n\n\
         The client commands read the same variables and flags as serve (port, host, paths, ready file);\n\
         PATH is a path on 127.0.0.1:$DYN_SYSTEM_PORT, URL is http://IP[:PORT][/PATH].\n\n\
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
            Err("unknown command \"frobnicate\" (expected serve, run, set, probe, wait or status); see healthd --help".to_string())
        );
        let client = |words: &[&str], flags: &[(&str, &str)], timeout: Option<&str>| ClientArgs {
            words: words.iter().map(|s| s.to_string()).collect(),
            flags: flags.iter().map(|(a, b)| pair(a, b)).collect(),
            timeout: timeout.map(str::to_string),
            heartbeat: false,
        };
        assert_eq!(
            check(&["set", "a", "ready", "--ready-file", "/r", "b", "notready"]),
            Ok(Command::Set(client(
                &["a", "ready", "b", "notready"],
                &[("--ready-file", "/r")],
                None
            )))
        );
        assert_eq!(
            check(&["probe", "/live", "--timeout=3s", "--port", "9"]),
            Ok(Command::Probe(client(
                &["/live"],
                &[("--port", "9")],
                Some("3s")
            )))
        );
        assert_eq!(check(&["wait"]), Ok(Command::Wait(client(&[], &[], None))));
        assert_eq!(
            check(&["set", "--heartbeat"]),
            Ok(Command::Set(ClientArgs {
                heartbeat: true,
                ..client(&[], &[], None)
            }))
        );
        assert_eq!(
            check(&["status"]),
            Ok(Command::Status(client(&[], &[], None)))
        );
        assert_eq!(
            check(&["probe", "/a", "/b"]),
            Err("unexpected argument \"/b\"; see healthd --help".to_string())
        );
        assert_eq!(
            check(&["set", "ready", "--timeout", "1s"]),
            Err("unknown argument \"--timeout\"; see healthd --help".to_string())
        );
        assert_eq!(
            check(&["wait", "--timeout"]),
            Err("--timeout needs a value; see healthd --help".to_string())
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
