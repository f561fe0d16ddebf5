#!/usr/bin/env bash
# Demo: build crdtfs, mount the built-in demo data, show the merged file and
# the status file, unmount.  Usage: scripts/demo.sh
# With CRDTFS=PATH it runs that binary instead of building one (the tests
# run the demo that way).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
crdtfs=${CRDTFS:+$(realpath "$CRDTFS")}
cd "$root"
if [ -z "$crdtfs" ]; then
	[ -f build/build.ninja ] || meson setup build >/dev/null
	ninja -C build >/dev/null
	crdtfs=./build/fs/crdtfs
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/crdtfs-demo.XXXXXX")
backing=$work/backing mnt=$work/mnt
mkdir -p "$backing" "$mnt"
cp scripts/demo-data/memory-*.json "$backing/"
cleanup() {
	mountpoint -q "$mnt" && fusermount3 -u "$mnt"
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

"$crdtfs" -f "$backing" "$mnt" &
for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.05; done
mountpoint -q "$mnt" || { echo "demo: mount failed" >&2; exit 1; }

echo "\$ ls -l $mnt"
ls -l "$mnt"
echo
echo "\$ cat $mnt/unified-memory.json   # 3 host files, 6 entries, 4 unique ids"
cat "$mnt/unified-memory.json"
echo
echo "\$ jq length $mnt/unified-memory.json"
jq length "$mnt/unified-memory.json"
echo
echo "\$ # add an entry to memory-laptop.json through the mount (Python rewrites the file), then:"
echo "\$ cat $mnt/unified-memory.json"
/usr/bin/python3 - "$mnt/memory-laptop.json" <<'PY'
import json, sys
p = sys.argv[1]
entries = json.load(open(p))
entries.append({"id": "demo", "content": "added through the mount",
                "_crdt_metadata": {"host": "laptop", "timestamp": "2026-11-22T12:00:00Z",
                                   "version": 1, "unique_id": "demo"}})
with open(p, "w") as f:
    json.dump(entries, f, indent=2)
PY
cat "$mnt/unified-memory.json"
echo
echo "\$ head -c 600 $mnt/.crdtfs-status.json"
head -c 600 "$mnt/.crdtfs-status.json"; echo
fusermount3 -u "$mnt"
wait
echo "demo: unmounted cleanly"
