# SPDX-License-Identifier: MIT
"""
util.py - helpers for the crdtfs mount tests, in the manner of libfuse's
test/util.py: run the real daemon in the foreground, wait for the mount by
polling (failing fast when the daemon dies), always unmount, require exit
status 0, and fail on daemon output nobody expected.

The binary comes from $CRDTFS (meson sets it), else `crdtfs` on PATH.
"""

import ctypes
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests"))

try:
    import oracle  # tests/oracle.py: an independent merge in Python
except Exception:  # pragma: no cover - the oracle is optional
    oracle = None

CRDTFS = os.environ.get("CRDTFS") or shutil.which("crdtfs")
FUSERMOUNT = shutil.which("fusermount3")
MERGED = "unified-memory.json"
STATUS = ".crdtfs-status.json"

# Daemon output that fails a test (libfuse's output_checker list).
BAD_OUTPUT = re.compile(
    r"error|warning|fatal|traceback|fault|crash|abort|uninitiali|leak"
    r"|sanitizer|runtime error", re.I)


def fuse_test_marker():
    """Skip (never fail) where FUSE cannot be used."""
    why = None
    if not CRDTFS or not os.access(CRDTFS, os.X_OK):
        why = "crdtfs binary not found (set CRDTFS)"
    elif not FUSERMOUNT:
        why = "fusermount3 not found"
    elif not os.path.exists("/dev/fuse"):
        why = "/dev/fuse does not exist"
    else:
        try:
            os.close(os.open("/dev/fuse", os.O_RDWR))
        except OSError as e:
            why = "cannot open /dev/fuse: %s" % e
        if why is None and os.getuid() != 0:
            mode = os.stat(FUSERMOUNT).st_mode
            if not mode & stat.S_ISUID:
                why = "fusermount3 is not setuid and we are not root"
    if why:
        return pytest.mark.skip(reason=why)
    return pytest.mark.uses_fuse


def fuse_connection(path):
    """The FUSE connection number (device minor) of the mount at `path`,
    or None."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4].replace("\\040", " ") == path:
                return fields[2].split(":")[1]
    return None


def abort_connection(conn):
    """Last resort for a daemon stuck in the kernel (a thread in D state
    cannot be killed): abort its FUSE connection through fusectl, which
    fails every request waiting on it."""
    ctl = "/sys/fs/fuse/connections"
    libc = ctypes.CDLL(None, use_errno=True)
    # mount(2) itself: mount(8) may stat the stuck mount and hang too
    ours = not os.listdir(ctl) and libc.mount(b"fusectl", ctl.encode(),
                                              b"fusectl", 0, None) == 0
    try:
        fd = os.open(os.path.join(ctl, conn, "abort"), os.O_WRONLY)
        try:
            os.write(fd, b"1")
        finally:
            os.close(fd)
    except OSError:
        pass
    if ours:
        libc.umount2(ctl.encode(), 0)


def is_mounted(path):
    """True when `path` is a mount point in /proc/self/mountinfo."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4].replace("\\040", " ") == path:
                return True
    return False


def mountinfo(path):
    """(fstype, source, options) of the mount at `path`, or None."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == path:
                sep = fields.index("-")
                return fields[sep + 1], fields[sep + 2], fields[sep + 3]
    return None


def fusermount_u(mnt, lazy=True):
    args = [FUSERMOUNT, "-u", "-q"] + (["-z"] if lazy else []) + [mnt]
    try:
        return subprocess.run(args, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL,
                              timeout=30).returncode
    except subprocess.TimeoutExpired:  # a daemon stuck on itself
        return -1


class Daemon:
    """One `crdtfs -f BACKING MNT` child with its output collected."""

    def __init__(self, backing, mnt, opts=(), env=None, binary=None,
                 **popen_args):
        """`popen_args` go to subprocess.Popen (user=, preexec_fn=...)."""
        self.backing = str(backing)
        self.mnt = str(mnt)
        self.cmd = [binary or CRDTFS, "-f"] + list(opts) + [self.backing,
                                                          self.mnt]
        self.lines = []
        self.allowed = []
        self.stopped = False
        self.conn = None  # FUSE connection number, once mounted
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env,
                                     **popen_args)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def pid(self):
        return self.proc.pid

    def allow(self, regex):
        """Do not fail on daemon lines matching `regex`."""
        self.allowed.append(re.compile(regex))

    def wait_mounted(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._reader.join(2)
                pytest.fail("crdtfs exited with %s before mounting:\n%s" %
                            (self.proc.returncode, "\n".join(self.lines)))
            if is_mounted(self.mnt):
                self.conn = fuse_connection(self.mnt)
                return
            time.sleep(0.02)
        pytest.fail("%s not mounted after %ss" % (self.mnt, timeout))

    def wait_for_line(self, text, since=0, timeout=10):
        """Has the daemon printed a line holding `text`, as its line
        `since` (a len(self.lines) taken earlier) or later, within
        timeout?"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines[since:]):
                return True
            time.sleep(0.02)
        return False

    def bad_lines(self):
        return [l for l in self.lines if BAD_OUTPUT.search(l) and
                not any(a.search(l) for a in self.allowed)]

    def stop(self, timeout=30, lazy=True):
        """Unmount; require exit status 0 and clean output."""
        self.stopped = True
        assert fusermount_u(self.mnt, lazy=lazy) == 0
        assert not is_mounted(self.mnt)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("crdtfs did not exit %ss after unmount" % timeout)
        self._reader.join(5)
        assert code == 0, "crdtfs exited %s:\n%s" % (code,
                                                      "\n".join(self.lines))
        self.check_output()

    def check_output(self):
        bad = self.bad_lines()
        assert not bad, "unexpected daemon output:\n" + "\n".join(bad)

    def kill(self):
        """Cleanup after a failure: unmount, terminate, then kill."""
        if is_mounted(self.mnt):
            fusermount_u(self.mnt)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    abort_connection(self.conn)
                    self.proc.wait(10)
        self._reader.join(5)


# ---- building host files ----

def entry(uid, ts, host="a", version=1, text=None, **extra):
    """One memory entry as a dict."""
    e = {"id": uid, "content": text if text is not None else "about " + uid}
    e.update(extra)
    e["_crdt_metadata"] = {"host": host, "timestamp": ts,
                           "version": version, "unique_id": uid}
    return e


def ts(i):
    """A distinct RFC 3339 timestamp for index i."""
    return "2025-01-%02dT%02d:%02d:%02dZ" % (1 + i // 86400 % 28,
                                            i // 3600 % 24, i // 60 % 60,
                                            i % 60)


def dumps_pretty(entries):
    return (json.dumps(entries, indent=2, ensure_ascii=False) +
            "\n").encode()


def dumps_jsonl(entries):
    return "".join(json.dumps(e, ensure_ascii=False) + "\n"
                   for e in entries).encode()


def host_entries(host, n, start=0, prefix=None):
    prefix = prefix or host
    return [entry("%s-%d" % (prefix, i), ts(start + i * 7), host=host)
            for i in range(n)]


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def make_backing(path, hosts=("a", "b", "c"), n=20):
    """A backing directory with one pretty host file per host."""
    os.makedirs(path, exist_ok=True)
    for k, h in enumerate(hosts):
        write_file(os.path.join(path, "memory-%s.json" % h),
                   dumps_pretty(host_entries(h, n, start=k)))
    return str(path)


def gen_corpus(out, hosts, entries, fmt="mixed", seed=1):
    """scripts/gen-corpus.py into `out` (skips when it is missing)."""
    script = os.path.join(SRC, "scripts", "gen-corpus.py")
    if not os.path.exists(script):
        pytest.skip("scripts/gen-corpus.py not available")
    subprocess.run(["/usr/bin/python3", script, "--hosts", str(hosts),
                    "--entries", str(entries), "--seed", str(seed),
                    "--format", fmt, "--out", str(out)], check=True)
    return str(out)


# ---- expectations ----

def cli_merge(backing, *args, clean=False):
    """`crdtfs merge [args] BACKING` output (exit status 0, or 1 when some
    host file has problems, unless `clean`)."""
    p = subprocess.run([CRDTFS, "merge"] + list(args) + [str(backing)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    assert p.returncode in ((0,) if clean else (0, 1)), p.stderr.decode()
    return p.stdout


def read(path):
    with open(path, "rb") as f:
        return f.read()


def read_status(mnt):
    return json.loads(read(os.path.join(mnt, STATUS)))


def status_target(st, name=MERGED):
    for t in st["targets"]:
        if t["name"] == name:
            return t
    raise KeyError(name)
