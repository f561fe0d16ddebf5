#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""
gen-corpus.py - write a realistic crdtfs corpus: memory-<host>.json files.

    gen-corpus.py --hosts H --entries N --seed S
                  --format pretty|compact|jsonl|mixed --out DIR
                  [--dup-rate 0.2] [--equal-rate 0.1]

Each of the H host files holds N entries in the origin backup format:

    {"id": ..., "type": ..., "content": ..., "tags": [...], "source": ...,
     "_crdt_metadata": {"host", "timestamp", "version", "unique_id"}}

- contents are 100-2000 bytes of text with unicode (accents, CJK, emoji),
  quotes, backslashes, tabs and newlines, so the JSON carries escapes; a
  few entries are written with ensure_ascii (\\uXXXX escapes, surrogate
  pairs);
- about dup-rate of each host's entries are copies of another host's
  entries (same unique_id) with a different content, timestamp, version
  and host; equal-rate of those copy the original timestamp exactly, and
  some also its version, so the version and host tie-breaks fire;
- timestamps use Z or +hh:mm / -hh:mm offsets and 0-9 fraction digits;
  about 3% of the entries share coarse whole-second "backup run" stamps,
  so different unique_ids have equal timestamps too;
- entries average about 960 bytes (pretty), so 10 x 10 000 is ~96 MB and
  10 x 110 000 ~1 GB.

Output is a pure function of the arguments.  Files are written in 1 MiB
pieces; memory stays small whatever the size.
"""

import argparse
import hashlib
import json
import os
import random
import sys

BASE = 1735689600   # 2025-01-01T00:00:00Z
SPAN = 365 * 86400

_WORDS = (
    "the memory graph keeps entities relations observations agent host "
    "backup merge crdt timestamp version replica sync git commit file user "
    "prefers tabs compiles with meson reads jansson writes fuse streaming "
    "café naïve résumé Zürich São Paulo Ελληνικά кириллица 日本語 中文 "
    "한국어 עברית العربية emoji 🚀 🎉 ✓ ★ — “quoted” ‘single’ … ½ € £ ¥"
).split()
_PUNCT = ['. ', ', ', '; ', ': ', ' "', '" ', ' \\ ', '\t', '\n', ' / ',
          ' (', ') ', " '", "' ", '\u00a0', ' \\n ', '\r\n']
_TAGS = ["preference", "project", "person", "tool", "decision", "bug",
         "todo", "idea", "meeting", "config", "ünïcode", "日本"]
_TYPES = ["observation", "entity", "relation", "note", "fact"]


def _pool(rng, size):
    """A long text to slice contents from."""
    out = []
    n = 0
    while n < size:
        if rng.random() < 0.15:
            w = rng.choice(_PUNCT)
        else:
            w = rng.choice(_WORDS) + " "
        out.append(w)
        n += len(w)
    return "".join(out)


def _uid(seed, h, i):
    d = hashlib.md5(b"%d/%d/%d" % (seed, h, i)).hexdigest()
    return "%s-%s-4%s-a%s-%s" % (d[0:8], d[8:12], d[13:16], d[17:20],
                                 d[20:32])


def _orig_ts(h, i):
    """(second, nanosecond, fraction digits) of the original write of
    entry i of host h; a pure function so copies can reproduce it."""
    x = (h * 1000003 + i * 7919) * 2654435761
    if (x >> 20) % 100 < 3:
        # a coarse "backup run" stamp shared by many entries of all hosts
        # (whole seconds, as `date +%s` would give): output order among
        # them falls to the unique_id
        return BASE + (i // 64) * 900, 0, 0
    digits = (0, 0, 3, 6, 6, 9, 1, 2, 4, 5, 7, 8)[(x >> 7) % 12]
    ns = (x >> 11) % 10 ** 9
    ns -= ns % 10 ** (9 - digits)
    return BASE + x % SPAN, ns, digits


def _civil(z):
    """Days since the epoch -> (year, month, day)."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return y + (m <= 2), m, d


def fmt_ts(sec, ns, off_min, digits, z_lower=False):
    """RFC 3339 text of UTC instant (sec, ns) shown at offset off_min."""
    local = sec + off_min * 60
    days, rem = divmod(local, 86400)
    y, mo, d = _civil(days)
    s = "%04d-%02d-%02dT%02d:%02d:%02d" % (y, mo, d, rem // 3600,
                                           rem // 60 % 60, rem % 60)
    if digits:
        s += "." + ("%09d" % ns)[:digits]
    if off_min == 0 and digits % 2 == 0:
        s += "z" if z_lower else "Z"
    else:
        sign = "+" if off_min >= 0 else "-"
        a = abs(off_min)
        s += "%s%02d:%02d" % (sign, a // 60, a % 60)
    return s


_OFFSETS = [0, 0, 0, 0, 60, 120, -300, -480, 330, 545, -30, 0]


class Host:
    def __init__(self, args, h):
        self.a = args
        self.h = h
        self.name = "host-%02d" % h
        self.rng = random.Random(args.seed * 1000003 + h)
        self.pool = _pool(random.Random(args.seed + 7 * h), 200000)

    def content(self):
        rng = self.rng
        n = 100 + int(rng.random() ** 2.8 * 1400)
        start = rng.randrange(0, len(self.pool) - n)
        return self.pool[start:start + n]

    def entry(self, i):
        a, rng = self.a, self.rng
        n_orig = max(1, a.entries - int(a.entries * a.dup_rate))
        ver = 1 + (rng.random() < 0.3) * rng.randrange(1, 20)
        off = rng.choice(_OFFSETS)
        if i < n_orig or a.hosts < 2:
            uid = _uid(a.seed, self.h, i)
            sec, ns, digits = _orig_ts(self.h, i)
            oid = "%s-%d" % (self.name, i)
        else:
            h2 = rng.randrange(a.hosts - 1)
            h2 += h2 >= self.h
            i2 = rng.randrange(n_orig)
            uid = _uid(a.seed, h2, i2)
            oid = "host-%02d-%d" % (h2, i2)
            sec, ns, digits = _orig_ts(h2, i2)
            if rng.random() < a.equal_rate:
                # the same instant as the original, maybe written at
                # another offset; sometimes the same version too
                if rng.random() < 0.5:
                    ver = 1
            else:
                sec += rng.randrange(-86400, 86400)
                digits = rng.choice([0, 3, 6, 9, 1, 5])
                ns = rng.randrange(10 ** 9)
                ns -= ns % 10 ** (9 - digits)
        e = {
            "id": oid,
            "type": rng.choice(_TYPES),
            "content": self.content(),
            "tags": rng.sample(_TAGS, rng.randrange(0, 4)),
            "source": {"agent": "claude", "session": rng.randrange(10 ** 6)},
            "_crdt_metadata": {
                "host": self.name,
                "timestamp": fmt_ts(sec, ns, off, digits,
                                    rng.random() < 0.05),
                "version": ver,
                "unique_id": uid,
            },
        }
        if rng.random() < 0.1:
            e["score"] = rng.choice([0.5, 1e-3, 12, -0.0, 3.25])
        return e, rng.random() < 0.05


def write_host(args, h, fmt, path):
    host = Host(args, h)
    buf = []
    size = 0
    total = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        def put(s):
            nonlocal size, total
            buf.append(s)
            size += len(s)
            if size >= 1 << 20:
                f.write("".join(buf))
                total += size
                buf.clear()
                size = 0
        if fmt != "jsonl":
            put("[")
        for i in range(args.entries):
            e, ascii_ = host.entry(i)
            if fmt == "pretty":
                s = json.dumps(e, indent=2, ensure_ascii=ascii_)
                put(("\n  " if i == 0 else ",\n  ") + s.replace("\n", "\n  "))
            elif fmt == "compact":
                s = json.dumps(e, separators=(",", ":"), ensure_ascii=ascii_)
                put(s if i == 0 else "," + s)
            else:
                put(json.dumps(e, separators=(",", ":"),
                               ensure_ascii=ascii_) + "\n")
        if fmt == "pretty":
            put("\n]\n" if args.entries else "]\n")
        elif fmt == "compact":
            put("]\n")
        f.write("".join(buf))
        total += size
    return total


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, required=True)
    ap.add_argument("--entries", type=int, required=True,
                    help="entries per host file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--format", default="pretty",
                    choices=["pretty", "compact", "jsonl", "mixed"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--dup-rate", type=float, default=0.2)
    ap.add_argument("--equal-rate", type=float, default=0.1)
    args = ap.parse_args(argv)
    if args.hosts < 1 or args.entries < 0 or not 0 <= args.dup_rate <= 1:
        ap.error("bad --hosts, --entries or --dup-rate")
    os.makedirs(args.out, exist_ok=True)
    frng = random.Random(args.seed)
    for h in range(args.hosts):
        fmt = args.format
        if fmt == "mixed":
            fmt = frng.choice(["pretty", "compact", "jsonl"])
        write_host(args, h, fmt,
                   os.path.join(args.out, "memory-host-%02d.json" % h))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
