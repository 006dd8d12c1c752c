#!/usr/bin/env bash
# The scratch-run test: healthd as its users run it in a `FROM scratch` / distroless image.
#
# Builds the static binary (scripts/build-static.sh), makes a root that holds only `/healthd` and an
# empty writable directory `/run/healthd` (for the readiness file), and runs healthd there as PID 1
# of new PID and mount namespaces, chrooted, as uid/gid 65532 (distroless "nonroot"), with the root
# read-only and the host's network (so the host can probe 127.0.0.1). Nothing else is in the root:
# no /etc, no /proc, no /dev, no libraries, no shell.
#
# Checks: PID 1, credentials, read-only root; the health routes answer; SIGUSR1 flips them to 200;
# `healthd probe` run inside the same root exits 0 and 1 at the right times, and the readiness file
# and `healthd set` flip it (these wait for the host-process control issue: they print SKIPPED when
# the binary has no `probe` / readiness file / `set`); as PID 1 it reaps an orphan; SIGTERM ends it
# with exit 0 within the grace period and it keeps answering (not ready) meanwhile; a second SIGTERM
# ends it at once; nothing was written outside the writable directory; (strace) it opens no
# file at start except the readiness file; and (run 3, a root with only /etc/hosts and
# /etc/resolv.conf added) `ETCD_ENDPOINTS` names resolve without NSS: a worker registers through a
# search-list name answered by a DNS server the test starts, a frontend lists through a hosts-file
# name (a real etcd from Debian's etcd-server, installed when missing).
#
# Needs root (CI runs as root); fails loudly when it cannot create the namespaces. Every wait polls
# against a deadline.
set -euo pipefail
cd "$(dirname "$0")/.."

NONROOT=65532          # distroless nonroot uid and gid
GRACE_S=2              # HEALTHD_SHUTDOWN_GRACE for the test runs
READY_DIR=/run/healthd # the writable directory, as healthd sees it
READY_FILE=$READY_DIR/ready

passed=0
skipped=0
healthd_log=/dev/null

say() { printf 'scratch: %s\n' "$*"; }
ok() {
  passed=$((passed + 1))
  say "ok: $*"
}
skip() {
  skipped=$((skipped + 1))
  say "SKIPPED: $*"
}
fail() {
  printf '\nscratch: FAILED: %s\n' "$*" >&2
  if [ -s "$healthd_log" ]; then
    printf -- '--- healthd stderr (%s) ---\n' "$healthd_log" >&2
    cat "$healthd_log" >&2
    printf -- '--- end ---\n' >&2
  fi
  exit 1
}
now_ms() { date +%s%3N; }

# --- tools -------------------------------------------------------------------------------------

[ "$(id -u)" = 0 ] || fail "must run as root: it creates PID and mount namespaces and chroots (CI runs as root)"

missing=()
for tool in unshare:util-linux nsenter:util-linux chroot:coreutils curl:curl strace:strace sha256sum:coreutils file:file; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || fail "missing ${missing[*]} and no apt-get to install them"
  say "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" ||
    fail "cannot install ${missing[*]}"
fi
CHROOT=$(command -v chroot)
NSENTER=$(command -v nsenter)
TIMEOUT=$(command -v timeout)

if ! err=$(unshare --pid --fork --mount --propagation private true 2>&1); then
  fail "cannot create PID and mount namespaces (unshare --pid --fork --mount: $err); this test needs root with CAP_SYS_ADMIN and a kernel/container that allows namespaces"
fi

# --- the image ---------------------------------------------------------------------------------

bin=$(bash scripts/build-static.sh | tail -n1)
[ -x "$bin" ] || fail "scripts/build-static.sh printed no binary path"

work=$(mktemp -d /tmp/healthd-scratch.XXXXXX)
root=$work/root # the image: /healthd and the empty directory /run/healthd, nothing else
rundir=$work/run # bind-mounted (read-write) over $root/run/healthd inside the namespace
mkdir -p "$root$READY_DIR" "$rundir"
install -m 0555 "$bin" "$root/healthd"
chown "$NONROOT:$NONROOT" "$rundir"
chmod 0755 "$root" "$root/run" "$root$READY_DIR"

top_pid=""   # unshare (or strace) on the host
run_root=""  # another root for start_healthd (run 3), else $root
extra_env=() # more environment for start_healthd (run 3)
hpid=""      # healthd (PID 1 inside), as the host numbers it
port=""
extra_pids=()

cleanup() {
  local p
  for p in "${extra_pids[@]}" "$hpid" "$top_pid"; do
    [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
  done
  [ -n "$top_pid" ] && wait "$top_pid" 2>/dev/null || true
  # The mounts live only in the private mount namespace and vanish with it; make sure before rm.
  if grep -q " $work/" /proc/self/mountinfo; then
    umount -R -l "$root" 2>/dev/null || true
  fi
  grep -q " $work/" /proc/self/mountinfo || rm -rf "$work"
}
trap cleanup EXIT

snapshot() {
  # Everything in the root (the host's view, where the writable mount is not visible): names,
  # types, modes, owners, sizes, mtimes and ctimes, and the binary's hash.
  (cd "$root" && find . -printf '%p %y %m %U:%G %s %T@ %C@\n' | LC_ALL=C sort && sha256sum healthd)
}
before=$(snapshot)
[ "$(cd "$root" && find . | LC_ALL=C sort | tr '\n' ' ')" = ". ./healthd ./run ./run/healthd " ] ||
  fail "the root holds more than /healthd and /run/healthd"

# --- what this binary can do (probe, readiness file and set come with the host-control issue) ---

probe_rc=0
"$bin" probe "http://127.0.0.1:9/" --timeout 1s >/dev/null 2>&1 || probe_rc=$?
have_probe=false
case "$probe_rc" in 0 | 1) have_probe=true ;; esac
have_file=false
"$bin" --help 2>/dev/null | grep -q HEALTHD_READY_FILE && have_file=true
have_set=false
if $have_file; then
  mkdir -p "$work/settest"
  HEALTHD_READY_FILE=$work/settest/ready "$bin" set ready >/dev/null 2>&1 &&
    grep -qx ready "$work/settest/ready" 2>/dev/null && have_set=true
  rm -rf "$work/settest"
fi
say "binary: $bin (probe: $have_probe, readiness file: $have_file, set: $have_set)"

# --- running it --------------------------------------------------------------------------------

# Prints the host pids of every descendant of $1.
descendants() {
  local kids k
  kids=$(cat /proc/"$1"/task/*/children 2>/dev/null || true)
  for k in $kids; do
    echo "$k"
    descendants "$k"
  done
}

# Starts healthd as PID 1 in the scratch root. $1 = plain | strace. Sets top_pid, hpid, port.
# In the plain run healthd starts with stdin closed: with no /dev/null in this root, it must fill
# fd 0 with a pipe (checked below) rather than let its first socket take the number.
start_healthd() {
  local mode=$1 prefix=() stdin=open
  [ "$mode" = plain ] && stdin=closed
  local env=(DYN_SYSTEM_HOST=127.0.0.1 DYN_SYSTEM_PORT=0 "HEALTHD_SHUTDOWN_GRACE=${GRACE_S}s")
  $have_file && env+=("HEALTHD_READY_FILE=$READY_FILE")
  env+=("${extra_env[@]}")
  local root=${run_root:-$root}
  # shellcheck disable=SC2054 # trace=%file,connect is one strace argument
  [ "$mode" = strace ] && prefix=(strace -f -qq -o "$work/strace.log" -e trace=%file,connect)
  healthd_log=$work/healthd-$mode.log
  : >"$healthd_log"
  # Inside the new namespaces: a read-only bind of the root over itself, the writable directory
  # bound over /run/healthd, then exec (so healthd *is* PID 1) chroot, which drops to 65532 and
  # execs /healthd with a clean environment.
  # shellcheck disable=SC2016 # the inner script expands its own positional parameters
  "${prefix[@]}" unshare --pid --fork --mount --propagation private --kill-child -- \
    /bin/sh -ec '
      root=$1 rundir=$2 ready_dir=$3 chroot=$4 user=$5 stdin=$6; shift 6
      mount --bind "$root" "$root"
      mount -o remount,bind,ro,nosuid,nodev "$root"
      mount --bind "$rundir" "$root$ready_dir"
      mount -o remount,bind,nosuid,nodev,noexec "$root$ready_dir"
      [ "$stdin" = closed ] && exec 0<&-
      exec env -i "$@" "$chroot" --userspec="$user:$user" "$root" /healthd
    ' sh "$root" "$rundir" "$READY_DIR" "$CHROOT" "$NONROOT" "$stdin" "${env[@]}" \
    </dev/null >"$healthd_log" 2>&1 &
  top_pid=$!
  hpid=""
  port=""
  local deadline=$(($(now_ms) + 10000)) p
  while [ -z "$port" ] || [ -z "$hpid" ]; do
    kill -0 "$top_pid" 2>/dev/null || fail "healthd ($mode) exited before listening"
    [ "$(now_ms)" -lt "$deadline" ] || fail "healthd ($mode) did not log 'listening on' (or its process was not found under pid $top_pid) within 10s"
    if [ -z "$hpid" ]; then
      for p in $(descendants "$top_pid"); do
        [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$root/healthd" ] && hpid=$p
      done
    fi
    port=$(sed -n 's/^healthd: listening on .*:\([0-9][0-9]*\)$/\1/p' "$healthd_log" | head -n1)
    [ -n "$port" ] && [ -n "$hpid" ] || sleep 0.02
  done
  say "healthd ($mode) is host pid $hpid, listening on 127.0.0.1:$port"
}

# Waits (deadline $2 ms) for the host-side child $1 to exit; sets exit_rc (or "timeout"). Not in a
# command substitution: only this shell can `wait` for its children.
exit_rc=""
wait_exit() {
  local deadline=$(($(now_ms) + $2))
  exit_rc=0
  while [ -e "/proc/$1" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; do
    if [ "$(now_ms)" -ge "$deadline" ]; then
      exit_rc=timeout
      return 0
    fi
    sleep 0.02
  done
  wait "$1" || exit_rc=$?
}

http_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port$1" || true
}

# Polls until GET $1 answers $2 (deadline 5 s).
expect_http() {
  local path=$1 want=$2 deadline=$(($(now_ms) + 5000)) code
  while :; do
    code=$(http_code "$path")
    [ "$code" = "$want" ] && break
    [ "$(now_ms)" -lt "$deadline" ] || fail "GET $path answered $code, expected $want within 5s"
    sleep 0.02
  done
  ok "GET $path -> $code"
}

# Runs /healthd with arguments inside healthd's root, mount and PID namespaces, as 65532, with the
# environment an image's HEALTHCHECK would give it.
in_root() {
  local env=("DYN_SYSTEM_PORT=$port")
  $have_file && env+=("HEALTHD_READY_FILE=$READY_FILE")
  env -i "${env[@]}" "$TIMEOUT" 10 "$NSENTER" --target "$hpid" --mount --pid --root --wd \
    --setuid "$NONROOT" --setgid "$NONROOT" -- /healthd "$@"
}

# `healthd probe` (default target: 127.0.0.1:$DYN_SYSTEM_PORT, health path) must exit $1.
expect_probe() {
  local want=$1 rc=0 out
  shift
  $have_probe || {
    skip "healthd probe${*:+ $*} (expects exit $want): healthd probe not available yet"
    return 0
  }
  out=$(in_root probe "$@" 2>&1) || rc=$?
  [ "$rc" = "$want" ] || fail "healthd probe${*:+ $*} inside the root exited $rc, expected $want: $out"
  ok "healthd probe${*:+ $*} inside the root -> exit $rc ($out)"
}

# Writes the readiness file the way an application would: a temporary file renamed into place.
write_ready_file() {
  printf '%s\n' "$1" >"$rundir/.ready.tmp"
  chown "$NONROOT:$NONROOT" "$rundir/.ready.tmp"
  mv -f "$rundir/.ready.tmp" "$rundir/ready"
}

# --- run 1: behaviour --------------------------------------------------------------------------

start_healthd plain

status=/proc/$hpid/status
[ "$(awk '/^NSpid:/ { print $NF }' "$status")" = 1 ] || fail "healthd is not PID 1 in its namespace: $(grep NSpid "$status")"
ok "healthd is PID 1 of a new PID namespace ($(grep NSpid "$status" | tr -s '\t ' ' '))"
fd0=$(readlink "/proc/$hpid/fd/0" || true)
case $fd0 in
  pipe:*) ok "started with stdin closed and no /dev/null, healthd holds a pipe on fd 0 ($fd0)" ;;
  *) fail "healthd started with stdin closed: fd 0 is '$fd0', expected a pipe (no /dev/null in the root)" ;;
esac
[ "$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "$status")" = "$NONROOT $NONROOT $NONROOT $NONROOT" ] &&
  [ "$(awk '/^Gid:/ { print $2, $3, $4, $5 }' "$status")" = "$NONROOT $NONROOT $NONROOT $NONROOT" ] ||
  fail "healthd does not run as $NONROOT:$NONROOT: $(grep -E '^(Uid|Gid):' "$status" | tr '\n' ' ')"
groups=$(awk '/^Groups:/ { $1 = ""; print }' "$status" | tr -d ' ')
[ -z "$groups" ] || [ "$groups" = "$NONROOT" ] || fail "healthd has supplementary groups: $groups"
[ "$(awk '/^CapEff:/ { print $2 }' "$status")" = 0000000000000000 ] || fail "healthd has capabilities: $(grep CapEff "$status")"
ok "healthd runs as uid/gid $NONROOT, no supplementary groups, no capabilities"
[ "$(readlink "/proc/$hpid/root")" = "$root" ] || fail "healthd's root is $(readlink "/proc/$hpid/root"), not $root"
root_opts=$(awk '$5 == "/" { print $6 }' "/proc/$hpid/mountinfo" | tail -n1)
dir_opts=$(awk -v d="$READY_DIR" '$5 == d { print $6 }' "/proc/$hpid/mountinfo" | tail -n1)
case ",$root_opts," in *,ro,*) ;; *) fail "healthd's root is not mounted read-only (options: $root_opts)" ;; esac
case ",$dir_opts," in *,rw,*) ;; *) fail "$READY_DIR is not mounted read-write (options: $dir_opts)" ;; esac
ok "chrooted to the scratch root: / is read-only ($root_opts), $READY_DIR writable ($dir_opts)"

expect_http /health 503
expect_http /live 503
expect_http /ready 503
expect_http /metrics 200
expect_http /nope 404
expect_probe 1

if $have_file; then
  write_ready_file ready
  expect_http /health 200
  expect_probe 0
  write_ready_file notready
  expect_http /health 503
  expect_probe 1
else
  skip "readiness file flips /health and probe: HEALTHD_READY_FILE not available yet"
fi

if $have_set; then
  out=$(in_root set ready 2>&1) || fail "healthd set ready inside the root failed: $out"
  expect_http /health 200
  expect_probe 0
  out=$(in_root set notready 2>&1) || fail "healthd set notready inside the root failed: $out"
  expect_http /health 503
  expect_probe 1
else
  skip "healthd set ready|notready inside the root flips probe: healthd set not available yet"
fi

kill -USR1 "$hpid"
expect_http /health 200
expect_http /live 200
expect_probe 0
expect_probe 0 /live

# As PID 1 it reaps orphans: a host shell entered into healthd's PID namespace (not its root: the
# root has no shell) starts a sleep and exits, so the sleep is re-parented to PID 1; kill the sleep
# and see it reaped rather than left a zombie.
nsenter --target "$hpid" --pid --setuid "$NONROOT" --setgid "$NONROOT" -- \
  /bin/sh -c '/bin/sleep 60 </dev/null >/dev/null 2>&1 & exit 0' ||
  fail "cannot start a process in healthd's PID namespace"
orphan=""
deadline=$(($(now_ms) + 5000))
while [ -z "$orphan" ]; do
  [ "$(now_ms)" -lt "$deadline" ] || fail "no orphan was re-parented to healthd (PID 1)"
  orphan=$(cat /proc/"$hpid"/task/*/children 2>/dev/null | tr -s ' ' '\n' | grep -m1 . || true)
  [ -n "$orphan" ] || sleep 0.02
done
extra_pids+=("$orphan")
kill -KILL "$orphan"
deadline=$(($(now_ms) + 5000))
while [ -e "/proc/$orphan" ]; do
  [ "$(now_ms)" -lt "$deadline" ] ||
    fail "PID 1 did not reap its exited child (pid $orphan, state $(awk '/^State:/ { print $2 }' "/proc/$orphan/status" 2>/dev/null))"
  sleep 0.02
done
ok "PID 1 reaped an orphaned child after it exited"
expect_http /health 200

# SIGTERM to PID 1: not ready at once, keeps answering through the grace period, then exit 0.
t0=$(now_ms)
kill -TERM "$hpid"
expect_http /health 503
expect_probe 1
wait_exit "$top_pid" $((GRACE_S * 1000 + 3000))
rc=$exit_rc
elapsed=$(($(now_ms) - t0))
[ "$rc" != timeout ] || fail "healthd did not exit within ${GRACE_S}s grace + 3s after SIGTERM"
[ "$rc" = 0 ] || fail "healthd exited $rc after SIGTERM, expected 0"
[ "$elapsed" -ge $((GRACE_S * 1000 - 200)) ] || fail "healthd exited after ${elapsed}ms, before its ${GRACE_S}s drain"
ok "SIGTERM to PID 1: drained (503) and exited 0 after ${elapsed}ms (grace ${GRACE_S}s)"
top_pid=""
hpid=""

# --- run 2: files touched at start (strace), and a second SIGTERM -----------------------------

if $have_file; then write_ready_file ready; fi
start_healthd strace
if $have_file; then expect_http /health 200; else expect_http /health 503; fi
t0=$(now_ms)
kill -TERM "$hpid"
expect_http /health 503
kill -TERM "$hpid"
wait_exit "$top_pid" 3000
rc=$exit_rc
elapsed=$(($(now_ms) - t0))
[ "$rc" != timeout ] || fail "healthd did not exit at once on a second SIGTERM"
[ "$rc" = 0 ] || fail "healthd exited $rc after a second SIGTERM, expected 0"
[ "$elapsed" -lt $((GRACE_S * 1000)) ] || fail "a second SIGTERM took ${elapsed}ms, not at once"
ok "a second SIGTERM ends PID 1 at once (${elapsed}ms), exit 0"
top_pid=""
hpid=""

# Every path healthd named in a system call, from its own execve on. Allowed: the readiness
# directory, and /proc/self/exe, which glibc's static start-up tries and does without (there is
# no /proc in this root, so it fails with ENOENT and healthd serves anyway, as this run shows).
# Nothing else: healthd skips std's start-up, whose stack guard read /proc/self/maps, and names
# its threads with prctl instead of /proc/self/task/N/comm.
after_exec=$(awk 'started { print } /execve\("\/healthd"/ && / = 0$/ { started = 1 }
  END { if (!started) exit 3 }' "$work/strace.log") ||
  fail "strace shows no successful execve of /healthd: $(head -n 20 "$work/strace.log")"
paths=$(printf "%s\n" "$after_exec" | { grep -o '^[0-9]* *[a-z0-9_]*([^"]*"[^"]*"' | sed 's/^[0-9]* *\([a-z0-9_]*\)([^"]*"\([^"]*\)"$/\1 \2/' || true; } |
  awk '$2 != ""' | LC_ALL=C sort -u)
unexpected=$(printf '%s\n' "$paths" | awk -v d="$READY_DIR" '
  $2 == "/proc/self/exe" { next }
  $2 == d || index($2, d "/") == 1 { next }
  NF { print }')
[ -z "$unexpected" ] || fail "healthd touched files outside $READY_DIR at run time:
$unexpected"
ok "no runtime files: healthd named only $(printf '%s\n' "$paths" | awk 'NF { print $2 }' | sort -u | tr '\n' ' ')"

# --- run 3: etcd names in an empty root (issue 13) -------------------------------------------
#
# A static glibc binary cannot load NSS modules, so healthd resolves ETCD_ENDPOINTS names itself.
# A second root holds only /healthd, /run/healthd and /etc/{hosts,resolv.conf} (as the kubelet and
# Docker mount them into every container). A DNS server started here answers the search-list name;
# the hosts file holds another. A worker registers through etcd-0.etcd (resolv.conf: search list
# with ndots:5, as in a pod), and a frontend lists through etcd-hosts (the hosts file).

. scripts/lib/etcd.sh
etcd_start "$work/etcd" 2>"$work/etcd-start.err" || fail "no etcd for the names check: $(cat "$work/etcd-start.err")"
extra_pids+=("$ETCD_PID")
etcd_port=$ETCD_PORT

dns_addr=127.53.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 1)) # a loopback address of its own, port 53
python3 scripts/dns-server.py --addr "$dns_addr" --port 53 --record etcd-0.etcd.default.svc.cluster.local=127.0.0.1 \
  >"$work/dns.log" 2>&1 &
extra_pids+=("$!")
disown
deadline=$(($(now_ms) + 10000))
until grep -q "dns listening" "$work/dns.log"; do
  [ "$(now_ms)" -lt "$deadline" ] || fail "the test DNS server did not start: $(cat "$work/dns.log")"
  sleep 0.05
done

root3=$work/root3
mkdir -p "$root3$READY_DIR" "$root3/etc"
install -m 0555 "$bin" "$root3/healthd"
printf 'nameserver %s\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n' "$dns_addr" >"$root3/etc/resolv.conf"
printf '127.0.0.1 etcd-hosts\n' >"$root3/etc/hosts"
chmod 0644 "$root3/etc/resolv.conf" "$root3/etc/hosts"
run_root=$root3
write_ready_file generate=ready
extra_env=(HEALTHD_REGISTER=on "ETCD_ENDPOINTS=http://etcd-0.etcd:$etcd_port" ETCD_LEASE_TTL=3)
start_healthd plain
deadline=$(($(now_ms) + 5000))
until keys=$(etcdctl_ get --prefix v1/instances/ --keys-only 2>/dev/null) && [ -n "$keys" ]; do
  [ "$(now_ms)" -lt "$deadline" ] || fail "the worker in the empty root did not register through etcd-0.etcd (DNS search list) within 5s"
  sleep 0.05
done
case $keys in
  v1/instances/dynamo/backend/generate/*) ok "a worker in an empty root resolved etcd-0.etcd through resolv.conf's search list and registered ${keys%%$'\n'*}" ;;
  *) fail "unexpected keys in etcd: $keys" ;;
esac
kill -TERM "$hpid"
deadline=$(($(now_ms) + 3000))
while [ -n "$(etcdctl_ get --prefix v1/instances/ --keys-only 2>/dev/null)" ]; do
  [ "$(now_ms)" -lt "$deadline" ] || fail "SIGTERM did not revoke the worker's lease"
  sleep 0.02
done
ok "SIGTERM revoked the lease: the key is gone"
wait_exit "$top_pid" $((GRACE_S * 1000 + 3000))
top_pid=""
hpid=""

lease=$(etcdctl_ lease grant 30 | awk '{ print $2 }')
id=$((16#$lease)) # etcd's lease ids are positive int64s
lease=$(printf '%x' "$id") # etcdctl pads the hex to 16 digits; Dynamo's keys do not
etcdctl_ put --lease "$lease" "v1/instances/dynamo/backend/generate/$lease" \
  "{\"type\":\"Endpoint\",\"component\":\"backend\",\"endpoint\":\"generate\",\"namespace\":\"dynamo\",\"instance_id\":$id,\"transport\":{\"nats_tcp\":\"dynamo_backend.generate-$lease\"}}" >/dev/null
extra_env=(HEALTHD_ROLE=frontend DYN_HTTP_PORT=0 "ETCD_ENDPOINTS=http://etcd-hosts:$etcd_port")
start_healthd plain
want="{\"endpoints\":[\"dyn://dynamo.backend.generate\"],\"instances\":[{\"component\":\"backend\",\"endpoint\":\"generate\",\"instance_id\":$id,\"namespace\":\"dynamo\",\"transport\":{\"nats_tcp\":\"dynamo_backend.generate-$lease\"}}],\"status\":\"healthy\"}"
deadline=$(($(now_ms) + 5000))
until [ "$(curl -s --max-time 2 "http://127.0.0.1:$port/health")" = "$want" ]; do
  [ "$(now_ms)" -lt "$deadline" ] || fail "the frontend in the empty root did not list the instance through etcd-hosts (/etc/hosts): $(curl -s --max-time 2 "http://127.0.0.1:$port/health")"
  sleep 0.05
done
ok "a frontend in an empty root resolved etcd-hosts through /etc/hosts and lists the instance etcdctl wrote"
kill -KILL "$hpid"
wait_exit "$top_pid" 3000
top_pid=""
hpid=""
run_root=""
extra_env=()
rm -f "$rundir/ready"
write_ready_file ready

# --- nothing written outside the writable directory ------------------------------------------

after=$(snapshot)
[ "$before" = "$after" ] || fail "the read-only root changed:
$(diff <(echo "$before") <(echo "$after") || true)"
ok "the root is byte-for-byte unchanged"
# healthd serve writes nothing; the test wrote `ready` (and `healthd set`, which writes it too, may
# keep a companion such as a lock file next to it, named after it).
expected_files=""
$have_file && expected_files="ready"
got_files=$(cd "$rundir" && find . -mindepth 1 | sed 's|^\./||' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')
others=$(cd "$rundir" && find . -mindepth 1 | sed 's|^\./||' | grep -vx "$expected_files" || true)
if $have_set; then others=$(printf '%s\n' "$others" | grep -v '^\.\{0,1\}ready' || true); fi
[ -z "$others" ] && { [ -z "$expected_files" ] || [ -e "$rundir/ready" ]; } ||
  fail "the writable directory holds [$got_files], expected [$expected_files] (healthd serve writes nothing)"
ok "the writable directory holds only [$got_files]"

say "$passed passed, 0 failed, $skipped skipped"
