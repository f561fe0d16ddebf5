#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""
build-cases.py - (re)write the golden case directories from the table below.

    tests/cases/build-cases.py [CASE...]

The committed case directories are the source of truth for the tests;
this script is how they were made, kept so a case can be changed in one
place and regenerated.  Hand-written expectations are checked against
tests/oracle.py (a mismatch is printed and makes the exit status 1);
cases with expected=None take the oracle's output (read it through before
committing).  expected-stderr lines were copied from the binary's messages.
"""
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(ROOT))
import oracle  # noqa: E402

MISMATCHES = []
CASES = {}


def E(uid, ts, ver=1, host="a", body=None, meta=None):
    """A compact entry, spelled exactly as given."""
    if body is None:
        body = '"id":"%s","content":"c %s %s %s"' % (uid, host, ts, ver)
    if meta is None:
        parts = []
        if host is not None:
            parts.append('"host":"%s"' % host)
        if ts is not None:
            parts.append('"timestamp":"%s"' % ts)
        if ver is not None:
            parts.append('"version":%s' % ver)
        if uid is not None:
            parts.append('"unique_id":"%s"' % uid)
        meta = ",".join(parts)
    return ('{%s,"_crdt_metadata":{%s}}' % (body, meta)).encode()


def arr(*es, pretty=True):
    if not es:
        return b"[]\n"
    if pretty:
        return b"[\n" + b",\n".join(b"  " + oracle.reformat(e, base=1)
                                     for e in es) + b"\n]\n"
    return b"[" + b",".join(es) + b"]"


def jsonl(*es, nl=b"\n"):
    return b"".join(e + nl for e in es)


def out(*es):
    if not es:
        return b"[]\n"
    return b"[\n" + b",\n".join(es) + b"\n]\n"


def case(name, hosts, expected=None, args=(), status=None, stderr=(),
         check=None, generate=False, no_oracle=False, readme=None):
    CASES[name] = dict(hosts=hosts, expected=expected, args=args,
                       status=status, stderr=stderr, check=check,
                       generate=generate, no_oracle=no_oracle, readme=readme)


T0 = "2025-03-01T10:00:00Z"

# ---- empty inputs ---------------------------------------------------------
case("empty-dir", {}, b"[]\n",
     readme="no host files at all")
case("empty-file", {"memory-a.json": b""}, b"[]\n")
case("blank-file", {"memory-a.json": b"  \n\t\r\n \n"}, b"[]\n")
case("empty-array", {"memory-a.json": b"[]", "memory-b.json": b" [ \n\t] \n",
                     "memory-c.json": b"[]\n"}, b"[]\n")

# ---- the same entries in every format --------------------------------------
_same = [E("u1", "2025-01-02T00:00:00Z", 1, "a"),
         E("u2", "2025-01-01T00:00:00Z", 2, "b",
           body='"id":"x","n":[1,2.50,-0,1e5],"s":"a b\\tc","o":{}'),
         E("u3", "2025-01-01T00:00:00Z", 1, "a",
           body='"empty":[],"nested":{"k":[{"deep":true}]}')]
_same_out = out(_same[1], _same[2], _same[0])
case("format-pretty", {"memory-a.json": arr(*_same)}, _same_out)
case("format-compact", {"memory-a.json": arr(*_same, pretty=False)},
     _same_out)
case("format-jsonl", {"memory-a.json": jsonl(*_same)}, _same_out)
case("format-jsonl-no-final-newline",
     {"memory-a.json": jsonl(*_same)[:-1]}, _same_out)
case("format-spaced",
     {"memory-a.json": b"\r\n\t[\t" + b" , ".join(
         oracle.reformat(e, indent=1, nl=b"\r\n") for e in _same) +
      b"\r\n]\t\r\n"}, _same_out)
case("format-mixed",
     {"memory-a.json": arr(_same[0]),
      "memory-b.json": arr(_same[1], pretty=False),
      "memory-c.json": jsonl(_same[2])}, _same_out)
case("crlf-jsonl", {"memory-a.json": jsonl(*_same, nl=b"\r\n")}, _same_out)
case("jsonl-blank-lines",
     {"memory-a.json": b"\n\n" + _same[0] + b"\n   \n\t\r\n" + _same[1] +
      b"  \t\n\n" + b"  " + _same[2] + b"\n\n"}, _same_out)

# ---- duplicates ------------------------------------------------------------
_d = E("dup", T0, 3, "a")
case("duplicates-across-files",
     {"memory-a.json": arr(_d), "memory-b.json": arr(_d, pretty=False),
      "memory-c.json": jsonl(_d, _d)}, out(_d),
     readme="one entry in four places (three formats) gives one line")

# ---- last writer wins ------------------------------------------------------
_a = E("u1", "2025-03-01T10:00:00Z", 1, "a")
_b = E("u1", "2025-03-01T11:30:00+02:00", 1, "b")    # 09:30Z: older
_c = E("u1", "2025-03-01T04:59:59-05:00", 1, "c")    # 09:59:59Z: older
_x = E("u2", "2025-03-01T09:00:00-02:00", 1, "x")    # 11:00Z: newest u2
_y = E("u2", "2025-03-01T10:30:00Z", 1, "y")
case("lww-offsets", {"memory-a.json": arr(_a, _y), "memory-b.json": arr(_b),
                     "memory-c.json": jsonl(_c, _x)}, out(_a, _x),
     readme="Z against +02:00 / -05:00 / -02:00: text order would pick "
            "the wrong winner for both keys")
_f = [E("f%d" % n, "2025-03-01T10:00:00%sZ" %
        (("." + "0" * (n - 1) + "1") if n else ""), 1, "a") for n in range(10)]
_g0 = E("g", "2025-03-01T10:00:00Z", 1, "a", body='"w":"no fraction"')
_g1 = E("g", "2025-03-01T10:00:00.000000001Z", 1, "a", body='"w":"1 ns"')
_h1 = E("h", "2025-03-01T10:00:00.5Z", 1, "a", body='"w":".5"')
_h2 = E("h", "2025-03-01T10:00:00.45Z", 1, "b", body='"w":".45"')
_h3 = E("h", "2025-03-01T10:00:00.500000000+00:00", 1, "a",
        body='"w":".500000000"')
case("fractions", {"memory-a.json": arr(*reversed(_f)),
                   "memory-b.json": jsonl(_g1, _h1, _h2),
                   "memory-c.json": jsonl(_g0, _h3)},
     out(_f[0], _f[9], _g1, _f[8], _f[7], _f[6], _f[5], _f[4], _f[3], _f[2],
         _f[1], _h3),
     readme="0-9 fraction digits; 'Z' sorts after '.' as text but no "
            "fraction is earlier than .000000001; .5 and .500000000 are "
            "the same instant (h: canonical bytes decide)")
_v9 = E("v", T0, 9, "z")
_v10 = E("v", T0, 10, "a")
_w1 = E("w", T0, 1, "a")
_w2 = E("w", "2025-03-01T12:00:00+02:00", 2, "a")   # same instant
case("equal-ts-version", {"memory-a.json": jsonl(_v9, _w2),
                          "memory-b.json": jsonl(_v10, _w1)},
     out(_v10, _w2),
     readme="equal instants: the integer version decides (10 > 9, not "
            "text); +02:00 spelling of the same instant")
_ha = E("h", T0, 1, "a")
_hb = E("h", T0, 1, "b")
_hZ = E("h", T0, 1, "Z")
_he = E("i", T0, 1, "host-\u00e9")
_hz = E("i", T0, 1, "host-z")
_hesc = E("j", T0, 1, "host-\\u00e9")     # the escape decodes to é
_hzz = E("j", T0, 1, "host-zz")
case("equal-ts-version-host",
     {"memory-a.json": jsonl(_ha, _he, _hzz), "memory-b.json": jsonl(_hb, _hz),
      "memory-c.json": jsonl(_hZ, _hesc)},
     out(_hb, _he, _hesc),
     readme="equal timestamp and version: host bytes decide "
            "(b > a > Z; UTF-8 \u00e9 (c3 a9) > z; an escaped \\u00e9 "
            "compares as its decoded bytes)")
_k1 = E("k", T0, 1, "a", body='"x":1')
_k2 = E("k", T0, 1, "a", body='"x":2')
_k3 = E("k", T0, 1, "a", body='"x":10')
case("equal-all-canonical",
     {"memory-a.json": jsonl(_k1, _k3), "memory-b.json": arr(_k2)},
     out(_k2),
     readme="everything equal but the content: the canonical bytes "
            "decide ('2' > '1' bytewise)")
case("same-entry-different-whitespace",
     {"memory-a.json": arr(_k1), "memory-b.json": jsonl(_k1),
      "memory-c.json": b"[ " + oracle.reformat(_k1, indent=3) + b" ]"},
     out(_k1))
_s = [E("B", T0), E("a", T0), E("\u00e9", T0), E("A", T0), E("aa", T0),
      E("0", "2025-03-01T09:00:00Z")]
case("sort-ties-by-key", {"memory-a.json": arr(*_s)},
     out(_s[5], _s[3], _s[0], _s[1], _s[4], _s[2]),
     readme="equal timestamps sort by unique_id bytes")
_l1 = E("l", "2016-12-31T23:59:60Z", 1, "a", body='"w":"leap"')
_l2 = E("l", "2017-01-01T00:00:00Z", 2, "a", body='"w":"next"')
_m1 = E("m", "2024-02-29T00:00:00Z", 1, "a", body='"w":"leap day"')
_m2 = E("m", "2023-02-29T00:00:00Z", 1, "b", body='"w":"no such day"')
_n1 = E("n", "2025-03-01t10:00:00z", 1, "a", body='"w":"lower"')
_n2 = E("n", "2025-03-01 10:00:00.000Z", 2, "a", body='"w":"space"')
_o1 = E("o", "2025-03-01T10:00:00-00:00", 5, "a", body='"w":"minus zero"')
_o2 = E("o", "2025-03-01T10:00:00+00:00", 4, "a", body='"w":"plus zero"')
case("timestamp-spellings",
     {"memory-a.json": jsonl(_l1, _m2, _n1, _o2),
      "memory-b.json": jsonl(_l2, _m1, _n2, _o1)},
     out(_l2, _m1, _n2, _o1),
     readme="leap second = next second; Feb 29 only in leap years; t/z "
            "and space spellings; -00:00 is UTC")
_ts_esc = E("p", "2025-03-01T10:00:00\\u005a", 2, "a", body='"w":"escaped Z"')
_ts_raw = E("p", "2025-03-01T10:00:00Z", 1, "a", body='"w":"raw Z"')
case("timestamp-escaped", {"memory-a.json": jsonl(_ts_esc, _ts_raw)},
     out(_ts_esc),
     readme="a timestamp is compared after unescaping: \\u005a is Z")

# ---- entries that do not fit ------------------------------------------------
_nm1 = b'{"id":"n1","content":"no metadata"}'
_nm2 = b'{"id":"n2","content":"no metadata either"}'
_withm = E("u1", T0)
case("missing-metadata",
     {"memory-a.json": arr(_nm1, _withm, _nm2),
      "memory-b.json": jsonl(_nm1), "memory-c.json": arr(_nm2, pretty=False)},
     out(*sorted([_nm1, _nm2],
                 key=lambda c: oracle.entry_key({}, c, [])[0])) .
     replace(b"\n]\n", b",\n" + _withm + b"\n]\n"),
     readme="entries without _crdt_metadata: key ~blob:<git blob sha1 of "
            "the canonical bytes>, so copies collapse; they sort first "
            "(absent timestamp)")
_nu1 = E(None, T0, 1, "a", body='"id":"no uid 1"')
_nu2 = E(None, T0, 1, "a", body='"id":"no uid 2"')
case("missing-unique-id", {"memory-a.json": jsonl(_nu1, _nu2, _nu1),
                           "memory-b.json": arr(_nu2)}, None,
     readme="no unique_id: blob key; duplicates collapse")
_big = "x" * 513
_ok512 = "y" * 512
case("non-string-unique-id",
     {"memory-a.json": jsonl(
         E(None, T0, meta='"timestamp":"%s","unique_id":42' % T0),
         E(None, T0, meta='"timestamp":"%s","unique_id":null' % T0),
         E(None, T0, meta='"timestamp":"%s","unique_id":""' % T0),
         E(None, T0, meta='"timestamp":"%s","unique_id":{"a":"b"}' % T0),
         E(None, T0, meta='"timestamp":"%s","unique_id":["u"]' % T0),
         E(None, T0, meta='"timestamp":"%s","unique_id":"%s"' % (T0, _big)),
         E(None, T0, meta='"timestamp":"%s","unique_id":"%s"' % (T0, _ok512)),
         E(None, T0, meta='"timestamp":"%s","unique_id":"\\u0000"' % T0),
         b'{"_crdt_metadata":"not an object","id":1}',
         b'{"_crdt_metadata":[],"id":2}')}, None,
     readme="unique_id 42/null/\"\"/object/array/513 bytes: blob key; "
            "512 bytes and \"\\u0000\" (1 byte) are valid keys")
_r_abs = E("r", None, 1, "a", body='"w":"absent ts"')
_r_bad = E("r", "yesterday", 1, "a", body='"w":"bad ts"')
_r_old = E("r", "1970-01-01T00:00:00Z", 1, "a", body='"w":"epoch"')
_s_abs = E("s", None, 9, "a", body='"w":"absent ts"')
_s_bad = E("s", "2025-03-01T10:00:00", 1, "a", body='"w":"no zone"')
_t_num = E("t", None, 1, "a", body='"w":"number ts"',
           meta='"timestamp":1740823200,"unique_id":"t"')
_t_null = E("t", None, 1, "a", body='"w":"null ts"',
            meta='"timestamp":null,"unique_id":"t","version":7')
_q_abs = E("q", None, 1, "a", body='"w":"absent ts"')
case("bad-timestamp-rank",
     {"memory-a.json": jsonl(_r_abs, _r_bad, _s_abs, _t_num),
      "memory-b.json": jsonl(_r_old, _s_bad, _t_null, _q_abs)},
     out(_q_abs, _s_bad, _t_null, _r_old),
     readme="absent < invalid < any valid timestamp; output sorts "
            "absent first, then invalid, then by time")
_ver = [E("v", T0, None, "a", body='"w":"absent"'),
        E("v", T0, '"9"', "a", body='"w":"string"'),
        E("v", T0, "1.0", "a", body='"w":"1.0"'),
        E("v", T0, "1e3", "a", body='"w":"1e3"'),
        E("v", T0, "9223372036854775808", "a", body='"w":"2^63"'),
        E("v", T0, "-9223372036854775808", "a", body='"w":"-2^63"')]
_ver_ok = E("v", T0, "-9223372036854775807", "a", body='"w":"-2^63+1"')
_vmax = E("vmax", T0, "9223372036854775807", "a")
_vneg0 = E("vz", T0, "-0", "b", body='"w":"-0"')
_vzero = E("vz", T0, "0", "a", body='"w":"0"')
case("version-rank",
     {"memory-a.json": jsonl(*_ver[:3], _vzero),
      "memory-b.json": jsonl(*_ver[3:], _ver_ok, _vmax, _vneg0)},
     out(_ver_ok, _vmax, _vneg0),
     readme="absent < invalid (\"9\", 1.0, 1e3, 2^63) < any int64; "
            "-0 equals 0 so the host decides")
_vhuge = E("vh", T0, "1" + "0" * 5000, "b", body='"w":"10^5000"')
_vhuge_ok = E("vh", T0, "0", "a", body='"w":"0"')
_vnull = E("vn", T0, "null", "b", body='"w":"null"')
_vnull_ok = E("vn", T0, "0", "a", body='"w":"0"')
case("version-null",
     {"memory-a.json": jsonl(_vnull_ok), "memory-b.json": jsonl(_vnull)},
     out(_vnull_ok),
     readme="a version that is null (or true, an object...) is invalid, "
            "ranked below 0, and the warning says what kind it is")
case("version-5000-digits",
     {"memory-a.json": jsonl(_vhuge_ok), "memory-b.json": jsonl(_vhuge)},
     out(_vhuge_ok),
     readme="a version of 5 001 digits is out of int64, so invalid: "
            "below 0 (Python's int() refused such a number by default, "
            "which crashed the oracle)")

# ---- bytes kept as written ---------------------------------------------------
_u = E("uni", T0, 1, "a",
       body='"e1":"\\u00e9","e2":"\u00e9","sl":"\\/","pair":"\\ud83d\\ude00",'
            '"raw":"\U0001f600","ctl":"\\u0000\\u001F\\b\\f\\n\\r\\t",'
            '"q":"\\"\\\\","ws":" \\t ","\\u006b":"escaped key",'
            '"cjk":"\u65e5\u672c\u8a9e"')
case("unicode-escapes-kept", {"memory-a.json": arr(_u)}, out(_u),
     readme="escapes and raw UTF-8 are copied as written, only "
            "whitespace outside strings goes")
_num = E("num", T0, 1, "a",
         body='"a":1.0,"b":1e5,"c":1E+05,"d":-0,"e":0.0,"f":-0.0e-0,'
              '"g":123456789012345678901234567890,"h":1.5E-300,"i":[0,-1]')
case("number-spellings", {"memory-a.json": arr(_num)}, out(_num))
_dk = (b'{"_crdt_metadata":{"host":"a","timestamp":"2025-03-01T10:00:00Z",'
       b'"timestamp":"2030-01-01T00:00:00Z","version":1,"unique_id":"dk",'
       b'"unique_id":"other"},"_crdt_metadata":{"unique_id":"third"},'
       b'"x":1,"x":2}')
_dk_new = E("dk", "2026-01-01T00:00:00Z", 1, "a")
_dk_other = E("other", "2026-01-01T00:00:00Z", 1, "a")
case("duplicate-keys", {"memory-a.json": jsonl(_dk, _dk_other),
                        "memory-b.json": arr(_dk_new)},
     out(_dk_new, _dk_other),
     readme="the first occurrence of a duplicated key counts: key dk, "
            "timestamp 2025 (so the 2026 copy wins); the entry's bytes "
            "keep every duplicate")
_ek = (b'{"_crdt\\u005fmetadata":{"host":"a","timestamp":"2025-03-01T10:00:00Z",'
       b'"version":2,"unique\\u005fid":"ek"},"w":"escaped keys"}')
_ek2 = E("ek", T0, 1, "a", body='"w":"plain keys"')
case("escaped-key-names", {"memory-a.json": jsonl(_ek, _ek2)}, out(_ek),
     readme="object keys are compared after unescaping: "
            "\"unique\\u005fid\" is unique_id")

# ---- bad input ---------------------------------------------------------------
_ok1 = E("ok1", "2025-03-01T10:00:01Z")
_ok2 = E("ok2", "2025-03-01T10:00:02Z")
_ok3 = E("ok3", "2025-03-01T10:00:03Z")
case("truncated-file",
     {"memory-a.json": arr(_ok1, _ok2, pretty=False) [:-1] +
      b',{"id":"cut","_crdt_metadata":{"host":"a","times',
      "memory-b.json": arr(_ok3)[:-3]},
     out(_ok1, _ok2, _ok3),
     readme="a cut file keeps its complete entries; memory-b.json lacks "
            "only the closing bracket")
case("invalid-json-middle",
     {"memory-a.json": b"[" + _ok1 + b',\n{"id": tru},\n' + _ok2 + b"]",
      "memory-b.json": jsonl(_ok3) + b'{"id": 1,}\n' +
      E("ok4", "2025-03-01T10:00:04Z") + b"\n"},
     out(_ok1, _ok3, E("ok4", "2025-03-01T10:00:04Z")),
     readme="a grammar error stops a JSON array (entries before it are "
            "kept); in JSON Lines only the bad line is skipped")
case("invalid-utf8",
     {"memory-a.json": b"[" + _ok1 + b',\n{"id":"bad \xff byte"},\n' +
      b'{"id":"overlong \xc0\xaf"},\n{"id":"surrogate \xed\xa0\x80"},\n' +
      b'{"id":"cut \xe6\x97"},\n' + _ok2 + b"]\n"},
     out(_ok1, _ok2),
     readme="an entry holding invalid UTF-8 is skipped, scanning goes on")
case("nul-byte",
     {"memory-a.json": b"[" + _ok1 + b',\n{"id":"nul \x00 inside"},\n' +
      _ok2 + b"]\n",
      "memory-b.json": b"[" + _ok3 + b",\x00\n" + E("lost", T0) + b"]\n"},
     out(_ok1, _ok2, _ok3),
     readme="a raw NUL inside a string skips that entry; a NUL between "
            "elements is a grammar error that stops the file")
case("control-chars",
     {"memory-a.json": b"[" + _ok1 + b',\n{"id":"tab\there"},\n' +
      b'{"id":"esc \x1b"},\n{"id":"del \x7f is fine","_crdt_metadata":'
      b'{"unique_id":"del","timestamp":"2025-03-01T10:00:05Z"}},\n' +
      _ok2 + b"]\n"},
     out(_ok1, _ok2, b'{"id":"del \x7f is fine","_crdt_metadata":'
         b'{"unique_id":"del","timestamp":"2025-03-01T10:00:05Z"}}'),
     readme="raw control characters (< 0x20) in strings skip the entry; "
            "DEL (0x7f) is allowed")
case("bad-escapes",
     {"memory-a.json": b"[" + _ok1 + b',\n{"id":"\\x41"},\n' +
      b'{"id":"\\u12"},\n{"id":"\\ud800"},\n{"id":"\\udc00\\ud800"},\n' +
      b'{"id":"\\ud800\\u0041"},\n{"id":"fine","id":"\\ud800"},\n' +
      _ok2 + b"]\n"},
     out(_ok1, _ok2),
     readme="bad escapes and lone surrogate escapes skip the entry (also "
            "in the value of a duplicate key that lookups ignore)")
case("non-object-elements",
     {"memory-a.json": b'[1, "x", null, true, [], [{"a":1}], ' + _ok1 +
      b', -2.5e3, ' + _ok2 + b', {"nested": [' + _ok3[:-1] + b'}]}]'},
     out(b'{"nested":[' + _ok3[:-1] + b'}]}', _ok1, _ok2),
     readme="non-object elements are skipped; nested entries are not "
            "top-level entries (the last element is kept as one object "
            "without metadata)")
case("top-level-object",
     {"memory-a.json": b'{\n  "id": "pretty",\n  "_crdt_metadata": '
      b'{"unique_id": "p"}\n}\n',
      "memory-b.json": _ok1 + b"\n"},
     out(_ok1),
     readme="a pretty-printed top-level object is not JSON Lines: every "
            "line of it is an error; a one-line object is a JSONL file")
case("trailing-garbage",
     {"memory-a.json": arr(_ok1) + b"xyz\n",
      "memory-b.json": arr(_ok2, pretty=False) + b"]",
      "memory-c.json": arr(_ok3, pretty=False) + b"[]"},
     out(_ok1, _ok2, _ok3),
     readme="anything but blanks after the closing ] is an error; the "
            "entries are kept")
case("trailing-comma",
     {"memory-a.json": b"[" + _ok1 + b"," + _ok2 + b",]",
      "memory-b.json": b"[," + _ok3 + b"]"},
     out(_ok1, _ok2))
case("grammar-numbers",
     {"memory-a.json": jsonl(_ok1) + b'{"id":01}\n{"id":1.}\n{"id":.5}\n'
      b'{"id":+1}\n{"id":NaN}\n{"id":Infinity}\n{"id":0x10}\n{"id":1e}\n'
      b'{"id":-}\n{"id":tru}\n{"id":nulll}\n' + jsonl(_ok2)},
     out(_ok1, _ok2),
     readme="JSON number and literal grammar, one bad JSONL line each")
case("jsonl-line-rules",
     {"memory-a.json": jsonl(_ok1) + b'{"a":1} {"b":2}\n' +
      b'{"id":"spans\n' + _ok2 + b'\n"}\n' + b'[1]\n"str"\n' +
      b'{"open":\n}\n' + jsonl(_ok3)},
     out(_ok1, _ok2, _ok3),
     readme="JSON Lines are split at LF before parsing: two objects on a "
            "line are an error, a string cannot span lines (so the "
            "middle line is a complete entry of its own), a line must "
            "hold an object")
case("not-json",
     {"memory-a.json": b"hello\n", "memory-b.json": b"\xef\xbb\xbf[]",
      "memory-c.json": b'"just a string"', "memory-d.json": arr(_ok1)},
     out(_ok1),
     readme="a file that starts with neither [ nor { (a BOM included) "
            "gives no entries")
case("many-problems",
     {"memory-a.json": b"[" + b",".join([b"1"] * 30 + [_ok1]) + b"]"},
     out(_ok1),
     readme="30 bad elements: at most 20 are listed, then a count")
case("one-more-problem",
     {"memory-a.json": b"[" + b",".join([b"1"] * 21 + [_ok1]) + b"]"},
     out(_ok1),
     stderr=["memory-a.json: error: ... and 1 more problem in this file"],
     readme="21 bad elements: 20 listed, then one more, in the singular")

# ---- generated inputs -----------------------------------------------------
_deep_ok = [('{"id":"ok%d","_crdt_metadata":{"unique_id":"ok%d",'
             '"timestamp":"2025-03-01T10:00:0%dZ"}}' % (i, i, i)).encode()
            for i in range(1, 8)]
case("nesting-100000", {}, out(*_deep_ok), generate=True,
     readme="100 000 nested arrays: the entry is skipped (too deep), "
            "scanning goes on after it; a truncated deep entry stops the "
            "file; no crash, no hang")
_d1023 = b'{"id":"d1023","v":' + b"[" * 1022 + b"]" * 1022 + b"}"
_d1024 = b'{"id":"d1024","v":' + b"[" * 1023 + b"]" * 1023 + b"}"
_d1025 = b'{"id":"d1025","v":' + b"[" * 1024 + b"]" * 1024 + b"}"
case("nesting-limit",
     {"memory-a.json": b"[" + _d1023 + b",\n" + _d1024 + b",\n" + _ok1 +
      b"]\n",
      "memory-b.json": _d1024 + b"\n" + _d1025 + b"\n" + _ok2 + b"\n"},
     None,
     readme="at most 1024 levels counting the enclosing array: in an "
            "array file an entry may nest 1023 levels, on a JSON Lines "
            "line 1024")
case("string-50mb", {}, out(*_deep_ok[:4]), generate=True,
     readme="an entry larger than 16 MiB (a 50 MB string) is skipped, "
            "scanning goes on")

# ---- sources -----------------------------------------------------------------
case("symlinks-and-dirs", {"memory-a.json": arr(_ok1)}, out(_ok1),
     generate=True,
     check=["exit 1",
            "memory-evil.json: warning: host file is not read: it is a "
            "symlink (symlinks are never followed)",
            "memory-alias.json: warning: host file is not read: it is a "
            "symlink"],
     readme="symlinked host files (pointing outside or inside) and "
            "directories named memory-*.json are not read")
case("special-files", {"memory-a.json": arr(_ok1)},
     out(_ok1, b'{"id":"latin","_crdt_metadata":{"unique_id":"latin",'
               b'"timestamp":"2025-03-01T10:00:02Z"}}'),
     generate=True,
     readme="a FIFO and a device named memory-*.json are not read (and do "
            "not block); a non-UTF-8 file name still matches")
case("source-names",
     {"memory-a.json": arr(_ok1), "memory-.json": arr(_ok2),
      "memory.json": arr(E("no1", T0)), "Memory-B.json": arr(E("no2", T0)),
      ".memory-c.json": arr(E("no3", T0)),
      "memory-d.json.bak": arr(E("no4", T0)),
      "memory-e.jsonl": arr(E("no5", T0)),
      "unified-memory.json": arr(E("no6", T0)),
      "notes.json": arr(E("no7", T0)),
      "sub/memory-f.json": arr(E("no8", T0))},
     out(_ok1, _ok2),
     check=["exit 1",
            "unified-memory.json: warning: a merged file of this name "
            "hides this file in the mount"],
     readme="only regular files in the root matching memory-*.json count; "
            "a stale unified-memory.json is not a source (check says the "
            "mount hides it)")


# ---- --strict ----------------------------------------------------------------
case("strict-clean", {"memory-a.json": arr(_ok1, _ok2)}, out(_ok1, _ok2),
     args=["--strict"])
case("strict-warning",
     {"memory-a.json": arr(_ok1, b'{"id":"no metadata"}')}, b"",
     args=["--strict"], status=1,
     readme="a warning (missing metadata) is enough to fail --strict; "
            "nothing is written to stdout")
case("strict-error", {"memory-a.json": arr(_ok1) + b"x"}, b"",
     args=["--strict"], status=1)
case("strict-bad-timestamp",
     {"memory-a.json": jsonl(E("u", "2025-02-30T00:00:00Z"))}, b"",
     args=["--strict"], status=1)

# ---- descriptors -------------------------------------------------------------
_n_a = b'{"id":"alpha","ts":"2025-01-01T00:00:00Z","v":"A old"}'
_n_b = b'{"id":"alpha","ts":"2025-01-02T00:00:00+01:00","v":"A new"}'
_n_c = b'{"name":"beta","ts":"2025-01-01T12:00:00Z"}'
_n_d = b'{"id":7,"name":"gamma","ts":"2025-01-01T06:00:00Z"}'
_n_e = b'{"id":"gamma","ts":"2025-01-01T05:00:00Z","w":"id wins"}'
_n_f = b'{"text":"no key at all","ts":"2025-01-01T00:00:00Z"}'
_notes_desc = (b'{\n  "target": "notes.json",\n'
               b'  "sources": ["notes-*.jsonl", "extra/*.json"],\n'
               b'  "key": ["id", "name"],\n'
               b'  "order": [{"path": "ts", "type": "timestamp"}],\n'
               b'  "format": "jsonl"\n}\n')
_notes_hosts = {"notes.json.merge.json": _notes_desc,
                "notes-a.jsonl": jsonl(_n_a, _n_c, _n_f),
                "notes-b.jsonl": jsonl(_n_b, _n_d),
                "extra/more.json": arr(_n_e),
                "extra/.hidden.json": arr(b'{"id":"hidden","ts":"x"}'),
                "memory-a.json": arr(_ok1)}
_notes_key_f = oracle.entry_key({}, _n_f, [])[0]
case("descriptor-custom", _notes_hosts,
     jsonl(_n_f, _n_d, _n_c, _n_b),
     args=["--target", "notes.json"],
     readme="a descriptor notes.json.merge.json: two source globs (one in "
            "a subdirectory), key list with fallback (id, else name, else "
            "a blob key), one timestamp order field, JSON Lines output")
case("descriptor-file-option", _notes_hosts, None,
     args=["--descriptor", "{backing}/notes.json.merge.json"],
     readme="the same descriptor named with --descriptor")
case("descriptor-default-target",
     {"unified-memory.json.merge.json":
      b'{"target":"unified-memory.json","sources":["memory-*.json",'
      b'"old/memory-*.json"],"format":"jsonl"}',
      "memory-a.json": arr(_ok1), "old/memory-b.json": arr(_ok2)},
     jsonl(_ok1, _ok2),
     readme="a descriptor for unified-memory.json replaces the built-in "
            "default")
case("descriptor-integer-string-order",
     {"rank.json.merge.json":
      b'{"target":"rank.json","sources":["r-*.json"],"key":["k"],'
      b'"order":[{"path":"meta.n","type":"integer"},'
      b'{"path":"who","type":"string"}]}',
      "r-a.json": jsonl(b'{"k":"x","meta":{"n":10},"who":"a"}',
                        b'{"k":"y","meta":{"n":2},"who":"z"}',
                        b'{"k":"z","meta":{"n":"3"},"who":"q"}'),
      "r-b.json": jsonl(b'{"k":"x","meta":{"n":9},"who":"z"}',
                        b'{"k":"y","meta":{"n":2},"who":"zz"}',
                        b'{"k":"w"}')},
     out(b'{"k":"w"}', b'{"k":"z","meta":{"n":"3"},"who":"q"}',
         b'{"k":"y","meta":{"n":2},"who":"zz"}',
         b'{"k":"x","meta":{"n":10},"who":"a"}'),
     args=["--target", "rank.json"],
     readme="integer then string order fields; output sorted by the "
            "first (absent, invalid, then 2 < 10)")

_bad_descs = {
    "descriptor-unknown-field":
        (b'{"target":"n.json","sources":["a-*.json"],"sorce":1}',
         'unknown field "sorce"'),
    "descriptor-absolute-path":
        (b'{"target":"n.json","sources":["/etc/*.json"]}', '"sources[0]"'),
    "descriptor-dotdot":
        (b'{"target":"n.json","sources":["a-*.json","../x/*.json"]}',
         '"sources[1]"'),
    "descriptor-bad-glob":
        (b'{"target":"n.json","sources":["a-[.json"]}', '"sources[0]"'),
    "descriptor-bad-order-type":
        (b'{"target":"n.json","sources":["a-*.json"],"order":'
         b'[{"path":"ts","type":"date"}]}', '"order[0].type"'),
    "descriptor-bad-format":
        (b'{"target":"n.json","sources":["a-*.json"],"format":"xml"}',
         '"format"'),
    "descriptor-target-with-slash":
        (b'{"target":"sub/n.json","sources":["a-*.json"]}', '"target"'),
    "descriptor-empty-key":
        (b'{"target":"n.json","sources":["a-*.json"],"key":[]}', '"key"'),
    "descriptor-empty-path-segment":
        (b'{"target":"n.json","sources":["a-*.json"],"key":["a..b"]}',
         '"key[0]"'),
    "descriptor-target-matches-source":
        (b'{"target":"n.json","sources":["*.json"]}', '"target"'),
    "descriptor-syntax-error":
        (b'{"target":"n.json",\n "sources":["a-*.json"\n}', ''),
    "descriptor-missing-sources":
        (b'{"target":"n.json"}', '"sources"'),
}
for _name, (_text, _field) in _bad_descs.items():
    case(_name, {"n.json.merge.json": _text, "a-1.json": arr(_ok1)}, b"",
         args=["--target", "n.json"], status=1, no_oracle=True,
         stderr=["n.json.merge.json..." + _field] if _field else
         ["n.json.merge.json:3:..."],
         readme="invalid descriptor: rejected with a message naming the "
                "descriptor and the field")
case("descriptor-symlink", {"a-1.json": arr(_ok1)}, b"",
     args=["--target", "n.json"], status=1, no_oracle=True,
     generate=True, stderr=["n.json.merge.json..."],
     readme="a symlinked descriptor is rejected")
case("descriptor-unknown-target", {"memory-a.json": arr(_ok1)}, b"",
     args=["--target", "nothing.json"], status=1, no_oracle=True,
     stderr=["nothing.json"],
     readme="--target with no descriptor for it")
case("descriptor-source-symlink-dir",
     {"d.json.merge.json": b'{"target":"d.json","sources":["sub/*.json"]}',
      "real/x.json": arr(_ok2)},
     b"[]\n", args=["--target", "d.json"],
     generate=True,
     readme="a glob never walks through a symlinked directory")

# ---- limits ------------------------------------------------------------------
case("entry-size-limit", {}, False, generate=True,
     stderr=["memory-a.json:3:1: error: entry larger than 16 MiB",
             "memory-a.json:4:1: error: entry larger than 16 MiB"],
     readme="an entry of exactly 16 MiB raw bytes is kept, one byte more "
            "is skipped (even when that byte is whitespace); expected "
            "output is written by generate.py")
_e256 = "\u00e9" * 256          # 512 bytes
_e257 = "\u00e9" * 257          # 514 bytes
_esc128 = "\\u0061" * 128       # 768 bytes as written, 128 decoded
case("value-length-limits",
     {"memory-a.json": jsonl(
         E(_e256, T0, 1, "a", body='"w":"512-byte key"'),
         E(_e257, T0, 1, "a", body='"w":"514-byte key"'),
         E(_esc128, T0, 1, "a", body='"w":"escaped key"'),
         E("a" * 128, "2025-03-01T09:00:00Z", 1, "a",
           body='"w":"same key, older"'),
         E("h", T0, 1, "x" * 513, body='"w":"513-byte host"'),
         E("h", T0, 1, "a", body='"w":"1-byte host"'),
         E("h2", T0, 1, "y" * 512, body='"w":"512-byte host"'),
         E("h2", T0, 1, "b", body='"w":"b host"'))},
     None,
     stderr=["memory-a.json:2:109: warning: entry has no usable "
             "_crdt_metadata.unique_id",
             "memory-a.json:5:47: warning: _crdt_metadata.host"],
     readme="keys and string order values are limited to 512 bytes after "
            "unescaping: a 512-byte key is a key, 514 bytes falls back to a "
            "blob key; 768 bytes of \\u0061 escapes decode to 128 bytes; "
            "a 513-byte host is invalid (ranks below any valid host), a "
            "512-byte one is valid")
case("duplicate-metadata-nonobject",
     {"memory-a.json": jsonl(
         b'{"_crdt_metadata":1,"_crdt_metadata":{"unique_id":"u",'
         b'"timestamp":"2025-03-01T10:00:00Z"},"w":"first is a number"}',
         b'{"_crdt_metadata":{"unique_id":"u","timestamp":'
         b'"2020-01-01T00:00:00Z"},"w":"plain"}')},
     None,
     readme="the first _crdt_metadata is a number, so the entry has no "
            "metadata at all (blob key), even though a later duplicate has "
            "some")
case("descriptor-other-target-default", dict(_notes_hosts), out(_ok1),
     readme="a descriptor for another target does not change what "
            "`crdtfs merge BACKING` (unified-memory.json) reads")
case("descriptor-invalid-override-hides-default",
     {"unified-memory.json.merge.json":
      b'{"target":"unified-memory.json","sources":["mem-*.json"],'
      b'"order":[{"path":"ts","type":"timestap"}]}',
      "memory-old.json": b"[1]"},
     False, status=1, stderr=["...unified-memory.json.merge.json..."],
     no_oracle=True,
     check=["exit 1",
            'unified-memory.json.merge.json: error: field "order[0].type"...',
            "crdtfs check: 0 targets, 0 entries scanned, 1 problem"],
     readme="an invalid override of the default hides the default in "
            "check too, as in merge and the mount: memory-old.json, which "
            "only the built-in default reads, is not checked")
case("descriptor-sources-unread", {}, out(_ok1), generate=True,
     check=["exit 1",
            "mem-b.json: warning: host file is not read: it is a symlink...",
            "crdtfs check: 1 target, 1 entry scanned, 1 problem"],
     readme="a symlink that a descriptor's sources match is named as not "
            "read; one named memory-*.json is not, when an override of "
            "the default reads other files")
case("descriptor-bare-name",
     {".merge.json": b'{"target":"x.json","sources":["memory-*.json"]}',
      "memory-a.json": arr(_ok1)},
     out(_ok1),
     check=["exit 1",
            ".merge.json: error: descriptor is not read: it names no target "
            "(a descriptor is TARGET.merge.json)"],
     readme="the bare .merge.json is no descriptor: nothing reads it, and "
            "check says so")
case("descriptor-jsonl-empty",
     {"e.jsonl.merge.json": b'{"target":"e.jsonl","sources":["none-*.json"],'
      b'"format":"jsonl"}', "memory-a.json": arr(_ok1)},
     b"", args=["--target", "e.jsonl"],
     readme="an empty JSON Lines merge is an empty file")
_tx = [E("t0", "0000-01-01T00:00:00Z"),
       E("t9", "9999-12-31T23:59:59.999999999-23:59"),
       E("tmax", "9999-12-31T23:59:59.999999999Z"),
       E("tb1", "10000-01-01T00:00:00Z"),
       E("tb2", "2025-1-01T00:00:00Z"),
       E("tb3", "2025-01-01T00:00:00,5Z"),
       E("tb4", " 2025-01-01T00:00:00Z"),
       E("tb5", "2025-01-01T00:00:00+24:00"),
       E("tb6", "2025-01-01T00:00:00+01:60"),
       E("tb7", "2025-01-01T00:00:61Z"),
       E("tb8", "2025-01-01T00:00:00+0100"),
       E("tb9", "2025-01-01")]
case("timestamp-extremes", {"memory-a.json": jsonl(*_tx)},
     out(*_tx[3:], _tx[0], _tx[2], _tx[1]),
     readme="years 0000 and 9999, offsets up to -23:59 (9999-12-31 at "
            "-23:59 is in year 10000 UTC and still valid); malformed "
            "spellings are invalid and sort first")

# ---- usage ---------------------------------------------------------------------
case("usage-no-backing", {}, b"", args=["{nobacking}"], status=2,
     no_oracle=True, stderr=["..."])
case("usage-unknown-option", {}, b"", args=["--frobnicate"], status=2,
     no_oracle=True, stderr=["..."])
case("usage-missing-dir", {}, b"", args=["{nobacking}", "/nonexistent/x"],
     status=1, no_oracle=True, stderr=["/nonexistent/x"])
case("usage-target-is-a-path", {"memory-a.json": arr(_ok1),
                                "sub/x.json.merge.json":
                                b'{"target":"x.json","sources":["*.json"]}'},
     b"", args=["--target", "sub/x.json"], status=2, no_oracle=True)


# ---- problems as the binary reports them (checked: file:line:column and the
# gist of the message) ---------------------------------------------------------
STDERR = {
    "bad-escapes": [
        "memory-a.json:2:8: error: invalid escape '\\x' in string",
        "memory-a.json:3:8: error: invalid \\u escape...",
        "memory-a.json:4:8: error: lone surrogate \\ud800",
        "memory-a.json:5:8: error: lone surrogate \\udc00",
        "memory-a.json:6:8: error: lone surrogate \\ud800",
        "memory-a.json:7:20: error: lone surrogate \\ud800"],
    "bad-timestamp-rank": [
        "memory-a.json:1:1: warning: _crdt_metadata.timestamp is missing",
        "memory-a.json:2:56: warning: _crdt_metadata.timestamp \"yesterday\" "
        "is not an RFC 3339 timestamp",
        "memory-a.json:4:48: warning: _crdt_metadata.timestamp 1740823200 "
        "is not an RFC 3339",
        "memory-b.json:2:57: warning: _crdt_metadata.timestamp "
        "\"2025-03-01T10:00:00\" is not an RFC 3339",
        "memory-b.json:3:46: warning: _crdt_metadata.timestamp ...not an "
        "RFC 3339"],
    "control-chars": [
        "memory-a.json:2:11: error: control character 0x09 in string",
        "memory-a.json:3:12: error: control character 0x1b in string",
        "memory-a.json:4:1: warning: _crdt_metadata.version is missing"],
    "descriptor-custom": [
        "notes-a.jsonl:3:1: warning: ...keyed by its content as "
        "~blob:535b47930128771675c235aa20be597cc8c050dc"],
    "descriptor-file-option": [
        "notes-a.jsonl:3:1: warning: ...~blob:535b47930128771675c235aa20be"
        "597cc8c050dc"],
    "descriptor-integer-string-order": [
        "r-a.json:3:22: warning: meta.n \"3\" is not an integer",
        "r-b.json:3:1: warning: meta.n is missing",
        "r-b.json:3:1: warning: who is missing"],
    "grammar-numbers": [
        "memory-a.json:2:8: error: invalid number: leading zero",
        "memory-a.json:3:9: error: invalid number: expected a digit after '.'",
        "memory-a.json:4:7: error: invalid number: expected a digit before",
        "memory-a.json:5:7: error: invalid number: a leading '+'",
        "memory-a.json:6:7: error: ...expected a value but found 'N'",
        "memory-a.json:7:7: error: ...expected a value but found 'I'",
        "memory-a.json:8:8: error: ...expected ',' or '}' but found 'x'",
        "memory-a.json:9:9: error: invalid number: ...exponent",
        "memory-a.json:10:8: error: invalid number: ...after '-'",
        "memory-a.json:11:10: error: invalid literal",
        "memory-a.json:12:11: error: ...expected ',' or '}' but found 'l'"],
    "invalid-json-middle": [
        "memory-a.json:2:11: error: invalid literal: expected 'true'",
        "memory-b.json:2:10: error: ...trailing comma"],
    "invalid-utf8": [
        "memory-a.json:2:12: error: invalid UTF-8 byte 0xff",
        "memory-a.json:3:17: error: invalid UTF-8 byte 0xc0",
        "memory-a.json:4:18: error: invalid UTF-8...surrogate",
        "memory-a.json:5:12: error: invalid UTF-8...truncated"],
    "jsonl-line-rules": [
        "memory-a.json:2:9: error: JSON Lines: each line must hold one "
        "complete object",
        "memory-a.json:3:13: error: ...unterminated string",
        "memory-a.json:5:1: error: JSON Lines: each line must hold one",
        "memory-a.json:6:1: error: JSON Lines: each line must hold one",
        "memory-a.json:7:1: error: JSON Lines: each line must hold one",
        "memory-a.json:8:9: error: JSON Lines: each line must hold one "
        "complete object (this one continues on the next line)",
        "memory-a.json:9:1: error: JSON Lines: each line must hold one"],
    "many-problems": [
        "memory-a.json:1:2: error: array element is not an object "
        "(found a number)",
        "memory-a.json:1:40: error: array element is not an object",
        "memory-a.json: error: ... and 10 more problems in this file"],
    "missing-metadata": [
        "memory-a.json:2:3: warning: entry has no usable "
        "_crdt_metadata.unique_id: keyed by its content as "
        "~blob:289b532cf43e27b597f0c50447a585749ce834b9",
        "memory-a.json:2:3: warning: _crdt_metadata.timestamp is missing",
        "memory-b.json:1:1: warning: ...~blob:289b532cf43e27b597f0c50447a58574"
        "9ce834b9",
        "memory-c.json:1:2: warning: entry has no usable"],
    "missing-unique-id": [
        "memory-a.json:1:1: warning: entry has no usable "
        "_crdt_metadata.unique_id",
        "memory-b.json:2:3: warning: entry has no usable"],
    "nesting-100000": [
        "memory-a.json:2:1031: error: nesting deeper than 1024 levels",
        "memory-b.json:2:1032: error: nesting deeper than 1024 levels",
        "memory-c.json:2:1: error: array element is not an object",
        "memory-d.json:2:100008: error: unexpected end of file"],
    "nesting-limit": [
        "memory-a.json:2:1041: error: nesting deeper than 1024 levels",
        "memory-b.json:2:1042: error: nesting deeper than 1024 levels"],
    "non-object-elements": [
        "memory-a.json:1:2: error: array element is not an object "
        "(found a number)",
        "memory-a.json:1:5: error: array element is not an object "
        "(found a string)",
        "memory-a.json:1:10: error: array element is not an object "
        "(found null)",
        "memory-a.json:1:16: error: array element is not an object "
        "(found a boolean)",
        "memory-a.json:1:22: error: array element is not an object "
        "(found an array)",
        "memory-a.json:1:26: error: array element is not an object",
        "memory-a.json:1:185: error: array element is not an object"],
    "non-string-unique-id": [
        "memory-a.json:1:118: warning: entry has no usable "
        "_crdt_metadata.unique_id",
        "memory-a.json: warning: ... and 10 more"],
    "not-json": [
        "memory-a.json:1:1: error: expected a JSON array ('[') or JSON Lines "
        "('{') but found 'h'",
        "memory-b.json:1:1: error: byte order mark",
        "memory-c.json:1:1: error: expected a JSON array"],
    "nul-byte": [
        "memory-a.json:2:12: error: control character 0x00 in string",
        "memory-b.json:1:149: error: ...byte 0x00"],
    "strict-bad-timestamp": [
        "memory-a.json:1:91: warning: _crdt_metadata.timestamp "
        "\"2025-02-30T00:00:00Z\" is not an RFC 3339 timestamp",
        "--strict"],
    "strict-error": [
        "memory-a.json:13:1: error: ...unexpected 'x' after the end of the "
        "JSON array", "--strict"],
    "strict-warning": [
        "memory-a.json:12:3: warning: entry has no usable", "--strict"],
    "string-50mb": [
        "memory-a.json:2:1: error: entry larger than 16 MiB",
        "memory-b.json:2:1: error: entry larger than 16 MiB"],
    "timestamp-spellings": [
        "memory-a.json:2:61: warning: _crdt_metadata.timestamp "
        "\"2023-02-29T00:00:00Z\" is not an RFC 3339 timestamp"],
    "top-level-object": [
        "memory-a.json:1:2: error: JSON Lines: ...continues on the next line",
        "memory-a.json:2:3: error: JSON Lines:",
        "memory-a.json:3:3: error: JSON Lines:",
        "memory-a.json:4:1: error: JSON Lines:"],
    "trailing-comma": [
        "memory-a.json:1:296: error: ...trailing comma before ']'",
        "memory-b.json:1:2: error: ...expected a value but found ','"],
    "trailing-garbage": [
        "memory-a.json:13:1: error: ...unexpected 'x' after the end of the "
        "JSON array",
        "memory-b.json:1:149: error: ...unexpected ']' after the end",
        "memory-c.json:1:149: error: ...unexpected '[' after the end"],
    "truncated-file": [
        "memory-a.json:1:337: error: ...unterminated string",
        "memory-b.json:11:4: error: unexpected end of file: the JSON array is "
        "not closed"],
    "version-null": [
        "memory-b.json:1:87: warning: _crdt_metadata.version of another kind "
        "(object, array, boolean or null) is not an integer"],
    "version-rank": [
        "memory-a.json:1:1: warning: _crdt_metadata.version is missing",
        "memory-a.json:2:89: warning: _crdt_metadata.version \"9\" is not an "
        "integer",
        "memory-a.json:3:86: warning: _crdt_metadata.version 1.0 is not an "
        "integer",
        "memory-b.json:1:86: warning: _crdt_metadata.version 1e3 is not an "
        "integer",
        "memory-b.json:2:87: warning: _crdt_metadata.version "
        "9223372036854775808 is not an integer"],
    "descriptor-absolute-path": [
        "n.json.merge.json: error: field \"sources[0]\": absolute paths"],
    "descriptor-bad-format": [
        "n.json.merge.json: error: field \"format\": must be \"json\" or "
        "\"jsonl\""],
    "descriptor-bad-glob": [
        "n.json.merge.json: error: field \"sources[0]\": unterminated \"[\""],
    "descriptor-bad-order-type": [
        "n.json.merge.json: error: field \"order[0].type\": must be "
        "\"timestamp\", \"integer\" or \"string\""],
    "descriptor-dotdot": [
        "n.json.merge.json: error: field \"sources[1]\": \"..\" is not "
        "allowed"],
    "descriptor-empty-key": [
        "n.json.merge.json: error: field \"key\": must be a non-empty array"],
    "descriptor-empty-path-segment": [
        "n.json.merge.json: error: field \"key[0]\": empty path segment"],
    "descriptor-missing-sources": [
        "n.json.merge.json: error: field \"sources\": must be a non-empty "
        "array"],
    "descriptor-symlink": [
        "n.json.merge.json: error: descriptor must be a regular file, not a "
        "symlink"],
    "descriptor-syntax-error": [
        "n.json.merge.json:3:1: error: invalid JSON"],
    "descriptor-target-matches-source": [
        "n.json.merge.json: error: field \"target\": matched by its own "
        "source pattern \"*.json\""],
    "descriptor-target-with-slash": [
        "n.json.merge.json: error: field \"target\": must be a plain file "
        "name"],
    "descriptor-unknown-field": [
        "n.json.merge.json: error: unknown field \"sorce\""],
    "descriptor-unknown-target": ["nothing.json.merge.json does not exist"],
    "usage-no-backing": ["crdtfs merge: missing BACKING"],
    "usage-unknown-option": [
        "crdtfs merge: ...--frobnicate...unknown option"],
    "usage-missing-dir": ["cannot open backing directory /nonexistent/x"],
    "usage-target-is-a-path": [
        "crdtfs merge: --target NAME: a merged file's name, not a path"],
}
CHECK = {
    "descriptor-custom": ["exit 1", "notes-a.jsonl:3:1: warning: ...~blob:"],
    "descriptor-default-target": ["exit 0"],
    "descriptor-syntax-error": ["exit 1",
                                "n.json.merge.json:3:1: error: invalid JSON"],
    "descriptor-unknown-field": ["exit 1",
                                 "n.json.merge.json: error: unknown field"],
    "descriptor-integer-string-order": [
        "exit 1", "r-a.json:3:22: warning: meta.n \"3\" is not an integer"],
    "descriptor-source-symlink-dir": ["exit 0"],
    "invalid-utf8": ["exit 1", "memory-a.json:2:12: error: invalid UTF-8"],
    "format-pretty": ["exit 0"],
}
for _n, _l in STDERR.items():
    CASES[_n]["stderr"] = _l
for _n, _l in CHECK.items():
    CASES[_n]["check"] = _l

READMES = {
    "blank-file": "a file holding only blanks (space, tab, CR, LF) is empty",
    "crlf-jsonl": "JSON Lines with CRLF line ends: the CR is a blank",
    "empty-array": "[] with and without blanks inside",
    "empty-file": "a 0-byte host file is valid and empty",
    "format-compact": "the entries of format-pretty as a compact array: "
                      "same output",
    "format-jsonl": "the entries of format-pretty as JSON Lines: same output",
    "format-jsonl-no-final-newline": "JSON Lines without a final LF",
    "format-mixed": "one entry per file, one file per format: same output",
    "format-pretty": "three entries, pretty-printed (indent 2); the output "
                     "is canonical (no blanks outside strings) and sorted",
    "format-spaced": "tabs, CRLF and single-space indents between tokens",
    "jsonl-blank-lines": "blank and whitespace-only lines in JSON Lines",
    "number-spellings": "1.0, 1e5, 1E+05, -0, 0.0, -0.0e-0, a 30-digit "
                        "integer and 1.5E-300 are copied as written",
    "same-entry-different-whitespace": "one entry written three ways is "
                                       "one entry",
    "strict-bad-timestamp": "--strict fails on an impossible date "
                            "(2025-02-30)",
    "strict-clean": "--strict with clean input writes the merge, exit 0",
    "strict-error": "--strict fails on an error (trailing garbage)",
    "trailing-comma": "a trailing comma stops the array (entries before it "
                      "are kept); a leading comma loses everything",
    "usage-missing-dir": "a BACKING that does not exist",
    "usage-target-is-a-path": "--target names a merged file in BACKING, "
                              "never a descriptor elsewhere: usage error, "
                              "exit 2",
    "usage-no-backing": "no BACKING: usage error, exit 2",
    "usage-unknown-option": "an unknown option: usage error, exit 2",
}
for _n, _r in READMES.items():
    assert CASES[_n]["readme"] is None, _n
    CASES[_n]["readme"] = _r


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)


def main():
    only = set(sys.argv[1:])
    for name, c in CASES.items():
        if only and name not in only:
            continue
        d = os.path.join(ROOT, name)
        if os.path.isdir(os.path.join(d, "hosts")):
            shutil.rmtree(os.path.join(d, "hosts"))
        for fn in ("args", "expected.json", "expected-status",
                   "no-oracle", "README"):
            if os.path.exists(os.path.join(d, fn)):
                os.unlink(os.path.join(d, fn))
        os.makedirs(d, exist_ok=True)
        for hn, data in c["hosts"].items():
            write(os.path.join(d, "hosts", hn), data)
        if c["args"]:
            write(os.path.join(d, "args"), "\n".join(c["args"]) + "\n")
        if c["status"]:
            write(os.path.join(d, "expected-status"), "%d\n" % c["status"])
        # A generate.py is written by hand in the case directory and kept.
        if c["generate"] and not os.path.exists(
                os.path.join(d, "generate.py")):
            sys.exit("%s: generate.py is missing" % d)
        if c["no_oracle"]:
            write(os.path.join(d, "no-oracle"), "")
        if c["readme"]:
            write(os.path.join(d, "README"), c["readme"] + "\n")
        exp = c["expected"]
        if exp is False:
            pass
        elif exp is None:
            # computed by the oracle; reviewed by hand
            exp = oracle_expected(d, c)
        elif not c["no_oracle"] and not c["status"]:
            o = oracle_expected(d, c)
            if o != exp:
                MISMATCHES.append(name)
                print("MISMATCH %s\n hand:   %r\n oracle: %r"
                      % (name, exp, o))
        if exp is not False:
            write(os.path.join(d, "expected.json"), exp)
        for fn, key in (("expected-stderr", "stderr"),
                        ("expected-check", "check")):
            if os.path.exists(os.path.join(d, fn)):
                os.unlink(os.path.join(d, fn))
            if c[key]:
                write(os.path.join(d, fn), "\n".join(c[key]) + "\n")
        print(name)


def oracle_expected(d, c):
    import tempfile
    import subprocess
    with tempfile.TemporaryDirectory() as t:
        b = os.path.join(t, "backing")
        if os.path.isdir(os.path.join(d, "hosts")):
            shutil.copytree(os.path.join(d, "hosts"), b, symlinks=True)
        else:
            os.makedirs(b)
        if c["generate"]:
            subprocess.run([sys.executable, os.path.join(d, "generate.py"),
                            b], check=True)
        args = [a.replace("{backing}", b) for a in c["args"]]
        target = descriptor = None
        if "--target" in args:
            target = args[args.index("--target") + 1]
        if "--descriptor" in args:
            descriptor = args[args.index("--descriptor") + 1]
        desc = oracle.find_descriptor(b, target, descriptor)
        return oracle.analyse_dir(b, desc).out


if __name__ == "__main__":
    main()
    sys.exit(1 if MISMATCHES else 0)
