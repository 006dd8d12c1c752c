#!/usr/bin/env bash
# REDbot, the HTTP linter, against every route the release binary serves, in every state: starting
# (not ready), ready, not ready again, draining (after SIGTERM), the frontend role without and
# with instances, and the frontend's cluster view (listing from a real etcd, and with its etcd
# down). Each check is `redbot -o har URL`; the HAR's notes are read and any note at level
# WARN or BAD fails the suite, printed with its state and route. The one allowed note is
# STATUS_BAD_REQUEST on KServe's not-ready answers: the KServe v2 protocol requires 400 there.
# Installs what it needs (python3-venv with apt-get; REDbot into the shared test venv made by
# scripts/lib/venv.sh). One healthd per state; the checks run concurrently in one Python process
# (scripts/lib/redbot_har.py) to stay well under a minute. To check one URL by hand:
# .venv-clients/bin/redbot -o har http://127.0.0.1:PORT/PATH
set -euo pipefail
cd "$(dirname "$0")/../.."
SUITE=redbot
. scripts/lib/suite.sh
. scripts/lib/venv.sh

JOBS=${REDBOT_JOBS:-4}

# --- tools -------------------------------------------------------------------------------------
missing=()
command -v python3 >/dev/null || missing+=(python3)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
command -v curl >/dev/null || missing+=(curl)
apt_install "${missing[@]}"
test_venv redbot || fail "could not make the test venv $VENV"
REDBOT="$VENV/bin/redbot"

# --- healthd -------------------------------------------------------------------------------------
# HEALTHD_BIN=PATH checks another build (for example one from before a change) instead.
if [ -n "${HEALTHD_BIN:-}" ]; then
  BIN=$HEALTHD_BIN
else
  cargo build --release -q || fail "cargo build --release failed"
  BIN=target/release/healthd
fi
START=$SECONDS

# start STATE [VAR=value ...]: runs healthd for STATE with a clean environment, a long drain and a
# readiness file of its own; waits for "listening on"; records the port in $WORK/STATE.port.
start() {
  local state=$1
  shift
  local log="$WORK/$state.log"
  env -i DYN_SYSTEM_HOST=127.0.0.1 DYN_SYSTEM_PORT=0 DYN_HTTP_PORT=0 HEALTHD_SHUTDOWN_GRACE=1h \
    HEALTHD_READY_FILE="$WORK/$state.ready" "$@" "$BIN" 2>"$log" &
  local pid=$!
  PIDS+=("$pid")
  disown "$pid" # killed at exit; no job-control notice then
  echo "$pid" >"$WORK/$state.pid"
  local deadline=$((SECONDS + 10))
  until grep -qs 'listening on' "$log"; do
    [ $SECONDS -lt $deadline ] || fail "$state: healthd never said 'listening on'"
    kill -0 "$pid" 2>/dev/null || fail "$state: healthd exited"
    sleep 0.05
  done
  sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -1 >"$WORK/$state.port"
}

# set_file STATE ARGS...: `healthd set ARGS` on STATE's readiness file.
set_file() {
  local state=$1
  shift
  HEALTHD_READY_FILE="$WORK/$state.ready" "$BIN" set "$@" >>"$WORK/$state.log" 2>&1 ||
    fail "$state: healthd set $*"
}

# wait_code STATE PATH CODE [BODY-SUBSTRING]: polls until PATH answers CODE (10 s deadline).
wait_code() {
  local port out deadline=$((SECONDS + 10))
  port=$(cat "$WORK/$1.port")
  while :; do
    out=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$port$2" || true)
    [ "${out##* }" = "$3" ] && [[ "$out" == *"${4:-}"* ]] && return 0
    [ $SECONDS -lt $deadline ] || fail "$1: $2 never answered $3${4:+ with $4} (last: $out)"
    sleep 0.05
  done
}

WORKER=(DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS='[generate]')
FRONTEND=(HEALTHD_ROLE=frontend DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS='[generate]')

start starting "${WORKER[@]}"
start ready "${WORKER[@]}"
start notready "${WORKER[@]}"
start draining "${WORKER[@]}"
start frontend-empty "${FRONTEND[@]}"
start frontend-instances "${FRONTEND[@]}"

# The cluster view (issue 13): a frontend listing from a real etcd (a key written as Dynamo writes
# it), and one whose etcd never answers ("Discovery unavailable since ...").
. scripts/lib/etcd.sh
etcd_start "$WORK/etcd" 2>"$WORK/etcd-start.log" || fail "no etcd: $(cat "$WORK/etcd-start.log")"
PIDS+=("$ETCD_PID")
etcdctl_ put v1/instances/dynamo/backend/generate/694d98147d54be25 \
  '{"type":"Endpoint","component":"backend","endpoint":"generate","namespace":"dynamo","instance_id":7587888160958627365,"transport":{"nats_tcp":"dynamo_backend.generate-694d98147d54be25"}}' >/dev/null ||
  fail "etcdctl put failed"
start frontend-etcd HEALTHD_ROLE=frontend "ETCD_ENDPOINTS=http://127.0.0.1:$ETCD_PORT"
start frontend-etcd-down HEALTHD_ROLE=frontend "ETCD_ENDPOINTS=http://127.0.0.1:$(free_port)"

set_file ready generate ready
set_file notready generate ready
set_file draining generate ready
set_file frontend-instances generate ready
wait_code ready /health 200
wait_code notready /health 200
wait_code draining /health 200
wait_code frontend-instances /health 200 '"status":"healthy"'
set_file notready generate notready
wait_code notready /health 503
kill -TERM "$(cat "$WORK/draining.pid")"
wait_code draining /health 503
grep -q draining "$WORK/draining.log" || fail "draining: no 'draining' log line"
wait_code frontend-empty /health 200 '"status":"unhealthy"'
wait_code frontend-etcd /health 200 '"instance_id":7587888160958627365'
wait_code frontend-etcd-down /health 200 'Discovery unavailable since'

# Every route healthd serves (src/routes.rs, src/dialect/*.rs), plus a path no route knows.
WORKER_ROUTES=(
  /health /live /ready /metrics /metadata /engine/x /nope
  /v2 /v2/health/live /v2/health/ready /v2/models/generate/ready
  /v2/models/generate/versions/1/ready /v2/models/nope/ready
  /v1.0/healthz /v1.0/healthz/outbound
  /livez /livez/ping '/livez?verbose' /readyz '/readyz?verbose' '/readyz?exclude=generate'
  /readyz/generate /readyz/shutdown /readyz/nope
)
# The frontend role has no /ready, /metadata or /engine/* (they are 404 there, as /nope is).
FRONTEND_ROUTES=(
  /health /live /metrics /metadata /nope
  /v2 /v2/health/live /v2/health/ready /v2/models/generate/ready /v2/models/nope/ready
  /v1.0/healthz /v1.0/healthz/outbound /livez '/readyz?verbose' /readyz/generate
)

# --- the checks --------------------------------------------------------------------------------
# `redbot -o har URL` costs about 0.5 s of CPU per URL, nearly all of it loading Python and REDbot;
# scripts/lib/redbot_har.py runs the CLI's same check and HAR output for every URL in one process.
# REDBOT_CLI=1 runs the CLI once per URL instead ($JOBS at a time; slower, same HAR files).
mkdir "$WORK/har"
n=0
for state in starting ready notready draining frontend-empty frontend-instances frontend-etcd frontend-etcd-down; do
  case $state in
  frontend-*) routes=("${FRONTEND_ROUTES[@]}") ;;
  *) routes=("${WORKER_ROUTES[@]}") ;;
  esac
  for path in "${routes[@]}"; do
    n=$((n + 1))
    printf '%s\t%s\n' "$state" "$path" >"$WORK/har/$n.what"
    printf '%s http://127.0.0.1:%s%s\n' "$n" "$(cat "$WORK/$state.port")" "$path" >>"$WORK/jobs"
  done
done
if [ "${REDBOT_CLI:-}" = 1 ]; then
  while read -r id url; do
    timeout 30 "$REDBOT" -o har "$url" >"$WORK/har/$id.har" 2>"$WORK/har/$id.err" &
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  done <"$WORK/jobs"
  wait
else
  "$PY" scripts/lib/redbot_har.py "$WORK/har" 40 <"$WORK/jobs" 2>"$WORK/redbot_har.log" ||
    fail "redbot_har.py: $(cat "$WORK/redbot_har.log")"
fi
say "$n checks in $((SECONDS - START)) s"

# --- the notes ---------------------------------------------------------------------------------
python3 - "$WORK/har" "$n" <<'PY' || fail "REDbot found problems (above)"
import json, sys

har_dir, n = sys.argv[1], int(sys.argv[2])
problems, counts = [], {}
for i in range(1, n + 1):
    state, path = open(f"{har_dir}/{i}.what").read().rstrip("\n").split("\t")
    what = f"{state} {path}"
    try:
        entries = json.load(open(f"{har_dir}/{i}.har"))["log"]["entries"]
    except (OSError, ValueError, KeyError) as e:
        problems.append(f"{what}: no HAR from redbot ({e})")
        continue
    if len(entries) != 1 or not entries[0]["response"].get("status"):
        problems.append(f"{what}: no response in the HAR: {json.dumps(entries)[:300]}")
        continue
    status = entries[0]["response"]["status"]
    for note in entries[0]["_red_messages"]:
        level, note_id = note["level"], note["note_id"]
        counts[(level, note_id)] = counts.get((level, note_id), 0) + 1
        if level not in ("WARN", "BAD"):
            continue
        # KServe v2 requires 400 for "not ready" (server and model): the one allowed note.
        if note_id == "STATUS_BAD_REQUEST" and path.startswith("/v2/") and status == 400:
            continue
        problems.append(f"{what} ({status}): {level} {note_id}: {note['summary']}")
for (level, note_id), c in sorted(counts.items()):
    print(f"redbot:   {c:3d} x {level} {note_id}")
for p in problems:
    print(f"redbot: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
say "no WARN or BAD notes beyond KServe's required 400 ($n checks, $((SECONDS - START)) s)"
