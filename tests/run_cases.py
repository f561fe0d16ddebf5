#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""
run_cases.py - run the golden cases against the crdtfs binary.

    run_cases.py CRDTFS_BIN CASES_DIR [CASE...] [--keep] [-j N]

Each case is a directory (see tests/cases/README.md).  For every case:

1. a fresh backing directory TMP/backing gets a copy of hosts/ (symlinks
   kept) and generate.py, if present, runs with the backing path as
   argument (it may write TMP/expected.json, which then replaces the
   case's expected.json, for outputs too big to keep in the tree);
2. `crdtfs merge ARGS... BACKING` runs (ARGS from the `args` file, one per
   line; `{backing}` is replaced by the backing path and `{nobacking}`
   means "do not append BACKING");
3. its exit status must equal expected-status (default 0), its stdout
   expected.json byte for byte (no stdout at all when the status is not
   0 and there is no expected.json), and every line of expected-stderr
   must match some stderr line (`...` matches anything, the rest is
   literal, the match may start anywhere in the line);
4. unless the case has a `no-oracle` file, tests/oracle.py must agree:
   same bytes as the binary (and as expected.json), and under --strict
   the oracle's "any problem at all" must match the exit status;
5. `crdtfs check BACKING` runs too: it must not crash (exit 0 or 1, no
   sanitizer report); with expected-check, its first line `exit N` is the
   status and the other lines are stderr/stdout patterns as above.
   Without expected-check and when the case uses only the built-in
   descriptor, check must exit 1 exactly when the oracle saw a problem.

Output is TAP-ish, one `ok`/`not ok` line per case with `#` diagnostics,
and the last line is `N passed, M failed`.  Exit status 1 if any failed.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402

TIMEOUT = 120
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehavior"
                       r"Sanitizer|runtime error:|Segmentation fault")


def pattern(line):
    """`...` is a wildcard; everything else literal; unanchored."""
    return re.compile(".*".join(re.escape(p) for p in line.split("...")),
                      re.S)


def read(path, default=None):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return default


def short(b, n=600):
    if b is None:
        return "None"
    if len(b) > n:
        return repr(b[:n]) + "... (%d bytes)" % len(b)
    return repr(b)


def match_lines(patterns, text, what, diags):
    lines = text.decode("utf-8", "replace").splitlines()
    ok = True
    for p in patterns:
        if not p.strip():
            continue
        rx = pattern(p)
        if not any(rx.search(ln) for ln in lines):
            diags.append("%s has no line matching %r" % (what, p))
            ok = False
    return ok


def run(cmd, cwd=None):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=TIMEOUT, cwd=cwd)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return "timeout", e.stdout or b"", e.stderr or b""


def prepare(case_dir, tmp):
    backing = os.path.join(tmp, "backing")
    hosts = os.path.join(case_dir, "hosts")
    if os.path.isdir(hosts):
        shutil.copytree(hosts, backing, symlinks=True)
    else:
        os.makedirs(backing)
    gen = os.path.abspath(os.path.join(case_dir, "generate.py"))
    if os.path.exists(gen):
        subprocess.run([sys.executable, gen, backing], check=True,
                       cwd=case_dir, timeout=TIMEOUT)
    return backing


def oracle_for(backing, args):
    target = descriptor = fmt = None
    for i, a in enumerate(args):
        if a == "--target":
            target = args[i + 1]
        elif a == "--descriptor":
            descriptor = args[i + 1]
    desc = oracle.find_descriptor(backing, target, descriptor)
    return oracle.analyse_dir(backing, desc, fmt)


def run_case(crdtfs, case_dir, keep=False):
    """Returns (passed, diagnostics)."""
    diags = []
    ok = True
    tmp = tempfile.mkdtemp(prefix="crdtfs-case-")
    try:
        backing = prepare(case_dir, tmp)
        raw_args = (read(os.path.join(case_dir, "args"), b"")
                    .decode().splitlines())
        raw_args = [a for a in raw_args if a != ""]
        append_backing = "{nobacking}" not in raw_args
        args = [a.replace("{backing}", backing) for a in raw_args
                if a != "{nobacking}"]
        cmd = [crdtfs, "merge"] + args + ([backing] if append_backing else [])
        status, out, err = run(cmd)
        want_status = int(read(os.path.join(case_dir, "expected-status"),
                               b"0").strip() or 0)
        want_out = read(os.path.join(tmp, "expected.json"))
        if want_out is None:
            want_out = read(os.path.join(case_dir, "expected.json"))
        if status != want_status:
            diags.append("merge exit status %s, expected %d"
                         % (status, want_status))
            ok = False
        if want_out is None and want_status != 0:
            want_out = b""
        if want_out is not None and out != want_out:
            diags.append("merge stdout differs from expected.json")
            diags.append("  got:      " + short(out))
            diags.append("  expected: " + short(want_out))
            ok = False
        pats = read(os.path.join(case_dir, "expected-stderr"))
        if pats is not None:
            ok &= match_lines(pats.decode().splitlines(), err,
                              "merge stderr", diags)
        if SANITIZER.search(err.decode("utf-8", "replace")):
            diags.append("sanitizer report in merge stderr")
            ok = False
        if status == "timeout" or (isinstance(status, int) and status < 0):
            diags.append("merge crashed or hung: %s" % status)
            ok = False

        o = None
        if not os.path.exists(os.path.join(case_dir, "no-oracle")):
            try:
                o = oracle_for(backing, args)
            except Exception as e:     # noqa: BLE001
                diags.append("oracle failed: %r" % e)
                ok = False
        if o is not None:
            if "--strict" in args:
                if o.strict_fails != (want_status == 1):
                    diags.append("oracle: --strict should %s (problems: %s)"
                                 % ("fail" if o.strict_fails else "pass",
                                    o.problems[:5]))
                    ok = False
                if not o.strict_fails and o.out != out:
                    diags.append("oracle disagrees with the binary")
                    diags.append("  oracle: " + short(o.out))
                    ok = False
            else:
                if o.out != out:
                    diags.append("oracle disagrees with the binary")
                    diags.append("  oracle: " + short(o.out))
                    diags.append("  binary: " + short(out))
                    ok = False
                if want_out is not None and o.out != want_out:
                    diags.append("oracle disagrees with expected.json")
                    ok = False

        cstatus, cout, cerr = run([crdtfs, "check", backing])
        if SANITIZER.search(cerr.decode("utf-8", "replace")):
            diags.append("sanitizer report in check stderr")
            ok = False
        exp_check = read(os.path.join(case_dir, "expected-check"))
        if exp_check is not None:
            lines = exp_check.decode().splitlines()
            want = int(lines[0].split()[1])
            if cstatus != want:
                diags.append("check exit status %s, expected %d"
                             % (cstatus, want))
                ok = False
            ok &= match_lines(lines[1:], cout + b"\n" + cerr, "check output",
                              diags)
        elif cstatus not in (0, 1):
            diags.append("check exit status %s" % cstatus)
            ok = False
        elif o is not None and not args and not any(
                n.endswith(oracle.DESC_SUFFIX) for n in os.listdir(backing)):
            if (cstatus == 1) != o.strict_fails:
                diags.append("check exit %d but the oracle saw %d problems"
                             % (cstatus, len(o.problems)))
                diags.append("  check said: " + short(cout + cerr, 300))
                ok = False
        if not ok:
            diags.append("command: " + " ".join(cmd))
            if err:
                diags.append("stderr: " + short(err, 1500))
    finally:
        if keep and not ok:
            diags.append("kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return ok, diags


def main(argv):
    keep = "--keep" in argv
    argv = [a for a in argv if a != "--keep"]
    jobs = 2
    if "-j" in argv:
        i = argv.index("-j")
        jobs = int(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    crdtfs = os.path.abspath(argv[0])
    cases_dir = argv[1]
    names = argv[2:] or sorted(
        n for n in os.listdir(cases_dir)
        if os.path.isdir(os.path.join(cases_dir, n)))
    print("1..%d" % len(names))
    lock = threading.Lock()
    results = {}

    def one(i_name):
        i, name = i_name
        try:
            r = run_case(crdtfs, os.path.join(cases_dir, name), keep)
        except Exception as e:     # noqa: BLE001
            r = (False, ["runner error: %r" % e])
        with lock:
            results[i] = (name, r)

    with ThreadPoolExecutor(max_workers=jobs) as ex:
        list(ex.map(one, enumerate(names)))
    passed = failed = 0
    for i in range(len(names)):
        name, (ok, diags) = results[i]
        print("%s %d - %s" % ("ok" if ok else "not ok", i + 1, name))
        for d in diags:
            for ln in d.splitlines():
                print("#   " + ln)
        if ok:
            passed += 1
        else:
            failed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
