#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests, then the script suites.
# This is the README's test command, and .ci/run runs exactly this. It installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
cargo fmt --version && cargo clippy --version

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test"
cargo test --all-targets

# Script suites (each installs its own tools and fails loudly when it cannot run).
for suite in scripts/suites/*.sh; do
  [ -e "$suite" ] || continue
  step "$suite"
  bash "$suite"
done

step "all suites passed"
