#!/usr/bin/env bash
# The attack suite: hostile clients against the release binary on 127.0.0.1 (scripts/hostile.py).
# Every case of shared/spec/http.md plus idle/slowloris floods, fd and thread limits; each asserts
# healthd is alive, fresh probes are answered correctly during and after, threads and RSS capped.
# Needs python3 (stdlib) and prlimit/setpriv (util-linux); bounded to a few minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need prlimit || ! need setpriv || ! need python3; then
  if need apt-get; then
    apt-get update -qq && apt-get install -y -qq util-linux python3 >/dev/null
  fi
fi
for tool in python3 prlimit; do
  need "$tool" || { echo "attack.sh: $tool is required" >&2; exit 1; }
done

cargo build --release --quiet
# The client holds 5,500+ connections: raise its descriptor limit (the hard limit, if lower).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 65536 2>/dev/null || true
timeout 300 python3 scripts/hostile.py attack target/release/healthd
