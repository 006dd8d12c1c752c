#!/usr/bin/env bash
# Benchmark of the cluster view on etcd (issue 13), each figure beside a peer measured in the same
# run: flip-to-visible beside etcd's own put-to-watch latency (a Python client on etcd's JSON
# gateway), SIGKILL/SIGTERM to gone, the frontend's keep-alive /health with 100 instances beside
# a worker's /health (wrk), the frontend with 10,000 instances (RSS, change to /health beside one
# /health request), idle CPU and syscalls of a worker and a frontend, the static binary's size.
# One etcd member on 127.0.0.1 (temporary data dir on tmpfs), started and removed here
# (scripts/etcd_harness.py); healthd and wrk pinned to cores 0 and 1 for the req/s rows only.
#
#   scripts/bench-discovery.sh            full run (about 2 minutes), a Markdown table on stdout
#   scripts/bench-discovery.sh --smoke    under 20 s, proves the script still runs (CI, via
#                                         scripts/suites/bench-discovery-smoke.sh); release build
#
# Installs etcd-server, etcd-client, wrk and strace (apt) when missing. Loopback only; every wait
# has a deadline; HEALTHD_BIN picks another binary; a target missed prints MISSED in its row (the script still exits 0: it measures).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true

need() { command -v "$1" >/dev/null 2>&1; }
if ! need etcd || ! need etcdctl || ! need wrk || ! need strace || ! need taskset; then
  echo "bench-discovery: installing etcd-server etcd-client wrk strace" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client wrk strace util-linux; } >/dev/null 2>&1 ||
    { echo "bench-discovery: FAILED: cannot install etcd-server etcd-client wrk strace with apt-get" >&2; exit 1; }
fi
[ "$(nproc)" -ge 2 ] || { echo "bench-discovery: needs 2 cores (healthd on 0, wrk on 1)" >&2; exit 1; }

# The binary: the static build (its size is a row), or the release build for --smoke.
if [ -n "${HEALTHD_BIN:-}" ]; then
  bin=$HEALTHD_BIN
  kind="HEALTHD_BIN"
elif $smoke; then
  cargo build --release --quiet
  bin=target/release/healthd
  kind="release build (--smoke)"
else
  bin=$(HEALTHD_STATIC_MAX_BYTES=100000000 scripts/build-static.sh 2>/dev/null | tail -n1)
  [ -x "$bin" ] || { echo "bench-discovery: FAILED: scripts/build-static.sh printed no binary" >&2; exit 1; }
  kind="static build"
fi

timeout 600 python3 - "$(readlink -f "$bin")" "$kind" "$smoke" <<'EOF'
import atexit, json, os, re, signal, subprocess, sys, time
sys.path.insert(0, "scripts")
import etcd_harness as h

BIN, KIND, SMOKE = sys.argv[1], sys.argv[2], sys.argv[3] == "true"
atexit.register(h.cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
TTL = 3
FLIPS, KILLS, TERMS, DUR, MANY, CHANGES, IDLE = (20, 1, 3, 1, 1000, 5, 1) if SMOKE else (200, 5, 20, 10, 10000, 20, 10)

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

def ms(x):
    return f"{x * 1000:.1f}"

c = h.Cluster(1, tag="bench")
c.start()
m = c.members[0]
EP = m.client_url
gw = h.Gateway(m.client_port)

def frontend(name, ttl=TTL):
    return h.Healthd(BIN, name, {"HEALTHD_ROLE": "frontend", "DYN_HTTP_PORT": "0", "ETCD_ENDPOINTS": EP, "ETCD_LEASE_TTL": str(ttl)}, ready_file=False)

def worker(name, ttl=TTL, ready=True):
    w = h.Healthd(BIN, name, {"DYN_SYSTEM_PORT": "0", "HEALTHD_REGISTER": "on", "ETCD_ENDPOINTS": EP, "ETCD_LEASE_TTL": str(ttl)})
    if ready:
        w.set("generate", "ready")
    return w

def lease_of(comp="backend"):
    """{instance id} of the keys of `comp` in etcd."""
    return {int(k.rsplit("/", 1)[1], 16) for k in gw.range_prefix(f"v1/instances/dynamo/{comp}/")}

def wait_ids(fe, present=(), absent=(), timeout=5, interval=0.0002):
    """Polls the frontend's /health until every id in present is listed and none in absent."""
    def ok():
        body = fe.body()
        good = all(b'"instance_id":%d,' % i in body for i in present) and not any(b'"instance_id":%d,' % i in body for i in absent)
        return good, body
    return h.poll(f"{fe.name}: ids {list(present)} listed, {list(absent)} not", ok, timeout, interval)[1]

fe = frontend("frontend")
h.poll("frontend in sync", lambda: (fe.body().startswith(b'{"instances":[],"message":"No endpoints'), fe.body()), TTL + 2)
rss_empty = fe.rss_kib()

# --- flip to visible, beside etcd's put -> watch --------------------------------------------------
w = worker("worker")
[wid], _ = h.poll("worker registered", lambda: (len(lease_of()) == 1, lease_of()), 5)
wait_ids(fe, present=[wid])
# The floor is measured between the flips (one put or delete after each), so both see the same
# machine; the bench's own watch on the worker's key splits each flip into worker and frontend.
watch = h.Watch(m.client_port, "v1/")
wkey = h.instance_key("dynamo", "backend", "generate", wid)
floor, worker_side, frontend_side = [], [], []

def floor_round(i):
    key = "v1/floor/k"
    t0 = time.perf_counter()
    if i % 2 == 0:
        gw.put(key, '{"x":1}')
        t1 = watch.wait_for("PUT", key)
    else:
        gw.delete(key)
        t1 = watch.wait_for("DELETE", key)
    floor.append(t1 - t0)

def flip_rounds(change, split=False):
    out = []
    for i in range(FLIPS):
        ready = i % 2 == 1  # it starts listed: first notready
        t0 = change(ready)
        wait_ids(fe, present=[wid] if ready else [], absent=[] if ready else [wid])
        t1 = time.perf_counter()
        out.append(t1 - t0)
        te = watch.wait_for("PUT" if ready else "DELETE", wkey)
        if split:
            worker_side.append(te - t0)
            frontend_side.append(t1 - te)
        floor_round(i)
    return out

def by_set(ready):
    t0 = time.perf_counter()  # from the exec of `healthd set` (the edit lands before it exits)
    w.set("generate", "ready" if ready else "notready")
    return t0

ready_file = w.env["HEALTHD_READY_FILE"]
def by_rename(ready):
    with open(ready_file + ".bench", "w") as f:
        f.write("generate=ready\n" if ready else "generate=notready\n")
    os.rename(ready_file + ".bench", ready_file)
    return time.perf_counter()  # from the completed rename

flips = flip_rounds(by_set)
flips_rename = flip_rounds(by_rename, split=True)
watch.close()

# --- SIGKILL and SIGTERM to gone -------------------------------------------------------------------
def to_gone(sig, rounds):
    out = []
    for r in range(rounds):
        before = lease_of()
        x = worker(f"victim{r}")
        ids, _ = h.poll("victim registered", lambda: (len(lease_of() - before) == 1, lease_of() - before), 5)
        [vid] = ids
        wait_ids(fe, present=[vid])
        t0 = time.perf_counter()
        x.signal(sig)
        wait_ids(fe, absent=[vid], timeout=TTL + 5, interval=0.001)
        out.append(time.perf_counter() - t0)
        x.kill()
    return out
kills = to_gone(signal.SIGKILL, KILLS)
terms = to_gone(signal.SIGTERM, TERMS)

# --- keep-alive req/s: frontend with 100 instances beside a worker ---------------------------------
for i in range(100):
    iid = 0x1000 + i
    c.ctl("put", h.instance_key("dynamo", "bench", "generate", iid), h.dynamo_value("dynamo", "bench", "generate", iid))
wait_ids(fe, present=[0x1000 + 99, 0x1000], timeout=5, interval=0.01)
fe_body, w_body = len(fe.body()), len(w.body())
def wrk(port):
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c32", f"-d{DUR}s", f"http://127.0.0.1:{port}/health"],
                         capture_output=True, text=True, timeout=DUR + 30).stdout
    mt = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not mt:
        raise h.Failure(f"wrk printed no Requests/sec: {out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return float(mt.group(1)), int(non2xx.group(1)) if non2xx else 0
for p in (fe.pid, w.pid):
    subprocess.run(["taskset", "-a", "-cp", "0", str(p)], capture_output=True, check=True)
fe_rps, fe_bad = wrk(fe.port)
w_rps, w_bad = wrk(w.port)
for p in (fe.pid, w.pid):
    subprocess.run(["taskset", "-a", "-cp", "0,1", str(p)], capture_output=True, check=True)

# --- MANY instances: RSS and change to /health ---------------------------------------------------
base = 0x100000
for start in range(0, MANY, 100):
    gw.put_many([(h.instance_key("dynamo", "many", "generate", base + i), h.dynamo_value("dynamo", "many", "generate", base + i))
                 for i in range(start, min(start + 100, MANY))])
total = MANY + 100 + 1
t0 = time.perf_counter()
h.poll(f"frontend lists {total} instances", lambda: (h.metrics(fe.port).get("healthd_etcd_instances") == str(total), h.metrics(fe.port).get("healthd_etcd_instances")), 60, 0.05)
wait_ids(fe, present=[base + MANY - 1], timeout=10, interval=0.01)
rss_many = fe.rss_kib()
many_body = len(fe.body())
one_get = []
for _ in range(CHANGES):
    t0 = time.perf_counter()
    fe.body()
    one_get.append(time.perf_counter() - t0)
changes = []
for i in range(CHANGES):
    iid = 0x7000000 + i // 2
    key = h.instance_key("dynamo", "many", "zz", iid)
    t0 = time.perf_counter()
    if i % 2 == 0:
        gw.put(key, h.dynamo_value("dynamo", "many", "zz", iid))
        wait_ids(fe, present=[iid], timeout=5)
    else:
        gw.delete(key)
        wait_ids(fe, absent=[iid], timeout=5)
    changes.append(time.perf_counter() - t0)
rss_after = fe.rss_kib()
gw.delete_prefix("v1/instances/dynamo/many/")
gw.delete_prefix("v1/instances/dynamo/bench/")
w.kill()
fe.kill()

# --- idle: CPU ticks and syscalls of a registered worker and a frontend (Dynamo's TTL, 10 s) ------
iw, ife = worker("idle-worker", ttl=10), frontend("idle-frontend", ttl=10)
# Beside them, no etcd: a worker whose readiness file's directory appeared after it started.
late_dir = h.temp_dir("healthd-late-")
il = h.Healthd(BIN, "idle-late-dir", {"DYN_SYSTEM_PORT": "0", "HEALTHD_READY_FILE": os.path.join(late_dir, "run", "ready")})
def inotify_watching(pid):
    """True once one of pid's descriptors is an inotify instance with a watch (the ancestor)."""
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            if "inotify wd:" in open(f"/proc/{pid}/fdinfo/{fd}").read():
                return True
        except OSError:
            pass
    return False
h.poll("late-dir worker watching the directory's parent", lambda: inotify_watching(il.pid), 5)
il.set("generate", "ready")
[iid], _ = h.poll("idle worker registered", lambda: (len(lease_of()) == 1, lease_of()), 5)
wait_ids(ife, present=[iid], timeout=5, interval=0.01)
ife.http.close()
iw.http and iw.http.close()
t_before = (iw.cpu_ticks(), ife.cpu_ticks(), il.cpu_ticks())
time.sleep(IDLE)  # the measurement itself: idle for IDLE seconds
ticks = (iw.cpu_ticks() - t_before[0], ife.cpu_ticks() - t_before[1], il.cpu_ticks() - t_before[2])
il.kill()
def strace(pid, path):
    return subprocess.Popen(["timeout", "-s", "INT", str(IDLE), "strace", "-c", "-f", "-q", "-o", path, "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
sw, sf = os.path.join(iw.dir, "strace"), os.path.join(ife.dir, "strace")
pw, pf = strace(iw.pid, sw), strace(ife.pid, sf)
pw.wait(IDLE + 20); pf.wait(IDLE + 20)
def syscalls(path):
    calls, total = {}, 0
    for line in open(path):
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            calls[f[-1]] = int(f[3])
        elif f and f[-1] == "total":
            total = int(f[2] if len(f) == 4 else f[3])
    top = ", ".join(f"{k} {v}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:5])
    return total, top
(sc_w, top_w), (sc_f, top_f) = syscalls(sw), syscalls(sf)
hz = os.sysconf("SC_CLK_TCK")
size = os.stat(BIN).st_size

def row(label, a, b="-", target="-", ok=None, ratio=None):
    if ratio is None:
        try:
            ratio = f"{float(a) / float(b):.2f}x"
        except (ValueError, ZeroDivisionError):
            ratio = "-"
    verdict = "" if ok is None else (" ok" if ok else " MISSED")
    print(f"| {label} | {a} | {b} | {ratio} | {target}{verdict} |")

etcd_v = subprocess.run([c.etcd, "--version"], capture_output=True, text=True).stdout.split("\n")[0].replace("etcd Version: ", "")
print()
print(f"healthd ({KIND}, {BIN}) with etcd {etcd_v} (one member, data on tmpfs), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
      f"{os.cpu_count()} cores{', SMOKE (numbers meaningless)' if SMOKE else ''}")
print(f"ETCD_LEASE_TTL={TTL} s (idle rows: 10 s); {FLIPS} flips each way of flipping ({2 * FLIPS} puts/deletes for the floor, one after each flip); {KILLS} SIGKILL and {TERMS} SIGTERM rounds; wrk -t1 -c32 -d{DUR}s, "
      f"healthd on core 0, wrk on core 1; /health bodies: frontend {fe_body} bytes (100 instances), worker {w_body} bytes, "
      f"frontend with {total} instances {many_body} bytes")
print()
print("| Row | healthd | beside it | ratio | target |")
print("|---|---|---|---|---|")
f50, f99, e50, e99 = pct(flips, 50), pct(flips, 99), pct(floor, 50), pct(floor, 99)
r50, r99 = pct(flips_rename, 50), pct(flips_rename, 99)
row("flip to visible p50 (ms; exec of `healthd set` -> frontend /health; beside: etcd put -> watch event)", ms(f50), ms(e50))
row("flip to visible p99 (ms; same)", ms(f99), ms(e99), "<= 2x floor and <= 50 ms", f99 <= 2 * e99 and f99 <= 0.05)
row("flip to visible max (ms; same)", ms(max(flips)), ms(max(floor)))
row("flip to visible p50 (ms; completed rename of the readiness file -> frontend /health)", ms(r50), ms(e50))
row("flip to visible p99 (ms; same)", ms(r99), ms(e99), "<= 2x floor and <= 50 ms", r99 <= 2 * e99 and r99 <= 0.05)
row("  of which worker: rename -> etcd watch event, p50 / p99 (ms)", f"{ms(pct(worker_side, 50))} / {ms(pct(worker_side, 99))}", f"{ms(e50)} / {ms(e99)}", ratio="-")
row("  of which frontend: etcd watch event -> /health, p50 / p99 (ms)", f"{ms(pct(frontend_side, 50))} / {ms(pct(frontend_side, 99))}", "-", ratio="-")
row(f"SIGKILL to gone, median of {KILLS} (ms; beside: the TTL)", ms(pct(kills, 50)), TTL * 1000, f"<= TTL + 1 s = {TTL + 1}000 ms", max(kills) <= TTL + 1)
row(f"SIGKILL to gone, max (ms)", ms(max(kills)), TTL * 1000)
row(f"SIGTERM to gone, median of {TERMS} (ms; the lease revoked)", ms(pct(terms, 50)), "-", "<= 100 ms", max(terms) <= 0.1)
row(f"SIGTERM to gone, max (ms)", ms(max(terms)), "-")
row(f"keep-alive req/s, frontend /health with 100 instances (beside: a worker's /health)", f"{fe_rps:.0f}", f"{w_rps:.0f}")
row(f"non-2xx answers during wrk (frontend, worker)", fe_bad, w_bad, "0", fe_bad == 0 and w_bad == 0, "-")
row(f"frontend RSS with {total} instances (KiB; beside: in sync with none)", rss_many, rss_empty, "<= 16384 KiB", rss_many <= 16384)
row(f"frontend RSS after {CHANGES} changes and polls at {total} (KiB)", rss_after, rss_empty, "<= 16384 KiB", rss_after <= 16384)
row(f"change to /health with {total} instances, median of {CHANGES} (ms; beside: one /health GET)", ms(pct(changes, 50)), ms(pct(one_get, 50)), "<= 100 ms", None)
row(f"change to /health with {total} instances, max (ms; beside: slowest GET)", ms(max(changes)), ms(max(one_get)), "<= 100 ms", max(changes) <= 0.1)
row(f"idle CPU ticks in {IDLE} s, worker registered (beside: frontend)", ticks[0], ticks[1], "~0", None, "-")
row(f"idle syscalls in {IDLE} s, strace -c -f (worker; beside: frontend)", sc_w, sc_f, "-", None, "-")
row(f"idle CPU ticks in {IDLE} s, no etcd, readiness file's directory made after start", ticks[2], "-", "~0", None, "-")
row("binary size (bytes)", size, "-", "<= 1,400,000" if "static" in KIND else "- (static build only)", size <= 1400000 if "static" in KIND else None)
print()
print(f"Idle syscalls, top 5: worker: {top_w or 'none'}; frontend: {top_f or 'none'}. Clock ticks are 1/{hz} s.")
EOF
