"""etcd_harness: the pieces scripts/etcd-scenarios.py and scripts/bench-discovery.sh share (stdlib
Python 3.11 only): real etcd members on loopback with temporary data dirs, healthd workers and
frontends with a clean environment, a keep-alive HTTP client, the etcd v3 JSON gateway (put, txn,
watch) and polls with deadlines. Nothing here sleeps a fixed time to wait for something; every
wait polls until a deadline and raises `Failure` saying what it last saw.

Every process and temporary directory it creates is registered and removed by `cleanup()`, which
the drivers run from `atexit` and from their SIGTERM/SIGINT handlers."""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

LOCAL = "127.0.0.1"
_procs = []  # every Popen started here (killed by cleanup)
_dirs = []  # every temporary directory made here (removed by cleanup)


class Failure(Exception):
    """A check failed; the message says what was expected and what was seen."""


def cleanup():
    for p in _procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)  # a SIGSTOPped etcd dies of SIGKILL too, but be plain
                p.kill()
            except OSError:
                pass
    for p in _procs:
        try:
            p.wait(5)
        except Exception:
            pass
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)


def temp_dir(prefix):
    """A temporary directory, on tmpfs when there is one (etcd fsyncs every write)."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    d = tempfile.mkdtemp(prefix=prefix, dir=base)
    _dirs.append(d)
    return d


def free_ports(n):
    """n distinct free loopback ports (all bound at once, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((LOCAL, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def poll(what, fn, timeout, interval=0.01):
    """Calls fn() until it returns something truthy or `timeout` seconds pass; returns
    (value, seconds taken). fn may return (ok, seen): then `seen` is what a failure reports."""
    t0 = time.monotonic()
    end = t0 + timeout
    seen = None
    while True:
        try:
            r = fn()
        except OSError as e:  # not answering yet; a Failure raised by fn ends the poll
            r = (False, f"error: {e}")
        if isinstance(r, tuple) and len(r) == 2 and isinstance(r[0], bool):
            ok, seen = r
        else:
            ok, seen = bool(r), r
        if ok:
            return seen, time.monotonic() - t0
        if time.monotonic() >= end:
            raise Failure(f"{what}: not within {timeout:g} s; last seen: {short(seen)}")
        time.sleep(interval)


def short(x, limit=1500):
    s = x.decode(errors="replace") if isinstance(x, bytes) else str(x)
    return s if len(s) <= limit else s[:limit] + f"... ({len(s)} chars)"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def unb64(s):
    return base64.b64decode(s).decode(errors="replace")


def prefix_end(prefix):
    """The range_end that selects every key starting with prefix (last byte + 1)."""
    b = prefix.encode()
    return b[:-1] + bytes([b[-1] + 1])


# --- HTTP/1.1 over one keep-alive connection ----------------------------------------------------


class Http:
    """GET over one keep-alive connection (reopened after any fault); 1 s deadline per request."""

    def __init__(self, port, timeout=1.0):
        self.port, self.timeout, self.sock = port, timeout, None

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def get(self, path):
        """(status, headers dict lowercased, body bytes); raises OSError on a fault."""
        try:
            return self._get(path)
        except (OSError, ValueError, IndexError):
            self.close()
            raise OSError(f"GET 127.0.0.1:{self.port}{path} failed")

    def _get(self, path):
        if self.sock is None:
            self.sock = socket.create_connection((LOCAL, self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(self.timeout)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("closed")
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers["content-length"])
        while len(body) < length:
            chunk = self.sock.recv(max(65536, length - len(body)))
            if not chunk:
                raise OSError("closed")
            body += chunk
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body[:length]


def metrics(port):
    """/metrics as {name: value string} (labels kept in the name)."""
    h = Http(port)
    try:
        status, _, body = h.get("/metrics")
    finally:
        h.close()
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = value
    return out


# --- etcd ---------------------------------------------------------------------------------------


class Gateway:
    """The etcd v3 JSON gateway of one member (/v3/...), over one keep-alive connection."""

    def __init__(self, port, timeout=2.0):
        self.port, self.timeout, self.sock = port, timeout, None

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def call(self, path, body):
        data = json.dumps(body).encode()
        for attempt in (1, 2):  # one retry on a stale keep-alive connection
            try:
                if self.sock is None:
                    self.sock = socket.create_connection((LOCAL, self.port), timeout=self.timeout)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: etcd\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode() + data
                )
                status, body = read_http_body(self.sock)
                break
            except OSError as e:
                self.close()
                if attempt == 2 or isinstance(e, TimeoutError):
                    raise
        reply = json.loads(body or b"{}")
        if status != 200:
            raise Failure(f"etcd {path} {body[:300]!r}: HTTP {status}")
        return reply

    def put(self, key, value, lease=None):
        body = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return self.call("/v3/kv/put", body)

    def put_many(self, pairs):
        """One txn with a put for each (key, value)."""
        ops = [{"requestPut": {"key": b64(k), "value": b64(v)}} for k, v in pairs]
        return self.call("/v3/kv/txn", {"success": ops})

    def delete(self, key):
        return self.call("/v3/kv/deleterange", {"key": b64(key)})

    def delete_prefix(self, prefix):
        return self.call("/v3/kv/deleterange", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})

    def range_prefix(self, prefix):
        r = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        return {unb64(kv["key"]): (unb64(kv["value"]), int(kv.get("lease", "0"))) for kv in r.get("kvs", [])}


def read_http_body(sock):
    """(status, body) of one HTTP/1.1 response with Content-Length or chunked encoding."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        c = sock.recv(65536)
        if not c:
            raise OSError("closed")
        buf += c
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            c = sock.recv(65536)
            if not c:
                raise OSError("closed")
            rest += c
        return status, rest[:n]
    body = b""
    reader = ChunkReader(sock, rest)
    while (piece := reader.next_chunk()) is not None:
        body += piece
    return status, body


class ChunkReader:
    """Reads a chunked HTTP body piece by piece (the watch stream)."""

    def __init__(self, sock, pending=b""):
        self.sock, self.buf = sock, pending

    def _need(self, n):
        while len(self.buf) < n:
            c = self.sock.recv(65536)
            if not c:
                raise OSError("stream closed")
            self.buf += c

    def _line(self):
        while b"\r\n" not in self.buf:
            c = self.sock.recv(65536)
            if not c:
                raise OSError("stream closed")
            self.buf += c
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def next_chunk(self):
        size = int(self._line().split(b";")[0], 16)
        if size == 0:
            self._line()
            return None
        self._need(size + 2)
        piece, self.buf = self.buf[:size], self.buf[size + 2 :]
        return piece


class Watch:
    """A watch on a prefix through the gateway; a thread stamps each event with perf_counter().
    events: list of (t, "PUT"|"DELETE", key)."""

    def __init__(self, port, prefix):
        self.events = []
        self.cond = threading.Condition()
        self.sock = socket.create_connection((LOCAL, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = json.dumps(
            {"create_request": {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}}
        ).encode()
        self.sock.sendall(
            f"POST /v3/watch HTTP/1.1\r\nHost: etcd\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self.sock.recv(65536)
        _, _, rest = buf.partition(b"\r\n\r\n")
        self.reader = ChunkReader(self.sock, rest)
        self.created = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        if not self.created.wait(5):
            raise Failure("etcd watch: no 'created' answer within 5 s")

    def _run(self):
        self.sock.settimeout(None)
        line = b""
        try:
            while (piece := self.reader.next_chunk()) is not None:
                line += piece
                while b"\n" in line:
                    one, _, line = line.partition(b"\n")
                    self._one(one)
                if line.strip().endswith(b"}"):
                    try:
                        self._one(line)
                        line = b""
                    except ValueError:
                        pass
        except OSError:
            pass

    def _one(self, raw):
        if not raw.strip():
            return
        msg = json.loads(raw)
        t = time.perf_counter()
        result = msg.get("result", {})
        if result.get("created"):
            self.created.set()
        with self.cond:
            for ev in result.get("events", []):
                self.events.append((t, ev.get("type", "PUT"), unb64(ev["kv"]["key"])))
            self.cond.notify_all()

    def wait_for(self, kind, key, timeout=5):
        """perf_counter() time of the first event (kind, key) not yet consumed."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, (t, k, name) in enumerate(self.events):
                    if k == kind and name == key:
                        del self.events[: i + 1]
                        return t
                left = end - time.monotonic()
                if left <= 0:
                    raise Failure(f"etcd watch: no {kind} {key} within {timeout} s; saw {self.events[-5:]}")
                self.cond.wait(left)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Member:
    def __init__(self, name, client_port, peer_port, workdir):
        self.name, self.client_port, self.peer_port = name, client_port, peer_port
        self.workdir = workdir
        self.data_dir = os.path.join(workdir, name + ".data")
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = None
        self.generation = 0

    @property
    def client_url(self):
        return f"http://{LOCAL}:{self.client_port}"

    @property
    def peer_url(self):
        return f"http://{LOCAL}:{self.peer_port}"

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    """1 or 3 etcd members on loopback, each with its own temporary data dir and free ports."""

    def __init__(self, size, etcd="etcd", etcdctl="etcdctl", tag="etcd", extra_args=()):
        self.etcd, self.etcdctl_bin = etcd, etcdctl
        self.extra_args = list(extra_args)
        self.user = None  # "name:password" once auth is enabled
        self.workdir = temp_dir(f"healthd-{tag}-")
        ports = free_ports(2 * size)
        self.members = [Member(f"m{i}", ports[2 * i], ports[2 * i + 1], self.workdir) for i in range(size)]
        self.token = f"healthd-test-{os.getpid()}-{time.monotonic_ns()}"

    def initial_cluster(self):
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    def start_member(self, m):
        m.generation += 1
        log = open(m.log_path, "ab")
        log.write(f"--- start {m.generation} ---\n".encode())
        log.flush()
        m.proc = subprocess.Popen(
            [
                self.etcd,
                "--name", m.name,
                "--data-dir", m.data_dir,
                "--listen-client-urls", m.client_url,
                "--advertise-client-urls", m.client_url,
                "--listen-peer-urls", m.peer_url,
                "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", self.initial_cluster(),
                "--initial-cluster-state", "new",
                "--initial-cluster-token", f"{self.token}-{m.generation}",
                "--listen-metrics-urls", "",
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ETCD_UNSUPPORTED_ARCH": os.environ.get("ETCD_UNSUPPORTED_ARCH", "")},
        )
        log.close()
        _procs.append(m.proc)

    def start(self, timeout=20):
        for m in self.members:
            self.start_member(m)
        return self.wait_healthy(timeout)

    def wait_healthy(self, timeout=20, members=None):
        """Waits until every given member serves a linearizable read; returns the seconds taken."""
        members = members or [m for m in self.members if m.alive()]

        def ok():
            for m in members:
                if not m.alive():
                    raise Failure(f"etcd {m.name} exited: {self.log_tail(m)}")
                try:
                    Gateway(m.client_port, timeout=1).call("/v3/kv/range", {"key": b64("health-probe")})
                except (OSError, Failure, ValueError) as e:
                    return False, f"{m.name}: {e}"
            return True, "healthy"

        return poll(f"etcd members {[m.name for m in members]} healthy", ok, timeout, 0.05)[1]

    def log_tail(self, m, n=15):
        try:
            with open(m.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def endpoints(self, order=None):
        order = order if order is not None else range(len(self.members))
        return ",".join(self.members[i].client_url for i in order)

    def live_endpoints(self):
        return ",".join(m.client_url for m in self.members if m.alive() and not getattr(m, "stopped", False))

    def ctl(self, *args, endpoints=None, check=True, timeout=10):
        """etcdctl (API v3) against the live members; returns stdout."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ETCDCTL_API": "3"}
        user = ["--user", self.user] if self.user else []
        cmd = [self.etcdctl_bin, "--endpoints", endpoints or self.live_endpoints(), "--command-timeout=3s", *user, *args]
        r = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise Failure(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.decode(errors='replace').strip()}")
        return r.stdout.decode()

    def get_prefix(self, prefix="v1/instances/"):
        """{key: (value, lease)} from `etcdctl get --prefix -w json`."""
        out = json.loads(self.ctl("get", "--prefix", prefix, "-w", "json"))
        return {unb64(kv["key"]): (unb64(kv["value"]), int(kv.get("lease", 0))) for kv in out.get("kvs", [])}

    def grant(self, ttl):
        out = self.ctl("lease", "grant", str(ttl))
        m = re.match(r"lease ([0-9a-f]+) granted", out)
        if not m:
            raise Failure(f"etcdctl lease grant: unexpected output {out!r}")
        return int(m.group(1), 16)

    def leader(self):
        """Index of the leader member, from `etcdctl endpoint status -w json`."""
        out = json.loads(self.ctl("endpoint", "status", "-w", "json"))
        for st in out:
            if st["Status"]["header"]["member_id"] == st["Status"]["leader"]:
                url = st["Endpoint"]
                for i, m in enumerate(self.members):
                    if m.client_url == url:
                        return i
        raise Failure(f"no leader in {out}")

    def member_id(self, i):
        out = json.loads(self.ctl("endpoint", "status", "-w", "json", endpoints=self.members[i].client_url))
        return out[0]["Status"]["header"]["member_id"]

    def move_leader_off(self, i):
        """Makes sure member i is not the leader."""
        if self.leader() != i:
            return
        target = (i + 1) % len(self.members)
        self.ctl("move-leader", format(self.member_id(target), "x"), endpoints=self.members[i].client_url)
        poll(f"leadership off m{i}", lambda: (self.leader() != i, f"leader m{self.leader()}"), 10, 0.05)

    def kill(self, i):
        m = self.members[i]
        if not m.alive():
            return
        m.proc.kill()
        m.proc.wait(5)

    def kill_all(self):
        for i, m in enumerate(self.members):
            if m.alive():
                self.kill(i)

    def stop(self, i):
        self.members[i].stopped = True
        os.kill(self.members[i].pid, signal.SIGSTOP)

    def cont(self, i):
        os.kill(self.members[i].pid, signal.SIGCONT)
        self.members[i].stopped = False

    def wipe_and_restart(self, timeout=20):
        """Every member down, data dirs deleted, started again as a brand-new cluster (same ports)."""
        self.kill_all()
        for m in self.members:
            shutil.rmtree(m.data_dir, ignore_errors=True)
        for m in self.members:
            self.start_member(m)
        return self.wait_healthy(timeout)


# --- healthd ------------------------------------------------------------------------------------


def tcp_peers(pid):
    """Remote ports of the established TCP connections (IPv4) held by pid."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                t = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
    except OSError:
        return []
    ports = []
    with open(f"/proc/{pid}/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[3] == "01" and parts[9] in inodes:  # ESTABLISHED
                ports.append(int(parts[2].split(":")[1], 16))
    return ports


class Healthd:
    """One healthd process with a clean environment (env -i), its log in its own temp dir."""

    def __init__(self, binary, name, env, ready_file=True, expect_start=True):
        self.binary, self.name = binary, name
        self.dir = temp_dir(f"healthd-{name}-")
        self.log_path = os.path.join(self.dir, "log")
        self.env = {"DYN_SYSTEM_HOST": LOCAL, "HEALTHD_SHUTDOWN_GRACE": "1s", **env}
        if ready_file and "HEALTHD_READY_FILE" not in self.env:
            # The directory exists before healthd starts (as a tmpfs mount in a container would).
            os.makedirs(os.path.join(self.dir, "run"))
            self.env["HEALTHD_READY_FILE"] = os.path.join(self.dir, "run", "ready")
        self.port = None
        self.started = time.monotonic()
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([binary], env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        _procs.append(self.proc)
        self.pid = self.proc.pid
        if expect_start:
            self.wait_listening()
        self.http = None

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_listening(self, timeout=10):
        def seen():
            m = re.search(r"listening on [\d.]+:(\d+)", self.log())
            if m:
                return True, int(m.group(1))
            if self.proc.poll() is not None:
                raise Failure(f"{self.name} exited {self.proc.returncode} before 'listening on': {self.log()}")
            return False, self.log()

        self.port = poll(f"{self.name}: 'listening on' line", seen, timeout)[0]

    def get(self, path="/health"):
        if self.http is None:
            self.http = Http(self.port)
        return self.http.get(path)

    def body(self, path="/health"):
        return self.get(path)[2]

    def json(self, path="/health"):
        return json.loads(self.body(path))

    def metrics(self):
        return metrics(self.port)

    def set(self, *args):
        """`healthd set ARGS` against this process's readiness file; returns when it has exited."""
        r = subprocess.run(
            [self.binary, "set", *args],
            env={"HEALTHD_READY_FILE": self.env["HEALTHD_READY_FILE"]},
            capture_output=True,
            timeout=10,
        )
        if r.returncode != 0:
            raise Failure(f"healthd set {' '.join(args)}: exit {r.returncode}: {r.stderr.decode()}")

    def signal(self, sig):
        os.kill(self.pid, sig)

    def alive(self):
        return self.proc.poll() is None

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"{self.name} still running {timeout} s after it was told to stop")

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)

    def cpu_ticks(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None


# --- Dynamo's keys and the frontend's view ----------------------------------------------------


def instance_key(ns, comp, ep, iid):
    return f"v1/instances/{ns}/{comp}/{ep}/{iid:x}"


def dynamo_value(ns, comp, ep, iid, transport=None, with_type=True, device_type=None):
    """The value exactly as Dynamo 0.6+ writes it (compact JSON, this key order)."""
    transport = transport if transport is not None else {"nats_tcp": f"{ns}_{comp}.{ep}-{iid:x}"}
    v = {}
    if with_type:
        v["type"] = "Endpoint"
    v.update({"component": comp, "endpoint": ep, "namespace": ns, "instance_id": iid, "transport": transport})
    if device_type:
        v["device_type"] = device_type
    return json.dumps(v, separators=(",", ":"))


def view_body(instances):
    """The frontend's exact /health body for a list of instance dicts (component, endpoint,
    instance_id, namespace, transport[, device_type])."""
    if not instances:
        return b'{"instances":[],"message":"No endpoints available","status":"unhealthy"}'
    inst = sorted(instances, key=lambda i: (i["namespace"], i["component"], i["endpoint"], i["instance_id"]))
    eps = sorted({f"dyn://{i['namespace']}.{i['component']}.{i['endpoint']}" for i in inst})
    return json.dumps({"endpoints": eps, "instances": inst, "status": "healthy"}, separators=(",", ":"), sort_keys=True).encode()


def instance(ns, comp, ep, iid, transport=None, device_type=None):
    i = {
        "component": comp,
        "endpoint": ep,
        "instance_id": iid,
        "namespace": ns,
        "transport": transport if transport is not None else {"nats_tcp": f"{ns}_{comp}.{ep}-{iid:x}"},
    }
    if device_type:
        i["device_type"] = device_type
    return i


UNAVAILABLE = b'{"instances":[],"message":"Discovery unavailable since '
