# SPDX-License-Identifier: MIT
"""
A person mounts as themselves, not as root: libfuse then goes through the
setuid fusermount3, the mount is that user's alone (no allow_other), files
created through it are theirs, access(2) and permissions are theirs, and
they unmount it with `fusermount3 -u`.  The test runs as root and starts
the daemon, and everything that touches the mount, as `nobody`.
"""

import errno
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile

import pytest

import util

pytestmark = util.fuse_test_marker()

# Run as the user against MOUNTPOINT: what the user sees, as JSON.
LOOK = r"""
import errno, json, os, sys
m = sys.argv[1]
def access(name):
    p = os.path.join(m, name)
    return [os.access(p, k) for k in (os.R_OK, os.W_OK, os.X_OK)]
def err(f, *a):
    try:
        f(*a)
    except OSError as e:
        return e.errno
    return 0
merged = os.path.join(m, "unified-memory.json")
with open(merged, "rb") as f:
    data = f.read()
print(json.dumps({
    "merged": data.decode(),
    "size": os.stat(merged).st_size,
    "access": {n: access(n) for n in
               ("unified-memory.json", ".crdtfs-status.json",
                "memory-a.json", ".")},
    "open_merged_w": err(os.open, merged, os.O_WRONLY),
    "chown_to_root": err(os.chown, os.path.join(m, "memory-a.json"), 0, 0),
}))
"""

# Run as the user: an editor-style save of a new host file, then a read.
SAVE = r"""
import os, sys
m, data = sys.argv[1], sys.argv[2].encode()
tmp = os.path.join(m, ".memory-d.json.tmp")
with open(tmp, "wb") as f:
    f.write(data)
    os.fsync(f.fileno())
os.rename(tmp, os.path.join(m, "memory-d.json"))
with open(os.path.join(m, "unified-memory.json"), "rb") as f:
    sys.stdout.write(f.read().decode())
"""


def ids(user):
    """subprocess arguments that run a child as `user` (a pwd entry)."""
    return dict(user=user.pw_uid, group=user.pw_gid, extra_groups=[])


def as_user(user, script, *args):
    p = subprocess.run(["/usr/bin/python3", "-c", script] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60, **ids(user))
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


@pytest.fixture
def user_tree():
    """(user, backing, mountpoint, binary) in a directory the user owns.

    The binary is copied there because the build tree's parents may be
    private to root.  /dev/fuse is opened to users for the test, as
    Debian's udev rule leaves it (0666); some containers make it 0600.
    """
    if os.getuid() != 0:
        pytest.skip("switching to another user needs root")
    user = pwd.getpwnam("nobody")
    base = tempfile.mkdtemp(prefix="crdtfs-user-")
    mnt = os.path.join(base, "mnt")
    dev_mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
    try:
        os.chmod(base, 0o755)
        os.chmod("/dev/fuse", dev_mode | 0o666)
        backing = util.make_backing(os.path.join(base, "backing"))
        os.mkdir(mnt)
        binary = os.path.join(base, "crdtfs")
        shutil.copy(util.CRDTFS, binary)
        os.chmod(binary, 0o755)
        for d, dirs, files in os.walk(base):
            for name in [d] + [os.path.join(d, n) for n in files]:
                os.chown(name, user.pw_uid, user.pw_gid)
        yield user, backing, mnt, binary
    finally:
        if util.is_mounted(mnt):
            util.fusermount_u(mnt)
        os.chmod("/dev/fuse", dev_mode)
        shutil.rmtree(base, ignore_errors=True)


def test_unprivileged_mount(user_tree, mount):
    user, backing, mnt, binary = user_tree
    d = mount(backing, mountpoint=mnt, binary=binary, **ids(user))

    seen = json.loads(as_user(user, LOOK, mnt))
    want = util.cli_merge(backing)
    assert seen["merged"].encode() == want
    assert seen["size"] == len(want)
    assert seen["access"] == {
        "unified-memory.json": [True, False, False],
        ".crdtfs-status.json": [True, False, False],
        "memory-a.json": [True, True, False],
        ".": [True, True, True],
    }
    assert seen["open_merged_w"] == errno.EACCES
    assert seen["chown_to_root"] == errno.EPERM

    # without allow_other the mount is the user's alone, root included
    with pytest.raises(PermissionError):
        os.stat(os.path.join(mnt, util.MERGED))

    new = [util.entry("d-1", util.ts(5), host="d")]
    got = as_user(user, SAVE, mnt, util.dumps_pretty(new).decode())
    assert got.encode() == util.cli_merge(backing)
    assert '"d-1"' in got
    assert os.stat(os.path.join(backing, "memory-d.json")).st_uid == \
        user.pw_uid

    # the user unmounts; the daemon exits 0 with nothing to say
    p = subprocess.run([util.FUSERMOUNT, "-u", mnt], **ids(user),
                       stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, p.stderr.decode()
    d.stopped = True
    assert d.proc.wait(30) == 0, "\n".join(d.lines)
    d.check_output()
    assert not util.is_mounted(mnt)


# Run as the user in DIR: make a file (mode 0o4755 asked), a directory, a
# symlink and a FIFO in DIR/shared (sticky, world-writable) and a file in
# DIR/team (setgid, group 4321); print (uid, gid, mode) of each, then
# delete the file again (only its owner may, in a sticky directory).
MAKE = r"""
import json, os, stat, sys
d = sys.argv[1]
os.umask(0o022)
s, t = os.path.join(d, "shared"), os.path.join(d, "team")
os.close(os.open(os.path.join(s, "f"), os.O_CREAT | os.O_WRONLY, 0o4755))
os.mkdir(os.path.join(s, "d"), 0o777)
os.symlink("f", os.path.join(s, "l"))
os.mkfifo(os.path.join(s, "p"), 0o666)
os.close(os.open(os.path.join(t, "g"), os.O_CREAT | os.O_WRONLY, 0o644))
out = {}
for p in ("shared/f", "shared/d", "shared/l", "shared/p", "team/g"):
    st = os.lstat(os.path.join(d, p))
    out[p] = [st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)]
os.unlink(os.path.join(s, "f"))
out["deleted"] = not os.path.exists(os.path.join(s, "f"))
print(json.dumps(out))
"""


def test_other_users_own_what_they_make_on_a_root_mount(tmp_path, mount):
    """With allow_other, a root daemon serves everyone: what another user
    makes is theirs (their group, or a setgid directory's), exactly as on
    the backing filesystem itself; it used to belong to root, and they
    could not even delete it."""
    if os.getuid() != 0:
        pytest.skip("switching to another user needs root")
    user = pwd.getpwnam("nobody")
    base = tempfile.mkdtemp(prefix="crdtfs-owner-")
    try:
        os.chmod(base, 0o755)
        plain, backing = os.path.join(base, "plain"), os.path.join(base, "b")
        for d in (plain, backing):
            util.make_backing(d)
            os.mkdir(os.path.join(d, "shared"))
            os.chmod(os.path.join(d, "shared"), 0o1777)
            os.mkdir(os.path.join(d, "team"))
            os.chown(os.path.join(d, "team"), 0, 4321)
            os.chmod(os.path.join(d, "team"), 0o2777)
        mnt = os.path.join(base, "mnt")
        d = mount(backing, "-o", "allow_other", mountpoint=mnt)
        want = json.loads(as_user(user, MAKE, plain))
        assert want["shared/f"][:2] == [user.pw_uid, user.pw_gid]
        assert want["team/g"][1] == 4321
        assert json.loads(as_user(user, MAKE, mnt)) == want
        # and so on the backing filesystem too
        st = os.lstat(os.path.join(backing, "shared", "d"))
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)
        # write access through a supplementary group only: the node is
        # made with the caller's groups, as on the backing filesystem
        for where in (plain, mnt):
            os.makedirs(os.path.join(backing, "grp"), exist_ok=True)
            os.makedirs(os.path.join(plain, "grp"), exist_ok=True)
            for g in (os.path.join(backing, "grp"),
                      os.path.join(plain, "grp")):
                os.chown(g, 0, 4321)
                os.chmod(g, 0o770)
            p = subprocess.run(
                ["/usr/bin/python3", "-c",
                 "import os, sys; os.mkdir(sys.argv[1], 0o755)",
                 os.path.join(where, "grp", "mine")],
                stderr=subprocess.PIPE, timeout=60, user=user.pw_uid,
                group=user.pw_gid, extra_groups=[4321])
            assert p.returncode == 0, p.stderr.decode()
        for top in (plain, backing):
            st = os.stat(os.path.join(top, "grp", "mine"))
            assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)
        assert read_merged(mnt) == util.cli_merge(backing)
        d.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def read_merged(mnt):
    with open(os.path.join(mnt, util.MERGED), "rb") as f:
        return f.read()
