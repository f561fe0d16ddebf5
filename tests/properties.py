#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""
properties.py - seeded property tests of `crdtfs merge` against the oracle.

    properties.py CRDTFS_BIN [--cases N] [--seed S] [--only K] [-j J]
                  [--keep] [--no-descriptors] [--no-oracle] [-v]

Each case k (rng seeded with (S, k)) generates 1-5 host files of 0-12
entries in random formats (pretty, compact, JSON Lines with LF or CRLF and
blank lines, random blanks between tokens).  Entries share a few
unique_ids (some spelled with escapes), have timestamps from a few
instants written at random offsets and with 0-9 fraction digits (so equal
instants are common), small versions (-0, 0, 1, ...), a few hosts (one
spelled \\u0061), unicode, escapes, odd number spellings, duplicate keys;
some lack metadata, a unique_id, or have invalid timestamps/versions;
about a third are exact copies of earlier entries.  About 15% of the cases
also carry a descriptor (unified-memory.json.merge.json: key list with a
fallback, JSON Lines output).

Checks, each by running the real binary (bytes compared exactly):
  oracle     merge(files) == tests/oracle.py's merge of the same files
  damaged    the same after 1-3 random byte edits in one file (invalid
             UTF-8, NULs, control characters, stray brackets, truncation):
             the binary keeps exactly the entries the oracle keeps
  permute    the same contents under shuffled names, in another order
  reformat   every file re-written in another format
  duplicate  a file added twice under another name
  idem       merge(A, A) == merge(A) and merge(merge(A)) == merge(A)
  assoc      merge(C, merge(A,B)) == merge(merge(B,C), A) == merge(A,B,C):
             the inner merges' outputs fed back in as host files, and the
             operands swapped (commutativity of merged states; sources
             are read in name order, so name prefixes set the order)
  strict     (20% of the cases) --strict fails exactly when the oracle saw
             a problem, else writes the same bytes
permute, reformat, duplicate and merge(A,A) run as one directory holding
all of those files (the laws all predict the same bytes); a difference is
re-run law by law.  That is 8 runs of the binary per case (9 with a
--strict run), so 1000 cases take ~1.5-3 min on 2 busy cores (more under
ASan: only the base and damaged runs keep LeakSanitizer on).
CRDTFS_PROP_CASES and CRDTFS_PROP_SEED set the defaults of --cases/--seed.

A failure prints the seed, the case, the law, both outputs and a
reproducer; the last line is `N passed, M failed` (cases).
"""

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

SANITIZER = re.compile(rb"AddressSanitizer|LeakSanitizer|runtime error:")

# ---------------------------------------------------------------------------
# the generator

BASE = 1735689600          # 2025-01-01T00:00:00Z
# 0000-01-02, 1969-12-31T23:59:59, 9999-12-30T23:59:59 (a day in from the
# edges, so that every offset still spells a valid local time)
FAR_INSTANTS = [-62167219200 + 86400, -1, 253402300799 - 86400]
UIDS = ['u1', 'u2', 'u3', 'u4', '\\u0075\\u0031', 'caf\u00e9', 'x y',
        '\\u00e9t\u00e9',
        # UUIDs are stored packed: mix them with keys that are almost one,
        # one spelled with escapes, and a 16-byte key whose bytes are
        # those of a packed UUID in the list
        '3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7b',
        '3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6\\u0061\\u0037b',
        '3F2A9C1E-7B4D-4E8A-9F10-2C3D4E5F6A7B',
        '3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7b0',
        '30313233-3435-3637-3839-616263646566', '0123456789abcdef']
HOSTS = ['a', 'b', 'Z', 'host-\u00e9', 'host-\\u00e9', '\\u0061', '']
STRS = ['', 'plain', 'caf\u00e9', 'caf\\u00e9', '\U0001f600',
        '\\ud83d\\ude00', 'tab\\there', 'quote \\" x', 'back\\\\slash',
        '\\/', 'new\\nline', '\u65e5\u672c', 'a b  c', '\\u0000',
        '\\u001f', 'x\u00a0y', '[{,:}]']
NUMS = ['0', '-0', '1', '1.0', '1e5', '1E+05', '-2.50', '0.5e-3',
        '123456789012345678901234567890', '-0.0']
KEYS = ['id', 'content', 'tags', 'n', 'deep', 'name', 'caf\u00e9', 'k\\u0065y']


def _civil(z):
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def ts_text(rng, sec, ns):
    """One of many RFC 3339 spellings of the UTC instant (sec, ns)."""
    off = rng.choice([0, 0, 0, 60, 120, -300, 330, -30, 23 * 60 + 59, -720])
    local = sec + off * 60
    days, rem = divmod(local, 86400)
    y, mo, d = _civil(days)
    sep = rng.choice("TTTTt ")
    s = "%04d-%02d-%02d%s%02d:%02d:%02d" % (y, mo, d, sep, rem // 3600,
                                           rem // 60 % 60, rem % 60)
    need = 9
    while need > 0 and ns % 10 ** (10 - need) == 0:
        need -= 1
    digits = rng.randint(need, 9)
    if digits:
        s += "." + ("%09d" % ns)[:digits]
    if off == 0:
        s += rng.choice(["Z", "Z", "z", "+00:00", "-00:00"])
    else:
        a = abs(off)
        s += "%s%02d:%02d" % ("+" if off > 0 else "-", a // 60, a % 60)
    return s


class Gen:
    def __init__(self, rng):
        self.rng = rng
        n = rng.randint(1, 4)
        self.instants = [(BASE + rng.randrange(3) * 3600 + rng.randrange(2),
                          rng.choice([0, 0, 500000000, 1, 123456789]))
                         for _ in range(n)]
        if rng.random() < 0.2:
            # far from now, before 1970 too: the encodings' edges
            self.instants.append((rng.choice(FAR_INSTANTS),
                                  rng.choice([0, 999999999])))
        self.uids = rng.sample(UIDS, rng.randint(1, len(UIDS)))
        self.made = []

    def value(self, depth=0):
        r = self.rng.random()
        if depth < 3 and r < 0.15:
            return "[" + ",".join(self.value(depth + 1) for _ in
                                  range(self.rng.randint(0, 3))) + "]"
        if depth < 3 and r < 0.25:
            return self.obj(depth + 1)
        if r < 0.6:
            return '"%s"' % self.rng.choice(STRS)
        if r < 0.9:
            return self.rng.choice(NUMS)
        return self.rng.choice(["true", "false", "null"])

    def obj(self, depth):
        keys = self.rng.sample(KEYS, self.rng.randint(0, 3))
        if keys and self.rng.random() < 0.1:
            keys.append(keys[0])            # duplicate key
        return "{" + ",".join('"%s":%s' % (k, self.value(depth))
                              for k in keys) + "}"

    def meta(self):
        rng = self.rng
        f = []
        r = rng.random()
        if r < 0.85:
            f.append('"unique_id":"%s"' % rng.choice(self.uids))
        elif r < 0.92:
            f.append('"unique_id":%s' % rng.choice(['7', 'null', '""',
                                                    '["u1"]']))
        r = rng.random()
        if r < 0.85:
            f.append('"timestamp":"%s"' % ts_text(
                rng, *rng.choice(self.instants)))
        elif r < 0.93:
            f.append('"timestamp":%s' % rng.choice(
                ['"yesterday"', '"2025-02-30T00:00:00Z"',
                 '"2025-01-01T00:00:00"', '17', 'null']))
        r = rng.random()
        if r < 0.85:
            f.append('"version":%s' % rng.choice(
                ['0', '-0', '1', '1', '2', '3', '10', '-1', '-2', '255',
                 '256', '-256', '-257', '65536', '9223372036854775807',
                 '-9223372036854775808']))
        elif r < 0.93:
            f.append('"version":%s' % rng.choice(['1.0', '"2"', '1e0',
                                                  'null']))
        if rng.random() < 0.9:
            f.append('"host":"%s"' % rng.choice(HOSTS))
        if rng.random() < 0.2:
            f.append('"extra":%s' % self.value(1))
        rng.shuffle(f)
        return "{" + ",".join(f) + "}"

    def entry(self):
        rng = self.rng
        if self.made and rng.random() < 0.3:
            return rng.choice(self.made)
        fields = ['"%s":%s' % (k, self.value(1))
                  for k in rng.sample(KEYS, rng.randint(0, 3))]
        if rng.random() < 0.5:
            fields.insert(0, '"id":"%s"' % rng.choice(["a", "b", "c",
                                                        "caf\u00e9"]))
        if rng.random() < 0.93:
            m = '"_crdt_metadata":' + self.meta()
            fields.insert(rng.randint(0, len(fields)), m)
            if rng.random() < 0.05:     # a second, ignored metadata object
                fields.append('"_crdt_metadata":' + self.meta())
        e = ("{" + ",".join(fields) + "}").encode()
        self.made.append(e)
        return e


def _blank(rng, jsonl):
    if rng.random() < 0.6:
        return b""
    return bytes(rng.choice(b" \t\r" if jsonl else b" \t\r\n")
                 for _ in range(rng.randint(1, 3)))


_TOKS = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"|[{}\[\],:]|[^{}\[\],:"]++',
                   re.S)


def spaced(rng, e, jsonl):
    """Random blanks between the tokens of canonical entry e."""
    return b"".join(t + _blank(rng, jsonl) for t in _TOKS.findall(e))


FORMATS = ["pretty", "compact", "jsonl", "jsonl-crlf", "spaced",
           "spaced-jsonl"]


def render(rng, entries, fmt):
    if fmt == "pretty":
        if not entries:
            return b"[]\n"
        return b"[\n" + b",\n".join(b"  " + oracle.reformat(e, base=1)
                                     for e in entries) + b"\n]\n"
    if fmt == "compact":
        return b"[" + b",".join(entries) + b"]"
    if fmt in ("jsonl", "jsonl-crlf"):
        nl = b"\r\n" if fmt == "jsonl-crlf" else b"\n"
        out = []
        for e in entries:
            if rng.random() < 0.1:
                out.append(nl)
            out.append(e + nl)
        data = b"".join(out)
        if data and rng.random() < 0.2:
            data = data[:-len(nl)]          # no final newline
        return data
    if fmt == "spaced":
        return (_blank(rng, False) + b"[" + _blank(rng, False) +
                b",".join(spaced(rng, e, False) for e in entries) + b"]" +
                _blank(rng, False))
    if fmt == "spaced-jsonl":
        return b"".join(_blank(rng, True) + spaced(rng, e, True) + b"\n"
                        for e in entries)
    raise ValueError(fmt)


_JUNK = [b"\x00", b"\xff", b"\x01", b"\x1f", b'"', b"\\", b"{", b"}",
         b"[", b"]", b",", b":", b"\n", b"\r\n", b" ", b"0", b"-", b"e",
         b".", b"\xc3", b"\xe2\x80", b"\xed\xa0\x80", b"\\u", b"\\ud800",
         b"null", b"tru", b'{"a":1}', b"[[[", b"]]]", b'"x"']


def mutate(rng, data):
    """1-3 random byte-level edits: replace, insert, delete, duplicate,
    truncate."""
    for _ in range(rng.randint(1, 3)):
        n = len(data)
        i = rng.randint(0, n)
        r = rng.random()
        if r < 0.3 and n:
            i = min(i, n - 1)
            data = data[:i] + rng.choice(_JUNK) + data[i + 1:]
        elif r < 0.6:
            data = data[:i] + rng.choice(_JUNK) + data[i:]
        elif r < 0.75:
            data = data[:i] + data[i + rng.randint(1, 8):]
        elif r < 0.9:
            k = rng.randint(1, 40)
            data = data[:i] + data[i:i + k] + data[i:]
        else:
            data = data[:i]
    return data


DESCRIPTORS = [
    (b'{"target":"unified-memory.json","sources":["memory-*.json"],'
     b'"key":["id","_crdt_metadata.unique_id"],"format":"jsonl"}'),
    (b'{"target":"unified-memory.json","sources":["memory-*.json"],'
     b'"key":["_crdt_metadata.unique_id","id"],'
     b'"order":[{"path":"_crdt_metadata.version","type":"integer"},'
     b'{"path":"_crdt_metadata.host","type":"string"},'
     b'{"path":"_crdt_metadata.timestamp","type":"timestamp"}]}'),
]


class Case:
    def __init__(self, seed, k, descriptors=True):
        self.rng = rng = random.Random("%d/%d" % (seed, k))
        g = Gen(rng)
        self.files = []                     # (entries, format)
        for _ in range(rng.randint(1, 5)):
            es = [g.entry() for _ in range(rng.randint(0, 12))]
            self.files.append((es, rng.choice(FORMATS)))
        self.desc_text = None
        self.desc = oracle.DEFAULT
        if descriptors and rng.random() < 0.15:
            self.desc_text = rng.choice(DESCRIPTORS)
            self.desc = oracle.Descriptor.from_json(self.desc_text)
        self.strict = rng.random() < 0.2

    def blobs(self, files=None):
        files = self.files if files is None else files
        return [render(self.rng, es, fmt) for es, fmt in files]

# ---------------------------------------------------------------------------
# running the binary


class Failure(Exception):
    pass


class Runner:
    def __init__(self, crdtfs, root):
        self.crdtfs = crdtfs
        self.root = root
        self.n = 0

    # LeakSanitizer costs ~50 ms per process here; the law runs repeat the
    # code paths of the base run on valid input, so only the base and the
    # damaged-input runs check for leaks
    _env_noleaks = dict(os.environ)
    _env_noleaks["ASAN_OPTIONS"] = ":".join(
        x for x in (os.environ.get("ASAN_OPTIONS", ""), "detect_leaks=0")
        if x)

    def merge(self, case, named, extra=(), leaks=False):
        """Write named [(name, bytes)] into a fresh directory and merge.
        Returns (status, stdout, stderr, dir)."""
        self.n += 1
        d = os.path.join(self.root, "d%d" % (self.n % 4))
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
        if case.desc_text is not None:
            with open(os.path.join(d, "unified-memory.json.merge.json"),
                      "wb") as f:
                f.write(case.desc_text)
        for name, data in named:
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        p = subprocess.run([self.crdtfs, "merge"] + list(extra) + [d],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120,
                           env=None if leaks else self._env_noleaks)
        if SANITIZER.search(p.stderr):
            raise Failure("sanitizer report:\n" +
                          p.stderr.decode("utf-8", "replace")[:3000])
        return p.returncode, p.stdout, p.stderr, d

    def out(self, case, named, law):
        st, out, err, d = self.merge(case, named)
        if st != 0:
            raise Failure("%s: exit status %d\n%s" % (
                law, st, err.decode("utf-8", "replace")[:2000]))
        return out


def names(rng, n, prefix="memory-"):
    pool = ["%s%s.json" % (prefix, s) for s in
            rng.sample(range(1000), n)]
    return pool


def check_case(runner, case, verbose=False, use_oracle=True):
    """Run every law on one case; raises Failure."""
    rng = case.rng
    blobs = case.blobs()
    n = len(blobs)
    files = list(zip(names(rng, n), blobs))

    def expect(law, got, want):
        if got != want:
            raise Failure("%s: outputs differ\n  got:  %r\n  want: %r"
                          % (law, got[:1500], want[:1500]))

    # oracle (and --strict: when the oracle expects no problem at all, the
    # base run itself uses --strict)
    r = oracle.merge_blobs(files, case.desc)
    strict_base = case.strict and use_oracle and not r.strict_fails
    st, base, err, _ = runner.merge(case, files,
                                    ["--strict"] if strict_base else [],
                                    leaks=True)
    if st != 0:
        raise Failure("oracle: exit status %d%s\n%s" % (
            st, " under --strict" if strict_base else "",
            err.decode("utf-8", "replace")[:2000]))
    if use_oracle:
        expect("oracle (binary vs oracle)", base, r.out)
    if case.strict and use_oracle and r.strict_fails:
        st, out, err, _ = runner.merge(case, files, ["--strict"])
        if st != 1 or out:
            raise Failure("strict: expected exit 1 and no output (oracle "
                          "problems %s), got %d and %d bytes"
                          % (r.problems[:3], st, len(out)))
    # damaged input: a few random byte edits in one file; whatever the
    # damage, the binary must keep exactly the entries the oracle keeps
    if use_oracle:
        j = rng.randrange(n)
        damaged = files[:j] + [(files[j][0], mutate(rng, files[j][1]))] + \
            files[j + 1:]
        st, out, err, _ = runner.merge(case, damaged, leaks=True)
        want = oracle.merge_blobs(damaged, case.desc).out
        if st != 0 or out != want:
            raise Failure("damaged input (%s): exit %d, outputs %s\n"
                          "  file: %r\n  got:  %r\n  want: %r"
                          % (files[j][0], st, "agree" if out == want
                             else "differ", damaged[j][1][:3000],
                             out[:1500], want[:1500]))
    # permute + reformat + duplicate + merge(A,A) in one directory: every
    # law predicts the same bytes; on a difference, rerun them one by one
    # to name the law that broke
    shuffled = blobs[:]
    rng.shuffle(shuffled)
    permuted = list(zip(names(rng, n), shuffled))
    permuted.reverse()
    re_files = [(es, rng.choice([f for f in FORMATS if f != fmt]))
                for es, fmt in case.files]
    reformatted = list(zip(names(rng, n, "memory-re-"),
                           case.blobs(re_files)))
    dup = [("memory-dup.json", blobs[rng.randrange(n)])]
    again = [(nm.replace("memory-", "memory-again-"), b) for nm, b in files]
    combo = permuted + reformatted + dup + again
    if runner.out(case, combo, "permute+reformat+duplicate+idem") != base:
        expect("permute", runner.out(case, permuted, "permute"), base)
        expect("reformat", runner.out(case, reformatted, "reformat"), base)
        expect("duplicate", runner.out(case, files + dup, "dup"), base)
        expect("idem merge(A,A)", runner.out(case, files + again, "idem"),
               base)
        expect("permute+reformat+duplicate+idem", runner.out(
            case, combo, "combo"), base)
    expect("idem merge(merge(A))", runner.out(
        case, [("memory-merged.json", base)], "idem2"), base)
    # split the entries into three parts A, B, C (whole files when there
    # are at least three, else entry by entry)
    parts = [[], [], []]
    if n >= 3:
        for j, (es, fmt) in enumerate(case.files):
            parts[j % 3 if j < 3 else rng.randrange(3)].append((es, fmt))
    else:
        for es, fmt in case.files:
            for e in es:
                parts[rng.randrange(3)].append(e)
        parts = [[(p, rng.choice(FORMATS))] for p in parts]

    def named(part, prefix, refmt=False):
        return [("%s%d.json" % (prefix, j),
                 render(rng, es, rng.choice(FORMATS) if refmt else fmt))
                for j, (es, fmt) in enumerate(part)]
    A, B, C = parts
    # associativity and commutativity together, feeding merged outputs
    # back in as host files: merge(C, merge(A,B)) == merge(merge(B,C), A)
    # (sources are read in name order, so the prefixes set the order)
    mAB = runner.out(case, named(A, "memory-1a") + named(B, "memory-2b"),
                     "assoc")
    mBC = runner.out(case, named(B, "memory-1b", True) +
                     named(C, "memory-2c"), "assoc")
    left = runner.out(case, named(C, "memory-1c") +
                      [("memory-2ab.json", mAB)], "assoc")
    right = runner.out(case, [("memory-1bc.json", mBC)] +
                       named(A, "memory-2a", True), "assoc")
    expect("assoc+commute merge(C,merge(A,B)) vs merge(merge(B,C),A)",
           left, right)
    expect("assoc merge(C,merge(A,B)) vs merge(A,B,C)", left, base)
    if verbose:
        print("# case ok: %d files, %d bytes out" % (n, len(base)))


def dump(seed, k, descriptors, dirpath):
    """Write case k's first rendering (what the oracle check saw)."""
    os.makedirs(dirpath, exist_ok=True)
    c = Case(seed, k, descriptors)
    for j, b in enumerate(c.blobs()):
        with open(os.path.join(dirpath, "memory-f%d.json" % j), "wb") as f:
            f.write(b)
    if c.desc_text is not None:
        with open(os.path.join(dirpath, "unified-memory.json.merge.json"),
                  "wb") as f:
            f.write(c.desc_text)


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("crdtfs")
    ap.add_argument("--cases", type=int,
                    default=int(os.environ.get("CRDTFS_PROP_CASES", 1000)))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--only", type=int, action="append")
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--no-descriptors", action="store_true")
    ap.add_argument("--no-oracle", action="store_true",
                    help="check only the laws (to test the tests)")
    ap.add_argument("-v", action="store_true")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else \
        int(os.environ.get("CRDTFS_PROP_SEED", time.time_ns() % 1000000007))
    crdtfs = os.path.abspath(a.crdtfs)
    ks = a.only or list(range(a.cases))
    print("# seed %d, %d cases" % (seed, len(ks)))
    root = tempfile.mkdtemp(prefix="crdtfs-prop-")
    lock = threading.Lock()
    fails = []
    t0 = time.time()
    local = threading.local()
    counter = [0]

    def one(k):
        if not hasattr(local, "runner"):
            with lock:
                counter[0] += 1
                w = counter[0]
            local.runner = Runner(crdtfs, os.path.join(root, "w%d" % w))
        case = Case(seed, k, not a.no_descriptors)
        try:
            check_case(local.runner, case, a.v, not a.no_oracle)
        except Failure as e:
            keep = os.path.join(tempfile.gettempdir(),
                                "crdtfs-prop-fail-%d-%d" % (seed, k))
            dump(seed, k, not a.no_descriptors, keep)
            with lock:
                fails.append(k)
                print("not ok - case %d (seed %d)" % (k, seed))
                for ln in str(e).splitlines():
                    print("#   " + ln)
                print("#   inputs kept in %s (crdtfs merge %s)"
                      % (keep, keep))
                print("#   reproduce: %s %s %s --seed %d --only %d%s"
                      % (sys.executable, os.path.abspath(__file__),
                         a.crdtfs, seed, k,
                         " --no-descriptors" if a.no_descriptors else ""))
                sys.stdout.flush()
        except subprocess.TimeoutExpired:
            with lock:
                fails.append(k)
                print("not ok - case %d (seed %d): the binary hung"
                      % (k, seed))

    try:
        with ThreadPoolExecutor(max_workers=a.j) as ex:
            list(ex.map(one, ks))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("# %.1f s" % (time.time() - t0))
    print("%d passed, %d failed" % (len(ks) - len(fails), len(fails)))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
