#!/usr/bin/env bash
# The cluster view against real etcd (issue 13): installs Debian's etcd-server and etcd-client when
# etcd/etcdctl are missing, builds the release binary and runs scripts/etcd-scenarios.py, which
# starts its own etcd members on loopback (free ports, temporary data dirs), workers and
# frontends, and removes all of them at exit. Scenarios: settings, one member, Dynamo's keys
# written by etcdctl, three members hung/killed/wiped, every worker's own /health probed
# throughout. Fails with one line when etcd cannot be installed; about 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

fail() { printf 'etcd.sh: FAILED: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1; }

if ! need etcd || ! need etcdctl || ! need python3; then
  echo "etcd.sh: installing etcd-server etcd-client with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq etcd-server etcd-client python3; } >/dev/null 2>&1 ||
    fail "cannot install etcd-server/etcd-client with apt-get (etcd and etcdctl are needed; nothing was tested)"
fi
need etcd && need etcdctl || fail "etcd or etcdctl still missing after apt-get install (nothing was tested)"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail "python3 is older than 3.11: $(python3 --version 2>&1)"

cargo build --release --quiet || fail "cargo build --release failed"
timeout 300 python3 scripts/etcd-scenarios.py target/release/healthd
