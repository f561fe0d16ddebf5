# SPDX-License-Identifier: MIT
"""
The backing directory passes through: files, subdirectories, links,
renames with flags, truncate, chmod/chown/utimens, fsync, statfs.
"""

import ctypes
import errno
import os
import resource
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest

import util
from util import MERGED, read, write_file

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


def test_fifo_and_special_files(backing, mount, tmp_path):
    """mknod through the mount: a FIFO works end to end (tar -x of an
    archive holding one failed with ENOSYS); a FIFO or socket named like a
    host file is no source and never blocks the merge."""
    d = mount(backing)
    m, b = d.mnt, backing
    before = read(os.path.join(m, MERGED))
    os.mkfifo(os.path.join(m, "pipe"), 0o640)
    st = os.stat(os.path.join(b, "pipe"))
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
    assert stat.S_ISFIFO(os.lstat(os.path.join(m, "pipe")).st_mode)
    with pytest.raises(FileExistsError):
        os.mkfifo(os.path.join(m, MERGED))
    os.mkfifo(os.path.join(m, "memory-fifo.json"))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(m, "memory-sock.json"))
    sock.close()
    assert stat.S_ISSOCK(os.stat(os.path.join(b, "memory-sock.json")).st_mode)
    assert read(os.path.join(m, MERGED)) == before
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "fifo")
    subprocess.run(["tar", "-cf", str(tmp_path / "t.tar"), "-C", str(src),
                    "fifo"], check=True)
    r = subprocess.run(["tar", "-xf", str(tmp_path / "t.tar"), "-C", m],
                       stderr=subprocess.PIPE, text=True, timeout=30)
    assert (r.returncode, r.stderr) == (0, "")
    assert stat.S_ISFIFO(os.stat(os.path.join(b, "fifo")).st_mode)
    for n in ("pipe", "fifo", "memory-fifo.json", "memory-sock.json"):
        os.unlink(os.path.join(m, n))
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


def soft_nofile(n, hard=None):
    """A preexec_fn that lowers the child's limits on open files."""
    def lower():
        h = hard or resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, h))
    return lower


def _getdents64(fd, size):
    """The raw system call: glibc's readdir() hides an ENOENT from it."""
    buf = ctypes.create_string_buffer(size)
    n = _libc.syscall(217, fd, buf, size)  # SYS_getdents64 on x86-64
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    names, p = [], 0
    while p < n:
        reclen = int.from_bytes(buf.raw[p + 16:p + 18], "little")
        names.append(buf.raw[p + 19:p + reclen].split(b"\0")[0].decode())
        p += reclen
    return names


@pytest.mark.skipif(os.uname().machine != "x86_64",
                    reason="the getdents64 number is x86-64's")
def test_entries_deleted_while_listing_end_the_listing(tmp_path, mount):
    """A listing whose remaining entries were all deleted since it began
    failed with ENOENT (READDIRPLUS looked each up, and the last miss
    became the reply) where ext4 ends the listing; Go's os.ReadDir,
    which calls getdents64 itself, reported the error."""
    b = tmp_path / "b"
    many = b / "many"
    many.mkdir(parents=True)
    for i in range(200):
        (many / ("file-with-a-longish-name-%d" % i)).touch()
    d = mount(b)
    fd = os.open(os.path.join(d.mnt, "many"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        first = _getdents64(fd, 1024)
        assert 0 < len(first) < 100
        for n in os.listdir(many):
            if n not in first:
                os.unlink(many / n)
        # A lookup that finds an inode makes the kernel list with
        # READDIRPLUS from here on.
        (many / "new-after-listing").touch()
        os.stat(os.path.join(d.mnt, "many", "new-after-listing"))
        rest = _getdents64(fd, 65536)
        assert set(rest) <= {"new-after-listing"}
    finally:
        os.close(fd)
    d.stop()


def test_more_files_than_the_soft_fd_limit(tmp_path, mount):
    """A merge holds one fd per source and the mount one per inode the
    kernel remembers.  Started under a soft limit of 256 (1024 is the
    usual one), crdtfs takes the hard limit: 300 host files merge whole,
    and a directory of 600 files walks and reads whole."""
    b = str(tmp_path / "b")
    os.makedirs(os.path.join(b, "sub"))
    for h in range(300):
        write_file(os.path.join(b, "memory-h%03d.json" % h),
                   util.dumps_jsonl([util.entry("e%d" % h, util.ts(h),
                                                host="h%d" % h)]))
    for i in range(600):
        write_file(os.path.join(b, "sub", "f%d" % i), b"%d\n" % i)
    want = util.oracle.merge_dir(b)
    p = subprocess.run([util.CRDTFS, "merge", b], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120,
                       preexec_fn=soft_nofile(256))
    assert (p.returncode, p.stderr) == (0, b"")
    assert p.stdout == want
    d = mount(b, preexec_fn=soft_nofile(256))
    assert read(os.path.join(d.mnt, util.MERGED)) == want
    sub = os.path.join(d.mnt, "sub")
    names = os.listdir(sub)
    assert len(names) == 600
    # each stat and open makes the daemon keep an fd for the file
    for n in names:
        assert read(os.path.join(sub, n)) == b"%s\n" % n[1:].encode()
    assert sum(1 for _ in os.walk(d.mnt)) == 2
    d.stop()

    # Under a hard limit too low for the sources, the merge fails as a
    # whole instead of leaving some host files' entries out.
    p = subprocess.run([util.CRDTFS, "merge", b], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120,
                       preexec_fn=soft_nofile(256, 256))
    assert (p.returncode, p.stdout) == (1, b"")
    assert b"Too many open files" in p.stderr
    d = mount(b, preexec_fn=soft_nofile(256, 256))
    with pytest.raises(OSError) as ei:
        os.stat(os.path.join(d.mnt, util.MERGED))
    assert ei.value.errno == errno.EMFILE
    t = util.status_target(util.read_status(d.mnt))
    assert t["error"] == "Too many open files"
    d.stop()


# Run with umask 002 in DIR: make a file, a directory and a FIFO, and print
# their modes.
UMASK_MAKE = r"""
import json, os, stat, sys
d = sys.argv[1]
os.umask(0o002)
os.close(os.open(os.path.join(d, "f"), os.O_CREAT | os.O_WRONLY, 0o666))
os.mkdir(os.path.join(d, "dir"), 0o777)
os.mkfifo(os.path.join(d, "fifo"), 0o666)
print(json.dumps([stat.S_IMODE(os.lstat(os.path.join(d, n)).st_mode)
                  for n in ("f", "dir", "fifo")]))
"""


def test_a_descriptor_changed_while_out_of_fds_comes_back(tmp_path, mount):
    """The daemon holds an fd per inode the kernel remembers, so `ls -l`
    of a big directory can use them all up for a moment.  A descriptor
    changed then was dropped from the target set for good: its merged
    file answered ENOENT after the fds were free again, and the status
    file kept `cannot list descriptors`."""
    b = tmp_path / "b"
    (b / "many").mkdir(parents=True)
    write_file(str(b / "notes.json.merge.json"),
               b'{"target": "notes.json", "sources": ["notes-*.json"]}')
    write_file(str(b / "notes-a.json"), util.dumps_jsonl(
        [util.entry("x", util.ts(1), host="a")]))
    for i in range(400):
        (b / "many" / ("f%d" % i)).touch()
    d = mount(str(b), preexec_fn=soft_nofile(300, 300))
    notes = os.path.join(d.mnt, "notes.json")
    want = read(notes)
    for n in os.listdir(os.path.join(d.mnt, "many")):  # every fd taken
        try:
            os.stat(os.path.join(d.mnt, "many", n))
        except OSError:
            pass
    os.utime(b / "notes.json.merge.json")  # the set reloads at next use
    try:
        read(notes)  # EMFILE, or served by the old target
    except OSError as e:
        assert e.errno in (errno.EMFILE, errno.ENFILE)
    shutil.rmtree(b / "many")  # the kernel forgets them: fds free again
    deadline = time.monotonic() + 10
    while True:
        try:
            assert read(notes) == want
            break
        except OSError as e:
            if e.errno != errno.EMFILE or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    st = util.read_status(d.mnt)
    assert sorted(t["name"] for t in st["targets"]) == [
        "notes.json", "unified-memory.json"]
    assert st["descriptor_problems"] == []
    d.stop()


def test_exchanged_directories_keep_their_files_paths(tmp_path, mount):
    """renameat2(RENAME_EXCHANGE) of two directories moved the remembered
    paths of the first one's files and not the second's: both ended up
    under one name, and a file of the second, deleted while open, could
    not be reopened through /proc/self/fd (ESTALE: its remembered name led
    to the other directory's file)."""
    b = tmp_path / "b"
    for d in ("A", "B"):
        (b / d).mkdir(parents=True)
        (b / d / "f").write_text("content-" + d)
    m = mount(str(b))
    for d in ("A", "B"):
        os.stat(os.path.join(m.mnt, d, "f"))
    fd = os.open(os.path.join(m.mnt, "B", "f"), os.O_RDONLY)
    try:
        renameat2(os.path.join(m.mnt, "A"), os.path.join(m.mnt, "B"),
                  RENAME_EXCHANGE)
        assert read(os.path.join(m.mnt, "A", "f")) == b"content-B"
        os.unlink(os.path.join(m.mnt, "A", "f"))
        fd2 = os.open("/proc/self/fd/%d" % fd, os.O_RDONLY)
        assert os.read(fd2, 100) == b"content-B"
        os.close(fd2)
    finally:
        os.close(fd)
    m.stop()


def test_a_descriptor_that_cannot_be_opened_for_want_of_fds_comes_back(
        tmp_path, mount, open_shim):
    """The listing of the root worked, but the descriptor's own open
    failed with EMFILE, which desc_load reported as EIO: its target was
    dropped (ENOENT) and stayed so after the fds were free again."""
    b = tmp_path / "b"
    b.mkdir()
    write_file(str(b / "notes.json.merge.json"),
               b'{"target": "notes.json", "sources": ["notes-*.json"]}')
    write_file(str(b / "notes-a.json"), util.dumps_jsonl(
        [util.entry("x", util.ts(1), host="a")]))
    flag = tmp_path / "out-of-fds"
    env = open_shim("notes.json.merge.json", on="openat",
                    errno=errno.EMFILE, **{"while": str(flag)})
    d = mount(str(b), env=env)
    notes = os.path.join(d.mnt, "notes.json")
    old = read(notes)
    assert old.startswith(b"[\n")
    flag.touch()
    # Edited to JSON Lines while it cannot be opened: the old target is
    # served meanwhile (it was dropped: ENOENT).
    write_file(str(b / "notes.json.merge.json"),
               b'{"target": "notes.json", "sources": ["notes-*.json"], '
               b'"format": "jsonl"}')
    assert read(notes) == old
    assert util.read_status(d.mnt)["descriptor_problems"] == []
    flag.unlink()
    # Loaded again at a later request, with nothing else changed.
    deadline = time.monotonic() + 10
    while read(notes) == old:
        assert time.monotonic() < deadline, "the set was not loaded again"
        time.sleep(0.05)
    assert read(notes) == old[2:-3] + b"\n"  # one line, no brackets
    d.stop()


def test_modes_follow_the_callers_umask(backing, mount, tmp_path):
    """The kernel applies the caller's umask; the daemon's own (022) must
    not apply again: with umask 002, 0664 files and 0775 directories, as
    on the backing filesystem itself."""
    d = mount(backing)
    plain = tmp_path / "plain"
    plain.mkdir()
    os.mkdir(os.path.join(backing, "sub"))

    def modes(where):
        p = subprocess.run(["/usr/bin/python3", "-c", UMASK_MAKE, where],
                           stdout=subprocess.PIPE, check=True, timeout=60)
        return p.stdout

    want = modes(str(plain))
    assert want == b"[436, 509, 436]\n"  # 0664, 0775, 0664
    assert modes(os.path.join(d.mnt, "sub")) == want
    d.stop()


def test_o_direct_reads_and_writes(backing, mount):
    """O_DIRECT through the mount is the kernel's to do; the backing file
    was opened with it too, and writes from libfuse's unaligned buffers
    failed with EINVAL."""
    import mmap
    d = mount(backing)
    p = os.path.join(d.mnt, "direct.bin")
    buf = mmap.mmap(-1, 8192)  # page-aligned, as O_DIRECT wants
    buf.write(b"0123456789abcdef" * 512)
    fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o644)
    try:
        assert os.write(fd, buf) == 8192
    finally:
        os.close(fd)
    assert read(os.path.join(backing, "direct.bin")) == buf[:]
    fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
    try:
        back = mmap.mmap(-1, 8192)
        assert os.readv(fd, [back]) == 8192
        assert back[:] == buf[:]
    finally:
        os.close(fd)
    d.stop()


def test_seek_data_and_hole(backing, mount):
    """SEEK_DATA/SEEK_HOLE answer as the backing file does (the kernel's
    fallback said a file has no holes); a merged file has none."""
    d = mount(backing)
    b = os.path.join(backing, "sparse.bin")
    with open(b, "wb") as f:
        f.write(b"x" * 4096)
        f.seek(1 << 20)
        f.write(b"y" * 4096)
    fd, fdb = os.open(os.path.join(d.mnt, "sparse.bin"), os.O_RDONLY), \
        os.open(b, os.O_RDONLY)
    try:
        want = [os.lseek(fdb, 0, os.SEEK_HOLE),
                os.lseek(fdb, 5000, os.SEEK_DATA)]
        assert want[0] < 1 << 20  # the backing filesystem keeps holes
        assert [os.lseek(fd, 0, os.SEEK_HOLE),
                os.lseek(fd, 5000, os.SEEK_DATA)] == want
    finally:
        os.close(fd)
        os.close(fdb)
    merged = os.path.join(d.mnt, MERGED)
    size = os.path.getsize(merged)
    fd = os.open(merged, os.O_RDONLY)
    try:
        assert os.lseek(fd, 7, os.SEEK_DATA) == 7
        assert os.lseek(fd, 7, os.SEEK_HOLE) == size
        with pytest.raises(OSError) as ei:
            os.lseek(fd, size, os.SEEK_DATA)
        assert ei.value.errno == errno.ENXIO
    finally:
        os.close(fd)
    d.stop()


def test_extended_attributes(backing, mount):
    """With -o xattr, xattrs pass through to backing files and directories
    (cp -a into the mount keeps them); a symlink and the merged file have
    none.  Without it they are not supported (test_mount_basic)."""
    d = mount(backing, "-o", "xattr")
    m = d.mnt
    f, sub = os.path.join(m, "memory-a.json"), os.path.join(m, "sub")
    os.mkdir(sub)
    os.setxattr(f, "user.origin", b"laptop")
    os.setxattr(sub, "user.tag", b"")
    assert os.getxattr(os.path.join(backing, "memory-a.json"),
                       "user.origin") == b"laptop"
    assert os.getxattr(f, "user.origin") == b"laptop"
    assert os.listxattr(sub) == ["user.tag"]
    with pytest.raises(OSError) as ei:
        os.setxattr(f, "user.origin", b"x", os.XATTR_CREATE)
    assert ei.value.errno == errno.EEXIST
    os.removexattr(f, "user.origin")
    with pytest.raises(OSError) as ei:
        os.getxattr(f, "user.origin")
    assert ei.value.errno == errno.ENODATA
    os.symlink("memory-a.json", os.path.join(m, "link"))
    with pytest.raises(OSError) as ei:
        os.setxattr(os.path.join(m, "link"), "user.x", b"1",
                    follow_symlinks=False)
    assert ei.value.errno in (errno.ENOTSUP, errno.EPERM)
    merged = os.path.join(m, MERGED)
    assert os.listxattr(merged) == []
    with pytest.raises(OSError) as ei:
        os.getxattr(merged, "user.x")
    assert ei.value.errno == errno.ENODATA
    with pytest.raises(OSError) as ei:
        os.setxattr(merged, "user.x", b"1")
    assert ei.value.errno in (errno.ENOTSUP, errno.EACCES, errno.EPERM)
    # cp -a keeps them on the way in
    src = os.path.join(backing, "..", "tagged")
    write_file(src, b"t\n")
    os.setxattr(src, "user.k", b"v")
    subprocess.run(["cp", "-a", src, os.path.join(m, "sub", "tagged")],
                   check=True, timeout=30)
    assert os.getxattr(os.path.join(backing, "sub", "tagged"),
                       "user.k") == b"v"
    d.stop()


def test_open_after_an_outside_rename_in_a_subdirectory(backing, mount):
    """The kernel may still hold the replaced file's entry (the watch's
    notification is on its way); an open that starts after the outside
    rename must reach the new file (an append went to the deleted one and
    was lost)."""
    d = mount(backing)
    os.mkdir(os.path.join(backing, "sub"))
    write_file(os.path.join(backing, "sub", "log"), b"old\n")
    p = os.path.join(d.mnt, "sub", "log")
    assert read(p) == b"old\n"  # the kernel now knows sub/log
    tmp = os.path.join(backing, "sub", ".log.tmp")
    write_file(tmp, b"new\n")
    os.rename(tmp, os.path.join(backing, "sub", "log"))
    with open(p, "ab") as f:
        f.write(b"appended\n")
    assert read(os.path.join(backing, "sub", "log")) == b"new\nappended\n"
    assert read(p) == b"new\nappended\n"
    # a file unlinked while open is still reopened through /proc/self/fd
    q = os.path.join(d.mnt, "sub", "scratch")
    write_file(q, b"kept\n")
    fd = os.open(q, os.O_RDONLY)
    try:
        os.unlink(q)
        with open("/proc/self/fd/%d" % fd, "rb") as f:
            assert f.read() == b"kept\n"
    finally:
        os.close(fd)
    d.stop()


def held_deleted(pid, name):
    """The daemon's fds on a deleted file called `name`."""
    fds = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            continue
        if target.endswith("/" + name + " (deleted)"):
            fds.append(target)
    return fds


def test_a_file_deleted_outside_in_a_subdirectory_frees_its_space(
        backing, mount):
    """The daemon holds an O_PATH fd for every file the kernel has looked
    up, until the kernel forgets it.  A file deleted outside in a
    subdirectory was never forgotten (the kernel still cached its name), so
    its blocks stayed in use until the mount ended; every directory the
    kernel holds is watched now, and the kernel is told the name is gone."""
    subs = ("sub", os.path.join("sub", "deeper"))
    for sub in subs:  # before the mount: no notification races the stat
        os.mkdir(os.path.join(backing, sub))
        write_file(os.path.join(backing, sub, "big"), b"x" * (1 << 20))
    d = mount(backing)
    for sub in subs:
        assert os.stat(os.path.join(d.mnt, sub, "big")).st_size == 1 << 20
    assert len(held_deleted(d.pid, "big")) == 0
    os.unlink(os.path.join(backing, "sub", "big"))
    os.unlink(os.path.join(backing, "sub", "deeper", "big"))
    deadline = time.monotonic() + 10
    while held_deleted(d.pid, "big") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert held_deleted(d.pid, "big") == []
    assert os.listdir(os.path.join(d.mnt, "sub")) == ["deeper"]
    d.stop()


def test_events_lost_to_an_inotify_overflow_are_made_up_for(backing, mount):
    """When the kernel's inotify queue overflows, the events it dropped may
    have been about names the kernel holds: each of those is checked again,
    so a file deleted outside in a subdirectory still frees its space.  The
    mount gets a queue of 16 events (the sysctl is read when the daemon
    makes its inotify instance, and put back at once), and the daemon is
    stopped while 100 outside changes and then the delete happen, so the
    delete's events are surely among those dropped.  Names that did not
    change are left alone: a process whose working directory is in one
    keeps it (dropping the name made getcwd() fail there)."""
    sysctl = "/proc/sys/fs/inotify/max_queued_events"
    os.mkdir(os.path.join(backing, "sub"))
    os.makedirs(os.path.join(backing, "keep", "deep"))
    os.makedirs(os.path.join(backing, "gone", "a", "b"))
    write_file(os.path.join(backing, "sub", "big"), b"x" * (1 << 20))
    write_file(os.path.join(backing, "gone", "a", "b", "big2"),
               b"y" * (1 << 20))
    with open(sysctl) as f:
        saved = f.read()
    try:
        with open(sysctl, "w") as f:
            f.write("16")
        d = mount(backing, "-d")
    finally:
        with open(sysctl, "w") as f:
            f.write(saved)
    d.allow(r"^\s*unique: \d+, error: ")
    assert os.stat(os.path.join(d.mnt, "sub", "big")).st_size == 1 << 20
    keep = os.path.join(d.mnt, "keep")
    deep = os.path.join(keep, "deep")
    # /proc/PID/cwd says "(deleted)" only for the directory itself
    sleepers = [subprocess.Popen(["sleep", "60"], cwd=c) for c in (keep, deep)]
    # A file kept open in a tree deleted meanwhile: when the tree's name
    # goes, the kernel keeps the names of what is in use below it.
    big2 = os.path.join(d.mnt, "gone", "a", "b", "big2")
    holder = subprocess.Popen(
        ["/usr/bin/python3", "-c",
         "import sys, time; f = open(sys.argv[1], 'rb'); print(1, "
         "flush=True); time.sleep(60)", big2], stdout=subprocess.PIPE)
    sleepers.append(holder)
    assert holder.stdout.readline() == b"1\n"
    try:
        since = len(d.lines)
        os.kill(d.pid, signal.SIGSTOP)
        try:
            for i in range(100):
                write_file(os.path.join(backing, "flood%d" % i), b"")
            os.unlink(os.path.join(backing, "sub", "big"))
            shutil.rmtree(os.path.join(backing, "gone"))
        finally:
            os.kill(d.pid, signal.SIGCONT)
        assert d.wait_for_line("crdtfs: inotify queue overflowed", since)
        holder.kill()
        holder.wait()
        deadline = time.monotonic() + 10
        while (held_deleted(d.pid, "big") or held_deleted(d.pid, "big2")) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held_deleted(d.pid, "big") == []
        assert held_deleted(d.pid, "big2") == []
        assert os.listdir(os.path.join(d.mnt, "sub")) == []
        assert [os.readlink("/proc/%d/cwd" % p.pid)
                for p in sleepers[:2]] == [keep, deep]
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
    d.stop()


def test_outside_changes_in_subdirectories_reach_the_kernel_at_once(
        backing, mount):
    """Outside changes below the root are told to the kernel as they
    happen (before, only its 1 s timeouts ended what it cached there): an
    append, a chmod, and an append and a delete in a directory deleted and
    made again under the same name.  `-d` logs each notification sent;
    nothing here touches the mount while waiting for one.  A directory's
    own attributes are the exception: directories are watched for their
    names only (see watch.c), so a chmod of one shows within 1 s."""
    sub = os.path.join(backing, "sub")
    marker = os.path.join(backing, "marker")
    os.mkdir(sub)  # before the mount: no notification races the lookups
    write_file(os.path.join(sub, "log"), b"one\n")
    write_file(marker, b"")
    d = mount(backing, "-d")
    d.allow(r"^\s*unique: \d+, error: ")

    def notified(since, kind, st, name=""):
        # since: an inode number may come back, so only lines printed
        # after the change count
        return d.wait_for_line("crdtfs: notify %s:%d:%d:%s: sent" %
                               (kind, st.st_dev, st.st_ino, name), since)

    def append_notified(path, data):
        """Append outside; the kernel is told the file changed."""
        mark = len(d.lines)
        with open(path, "ab") as f:
            f.write(data)
        assert notified(mark, "i", os.stat(path))

    def settle():
        """Every notification queued so far has been sent: the queue is
        FIFO, so once the marker's is."""
        append_notified(marker, b".")

    m = os.path.join(d.mnt, "sub")
    os.stat(os.path.join(d.mnt, "marker"))
    assert read(os.path.join(m, "log")) == b"one\n"
    append_notified(os.path.join(sub, "log"), b"two\n")
    assert read(os.path.join(m, "log")) == b"one\ntwo\n"
    mark = len(d.lines)
    os.chmod(os.path.join(sub, "log"), 0o600)
    assert notified(mark, "i", os.stat(os.path.join(sub, "log")))
    assert stat.S_IMODE(os.stat(os.path.join(m, "log")).st_mode) == 0o600
    os.chmod(sub, 0o700)
    deadline = time.monotonic() + 5
    while (stat.S_IMODE(os.stat(m).st_mode) != 0o700 and
           time.monotonic() < deadline):
        time.sleep(0.05)
    assert stat.S_IMODE(os.stat(m).st_mode) == 0o700

    shutil.rmtree(sub)
    os.mkdir(sub)
    write_file(os.path.join(sub, "fresh"), b"new\n")
    settle()  # the root's notifications about `sub` are out of the way
    assert os.stat(m).st_ino == os.stat(sub).st_ino
    assert read(os.path.join(m, "fresh")) == b"new\n"
    append_notified(os.path.join(sub, "fresh"), b"more\n")
    assert read(os.path.join(m, "fresh")) == b"new\nmore\n"
    mark = len(d.lines)
    st = os.stat(sub)
    os.unlink(os.path.join(sub, "fresh"))
    assert notified(mark, "e", st, "fresh")
    assert os.listdir(m) == []
    d.stop()


def inotify_watches(pid):
    """How many inotify watches process `pid` holds."""
    n = 0
    for fd in os.listdir("/proc/%d/fdinfo" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                n += sum(line.startswith("inotify wd:") for line in f)
        except FileNotFoundError:
            pass
    return n


def test_directories_past_the_watch_budget_still_work(tmp_path, mount):
    """At most 8192 directories, and an eighth of the user's inotify
    watches (which editors and other tools share; as many again for
    files), are watched for the kernel; past that a directory is served
    without a watch."""
    with open("/proc/sys/fs/inotify/max_user_watches") as f:
        budget = min(8192, int(f.read()) // 8)
    b = str(tmp_path / "b")
    os.makedirs(b)
    for i in range(budget + 50):
        os.mkdir(os.path.join(b, "d%05d" % i))
    write_file(os.path.join(b, "d%05d" % (budget + 49), "last"), b"x\n")
    d = mount(b)
    assert inotify_watches(d.pid) == 1  # the root
    for i in range(budget + 50):
        os.stat(os.path.join(d.mnt, "d%05d" % i))
    assert inotify_watches(d.pid) == budget + 1
    last = os.path.join(d.mnt, "d%05d" % (budget + 49))
    assert os.listdir(last) == ["last"]
    assert read(os.path.join(last, "last")) == b"x\n"
    d.stop()


def test_files_past_the_watch_budget_still_work(tmp_path, mount):
    """Files the kernel holds are watched for outside writes, within a
    budget of their own (the directories' is untouched); past it a file is
    served without a watch and shows outside changes within 1 s."""
    with open("/proc/sys/fs/inotify/max_user_watches") as f:
        budget = min(8192, int(f.read()) // 8)
    b = str(tmp_path / "b")
    os.makedirs(os.path.join(b, "sub"))
    for i in range(budget + 50):
        write_file(os.path.join(b, "sub", "f%05d" % i), b"x\n")
    d = mount(b)
    assert inotify_watches(d.pid) == 1  # the root
    for i in range(budget + 50):
        os.stat(os.path.join(d.mnt, "sub", "f%05d" % i))
    assert inotify_watches(d.pid) == budget + 2  # and sub
    last = os.path.join(b, "sub", "f%05d" % (budget + 49))
    with open(last, "ab") as f:
        f.write(b"y\n")
    deadline = time.monotonic() + 5
    while (os.stat(os.path.join(d.mnt, "sub", "f%05d" % (budget + 49)))
           .st_size != 4 and time.monotonic() < deadline):
        time.sleep(0.05)
    assert read(os.path.join(d.mnt, "sub", "f%05d" % (budget + 49))) == \
        b"x\ny\n"
    d.stop()


def test_a_filesystem_mounted_inside_backing_has_its_own_inode_numbers(
        backing, mount):
    """Every file of the mount shows one st_dev, so a file of a filesystem
    mounted inside BACKING must not show a bare st_ino that a file of the
    backing filesystem may have too: tar and rsync -H would take them for
    hard links."""
    if os.getuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    sub = os.path.join(backing, "sub")
    os.mkdir(sub)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "crdtfs-test",
                    sub], check=True, timeout=30)
    try:
        write_file(os.path.join(sub, "f"), b"on tmpfs\n")
        d = mount(backing)
        raw = os.stat(os.path.join(sub, "f"))
        shown = os.stat(os.path.join(d.mnt, "sub", "f"))
        assert shown.st_ino != raw.st_ino
        assert os.stat(os.path.join(d.mnt, "memory-a.json")).st_ino == \
            os.stat(os.path.join(backing, "memory-a.json")).st_ino
        assert read(os.path.join(d.mnt, "sub", "f")) == b"on tmpfs\n"
        # readdir says what stat says, past the first batch of entries too
        for i in range(300):
            write_file(os.path.join(sub, "g%03d" % i), b"")
        ents = [(e.name, e.inode())
                for e in os.scandir(os.path.join(d.mnt, "sub"))]
        assert len(ents) == 301
        for name, ino in ents:
            assert ino == os.lstat(os.path.join(d.mnt, "sub", name)).st_ino
        d.stop()
    finally:
        subprocess.run(["umount", "-l", sub], timeout=30)
