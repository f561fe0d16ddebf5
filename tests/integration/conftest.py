# SPDX-License-Identifier: MIT
"""
conftest.py - fixtures for the crdtfs mount tests.

`mount(backing, *opts)` starts a daemon, waits for the mount and returns
its util.Daemon; a test ends it with `d.stop()` (unmount, exit status 0,
clean output).  Whatever happens, teardown unmounts and kills leftovers so
no FUSE mount outlives a test; a daemon the test did not stop is stopped
and checked there.
"""

import os
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import util  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "uses_fuse: mounts a FUSE fs")


@pytest.fixture
def backing(tmp_path):
    """A backing directory with three small pretty host files."""
    return util.make_backing(tmp_path / "backing")


@pytest.fixture
def mnt(tmp_path):
    p = tmp_path / "mnt"
    p.mkdir()
    return str(p)


@pytest.fixture
def mount(tmp_path, request):
    daemons = []

    def start(backing, *opts, mountpoint=None, env=None, **daemon_args):
        m = mountpoint or str(tmp_path / ("mnt%d" % len(daemons)))
        os.makedirs(m, exist_ok=True)
        d = util.Daemon(backing, m, opts, env=env, **daemon_args)
        daemons.append(d)
        d.wait_mounted()
        return d

    yield start

    failed = False
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        failed = True
        time.sleep(0.5)  # let late daemon output arrive for the report
    errors = []
    for d in daemons:
        if d.stopped or failed:
            d.kill()
            if failed and d.lines:
                print("daemon output (%s):\n%s" % (d.mnt,
                                                   "\n".join(d.lines)))
            continue
        try:
            d.stop()
        except BaseException as e:  # still clean up the others
            errors.append(e)
            d.kill()
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def open_shim(tmp_path_factory):
    """Built once: a function giving the environment that runs crdtfs under
    open_shim.c, which acts (SHIM_* variables: sleep_ms, run, run_every,
    run_times, log; on="rename" for renames, on="pread" with offset=N for
    reads at N) at each open of a path ending in `match`."""
    shim = tmp_path_factory.mktemp("shim") / "open_shim.so"
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "open_shim.c")
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to build the test's shim"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra",
                    "-Werror", "-o", str(shim), src, "-ldl"], check=True)
    asan = os.environ.get("ASAN_OPTIONS", "")

    def env(match, **acts):
        e = {"LD_PRELOAD": str(shim), "SHIM_MATCH": match,
             # A sanitizer build wants its runtime first; the shim only
             # wraps open(), rename() and pread(), which it passes on
             # unchanged.
             "ASAN_OPTIONS": (asan + ":" if asan else "") +
                             "verify_asan_link_order=0"}
        e.update({"SHIM_" + k.upper(): str(v) for k, v in acts.items()})
        return e
    return env

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
