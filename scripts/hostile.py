#!/usr/bin/env python3
"""Hostile clients for healthd (Python 3 stdlib only, loopback only, every loop bounded).

    hostile.py attack BINARY        the attack suite: every case of shared/spec/http.md and more,
                                    each asserting healthd is alive, fresh probes are answered
                                    correctly during and after, and threads and RSS stay capped
    hostile.py probe PORT N         N sequential probes, a fresh connection each: p50/p99 in µs
    hostile.py hold PORT IDLE SLOW SECONDS
                                    hold IDLE idle and SLOW slowloris connections (reconnecting
                                    those the server closes) for SECONDS
    hostile.py first200 PORT CMD... exec CMD and print µs until the first 200 on PORT
    hostile.py mix PORT SECONDS IDLE SLOW
                                    the hostile mix against a healthd that is ready (a container's
                                    published port): IDLE idle and SLOW slowloris connections held,
                                    garbage connections throughout, and fresh probes that must all
                                    answer 200 within 1 s

scripts/suites/attack.sh runs the attack suite; scripts/bench.sh uses probe, hold and first200;
scripts/test-container.sh runs mix against a container under memory, pids and CPU limits.
"""

import os
import random
import re
import resource
import select
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

# Caps asserted after every case. healthd runs a fixed set of threads: the epoll loop, the signal
# thread, and (with a readiness file) one watcher.
THREADS_CAP = 4
RSS_CAP_KIB = 24 * 1024  # under 5,500 held connections; idle is ~1-2 MiB
PROBE_BOUND = 1.0  # seconds: a liveness bound, not a speed target (bench.sh measures speed)

PROBE = b"GET /health HTTP/1.1\r\nHost: healthd\r\nConnection: close\r\n\r\n"
LINGER0 = struct.pack("ii", 1, 0)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Failure(Exception):
    pass


def read_response(sock, deadline):
    """Reads one whole response (until EOF); returns (status, headers dict, body)."""
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure(f"no complete answer in time (got {data[:80]!r})")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise Failure(f"no complete answer in time (got {data[:80]!r})") from None
        if not chunk:
            break
        data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise Failure(f"no complete head: {data[:120]!r}")
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", lines[0])
    if not m:
        raise Failure(f"bad status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode()] = v.strip().decode()
    return int(m.group(1)), headers, body


def probe(port, path="/health", bound=PROBE_BOUND, want=(200, 503)):
    """One kubelet-style probe on a fresh connection; returns seconds taken. Raises on any fault."""
    t0 = time.monotonic()
    deadline = t0 + bound
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=bound) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(PROBE.replace(b"/health", path.encode()))
            status, headers, body = read_response(s, deadline)
    except OSError as e:
        raise Failure(f"probe {path}: {e!r}") from None
    if status not in want:
        raise Failure(f"probe {path}: status {status}")
    if headers.get("content-length") != str(len(body)):
        raise Failure(f"probe {path}: content-length {headers.get('content-length')} vs {len(body)}")
    if not body.startswith(b'{"status":"'):
        raise Failure(f"probe {path}: body {body[:80]!r}")
    return time.monotonic() - t0


class Healthd:
    """healthd on 127.0.0.1, port 0, clean environment, optionally behind a wrapper (prlimit...)."""

    def __init__(self, binary, wrapper=(), env=None):
        full = {"DYN_SYSTEM_PORT": "0", "DYN_SYSTEM_HOST": "127.0.0.1"}
        full.update(env or {})
        self.proc = subprocess.Popen(
            [*wrapper, binary],
            env=full,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.pid = self.proc.pid
        self.log = []
        self.port = None
        ready = threading.Event()

        def pump():
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace").rstrip()
                self.log.append(line)
                m = re.search(r"listening on [\d.]+:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(10):
            self.stop()
            raise Failure("healthd did not log 'listening on' within 10 s:\n" + "\n".join(self.log))

    def status(self):
        """(threads, VmRSS KiB, open fds) from /proc."""
        try:
            text = open(f"/proc/{self.pid}/status").read()
            fds = len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            raise Failure("healthd is gone") from None
        threads = int(re.search(r"^Threads:\s+(\d+)", text, re.M).group(1))
        rss = int(re.search(r"^VmRSS:\s+(\d+)", text, re.M).group(1))
        return threads, rss, fds

    def check(self, what, rss_cap=RSS_CAP_KIB):
        if self.proc.poll() is not None:
            raise Failure(f"{what}: healthd exited with {self.proc.returncode}")
        threads, rss, fds = self.status()
        if threads > THREADS_CAP:
            raise Failure(f"{what}: {threads} threads > cap {THREADS_CAP}")
        if rss > rss_cap:
            raise Failure(f"{what}: RSS {rss} KiB > cap {rss_cap} KiB")
        return threads, rss, fds

    def wait_fds(self, at_most, bound=15.0):
        """Polls until healthd holds at most `at_most` fds (connections reclaimed)."""
        deadline = time.monotonic() + bound
        while True:
            fds = self.status()[2]
            if fds <= at_most:
                return fds
            if time.monotonic() > deadline:
                raise Failure(f"healthd still holds {fds} fds (want <= {at_most}) after {bound} s")
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Prober:
    """Probes with fresh connections every `interval` s in a thread until stopped; records faults."""

    def __init__(self, port, interval=0.02, want=(200, 503)):
        self.port, self.interval, self.want = port, interval, want
        self.times, self.faults = [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.times.append(probe(self.port, want=self.want))
            except Failure as e:
                self.faults.append(str(e))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def verdict(self, what, allowed_faults=0):
        if len(self.faults) > allowed_faults:
            raise Failure(f"{what}: {len(self.faults)} of {len(self.times) + len(self.faults)} "
                          f"probes failed, first: {self.faults[0]}")
        if not self.times:
            raise Failure(f"{what}: no probe completed")
        return f"{len(self.times)} probes, max {max(self.times) * 1000:.1f} ms"


def connect_nb(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    return s


def reset(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    except OSError:
        pass
    s.close()


class Holder:
    """Holds `idle` connections that send nothing and `slow` that trickle a head one byte at a
    time; reopens whatever the server closes (head deadline, eviction), so the load is held."""

    def __init__(self, port, idle, slow, byte_every=0.5):
        self.port, self.idle, self.slow, self.byte_every = port, idle, slow, byte_every
        self.reopened = 0
        self.sel = selectors.DefaultSelector()
        self.conns = {}  # fd -> [sock, kind, bytes sent]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, kind):
        try:
            s = connect_nb(self.port)
        except OSError:
            return False
        self.conns[s.fileno()] = [s, kind, 0]
        self.sel.register(s, selectors.EVENT_READ)
        return True

    def _drop(self, fd):
        s = self.conns.pop(fd)[0]
        self.sel.unregister(s)
        s.close()

    def fill(self):
        for kind, want in (("idle", self.idle), ("slow", self.slow)):
            have = sum(1 for c in self.conns.values() if c[1] == kind)
            for _ in range(want - have):
                if not self._open(kind):
                    break

    def _run(self):
        slow_head = b"GET /health HTTP/1.1\r\nX-a: " + b"b" * 10_000
        next_trickle = time.monotonic()
        while not self._stop.is_set():
            for key, _ in self.sel.select(0.05):
                try:
                    data = key.fileobj.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    self._drop(key.fd)
                    self.reopened += 1
            if time.monotonic() >= next_trickle:
                next_trickle += self.byte_every
                for c in list(self.conns.values()):
                    if c[1] == "slow":
                        try:
                            c[2] += c[0].send(slow_head[c[2] % len(slow_head):][:1])
                        except OSError:
                            pass
            self.fill()

    def __enter__(self):
        self.fill()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        for fd in list(self.conns):
            self._drop(fd)


def exchange(port, payload, bound=8.0, linger0=False):
    """Sends `payload` on a fresh connection and reads until EOF or reset; returns what came."""
    s = socket.create_connection(("127.0.0.1", port), timeout=bound)
    deadline = time.monotonic() + bound
    got = b""
    try:
        try:
            s.sendall(payload)
        except OSError:
            pass  # the server may answer and close before taking it all
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise Failure(f"no answer or close within {bound} s for {payload[:40]!r}") from None
            except OSError:
                break  # reset
            if not chunk:
                break
            got += chunk
        else:
            raise Failure(f"no close within {bound} s for {payload[:40]!r}")
    finally:
        reset(s) if linger0 else s.close()
    return got


def many(port, payloads, parallel=200, bound=8.0):
    """Sends each payload on its own connection, `parallel` at a time; returns the answers.
    Each must be answered or closed within `bound` s (the head deadline is 5 s)."""
    results = []
    sel = selectors.DefaultSelector()
    pending = list(payloads)
    live = {}
    while pending or live:
        while pending and len(live) < parallel:
            p = pending.pop()
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.setblocking(False)
            try:
                s.send(p)
            except OSError:
                pass
            live[s.fileno()] = [s, p, b"", time.monotonic() + bound]
            sel.register(s, selectors.EVENT_READ)
        for key, _ in sel.select(0.05):
            c = live[key.fd]
            try:
                chunk = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if chunk:
                c[2] += chunk
                if not ends_with_keepalive_answer(c[2]):
                    continue
            # EOF, a reset, or a complete keep-alive answer (random bytes can form a valid request;
            # healthd then rightly keeps the connection for the next one).
            sel.unregister(c[0])
            c[0].close()
            results.append((c[1], c[2]))
            del live[key.fd]
        now = time.monotonic()
        for fd, c in list(live.items()):
            if now > c[3]:
                raise Failure(f"no answer or close within {bound} s for {c[1][:40]!r}")
    return results


def ends_with_keepalive_answer(data):
    """Whether `data` is whole responses, the last one without `connection: close`."""
    keep = False
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        m = re.search(rb"\r\ncontent-length: (\d+)", head)
        if not sep or not m or len(rest) < int(m.group(1)):
            return False
        keep = b"\r\nconnection: close" not in head
        data = rest[int(m.group(1)):]
    return keep


def status_of(answer):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return int(m.group(1)) if m else None


# ---- the cases --------------------------------------------------------------------------------


def case_a_huge_content_length(h):
    req = b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n"
    with Prober(h.port) as pr:
        for ans in many(h.port, [req] * 200):
            if status_of(ans[1]) != 405:
                raise Failure(f"A: want 405, got {ans[1][:60]!r}")
        # And a client that then streams a body: discarded up to a bound, then closed.
        ans = exchange(h.port, req + os.urandom(3 << 20))
        if ans and status_of(ans) != 405:
            raise Failure(f"A: want 405, got {ans[:60]!r}")
    return pr.verdict("A")


def case_b_pipeline_flood(h, base_fds, seconds=4.0):
    one = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    chunk = one * 2000
    socks = [connect_nb(h.port) for _ in range(8)]
    sent = 0
    with Prober(h.port) as pr:
        time.sleep(0.1)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            _, w, _ = select.select([], socks, [], 0.05)
            for s in w:
                try:
                    sent += s.send(chunk)
                except OSError:
                    pass
            h.check("B during")
    reqs = sent // len(one)
    # Never read: healthd must drop them after its write deadline and reclaim every descriptor.
    h.wait_fds(base_fds, bound=15)
    for s in socks:
        s.close()
    return f"{reqs} pipelined GETs sent, never read; " + pr.verdict("B")


def case_c_http2_and_versions(h, base_fds):
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x12\x04\x00\x00\x00\x00\x00" + b"\x00" * 18
    with Prober(h.port) as pr:
        for p, a in many(h.port, [b"GET / HTTP/2.0\r\n\r\n"] * 300 + [b"GET / HTTP/3.7\r\n\r\n"] * 100):
            if status_of(a) != 505:
                raise Failure(f"C: want 505 for {p!r}, got {a[:60]!r}")
        for p, a in many(h.port, [preface] * 300):
            if a and status_of(a) != 505:
                raise Failure(f"C: HTTP/2 preface: want 505 or close, got {a[:60]!r}")
    h.wait_fds(base_fds)
    return pr.verdict("C")


def case_d_resets(h, base_fds):
    with Prober(h.port) as pr:
        for i in range(3000):
            s = socket.socket()
            s.connect(("127.0.0.1", h.port))
            if i % 2:
                s.send(PROBE if i % 4 == 1 else b"GET /he")
            reset(s)
    h.wait_fds(base_fds)
    return "3000 resets; " + pr.verdict("D")


def case_e_idle_and_slowloris(h, base_fds, idle=5000, slow=500, seconds=8.0):
    with Holder(h.port, idle, slow) as hold:
        with Prober(h.port) as pr:
            end = time.monotonic() + seconds
            peak_fds = 0
            while time.monotonic() < end:
                peak_fds = max(peak_fds, h.check("E during")[2])
                time.sleep(0.1)
        _, rss, _ = h.check("E held")
    h.wait_fds(base_fds)
    return (f"{idle} idle + {slow} slowloris held {seconds:.0f} s (peak {peak_fds} fds, "
            f"{hold.reopened} reopened, RSS {rss} KiB); " + pr.verdict("E"))


def flood_conns(port, n, bound=10.0):
    """Opens `n` connections as fast as the kernel takes them (they queue in the backlog)."""
    out = []
    deadline = time.monotonic() + bound
    while len(out) < n and time.monotonic() < deadline:
        try:
            out.append(connect_nb(port))
        except OSError:
            time.sleep(0.01)
    return out


def case_f_fd_limit(binary):
    notes = []
    # F1: started with 64 descriptors: connections are capped below it, the oldest evicted.
    # F2: the limit lowered to 64 while running: accept hits EMFILE and must survive it.
    for label, wrapper, lower in (
        ("started under prlimit --nofile=64", ("prlimit", "--nofile=64:64", "--"), False),
        ("lowered to 64 while running", (), True),
    ):
        h = Healthd(binary, wrapper=wrapper)
        try:
            if lower:
                subprocess.run(["prlimit", f"--pid={h.pid}", "--nofile=64:64"], check=True)
            base = h.status()[2]
            for _ in range(3):
                with Prober(h.port, interval=0.05) as pr:
                    flood = flood_conns(h.port, 2000)
                    for _ in range(30):
                        h.check(f"F {label}")
                        time.sleep(0.05)
                verdict = pr.verdict(f"F {label} during the flood")
                for s in flood:
                    s.close()
                h.wait_fds(base + 2)
                probe(h.port)  # the port works again once the flood stops
            h.check(f"F {label} after")
            emfile = any("accept failed" in line for line in h.log)
            if lower and not emfile:
                raise Failure("F: the flood never hit the fd limit (no 'accept failed' line)")
            notes.append(f"{label}: {verdict}" + (", EMFILE survived" if emfile else ""))
        finally:
            h.stop()
    return "; ".join(notes)


def cgroup_pids_dir():
    """A fresh cgroup v2 child with the pids controller, or None where that is unavailable."""
    root = "/sys/fs/cgroup"
    try:
        if "pids" not in open(f"{root}/cgroup.controllers").read().split():
            return None
        path = f"{root}/healthd-attack-{os.getpid()}"
        os.mkdir(path)
        open(f"{path}/pids.max").close()
        return path
    except OSError:
        return None


def case_g_thread_limit(binary):
    notes = []
    # ulimit -u only binds an unprivileged user: run healthd as nobody, limited to the threads it
    # starts with plus one, from a binary copy that user can execute.
    tmp = subprocess.run(["mktemp", "-d"], capture_output=True, text=True, check=True).stdout.strip()
    try:
        copy = os.path.join(tmp, "healthd")
        shutil.copy(binary, copy)
        os.chmod(tmp, 0o755)
        os.chmod(copy, 0o755)
        if os.geteuid() == 0 and shutil.which("setpriv"):
            wrap = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    "prlimit", "--nproc=3:3", "--")
            h = Healthd(copy, wrapper=wrap)
            try:
                notes.append("ulimit -u 3 as nobody: " + stress_fixed_threads(h))
            finally:
                h.stop()
        else:
            notes.append("ulimit -u skipped (needs root to switch to an unprivileged user)")
        cg = cgroup_pids_dir()
        if cg:
            try:
                h = Healthd(copy)
                try:
                    threads = h.status()[0]
                    open(f"{cg}/cgroup.procs", "w").write(str(h.pid))
                    open(f"{cg}/pids.max", "w").write(str(threads))
                    notes.append(f"cgroup pids.max={threads}: " + stress_fixed_threads(h))
                finally:
                    h.stop()
            finally:
                os.rmdir(cg)
        else:
            notes.append("cgroup pids limit skipped (no writable cgroup v2 pids controller)")
    finally:
        shutil.rmtree(tmp)
    return "; ".join(notes)


def stress_fixed_threads(h):
    before = h.status()[0]
    with Prober(h.port) as pr:
        with Holder(h.port, 300, 50):
            for _ in range(500):
                s = socket.create_connection(("127.0.0.1", h.port))
                reset(s)
            many(h.port, [PROBE] * 300)
            h.check("G")
    after = h.status()[0]
    if after != before:
        raise Failure(f"G: thread count changed {before} -> {after}")
    return f"{after} threads throughout; " + pr.verdict("G")


def case_h_huge_heads(h, base_fds):
    line = b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    headers = b"GET /health HTTP/1.1\r\n" + b"X-h: v\r\n" * 100_000 + b"\r\n"
    with Prober(h.port) as pr:
        for p, a in many(h.port, [line] * 20 + [headers] * 20, parallel=40):
            if a and status_of(a) != 431:
                raise Failure(f"H: want 431 or a reset, got {a[:60]!r}")
            h.check("H")
    h.wait_fds(base_fds)
    return "20 x 1 MiB header line, 20 x 100,000 headers; " + pr.verdict("H")


def case_bare_lf(h):
    for req in (
        b"GET /health HTTP/1.1\nHost: x\nConnection: close\n\n",
        b"GET /health HTTP/1.0\n\n",
        b"GET /live HTTP/1.1\r\nHost: x\nConnection: close\r\n\n",
    ):
        a = exchange(h.port, req)
        if status_of(a) not in (200, 503) or b'{"status":"' not in a:
            raise Failure(f"bare LF: {req!r} -> {a[:80]!r}")
    a = exchange(h.port, b"GET /health HTTP/1.1\n\n" * 3 + b"GET /health HTTP/1.1\nConnection: close\n\n")
    if a.count(b"HTTP/1.1 ") != 4:
        raise Failure(f"bare LF pipelined: want 4 answers, got {a.count(b'HTTP/1.1 ')}")
    return "answered"


def case_random_bytes(h, base_fds, seed):
    rng = random.Random(seed)
    payloads = []
    for i in range(1500):
        n = rng.choice((1, 2, 16, 100, 1000, 4096, 9000))
        junk = bytes(rng.getrandbits(8) for _ in range(n))
        # A third start like a request, so the parser gets past the request line.
        payloads.append((b"GET /health HTTP/1.1\r\n" if i % 3 == 0 else b"") + junk)
    with Prober(h.port) as pr:
        answers = many(h.port, payloads, parallel=300)
        h.check("random bytes")
    codes = {}
    for _, a in answers:
        c = status_of(a)
        codes[c] = codes.get(c, 0) + 1
    h.wait_fds(base_fds)
    return f"seed {seed}, {len(payloads)} connections, answers {codes}; " + pr.verdict("random")


def attack(binary):
    nofile = raise_nofile()
    if nofile < 6000:
        raise SystemExit(f"hostile.py: need 6000 descriptors for the client, have {nofile}")
    seed = int(os.environ.get("ATTACK_SEED", random.randrange(1 << 30)))
    failures = 0
    h = Healthd(binary)
    try:
        probe(h.port)
        _, _, base = h.check("start")
        cases = [
            ("A  Content-Length: 1000000000000", lambda: case_a_huge_content_length(h)),
            ("B  pipelining flood, never reading", lambda: case_b_pipeline_flood(h, base)),
            ("C  HTTP/2 and unknown versions", lambda: case_c_http2_and_versions(h, base)),
            ("D  resets right after connect", lambda: case_d_resets(h, base)),
            ("E  5,000 idle + 500 slowloris", lambda: case_e_idle_and_slowloris(h, base)),
            ("H  1 MiB header line, 100,000 headers", lambda: case_h_huge_heads(h, base)),
            ("   bare-LF requests", lambda: case_bare_lf(h)),
            ("   random bytes", lambda: case_random_bytes(h, base, seed)),
            ("F  fd limit 64 under a connection flood", lambda: case_f_fd_limit(binary)),
            ("G  thread limit", lambda: case_g_thread_limit(binary)),
        ]
        for name, run in cases:
            t0 = time.monotonic()
            try:
                note = run()
                threads, rss, fds = h.check(f"after {name.strip()}")
                probe(h.port)
                print(f"ok   {name} ({time.monotonic() - t0:.1f} s): {note}; "
                      f"after: {threads} threads, {rss} KiB RSS, {fds} fds", flush=True)
            except Failure as e:
                failures += 1
                print(f"FAIL {name} ({time.monotonic() - t0:.1f} s): {e}", flush=True)
                if h.proc.poll() is not None:
                    break
    finally:
        h.stop()
    if failures:
        print("healthd log (last 30 lines):\n  " + "\n  ".join(h.log[-30:]))
        raise SystemExit(f"hostile.py: {failures} attack case(s) failed (seed {seed})")
    print(f"all attack cases passed (seed {seed})")


# ---- pieces for bench.sh ----------------------------------------------------------------------


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def cmd_probe(port, n):
    """Kubelet-style: sequential GETs, a fresh connection each; prints 'p50 p99' in µs."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(PROBE)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        times.append(time.perf_counter() - t0)
        if not data.startswith(b"HTTP/1.1 200 "):
            raise SystemExit(f"probe: unexpected answer {data[:60]!r}")
    print(f"{percentile(times, 50) * 1e6:.0f} {percentile(times, 99) * 1e6:.0f}")


def cmd_hold(port, idle, slow, seconds):
    raise_nofile()
    with Holder(port, idle, slow):
        time.sleep(seconds)


def cmd_first200(port, argv, server_cpu=None, poll_cpu=None):
    """Spawns argv and polls the port; prints µs from exec to the first 200. With CPUs given, the
    server starts pinned to server_cpu and the (busy) poller then moves to poll_cpu, so the two
    never compete for one core."""
    if server_cpu is not None:
        os.sched_setaffinity(0, {server_cpu})  # inherited by the spawned server
    t0 = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, dict(os.environ))
    if poll_cpu is not None:
        os.sched_setaffinity(0, {poll_cpu})
    try:
        deadline = t0 + 5
        while time.perf_counter() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(PROBE)
                    if s.recv(16).startswith(b"HTTP/1.1 200"):
                        print(f"{(time.perf_counter() - t0) * 1e6:.0f}")
                        return
            except OSError:
                pass
        raise SystemExit("first200: no 200 within 5 s")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def cmd_mix(port, seconds, idle, slow):
    """Idle + slowloris held, garbage batches, probes every 50 ms that must all answer 200."""
    raise_nofile()
    seed = int(os.environ.get("ATTACK_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    probe(port, want=(200,))
    garbage = 0
    t0 = time.monotonic()
    with Holder(port, idle, slow) as hold:
        with Prober(port, interval=0.05, want=(200,)) as pr:
            end = t0 + seconds
            while time.monotonic() < end:
                batch = []
                for i in range(200):
                    junk = bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 16, 100, 1000, 4096))))
                    batch.append((b"GET /health HTTP/1.1\r\n" if i % 3 == 0 else b"") + junk)
                many(port, batch, parallel=200)
                garbage += len(batch)
                time.sleep(0.1)
        held = len(hold.conns)
    if pr.faults:
        raise SystemExit(f"mix: {len(pr.faults)} of {len(pr.times) + len(pr.faults)} probes "
                         f"failed (seed {seed}), first: {pr.faults[0]}")
    probe(port, want=(200,))
    print(f"mix: {idle} idle + {slow} slowloris held ({held} open at the end, {hold.reopened} "
          f"reopened), {garbage} garbage connections, {pr.verdict('mix')} (seed {seed})")


def main(argv):
    if len(argv) >= 2 and argv[0] == "attack":
        attack(argv[1])
    elif len(argv) == 3 and argv[0] == "probe":
        cmd_probe(int(argv[1]), int(argv[2]))
    elif len(argv) == 5 and argv[0] == "hold":
        cmd_hold(int(argv[1]), int(argv[2]), int(argv[3]), float(argv[4]))
    elif len(argv) == 5 and argv[0] == "mix":
        cmd_mix(int(argv[1]), float(argv[2]), int(argv[3]), int(argv[4]))
    elif len(argv) >= 3 and argv[0] == "first200":
        cmd_first200(int(argv[1]), argv[2:])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
