#!/bin/sh
# Example container entrypoint: runs healthd beside the app and tells it when the app is ready.
#
#   entrypoint.sh APP [ARGS...]
#
# 1. starts `healthd serve` in the background (not ready: the readiness file is removed first),
# 2. starts the app,
# 3. once READY_CHECK succeeds (a shell command, polled every 0.2 s; unset = as soon as the app has
#    started) runs `healthd set ready`,
# 4. forwards SIGTERM/SIGINT: healthd drains (reports not ready at once), the app gets the signal,
# 5. when the app exits, stops healthd and exits with the app's exit code.
#
# Environment: HEALTHD (the binary, default `healthd` on PATH), HEALTHD_READY_FILE (default
# /tmp/healthd/ready), READY_CHECK, and every healthd variable (DYN_SYSTEM_PORT, ...).
# POSIX sh only (works with busybox and dash).
set -u

HEALTHD=${HEALTHD:-healthd}
HEALTHD_READY_FILE=${HEALTHD_READY_FILE:-/tmp/healthd/ready}
export HEALTHD_READY_FILE

if [ "$#" -eq 0 ]; then
  echo "usage: $0 APP [ARGS...]" >&2
  exit 2
fi

rm -f "$HEALTHD_READY_FILE"
"$HEALTHD" serve &
healthd_pid=$!

"$@" &
app_pid=$!

stopping=
forward() {
  stopping=1
  kill -TERM "$healthd_pid" 2>/dev/null # drain: not ready at once
  kill -"$1" "$app_pid" 2>/dev/null
}
trap 'forward TERM' TERM
trap 'forward INT' INT

# Flip readiness in the background so that this shell stays free to wait for the app.
(
  trap - TERM INT
  if [ -n "${READY_CHECK:-}" ]; then
    until sh -c "$READY_CHECK" >/dev/null 2>&1; do
      kill -0 "$app_pid" 2>/dev/null || exit 0
      sleep 0.2
    done
  fi
  "$HEALTHD" set ready
) &
ready_pid=$!

# `wait` returns early when a trapped signal arrives; wait again until the app is really gone.
while :; do
  wait "$app_pid"
  code=$?
  kill -0 "$app_pid" 2>/dev/null || break
done

kill "$ready_pid" 2>/dev/null
# The app is gone: end healthd now (a second TERM/INT ends a drain at once).
[ -n "$stopping" ] || kill -TERM "$healthd_pid" 2>/dev/null
kill -INT "$healthd_pid" 2>/dev/null
wait "$healthd_pid"
exit "$code"
