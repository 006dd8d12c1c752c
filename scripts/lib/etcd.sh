# shellcheck shell=bash
# One real etcd member on loopback for the shell suites (sourced, not run): Debian's etcd-server,
# installed when missing, on free ports with its data in a directory the caller removes.
#
#   . scripts/lib/etcd.sh
#   etcd_start "$work/etcd" || fail "..."   # sets ETCD_PORT, ETCD_PID (disowned; the caller kills it)
#   etcdctl_ put KEY VALUE
#
# Every function returns non-zero with the reason on stderr; the caller fails its own way.

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# etcdctl against the member etcd_start started.
etcdctl_() { ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$ETCD_PORT" "$@"; }

# etcd_start DIR: installs etcd when missing, starts one member with its data in DIR/data and its
# log in DIR/etcd.log, and waits (20 s at most) until it answers.
etcd_start() {
  local dir=$1 peer deadline
  if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
    echo "installing etcd-server etcd-client with apt-get" >&2
    { apt-get -o DPkg::Lock::Timeout=300 update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq etcd-server etcd-client; } >/dev/null ||
      { echo "cannot install etcd-server and etcd-client (Debian's packages)" >&2; return 1; }
  fi
  mkdir -p "$dir"
  ETCD_PORT=$(free_port)
  peer=$(free_port)
  etcd --name "$(basename "$dir")" --data-dir "$dir/data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "$(basename "$dir")=http://127.0.0.1:$peer" >"$dir/etcd.log" 2>&1 &
  ETCD_PID=$!
  disown "$ETCD_PID" # the caller kills it at exit; no job report then
  deadline=$((SECONDS + 20))
  until etcdctl_ endpoint health >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$ETCD_PID" 2>/dev/null; then
      echo "etcd did not answer within 20 s: $(tail -n 5 "$dir/etcd.log")" >&2
      return 1
    fi
    sleep 0.1
  done
}
