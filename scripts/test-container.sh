#!/usr/bin/env bash
# The container suite: the image, its health check, `healthd run` as an entrypoint, Compose and an
# etcd cluster, on a real Docker engine. Every check asserts what the engine reports (docker
# inspect, diff, port, logs, the cgroup) or what the container's port answers.
#
# The engine: Debian's docker.io (Engine 20.10) and docker-compose (1.29) are installed when
# missing; an engine that already answers is used as it is; otherwise this script starts dockerd
# and, at the end, stops it and removes the iptables rules, chains and docker0 bridge it left.
# The client is /usr/bin/docker (docker.io's), which speaks the engine's API and builds with its
# BuildKit; a newer client elsewhere on PATH may lack the buildx plugin its `docker build` needs.
# No image is pulled: every image is built FROM scratch (or `docker import`ed) out of files this
# script provides. Without an engine (no root, the install fails, dockerd does not start) the
# suite fails with one line under CI=true, and skips with one line otherwise.
#
# Checks (run concurrently where they are independent; see README, "The container suite"):
#   image     Dockerfile.distroless's final stage vs `docker inspect` of healthd:local (scratch)
#             and of the README's build (on a local stand-in for the distroless base)
#   health    503, USR1 -> 200, health starting -> healthy; USR2 -> unhealthy after the retries
#   hardened  --read-only --user 65532 --cap-drop ALL no-new-privileges + tmpfs: set ready flips
#             it; docker diff is empty
#   stop      docker stop drains (ready routes fail at once, live holds), exit 0 within grace + 1 s;
#             docker stop -t 1 with a longer grace: 137; the next docker start is clean
#   run       `healthd run -- /child` as entrypoint: PID 1 reaps orphans without --init, the
#             child's exit code is the container's, docker stop reaches the child
#   compose   examples/compose: the client starts only after the worker's health check passed;
#             down drains (exit 0)
#   readme    every docker command in README.md, extracted from it and run as written
#   limits    --memory 16m --pids-limit 16 --cpus 0.2 under the hostile mix (scripts/hostile.py)
#   etcd      an etcd image FROM scratch (Debian's etcd and the libraries it links) and a 3-member
#             cluster on a private network; 3 registering workers and a frontend through a worker
#             killed and disconnected, a member killed and paused, etcd wiped, a frontend restart
#
# Everything created carries the label healthd.test.run=<run id> or a claimed name, and is removed
# at exit (tags that existed before are restored). Environment: CI=true makes "no engine" a failure;
# DOCKER picks the client; CONTAINER_ITEMS="etcd ..." runs only those items. The whole suite stays
# within 5 minutes on a 2-core machine.
# shellcheck disable=SC2015 # `[ A ] && [ B ] || fail ...`: fail exits, so it runs only when A or B failed
set -euo pipefail
cd "$(dirname "$0")/.."

RUN=healthd-test-$$
LABEL=healthd.test.run=$RUN
STANDIN_LABEL=healthd.test.stand-in
DISTROLESS=gcr.io/distroless/static-debian12:nonroot
NONROOT=65532
t_start=$(date +%s%3N)
work=$(mktemp -d /tmp/healthd-container.XXXXXX)
trap 'rm -rf "$work"' EXIT # until the full cleanup below takes over
started_dockerd=""
dockerd_pid=""
claimed=()  # "TAG PREVIOUS_ID" (empty id: the tag did not exist)
COMPOSE_PROJECT=${RUN//[^a-z0-9]/}compose
COMPOSE_OVERRIDE=$work/compose.override.yml

say() { printf 'container: %s\n' "$*"; }
now_ms() { date +%s%3N; }
# In an item (a subshell) ITEM names it; failures are one line, then the item's subshell exits.
ITEM=""
ok() { printf 'container: %sok: %s\n' "${ITEM:+$ITEM: }" "$*"; }
fail() {
  printf 'container: %sFAILED: %s\n' "${ITEM:+$ITEM: }" "$*" >&2
  exit 1
}
no_engine() {
  if [ "${CI:-}" = true ]; then
    fail "no Docker engine: $* (CI=true needs one: run as root on a machine where docker.io installs and dockerd starts)"
  fi
  say "SKIPPED: the container suite needs a Docker engine: $*"
  rm -rf "$work"
  exit 0
}

# One suite at a time per machine: the README's commands use fixed names (hd, healthd, port 8081),
# and a dockerd one run started must not be stopped under the next.
lock=/run/lock/healthd-container-suite.lock
if ! { exec 9>>"$lock"; } 2>/dev/null; then
  lock=${TMPDIR:-/tmp}/healthd-container-suite.$(id -u).lock
  exec 9>>"$lock" || fail "cannot open a lock file ($lock)"
fi
chmod 0666 "$lock" 2>/dev/null || true # so that runs by other users share it
flock -w 600 9 || fail "another container suite held $lock for 10 minutes"

# --- the engine --------------------------------------------------------------------------------

apt_install() {
  [ "$(id -u)" = 0 ] || return 1
  command -v apt-get >/dev/null 2>&1 || return 1
  # Another apt may hold the dpkg lock on a shared machine: wait for it rather than fail.
  { apt-get -o DPkg::Lock::Timeout=300 update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@"; } >"$work/apt.log" 2>&1
}

if [ -z "${DOCKER:-}" ]; then
  if [ ! -x /usr/bin/docker ] || ! command -v dockerd >/dev/null 2>&1; then
    say "installing docker.io and docker-compose with apt-get"
    apt_install docker.io docker-compose || no_engine "docker.io is not installed and apt-get could not install it (uid $(id -u); $(tail -n1 "$work/apt.log" 2>/dev/null))"
  fi
  DOCKER=/usr/bin/docker
fi
d() { "$DOCKER" "$@"; }

if ! d version --format '{{.Server.APIVersion}}' >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || no_engine "no engine answers $DOCKER and starting dockerd needs root (uid $(id -u))"
  command -v dockerd >/dev/null 2>&1 || no_engine "no engine answers and there is no dockerd"
  iptables-save >"$work/iptables.before" 2>/dev/null || true
  cat /proc/sys/net/ipv4/ip_forward >"$work/ip_forward.before"
  ip link show docker0 >/dev/null 2>&1 && touch "$work/docker0.before"
  say "starting dockerd (no engine answered)"
  setsid dockerd >"$work/dockerd.log" 2>&1 </dev/null &
  dockerd_pid=$!
  started_dockerd=yes
  deadline=$(($(now_ms) + 30000))
  until d version >/dev/null 2>&1; do
    if ! kill -0 "$dockerd_pid" 2>/dev/null || [ "$(now_ms)" -ge "$deadline" ]; then
      tail -n 5 "$work/dockerd.log" >&2 || true
      kill "$dockerd_pid" 2>/dev/null || true
      no_engine "dockerd did not answer within 30 s (log above)"
    fi
    sleep 0.1
  done
  if ! kill -0 "$dockerd_pid" 2>/dev/null; then
    # Another dockerd came up at the same time and answers; it is not this suite's to stop.
    started_dockerd=""
  fi
fi
api=$(d version --format '{{.Server.Version}} (API {{.Server.APIVersion}}), client {{.Client.Version}}')
say "engine: Docker $api at $DOCKER"

# The machine's Compose: `docker compose` (the plugin) or docker-compose.
if d compose version >/dev/null 2>&1; then
  COMPOSE=("$DOCKER" compose)
elif command -v docker-compose >/dev/null 2>&1; then
  COMPOSE=(docker-compose)
else
  say "installing docker-compose with apt-get"
  apt_install docker-compose || fail "no docker compose and docker-compose could not be installed"
  COMPOSE=(docker-compose)
fi
missing=()
for tool in curl:curl gcc:gcc python3:python3 ss:iproute2 etcd:etcd-server etcdctl:etcd-client; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -e /usr/lib/libc.a ] || missing+=(libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} with apt-get"
  apt_install "${missing[@]}" || fail "cannot install ${missing[*]} with apt-get"
fi

# --- cleanup -----------------------------------------------------------------------------------

# claim TAG: the suite will (re)build TAG; at exit it is removed, or pointed back to what it was.
claim() { claimed+=("$1 $(d image inspect -f '{{.Id}}' "$1" 2>/dev/null || true)"); }

iptables_cleanup() {
  # Only what dockerd added since it was started here: rules (deleted), chains (flushed, removed)
  # and changed built-in chain policies (restored), per table.
  [ -s "$work/iptables.before" ] || return 0
  iptables-save >"$work/iptables.after" 2>/dev/null || return 0
  python3 - "$work/iptables.before" "$work/iptables.after" >"$work/iptables.undo" <<'PY' || return 0
import sys
def parse(path):
    tables, t = {}, None
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("*"):
            t = line[1:]; tables[t] = {"rules": [], "chains": {}}
        elif line.startswith(":") and t:
            name, policy = line[1:].split()[:2]
            tables[t]["chains"][name] = policy
        elif line.startswith("-A ") and t:
            tables[t]["rules"].append(line)
    return tables
before, after = parse(sys.argv[1]), parse(sys.argv[2])
for t, a in after.items():
    b = before.get(t, {"rules": [], "chains": {}})
    for rule in reversed([r for r in a["rules"] if r not in b["rules"]]):
        print(f"-t {t} -D {rule[3:]}")
    new = [c for c in a["chains"] if c not in b["chains"]]
    for c in new:
        print(f"-t {t} -F {c}")
    for c in new:
        print(f"-t {t} -X {c}")
    for c, p in a["chains"].items():
        if c in b["chains"] and p != "-" and b["chains"][c] != p:
            print(f"-t {t} -P {c} {b['chains'][c]}")
PY
  local line
  while IFS= read -r line; do
    # shellcheck disable=SC2086 # the rule's words are iptables arguments
    eval "iptables $line" 2>/dev/null || true
  done <"$work/iptables.undo"
  cat "$work/ip_forward.before" >/proc/sys/net/ipv4/ip_forward 2>/dev/null || true
  [ -e "$work/docker0.before" ] || ip link delete docker0 2>/dev/null || true
}

cleanup() {
  local rc=$? entry tag prev ids
  set +e
  [ ! -e "$COMPOSE_OVERRIDE" ] || "${COMPOSE[@]}" -p "$COMPOSE_PROJECT" -f examples/compose/docker-compose.yml \
    -f "$COMPOSE_OVERRIDE" down -t 1 >/dev/null 2>&1
  mapfile -t ids < <(d ps -aq --filter "label=$LABEL")
  [ ${#ids[@]} = 0 ] || d rm -f "${ids[@]}" >/dev/null 2>&1
  [ ! -e "$work/readme-hd" ] || d rm -f hd >/dev/null 2>&1
  mapfile -t ids < <(d network ls -q --filter "label=$LABEL")
  [ ${#ids[@]} = 0 ] || d network rm "${ids[@]}" >/dev/null 2>&1
  for entry in "${claimed[@]}"; do
    tag=${entry%% *} prev=${entry#* }
    if [ -n "$prev" ]; then d tag "$prev" "$tag" >/dev/null 2>&1; else d rmi "$tag" >/dev/null 2>&1; fi
  done
  # Several passes: an image with dependent children (the Compose worker is built FROM the app
  # image) is refused until its children are gone.
  local _
  for _ in 1 2 3; do
    mapfile -t ids < <(d images -q --filter "label=$LABEL" | sort -u)
    [ ${#ids[@]} = 0 ] && break
    d rmi -f "${ids[@]}" >/dev/null 2>&1
  done
  [ ${#ids[@]} = 0 ] || say "could not remove images: ${ids[*]}"
  if [ -n "$started_dockerd" ]; then
    if [ -n "$(d ps -aq 2>/dev/null)" ]; then
      say "leaving the dockerd started here running: it holds containers that are not this suite's"
    else
      kill -TERM "$dockerd_pid" 2>/dev/null
      local deadline=$(($(now_ms) + 20000))
      while kill -0 "$dockerd_pid" 2>/dev/null && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.1; done
      kill -0 "$dockerd_pid" 2>/dev/null && say "dockerd (pid $dockerd_pid) did not stop within 20 s"
      iptables_cleanup
      say "stopped the dockerd started here; removed its iptables rules and docker0"
    fi
  fi
  [ -z "${ETCD_DATA:-}" ] || rm -rf "$ETCD_DATA"
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- helpers for the items ---------------------------------------------------------------------

# poll WHAT SECONDS CMD...: CMD until it succeeds, every 50 ms, or fail naming WHAT.
poll() {
  local what=$1 secs=$2
  shift 2
  local deadline=$(($(now_ms) + secs * 1000))
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ms)" -lt "$deadline" ] || fail "timed out after ${secs}s waiting for $what"
    sleep 0.05
  done
}
# start NAME DOCKER_RUN_ARGS...: docker run -d with the run's label and name; prints the id.
start() {
  local name=$1
  shift
  d run -d --label "$LABEL" --name "$RUN-$name" "$@" || fail "docker run ($name) failed"
}
port_of() { d port "$1" 8081/tcp | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -n1; }
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1$2" || true; }
is_code() { [ "$(code "$1" "$2")" = "$3" ]; }
expect_code() {
  local got
  got=$(code "$1" "$2")
  [ "$got" = "$3" ] || fail "GET $2 on 127.0.0.1:$1 answered $got, want $3${4:+ ($4)}"
}
inspect() { d inspect -f "$2" "$1"; }
health_is() { [ "$(inspect "$1" '{{.State.Health.Status}}')" = "$2" ]; }
# Output is captured before grep: `cmd | grep -q` under pipefail fails when grep's early exit
# makes cmd die of SIGPIPE.
logs_have() {
  local out
  out=$(d logs "$1" 2>&1)
  grep -qF -- "$2" <<<"$out"
}
listening() { logs_have "$1" 'healthd: listening on'; }
exited() { [ "$(inspect "$1" '{{.State.Status}}')" = exited ]; }
# ms TIMESTAMP: an engine timestamp (RFC 3339, ns) in ms since the epoch.
ms() { date -d "$1" +%s%3N; }
host_pid() { inspect "$1" '{{.State.Pid}}'; }
# kill_ms CONTAINER SIGNAL SINCE_MS: when the engine sent SIGNAL (a number) to CONTAINER, in ms
# since the epoch, from its own event log (not the client's clock around `docker stop`).
kill_ms() {
  local ns
  ns=$(d events --since "$(($3 / 1000 - 1))" --until "$(date +%s.%N)" --filter "container=$1" \
    --filter event=kill --format '{{.TimeNano}} {{index .Actor.Attributes "signal"}}' | awk -v s="$2" '$2 == s { print $1; exit }')
  [ -n "$ns" ] || fail "the engine logged no kill event with signal $2 for $1"
  echo $((ns / 1000000))
}

# --- images: the static binary, healthd:local, the test child, the stand-ins ------------------

bin=$(bash scripts/build-static.sh 2>"$work/build-static.log" | tail -n1) ||
  { cat "$work/build-static.log" >&2; fail "scripts/build-static.sh failed"; }
claim healthd:local
claim healthd:latest
BINARY_IMAGE=healthd-binary:$RUN
HEALTHD_IMAGE=healthd:local BASE_IMAGE=scratch HEALTHD_BINARY_IMAGE=$BINARY_IMAGE HEALTHD_IMAGE_LABEL=$LABEL \
  DOCKER=$DOCKER bash scripts/build-image.sh >"$work/build-image.log" 2>&1 ||
  { cat "$work/build-image.log" >&2; fail "scripts/build-image.sh failed"; }
ok "healthd:local built by scripts/build-image.sh ($(inspect healthd:local '{{.Size}}') bytes, FROM scratch)"

# The distroless base cannot be pulled here. A local stand-in is tagged with its name, made FROM
# scratch with the config the real image has (User 65532, WorkingDir /home/nonroot, PATH and
# SSL_CERT_FILE) and the files that shape the final image (passwd, group, /home/nonroot, /tmp),
# labelled as a stand-in. An engine that has the real image keeps it and the suite uses it.
if d image inspect "$DISTROLESS" >/dev/null 2>&1 &&
  [ -z "$(inspect "$DISTROLESS" "{{index .Config.Labels \"$STANDIN_LABEL\"}}" 2>/dev/null)" ]; then
  ok "using the engine's own $DISTROLESS"
else
  claim "$DISTROLESS"
  mkdir -p "$work/standin/etc" "$work/standin/home/nonroot" "$work/standin/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$work/standin/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n' >"$work/standin/etc/group"
  chmod 0700 "$work/standin/home/nonroot"
  chmod 1777 "$work/standin/tmp"
  tar --numeric-owner --no-recursion --mtime=@0 -C "$work/standin" --owner=0 --group=0 \
    -cf "$work/standin.tar" etc etc/passwd etc/group home tmp
  tar --numeric-owner --no-recursion --mtime=@0 -C "$work/standin" --owner=$NONROOT --group=$NONROOT \
    -rf "$work/standin.tar" home/nonroot
  d import --change "USER $NONROOT" --change 'WORKDIR /home/nonroot' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL $STANDIN_LABEL=$DISTROLESS $LABEL" "$work/standin.tar" "$DISTROLESS" >/dev/null ||
    fail "cannot import the stand-in for $DISTROLESS"
  ok "local stand-in tagged $DISTROLESS (FROM scratch, the real image's config)"
fi

# The test child: static C, built here; images with it FROM scratch (no shell anywhere).
gcc -static -Os -Wall -Wextra -Werror -o "$work/child" scripts/container-child.c ||
  fail "gcc -static scripts/container-child.c failed"
mkdir -p "$work/child-ctx"
cp "$work/child" "$work/child-ctx/child"
printf 'FROM healthd:local\nCOPY child /child\nENTRYPOINT ["/healthd", "run", "--", "/child"]\n' >"$work/child-ctx/Dockerfile.run"
printf 'FROM scratch\nCOPY child /child\nUSER %s:%s\nENTRYPOINT ["/child"]\n' $NONROOT $NONROOT >"$work/child-ctx/Dockerfile.app"
RUN_IMAGE=healthd-test-run:$RUN
APP_IMAGE=healthd-test-app:$RUN
for spec in "$RUN_IMAGE Dockerfile.run" "$APP_IMAGE Dockerfile.app"; do
  DOCKER_BUILDKIT=1 d build --pull=false -q --label "$LABEL" -t "${spec%% *}" -f "$work/child-ctx/${spec#* }" \
    "$work/child-ctx" >/dev/null || fail "docker build ${spec%% *} failed"
done
ok "test child images $RUN_IMAGE (healthd run -- /child) and $APP_IMAGE (FROM scratch)"

# The README's build needs the binary from somewhere: its builder stage uses rust:1.95-bookworm,
# which cannot be pulled here, so the suite passes HEALTHD_FROM=<the binary image> (the same /out
# the builder leaves); BASE_IMAGE keeps its default, the distroless name (the stand-in).
README_BUILD_ARGS=(--build-arg "HEALTHD_FROM=$BINARY_IMAGE")

# --- item: image -------------------------------------------------------------------------------

# The final stage's config as Dockerfile.distroless writes it, against what the engine reports for
# healthd:local (scratch) and for the README's build (`healthd`, on the distroless base). Env is
# compared after removing what the base contributes (scratch: BuildKit's default PATH; distroless:
# its PATH and SSL_CERT_FILE); WorkingDir is the base's and reported, not compared.
item_image() {
  local img
  for img in healthd:local healthd:latest; do
    d image inspect "$img" >"$work/inspect-${img#*:}.json" || fail "docker image inspect $img"
    local c
    c=$(d create --label "$LABEL" "$img") || fail "docker create $img"
    d export "$c" >"$work/fs-${img#*:}.tar" || fail "docker export $img"
    d rm "$c" >/dev/null
  done
  d image inspect "$DISTROLESS" >"$work/inspect-base.json"
  python3 - Dockerfile.distroless "$work" "$bin" <<'PY' || fail "image configs differ (above)"
import hashlib, json, re, shlex, sys, tarfile

dockerfile, work, binary = sys.argv[1:]
# The final stage: everything after the last FROM (line continuations joined).
text = re.sub(r"\\\n", " ", open(dockerfile).read())
lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
last = max(i for i, l in enumerate(lines) if l.upper().startswith("FROM "))
want = {"Env": [], "ExposedPorts": {}, "Cmd": None}
dur = lambda s: int(float(s[:-2]) * 1e6) if s.endswith("ms") else int(float(s[:-1]) * {"s": 1e9, "m": 60e9, "h": 3600e9}[s[-1]])
for l in lines[last + 1:]:
    op, _, rest = l.partition(" ")
    op = op.upper()
    if op == "ENV":
        want["Env"] += shlex.split(rest)
    elif op == "USER":
        want["User"] = rest
    elif op == "EXPOSE":
        for p in rest.split():
            want["ExposedPorts"][p if "/" in p else p + "/tcp"] = {}
    elif op == "ENTRYPOINT":
        want["Entrypoint"] = json.loads(rest)
    elif op == "HEALTHCHECK":
        opts, _, cmd = rest.partition(" CMD ")
        hc = {"Test": ["CMD"] + json.loads(cmd)}
        for o in opts.split():
            k, v = o.lstrip("-").split("=")
            key = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod", "retries": "Retries"}[k]
            hc[key] = int(v) if key == "Retries" else dur(v)
        want["Healthcheck"] = hc
base = json.load(open(f"{work}/inspect-base.json"))[0]["Config"]
bases = {"local": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "latest": base["Env"] or []}
bad = 0
for name, img in (("local", "healthd:local"), ("latest", "healthd (README build, distroless base)")):
    got = json.load(open(f"{work}/inspect-{name}.json"))[0]["Config"]
    for k, v in want.items():
        g = got.get(k)
        if k == "Env":
            g = [e for e in (g or []) if e not in bases[name]] if set(bases[name]) <= set(g or []) else g
        if k == "ExposedPorts":
            g = g or {}
        if g != v:
            bad += 1
            print(f"container: image: {img}: {k} is {json.dumps(g)}, the Dockerfile says {json.dumps(v)}")
    files = {m.name.rstrip("/"): m for m in tarfile.open(f"{work}/fs-{name}.tar")}
    for path, uid, mode, kind in (("healthd", 0, 0o555, "file"), ("run", 0, 0o755, "dir"), ("run/healthd", 65532, 0o755, "dir")):
        m = files.get(path)
        if m is None or m.uid != uid or m.gid != uid or (m.mode & 0o7777) != mode or (m.isdir() != (kind == "dir")):
            bad += 1
            desc = "missing" if m is None else f"{m.uid}:{m.gid} {oct(m.mode & 0o7777)}"
            print(f"container: image: {img}: /{path} is {desc}, want {uid}:{uid} {oct(mode)} {kind}")
    empty = not any(n.startswith("run/healthd/") for n in files)
    if not empty:
        bad += 1
        print(f"container: image: {img}: /run/healthd is not empty")
    digest = hashlib.sha256(tarfile.open(f"{work}/fs-{name}.tar").extractfile("healthd").read()).hexdigest()
    if digest != hashlib.sha256(open(binary, "rb").read()).hexdigest():
        bad += 1
        print(f"container: image: {img}: /healthd is not the static binary {binary}")
    print(f"container: image: {img}: User {got['User']}, Env {got['Env']}, WorkingDir {got['WorkingDir']!r} (the base's)")
sys.exit(1 if bad else 0)
PY
  ok "Dockerfile.distroless's final stage (User, Env, ExposedPorts, Healthcheck, Entrypoint, Cmd; /healthd, /run, /run/healthd owners and modes) is what both images report"
}

# --- item: health ------------------------------------------------------------------------------

item_health() {
  local c port t0 elapsed out
  c=$(start health -p 127.0.0.1::8081 --health-interval 500ms --health-timeout 2s \
    --health-retries 2 --health-start-period 60s healthd:local)
  [ "$(inspect "$c" '{{.State.Health.Status}}')" = starting ] ||
    fail "health status right after docker run is $(inspect "$c" '{{.State.Health.Status}}'), want starting"
  poll "listening on" 10 listening "$c"
  port=$(port_of "$c")
  [ -n "$port" ] || fail "no 127.0.0.1 port published for 8081/tcp: $(d port "$c")"
  out=$(curl -s --max-time 2 "http://127.0.0.1:$port/health")
  expect_code "$port" /health 503
  case $out in '{"status":"notready","uptime":'*) ;; *) fail "GET /health body: $out" ;; esac
  ok "docker run: /health 503 notready on 127.0.0.1:$port, health starting"
  poll "a failed health check in the log" 10 eval "[ \"\$(inspect $c '{{len .State.Health.Log}}')\" -ge 1 ]"
  [ "$(inspect "$c" '{{.State.Health.Status}}')" = starting ] || fail "health left starting before ready (start period 60 s)"
  d kill -s USR1 "$c" >/dev/null
  poll "200 after docker kill -s USR1" 5 is_code "$port" /health 200
  poll "health status healthy" 10 health_is "$c" healthy
  out=$(inspect "$c" '{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}' | grep . | tail -n1)
  [ "$out" = "0 healthy: 200 http://127.0.0.1:8081/health" ] || fail "last health check: $out"
  ok "docker kill -s USR1: /health 200, health starting -> healthy (last check: $out)"
  t0=$(now_ms)
  d kill -s USR2 "$c" >/dev/null
  poll "503 after docker kill -s USR2" 5 is_code "$port" /health 503
  poll "health status unhealthy" 10 health_is "$c" unhealthy
  elapsed=$(($(now_ms) - t0))
  local streak
  streak=$(inspect "$c" '{{.State.Health.FailingStreak}}')
  [ "$streak" -ge 2 ] || fail "unhealthy with a failing streak of $streak, want >= 2 (--health-retries 2)"
  out=$(inspect "$c" '{{range .State.Health.Log}}{{.ExitCode}} {{.Output}}{{end}}' | grep . | tail -n2 | sort -u)
  [ "$out" = "1 unhealthy: 503 http://127.0.0.1:8081/health" ] || fail "the last two checks: $out"
  [ "$elapsed" -ge 500 ] || fail "unhealthy after ${elapsed} ms: sooner than 2 checks 500 ms apart"
  ok "docker kill -s USR2: unhealthy after $streak failed checks (${elapsed} ms; retries 2, interval 500ms)"
}

# --- item: hardened ----------------------------------------------------------------------------

item_hardened() {
  local c port pid st out
  c=$(start hardened --read-only --user $NONROOT:$NONROOT --cap-drop ALL --security-opt no-new-privileges \
    --tmpfs /run/healthd:uid=$NONROOT,gid=$NONROOT,mode=0755 -p 127.0.0.1::8081 healthd:local)
  poll "listening on" 10 listening "$c"
  port=$(port_of "$c")
  expect_code "$port" /health 503
  pid=$(host_pid "$c")
  st=/proc/$pid/status
  [ "$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "$st")" = "$NONROOT $NONROOT $NONROOT $NONROOT" ] ||
    fail "healthd's uids: $(grep ^Uid "$st")"
  [ "$(awk '/^CapEff:/ { print $2 }' "$st")" = 0000000000000000 ] || fail "healthd has capabilities: $(grep CapEff "$st")"
  [ "$(awk '/^CapBnd:/ { print $2 }' "$st")" = 0000000000000000 ] || fail "bounding set not empty: $(grep CapBnd "$st")"
  [ "$(awk '/^NoNewPrivs:/ { print $2 }' "$st")" = 1 ] || fail "no_new_privs is not set: $(grep NoNewPrivs "$st")"
  [ "$(inspect "$c" '{{.HostConfig.ReadonlyRootfs}}')" = true ] || fail "ReadonlyRootfs is not true"
  out=$(d exec "$c" /healthd set ready 2>&1) || fail "docker exec /healthd set ready: $out"
  poll "200 after healthd set ready" 5 is_code "$port" /health 200
  out=$(d exec "$c" /healthd set notready 2>&1) || fail "docker exec /healthd set notready: $out"
  poll "503 after healthd set notready" 5 is_code "$port" /health 503
  out=$(d exec "$c" /healthd set ready 2>&1) || fail "docker exec /healthd set ready: $out"
  poll "200 after healthd set ready again" 5 is_code "$port" /health 200
  out=$(d exec "$c" /healthd probe 2>&1) || fail "docker exec /healthd probe: $out"
  ok "read-only, uid $NONROOT, no capabilities, no_new_privs: docker exec /healthd set ready|notready flips /health ($out)"
  out=$(d diff "$c") || fail "docker diff failed"
  [ -z "$out" ] || fail "docker diff shows writes: $(echo "$out" | tr '\n' ' ')"
  ok "docker diff: nothing written"
}

# --- item: stop --------------------------------------------------------------------------------

item_stop() {
  local c port t0 t_fail stop_pid finished elapsed spec
  c=$(start stop -e HEALTHD_SHUTDOWN_GRACE=2s -e HEALTHD_LIVE=shallow -p 127.0.0.1::8081 healthd:local)
  poll "listening on" 10 listening "$c"
  port=$(port_of "$c")
  d kill -s USR1 "$c" >/dev/null
  poll "200 after USR1" 5 is_code "$port" /health 200
  for spec in /ready:200 /readyz:200 /v2/health/ready:200 /v1.0/healthz:204 /live:200 /livez:200; do
    expect_code "$port" "${spec%:*}" "${spec#*:}" "ready"
  done
  t0=$(now_ms)
  d stop "$c" >/dev/null &
  stop_pid=$!
  poll "/health 503 after docker stop" 2 is_code "$port" /health 503
  t_fail=$(($(now_ms) - t0))
  expect_code "$port" /ready 503 "draining"
  expect_code "$port" /readyz 500 "draining"
  expect_code "$port" /v2/health/ready 503 "draining"
  expect_code "$port" /v1.0/healthz 500 "draining"
  expect_code "$port" /live 200 "HEALTHD_LIVE=shallow holds while draining"
  expect_code "$port" /livez 200 "livez holds while draining"
  wait "$stop_pid" || fail "docker stop failed"
  local t_term
  t_term=$(kill_ms "$c" 15 "$t0")
  t_fail=$((t_fail + t0 - t_term))
  [ "$t_fail" -le 1000 ] || fail "the ready routes still answered 200 ${t_fail} ms after the engine's SIGTERM"
  finished=$(ms "$(inspect "$c" '{{.State.FinishedAt}}')")
  elapsed=$((finished - t_term))
  [ "$(inspect "$c" '{{.State.ExitCode}}')" = 0 ] || fail "exit code after docker stop: $(inspect "$c" '{{.State.ExitCode}}'), want 0"
  [ "$elapsed" -ge 1900 ] || fail "exited ${elapsed} ms after docker stop, before the 2 s drain"
  [ "$elapsed" -le 3000 ] || fail "exited ${elapsed} ms after docker stop, later than grace 2 s + 1 s"
  logs_have "$c" "draining" || fail "no draining line in the log"
  ok "docker stop: ready routes failed ${t_fail} ms after the engine's SIGTERM while /live and /livez held 200; exit 0 ${elapsed} ms after it (grace 2 s)"

  c=$(start stop-kill -e HEALTHD_SHUTDOWN_GRACE=30s -p 127.0.0.1::8081 healthd:local)
  poll "listening on" 10 listening "$c"
  t0=$(now_ms)
  d stop -t 1 "$c" >/dev/null || fail "docker stop -t 1 failed"
  t_term=$(kill_ms "$c" 15 "$t0")
  local t_kill
  t_kill=$(kill_ms "$c" 9 "$t0")
  finished=$(ms "$(inspect "$c" '{{.State.FinishedAt}}')")
  elapsed=$((finished - t_term))
  [ $((t_kill - t_term)) -ge 950 ] || fail "the engine sent SIGKILL $((t_kill - t_term)) ms after SIGTERM, want 1 s (-t 1)"
  [ "$(inspect "$c" '{{.State.ExitCode}}')" = 137 ] || fail "exit code after docker stop -t 1: $(inspect "$c" '{{.State.ExitCode}}'), want 137"
  [ "$elapsed" -ge 900 ] && [ "$elapsed" -le 2500 ] || fail "docker stop -t 1 ended it after ${elapsed} ms, want about 1 s"
  ok "docker stop -t 1 with a 30 s grace: SIGKILL $((t_kill - t_term)) ms after SIGTERM, exited ${elapsed} ms after it, exit 137"
  local before_start
  before_start=$(now_ms)
  d start "$c" >/dev/null || fail "docker start after the kill failed"
  poll "listening on after docker start" 10 eval "[ \"\$(d logs $c 2>&1 | grep -c 'healthd: listening on')\" = 2 ]"
  port=$(port_of "$c")
  expect_code "$port" /health 503 "fresh start: not ready"
  grep -qx 'healthd_draining 0' <<<"$(curl -s --max-time 2 "http://127.0.0.1:$port/metrics")" || fail "after docker start /metrics does not say healthd_draining 0"
  [ "$(inspect "$c" '{{.State.Running}} {{.RestartCount}} {{.State.OOMKilled}}')" = "true 0 false" ] ||
    fail "after docker start: $(inspect "$c" 'running {{.State.Running}} restarts {{.RestartCount}} oom {{.State.OOMKilled}}')"
  [ "$(ms "$(inspect "$c" '{{.State.StartedAt}}')")" -ge "$((before_start - 1000))" ] || fail "StartedAt is not the new start"
  d kill -s USR1 "$c" >/dev/null
  poll "200 after USR1 on the restarted container" 5 is_code "$port" /health 200
  ok "docker start after the kill: running, not draining, 503 then 200 on USR1, restart count 0"
}

# --- item: run ---------------------------------------------------------------------------------

# Children (host pids) of host pid $1 and their states.
children_of() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . || true; }
zombies_of() {
  local p n=0
  for p in $(children_of "$1"); do
    [ "$(awk '/^State:/ { print $2 }' /proc/"$p"/status 2>/dev/null)" = Z ] && n=$((n + 1))
  done
  echo "$n"
}
item_run() {
  local c pid kids out code
  # The orphans live 4 s, so they are seen re-parented to PID 1 before they exit, also on a busy machine.
  c=$(start run-orphans -e HEALTHD_SHUTDOWN_GRACE=200ms "$RUN_IMAGE" orphans 5 4000)
  [ "$(inspect "$c" '{{.HostConfig.Init}}')" != true ] || fail "the container runs with --init"
  pid=$(host_pid "$c")
  [ "$(awk '/^NSpid:/ { print $NF }' /proc/"$pid"/status)" = 1 ] || fail "healthd is not PID 1: $(grep NSpid /proc/"$pid"/status)"
  poll "PID 1 to hold the child and its 5 orphans" 4 eval "[ \$(children_of $pid | wc -l) -ge 6 ]"
  kids=$(children_of "$pid" | wc -l)
  logs_have "$c" "child: 5 orphans started" || fail "the child did not report its orphans"
  poll "the orphans to exit and be reaped (no zombies)" 15 eval "[ \$(children_of $pid | wc -l) = 1 ] && [ \$(zombies_of $pid) = 0 ]"
  ok "healthd run as PID 1 (no --init): $((kids - 1)) orphans re-parented to it and reaped, no zombies"
  d stop "$c" >/dev/null || fail "docker stop failed"
  logs_have "$c" "child: got SIGTERM, exiting 0" || fail "the child never saw SIGTERM: $(d logs "$c" 2>&1 | tail -n3 | tr '\n' ' ')"

  c=$(start run-exit -e HEALTHD_SHUTDOWN_GRACE=200ms "$RUN_IMAGE" exit 7 300)
  poll "the container to exit" 10 exited "$c"
  code=$(inspect "$c" '{{.State.ExitCode}}')
  [ "$code" = 7 ] || fail "child exited 7, container exit code $code"
  ok "the child's exit code is the container's (7)"

  c=$(start run-term -e HEALTHD_SHUTDOWN_GRACE=200ms "$RUN_IMAGE" wait-term 43)
  poll "the child to wait" 10 logs_have "$c" "child: waiting for SIGTERM"
  d stop "$c" >/dev/null || fail "docker stop failed"
  out=$(d logs "$c" 2>&1)
  grep -qF "child: got SIGTERM, exiting 43" <<<"$out" || fail "docker stop did not reach the child: $(echo "$out" | tail -n3 | tr '\n' ' ')"
  grep -q "SIGTERM: forwarded to child" <<<"$out" || fail "no 'forwarded to child' line in healthd's log"
  code=$(inspect "$c" '{{.State.ExitCode}}')
  [ "$code" = 43 ] || fail "child exited 43 on SIGTERM, container exit code $code"
  ok "docker stop reaches the child (SIGTERM forwarded); its code 43 is the container's"
}

# --- item: compose -----------------------------------------------------------------------------

item_compose() {
  local project=$COMPOSE_PROJECT override=$COMPOSE_OVERRIDE worker client
  local wait_pid code t_healthy t0 elapsed
  # The example as users run it, with the test's images and short intervals layered on top.
  cat >"$override" <<EOF
services:
  worker:
    build:
      args:
        APP_IMAGE: $APP_IMAGE
        HEALTHD_IMAGE: healthd:local
      labels:
        ${LABEL%%=*}: $RUN
    command: ["/child", "ready-after", "1500"]
    environment:
      HEALTHD_SHUTDOWN_GRACE: 2s
    healthcheck:
      interval: 1s
      start_period: 0s
    labels:
      ${LABEL%%=*}: $RUN
  client:
    image: $APP_IMAGE
    command: ["wait-term", "0"]
    labels:
      ${LABEL%%=*}: $RUN
EOF
  compose() {
    COMPOSE_DOCKER_CLI_BUILD=0 timeout 120 "${COMPOSE[@]}" -p "$project" -f examples/compose/docker-compose.yml -f "$override" "$@"
  }
  compose config -q || fail "the Compose file does not validate"
  # The engine's own record of the order: its event stream for the project's containers (the
  # health log in docker inspect keeps only the last 5 checks).
  timeout 150 "$DOCKER" events --filter "label=com.docker.compose.project=$project" \
    --format '{{.TimeNano}} {{.Action}} {{index .Actor.Attributes "com.docker.compose.service"}}' >"$work/compose-events" &
  local events_pid=$!
  compose up -d --build >"$work/compose-up.log" 2>&1 || fail "compose up failed: $(tail -n3 "$work/compose-up.log" | tr '\n' ' ')"
  worker=$(compose ps -q worker)
  client=$(compose ps -q client)
  [ -n "$worker" ] && [ -n "$client" ] || fail "compose ps: worker '$worker' client '$client'"
  poll "the client's start event" 5 grep -q ' start client$' "$work/compose-events"
  kill "$events_pid" 2>/dev/null || true
  local ev_healthy ev_start w_started started
  ev_healthy=$(awk '$2 == "health_status:" && $3 == "healthy" && $4 == "worker" { print substr($1, 1, length($1) - 6); exit }' "$work/compose-events")
  ev_start=$(awk '$2 == "start" && $3 == "client" { print substr($1, 1, length($1) - 6); exit }' "$work/compose-events")
  [ -n "$ev_healthy" ] || fail "no 'health_status: healthy' event for the worker: $(tr '\n' ';' <"$work/compose-events")"
  grep -q ' health_status: unhealthy worker$' "$work/compose-events" && fail "the worker went unhealthy during up"
  started=$(ms "$(inspect "$client" '{{.State.StartedAt}}')")
  w_started=$(ms "$(inspect "$worker" '{{.State.StartedAt}}')")
  [ "$ev_start" -ge "$ev_healthy" ] && [ "$started" -ge "$ev_healthy" ] ||
    fail "the client started (event $ev_start, StartedAt $started) before the worker turned healthy ($ev_healthy)"
  [ "$started" -ge $((w_started + 1500)) ] || fail "the client started $((started - w_started)) ms after the worker, before the app was ready (1.5 s)"
  # The health log agrees where it still holds the first passing check: it ended before the start.
  t_healthy=$(d inspect "$worker" | python3 -c '
import json, sys
log = json.load(sys.stdin)[0]["State"]["Health"]["Log"]
print(min([e["End"] for e in log if e["ExitCode"] == 0] or [""]))')
  [ -z "$t_healthy" ] || [ "$(ms "$t_healthy")" -le "$started" ] || [ "$(ms "$t_healthy")" -gt "$ev_healthy" ] ||
    fail "the worker's health log: first passing check ended at $t_healthy, after the client started"
  ok "compose: client started $((started - ev_healthy)) ms after the worker turned healthy ($((ev_healthy - w_started)) ms after the worker started; the app is ready after 1.5 s)"
  d wait "$worker" >"$work/worker.exit" 2>&1 &
  wait_pid=$!
  t0=$(now_ms)
  compose down >"$work/compose-down.log" 2>&1 || fail "compose down failed: $(tail -n3 "$work/compose-down.log" | tr '\n' ' ')"
  elapsed=$(($(now_ms) - t0))
  wait "$wait_pid" || true
  code=$(head -n1 "$work/worker.exit")
  [ "$code" = 0 ] || fail "the worker exited '$code' on compose down, want 0"
  [ -z "$(d ps -aq --filter "label=com.docker.compose.project=$project")" ] || fail "compose down left containers"
  ok "compose down: the worker drained and exited 0 (${elapsed} ms, grace 2 s), nothing left"
}

# --- item: readme ------------------------------------------------------------------------------

# Every `docker ...` line of the README's sh blocks, run as written (comments dropped), each with
# the check of what the README says it does. A line the suite does not know fails the item.
item_readme() {
  local line t0 elapsed out
  while IFS= read -r line; do
    say "readme: \$ $line"
    # shellcheck disable=SC2317 # called by the eval'd README line
    docker() { "$DOCKER" "$@"; }
    case $line in
      "docker build -f Dockerfile.distroless -t healthd .")
        : # built before the items start (item image compares it); see README_BUILD_ARGS
        ;;
      "docker run -d --name hd "*)
        touch "$work/readme-hd"
        eval "$line" >/dev/null || fail "README: $line"
        poll "hd listening" 10 listening hd
        expect_code 8081 /health 503 "README: before set ready"
        ;;
      "docker exec hd /healthd set ready")
        eval "$line" || fail "README: $line"
        poll "200 after set ready (README)" 5 is_code 8081 /health 200
        poll "the image's HEALTHCHECK to turn healthy (interval 10 s)" 25 health_is hd healthy
        ok "readme: $line: /health 200 and the HEALTHCHECK turned healthy"
        ;;
      "docker stop hd")
        t0=$(now_ms)
        eval "$line" >/dev/null || fail "README: $line"
        elapsed=$(($(now_ms) - t0))
        out=$(inspect hd '{{.State.ExitCode}}')
        [ "$out" = 0 ] || fail "README: docker stop hd: exit $out, want 0"
        [ "$elapsed" -ge 4900 ] && [ "$elapsed" -lt 10000 ] || fail "README: docker stop hd took ${elapsed} ms, want the 5 s drain"
        ok "readme: $line: drained ${elapsed} ms, exit 0"
        ;;
      *) fail "the README has a docker command the suite does not run: $line" ;;
    esac
  done <"$work/readme-commands"
  d rm hd >/dev/null
  rm -f "$work/readme-hd"
}

readme_commands() {
  awk '/^```sh$/ { sh = 1; next } /^```/ { sh = 0 } sh && /^docker / { print }' README.md |
    sed -E 's/[[:space:]]+#.*$//' >"$work/readme-commands"
  [ -s "$work/readme-commands" ] || fail "no docker commands found in README.md's sh blocks"
  grep -qx 'docker build -f Dockerfile.distroless -t healthd .' "$work/readme-commands" ||
    fail "README.md no longer has 'docker build -f Dockerfile.distroless -t healthd .'"
  if [ -n "$(ss -ltnH 'sport = :8081')" ]; then
    fail "port 8081 is in use on this host; the README's docker run publishes it"
  fi
  grep -qx hd <<<"$(d ps -a --format '{{.Names}}')" && fail "a container named hd exists; the README's commands use that name"
  say "readme: \$ docker build -f Dockerfile.distroless -t healthd . (+ ${README_BUILD_ARGS[*]})"
  DOCKER_BUILDKIT=1 d build -f Dockerfile.distroless -t healthd . "${README_BUILD_ARGS[@]}" >"$work/readme-build.log" 2>&1 ||
    { cat "$work/readme-build.log" >&2; fail "README: docker build -f Dockerfile.distroless -t healthd . failed"; }
  ok "readme: docker build -f Dockerfile.distroless -t healthd . (base $DISTROLESS)"
}

# --- item: limits ------------------------------------------------------------------------------

item_limits() {
  local c port cg peak
  c=$(start limits --memory 16m --pids-limit 16 --cpus 0.2 -p 127.0.0.1::8081 healthd:local)
  poll "listening on" 10 listening "$c"
  port=$(port_of "$c")
  [ "$(inspect "$c" '{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}}')" = "16777216 16 200000000" ] ||
    fail "limits as the engine reports them: $(inspect "$c" '{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}}')"
  d kill -s USR1 "$c" >/dev/null
  poll "200 after USR1" 5 is_code "$port" /health 200
  ulimit -n 65536 2>/dev/null || true
  out=$(timeout 120 python3 scripts/hostile.py mix "$port" 20 2000 200 2>&1) || fail "hostile mix: $(echo "$out" | tail -n1)"
  say "limits: $out"
  [ "$(inspect "$c" '{{.State.Status}} {{.State.OOMKilled}} {{.RestartCount}}')" = "running false 0" ] ||
    fail "after the mix: $(inspect "$c" 'status {{.State.Status}} oomkilled {{.State.OOMKilled}} restarts {{.RestartCount}}')"
  cg=$(inspect "$c" '{{.Id}}')
  peak=$(cat "/sys/fs/cgroup/memory/docker/$cg/memory.max_usage_in_bytes" 2>/dev/null ||
    cat "/sys/fs/cgroup/system.slice/docker-$cg.scope/memory.peak" 2>/dev/null || echo unknown)
  expect_code "$port" /health 200 "after the mix"
  ok "--memory 16m --pids-limit 16 --cpus 0.2: every probe answered 200 under the mix; running, OOMKilled false, restarts 0 (peak memory $peak bytes)"
}

# --- item: etcd --------------------------------------------------------------------------------

ETCD_IMAGE=healthd-test-etcd:$RUN
ETCD_DATA=$(mktemp -d /dev/shm/healthd-etcd.XXXXXX 2>/dev/null || mktemp -d "$work/etcd-data.XXXXXX")

# build_etcd_image: an etcd image FROM scratch out of Debian's etcd and etcdctl and the libraries
# ldd lists for them (Debian builds etcd with cgo: it links libc and needs the loader), at the
# paths ldd names. GODEBUG=netdns=go keeps name lookups in Go (the scratch root has no nsswitch).
build_etcd_image() {
  local ctx=$work/etcd-ctx f lib
  mkdir -p "$ctx/root/usr/bin" "$ctx/root/var/lib/etcd" "$ctx/root/tmp"
  for f in /usr/bin/etcd /usr/bin/etcdctl; do
    cp "$f" "$ctx/root$f"
    for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true); do
      mkdir -p "$ctx/root$(dirname "$lib")"
      cp -L "$lib" "$ctx/root$lib"
    done
  done
  chmod 1777 "$ctx/root/tmp"
  cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY root/ /
ENV GODEBUG=netdns=go ETCDCTL_API=3
EXPOSE 2379 2380
ENTRYPOINT ["/usr/bin/etcd"]
EOF
  DOCKER_BUILDKIT=1 d build --pull=false -q --label "$LABEL" -t "$ETCD_IMAGE" "$ctx" >/dev/null ||
    fail "docker build of the etcd image failed"
}

# etcd_cluster NETWORK N: N members etcd1..N on NETWORK (names are aliases there). Each member's
# data is a host directory on tmpfs (ETCD_DATA, /dev/shm: no disk fsyncs on a shared machine) that
# outlives the container's process: a killed member started again rejoins with its log (a member
# restarted empty would panic on the leader's commit index), and a wipe is rm -rf on the host.
etcd_cluster() {
  local net=$1 n=$2 i cluster=""
  for i in $(seq "$n"); do cluster+="${cluster:+,}etcd$i=http://etcd$i:2380"; done
  for i in $(seq "$n"); do
    mkdir -p "$ETCD_DATA/etcd$i"
    start "etcd$i" --network "$net" --network-alias "etcd$i" -v "$ETCD_DATA/etcd$i:/var/lib/etcd" "$ETCD_IMAGE" \
      --name "etcd$i" --data-dir /var/lib/etcd/data \
      --listen-peer-urls http://0.0.0.0:2380 --listen-client-urls http://0.0.0.0:2379 \
      --initial-advertise-peer-urls "http://etcd$i:2380" --advertise-client-urls "http://etcd$i:2379" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "$RUN" >/dev/null
  done
}

item_etcd() {
  local net=$RUN-etcd endpoints out
  build_etcd_image
  ok "etcd image FROM scratch: $(etcd --version | head -n1), $(ldd /usr/bin/etcd | grep -c '/') libraries from ldd"
  d network create --internal --label "$LABEL" "$net" >/dev/null || fail "docker network create $net"
  etcd_cluster "$net" 3
  endpoints=http://etcd1:2379,http://etcd2:2379,http://etcd3:2379
  poll "the 3 etcd members to report healthy" 60 eval \
    "[ \"\$(d exec $RUN-etcd1 /usr/bin/etcdctl --endpoints=$endpoints endpoint health 2>&1 | grep -c 'is healthy')\" = 3 ]"
  out=$(d exec "$RUN-etcd1" /usr/bin/etcdctl --endpoints=$endpoints member list 2>&1) || fail "etcdctl member list: $out"
  [ "$(echo "$out" | grep -c ', started, etcd[123], ')" = 3 ] || fail "etcdctl member list: $out"
  out=$(d exec "$RUN-etcd2" /usr/bin/etcdctl --endpoints=$endpoints put /healthd/smoke ok 2>&1) || fail "etcdctl put: $out"
  out=$(d exec "$RUN-etcd3" /usr/bin/etcdctl --endpoints=http://etcd3:2379 get --print-value-only /healthd/smoke 2>&1)
  [ "$out" = ok ] || fail "etcdctl get on etcd3 after a put on etcd2: $out"
  ok "3-member etcd cluster on the internal network $net: 3 healthy endpoints, 3 started members, a put replicated"
  out=$(etcd_ip_endpoints "$net" 3)
  grep -qx 'http://[0-9.]*:2379,http://[0-9.]*:2379,http://[0-9.]*:2379' <<<"$out" || fail "etcd member addresses: $out"
  [ "$(d exec "$RUN-etcd1" /usr/bin/etcdctl --endpoints="$out" endpoint health 2>&1 | grep -c 'is healthy')" = 3 ] ||
    fail "etcdctl endpoint health by IP ($out)"
  ok "the members answer by IP too ($out)"
  cluster_workers "$net" "$endpoints"
}

# etcd_ip_endpoints NETWORK N: the members' client URLs by IP literal on NETWORK, as the engine
# reports them (healthd resolves no names; Docker's DNS only answers at 127.0.0.11 inside).
etcd_ip_endpoints() {
  local i ip urls=""
  for i in $(seq "$2"); do
    ip=$(inspect "$RUN-etcd$i" "{{(index .NetworkSettings.Networks \"$1\").IPAddress}}")
    urls+="${urls:+,}http://$ip:2379"
  done
  echo "$urls"
}

# cluster_workers NETWORK ENDPOINTS: issue 14, item 8. Three workers (HEALTHD_REGISTER=on,
# ETCD_ENDPOINTS=ENDPOINTS: names, resolved by healthd through Docker's DNS at 127.0.0.11) and a
# frontend, on NETWORK with the members, each also on a second, non-internal network that carries
# only its published 127.0.0.1 port. A prober (cluster_prober) asks every /health every 50 ms from
# the start to the end and logs each change of answer with its time; every step asserts the
# frontend's view before, during and after it from that log, and each worker's own /health may never
# answer anything but 200 ready (a killed worker: nothing at all). Instance ids come from the
# workers' own log ("lease ... granted ...; instance id N"); fault times from the engine's events.
CLUSTER_TTL=3
cluster_workers() {
  local net=$1 endpoints=$2 pub=$RUN-pub cw=$work/cluster w i t0
  mkdir -p "$cw"
  write_prober "$cw"
  d network create --label "$LABEL" "$pub" >/dev/null || fail "docker network create $pub"
  local common=(--label "$LABEL" --network "$pub" -e ETCD_ENDPOINTS="$endpoints" -e "ETCD_LEASE_TTL=$CLUSTER_TTL"
    -e HEALTHD_SHUTDOWN_GRACE=500ms)
  for w in w1 w2 w3 fe; do
    if [ "$w" = fe ]; then
      d create "${common[@]}" --name "$RUN-fe" -e HEALTHD_ROLE=frontend -e DYN_HTTP_PORT=8000 -p 127.0.0.1::8000 healthd:local >/dev/null
    else
      d create "${common[@]}" --name "$RUN-$w" -e HEALTHD_REGISTER=on -p 127.0.0.1::8081 healthd:local >/dev/null
    fi || fail "docker create $w"
    d network connect "$net" "$RUN-$w" || fail "docker network connect $net $w"
    d start "$RUN-$w" >/dev/null || fail "docker start $w"
  done
  # On failure: the prober stops, and what healthd said (the last lines of each log) is shown.
  CLUSTER_PROBER=""
  trap 'rc=$?; [ -z "$CLUSTER_PROBER" ] || kill "$CLUSTER_PROBER" 2>/dev/null
    [ $rc = 0 ] || for w in w1 w2 w3 fe; do d logs --tail 12 "$RUN-$w" 2>&1 | sed "s/^/container: etcd: $w: /" >&2; done' EXIT
  for w in w1 w2 w3 fe; do
    poll "$w listening" 10 listening "$RUN-$w"
    cluster_port "$w"
    # The names reach healthd only through Docker's DNS: its resolv.conf, no hosts entry.
    grep -qx 'nameserver 127.0.0.11' "$(inspect "$RUN-$w" '{{.ResolvConfPath}}')" || fail "$w's /etc/resolv.conf does not name Docker's DNS (127.0.0.11)"
    ! grep -q etcd "$(inspect "$RUN-$w" '{{.HostsPath}}')" || fail "$w's /etc/hosts names an etcd member"
  done
  local nets
  # shellcheck disable=SC2016 # a Go template
  nets=$(inspect "$RUN-w1" '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}')
  [ "$nets" = "$net $pub " ] || fail "w1 is on the networks '$nets', want '$net $pub '"
  poll "the frontend to say 'No endpoints available'" 10 cw_body_has fe '{"instances":[],"message":"No endpoints available","status":"unhealthy"}'
  for w in w1 w2 w3; do d exec "$RUN-$w" /healthd set generate ready >/dev/null || fail "healthd set generate ready in $w"; done
  local -A id=()
  for w in w1 w2 w3; do
    poll "$w to register (healthd_etcd_registered_endpoints 1)" 10 metric_is "$w" healthd_etcd_registered_endpoints 1
    id[$w]=$(instance_id "$w")
    [ -n "${id[$w]}" ] || fail "$w: no 'instance id' line in its log"
  done
  local full
  full=$(want "${id[w1]}" "${id[w2]}" "${id[w3]}")
  poll "the frontend to list the 3 workers" 5 cw_body_is fe "$full"
  cluster_prober "$cw" w1 w2 w3 fe &
  CLUSTER_PROBER=$!
  poll "the prober's first answers" 5 eval "[ -s $cw/state.fe ] && [ -s $cw/state.w1 ] && [ -s $cw/state.w2 ] && [ -s $cw/state.w3 ]"
  local ttl_ms=$((CLUSTER_TTL * 1000)) since
  since=$(now_ms)
  only fe 0 "$full" "before the faults"
  local e_list
  e_list=$(grep -o 'etcd[0-9]:2379' <<<"$endpoints" | paste -sd, | sed 's/,/, /g')
  ok "cluster: 3 workers registered through names ($e_list; Docker's DNS), the frontend lists instance ids ${id[w1]}, ${id[w2]}, ${id[w3]}"

  # 1. docker kill a worker: its key goes with its lease (<= TTL + 1 s); docker start: a new lease.
  t0=$(now_ms)
  d kill "$RUN-w1" >/dev/null || fail "docker kill w1"
  local t_kill two gone
  t_kill=$(kill_ms "$RUN-w1" 9 "$t0")
  two=$(want "${id[w2]}" "${id[w3]}")
  poll "the frontend to drop the killed w1" $((CLUSTER_TTL + 2)) state_is fe "$two"
  gone=$(first_ms fe "$t_kill" "$two")
  gone=$((gone - t_kill))
  [ "$gone" -le $((ttl_ms + 1000)) ] || fail "the killed w1 left the frontend's list ${gone} ms after SIGKILL, want <= TTL + 1 s"
  only fe "$since" "$full|$two" "while w1 was killed"
  since=$(now_ms)
  d start "$RUN-w1" >/dev/null || fail "docker start w1"
  cluster_port w1
  poll "w1 to register again" 10 metric_is w1 healthd_etcd_registered_endpoints 1
  local old=${id[w1]}
  id[w1]=$(instance_id w1)
  [ "${id[w1]}" != "$old" ] || fail "w1 restarted with the instance id $old it had before the kill"
  full=$(want "${id[w1]}" "${id[w2]}" "${id[w3]}")
  poll "the frontend to list the restarted w1" 5 state_is fe "$full"
  only fe "$since" "$two|$full" "while w1 restarted"
  ok "1. docker kill w1: gone from the frontend ${gone} ms after the engine's SIGKILL (TTL ${CLUSTER_TTL} s); docker start: back as ${id[w1]} (was $old)"

  # 2. docker network disconnect a worker from etcd: gone <= TTL + 1 s, its own /health unchanged;
  #    reconnected: back with a new instance id within 2 s.
  since=$(now_ms)
  d network disconnect "$net" "$RUN-w2" || fail "docker network disconnect $net w2"
  local t_disc t_conn back others
  t_disc=$(net_event_ms disconnect "$net" "$RUN-w2" "$since")
  others=$(want "${id[w1]}" "${id[w3]}")
  poll "the frontend to drop the disconnected w2" $((CLUSTER_TTL + 2)) state_is fe "$others"
  gone=$(first_ms fe "$t_disc" "$others")
  gone=$((gone - t_disc))
  [ "$gone" -le $((ttl_ms + 1000)) ] || fail "the disconnected w2 left the frontend's list ${gone} ms after the disconnect, want <= TTL + 1 s"
  poll "w2's healthd_etcd_connected 0 while disconnected" 5 metric_is w2 healthd_etcd_connected 0
  only fe "$since" "$full|$others" "while w2 was disconnected"
  since=$(now_ms)
  d network connect "$net" "$RUN-w2" || fail "docker network connect $net w2"
  t_conn=$(net_event_ms connect "$net" "$RUN-w2" "$since")
  poll "w2 to register again after the reconnect" 5 eval "[ \"\$(instance_id w2)\" != ${id[w2]} ] && metric_is w2 healthd_etcd_registered_endpoints 1"
  old=${id[w2]}
  id[w2]=$(instance_id w2)
  full=$(want "${id[w1]}" "${id[w2]}" "${id[w3]}")
  poll "the frontend to list the reconnected w2" 5 state_is fe "$full"
  back=$(first_ms fe "$t_conn" "$full")
  back=$((back - t_conn))
  [ "$back" -le 2000 ] || fail "the reconnected w2 was back in the frontend's list ${back} ms after the reconnect, want <= 2 s"
  only fe "$since" "$others|$full" "while w2 reconnected"
  ok "2. docker network disconnect w2: gone ${gone} ms after the engine's disconnect, its /health 200 ready throughout; reconnected: back as ${id[w2]} (was $old) ${back} ms after the connect"

  # 3. docker kill one member (a follower the frontend does not watch: killing the leader starts an
  #    election that a 3 s TTL does not outlast): the list does not change, no worker loses its lease.
  since=$(now_ms)
  local grants watched leader victim
  grants=$(all_grants)
  poll "the frontend's watch connection" 5 eval "[ -n \"\$(watched_member $net)\" ]"
  watched=$(watched_member "$net")
  leader=$(etcd_leader)
  [ -n "$leader" ] || fail "no member reports itself leader"
  victim=$(for i in 1 2 3; do echo "etcd$i"; done | grep -vx -e "$watched" -e "$leader" | head -n1)
  d kill "$RUN-$victim" >/dev/null || fail "docker kill $victim"
  hold "the frontend's list while $victim is down" $((CLUSTER_TTL + 1)) state_is fe "$full"
  [ "$(all_grants)" = "$grants" ] || fail "a worker was granted a new lease while $victim was down ($grants -> $(all_grants))"
  d start "$RUN-$victim" >/dev/null || fail "docker start $victim"
  poll "the 3 members healthy after $victim restarted" 30 etcd_healthy 3
  only fe "$since" "$full" "while $victim was killed"
  ok "3. docker kill $victim (a follower; the frontend watches $watched, the leader is $leader): the list unchanged for $((CLUSTER_TTL + 1)) s, no lease lost; docker start: it rejoined"

  # 4. docker pause the member the frontend watches (found from its sockets: nsenter ss). The
  #    leader is moved off it first (etcdctl move-leader): pausing the leader starts an election.
  since=$(now_ms)
  poll "the frontend's watch connection" 5 eval "[ -n \"\$(watched_member $net)\" ]"
  watched=$(watched_member "$net")
  leader=$(etcd_leader)
  local moved=""
  if [ "$watched" = "$leader" ]; then
    local to
    to=$(for i in 1 2 3; do echo "etcd$i"; done | grep -vx "$watched" | head -n1)
    etcdctl_in "$to" --endpoints="http://$leader:2379" move-leader "$(member_id "$to")" >/dev/null ||
      fail "etcdctl move-leader from $leader to $to"
    poll "leadership to move from $leader to $to" 10 eval "[ \"\$(etcd_leader)\" = $to ]"
    moved=" (the leader: leadership moved to $to first)"
  fi
  grants=$(all_grants)
  d pause "$RUN-$watched" >/dev/null || fail "docker pause $watched"
  poll "the frontend to leave the paused $watched" $((CLUSTER_TTL + 2)) eval "w=\$(watched_member $net) && [ -n \"\$w\" ] && [ \"\$w\" != $watched ]"
  local now_watched
  now_watched=$(watched_member "$net")
  hold "the frontend's list while $watched is paused" $((CLUSTER_TTL + 1)) state_is fe "$full"
  [ "$(all_grants)" = "$grants" ] || fail "a worker was granted a new lease while $watched was paused ($grants -> $(all_grants))"
  d unpause "$RUN-$watched" >/dev/null || fail "docker unpause $watched"
  poll "the 3 members healthy after unpausing $watched" 20 etcd_healthy 3
  only fe "$since" "$full" "while $watched was paused"
  ok "4. docker pause $watched, the member the frontend watched$moved: it moved to $now_watched, the list stayed right, no lease lost"

  # 5. Stop every member, wipe their data, start them: every worker back with a new lease within
  #    TTL + 2 s of the members' start, no worker process restarted.
  since=$(now_ms)
  local before_proc t_up ids_re
  before_proc=$(for w in w1 w2 w3; do inspect "$RUN-$w" '{{.State.Pid}} {{.State.StartedAt}} {{.RestartCount}}'; done)
  d stop -t 5 "$RUN-etcd1" "$RUN-etcd2" "$RUN-etcd3" >/dev/null || fail "docker stop of the members"
  for i in 1 2 3; do
    exited "$RUN-etcd$i" || fail "etcd$i is $(inspect "$RUN-etcd$i" '{{.State.Status}}') after docker stop"
    rm -rf "${ETCD_DATA:?}/etcd$i/data"
  done
  d start "$RUN-etcd1" "$RUN-etcd2" "$RUN-etcd3" >/dev/null || fail "docker start of the members"
  t_up=$(for i in 1 2 3; do ms "$(inspect "$RUN-etcd$i" '{{.State.StartedAt}}')"; done | sort -n | tail -n1)
  poll "the 3 wiped members healthy" 30 etcd_healthy 3
  [ -z "$(etcdctl_in etcd1 get --print-value-only /healthd/smoke)" ] || fail "/healthd/smoke survived the wipe"
  old="${id[w1]} ${id[w2]} ${id[w3]}"
  ids_re="${id[w1]}|${id[w2]}|${id[w3]}"
  poll "every worker registered again after the wipe" $((CLUSTER_TTL + 5)) all_reregistered "$old"
  for w in w1 w2 w3; do id[$w]=$(instance_id "$w"); done
  full=$(want "${id[w1]}" "${id[w2]}" "${id[w3]}")
  poll "the frontend to list the re-registered workers" 5 state_is fe "$full"
  back=$(first_ms fe "$t_up" "$full")
  back=$((back - t_up))
  [ "$back" -le $((ttl_ms + 2000)) ] || fail "after the wipe the list was whole ${back} ms after the members started, want <= TTL + 2 s"
  [ "$(for w in w1 w2 w3; do inspect "$RUN-$w" '{{.State.Pid}} {{.State.StartedAt}} {{.RestartCount}}'; done)" = "$before_proc" ] ||
    fail "a worker container restarted during the wipe: $before_proc"
  ids_re+="|${id[w1]}|${id[w2]}|${id[w3]}"
  only fe "$since" "$full|healthy (($ids_re)(,|\$))+|unhealthy none|unavailable" "while etcd was stopped and wiped"
  local seen
  seen=$(awk -v s="$since" '$2 == "fe" && $1 >= s { sub(/^[^ ]+ [^ ]+ /, ""); sub(/^healthy .*/, "healthy"); if ($0 != last) printf "%s%s", (n++ ? " -> " : ""), $0; last = $0 }' "$cw/log")
  ok "5. docker stop of every member, data wiped, docker start: the list whole again ${back} ms after the last member started (new ids ${id[w1]}, ${id[w2]}, ${id[w3]}); the workers kept their process (PID, StartedAt, RestartCount 0); the frontend said: $seen"

  # 6. docker restart the frontend: the list is whole again within 1 s of it answering.
  since=$(now_ms)
  d restart -t 5 "$RUN-fe" >/dev/null || fail "docker restart fe"
  cluster_port fe
  local t_listen
  t_listen=$(d logs -t "$RUN-fe" 2>&1 | grep -F 'healthd: listening on' | tail -n1 | cut -d' ' -f1)
  [ "$(d logs "$RUN-fe" 2>&1 | grep -cF 'healthd: listening on')" = 2 ] || fail "the frontend's log has not 2 'listening on' lines after docker restart"
  t_listen=$(ms "$t_listen")
  poll "the restarted frontend to list the workers" 5 state_is fe "$full"
  back=$(first_ms fe "$t_listen" "$full")
  back=$((back - t_listen))
  [ "$back" -le 1000 ] || fail "the restarted frontend listed every worker ${back} ms after it started listening, want <= 1 s"
  only fe "$since" "$full|down|unavailable|unhealthy none|code 503" "while the frontend restarted"
  hold "the frontend's list after the restart" 1 state_is fe "$full"

  # Through all of it each worker's own /health answered 200 ready, or nothing while killed.
  kill "$CLUSTER_PROBER" 2>/dev/null
  wait "$CLUSTER_PROBER" 2>/dev/null || true
  CLUSTER_PROBER=""
  [ -s "$cw/counts" ] || fail "the prober wrote no counts (it died early?)"
  only w1 0 "ready|down" "w1's own /health"
  only w2 0 "ready" "w2's own /health (disconnected from etcd in step 2)"
  only w3 0 "ready" "w3's own /health"
  [ "$(grep -c ' w1 ' "$cw/log")" = 3 ] || fail "w1's own /health: $(grep ' w1 ' "$cw/log" | tr '\n' ';')"
  ok "6. docker restart fe: the list whole ${back} ms after it started listening; every worker's own /health answered 200 ready throughout ($(cat "$cw/counts") probes)"
}

# all_reregistered "OLD IDS": every worker holds a lease that is none of OLD and one endpoint.
all_reregistered() {
  local w
  for w in w1 w2 w3; do
    [[ " $1 " != *" $(instance_id "$w") "* ]] && metric_is "$w" healthd_etcd_registered_endpoints 1 || return 1
  done
}
# want ID...: the prober's summary of a frontend /health listing exactly these instance ids.
want() { printf 'healthy %s\n' "$(printf '%s\n' "$@" | LC_ALL=C sort | paste -sd,)"; }
# instance_id W: the instance id W's healthd logged for its current lease.
instance_id() {
  local out
  out=$(d logs "$RUN-$1" 2>&1)
  sed -n 's/.*; instance id \([0-9][0-9]*\)$/\1/p' <<<"$out" | tail -n1
}
cluster_port() {
  local p
  p=$(d port "$RUN-$1" "$([ "$1" = fe ] && echo 8000 || echo 8081)/tcp" | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -n1)
  [ -n "$p" ] || fail "$1 publishes no 127.0.0.1 port"
  echo "$p" >"$work/cluster/port.$1.tmp" && mv "$work/cluster/port.$1.tmp" "$work/cluster/port.$1"
}
metric_is() {
  local out
  out=$(curl -s --max-time 2 "http://127.0.0.1:$(cat "$work/cluster/port.$1")/metrics") || return 1
  grep -qx "$2 $3" <<<"$out"
}
all_grants() {
  local w out
  for w in w1 w2 w3; do
    out=$(curl -s --max-time 2 "http://127.0.0.1:$(cat "$work/cluster/port.$w")/metrics")
    printf '%s=%s ' "$w" "$(sed -n 's/^healthd_etcd_leases_granted_total //p' <<<"$out")"
  done
}
cw_body() { curl -s --max-time 2 "http://127.0.0.1:$(cat "$work/cluster/port.$1")/health"; }
cw_body_has() { [ "$(cw_body "$1")" = "$2" ]; }
# cw_body_is fe SUMMARY: the frontend's /health, summarized as the prober does, is SUMMARY.
cw_body_is() { [ "$(cw_body "$1" | python3 "$work/cluster/prober.py" summarize)" = "$2" ]; }
state_is() { [ "$(cat "$work/cluster/state.$1" 2>/dev/null)" = "$2" ]; }
# first_ms NAME SINCE SUMMARY: when NAME's answer first changed to SUMMARY at or after SINCE.
first_ms() {
  local t
  t=$(awk -v n="$1" -v s="$2" -v w="$3" '$2 == n && $1 >= s { t = $1; sub(/^[^ ]+ [^ ]+ /, ""); if ($0 == w) { print t; exit } }' "$work/cluster/log")
  [ -n "$t" ] || fail "the prober never saw $1 answer '$3' after $2"
  echo "$t"
}
# only NAME SINCE REGEX WHAT: every answer NAME gave since SINCE (the one in effect then included)
# matches REGEX (alternatives of the summaries allowed).
only() {
  local bad
  bad=$(awk -v n="$1" -v s="$2" -v re="^($3)\$" '
    $2 == n { line = $0; t = $1; sub(/^[^ ]+ [^ ]+ /, ""); if (t < s) { prev = $0; pline = line; next }
              if ($0 !~ re) { print line; exit } }
    END { if (prev != "" && prev !~ re) print pline }' "$work/cluster/log")
  [ -z "$bad" ] || fail "$4: $1 answered '$bad' (ms, target, answer); allowed: $3"
}
# hold WHAT SECONDS CMD...: CMD stays true for SECONDS (checked every 50 ms).
hold() {
  local what=$1 secs=$2
  shift 2
  local deadline=$(($(now_ms) + secs * 1000))
  while [ "$(now_ms)" -lt "$deadline" ]; do
    "$@" >/dev/null 2>&1 || fail "$what changed: $(tail -n 3 "$work/cluster/log" | tr '\n' ';')"
    sleep 0.05
  done
}
# net_event_ms connect|disconnect NETWORK CONTAINER SINCE_MS: the engine's time of that event.
net_event_ms() {
  local cid ns
  cid=$(inspect "$3" '{{.Id}}')
  ns=$(d events --since "$(($4 / 1000 - 1))" --until "$(date +%s.%N)" --filter type=network --filter "event=$1" \
    --filter "network=$2" --format '{{.TimeNano}} {{index .Actor.Attributes "container"}}' | awk -v c="$cid" '$2 == c { print $1; exit }')
  [ -n "$ns" ] || fail "the engine logged no network $1 event for $3 on $2"
  echo $((ns / 1000000))
}
etcdctl_in() {
  local m=$1
  shift
  d exec "$RUN-$m" /usr/bin/etcdctl --dial-timeout=1s --command-timeout=2s "$@" 2>&1
}
etcd_members_up() { for i in 1 2 3; do [ "$(inspect "$RUN-etcd$i" '{{.State.Status}}')" = running ] && echo "etcd$i"; done; }
etcd_healthy() {
  local m
  m=$(etcd_members_up | head -n1)
  [ "$(etcdctl_in "$m" --endpoints=http://etcd1:2379,http://etcd2:2379,http://etcd3:2379 endpoint health | grep -c 'is healthy')" = "$1" ]
}
# etcd_leader: the member that reports itself leader (etcdctl endpoint status: field 5).
etcd_leader() {
  local m
  m=$(etcd_members_up | head -n1)
  etcdctl_in "$m" --endpoints=http://etcd1:2379,http://etcd2:2379,http://etcd3:2379 endpoint status |
    awk -F', ' '$5 == "true" { sub(/^http:\/\//, "", $1); sub(/:2379$/, "", $1); print $1 }'
}
member_id() {
  etcdctl_in "$1" --endpoints="http://$1:2379" endpoint status | awk -F', ' '{ print $2 }'
}
# watched_member NETWORK: the member the frontend holds connections to (its watch), from the
# established TCP connections in its network namespace; empty unless exactly one member.
watched_member() {
  local peers i ip
  peers=$(nsenter -t "$(host_pid "$RUN-fe")" -n ss -tnH state established '( dport = :2379 )' | awk '{ print $NF }' | sed 's/:2379$//' | sort -u)
  [ "$(wc -w <<<"$peers")" = 1 ] || return 0
  for i in 1 2 3; do
    ip=$(inspect "$RUN-etcd$i" "{{(index .NetworkSettings.Networks \"$1\").IPAddress}}")
    [ "$ip" != "$peers" ] || echo "etcd$i"
  done
}
# cluster_prober DIR NAME...: GET /health on each NAME's published port (DIR/port.NAME, read every
# time: a restart may move it) every 50 ms; every change of answer is appended to DIR/log as
# "MS NAME SUMMARY" and DIR/state.NAME holds the latest. On SIGTERM: DIR/counts.
cluster_prober() {
  local dir=$1
  shift
  exec python3 "$dir/prober.py" "$dir" "$@"
}
write_prober() {
  cat >"$1/prober.py" <<'PY'
import http.client, json, os, signal, sys, threading, time

def summarize(name, code, body):
    """One line per kind of answer; 'bad ...' for anything neither role should ever say."""
    try:
        doc = json.loads(body)
    except ValueError:
        return f"bad {code} {body[:120]!r}"
    if name != "fe":
        if code == 200 and doc.get("status") == "ready" and doc.get("endpoints") == {"generate": "ready"}:
            return "ready"
        return f"bad {code} {body[:120]!r}"
    if code != 200:
        return f"code {code}"
    insts = doc.get("instances")
    if doc.get("status") == "healthy" and insts and doc.get("endpoints") == ["dyn://dynamo.backend.generate"]:
        ids = []
        for i in insts:
            n = i.get("instance_id")
            if not (type(n) is int and i.get("component") == "backend" and i.get("endpoint") == "generate"
                    and i.get("namespace") == "dynamo" and i.get("transport") == {"nats_tcp": f"dynamo_backend.generate-{n:x}"}):
                return f"bad {code} {body[:200]!r}"
            ids.append(str(n))
        return "healthy " + ",".join(sorted(ids))
    msg = doc.get("message", "")
    if doc.get("status") == "unhealthy" and insts == []:
        if msg == "No endpoints available":
            return "unhealthy none"
        if msg.startswith("Discovery unavailable since "):
            return "unavailable"
    return f"bad {code} {body[:200]!r}"

if sys.argv[1] == "summarize":
    print(summarize("fe", 200, sys.stdin.read()))
    sys.exit(0)

out, names = sys.argv[1], sys.argv[2:]
lock = threading.Lock()
log = open(f"{out}/log", "a", buffering=1)
counts = {n: 0 for n in names}

def watch(name):
    last = None
    while True:
        t0 = time.time()
        try:
            port = int(open(f"{out}/port.{name}").read())
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
            c.request("GET", "/health")
            r = c.getresponse()
            s = summarize(name, r.status, r.read().decode("utf-8", "replace"))
            c.close()
        except (OSError, http.client.HTTPException, ValueError):
            s = "down"
        counts[name] += 1
        if s != last:
            with lock:
                log.write(f"{int(time.time() * 1000)} {name} {s}\n")
                with open(f"{out}/state.{name}.tmp", "w") as f:
                    f.write(s + "\n")
                os.replace(f"{out}/state.{name}.tmp", f"{out}/state.{name}")
            last = s
        time.sleep(max(0, 0.05 - (time.time() - t0)))

def stop(*_):
    with lock:
        open(f"{out}/counts", "w").write(" ".join(f"{n} {c}" for n, c in counts.items()) + "\n")
    os._exit(0)

signal.signal(signal.SIGTERM, stop)
for n in names:
    threading.Thread(target=watch, args=(n,), daemon=True).start()
while True:
    time.sleep(3600)
PY
}

# --- run the items -----------------------------------------------------------------------------

readme_commands
declare -A pids=()
items=(image health hardened stop run compose readme limits etcd)
# CONTAINER_ITEMS="etcd run" runs only those items (for working on one; the suite runs them all).
[ -z "${CONTAINER_ITEMS:-}" ] || read -ra items <<<"$CONTAINER_ITEMS"
for item in "${items[@]}"; do
  (
    ITEM=$item
    t0=$(now_ms)
    "item_$item"
    printf 'container: %s: done in %s ms\n' "$item" "$(($(now_ms) - t0))"
  ) >"$work/item-$item.log" 2>&1 &
  pids[$item]=$!
done
failed=()
for item in "${items[@]}"; do
  wait "${pids[$item]}" || failed+=("$item")
  cat "$work/item-$item.log"
done
total=$(($(now_ms) - t_start))
if [ ${#failed[@]} -gt 0 ]; then
  fail "${#failed[@]} of ${#items[@]} items failed (${failed[*]}) in $((total / 1000)) s"
fi
say "all ${#items[@]} items passed in $((total / 1000)).$(((total % 1000) / 100)) s"
