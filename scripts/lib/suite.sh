# shellcheck shell=bash
# What the Python-client suites (scripts/suites/clients.sh, redbot.sh) share: a work directory,
# the processes to kill at exit, one-line messages prefixed with the suite's name, and apt-get
# installs. Sourced, not run, after setting SUITE:
#
#   SUITE=clients; . scripts/lib/suite.sh
#   apt_install curl wget     # only what is missing; fails the suite when it cannot
#
# Sets WORK (removed at exit) and PIDS (killed at exit); `fail` prints every $WORK/*.log.

WORK=$(mktemp -d)
PIDS=()

say() { printf '%s: %s\n' "$SUITE" "$*"; }
fail() {
  printf '%s: FAILED: %s\n' "$SUITE" "$*" >&2
  for f in "$WORK"/*.log; do
    [ -e "$f" ] && printf -- '--- %s ---\n%s\n' "$f" "$(cat "$f")" >&2
  done
  exit 1
}
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# apt_install PKG...: installs the packages with apt-get (no-op without any).
apt_install() {
  [ $# -gt 0 ] || return 0
  say "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update failed"
  apt-get install -y -qq "$@" >/dev/null || fail "apt-get install $* failed"
}
