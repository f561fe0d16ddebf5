/* SPDX-License-Identifier: MIT */
/*
 * bigarray.c - growable arrays for the engine's per-entry index.
 *
 * Index arrays grow to megabytes (32-byte records, keys, hash tables).
 * On these machines a first touch of a 4 KiB page costs about 20 us, so
 * growing by realloc (copy, and touch every byte twice) costs more than
 * the merge itself.  A big array lives in its own mapping instead: it
 * grows with mremap(), which moves page tables and copies nothing, and
 * once it is large it asks for transparent huge pages, whose first touch
 * is several times cheaper per byte.  Small arrays stay small: a mapping
 * starts at 64 KiB and huge pages are only requested from 2 MiB, so a
 * source of ten entries does not cost a 2 MiB page.
 */
#include "engine_i.h"

#include <errno.h>
#include <sys/mman.h>

#define BIG_MIN (64 * 1024)
#define BIG_HUGE_FROM (2 * 1024 * 1024)

int engine__big_reserve(engine__big *b, size_t need)
{
	size_t cap = b->cap ? b->cap : BIG_MIN;
	void *p;

	if (need <= b->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (!b->base)
		p = mmap(NULL, cap, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	else
		p = mremap(b->base, b->cap, cap, MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		return -ENOMEM;
	if (cap >= BIG_HUGE_FROM)
		(void)madvise(p, cap, MADV_HUGEPAGE);
	b->base = p;
	b->cap = cap;
	return 0;
}

void engine__big_free(engine__big *b)
{
	if (b->base)
		munmap(b->base, b->cap);
	b->base = NULL;
	b->cap = 0;
}
