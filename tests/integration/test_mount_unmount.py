# SPDX-License-Identifier: MIT
"""
Ending a mount while it is busy: readers in flight, notifications queued,
signals.  The daemon must exit 0 and never hang.
"""

import os
import signal
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
