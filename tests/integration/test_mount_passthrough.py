# SPDX-License-Identifier: MIT
"""
The backing directory passes through: files, subdirectories, links,
renames with flags, truncate, chmod/chown/utimens, fsync, statfs.
"""

import ctypes
import errno
import os
import stat
import time

import pytest

import util
from util import read, write_file

pytestmark = util.fuse_test_marker()

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(old, new, flags):
    r = _libc.renameat2(-100, old.encode(), -100, new.encode(),
                        ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def test_files_and_directories(backing, mount):
    d = mount(backing)
    m, b = d.mnt, backing
    write_file(os.path.join(m, "notes.txt"), b"hello\n")
    assert read(os.path.join(b, "notes.txt")) == b"hello\n"
    with open(os.path.join(m, "notes.txt"), "ab") as f:
        f.write(b"more\n")
    assert read(os.path.join(m, "notes.txt")) == b"hello\nmore\n"
    os.mkdir(os.path.join(m, "sub"))
    os.mkdir(os.path.join(m, "sub", "deeper"))
    write_file(os.path.join(m, "sub", "deeper", "f"), b"x" * 100000)
    assert read(os.path.join(b, "sub", "deeper", "f")) == b"x" * 100000
    assert sorted(os.listdir(os.path.join(m, "sub"))) == ["deeper"]
    os.rename(os.path.join(m, "sub", "deeper", "f"),
              os.path.join(m, "sub", "g"))
    assert os.path.exists(os.path.join(b, "sub", "g"))
    os.rename(os.path.join(m, "sub"), os.path.join(m, "sub2"))
    assert read(os.path.join(m, "sub2", "g")) == b"x" * 100000
    os.unlink(os.path.join(m, "sub2", "g"))
    os.rmdir(os.path.join(m, "sub2", "deeper"))
    with pytest.raises(OSError) as ei:
        os.rmdir(os.path.join(m, "memory-a.json"))
    assert ei.value.errno == errno.ENOTDIR
    os.rmdir(os.path.join(m, "sub2"))
    assert not os.path.exists(os.path.join(b, "sub2"))
    # big file integrity
    blob = os.urandom(3 << 20)
    write_file(os.path.join(m, "blob"), blob)
    assert read(os.path.join(m, "blob")) == blob
    assert read(os.path.join(b, "blob")) == blob
    # a file unlinked while open stays readable through its fd
    with open(os.path.join(m, "blob"), "rb") as f:
        os.unlink(os.path.join(m, "blob"))
        assert f.read() == blob
    assert not os.path.exists(os.path.join(b, "blob"))
    d.stop()


def test_symlink_and_hard_link(backing, mount):
    d = mount(backing)
    m, b = d.mnt, backing
    os.symlink("memory-a.json", os.path.join(m, "link"))
    assert os.readlink(os.path.join(m, "link")) == "memory-a.json"
    assert os.readlink(os.path.join(b, "link")) == "memory-a.json"
    assert stat.S_ISLNK(os.lstat(os.path.join(m, "link")).st_mode)
    assert read(os.path.join(m, "link")) == read(os.path.join(b,
                                                              "memory-a.json"))
    os.symlink("nowhere", os.path.join(m, ".#lock"))  # emacs-style lock
    os.unlink(os.path.join(m, ".#lock"))
    os.link(os.path.join(m, "memory-a.json"), os.path.join(m, "hard"))
    assert os.stat(os.path.join(m, "hard")).st_nlink == 2
    assert os.stat(os.path.join(b, "hard")).st_ino == \
        os.stat(os.path.join(b, "memory-a.json")).st_ino
    os.unlink(os.path.join(m, "hard"))
    os.unlink(os.path.join(m, "link"))
    d.stop()


def test_rename_flags(backing, mount):
    d = mount(backing)
    m = d.mnt
    a, c = os.path.join(m, "memory-a.json"), os.path.join(m, "memory-c.json")
    da, dc = read(a), read(c)
    with pytest.raises(OSError) as ei:
        renameat2(a, c, RENAME_NOREPLACE)
    assert ei.value.errno == errno.EEXIST
    renameat2(a, c, RENAME_EXCHANGE)
    assert (read(a), read(c)) == (dc, da)
    assert read(os.path.join(backing, "memory-a.json")) == dc
    renameat2(a, os.path.join(m, "memory-z.json"), RENAME_NOREPLACE)
    assert not os.path.exists(a)
    # the merged file follows the renames
    assert read(os.path.join(m, util.MERGED)) == util.cli_merge(backing)
    with pytest.raises(OSError) as ei:
        renameat2(c, os.path.join(m, "x"), 4)  # RENAME_WHITEOUT
    assert ei.value.errno in (errno.EINVAL, errno.EPERM)
    # plain rename still works after a refused flag
    os.rename(c, os.path.join(m, "memory-y.json"))
    d.stop()


def test_setattr_pass_through(backing, mount):
    d = mount(backing)
    p = os.path.join(d.mnt, "memory-a.json")
    bp = os.path.join(backing, "memory-a.json")
    os.truncate(p, 10)
    assert os.path.getsize(bp) == 10
    with open(p, "r+b") as f:
        f.truncate(5)
        os.fsync(f.fileno())
        os.fdatasync(f.fileno())
    assert os.path.getsize(bp) == 5
    os.utime(p, ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(bp)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123,
                                                2_000_000_456)
    assert os.stat(p).st_mtime_ns == 2_000_000_456
    os.chmod(p, 0o640)
    assert stat.S_IMODE(os.stat(bp).st_mode) == 0o640
    if os.getuid() == 0:
        os.chown(p, 1234, 5678)
        assert (os.stat(bp).st_uid, os.stat(bp).st_gid) == (1234, 5678)
        assert (os.stat(p).st_uid, os.stat(p).st_gid) == (1234, 5678)
    fd = os.open(d.mnt, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)
    sv = os.statvfs(d.mnt)
    bsv = os.statvfs(backing)
    assert sv.f_blocks == bsv.f_blocks and sv.f_bsize == bsv.f_bsize
    d.stop()


def test_outside_changes_visible(backing, mount):
    d = mount(backing)
    p = os.path.join(d.mnt, "memory-b.json")
    read(p)
    os.stat(p)
    os.listdir(d.mnt)
    write_file(os.path.join(backing, "memory-b.json"), b"[]\n" * 1000)
    write_file(os.path.join(backing, "fresh.txt"), b"new\n")
    os.unlink(os.path.join(backing, "memory-c.json"))
    # pass-through files have 1 s timeouts plus inotify notifications
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if (read(p) == b"[]\n" * 1000 and
                "fresh.txt" in os.listdir(d.mnt) and
                not os.path.exists(os.path.join(d.mnt, "memory-c.json"))):
            break
        time.sleep(0.05)
    assert read(p) == b"[]\n" * 1000
    assert os.path.getsize(p) == 3000
    assert "fresh.txt" in os.listdir(d.mnt)
    assert not os.path.exists(os.path.join(d.mnt, "memory-c.json"))
    d.stop()


def test_many_files_readdir(tmp_path, mount):
    b = str(tmp_path / "b")
    os.mkdir(b)
    names = ["f%04d-%s" % (i, "x" * 100) for i in range(600)]
    for n in names:
        write_file(os.path.join(b, n), b"1")
    d = mount(b)
    got = os.listdir(d.mnt)
    assert sorted(got) == sorted(names + [util.MERGED, util.STATUS])
    # readdirplus: stat every entry
    with os.scandir(d.mnt) as it:
        for de in it:
            if de.name.startswith("f"):
                assert de.stat(follow_symlinks=False).st_size == 1
    d.stop()
