#!/usr/bin/python3
# A FIFO and (when allowed) a character device named like host files must
# be skipped without blocking; a file name that is not UTF-8 is still a
# host file.
import os
import sys

b = sys.argv[1]
os.mkfifo(os.path.join(b, "memory-fifo.json"))
try:
    os.mknod(os.path.join(b, "memory-null.json"), 0o600 | 0o020000,
             os.makedev(1, 3))
except OSError:
    pass
with open(os.path.join(os.fsencode(b), b"memory-\xff.json"), "wb") as f:
    f.write(b'[{"id":"latin","_crdt_metadata":{"unique_id":"latin",'
            b'"timestamp":"2025-03-01T10:00:02Z"}}]')
