/* SPDX-License-Identifier: MIT */
/*
 * bigarray.c - growable arrays for the engine's per-entry index.
 *
 * Index arrays grow to megabytes (32-byte records, keys, hash tables).
 * On these machines a first touch of a 4 KiB page costs about 20 us, so
 * growing by realloc (copy, and touch every byte twice) costs more than
 * the merge itself.  A big array lives in its own mapping instead, with
 * room to grow: a new mapping reserves at least 1 MiB of address space
 * (only the pages used are ever touched) and a full one grows fourfold
 * with mremap(), which moves page tables and copies nothing.  Growing
 * rarely matters more than it seems: with other threads of the process
 * running, every mremap() and munmap() interrupts them to flush their
 * TLBs, about 0.1-0.2 ms here, as long as scanning 100 KB.  Once an array
 * uses 2 MiB it asks for transparent huge pages, whose first touch is
 * several times cheaper per byte; a small array never costs a 2 MiB page.
 *
 * Freed mappings go to a small pool and are handed out again, already
 * touched: a refresh after one host file changed builds arrays of about
 * the sizes the previous generation just released (records of the new
 * source, winners, slots), and without the pool it would spend more time
 * on first-touch page faults than on merging.  The pool is bounded in
 * count and bytes; a pooled mapping is only reused for an array that
 * needs between a quarter and four times the bytes it had touched.
 * Reused bytes are not cleared: arrays are written before they are read,
 * and the one that must start zeroed (the merge's hash table) clears
 * itself.
 */
#include "engine_i.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Bytes faulted in ahead of need, at least. */
#define BIG_AHEAD (64 * 1024)
/* Address space a new mapping reserves, so that small arrays never move. */
#define BIG_MAP_MIN (1024 * 1024)
#define BIG_GROWTH 4
#define BIG_PAGE 4096
#define BIG_HUGE_FROM (2 * 1024 * 1024)
#define POOL_SLOTS 16
/* Counted in bytes used (cap), which is what stays resident. */
#define POOL_MAX_BYTES (256u * 1024 * 1024)

static struct {
	pthread_mutex_t lock;
	void *base[POOL_SLOTS];
	size_t mapped[POOL_SLOTS];
	size_t used[POOL_SLOTS];
	size_t bytes;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Is pooled mapping i a better start for `need` bytes than `best`? */
static int pool_better(size_t i, size_t best, size_t need)
{
	size_t m = pool.mapped[i], used = pool.used[i];

	if (!pool.base[i] || used / 4 > need || used < need / 4)
		return 0;
	if (best == POOL_SLOTS)
		return 1;
	/* The smallest that fits, else the largest that does not. */
	if (m >= need)
		return pool.mapped[best] < need || m < pool.mapped[best];
	return pool.mapped[best] < need && m > pool.mapped[best];
}

/*
 * Take the pooled mapping that best fits `need`, if any: one that fits,
 * or one that grows into it with mremap, keeping its touched pages.
 */
static int pool_take(engine__big *b, size_t need)
{
	size_t best = POOL_SLOTS, i;

	pthread_mutex_lock(&pool.lock);
	for (i = 0; i < POOL_SLOTS; i++)
		if (pool_better(i, best, need))
			best = i;
	if (best < POOL_SLOTS) {
		b->base = pool.base[best];
		b->mapped = pool.mapped[best];
		b->populated = pool.used[best];
		b->cap = 0;
		pool.base[best] = NULL;
		pool.bytes -= pool.used[best];
	}
	pthread_mutex_unlock(&pool.lock);
	return best < POOL_SLOTS;
}

/*
 * Keep a mapping for reuse.  When every slot is taken, the smallest
 * pooled mapping makes room for a larger one: many small arrays (a
 * reader's queues) must not crowd out the merge's megabytes.
 * @return 0 when the pool did not keep it
 */
static int pool_give(const engine__big *b)
{
	size_t i, slot = POOL_SLOTS;
	void *evict = NULL;
	size_t evict_len = 0;

	pthread_mutex_lock(&pool.lock);
	for (i = 0; i < POOL_SLOTS; i++) {
		if (!pool.base[i]) {
			slot = i;
			break;
		}
		if (pool.mapped[i] < b->mapped &&
		    (slot == POOL_SLOTS || pool.mapped[i] < pool.mapped[slot]))
			slot = i;
	}
	/* Evict only to keep this one: not when it would not fit anyway. */
	if (slot < POOL_SLOTS &&
	    pool.bytes - (pool.base[slot] ? pool.used[slot] : 0) +
			    b->populated > POOL_MAX_BYTES)
		slot = POOL_SLOTS;
	if (slot < POOL_SLOTS && pool.base[slot]) {
		evict = pool.base[slot];
		evict_len = pool.mapped[slot];
		pool.bytes -= pool.used[slot];
		pool.base[slot] = NULL;
	}
	if (slot < POOL_SLOTS) {
		pool.base[slot] = b->base;
		pool.mapped[slot] = b->mapped;
		pool.used[slot] = b->populated;
		pool.bytes += b->populated;
	}
	pthread_mutex_unlock(&pool.lock);
	if (evict)
		munmap(evict, evict_len);
	return slot < POOL_SLOTS;
}

/* Ask for huge pages once the array uses BIG_HUGE_FROM bytes. */
static void big_advise_huge(engine__big *b, size_t upto)
{
	if (upto >= BIG_HUGE_FROM && b->cap >= BIG_HUGE_FROM)
		(void)madvise(b->base, b->cap, MADV_HUGEPAGE);
}

/*
 * Fault in the stretch of the array about to be written, a little past
 * `need`, in one call: a page costs about 3.6 us this way here, against
 * about 12 us when each first touch traps.  Failure (an old kernel) only
 * means the pages fault one at a time.
 */
static void big_populate(engine__big *b, size_t need)
{
	/* A step of 1/16 keeps the pages faulted in ahead, which the array
	 * may never use, within about 6% of its size. */
	size_t upto = need + (need / 16 > BIG_AHEAD ? need / 16 : BIG_AHEAD);

	upto = (upto + BIG_PAGE - 1) & ~(size_t)(BIG_PAGE - 1);
	if (upto > b->cap)
		upto = b->cap;
	if (upto <= b->populated)
		return;
	if (b->populated < BIG_HUGE_FROM)
		big_advise_huge(b, upto);
	(void)madvise((char *)b->base + b->populated, upto - b->populated,
		      MADV_POPULATE_WRITE);
	b->populated = upto;
}

int engine__big_reserve(engine__big *b, size_t need)
{
	size_t cap = b->cap ? b->cap : BIG_MAP_MIN;
	int taken = 0;
	void *p;

	if (need <= b->cap) {
		if (need > b->populated)
			big_populate(b, need);
		return 0;
	}
	while (cap < need)
		cap *= BIG_GROWTH;
	if (!b->base && pool_take(b, need))
		taken = 1;
	if (need <= b->mapped) {
		b->cap = b->mapped;
		big_populate(b, need);
		return 0;
	}
	if (!b->base)
		p = mmap(NULL, cap, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	else
		p = mremap(b->base, b->mapped, cap, MREMAP_MAYMOVE);
	if (p == MAP_FAILED) {
		if (taken) /* as promised: unchanged, so still empty */
			engine__big_free(b);
		return -ENOMEM;
	}
	b->base = p;
	b->cap = b->mapped = cap;
	/* A moved or grown mapping may have lost the advice. */
	if (b->populated >= BIG_HUGE_FROM)
		big_advise_huge(b, b->populated);
	big_populate(b, need);
	return 0;
}

void engine__big_free(engine__big *b)
{
	if (b->base && !pool_give(b))
		munmap(b->base, b->mapped);
	b->base = NULL;
	b->cap = b->mapped = b->populated = 0;
}
