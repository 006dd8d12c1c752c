#!/usr/bin/env bash
# healthd against nginx, side by side in one run: each server pinned to core 0, the load (wrk and
# scripts/hostile.py) to core 1. nginx is Debian's, one process (master_process off), access_log
# off, answering a fixed JSON body of the same size as healthd's /health body.
#
#   scripts/bench.sh            full run (about 2 minutes), a Markdown table on stdout
#   scripts/bench.sh --smoke    a few seconds, proves the script still runs (CI)
#
# Installs wrk and nginx (apt) when missing. Loopback only; every wait has a deadline.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
[ "${1:-}" = "--smoke" ] && smoke=true
if $smoke; then
  dur=1 probes=200 idle=500 slow=50
else
  dur=10 probes=5000 idle=5000 slow=500
fi

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need taskset; then
  echo "bench: installing wrk and nginx" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk nginx util-linux >/dev/null
fi
nginx_bin=$(command -v nginx)
[ "$(nproc)" -ge 2 ] || { echo "bench: needs 2 cores (server on 0, load on 1)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The binary: the static build when the project has one, else the release build.
if [ -n "${HEALTHD_BIN:-}" ]; then
  bin=$HEALTHD_BIN
elif [ -x scripts/build-static.sh ] && bin=$(scripts/build-static.sh 2>/dev/null | tail -1) && [ -x "$bin" ]; then
  :
else
  cargo build --release --quiet
  bin=target/release/healthd
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port: poll until it accepts connections (10 s)
  local end=$((SECONDS + 10))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ $SECONDS -lt $end ] || { echo "bench: nothing listening on $1" >&2; exit 1; }
    sleep 0.02
  done
}
proc_field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; } # pid field
fds_of() { ls "/proc/$1/fd" | wc -l; }
load() { taskset -c 1 "$@"; }
hostile() { load python3 scripts/hostile.py "$@"; }
wrk_rps() { # url [extra args]: requests/s
  load wrk -t1 -c32 -d"${dur}s" "$@" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }'
}

hport=$(free_port)
nport=$(free_port)
henv=(env -i DYN_SYSTEM_PORT="$hport" DYN_SYSTEM_HOST=127.0.0.1 DYN_SYSTEM_STARTING_HEALTH_STATUS=ready)

# healthd's /health body, to give nginx one of the same size.
"${henv[@]}" taskset -c 0 "$bin" 2>"$tmp/healthd.log" &
hpid=$!
pids+=("$hpid")
wait_port "$hport"
body=$(python3 - "$hport" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
print(data.split(b"\r\n\r\n", 1)[1].decode())
EOF
)
nbody=$(python3 -c '
import sys
b = sys.argv[1]
# Same JSON shape and byte count, fixed values.
fixed = "{\"status\":\"ready\",\"uptime\":{\"secs\":1,\"nanos\":1},\"endpoints\":{}}"
print(fixed[:-1] + " " * (len(b) - len(fixed)) + "}" if len(b) >= len(fixed) else b)' "$body")

cat >"$tmp/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 16384; multi_accept on; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nport backlog=4096;
    location / { default_type application/json; return 200 '$nbody'; }
  }
}
EOF
taskset -c 0 "$nginx_bin" -c "$tmp/nginx.conf" -p "$tmp" 2>"$tmp/nginx.log" &
npid=$!
pids+=("$npid")
wait_port "$nport"

row() { # label healthd nginx [lower-is-better note]
  local ratio
  ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { if (b + 0 > 0) printf "%.2fx", a / b; else print "-" }')
  printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$ratio"
}

# Idle numbers before any load.
h_rss_idle=$(proc_field "$hpid" VmRSS)
n_rss_idle=$(proc_field "$npid" VmRSS)

h_ka=$(wrk_rps "http://127.0.0.1:$hport/health")
n_ka=$(wrk_rps "http://127.0.0.1:$nport/health")
h_cl=$(wrk_rps -H "Connection: close" "http://127.0.0.1:$hport/health")
n_cl=$(wrk_rps -H "Connection: close" "http://127.0.0.1:$nport/health")
read -r h_p50 h_p99 < <(hostile probe "$hport" "$probes")
read -r n_p50 n_p99 < <(hostile probe "$nport" "$probes")

h_rss_load=$(proc_field "$hpid" VmRSS)
n_rss_load=$(proc_field "$npid" VmRSS)
h_threads=$(proc_field "$hpid" Threads)
n_threads=$(proc_field "$npid" Threads)

# Probes while idle and slowloris connections are held (the holder reopens what is closed).
held_p99() { # port pid
  # Not through a shell function: $! must be python itself, and it must not hold our stdout.
  taskset -c 1 python3 scripts/hostile.py hold "$1" "$idle" "$slow" 120 >/dev/null &
  local holder=$!
  pids+=("$holder")
  local end=$((SECONDS + 30))
  until [ "$(fds_of "$2")" -ge $((idle + slow)) ]; do
    [ $SECONDS -lt $end ] || { echo "bench: the holder never held $((idle + slow)) connections" >&2; exit 1; }
    sleep 0.05
  done
  hostile probe "$1" "$probes" | awk '{ print $2 }'
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
}
h_held=$(held_p99 "$hport" "$hpid")
n_held=$(held_p99 "$nport" "$npid")

kill -9 "$hpid" "$npid" 2>/dev/null || true
wait "$hpid" "$npid" 2>/dev/null || true

# Time from exec to the first 200 (median of 5; the spawned server is pinned to core 0).
first200() { # port argv...
  local port=$1
  shift
  for _ in 1 2 3 4 5; do
    python3 - "$port" "$@" <<'EOF'
import sys
sys.path.insert(0, "scripts")
import hostile
# The server starts on core 0; the busy poller moves to the load core (1) right after the spawn.
hostile.cmd_first200(int(sys.argv[1]), sys.argv[2:], server_cpu=0, poll_cpu=1)
EOF
  done | sort -n | sed -n 3p
}
# Fresh ports: the load above left some 100,000 connections to hport and nport in TIME_WAIT, and
# finding a free local port for each new connection to them costs milliseconds.
fh=$(free_port)
fn=$(free_port)
sed "s/127.0.0.1:$nport /127.0.0.1:$fn /; s|nginx.pid|nginx-first.pid|" "$tmp/nginx.conf" >"$tmp/nginx-first.conf"
h_first=$(DYN_SYSTEM_PORT=$fh DYN_SYSTEM_HOST=127.0.0.1 DYN_SYSTEM_STARTING_HEALTH_STATUS=ready \
  first200 "$fh" "$(readlink -f "$bin")" 2>/dev/null)
n_first=$(first200 "$fn" "$nginx_bin" -c "$tmp/nginx-first.conf" -p "$tmp" 2>/dev/null)

h_size=$(stat -c %s "$bin")
n_size=$(stat -c %s "$nginx_bin")

echo
echo "healthd ($bin) vs $("$nginx_bin" -v 2>&1 | sed 's/.*: //'), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, server on core 0, load on core 1$($smoke && echo ', SMOKE (numbers meaningless)')"
echo "body: ${#body} bytes; wrk -t1 -c32 -d${dur}s; $probes sequential probes; held: $idle idle + $slow slowloris"
echo
echo "| Row | healthd | nginx | healthd/nginx |"
echo "|---|---|---|---|"
row "keep-alive req/s (wrk, 32 conns)" "$h_ka" "$n_ka"
row "connection-per-request req/s (wrk, Connection: close)" "$h_cl" "$n_cl"
row "probe p50, fresh connection each (µs)" "$h_p50" "$n_p50"
row "probe p99, fresh connection each (µs)" "$h_p99" "$n_p99"
row "probe p99 with $idle idle + $slow slowloris held (µs)" "$h_held" "$n_held"
row "RSS idle (KiB)" "$h_rss_idle" "$n_rss_idle"
row "RSS after load (KiB)" "$h_rss_load" "$n_rss_load"
row "threads" "$h_threads" "$n_threads"
row "binary size (bytes; nginx also loads shared libraries)" "$h_size" "$n_size"
row "exec to first 200 (µs, median of 5)" "$h_first" "$n_first"
