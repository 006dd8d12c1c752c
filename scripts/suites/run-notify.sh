#!/usr/bin/env bash
# healthd run and the notify socket with real tools: systemd-notify (Debian's systemd package)
# and a plain socat datagram; zombie reaping and signal forwarding with healthd as PID 1 in a new
# PID namespace. Needs root for unshare; fails loudly when it cannot get it.
set -euo pipefail
cd "$(dirname "$0")/../.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need socat || ! need systemd-notify || ! need curl || ! need unshare; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat systemd curl util-linux) >/dev/null
fi
cargo build --release -q
BIN=$PWD/target/release/healthd
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do { kill -9 "$p"; wait "$p"; } 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$WORK"/*.log; do echo "--- $f"; cat "$f"; done; exit 1; }

# wait_for CMD...: poll CMD until it succeeds, 10 s deadline.
wait_for() {
  local end=$((SECONDS + 10))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.02
  done
}
port_of() { sed -n 's/.*listening on [^ ]*:\([0-9]*\)$/\1/p' "$1" | head -1; }
code_of() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1$2"; }

# 1. systemd-notify --ready and socat datagrams set readiness and endpoint state.
SOCK=$WORK/notify.sock
env -i DYN_SYSTEM_PORT=0 DYN_SYSTEM_HOST=127.0.0.1 HEALTHD_NOTIFY_SOCKET="$SOCK" \
  DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS='[generate]' "$BIN" 2>"$WORK/notify.log" &
PIDS+=($!)
wait_for grep -q "listening on" "$WORK/notify.log" || fail "healthd did not start"
PORT=$(port_of "$WORK/notify.log")
[ "$(code_of "$PORT" /health)" = 503 ] || fail "expected 503 before READY=1"
NOTIFY_SOCKET=$SOCK systemd-notify --ready --status="warming up" || fail "systemd-notify failed"
wait_for grep -q "notify: READY=1" "$WORK/notify.log" || fail "systemd-notify READY=1 not seen"
grep -q "notify: STATUS=warming up" "$WORK/notify.log" || fail "systemd-notify STATUS not seen"
printf 'HEALTHD_ENDPOINT=generate=ready' | socat -u - "UNIX-SENDTO:$SOCK" || fail "socat send failed"
wait_for test "$(code_of "$PORT" /health)" = 200 || fail "expected 200 after socat HEALTHD_ENDPOINT"
printf 'this is not a notify message' | socat -u - "UNIX-SENDTO:$SOCK"
wait_for grep -q 'notify socket: ignoring "this is not a notify message"' "$WORK/notify.log" || fail "malformed datagram not warned"
[ "$(code_of "$PORT" /health)" = 200 ] || fail "malformed datagram changed state"
echo "ok: systemd-notify and socat drive the notify socket"

# 2. healthd run as PID 1 in a new PID namespace: orphans are reaped, SIGTERM is forwarded, and
#    healthd exits with the child's code.
unshare --pid --fork --mount-proc true 2>/dev/null || fail "cannot create a PID namespace (run as root)"
cat > "$WORK/child.sh" <<'CHILD'
# Make orphans: each inner sh exits at once, its sleep is reparented to PID 1 (healthd).
for i in 1 2 3 4 5; do sh -c 'sleep 0.3 &'; done
trap 'echo term > "$OUT/term"; exit 42' TERM
end=$(( $(date +%s) + 10 ))
# Wait until the orphans have exited and no zombie is left (healthd must reap them).
while :; do
  live=0; zombies=0
  for s in /proc/[0-9]*/stat; do
    read -r line < "$s" 2>/dev/null || continue
    case "$line" in *"(sleep) S"*|*"(sleep) R"*) live=$((live+1));; *"(sleep) Z"*) zombies=$((zombies+1));; esac
  done
  if [ $live -eq 0 ] && [ $zombies -eq 0 ]; then echo reaped > "$OUT/reaped"; break; fi
  [ "$(date +%s)" -lt $end ] || { echo "live=$live zombies=$zombies" > "$OUT/reaped"; break; }
  sleep 0.05
done
echo "pid1=$PPID" > "$OUT/ready"
while :; do sleep 0.05; done
CHILD
env -i PATH=/usr/bin:/bin OUT="$WORK" DYN_SYSTEM_PORT=0 DYN_SYSTEM_HOST=127.0.0.1 HEALTHD_SHUTDOWN_GRACE=0 \
  unshare --pid --fork --mount-proc "$BIN" run -- sh "$WORK/child.sh" 2>"$WORK/pid1.log" &
UNSHARE=$!
PIDS+=($UNSHARE)
wait_for test -s "$WORK/ready" || fail "child never got going"
[ "$(cat "$WORK/ready")" = "pid1=1" ] || fail "healthd is not PID 1: $(cat "$WORK/ready")"
[ "$(cat "$WORK/reaped")" = reaped ] || fail "orphans not reaped: $(cat "$WORK/reaped")"
# healthd (PID 1 inside) is the child of unshare on the host.
HPID=$(pgrep -P "$UNSHARE" | head -1)
[ -n "$HPID" ] || fail "cannot find healthd's host pid"
kill -TERM "$HPID"
rc=0
wait "$UNSHARE" || rc=$?
[ "$rc" = 42 ] || fail "expected exit 42 (the child's code after forwarded SIGTERM), got $rc"
[ -s "$WORK/term" ] || fail "the child never saw SIGTERM"
grep -q "SIGTERM: forwarded to child" "$WORK/pid1.log" || fail "no forwarding log line"
echo "ok: healthd run as PID 1 reaps orphans, forwards SIGTERM and exits with the child's code"
