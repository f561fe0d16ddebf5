# SPDX-License-Identifier: MIT
#
# merge.jq - the seed's merge algorithm in jq, as a benchmark peer.
#
#   jq -s -f scripts/merge.jq memory-*.json > unified-memory.json
#
# Input (-s): an array of the host files' arrays.  Same rule as
# scripts/seed-merge.py: group by _crdt_metadata.unique_id, keep the entry
# with the greatest timestamp string (max_by keeps the last of equal ones,
# so ties depend on input order), sort by the timestamp string.  Like the
# seed it compares timestamps as text; it is a baseline to time, not a
# correct merge.
[ .[][] ]
| group_by(._crdt_metadata.unique_id)
| map(max_by(._crdt_metadata.timestamp))
| sort_by(._crdt_metadata.timestamp)
