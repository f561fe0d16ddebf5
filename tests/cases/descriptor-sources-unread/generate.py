#!/usr/bin/python3
# The default is overridden to read mem-*.json: a symlink named so is not
# read and said to be; one named memory-*.json is read by nothing, so
# nothing is said of it.
import os
import sys

b = sys.argv[1]
with open(os.path.join(b, "unified-memory.json.merge.json"), "w") as f:
    f.write('{"target":"unified-memory.json","sources":["mem-*.json"]}\n')
with open(os.path.join(b, "mem-a.json"), "w") as f:
    f.write('[{"id":"ok1","content":"c a 2025-03-01T10:00:01Z 1",'
            '"_crdt_metadata":{"host":"a","timestamp":"2025-03-01T10:00:01Z",'
            '"version":1,"unique_id":"ok1"}}]\n')
os.symlink("mem-a.json", os.path.join(b, "mem-b.json"))
os.symlink("mem-a.json", os.path.join(b, "memory-z.json"))
