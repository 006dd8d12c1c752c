//! The state model: the process status, the endpoints, the required list and draining, and the
//! readiness cascade that turns them into one answer.
//!
//! Pure: no clock (time comes in as an argument), no files, no signals, no sockets. Sources (file
//! watcher, signals, CLI) describe a change as an [`Update`]; [`State::apply`] performs it and says
//! whether anything changed. Every dialect renders the same [`State`]; none keeps state of its own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Ready or not ready: Dynamo has exactly these two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    Ready,
    NotReady,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ready => "ready",
            Health::NotReady => "notready",
        }
    }

    pub fn parse(s: &str) -> Option<Health> {
        match s {
            "ready" => Some(Health::Ready),
            "notready" => Some(Health::NotReady),
            _ => None,
        }
    }

    pub fn is_ready(self) -> bool {
        self == Health::Ready
    }
}

/// Where a change came from, for logs and the `healthd_state_changes_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    File,
    Signal,
    Notify,
    Cli,
    Url,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::File,
        Source::Signal,
        Source::Notify,
        Source::Cli,
        Source::Url,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Signal => "signal",
            Source::Notify => "notify",
            Source::Cli => "cli",
            Source::Url => "url",
        }
    }
}

/// A change a source asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Set the process status.
    Process(Health),
    /// Declare one endpoint's state.
    Endpoint(String, Health),
    /// Replace everything declared (the readiness file is the whole truth each time it is read):
    /// `None` for the process status means "back to the starting status".
    Replace {
        process: Option<Health>,
        endpoints: BTreeMap<String, Health>,
    },
    /// Process and every known endpoint (required or declared) set to one value (SIGUSR1/SIGUSR2).
    All(Health),
    /// Shutdown began: report not ready from now on, whatever else is said.
    Drain,
    /// The host process showed progress at this instant (heartbeat watchdog).
    Heartbeat(Instant),
    /// The supervised child exited with this code (128+N for signal N): not live from now on.
    Exited(i32),
    /// A free-form status line from the host process (`STATUS=` on the notify socket).
    Status(String),
}

/// Whether the host process counts as alive and making progress.
/// A duration written as decimal seconds with a fixed number of decimals (rounded to the nearest),
/// using integers only: `Seconds(d, 3)` prints like `{:.3}` of `d.as_secs_f64()` would, without
/// pulling float formatting into the static binary.
pub struct Seconds(pub Duration, pub u32);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let places = self.1.min(9);
        let unit = 10u128.pow(9 - places);
        let scaled = (self.0.as_nanos() + unit / 2) / unit;
        let one = 10u128.pow(places);
        if places == 0 {
            write!(f, "{scaled}")
        } else {
            let width = places as usize;
            write!(f, "{}.{:0width$}", scaled / one, scaled % one)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Live,
    /// No heartbeat for this long (more than the configured timeout).
    Stale(Duration),
    /// The supervised child exited with this code.
    Exited(i32),
}

impl Liveness {
    pub fn is_live(self) -> bool {
        self == Liveness::Live
    }

    /// A short reason for verbose output and logs; empty when live.
    pub fn reason(self) -> String {
        match self {
            Liveness::Live => String::new(),
            Liveness::Stale(d) => format!("no heartbeat for {}s", Seconds(d, 1)),
            Liveness::Exited(code) => format!("child exited with code {code}"),
        }
    }
}

/// The whole health state of the process.
#[derive(Debug, Clone)]
pub struct State {
    started: Instant,
    starting: Health,
    process: Health,
    required: Vec<String>,
    declared: BTreeMap<String, Health>,
    draining: bool,
    changes: [u64; Source::ALL.len()],
    heartbeat_timeout: Option<Duration>,
    last_beat: Instant,
    exited: Option<i32>,
    status_text: Option<String>,
}

impl State {
    /// A new state at `started`, with the starting status and the sorted required list.
    pub fn new(started: Instant, starting: Health, required: Vec<String>) -> State {
        State {
            started,
            starting,
            process: starting,
            required,
            declared: BTreeMap::new(),
            draining: false,
            changes: [0; Source::ALL.len()],
            heartbeat_timeout: None,
            last_beat: started,
            exited: None,
            status_text: None,
        }
    }

    /// Turns the heartbeat watchdog on: without a heartbeat for `timeout`, not live.
    pub fn with_heartbeat(mut self, timeout: Option<Duration>) -> State {
        self.heartbeat_timeout = timeout;
        self
    }

    /// Applies `update`; returns true when the observable state changed.
    pub fn apply(&mut self, update: Update, source: Source) -> bool {
        match update {
            Update::Heartbeat(at) => {
                let was_stale = !self.liveness(at).is_live();
                self.last_beat = self.last_beat.max(at);
                let changed = was_stale && self.liveness(at).is_live();
                if changed {
                    self.changes[source as usize] += 1;
                }
                return changed;
            }
            Update::Exited(code) => {
                let changed = self.exited != Some(code);
                self.exited = Some(code);
                return changed;
            }
            Update::Status(text) => {
                let changed = self.status_text.as_deref() != Some(text.as_str());
                self.status_text = Some(text);
                return changed;
            }
            _ => {}
        }
        let before = (self.process, self.declared.clone(), self.draining);
        match update {
            Update::Process(h) => self.process = h,
            Update::Endpoint(name, h) => {
                self.declared.insert(name, h);
            }
            Update::Replace { process, endpoints } => {
                self.process = process.unwrap_or(self.starting);
                self.declared = endpoints;
            }
            Update::All(h) => {
                self.process = h;
                for name in &self.required {
                    self.declared.insert(name.clone(), h);
                }
                for v in self.declared.values_mut() {
                    *v = h;
                }
            }
            Update::Drain => self.draining = true,
            Update::Heartbeat(_) | Update::Exited(_) | Update::Status(_) => {}
        }
        let changed = before != (self.process, self.declared.clone(), self.draining);
        if changed {
            self.changes[source as usize] += 1;
        }
        changed
    }

    /// The overall readiness (dynamo.md section 3): every required endpoint ready if the list is
    /// non-empty, otherwise the process status; never ready while draining.
    pub fn health(&self) -> Health {
        let ready = !self.draining
            && if self.required.is_empty() {
                self.process.is_ready()
            } else {
                self.required
                    .iter()
                    .all(|n| self.endpoint_raw(n).is_ready())
            };
        if ready {
            Health::Ready
        } else {
            Health::NotReady
        }
    }

    /// The process status as set by the host (starting status until told otherwise).
    pub fn process(&self) -> Health {
        if self.draining {
            Health::NotReady
        } else {
            self.process
        }
    }

    /// Alive and making progress: the supervised child (if any) still runs and the heartbeat (if
    /// configured) is fresh at `now`.
    pub fn liveness(&self, now: Instant) -> Liveness {
        if let Some(code) = self.exited {
            return Liveness::Exited(code);
        }
        match self.heartbeat_timeout {
            Some(t) if now.saturating_duration_since(self.last_beat) > t => {
                Liveness::Stale(now.saturating_duration_since(self.last_beat))
            }
            _ => Liveness::Live,
        }
    }

    /// When the heartbeat goes stale if none arrives (None without a watchdog).
    pub fn heartbeat_deadline(&self) -> Option<Instant> {
        self.heartbeat_timeout.map(|t| self.last_beat + t)
    }

    /// Time since the last heartbeat (None without a watchdog).
    pub fn heartbeat_age(&self, now: Instant) -> Option<Duration> {
        self.heartbeat_timeout
            .map(|_| now.saturating_duration_since(self.last_beat))
    }

    pub fn draining(&self) -> bool {
        self.draining
    }

    pub fn required(&self) -> &[String] {
        &self.required
    }

    /// One endpoint: declared state, else its seeded (starting) state if required, else unknown.
    /// While draining every endpoint reads notready, as Dynamo marks them before it drains.
    pub fn endpoint(&self, name: &str) -> Option<Health> {
        let known = self.declared.contains_key(name) || self.required.iter().any(|r| r == name);
        known.then(|| {
            if self.draining {
                Health::NotReady
            } else {
                self.endpoint_raw(name)
            }
        })
    }

    fn endpoint_raw(&self, name: &str) -> Health {
        self.declared.get(name).copied().unwrap_or(self.starting)
    }

    /// Every known endpoint (required and declared), sorted by name, with its state.
    pub fn endpoints(&self) -> impl Iterator<Item = (&str, Health)> + '_ {
        let mut req = self.required.iter().map(String::as_str).peekable();
        let mut dec = self.declared.keys().map(String::as_str).peekable();
        std::iter::from_fn(move || {
            let name = match (req.peek(), dec.peek()) {
                (Some(a), Some(b)) if a == b => {
                    dec.next();
                    req.next()
                }
                (Some(a), Some(b)) if a < b => req.next(),
                (Some(_), Some(_)) | (None, Some(_)) => dec.next(),
                (Some(_), None) => req.next(),
                (None, None) => None,
            }?;
            Some((name, self.endpoint(name).unwrap_or(Health::NotReady)))
        })
    }

    /// Time since the state was created.
    pub fn uptime(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// How many changes each source made, in [`Source::ALL`] order.
    pub fn changes(&self) -> impl Iterator<Item = (Source, u64)> + '_ {
        Source::ALL.iter().map(|s| (*s, self.changes[*s as usize]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::{NotReady, Ready};

    #[test]
    fn seconds_round_like_float_formatting() {
        let cases = [
            (Duration::from_millis(1500), 1, "1.5"),
            (Duration::from_nanos(1_234_567_890), 6, "1.234568"),
            (Duration::from_nanos(999_999_999), 3, "1.000"),
            (Duration::from_micros(42), 3, "0.000"),
            (Duration::from_millis(7), 3, "0.007"),
            (Duration::from_secs(86_400), 1, "86400.0"),
            (Duration::from_millis(2600), 0, "3"),
        ];
        for (d, places, want) in cases {
            assert_eq!(Seconds(d, places).to_string(), want, "{d:?} to {places}");
        }
    }

    fn state(starting: Health, required: &[&str]) -> State {
        State::new(
            Instant::now(),
            starting,
            required.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn eps(s: &State) -> Vec<(String, Health)> {
        s.endpoints().map(|(n, h)| (n.to_string(), h)).collect()
    }

    #[test]
    fn cascade_table() {
        // (starting, required, updates, expected overall health)
        let ep = |n: &str, h| Update::Endpoint(n.to_string(), h);
        let cases: Vec<(Health, &[&str], Vec<Update>, Health)> = vec![
            (NotReady, &[], vec![], NotReady),
            (Ready, &[], vec![], Ready),
            (NotReady, &[], vec![Update::Process(Ready)], Ready),
            (Ready, &["generate"], vec![], Ready),
            (NotReady, &["generate"], vec![], NotReady),
            (
                NotReady,
                &["generate"],
                vec![Update::Process(Ready)],
                NotReady,
            ),
            (NotReady, &["generate"], vec![ep("generate", Ready)], Ready),
            (NotReady, &["a", "b"], vec![ep("a", Ready)], NotReady),
            (
                NotReady,
                &["a", "b"],
                vec![ep("a", Ready), ep("b", Ready)],
                Ready,
            ),
            (Ready, &["a"], vec![ep("a", NotReady)], NotReady),
            (NotReady, &[], vec![ep("x", Ready)], NotReady),
            (Ready, &[], vec![ep("x", NotReady)], Ready),
            (NotReady, &["a"], vec![Update::All(Ready)], Ready),
            (Ready, &["a"], vec![Update::All(NotReady)], NotReady),
            (Ready, &[], vec![Update::Drain], NotReady),
            (
                Ready,
                &["a"],
                vec![Update::Drain, Update::All(Ready)],
                NotReady,
            ),
            (
                NotReady,
                &["a"],
                vec![
                    ep("a", Ready),
                    Update::Replace {
                        process: None,
                        endpoints: BTreeMap::new(),
                    },
                ],
                NotReady,
            ),
        ];
        for (i, (starting, required, updates, want)) in cases.into_iter().enumerate() {
            let mut s = state(starting, required);
            for u in updates {
                s.apply(u, Source::Cli);
            }
            assert_eq!(s.health(), want, "case {i}");
        }
    }

    #[test]
    fn documented_example() {
        let mut s = state(NotReady, &["generate"]);
        assert_eq!(eps(&s), vec![("generate".into(), NotReady)]);
        for n in ["generate", "clear_kv_blocks", "load_metrics"] {
            s.apply(Update::Endpoint(n.into(), Ready), Source::File);
        }
        assert_eq!(s.health(), Ready);
        let names: Vec<_> = eps(&s).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["clear_kv_blocks", "generate", "load_metrics"]);
    }

    #[test]
    fn endpoints_merge_sorted_and_drain_marks_notready() {
        let mut s = state(Ready, &["b", "d"]);
        s.apply(Update::Endpoint("a".into(), Ready), Source::File);
        s.apply(Update::Endpoint("d".into(), NotReady), Source::File);
        s.apply(Update::Endpoint("e".into(), Ready), Source::File);
        assert_eq!(
            eps(&s),
            vec![
                ("a".into(), Ready),
                ("b".into(), Ready),
                ("d".into(), NotReady),
                ("e".into(), Ready)
            ]
        );
        assert_eq!(s.endpoint("zzz"), None);
        s.apply(Update::Drain, Source::Signal);
        assert!(eps(&s).iter().all(|(_, h)| *h == NotReady));
        assert_eq!(s.process(), NotReady);
    }

    #[test]
    fn heartbeat_expiry_and_recovery() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut s = state(Ready, &[]).with_heartbeat(Some(secs(10)));
        s.started = t0;
        s.last_beat = t0;
        let table = [
            (secs(0), Liveness::Live),
            (secs(10), Liveness::Live),
            (secs(11), Liveness::Stale(secs(11))),
        ];
        for (at, want) in table {
            assert_eq!(s.liveness(t0 + at), want, "{at:?}");
        }
        assert!(
            s.apply(Update::Heartbeat(t0 + secs(12)), Source::Notify),
            "recovery is a change"
        );
        assert!(
            !s.apply(Update::Heartbeat(t0 + secs(13)), Source::Notify),
            "fresh beats are not"
        );
        assert_eq!(s.liveness(t0 + secs(23)), Liveness::Live);
        assert_eq!(s.liveness(t0 + secs(24)), Liveness::Stale(secs(11)));
        assert_eq!(
            s.health(),
            Ready,
            "readiness does not depend on the heartbeat"
        );
        assert!(s.apply(Update::Exited(143), Source::Cli));
        assert_eq!(s.liveness(t0 + secs(13)), Liveness::Exited(143));
        assert_eq!(
            state(Ready, &[]).liveness(t0 + secs(1_000_000)),
            Liveness::Live
        );
    }

    #[test]
    fn status_text() {
        let mut s = state(Ready, &[]);
        assert!(s.apply(Update::Status("warming up".into()), Source::Notify));
        assert!(!s.apply(Update::Status("warming up".into()), Source::Notify));
        assert_eq!(s.status_text.as_deref(), Some("warming up"));
    }

    #[test]
    fn changes_are_counted_only_when_something_changed() {
        let mut s = state(NotReady, &[]);
        assert!(s.apply(Update::Process(Ready), Source::Signal));
        assert!(!s.apply(Update::Process(Ready), Source::Signal));
        assert!(s.apply(Update::Process(NotReady), Source::File));
        let counts: Vec<_> = s.changes().collect();
        assert_eq!(
            counts,
            vec![
                (Source::File, 1),
                (Source::Signal, 1),
                (Source::Notify, 0),
                (Source::Cli, 0),
                (Source::Url, 0)
            ]
        );
    }
}
