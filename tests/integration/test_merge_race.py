# SPDX-License-Identifier: MIT
"""
The merged file, `crdtfs merge` and `crdtfs check` while a host file is
rewritten in place as it is scanned.  open_shim.c makes the writer act
between the first and second block of a scan (a read at 256 KiB), so the
scan sees the start of one content and the rest of the other: bytes of no
state of the file.  Such a scan must never be served or printed as the
merge; it is built again, and when the file never holds still the merge
fails and says why.
"""

import json
import os
import subprocess

import util

BLOCK = 256 * 1024


def host_file(pad):
    """About 360 KB of entries; `pad` more bytes in the first entry shift
    every later one."""
    entries = [util.entry("id-%d" % i, util.ts(i),
                          text="%0*d" % (800 + (pad if i == 0 else 0), i))
               for i in range(400)]
    return util.dumps_pretty(entries)


def racing(tmp_path, open_shim, **acts):
    """A backing directory and the environment of a merge whose scans of
    memory-a.json are raced: between two scans the writer switches the
    file between two contents."""
    b = tmp_path / "b"
    b.mkdir()
    a, c = tmp_path / "a.json", tmp_path / "c.json"
    a.write_bytes(host_file(0))
    c.write_bytes(host_file(7))
    assert os.path.getsize(a) > BLOCK + 4096
    host = b / "memory-a.json"
    host.write_bytes(c.read_bytes())
    (b / "memory-b.json").write_bytes(util.dumps_pretty(
        [util.entry("b-1", util.ts(5), host="b")]))
    toggle = ("if cmp -s {h} {a}; then cat {c} > {h}; else cat {a} > {h}; fi"
              .format(h=host, a=a, c=c))
    env = dict(os.environ)
    env.update(open_shim("memory-a.json", on="pread", offset=BLOCK,
                         run=toggle, **acts))
    return b, env


def run(env, *args):
    return subprocess.run([util.CRDTFS] + list(args), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=120)


def test_a_file_that_holds_still_after_some_scans_merges_as_it_ends(
        tmp_path, open_shim):
    # 5 scans of a first refresh and 1 of the second are raced; the
    # second scan of the second refresh sees one state
    b, env = racing(tmp_path, open_shim, run_times=6)
    p = run(env, "merge", str(b))
    assert (p.returncode, p.stderr) == (0, b"")
    assert p.stdout == util.oracle.merge_dir(str(b))
    assert len(json.loads(p.stdout)) == 401


def test_a_file_that_never_holds_still_is_refused(tmp_path, open_shim):
    b, env = racing(tmp_path, open_shim, run_every=1)
    p = run(env, "merge", str(b))
    assert (p.returncode, p.stdout) == (1, b"")
    assert p.stderr.decode() == (
        "crdtfs merge: %s: a host file kept changing while it was read; "
        "run again\n" % b)
    # check: the same reason, never problems of bytes no state had
    p = run(env, "check", str(b))
    assert p.returncode == 1
    assert p.stdout.decode().startswith(
        "%s: error: cannot merge unified-memory.json: a host file kept "
        "changing while it was read; run again\n" % b), p.stdout


def test_mount_never_serves_a_torn_scan(tmp_path, open_shim, mount):
    # every scan the first lookup makes is raced (its read of the second
    # block, and the check of the block its mark is in), then the file
    # holds still
    b, env = racing(tmp_path, open_shim, run_times=10)
    d = mount(str(b), env=env)
    got = util.read(os.path.join(d.mnt, util.MERGED))
    assert got == util.oracle.merge_dir(str(b))
    assert os.stat(os.path.join(d.mnt, util.MERGED)).st_size == len(got)
    d.stop()
