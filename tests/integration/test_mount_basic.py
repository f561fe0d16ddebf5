# SPDX-License-Identifier: MIT
"""
Mounting, the command line, what the mount root shows, the status file,
laziness and clean exits.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

import util
from util import MERGED, STATUS, read

pytestmark = util.fuse_test_marker()


def test_merged_bytes_equal_cli_merge(backing, mount):
    d = mount(backing)
    got = read(os.path.join(d.mnt, MERGED))
    assert got == util.cli_merge(backing)
    json.loads(got)
    if util.oracle is not None:
        assert got == util.oracle.merge_dir(backing)
    d.stop()


def test_generated_corpus_equals_cli_merge(tmp_path, mount):
    b = util.gen_corpus(tmp_path / "corpus", hosts=4, entries=150,
                        fmt="mixed", seed=7)
    d = mount(b)
    got = read(os.path.join(d.mnt, MERGED))
    assert got == util.cli_merge(b)
    assert len(json.loads(got)) == util.status_target(
        util.read_status(d.mnt))["entries"]
    d.stop()


def test_empty_backing(tmp_path, mount):
    b = tmp_path / "empty"
    b.mkdir()
    d = mount(str(b))
    assert read(os.path.join(d.mnt, MERGED)) == b"[]\n"
    assert os.stat(os.path.join(d.mnt, MERGED)).st_size == 3
    d.stop()


def test_root_listing_and_hidden_git(backing, mount):
    os.mkdir(os.path.join(backing, ".git"))
    util.write_file(os.path.join(backing, ".git", "HEAD"), b"ref\n")
    d = mount(backing)
    names = sorted(os.listdir(d.mnt))
    assert names == sorted([STATUS, MERGED, "memory-a.json",
                            "memory-b.json", "memory-c.json"])
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(d.mnt, ".git"))
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(d.mnt, ".git", "HEAD"))
    # d_type of the virtual files is a regular file
    with os.scandir(d.mnt) as it:
        for de in it:
            if de.name in (MERGED, STATUS):
                assert de.is_file(follow_symlinks=False)
    d.stop()


def test_backing_deleted_while_mounted(tmp_path, mount):
    """The root lists what a deleted directory does (nothing) but the
    status file, which says what happened; merged files are listed no
    more (they showed with "?" attributes, as no lookup found them)."""
    b = util.make_backing(tmp_path / "b", hosts=("a",), n=2)
    d = mount(b)
    assert read(os.path.join(d.mnt, MERGED)) == util.cli_merge(b)
    shutil.rmtree(b)
    assert os.listdir(d.mnt) == [STATUS]
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(d.mnt, MERGED))
    st = util.read_status(d.mnt)
    assert util.status_target(st)["error"] == "No such file or directory"
    d.stop()


def test_problem_counts_are_totals(tmp_path, mount):
    """Only the first 20 problems of a file are listed; every count (the
    status file's per source, check's summary, --strict's) is the total."""
    b = tmp_path / "b"
    b.mkdir()
    lines = []
    for i in range(30):
        lines.append(json.dumps(util.entry("a-%d" % i, util.ts(i))))
        lines.append("{bad %d}" % i)
    (b / "memory-a.json").write_text("\n".join(lines) + "\n")
    d = mount(str(b))
    t = util.status_target(util.read_status(d.mnt))
    assert [(s["entries"], s["problems"]) for s in t["sources"]] == [(30, 30)]
    assert t["problems"][-1]["message"] == \
        "... and 10 more problems in this file"
    d.stop()
    p = subprocess.run([util.CRDTFS, "check", str(b)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 1
    assert p.stderr.decode() == \
        "crdtfs check: 1 target, 30 entries scanned, 30 problems\n"
    p = subprocess.run([util.CRDTFS, "merge", "--strict", str(b)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 1
    assert p.stderr.decode().endswith(
        "crdtfs merge: 30 problems; --strict: nothing written\n")

def test_shadowed_backing_file(backing, mount):
    util.write_file(os.path.join(backing, MERGED), b"stale real file\n")
    d = mount(backing)
    assert os.listdir(d.mnt).count(MERGED) == 1
    got = read(os.path.join(d.mnt, MERGED))
    assert got != b"stale real file\n"
    assert got == util.cli_merge(backing)
    t = util.status_target(util.read_status(d.mnt))
    assert t["shadows_backing_file"] is True
    d.stop()


def test_status_file(tmp_path, mount):
    b = util.make_backing(tmp_path / "b", hosts=("a", "b"), n=5)
    d = mount(b)
    st = util.read_status(d.mnt)
    assert st["backing"] == os.path.realpath(b)
    assert st["descriptor_problems"] == []
    t = util.status_target(st)
    assert t["descriptor"] == "(built-in default)"
    assert t["entries"] == 10
    assert t["generation"] >= 1
    assert t["size"] == os.stat(os.path.join(d.mnt, MERGED)).st_size
    assert isinstance(t["build_seconds"], (int, float))
    assert t["build_seconds"] >= 0
    assert sorted((s["file"], s["entries"], s["problems"])
                  for s in t["sources"]) == [("memory-a.json", 5, 0),
                                             ("memory-b.json", 5, 0)]
    assert t["problems"] == []
    assert st["sync"] is None  # no -o sync
    assert st["unread_files"] == []
    # read-only, exact size, stable when nothing changed
    p = os.path.join(d.mnt, STATUS)
    assert os.stat(p).st_mode & 0o777 == 0o444
    assert os.stat(p).st_size == len(read(p))
    assert read(p) == read(p)
    # Its times move only when its bytes change, so tar and rsync see an
    # idle mount's status file unchanged (its mtime was "now" at every
    # stat, and `tar -c` of the mount failed: "file changed as we read it").
    before = os.stat(p)
    time.sleep(0.05)
    assert (os.stat(p).st_mtime_ns, os.stat(p).st_ctime_ns) == \
        (before.st_mtime_ns, before.st_ctime_ns)
    r = subprocess.run(["tar", "-cf", str(tmp_path / "m.tar"), "-C", d.mnt,
                        "."], stderr=subprocess.PIPE, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, "")
    gen = t["generation"]
    with open(os.path.join(d.mnt, "memory-a.json"), "wb") as f:
        f.write(util.dumps_pretty(util.host_entries("a", 6)))
    t2 = util.status_target(util.read_status(d.mnt))
    assert t2["generation"] > gen
    assert t2["entries"] == 11
    assert os.stat(p).st_mtime_ns > before.st_mtime_ns
    d.stop()


def test_status_file_names_what_is_never_read(tmp_path, mount):
    """A memory file linked into the backing directory, or a directory
    named like a descriptor, is never read (symlinks are never followed):
    `crdtfs check` said so, the status file did not, so the merged view
    just lacked that host with nothing to tell why."""
    b = util.make_backing(tmp_path / "b", hosts=("a",), n=2)
    outside = util.make_backing(tmp_path / "o", hosts=("z",), n=2)
    util.write_file(os.path.join(b, "notes.json.merge.json"),
                    b'{"target":"notes.json","sources":["notes-*.json"]}')
    d = mount(b)
    os.symlink(os.path.join(outside, "memory-z.json"),
               os.path.join(b, "memory-z.json"))
    os.mkdir(os.path.join(b, "x.json.merge.json"))
    # A descriptor's own sources count as host files too (only
    # memory-*.json did), and no descriptor reads other-z.json.
    os.symlink("memory-a.json", os.path.join(b, "notes-b.json"))
    os.symlink("memory-a.json", os.path.join(b, "other-z.json"))
    st = util.read_status(d.mnt)
    got = [(p["file"], p["severity"], p["message"])
           for p in st["unread_files"]]
    link = "host file is not read: it is a symlink (symlinks are never " \
           "followed)"
    assert got == [  # in name order, as on every machine
        ("memory-z.json", "warning", link),
        ("notes-b.json", "warning", link),
        ("x.json.merge.json", "error",
         "descriptor is not read: it is not a regular file")]
    assert util.status_target(st)["entries"] == 2
    d.stop()


def test_check_of_a_mount_does_not_take_merged_files_for_hidden_ones(
        backing, mount):
    """On a mount, the file named like a target is the merged file itself:
    check warned that it hid a real file, and exited 1."""
    d = mount(backing)
    r = subprocess.run([util.CRDTFS, "check", d.mnt], capture_output=True)
    assert b"hides" not in r.stdout + r.stderr
    assert r.returncode == 0, r.stdout + r.stderr
    d.stop()


def test_status_file_names_files_that_are_not_utf8_apart(tmp_path, mount):
    """File names need not be UTF-8, JSON text must be: such a name was
    shown with '?' for each bad byte, so two of them looked the same.  It
    is written as `crdtfs check` writes it, bad bytes as \\xHH."""
    b = util.make_backing(tmp_path / "b", hosts=("a",), n=1)
    for k, tail in enumerate((b"\xff\xfe", b"\xff\xfd")):
        util.write_file(os.path.join(b.encode(), b"memory-%s.json" % tail),
                        util.dumps_pretty(util.host_entries("x%d" % k, 1)))
    d = mount(b)
    files = sorted(s["file"] for s in
                   util.status_target(util.read_status(d.mnt))["sources"])
    assert files == ["memory-\\xff\\xfd.json", "memory-\\xff\\xfe.json",
                     "memory-a.json"]
    d.stop()


def test_descriptor_targets(backing, mount):
    d = mount(backing)
    desc = os.path.join(d.mnt, "only-a.json.merge.json")
    with open(desc, "w") as f:
        json.dump({"target": "only-a.json", "sources": ["memory-a.json"]},
                  f)
    # a new target appears as soon as the descriptor is written
    got = read(os.path.join(d.mnt, "only-a.json"))
    assert got == util.cli_merge(backing, "--target", "only-a.json")
    assert len(json.loads(got)) == 20
    assert "only-a.json" in os.listdir(d.mnt)
    assert "only-a.json.merge.json" in os.listdir(d.mnt)
    st = util.read_status(d.mnt)
    assert util.status_target(st, "only-a.json")["descriptor"] == \
        "only-a.json.merge.json"
    # an invalid descriptor shows no target and is reported
    with open(os.path.join(backing, "bad.json.merge.json"), "w") as f:
        f.write('{"target": "bad.json", "sources": ')
    assert not os.path.exists(os.path.join(d.mnt, "bad.json"))
    st = util.read_status(d.mnt)
    probs = st["descriptor_problems"]
    assert [p["file"] for p in probs] == ["bad.json.merge.json"]
    assert probs[0]["line"] >= 1 and probs[0]["message"]
    # removing the descriptor removes the target
    os.unlink(desc)
    assert not os.path.exists(os.path.join(d.mnt, "only-a.json"))
    assert "only-a.json" not in os.listdir(d.mnt)
    d.stop()


def test_an_invalid_override_of_the_default_hides_it(backing, mount):
    """A broken unified-memory.json.merge.json (a typo) made `crdtfs merge`
    fail but the mount serve the built-in default (a JSON array where the
    override asked for JSON Lines).  Now the default goes, as any target
    of an invalid descriptor does, and the status file says why."""
    d = mount(backing)
    over = os.path.join(d.mnt, MERGED + ".merge.json")
    util.write_file(over, json.dumps(
        {"target": MERGED, "sources": ["memory-*.json"], "format": "jsonl",
         "bogus": 1}).encode())
    assert not os.path.exists(os.path.join(d.mnt, MERGED))
    assert MERGED not in os.listdir(d.mnt)
    p = subprocess.run([util.CRDTFS, "merge", backing],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.returncode == 1 and p.stdout == b""
    probs = util.read_status(d.mnt)["descriptor_problems"]
    assert [(x["file"], x["severity"]) for x in probs] == \
        [(MERGED + ".merge.json", "error")]
    assert "bogus" in probs[0]["message"]
    # Fixed: the override is served, as `crdtfs merge` writes it.
    util.write_file(over, json.dumps(
        {"target": MERGED, "sources": ["memory-*.json"],
         "format": "jsonl"}).encode())
    got = read(os.path.join(d.mnt, MERGED))
    assert got == util.cli_merge(backing) and got.startswith(b"{")
    os.unlink(over)
    assert read(os.path.join(d.mnt, MERGED)).startswith(b"[")
    d.stop()


class Inotify:
    """A minimal inotify reader (ctypes) to see who opens host files."""

    IN_ACCESS, IN_OPEN = 0x1, 0x20

    def __init__(self, path, mask):
        import ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK)
        assert self.fd >= 0
        assert self.libc.inotify_add_watch(self.fd, path.encode(), mask) >= 0

    def names(self):
        import struct
        out = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            pos = 0
            while pos < len(buf):
                _, mask, _, n = struct.unpack_from("iIII", buf, pos)
                name = buf[pos + 16:pos + 16 + n].rstrip(b"\0").decode()
                out.append((name, mask))
                pos += 16 + n

    def close(self):
        os.close(self.fd)


def test_lazy_mount_reads_nothing(tmp_path, mount):
    b = util.make_backing(tmp_path / "b", hosts=("a", "b"), n=50)
    ino = Inotify(b, Inotify.IN_OPEN | Inotify.IN_ACCESS)
    try:
        d = mount(b)
        # mounting, listing and stat of host files open no host file
        os.listdir(d.mnt)
        os.stat(os.path.join(d.mnt, "memory-a.json"))
        touched = [n for n, _ in ino.names() if n.startswith("memory-")]
        assert touched == []
        # the first lookup of the merged name builds it
        os.stat(os.path.join(d.mnt, MERGED))
        touched = {n for n, _ in ino.names() if n.startswith("memory-")}
        assert touched == {"memory-a.json", "memory-b.json"}
        read(os.path.join(d.mnt, MERGED))
        d.stop()
    finally:
        ino.close()


def test_fsname_subtype_in_mountinfo(backing, mount):
    d = mount(backing)
    fstype, source, _ = util.mountinfo(d.mnt)
    assert fstype == "fuse.crdtfs"
    assert source == os.path.realpath(backing)
    d.stop()


def test_fsname_option(backing, mount):
    d = mount(backing, "-o", "fsname=memories")
    fstype, source, _ = util.mountinfo(d.mnt)
    assert (fstype, source) == ("fuse.crdtfs", "memories")
    d.stop()


# max_read: libfuse 3.14 drops the connection unless init() repeats it.
@pytest.mark.parametrize("opts", [["-s"], ["-o", "max_threads=2"],
                                  ["-o", "clone_fd"], ["-o", "max_read=4096"]])
def test_loop_variants(backing, mount, opts):
    d = mount(backing, *opts)
    assert read(os.path.join(d.mnt, MERGED)) == util.cli_merge(backing)
    d.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero(backing, mount, sig):
    d = mount(backing)
    read(os.path.join(d.mnt, MERGED))
    d.proc.send_signal(sig)
    assert d.proc.wait(30) == 0
    deadline = time.monotonic() + 10
    while util.is_mounted(d.mnt) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not util.is_mounted(d.mnt)
    d.stopped = True
    d._reader.join(5)
    d.check_output()


def test_allow_other_adds_default_permissions(backing, mount):
    d = mount(backing, "-o", "allow_other")
    _, _, opts = util.mountinfo(d.mnt)
    assert "default_permissions" in opts.split(",")
    assert "allow_other" in opts.split(",")
    assert read(os.path.join(d.mnt, MERGED)) == util.cli_merge(backing)
    d.stop()


def test_default_has_no_allow_other(backing, mount):
    d = mount(backing)
    _, _, opts = util.mountinfo(d.mnt)
    assert "allow_other" not in opts.split(",")
    d.stop()


def run_cli(*args):
    return subprocess.run([util.CRDTFS] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30)


# git finds its repository by path, which a mount on BACKING or above it
# hides: -o sync there is a usage error, not a broken sync.
SYNC_HIDDEN = "-o sync needs a MOUNTPOINT other than BACKING"


@pytest.mark.parametrize("args,what", [
    ([], "BACKING"),
    (["-f"], "BACKING"),
    (["-f", "DIR"], "MOUNTPOINT"),
    (["-f", "-o", "sync=60", "DIR/b", "DIR/b"], SYNC_HIDDEN),
    (["-f", "-o", "sync=60", "DIR/b", "DIR"], SYNC_HIDDEN),
    (["-f", "-o", "sync=-1", "DIR/b", "DIR"],
     "-o sync=SECONDS: a whole number of seconds from 0 to 31536000"),
    (["-o", "sync=60,remote=", "DIR/b", "DIR/m"],
     "-o remote=NAME: the name is empty"),
])
def test_usage_errors(tmp_path, args, what):
    util.make_backing(tmp_path / "b", hosts=("a",), n=1)
    (tmp_path / "m").mkdir()
    args = [a.replace("DIR", str(tmp_path)) for a in args]
    p = run_cli(*args)
    for m in (tmp_path, tmp_path / "b", tmp_path / "m"):
        if util.is_mounted(m):  # never left behind, also when failing
            util.fusermount_u(str(m))
            pytest.fail("%s was mounted" % m)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert what in err
    assert len(err.strip().splitlines()) == 1


def test_sync_of_a_directory_that_is_no_git_work_tree(tmp_path, mnt):
    """-o sync on a directory git does not know mounted, and then every
    sync failed, said only in the status file; it is said at once."""
    b = util.make_backing(tmp_path / "b", hosts=("a",), n=1)
    p = run_cli("-o", "sync=60", b, mnt)  # in the background: returns
    if util.is_mounted(mnt):
        util.fusermount_u(mnt)
        pytest.fail("mounted")
    assert p.returncode == 1
    assert p.stderr.decode() == (
        "crdtfs: -o sync: %s is not a git work tree (no .git): `git init` "
        "it and add a remote, or mount without -o sync\n" % b)


def test_backing_not_a_directory(tmp_path, mnt):
    f = tmp_path / "file"
    f.write_text("x")
    p = run_cli("-f", str(f), mnt)
    assert p.returncode == 2
    assert "not a directory" in p.stderr.decode()
    assert len(p.stderr.decode().strip().splitlines()) == 1
    p = run_cli("-f", str(tmp_path / "missing"), mnt)
    assert p.returncode == 2
    assert p.stderr.decode() == "crdtfs: %s: No such file or directory\n" % (
        tmp_path / "missing")
    assert not util.is_mounted(mnt)


def test_mountpoint_not_a_directory(tmp_path):
    """libfuse mounts on a file too; the host file there would vanish
    behind the mount's root (and from the merge, as unreadable)."""
    b = util.make_backing(tmp_path / "b", hosts=("a",), n=1)
    target = os.path.join(b, "memory-a.json")
    try:
        p = run_cli(b, target)  # in the background, were it to mount
        assert not util.is_mounted(target)
    finally:
        if util.is_mounted(target):
            util.fusermount_u(target, lazy=True)
    assert (p.returncode, p.stderr.decode()) == (2, (
        "crdtfs: %s: not a directory (MOUNTPOINT must be one)\n" % target))


def test_help(tmp_path):
    p = run_cli("-h")
    assert p.returncode == 0
    out = p.stdout.decode() + p.stderr.decode()
    assert "BACKING" in out and "MOUNTPOINT" in out
    assert "prepare [--host NAME] [--allow-empty] [-q]" in out
    # Output that could not be written is a failure, as in coreutils.
    for args in (["--help"], ["--version"], ["merge", "--help"]):
        with open("/dev/full", "w") as full:
            p = subprocess.run([util.CRDTFS] + args, stdout=full,
                               stderr=subprocess.PIPE, timeout=30)
        assert (p.returncode, p.stderr) == (
            1, b"crdtfs: write error: No space left on device\n")


@pytest.mark.parametrize("args,line", [
    (["prepare", "--bogus", "x"], "prepare: --bogus: unknown option"),
    (["prepare", "--host"], "prepare: --host: missing value"),
    (["sync", "-z", "x"], "sync: -z: unknown option"),
    (["sync", "--remote"], "sync: --remote: missing value"),
    (["merge", "--bogus", "x"], "merge: --bogus: unknown option"),
])
def test_a_bad_option_is_one_line(args, line):
    """getopt's own message came first, then the command's "bad option"."""
    p = run_cli(*args)
    cmd = args[0]
    assert (p.returncode, p.stderr.decode()) == (2, (
        "crdtfs %s (try crdtfs %s --help)\n" % (line, cmd)))


def test_check_takes_arguments_as_merge_does(tmp_path):
    """`--` ends the options of check as of merge (it was a usage error),
    and an unknown option is named as merge names it (check said it
    expected one argument, also for `check --bogus DIR`)."""
    b = util.make_backing(tmp_path / "b", hosts=("a",), n=1)
    assert run_cli("check", "--", b).returncode == 0
    for args, why in (([], "missing BACKING"),
                      (["-x"], "-x: unknown option"),
                      (["--bogus", b], "--bogus: unknown option"),
                      ([b, b], "expected exactly one argument, BACKING")):
        p = run_cli("check", *args)
        assert (p.returncode, p.stderr.decode()) == (2, (
            "crdtfs check: %s (try crdtfs check --help)\n" % why))


def test_background_mount_returns_once_it_answers(backing, tmp_path):
    """Without -f the command returns when the mount answers: exit 0,
    nothing said, the terminal's pipes let go (a daemon keeping them
    would hold this run() until its timeout), and the files there."""
    m = str(tmp_path / "mnt")
    os.mkdir(m)
    pid = None
    try:
        p = subprocess.run([util.CRDTFS, backing, m], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        assert (p.returncode, p.stdout, p.stderr) == (0, b"", b"")
        assert util.is_mounted(m)
        assert read(os.path.join(m, MERGED)) == util.cli_merge(backing)
        pid = daemon_pid(m)
        assert pid
        assert [os.readlink("/proc/%d/fd/%d" % (pid, fd))
                for fd in range(3)] == ["/dev/null"] * 3
    finally:
        util.fusermount_u(m)
    wait_gone(pid)


def test_background_mount_that_cannot_start_says_so(backing, tmp_path,
                                                    open_shim):
    """A failure after the fork (here: no thread can start) reaches the
    terminal with exit status 1, and leaves nothing mounted."""
    m = str(tmp_path / "mnt")
    os.mkdir(m)
    env = dict(os.environ)
    env.update(open_shim("-", on="pthread_create"))
    try:
        p = subprocess.run([util.CRDTFS, backing, m], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        mounted = util.is_mounted(m)
    finally:
        if util.is_mounted(m):
            util.fusermount_u(m, lazy=True)
    assert (p.returncode, p.stderr.decode(), mounted) == (
        1, "crdtfs: starting threads: Resource temporarily unavailable\n",
        False)



def test_background_mount_whose_statfs_fails_still_starts(backing, tmp_path,
                                                          open_shim):
    """The wait for the mount to answer sends a STATFS: an error from the
    backing file system in reply is an answer all the same (the mount had
    been taken down as "did not start")."""
    m = str(tmp_path / "mnt")
    os.mkdir(m)
    env = dict(os.environ)
    env.update(open_shim(os.path.basename(backing), on="fstatvfs",
                         errno=errno.EIO))
    try:
        p = subprocess.run([util.CRDTFS, backing, m], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        assert (p.returncode, p.stderr) == (0, b"")
        assert read(os.path.join(m, MERGED)) == util.cli_merge(backing)
    finally:
        util.fusermount_u(m)


def test_signal_to_a_waiting_background_mount_stops_it(backing, tmp_path,
                                                       open_shim):
    """Ctrl-C, `timeout` or `mount -a` giving up signal the command while
    it waits for the mount to answer (here: STATFS hangs 3 s, as on a
    hung NFS under BACKING).  The signal reaches the daemon, which stops;
    the command exits 128 + the signal, with nothing left mounted."""
    m = str(tmp_path / "mnt")
    os.mkdir(m)
    env = dict(os.environ)
    env.update(open_shim(os.path.basename(backing), on="fstatvfs",
                         sleep_ms=3000))
    p = subprocess.Popen([util.CRDTFS, backing, m], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not util.is_mounted(m) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert util.is_mounted(m)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        assert p.returncode == 128 + signal.SIGTERM, p.stderr.read()
        assert not util.is_mounted(m)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if util.is_mounted(m):
            util.fusermount_u(m)


SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.mark.parametrize("route", ["mount.fuse3", "mount -t"])
def test_mount_fuse3_route(tmp_path, backing, route):
    """mount.fuse3 runs `crdtfs BACKING MNT -o rw,...` found on PATH.

    mount(8) resets PATH to a safe list before it runs the helper, so the
    `mount -t fuse.crdtfs` route is only tried when crdtfs is installed
    there; `mount.fuse3` itself is always tried with PATH pointing at the
    build.
    """
    helper = shutil.which("mount.fuse3", path=SAFE_PATH)
    if not helper or os.getuid() != 0:
        pytest.skip("needs mount.fuse3 and root")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(util.CRDTFS, str(bindir / "crdtfs"))
    m = tmp_path / "mnt"
    m.mkdir()
    env = dict(os.environ)
    env["PATH"] = "%s:%s" % (bindir, env.get("PATH", SAFE_PATH))
    # mount(8) runs the helper with its own PATH: put this build there for
    # the test (as a symlink we remove), unless a crdtfs is installed there
    # already, which we never replace.
    linked = None
    if route == "mount -t":
        installed = shutil.which("crdtfs", path=SAFE_PATH)
        if not installed:
            linked = "/usr/local/bin/crdtfs"
            os.makedirs("/usr/local/bin", exist_ok=True)
            os.symlink(util.CRDTFS, linked)
        elif not os.path.samefile(installed, util.CRDTFS):
            pytest.skip("another crdtfs is installed on mount(8)'s PATH "
                        "(%s); not replacing it" % installed)
        cmd = ["mount", "-t", "fuse.crdtfs", backing, str(m)]
    else:
        cmd = [helper, backing, str(m), "-t", "crdtfs", "-o", "rw"]
    pid = None
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        assert p.returncode == 0, p.stderr.decode()
        assert util.is_mounted(str(m))
        fstype, source, _ = util.mountinfo(str(m))
        assert fstype == "fuse.crdtfs"
        assert source == os.path.realpath(backing)
        assert read(str(m / MERGED)) == util.cli_merge(backing)
        pid = daemon_pid(str(m))
        assert pid
    finally:
        util.fusermount_u(str(m))
        if linked:
            os.unlink(linked)
    wait_gone(pid)


def wait_gone(pid):
    """The daemon (not our child) goes away after the unmount."""
    deadline = time.monotonic() + 30
    while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists("/proc/%d" % pid)


def daemon_pid(mnt):
    """The crdtfs process serving `mnt`, found by its command line."""
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if mnt.encode() in argv and any(a.endswith(b"crdtfs")
                                        for a in argv[:1]):
            return int(p)
    return None


def test_xattr_not_supported(backing, mount):
    """Off unless -o xattr: the kernel would ask for security.capability
    before every write."""
    d = mount(backing)
    p = os.path.join(d.mnt, "memory-a.json")
    with pytest.raises(OSError) as ei:
        os.setxattr(p, "user.x", b"1")
    assert ei.value.errno == errno.EOPNOTSUPP
    d.stop()


def run_unless_stuck(d, cmd):
    """(status, stdout, stderr) of cmd; if it is still running after 20 s,
    the daemon is killed (one waiting on itself frees its callers only
    then) and the test fails."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        p.kill()
        p.communicate()
        raise AssertionError("%s hung: the daemon waited on itself" % cmd)
    return p.returncode, out, err


@pytest.mark.parametrize("opts", [(), ("-s",)])
def test_mountpoint_inside_backing_is_hidden(tmp_path, mount, opts):
    """A mountpoint inside BACKING does not appear in the mount: a walk
    (ls -l, find, du) looked it up through the mount, the daemon then held
    its own mount busy (unmount failed with EBUSY), and with -s waited on
    itself forever."""
    b = util.make_backing(tmp_path / "b", hosts=("a",), n=2)
    os.makedirs(os.path.join(b, "sub", "view"))
    inner = os.path.join(b, "sub", "view")
    d = mount(b, *opts, mountpoint=inner)
    rc, out, err = run_unless_stuck(d, ["find", inner])
    assert (rc, err) == (0, "")
    assert sorted(out.split()) == sorted(
        [inner] + [os.path.join(inner, n) for n in ("memory-a.json", "sub",
                                                     MERGED, STATUS)])
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(inner, "sub", "view"))
    assert os.listdir(os.path.join(inner, "sub")) == []
    with pytest.raises(FileExistsError):
        os.mkdir(os.path.join(inner, "sub", "view"))
    d.stop(lazy=False)


def test_mountpoint_inside_backing_and_a_pattern_that_reaches_it(
        tmp_path, mount):
    """A descriptor whose pattern's directory part matches the mountpoint
    (`*/memory.json`, mount at BACKING/view): building the merge stat'ed
    the mountpoint, through the mount, from inside a request; with -s the
    daemon waited on itself once the root's attributes had expired."""
    b = util.make_backing(tmp_path / "b", hosts=("a",), n=2)
    os.makedirs(os.path.join(b, "sub"))
    os.makedirs(os.path.join(b, "view"))
    util.write_file(os.path.join(b, "sub", "memory.json"),
                    util.dumps_pretty(util.host_entries("s", 3)))
    with open(os.path.join(b, "deep.json.merge.json"), "w") as f:
        json.dump({"target": "deep.json", "sources": ["*/memory.json"]}, f)
    inner = os.path.join(b, "view")
    d = mount(b, "-s", mountpoint=inner)
    os.listdir(inner)
    time.sleep(1.5)  # the root's attributes (1 s) expire
    rc, out, err = run_unless_stuck(d, ["cat",
                                        os.path.join(inner, "deep.json")])
    assert (rc, err) == (0, "")
    assert [e["id"] for e in json.loads(out)] == ["s-0", "s-1", "s-2"]
    time.sleep(1.5)
    util.write_file(os.path.join(inner, "sub", "memory.json"),
                    util.dumps_pretty(util.host_entries("s", 4)))
    assert len(json.loads(read(os.path.join(inner, "deep.json")))) == 4
    d.stop(lazy=False)


def test_mount_over_backing_itself(tmp_path, mount):
    """Mounting on top of BACKING works: the daemon reaches the real
    directory through the fd it opened before mounting."""
    b = util.make_backing(tmp_path / "same", hosts=("a", "b"), n=5)
    expected = util.cli_merge(b)
    d = mount(b, mountpoint=b)
    assert read(os.path.join(b, MERGED)) == expected
    util.write_file(os.path.join(b, "memory-c.json"),
                    util.dumps_pretty(util.host_entries("c", 2)))
    got = read(os.path.join(b, MERGED))
    assert b'"c-1"' in got
    assert sorted(os.listdir(b)) == sorted([MERGED, STATUS, "memory-a.json",
                                            "memory-b.json",
                                            "memory-c.json"])
    d.stop()
    # the write went to the real directory under the mount
    assert os.path.exists(os.path.join(b, "memory-c.json"))
    assert not os.path.exists(os.path.join(b, MERGED))
