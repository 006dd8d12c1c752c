#!/usr/bin/env bash
# Suite entry for scripts/test.sh: the scratch-run test lives in scripts/test-scratch.sh (issue 6
# names it there, and it can be run on its own).
exec bash "$(dirname "$0")/../test-scratch.sh" "$@"
