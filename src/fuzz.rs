//! Property tests (proptest) over everything that parses outside input: request heads
//! ([`http::codec::answer`]), the configuration ([`config::load`] and its parsers), the readiness
//! file ([`file::parse`] and `healthd set`'s [`file::edit`]) and the JSON that `healthd status`
//! and etcd's gateway answers are read with ([`json::parse`], held to serde_json's verdicts), the
//! etcd gateway's wire format ([`wire`]: watch lines, answers, instance keys, base64), and the DNS
//! answers, hosts file and resolv.conf of the name resolver ([`resolve::parse_answer`] and
//! friends). `cargo test`
//! runs a modest number of cases; a long run sets `PROPTEST_CASES` (see README, "Fuzzing").
//! Any input a run finds that breaks a property is kept below as a regression case.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use crate::config::{self, check_endpoint_name, parse_duration, parse_endpoint_list};
use crate::discovery::resolve::tests::{Act, reply};
use crate::discovery::resolve::{self, TYPE_A, TYPE_AAAA};
use crate::http::codec::{self, MAX_HEAD, Progress};
use crate::json::{self, Json};
use crate::source::file::{self, Declared};
use crate::state::Health;

// ---- request heads ----------------------------------------------------------------------------

// The handler and date of the codec's own tests: `/x` 200 `hi`, `/nc` 204, else 404.
use crate::http::codec::tests::{DATE, Echo};

fn run(data: &[u8], max_out: usize) -> (Progress, Vec<u8>) {
    let mut out = Vec::new();
    let p = codec::answer(
        data,
        &mut Echo(Vec::new()),
        DATE,
        &mut Vec::new(),
        &mut out,
        max_out,
    );
    (p, out)
}

/// The pieces of requests, good and bad, that inputs are built from (plus raw bytes).
const PIECES: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PRI",
    "G",
    " ",
    "  ",
    "/x",
    "/nc",
    "/x?q=1",
    "/",
    "*",
    "http://h:1/x",
    "/\u{e9}",
    "HTTP/1.1",
    "HTTP/1.0",
    "HTTP/2.0",
    "HTTP/1.",
    "\r\n",
    "\n",
    "\r",
    "\r\n\r\n",
    "\n\n",
    "Host: h",
    "Connection: close",
    "Connection: keep-alive",
    "Connection: Keep-Alive, close",
    "Content-Length: 0",
    "Content-Length: 5",
    "Content-Length: 1000000000000",
    "Content-Length: 99999999999999999999999",
    "Content-Length: -1",
    "Transfer-Encoding: chunked",
    ":",
    "X: ",
    "\t",
    "\0",
];

fn head_input() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => proptest::sample::select(PIECES).prop_map(|s| s.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..16),
        1 => (0usize..3000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ];
    proptest::collection::vec(piece, 0..48).prop_map(|v| v.concat())
}

/// A complete well-formed request, possibly asking to close.
fn good_request() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(&["GET", "HEAD"][..]),
        proptest::sample::select(&["/x", "/nc", "/y", "/x?a=b", "http://h/x"][..]),
        proptest::sample::select(&["\r\n", "\n"][..]),
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(m, p, eol, close)| {
            let conn = if close {
                "Connection: close"
            } else {
                "Host: h"
            };
            format!("{m} {p} HTTP/1.1{eol}{conn}{eol}{eol}").into_bytes()
        })
}

fn count_responses(out: &[u8]) -> usize {
    out.windows(9).filter(|w| w == b"HTTP/1.1 ").count()
}

/// Properties of one call: never panics, consumes at most what it got, one response per answered
/// request (plus at most one error answer, which closes), and a closing answer says so.
fn check_head_properties(data: &[u8]) -> Result<(), TestCaseError> {
    let (p, out) = run(data, usize::MAX);
    prop_assert!(p.consumed <= data.len());
    let n = count_responses(&out);
    prop_assert!(
        n == p.answered || (p.close && n == p.answered + 1),
        "{p:?} {n}"
    );
    // Every answer, error answers included, forbids caches to store it.
    let no_store = out
        .windows(25)
        .filter(|w| w == b"\r\ncache-control: no-store")
        .count();
    prop_assert_eq!(no_store, n);
    if p.close {
        prop_assert!(out.ends_with(b"hi") || out.ends_with(b"\r\n\r\n") || n > 0);
        let last = out.windows(9).rposition(|w| w == b"HTTP/1.1 ").unwrap();
        let last = &out[last..];
        prop_assert!(
            last.windows(19).any(|w| w == b"connection: close\r\n"),
            "closing answer without connection: close: {:?}",
            String::from_utf8_lossy(last)
        );
    } else {
        // What is left is an incomplete head, small enough to wait for.
        let rest = &data[p.consumed..];
        prop_assert!(
            rest.len() <= MAX_HEAD,
            "{} bytes left unanswered",
            rest.len()
        );
        let (again, out2) = run(rest, usize::MAX);
        prop_assert_eq!((again.answered, again.close, out2.len()), (0, false, 0));
    }
    // Output caps only delay answers: with a small cap, the same answers come in the same order.
    let (mut done, mut capped) = (0, Vec::new());
    loop {
        let mut out = Vec::new();
        let q = codec::answer(
            &data[done..],
            &mut Echo(Vec::new()),
            DATE,
            &mut Vec::new(),
            &mut out,
            64,
        );
        capped.extend_from_slice(&out);
        done += q.consumed;
        if q.close || q.answered == 0 {
            break;
        }
    }
    prop_assert_eq!(&capped, &out);
    Ok(())
}

proptest! {
    #[test]
    fn request_heads_hold_their_properties(data in head_input()) {
        check_head_properties(&data)?;
    }

    #[test]
    fn raw_bytes_hold_their_properties(data in proptest::collection::vec(any::<u8>(), 0..10_000)) {
        check_head_properties(&data)?;
    }

    /// Pipelined requests arriving in two reads (the loop carries the tail) are answered exactly
    /// as when they arrive at once.
    #[test]
    fn split_reads_answer_like_one_read(
        reqs in proptest::collection::vec(good_request(), 1..8),
        junk in head_input(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut data = [reqs.concat(), junk].concat();
        // Past MAX_HEAD, a cut may turn a later syntax error (400) into an early 431.
        data.truncate(MAX_HEAD);
        let (whole, whole_out) = run(&data, usize::MAX);
        let cut = cut.index(data.len() + 1);
        let (first, mut out) = run(&data[..cut], usize::MAX);
        if !first.close {
            let carried = [&data[first.consumed..cut], &data[cut..]].concat();
            let (second, out2) = run(&carried, usize::MAX);
            out.extend_from_slice(&out2);
            prop_assert_eq!(first.answered + second.answered, whole.answered);
            prop_assert_eq!(second.close, whole.close);
        }
        prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&whole_out));
    }
}

// ---- configuration ----------------------------------------------------------------------------

/// Every setting's variable (from the one table), plus near-misses that draw typo warnings.
fn vars() -> Vec<&'static str> {
    crate::config::SETTINGS
        .iter()
        .map(|s| s.var)
        .chain(["DYN_SYSTEM_PROT", "HEALTHD_X", "DYN_SYSTEM_"])
        .collect()
}

const VALUES: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "8081",
    "65535",
    "65536",
    "-9223372036854775808",
    "9223372036854775808",
    "1e3",
    "true",
    "false",
    "ready",
    "notready",
    "127.0.0.1",
    "[::1]",
    "::",
    "localhost",
    "[generate]",
    "[\"a\", 'b', c]",
    "[]",
    "[,]",
    "['']",
    "[\"a]",
    "/health",
    "/live",
    "/metrics",
    "/engine/x",
    "health",
    "/a b",
    "5s",
    "500ms",
    "1.5",
    "2m",
    "1h",
    "1e400",
    "ms",
    ".",
    "NaN",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(VALUES).prop_map(str::to_string),
        1 => any::<String>(),
        1 => "[\\[\\]\"', a-z0-9_./-]{0,24}",
    ]
}

fn endpoint_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,20}"
}

proptest! {
    /// Any environment and flags: `load` never panics, and what it accepts is valid.
    #[test]
    fn config_load_never_panics_and_accepts_only_valid(
        env in proptest::collection::btree_map(
            prop_oneof![proptest::sample::select(vars()).prop_map(str::to_string), "[A-Z_]{0,20}"],
            value(),
            0..8,
        ),
        flags in proptest::collection::vec(
            (proptest::sample::select(&["--port", "--host", "--health-path", "--live-path",
                "--shutdown-grace", "--use-endpoint-health-status", "--nope"][..]), value()),
            0..3,
        ),
    ) {
        let flags: Vec<(String, String)> =
            flags.into_iter().map(|(f, v)| (f.to_string(), v)).collect();
        let env: BTreeMap<String, String> = env;
        match config::load(&env, &flags) {
            Ok(l) => {
                let c = l.config;
                prop_assert!(c.health_path.starts_with('/') && c.live_path.starts_with('/'));
                prop_assert_ne!(&c.health_path, &c.live_path);
                let mut sorted = c.required.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(&sorted, &c.required);
                for name in &c.required {
                    prop_assert!(check_endpoint_name(name).is_ok());
                }
            }
            Err(e) => {
                let line = e.to_string();
                prop_assert!(!line.contains('\n'), "multi-line error: {line}");
                prop_assert!(line.contains(&e.name), "{line}");
            }
        }
    }

    /// Ports: every integer up to 65535 is accepted (negative = off), anything above refused.
    #[test]
    fn ports(p in prop_oneof![-100_000i64..100_000, any::<i64>()]) {
        let env = BTreeMap::from([("DYN_SYSTEM_PORT".to_string(), format!(" {p} "))]);
        match config::load(&env, &[]) {
            Ok(l) => {
                prop_assert!(p <= 65535);
                match l.config.listen {
                    Ok(addr) => prop_assert_eq!(i64::from(addr.port()), p),
                    Err(_) => prop_assert!(p < 0),
                }
            }
            Err(e) => {
                prop_assert!(p > 65535);
                prop_assert_eq!(e.name, "DYN_SYSTEM_PORT");
            }
        }
    }

    /// The array syntax: any list of valid names, quoted any way and spaced any way, parses to
    /// the sorted set of names; any other string never panics and never yields a bad name.
    #[test]
    fn endpoint_lists(
        names in proptest::collection::vec(
            (endpoint_name(), 0..3usize, " {0,2}"), 0..6),
        junk in any::<String>(),
    ) {
        let items: Vec<String> = names
            .iter()
            .map(|(n, q, sp)| {
                let q = ["", "\"", "'"][*q];
                format!("{sp}{q}{n}{q}{sp}")
            })
            .collect();
        let list = format!("[{}]", items.join(","));
        let mut want: Vec<String> = names.into_iter().map(|(n, _, _)| n).collect();
        want.sort();
        want.dedup();
        prop_assert_eq!(parse_endpoint_list(&list), Ok(want));
        if let Ok(got) = parse_endpoint_list(&junk) {
            for name in got {
                prop_assert!(check_endpoint_name(&name).is_ok());
            }
        }
    }

    /// Paths: accepted ones start with '/', are printable and carry no query or fragment.
    #[test]
    fn paths(v in prop_oneof![value(), "/[ -~]{0,300}"]) {
        let env = BTreeMap::from([("DYN_SYSTEM_HEALTH_PATH".to_string(), v.clone())]);
        if let Ok(l) = config::load(&env, &[]) {
            let p = l.config.health_path;
            prop_assert!(p.starts_with('/') && p.len() <= 256, "{p:?}");
            prop_assert!(p.bytes().all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#'));
        }
    }

    /// Durations: whole numbers with each unit are exact; any string never panics.
    #[test]
    fn durations(n in 0u64..1_000_000, unit in 0..5usize, junk in any::<String>()) {
        let (suffix, scale) = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("", 1000)][unit];
        prop_assert_eq!(
            parse_duration(&format!("{n}{suffix}")),
            Ok(Duration::from_millis(n * scale))
        );
        let _ = parse_duration(&junk);
    }
}

// ---- JSON read by `healthd status` ------------------------------------------------------------

/// Pieces of JSON documents, good and bad.
const JSON_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    "\n",
    "\"",
    "\"a\"",
    "\"status\"",
    "\\",
    "\\u",
    "\\n",
    "d83d",
    "de00",
    "dc00",
    "00e9",
    "0",
    "1",
    "-",
    ".",
    "e",
    "E+",
    "12345678901234567890",
    "1e400",
    "true",
    "tru",
    "null",
    "false",
    "\t",
    "\u{1}",
    "\u{e9}",
    "\u{1f600}",
];

/// Up to 40 of `pieces` (and now and then a few random bytes) joined: inputs for the text parsers.
fn joined(pieces: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => proptest::sample::select(pieces).prop_map(|s| s.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..6),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn json_document() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((any::<String>(), inner), 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Our tree in serde_json's terms (numbers through serde_json's own number parsing).
fn to_serde(v: &Json) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => serde_json::from_str(n).expect("a number the grammar accepted"),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(to_serde).collect()),
        Json::Object(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), to_serde(v)))
                .collect(),
        ),
    }
}

proptest! {
    /// Any bytes: accepted exactly when serde_json accepts them, as the same tree. (serde_json
    /// also refuses numbers beyond f64's range, which this parser keeps as text.)
    #[test]
    fn json_agrees_with_serde_json(input in joined(JSON_PIECES)) {
        let ours = json::parse(&input);
        match serde_json::from_slice::<serde_json::Value>(&input) {
            Ok(theirs) => prop_assert_eq!(to_serde(&ours.expect("serde_json accepted it")), theirs),
            Err(e) if e.to_string().contains("number out of range") => {}
            Err(e) => prop_assert!(ours.is_err(), "serde_json refused: {}", e),
        }
    }

    /// Any document serde_json writes, compact or pretty, reads as the tree serde_json reads
    /// (compared with serde_json's reading, not the original: its float parsing may differ from
    /// the written value in the last digit).
    #[test]
    fn json_reads_what_serde_json_writes(doc in json_document()) {
        for text in [serde_json::to_string(&doc).unwrap(), serde_json::to_string_pretty(&doc).unwrap()] {
            let theirs: serde_json::Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(to_serde(&json::parse(text.as_bytes()).unwrap()), theirs);
        }
    }

    /// What `Json::write` emits is what serde_json writes for the same tree (the frontend
    /// re-emits etcd's transport objects with it).
    #[test]
    fn json_writes_what_serde_json_writes(doc in json_document()) {
        let text = serde_json::to_string(&doc).unwrap();
        let mut ours = String::new();
        json::parse(text.as_bytes()).unwrap().write(&mut ours);
        prop_assert_eq!(ours, text);
    }

    /// Nesting: serde_json's depth limit is this parser's too.
    #[test]
    fn json_depth_limit_matches(depth in 100usize..140, open in prop_oneof![Just("["), Just("{\"k\":")]) {
        let close = if open == "[" { "]" } else { "}" };
        let text = format!("{}0{}", open.repeat(depth), close.repeat(depth));
        prop_assert_eq!(
            json::parse(text.as_bytes()).is_ok(),
            serde_json::from_str::<serde_json::Value>(&text).is_ok()
        );
    }
}

/// The optimal-string-alignment distance (a swap of neighbours is one edit), by the textbook
/// table: the reference that `config::one_edit_apart` must agree with.
fn osa_distance(a: &[char], b: &[char]) -> usize {
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

proptest! {
    /// The typo check's linear "one edit apart" agrees with the full distance table.
    #[test]
    fn one_edit_apart_matches_the_distance_table(a in "[ABé]{0,6}", b in "[ABé]{0,6}", known in "[A-Z_]{0,8}") {
        for (a, b) in [(a.as_str(), b.as_str()), (known.as_str(), b.as_str())] {
            let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
            prop_assert_eq!(config::one_edit_apart(&a, &b), osa_distance(&a, &b) == 1, "{:?} {:?}", a, b);
        }
    }
}

// ---- the readiness file -------------------------------------------------------------------------

/// Pieces of readiness files, good and bad.
const FILE_PIECES: &[&str] = &[
    "ready", "notready", "Ready", "READY", "gen", "a.b-c_1", "=", " ", "\t", "\n", "\r\n", "\r",
    "#", "# note", "=ready", "x=", "x==ready", "bad name", "\u{0}", "\u{feff}", "é", "\u{2028}",
];

fn health() -> impl Strategy<Value = Health> {
    prop_oneof![Just(Health::Ready), Just(Health::NotReady)]
}

/// One line of a valid readiness file and what it declares, if anything (`None` name: the
/// process status).
type FileLine = (String, Option<(Option<String>, Health)>);

/// A valid file's lines, padded with blanks, comments and spaces.
fn file_lines() -> impl Strategy<Value = Vec<FileLine>> {
    let line = prop_oneof![
        2 => (health(), " {0,2}", "[ \t]{0,2}").prop_map(|(h, a, b)| (format!("{a}{}{b}", h.as_str()), Some((None, h)))),
        4 => (endpoint_name(), health(), " {0,2}", " {0,2}").prop_map(|(n, h, a, b)| (format!("{n}{a}={b}{}", h.as_str()), Some((Some(n), h)))),
        1 => "( *#[^\n\r]{0,20})?".prop_map(|c| (c, None)),
    ];
    proptest::collection::vec(line, 0..12)
}

fn declared(lines: &[FileLine]) -> Declared {
    let mut out = Declared {
        process: Health::Ready,
        endpoints: BTreeMap::new(),
    };
    for (name, h) in lines.iter().filter_map(|(_, d)| d.as_ref()) {
        match name {
            None => out.process = *h,
            Some(n) => {
                out.endpoints.insert(n.clone(), *h);
            }
        }
    }
    out
}

proptest! {
    /// Any bytes: parsing never panics, and an error names a line that exists.
    #[test]
    fn readiness_file_never_panics(input in joined(FILE_PIECES)) {
        if let Err(e) = file::parse(&input) {
            let n: usize = e.strip_prefix("line ").and_then(|r| r.split(':').next()).and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("error without a line number: {e}"));
            prop_assert!(n >= 1 && n <= String::from_utf8_lossy(&input).lines().count(), "{}", e);
        }
    }

    /// A valid file (any order, blanks, comments, spaces, LF or CRLF) declares what its lines say,
    /// the later line winning.
    #[test]
    fn readiness_file_reads_what_it_says(lines in file_lines(), crlf in any::<bool>()) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let text: String = lines.iter().map(|(l, _)| format!("{l}{eol}")).collect();
        prop_assert_eq!(file::parse(text.as_bytes()), Ok(declared(&lines)));
    }

    /// `healthd set`'s edit of any file, even a garbled one, is a file the watcher accepts, and
    /// it declares the old (valid) lines with the updates applied on top.
    #[test]
    fn set_always_writes_a_readable_file(
        current in joined(FILE_PIECES),
        updates in proptest::collection::vec((proptest::option::of(endpoint_name()), health()), 0..6),
    ) {
        let current = String::from_utf8_lossy(&current).into_owned();
        let borrowed: Vec<(Option<&str>, Health)> = updates.iter().map(|(n, h)| (n.as_deref(), *h)).collect();
        let (written, _dropped) = file::edit(&current, &borrowed);
        let got = file::parse(written.as_bytes());
        prop_assert!(got.is_ok(), "edit wrote an unreadable file: {:?} -> {:?}", written, got);
        let mut want = file::parse(current.as_bytes()).unwrap_or_else(|_| {
            // Only the readable lines survive an edit.
            let kept: String = current.lines().filter(|l| file::parse_line(l).is_ok()).map(|l| format!("{l}\n")).collect();
            file::parse(kept.as_bytes()).unwrap()
        });
        for (name, h) in &updates {
            match name {
                None => want.process = *h,
                Some(n) => { want.endpoints.insert(n.clone(), *h); }
            }
        }
        prop_assert_eq!(got.unwrap(), want);
    }
}

// ---- the etcd gateway's wire format ----------------------------------------------------------

use crate::discovery::wire;

const WIRE_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\"result\"",
    "\"header\"",
    "\"revision\"",
    "\"3\"",
    "\"events\"",
    "\"kv\"",
    "\"key\"",
    "\"value\"",
    "\"type\"",
    "\"DELETE\"",
    "\"PUT\"",
    "\"created\"",
    "true",
    "false",
    "null",
    "\"compact_revision\"",
    "\"canceled\"",
    "\"error\"",
    "\"message\"",
    "\"TTL\"",
    "\"ID\"",
    "\"kvs\"",
    "\"more\"",
    "\"djEvaW5zdGFuY2VzLw==\"",
    "\"aw==\"",
    "\"!!\"",
    "1",
    "-1",
    "1e400",
    "18446744073709551616",
];

const INSTANCE_PIECES: &[&str] = &[
    "v1/instances/",
    "dynamo",
    "backend",
    "generate",
    "/",
    "ff",
    "10",
    "{",
    "}",
    ",",
    ":",
    "\"namespace\"",
    "\"component\"",
    "\"endpoint\"",
    "\"instance_id\"",
    "\"transport\"",
    "\"type\"",
    "\"Endpoint\"",
    "\"device_type\"",
    "\"dynamo\"",
    "\"backend\"",
    "\"generate\"",
    "255",
    "16",
    "-1",
    "1.0",
    "18446744073709551615",
    "{\"nats_tcp\":\"x\"}",
    "null",
];

proptest! {
    /// Whatever etcd (or something pretending to be it) sends, the readers answer without panicking.
    #[test]
    fn wire_readers_never_panic(input in joined(WIRE_PIECES)) {
        let _ = wire::watched(&input);
        if let Ok(doc) = wire::answer(&input) {
            let _ = wire::range_answer(&doc);
            let _ = wire::granted(&doc);
            let _ = wire::alive(&doc);
        }
    }

    /// An instance is accepted only when its key and value agree, and then lists the key's names.
    #[test]
    fn instances_agree_with_their_keys(key in joined(INSTANCE_PIECES), value in joined(INSTANCE_PIECES)) {
        if let Ok(i) = wire::instance(&key, &value) {
            let want = format!("v1/instances/{}/{}/{}/{:x}", i.namespace, i.component, i.endpoint, i.instance_id);
            prop_assert_eq!(want.as_bytes(), &key[..]);
        }
    }

    /// Base64 round-trips, and a string is accepted only when it is the encoding of its bytes.
    #[test]
    fn base64_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..64), text in "[A-Za-z0-9+/=]{0,12}") {
        prop_assert_eq!(wire::unbase64(&wire::base64(&bytes)), Some(bytes));
        if let Some(b) = wire::unbase64(&text) {
            prop_assert_eq!(wire::base64(&b), text);
        }
    }
}

// ---- DNS answers, the hosts file and resolv.conf ------------------------------------------------

const NAME_PIECES: &[&str] = &[
    "nameserver",
    "search",
    "domain",
    "options",
    "ndots:",
    "timeout:",
    "attempts:",
    "5",
    "99",
    "4294967296",
    "10.96.0.10",
    "::1",
    "fe80::1%eth0",
    "etcd-0",
    "etcd-0.etcd",
    ".",
    " ",
    "\t",
    "\n",
    "\r\n",
    "#",
    ";",
    ":",
];

/// A valid reply to the question (`0x1234`, `etcd.ns`, `qtype`): addresses, a CNAME, or an
/// rcode; with its type, and the rcode and addresses it carries.
fn valid_answer() -> impl Strategy<Value = (Vec<u8>, u16, u8, Vec<std::net::IpAddr>)> {
    let addrs = proptest::collection::vec(any::<[u8; 4]>(), 0..4).prop_map(|v| {
        let mut ips: Vec<std::net::IpAddr> = v.iter().map(|b| (*b).into()).collect();
        ips.push("fd00::1".parse().unwrap());
        ips
    });
    let act = prop_oneof![
        addrs.clone().prop_map(Act::Records),
        addrs.prop_map(|a| Act::Cname("etcd-0.etcd.ns", a)),
        (0u8..16).prop_map(Act::Rcode),
    ];
    (act, proptest::sample::select(&[TYPE_A, TYPE_AAAA][..])).prop_map(|(act, qtype)| {
        let q = resolve::build_query(0x1234, "etcd.ns", qtype).unwrap();
        let (rcode, addrs) = match &act {
            Act::Records(a) | Act::Cname(_, a) => (0, a.clone()),
            Act::Rcode(r) => (*r, Vec::new()),
            Act::Silent => unreachable!(),
        };
        let addrs = addrs
            .into_iter()
            .filter(|ip| ip.is_ipv4() == (qtype == TYPE_A))
            .collect();
        (reply(&q, &act).unwrap(), qtype, rcode, addrs)
    })
}

proptest! {
    #[test]
    fn dns_answer_never_panics_on_raw_bytes(
        mut p in proptest::collection::vec(any::<u8>(), 0..600),
        ours in any::<bool>(),
        qtype in proptest::sample::select(&[TYPE_A, TYPE_AAAA][..]),
    ) {
        if ours && p.len() >= 6 {
            // Our id, a reply, one question: past the header checks into the names.
            p[..6].copy_from_slice(&[0x12, 0x34, 0x81, 0x80, 0, 1]);
        }
        let _ = resolve::parse_answer(&p, 0x1234, "etcd.ns", qtype);
    }

    /// Any valid reply, with a few bytes changed and maybe cut short: no panic, and never more
    /// addresses than the packet has room for.
    #[test]
    fn dns_answer_never_panics_on_mutated_answers(
        (mut p, qtype, _, _) in valid_answer(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        for (at, byte) in edits {
            let at = at.index(p.len());
            p[at] = byte;
        }
        if let Some(cut) = cut {
            p.truncate(cut.index(p.len() + 1));
        }
        if let Ok(a) = resolve::parse_answer(&p, 0x1234, "etcd.ns", qtype) {
            prop_assert!(a.addrs.len() * 4 <= p.len());
        }
    }

    /// What a server writes is read back: the addresses of the asked type, in order.
    #[test]
    fn dns_answer_reads_what_a_server_writes((p, qtype, rcode, addrs) in valid_answer()) {
        let a = resolve::parse_answer(&p, 0x1234, "etcd.ns", qtype).unwrap();
        prop_assert_eq!((a.rcode, a.truncated, a.addrs), (rcode, false, addrs));
    }

    #[test]
    fn resolver_files_never_panic(input in joined(NAME_PIECES), name in "[a-z.-]{0,12}") {
        let text = String::from_utf8_lossy(&input);
        let c = resolve::parse_resolv_conf(&text);
        prop_assert!(c.servers.len() <= 3 && c.ndots <= 15);
        prop_assert!((1..=5).contains(&c.timeout) && (1..=5).contains(&c.attempts));
        let _ = resolve::hosts_lookup(&text, &name);
        let names = resolve::candidates(&name, &c.search, c.ndots);
        prop_assert!(names.len() <= c.search.len() + 1);
    }
}
