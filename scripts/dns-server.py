#!/usr/bin/env python3
"""A tiny DNS server (stdlib only) for scripts and shell suites: answers A and AAAA queries over UDP
for the names given with --record, NXDOMAIN for every other name, no data (NOERROR, no answers) for a
known name asked for a type it has none of. The scratch-image test and the Docker suite use it to
show that a static healthd resolves names in an empty root (src/discovery/resolve.rs).

    scripts/dns-server.py [--addr 127.0.0.1] [--port 53] --record etcd-0.etcd=10.0.0.5 \\
        --record etcd-0.etcd=fd00::5 ...

Names match without regard to case or a trailing dot. Prints one line "dns listening on ADDR:PORT"
(the real port when --port 0) once it answers; exits 0 on SIGTERM or SIGINT. Malformed packets are
dropped; other query types get no data; a query that is not a standard query gets NOTIMP.
"""

import argparse
import ipaddress
import signal
import socket
import struct
import sys

TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
NOERROR, FORMERR, NXDOMAIN, NOTIMP = 0, 1, 3, 4


def parse_args():
    p = argparse.ArgumentParser(description="tiny A/AAAA DNS server for tests")
    p.add_argument("--addr", default="127.0.0.1", help="address to listen on (IPv4 or IPv6)")
    p.add_argument("--port", type=int, default=53, help="UDP port (0: any free port)")
    p.add_argument("--record", action="append", default=[], metavar="NAME=IP",
                   help="an address of NAME (repeatable; IPv4 gives A, IPv6 gives AAAA)")
    args = p.parse_args()
    records = {}
    for r in args.record:
        name, sep, ip = r.partition("=")
        try:
            addr = ipaddress.ip_address(ip.strip())
        except ValueError:
            addr = None
        if not sep or not name.strip(". ") or addr is None:
            p.error(f"--record {r!r}: expected NAME=IP, such as etcd-0.etcd=10.0.0.5")
        records.setdefault(name.strip().rstrip(".").lower(), []).append(addr)
    return args, records


def read_question(q):
    """(name, qtype, end of question) of a query, or None if it is not one."""
    pos, labels = 12, []
    while True:
        if pos >= len(q):
            return None
        n = q[pos]
        if n == 0:
            break
        if n > 63 or pos + 1 + n > len(q):
            return None
        labels.append(q[pos + 1:pos + 1 + n].decode("ascii", "replace"))
        pos += 1 + n
    if pos + 5 > len(q):
        return None
    qtype, qclass = struct.unpack("!HH", q[pos + 1:pos + 5])
    return ".".join(labels).lower(), qtype, qclass, pos + 5


def answer(q, records):
    """The reply to query bytes q, or None to stay silent."""
    if len(q) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", q[:6])
    if flags & 0x8000:
        return None  # a reply, not a query
    rd = flags & 0x0100
    if (flags >> 11) & 0xF != 0:
        return struct.pack("!HHHHHH", qid, 0x8000 | rd | NOTIMP, 0, 0, 0, 0)
    question = read_question(q) if qdcount == 1 else None
    if question is None:
        return struct.pack("!HHHHHH", qid, 0x8000 | rd | FORMERR, 0, 0, 0, 0)
    name, qtype, qclass, end = question
    rcode, answers = NOERROR, []
    if name not in records:
        rcode = NXDOMAIN
    elif qclass == CLASS_IN and qtype in (TYPE_A, TYPE_AAAA):
        version = 4 if qtype == TYPE_A else 6
        for ip in records[name]:
            if ip.version == version:
                # The owner is a pointer to the question's name (offset 12).
                answers.append(struct.pack("!HHHIH", 0xC00C, qtype, CLASS_IN, 60, len(ip.packed))
                               + ip.packed)
    # QR, AA, RD as asked, RA.
    head = struct.pack("!HHHHHH", qid, 0x8400 | rd | 0x0080 | rcode, 1, len(answers), 0, 0)
    return head + q[12:end] + b"".join(answers)


def main():
    args, records = parse_args()
    family = socket.AF_INET6 if ":" in args.addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((args.addr, args.port))
    except OSError as e:
        sys.exit(f"dns-server.py: cannot listen on {args.addr}:{args.port}: {e.strerror}"
                 " (pick a free port, or run as root for port 53)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    host = f"[{args.addr}]" if family == socket.AF_INET6 else args.addr
    print(f"dns listening on {host}:{sock.getsockname()[1]}", flush=True)
    while True:
        try:
            q, peer = sock.recvfrom(4096)
        except InterruptedError:
            continue
        try:
            r = answer(q, records)
        except Exception:  # a malformed packet never stops the server
            r = None
        if r is not None:
            sock.sendto(r, peer)


if __name__ == "__main__":
    main()
