#!/usr/bin/env bash
# The README's Kubernetes manifests and Compose quick start, parsed (no cluster here) and checked
# against Dockerfile.distroless, examples/compose and what scripts/test-container.sh runs
# (scripts/check-manifests.py). Installs Debian's python3-yaml when PyYAML is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=python3
if ! "$PY" -c 'import yaml' 2>/dev/null; then
  command -v apt-get >/dev/null 2>&1 || { echo "manifests: FAILED: PyYAML is missing and there is no apt-get" >&2; exit 1; }
  echo "manifests: installing python3-yaml with apt-get"
  { apt-get -o DPkg::Lock::Timeout=300 update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq python3-yaml; } >/dev/null ||
    { echo "manifests: FAILED: cannot install python3-yaml with apt-get" >&2; exit 1; }
  # Debian's package serves Debian's python3, which may not be the first python3 on PATH.
  "$PY" -c 'import yaml' 2>/dev/null || PY=/usr/bin/python3
fi
exec "$PY" scripts/check-manifests.py
