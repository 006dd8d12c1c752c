#!/usr/bin/env bash
# Suite entry for scripts/test.sh: the container suite lives in scripts/test-container.sh (it can be
# run on its own). It needs a Docker engine: under CI=true a missing one is a failure, by hand a
# one-line skip.
exec bash "$(dirname "$0")/../test-container.sh" "$@"
