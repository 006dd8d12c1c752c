//! The frontend's list (`HEALTHD_ROLE=frontend` with `ETCD_ENDPOINTS`): range `v1/instances/` once,
//! then watch from the next revision, publishing into the shared [`Cluster`] that `/health`
//! renders; `/health` itself never waits on etcd.
//!
//! There is no polling of the list. While the stream is quiet, every TTL/3 one small linearizable
//! range on the watched member (the prefix's count and its newest key) confirms that the member
//! still serves with a quorum (a hung or partitioned member fails it within the 1 s deadline) and
//! that the list agrees with etcd (a watch that stopped delivering is caught and ranged again). A broken stream or a failed
//! confirmation moves on to the next member, ranges again and resumes; a compacted revision
//! ranges again. A view that etcd has not confirmed for longer than the TTL is not shown.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::cluster::Cluster;
use super::gateway::{self, Gateway};
use super::wire::{self, Watched, WireError};
use super::{Backoff, lock};
use crate::config::Etcd;
use crate::log::{info, warning};

/// Keys per range page: bounds one answer (and the memory to read it) at any cluster size.
const PAGE: u32 = 500;
/// How soon a confirmation that disagreed with the list is repeated.
const SECOND_LOOK: Duration = Duration::from_millis(200);

/// Starts the watcher thread.
pub fn spawn(etcd: &Etcd, cluster: Arc<Mutex<Cluster>>) -> std::io::Result<()> {
    let mut w = Watcher {
        gw: Gateway::new(etcd),
        check_every: Duration::from_millis(u64::from(etcd.lease_ttl) * 1000 / 3),
        cluster,
    };
    crate::source::thread::detach("etcd-watch", move || w.run())
}

struct Watcher {
    gw: Gateway,
    check_every: Duration,
    cluster: Arc<Mutex<Cluster>>,
}

impl Watcher {
    fn run(&mut self) {
        let mut backoff = Backoff::new();
        let mut said_stale = false;
        loop {
            let began = Instant::now();
            let e = self.session();
            // A session that held for a confirmation interval was healthy: start the backoff
            // over. One that ends at once (a member that accepts watches and drops them) keeps
            // doubling it, so healthd does not range a misbehaving etcd ten times a second.
            if began.elapsed() >= self.check_every {
                backoff.reset();
            }
            let (news, stale) = {
                let mut c = lock(&self.cluster);
                (c.broken(e.0.clone()), !c.in_sync(Instant::now()))
            };
            if news {
                said_stale = false;
                warning!("etcd: the instance list is not in sync ({e}); trying the next member");
            }
            if stale && !said_stale {
                said_stale = true;
                warning!(
                    "etcd: the instance list is older than the lease TTL; /health says discovery is unavailable until etcd answers ({e})"
                );
            }
            self.gw.next_member();
            if !e.0.contains("compacted") {
                std::thread::sleep(backoff.next());
            }
        }
    }

    /// Range, then follow the watch until something breaks; returns why.
    fn session(&mut self) -> WireError {
        let revision = match self.range() {
            Ok(r) => r,
            Err(e) => return e,
        };
        let mut stream = match self.gw.watch(revision + 1) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let mut check_at = Instant::now() + self.check_every;
        let mut suspect = false;
        loop {
            let line = match stream.next_line(check_at) {
                Ok(l) => l,
                Err(e) => return e,
            };
            let Some(line) = line else {
                // Quiet for a while: confirm that the watched member still serves, and that the
                // list agrees with etcd's count and newest change. A disagreement gets one quick
                // second look (an event may be on its way), then the list is ranged again.
                let newest = self
                    .gw
                    .call_here("/v3/kv/range", &wire::newest())
                    .and_then(|doc| wire::range_answer(&doc));
                let newest = match newest {
                    Ok(n) => n,
                    Err(e) => return e,
                };
                let agrees = {
                    let mut c = lock(&self.cluster);
                    let agrees = c.agrees(newest.count, newest.latest);
                    if agrees {
                        c.confirm(Instant::now(), SystemTime::now());
                    }
                    agrees
                };
                if agrees {
                    suspect = false;
                    check_at = Instant::now() + self.check_every;
                } else if !suspect {
                    suspect = true;
                    check_at = Instant::now() + SECOND_LOOK;
                } else {
                    return WireError(format!(
                        "the watch fell behind: etcd holds {} keys up to revision {}; ranging again",
                        newest.count, newest.latest
                    ));
                }
                continue;
            };
            let events = match wire::watched(&line) {
                Ok(Watched::Created) => {
                    // In sync from here on: the list at `revision`, and every change after it.
                    let mut c = lock(&self.cluster);
                    if !c.connected() {
                        info!(
                            "etcd: {} instances listed from {} at revision {revision}; watching",
                            c.len(),
                            self.gw.member()
                        );
                    }
                    c.confirm(Instant::now(), SystemTime::now());
                    continue;
                }
                Ok(Watched::Events { events, latest, .. }) => (events, latest),
                Ok(Watched::Compacted) => {
                    return WireError("the watch revision was compacted; ranging again".into());
                }
                Ok(Watched::Ended(why)) => return WireError(why),
                Err(e) => return e,
            };
            let skipped = {
                let mut c = lock(&self.cluster);
                let skipped = c.apply(events.0, events.1);
                c.confirm(Instant::now(), SystemTime::now());
                skipped
            };
            log_skipped(&skipped);
        }
    }

    /// The whole prefix, page by page at one revision; publishes it and returns the revision. A
    /// page too large to read (big values) is asked for again with half as many keys, down to one.
    fn range(&mut self) -> Result<u64, WireError> {
        let mut kvs = Vec::new();
        let mut from = wire::PREFIX.as_bytes().to_vec();
        let mut revision = 0;
        let mut page = PAGE;
        loop {
            let body = wire::range(&from, revision, page);
            let answer = match self.gw.call("/v3/kv/range", &body) {
                Err(e) if e.0.contains(gateway::TOO_LARGE) && page > 1 => {
                    page /= 2;
                    continue;
                }
                other => wire::range_answer(&other?)?,
            };
            if revision == 0 {
                revision = answer.revision;
            }
            let more = answer.more;
            if let Some((last, _)) = answer.kvs.last() {
                from = last.clone();
                from.push(0);
            }
            let empty = answer.kvs.is_empty();
            kvs.extend(answer.kvs);
            if !more || empty {
                break;
            }
        }
        let skipped = lock(&self.cluster).replace(kvs, revision);
        log_skipped(&skipped);
        Ok(revision)
    }
}

fn log_skipped(lines: &[String]) {
    for why in lines {
        warning!("etcd: skipping an instance key: {why}");
    }
}
