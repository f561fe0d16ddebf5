#!/usr/bin/python3
# Entries at the 16 MiB raw-size limit: exactly 16 MiB is kept; one byte
# more is skipped, also when the extra byte is only whitespace (the limit
# is on raw bytes).  Writes the expected output beside the backing dir.
import os
import sys

b = sys.argv[1]
LIMIT = 16 * 1024 * 1024


def big(uid, size, ws=b""):
    head = (b'{"id":"%s","_crdt_metadata":{"unique_id":"%s","timestamp":'
            b'"2025-03-01T10:00:05Z"},' % (uid, uid)) + ws + b'"pad":"'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


ok1 = (b'{"id":"ok1","_crdt_metadata":{"unique_id":"ok1",'
       b'"timestamp":"2025-03-01T10:00:01Z"}}')
ok2 = (b'{"id":"ok2","_crdt_metadata":{"unique_id":"ok2",'
       b'"timestamp":"2025-03-01T10:00:09Z"}}')
at = big(b"at-limit", LIMIT)
over = big(b"over-limit", LIMIT + 1)
ws = big(b"ws-over-limit", LIMIT + 1, b" ")
assert len(at) == LIMIT and len(over) == LIMIT + 1 == len(ws)
with open(os.path.join(b, "memory-a.json"), "wb") as f:
    f.write(b"[" + ok1 + b",\n" + at + b",\n" + over + b",\n" + ws + b",\n" +
            ok2 + b"]\n")
with open(os.path.join(os.path.dirname(b), "expected.json"), "wb") as f:
    f.write(b"[\n" + ok1 + b",\n" + at + b",\n" + ok2 + b"\n]\n")
