/* SPDX-License-Identifier: MIT */
/*
 * sha1.h - SHA-1 (FIPS 180-4) and git blob ids, for keys and identities
 * that must equal what git computes (`git hash-object`).  Used inside
 * engine/ only; not a security primitive here, just a stable name.
 */
#ifndef CRDTFS_ENGINE_SHA1_H
#define CRDTFS_ENGINE_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define ENGINE__SHA1_LEN 20
/* 40 hex digits and the NUL */
#define ENGINE__SHA1_HEX (2 * ENGINE__SHA1_LEN + 1)

typedef struct {
	uint32_t h[5];         /* the intermediate hash value */
	uint64_t len;          /* bytes hashed so far */
	unsigned char buf[64]; /* the partial block: len % 64 bytes */
} engine__sha1_ctx;

void engine__sha1_init(engine__sha1_ctx *c);
void engine__sha1_update(engine__sha1_ctx *c, const void *data, size_t len);
/** Pad, write the digest to `out`; `c` must be initialised again to reuse. */
void engine__sha1_final(engine__sha1_ctx *c,
                        unsigned char out[ENGINE__SHA1_LEN]);

/** Like engine__sha1_final(), as 40 lowercase hex digits. */
void engine__sha1_final_hex(engine__sha1_ctx *c, char out[ENGINE__SHA1_HEX]);

/**
 * Git's blob id of `len` bytes at `data`: the SHA-1 of "blob <len>\0"
 * followed by the bytes, as 40 lowercase hex digits.
 */
void engine__git_blob_id(const void *data, size_t len,
                         char out[ENGINE__SHA1_HEX]);

/**
 * Start a git blob id of `len` bytes to be fed in pieces with
 * engine__sha1_update(), then finished with engine__sha1_final_hex().
 */
void engine__git_blob_begin(engine__sha1_ctx *c, size_t len);

#endif
