#!/usr/bin/env bash
# Real clients against the real binary, no mocks: tritonclient[http] (KServe v2), the Dapr Python
# SDK (wait_for_sidecar), curl, GNU wget --spider (HEAD) and busybox wget. Installs what it needs
# (apt-get for the tools; the project's test venv .venv-clients/ with pinned versions, made by
# scripts/lib/venv.sh and reused when it matches), builds healthd, and fails loudly on the first
# unexpected outcome.
set -euo pipefail
cd "$(dirname "$0")/../.."
SUITE=clients
. scripts/lib/suite.sh
. scripts/lib/venv.sh

# --- tools -------------------------------------------------------------------------------------
missing=()
command -v curl >/dev/null || missing+=(curl)
wget --version 2>/dev/null | grep -q 'GNU Wget' || missing+=(wget)
command -v busybox >/dev/null || missing+=(busybox)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
command -v python3 >/dev/null || missing+=(python3 python3-venv)
apt_install "${missing[@]}"

# --- the Python clients, pinned (scripts/lib/venv.sh) --------------------------------------------
test_venv clients || fail "could not make the test venv $VENV"

# --- healthd -------------------------------------------------------------------------------------
cargo build -q || fail "cargo build failed"
BIN=target/debug/healthd

# start NAME [VAR=value ...]: runs healthd with a clean environment, waits for "listening on",
# sets PORT and PID.
start() {
  local name=$1
  shift
  local log="$WORK/$name.log"
  env -i DYN_SYSTEM_HOST=127.0.0.1 DYN_SYSTEM_PORT=0 HEALTHD_SHUTDOWN_GRACE=1h "$@" "$BIN" 2>"$log" &
  PID=$!
  PIDS+=("$PID")
  disown "$PID" # killed at exit; no job-control notice then
  local deadline=$((SECONDS + 10))
  until grep -qs 'listening on' "$log"; do
    [ $SECONDS -lt $deadline ] || fail "$name: healthd never said 'listening on'"
    kill -0 "$PID" 2>/dev/null || fail "$name: healthd exited"
    sleep 0.05
  done
  PORT=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -1)
}

# wait_for WHAT COMMAND...: polls COMMAND until it succeeds (10 s deadline).
wait_for() {
  local what=$1
  shift
  local deadline=$((SECONDS + 10))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "timed out waiting for $what"
    sleep 0.05
  done
}

# expect_curl METHOD PATH STATUS BODY: one curl request; exact status and body.
expect_curl() {
  local out status body
  out=$(curl -s -X "$1" -o "$WORK/body" -w '%{http_code}' "http://127.0.0.1:$PORT$2") ||
    fail "curl $1 $2: exit $?"
  body=$(cat "$WORK/body")
  status=$out
  [ "$status" = "$3" ] || fail "curl $1 $2: status $status, want $3 (body: $body)"
  [ "$body" = "$4" ] || fail "curl $1 $2: body $body, want $4"
}

# expect_exit CODE WHAT COMMAND...: COMMAND exits with CODE.
expect_exit() {
  local want=$1 what=$2 got=0
  shift 2
  "$@" >"$WORK/out" 2>&1 || got=$?
  [ "$got" = "$want" ] || fail "$what: exit $got, want $want; output: $(cat "$WORK/out")"
}

ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")" = 200 ]; }
draining() { grep -q 'draining' "$WORK/$1.log"; }

# --- curl, GNU wget, busybox wget against one healthd, not ready then ready --------------------
start tools DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS='[generate]'
say "curl, wget, busybox wget on port $PORT (not ready)"
expect_curl GET /v2/health/ready 400 '{"error":"Server not ready"}'
expect_curl GET /v2/health/live 200 '{"live":true}'
expect_curl GET /v2/models/generate/ready 400 "{\"error\":\"Model 'generate' is not ready\"}"
expect_curl GET /v1.0/healthz 500 '{"errorCode":"ERR_HEALTH_NOT_READY","message":"dapr is not ready"}'
expect_curl GET /v1.0/healthz/outbound 204 ''
expect_curl GET /readyz 500 "$(printf '[-]generate failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n')"
expect_curl GET /livez 200 ok
expect_curl POST /readyz 405 ''
# curl --fail is how shell probes use it: exit 22 on >= 400.
expect_exit 22 "curl --fail /readyz (not ready)" curl -sf "http://127.0.0.1:$PORT/readyz"
expect_exit 0 "curl --fail /livez" curl -sf "http://127.0.0.1:$PORT/livez"
# GNU wget --spider sends HEAD. It fails with exit 8 ("server issued an error response") on a
# 4xx, and treats a 5xx as transient: it retries (once here, --tries=1) and exits 4.
for spec in /v2/health/ready:8 /v2/models/nope/ready:8 /v1.0/healthz:4 /readyz:4 /health:8; do
  path=${spec%:*}
  expect_exit "${spec##*:}" "wget --spider $path (not ready)" wget --spider -q --tries=1 -T 5 "http://127.0.0.1:$PORT$path"
done
for path in /v2/health/live /v1.0/healthz/outbound /livez; do
  expect_exit 0 "wget --spider $path" wget --spider -q --tries=1 -T 5 "http://127.0.0.1:$PORT$path"
done
# No -T: Debian's busybox 1.35 wget segfaults with it.
for path in /v2/health/ready /v1.0/healthz /readyz /health; do
  expect_exit 1 "busybox wget $path (not ready)" busybox wget -q -O /dev/null "http://127.0.0.1:$PORT$path"
done
expect_exit 0 "busybox wget /v2/health/live" busybox wget -q -O "$WORK/bb" "http://127.0.0.1:$PORT/v2/health/live"
[ "$(cat "$WORK/bb")" = '{"live":true}' ] || fail "busybox wget body: $(cat "$WORK/bb")"

kill -USR1 "$PID"
wait_for "ready after SIGUSR1" ready
say "curl, wget, busybox wget (ready)"
expect_curl GET /v2/health/ready 200 '{"ready":true}'
expect_curl GET /v2/models/generate/versions/1/ready 200 '{"name":"generate","ready":true}'
expect_curl GET /v1.0/healthz 204 ''
expect_curl GET '/readyz?verbose' 200 "$(printf '[+]generate ok\n[+]shutdown ok\nreadyz check passed\n')"
for path in /v2/health/ready /v1.0/healthz /v1.0/healthz/outbound /readyz /health /live; do
  expect_exit 0 "wget --spider $path (ready)" wget --spider -q --tries=1 -T 5 "http://127.0.0.1:$PORT$path"
  expect_exit 0 "busybox wget $path (ready)" busybox wget -q -O /dev/null "http://127.0.0.1:$PORT$path"
done
expect_exit 0 "busybox wget --spider /readyz" busybox wget -q --spider "http://127.0.0.1:$PORT/readyz"

# --- tritonclient: one client (one keep-alive connection) through every state ---------------
start triton DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS='[generate]'
say "tritonclient $TRITONCLIENT_VERSION on port $PORT"
"$PY" - "$PORT" "$PID" <<'PY' || fail "tritonclient"
import os, signal, sys, time
import tritonclient.http as httpclient

port, pid = sys.argv[1], int(sys.argv[2])
c = httpclient.InferenceServerClient(f"127.0.0.1:{port}")

def expect(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")

def poll(what, cond):
    deadline = time.monotonic() + 10
    while not cond():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.02)

def peers():
    """Client ports of the established connections to healthd's port (from /proc/net/tcp)."""
    out = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if f[3] == "01" and int(f[1].split(":")[1], 16) == int(port):
            out.add(int(f[2].split(":")[1], 16))
    return out

expect("live (not ready)", c.is_server_live(), True)
first = peers()
expect("connections after the first call", len(first), 1)
expect("ready (not ready)", c.is_server_ready(), False)
expect("model generate (not ready)", c.is_model_ready("generate"), False)
expect("model nope", c.is_model_ready("nope"), False)
meta = c.get_server_metadata()
expect("metadata name", meta["name"], "healthd")
expect("metadata extensions", meta["extensions"], [])

os.kill(pid, signal.SIGUSR1)
poll("ready after SIGUSR1", c.is_server_ready)
expect("live (ready)", c.is_server_live(), True)
expect("model generate (ready)", c.is_model_ready("generate"), True)
expect("model generate v1 (ready)", c.is_model_ready("generate", "1"), True)
expect("model nope (ready)", c.is_model_ready("nope"), False)
expect("one keep-alive connection for every call so far", peers(), first)

os.kill(pid, signal.SIGUSR2)
poll("not ready after SIGUSR2", lambda: not c.is_server_ready())
expect("model generate (not ready again)", c.is_model_ready("generate"), False)

os.kill(pid, signal.SIGTERM)
poll("not live while draining", lambda: not c.is_server_live())
expect("ready (draining)", c.is_server_ready(), False)
c.close()
print("tritonclient: ok (one keep-alive connection reused)")
PY

# --- Dapr SDK: wait_for_sidecar polls /v1.0/healthz/outbound (= live) -------------------------
# dapr_wait PORT TIMEOUT LOG: runs wait_for_sidecar in a fresh interpreter (the SDK reads its
# settings at import); exit 0 when it returned, 3 when it timed out.
dapr_wait() {
  DAPR_HTTP_PORT=$1 DAPR_HEALTH_TIMEOUT=$2 "$PY" - >"$3" 2>&1 <<'PY'
import sys, time
from dapr.clients.health import DaprHealth

start = time.monotonic()
try:
    DaprHealth.wait_for_sidecar()
except TimeoutError as e:
    print(f"timed out after {time.monotonic() - start:.1f}s: {e}")
    sys.exit(3)
print(f"sidecar up after {time.monotonic() - start:.1f}s")
PY
}

start dapr
say "dapr $DAPR_VERSION on port $PORT"
dapr_wait "$PORT" 10 "$WORK/dapr-live.log" || fail "wait_for_sidecar against a live healthd: exit $?"
grep -q 'sidecar up after 0\.' "$WORK/dapr-live.log" || fail "wait_for_sidecar was slow: $(cat "$WORK/dapr-live.log")"

kill -TERM "$PID"
wait_for "draining" draining dapr
code=0
dapr_wait "$PORT" 2 "$WORK/dapr-draining.log" || code=$?
[ "$code" = 3 ] || fail "wait_for_sidecar against a draining healthd: exit $code, want a timeout"
grep -q 'failed: Internal Server Error' "$WORK/dapr-draining.log" ||
  fail "wait_for_sidecar did not see the 500: $(cat "$WORK/dapr-draining.log")"

# Flip: wait on a closed port, then start healthd there; the wait must return.
FREE=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
code=0
dapr_wait "$FREE" 2 "$WORK/dapr-closed.log" || code=$?
[ "$code" = 3 ] || fail "wait_for_sidecar against a closed port: exit $code, want a timeout"
dapr_wait "$FREE" 30 "$WORK/dapr-flip.log" &
WAITER=$!
PIDS+=("$WAITER")
wait_for "a failed probe on the closed port" grep -q 'failed' "$WORK/dapr-flip.log"
start flip DYN_SYSTEM_PORT="$FREE"
code=0
wait "$WAITER" || code=$?
[ "$code" = 0 ] || fail "wait_for_sidecar did not return once healthd was up: exit $code; $(cat "$WORK/dapr-flip.log")"
say "$(tail -1 "$WORK/dapr-flip.log")"

say "all client checks passed"
