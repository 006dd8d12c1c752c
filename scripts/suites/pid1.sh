#!/usr/bin/env bash
# healthd as PID 1 of a new PID namespace (unshare --pid --fork --mount-proc): signals work from
# outside and from inside the namespace (where the kernel applies no default action to PID 1, so
# only installed handlers count), SIGTERM drains and exits 0, a second SIGTERM exits at once, and
# orphans that land on healthd are reaped (no zombies).
#
# Needs root (or CAP_SYS_ADMIN); fails loudly when it cannot create the namespace. CI runs as root.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { echo "pid1.sh: FAIL: $*" >&2; [ -n "${log:-}" ] && [ -f "$log" ] && sed 's/^/  | /' "$log" >&2; exit 1; }
pass() { echo "pid1.sh: ok: $*"; }

if ! unshare --pid --fork --mount-proc true 2>/dev/null; then
  fail "cannot create a PID namespace with 'unshare --pid --fork --mount-proc' (run as root, or with CAP_SYS_ADMIN; uid=$(id -u))"
fi
for tool in nsenter pgrep ps; do
  command -v "$tool" >/dev/null || fail "$tool is required (util-linux, procps)"
done

cargo build --quiet
bin=$PWD/target/debug/healthd
work=$(mktemp -d)
unshare_pid=
cleanup() { if [ -n "$unshare_pid" ]; then kill -KILL "$unshare_pid"; wait "$unshare_pid"; fi 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# poll DESCRIPTION COMMAND...: retry every 20 ms for up to 10 s.
poll() {
  local what=$1; shift
  for _ in $(seq 500); do "$@" >/dev/null 2>&1 && return 0; sleep 0.02; done
  fail "timed out waiting for: $what"
}

# start GRACE: healthd as PID 1 in a new namespace; sets unshare_pid, pid (healthd's pid outside), url.
start() {
  log=$work/log.$RANDOM
  : >"$log"
  env -i DYN_SYSTEM_PORT=0 DYN_SYSTEM_HOST=127.0.0.1 HEALTHD_SHUTDOWN_GRACE="$1" \
    unshare --pid --fork --mount-proc "$bin" 2>"$log" &
  unshare_pid=$!
  poll "listening on" grep -q 'listening on' "$log"
  pid=$(pgrep -P "$unshare_pid")
  [ -n "$pid" ] || fail "no child of unshare"
  [ "$(awk '/^NSpid/ {print $NF}' /proc/"$pid"/status)" = 1 ] || fail "healthd is not PID 1 in its namespace"
  url="http://$(grep -o 'listening on [^ ]*' "$log" | cut -d' ' -f3)/health"
}

status_is() { [ "$("$bin" probe "$url" | cut -d' ' -f2)" = "$1" ]; }
inside() { nsenter --target "$pid" --pid --mount -- "$@"; }

start 300ms
status_is 503 || fail "expected 503 at start"
kill -USR1 "$pid"
poll "ready after SIGUSR1 from outside" status_is 200
inside sh -c 'kill -USR2 1'
poll "not ready after SIGUSR2 sent inside the namespace" status_is 503
inside sh -c 'kill -USR1 1'
poll "ready after SIGUSR1 sent inside the namespace" status_is 200
pass "signals from outside and inside the namespace set readiness"

# Orphans: each subshell starts a sleep and exits; the sleeps are re-parented to PID 1 (healthd).
inside sh -c 'for i in 1 2 3 4 5; do (sleep 0.5 &); done'
children() { ps -o pid= --ppid "$pid" | wc -l || true; }
no_children() { [ "$(children)" -eq 0 ]; }
[ "$(children)" -ge 1 ] || fail "orphans were not re-parented to healthd"
poll "orphans reaped (no children, no zombies left)" no_children
pass "orphans re-parented to healthd are reaped"

start_ns=$(date +%s%N)
kill -TERM "$pid"
poll "not ready while draining" status_is 503
set +e; wait "$unshare_pid"; code=$?; set -e
unshare_pid=
elapsed_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
[ "$code" = 0 ] || fail "SIGTERM as PID 1: exit code $code, want 0"
[ "$elapsed_ms" -ge 300 ] || fail "exited after ${elapsed_ms} ms, before the 300 ms grace"
pass "SIGTERM as PID 1 drains for the grace period and exits 0 (${elapsed_ms} ms)"

start 1h
kill -TERM "$pid"
poll "draining" grep -q draining "$log"
inside sh -c 'kill -TERM 1' || true # the namespace dies with its PID 1, and so does this shell
set +e; wait "$unshare_pid"; code=$?; set -e
unshare_pid=
[ "$code" = 0 ] || fail "second SIGTERM as PID 1: exit code $code, want 0"
pass "a second SIGTERM (sent inside the namespace) exits at once with 0"
