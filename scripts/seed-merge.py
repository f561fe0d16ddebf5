#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""
seed-merge.py - the seed design's merge algorithm, as the benchmark baseline.

    seed-merge.py FILE... > unified-memory.json

This is `crdt_merge` from seed 001 (docs: "Memory Backup CRDT Engineering
Design"), unchanged in substance: json.load every file whole, group by
_crdt_metadata.unique_id, keep the entry with the greatest timestamp
*string* (last write wins; the first one read wins a tie), sort by the
timestamp string, json.dump the list (indent 2, as the origin scripts
wrote unified-memory.json).  It compares timestamps as text and depends
on file order for ties, which is exactly what crdtfs does not do; it is
here only to be timed against `crdtfs merge`.
"""

import json
import sys


def crdt_merge(memory_files):
    merged = {}
    for file_path in memory_files:
        with open(file_path) as f:
            entries = json.load(f)
            for entry in entries:
                uid = entry['_crdt_metadata']['unique_id']
                if uid not in merged or \
                        entry['_crdt_metadata']['timestamp'] > \
                        merged[uid]['_crdt_metadata']['timestamp']:
                    merged[uid] = entry
    return sorted(merged.values(),
                  key=lambda x: x['_crdt_metadata']['timestamp'])


def main(argv):
    if not argv:
        print("usage: seed-merge.py FILE...", file=sys.stderr)
        return 2
    json.dump(crdt_merge(argv), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
