# SPDX-License-Identifier: MIT
"""
gitutil.py - helpers for the git tests (test_git.py): run crdtfs and the git
CLI, build bare remotes and clones, write MCP-style JSON Lines sources, read
host files, and compute the merged view independently of the C engine.

The expected merge here is written from the spec, not from the engine: per
unique_id the maximum of (timestamp as UTC ns, version, host bytes,
canonical entry bytes); output sorted by (timestamp, unique_id) as
`[\\n` + entries joined by `,\\n` + `\\n]\\n` (`[]\\n` when empty).
"""

import calendar
import json
import os
import re
import shutil
import socket
import subprocess
import time

CRDTFS = os.environ.get("CRDTFS") or shutil.which("crdtfs")
GIT = shutil.which("git")


def run(args, cwd=None, env=None, timeout=120, input=None):
    """Run a command; returns CompletedProcess with text stdout/stderr."""
    full_env = dict(os.environ)
    full_env.pop("CRDTFS_NOW", None)
    if env:
        full_env.update(env)
    return subprocess.run([str(a) for a in args], cwd=cwd, env=full_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, input=input)


def git(*args, cwd=None, check=True):
    # A fixed identity so that tests do not depend on ~/.gitconfig.
    p = run([GIT, "-c", "user.name=test", "-c", "user.email=test@example",
             "-c", "init.defaultBranch=main"] + list(args), cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError("git %s failed (%d):\n%s%s" %
                             (" ".join(args), p.returncode, p.stdout,
                              p.stderr))
    return p


def crdtfs(*args, now=None, env=None, timeout=120):
    e = dict(env or {})
    if now is not None:
        e["CRDTFS_NOW"] = now
    return run([CRDTFS] + list(args), env=e, timeout=timeout)


def ok(p):
    """Assert a CompletedProcess exited 0; return it."""
    assert p.returncode == 0, "exit %d\nstdout:\n%s\nstderr:\n%s" % (
        p.returncode, p.stdout, p.stderr)
    return p


def make_bare(path, branch="main"):
    git("init", "-q", "--bare", "-b", branch, str(path))
    return str(path)


def make_clone(bare, path, name, branch="main"):
    """A clone of (possibly empty) `bare` tracking `branch`, own identity."""
    git("clone", "-q", str(bare), str(path))
    git("config", "user.name", name, cwd=path)
    git("config", "user.email", "%s@example" % name, cwd=path)
    git("symbolic-ref", "HEAD", "refs/heads/" + branch, cwd=path)
    git("config", "branch.%s.remote" % branch, "origin", cwd=path)
    git("config", "branch.%s.merge" % branch, "refs/heads/" + branch,
        cwd=path)
    return str(path)


def rfc3339(ns):
    """UTC ns since the epoch -> RFC 3339 with 9 fraction digits."""
    s, f = divmod(ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + \
        ".%09dZ" % f


_TS = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)"
                 r"(?:\.(\d{1,9}))?([Zz]|[+-]\d\d:\d\d)$")


def ts_ns(s):
    """RFC 3339 -> UTC ns since the epoch (independent of the C parser)."""
    m = _TS.match(s)
    assert m, "not a timestamp: %r" % s
    y, mo, d, h, mi, se = (int(m.group(i)) for i in range(1, 7))
    frac = int((m.group(7) or "0").ljust(9, "0"))
    secs = calendar.timegm((y, mo, d, h, mi, se, 0, 0, 0))
    z = m.group(8)
    if z not in ("Z", "z"):
        sign = 1 if z[0] == "+" else -1
        secs -= sign * (int(z[1:3]) * 3600 + int(z[4:6]) * 60)
    return secs * 10**9 + frac


def write_jsonl(path, entities, relations=()):
    """An MCP memory server file: entities then relations, one per line."""
    lines = []
    for name in sorted(entities):
        e = entities[name]
        lines.append(json.dumps({"type": "entity", "name": name,
                                 "entityType": e["entityType"],
                                 "observations": e["observations"]},
                                separators=(",", ":"), ensure_ascii=False))
    for (a, b, t) in sorted(relations):
        lines.append(json.dumps({"type": "relation", "from": a, "to": b,
                                 "relationType": t},
                                separators=(",", ":"), ensure_ascii=False))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))


def host_lines(path):
    """The entries of a host file written by crdtfs: (raw bytes, object)."""
    with open(path, "rb") as f:
        data = f.read()
    if data == b"[]\n":
        return []
    assert data.startswith(b"[\n") and data.endswith(b"\n]\n"), data[:80]
    out = []
    for raw in data[2:-3].split(b"\n"):
        raw = raw[:-1] if raw.endswith(b",") else raw
        out.append((raw, json.loads(raw)))
    return out


def record_of(raw, obj):
    md = obj["_crdt_metadata"]
    return (md["unique_id"], ts_ns(md["timestamp"]), md["version"],
            md["host"], raw)


def expected_view(records):
    """The merged bytes of a set of (uid, ts, version, host, raw)."""
    best = {}
    for uid, ts, ver, host, raw in records:
        k = (ts, ver, host.encode(), raw)
        if uid not in best or k > best[uid][0]:
            best[uid] = (k, raw)
    rows = sorted(((v[0][0], uid.encode(), v[1]) for uid, v in best.items()))
    if not rows:
        return b"[]\n"
    return b"[\n" + b",\n".join(r[2] for r in rows) + b"\n]\n"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class GitDaemon:
    """`git daemon` serving base/ over git:// with receive-pack on."""

    def __init__(self, base):
        self.base = str(base)
        self.proc = None
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [GIT, "daemon", "--reuseaddr", "--export-all",
                 "--enable=receive-pack", "--listen=127.0.0.1",
                 "--port=%d" % self.port, "--base-path=" + self.base,
                 self.base],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait():
                return
            self.stop()
        raise AssertionError("git daemon did not start")

    def _wait(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def url(self, name):
        return "git://127.0.0.1:%d/%s" % (self.port, name)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
