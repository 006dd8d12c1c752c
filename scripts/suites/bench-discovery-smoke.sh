#!/usr/bin/env bash
# Proves scripts/bench-discovery.sh still runs (under 20 s; the numbers mean nothing on a busy machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
timeout 120 bash scripts/bench-discovery.sh --smoke
