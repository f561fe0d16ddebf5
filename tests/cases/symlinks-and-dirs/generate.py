#!/usr/bin/python3
# Symlinks are never sources: one to a file outside the backing directory,
# one to a host file inside it, one to a directory; a directory named like
# a host file.
import os
import sys

b = sys.argv[1]
out = os.path.join(os.path.dirname(b), "outside.json")
with open(out, "w") as f:
    f.write('[{"id":"secret","_crdt_metadata":{"unique_id":"secret",'
            '"timestamp":"2025-03-01T10:00:00Z"}}]\n')
os.symlink(out, os.path.join(b, "memory-evil.json"))
os.symlink("../outside.json", os.path.join(b, "memory-evil2.json"))
os.symlink("memory-a.json", os.path.join(b, "memory-alias.json"))
os.makedirs(os.path.join(b, "memory-x.json"))
with open(os.path.join(b, "memory-x.json", "memory-y.json"), "w") as f:
    f.write('[{"id":"in a dir","_crdt_metadata":{"unique_id":"d",'
            '"timestamp":"2025-03-01T10:00:00Z"}}]\n')
os.symlink(os.path.dirname(b), os.path.join(b, "memory-dir.json"))
