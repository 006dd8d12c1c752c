#!/usr/bin/env bash
# Proves scripts/bench.sh still runs (a few seconds; the numbers mean nothing on a busy machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
timeout 180 bash scripts/bench.sh --smoke
