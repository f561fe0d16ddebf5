#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench-sync.sh - time `crdtfs sync` on a local bare remote.
#
#   scripts/bench-sync.sh [CRDTFS] [HOSTS] [ENTRIES] [RUNS]
#
# Defaults: $CRDTFS or build/fs/crdtfs, 10 hosts, 10000 entries per host
# file, 5 runs.  Sets up HOSTS clones of one bare repository, each with a
# host file of ENTRIES entries made by `crdtfs prepare` from an MCP-style
# JSON Lines source, and every clone holding every host file.  Then:
#   1. push: change one entry on host 0, prepare (not timed), time
#      `crdtfs sync` (commit, fetch, push) - RUNS times, median;
#   2. pull: time `crdtfs sync` on host 1 bringing that change in
#      (fetch, fast-forward, replace one host file) - RUNS times, median;
#   3. convergence: every host changes one entry and syncs, in turn, then
#      every host syncs once more; time the whole round and check that all
#      merged views are byte-identical.
# Temporary files go to a mktemp directory that is removed at the end.
set -eu

CRDTFS=${1:-${CRDTFS:-build/fs/crdtfs}}
HOSTS=${2:-10}
ENTRIES=${3:-10000}
RUNS=${4:-5}
PY=/usr/bin/python3
case $CRDTFS in /*) ;; *) CRDTFS=$(pwd)/$CRDTFS ;; esac
[ -x "$CRDTFS" ] || { echo "bench-sync: no crdtfs at $CRDTFS" >&2; exit 2; }

W=$(mktemp -d /tmp/crdtfs-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT INT TERM
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example

now_ns() { date +%s%N; }
ms() { echo "$1 $2" | awk '{ printf "%.1f\n", ($2 - $1) / 1e6 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# source HOST SEQ: ENTRIES MCP entities; entity SEQ % ENTRIES carries SEQ.
source_file() {
	$PY - "$W/src-$1.jsonl" "$1" "$ENTRIES" "$2" <<'EOF'
import json, sys
path, host, n, seq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(path, "w") as f:
    for i in range(n):
        obs = ["%s fact %d about entity %d" % (host, k, i) for k in range(3)]
        if seq and i == seq % n:
            obs.append("change %d" % seq)
        f.write(json.dumps({"type": "entity", "name": "%s-e%05d" % (host, i),
                            "entityType": "thing", "observations": obs},
                           separators=(",", ":")) + "\n")
EOF
}

sync_q() { "$CRDTFS" sync -q "$W/h$1" >/dev/null; }

echo "bench-sync: $HOSTS hosts x $ENTRIES entries, $RUNS runs, $CRDTFS"
git init -q --bare -b main "$W/remote.git"
i=0
while [ "$i" -lt "$HOSTS" ]; do
	git clone -q "$W/remote.git" "$W/h$i" 2>/dev/null
	git -C "$W/h$i" symbolic-ref HEAD refs/heads/main
	source_file "h$i" 0
	"$CRDTFS" prepare -q --host "h$i" "$W/src-h$i.jsonl" "$W/h$i"
	sync_q "$i"
	i=$((i + 1))
done
i=0
while [ "$i" -lt "$HOSTS" ]; do sync_q "$i"; i=$((i + 1)); done
size=$(wc -c < "$W/h0/memory-h0.json")
echo "setup: host file $size bytes; each clone holds $HOSTS host files"

# 1. One changed entry, pushed.
: > "$W/push.txt"
: > "$W/pull.txt"
r=1
while [ "$r" -le "$RUNS" ]; do
	source_file h0 "$r"
	"$CRDTFS" prepare -q --host h0 "$W/src-h0.jsonl" "$W/h0"
	t0=$(now_ns)
	sync_q 0
	t1=$(now_ns)
	ms "$t0" "$t1" >> "$W/push.txt"
	# 2. ... and pulled by another host.
	t0=$(now_ns)
	sync_q 1
	t1=$(now_ns)
	ms "$t0" "$t1" >> "$W/pull.txt"
	r=$((r + 1))
done
echo "sync, one changed entry, commit+fetch+push: median $(median < "$W/push.txt") ms (runs: $(tr '\n' ' ' < "$W/push.txt"))"
echo "sync, pulling that change (fetch+fast-forward): median $(median < "$W/pull.txt") ms (runs: $(tr '\n' ' ' < "$W/pull.txt"))"

# 3. Convergence: everyone changes one entry and syncs, then syncs again.
t0=$(now_ns)
i=0
while [ "$i" -lt "$HOSTS" ]; do
	source_file "h$i" $((RUNS + 100 + i))
	"$CRDTFS" prepare -q --host "h$i" "$W/src-h$i.jsonl" "$W/h$i"
	sync_q "$i"
	i=$((i + 1))
done
i=0
while [ "$i" -lt "$HOSTS" ]; do sync_q "$i"; i=$((i + 1)); done
t1=$(now_ns)
i=0
while [ "$i" -lt "$HOSTS" ]; do
	"$CRDTFS" merge "$W/h$i" | sha1sum
	i=$((i + 1))
done | sort -u > "$W/views.txt"
n=$(wc -l < "$W/views.txt")
echo "convergence: $HOSTS hosts each change+prepare+sync, then sync again: $(ms "$t0" "$t1") ms; distinct merged views: $n"
[ "$n" -eq 1 ] || { echo "bench-sync: hosts disagree" >&2; exit 1; }
