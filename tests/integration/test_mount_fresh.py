# SPDX-License-Identifier: MIT
"""
Always fresh, never torn: an open() that starts after a write returned sees
the new content (new size, newer mtime, same inode number), whether the
write went through the mount or around it; an open handle reads one
generation from its first byte to EOF.  No sleeps anywhere between the
writing call and the open.
"""

import errno
import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

import util
from util import MERGED, read, write_file

pytestmark = util.fuse_test_marker()


class Checker:
    """Reads the merged file and compares it with `crdtfs merge`."""

    def __init__(self, d, backing):
        self.d = d
        self.backing = backing
        self.path = os.path.join(d.mnt, MERGED)
        self.st = os.stat(self.path)
        self.data = read(self.path)
        self.check_now()

    def check_now(self):
        assert self.data == util.cli_merge(self.backing)
        assert self.st.st_size == len(self.data)

    def after_change(self, must_change=True):
        """Open right now; must see the new generation."""
        with open(self.path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
        assert st.st_size == len(data)
        assert st.st_ino == self.st.st_ino
        assert data == util.cli_merge(self.backing)
        if must_change:
            assert data != self.data
            assert st.st_mtime_ns > self.st.st_mtime_ns
        json.loads(data)
        self.st, self.data = st, data
        return data


def where(d, backing, route):
    return d.mnt if route == "mount" else backing


ROUTES = ["mount", "outside"]


@pytest.mark.parametrize("route", ROUTES)
def test_append_entry(backing, mount, route):
    d = mount(backing)
    c = Checker(d, backing)
    base = where(d, backing, route)
    p = os.path.join(base, "memory-a.json")
    entries = util.host_entries("a", 20)
    for i in range(5):
        entries.append(util.entry("new-%d" % i, util.ts(100000 + i)))
        write_file(p, util.dumps_pretty(entries))
        assert b'"new-%d"' % i in c.after_change()
    d.stop()


@pytest.mark.parametrize("route", ROUTES)
def test_append_jsonl(tmp_path, mount, route):
    b = str(tmp_path / "b")
    os.mkdir(b)
    write_file(os.path.join(b, "memory-j.json"),
               util.dumps_jsonl(util.host_entries("j", 3)))
    d = mount(b)
    c = Checker(d, b)
    p = os.path.join(where(d, b, route), "memory-j.json")
    for i in range(10):
        with open(p, "ab") as f:
            f.write(util.dumps_jsonl([util.entry("app-%d" % i,
                                                 util.ts(5000 + i))]))
        assert b'"app-%d"' % i in c.after_change()
    d.stop()


def grow_in_place(path, new_entries, edit=None):
    """Append entries to a non-empty pretty JSON array over its closing
    bracket, in place, the way a memory file grows; `edit` (old, new) also
    replaces bytes of the same length before the growth, in the same
    open."""
    with open(path, "r+b") as f:
        data = f.read()
        cut = data.rindex(b"]")
        tail = b"".join(b",\n  " + json.dumps(e).encode()
                        for e in new_entries)
        f.seek(cut)
        f.truncate()
        f.write(tail + b"\n]\n")
        if edit:
            old, new = edit
            assert len(old) == len(new) and data.count(old) == 1
            f.seek(data.index(old))
            f.write(new)


@pytest.mark.parametrize("route", ROUTES)
def test_grow_in_place_and_edit_before_growth(backing, mount, route):
    """A mounted file that grows is rescanned from where its last scan
    stopped, after a check of the bytes before; a byte changed there in
    the same write must still be seen, and so must a growth that follows
    an earlier one."""
    d = mount(backing)
    c = Checker(d, backing)
    p = os.path.join(where(d, backing, route), "memory-a.json")
    for i in range(6):
        edit = None
        if i % 2:
            # a-0's timestamp, somewhere in the first bytes of the file
            old = read(os.path.join(backing, "memory-a.json"))
            stamp = re.search(rb'"a-0".*?"timestamp": "([^"]+)"', old,
                              re.S).group(1)
            edit = (stamp, util.ts(300000 + i).encode())
        grow_in_place(p, [util.entry("grown-%d" % i, util.ts(400000 + i))],
                      edit)
        out = c.after_change()
        assert b'"grown-%d"' % i in out
        if edit:
            assert edit[1] in out
    d.stop()


@pytest.mark.parametrize("route", ROUTES)
def test_change_timestamp_in_place_same_size(backing, mount, route):
    """Same size, rewritten in place, many times within one clock tick:
    only invalidation (not a stat signature) can notice it."""
    d = mount(backing)
    c = Checker(d, backing)
    p = os.path.join(where(d, backing, route), "memory-b.json")
    data = read(os.path.join(backing, "memory-b.json"))
    first = util.ts(1)  # the timestamp of entry b-0
    assert data.count(first.encode()) == 1
    for i in range(20):
        new = util.ts(200000 + i * 61).encode()
        assert len(new) == len(first)
        off = data.index(first.encode()) if i == 0 else data.index(prev)
        with open(p, "r+b") as f:
            f.seek(off)
            f.write(new)
        data = data[:off] + new + data[off + len(new):]
        prev = new
        out = c.after_change()
        assert new in out
    d.stop()


@pytest.mark.parametrize("route", ROUTES)
def test_delete_and_add_host_file(backing, mount, route):
    d = mount(backing)
    c = Checker(d, backing)
    base = where(d, backing, route)
    os.unlink(os.path.join(base, "memory-c.json"))
    assert b'"c-0"' not in c.after_change()
    write_file(os.path.join(base, "memory-d.json"),
               util.dumps_pretty(util.host_entries("d", 4)))
    assert b'"d-3"' in c.after_change()
    d.stop()


@pytest.mark.parametrize("route", ROUTES)
def test_rename_over(backing, mount, route):
    d = mount(backing)
    c = Checker(d, backing)
    base = where(d, backing, route)
    for i in range(5):
        tmp = os.path.join(base, ".memory-a.json.tmp%d" % i)
        write_file(tmp, util.dumps_pretty(
            util.host_entries("a", 20 + i, prefix="r%d" % i)))
        os.rename(tmp, os.path.join(base, "memory-a.json"))
        out = c.after_change()
        assert b'"r%d-0"' % i in out
    d.stop()


@pytest.mark.parametrize("route", ROUTES)
def test_git_checkout_like(backing, mount, route):
    """unlink + create of every host file, as git checkout does."""
    d = mount(backing)
    c = Checker(d, backing)
    base = where(d, backing, route)
    for rnd in range(3):
        for h in ("a", "b", "c"):
            p = os.path.join(base, "memory-%s.json" % h)
            os.unlink(p)
            write_file(p, util.dumps_pretty(
                util.host_entries(h, 10 + rnd, prefix="%s%d" % (h, rnd))))
        assert b'"c%d-0"' % rnd in c.after_change()
    d.stop()


@pytest.mark.parametrize("route", ROUTES)
def test_truncate(backing, mount, route):
    d = mount(backing)
    c = Checker(d, backing)
    p = os.path.join(where(d, backing, route), "memory-a.json")
    os.truncate(p, 0)
    assert b'"a-0"' not in c.after_change()
    d.stop()


def test_inode_number_stable_and_stat_fresh(backing, mount):
    d = mount(backing)
    p = os.path.join(d.mnt, MERGED)
    st0 = os.stat(p)
    write_file(os.path.join(d.mnt, "memory-d.json"),
               util.dumps_pretty(util.host_entries("d", 3)))
    st1 = os.stat(p)
    assert st1.st_ino == st0.st_ino
    assert st1.st_size > st0.st_size
    assert st1.st_mtime_ns > st0.st_mtime_ns
    assert st1.st_blocks == (st1.st_size + 511) // 512
    # an fd opened before the change keeps its generation
    with open(p, "rb") as old:
        write_file(os.path.join(backing, "memory-e.json"),
                   util.dumps_pretty(util.host_entries("e", 3)))
        new = read(p)
        assert b'"e-0"' in new
        kept = old.read()
        assert b'"e-0"' not in kept and b'"d-0"' in kept
        assert os.fstat(old.fileno()).st_size == len(kept)
    d.stop()


# ---- editors saving a host file through the mount ----

def new_content(i):
    return util.dumps_pretty(util.host_entries("a", 21, prefix="ed%d" % i))


def save_in_place(mnt, name, data):
    with open(os.path.join(mnt, name), "r+b") as f:
        f.truncate(0)
        f.write(data)
        os.fsync(f.fileno())


def save_temp_rename(mnt, name, data):
    tmp = os.path.join(mnt, ".%s.XXXX1234" % name)
    with open(tmp, "wb") as f:
        f.write(data)
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, os.path.join(mnt, name))


def save_vim_style(mnt, name, data):
    """vim with backupcopy=no: probe, swap file, backup by rename, write
    new, fsync, drop backup and swap."""
    target = os.path.join(mnt, name)
    swp = os.path.join(mnt, ".%s.swp" % name)
    fd = os.open(swp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    os.write(fd, b"b0VIM 9.0" + b"\0" * 4087)
    probe = os.path.join(mnt, "4913")
    pfd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY |
                  os.O_NOFOLLOW, 0o644)
    os.fchown(pfd, os.getuid(), os.getgid())
    os.close(pfd)
    os.unlink(probe)
    backup = target + "~"
    os.rename(target, backup)
    nfd = os.open(target, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
    os.write(nfd, data)
    os.fsync(nfd)
    os.close(nfd)
    st = os.stat(backup)
    os.chmod(target, st.st_mode & 0o7777)
    os.unlink(backup)
    os.close(fd)
    os.unlink(swp)


@pytest.mark.parametrize("save", [save_in_place, save_temp_rename,
                                  save_vim_style])
def test_editor_save_styles(backing, mount, save):
    d = mount(backing)
    c = Checker(d, backing)
    for i in range(3):
        save(d.mnt, "memory-a.json", new_content(i))
        assert read(os.path.join(backing, "memory-a.json")) == \
            new_content(i)
        out = c.after_change()
        assert b'"ed%d-20"' % i in out
    names = set(os.listdir(d.mnt))
    assert names == {MERGED, util.STATUS, "memory-a.json", "memory-b.json",
                     "memory-c.json"}
    d.stop()


@pytest.mark.parametrize("backupcopy", ["yes", "no"])
def test_real_vim_save(tmp_path, mount, backupcopy):
    vim = shutil.which("vim")
    if not vim:
        pytest.skip("vim not installed")
    b = str(tmp_path / "b")
    os.mkdir(b)
    write_file(os.path.join(b, "memory-v.json"),
               util.dumps_jsonl(util.host_entries("v", 3)))
    d = mount(b)
    c = Checker(d, b)
    line = json.dumps(util.entry("vim-%s" % backupcopy, util.ts(99999),
                                 host="v"))
    assert "'" not in line
    p = subprocess.run(
        [vim, "-u", "NONE", "-i", "NONE", "-N", "-es",
         "-c", "set backupcopy=%s writebackup" % backupcopy,
         "-c", "call append(line('$'), '%s')" % line,
         "-c", "wq", os.path.join(d.mnt, "memory-v.json")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, timeout=60, cwd=d.mnt)
    assert p.returncode == 0, p.stderr.decode()
    assert b'"vim-%s"' % backupcopy.encode() in c.after_change()
    assert sorted(os.listdir(d.mnt)) == sorted([MERGED, util.STATUS,
                                                "memory-v.json"])
    d.stop()


# ---- a slow reader while sources are rewritten ----

def big_entries(host, n, gen):
    pad = "x" * 900
    return [util.entry("%s-%d" % (host, i), util.ts(i * 3 + ord(host)),
                       host=host, text="g%d %s" % (gen, pad[:900 - gen]))
            for i in range(n)]


def expected_generations(tmp_path, others, variants, with_empty):
    """`crdtfs merge` of every state the backing directory passes through."""
    out = set()
    work = tmp_path / "expect"
    work.mkdir()
    for name, data in others.items():
        write_file(str(work / name), data)
    states = list(variants) + ([b""] if with_empty else [])
    for data in states:
        write_file(str(work / "memory-a.json"), data)
        out.add(util.cli_merge(str(work)))
    return out


@pytest.mark.parametrize("style", ["in-place", "rename", "outside-rename"])
def test_slow_reader_one_generation(tmp_path, mount, style):
    b = str(tmp_path / "b")
    os.mkdir(b)
    others = {"memory-%s.json" % h: util.dumps_pretty(big_entries(h, 150, 0))
              for h in "bc"}
    for name, data in others.items():
        write_file(os.path.join(b, name), data)
    variants = [util.dumps_pretty(big_entries("a", 150 + (i % 7), i))
                for i in range(101)]
    write_file(os.path.join(b, "memory-a.json"), variants[0])
    expected = expected_generations(tmp_path, others, variants,
                                    style == "in-place")
    d = mount(b)
    merged = os.path.join(d.mnt, MERGED)
    assert os.path.getsize(merged) > 400 * 1024  # several READs per pass

    done = threading.Event()
    reads, errors = [], []

    def reader():
        while not done.is_set() or len(reads) < 3:
            try:
                with open(merged, "rb", buffering=0) as f:
                    parts = []
                    while True:
                        chunk = f.read(4096)
                        if not chunk:
                            break
                        parts.append(chunk)
                        if len(parts) % 16 == 0:
                            time.sleep(0.002)
                reads.append(b"".join(parts))
            except OSError as e:
                errors.append(e)
                if len(errors) > 5:
                    return

    t = threading.Thread(target=reader)
    t.start()
    try:
        base = b if style == "outside-rename" else d.mnt
        target = os.path.join(base, "memory-a.json")
        for i in range(1, 101):
            data = variants[i]
            if style == "in-place":
                with open(target, "wb") as f:
                    f.write(data)
            else:
                tmp = os.path.join(base, ".tmp-a")
                write_file(tmp, data)
                os.rename(tmp, target)
            time.sleep(0.003)
    finally:
        done.set()
        t.join(120)
    assert not t.is_alive()
    assert not errors, errors
    assert len(reads) >= 3
    for r in reads:
        json.loads(r)
        assert r in expected
    # the last generation is what a fresh open sees
    assert read(merged) == util.cli_merge(b)
    d.stop()


def test_many_outside_writes_then_open(backing, mount):
    """A burst of outside writes; each open right after sees the last."""
    d = mount(backing)
    c = Checker(d, backing)
    p = os.path.join(backing, "memory-a.json")
    for i in range(30):
        write_file(p, util.dumps_pretty(util.host_entries("a", 5 + i % 3,
                                                          prefix="w%d" % i)))
        assert b'"w%d-0"' % i in c.after_change()
    d.stop()


def test_a_superseded_generation_drops_its_page_cache_at_once(backing,
                                                              mount):
    """A lookup that replaces a generation read whole made the kernel free
    its page cache on the caller's time (about 5 ms for 69 MB).  A source
    change now has the notifier drop it at once, with no lookup: only a
    generation nothing has open, and never one that is open."""
    d = mount(backing, "-d")
    d.allow(r"^\s*unique: \d+, error: ")
    m = os.path.join(d.mnt, MERGED)
    host = os.path.join(backing, "memory-a.json")
    entries = util.host_entries("a", 20)
    # The kernel knows the host file's node, so its change is notified.
    os.stat(os.path.join(d.mnt, "memory-a.json"))
    assert read(m) == util.cli_merge(backing)
    gen = util.status_target(util.read_status(d.mnt))["generation"]
    entries.append(util.entry("new-1", util.ts(100001)))
    with open(host, "r+b") as f:  # in place: the same inode
        f.write(util.dumps_pretty(entries))
    # Nothing touches the mount until the notifier has dropped it.
    assert d.wait_for_line("crdtfs: notify g:%d:%s: sent" % (gen, MERGED))

    with open(m, "rb") as f:
        data = f.read()
        assert data == util.cli_merge(backing)
        gen2 = util.status_target(util.read_status(d.mnt))["generation"]
        assert gen2 > gen
        st = os.stat(host)
        mark = len(d.lines)
        entries.append(util.entry("new-2", util.ts(100002)))
        with open(host, "r+b") as h:
            h.write(util.dumps_pretty(entries))
        # The host file's own notification comes after the generation's
        # would have (one FIFO queue, queued in that order).
        assert d.wait_for_line("crdtfs: notify i:%d:%d:: sent" %
                               (st.st_dev, st.st_ino), mark)
        assert not any("g:%d:" % gen2 in line for line in d.lines)
    assert read(m) == util.cli_merge(backing)
    d.stop()


def test_writes_to_host_files_the_kernel_never_looked_up_are_noticed(
        backing, mount):
    """Directories are watched for their names only, so a host file's
    content is watched on its own, from just before each scan: an outside
    write to it is noticed without any lookup (the superseded generation's
    cache is dropped at once), also after the file was replaced by a
    rename and the new one scanned."""
    d = mount(backing, "-d")
    d.allow(r"^\s*unique: \d+, error: ")
    m = os.path.join(d.mnt, MERGED)
    host = os.path.join(backing, "memory-a.json")
    entries = util.host_entries("a", 20)

    def generation():
        assert read(m) == util.cli_merge(backing)
        return util.status_target(util.read_status(d.mnt))["generation"]

    for i, how in enumerate(("in place", "replaced", "in place")):
        gen = generation()
        entries.append(util.entry("new-%d" % i, util.ts(100001 + i)))
        if how == "replaced":
            write_file(host + ".tmp", util.dumps_pretty(entries))
            os.rename(host + ".tmp", host)
        else:
            with open(host, "r+b") as f:
                f.write(util.dumps_pretty(entries))
        # Nothing touches the mount until the daemon has noticed.
        assert d.wait_for_line("crdtfs: notify g:%d:%s: sent" % (gen, MERGED))
    assert generation() > gen
    d.stop()


def test_an_outside_edit_of_a_descriptor_in_place_is_seen(backing, mount):
    """Directories are watched for names only, so a descriptor edited in
    place from outside (truncate and write: no name changes) was not seen
    and the old target set was served for good.  Descriptors are watched
    one by one, as host files are."""
    d = mount(backing)
    desc = os.path.join(backing, "only.json.merge.json")
    write_file(desc, json.dumps({"target": "only.json",
                                 "sources": ["memory-a.json"]}).encode())
    only = os.path.join(d.mnt, "only.json")
    assert read(only) == util.cli_merge(backing, "--target", "only.json")
    for sources in (["memory-b.json"], ["memory-*.json"]):
        with open(desc, "r+b") as f:
            f.truncate(0)
            f.write(json.dumps({"target": "only.json",
                                "sources": sources}).encode())
        assert read(only) == util.cli_merge(backing, "--target", "only.json")
    with open(desc, "r+b") as f:  # now invalid: the target goes
        f.write(b"}")
    assert not os.path.exists(only)
    probs = util.read_status(d.mnt)["descriptor_problems"]
    assert [p["file"] for p in probs] == ["only.json.merge.json"]
    d.stop()


def test_writes_to_a_host_file_renamed_away_make_no_generation(backing,
                                                              mount):
    """A host file renamed away (log rotation: memory-a.json ->
    memory-a.json.1) kept its watch for the old name, so every later write
    to it marked the new memory-a.json changed: a rescan and a new
    generation each time."""
    d = mount(backing)
    m = os.path.join(d.mnt, MERGED)
    host = os.path.join(backing, "memory-a.json")
    read(m)
    os.rename(host, host + ".1")
    write_file(host, util.dumps_pretty(util.host_entries("a2", 3)))
    assert read(m) == util.cli_merge(backing)
    gen = util.status_target(util.read_status(d.mnt))["generation"]
    for i in range(5):
        with open(host + ".1", "ab") as f:
            f.write(b" ")
        os.stat(m)
    assert util.status_target(util.read_status(d.mnt))["generation"] == gen
    assert read(m) == util.cli_merge(backing)
    d.stop()


def test_a_descriptor_is_watched_past_the_host_files_budget(tmp_path,
                                                             mount):
    """At most 4096 host files are watched by name (past that, refreshes
    compare stats); a descriptor past that budget was not watched either,
    and nothing else tells of an edit of one in place."""
    b = str(tmp_path / "b")
    os.makedirs(b)
    for i in range(4100):
        write_file(os.path.join(b, "memory-%05d.json" % i),
                   util.dumps_pretty(util.host_entries("h%d" % i, 1)))
    d = mount(b)
    read(os.path.join(d.mnt, MERGED))
    desc = os.path.join(b, "extra.json.merge.json")
    extra = os.path.join(d.mnt, "extra.json")
    for i in (1, 2):  # the same length: an edit in place, nothing else
        text = json.dumps({"target": "extra.json",
                           "sources": ["memory-%05d.json" % i]}).encode()
        if i == 1:
            write_file(desc, text)
        else:
            with open(desc, "r+b") as f:
                f.write(text)
        assert read(extra) == util.cli_merge(b, "--target", "extra.json")
    d.stop()


def test_writes_through_the_mount_to_a_rotated_host_file(backing, mount):
    """A writer keeps a host file open through the mount while it is
    renamed away outside and a new one made: its writes marked the name it
    was opened by, the new file, changed: a generation per write."""
    d = mount(backing)
    m = os.path.join(d.mnt, MERGED)
    host = os.path.join(backing, "memory-c.json")
    fd = os.open(os.path.join(d.mnt, "memory-c.json"),
                 os.O_WRONLY | os.O_APPEND)
    try:
        os.rename(host, host + ".1")
        write_file(host, util.dumps_pretty(util.host_entries("c2", 3)))
        assert read(m) == util.cli_merge(backing)
        gen = util.status_target(util.read_status(d.mnt))["generation"]
        for i in range(5):
            os.write(fd, b" ")
            os.stat(m)
        assert util.status_target(util.read_status(d.mnt))["generation"] \
            == gen
    finally:
        os.close(fd)
    assert read(m) == util.cli_merge(backing)
    d.stop()


def test_subdirectory_sources(tmp_path, mount):
    """A descriptor whose sources live in a subdirectory: outside writes
    there are noticed too (inotify on the directories patterns reach)."""
    b = str(tmp_path / "b")
    os.makedirs(os.path.join(b, "hosts"))
    with open(os.path.join(b, "sub.json.merge.json"), "w") as f:
        json.dump({"target": "sub.json", "sources": ["hosts/*.json"]}, f)
    write_file(os.path.join(b, "hosts", "x.json"),
               util.dumps_pretty(util.host_entries("x", 3)))
    d = mount(b)
    p = os.path.join(d.mnt, "sub.json")
    first = read(p)
    assert first == util.cli_merge(b, "--target", "sub.json")
    assert b'"x-2"' in first
    hp = os.path.join(b, "hosts", "x.json")
    off = read(hp).index(b"about x-0")
    for i in range(5):
        with open(hp, "r+b") as f:   # same size, in place
            f.seek(off)
            f.write(b"ABOUT%04d" % i)
        got = read(p)
        assert got == util.cli_merge(b, "--target", "sub.json")
        assert b"ABOUT%04d" % i in got
    os.makedirs(os.path.join(b, "hosts2"))
    write_file(os.path.join(b, "hosts", "y.json"),
               util.dumps_pretty(util.host_entries("y", 2)))
    assert b'"y-1"' in read(p)
    d.stop()


def test_watched_directories_hold_no_descriptors(tmp_path, mount):
    """A watch owns no fd: 400 directories a pattern reaches into cost no
    descriptors (with one each, a daemon under `ulimit -n 1024` ran out
    and `find` through the mount failed with EMFILE), and a file system
    mounted on one of them can still be unmounted."""
    b = str(tmp_path / "b")
    for i in range(400):
        os.makedirs(os.path.join(b, "d%03d" % i))
    write_file(os.path.join(b, "d007", "x.json"),
               util.dumps_pretty(util.host_entries("x", 3)))
    with open(os.path.join(b, "all.json.merge.json"), "w") as f:
        json.dump({"target": "all.json", "sources": ["*/x.json"]}, f)
    tmpfs = os.getuid() == 0
    if tmpfs:
        os.makedirs(os.path.join(b, "t"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m",
                        "crdtfs-test", os.path.join(b, "t")], check=True,
                       timeout=30)
    try:
        d = mount(b)
        assert b'"x-2"' in read(os.path.join(d.mnt, "all.json"))
        assert len(os.listdir("/proc/%d/fd" % d.pid)) < 100
        if tmpfs:
            subprocess.run(["umount", os.path.join(b, "t")], check=True,
                           timeout=30)
            tmpfs = False
        d.stop()
    finally:
        if tmpfs:
            subprocess.run(["umount", "-l", os.path.join(b, "t")],
                           timeout=30)


def test_open_reader_survives_touch_and_hard_link_writes(tmp_path, mount):
    """Through the mount, a touch (bytes unchanged, mtime new) and an
    in-place write through a hard link whose name is not a source both
    leave an open reader its generation to EOF, as any write through the
    mount does."""
    b = str(tmp_path / "b")
    os.mkdir(b)
    write_file(os.path.join(b, "memory-a.json"),
               util.dumps_pretty(big_entries("a", 1000, 0)))
    os.link(os.path.join(b, "memory-a.json"), os.path.join(b, "notes.txt"))
    d = mount(b)
    merged = os.path.join(d.mnt, MERGED)

    def change_while_open(change):
        with open(merged, "rb", buffering=0) as f:
            # no readahead: the rest is read from the mount after change()
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
            old = util.cli_merge(b)
            head = f.read(4096)
            change()
            rest = f.read()
        assert head + rest == old
        assert read(merged) == util.cli_merge(b)

    # the link first: the mount has not met the file by its source name
    with open(os.path.join(d.mnt, "notes.txt"), "r+b") as link:
        new = link.read().replace(b'"g0 ', b'"g1 ') + b"\n"

        def rewrite():
            link.seek(0)
            link.write(new)
            link.flush()
        change_while_open(rewrite)
    assert b'"g1 ' in read(merged)
    change_while_open(lambda: os.utime(os.path.join(d.mnt, "memory-a.json")))
    d.stop()


# How long the daemon expects the OPEN of a generation it handed out
# (FS_OPEN_GRACE in fs/mount_i.h).
OPEN_GRACE = 1.0


def late_open(d, backing, route, rewrite_after=0.0):
    """Look the merged file up (O_PATH: a LOOKUP of generation G, no
    OPEN); through the mount make a newer generation current; rewrite the
    host file G reads in place (through the mount or from outside), then
    OPEN G through /proc/self/fd, which cannot retry with a fresh lookup.
    @return (G's bytes as `crdtfs merge` gave them at the lookup, the bytes
    the late OPEN read, or the OSError it raised)"""
    merged = os.path.join(d.mnt, MERGED)
    fd = os.open(merged, os.O_PATH)
    try:
        want = util.cli_merge(backing)
        name = "memory-a.json" if os.path.exists(
            os.path.join(backing, "memory-a.json")) else "memory-z.json"
        other = "memory-z.json" if name == "memory-a.json" else \
            "memory-a.json"
        # a newer generation reading the same file becomes current
        os.rename(os.path.join(d.mnt, name), os.path.join(d.mnt, other))
        os.stat(merged)
        time.sleep(rewrite_after)
        with open(os.path.join(where(d, backing, route), other),
                  "r+b") as f:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
        try:
            with open("/proc/self/fd/%d" % fd, "rb") as f:
                return want, f.read()
        except OSError as e:
            return want, e
    finally:
        os.close(fd)


@pytest.mark.parametrize("route", ROUTES)
def test_late_open_of_a_rewritten_generation(backing, mount, route):
    """A generation looked up but opened only after its host file was
    rewritten in place is refused with ESTALE (an open() by path retries
    with a fresh lookup; through /proc/self/fd the refusal shows), unless
    the rewrite went through the mount within a second of the lookup: the
    daemon then kept a copy for the OPEN it still expected, which reads
    the generation it looked up (under load the retried open of a
    tight-loop writer's file often lost the race again, and `cat` got
    ESTALE)."""
    d = mount(backing)
    merged = os.path.join(d.mnt, MERGED)
    if route == "mount":
        want, got = late_open(d, backing, route)
        assert got == want
    want, got = late_open(d, backing, route,
                          OPEN_GRACE + 0.2 if route == "mount" else 0.0)
    assert isinstance(got, OSError) and got.errno == errno.ESTALE, got
    assert read(merged) == util.cli_merge(backing)
    d.stop()


def test_readers_never_starve_under_a_writer_that_never_pauses(tmp_path,
                                                               mount):
    """A host file rewritten in place through the mount in a tight loop,
    with readers opening the merged file by path all the while: every
    open succeeds and every read is one whole generation.  (A LOOKUP used
    to give up with EBUSY after 64 rebuilds; now it holds new writes back
    until it has built one view.)"""
    b = str(tmp_path / "b")
    os.mkdir(b)
    lines = [json.dumps(util.entry("a-%d" % i, util.ts(i), text="x" * 200))
             for i in range(100)]
    data = ("\n".join(lines) + "\n").encode()
    assert data[30:31] == b"x"  # inside the first entry's text
    write_file(os.path.join(b, "memory-a.json"), data)
    expected = set()
    for c in (b"x", b"y"):
        write_file(os.path.join(b, "memory-a.json"), data[:30] + c +
                   data[31:])
        expected.add(util.cli_merge(b))
    d = mount(b)
    merged = os.path.join(d.mnt, MERGED)
    end = time.monotonic() + 4
    reads, errors, writes = [], [], [0]

    def writer():
        fd = os.open(os.path.join(d.mnt, "memory-a.json"), os.O_RDWR)
        try:
            while time.monotonic() < end:
                os.pwrite(fd, b"xy"[writes[0] % 2:][:1], 30)
                writes[0] += 1
        finally:
            os.close(fd)

    def reader():
        while time.monotonic() < end:
            try:
                reads.append(read(merged))
            except OSError as e:
                errors.append(e)

    threads = [threading.Thread(target=f) for f in (writer, reader, reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert writes[0] > 1000 and len(reads) > 20
    for r in reads:
        assert r in expected
    d.stop()
