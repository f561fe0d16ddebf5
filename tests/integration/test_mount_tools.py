# SPDX-License-Identifier: MIT
"""
Ordinary tools on the merged file: sizes agree everywhere (stat, wc -c,
cat | wc -c, cp), mmap, json.load, jq, grep, tail, less, vim -R; bad host
files never break the merged file; permissions.
"""

import errno
import json
import mmap
import os
import shutil
import stat
import subprocess

import pytest

import util
from util import MERGED, read

pytestmark = util.fuse_test_marker()


@pytest.fixture
def corpus(tmp_path):
    return util.gen_corpus(tmp_path / "corpus", hosts=3, entries=200,
                           fmt="mixed", seed=3)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=True, timeout=120,
                          **kw).stdout


def test_sizes_agree(corpus, mount, tmp_path):
    d = mount(corpus)
    p = os.path.join(d.mnt, MERGED)
    data = read(p)
    st = os.stat(p)
    assert st.st_size == len(data)
    assert st.st_blocks == (len(data) + 511) // 512
    assert int(sh("wc -c < '%s'" % p)) == len(data)
    assert int(sh("cat '%s' | wc -c" % p)) == len(data)
    assert int(sh("stat -c %%s '%s'" % p)) == len(data)
    dst = tmp_path / "copy.json"
    sh("cp '%s' '%s'" % (p, dst))
    assert read(str(dst)) == data
    assert data == util.cli_merge(corpus)
    d.stop()


def test_offsets_and_small_reads(corpus, mount):
    d = mount(corpus)
    p = os.path.join(d.mnt, MERGED)
    data = read(p)
    with open(p, "rb", buffering=0) as f:
        for off in (0, 1, 4095, 4096, 131071, len(data) - 3, len(data) - 1):
            if off < 0 or off >= len(data):
                continue
            f.seek(off)
            assert f.read(7) == data[off:off + 7]
        f.seek(len(data))
        assert f.read(10) == b""
        f.seek(len(data) + 100)
        assert f.read(10) == b""
        # backwards, in small pieces
        pos = len(data)
        while pos > 0:
            n = min(997, pos)
            pos -= n
            f.seek(pos)
            assert f.read(n) == data[pos:pos + n]
    d.stop()


def test_direct_io_reader(corpus, mount):
    """O_DIRECT reads bypass the page cache and go to the daemon."""
    d = mount(corpus)
    p = os.path.join(d.mnt, MERGED)
    data = read(p)
    fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, 1 << 20)
        got = b""
        while True:
            n = os.readv(fd, [buf])
            if n == 0:
                break
            got += buf[:n]
        assert got == data
    finally:
        os.close(fd)
    d.stop()


def test_mmap(corpus, mount):
    d = mount(corpus)
    p = os.path.join(d.mnt, MERGED)
    data = read(p)
    with open(p, "rb") as f:
        with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED,
                       prot=mmap.PROT_READ) as m:
            assert m[:] == data
            assert m[len(data) // 2:len(data) // 2 + 100] == \
                data[len(data) // 2:len(data) // 2 + 100]
        with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE,
                       prot=mmap.PROT_READ) as m:
            assert m[:] == data
    # a shared writable mapping of a read-only file is refused
    with open(p, "rb") as f:
        with pytest.raises((PermissionError, OSError)):
            mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED,
                      prot=mmap.PROT_READ | mmap.PROT_WRITE)
    d.stop()


def test_python_json_load(corpus, mount):
    d = mount(corpus)
    with open(os.path.join(d.mnt, MERGED), encoding="utf-8") as f:
        entries = json.load(f)
    st = util.read_status(d.mnt)
    assert len(entries) == util.status_target(st)["entries"]
    uids = [e["_crdt_metadata"]["unique_id"] for e in entries]
    assert len(set(uids)) == len(uids)
    d.stop()


def test_jq_grep_tail_less(corpus, mount):
    d = mount(corpus)
    p = os.path.join(d.mnt, MERGED)
    data = read(p)
    n = len(json.loads(data))
    if shutil.which("jq"):
        assert int(sh("jq length '%s'" % p)) == n
        assert sh("jq -c '.[0]' '%s'" % p).strip() == \
            json.dumps(json.loads(data)[0], separators=(",", ":"),
                       ensure_ascii=False).encode()
    assert int(sh("grep -c unique_id '%s'" % p)) == n
    assert sh("tail -n 2 '%s'" % p) == b"\n".join(
        data.split(b"\n")[-3:])
    assert sh("tail -c 100 '%s'" % p) == data[-100:]
    assert sh("head -c 1000 '%s'" % p) == data[:1000]
    if shutil.which("less"):
        env = dict(os.environ, LESS="", LESSOPEN="", LESSCLOSE="")
        assert sh("less -F '%s' < /dev/null" % p, env=env) == data
    d.stop()


def test_vim_read_only(corpus, mount, tmp_path):
    vim = shutil.which("vim")
    if not vim:
        pytest.skip("vim not installed")
    d = mount(corpus)
    p = os.path.join(d.mnt, MERGED)
    out = tmp_path / "viewed.json"
    r = subprocess.run([vim, "-u", "NONE", "-i", "NONE", "-N", "-es", "-R",
                        "-b", "-c", "w! %s" % out, "-c", "q!", p],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert read(str(out)) == read(p)
    # vim did not leave a swap file or anything else behind
    assert sorted(os.listdir(d.mnt)) == sorted(
        [MERGED, util.STATUS] + os.listdir(corpus))
    d.stop()


def test_bad_host_files(tmp_path, mount):
    b = util.make_backing(tmp_path / "b", hosts=("a",), n=3)
    # line 4, column 3: an unquoted word where a value must be
    util.write_file(os.path.join(b, "memory-bad.json"),
                    b'[\n  {"x": 1, "_crdt_metadata": {"host": "bad", '
                    b'"timestamp": "2025-01-01T00:00:00Z", "version": 1, '
                    b'"unique_id": "ok"}},\n\n  {"y": oops}\n]\n')
    util.write_file(os.path.join(b, "memory-empty.json"), b"")
    util.write_file(os.path.join(b, "memory-junk.json"), b"\x00\xff\xfe")
    util.write_file(os.path.join(b, "memory-nometa.json"),
                    b'[{"no": "metadata"}]\n')
    d = mount(b)
    data = read(os.path.join(d.mnt, MERGED))
    entries = json.loads(data)
    assert data == util.cli_merge(b)
    uids = {e.get("_crdt_metadata", {}).get("unique_id") for e in entries}
    assert {"a-0", "a-1", "a-2", "ok"} <= uids
    st = util.read_status(d.mnt)
    t = util.status_target(st)
    probs = t["problems"]
    bad = [p for p in probs if p["file"] == "memory-bad.json"]
    assert bad, probs
    assert (bad[0]["line"], bad[0]["column"]) == (4, 9)
    assert bad[0]["message"]
    assert bad[0]["severity"] == "error"
    assert any(p["file"] == "memory-junk.json" for p in probs)
    srcs = {s["file"]: s for s in t["sources"]}
    assert srcs["memory-bad.json"]["entries"] == 1
    assert srcs["memory-bad.json"]["problems"] >= 1
    assert srcs["memory-a.json"]["problems"] == 0
    # fixing the file clears its problems
    util.write_file(os.path.join(d.mnt, "memory-bad.json"), b"[]\n")
    t = util.status_target(util.read_status(d.mnt))
    assert not [p for p in t["problems"] if p["file"] == "memory-bad.json"]
    d.stop()


def test_permissions(backing, mount):
    d = mount(backing)
    p = os.path.join(d.mnt, MERGED)
    st = os.stat(p)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o444
    assert st.st_nlink == 1
    bst = os.stat(backing)
    assert (st.st_uid, st.st_gid) == (bst.st_uid, bst.st_gid)
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_RDONLY | os.O_TRUNC,
                  os.O_WRONLY | os.O_APPEND, os.O_WRONLY | os.O_CREAT):
        with pytest.raises(PermissionError):
            os.open(p, flags)
    with pytest.raises(PermissionError) as ei:
        os.truncate(p, 0)
    assert ei.value.errno == errno.EACCES  # as without write permission
    # Mode, owner and times are the generation's: a change is EPERM (as
    # for a file one does not own), a change to nothing succeeds (it was
    # EACCES for every call, so `chmod 444` and `chown -1:-1` failed).
    status = os.path.join(d.mnt, util.STATUS)
    for f in (p, status):
        for call in (lambda: os.chmod(f, 0o644),
                     lambda: os.chown(f, st.st_uid + 1, -1),
                     lambda: os.chown(f, -1, st.st_gid + 1),
                     lambda: os.utime(f, None),
                     lambda: os.utime(f, (1, 1))):
            with pytest.raises(PermissionError) as ei:
                call()
            assert ei.value.errno == errno.EPERM
        os.chmod(f, 0o444)
        os.chown(f, -1, -1)
        os.chown(f, st.st_uid, st.st_gid)
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o444
    with pytest.raises(PermissionError):
        os.unlink(p)
    with pytest.raises(PermissionError):
        os.rename(p, os.path.join(d.mnt, "moved.json"))
    other = os.path.join(d.mnt, "memory-a.json")
    with pytest.raises(PermissionError):
        os.rename(other, p)
    assert os.path.exists(other)
    with pytest.raises(OSError) as ei:
        os.link(p, os.path.join(d.mnt, "hard.json"))
    assert ei.value.errno in (errno.EPERM, errno.EACCES)
    # .git is hidden: not there, and not to be made (it said EEXIST to
    # mkdir, so `git init` of the mount blamed a .git it could not see)
    assert not os.path.exists(os.path.join(d.mnt, ".git"))
    for call in (lambda g: os.mkdir(g),
                 lambda g: os.symlink("x", g),
                 lambda g: os.close(os.open(g, os.O_CREAT | os.O_WRONLY)),
                 lambda g: os.rename(other, g)):
        with pytest.raises(PermissionError) as ei:
            call(os.path.join(d.mnt, ".git"))
        assert ei.value.errno == errno.EPERM
    # access(2) answers what open(2) does, even for root
    for f in (p, status):
        assert os.access(f, os.R_OK)
        assert not os.access(f, os.W_OK)
        assert not os.access(f, os.X_OK)
    host = os.path.join(d.mnt, "memory-a.json")
    assert os.access(host, os.R_OK | os.W_OK)
    assert not os.access(host, os.X_OK)
    os.chmod(host, 0o755)
    assert os.access(host, os.X_OK)
    os.chmod(host, 0o644)
    assert os.access(d.mnt, os.R_OK | os.W_OK | os.X_OK)
    # the merged file is still intact
    assert read(p) == util.cli_merge(backing)
    # chmod on a host file passes through
    os.chmod(other, 0o600)
    assert stat.S_IMODE(os.stat(os.path.join(backing,
                                             "memory-a.json")).st_mode) \
        == 0o600
    assert stat.S_IMODE(os.stat(other).st_mode) == 0o600
    # the status file is read-only too
    with pytest.raises(PermissionError):
        os.open(os.path.join(d.mnt, util.STATUS), os.O_WRONLY)
    d.stop()


def test_many_reopens(corpus, mount):
    d = mount(corpus)
    p = os.path.join(d.mnt, MERGED)
    data = read(p)
    ino = os.stat(p).st_ino
    for _ in range(300):
        fd = os.open(p, os.O_RDONLY)
        assert os.fstat(fd).st_ino == ino
        assert os.read(fd, 64) == data[:64]
        os.close(fd)
    d.stop()
