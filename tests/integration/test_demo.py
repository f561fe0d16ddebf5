# SPDX-License-Identifier: MIT
"""
The README's first command: scripts/demo.sh mounts the built-in demo data,
shows the merged file, adds an entry through the mount, shows it again and
unmounts.  Run here with $CRDTFS (so it does not build), its two views
checked against the oracle.
"""

import json
import os
import shutil
import signal
import subprocess

import util

pytestmark = util.fuse_test_marker()

DEMO_DATA = os.path.join(util.SRC, "scripts", "demo-data")

# The entry demo.sh adds to memory-laptop.json through the mount.
ADDED = {"id": "demo", "content": "added through the mount",
         "_crdt_metadata": {"host": "laptop",
                            "timestamp": "2026-11-22T12:00:00Z",
                            "version": 1, "unique_id": "demo"}}


def views(out):
    """The merged files demo.sh printed: the text after each `$ cat`."""
    found = []
    lines = out.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("$ cat ") and "unified-memory.json" in line:
            j = lines.index("", i)
            found.append("\n".join(lines[i + 1:j]) + "\n")
    return found


def run_demo():
    """demo.sh's result; on a hang, SIGTERM to its process group (the
    daemon unmounts, the script's trap cleans up), then any demo mount
    left is detached."""
    p = subprocess.Popen(["bash", os.path.join(util.SRC, "scripts",
                                               "demo.sh")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True,
                         env=dict(os.environ, CRDTFS=util.CRDTFS))
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        for line in open("/proc/self/mounts"):
            m = line.split()[1]
            if m.startswith("/tmp/crdtfs-demo."):
                subprocess.run([util.FUSERMOUNT, "-uz", m])
        raise AssertionError("demo.sh did not finish in 60 s:\n" + out +
                             err)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def test_demo_shows_the_merge_and_unmounts(tmp_path):
    r = run_demo()
    assert r.returncode == 0, r.stderr
    assert not util.BAD_OUTPUT.search(r.stderr), r.stderr
    assert r.stdout.rstrip("\n").endswith("demo: unmounted cleanly")
    first, second = views(r.stdout)
    assert first.encode() == util.oracle.merge_dir(DEMO_DATA)
    assert "$ jq length" in r.stdout and "\n4\n" in r.stdout

    after = tmp_path / "after"
    shutil.copytree(DEMO_DATA, after)
    laptop = after / "memory-laptop.json"
    entries = json.loads(laptop.read_text())
    laptop.write_text(json.dumps(entries + [ADDED], indent=2))
    assert second.encode() == util.oracle.merge_dir(str(after))
    assert len(json.loads(second)) == 5

    mnt = r.stdout.split("\n", 1)[0].split()[-1]  # "$ ls -l <mnt>"
    assert mnt.endswith("/mnt") and not os.path.exists(mnt)
    assert not util.is_mounted(mnt)
