//! The frontend's cluster view (pure): every instance registered under `v1/instances/`, as the
//! watcher last confirmed it, and whether that confirmation is recent enough to be believed.
//!
//! The watcher (`watch.rs`) feeds it a range, then watch events, then confirmations; the frontend
//! dialect renders it. Time comes in as arguments. A key that does not parse is left out and
//! counted, and never hides the others; each bad key is logged once (the caller logs what
//! [`Cluster::replace`] and [`Cluster::apply`] return).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use super::wire::{self, Event, Instance};

/// The cached list and its freshness.
#[derive(Debug)]
pub struct Cluster {
    /// Every key under the prefix: its instance, or `None` when it does not parse (kept, so a
    /// repeated put of the same bad key is not logged or counted again).
    keys: BTreeMap<Vec<u8>, Option<Instance>>,
    /// How many of `keys` are instances.
    listed: usize,
    /// Every change up to this revision is in `keys` (the range's revision, then the events').
    seen: u64,
    skipped_total: u64,
    /// The view is believed for this long after a confirmation (the lease TTL).
    ttl: Duration,
    /// The last confirmation: when, by the monotonic clock and by the wall clock.
    confirmed: Option<(Instant, SystemTime)>,
    /// When healthd started listing, for "unavailable since" before any confirmation.
    started: SystemTime,
    connected: bool,
    /// Why the last attempt failed, for the `/health` message and logs.
    reason: String,
    /// The healthy `/health` body of the current list, rendered once per change (the frontend
    /// dialect fills it; every change of the list empties it).
    pub rendered: Option<Vec<u8>>,
}

impl Cluster {
    pub fn new(ttl: Duration, started: SystemTime) -> Cluster {
        Cluster {
            keys: BTreeMap::new(),
            listed: 0,
            seen: 0,
            skipped_total: 0,
            ttl,
            confirmed: None,
            started,
            connected: false,
            reason: "not connected to etcd yet".into(),
            rendered: None,
        }
    }

    /// Replaces the list with a full range at `revision`; returns one line per newly skipped key.
    pub fn replace(&mut self, kvs: Vec<(Vec<u8>, Vec<u8>)>, revision: u64) -> Vec<String> {
        let before = std::mem::take(&mut self.keys);
        self.seen = revision;
        self.listed = 0;
        self.rendered = None;
        let mut lines = Vec::new();
        for (k, v) in kvs {
            let was_bad = matches!(before.get(&k), Some(None));
            lines.extend(self.put(k, &v, was_bad));
        }
        lines
    }

    /// Applies watch events in order (`latest`: their highest revision); returns one line per
    /// newly skipped key.
    pub fn apply(&mut self, events: Vec<Event>, latest: u64) -> Vec<String> {
        self.rendered = None;
        self.seen = self.seen.max(latest);
        let mut lines = Vec::new();
        for (k, v) in events {
            match v {
                Some(v) => {
                    let was_bad = matches!(self.keys.get(&k), Some(None));
                    lines.extend(self.put(k, &v, was_bad));
                }
                None => {
                    if let Some(Some(_)) = self.keys.remove(&k) {
                        self.listed -= 1;
                    }
                }
            }
        }
        lines
    }

    /// Stores one key; the line when it newly does not parse.
    fn put(&mut self, key: Vec<u8>, value: &[u8], was_bad: bool) -> Option<String> {
        let (entry, line) = match wire::instance(&key, value) {
            Ok(i) => (Some(i), None),
            Err(why) => (None, (!was_bad).then_some(why)),
        };
        if line.is_some() {
            self.skipped_total += 1;
        }
        self.listed += usize::from(entry.is_some());
        if let Some(Some(_)) = self.keys.insert(key, entry) {
            self.listed -= 1;
        }
        line
    }

    /// Whether etcd's own count of the prefix and its newest change (`latest`, a `mod_revision`)
    /// agree with the list: a watch that stopped delivering shows up here.
    pub fn agrees(&self, count: u64, latest: u64) -> bool {
        count == self.keys.len() as u64 && latest <= self.seen
    }

    /// etcd confirmed the view at `now`.
    pub fn confirm(&mut self, now: Instant, wall: SystemTime) {
        self.confirmed = Some((now, wall));
        self.connected = true;
    }

    /// The watch or a confirmation failed; returns true when this is news (for one log line).
    pub fn broken(&mut self, reason: String) -> bool {
        let news = self.connected;
        self.connected = false;
        self.reason = reason;
        news
    }

    /// Whether the list may be shown: confirmed within one TTL.
    pub fn in_sync(&self, now: Instant) -> bool {
        self.confirmed
            .is_some_and(|(at, _)| now.saturating_duration_since(at) <= self.ttl)
    }

    /// Since when the view is not confirmed (the last confirmation, or the start), and why.
    pub fn unavailable_since(&self) -> (SystemTime, &str) {
        let since = self.confirmed.map_or(self.started, |(_, wall)| wall);
        let reason = if self.connected {
            "etcd has not confirmed the list"
        } else {
            &self.reason
        };
        (since, reason)
    }

    /// The instances sorted by namespace, component, endpoint and id.
    pub fn sorted(&self) -> Vec<&Instance> {
        let mut all: Vec<&Instance> = self.keys.values().flatten().collect();
        all.sort_unstable();
        all
    }

    pub fn connected(&self) -> bool {
        self.connected
    }

    pub fn len(&self) -> usize {
        self.listed
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped_total
    }

    /// Time since the last confirmation, if there was one.
    pub fn sync_age(&self, now: Instant) -> Option<Duration> {
        self.confirmed
            .map(|(at, _)| now.saturating_duration_since(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(ep: &str, id: u64) -> (Vec<u8>, Vec<u8>) {
        (
            wire::key("dynamo", "backend", ep, id).into_bytes(),
            wire::value("dynamo", "backend", ep, id).into_bytes(),
        )
    }

    #[test]
    fn lists_sorted_skips_bad_keys_once_and_goes_stale() {
        let t0 = Instant::now();
        let mut c = Cluster::new(Duration::from_secs(10), SystemTime::UNIX_EPOCH);
        assert!(!c.in_sync(t0));
        let bad = (b"v1/instances/x".to_vec(), b"{}".to_vec());
        let lines = c.replace(
            vec![kv("generate", 0x100), kv("generate", 0xff), bad.clone()],
            7,
        );
        assert!(c.agrees(3, 7) && !c.agrees(2, 7) && !c.agrees(3, 8));
        assert_eq!(lines.len(), 1);
        c.confirm(t0, SystemTime::UNIX_EPOCH);
        assert!(c.in_sync(t0 + Duration::from_secs(10)));
        assert!(!c.in_sync(t0 + Duration::from_secs(11)));
        let ids: Vec<u64> = c.sorted().iter().map(|i| i.instance_id).collect();
        assert_eq!(ids, vec![0xff, 0x100]);
        // The same bad key again is not news; a new one is.
        assert!(
            c.apply(vec![(bad.0.clone(), Some(bad.1.clone()))], 8)
                .is_empty()
        );
        assert_eq!(c.skipped_total(), 1);
        let (k, _) = kv("clear", 1);
        assert_eq!(
            c.apply(vec![(k.clone(), Some(b"nope".to_vec()))], 9).len(),
            1
        );
        assert_eq!((c.len(), c.skipped_total()), (2, 2));
        // A fixed value replaces the bad one; deletes remove.
        let (k2, v2) = kv("clear", 1);
        assert!(c.apply(vec![(k2, Some(v2))], 10).is_empty());
        assert_eq!(c.len(), 3);
        c.apply(vec![(k, None), (kv("generate", 0xff).0, None)], 11);
        assert!(c.agrees(2, 11));
        assert_eq!(c.len(), 1);
        assert!(c.broken("etcd down".into()));
        assert!(!c.broken("still down".into()));
        assert_eq!(
            c.unavailable_since(),
            (SystemTime::UNIX_EPOCH, "still down")
        );
    }
}
