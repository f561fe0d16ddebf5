#!/usr/bin/python3
# 100 000 levels of nesting inside an entry of an array file and on a
# JSON Lines line, with valid entries around them.
import os
import sys

b = sys.argv[1]
ok = lambda u, s: ('{"id":"%s","_crdt_metadata":{"unique_id":"%s",'
                   '"timestamp":"2025-03-01T10:00:0%dZ"}}' % (u, u, s))
deep = '{"deep":' + "[" * 100000 + "]" * 100000 + "}"
with open(os.path.join(b, "memory-a.json"), "w") as f:
    f.write("[" + ok("ok1", 1) + ",\n" + deep + ",\n" + ok("ok2", 2) + "]\n")
with open(os.path.join(b, "memory-b.json"), "w") as f:
    f.write(ok("ok3", 3) + "\n" + deep + "\n" + ok("ok4", 4) + "\n")
with open(os.path.join(b, "memory-c.json"), "w") as f:
    f.write("[" + ok("ok5", 5) + ",\n" + "[" * 100000 + "]" * 100000 +
            "," + ok("ok6", 6) + "]\n")
with open(os.path.join(b, "memory-d.json"), "w") as f:
    f.write("[" + ok("ok7", 7) + ",\n" + '{"cut":' + "[" * 100000)
