# SPDX-License-Identifier: MIT
"""
A merge large enough for the paths that only run on big inputs (merging
and sorting the winners on several threads, writing the output on several
threads), checked byte for byte against tests/oracle.py; and one whose
keys all hash into one half of the parallel merge's table.
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


def key_hash(b):
    """engine__key_hash() of engine/engine_i.h, over the key's UTF-8."""
    m = (1 << 64) - 1
    h, i = 0x9e3779b97f4a7c15 ^ len(b), 0
    while len(b) - i >= 8:
        h = ((h ^ int.from_bytes(b[i:i + 8], "little")) *
             0xff51afd7ed558ccd) & m
        h ^= h >> 32
        i += 8
    h = ((h ^ int.from_bytes(b[i:], "little")) * 0xc4ceb9fe1a85ec53) & m
    return (h ^ (h >> 29) ^ (h >> 40)) & 0xffffffff


def test_keys_in_one_half_of_the_table(tmp_path):
    # The parallel merge gives each thread the keys of one range of hash
    # top bits, in a table sized for an even share: 90 000 keys whose top
    # bit is 0 overfill that half on 2 CPUs (and a quarter on 4), which
    # must fall back to one table, not loop forever.
    keys = []
    i = 0
    while len(keys) < 90000:
        k = "sk-%07d" % i
        if key_hash(k.encode()) >> 31 == 0:
            keys.append(k)
        i += 1
    rng = random.Random(7)
    b = tmp_path / "b"
    b.mkdir()
    for h in range(2):
        with open(b / ("memory-h%d.json" % h), "w", encoding="utf-8") as f:
            for n, uid in enumerate(keys):
                if h == 1 and n % 5:
                    continue  # every fifth key on both hosts
                f.write(canonical({"n": n, "h": h, "_crdt_metadata": {
                    "host": "h%d" % h, "timestamp": stamp(rng),
                    "version": 1, "unique_id": uid}}) + "\n")
    got = util.cli_merge(str(b), clean=True)
    assert got.count(b"\n") == len(keys) + 2
    assert got == util.oracle.merge_dir(str(b))
