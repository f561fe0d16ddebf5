# SPDX-License-Identifier: MIT
"""
Ending a mount while it is busy: readers in flight, notifications queued,
signals.  The daemon must exit 0 and never hang.
"""

import os
import signal
import subprocess
import threading
import time

import util
from util import MERGED, write_file

pytestmark = util.fuse_test_marker()


def busy_readers(mnt, n, stop, errors):
    def run():
        p = os.path.join(mnt, MERGED)
        while not stop.is_set():
            try:
                with open(p, "rb", buffering=0) as f:
                    while f.read(65536):
                        pass
                with open(os.path.join(mnt, "memory-a.json"), "rb") as f:
                    f.read()
            except OSError as e:
                errors.append(e)
                return
    ts = [threading.Thread(target=run) for _ in range(n)]
    for t in ts:
        t.start()
    return ts


def outside_writer(backing, stop):
    def run():
        i = 0
        while not stop.is_set():
            write_file(os.path.join(backing, "memory-w.json"),
                       util.dumps_pretty(util.host_entries("w", 1 + i % 5)))
            i += 1
    t = threading.Thread(target=run)
    t.start()
    return t


def corpus(tmp_path):
    return util.gen_corpus(tmp_path / "c", hosts=3, entries=300,
                           fmt="pretty", seed=5)


def test_unmount_while_reading(tmp_path, mount):
    b = corpus(tmp_path)
    d = mount(b)
    stop, errors = threading.Event(), []
    ts = busy_readers(d.mnt, 4, stop, errors)
    w = outside_writer(b, stop)
    time.sleep(0.5)
    try:
        assert util.fusermount_u(d.mnt, lazy=True) == 0
        assert not util.is_mounted(d.mnt)
    finally:
        stop.set()
        for t in ts + [w]:
            t.join(30)
    assert not any(t.is_alive() for t in ts)
    assert d.proc.wait(30) == 0
    d.stopped = True
    d._reader.join(5)
    d.check_output()


def test_sigterm_while_reading(tmp_path, mount):
    b = corpus(tmp_path)
    d = mount(b)
    stop, errors = threading.Event(), []
    ts = busy_readers(d.mnt, 3, stop, errors)
    w = outside_writer(b, stop)
    time.sleep(0.5)
    try:
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(30) == 0
    finally:
        stop.set()
        for t in ts + [w]:
            t.join(30)
        util.fusermount_u(d.mnt)
    assert not util.is_mounted(d.mnt)
    d.stopped = True
    d._reader.join(5)
    d.check_output()


def test_unmount_with_open_idle_handle(backing, mount):
    """A lazily unmounted fs lives until its last fd closes."""
    d = mount(backing)
    f = open(os.path.join(d.mnt, MERGED), "rb")
    head = f.read(10)
    assert util.fusermount_u(d.mnt, lazy=True) == 0
    time.sleep(0.2)
    assert d.proc.poll() is None  # still serving the open file
    assert head + f.read() == util.cli_merge(backing)
    f.close()
    assert d.proc.wait(30) == 0
    d.stopped = True
    d._reader.join(5)
    d.check_output()


def test_sigterm_while_a_notification_waits_on_a_write(tmp_path, mount,
                                                       open_shim):
    """A write through the mount keeps its pages locked until the daemon
    answers it, and a cache notification for that file (here for an
    outside write) waits on those locks.  SIGTERM then must not end the
    request loop first: that write, still queued, would never be
    answered, the notifier never return, and the daemon hang for good
    (its thread asleep in the kernel cannot be killed).  One worker
    thread, kept busy 2 s by a write to another file (the shim), leaves
    the write queued while the signal comes."""
    b = tmp_path / "b"
    b.mkdir()
    for h in "xw":
        (b / ("memory-%s.json" % h)).write_bytes(
            util.dumps_jsonl([util.entry(h + "-0", util.ts(0))]))
    env = dict(os.environ)
    env.update(open_shim("memory-x.json", on="pwrite", sleep_ms=2000))
    d = mount(str(b), "-o", "max_threads=1", env=env)
    line = util.dumps_jsonl([util.entry("w-1", util.ts(1))])
    fds = {h: os.open(os.path.join(d.mnt, "memory-%s.json" % h),
                      os.O_WRONLY | os.O_APPEND) for h in "xw"}
    done = {}

    def write(h):
        try:
            done[h] = os.write(fds[h], line)
        except OSError as e:
            done[h] = e

    ts = [threading.Thread(target=write, args=(h,)) for h in "xw"]
    ts[0].start()
    time.sleep(0.3)  # the one worker is in the write of x
    ts[1].start()
    time.sleep(0.3)  # the write of w is queued, its pages locked
    with open(b / "memory-w.json", "ab") as f:
        f.write(b"\n")  # outside: the notifier waits on those pages
    time.sleep(0.3)
    d.proc.send_signal(signal.SIGTERM)
    try:
        code = d.proc.wait(30)
    except subprocess.TimeoutExpired:
        code = "hung"
        util.abort_connection(d.conn)  # frees the daemon and the writers
    for t in ts:
        t.join(30)
    for fd in fds.values():
        try:
            os.close(fd)
        except OSError:  # the flush after the daemon is gone
            pass
    util.fusermount_u(d.mnt)
    assert code == 0
    assert not any(t.is_alive() for t in ts)
    assert done == {"x": len(line), "w": len(line)}  # both answered
    d.stopped = True
    d._reader.join(5)
    d.check_output()
