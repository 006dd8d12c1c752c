# shellcheck shell=bash
# The project's one Python test venv (.venv-clients/), shared by the suites that need Python
# packages: scripts/suites/clients.sh (tritonclient, the Dapr SDK) and scripts/suites/redbot.sh
# (REDbot). Sourced, not run. Every pin lives here, so the suites never fight over the venv: it is
# rebuilt only when these pins change, and reused otherwise.
#
#   . scripts/lib/venv.sh; test_venv NAME    # sets PY to the venv's python; NAME prefixes messages
#
# Needs python3 and its venv module (the caller installs python3-venv with apt-get when missing).

TRITONCLIENT_VERSION=2.73.0
DAPR_VERSION=1.19.0
REDBOT_VERSION=2.7.1
VENV=.venv-clients
VENV_PINS="tritonclient[http]==$TRITONCLIENT_VERSION dapr==$DAPR_VERSION redbot==$REDBOT_VERSION"

test_venv() {
  local name=$1
  if [ "$(cat "$VENV/pins" 2>/dev/null)" != "$VENV_PINS" ] ||
    ! "$VENV/bin/python" -c 'import tritonclient.http, dapr.clients.health, redbot.cli' 2>/dev/null ||
    [ ! -x "$VENV/bin/redbot" ]; then
    printf '%s: creating %s with %s\n' "$name" "$VENV" "$VENV_PINS"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || { printf '%s: FAILED: python3 -m venv\n' "$name" >&2; return 1; }
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q $VENV_PINS || {
      printf '%s: FAILED: pip install %s\n' "$name" "$VENV_PINS" >&2
      return 1
    }
    echo "$VENV_PINS" >"$VENV/pins"
  else
    printf '%s: reusing %s (%s)\n' "$name" "$VENV" "$VENV_PINS"
  fi
  PY="$VENV/bin/python"
}
