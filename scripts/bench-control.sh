#!/usr/bin/env bash
# Benchmark of host-process control (not a timed test; CI does not run it):
#   - latency from a completed readiness-file write (rename-replace, and in-place `write+close`)
#     to the HTTP answer changing, p50/p99 (target: p99 <= 5 ms);
#   - latency from a signal (SIGUSR1/SIGUSR2) to the answer changing, p50/p99 (target: p99 <= 1 ms);
#   - CPU used by an idle healthd watching a file (utime+stime from /proc/PID/stat; target: ~0).
# The client polls /health over one keep-alive connection, so each figure includes one request
# round trip; the first row shows that floor. Usage: scripts/bench-control.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=300 idle=10
if [ "${1:-}" = "--quick" ]; then rounds=30 idle=2; fi

cargo build --release --quiet
work=$(mktemp -d)
pid=
cleanup() { if [ -n "$pid" ]; then kill -KILL "$pid"; wait "$pid"; fi 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

env -i DYN_SYSTEM_PORT=0 DYN_SYSTEM_HOST=127.0.0.1 HEALTHD_READY_FILE="$work/ready" \
  target/release/healthd 2>"$work/log" &
pid=$!
for _ in $(seq 500); do grep -q 'listening on' "$work/log" && break; sleep 0.01; done
addr=$(grep -o 'listening on [^ ]*' "$work/log" | cut -d' ' -f3)
[ -n "$addr" ] || { cat "$work/log" >&2; exit 1; }

python3 - "$addr" "$work/ready" "$pid" "$rounds" "$idle" <<'EOF'
import os, signal, socket, sys, time

addr, path, pid, rounds, idle = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
host, port = addr.rsplit(":", 1)
conn = socket.create_connection((host, int(port)), timeout=5)
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
REQUEST = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"

def status():
    """One keep-alive request, as lean as Python allows (the floor of every figure)."""
    conn.sendall(REQUEST)
    buf = b""
    while True:
        buf += conn.recv(65536)
        head, sep, body = buf.partition(b"\r\n\r\n")
        if sep:
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            if len(body) >= length:
                return int(buf[9:12])

def until(want, deadline=2.0):
    end = time.perf_counter() + deadline
    while time.perf_counter() < end:
        if status() == want:
            return time.perf_counter()
    raise SystemExit(f"answer never became {want}")

def rename_write(text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)

def inplace_write(text):
    with open(path, "w") as f:
        f.write(text)

def measure(change):
    out = []
    for i in range(rounds):
        ready = i % 2 == 0
        until(503 if ready else 200)          # settled in the previous state
        t0 = time.perf_counter()               # signals: from just before kill(2)
        change(ready)
        if change is not signal_change:
            t0 = time.perf_counter()           # files: from the completed write (close/rename)
        out.append((until(200 if ready else 503) - t0) * 1000)
    out.sort()
    pct = lambda p: out[min(len(out) - 1, int(round(p / 100 * (len(out) - 1))))]
    return pct(50), pct(99), out[-1]

def signal_change(ready):
    os.kill(pid, signal.SIGUSR1 if ready else signal.SIGUSR2)

def measure_floor():
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        status()
        out.append((time.perf_counter() - t0) * 1000)
    out.sort()
    pct = lambda p: out[min(len(out) - 1, int(round(p / 100 * (len(out) - 1))))]
    return pct(50), pct(99), out[-1]

rename_write("notready\n")
until(503)
rows = [
    ("one request (floor)", measure_floor(), float("inf")),
    ("file, rename-replace", measure(lambda r: rename_write("ready\n" if r else "notready\n")), 5.0),
    ("file, in-place write", measure(lambda r: inplace_write("ready\n" if r else "notready\n")), 5.0),
]
os.unlink(path)                                # back to the starting status for signals
until(503)
rows.append(("signal USR1/USR2", measure(signal_change), 1.0))

def cpu_ticks():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime + stime

conn.close()
hz = os.sysconf("SC_CLK_TCK")
before = cpu_ticks()
time.sleep(idle)                               # the measurement itself: idle for `idle` seconds
used = cpu_ticks() - before

print(f"{'what':<24} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'target p99':>11}  ({rounds} rounds)")
for name, (p50, p99, mx), target in rows:
    ok = "" if target == float("inf") else "ok" if p99 <= target else "MISSED"
    goal = "-" if target == float("inf") else "<= %g ms" % target
    print(f"{name:<24} {p50:>8.3f} {p99:>8.3f} {mx:>8.3f} {goal:>11}  {ok}")
print(f"{'idle CPU, file watched':<24} {used} ticks in {idle} s ({used / hz / idle * 100:.3f}% of a core; target ~0)")
EOF
