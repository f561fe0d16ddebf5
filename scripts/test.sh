#!/usr/bin/env bash
# Build crdtfs and run every test: a -Werror build with unit, golden-case,
# property and mount tests, then an ASan+UBSan build running them again.
# Usage: scripts/test.sh [--quick]   (--quick: skip the sanitizer pass)
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = "--quick" ] && quick=1
failed=0
summary=()

run_suite() { # name builddir meson-setup-args...
	local name=$1 dir=$2
	shift 2
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
	fi
	ninja -C "$dir" || return 1
	meson test -C "$dir" --print-errorlogs --num-processes 2
	local rc=$?
	[ $rc -eq 0 ] || cat "$dir/meson-logs/testlog.txt" | tail -200
	return $rc
}

echo "== build (-Werror) and test"
if run_suite main build -Dwerror=true; then summary+=("main: ok"); else summary+=("main: FAILED"); failed=1; fi

if [ $quick -eq 0 ]; then
	echo "== ASan+UBSan build and test"
	# The laws were checked on 1000 cases above; here the point is memory
	# errors on the same paths, so fewer cases keep the run short.
	export CRDTFS_PROP_CASES=${CRDTFS_PROP_CASES_ASAN:-150}
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
	if run_suite asan build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug; then
		summary+=("asan+ubsan: ok"); else summary+=("asan+ubsan: FAILED"); failed=1; fi
fi

# Count test results across both builds for one closing line.
/usr/bin/python3 - "${summary[@]}" <<'PY'
import json, os, sys
passed = failed = skipped = 0
for d in ("build", "build-asan"):
    p = os.path.join(d, "meson-logs", "testlog.json")
    if not os.path.exists(p):
        continue
    for line in open(p):
        r = json.loads(line).get("result")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
for s in sys.argv[1:]:
    print("#", s)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $failed
