#!/usr/bin/python3
import os
import sys

b = sys.argv[1]
out = os.path.join(os.path.dirname(b), "real.merge.json")
with open(out, "w") as f:
    f.write('{"target":"n.json","sources":["a-*.json"]}')
os.symlink(out, os.path.join(b, "n.json.merge.json"))
