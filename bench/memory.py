#!/usr/bin/env python3
"""Memory of the same data in ferrokv and redis-server, side by side.

Each data set is loaded into a fresh pair of servers on free loopback ports
(persistence off on both); the script prints used_memory and the resident
set size (VmRSS) of each, and their ratios. Data sets:

  strings  1,000,000 keys of 10-byte values
  hashes   100,000 hashes of 10 small fields
  sets     100,000 sets of 10 integers
  zset     one sorted set of 1,000,000 members
  lists    100,000 lists of 10 small elements

Usage: bench/memory.py [--ferrokv PATH] [DATASET ...]
(build first: cargo build --release)
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def commands(dataset):
    if dataset == "strings":
        for i in range(1_000_000):
            yield resp("SET", b"key:%d" % i, b"v%09d" % i)
    elif dataset == "hashes":
        for i in range(100_000):
            args = ["HSET", b"user:%d" % i]
            for f in range(10):
                args += [b"f%d" % f, b"v%d" % (i % 1000 + f)]
            yield resp(*args)
    elif dataset == "sets":
        for i in range(100_000):
            yield resp("SADD", b"s:%d" % i, *range(1, 11))
    elif dataset == "zset":
        for start in range(0, 1_000_000, 100):
            args = ["ZADD", "big"]
            for i in range(start, start + 100):
                args += [i, b"m:%d" % i]
            yield resp(*args)
    elif dataset == "lists":
        for i in range(100_000):
            yield resp("RPUSH", b"l:%d" % i, *[b"v%d" % e for e in range(10)])
    else:
        sys.exit(f"unknown data set {dataset}")


def load(port, dataset):
    sock = socket.create_connection(("127.0.0.1", port))
    batch, pending = [], 0
    rest = b""

    def drain(count):
        nonlocal rest
        got = 0
        while got < count:
            data = sock.recv(1 << 20)
            if not data:
                sys.exit("server closed the connection")
            lines = (rest + data).split(b"\r\n")
            rest = lines.pop()
            for line in lines:
                if line.startswith(b"-"):
                    sys.exit(f"error reply: {line!r}")
                got += 1

    for cmd in commands(dataset):
        batch.append(cmd)
        if len(batch) == 1000:
            sock.sendall(b"".join(batch))
            drain(len(batch))
            batch = []
    if batch:
        sock.sendall(b"".join(batch))
        drain(len(batch))
    sock.close()


def info_used_memory(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "memory"],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    return 0


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(cmd, port):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    sys.exit(f"{cmd[0]} did not start")


def measure(name, cmd, port, dataset):
    proc = start(cmd, port)
    try:
        before = rss_kb(proc.pid)
        load(port, dataset)
        time.sleep(0.5)
        return info_used_memory(port), before, rss_kb(proc.pid)
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ferrokv", default=os.path.join(ROOT, "target/release/ferrokv"))
    ap.add_argument("datasets", nargs="*",
                    default=["strings", "hashes", "sets", "zset", "lists"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        print(f"{'data set':10} {'server':8} {'used_memory':>13} {'RSS before kB':>14} "
              f"{'RSS after kB':>13} {'RSS growth kB':>14}")
        for ds in args.datasets:
            rows = {}
            for name in ("redis", "ferrokv"):
                port = free_port()
                if name == "redis":
                    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--dir", work]
                else:
                    cmd = [args.ferrokv, "--port", str(port), "--save", "", "--dir", work]
                used, before, after = measure(name, cmd, port, ds)
                rows[name] = (used, before, after)
                print(f"{ds:10} {name:8} {used:13} {before:14} {after:13} {after - before:14}")
            (ru, rb, ra), (fu, fb, fa) = rows["redis"], rows["ferrokv"]
            print(f"{ds:10} {'ratio':8} {fu / ru:13.2f} {'':14} {fa / ra:13.2f} "
                  f"{(fa - fb) / max(1, ra - rb):14.2f}")


if __name__ == "__main__":
    main()
