# SPDX-License-Identifier: MIT
"""
A merge large enough for the paths that only run on big inputs (sorting
the winners on several threads, writing the output on several threads),
checked byte for byte against tests/oracle.py.
"""

import json
import os
import random

import util

HOSTS = 4
UNIQUE = 70000  # winners: more than the 65 536 from which sorting is parallel
COPIES = 12000  # extra entries that reuse an id on another host


def stamp(rng):
    # Few distinct seconds, so equal timestamps (and the unique_id
    # tie-break of the output order) are common; Z only, so the text
    # orders like the instant.
    return "2025-03-%02dT10:%02d:%02d.%06dZ" % (
        1 + rng.randrange(28), rng.randrange(60), rng.randrange(60),
        rng.choice([0, 0, rng.randrange(1000000)]))


def canonical(e):
    return json.dumps(e, separators=(",", ":"), ensure_ascii=False)


def test_large_merge_equals_python_expectation(tmp_path):
    rng = random.Random(20261123)
    hosts = [[] for _ in range(HOSTS)]
    ids = ["id-%06d" % i for i in range(UNIQUE)]
    for i, uid in enumerate(ids + [rng.choice(ids) for _ in range(COPIES)]):
        h = rng.randrange(HOSTS)
        hosts[h].append({"n": i, "text": "é%d" % rng.randrange(50),
                         "_crdt_metadata": {
                             "host": "h%d" % h, "timestamp": stamp(rng),
                             "version": rng.randrange(3),
                             "unique_id": uid}})
    b = tmp_path / "b"
    b.mkdir()
    for h, entries in enumerate(hosts):
        with open(b / ("memory-h%d.json" % h), "w", encoding="utf-8") as f:
            for e in entries:  # JSON Lines, already canonical
                f.write(canonical(e) + "\n")

    got = util.cli_merge(str(b), clean=True)
    assert got.count(b"\n") == UNIQUE + 2  # "[", one line each, "]"
    assert util.oracle is not None, "tests/oracle.py did not import"
    assert got == util.oracle.merge_dir(str(b))
