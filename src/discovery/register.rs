//! The worker's registration (`HEALTHD_REGISTER=on`), as reconciliation: from the local state
//! compute the keys that should exist, compare with what etcd confirmed under the current lease,
//! act on the difference; repeat on every state change, on every keepalive and after every
//! failure. A flip, a lost lease, an etcd restart and the start are then one code path.
//!
//! What "etcd confirmed" means is checked against etcd itself: with every keepalive (every TTL/3),
//! and at once after any call whose outcome is unknown (a timeout), the registrar reads the keys
//! bound to its lease and takes that as the truth. A request that a hung member applies late (a
//! delete landing after the re-registration it preceded) is then repaired within TTL/3.
//!
//! One lease per process (its id is the instance id), kept alive every TTL/3. A key exists while
//! its endpoint is ready and the process is ready (what `/health` answers 200 for), live and not
//! draining. When the drain starts the lease is revoked, which deletes every key at once. A lost
//! lease (etcd back without it, a partition longer than the TTL) is replaced by a new one and
//! everything is registered again; healthd never exits or changes its local answers over etcd.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::gateway::Gateway;
use super::wire::{self, WireError};
use super::{Backoff, Registry, lock};
use crate::config::Etcd;
use crate::dialect::frontend::Names;
use crate::log::{info, warning};
use crate::source::{self, Shared, changes};

/// Starts the registrar thread.
pub fn spawn(
    etcd: &Etcd,
    names: Names,
    state: Shared,
    status: Arc<Mutex<Registry>>,
) -> std::io::Result<()> {
    let mut r = Registrar {
        gw: Gateway::new(etcd),
        ttl: etcd.lease_ttl,
        names,
        state,
        status,
        lease: None,
        confirmed: Vec::new(),
        next_keepalive: Instant::now(),
        verify: false,
        failing: None,
        said_empty: false,
    };
    crate::source::thread::detach("etcd-register", move || r.run())
}

struct Registrar {
    gw: Gateway,
    ttl: u32,
    names: Names,
    state: Shared,
    status: Arc<Mutex<Registry>>,
    lease: Option<u64>,
    /// Endpoints whose keys exist under `lease`, as far as etcd confirmed, with the revision that
    /// created each key (0 when not known): a delete applies only to that key, so a delete that a
    /// hung member applies late cannot remove the key registered again after it. Sorted by name.
    /// (A process has a handful of endpoints: plain vectors, which keep the binary smaller.)
    confirmed: Vec<(String, u64)>,
    next_keepalive: Instant,
    /// A call failed with an unknown outcome: read the lease's keys back before trusting
    /// `confirmed` again.
    verify: bool,
    /// The error of the failing round, while failing (one log line per change).
    failing: Option<String>,
    said_empty: bool,
}

/// What the local state asks for at one instant.
struct Wanted {
    /// Sorted and distinct (the state's order).
    endpoints: Vec<String>,
    draining: bool,
    /// When liveness may go stale without any state change (the heartbeat deadline).
    stale_at: Option<Instant>,
    /// Ready, but no endpoint is known at all.
    empty: bool,
}

impl Registrar {
    fn run(&mut self) {
        let mut backoff = Backoff::new();
        loop {
            let generation = changes::current();
            let now = Instant::now();
            let wanted = self.wanted(now);
            if wanted.draining {
                self.revoke();
                // Nothing more to do: the process is on its way out.
                changes::wait(generation, now + Duration::from_secs(3600));
                continue;
            }
            if wanted.empty && !self.said_empty {
                info!(
                    "etcd: ready with no endpoints declared, so nothing is registered \
                     (declare NAME=ready in the readiness file, or healthd set NAME ready)"
                );
            }
            self.said_empty = wanted.empty;
            let wake = match self.reconcile(&wanted.endpoints) {
                Ok(()) => {
                    backoff.reset();
                    if let Some(e) = self.failing.take() {
                        info!("etcd: {} answers again (after: {e})", self.gw.member());
                    }
                    let mut at = self.next_keepalive;
                    if let Some(stale) = wanted.stale_at.filter(|s| *s > now) {
                        at = at.min(stale + Duration::from_millis(1));
                    }
                    at
                }
                Err(e) => {
                    self.verify = true;
                    if self.failing.as_deref() != Some(e.0.as_str()) {
                        if self.failing.is_none() {
                            warning!(
                                "etcd: {e}; local health is unaffected, retrying (registered keys expire with the lease after {}s)",
                                self.ttl
                            );
                        }
                        self.failing = Some(e.0.clone());
                    }
                    Instant::now() + backoff.next()
                }
            };
            self.publish();
            changes::wait(generation, wake);
        }
    }

    fn wanted(&self, now: Instant) -> Wanted {
        let s = source::lock(&self.state);
        let ok = s.health().is_ready() && s.liveness(now).is_live() && !s.draining();
        let endpoints = if ok {
            s.endpoints()
                .filter(|(_, h)| h.is_ready())
                .map(|(n, _)| n.to_string())
                .collect()
        } else {
            Vec::new()
        };
        Wanted {
            empty: ok && s.endpoints().next().is_none(),
            endpoints,
            draining: s.draining(),
            stale_at: s.heartbeat_deadline(),
        }
    }

    /// A round, and one more at once when the first found the lease gone.
    fn reconcile(&mut self, wanted: &[String]) -> Result<(), WireError> {
        for _ in 0..2 {
            if self.round(wanted)? {
                return Ok(());
            }
        }
        Err(WireError("etcd lost a lease it had just granted".into()))
    }

    /// A lease, its keepalive when due, then the key difference; false when the lease was gone.
    fn round(&mut self, wanted: &[String]) -> Result<bool, WireError> {
        let names = self.names.clone();
        let (ns, comp) = (&names.namespace, &names.component);
        let lease = match self.lease {
            Some(id) if Instant::now() < self.next_keepalive && !self.verify => id,
            Some(id) => {
                let alive = wire::alive(&self.gw.call("/v3/lease/keepalive", &wire::lease(id))?)?;
                let doc = self
                    .gw
                    .call("/v3/lease/timetolive", &wire::time_to_live(id))?;
                let keys = match wire::lease_keys(&doc)? {
                    Some(keys) if alive => keys,
                    _ => return Ok(self.lost(id)),
                };
                let mut held: Vec<(String, u64)> = keys
                    .iter()
                    .filter_map(|k| wire::endpoint_of(k, ns, comp, id))
                    .map(|ep| (ep.to_string(), self.created(ep).unwrap_or(0)))
                    .collect();
                held.sort();
                held.dedup_by(|a, b| a.0 == b.0);
                if !held
                    .iter()
                    .map(|h| &h.0)
                    .eq(self.confirmed.iter().map(|c| &c.0))
                {
                    let list = |m: &[(String, u64)]| {
                        m.iter()
                            .map(|(e, _)| e.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    info!(
                        "etcd: lease {id:x} holds [{}], not [{}] as last written; repairing",
                        list(&held),
                        list(&self.confirmed)
                    );
                }
                self.confirmed = held;
                self.verify = false;
                self.keepalive_done();
                id
            }
            None => {
                let id = wire::granted(&self.gw.call("/v3/lease/grant", &wire::grant(self.ttl))?)?;
                info!(
                    "etcd: lease {id:x} granted by {} (ttl {}s); instance id {id}",
                    self.gw.member(),
                    self.ttl
                );
                self.lease = Some(id);
                self.confirmed.clear();
                lock(&self.status).grants += 1;
                self.keepalive_done();
                id
            }
        };
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|e| self.created(e).is_none())
            .collect();
        for ep in missing {
            let key = wire::key(ns, comp, ep, lease);
            let body = wire::create(&key, &wire::value(ns, comp, ep, lease), lease);
            match self.gw.call("/v3/kv/txn", &body) {
                // Not succeeded: the key exists already, and it carries our lease id.
                Ok(doc) => {
                    let created = wire::succeeded(&doc).then(|| wire::revision_of(&doc));
                    let how = if created.is_some() {
                        "registered"
                    } else {
                        "found"
                    };
                    info!("etcd: {how} {key}");
                    self.confirmed.push((ep.clone(), created.unwrap_or(0)));
                    self.confirmed.sort();
                }
                Err(e) if wire::lease_gone(&e) => return Ok(self.lost(lease)),
                Err(e) => return Err(e),
            }
        }
        let extra: Vec<(String, u64)> = self
            .confirmed
            .iter()
            .filter(|(e, _)| !wanted.contains(e))
            .map(|(e, r)| (e.clone(), *r))
            .collect();
        for (ep, created) in extra {
            let key = wire::key(ns, comp, &ep, lease);
            match created {
                0 => self.gw.call("/v3/kv/deleterange", &wire::delete(&key))?,
                r => self.gw.call("/v3/kv/txn", &wire::delete_created(&key, r))?,
            };
            info!("etcd: deregistered {key}");
            self.confirmed.retain(|(e, _)| *e != ep);
        }
        Ok(true)
    }

    /// The revision that created `endpoint`'s key, if it is confirmed (0 = not known).
    fn created(&self, endpoint: &str) -> Option<u64> {
        self.confirmed
            .iter()
            .find(|(e, _)| e == endpoint)
            .map(|(_, r)| *r)
    }

    fn keepalive_done(&mut self) {
        self.next_keepalive =
            Instant::now() + Duration::from_millis(u64::from(self.ttl) * 1000 / 3);
    }

    /// The lease is gone: forget it and its keys (the next round grants anew); returns false.
    fn lost(&mut self, id: u64) -> bool {
        warning!(
            "etcd: lease {id:x} is gone (expired or revoked); granting a new one and registering again"
        );
        self.lease = None;
        self.confirmed.clear();
        false
    }

    /// The drain began: revoke the lease (deleting every key), once.
    fn revoke(&mut self) {
        if let Some(id) = self.lease.take() {
            match self.gw.call("/v3/lease/revoke", &wire::lease(id)) {
                Ok(_) => info!("etcd: lease {id:x} revoked for the drain; its keys are gone"),
                Err(e) => warning!(
                    "etcd: cannot revoke lease {id:x} ({e}); its keys expire within {}s",
                    self.ttl
                ),
            }
            self.confirmed.clear();
            self.publish();
        }
    }

    fn publish(&self) {
        let mut s = lock(&self.status);
        s.connected = self.failing.is_none() && self.lease.is_some();
        s.lease = self.lease;
        // The last keepalive was TTL/3 before the next one is due.
        s.expires = self
            .lease
            .map(|_| self.next_keepalive + Duration::from_millis(u64::from(self.ttl) * 2000 / 3));
        s.registered = self.confirmed.len();
    }
}
