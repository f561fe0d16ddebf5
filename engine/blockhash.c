/* SPDX-License-Identifier: MIT */
/*
 * blockhash.c - hashes of a file's leading bytes, block by block, so that
 * a later scan can tell in one fast pass whether those bytes are still
 * the same (then only what follows them needs scanning: host files grow
 * by appending).
 *
 * The hash is a 64-bit multiply-rotate hash over four independent lanes
 * (the round of XXH64), about 10 GB/s here, so checking a prefix costs
 * little more than reading it, against a scan at under 1 GB/s.  It is not
 * cryptographic: two different blocks collide with a probability of about
 * 2^-64, which is what "unchanged" rests on.  Blocks are ENGINE__CHUNK
 * bytes, the scanner's reads, so a full scan hashes them as it reads.
 */
#include "engine_i.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define P1 0x9e3779b185ebca87ull
#define P2 0xc2b2ae3d27d4eb4full
#define P3 0x165667b19e3779f9ull

static inline uint64_t rotl(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t lane(uint64_t acc, uint64_t w)
{
	return rotl(acc + w * P2, 31) * P1;
}

uint64_t engine__hash64(const void *data, size_t n)
{
	const unsigned char *p = data;
	uint64_t a0 = P1 + P2, a1 = P2, a2 = 0, a3 = 0 - P1, h, w;
	size_t len = n;

	for (; n >= 32; n -= 32, p += 32) {
		uint64_t v[4];

		memcpy(v, p, 32);
		a0 = lane(a0, v[0]);
		a1 = lane(a1, v[1]);
		a2 = lane(a2, v[2]);
		a3 = lane(a3, v[3]);
	}
	h = rotl(a0, 1) + rotl(a1, 7) + rotl(a2, 12) + rotl(a3, 18) + len;
	for (; n >= 8; n -= 8, p += 8) {
		memcpy(&w, p, 8);
		h = rotl(h ^ lane(0, w), 27) * P1 + P3;
	}
	w = 0;
	memcpy(&w, p, n);
	h = rotl(h ^ lane(0, w ^ n), 27) * P1 + P3;
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	return h ^ (h >> 32);
}

void engine__prefix_hash_dispose(engine__prefix_hash *h)
{
	free(h->blocks);
	memset(h, 0, sizeof(*h));
}

static int prefix_hash_add(engine__prefix_hash *h, uint64_t v)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		uint64_t *b = realloc(h->blocks, cap * sizeof(*b));

		if (!b)
			return -ENOMEM;
		h->blocks = b;
		h->cap = cap;
	}
	h->blocks[h->n++] = v;
	return 0;
}

ssize_t engine__read_fd_hashing(void *ctx, char *buf, size_t size,
				uint64_t offset)
{
	engine__hashing_read *r = ctx;
	engine__prefix_hash *h = r->h;
	ssize_t n = engine__pread_full(r->fd, buf, size, offset);

	/* Blocks read in order only; a gap leaves h->n short of the end,
	 * which engine__prefix_hash_finish() refuses. */
	if (n <= 0 || size != ENGINE__CHUNK ||
	    offset != (uint64_t)h->n * ENGINE__CHUNK || h->short_len)
		return n;
	if (r->first_len) {
		if ((size_t)n < r->first_len ||
		    engine__hash64(buf, r->first_len) != r->first_hash)
			r->first_differs = 1;
		r->first_len = 0;
	}
	if ((size_t)n < size) {
		h->short_len = (size_t)n;
		h->short_hash = engine__hash64(buf, (size_t)n);
	} else if (prefix_hash_add(h, engine__hash64(buf, (size_t)n)) < 0) {
		h->short_len = SIZE_MAX; /* out of memory: never finishes */
	}
	return n;
}

int engine__prefix_hash_finish(engine__prefix_hash *h, int fd, uint64_t end)
{
	size_t k = (size_t)(end / ENGINE__CHUNK);
	size_t tail = (size_t)(end % ENGINE__CHUNK), len;
	uint64_t want;
	engine__big buf = { 0 };
	ssize_t n;
	int rc = 0;

	if (k < h->n) {
		len = ENGINE__CHUNK;
		want = h->blocks[k];
	} else if (k == h->n && h->short_len != SIZE_MAX &&
		   h->short_len >= tail) {
		len = h->short_len;
		want = h->short_hash;
	} else {
		return -EIO;
	}
	h->n = k;
	h->end = end;
	h->short_len = 0;
	if (tail == 0) {
		h->tail = engine__hash64("", 0);
		return 0;
	}
	if (engine__big_reserve(&buf, ENGINE__CHUNK) < 0)
		return -ENOMEM;
	n = engine__pread_full(fd, buf.base, len, (uint64_t)k * ENGINE__CHUNK);
	if (n < 0)
		rc = (int)n;
	else if ((size_t)n != len || engine__hash64(buf.base, len) != want)
		rc = -ESTALE;
	else
		h->tail = engine__hash64(buf.base, tail);
	engine__big_free(&buf);
	return rc;
}

/* Checking a prefix: blocks shared out between threads, the tail last. */
typedef struct {
	const engine__prefix_hash *h;
	int fd;
	size_t per_job;       /* blocks per job */
	atomic_int verdict;   /* 1 same so far, 0 differs, <0 -errno */
} prefix_check;

/* Set the verdict from 1 (still matching) only: the first failure stays. */
static void check_fail(prefix_check *c, int verdict)
{
	int match = 1;

	atomic_compare_exchange_strong(&c->verdict, &match, verdict);
}

static void check_job(void *ctx, size_t j)
{
	prefix_check *c = ctx;
	const engine__prefix_hash *h = c->h;
	size_t i = j * c->per_job, stop = i + c->per_job;
	engine__big buf = { 0 };

	if (stop > h->n + 1)
		stop = h->n + 1; /* index h->n stands for the tail */
	if (engine__big_reserve(&buf, ENGINE__CHUNK) < 0) {
		check_fail(c, -ENOMEM);
		return;
	}
	for (; i < stop && atomic_load(&c->verdict) == 1; i++) {
		uint64_t off = (uint64_t)i * ENGINE__CHUNK;
		size_t want = i < h->n ? ENGINE__CHUNK : (size_t)(h->end - off);
		ssize_t n = engine__pread_full(c->fd, buf.base, want, off);

		if (n < 0)
			check_fail(c, (int)n);
		else if ((size_t)n < want ||
			 engine__hash64(buf.base, want) !=
				 (i < h->n ? h->blocks[i] : h->tail))
			check_fail(c, 0);
	}
	engine__big_free(&buf);
}

int engine__prefix_hash_matches(const engine__prefix_hash *h, int fd,
				size_t threads)
{
	/* Small prefixes on one thread: a thread costs more than 4 blocks. */
	size_t jobs = engine__parallel_threads((h->n + 1 + 3) / 4);

	if (jobs > threads)
		jobs = threads ? threads : 1;
	prefix_check c = { h, fd, (h->n + 1 + jobs - 1) / jobs, 1 };

	engine__parallel_run(jobs, check_job, &c);
	return atomic_load(&c.verdict);
}
