#!/usr/bin/env python3
"""The etcd scenarios of the cluster view (issue 13), against real etcd on loopback. Owns the
scenario list; scripts/suites/etcd.sh installs etcd, builds healthd and runs this.

    scripts/etcd-scenarios.py BIN            every scenario (ETCD_SCENARIOS=1,3 picks some, loudly)

  0  settings: the discovery variables' exit-2 cases (one line naming the variable)
  1  one member: a frontend started before etcd reports "Discovery unavailable" (/live unchanged),
     a worker ready before etcd registers once it answers; a worker's endpoint flips (the exact key and value in etcd, the exact /health body), a second
     worker, a lease revoked by etcdctl (re-registered under a new one), SIGKILL (gone within
     TTL + 1 s), SIGTERM (gone within 250 ms: the lease is revoked);
     a worker with ETCD_ENDPOINTS but registration off never connects to etcd
  2  keys written by etcdctl the way Dynamo writes them (with and without "type", nats_tcp, tcp and
     http transports, a device_type, a u64 id above 2^63) show; unparsable keys are skipped and
     counted while the others still show; a frontend started afterwards shows the same body
  3  three members: the watched member hung (SIGSTOP) -> a change during the hang shows, leases
     survive; the watched member killed -> no change; every member killed -> "Discovery
     unavailable", then restarted with wiped data -> every worker back with a new instance id
     within TTL + 2 s, no healthd restarted; a restarted frontend is whole within 1 s
  4  during all of the above, every worker's own /health is probed in a loop and must answer
     exactly what its declared state says (never changed by etcd)
  5  etcd with auth on and tokens that expire after 1 s: a worker and a frontend log in, keep
     their lease and view across expiries; a wrong password registers nothing and shows
     "Discovery unavailable"
  6  a request that timed out on a hung member must not undo a later change: five times, a
     worker's deregistration times out on the hung member (and is retried on another), the worker
     registers again, the member resumes: the key must still be there

Each check prints what it saw when it fails; a failed scenario is reported and the next one runs;
the exit status is 1 when any scenario failed."""

import atexit
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from etcd_harness import (  # noqa: E402
    UNAVAILABLE,
    Cluster,
    Failure,
    Healthd,
    Http,
    cleanup,
    dynamo_value,
    instance,
    instance_key,
    poll,
    short,
    tcp_peers,
    view_body,
)

TTL = int(os.environ.get("ETCD_SCENARIO_TTL", "3"))  # ETCD_LEASE_TTL of every healthd started here
BIN = None
_scope = []  # what the running scenario started: Healthd and Cluster objects


def say(msg):
    print(f"etcd: {msg}", flush=True)


SOFT = []  # failed checks that later steps do not depend on: reported, and the scenario goes on


def check(ok, what, seen, fatal=True):
    if not ok:
        if fatal:
            raise Failure(f"{what}; saw: {short(seen)}")
        SOFT.append(f"{what}; saw: {short(seen)}")
        say(f"FAIL {what}; saw: {short(seen)}")
        return
    say(f"  ok  {what}")


# --- scenario 4: every worker's own /health, probed in the background ---------------------------


def wstate(code, **endpoints):
    """What a worker's /health should say: status code and its endpoints map."""
    return (code, tuple(sorted(endpoints.items())))


class Prober(threading.Thread):
    """Probes each watched worker's /health every 20 ms on its own connection and records any
    answer outside the set the test currently accepts for it (and any answer slower than 1 s)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.lock = threading.Lock()
        self.accept = {}  # Healthd -> set of wstate
        self.conns = {}
        self.bad = []
        self.probes = 0

    def watch(self, w, *states):
        with self.lock:
            self.accept[w] = set(states)
            self.conns[w] = Http(w.port)

    def expect(self, w, *states):
        with self.lock:
            self.accept[w] = set(states)

    def accepted(self, w):
        with self.lock:
            return set(self.accept[w])

    def forget(self, w):
        with self.lock:
            self.accept.pop(w, None)
            c = self.conns.pop(w, None)
        if c:
            c.close()

    def take(self):
        with self.lock:
            bad, n, self.bad, self.probes = self.bad, self.probes, [], 0
        return bad, n

    def run(self):
        while True:
            with self.lock:
                items = list(self.accept.items())
            for w, _ in items:
                with self.lock:
                    conn = self.conns.get(w)
                    before = set(self.accept.get(w, ()))  # a change may land while this probe runs
                if conn is None:
                    continue
                t0 = time.monotonic()
                try:
                    code, _, body = conn.get("/health")
                    doc = json.loads(body)
                    seen = (code, tuple(sorted(doc.get("endpoints", {}).items())))
                    took = time.monotonic() - t0
                except (OSError, ValueError) as e:
                    seen, took, body = ("no answer", str(e)), time.monotonic() - t0, b""
                with self.lock:
                    if w not in self.accept:
                        continue  # forgotten while probing (it is being stopped)
                    self.probes += 1
                    if seen not in before | self.accept[w] or took > 1.0:
                        self.bad.append(f"{w.name} at {time.strftime('%H:%M:%S')}: {seen} in {took * 1000:.0f} ms (accepted {sorted(self.accept[w])}) {body[:200]!r}")
            time.sleep(0.02)


PROBER = Prober()


def declare(w, new, *args):
    """`healthd set ARGS` on worker w, whose /health then says `new`; the prober accepts the old
    and the new answer during the change and only the new one after."""
    old = PROBER.accepted(w)
    PROBER.expect(w, *old, new)
    w.set(*args)

    def shows():
        code, _, body = w.get("/health")
        doc = json.loads(body)
        return (code, tuple(sorted(doc.get("endpoints", {}).items()))) == new, body

    poll(f"{w.name}: /health after set {' '.join(args)}", shows, 2)
    PROBER.expect(w, new)


# --- processes ---------------------------------------------------------------------------------


def worker(name, endpoints, component="backend", **extra):
    env = {
        "DYN_SYSTEM_PORT": "0",
        "HEALTHD_REGISTER": "on",
        "ETCD_ENDPOINTS": endpoints,
        "ETCD_LEASE_TTL": str(TTL),
        "HEALTHD_COMPONENT": component,
        **extra,
    }
    w = Healthd(BIN, name, env)
    _scope.append(w)
    PROBER.watch(w, wstate(503))
    return w


def frontend(name, endpoints):
    f = Healthd(
        BIN,
        name,
        {"HEALTHD_ROLE": "frontend", "DYN_HTTP_PORT": "0", "ETCD_ENDPOINTS": endpoints, "ETCD_LEASE_TTL": str(TTL)},
        ready_file=False,
    )
    _scope.append(f)
    return f


def cluster(size):
    c = Cluster(size)
    _scope.append(c)
    c.start()
    return c


def stop_worker(w, sig):
    PROBER.forget(w)
    w.signal(sig)


def front_body(fe):
    code, headers, body = fe.get("/health")
    if code != 200 or headers.get("content-type") != "application/json":
        raise Failure(f"{fe.name} /health: {code} {headers.get('content-type')} {body[:300]!r} (always 200 application/json)")
    return body


def diff(want, seen):
    """What differs between two frontend bodies, instance by instance."""
    try:
        w, s = json.loads(want), json.loads(seen)
    except ValueError:
        return short(seen)
    key = lambda i: json.dumps(i, sort_keys=True)
    wi, si = {key(i) for i in w.get("instances", [])}, {key(i) for i in s.get("instances", [])}
    out = []
    if wi - si:
        out.append(f"missing {sorted(wi - si)}")
    if si - wi:
        out.append(f"unexpected {sorted(si - wi)}")
    if not out:
        out.append(f"same instances, other bytes: {short(seen, 800)}")
    return "; ".join(out)


def wait_view(fe, want, timeout, what):
    """Polls the frontend until its /health body is exactly `want`; returns the seconds taken."""
    def same():
        body = front_body(fe)
        return body == want, f"{len(json.loads(want).get('instances', []))} instances wanted; {diff(want, body)}"

    _, took = poll(f"{what}: {fe.name} /health", same, timeout, 0.005)
    say(f"  ok  {what} ({took * 1000:.0f} ms)")
    return took


def ids_by_component(c, prefix="v1/instances/"):
    """{component: {endpoint: instance id}} from etcd (etcdctl)."""
    out = {}
    for key in c.get_prefix(prefix):
        _, _, ns, comp, ep, hexid = key.split("/")
        out.setdefault(comp, {})[ep] = int(hexid, 16)
    return out


def metric(h, name):
    return h.metrics().get(name)


def sample_same(fe, want, seconds, what, also=None):
    """For `seconds`, every /health body is exactly `want` (an observation window, not a wait)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        body = front_body(fe)
        n += 1
        if body != want:
            raise Failure(f"{what}: /health changed after {n} samples: {diff(want, body)}")
        if also:
            also()
        time.sleep(0.05)
    say(f"  ok  {what} ({n} samples over {seconds:.1f} s, all the same)")


# --- scenarios ---------------------------------------------------------------------------------


def scenario_0():
    """The discovery settings' exit-2 cases."""
    base = {"DYN_SYSTEM_PORT": "0", "DYN_SYSTEM_HOST": "127.0.0.1"}
    cases = [
        ("HEALTHD_REGISTER", {"HEALTHD_REGISTER": "on"}),
        ("ETCD_ENDPOINTS", {"HEALTHD_REGISTER": "on", "ETCD_ENDPOINTS": "https://127.0.0.1:2379"}),
        ("ETCD_ENDPOINTS", {"HEALTHD_REGISTER": "on", "ETCD_ENDPOINTS": "http://127.0.0.1:1,,http://127.0.0.1:2"}),
        ("ETCD_AUTH_CA", {"HEALTHD_REGISTER": "on", "ETCD_ENDPOINTS": "http://127.0.0.1:1", "ETCD_AUTH_CA": "/ca.pem"}),
        ("ETCD_LEASE_TTL", {"HEALTHD_REGISTER": "on", "ETCD_ENDPOINTS": "http://127.0.0.1:1", "ETCD_LEASE_TTL": "1"}),
        ("ETCD_LEASE_TTL", {"HEALTHD_REGISTER": "on", "ETCD_ENDPOINTS": "http://127.0.0.1:1", "ETCD_LEASE_TTL": "3601"}),
        ("ETCD_AUTH_", {"HEALTHD_REGISTER": "on", "ETCD_ENDPOINTS": "http://127.0.0.1:1", "ETCD_AUTH_USERNAME": "u"}),
        ("HEALTHD_REGISTER", {"HEALTHD_ROLE": "frontend", "DYN_HTTP_PORT": "0", "HEALTHD_REGISTER": "on", "ETCD_ENDPOINTS": "http://127.0.0.1:1"}),
    ]
    for var, env in cases:
        shown = " ".join(f"{k}={v}" for k, v in env.items())
        try:
            r = subprocess.run([BIN], env={**base, **env}, capture_output=True, timeout=5, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise Failure(f"{shown}: expected exit 2, still running after 5 s; stderr {short(e.stderr or b'')}")
        lines = [l for l in r.stderr.decode(errors="replace").splitlines() if l.strip()]
        check(
            r.returncode == 2 and len(lines) == 1 and var in lines[0],
            f"{shown}: exit 2 with one line naming {var}",
            f"exit {r.returncode}, stderr {lines}",
        )
    # Accepted: spaces around items, a name, a missing port (default 2379); the worker starts.
    for env in (
        {"ETCD_ENDPOINTS": " http://127.0.0.1:1 , http://localhost "},
        {"ETCD_LEASE_TTL": "2"},
        {"ETCD_LEASE_TTL": "3600"},
    ):
        w = Healthd(BIN, "settings", {"DYN_SYSTEM_PORT": "0", "HEALTHD_REGISTER": "on", "ETCD_ENDPOINTS": "http://127.0.0.1:1", **env})
        _scope.append(w)
        check(w.alive(), f"{env}: accepted (listening on {w.port})", w.log())
        w.kill()


def scenario_1():
    """One member: flips, two workers, SIGKILL, SIGTERM, registration off."""
    c = Cluster(1)
    _scope.append(c)
    m = c.members[0]
    fe = frontend("frontend", m.client_url)  # etcd is not running yet
    body, took = poll("frontend before etcd: Discovery unavailable", lambda: (front_body(fe).startswith(UNAVAILABLE), front_body(fe)), TTL + 1)
    check(re.fullmatch(rb'\{"instances":\[\],"message":"Discovery unavailable since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(.+\)","status":"unhealthy"\}', body) is not None,
          f"frontend before etcd: 'Discovery unavailable since <RFC 3339> (<reason>)' after {took:.1f} s", body)
    code, _, live = fe.get("/live")
    check(code == 200 and live == b'{"status":"live","message":"Service is live"}', "frontend /live unchanged while discovery is unavailable", (code, live))
    early = worker("worker-early", m.client_url)  # ready before etcd runs
    declare(early, wstate(200, generate="ready"), "generate", "ready")
    c.start()
    t_up = time.monotonic()
    keys, _ = poll("worker started before etcd: registered", lambda: (len(c.get_prefix()) == 1, c.get_prefix()), 5)
    check(time.monotonic() - t_up <= 2.0, f"worker started before etcd: registered {(time.monotonic() - t_up) * 1000:.0f} ms after etcd answered "
          "(bound 2 s: 1 s after an answer, plus the 800 ms backoff cap)", keys)
    [(_, (_, eid))] = keys.items()
    wait_view(fe, view_body([instance("dynamo", "backend", "generate", eid)]), TTL + 2, "etcd started: frontend in sync, the early worker listed")
    stop_worker(early, signal.SIGTERM)
    wait_view(fe, view_body([]), 1, "early worker SIGTERMed: frontend in sync, none")
    check(early.wait_exit(5) == 0, "early worker exits 0", early.proc.returncode)
    check(metric(fe, "healthd_etcd_connected") == "1" and metric(fe, "healthd_etcd_instances") == "0"
          and metric(fe, "healthd_etcd_sync_age_seconds") is not None,
          "frontend /metrics: connected 1, instances 0, sync age present", fe.metrics(), fatal=False)

    w1 = worker("worker1", m.client_url)
    poll("worker1 holds a lease", lambda: (metric(w1, "healthd_etcd_lease_held") == "1", w1.metrics()), TTL + 2)
    check(c.get_prefix() == {}, "worker1 not ready: no key in etcd", c.get_prefix())
    t0 = time.monotonic()
    declare(w1, wstate(200, generate="ready"), "generate", "ready")
    keys, _ = poll("worker1's key in etcd", lambda: (len(c.get_prefix()) == 1, c.get_prefix()), 1)
    [(key, (value, lease))] = keys.items()
    check(key == instance_key("dynamo", "backend", "generate", lease) and lease > 0,
          f"etcd key is v1/instances/dynamo/backend/generate/<lease hex> ({key}, lease {lease})", keys)
    check(value == dynamo_value("dynamo", "backend", "generate", lease),
          "etcd value is exactly Dynamo's", f"{value!r} vs {dynamo_value('dynamo', 'backend', 'generate', lease)!r}")
    id1 = lease
    want1 = view_body([instance("dynamo", "backend", "generate", id1)])
    wait_view(fe, want1, 1, "generate=ready: frontend lists it")
    mw = w1.metrics()
    check(mw.get("healthd_etcd_connected") == "1" and mw.get("healthd_etcd_lease_held") == "1"
          and mw.get("healthd_etcd_registered_endpoints") == "1" and mw.get("healthd_etcd_leases_granted_total") == "1",
          "worker1 /metrics: connected 1, lease held 1, registered 1, leases granted 1",
          {k: v for k, v in mw.items() if "etcd" in k}, fatal=False)
    st = subprocess.run([BIN, "status", f"http://127.0.0.1:{fe.port}/health"], capture_output=True, timeout=10)
    out = st.stdout.decode()
    check(st.returncode == 0 and re.search(rf"status:\s+healthy \(200 from http://127\.0\.0\.1:{fe.port}", out) and f"{id1:x}" in out and "generate" in out,
          "healthd status against the frontend: healthy, the instance listed with its hex id", f"exit {st.returncode}: {out}{st.stderr.decode()}", fatal=False)

    ages = []
    end = time.monotonic() + 2 * TTL / 3 + 0.5
    while time.monotonic() < end:  # an observation window over two confirmation periods
        ages.append(float(metric(fe, "healthd_etcd_sync_age_seconds") or "nan"))
        time.sleep(0.1)
    check(all(a <= TTL / 3 + 1.2 for a in ages), f"frontend confirms its view every TTL/3: healthd_etcd_sync_age_seconds stayed <= TTL/3 + 1.2 s (max {max(ages):.2f})",
          ages, fatal=False)

    declare(w1, wstate(200, generate="notready"), "generate", "notready")
    wait_view(fe, view_body([]), 1, "generate=notready: gone")
    check(c.get_prefix() == {}, "generate=notready: key deleted in etcd", c.get_prefix())
    declare(w1, wstate(200, generate="ready"), "generate", "ready")
    wait_view(fe, want1, 1, "generate=ready again: back with the same instance id (same lease)")
    declare(w1, wstate(503, generate="ready"), "notready")
    wait_view(fe, view_body([]), 1, "process notready (/health 503): gone although the endpoint is ready")
    declare(w1, wstate(200, generate="ready"), "ready")
    wait_view(fe, want1, 1, "process ready: back")

    # A lease revoked by someone else: a new lease, everything re-registered within 1 s of
    # noticing (the next keepalive, TTL/3), the process untouched.
    t0 = time.monotonic()
    c.ctl("lease", "revoke", f"{id1:x}")

    def renewed():
        keys = c.get_prefix()
        return len(keys) == 1 and id1 not in {l for _, l in keys.values()}, keys

    keys, took = poll("worker1 registered under a new lease after etcdctl lease revoke", renewed, TTL / 3 + 1.5)
    [(key, (value, id1))] = keys.items()
    check(key == instance_key("dynamo", "backend", "generate", id1) and value == dynamo_value("dynamo", "backend", "generate", id1),
          f"etcdctl lease revoke of worker1's lease: re-registered under a new lease in {took * 1000:.0f} ms (bound TTL/3 + 1.5 s)", keys)
    want1 = view_body([instance("dynamo", "backend", "generate", id1)])
    wait_view(fe, want1, 1, "frontend lists worker1 under its new instance id")
    check(metric(w1, "healthd_etcd_leases_granted_total") == "2", "worker1: leases granted 2", w1.metrics(), fatal=False)

    w2 = worker("worker2", m.client_url)
    declare(w2, wstate(200, embed="ready", generate="ready"), "generate", "ready", "embed", "ready")
    keys, _ = poll("worker2's two keys", lambda: (len(c.get_prefix()) == 3, c.get_prefix()), 1)
    leases = {lease for _, lease in keys.values()} - {id1}
    check(len(leases) == 1, "worker2's two keys share one lease", keys)
    id2 = leases.pop()
    want2 = view_body([instance("dynamo", "backend", "generate", id1), instance("dynamo", "backend", "generate", id2),
                       instance("dynamo", "backend", "embed", id2)])
    wait_view(fe, want2, 1, "two workers, three instances, two endpoints")

    t0 = time.monotonic()
    stop_worker(w2, signal.SIGKILL)
    wait_view(fe, want1, TTL + 1, f"SIGKILL worker2: its instances gone within TTL + 1 s = {TTL + 1} s")

    t0 = time.monotonic()
    stop_worker(w1, signal.SIGTERM)
    _, took = poll("SIGTERM worker1: gone", lambda: (front_body(fe) == view_body([]), front_body(fe)), 1, 0.002)
    check(took <= 0.25, f"SIGTERM worker1: gone in {took * 1000:.0f} ms (bound 250 ms; the lease is revoked at the drain)", took)
    check(c.get_prefix() == {}, "SIGTERM worker1: no key left in etcd", c.get_prefix())
    check(w1.wait_exit(5) == 0, "worker1 exits 0 after its drain", w1.proc.returncode)

    # Registration off with ETCD_ENDPOINTS set: etcd is not contacted at all.
    w0 = Healthd(BIN, "worker-register-off", {"DYN_SYSTEM_PORT": "0", "ETCD_ENDPOINTS": m.client_url, "ETCD_LEASE_TTL": str(TTL)})
    _scope.append(w0)
    PROBER.watch(w0, wstate(503))
    declare(w0, wstate(200, generate="ready"), "generate", "ready")
    end = time.monotonic() + 2
    while time.monotonic() < end:
        peers = tcp_peers(w0.pid)
        if m.client_port in peers:
            raise Failure(f"worker with registration off connected to etcd (ports {peers})")
        time.sleep(0.05)
    check(c.get_prefix() == {} and front_body(fe) == view_body([]),
          "registration off: no connection to etcd for 2 s, no key, frontend empty", c.get_prefix())
    check("healthd_etcd_connected" not in w0.metrics(), "registration off: no healthd_etcd_* metrics", w0.metrics(), fatal=False)
    PROBER.forget(w0)


def scenario_2():
    """Keys written by etcdctl the way Dynamo writes them; unparsable keys skipped."""
    c = cluster(1)
    m = c.members[0]
    fe = frontend("frontend", m.client_url)
    wait_view(fe, view_body([]), TTL + 2, "frontend in sync, none")
    a, b, d, e = (c.grant(60) for _ in range(4))
    big = 0xFFFFFFFFFFFFFFFE  # a u64 above 2^63 (no lease: etcd's lease ids are int64)
    good = [
        (a, "dynamo", "backend", "generate", {}, instance("dynamo", "backend", "generate", a)),
        (b, "dynamo", "backend", "embed", {"with_type": False}, instance("dynamo", "backend", "embed", b)),
        (d, "dynamo", "prefill", "generate", {"transport": {"tcp": f"127.0.0.1:9999/{d:x}/generate"}, "device_type": "cuda"},
         instance("dynamo", "prefill", "generate", d, {"tcp": f"127.0.0.1:9999/{d:x}/generate"}, "cuda")),
    ]
    shown = []
    for lease, ns, comp, ep, kw, inst in good:
        c.ctl("put", f"--lease={lease:x}", instance_key(ns, comp, ep, lease), dynamo_value(ns, comp, ep, lease, **kw))
        shown.append(inst)
        wait_view(fe, view_body(shown), 1, f"etcdctl put {instance_key(ns, comp, ep, lease)} ({kw or 'exact Dynamo value'})")
    c.ctl("put", instance_key("dynamo", "backend", "generate", big), dynamo_value("dynamo", "backend", "generate", big))
    shown.append(instance("dynamo", "backend", "generate", big))
    wait_view(fe, view_body(shown), 1, "a u64 instance id above 2^63 (no lease)")

    skipped0 = int(metric(fe, "healthd_etcd_keys_skipped_total") or 0)
    x = c.grant(60)
    bad = [
        ("value not JSON", instance_key("dynamo", "backend", "generate", x), "{not json"),
        ("instance_id differs from the key", instance_key("dynamo", "backend", "generate", x + 1), dynamo_value("dynamo", "backend", "generate", x + 2)),
        ("namespace differs from the key", instance_key("dynamo", "backend", "generate", x + 3), dynamo_value("elsewhere", "backend", "generate", x + 3)),
        ("instance_id a string", instance_key("dynamo", "backend", "generate", x + 4), dynamo_value("dynamo", "backend", "generate", x + 4).replace(f'"instance_id":{x + 4}', f'"instance_id":"{x + 4}"')),
        ("key too short", "v1/instances/dynamo/backend", dynamo_value("dynamo", "backend", "generate", x + 5)),
        ("key id not hex", "v1/instances/dynamo/backend/generate/zz", dynamo_value("dynamo", "backend", "generate", x + 6)),
    ]
    for what, key, value in bad:
        c.ctl("put", key, value)
    # A good key written after the bad ones: when it shows, every bad one has been seen.
    g = c.grant(60)
    c.ctl("put", f"--lease={g:x}", instance_key("dynamo", "backend", "generate", g), dynamo_value("dynamo", "backend", "generate", g))
    shown.append(instance("dynamo", "backend", "generate", g))
    wait_view(fe, view_body(shown), 1, f"{len(bad)} unparsable keys ({', '.join(w for w, _, _ in bad)}) skipped, the others still show")
    skipped = int(metric(fe, "healthd_etcd_keys_skipped_total") or 0) - skipped0
    check(skipped >= len(bad), f"healthd_etcd_keys_skipped_total grew by at least {len(bad)} (by {skipped})", fe.metrics(), fatal=False)
    check(metric(fe, "healthd_etcd_instances") == str(len(shown)), f"healthd_etcd_instances {len(shown)}", fe.metrics(), fatal=False)

    fe2 = frontend("frontend2", m.client_url)
    t0 = fe2.started
    poll("a frontend started now shows the same", lambda: (front_body(fe2) == view_body(shown), front_body(fe2)), 1)
    say(f"  ok  a frontend started afterwards shows the same body ({(time.monotonic() - t0) * 1000:.0f} ms from its start)")

    # A host name instead of an IP literal (Dynamo's default is http://localhost:2379).
    fe3 = frontend("frontend-localhost", f"http://localhost:{m.client_port}")
    try:
        poll("a frontend given http://localhost:PORT shows the same", lambda: (front_body(fe3) == view_body(shown), front_body(fe3)), 3)
        check(True, "a frontend given http://localhost:PORT shows the same body", None)
    except Failure as e:
        check(False, "a frontend given http://localhost:PORT shows the same body", f"{e}; log: {fe3.log()[-600:]}", fatal=False)
    fe3.kill()

    c.ctl("del", instance_key("dynamo", "backend", "generate", big))
    shown = [i for i in shown if i["instance_id"] != big]
    wait_view(fe, view_body(shown), 1, "etcdctl del of one key: gone")
    c.ctl("lease", "revoke", f"{a:x}")
    shown = [i for i in shown if i["instance_id"] != a]
    wait_view(fe, view_body(shown), 1, "etcdctl lease revoke: its key gone")
    wait_view(fe2, view_body(shown), 1, "the second frontend agrees")
    http = {"http": "http://127.0.0.1:9998/v1/rpc/generate"}
    c.ctl("put", f"--lease={e:x}", instance_key("other", "backend", "generate", e), dynamo_value("other", "backend", "generate", e, transport=http))
    shown.append(instance("other", "backend", "generate", e, http))
    wait_view(fe, view_body(shown), 1, "a key of another namespace (http transport) shows too (the whole v1/instances/ prefix)")


def scenario_3():
    """Three members: hung, killed, all killed and wiped; the frontend restarted."""
    c = cluster(3)
    fe = frontend("frontend", c.endpoints([0, 1, 2]))
    wait_view(fe, view_body([]), TTL + 2, "frontend in sync with three members, none")
    wa = worker("workerA", c.endpoints([0, 1, 2]), "backend")
    wb = worker("workerB", c.endpoints([1, 2, 0]), "decode")
    wc = worker("workerC", c.endpoints([2, 0, 1]), "prefill")
    declare(wa, wstate(200, generate="ready"), "generate", "ready")
    declare(wb, wstate(200, embed="ready", generate="ready"), "generate", "ready", "embed", "ready")
    declare(wc, wstate(200, generate="ready"), "generate", "ready")
    ids, _ = poll("four keys in etcd", lambda: (len(c.get_prefix()) == 4, c.get_prefix()), 2)
    ids = ids_by_component(c)

    def view_of(ids, extra=()):
        out = list(extra)
        for comp, eps in ids.items():
            for ep, iid in eps.items():
                out.append(instance("dynamo", comp, ep, iid))
        return view_body(out)

    want = view_of(ids)
    wait_view(fe, want, 1, "three workers, four instances")

    def watched():
        ports = {m.client_port: i for i, m in enumerate(c.members)}
        return sorted({ports[p] for p in tcp_peers(fe.pid) if p in ports})

    w, _ = poll("frontend connected to a member", lambda: (len(watched()) >= 1, watched()), 2)
    say(f"  ..  frontend holds connections to {['m%d' % i for i in w]}")
    check(len(w) == 1, "the frontend talks to exactly one member (the one it watches)", w)
    w = w[0]
    c.move_leader_off(w)
    say(f"  ..  SIGSTOP m{w} (the watched member; a follower, leader m{c.leader()})")
    t_stop = time.monotonic()
    c.stop(w)
    declare(wa, wstate(200, generate="notready"), "generate", "notready")
    extra_id = c.grant(60)
    c.ctl("put", f"--lease={extra_id:x}", instance_key("dynamo", "backend", "embed", extra_id), dynamo_value("dynamo", "backend", "embed", extra_id))
    ids_hang = {k: dict(v) for k, v in ids.items()}
    del ids_hang["backend"]["generate"]
    want_hang = view_of(ids_hang, [instance("dynamo", "backend", "embed", extra_id)])
    wait_view(fe, want_hang, TTL + 2, f"m{w} hung: a flip and an etcdctl put made during the hang show within TTL + 2 s")
    declare(wa, wstate(200, generate="ready"), "generate", "ready")
    want = view_of(ids, [instance("dynamo", "backend", "embed", extra_id)])
    wait_view(fe, want, TTL + 2, f"m{w} hung: workerA ready again, back with its old instance id (its lease survived)")
    left = 2 * TTL - (time.monotonic() - t_stop)
    if left > 0:
        sample_same(fe, want, left, f"m{w} hung for 2 x TTL: the view stays right")
    c.cont(w)
    say(f"  ..  SIGCONT m{w} after {time.monotonic() - t_stop:.1f} s")
    try:
        sample_same(fe, want, TTL, f"m{w} resumed: the view stays whole for TTL (nothing sent to it during the hang undoes a later change)")
    except Failure as e:
        # Seen: workerA's deregistration timed out on the hung member and was retried on another;
        # the hung member applied its copy when it resumed, after the re-registration, and the
        # worker never noticed. Reported; flip again so the later steps still run.
        check(False, f"m{w} resumed: workerA's key still in etcd and listed", f"{e}; workerA's key in etcd: "
              f"{instance_key('dynamo', 'backend', 'generate', ids['backend']['generate']) in c.get_prefix()}; "
              f"workerA metrics: { {k: v for k, v in wa.metrics().items() if 'etcd' in k} }", fatal=False)
        declare(wa, wstate(200, generate="notready"), "generate", "notready")
        declare(wa, wstate(200, generate="ready"), "generate", "ready")
        wait_view(fe, want, 1, "workerA flipped once more: listed again with its old instance id")
    check(ids_by_component(c) == {**ids, "backend": {**ids["backend"], "embed": extra_id}},
          "every worker's instance id unchanged after the hang", ids_by_component(c))
    for x in (wa, wb, wc):
        check(metric(x, "healthd_etcd_leases_granted_total") == "1" and metric(x, "healthd_etcd_lease_held") == "1",
              f"{x.name}: one lease granted in all, still held", {k: v for k, v in x.metrics().items() if "etcd" in k})

    w2, _ = poll("frontend connected to a member", lambda: (len(watched()) >= 1, watched()), 2)
    k = ([i for i in w2 if i != w] or w2)[0]  # a connection to the once-hung member may linger
    # A follower: killing the leader starts an election (etcd's election timeout is 1 s and more),
    # during which no member answers a linearizable read; with this suite's 3 s TTL that alone can
    # outlast the frontend's staleness bound. With the default TTL of 10 s it does not.
    c.move_leader_off(k)
    say(f"  ..  frontend holds connections to {['m%d' % i for i in w2]}; SIGKILL m{k} (leader m{c.leader()})")
    c.kill(k)
    sample_same(fe, want, 2 * TTL, f"m{k} killed: no change for 2 x TTL",
                also=lambda: None)
    check(ids_by_component(c) == {**ids, "backend": {**ids["backend"], "embed": extra_id}},
          "every worker's instance id unchanged after the kill", ids_by_component(c))

    say("  ..  SIGKILL every member")
    pids = {x.name: x.pid for x in (fe, wa, wb, wc)}
    t_kill, wall_kill = time.monotonic(), time.time()
    c.kill_all()

    def dead_view():
        body = front_body(fe)
        if body != want and not body.startswith(UNAVAILABLE):
            raise Failure(f"all members down: /health neither the last view nor 'Discovery unavailable': {short(body)}")
        return body.startswith(UNAVAILABLE), body

    body, took = poll("all members down: Discovery unavailable", dead_view, TTL + 2)
    mt = re.fullmatch(rb'\{"instances":\[\],"message":"Discovery unavailable since (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \(.+\)","status":"unhealthy"\}', body)
    since = datetime.strptime(mt.group(1).decode(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp() if mt else 0
    check(mt is not None and wall_kill - TTL - 2 <= since <= time.time() + 1,
          f"all members down: 'Discovery unavailable since <time near the kill> (...)' after {took:.1f} s (bound TTL + 2 s)", body)

    gauges = {x.name: (metric(x, "healthd_etcd_connected"), metric(x, "healthd_etcd_lease_held")) for x in (wa, wb, wc)}
    gauges[fe.name] = (metric(fe, "healthd_etcd_connected"), None)
    check(all(g[0] == "0" for g in gauges.values()), "all members down: healthd_etcd_connected 0 everywhere", gauges, fatal=False)
    t_wipe = time.monotonic()
    c.wipe_and_restart()
    t_up = time.monotonic()
    say(f"  ..  members restarted with wiped data dirs {t_up - t_kill:.1f} s after the kill (healthy in {t_up - t_wipe:.1f} s)")
    old = {iid for eps in ids.values() for iid in eps.values()}

    def back():
        now = ids_by_component(c)
        comps = {comp: set(eps) for comp, eps in now.items()}
        fresh = {iid for eps in now.values() for iid in eps.values()}
        if comps != {"backend": {"generate"}, "decode": {"embed", "generate"}, "prefill": {"generate"}} or fresh & old:
            return False, f"etcd: {now}"
        return front_body(fe) == view_of(now), f"etcd {now}; frontend {short(front_body(fe), 600)}"

    _, took = poll("every worker back after the wipe", back, TTL + 2, 0.02)
    new = ids_by_component(c)
    check(True, f"every worker back with a new instance id {took:.2f} s after etcd answered (bound TTL + 2 = {TTL + 2} s)", new)
    check(len({new["decode"]["generate"], new["decode"]["embed"]}) == 1 and len({iid for e in new.values() for iid in e.values()}) == 3,
          "one new lease per worker (workerB's two keys share one)", new)
    check(all(x.alive() for x in (fe, wa, wb, wc)) and pids == {x.name: x.pid for x in (fe, wa, wb, wc)},
          f"no healthd process restarted (same PIDs {pids})", {x.name: (x.pid, x.alive()) for x in (fe, wa, wb, wc)})
    for x in (wa, wb, wc):
        check(metric(x, "healthd_etcd_leases_granted_total") == "2", f"{x.name}: a second lease granted", {k: v for k, v in x.metrics().items() if "etcd" in k}, fatal=False)
    want = view_of(new)

    fe.signal(signal.SIGTERM)
    check(fe.wait_exit(5) == 0, "frontend exits 0 on SIGTERM", fe.proc.returncode)
    fe2 = frontend("frontend-restarted", c.endpoints([0, 1, 2]))
    poll("restarted frontend whole", lambda: (front_body(fe2) == want, front_body(fe2)), 2, 0.005)
    took = time.monotonic() - fe2.started
    check(took <= 1.0, f"restarted frontend: the whole list within 1 s of its start ({took * 1000:.0f} ms)", took)

    for x in (wa, wb, wc):
        stop_worker(x, signal.SIGTERM)
    wait_view(fe2, view_body([]), 1, "every worker SIGTERMed: none left")
    for x in (wa, wb, wc):
        check(x.wait_exit(5) == 0, f"{x.name} exits 0", x.proc.returncode)


def scenario_5():
    """etcd with auth on (a token that expires after 1 s idle): workers and frontends log in."""
    c = Cluster(1, extra_args=["--auth-token-ttl", "1"])
    _scope.append(c)
    c.start()
    m = c.members[0]
    c.ctl("user", "add", "root", "--new-user-password=s3cret")
    c.ctl("auth", "enable")
    c.user = "root:s3cret"
    ttl = 6  # keepalive and confirm every 2 s: the 1 s token has expired before each
    env = {"ETCD_LEASE_TTL": str(ttl), "ETCD_AUTH_USERNAME": "root", "ETCD_AUTH_PASSWORD": "s3cret"}
    fe = Healthd(BIN, "frontend-auth", {"HEALTHD_ROLE": "frontend", "DYN_HTTP_PORT": "0", "ETCD_ENDPOINTS": m.client_url, **env}, ready_file=False)
    _scope.append(fe)
    wait_view(fe, view_body([]), 5, "frontend logged in: in sync, none")
    w = worker("worker-auth", m.client_url, **env)
    declare(w, wstate(200, generate="ready"), "generate", "ready")
    keys, _ = poll("worker-auth's key", lambda: (len(c.get_prefix()) == 1, c.get_prefix()), 3)
    [(_, (_, iid))] = keys.items()
    want = view_body([instance("dynamo", "backend", "generate", iid)])
    wait_view(fe, want, 1, "worker logged in: registered and listed")
    sample_same(fe, want, 2 * ttl, "2 x TTL with tokens expiring between calls: the view and the lease stay")
    check(metric(w, "healthd_etcd_leases_granted_total") == "1", "worker-auth: still its first lease", w.metrics(), fatal=False)
    declare(w, wstate(200, generate="notready"), "generate", "notready")
    wait_view(fe, view_body([]), 1, "a flip after the tokens expired: gone")
    declare(w, wstate(200, generate="ready"), "generate", "ready")
    wait_view(fe, want, 1, "and back")

    bad = {**env, "ETCD_AUTH_PASSWORD": "wrong"}
    fe2 = Healthd(BIN, "frontend-badpw", {"HEALTHD_ROLE": "frontend", "DYN_HTTP_PORT": "0", "ETCD_ENDPOINTS": m.client_url, **bad}, ready_file=False)
    _scope.append(fe2)
    body, _ = poll("frontend with a wrong password: Discovery unavailable", lambda: (front_body(fe2).startswith(UNAVAILABLE), front_body(fe2)), ttl + 1)
    check(True, f"frontend with a wrong password: {body.decode()}", body)
    w2 = worker("worker-badpw", m.client_url, **bad)
    declare(w2, wstate(200, generate="ready"), "generate", "ready")
    end = time.monotonic() + 2
    while time.monotonic() < end:  # an observation window: nothing may be registered
        if len(c.get_prefix()) != 1:
            raise Failure(f"worker with a wrong password registered something: {c.get_prefix()}")
        time.sleep(0.1)
    check(w2.alive() and metric(w2, "healthd_etcd_lease_held") == "0", "worker with a wrong password: no key, no lease, still serving", w2.metrics())


def scenario_6():
    """A request that timed out on a hung member must not undo a later change (5 attempts)."""
    c = cluster(3)
    fe = frontend("frontend", c.endpoints([1, 2, 0]))
    wait_view(fe, view_body([]), TTL + 2, "frontend in sync, none")
    stale = 0
    for attempt in range(1, 6):
        c.move_leader_off(0)
        w = worker(f"worker{attempt}", c.endpoints([0, 1, 2]))  # talks to m0 first
        declare(w, wstate(200, generate="ready"), "generate", "ready")
        keys, _ = poll(f"worker{attempt} registered", lambda: (len(c.get_prefix()) == 1, c.get_prefix()), 3)
        [(key, (_, iid))] = keys.items()
        want = view_body([instance("dynamo", "backend", "generate", iid)])
        wait_view(fe, want, 1, f"attempt {attempt}: worker{attempt} listed")
        c.stop(0)
        declare(w, wstate(200, generate="notready"), "generate", "notready")
        wait_view(fe, view_body([]), TTL + 2, f"attempt {attempt}: m0 hung, generate=notready: gone")
        declare(w, wstate(200, generate="ready"), "generate", "ready")
        wait_view(fe, want, TTL + 2, f"attempt {attempt}: m0 hung, generate=ready: back")
        c.cont(0)
        try:
            sample_same(fe, want, TTL, f"attempt {attempt}: m0 resumed: still listed for TTL")
        except Failure as e:
            stale += 1
            check(False, f"attempt {attempt}: m0 resumed: worker{attempt}'s key still in etcd and listed",
                  f"{e}; key in etcd: {key in c.get_prefix()}; worker metrics: { {k: v for k, v in w.metrics().items() if 'etcd' in k} }", fatal=False)
        stop_worker(w, signal.SIGTERM)
        wait_view(fe, view_body([]), 1, f"attempt {attempt}: worker{attempt} SIGTERMed: gone")
        w.wait_exit(5)
    say(f"  ..  a stale request undid a later change in {stale} of 5 attempts")


def main():
    global BIN
    if len(sys.argv) != 2:
        sys.exit("usage: etcd-scenarios.py HEALTHD_BINARY")
    BIN = os.path.abspath(sys.argv[1])
    atexit.register(cleanup)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda *_: sys.exit(1))
    scenarios = {"0": scenario_0, "1": scenario_1, "2": scenario_2, "3": scenario_3, "5": scenario_5, "6": scenario_6}
    pick = os.environ.get("ETCD_SCENARIOS", "")
    chosen = [n.strip() for n in pick.split(",") if n.strip()] if pick else list(scenarios)
    unknown = [n for n in chosen if n not in scenarios]
    if unknown:
        sys.exit(f"etcd: ETCD_SCENARIOS={pick!r}: unknown scenario(s) {unknown}; known: {', '.join(scenarios)}")
    if pick:
        say(f"NOTE: running only scenarios {','.join(chosen)} (ETCD_SCENARIOS); scenario 4 runs inside them")
    PROBER.start()
    results = []
    t_all = time.monotonic()
    for n in chosen:
        fn = scenarios[n]
        say(f"scenario {n}: {fn.__doc__}")
        t0 = time.monotonic()
        err = None
        try:
            fn()
        except Failure as e:
            err = str(e)
        except Exception as e:  # a bug in the scenario itself: report it the same way
            import traceback

            err = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
        bad, probes = PROBER.take()
        if SOFT and not err:
            err = f"{len(SOFT)} check(s) failed: " + " | ".join(SOFT)
        SOFT.clear()
        if err:
            say(f"FAIL scenario {n}: {err}")
            for x in _scope:
                if isinstance(x, Healthd):
                    say(f"--- {x.name} (pid {x.pid}) log ---\n" + "".join(x.log().splitlines(True)[-25:]))
                elif isinstance(x, Cluster):
                    for m in x.members:
                        say(f"--- etcd {m.name} log (tail) ---\n" + x.log_tail(m, 8))
        results.append((n, err, time.monotonic() - t0))
        results.append((f"4 (during {n})", f"{len(bad)} unexpected worker /health answers:\n  " + "\n  ".join(bad[:20]) if bad else None, 0))
        if not bad and probes:
            say(f"  ok  scenario 4 during {n}: {probes} worker /health probes, every answer as declared, each under 1 s")
        elif not bad:
            say(f"  ..  scenario 4 during {n}: no worker in this scenario")
        else:
            say(f"FAIL scenario 4 during {n}: {results[-1][1]}")
        for x in _scope:
            if isinstance(x, Healthd):
                PROBER.forget(x)
                x.kill()
            else:
                x.kill_all()
        _scope.clear()
    failed = [(n, e) for n, e, _ in results if e]
    say(f"summary ({time.monotonic() - t_all:.0f} s):")
    for n, e, took in results:
        say(f"  scenario {n}: {'FAILED: ' + e.splitlines()[0] if e else 'passed'}" + (f" ({took:.1f} s)" if took else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
