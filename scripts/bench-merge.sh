#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench-merge.sh - `crdtfs merge` against the seed's Python algorithm and jq.
#
#   scripts/bench-merge.sh [--quick] [--crdtfs PATH] [--dir DIR] [--runs N]
#
# Corpora (scripts/gen-corpus.py, pretty-printed arrays as the origin
# backup writes them, seed 1, 20% cross-host duplicates):
#   10 hosts x 1 000 entries    (~9.8 MB)
#   10 hosts x 10 000 entries   (~98 MB)
#   10 hosts x 110 000 entries  (~1.07 GB; crdtfs only)
# For each: median wall time of N runs (default 5; 3 at 1 GB; the command
# alone, from the shell's clock) and the peak RSS of one more run under
# /usr/bin/time -v (a warm-up too); output goes to /dev/null.
# Peers: scripts/seed-merge.py (json.load, group, max, sort, json.dump) and
# `jq -s -f scripts/merge.jq`.  Before timing, crdtfs's output on the two
# smaller corpora is compared with tests/oracle.py byte for byte.
# --quick: 10 x 1 000 and 10 x 10 000 only, 3 runs each.
# Prints a markdown table.  Corpora are cached in DIR (default
# /tmp/crdtfs-bench) and reused; delete it to regenerate.
set -euo pipefail
export LC_ALL=C

root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
crdtfs=${CRDTFS:-$root/build/fs/crdtfs}
dir=${BENCH_DIR:-/tmp/crdtfs-bench}
runs=5
quick=0
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1; runs=3 ;;
	--crdtfs) crdtfs=$2; shift ;;
	--dir) dir=$2; shift ;;
	--runs) runs=$2; shift ;;
	-h|--help) sed -n '3,21p' "$0"; exit 0 ;;
	*) echo "bench-merge.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done
[ -x "$crdtfs" ] || { echo "bench-merge.sh: no crdtfs at $crdtfs (build it or pass --crdtfs)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench-merge.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 2; }
have_jq=1
command -v jq >/dev/null || have_jq=0

sizes="1000 10000"
[ $quick -eq 1 ] || sizes="$sizes 110000"
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

corpus() { # entries -> directory, generated once
	local d="$dir/c10x$1"
	if [ ! -f "$d/.done" ]; then
		rm -rf "$d"
		echo "# generating 10 x $1 entries in $d" >&2
		"$py" "$root/scripts/gen-corpus.py" --hosts 10 --entries "$1" \
			--seed 1 --format pretty --out "$d" >&2
		touch "$d/.done"
	fi
	echo "$d"
}

# measure NAME RUNS CMD...: prints "median_seconds peak_rss_kib"
# One run under /usr/bin/time -v for the peak RSS, then RUNS runs of the
# command alone, timed with the shell's microsecond clock (time -v only
# has 10 ms steps, and starting it costs about 5 ms here, which would
# swamp a 30 ms run).
measure() {
	local n=$2 _ rss
	shift 2
	: >"$tmp/m"
	if ! /usr/bin/time -v -o "$tmp/t" "$@" >/dev/null 2>"$tmp/err"; then
		echo "bench-merge.sh: failed: $*" >&2
		tail -5 "$tmp/err" >&2
		echo "fail fail"
		return
	fi
	rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tmp/t")
	for _ in $(seq "$n"); do
		t0=$EPOCHREALTIME
		if ! "$@" >/dev/null 2>"$tmp/err"; then
			echo "bench-merge.sh: failed: $*" >&2
			tail -5 "$tmp/err" >&2
			echo "fail fail"
			return
		fi
		t1=$EPOCHREALTIME
		awk -v t0="$t0" -v t1="$t1" 'BEGIN { print t1 - t0 }' >>"$tmp/m"
	done
	sort -n "$tmp/m" | awk -v r="$rss" '{ w[NR] = $1 }
		END { m = (NR % 2) ? w[(NR + 1) / 2] : (w[NR / 2] + w[NR / 2 + 1]) / 2
		      print m, r }'
}

fmt_row() { # label mb tool median rss base_median
	awk -v l="$1" -v mb="$2" -v t="$3" -v m="$4" -v r="$5" -v b="$6" 'BEGIN {
		if (m == "fail") { printf "| %s | %s | failed | | | |\n", l, t; exit }
		if (m == "skip") { printf "| %s | %s | skipped | | | |\n", l, t; exit }
		ms = m * 1000
		ratio = (b != "" && b > 0) ? sprintf("%.0fx", m / b) : "1x"
		printf "| %s | %s | %.1f ms | %.0f MB/s | %.1f MiB | %s |\n",
			l, t, ms, (m > 0 ? mb / m : 0), r / 1024, ratio }'
}

rows=()
notes=()
for n in $sizes; do
	d=$(corpus "$n")
	files=("$d"/memory-*.json)
	mb=$(du -cb "${files[@]}" | awk 'END { printf "%.1f", $1 / 1e6 }')
	label="10 x $n ($mb MB)"
	r=$runs
	[ "$n" -ge 100000 ] && r=3
	if [ "$n" -le 10000 ]; then
		"$crdtfs" merge "$d" >"$tmp/out" 2>"$tmp/err"
		"$py" "$root/tests/oracle.py" "$d" >"$tmp/oracle"
		if cmp -s "$tmp/out" "$tmp/oracle"; then
			notes+=("10 x $n: crdtfs output identical to tests/oracle.py ($(wc -c <"$tmp/out") bytes, $(grep -c '^{' "$tmp/out") entries)")
		else
			notes+=("10 x $n: **crdtfs output DIFFERS from tests/oracle.py**")
		fi
	fi
	read -r cm cr < <(measure crdtfs "$r" "$crdtfs" merge "$d")
	rows+=("$(fmt_row "$label" "$mb" "crdtfs merge" "$cm" "$cr" "")")
	if [ "$n" -le 10000 ]; then
		read -r sm sr < <(measure seed "$r" "$py" "$root/scripts/seed-merge.py" "${files[@]}")
		rows+=("$(fmt_row "$label" "$mb" "seed-merge.py" "$sm" "$sr" "$cm")")
		if [ $have_jq -eq 1 ]; then
			read -r jm jr < <(measure jq "$r" jq -s -f "$root/scripts/merge.jq" "${files[@]}")
			rows+=("$(fmt_row "$label" "$mb" "jq -s" "$jm" "$jr" "$cm")")
		else
			rows+=("$(fmt_row "$label" "$mb" "jq -s" skip "" "")")
		fi
	else
		rows+=("$(fmt_row "$label" "$mb" "seed-merge.py" skip "" "")")
		rows+=("$(fmt_row "$label" "$mb" "jq -s" skip "" "")")
	fi
done

echo
echo "crdtfs merge vs the seed's Python algorithm vs jq; median of $runs runs (3 at ~1 GB), peak RSS of one run under time -v, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%d)."
echo
echo "| corpus | tool | median wall | throughput | peak RSS | wall ÷ crdtfs |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
for x in "${notes[@]}"; do echo "- $x"; done
