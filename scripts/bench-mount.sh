#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench-mount.sh - how fast the mount serves the merged file.
#
#   scripts/bench-mount.sh [--quick] [--runs N] [--sizes 100m,1g]
#                          [--dir DIR] [--crdtfs PATH]
#
# For each corpus (10 hosts x 10 000 entries ~ 100 MB, 10 x 110 000 ~ 1 GB;
# --quick: 10 x 1 000 ~ 10 MB), side by side, medians of N runs (5):
#   - cold first full read: fresh mount, `cat unified-memory.json` to
#     /dev/null (lookup, build and streaming) vs `crdtfs merge > /dev/null`;
#   - warm re-read throughput vs `cat` of a plain file with the same bytes
#     on the backing filesystem, and vs the same bytes written 4 KiB at a
#     time (a file whose page cache is in 4 KiB folios, as every FUSE
#     file's is on Linux 6.18: the ceiling for a warm re-read here);
#   - reopen latency with nothing changed (open+close of the merged file,
#     2000 times; a plain file for reference);
#   - re-materialisation after one of 10 host files gains one entry (the
#     first stat after the change) vs a full rebuild (the first stat after
#     a fresh mount), with the engine's own build_seconds from the status
#     file; once for the first update after the mount, and as the median
#     of the next 4 (which reuse the arrays the first one touched);
#   - daemon peak RSS (VmHWM) after all of the above.
# Host files stay in the page cache throughout (nothing is dropped: these
# machines are shared).  Corpora are generated once with
# scripts/gen-corpus.py --format pretty into DIR (default
# /tmp/crdtfs-bench) and reused.  Prints a markdown table.  Not a test.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 - "$HERE" "$@" <<'PYEOF'
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

here = sys.argv[1]
sys.path.insert(0, os.path.join(here, "..", "tests", "integration"))
from util import is_mounted  # noqa: E402  (the tests' mountinfo check)
ap = argparse.ArgumentParser(prog="bench-mount.sh")
ap.add_argument("--quick", action="store_true")
ap.add_argument("--runs", type=int, default=5)
ap.add_argument("--sizes", default="100m,1g")
ap.add_argument("--dir", default="/tmp/crdtfs-bench")
ap.add_argument("--crdtfs", default=os.environ.get("CRDTFS") or
                os.path.join(here, "..", "build", "fs", "crdtfs"))
args = ap.parse_args(sys.argv[2:])
CRDTFS = os.path.abspath(args.crdtfs)
if not os.access(CRDTFS, os.X_OK):
    sys.exit("bench-mount.sh: no crdtfs binary at %s (use --crdtfs)" %
             CRDTFS)
CORPORA = {"10m": (10, 1000), "100m": (10, 10000), "1g": (10, 110000)}
sizes = ["10m"] if args.quick else args.sizes.split(",")
MERGED = "unified-memory.json"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def corpus(name):
    hosts, entries = CORPORA[name]
    out = os.path.join(args.dir, "c" + name)
    if not os.path.exists(os.path.join(out, ".complete")):
        log("generating %s corpus in %s ..." % (name, out))
        subprocess.run(["/usr/bin/python3",
                        os.path.join(here, "gen-corpus.py"),
                        "--hosts", str(hosts), "--entries", str(entries),
                        "--seed", "1", "--format", "pretty", "--out", out],
                       check=True)
        open(os.path.join(out, ".complete"), "w").close()
    return out


def timed(cmd, stdout=subprocess.DEVNULL):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=stdout, stdin=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - t


class Mount:
    def __init__(self, backing, mnt):
        self.mnt = mnt
        os.makedirs(mnt, exist_ok=True)
        self.p = subprocess.Popen([CRDTFS, "-f", backing, mnt],
                                  stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not is_mounted(mnt):
            if self.p.poll() is not None or time.monotonic() > deadline:
                sys.exit("bench-mount.sh: mount failed")
            time.sleep(0.01)

    def hwm_mib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0

    def close(self):
        subprocess.run(["fusermount3", "-u", "-z", self.mnt], check=False)
        if self.p.wait(60) != 0:
            sys.exit("bench-mount.sh: crdtfs exited %d" % self.p.returncode)


def reopen_us(path, n=2000):
    t = time.perf_counter()
    for _ in range(n):
        os.close(os.open(path, os.O_RDONLY))
    return (time.perf_counter() - t) / n * 1e6


def stat_s(path):
    t = time.perf_counter()
    os.stat(path)
    return time.perf_counter() - t


def build_seconds(mnt):
    with open(os.path.join(mnt, ".crdtfs-status.json"), "rb") as f:
        st = json.load(f)
    return [t for t in st["targets"] if t["name"] == MERGED][0][
        "build_seconds"]


def append_entry(path, i):
    """Add one entry at the end of a pretty JSON array, in place."""
    e = {"id": "bench-%d" % i, "content": "one more entry %d" % i,
         "_crdt_metadata": {"host": "bench", "timestamp":
                            "2031-01-01T00:00:%02dZ" % (i % 60),
                            "version": 1, "unique_id": "bench-%d" % i}}
    with open(path, "r+b") as f:
        f.seek(0, 2)
        end = f.tell()
        f.seek(max(0, end - 16))
        tail = f.read()
        cut = end - len(tail) + tail.rindex(b"]")
        f.seek(cut)
        f.truncate()
        f.write(b",\n" + json.dumps(e).encode() + b"\n]\n")


def med(xs):
    return statistics.median(xs)


rows = []
for name in sizes:
    b = corpus(name)
    size_in = sum(os.path.getsize(os.path.join(b, f)) for f in os.listdir(b)
                  if f.startswith("memory-"))
    plain = os.path.join(args.dir, "plain-%s.json" % name)
    with open(plain, "wb") as f:
        subprocess.run([CRDTFS, "merge", b], stdout=f, check=True)
    out_size = os.path.getsize(plain)
    # The same bytes in 4 KiB writes: ext4 then caches them in 4 KiB
    # folios, like the FUSE page cache, where one large write gets
    # folios of up to 1 MiB.
    plain4k = os.path.join(args.dir, "plain4k-%s.json" % name)
    with open(plain, "rb") as src, open(plain4k, "wb", buffering=0) as dst:
        for piece in iter(lambda: src.read(4096), b""):
            dst.write(piece)
    # Both on disk before timing: writeback of their pages (1.5 GB at
    # 1 GB) would otherwise run beside the first runs.
    for f in (plain, plain4k):
        fd = os.open(f, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    log("%s: %.0f MB of host files, %.0f MB merged" %
        (name, size_in / 1e6, out_size / 1e6))
    r = {k: [] for k in ("merge", "cold", "warm", "plain", "plain4k",
                         "reopen",
                         "reopen_plain", "full", "incr", "full_bs",
                         "incr_bs", "incr_steady", "rss")}
    host = os.path.join(b, "memory-host-03.json")
    if not os.path.exists(host):
        host = os.path.join(b, sorted(f for f in os.listdir(b)
                                      if f.startswith("memory-"))[3])
    saved = open(host, "rb").read()
    try:
        for run in range(args.runs):
            log("  run %d/%d" % (run + 1, args.runs))
            r["merge"].append(timed([CRDTFS, "merge", b]))
            r["plain"].append(timed(["cat", plain]))
            r["plain4k"].append(timed(["cat", plain4k]))
            mnt = os.path.join(args.dir, "mnt")
            # cold: a fresh mount, then one full read
            m = Mount(b, mnt)
            try:
                p = os.path.join(mnt, MERGED)
                r["cold"].append(timed(["cat", p]))
                r["warm"].append(med([timed(["cat", p]) for _ in range(3)]))
                r["reopen"].append(reopen_us(p))
                r["reopen_plain"].append(reopen_us(plain))
                # one host file gains one entry: incremental refresh.
                # The first update after a mount also pays first touches
                # of the daemon's arrays; later ones reuse them.
                append_entry(host, 100 * run)
                r["incr"].append(stat_s(p))
                r["incr_bs"].append(build_seconds(mnt))
                steady = []
                for i in range(1, 5):
                    append_entry(host, 100 * run + i)
                    steady.append(stat_s(p))
                r["incr_steady"].append(med(steady))
                subprocess.run(["cat", p], stdout=subprocess.DEVNULL,
                               check=True)
                r["rss"].append(m.hwm_mib())
            finally:
                m.close()
            # full rebuild: the first lookup of a fresh mount
            m = Mount(b, mnt)
            try:
                r["full"].append(stat_s(os.path.join(mnt, MERGED)))
                r["full_bs"].append(build_seconds(mnt))
            finally:
                m.close()
    finally:
        with open(host, "wb") as f:
            f.write(saved)
    rows.append((name, size_in, out_size, {k: med(v) for k, v in r.items()},
                 r))

print("| corpus | measure | crdtfs mount | reference | ratio | target |")
print("|---|---|---|---|---|---|")
for name, size_in, out_size, m, _ in rows:
    mb = out_size / 1e6
    c = "%s (%.0f MB in, %.0f MB out)" % (name, size_in / 1e6, mb)
    print("| %s | cold first read (cat) | %.2f s | merge > /dev/null %.2f s "
          "| %.2f× | ≤ 1.3× |" % (c, m["cold"], m["merge"],
                                  m["cold"] / m["merge"]))
    print("| %s | warm re-read | %.0f MB/s (%.3f s) | plain cat %.0f MB/s "
          "(%.3f s) | %.0f%% | ≥ 70%% |" %
          (c, mb / m["warm"], m["warm"], mb / m["plain"], m["plain"],
           100.0 * m["plain"] / m["warm"]))
    print("| %s | warm re-read, against 4 KiB folios | %.0f MB/s | the plain "
          "file written 4 KiB at a time %.0f MB/s | %.0f%% | |" %
          (c, mb / m["warm"], mb / m["plain4k"],
           100.0 * m["plain4k"] / m["warm"]))
    print("| %s | reopen, nothing changed | %.0f µs | plain file %.1f µs | "
          "| < 1000 µs |" % (c, m["reopen"], m["reopen_plain"]))
    print("| %s | update after 1 of 10 hosts +1 entry, first after "
          "mount | %.3f s (engine %.3f s) | full rebuild %.3f s (engine "
          "%.3f s) | %.2f× | ≤ 0.2× |"
          % (c, m["incr"], m["incr_bs"], m["full"], m["full_bs"],
             m["incr"] / m["full"]))
    print("| %s | the same, next 4 updates (median) | %.3f s | full "
          "rebuild %.3f s | %.2f× | ≤ 0.2× |"
          % (c, m["incr_steady"], m["full"], m["incr_steady"] / m["full"]))
    print("| %s | daemon peak RSS (VmHWM) | %.1f MiB | | | < 50 MB |" %
          (c, m["rss"]))
print()
print("Medians of %d runs; host files warm in the page cache; binary %s." %
      (args.runs, CRDTFS))
PYEOF
