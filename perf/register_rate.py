#!/usr/bin/env python3
"""register_rate.py - REGISTER SUBSCRIBER rate as durable subscribers pile up.

Starts its own ringmq-server (127.0.0.1, a temporary --dir, removed at the
end) and registers --total new durable subscribers over --conns connections
in rounds of --step, each connection pipelining its REGISTERs; prints the
rate of each round, so that a cost that grows with the number of
subscribers already registered (a linear scan per REGISTER) shows as a rate
that falls round after round. Then times REGISTERs of names that exist
already (a reconnecting subscriber's path).

    perf/register_rate.py --server build/ringmq-server [--total 100000]
        [--step 20000] [--conns 4] [--threads 2] [-- extra server flags]

A measurement, not a test: it asserts nothing.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


def frame(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def expect_ok(socks, counts):
    """Reads counts[i] '+OK' replies from socks[i]."""
    for s, n in zip(socks, counts):
        want = b"+OK\r\n" * n
        got = b""
        while len(got) < len(want):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise SystemExit("server closed the connection")
            got += chunk
        if got != want:
            raise SystemExit("unexpected reply: %r" % got[:200])


def register_round(socks, first, n, prefix):
    """Registers names prefix+first .. prefix+first+n-1 spread over socks;
    returns the seconds it took."""
    per = [[] for _ in socks]
    for i in range(n):
        per[i % len(socks)].append(frame("REGISTER", "SUBSCRIBER", "%s%08d" % (prefix, first + i)))
    bufs = [b"".join(p) for p in per]
    t0 = time.perf_counter()
    for s, b in zip(socks, bufs):
        s.sendall(b)
    expect_ok(socks, [len(p) for p in per])
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--total", type=int, default=100000)
    ap.add_argument("--step", type=int, default=20000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("extra", nargs="*", help="more server flags (after --)")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="ringmq-regrate-")
    srv = subprocess.Popen(
        [a.server, "--port", "0", "--threads", str(a.threads), "--dir", d, "--log-level", "warn"]
        + a.extra,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = srv.stdout.readline()
        if "Server started on" not in line:
            raise SystemExit("server did not start: %r" % line)
        port = int(line.strip().rsplit(":", 1)[1])
        socks = [connect(port) for _ in range(a.conns)]
        print("round  subscribers before  REGISTER/s (new names)")
        done = 0
        while done < a.total:
            n = min(a.step, a.total - done)
            secs = register_round(socks, done, n, "s")
            print("%5d  %18d  %10.0f" % (done // a.step + 1, done, n / secs), flush=True)
            done += n
        # names that exist: one connection takes each back in turn
        n = min(a.step, a.total)
        secs = register_round(socks, 0, n, "s")
        print("existing names, %d subscribers: %.0f REGISTER/s" % (a.total, n / secs))
        for s in socks:
            s.close()
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
