#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""
oracle.py - an independent Python implementation of the crdtfs merge.

Written from the merge semantics, not from the C code, so the two can be
checked against each other.  Importable:

    merge_dir(path, fmt=None, desc=None) -> bytes   merge a backing directory
    merge_files(paths, fmt="json", desc=None) -> bytes
    merge(paths_or_dir, fmt="json") -> bytes         either of the above
    analyse_dir(path, desc=None) -> Result            bytes + problem summary

and a command line:

    oracle.py [--format json|jsonl] [--target NAME | --descriptor FILE] BACKING
    oracle.py --files [--format json|jsonl] FILE...
    oracle.py --self-test

How it works (deliberately unlike a streaming C scanner):
- a regex tokenizer on the raw bytes plus a small explicit-stack state
  machine finds each top-level element's byte span, its depth and grammar
  errors (no recursion, so 100 000 levels are fine);
- json.loads (first occurrence wins for duplicate keys, numbers kept as
  their text) validates strings (UTF-8, control characters, escapes, lone
  surrogates) and gives field values;
- canonical bytes = the raw span with whitespace outside strings removed;
- RFC 3339 is parsed with a regex and integer arithmetic (no datetime);
- the winner of a key group is max((order tuple), canonical bytes); the
  output is sorted by (first order field, key bytes).

Problems are recorded loosely (kind, file, line, column) only to predict
whether `--strict` must fail; messages and exact error positions are the
golden cases' business.
"""

import hashlib
import json
import os
import re
import stat
import sys

# A version of 5 000 digits is out of int64 (ranked invalid), not a reason
# for Python to refuse converting it.
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)

MAX_DEPTH = 1024             # the enclosing array counts as one level
MAX_ENTRY = 16 * 1024 * 1024  # raw bytes of one entry
VALUE_MAX = 512              # bytes of a key or string order value
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
DESC_SUFFIX = ".merge.json"
DEFAULT_TARGET = "unified-memory.json"

# json.loads of an element at depth <= MAX_DEPTH recurses that deep in C.
if sys.getrecursionlimit() < 5000:
    sys.setrecursionlimit(5000)

# ---------------------------------------------------------------------------
# descriptors (only what the merge needs; validation is the binary's job)


class Descriptor:
    """target, sources (globs), keys (list of part lists), order
    (list of (parts, type)), fmt ("json" | "jsonl")."""

    def __init__(self, target=DEFAULT_TARGET, sources=("memory-*.json",),
                 keys=("_crdt_metadata.unique_id",), order=None, fmt="json"):
        if order is None:
            order = [("_crdt_metadata.timestamp", "timestamp"),
                     ("_crdt_metadata.version", "integer"),
                     ("_crdt_metadata.host", "string")]
        self.target = target
        self.sources = list(sources)
        self.keys = [k.split(".") for k in keys]
        self.order = [(p.split("."), t) for p, t in order]
        self.fmt = fmt

    @classmethod
    def from_json(cls, text):
        d = json.loads(text)
        order = None
        if "order" in d:
            order = [(o["path"], o["type"]) for o in d["order"]]
        keys = d.get("key", ["_crdt_metadata.unique_id"])
        if isinstance(keys, str):
            keys = [keys]
        sources = d["sources"]
        if isinstance(sources, str):
            sources = [sources]
        return cls(target=d["target"], sources=sources, keys=keys,
                   order=order, fmt=d.get("format", "json"))


DEFAULT = Descriptor()

# ---------------------------------------------------------------------------
# fnmatch(3) with FNM_PERIOD, one path segment at a time


def _glob_regex(pat):
    out = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pat[i]))
        elif c == "[":
            j = i + 1
            neg = False
            if j < n and pat[j] in "!^":
                neg = True
                j += 1
            items = []
            first = True
            while j < n and (pat[j] != "]" or first):
                first = False
                if pat[j] == "[" and pat.startswith("[:", j):
                    k = pat.find(":]", j + 2)
                    if k < 0:
                        break
                    cls = pat[j + 2:k]
                    items.append({"alpha": "a-zA-Z", "digit": "0-9",
                                  "alnum": "a-zA-Z0-9", "upper": "A-Z",
                                  "lower": "a-z", "space": " \\t\\n\\r\\f\\v",
                                  "xdigit": "0-9a-fA-F"}.get(cls, ""))
                    j = k + 2
                    continue
                if pat[j] == "\\" and j + 1 < n:
                    j += 1
                lo = pat[j]
                if j + 2 < n and pat[j + 1] == "-" and pat[j + 2] != "]":
                    hi = pat[j + 2]
                    if hi == "\\" and j + 3 < n:
                        hi = pat[j + 3]
                        j += 1
                    items.append(re.escape(lo) + "-" + re.escape(hi))
                    j += 3
                else:
                    items.append(re.escape(lo))
                    j += 1
            if j >= n:          # no closing ']': a literal '['
                out.append(re.escape("["))
            else:
                out.append("[" + ("^" if neg else "") + "".join(items) + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.S)


def fnmatch_period(pat, name):
    """fnmatch(pat, name, FNM_PERIOD) for one segment (no '/')."""
    if name.startswith(".") and not (pat.startswith(".") or
                                     pat.startswith("\\.")):
        return False
    return _glob_regex(pat).fullmatch(name) is not None


def list_sources(backing, desc):
    """Relative names of the regular (not symlinked) files matching the
    descriptor's globs, minus descriptor files, `.git` and the target.
    Symlinks (to files or directories) are never followed."""
    found = set()
    for pat in desc.sources:
        segs = pat.split("/")

        def walk(rel, i):
            d = os.path.join(backing, rel) if rel else backing
            try:
                names = os.listdir(d)
            except OSError:
                return
            for nm in names:
                if nm == ".git" or not fnmatch_period(segs[i], nm):
                    continue
                r = os.path.join(rel, nm) if rel else nm
                try:
                    st = os.lstat(os.path.join(backing, r))
                except OSError:
                    continue
                if i + 1 < len(segs):
                    if stat.S_ISDIR(st.st_mode):
                        walk(r, i + 1)
                elif stat.S_ISREG(st.st_mode):
                    found.add(r)
        walk("", 0)
    return [r for r in sorted(found)
            if r != desc.target and not r.endswith(DESC_SUFFIX)]

# ---------------------------------------------------------------------------
# the scanner

_TOK = re.compile(
    rb'[ \t\r\n]*+(?:'
    rb'("[^"\\]*+(?:\\.[^"\\]*+)*+")'                            # 1 string
    rb'|(-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?)'  # 2 number
    rb'|(true|false|null)'                                       # 3 literal
    rb'|([{}\[\],:]))', re.S)                                    # 4 punct
_WS = re.compile(rb'[ \t\r\n]*+')
_CANON = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"|[^ \t\r\n"]++', re.S)
_HAS_WS = re.compile(rb'[ \t\r\n]')
_SURR_ESC = re.compile(rb'\\u[dD][89a-fA-F]')

LBRACE, RBRACE, LBRACK, RBRACK, COMMA, COLON = b'{}[],:'


class GrammarError(Exception):
    def __init__(self, pos, what):
        Exception.__init__(self, what)
        self.pos = pos
        self.what = what


def parse_value(data, pos, depth0, end=None):
    """Parse one JSON value at data[pos:] (leading blanks allowed).

    Returns (start, stop, maxdepth, is_object): start is the first byte of
    the value, stop one past its last; maxdepth the deepest nesting with
    the value's own level counted as depth0 + 1.  Raises GrammarError.
    Strings are only delimited here; their content is checked later."""
    if end is None:
        end = len(data)
    tok = _TOK.match
    stack = []          # open containers: LBRACE or LBRACK
    maxd = depth0
    start = None
    # expect: 0 value, 1 value or ']', 2 key or '}', 3 ':', 4 ',' or close,
    # 5 key
    expect = 0
    while True:
        m = tok(data, pos, end)
        if m is None:
            p = _WS.match(data, pos, end).end()
            raise GrammarError(p, "end of input" if p >= end
                               else "unexpected byte")
        g = m.lastindex
        tstart = m.start(g)
        if start is None:
            start = tstart
        pos = m.end()
        if expect in (0, 1):
            if g == 4:
                c = data[tstart]
                if c == LBRACE or c == LBRACK:
                    stack.append(c)
                    d = depth0 + len(stack)
                    if d > maxd:
                        maxd = d
                    expect = 2 if c == LBRACE else 1
                    continue
                if c == RBRACK and expect == 1:
                    stack.pop()
                else:
                    raise GrammarError(tstart, "expected a value")
            elif not stack:
                return start, pos, max(maxd, depth0 + 1), False
            expect = 4
        elif expect in (2, 5):
            if g == 1:
                expect = 3
                continue
            if g == 4 and data[tstart] == RBRACE and expect == 2:
                stack.pop()
                expect = 4
            else:
                raise GrammarError(tstart, "expected a key")
        elif expect == 3:
            if g == 4 and data[tstart] == COLON:
                expect = 0
                continue
            raise GrammarError(tstart, "expected ':'")
        else:   # expect == 4: after a value inside a container
            if g != 4:
                raise GrammarError(tstart, "expected ',' or a close")
            c = data[tstart]
            top = stack[-1]
            if c == COMMA:
                expect = 5 if top == LBRACE else 0
                continue
            if (c == RBRACE and top == LBRACE) or \
               (c == RBRACK and top == LBRACK):
                stack.pop()
            else:
                raise GrammarError(tstart, "mismatched close")
        # a container just closed (or a scalar inside one finished)
        if not stack:
            return start, pos, maxd, data[start] == LBRACE
        expect = 4


class _Num:
    """A JSON number, kept as the text it was written with."""
    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text


def _first_wins(pairs):
    d = {}
    for k, v in pairs:
        if k not in d:
            d[k] = v
    return d


def _no_constant(name):
    raise ValueError("constant " + name)


_DECODER = json.JSONDecoder(object_pairs_hook=_first_wins, parse_int=_Num,
                            parse_float=_Num, parse_constant=_no_constant,
                            strict=True)


_ALL_PAIRS = json.JSONDecoder(
    object_pairs_hook=lambda pairs: [x for kv in pairs for x in kv])


def _has_surrogate(v):
    """True when any string (key or value) in v holds a lone surrogate."""
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            for ch in x:
                if "\ud800" <= ch <= "\udfff":
                    return True
        elif isinstance(x, dict):
            for k, y in x.items():
                stack.append(k)
                stack.append(y)
        elif isinstance(x, list):
            stack.extend(x)
    return False


def check_object(raw):
    """Validate the strings of a grammatical object and decode it.
    Returns (dict, None) or (None, reason)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "invalid UTF-8"
    try:
        obj = _DECODER.decode(text)
    except ValueError as e:
        return None, "bad string: %s" % e
    if _SURR_ESC.search(raw) is not None and _has_surrogate(
            _ALL_PAIRS.decode(text)):
        # (decoded again keeping every pair: a lone surrogate in a
        # duplicate key's dropped value is still an invalid string)
        return None, "lone surrogate"
    return obj, None


def canonical(raw):
    if _HAS_WS.search(raw) is None:
        return raw
    return b"".join(_CANON.findall(raw))


class Problem:
    __slots__ = ("file", "line", "col", "severity", "kind")

    def __init__(self, file, line, col, severity, kind):
        self.file, self.line, self.col = file, line, col
        self.severity, self.kind = severity, kind

    def __repr__(self):
        return "%s:%d:%d: %s: %s" % (self.file, self.line, self.col,
                                      self.severity, self.kind)


class _Lines:
    """Byte offset -> (line, column), both 1-based."""

    def __init__(self, data):
        self.data = data
        self.off = 0        # lines before self.off are counted ...
        self.line = 1       # ... and self.off is on this line

    def pos(self, off):
        if off < self.off:
            self.off, self.line = 0, 1
        self.line += self.data.count(b"\n", self.off, off)
        self.off = off
        col = off - (self.data.rfind(b"\n", 0, off) + 1) + 1
        return self.line, col


def scan(data, name="?", problems=None):
    """Split a host file into its valid top-level objects.

    Returns a list of (raw_bytes, obj, line, column) and appends problems
    for everything skipped."""
    if problems is None:
        problems = []
    lines = _Lines(data)
    entries = []

    def problem(off, kind):
        ln, col = lines.pos(off)
        problems.append(Problem(name, ln, col, "error", kind))

    def element(start, stop, depth, is_obj):
        if not is_obj:
            problem(start, "not an object")
            return
        if depth > MAX_DEPTH:
            problem(start, "too deep")
            return
        if stop - start > MAX_ENTRY:
            problem(start, "too large")
            return
        raw = data[start:stop]
        obj, why = check_object(raw)
        if obj is None:
            problem(start, why)
            return
        ln, col = lines.pos(start)
        entries.append((raw, obj, ln, col))

    p = _WS.match(data).end()
    if p >= len(data):
        return entries
    first = data[p]
    if first == LBRACK:
        pos = p + 1
        try:
            q = _WS.match(data, pos).end()
            if q < len(data) and data[q] == RBRACK:
                pos = q + 1
            else:
                while True:
                    s, e, d, is_obj = parse_value(data, pos, 1)
                    element(s, e, d, is_obj)
                    q = _WS.match(data, e).end()
                    if q >= len(data):
                        raise GrammarError(q, "end of input")
                    if data[q] == COMMA:
                        pos = q + 1
                        continue
                    if data[q] == RBRACK:
                        pos = q + 1
                        break
                    raise GrammarError(q, "expected ',' or ']'")
            q = _WS.match(data, pos).end()
            if q < len(data):
                raise GrammarError(q, "trailing data")
        except GrammarError as g:
            problem(g.pos, "grammar: " + g.what)
        return entries
    if first == LBRACE:
        off = 0
        n = len(data)
        while off < n:
            nl = data.find(b"\n", off)
            stop = n if nl < 0 else nl
            q = _WS.match(data, off, stop).end()
            if q < stop:
                try:
                    s, e, d, is_obj = parse_value(data, q, 0, stop)
                    r = _WS.match(data, e, stop).end()
                    if r < stop:
                        raise GrammarError(r, "trailing data on the line")
                    element(s, e, d, is_obj)
                except GrammarError as g:
                    problem(g.pos, "grammar: " + g.what)
            off = stop + 1
        return entries
    problem(p, "neither '[' nor '{'")
    return entries

_PTOK = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"|[{}\[\],:]|[^{}\[\],:"]++',
                   re.S)


def reformat(canon, indent=2, base=0, nl=b"\n"):
    """Re-indent canonical bytes (json.dumps(indent=...) layout) keeping
    every token as written; for writing the same entry another way."""
    toks = _PTOK.findall(canon)
    out = []
    lvl = base
    pad = b" " * indent
    i = 0
    while i < len(toks):
        t = toks[i]
        if t in (b"{", b"["):
            if i + 1 < len(toks) and toks[i + 1] in (b"}", b"]"):
                out.append(t + toks[i + 1])
                i += 2
                continue
            lvl += 1
            out.append(t + nl + pad * lvl)
        elif t in (b"}", b"]"):
            lvl -= 1
            out.append(nl + pad * lvl + t)
        elif t == b",":
            out.append(b"," + nl + pad * lvl)
        elif t == b":":
            out.append(b": ")
        else:
            out.append(t)
        i += 1
    return b"".join(out)


# ---------------------------------------------------------------------------
# field values and the total order

_TS = re.compile(
    rb'([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})'
    rb'(?:\.([0-9]{1,9}))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))')
_INT = re.compile(r'-?(?:0|[1-9][0-9]*)')


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_MDAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse_rfc3339(b):
    """bytes -> (seconds since the epoch UTC, nanoseconds) or None."""
    m = _TS.fullmatch(b)
    if m is None:
        return None
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    if not 1 <= mo <= 12:
        return None
    dim = 29 if mo == 2 and _leap(y) else _MDAYS[mo - 1]
    if not 1 <= d <= dim or h > 23 or mi > 59 or s > 60:
        return None
    frac = m.group(7)
    ns = int(frac.ljust(9, b"0")) if frac else 0
    off = 0
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        off = (oh * 3600 + om * 60) * (1 if m.group(9) == b"+" else -1)
    secs = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off
    return (secs, ns)


_ABSENT = object()


def get_path(obj, parts):
    cur = obj
    for p in parts:
        if not isinstance(cur, dict) or p not in cur:
            return _ABSENT
        cur = cur[p]
    return cur


def order_value(v, typ):
    """(0,) absent, (1,) present but invalid, (2, value) valid."""
    if v is _ABSENT:
        return (0,)
    if typ == "timestamp":
        if isinstance(v, str):
            t = parse_rfc3339(v.encode("utf-8"))
            if t is not None:
                return (2, t)
        return (1,)
    if typ == "integer":
        if isinstance(v, _Num) and _INT.fullmatch(v.text):
            i = int(v.text)
            if INT64_MIN <= i <= INT64_MAX:
                return (2, i)
        return (1,)
    if typ == "string":
        if isinstance(v, str):
            b = v.encode("utf-8")
            if len(b) <= VALUE_MAX:
                return (2, b)
        return (1,)
    raise ValueError("unknown order type %r" % typ)


def entry_key(obj, canon, keys):
    """(key bytes, fell_back)."""
    for parts in keys:
        v = get_path(obj, parts)
        if isinstance(v, str):
            b = v.encode("utf-8")
            if 1 <= len(b) <= VALUE_MAX:
                return b, False
    h = hashlib.sha1(b"blob %d\0" % len(canon) + canon).hexdigest()
    return b"~blob:" + h.encode(), True

# ---------------------------------------------------------------------------
# the merge


class Result:
    """out: merged bytes; problems: list of Problem; entries: winners."""

    def __init__(self, out, problems, winners, scanned):
        self.out = out
        self.problems = problems
        self.winners = winners
        self.scanned = scanned

    @property
    def strict_fails(self):
        return bool(self.problems)


def merge_blobs(named, desc=DEFAULT, fmt=None):
    """named: iterable of (name, bytes).  Returns a Result."""
    fmt = fmt or desc.fmt
    problems = []
    groups = {}
    scanned = 0
    for name, data in named:
        for raw, obj, ln, col in scan(data, name, problems):
            scanned += 1
            canon = canonical(raw)
            key, fell = entry_key(obj, canon, desc.keys)
            if fell:
                problems.append(Problem(name, ln, col, "warning", "no key"))
            tup = []
            for parts, typ in desc.order:
                ov = order_value(get_path(obj, parts), typ)
                if ov[0] != 2:
                    problems.append(Problem(name, ln, col, "warning",
                                            "%s %s" % (".".join(parts),
                                                       "absent" if ov[0] == 0
                                                       else "invalid")))
                tup.append(ov)
            rank = (tuple(tup), canon)
            cur = groups.get(key)
            if cur is None or rank > cur:
                groups[key] = rank
    winners = sorted(((rank[0][0] if rank[0] else (), key, rank[1])
                      for key, rank in groups.items()),
                     key=lambda t: (t[0], t[1]))
    canons = [w[2] for w in winners]
    if fmt == "jsonl":
        out = b"".join(c + b"\n" for c in canons)
    elif canons:
        out = b"[\n" + b",\n".join(canons) + b"\n]\n"
    else:
        out = b"[]\n"
    return Result(out, problems, winners, scanned)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def find_descriptor(backing, target=None, descriptor=None):
    """The descriptor `crdtfs merge` would use for these options."""
    if descriptor is not None:
        return Descriptor.from_json(_read(descriptor))
    name = target or DEFAULT_TARGET
    p = os.path.join(backing, name + DESC_SUFFIX)
    if os.path.isfile(p) and not os.path.islink(p):
        return Descriptor.from_json(_read(p))
    if name == DEFAULT_TARGET:
        return DEFAULT
    raise FileNotFoundError("no descriptor for " + name)


def analyse_dir(backing, desc=None, fmt=None):
    if desc is None:
        desc = find_descriptor(backing)
    names = list_sources(backing, desc)
    return merge_blobs(((n, _read(os.path.join(backing, n))) for n in names),
                       desc, fmt)


def merge_dir(backing, fmt=None, desc=None):
    return analyse_dir(backing, desc, fmt).out


def merge_files(paths, fmt="json", desc=None):
    desc = desc or DEFAULT
    return merge_blobs(((p, _read(p)) for p in paths), desc, fmt).out


def merge(paths, fmt="json"):
    """A directory (str) or a list of files."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        return merge_dir(paths, fmt)
    return merge_files(list(paths), fmt)

# ---------------------------------------------------------------------------
# self test


def _self_test():
    fails = 0
    count = 0

    def ok(cond, what):
        nonlocal fails, count
        count += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", count, what))
        if not cond:
            fails += 1

    def mk(uid, ts, ver=1, host="a", extra=""):
        return ('{"id":"%s"%s,"_crdt_metadata":{"host":"%s","timestamp":'
                '"%s","version":%s,"unique_id":"%s"}}'
                % (uid, extra, host, ts, ver, uid)).encode()

    def m(*blobs, fmt=None, desc=DEFAULT):
        return merge_blobs([("f%d" % i, b) for i, b in enumerate(blobs)],
                           desc, fmt).out

    # timestamps
    P = parse_rfc3339
    ok(P(b"1970-01-01T00:00:00Z") == (0, 0), "epoch")
    ok(P(b"1970-01-01T02:00:00+02:00") == (0, 0), "offset +02:00")
    ok(P(b"1969-12-31T23:00:00-01:00") == (0, 0), "offset -01:00")
    ok(P(b"1970-01-01t00:00:00z") == (0, 0), "lower case t z")
    ok(P(b"1970-01-01 00:00:00Z") == (0, 0), "space for T")
    ok(P(b"2000-02-29T00:00:00Z") == (951782400, 0), "leap day 2000")
    ok(P(b"1900-02-29T00:00:00Z") is None, "1900 not leap")
    ok(P(b"2023-02-29T00:00:00Z") is None, "2023 not leap")
    ok(P(b"2016-12-31T23:59:60Z") == P(b"2017-01-01T00:00:00Z"),
       "leap second is +1 s")
    ok(P(b"2025-01-01T00:00:00.5Z") == (1735689600, 500000000), "fraction 1")
    ok(P(b"2025-01-01T00:00:00.123456789Z") == (1735689600, 123456789),
       "fraction 9")
    ok(P(b"2025-01-01T00:00:00.1234567890Z") is None, "fraction 10")
    ok(P(b"2025-01-01T00:00:00.Z") is None, "empty fraction")
    ok(P(b"2025-01-01T00:00:00") is None, "no zone")
    ok(P(b"2025-01-01T24:00:00Z") is None, "hour 24")
    ok(P(b"2025-13-01T00:00:00Z") is None, "month 13")
    ok(P(b"2025-04-31T00:00:00Z") is None, "April 31")
    ok(P(b"2025-01-01T00:00:00+24:00") is None, "offset 24")
    ok(P(b"2025-01-01T00:00:00+0200") is None, "offset without colon")
    ok(P(b"0000-01-01T00:00:00Z") == (-62167219200, 0), "year 0")
    ok(P(b"9999-12-31T23:59:59Z") == (253402300799, 0), "year 9999")
    ok(P("2025-01-01T00:00:0\u0661Z".encode()) is None, "arabic digit")
    # tokenizer / scanner
    ok([r for r, *_ in scan(b'[ {"a":1} , {"b":[1,{}]} ]')] ==
       [b'{"a":1}', b'{"b":[1,{}]}'], "array split")
    ok([r for r, *_ in scan(b'{"a":1}\r\n\n  {"b":2}  \n')] ==
       [b'{"a":1}', b'{"b":2}'], "jsonl split")
    ok(scan(b"  \n\t ") == [], "blank file")
    ok(scan(b"") == [], "empty file")
    pr = []
    ok(len(scan(b'[{"a":1},{"b":2', "x", pr)) == 1 and len(pr) == 1,
       "truncated keeps earlier")
    pr = []
    ok(len(scan(b'[{"a":1},1,"x",[],{"b":2}]', "x", pr)) == 2 and
       len(pr) == 3, "non-objects skipped")
    pr = []
    ok(len(scan(b'[{"a":"\x01"},{"b":2}]', "x", pr)) == 1 and len(pr) == 1,
       "control char skips element")
    pr = []
    ok(len(scan(b'[{"a":"\xff"},{"b":2}]', "x", pr)) == 1, "bad utf-8")
    ok(len(scan(b'[{"a":"\xed\xa0\x80"},{"b":2}]')) == 1, "utf-8 surrogate")
    ok(len(scan(b'[{"a":"\xc0\xaf"},{"b":2}]')) == 1, "overlong utf-8")
    ok(len(scan(b'[{"a":"\\ud800"},{"b":2}]')) == 1, "lone high surrogate")
    ok(len(scan(b'[{"a":"\\udc00x"},{"b":2}]')) == 1, "lone low surrogate")
    ok(len(scan(b'[{"a":"\\ud83d\\ude00"},{"b":2}]')) == 2, "surrogate pair")
    ok(len(scan(b'[{"a":1,"a":"\\ud800"},{"b":2}]')) == 1,
       "lone surrogate in a dropped duplicate")
    ok(len(scan(b'[{"a":1,"a":"\x01"},{"b":2}]')) == 1,
       "control char in a dropped duplicate")
    ok(len(scan(b'[{"a":"\\x"},{"b":2}]')) == 1, "bad escape")
    ok(len(scan(b'[{"a":"\\u12"},{"b":2}]')) == 1, "short \\u escape")
    ok(len(scan(b'[{"a":NaN},{"b":2}]')) == 0, "NaN is a grammar error")
    ok(len(scan(b'[{"a":01},{"b":2}]')) == 0, "leading zero")
    ok(len(scan(b'[{"a":1.},{"b":2}]')) == 0, "1.")
    ok(len(scan(b'[{"a":1},]')) == 1, "trailing comma")
    ok(len(scan(b'[{"a":1}] x')) == 1, "trailing garbage keeps")
    ok(len(scan(b'[{"a":1}]]')) == 1, "extra ]")
    ok(len(scan(b'[{"a":1}\x00,{"b":2}]')) == 1, "NUL outside string")
    ok(len(scan(b'{"a":1}\n{"a":\n{"b":2}')) == 2, "bad jsonl line skipped")
    ok(len(scan(b'{"a":1} {"b":2}\n{"c":3}')) == 1, "two objects one line")
    ok(len(scan(b'{"a":"\n{"b":1}\n"}\n')) == 1,
       "jsonl lines split before parsing")
    ok(len(scan(b'{\n"a":1\n}\n')) == 0, "pretty top-level object")
    ok(len(scan(b'x[]')) == 0, "neither [ nor {")
    ok(len(scan(b'\xef\xbb\xbf[]')) == 0, "BOM is not blank")
    deep = b'[{"a":' + b'[' * 1022 + b']' * 1022 + b'}]'
    ok(len(scan(deep)) == 1, "depth 1024 accepted (array file)")
    deep = b'[{"a":' + b'[' * 1023 + b']' * 1023 + b'},{"b":1}]'
    ok(len(scan(deep)) == 1, "depth 1025 skipped, scan goes on")
    deep = b'{"a":' + b'[' * 1023 + b']' * 1023 + b'}\n'
    ok(len(scan(deep)) == 1, "depth 1024 accepted (jsonl)")
    deep = b'[{"a":' + b'[' * 100000 + b']' * 100000 + b'},{"b":1}]'
    ok(len(scan(deep)) == 1, "100 000 levels")
    ok(canonical(b'{ "a" : "x y\\" z" ,\r\n\t"b":[1, 2] }') ==
       b'{"a":"x y\\" z","b":[1,2]}', "canonical")
    ok(canonical(b'{"a\\\\":" "}') == b'{"a\\\\":" "}', "canon escape")
    ok(scan(b'[{"a":1,"a":2}]')[0][1]["a"].text == "1",
       "first duplicate key wins")
    # the merge
    a = mk("u1", "2025-01-01T10:00:00Z", host="a", extra=',"v":"A"')
    b = mk("u1", "2025-01-01T11:00:00+02:00", host="b", extra=',"v":"B"')
    ok(m(b"[" + a + b"," + b + b"]") == b"[\n" + a + b"\n]\n",
       "Z beats an earlier +02:00 despite text order")
    ok(m(b"") == b"[]\n" and m(b"[]") == b"[]\n", "empty")
    ok(m(b"", fmt="jsonl") == b"", "empty jsonl")
    x = mk("u1", "2025-01-01T00:00:00Z", 2, "a")
    y = mk("u1", "2025-01-01T00:00:00Z", 10, "a")
    ok(m(b"[" + x + b"]", b"[" + y + b"]") == b"[\n" + y + b"\n]\n",
       "version compared as integer")
    x = mk("u1", "2025-01-01T00:00:00Z", 1, "b")
    y = mk("u1", "2025-01-01T00:00:00Z", 1, "a")
    ok(m(x + b"\n" + y) == b"[\n" + x + b"\n]\n", "host tie-break")
    x = mk("u1", "2025-01-01T00:00:00Z", 1, "a", ',"z":1')
    y = mk("u1", "2025-01-01T00:00:00Z", 1, "a", ',"z":2')
    ok(m(x + b"\n" + y) == b"[\n" + y + b"\n]\n", "canonical tie-break")
    ok(m(x + b"\n" + y) == m(y + b"\n" + x), "order independent")
    nm = b'{"id":"x"}'
    ok(m(b"[" + nm + b"]", nm) == b"[\n" + nm + b"\n]\n",
       "metadata-less entry collapses")
    bad = mk("u2", "not a time")
    none = b'{"_crdt_metadata":{"unique_id":"u2","version":1,"host":"a"}}'
    ok(m(bad + b"\n" + none) == b"[\n" + bad + b"\n]\n",
       "invalid timestamp outranks absent")
    good = mk("u2", "1900-01-01T00:00:00Z")
    ok(m(bad + b"\n" + good) == b"[\n" + good + b"\n]\n",
       "valid timestamp outranks invalid")
    e1 = mk("b", "2025-01-01T00:00:00Z")
    e2 = mk("a", "2025-01-01T00:00:00Z")
    e3 = mk("c", "2024-01-01T00:00:00Z")
    ok(m(e1 + b"\n" + e2 + b"\n" + e3) ==
       b"[\n" + e3 + b",\n" + e2 + b",\n" + e1 + b"\n]\n",
       "output sorted by (timestamp, key)")
    ok(m(e1 + b"\n" + e2, fmt="jsonl") == e2 + b"\n" + e1 + b"\n", "jsonl")
    d = Descriptor(target="t.json", sources=["*.jsonl"], keys=["id", "name"],
                   order=[("ts", "timestamp")], fmt="jsonl")
    r = merge_blobs([("x", b'{"name":"n","ts":"2025-01-01T00:00:00Z"}\n'
                      b'{"id":"n","ts":"2026-01-01T00:00:00Z"}\n'
                      b'{"id":7,"name":"n","ts":"2027-01-01T00:00:00Z"}')], d)
    ok(r.out == b'{"id":7,"name":"n","ts":"2027-01-01T00:00:00Z"}\n',
       "descriptor key fallback")
    ok(fnmatch_period("memory-*.json", "memory-a.json"), "glob")
    ok(not fnmatch_period("*.json", ".hidden.json"), "FNM_PERIOD")
    ok(fnmatch_period(".*.json", ".hidden.json"), "FNM_PERIOD explicit")
    ok(fnmatch_period("m[a-c]?.json", "mb1.json"), "bracket")
    ok(not fnmatch_period("m[!a-c].json", "mb.json"), "negated bracket")
    print("%d passed, %d failed" % (count - fails, fails))
    return 1 if fails else 0

# ---------------------------------------------------------------------------


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="crdtfs merge oracle")
    ap.add_argument("--format", choices=["json", "jsonl"])
    ap.add_argument("--target")
    ap.add_argument("--descriptor")
    ap.add_argument("--files", action="store_true",
                    help="merge the given files (default descriptor)")
    ap.add_argument("--problems", action="store_true",
                    help="list the problems the oracle saw on stderr")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("paths", nargs="*")
    a = ap.parse_args(argv)
    if a.self_test:
        return _self_test()
    if a.files:
        desc = Descriptor.from_json(_read(a.descriptor)) \
            if a.descriptor else DEFAULT
        r = merge_blobs(((p, _read(p)) for p in a.paths), desc, a.format)
    else:
        if len(a.paths) != 1:
            ap.error("exactly one BACKING directory")
        desc = find_descriptor(a.paths[0], a.target, a.descriptor)
        r = analyse_dir(a.paths[0], desc, a.format)
    sys.stdout.buffer.write(r.out)
    if a.problems:
        for p in r.problems:
            print(p, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
