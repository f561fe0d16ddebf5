# SPDX-License-Identifier: MIT
"""
test_git.py - `crdtfs prepare`, `crdtfs sync`, `crdtfs merge-driver` and the
mount's `-o sync=SECONDS`, against real git repositories on this machine.

Every expectation is computed here from the spec (gitutil.expected_view),
never by asking crdtfs.  The ten-host run is seeded (CRDTFS_TEST_SEED
overrides the seed) and bounded; it prints its seed and figures.
"""

import calendar
import concurrent.futures
import json
import os
import pathlib
import random
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gitutil as G  # noqa: E402

pytestmark = pytest.mark.skipif(
    not G.CRDTFS or not os.access(G.CRDTFS, os.X_OK) or not G.GIT,
    reason="needs the crdtfs binary ($CRDTFS) and git")

T0 = 1767225600 * 10**9  # 2026-01-01T00:00:00Z, a fixed injected clock


def now_at(seconds):
    return G.rfc3339(T0 + int(seconds * 10**9))


def entity(name, obs, etype="thing"):
    return {name: {"entityType": etype, "observations": list(obs)}}


# ---------------------------------------------------------------- prepare

def test_prepare_idempotent_and_canonical(tmp_path):
    src, back = tmp_path / "memory.jsonl", tmp_path / "b"
    back.mkdir()
    ents = {}
    for i in range(20):
        ents.update(entity("e%02d" % i, ["fact %d" % i]))
    G.write_jsonl(src, ents, [("e00", "e01", "knows"), ("e01", "e02", "x")])
    G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(0)))
    hf = back / "memory-h1.json"
    data = hf.read_bytes()
    # One compact entry per line, the same bytes `crdtfs merge` gives.
    assert G.ok(G.crdtfs("merge", back)).stdout.encode() == data
    rows = G.host_lines(hf)
    assert len(rows) == 22
    assert all(o["_crdt_metadata"]["host"] == "h1" and
               o["_crdt_metadata"]["version"] == 1 for _, o in rows)
    uids = {o["_crdt_metadata"]["unique_id"] for _, o in rows}
    assert "entity:e05" in uids
    assert "relation:3:e00,3:e01,5:knows" in uids

    # Unchanged source, later clock, reordered and respaced source: no
    # byte changes and no rewrite at all.
    st = os.stat(hf)
    time.sleep(0.05)
    lines = src.read_text().splitlines()
    src.write_text("\n\n".join(reversed(lines)).replace(":", ": ") + "\n")
    for t in (10, 3600, -3600):
        p = G.ok(G.crdtfs("prepare", "--host", "h1", src, back,
                          now=now_at(t)))
        assert "not rewritten" in p.stdout
    assert hf.read_bytes() == data
    st2 = os.stat(hf)
    assert (st2.st_mtime_ns, st2.st_ino) == (st.st_mtime_ns, st.st_ino)


def test_prepare_keeps_a_json_lines_host_file_lines(tmp_path):
    """A host file kept as JSON Lines (a script appends lines to it) was
    rewritten as an array, after which every appended line was an error
    (`unexpected '{' after the end of the JSON array`)."""
    src, back = tmp_path / "memory.jsonl", tmp_path / "b"
    back.mkdir()
    hf = back / "memory-h1.json"
    G.write_jsonl(src, entity("a", ["x"]))
    G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(0)))
    assert hf.read_bytes().startswith(b"[\n")  # a new one is an array
    rows = G.host_lines(hf)
    hf.write_bytes(b"".join(raw + b"\n" for raw, _ in rows))
    G.write_jsonl(src, {**entity("a", ["x"]), **entity("b", ["y"])})
    G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(60)))
    data = hf.read_bytes()
    assert data.startswith(b"{") and data.endswith(b"}\n")
    assert [json.loads(l)["name"] for l in data.splitlines()] == ["a", "b"]
    with open(hf, "ab") as f:  # what such a script does
        f.write(b'{"id":"z","_crdt_metadata":{"host":"h1","timestamp":'
                b'"2026-01-02T00:00:00Z","version":1,"unique_id":"z"}}\n')
    G.ok(G.crdtfs("check", back))
    # Its last entry gone: no lines are an empty file, and stay one.
    G.write_jsonl(src, {})
    G.ok(G.crdtfs("prepare", "--host", "h1", "--allow-empty", src, back,
                  now=now_at(120)))
    assert hf.read_bytes() == b""
    p = G.ok(G.crdtfs("prepare", "--host", "h1", "--allow-empty", src, back,
                      now=now_at(180)))
    assert "not rewritten" in p.stdout


def test_prepare_changed_entry_restamped(tmp_path):
    src, back = tmp_path / "memory.jsonl", tmp_path / "b"
    back.mkdir()
    ents = {}
    for i in range(5):
        ents.update(entity("n%d" % i, ["o%d" % i]))
    G.write_jsonl(src, ents)
    G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(0)))
    before = {o["name"]: (raw, o) for raw, o in
              G.host_lines(back / "memory-h1.json")}
    ents["n2"]["observations"].append("new fact")
    G.write_jsonl(src, ents)
    p = G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(60)))
    assert "1 changed" in p.stdout
    after = {o["name"]: (raw, o) for raw, o in
             G.host_lines(back / "memory-h1.json")}
    for n in ents:
        if n == "n2":
            continue
        assert after[n][0] == before[n][0]  # untouched bytes
    old_md = before["n2"][1]["_crdt_metadata"]
    new_md = after["n2"][1]["_crdt_metadata"]
    assert G.ts_ns(new_md["timestamp"]) > G.ts_ns(old_md["timestamp"])
    assert new_md["version"] == old_md["version"] + 1
    assert new_md["unique_id"] == old_md["unique_id"]
    assert after["n2"][1]["observations"] == ["o2", "new fact"]
    # The changed entry moved to the end (sorted by timestamp).
    assert G.host_lines(back / "memory-h1.json")[-1][1]["name"] == "n2"


def test_prepare_restamps_an_edit_of_an_entry_that_carries_a_stamp(tmp_path):
    """A tool's memory seeded from a merged file carries `_crdt_metadata`,
    and an edit there keeps the stamp it had.  prepare copied such entries
    as they were, so the edit tied with the other host's copy on (time,
    version, host) and could lose on the bytes; now an entry whose content
    differs from this host file's copy, under a stamp no newer than that
    copy's, is re-stamped like any edit.  A newer stamp (another host's
    later version, seeded again) is still taken as it is."""
    back = tmp_path / "b"
    back.mkdir()
    md = {"host": "desktop", "timestamp": "2026-01-01T00:00:00Z",
          "version": 3, "unique_id": "X"}
    orig = {"id": "X", "c": "orig", "w": 0.1, "_crdt_metadata": md,
            "z": [1.50, "a,b"]}
    (back / "memory-desktop.json").write_text(json.dumps([orig]) + "\n")
    src = tmp_path / "seeded.json"
    src.write_text(json.dumps([orig]) + "\n")
    G.ok(G.crdtfs("prepare", "--host", "laptop", src, back, now=now_at(10)))

    edited = dict(orig, c="EDITED on laptop", w=0.2)
    src.write_text(json.dumps([edited]) + "\n")
    p = G.ok(G.crdtfs("prepare", "--host", "laptop", src, back,
                      now=now_at(20)))
    assert "1 changed" in p.stdout
    (raw, o), = G.host_lines(back / "memory-laptop.json")
    # Written as in the source, the stamp moved to the end.
    assert raw.startswith(b'{"id":"X","c":"EDITED on laptop","w":0.2,'
                          b'"z":[1.5,"a,b"],"_crdt_metadata":{')
    assert o["c"] == "EDITED on laptop"
    assert o["_crdt_metadata"]["host"] == "laptop"
    assert o["_crdt_metadata"]["version"] == 4
    assert o["_crdt_metadata"]["unique_id"] == "X"
    assert G.ts_ns(o["_crdt_metadata"]["timestamp"]) == T0 + 20 * 10**9
    view = json.loads(G.ok(G.crdtfs("merge", back)).stdout)
    assert [e["c"] for e in view] == ["EDITED on laptop"]
    # Run again on the same source: nothing to do.
    p = G.ok(G.crdtfs("prepare", "--host", "laptop", src, back,
                      now=now_at(30)))
    assert "not rewritten" in p.stdout

    # Another host's later version, seeded again: taken as it is.
    later = {"id": "X", "c": "from desktop, later",
             "_crdt_metadata": dict(md, timestamp="2026-06-01T00:00:00Z",
                                    version=9)}
    src.write_text(json.dumps([later]) + "\n")
    G.ok(G.crdtfs("prepare", "--host", "laptop", src, back, now=now_at(40)))
    (raw, o), = G.host_lines(back / "memory-laptop.json")
    assert o == later


def test_prepare_restamps_an_edit_of_a_seeded_memory_before_its_first_run(
        tmp_path):
    """A memory seeded from the merged file and edited before this host's
    first prepare: the edited entry is new to this host file, so it was
    copied with the stamp it had and tied with the stamp's own copy on
    (time, version, host), and could lose on the bytes.  Now a stamped
    entry this host file lacks is an edit when copies under its stamp
    exist in the other host files and none has its content."""
    back = tmp_path / "b"
    back.mkdir()
    d_src = tmp_path / "d.jsonl"
    # "one" sorts after "EDITED": the edit would lose the tie on the bytes
    G.write_jsonl(d_src, {**entity("a", ["one"]), **entity("b", ["x"]),
                          **entity("c", ["y"])})
    G.ok(G.crdtfs("prepare", "--host", "d", d_src, back, now=now_at(0)))
    merged = G.ok(G.crdtfs("merge", back)).stdout
    # "c"'s stamp has no copy left in the repository
    (back / "memory-d.json").write_text(json.dumps(
        [x for x in json.loads(merged) if x["name"] != "c"]))
    seeded = json.loads(merged)
    for e in seeded:
        if e["name"] == "a":
            e["observations"] = ["EDITED"]
    # "b" rewritten by the tool (keys in another order), not edited
    seeded = [dict(reversed(list(e.items()))) if e["name"] == "b" else e
              for e in seeded]
    src = tmp_path / "laptop.jsonl"
    src.write_text("".join(json.dumps(e) + "\n" for e in seeded))
    p = G.ok(G.crdtfs("prepare", "--host", "laptop", src, back,
                      now=now_at(10)))
    assert "3 added" in p.stdout
    rows = {o["name"]: o for _, o in G.host_lines(back / "memory-laptop.json")}
    md = rows["a"]["_crdt_metadata"]
    assert (md["host"], md["version"]) == ("laptop", 2)
    assert G.ts_ns(md["timestamp"]) == T0 + 10 * 10**9
    assert rows["b"]["_crdt_metadata"]["host"] == "d"
    assert rows["c"]["_crdt_metadata"]["host"] == "d"
    view = json.loads(G.ok(G.crdtfs("merge", back)).stdout)
    assert {e["name"]: e["observations"] for e in view} == \
        {"a": ["EDITED"], "b": ["x"], "c": ["y"]}
    p = G.ok(G.crdtfs("prepare", "--host", "laptop", src, back,
                      now=now_at(20)))
    assert "not rewritten" in p.stdout


def test_prepare_refuses_an_entry_the_merge_would_skip(tmp_path):
    """An entry past the merge's 16 MiB limit was written to the host
    file with exit 0, and then reached no view; now it is an error and
    the host file keeps the entry's old copy."""
    back = tmp_path / "b"
    back.mkdir()
    src = tmp_path / "s.jsonl"
    line = '{"id":"big","v":"%s"}\n{"id":"small"}\n'
    src.write_text(line % "x")
    G.ok(G.crdtfs("prepare", "--host", "h", src, back, now=now_at(0)))
    before = (back / "memory-h.json").read_bytes()
    src.write_text(line % ("y" * (16 << 20)))
    p = G.crdtfs("prepare", "--host", "h", src, back, now=now_at(10))
    assert p.returncode == 1
    assert ("%s:1:1: error: invalid entry skipped: larger than 16 MiB as "
            "written to the host file, where the merge would skip it\n"
            % src) in p.stderr
    assert (back / "memory-h.json").read_bytes() == before
    G.ok(G.crdtfs("check", back))


def test_prepare_stamps_metadata_without_a_valid_timestamp(tmp_path):
    """`_crdt_metadata` holding only a unique_id written by hand (or a
    timestamp that does not parse) was copied as it was, and the merge
    ranked the entry below every stamp.  It is stamped now, its
    unique_id kept, and it settles."""
    back = tmp_path / "b"
    back.mkdir()
    src = tmp_path / "s.json"
    src.write_text(json.dumps([
        {"id": "n", "_crdt_metadata": {"unique_id": "mine"}},
        {"id": "q", "_crdt_metadata": {"unique_id": "t2", "version": 4,
                                       "timestamp": "garbage"}}]))
    G.ok(G.crdtfs("prepare", "--host", "h", src, back, now=now_at(0)))
    rows = [o["_crdt_metadata"] for _, o in
            G.host_lines(back / "memory-h.json")]
    assert sorted((m["unique_id"], m["host"], m["version"],
                   G.ts_ns(m["timestamp"])) for m in rows) == \
        [("mine", "h", 1, T0), ("t2", "h", 5, T0)]
    p = G.ok(G.crdtfs("prepare", "--host", "h", src, back, now=now_at(10)))
    assert "not rewritten" in p.stdout
    p = G.ok(G.crdtfs("check", back))
    assert "0 problems" in p.stderr
    # A member that is no object is replaced; the warning gives the
    # entry's line and byte column.
    src.write_text('[\n  {"id":"q"},\n    {"id":"z","_crdt_metadata":5}\n]\n')
    p = G.ok(G.crdtfs("prepare", "--host", "h", src, back, now=now_at(20)))
    assert p.stderr == ('crdtfs prepare: %s:3:5: warning: "_crdt_metadata" '
                        'is not an object; replaced\n' % src)


def test_prepare_takes_an_empty_source_for_a_tool_that_died(tmp_path):
    """A tool that dies after truncating its memory file leaves it empty,
    and prepare emptied the host file with it and exited 0.  An empty
    source (no byte but blanks) is now an error that removes nothing,
    unless --allow-empty; `[]` is still an empty memory."""
    src, back = tmp_path / "memory.jsonl", tmp_path / "b"
    back.mkdir()
    G.write_jsonl(src, entity("a", ["1"]))
    G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(0)))
    hf = back / "memory-h1.json"
    before = hf.read_bytes()
    for empty in (b"", b"\n  \n"):
        src.write_bytes(empty)
        p = G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(10))
        assert p.returncode == 1
        assert "%s: error: empty: taken for a tool that died rewriting " \
               "it, not for an empty memory (that is `[]`; --allow-empty " \
               "takes it)\n" % src in p.stderr
        assert "0 removed; not rewritten" in p.stdout
        assert hf.read_bytes() == before
    G.ok(G.crdtfs("prepare", "--host", "h1", "--allow-empty", src, back,
                  now=now_at(20)))
    assert hf.read_bytes() == b"[]\n"
    G.write_jsonl(src, entity("a", ["1"]))
    G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(30)))
    src.write_text("[]\n")
    p = G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(40)))
    assert "1 removed; written" in p.stdout
    assert hf.read_bytes() == b"[]\n"


@pytest.mark.parametrize("entry,kept", [
    (b'{"n":0.2,"_crdt_metadata":1,"_crdt_metadata":2}', b'{"n":0.2,'),
    (b'{"_crdt_metadata":1}', b'{'),
    (b'{"_crdt_metadata":[1,{"}":","}],"s":"x,}\\"",'
     b'"o":{"_crdt_metadata":1.50}}',
     b'{"s":"x,}\\"","o":{"_crdt_metadata":1.50},'),
    # The key written with escapes is the same key (to jansson and the
    # merge); a near miss is another key and stays.
    (b'{"\\u005f\\u0063rdt_metadata":1,"n":1.50,"_crdt\\u005Fmetadata":[2],'
     b'"\\u005fcrdt_metadatA":3}',
     b'{"n":1.50,"\\u005fcrdt_metadatA":3,'),
])
def test_prepare_writes_one_stamp_in_place_of_the_old(tmp_path, entry, kept):
    """The old `_crdt_metadata` member of an entry that gets a stamp is cut
    out of the bytes as written (first, only, written twice, beside nested
    brackets and strings): a key written twice got the new stamp beside the
    second copy, and the merge read the first."""
    back = tmp_path / "b"
    back.mkdir()
    src = tmp_path / "s.jsonl"
    src.write_bytes(entry + b"\n")
    G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(0)))
    (raw, o), = G.host_lines(back / "memory-h1.json")
    assert raw.startswith(kept + b'"_crdt_metadata":{"host":"h1",'), raw
    assert raw.count(b'"_crdt_metadata"') == 1 + kept.count(
        b'"_crdt_metadata"')
    p = G.ok(G.crdtfs("check", back))
    assert "0 problems" in p.stdout + p.stderr


def test_prepare_settles_an_edit_whose_stamp_key_has_escapes(tmp_path):
    """An entry whose `_crdt_metadata` key is written with escapes was
    rebuilt by jansson when re-stamped (0.2 became 0.20000000000000001),
    and its old stamp's version counted as content, so it was re-stamped
    on every run: a commit and push per cycle, forever."""
    back = tmp_path / "b"
    back.mkdir()
    src = tmp_path / "s.jsonl"
    line = ('{"id":"X","w":%s,"\\u005fcrdt_metadata":{"host":"d",'
            '"timestamp":"2026-01-01T00:00:00Z","version":3,'
            '"unique_id":"X"}}\n')
    src.write_text(line % "0.2")
    G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(0)))
    src.write_text(line % "0.3")
    p = G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(10)))
    assert "1 changed" in p.stdout
    (raw, o), = G.host_lines(back / "memory-h1.json")
    assert raw.startswith(b'{"id":"X","w":0.3,"_crdt_metadata":{"host":"h1",')
    assert o["_crdt_metadata"]["version"] == 4
    for t in (20, 30):
        p = G.ok(G.crdtfs("prepare", "--host", "h1", src, back,
                          now=now_at(t)))
        assert "not rewritten" in p.stdout


def test_prepare_takes_the_last_of_stamped_copies_of_one_entry(tmp_path):
    """Two entries of a source given one unique_id (a tool appending an
    updated copy, stamped or not): both went to the host file and the
    merge's tie-break chose, so a second run could re-stamp the stale copy
    and lose the edit.  The last one is taken, the others reported."""
    back = tmp_path / "b"
    back.mkdir()
    md = {"host": "h0", "timestamp": "2026-01-01T00:00:00Z", "version": 1,
          "unique_id": "entity:a"}
    first = {"type": "entity", "name": "a", "entityType": "t",
             "observations": ["a"], "_crdt_metadata": md}
    src = tmp_path / "s.jsonl"
    src.write_text(json.dumps(first) + "\n")
    G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(0)))
    second = dict(first, observations=["a", "b"])
    src.write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    for t in (10, 20):
        p = G.ok(G.crdtfs("prepare", "--host", "h1", src, back,
                          now=now_at(t)))
        assert ("%s:1:1: warning: unique_id \"entity:a\" is given again "
                "further on; the last one is taken\n" % src) in p.stderr
        rows = G.host_lines(back / "memory-h1.json")
        assert [o["observations"] for _, o in rows] == [["a", "b"]]
        view = json.loads(G.ok(G.crdtfs("merge", back)).stdout)
        assert [e["observations"] for e in view] == [["a", "b"]]
    assert "not rewritten" in p.stdout

    # The update appended without a stamp, after the stamped copy, and
    # the other way round: the last is taken, and it settles.
    third = {k: v for k, v in first.items() if k != "_crdt_metadata"}
    third["observations"] = ["c"]
    for lines, want in (((first, third), ["c"]), ((third, first), ["a"])):
        src.write_text("".join(json.dumps(x) + "\n" for x in lines))
        for t in (30, 40, 50):
            p = G.ok(G.crdtfs("prepare", "--host", "h1", src, back,
                              now=now_at(t)))
            rows = G.host_lines(back / "memory-h1.json")
            assert [o["observations"] for _, o in rows] == [want]
        assert "not rewritten" in p.stdout


def test_prepare_refuses_a_stamp_past_year_9999(tmp_path):
    """The merge accepts 9999-12-31T23:59:59-23:59, which is in year 10000
    in UTC; a stamp later than that cannot be written in RFC 3339, and
    prepare wrote `10000-...Z`, which the merge ranks as invalid (so every
    later edit from that host lost).  Now it says so and writes nothing."""
    back = tmp_path / "b"
    back.mkdir()
    md = {"host": "a", "timestamp": "9999-12-31T23:59:59-23:59",
          "version": 1, "unique_id": "k"}
    (back / "memory-a.json").write_text(
        json.dumps([{"id": "a", "_crdt_metadata": md}]) + "\n")
    src = tmp_path / "s.jsonl"
    G.write_jsonl(src, entity("n", ["1"]))
    p = G.crdtfs("prepare", "--host", "z", src, back)
    assert p.returncode == 1
    assert "crdtfs prepare: memory-a.json: error: timestamp " \
           "10000-01-01T23:58:59.000000000Z (UTC) leaves no later stamp " \
           "that RFC 3339 can write (years end at 9999); fix that entry; " \
           "nothing written\n" in p.stderr
    assert not (back / "memory-z.json").exists()


def test_prepare_clock_set_back_still_increases(tmp_path):
    src, back = tmp_path / "memory.jsonl", tmp_path / "b"
    back.mkdir()
    ents = entity("a", ["1"])
    stamps = []
    # Wall clock: 0, then 10 minutes back, then 1 day back, then equal.
    for i, t in enumerate((0, -600, -86400, -86400)):
        ents["a"]["observations"].append("v%d" % i)
        G.write_jsonl(src, ents)
        G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(t)))
        (raw, o), = G.host_lines(back / "memory-h1.json")
        stamps.append((G.ts_ns(o["_crdt_metadata"]["timestamp"]),
                       o["_crdt_metadata"]["version"]))
    assert [v for _, v in stamps] == [1, 2, 3, 4]
    assert all(b[0] > a[0] for a, b in zip(stamps, stamps[1:])), stamps
    assert stamps[1][0] == stamps[0][0] + 1  # HLC: newest + 1 ns

    # Never earlier than any stamp in the backing directory either.
    other = back / "memory-h9.json"
    future = T0 + 7 * 86400 * 10**9
    other.write_text(json.dumps([{"x": 1, "_crdt_metadata": {
        "host": "h9", "timestamp": G.rfc3339(future), "version": 1,
        "unique_id": "zz"}}]))
    ents["a"]["observations"].append("after h9")
    G.write_jsonl(src, ents)
    p = G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(0)))
    assert "ahead of the clock" in p.stderr  # reported, still followed
    (raw, o), = G.host_lines(back / "memory-h1.json")
    assert G.ts_ns(o["_crdt_metadata"]["timestamp"]) == future + 1


def test_prepare_identities_shared_across_hosts(tmp_path):
    back = tmp_path / "b"
    back.mkdir()
    src = tmp_path / "s.json"
    # A pretty JSON array: MCP records, id records, id-less records, and
    # one that already carries metadata (copied as it is).
    arr = [
        {"type": "entity", "name": "Zoë ünïcode", "entityType": "p",
         "observations": []},
        {"id": 42, "text": "numeric id"},
        {"id": "abc", "text": "string id"},
        {"note": "no identity at all", "n": 1.50},
        {"kept": True, "_crdt_metadata": {"host": "elsewhere",
                                          "timestamp": "2020-01-01T00:00:00Z",
                                          "version": 7, "unique_id": "k1"}},
    ]
    text = json.dumps(arr, indent=2, ensure_ascii=False)
    src.write_text(text.replace('"n": 1.5', '"n": 1.50'))
    G.ok(G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(0)))
    G.ok(G.crdtfs("prepare", "--host", "h2", src, back, now=now_at(5)))
    r1 = {o["_crdt_metadata"]["unique_id"]: (raw, o)
          for raw, o in G.host_lines(back / "memory-h1.json")}
    r2 = {o["_crdt_metadata"]["unique_id"]: (raw, o)
          for raw, o in G.host_lines(back / "memory-h2.json")}
    assert set(r1) == set(r2)  # deterministic, host-independent ids
    assert {"id:42", "id:abc", "k1", "entity:Zoë ünïcode"} <= set(r1)
    content = [u for u in r1 if u.startswith("content:")]
    assert len(content) == 1 and len(content[0]) == len("content:") + 40
    # Number spelling survives; the carried metadata is untouched.
    assert b'"n":1.50' in r1[content[0]][0]
    assert r1["k1"][1]["_crdt_metadata"]["host"] == "elsewhere"
    # Same logical entry on two hosts -> one key; the later stamp wins.
    merged = json.loads(G.ok(G.crdtfs("merge", back)).stdout)
    assert len(merged) == 5
    assert {e["_crdt_metadata"]["host"] for e in merged} == \
        {"h2", "elsewhere"}


def test_prepare_bad_source_entries_reported(tmp_path):
    back = tmp_path / "b"
    back.mkdir()
    src = tmp_path / "m.jsonl"
    src.write_text('{"type":"entity","name":"a","entityType":"t",'
                   '"observations":[]}\n'
                   '{"type":"entity","name":"b",\n'
                   '[1,2]\n'
                   '{"type":"entity","name":"c","entityType":"t",'
                   '"observations":[]}\n')
    # exit 1, so that a cron job notices; the valid entries are taken
    p = G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(0))
    assert p.returncode == 1
    assert "m.jsonl:2:" in p.stderr and "m.jsonl:3:" in p.stderr
    names = [o["name"] for _, o in G.host_lines(back / "memory-h1.json")]
    assert sorted(names) == ["a", "c"]
    # Unusable host names are refused.
    for bad in ("", ".hidden", "a/b"):
        assert G.crdtfs("prepare", "--host", bad, src, back).returncode == 2


@pytest.mark.parametrize("kind", ["jsonl", "array", "jsonl-ends"])
def test_prepare_reports_bad_entries_where_check_does(tmp_path, kind):
    """prepare took its messages from jansson, which points at the end of
    what it read (the opening quote of a string with a bad byte, the
    closing quote after a lone surrogate): on the same bytes `crdtfs
    check` said another place, in other words.  Now both say the merge
    scanner's message at the same byte."""
    ok = b'{"type":"entity","name":"a","entityType":"t","observations":[]}'
    bad = [b'{"n":"\xff"}', b'{"n":"\x01"}', b'{"n":"\\ud800"}',
           b'{"n":tru}', b'{"n":"caf\xc3\xa9", x}', b'{"n":"\\u12"}']
    if kind == "jsonl":  # a pretty-printed object is not JSON Lines
        data = b"\n".join([ok] + bad + [b'{\n  "n": 1\n}']) + b"\n"
    elif kind == "jsonl-ends":  # blanks, CR, and no LF at the very end
        bad = [b'{"a":1   ', b'{"a":1\r', b'{"a":"x\r', b'{"a":nul}\0',
               b'{"a":"x\0y"}', b'{"a":"x']
        data = b"\n".join([ok] + bad)
    else:  # only entry-level errors: a grammar error stops the merge
        data = (b"[\n" + b",\n".join([ok] + [b"  " + x for x in bad[:3]] +
                                      [b'  {"n":"x\0y"}']) + b"\n]\n")
    src, back, chk = tmp_path / "m.json", tmp_path / "b", tmp_path / "c"
    back.mkdir()
    chk.mkdir()
    src.write_bytes(data)
    (chk / "memory-m.json").write_bytes(data)
    p = G.crdtfs("prepare", "--host", "h1", src, back, now=now_at(0))
    assert p.returncode == 1
    c = G.crdtfs("check", chk)
    prep = [l.split("m.json:", 1)[1] for l in p.stderr.splitlines()
            if ": error: " in l]
    said = [l.split("memory-m.json:", 1)[1] for l in c.stdout.splitlines()
            if ": error: " in l]
    # (a CR ending a string: a control character, then the end of the
    # line inside the string, as the merge says)
    assert len(prep) == {"jsonl": len(bad) + 3, "array": 4,
                         "jsonl-ends": len(bad) + 1}[kind]
    assert prep == said


def test_prepare_failures_name_the_file_and_write_nothing(tmp_path):
    back = tmp_path / "b"
    back.mkdir()
    src = tmp_path / "m.jsonl"
    src.write_text('{"type":"entity","name":"a","entityType":"t",'
                   '"observations":[]}\n')
    p = G.crdtfs("prepare", "--host", "h1", src, tmp_path / "none")
    assert (p.returncode, p.stdout, p.stderr) == (1, "", (
        "crdtfs prepare: %s: error: cannot read: No such file or "
        "directory; nothing written\n" % (tmp_path / "none")))
    p = G.crdtfs("prepare", "--host", "h1", tmp_path, back)
    assert (p.returncode, p.stderr) == (1, (
        "crdtfs prepare: %s: error: cannot read: Is a directory; nothing "
        "written\n" % tmp_path))
    p = G.crdtfs("prepare", "--host", "h1", src, back, now="yesterday")
    assert (p.returncode, p.stderr) == (1, (
        "crdtfs prepare: CRDTFS_NOW: error: \"yesterday\" is not an RFC "
        "3339 timestamp; nothing written\n"))
    # a FIFO among the host files is skipped without waiting for a writer
    os.mkfifo(back / "memory-other.json")
    # the source through a pipe
    p = G.run([G.CRDTFS, "prepare", "--host", "h1", "/dev/stdin", back],
              input=src.read_text(), timeout=20)
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout.startswith("memory-h1.json: 1 entry: 1 added")
    # the host's own file a FIFO: refused, without waiting, left alone
    os.rename(back / "memory-h1.json", back / "kept")
    os.rename(back / "memory-other.json", back / "memory-h1.json")
    p = G.crdtfs("prepare", "--host", "h1", src, back, timeout=20)
    assert (p.returncode, p.stderr) == (1, (
        "crdtfs prepare: %s: error: cannot read: not a regular file; "
        "nothing written\n" % (back / "memory-h1.json")))
    assert stat.S_ISFIFO(os.lstat(back / "memory-h1.json").st_mode)


# ---------------------------------------------------------------- sync

def _two_hosts(tmp_path, n=2):
    bare = G.make_bare(tmp_path / "remote.git")
    hosts = [G.make_clone(bare, tmp_path / ("h%d" % i), "h%d" % i)
             for i in range(1, n + 1)]
    return bare, hosts


def test_sync_stages_only_host_files_and_replaces_by_rename(tmp_path):
    bare, (h1, h2) = _two_hosts(tmp_path)
    src = tmp_path / "s1.jsonl"
    G.write_jsonl(src, entity("a", ["1"]))
    G.ok(G.crdtfs("prepare", "--host", "h1", src, h1, now=now_at(0)))
    junk = [".memory-h1.json.swp", "memory-h1.json~", "4913",
            "unified-memory.json", "notes.txt", ".memory-h1.json.tmp.x"]
    for j in junk:
        with open(os.path.join(h1, j), "w") as f:
            f.write("junk\n")
    with open(os.path.join(h1, "notes.json.merge.json"), "w") as f:
        f.write('{"target":"notes.json","sources":["notes-*.json"]}\n')
    p = G.ok(G.crdtfs("sync", "--host", "h1", h1))
    assert "committed" in p.stdout and "pushed" in p.stdout
    files = G.git("ls-tree", "--name-only", "main", cwd=bare).stdout.split()
    assert files == ["memory-h1.json", "notes.json.merge.json"]
    msg = G.git("log", "-1", "--format=%s", cwd=bare).stdout.strip()
    assert msg.startswith("crdtfs: update") and "h1" in msg

    G.ok(G.crdtfs("sync", h2))
    target = os.path.join(h2, "memory-h1.json")
    old_ino = os.stat(target).st_ino
    fd = os.open(target, os.O_RDONLY)
    try:
        old = os.read(fd, 1 << 20)
        G.write_jsonl(src, entity("a", ["1", "2"]))
        G.ok(G.crdtfs("prepare", "--host", "h1", src, h1, now=now_at(9)))
        G.ok(G.crdtfs("sync", h1))
        p = G.ok(G.crdtfs("sync", h2))
        assert "fast-forwarded" in p.stdout
        # Replaced by rename: a new inode; the open file keeps its bytes.
        assert os.stat(target).st_ino != old_ino
        assert os.pread(fd, 1 << 20, 0) == old
    finally:
        os.close(fd)
    with open(target, "rb") as f:
        assert f.read() == open(os.path.join(h1, "memory-h1.json"),
                                "rb").read()
    assert G.git("status", "--porcelain", cwd=h2).stdout == ""
    # Nothing new: a no-op sync commits nothing.
    head = G.git("rev-parse", "HEAD", cwd=h2).stdout
    G.ok(G.crdtfs("sync", h2))
    assert G.git("rev-parse", "HEAD", cwd=h2).stdout == head


def test_sync_same_file_changed_on_both_sides_crdt_merged(tmp_path):
    bare, (h1, h2) = _two_hosts(tmp_path)
    shared = "memory-shared.json"

    def entry(uid, val, t, ver, host):
        return {"v": val, "_crdt_metadata": {
            "host": host, "timestamp": now_at(t), "version": ver,
            "unique_id": uid}}

    def write(h, entries):
        with open(os.path.join(h, shared), "w") as f:
            json.dump(entries, f, indent=2)

    write(h1, [entry("u1", 1, 0, 1, "h1")])
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    write(h1, [entry("u1", 2, 10, 2, "h1"), entry("u2", "a", 11, 1, "h1")])
    write(h2, [entry("u1", 3, 5, 2, "h2"), entry("u3", "b", 12, 1, "h2")])
    G.ok(G.crdtfs("sync", h1))
    p = G.ok(G.crdtfs("sync", h2))
    assert "merged" in p.stdout and "CRDT" in p.stdout
    assert "host name" not in p.stderr  # not this machine's own file
    G.ok(G.crdtfs("sync", h1))
    got = [json.loads(open(os.path.join(h, shared)).read()) for h in (h1, h2)]
    assert got[0] == got[1]
    assert [(e["_crdt_metadata"]["unique_id"], e["v"]) for e in got[0]] == \
        [("u1", 2), ("u2", "a"), ("u3", "b")]
    for h in (h1, h2):
        assert G.git("status", "--porcelain", cwd=h).stdout == ""



def test_sync_warns_when_another_machine_writes_this_hosts_file(tmp_path):
    """Two machines with one host name (a cloned VM) both prepare
    memory-vm.json: after a sync merges them, each one's next prepare
    removes what the other added, silently.  The sync that merges this
    machine's own host file with a change from the remote says so."""
    bare, (h1, h2) = _two_hosts(tmp_path)
    for i, h in enumerate((h1, h2)):
        src = tmp_path / ("src%d.jsonl" % i)
        G.write_jsonl(src, entity("from-%d" % i, ["x"]))
        G.ok(G.crdtfs("prepare", "--host", "vm", src, h, now=now_at(i)))
    p = G.ok(G.crdtfs("sync", "--host", "vm", h1))
    assert "host name" not in p.stderr
    p = G.ok(G.crdtfs("sync", "--host", "vm", h2))
    assert ("crdtfs sync: memory-vm.json: warning: this host's file was "
            "changed on origin/main by another machine: if it uses the "
            "host name vm too") in p.stderr, p.stderr
    assert "prepare --host NAME" in p.stderr
    # Each prepares again: the other's entry is gone from its source, so
    # from the file.  The fast-forward that brings this says so too.
    G.ok(G.crdtfs("sync", "--host", "vm", h1))
    for i, h in enumerate((h1, h2)):
        G.ok(G.crdtfs("prepare", "--host", "vm",
                      tmp_path / ("src%d.jsonl" % i), h,
                      now=now_at(10 + i)))
        if i == 0:
            G.ok(G.crdtfs("sync", "--host", "vm", h1))
    p = G.ok(G.crdtfs("sync", "--host", "vm", h2))
    assert "changed on origin/main by another machine" in p.stderr
    # A host that only fast-forwards to another's change of its file.
    G.ok(G.crdtfs("sync", "--host", "vm", h2))
    G.write_jsonl(tmp_path / "src0.jsonl", entity("from-0", ["y"]))
    G.ok(G.crdtfs("prepare", "--host", "vm", tmp_path / "src0.jsonl", h1,
                  now=now_at(20)))
    G.ok(G.crdtfs("sync", "--host", "vm", h1))
    p = G.ok(G.crdtfs("sync", "--host", "vm", h2))
    assert "fast-forwarded" in p.stdout
    assert "changed on origin/main by another machine" in p.stderr


def test_sync_merge_keeps_a_json_lines_host_file_in_lines(tmp_path):
    """A tool that appends lines to its JSON Lines host file must still
    append to lines after a sync merged the file: written as an array,
    the next line landed after its ']' and was lost everywhere."""
    bare, (h1, h2) = _two_hosts(tmp_path)
    shared = "memory-shared.json"

    def append(h, uid, t):
        with open(os.path.join(h, shared), "a") as f:
            f.write(json.dumps({"v": uid, "_crdt_metadata": {
                "host": "h1", "timestamp": now_at(t), "version": 1,
                "unique_id": uid}}) + "\n")

    append(h1, "x1", 1)
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    append(h1, "x2", 2)
    append(h2, "y1", 3)
    G.ok(G.crdtfs("sync", h1))
    p = G.ok(G.crdtfs("sync", h2))
    assert "CRDT" in p.stdout
    G.ok(G.crdtfs("sync", h1))
    for h in (h1, h2):
        text = open(os.path.join(h, shared)).read()
        assert [json.loads(line)["v"] for line in text.splitlines()] == \
            ["x1", "x2", "y1"]
    append(h1, "x3", 4)
    p = G.ok(G.crdtfs("check", h1))
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    got = json.loads(G.ok(G.crdtfs("merge", h2)).stdout)
    assert [e["v"] for e in got] == ["x1", "x2", "y1", "x3"]


def _line(uid, host, t, end="\n"):
    return json.dumps({"v": uid, "_crdt_metadata": {
        "host": host, "timestamp": now_at(t), "version": 1,
        "unique_id": uid}}) + end


def test_sync_merges_past_a_committed_symlink_named_like_a_host_file(
        tmp_path):
    """`git add` of a symlink memory-link.json: it is no host file (the
    merge never follows one), and a merging sync leaves it to git instead
    of failing every time on it."""
    bare, hosts = _two_hosts(tmp_path)
    h1, h2 = (pathlib.Path(h) for h in hosts)
    (h1 / "memory-h1.json").write_text(_line("x", "h1", 1))
    os.symlink("memory-h1.json", h1 / "memory-link.json")
    G.git("add", "memory-link.json", cwd=h1)
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    with open(h1 / "memory-h1.json", "a") as f:
        f.write(_line("y", "h1", 2))
    (h2 / "memory-h2.json").write_text(_line("z", "h2", 3))
    G.ok(G.crdtfs("sync", h1))
    p = G.ok(G.crdtfs("sync", h2))
    assert "merged" in p.stdout and p.stderr == ""
    assert os.readlink(h2 / "memory-link.json") == "memory-h1.json"
    tree = G.git("ls-tree", "main", cwd=bare).stdout
    assert "120000 blob" in tree and "memory-link.json" in tree
    assert "memory-h2.json" in tree


@pytest.mark.parametrize("what", ["dangling symlink", "symlink",
                                  "directory"])
def test_sync_names_a_non_file_in_the_way_of_a_host_file(tmp_path, what):
    """A dangling symlink where the remote brings memory-x.json counted as
    no file: the sync said `work tree updated`, exit 0, left the link, and
    on the retry committed the remote's tree as its own; that host never
    read memory-x.json again and its view never converged.  A directory
    or a live symlink there said `changed during the sync` on every
    sync.  Now each is named as in the way, and nothing changes."""
    bare, hosts = _two_hosts(tmp_path)
    h1, h2 = (pathlib.Path(h) for h in hosts)
    (h1 / "memory-h1.json").write_text(_line("a", "h1", 1))
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    (h1 / "memory-x.json").write_text(_line("x", "x", 2))
    G.ok(G.crdtfs("sync", h1))
    if what == "directory":
        (h2 / "memory-x.json").mkdir()
    else:
        os.symlink("gone.json" if what == "dangling symlink" else
                   str(h1 / "memory-x.json"), h2 / "memory-x.json")
    head = G.git("rev-parse", "HEAD", cwd=h2).stdout
    p = G.crdtfs("sync", h2)
    assert p.returncode == 1
    assert ("crdtfs sync: cannot update the work tree: memory-x.json is in "
            "the way (a %s where the remote has a host file); move it away"
            % what.split()[-1]) in p.stderr, p.stderr
    assert G.git("rev-parse", "HEAD", cwd=h2).stdout == head
    if what == "directory":
        (h2 / "memory-x.json").rmdir()
    else:
        os.unlink(h2 / "memory-x.json")
    G.ok(G.crdtfs("sync", h2))
    assert G.ok(G.crdtfs("merge", h2)).stdout == \
        G.ok(G.crdtfs("merge", h1)).stdout
    assert G.git("status", "--porcelain", cwd=h2).stdout == ""


def _text_file_changed_upstream(tmp_path, name):
    """Two hosts that both hold `name` ("one"), which h1 then changed
    ("two"), committed and synced: h2 is behind on it."""
    bare, hosts = _two_hosts(tmp_path)
    h1, h2 = (pathlib.Path(h) for h in hosts)
    (h1 / name).write_text("one\n")
    G.git("add", name, cwd=h1)
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    (h1 / name).write_text("two\n")
    G.git("commit", "-qam", "two", cwd=h1)
    G.ok(G.crdtfs("sync", h1))
    return bare, h1, h2


def test_sync_with_symlinks_named_like_host_files(tmp_path):
    """A committed symlink memory-l.json that the remote turns into a
    host file is git's to check out (the diff saw a deletion and an
    addition, and the addition found the symlink in its way); a symlink
    put in place of a host file the remote deletes is named as in the
    way (the sync read through it, retried eight times and said the file
    changed during the sync)."""
    bare, hosts = _two_hosts(tmp_path)
    h1, h2 = (pathlib.Path(h) for h in hosts)
    (h1 / "memory-h1.json").write_text(_line("a", "h1", 1))
    (h1 / "target.json").write_text("[]\n")
    os.symlink("target.json", h1 / "memory-l.json")
    G.git("add", "target.json", "memory-l.json", cwd=h1)
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    assert os.path.islink(h2 / "memory-l.json")
    os.unlink(h1 / "memory-l.json")
    (h1 / "memory-l.json").write_text(_line("l", "l", 2))
    G.ok(G.crdtfs("sync", h1))
    p = G.ok(G.crdtfs("sync", h2))
    assert p.stderr == "", p.stderr
    assert not os.path.islink(h2 / "memory-l.json")
    assert G.git("status", "--porcelain", cwd=h2).stdout == ""

    # A host file that becomes a symlink on the remote stays one through
    # a host's merge (the merge deleted it, and pushed that).
    h3 = pathlib.Path(G.make_clone(bare, tmp_path / "h3", "h3"))
    G.ok(G.crdtfs("sync", h3))
    os.unlink(h1 / "memory-l.json")
    os.symlink("target.json", h1 / "memory-l.json")
    G.git("add", "-A", "memory-l.json", cwd=h1)
    G.ok(G.crdtfs("sync", h1))
    (h3 / "memory-h3.json").write_text(_line("x", "h3", 3))
    p = G.ok(G.crdtfs("sync", h3))
    assert "merged" in p.stdout
    assert os.path.islink(h3 / "memory-l.json")
    assert "120000 blob" in G.git("ls-tree", "main", "memory-l.json",
                                  cwd=bare).stdout
    # Deleted on the remote, it goes in a fast-forward, no commit of ours.
    G.ok(G.crdtfs("sync", h2))
    G.git("rm", "-q", "memory-l.json", cwd=h1)
    G.ok(G.crdtfs("sync", h1))
    p = G.ok(G.crdtfs("sync", h2))
    assert "fast-forwarded" in p.stdout and "committed" not in p.stdout
    assert not os.path.lexists(h2 / "memory-l.json")

    (tmp_path / "elsewhere.json").write_text("[]\n")
    os.unlink(h2 / "memory-h1.json")
    os.symlink(tmp_path / "elsewhere.json", h2 / "memory-h1.json")
    G.git("rm", "-q", "memory-h1.json", cwd=h1)
    G.ok(G.crdtfs("sync", h1))
    _sync_cannot_update(h2, "memory-h1.json is in the way (a symlink "
                            "where the remote deletes a host file); move it "
                            "away")


def test_sync_refuses_a_merge_in_progress_and_intent_to_add(tmp_path):
    """During a user's `git merge` (conflict resolved, not committed) a
    sync committed the resolution with one parent under its own message
    and left MERGE_HEAD; a `git add -N` file was committed empty and
    pushed to every host.  Both are refused, changing nothing."""
    bare, h1, h2 = _text_file_changed_upstream(tmp_path, "notes.txt")
    (h2 / "notes.txt").write_text("three\n")
    G.git("commit", "-qam", "three", cwd=h2)
    assert G.git("pull", "-q", "--no-rebase", "--no-edit", cwd=h2,
                 check=False).returncode != 0
    (h2 / "notes.txt").write_text("resolved\n")
    G.git("add", "notes.txt", cwd=h2)
    head = G.git("rev-parse", "HEAD", cwd=h2).stdout
    p = G.crdtfs("sync", h2)
    assert p.returncode == 1
    assert ("%s: a git merge is in progress: finish it (git commit) or "
            "abort it (git merge --abort) first" % h2) in p.stderr, p.stderr
    assert G.git("rev-parse", "HEAD", cwd=h2).stdout == head
    assert (h2 / ".git" / "MERGE_HEAD").exists()
    G.git("commit", "-q", "--no-edit", cwd=h2)
    G.ok(G.crdtfs("sync", h2))

    (h1 / "later.txt").write_text("not yet\n")
    G.git("add", "-N", "later.txt", cwd=h1)
    (h1 / "memory-h1.json").write_text(_line("a", "h1", 1))
    p = G.crdtfs("sync", h1)
    assert p.returncode == 1
    assert ("later.txt is marked to be added later (git add -N): add it "
            "or `git reset` it first") in p.stderr, p.stderr
    assert "later.txt" not in G.git("ls-tree", "main", cwd=bare).stdout
    G.git("add", "later.txt", cwd=h1)
    G.ok(G.crdtfs("sync", h1))
    assert "later.txt" in G.git("ls-tree", "main", cwd=bare).stdout


def test_sync_with_text_auto_and_a_crlf_host_file(tmp_path):
    """With `* text=auto` git commits a CRLF host file with LF: the sync's
    check that a file still holds what was committed must hash it the same
    way, else every sync that updates it fails as 'changed'."""
    bare, hosts = _two_hosts(tmp_path)
    h1, h2 = (pathlib.Path(h) for h in hosts)
    (h1 / ".gitattributes").write_text("* text=auto\n")
    G.git("add", ".gitattributes", cwd=h1)
    (h1 / "memory-h1.json").write_text(_line("x", "h1", 1, "\r\n"),
                                       newline="")
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    with open(h2 / "memory-h1.json", "a") as f:
        f.write(_line("w", "h2", 4))
    G.ok(G.crdtfs("sync", h2))
    p = G.ok(G.crdtfs("sync", h1))
    assert "work tree updated" in p.stdout
    got = json.loads(G.ok(G.crdtfs("merge", h1)).stdout)
    assert [e["v"] for e in got] == ["x", "w"]


def test_sync_commits_a_host_file_that_gitignore_matches(tmp_path):
    bare, hosts = _two_hosts(tmp_path)
    h1, h2 = (pathlib.Path(h) for h in hosts)
    (h1 / "memory-h1.json").write_text(_line("x", "h1", 1))
    (h1 / ".gitignore").write_text("*.json\n!memory-h1.json\n")
    G.git("add", ".gitignore", cwd=h1)
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    (h2 / "memory-h2.json").write_text(_line("z", "h2", 2))
    (h2 / "scratch.json").write_text("{}\n")  # ignored, not a host file
    p = G.ok(G.crdtfs("sync", h2))
    assert "committed" in p.stdout
    names = G.git("ls-tree", "--name-only", "main", cwd=bare).stdout.split()
    assert "memory-h2.json" in names and "scratch.json" not in names
    G.ok(G.crdtfs("sync", h1))
    got = json.loads(G.ok(G.crdtfs("merge", h1)).stdout)
    assert [e["v"] for e in got] == ["x", "z"]


def test_sync_of_a_shallow_clone_says_so(tmp_path):
    bare, (h1,) = _two_hosts(tmp_path, 1)
    for t in range(2):
        with open(os.path.join(h1, "memory-h1.json"), "a") as f:
            f.write(_line("x%d" % t, "h1", t))
        G.ok(G.crdtfs("sync", h1))
    sh = tmp_path / "shallow"
    G.git("clone", "-q", "--depth", "1", "file://%s" % bare, str(sh))
    p = G.crdtfs("sync", sh)
    assert (p.returncode, p.stderr) == (1, (
        "crdtfs sync: %s is a shallow clone, which sync cannot merge: run "
        "`git fetch --unshallow` there first\n" % sh))


def test_sync_with_a_relative_remote_path_from_any_directory(tmp_path):
    """`git remote add origin ../remote.git` is relative to the work tree;
    a fetch of more than 64 commits goes through libgit2, which took the
    path from the current directory (a mount's daemon runs in /)."""
    bare, hosts = _two_hosts(tmp_path)
    h1, h2 = (pathlib.Path(h) for h in hosts)
    G.git("remote", "set-url", "origin", "../remote.git", cwd=h1)
    (h1 / "memory-h1.json").write_text(_line("x", "h1", 1))
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    for i in range(65):
        with open(h2 / "memory-h2.json", "a") as f:
            f.write(_line("y%d" % i, "h2", 2 + i))
        G.git("add", "memory-h2.json", cwd=h2)
        G.git("commit", "-q", "-m", "c%d" % i, cwd=h2)
    G.ok(G.crdtfs("sync", h2))
    p = G.ok(G.run([G.CRDTFS, "sync", h1], cwd="/"))
    assert "fast-forwarded" in p.stdout
    assert len(json.loads(G.ok(G.crdtfs("merge", h1)).stdout)) == 66


def test_sync_says_when_it_commits_a_damaged_host_file(tmp_path):
    """Past a grammar error no merge reads a host file's entries (another
    host merging it keeps what it can read): say so while it can be
    fixed."""
    bare, (h1,) = _two_hosts(tmp_path, 1)
    with open(os.path.join(h1, "memory-h1.json"), "w") as f:
        f.write("[\n" + _line("u1", "h1", 1) + "]\n" + _line("u2", "h1", 2))
    p = G.ok(G.crdtfs("sync", h1))
    assert "committed" in p.stdout
    assert p.stderr == (
        "crdtfs sync: memory-h1.json:4:1: error: invalid JSON: unexpected "
        "'{' after the end of the JSON array\n"
        "crdtfs sync: memory-h1.json: warning: committed with the errors "
        "above: what they hide reaches no merge until the file is fixed\n")
    # a clean commit says nothing
    with open(os.path.join(h1, "memory-h1.json"), "w") as f:
        f.write(_line("u1", "h1", 1) + _line("u2", "h1", 2))
    p = G.ok(G.crdtfs("sync", h1))
    assert "committed" in p.stdout and p.stderr == ""

@pytest.mark.parametrize("url,rc,said", [
    ("DIR/notrepo", 1, "remote DIR/notrepo is not a git repository"),
    ("DIR/empty", 3, "remote unreachable"),  # a drive not mounted yet?
    # what libgit2 will not open, as one another user owns (it says "not
    # found" with a message about safe.directory)
    ("DIR/nohead.git", 1, "remote DIR/nohead.git looks like a git "
                          "repository but cannot be opened"),
    ("git+ssh://host/x", 1, "git+ssh:// is no protocol sync speaks"),
    ("foo://x/y", 1, 'remote "origin": foo:// is no protocol sync speaks '
                     "(https, http, ssh, git, file)"),
    ("", 1, 'remote "origin" has an empty URL'),
])
def test_sync_tells_a_wrong_remote_from_an_unreachable_one(tmp_path, url, rc,
                                                          said):
    """A remote that can never work (a directory that is no repository,
    a protocol nobody speaks) said `remote unreachable`, exit 3, which a
    cron job retries for ever; an empty URL said the remote was this
    repository itself."""
    (tmp_path / "notrepo").mkdir()
    (tmp_path / "notrepo" / "file").write_text("x\n")
    (tmp_path / "empty").mkdir()
    G.git("init", "-q", "--bare", str(tmp_path / "nohead.git"))
    os.unlink(tmp_path / "nohead.git" / "HEAD")
    h = tmp_path / "h"
    G.git("init", "-q", "-b", "main", str(h))
    G.git("remote", "add", "origin", url.replace("DIR", str(tmp_path)),
          cwd=h)
    p = G.crdtfs("sync", h)
    assert p.returncode == rc
    assert said.replace("DIR", str(tmp_path)) in p.stderr, p.stderr


def test_sync_offline_keeps_local_commit(tmp_path):
    bare, (h1, h2) = _two_hosts(tmp_path)
    src = tmp_path / "s.jsonl"
    G.write_jsonl(src, entity("a", ["1"]))
    G.ok(G.crdtfs("prepare", "--host", "h1", src, h1, now=now_at(0)))
    G.ok(G.crdtfs("sync", h1))
    away = str(bare) + ".away"
    os.rename(bare, away)
    try:
        G.write_jsonl(src, entity("a", ["1", "offline edit"]))
        G.ok(G.crdtfs("prepare", "--host", "h1", src, h1, now=now_at(5)))
        p = G.crdtfs("sync", h1)
        assert p.returncode == 3, p
        assert "remote unreachable" in p.stderr
        assert "(local commit kept)" in p.stderr
        log = G.git("log", "--format=%s", cwd=h1).stdout.splitlines()
        assert len(log) == 2 and log[0].startswith("crdtfs: update")
        assert G.git("status", "--porcelain", cwd=h1).stdout == ""
        # Still offline: still exit 3, no second commit.
        assert G.crdtfs("sync", h1).returncode == 3
        assert len(G.git("log", "--format=%s",
                         cwd=h1).stdout.splitlines()) == 2
    finally:
        os.rename(away, bare)
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    assert "offline edit" in G.ok(G.crdtfs("merge", h2)).stdout


def test_sync_new_remote_with_other_default_head(tmp_path):
    # `git init --bare` here names master; the host pushes main first.
    bare = tmp_path / "r.git"
    G.git("init", "-q", "--bare", "-b", "master", str(bare))
    h1 = G.make_clone(bare, tmp_path / "h1", "h1", branch="main")
    src = tmp_path / "s.jsonl"
    G.write_jsonl(src, entity("a", ["1"]))
    G.ok(G.crdtfs("prepare", "--host", "h1", src, h1))
    G.ok(G.crdtfs("sync", h1))
    # A plain clone now checks the branch out (the remote HEAD follows).
    G.git("clone", "-q", str(bare), str(tmp_path / "c"))
    assert os.path.exists(tmp_path / "c" / "memory-h1.json")


def test_first_syncs_of_git_init_hosts_to_an_empty_remote_meet(tmp_path):
    """Hosts set up by `git init` (one on main, one on master) and `git
    remote add`, the remote empty: the first to sync pushed its own
    branch; when both first synced at once, each created its own and they
    never met again (about one time in twelve).  Every such host now
    pushes the branch the remote's HEAD names, so they race on one
    branch, which the compare-and-swap settles."""
    bare = tmp_path / "r.git"
    G.git("init", "-q", "--bare", "-b", "trunk", str(bare))
    hs = []
    for name, branch in (("ha", "main"), ("hb", "master")):
        h = tmp_path / name
        G.git("init", "-q", "-b", branch, str(h))
        G.git("config", "user.name", name, cwd=h)
        G.git("config", "user.email", name + "@example", cwd=h)
        G.git("remote", "add", "origin", str(bare), cwd=h)
        (h / ("memory-%s.json" % name)).write_text(_line(name, name, 1))
        hs.append(h)
    p = G.ok(G.crdtfs("sync", hs[0]))
    assert "origin/trunk" in p.stdout
    assert G.git("branch", "--format=%(refname)", cwd=bare).stdout == \
        "refs/heads/trunk\n"
    for _ in range(2):
        for h in hs:
            G.ok(G.crdtfs("sync", h))
    assert G.git("branch", "--format=%(refname)", cwd=bare).stdout == \
        "refs/heads/trunk\n"
    views = [G.ok(G.crdtfs("merge", h)).stdout for h in hs]
    assert views[0] == views[1] and '"ha"' in views[0] and '"hb"' in views[0]


@pytest.mark.skipif(not os.path.exists(
    "/usr/lib/git-core/git-daemon") and not shutil.which("git-daemon"),
    reason="git daemon not installed")
def test_sync_push_rejected_by_hook_retries_then_gives_up(tmp_path):
    base = tmp_path / "srv"
    base.mkdir()
    bare = G.make_bare(base / "r.git")
    hook = os.path.join(bare, "hooks", "pre-receive")
    with open(hook, "w") as f:
        f.write('#!/bin/sh\n'
                'n=$(cat "$GIT_DIR/rejects" 2>/dev/null || echo 0)\n'
                'if [ "$n" -gt 0 ]; then\n'
                '  echo $((n - 1)) > "$GIT_DIR/rejects"\n'
                '  echo "test hook: rejected" >&2; exit 1\n'
                'fi\n')
    os.chmod(hook, 0o755)
    rejects = os.path.join(bare, "rejects")
    daemon = G.GitDaemon(base)
    try:
        h1 = G.make_clone(bare, tmp_path / "h1", "h1")
        G.git("remote", "set-url", "origin", daemon.url("r.git"), cwd=h1)
        src = tmp_path / "s.jsonl"
        G.write_jsonl(src, entity("a", ["1"]))
        G.ok(G.crdtfs("prepare", "--host", "h1", src, h1, now=now_at(0)))
        with open(rejects, "w") as f:
            f.write("3\n")
        p = G.ok(G.crdtfs("sync", h1))
        assert "after rejected pushes" in p.stdout
        assert open(rejects).read().strip() == "0"
        head = G.git("rev-parse", "HEAD", cwd=h1).stdout
        assert G.git("rev-parse", "main", cwd=bare).stdout == head

        # Rejected every time: bounded, clear, local commit kept.
        with open(rejects, "w") as f:
            f.write("1000\n")
        G.write_jsonl(src, entity("a", ["1", "2"]))
        G.ok(G.crdtfs("prepare", "--host", "h1", src, h1, now=now_at(5)))
        t = time.monotonic()
        p = G.crdtfs("sync", "--attempts", "4", "--timeout", "10", h1)
        took = time.monotonic() - t
        assert p.returncode == 1, p
        assert "push rejected 4 times" in p.stderr, p.stderr
        assert "local commit kept" in p.stderr
        assert took < 10
        assert 1000 - int(open(rejects).read()) == 4
        mine = G.git("rev-parse", "HEAD", cwd=h1).stdout
        assert mine != G.git("rev-parse", "main", cwd=bare).stdout
        # The next sync, once the hook relents, delivers it.
        with open(rejects, "w") as f:
            f.write("0\n")
        G.ok(G.crdtfs("sync", h1))
        assert G.git("rev-parse", "main", cwd=bare).stdout == mine
    finally:
        daemon.stop()


def test_sync_corrupted_host_file_from_remote(tmp_path):
    bare, (h1, h2) = _two_hosts(tmp_path)
    src = tmp_path / "s.jsonl"
    ents = {}
    for i in range(6):
        ents.update(entity("k%d" % i, ["fact %d" % i]))
    G.write_jsonl(src, ents)
    G.ok(G.crdtfs("prepare", "--host", "h1", src, h1, now=now_at(0)))
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    good = open(os.path.join(h1, "memory-h1.json"), "rb").read()
    expected = G.ok(G.crdtfs("merge", h1)).stdout

    # Someone else pushes a truncated memory-h1.json.
    evil = G.make_clone(bare, tmp_path / "evil", "evil")
    with open(os.path.join(evil, "memory-h1.json"), "wb") as f:
        f.write(good[:len(good) // 2])
    G.git("commit", "-qam", "oops", cwd=evil)
    G.git("push", "-q", "origin", "main", cwd=evil)

    p = G.crdtfs("sync", h2)
    assert p.returncode == 0, p
    assert "origin/main:memory-h1.json" in p.stderr and "error" in p.stderr
    assert "CRDT" in p.stdout  # repaired by merging with our good copy
    # Nothing lost here, and the remote is repaired.
    assert G.ok(G.crdtfs("merge", h2)).stdout == expected
    remote = G.git("show", "main:memory-h1.json", cwd=bare).stdout
    assert len(json.loads(remote)) == 6
    p = G.ok(G.crdtfs("sync", h1))
    assert G.ok(G.crdtfs("merge", h1)).stdout == expected
    assert G.ok(G.crdtfs("merge", "--strict", h1)).returncode == 0


@pytest.mark.parametrize("how", ["appended", "mid-file", "json lines"])
def test_sync_leaves_a_damaged_host_file_to_its_owner_to_fix(tmp_path, how):
    """The owner commits its host file with a stray comma in it and is
    told to fix it.  Another host's sync "repaired" it to its readable
    part (in its own format: JSON Lines became an array), and the owner's
    next sync took that: what followed the damage was gone from the file
    it was told to fix.  Damage that is not a file cut short is now taken
    as it is, by a fast-forward (no merge commit every host pushes)."""
    bare, hosts = _two_hosts(tmp_path)
    h1, h2 = (pathlib.Path(h) for h in hosts)
    lines = [_line("a%d" % i, "h1", i, end="") for i in range(1, 5)]
    if how == "json lines":
        first = "%s\n%s\n%s\n" % tuple(lines[:3])
        damaged = "%s\n%s\n{\"broken\": \n%s\n" % tuple(lines[:3])
        fixed = first
    else:
        # mid-file: our copy holds a3, which follows the damage
        n = 3 if how == "mid-file" else 2
        first = "[" + ",\n".join(lines[:n]) + "]\n"
        damaged = "[%s,\n%s,,\n%s,\n%s]\n" % tuple(lines)
        fixed = "[" + ",\n".join(lines) + "]\n"
    (h1 / "memory-h1.json").write_text(first)
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    (h1 / "memory-h1.json").write_text(damaged)
    p = G.ok(G.crdtfs("sync", h1))
    assert "committed with the errors above" in p.stderr
    p = G.ok(G.crdtfs("sync", h2))
    assert "origin/main:memory-h1.json:" in p.stderr  # said there too
    assert "fast-forwarded" in p.stdout
    assert (h2 / "memory-h1.json").read_text() == damaged
    assert G.git("rev-parse", "HEAD", cwd=h2).stdout == \
        G.git("rev-parse", "HEAD", cwd=h1).stdout
    G.ok(G.crdtfs("sync", h1))
    assert (h1 / "memory-h1.json").read_text() == damaged
    # Fixed by its owner, it reaches everyone.
    (h1 / "memory-h1.json").write_text(fixed)
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    got = G.ok(G.crdtfs("merge", "--strict", h2)).stdout
    want = ["a1", "a2", "a3"] + ([] if how == "json lines" else ["a4"])
    assert [e["v"] for e in json.loads(got)] == want


def test_a_repair_of_our_cut_file_is_no_second_writer(tmp_path):
    """Our host file was cut short and another host repaired it; our tool
    then rewrote it whole before our next sync, which merged: the warning
    that another machine writes our file was a false alarm."""
    bare, hosts = _two_hosts(tmp_path)
    h1, h2 = (pathlib.Path(h) for h in hosts)
    a = [_line("a%d" % i, "h1", i) for i in range(1, 5)]
    (h1 / "memory-h1.json").write_text("".join(a[:3]))
    (h2 / "memory-h2.json").write_text(_line("b", "h2", 1))
    for h in (h1, h2, h1):
        G.ok(G.crdtfs("sync", "--host", h.name, h))
    (h1 / "memory-h1.json").write_text(a[0] + a[1][:40])  # cut short
    G.ok(G.crdtfs("sync", "--host", "h1", h1))
    p = G.ok(G.crdtfs("sync", "--host", "h2", h2))
    assert "host files merged by CRDT" in p.stdout  # repaired there
    (h1 / "memory-h1.json").write_text("".join(a))  # rewritten whole
    p = G.ok(G.crdtfs("sync", "--host", "h1", h1))
    assert "merged" in p.stdout
    assert "another machine" not in p.stderr, p.stderr


def test_a_host_file_damaged_here_and_changed_there_is_kept_here(tmp_path):
    """Our host file, cut short, was repaired by another host; we then
    wrote it again with a stray comma in the middle and were told to fix
    it, and the same sync merged both copies: our file lost what follows
    the comma.  It is kept as it is now, and said so."""
    bare, hosts = _two_hosts(tmp_path)
    h1, h2 = (pathlib.Path(h) for h in hosts)
    a = [_line("a%d" % i, "h1", i, end="") for i in range(1, 6)]
    (h1 / "memory-h1.json").write_text("[" + ",\n".join(a[:3]) + "]\n")
    (h2 / "memory-h2.json").write_text(_line("b", "h2", 1))
    for h in (h1, h2, h1):
        G.ok(G.crdtfs("sync", "--host", h.name, h))
    (h1 / "memory-h1.json").write_text("[" + a[0] + ",\n" + a[1][:50])
    G.ok(G.crdtfs("sync", "--host", "h1", h1))
    G.ok(G.crdtfs("sync", "--host", "h2", h2))  # repairs it
    damaged = "[%s,\n%s,\n%s,,\n%s,\n%s]\n" % tuple(a)
    (h1 / "memory-h1.json").write_text(damaged)
    p = G.ok(G.crdtfs("sync", "--host", "h1", h1))
    assert "committed with the errors above" in p.stderr
    assert ("memory-h1.json: warning: kept as it is here, with its errors, "
            "for you to fix") in p.stderr, p.stderr
    assert (h1 / "memory-h1.json").read_text() == damaged
    G.ok(G.crdtfs("sync", "--host", "h2", h2))
    assert (h2 / "memory-h1.json").read_text() == damaged


def test_a_cut_file_is_repaired_from_its_last_good_version(tmp_path):
    """h2 held an old copy of h1's file (a1 a2 a3); h1 removed a2 and a3,
    then its file was cut short.  h2 repaired the cut file with its old
    copy: a2 and a3, removed by their owner, came back for everyone.  The
    repair takes the file's last good version on the remote instead."""
    bare, hosts = _two_hosts(tmp_path)
    h1, h2 = (pathlib.Path(h) for h in hosts)
    a = [_line("a%d" % i, "h1", i) for i in range(1, 5)]
    (h1 / "memory-h1.json").write_text("".join(a[:3]))
    G.ok(G.crdtfs("sync", "--host", "h1", h1))
    G.ok(G.crdtfs("sync", "--host", "h2", h2))
    (h1 / "memory-h1.json").write_text(a[0])  # a2, a3 removed
    G.ok(G.crdtfs("sync", "--host", "h1", h1))
    (h1 / "memory-h1.json").write_text(a[0] + a[3][:40])  # then cut
    G.ok(G.crdtfs("sync", "--host", "h1", h1))
    (h2 / "memory-h2.json").write_text(_line("b", "h2", 5))  # diverged
    G.ok(G.crdtfs("sync", "--host", "h2", h2))
    G.ok(G.crdtfs("sync", "--host", "h1", h1))
    for h in (h1, h2):
        got = [e["_crdt_metadata"]["unique_id"] for e in json.loads(
            G.ok(G.crdtfs("merge", h)).stdout)]
        assert "a2" not in got and "a3" not in got, (h, got)


def test_concurrent_pushes_lose_nothing(tmp_path):
    # libgit2's local transport has no compare-and-swap; crdtfs's local
    # push must.  After a round of simultaneous syncs that all report
    # success, the remote branch contains every host's head.
    bare = G.make_bare(tmp_path / "remote.git")
    hosts = [G.make_clone(bare, tmp_path / ("c%d" % i), "c%d" % i)
             for i in range(6)]
    for rnd in range(3):
        for i, h in enumerate(hosts):
            src = tmp_path / ("s%d.jsonl" % i)
            G.write_jsonl(src, entity("x%d" % i, ["round %d" % rnd]))
            G.ok(G.crdtfs("prepare", "--host", "c%d" % i, src, h))
        barrier = threading.Barrier(len(hosts))

        def go(h):
            barrier.wait()
            return G.crdtfs("sync", "--attempts", "30", "--timeout", "60", h)

        with concurrent.futures.ThreadPoolExecutor(len(hosts)) as ex:
            res = list(ex.map(go, hosts))
        for p in res:
            G.ok(p)
        remote = G.git("rev-parse", "main", cwd=bare).stdout.strip()
        for h in hosts:
            head = G.git("rev-parse", "HEAD", cwd=h).stdout.strip()
            assert G.git("merge-base", "--is-ancestor", head, remote,
                         cwd=bare, check=False).returncode == 0, (rnd, h)
    G.git("fsck", "--strict", "--no-dangling", cwd=bare)


def test_simultaneous_first_pushes_lose_nothing(tmp_path, open_shim):
    # The remote has no branch yet and six hosts push their first commit at
    # once.  A first push must be a compare-and-swap too ("the branch does
    # not exist" checked under the ref's lock): libgit2's plain create
    # checks before locking, and there two pushes both succeeded and one
    # commit was lost.  The shim holds every process for 150 ms just before
    # it locks the remote's branch, so all six pass that early check.
    log = tmp_path / "locks.log"
    env = open_shim("remote.git/refs/heads/main.lock", sleep_ms=150,
                    log=log)
    bare = G.make_bare(tmp_path / "remote.git")
    hosts = [G.make_clone(bare, tmp_path / ("c%d" % i), "c%d" % i)
             for i in range(6)]
    for i, h in enumerate(hosts):
        src = tmp_path / ("s%d.jsonl" % i)
        G.write_jsonl(src, entity("x%d" % i, ["first"]))
        G.ok(G.crdtfs("prepare", "--host", "c%d" % i, src, h))
    barrier = threading.Barrier(len(hosts))

    def go(h):
        barrier.wait()
        return G.crdtfs("sync", "--attempts", "30", "--timeout", "60", h,
                        env=env)

    with concurrent.futures.ThreadPoolExecutor(len(hosts)) as ex:
        res = list(ex.map(go, hosts))
    for p in res:
        G.ok(p)
    # The shim really held the pushes (at least one lock each).
    assert len(log.read_text().splitlines()) >= len(hosts)
    remote = G.git("rev-parse", "main", cwd=bare).stdout.strip()
    for h in hosts:
        head = G.git("rev-parse", "HEAD", cwd=h).stdout.strip()
        assert G.git("merge-base", "--is-ancestor", head, remote,
                     cwd=bare, check=False).returncode == 0, h


@pytest.mark.parametrize("saves", ["once", "at every read"])
def test_host_file_replaced_while_sync_stages_it(tmp_path, saves,
                                                open_shim):
    # An atomic save (prepare's, an editor's) that lands between libgit2's
    # stat of a host file and its read made the whole sync fail with
    # "cannot stage a host file: failed to read file into stream", naming
    # no file.  Staging now reads the file again and commits the save; a
    # file replaced at every read fails the sync with its name, and keeps
    # the last save.
    bare = G.make_bare(tmp_path / "remote.git")
    h = G.make_clone(bare, tmp_path / "h0", "h0")
    alt = tmp_path / "alt"
    alt.mkdir()
    for n, back in ((1, h), (2, h), (3, alt)):
        src = tmp_path / ("s%d.jsonl" % n)
        G.write_jsonl(src, {("e%d" % i): {"entityType": "t",
                                           "observations": ["v%d" % n]}
                            for i in range(n * 5)})
        G.ok(G.crdtfs("prepare", "--host", "h0", src, back, now=now_at(n)))
        if n == 1:
            G.ok(G.crdtfs("sync", h))
    saved = (alt / "memory-h0.json").read_bytes()
    hf = os.path.join(h, "memory-h0.json")
    assert len(saved) != os.path.getsize(hf)
    before = open(hf, "rb").read()
    log, swap = tmp_path / "opens.log", tmp_path / "swap"
    swap.write_bytes(saved)
    # Each save swaps the host file and the other version, atomically.
    acts = {"log": log,
            "run": "cp '%s' '%s.new' && cp '%s' '%s' && mv '%s.new' '%s'" %
                   (swap, hf, hf, swap, hf, hf)}
    if saves != "once":
        acts["run_every"] = 1
    head = G.git("rev-parse", "HEAD", cwd=h).stdout
    env = open_shim("/h0/memory-h0.json", **acts)
    p = G.crdtfs("sync", h, env=env)
    if saves != "once":
        assert p.returncode == 1
        assert p.stderr.startswith(
            "crdtfs sync: memory-h0.json: cannot stage it "
            "(it kept changing?): ")
        assert G.git("rev-parse", "HEAD", cwd=h).stdout == head
        assert {open(hf, "rb").read(), swap.read_bytes()} == {saved, before}
        return
    G.ok(p)
    assert p.stderr == ""
    assert len(log.read_text().splitlines()) >= 2  # read, and read again
    assert G.git("show", "HEAD:memory-h0.json", cwd=h).stdout.encode() \
        == saved
    assert G.git("status", "--porcelain", cwd=h).stdout == ""
    assert G.git("rev-parse", "main", cwd=bare).stdout == \
        G.git("rev-parse", "HEAD", cwd=h).stdout


def test_save_while_sync_replaces_a_host_file_is_kept(tmp_path,
                                                      open_shim):
    # Two hosts changed one host file, so h0's sync writes the CRDT merge
    # over h0's copy.  A save landing after sync checked that copy and
    # before its rename was overwritten, and the sync said all was well.
    # Now the check is made on the file the rename displaces, and a save is
    # swapped back, committed and merged again.
    md = lambda uid, t, h: {"host": h, "timestamp": now_at(t),  # noqa
                            "version": 1, "unique_id": uid}
    seed = {"k": "seed", "_crdt_metadata": md("seed", 0, "h0")}

    def save(path, *entries):
        path.write_text("[\n%s\n]\n" % ",\n".join(
            json.dumps(e, separators=(",", ":")) for e in (seed,) + entries))

    bare = G.make_bare(tmp_path / "remote.git")
    h0 = G.make_clone(bare, tmp_path / "h0", "h0")
    h1 = G.make_clone(bare, tmp_path / "h1", "h1")
    f0 = tmp_path / "h0" / "memory-shared.json"
    f1 = tmp_path / "h1" / "memory-shared.json"
    save(f0)
    G.ok(G.crdtfs("sync", h0))
    G.ok(G.crdtfs("sync", h1))
    save(f1, {"k": "h1", "_crdt_metadata": md("from-h1", 1, "h1")})
    G.ok(G.crdtfs("sync", h1))
    ours = {"k": "h0", "_crdt_metadata": md("from-h0", 2, "h0")}
    late = {"k": "late", "_crdt_metadata": md("late-save", 3, "h0")}
    save(f0, ours)
    save(tmp_path / "late.json", ours, late)
    env = open_shim(
        "/h0/memory-shared.json", on="rename",
        run="cp '%s' '%s.new' && mv '%s.new' '%s'" % (
            tmp_path / "late.json", f0, f0, f0))
    G.ok(G.crdtfs("sync", h0, env=env))
    want = {"seed", "from-h1", "from-h0", "late-save"}
    got = {e["_crdt_metadata"]["unique_id"]
           for e in json.loads(f0.read_text())}
    assert got == want
    pushed = json.loads(G.git("show", "main:memory-shared.json",
                              cwd=bare).stdout)
    assert {e["_crdt_metadata"]["unique_id"] for e in pushed} == want
    assert G.git("status", "--porcelain", cwd=h0).stdout == ""


def test_executable_host_file_does_not_flip_modes(tmp_path):
    # A host file with its x bit set (copied from a FAT disk, say) was
    # committed as 100755, written back elsewhere as 100644, and the two
    # hosts then committed mode changes back and forth on every sync.
    bare = G.make_bare(tmp_path / "remote.git")
    h0 = G.make_clone(bare, tmp_path / "h0", "h0")
    h1 = G.make_clone(bare, tmp_path / "h1", "h1")
    f0 = tmp_path / "h0" / "memory-h0.json"
    f0.write_text("[]\n")
    f0.chmod(0o755)
    (tmp_path / "h1" / "memory-h1.json").write_text("[]\n")
    G.ok(G.crdtfs("sync", h0))
    G.ok(G.crdtfs("sync", h1))
    f0.write_text(json.dumps([{"x": 1, "_crdt_metadata": {
        "unique_id": "x", "timestamp": now_at(1), "version": 1,
        "host": "h0"}}]) + "\n")
    G.ok(G.crdtfs("sync", h0))
    G.ok(G.crdtfs("sync", h1))
    commits = G.git("rev-list", "--count", "main", cwd=bare).stdout
    for _ in range(2):
        G.ok(G.crdtfs("sync", h0))
        G.ok(G.crdtfs("sync", h1))
    assert G.git("rev-list", "--count", "main", cwd=bare).stdout == commits
    tree = G.git("ls-tree", "main", cwd=bare).stdout
    assert "100755" not in tree and tree.count("100644 blob") == 2
    assert os.stat(f0).st_mode & 0o777 == 0o755  # the file is left alone


@pytest.mark.parametrize("lock", ["h0/.git/index.lock",
                                  "h0/.git/refs/heads/main.lock",
                                  "remote.git/refs/heads/main.lock"])
def test_stale_lock_is_named_with_its_cure(tmp_path, lock):
    # A git (or sync) killed while it held a lock leaves the lock file, and
    # every later sync fails on it.  The message names the file and says
    # what to do; once it is removed, the next sync pushes everything.
    bare = G.make_bare(tmp_path / "remote.git")
    h0 = G.make_clone(bare, tmp_path / "h0", "h0")
    hf = tmp_path / "h0" / "memory-h0.json"
    hf.write_text("[]\n")
    G.ok(G.crdtfs("sync", h0))
    hf.write_text(json.dumps([{"x": 1, "_crdt_metadata": {
        "unique_id": "x", "timestamp": now_at(1), "version": 1,
        "host": "h0"}}]) + "\n")
    (tmp_path / lock).write_text("")
    head = G.git("rev-parse", "HEAD", cwd=h0).stdout
    p = G.crdtfs("sync", "--attempts", "2", h0)
    assert p.returncode == 1, p.stderr
    if lock.startswith("h0/"):
        # Nothing committed under a local lock: a `git commit` waiting in
        # its editor with index.lock held would fail to move the branch.
        assert G.git("rev-parse", "HEAD", cwd=h0).stdout == head
    assert ("%s exists (" % (tmp_path / lock)) in p.stderr
    assert p.stderr.rstrip().endswith(
        "another git is at work there, or one was killed; "
        "if none is running, remove it")
    (tmp_path / lock).unlink()
    G.ok(G.crdtfs("sync", h0))
    assert G.git("show", "main:memory-h0.json", cwd=bare).stdout == \
        hf.read_text()


def _modes(repo):
    """Modes of a repository's loose objects, their directories and its
    branch, by path: what other users of a shared remote depend on."""
    out = {}
    objs = os.path.join(repo, "objects")
    for d in os.listdir(objs):
        if len(d) != 2:
            continue
        out[d] = os.stat(os.path.join(objs, d)).st_mode
        for f in os.listdir(os.path.join(objs, d)):
            out[d + "/" + f] = os.stat(os.path.join(objs, d, f)).st_mode
    ref = os.path.join(repo, "refs", "heads", "main")
    out["main"] = os.stat(ref).st_mode
    return out


def _push_both_ways(h0, remotes, mask):
    """crdtfs sync of h0 into its remote remotes[0], and `git push` of the
    same branch into remotes[1], both under umask `mask`; then the modes
    in both must be the same (git's are the oracle)."""
    old = os.umask(mask)
    try:
        G.ok(G.crdtfs("sync", h0))
        G.git("push", "-q", remotes[1], "main", cwd=h0)
    finally:
        os.umask(old)
    ours, gits = _modes(remotes[0]), _modes(remotes[1])
    assert sum("/" in k for k in ours) >= 3  # blob, tree and commit
    assert {k: oct(v) for k, v in ours.items()} == \
        {k: oct(v) for k, v in gits.items()}


@pytest.mark.parametrize("shared", ["group", "all", "0640", "0660"])
@pytest.mark.parametrize("mask", [0o077, 0o022],
                         ids=["umask077", "umask022"])
def test_push_into_a_shared_remote_sets_the_modes_git_would(tmp_path, shared,
                                                            mask):
    # A local push wrote with the pusher's umask alone: in a remote made
    # with `git init --shared=group` another member of the group could
    # not read the objects, nor add objects to the directories it made.
    # The oracle: `git push` of the same commit, under the same umask,
    # into a remote made the same way.
    remotes = []
    for name in ("crdtfs.git", "git.git"):
        G.git("init", "-q", "--bare", "--shared=" + shared, "-b", "main",
              str(tmp_path / name))
        remotes.append(str(tmp_path / name))
    h0 = G.make_clone(remotes[0], tmp_path / "h0", "h0")
    (tmp_path / "h0" / "memory-h0.json").write_text(json.dumps([{
        "x": 1, "_crdt_metadata": {"unique_id": "x", "timestamp": now_at(1),
                                   "version": 1, "host": "h0"}}]) + "\n")
    _push_both_ways(h0, remotes, mask)


@pytest.mark.parametrize("shared,mask", [("group", 0o007), ("0640", 0o027)],
                         ids=["group-umask007", "0640-umask027"])
def test_push_into_a_shared_remote_never_links_a_private_object(tmp_path,
                                                                shared, mask):
    # Objects committed here under umask 077 are private (0400).  A push
    # into an older remote, whose object directories exist, hard-links
    # loose objects: linked as they are, the group could not read them.
    # The umask of the push itself is what the remote asks for, so only
    # the check of each object's mode keeps them out.
    remotes = []
    for name in ("crdtfs.git", "git.git"):
        r = tmp_path / name
        G.git("init", "-q", "--bare", "--shared=" + shared, "-b", "main",
              str(r))
        for i in range(256):
            os.mkdir(r / "objects" / ("%02x" % i))
            os.chmod(r / "objects" / ("%02x" % i), 0o2770)
        remotes.append(str(r))
    h0 = G.make_clone(remotes[0], tmp_path / "h0", "h0")
    (tmp_path / "h0" / "memory-h0.json").write_text("[]\n")
    old = os.umask(0o077)
    try:
        G.git("add", "memory-h0.json", cwd=h0)
        G.git("commit", "-qm", "private objects", cwd=h0)
    finally:
        os.umask(old)
    _push_both_ways(h0, remotes, mask)


def test_a_remote_it_cannot_write_is_to_fix_not_to_wait_out(tmp_path):
    # Exit 3 means "unreachable: try later", which a cron job does for
    # ever; a remote that was reached but refuses the objects (here a
    # read-only file system; permissions and a full disk alike) is exit 1.
    if os.getuid() != 0:
        pytest.skip("needs root for a read-only bind mount")
    bare = G.make_bare(tmp_path / "remote.git")
    ro = tmp_path / "ro.git"
    ro.mkdir()
    subprocess.run(["mount", "--bind", bare, str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)],
                       check=True)
        h0 = G.make_clone(str(ro), tmp_path / "h0", "h0")
        (tmp_path / "h0" / "memory-h0.json").write_text("[]\n")
        p = G.crdtfs("sync", h0)
    finally:
        subprocess.run(["umount", str(ro)], check=True)
    assert p.returncode == 1, p.stderr
    assert p.stderr.startswith(
        "crdtfs sync: cannot write objects into the remote: ")
    assert p.stderr.endswith(": Read-only file system\n")


def test_a_remote_that_is_a_file_is_named(tmp_path):
    # It said "remote unreachable ... Permission denied" with exit 3, which
    # tells a cron job to wait for the network.
    h0 = tmp_path / "h0"
    G.git("init", "-q", "-b", "main", str(h0))
    (tmp_path / "remote").write_text("not a repository\n")
    G.git("remote", "add", "origin", str(tmp_path / "remote"), cwd=h0)
    (h0 / "memory-h0.json").write_text("[]\n")
    p = G.crdtfs("sync", h0)
    assert (p.returncode, p.stderr) == (1, (
        "crdtfs sync: remote %s is not a directory, so not a git "
        "repository\n" % (tmp_path / "remote")))


@pytest.mark.parametrize("url", [".", "{h0}/.git", "file://{h0}"])
def test_a_remote_that_is_this_repository_is_named(tmp_path, url):
    # It committed, "pushed -> origin/master" and exited 0: nothing left
    # the machine.
    h0 = tmp_path / "h0"
    G.git("init", "-q", "-b", "main", str(h0))
    G.git("remote", "add", "origin", url.format(h0=h0), cwd=h0)
    (h0 / "memory-h0.json").write_text("[]\n")
    p = G.crdtfs("sync", h0)
    assert (p.returncode, p.stderr) == (1, (
        'crdtfs sync: remote "origin" is this repository itself: nothing '
        'would leave it\n'))


def _sync_cannot_update(host, why):
    """A sync of `host` fails, exit 1, saying only that and why."""
    p = G.crdtfs("sync", host)
    assert (p.returncode, p.stderr) == (
        1, "crdtfs sync: cannot update the work tree: %s\n" % why)


def test_untracked_file_in_the_way_is_named(tmp_path):
    # A file the remote brings (notes.txt) already exists here, untracked
    # (a sync killed while checking it out leaves it so).  Sync refuses to
    # overwrite it, and says which file and what to do.
    bare = G.make_bare(tmp_path / "remote.git")
    h0 = G.make_clone(bare, tmp_path / "h0", "h0")
    h1 = G.make_clone(bare, tmp_path / "h1", "h1")
    (tmp_path / "h1" / "memory-h1.json").write_text("[]\n")
    (tmp_path / "h1" / "notes.txt").write_text("from h1\n")
    G.git("add", "notes.txt", cwd=h1)
    G.git("commit", "-qm", "notes", cwd=h1)
    G.ok(G.crdtfs("sync", h1))
    (tmp_path / "h0" / "memory-h0.json").write_text("[]\n")
    (tmp_path / "h0" / "notes.txt").write_text("half a no")
    _sync_cannot_update(h0, "notes.txt is in the way (not committed here, "
                            "and the remote has another); move it away or "
                            "commit it")
    assert (tmp_path / "h0" / "notes.txt").read_text() == "half a no"
    (tmp_path / "h0" / "notes.txt").unlink()
    G.ok(G.crdtfs("sync", h0))
    assert (tmp_path / "h0" / "notes.txt").read_text() == "from h1\n"


def test_tracked_file_with_changes_in_the_way_is_named_so(tmp_path):
    """A committed file changed here but not committed (sync commits only
    host files and descriptors), which the remote changed too: the
    message said `not committed here`, words for an untracked file."""
    bare, h1, h2 = _text_file_changed_upstream(tmp_path, "README")
    (h2 / "README").write_text("mine, not committed\n")
    (h2 / "memory-h2.json").write_text("[]\n")
    _sync_cannot_update(h2, "README has changes not committed here (sync "
                            "commits only host files and descriptors), and "
                            "the remote changed it too; commit or stash "
                            "them")
    assert (h2 / "README").read_text() == "mine, not committed\n"


def age(path, seconds=3600):
    """Make `path` look `seconds` old (leftovers are swept after 60 s)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_sync_sweeps_what_an_interrupted_sync_left(tmp_path):
    # Killed mid-way, a sync leaves its scratch directory in .git and a
    # hidden temp file beside a host file.  The next sync removes a temp
    # file only if its bytes are in the repository (after a crash at the
    # wrong moment it can hold the user's displaced save), and names the
    # others; young ones may be a prepare's, still at work, and other
    # names are not ours: both are left alone.
    bare = G.make_bare(tmp_path / "remote.git")
    h0 = G.make_clone(bare, tmp_path / "h0", "h0")
    w = tmp_path / "h0"
    (w / "memory-h0.json").write_text("[]\n")
    G.ok(G.crdtfs("sync", h0))
    scratch = w / ".git" / "crdtfs-merge-Ab12Cd"
    scratch.mkdir()
    (scratch / "check-memory-h0.json").write_text("[]\n")
    odd = w / ".git" / "crdtfs-merge-Ef34Gh"  # not as a sync leaves it
    (odd / "dir").mkdir(parents=True)
    committed = w / ".memory-h0.json.tmp.aaaaaa"
    committed.write_text("[]\n")
    save = w / ".memory-h0.json.del.bbbbbb"
    save.write_text("[1]\n")
    young = w / ".memory-h0.json.tmp.cccccc"
    young.write_text("[]\n")
    other = w / ".notes.txt.tmp.dddddd"
    other.write_text("[]\n")
    for f in (committed, save, other):
        age(f)
    p = G.ok(G.crdtfs("sync", h0))
    assert p.stderr == (
        "crdtfs sync: %s: warning: a scratch directory an interrupted sync "
        "left; cannot remove it: Directory not empty\n"
        "crdtfs sync: .memory-h0.json.del.bbbbbb: warning: left beside "
        "memory-h0.json by an interrupted sync or prepare; it holds bytes "
        "that are in no commit here: look at it, then remove it\n" % odd)
    assert not scratch.exists() and not committed.exists()
    assert (odd / "dir").is_dir()
    shutil.rmtree(odd)
    assert save.read_text() == "[1]\n"
    assert young.exists() and other.exists()
    assert [n for n in os.listdir(w / ".git")
            if n.startswith("crdtfs-merge-")] == []


def test_sync_killed_while_replacing_a_host_file_is_swept(tmp_path,
                                                          open_shim):
    # A real crash: h0's sync is killed just before it renames the CRDT
    # merge of a host file both hosts changed over h0's copy.  The next
    # sync finishes the job and leaves no temp file or scratch directory.
    md = lambda uid, t, h: {"host": h, "timestamp": now_at(t),  # noqa
                            "version": 1, "unique_id": uid}
    bare = G.make_bare(tmp_path / "remote.git")
    h0 = G.make_clone(bare, tmp_path / "h0", "h0")
    h1 = G.make_clone(bare, tmp_path / "h1", "h1")
    f0 = tmp_path / "h0" / "memory-shared.json"
    f1 = tmp_path / "h1" / "memory-shared.json"
    f0.write_text(json.dumps([{"k": 0, "_crdt_metadata": md("a", 0, "h0")}]))
    G.ok(G.crdtfs("sync", h0))
    G.ok(G.crdtfs("sync", h1))
    f1.write_text(json.dumps([{"k": 1, "_crdt_metadata": md("b", 1, "h1")}]))
    G.ok(G.crdtfs("sync", h1))
    f0.write_text(json.dumps([{"k": 2, "_crdt_metadata": md("c", 2, "h0")}]))
    env = open_shim("/h0/memory-shared.json", on="rename",
                    run="kill -9 $PPID")
    p = G.crdtfs("sync", h0, env=env)
    assert p.returncode == -9
    w = tmp_path / "h0"
    left = [n for n in os.listdir(w) if n.startswith(".memory-shared")]
    assert len(left) == 1 and ".tmp." in left[0]
    scratch = [n for n in os.listdir(w / ".git")
               if n.startswith("crdtfs-merge-")]
    assert len(scratch) == 1
    age(w / left[0])
    p = G.ok(G.crdtfs("sync", h0))
    assert p.stderr == ""
    assert [n for n in os.listdir(w) if n.startswith(".memory-")] == []
    assert [n for n in os.listdir(w / ".git")
            if n.startswith("crdtfs-merge-")] == []
    got = {e["_crdt_metadata"]["unique_id"]
           for e in json.loads(f0.read_text())}
    assert got == {"b", "c"}  # the union of both sides (neither kept a)


@pytest.mark.parametrize("path", ["fast-forward", "merge", "first pull",
                                  "refused fast-forward"])
def test_damaged_host_file_new_from_the_remote_is_reported(tmp_path, path):
    # A host file the remote brings, damaged (a tool died writing it, then
    # someone committed it with git), is taken as it is (there is nothing
    # of ours to merge it with) and named in a warning, whichever way the
    # sync integrates: the merge and the first pull said nothing.
    bare = G.make_bare(tmp_path / "remote.git")
    h0 = G.make_clone(bare, tmp_path / "h0", "h0")
    h1 = G.make_clone(bare, tmp_path / "h1", "h1")
    if path != "first pull":
        (tmp_path / "h0" / "memory-h0.json").write_text("[]\n")
        G.ok(G.crdtfs("sync", h0))
        G.git("pull", "-q", cwd=h1)
    damaged = '[\n{"a": 1,\n'
    (tmp_path / "h1" / "memory-hx.json").write_text(damaged)
    if path == "refused fast-forward":
        # memory-h0.json damaged too: that one is not taken but merged
        # (h0 has a good copy), and memory-hx.json is named once.
        (tmp_path / "h1" / "memory-h0.json").write_text("[\n")
    G.git("add", "-A", cwd=h1)
    G.git("commit", "-qm", "damaged", cwd=h1)
    G.git("push", "-q", "origin", "main", cwd=h1)
    if path == "merge":
        (tmp_path / "h0" / "memory-h0.json").write_text(json.dumps([{
            "k": 1, "_crdt_metadata": {"unique_id": "k", "version": 1,
                                       "timestamp": now_at(1),
                                       "host": "h0"}}]))
    # h0 is the owner of memory-h0.json: its good copy repairs it.
    p = G.ok(G.crdtfs("sync", "--host", "h0", h0))
    hx = ("crdtfs sync: origin/main:memory-hx.json:3:1: error: unexpected "
          "end of file: the JSON array is not closed (truncated file?)\n")
    if path == "refused fast-forward":
        assert p.stderr.count("memory-hx.json") == 1 and hx in p.stderr
        assert "origin/main:memory-h0.json:2:1: error:" in p.stderr
        assert (tmp_path / "h0" / "memory-h0.json").read_text() == "[]\n"
    else:
        assert p.stderr == hx
    assert {"fast-forward": "fast-forwarded", "merge": "merged",
            "first pull": "fast-forwarded",
            "refused fast-forward": "merged"}[path] in p.stdout
    assert (tmp_path / "h0" / "memory-hx.json").read_text() == damaged


def test_sync_result_names_the_remote_branch(tmp_path):
    # A local branch `wt` that tracks origin/main syncs with origin/main,
    # and says so (the line said origin/wt, a branch that does not exist).
    bare = G.make_bare(tmp_path / "remote.git")
    h0 = G.make_clone(bare, tmp_path / "h0", "h0")
    (tmp_path / "h0" / "memory-h0.json").write_text("[]\n")
    G.ok(G.crdtfs("sync", h0))
    G.git("checkout", "-q", "-b", "wt", cwd=h0)
    G.git("config", "branch.wt.remote", "origin", cwd=h0)
    G.git("config", "branch.wt.merge", "refs/heads/main", cwd=h0)
    (tmp_path / "h0" / "memory-h0.json").write_text("[ ]\n")
    p = G.ok(G.crdtfs("sync", h0))
    head = G.git("rev-parse", "HEAD", cwd=h0).stdout.strip()
    assert p.stdout == "crdtfs sync: committed; pushed -> origin/main " \
                       "at %s\n" % head[:12]
    assert G.git("rev-parse", "main", cwd=bare).stdout.strip() == head
    # Again, with nothing new: it said "pushed" too.
    p = G.ok(G.crdtfs("sync", h0))
    assert p.stdout == "crdtfs sync: nothing to push -> origin/main " \
                       "at %s\n" % head[:12]


def _init_host(path, name):
    """A host set up by `git init` on master (not a clone), own identity."""
    G.git("init", "-q", "-b", "master", str(path))
    G.git("config", "user.name", name, cwd=path)
    G.git("config", "user.email", "%s@example" % name, cwd=path)
    return path


HAS_GIT_DAEMON = os.path.exists("/usr/lib/git-core/git-daemon") or \
    bool(shutil.which("git-daemon"))


@pytest.mark.parametrize("how", ["path", pytest.param(
    "git-daemon", marks=pytest.mark.skipif(not HAS_GIT_DAEMON,
                                           reason="git daemon not installed"))])
def test_a_host_set_up_with_git_init_syncs_the_remote_default_branch(
        tmp_path, how):
    """A second machine set up by `git init` and `git remote add` (not a
    clone) is on master where the remote's branch is main.  With no
    upstream configured, sync follows the remote's default branch: it used
    to push a master of its own, which no other host ever saw, and exit 0.
    The remote was made with HEAD -> master, unborn: through a path the
    first push points it at main; through git:// it stays unborn and the
    remote's only branch is its default.  The choice is recorded as the
    branch's upstream, so a master appearing there later changes nothing;
    a branch made on purpose is still pushed as itself."""
    base = tmp_path / "srv"
    base.mkdir()
    bare = G.make_bare(base / "r.git", branch="master")
    daemon = G.GitDaemon(base) if how == "git-daemon" else None
    try:
        url = daemon.url("r.git") if daemon else bare
        h1 = G.make_clone(bare, tmp_path / "h1", "h1")
        G.git("remote", "set-url", "origin", url, cwd=h1)
        src = tmp_path / "s1.jsonl"
        G.write_jsonl(src, entity("from-h1", ["1"]))
        G.ok(G.crdtfs("prepare", "--host", "h1", src, h1, now=now_at(0)))
        G.ok(G.crdtfs("sync", h1))

        h2 = _init_host(tmp_path / "h2", "h2")
        G.git("remote", "add", "origin", url, cwd=h2)
        src2 = tmp_path / "s2.jsonl"
        G.write_jsonl(src2, entity("from-h2", ["2"]))
        G.ok(G.crdtfs("prepare", "--host", "h2", src2, h2, now=now_at(1)))
        p = G.ok(G.crdtfs("sync", h2))
        assert "pushed -> origin/main " in p.stdout, p.stdout
        assert p.stderr == (
            "crdtfs sync: master: warning: no upstream and no "
            "origin/master: following origin/main, the remote's default "
            "branch, from now on (branch.master.merge)\n")
        assert G.git("config", "branch.master.merge",
                     cwd=h2).stdout.strip() == "refs/heads/main"
        assert G.git("for-each-ref", "--format=%(refname)", "refs/heads",
                     cwd=bare).stdout.split() == ["refs/heads/main"]
        G.ok(G.crdtfs("sync", h1))
        v1 = G.ok(G.crdtfs("merge", h1)).stdout
        assert v1 == G.ok(G.crdtfs("merge", h2)).stdout
        assert "from-h1" in v1 and "from-h2" in v1

        # A master appearing on the remote later: h2 stays on main.
        G.git("push", "-q", bare, "main:master", cwd=h1)
        G.write_jsonl(src2, entity("from-h2", ["2", "3"]))
        G.ok(G.crdtfs("prepare", "--host", "h2", src2, h2, now=now_at(2)))
        p = G.ok(G.crdtfs("sync", h2))
        assert "pushed -> origin/main " in p.stdout and p.stderr == ""

        # A branch made on purpose is pushed as itself.
        G.git("checkout", "-q", "-b", "experiment", cwd=h1)
        G.write_jsonl(src, {**entity("from-h1", ["1"]),
                            **entity("private", ["p"])})
        G.ok(G.crdtfs("prepare", "--host", "h1", src, h1, now=now_at(3)))
        p = G.ok(G.crdtfs("sync", h1))
        assert "pushed -> origin/experiment " in p.stdout, p.stdout
        assert "private" not in G.git("show", "main:memory-h1.json",
                                      cwd=bare).stdout
    finally:
        if daemon:
            daemon.stop()


def test_a_one_off_remote_never_changes_the_upstream(tmp_path):
    """Following the remote's default branch is recorded as the branch's
    upstream only for its own remote: `--remote other` once wrote
    branch.master.merge for `other`'s branch, and the next plain sync
    pushed a new main to origin beside its master."""
    origin = G.make_bare(tmp_path / "origin.git")
    other = G.make_bare(tmp_path / "other.git")
    for bare, name in ((origin, "o1"), (other, "x1")):
        h = G.make_clone(bare, tmp_path / name, name)
        (tmp_path / name / ("memory-%s.json" % name)).write_text("[]\n")
        G.ok(G.crdtfs("sync", h))
    h2 = _init_host(tmp_path / "h2", "h2")
    G.git("remote", "add", "origin", origin, cwd=h2)
    G.git("remote", "add", "other", other, cwd=h2)
    G.git("config", "branch.master.remote", "origin", cwd=h2)
    (h2 / "memory-h2.json").write_text("[]\n")
    p = G.ok(G.crdtfs("sync", "--remote", "other", h2))
    assert "pushed -> other/main " in p.stdout
    assert p.stderr.endswith("following other/main, the remote's default "
                             "branch, for this sync\n"), p.stderr
    assert G.git("config", "branch.master.merge", cwd=h2,
                 check=False).stdout == ""
    p = G.ok(G.crdtfs("sync", h2))
    assert "pushed -> origin/main " in p.stdout
    assert "from now on (branch.master.merge)" in p.stderr
    for bare in (origin, other):
        assert G.git("for-each-ref", "--format=%(refname)", "refs/heads",
                     cwd=bare).stdout.split() == ["refs/heads/main"]


def test_sync_of_nothing_says_so(tmp_path):
    bare = G.make_bare(tmp_path / "remote.git")
    h0 = G.make_clone(bare, tmp_path / "h0", "h0")
    p = G.ok(G.crdtfs("sync", h0))
    assert p.stdout == "crdtfs sync: not pushed -> origin/main at " \
                       "(no commit yet)\n"


class SilentServer:
    """A TCP server that accepts connections and never answers (a hung
    git daemon, a half-open VPN path)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            while True:
                self.accepted.append(self.sock.accept()[0])
        except OSError:
            pass

    def host(self, path):
        """A host with one host file, whose origin is this server."""
        G.git("init", "-q", "-b", "main", str(path))
        G.git("remote", "add", "origin",
              "git://127.0.0.1:%d/x.git" % self.port, cwd=path)
        (path / "memory-h0.json").write_text("[]\n")
        return path

    def close(self):
        for c in self.accepted:
            c.close()
        self.sock.close()


def test_silent_remote_times_out(tmp_path):
    # libgit2 1.5 waits for an answer forever; sync gives up after
    # --timeout seconds of silence, keeps the commit and exits 3.
    srv = SilentServer()
    try:
        h0 = srv.host(tmp_path / "h0")
        p = G.crdtfs("sync", "--timeout", "2", h0, timeout=60)
        assert p.returncode == 3, p.stderr
        assert p.stderr == ("crdtfs sync: remote unreachable: no answer "
                            "for 2 s (--timeout) (local commit kept)\n")
        assert srv.accepted
        assert G.git("log", "--format=%s", cwd=h0).stdout.startswith(
            "crdtfs: update memory-h0.json")
    finally:
        srv.close()


# ---------------------------------------------------------------- driver

def _driver_repos(tmp_path, with_driver):
    a = tmp_path / ("a%d" % with_driver)
    G.git("init", "-q", "-b", "main", str(a))
    if with_driver:
        (a / ".gitattributes").write_text("memory-*.json merge=crdtfs\n")
    md = lambda uid, t, v, h: {"host": h, "timestamp": now_at(t),  # noqa
                               "version": v, "unique_id": uid}
    base = [{"k": 1, "_crdt_metadata": md("u1", 0, 1, "a")},
            {"k": 9, "_crdt_metadata": md("u9", 1, 1, "a")}]
    (a / "memory-s.json").write_text(json.dumps(base, indent=2))
    G.git("add", "-A", cwd=a)
    G.git("commit", "-qm", "base", cwd=a)
    b = tmp_path / ("b%d" % with_driver)
    G.git("clone", "-q", str(a), str(b))
    for r in (a, b):
        if with_driver:
            G.git("config", "merge.crdtfs.driver",
                  "%s merge-driver %%O %%A %%B %%L %%P" % G.CRDTFS, cwd=r)
    ours = [{"k": 2, "_crdt_metadata": md("u1", 10, 2, "a")},
            {"k": 9, "_crdt_metadata": md("u9", 1, 1, "a")},
            {"k": 4, "_crdt_metadata": md("u4", 11, 1, "a")}]
    theirs = [{"k": 3, "_crdt_metadata": md("u1", 5, 2, "b")},
              {"k": 9, "_crdt_metadata": md("u9", 1, 1, "a")},
              {"k": 5, "_crdt_metadata": md("u5", 12, 1, "b")}]
    (a / "memory-s.json").write_text(json.dumps(ours, indent=2))
    G.git("commit", "-qam", "ours", cwd=a)
    (b / "memory-s.json").write_text(json.dumps(theirs, indent=2))
    G.git("commit", "-qam", "theirs", cwd=b)
    return a, b


def test_merge_driver_resolves_real_git_merge(tmp_path):
    # Without the driver, git leaves conflict markers.
    a0, b0 = _driver_repos(tmp_path, False)
    p = G.git("pull", "-q", "--no-rebase", "--no-edit", str(b0), "main",
              cwd=a0, check=False)
    assert p.returncode != 0
    assert "<<<<<<<" in (a0 / "memory-s.json").read_text()

    a, b = _driver_repos(tmp_path, True)
    G.git("pull", "-q", "--no-rebase", "--no-edit", str(b), "main", cwd=a)
    got = (a / "memory-s.json").read_bytes()
    assert b"<<<<" not in got
    rows = json.loads(got)
    assert [(e["_crdt_metadata"]["unique_id"], e["k"]) for e in rows] == \
        [("u9", 9), ("u1", 2), ("u4", 4), ("u5", 5)]
    assert got == G.ok(G.crdtfs("merge", a)).stdout.encode()
    assert G.git("status", "--porcelain", cwd=a).stdout == ""
    # The other direction gives the same bytes.
    G.git("pull", "-q", "--no-rebase", "--no-edit", str(a), "main", cwd=b)
    assert (b / "memory-s.json").read_bytes() == got


def test_merge_driver_damaged_input(tmp_path):
    o, a, b = (tmp_path / n for n in ("o", "a", "b"))
    o.write_text("[]\n")
    a.write_text('[\n{"k":1,"_crdt_metadata":{"host":"a","timestamp":'
                 '"2026-01-01T00:00:00Z","version":1,"unique_id":"u1"}}\n]\n')
    b.write_text('[\n{"k":2,"_crdt_metadata":{"host":"b","timestamp":'
                 '"2026-01-02T00:00:00Z","version":1,"unique_id":"u2"}},\n'
                 '{"k":3,"_crdt_metad')
    p = G.crdtfs("merge-driver", o, a, b)
    assert p.returncode == 0, p
    assert "error" in p.stderr
    rows = json.loads(a.read_text())
    assert [e["k"] for e in rows] == [1, 2]
    # A file that cannot be read at all fails the driver.
    assert G.crdtfs("merge-driver", o, a, tmp_path / "missing").returncode \
        == 1
    # Given %L %P, messages name the host file and the side, not git's
    # temporary files (gone when the message is read).
    a.write_text("[]\n")
    p = G.crdtfs("merge-driver", o, a, b, "7", "memory-b.json")
    assert p.returncode == 0, p
    assert p.stderr.startswith(
        "crdtfs merge-driver: memory-b.json (theirs):3:"), p.stderr
    assert str(b) not in p.stderr
    p = G.crdtfs("merge-driver", o, tmp_path / "gone", b, "7",
                 "memory-b.json")
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert lines[0] == ("crdtfs merge-driver: memory-b.json (ours): error: "
                        "cannot read: No such file or directory")
    assert lines[-1] == ("crdtfs merge-driver: memory-b.json not merged; "
                         "git keeps the conflict")


def test_merge_driver_keeps_json_lines(tmp_path):
    o, a, b = (tmp_path / n for n in ("o", "a", "b"))
    o.write_text("")
    line = ('{"k":%d,"_crdt_metadata":{"host":"a","timestamp":'
            '"2026-01-0%dT00:00:00Z","version":1,"unique_id":"u%d"}}\n')
    a.write_text(line % (1, 1, 1))
    b.write_text(line % (2, 2, 2))
    G.ok(G.crdtfs("merge-driver", o, a, b))
    assert a.read_text() == line % (1, 1, 1) + line % (2, 2, 2)
    # an empty ours takes the format of theirs; arrays stay arrays
    a.write_text("")
    G.ok(G.crdtfs("merge-driver", o, a, b))
    assert a.read_text() == line % (2, 2, 2)
    a.write_text("[\n" + line % (1, 1, 1) + "]\n")
    G.ok(G.crdtfs("merge-driver", o, a, b))
    assert json.loads(a.read_text())[1]["k"] == 2


# ---------------------------------------------------------------- 10 hosts

def test_ten_hosts_random_converge(tmp_path):
    seed = int(os.environ.get("CRDTFS_TEST_SEED", "20260101"))
    rng = random.Random(seed)
    nhosts, min_ops, workers = 10, 1000, 4
    bare = G.make_bare(tmp_path / "remote.git")
    names = ["h%d" % i for i in range(nhosts)]
    clones = {h: G.make_clone(bare, tmp_path / h, h) for h in names}
    state = {h: ({}, set()) for h in names}  # the tool's memory per host
    skew = {h: rng.randint(-3600, 3600) for h in names}  # wall clocks
    pool = ["ent%02d" % i for i in range(60)]  # shared entity names
    records = set()
    rec_lock = threading.Lock()
    stats = {"prepare": 0, "sync": 0, "offline": 0, "rejected": 0}
    t_start = time.monotonic()

    def clock(h):
        return G.rfc3339(time.time_ns() + skew[h] * 10**9)

    def edit(h, r):
        ents, rels = state[h]
        k = r.random()
        if not ents or k < 0.35:
            n = r.choice(pool)
            ents.setdefault(n, {"entityType": "t", "observations": []})
            ents[n]["observations"].append("%s-%d" % (h, r.randrange(10**6)))
        elif k < 0.75:
            n = r.choice(sorted(ents))
            ents[n]["observations"].append("%s-%d" % (h, r.randrange(10**6)))
        elif k < 0.85:
            n = r.choice(sorted(ents))
            ents[n]["entityType"] = r.choice(["person", "project", "t"])
        else:
            a, b = r.choice(sorted(ents)), r.choice(sorted(ents))
            rels.add((a, b, r.choice(["knows", "uses"])))
        src = os.path.join(str(tmp_path), "src-%s.jsonl" % h)
        G.write_jsonl(src, ents, rels)
        G.ok(G.crdtfs("prepare", "-q", "--host", h, src, clones[h],
                      now=clock(h)))
        rows = G.host_lines(os.path.join(clones[h], "memory-%s.json" % h))
        with rec_lock:
            records.update(G.record_of(raw, o) for raw, o in rows)
            stats["prepare"] += 1

    def sync(h, offline=False):
        p = G.crdtfs("sync", "--host", h, clones[h])
        with rec_lock:
            stats["sync"] += 1
            stats["rejected"] += "after rejected" in p.stdout
        if offline:
            assert p.returncode == 3, p
            assert "remote unreachable" in p.stderr
            assert "(local commit kept)" in p.stderr
            with rec_lock:
                stats["offline"] += 1
        else:
            G.ok(p)

    def one(job):
        h, kind, r, offline = job
        if kind == "edit":
            edit(h, r)
        else:
            sync(h, offline)

    ops, batch_no, outage_done = 0, 0, False
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        while ops < min_ops:
            batch_no += 1
            # Midway: the remote disappears for a few batches.
            outage = not outage_done and ops >= min_ops // 2
            if outage:
                os.rename(bare, str(bare) + ".away")
            for _ in range(4 if outage else 1):
                hs = rng.sample(names, rng.randint(1, workers))
                jobs = [(h, "edit" if rng.random() < 0.6 else "sync",
                         random.Random(rng.random()), outage) for h in hs]
                for f in [ex.submit(one, j) for j in jobs]:
                    f.result()
                ops += len(jobs)
            if outage:
                os.rename(str(bare) + ".away", bare)
                outage_done = True
    # Everyone pushes what they have, then everyone syncs once more.
    for h in names:
        sync(h)
    for h in names:
        sync(h)
    took = time.monotonic() - t_start

    expected = G.expected_view(records)
    views = {h: G.ok(G.crdtfs("merge", clones[h])).stdout.encode()
             for h in names}
    assert len({v for v in views.values()}) == 1, "hosts disagree"
    got = views[names[0]]
    if got != expected:  # say which entries differ
        g = set(got.split(b",\n")) ^ set(expected.split(b",\n"))
        pytest.fail("merged view differs from the expectation: %s" %
                    sorted(g)[:4])
    nuids = len(json.loads(got))
    assert nuids >= 40
    assert stats["offline"] > 0 and stats["prepare"] + stats["sync"] >= \
        min_ops
    for h in names:
        assert G.git("status", "--porcelain", cwd=clones[h]).stdout == ""
    G.git("fsck", "--strict", "--no-dangling", cwd=bare)
    print("\nten hosts: seed %d, %d prepares, %d syncs (%d offline, %d "
          "with rejected pushes), %d entries, %d versions recorded, %.1f s"
          % (seed, stats["prepare"], stats["sync"], stats["offline"],
             stats["rejected"], nuids, len(records), took))


# ---------------------------------------------------------------- mount

try:
    import util as _mutil  # noqa: E402 - the mount tests' helpers
    _fuse_mark = _mutil.fuse_test_marker()
except Exception:  # pragma: no cover
    _fuse_mark = pytest.mark.skip(reason="mount helpers unavailable")


@_fuse_mark
@pytest.mark.parametrize("over_itself", [True, False])
def test_sync_of_a_mount_says_it_is_one(tmp_path, mount, over_itself):
    """The README allows mounting BACKING over itself; `crdtfs sync` on
    it then said "not a git repository" (the mount hides .git).  Syncing
    a mount, over itself or elsewhere, now says what it is."""
    bk = tmp_path / "bk"
    G.git("init", "-q", "-b", "main", str(bk))
    (bk / "memory-a.json").write_text("[]\n")
    mnt = str(bk) if over_itself else str(tmp_path / "mnt")
    d = mount(str(bk), mountpoint=mnt)
    p = G.crdtfs("sync", mnt)
    assert (p.returncode, p.stderr) == (1, (
        "crdtfs sync: %s is a crdtfs mount, which hides .git: sync its "
        "backing directory (a mount over the backing directory itself "
        "leaves it out of reach: mount elsewhere)\n" % mnt))
    d.stop()


@_fuse_mark
def test_mount_background_sync(tmp_path, mount):
    bare, (h1, h2) = _two_hosts(tmp_path)
    src = tmp_path / "s.jsonl"
    G.write_jsonl(src, entity("a", ["1"]))
    G.ok(G.crdtfs("prepare", "--host", "h1", src, h1, now=now_at(0)))
    G.ok(G.crdtfs("sync", h1))
    d = mount(h1, "-o", "sync=1")
    mnt = d.mnt

    def wait_for(pred, what, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.1)
        pytest.fail("timed out waiting for %s\n%s" % (what,
                                                      "\n".join(d.lines)))

    # A write through the mount is committed and pushed by the syncer.
    host_file = os.path.join(mnt, "memory-h1.json")
    rows = json.loads(open(host_file).read())
    rows.append({"b": 1, "_crdt_metadata": {
        "host": "h1", "timestamp": now_at(100), "version": 1,
        "unique_id": "via-mount"}})
    with open(host_file, "w") as f:
        f.write(json.dumps(rows))
    wait_for(lambda: "via-mount" in G.git(
        "show", "main:memory-h1.json", cwd=bare, check=False).stdout,
        "the mount's sync to push")

    # A change pushed by another host shows up in the merged view.
    G.ok(G.crdtfs("sync", h2))
    G.write_jsonl(tmp_path / "s2.jsonl", entity("from-h2", ["x"]))
    G.ok(G.crdtfs("prepare", "--host", "h2", tmp_path / "s2.jsonl", h2,
                  now=now_at(200)))
    G.ok(G.crdtfs("sync", h2))
    wait_for(lambda: "from-h2" in open(os.path.join(
        mnt, "unified-memory.json")).read(), "the pull to reach the view")
    d.stop()


def _first_sync_state(d):
    """The status file's sync object once the mount's first sync ended."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = _mutil.read_status(d.mnt)["sync"]
        if st["runs"] >= 1:
            return st
        time.sleep(0.05)
    pytest.fail("no sync ended\n" + "\n".join(d.lines))


@_fuse_mark
@pytest.mark.parametrize("told", [True, False])
def test_the_mounts_sync_is_told_its_host_name(tmp_path, mount, told):
    """A mount's sync took the hostname for this machine's host name, with
    no way to say otherwise: on a machine whose files are prepared as
    another host, it took that host's file for its own (warning that
    another machine wrote it, repairing it when damaged)."""
    host = "not-" + socket.gethostname()  # never the hostname
    _, (h1, h2) = _two_hosts(tmp_path)
    (pathlib.Path(h1) / "memory-h1.json").write_text(_line("a", "h1", 1))
    G.ok(G.crdtfs("sync", h1))
    G.ok(G.crdtfs("sync", h2))
    (pathlib.Path(h2) / ("memory-%s.json" % host)).write_text(
        _line("x", host, 2))
    G.ok(G.crdtfs("sync", h2))
    d = mount(h1, "-o", "sync=3600" + (",host=" + host if told else ""))
    d.allow(r"^crdtfs sync: ")
    said = [p["message"] for p in _first_sync_state(d)["last_problems"]]
    another = [m for m in said if "by another machine" in m]
    if told:
        assert len(another) == 1 and ("host name %s too" % host) in \
            another[0]
    else:
        assert another == []
    d.stop()


@_fuse_mark
def test_status_file_says_what_the_background_sync_did(tmp_path, mount):
    """A daemon's stderr is /dev/null: the status file is where a failing
    background sync says why, and a working one what it did."""
    _, (h1,) = _two_hosts(tmp_path, n=1)
    sync_state = _first_sync_state

    def ended_now(st):
        t = calendar.timegm(time.strptime(st["last_finished"],
                                          "%Y-%m-%dT%H:%M:%SZ"))
        return abs(t - time.time()) < 60

    d = mount(h1, "-o", "sync=3600,remote=nope")
    d.allow(r'^crdtfs sync: no remote named "nope"')
    st = sync_state(d)
    assert ended_now(st)
    del st["last_finished"]
    assert st == {"every_seconds": 3600, "remote": "nope", "runs": 1,
                  "failed_in_a_row": 1, "last_result": None,
                  "last_error": 'no remote named "nope" (git remote add ...)',
                  "last_problems": []}
    d.stop()

    G.write_jsonl(tmp_path / "s.jsonl", entity("a", ["1"]))
    G.ok(G.crdtfs("prepare", "--host", "h1", tmp_path / "s.jsonl", h1,
                  now=now_at(0)))
    d = mount(h1, "-o", "sync=3600")
    d.allow(r"^crdtfs sync: committed; pushed -> origin/main at ")
    st = sync_state(d)
    head = G.git("rev-parse", "HEAD", cwd=h1).stdout.strip()
    assert ended_now(st)
    assert (st["remote"], st["failed_in_a_row"], st["last_error"],
            st["last_result"]) == (
        None, 0, None, "committed; pushed -> origin/main at " + head[:12])
    d.stop()


@_fuse_mark
def test_unmount_while_the_mount_syncs_with_a_silent_remote(tmp_path,
                                                            mount):
    # The mount's syncer sat in libgit2's recv() forever, and unmount
    # waited for it: the daemon never exited.  Now stopping the syncer
    # interrupts its network I/O.
    srv = SilentServer()
    try:
        h0 = srv.host(tmp_path / "h0")
        d = mount(h0, "-o", "sync=1")
        deadline = time.monotonic() + 20
        while not srv.accepted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.accepted, "the syncer never connected"
        time.sleep(0.3)  # it is waiting for an answer now
        d.stop(timeout=10)
    finally:
        srv.close()
