#!/usr/bin/python3
# An entry holding a single 50 MB string, between two valid entries, in an
# array file and a JSON Lines file.
import os
import sys

b = sys.argv[1]
ok = lambda u, s: ('{"id":"%s","_crdt_metadata":{"unique_id":"%s",'
                   '"timestamp":"2025-03-01T10:00:0%dZ"}}' % (u, u, s))
big = ('{"id":"big","content":"' + "0123456789abcdef\\n\u00e9" * 2777778 +
       '","_crdt_metadata":{"unique_id":"big",'
       '"timestamp":"2030-01-01T00:00:00Z"}}')
with open(os.path.join(b, "memory-a.json"), "w", encoding="utf-8") as f:
    f.write("[" + ok("ok1", 1) + ",\n" + big + ",\n" + ok("ok2", 2) + "]\n")
with open(os.path.join(b, "memory-b.json"), "w", encoding="utf-8") as f:
    f.write(ok("ok3", 3) + "\n" + big + "\n" + ok("ok4", 4) + "\n")
