/* SPDX-License-Identifier: MIT */
/*
 * merge.c - the deterministic, order-independent merge of scanned sources,
 * and the incremental engine_merge that keeps sources between refreshes.
 *
 * The winner of a key is the maximum under (order blob, canonical bytes):
 * a max over a total order, so the merge is commutative, associative and
 * idempotent, and independent of file order, formatting and duplication.
 * Winners are sorted by (first order field, key bytes), a total order on
 * them because keys are unique after the merge.
 *
 * Cost: one hash-table pass over every record (key hashes are computed
 * while scanning), a canonical byte comparison only for exact ties of the
 * whole order blob (typically copies of one entry in several files), and
 * one sort of the winners.  A refresh rescans only the sources that
 * changed, in parallel, and when they hold at most about half of the
 * records updates the previous result instead of merging again: see
 * merge_update().
 */
#include "engine_i.h"

#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct engine_merge {
	const desc_descriptor *desc; /* borrowed */
	int backing_fd;              /* borrowed */
	engine__source **sources;    /* owned refs, sorted by name */
	size_t nsources;
	engine_view *view;           /* owned ref to the current view */
	engine__big winners;         /* sort items of the view's entries in
					order, numbered over `sources`: what
					an update starts from */
	uint64_t generation;
	int all_dirty;               /* rescan everything on next refresh */
	int live;                    /* see engine_merge_live() */
	void (*on_scan)(void *, const char *); /* engine_merge_on_scan() */
	void *on_scan_arg;
};

/* Refreshes done by merge_update(), for tests. */
static atomic_ulong merge_updates;

unsigned long engine__merge_updates(void)
{
	return atomic_load(&merge_updates);
}

/* Records hashed ahead of the one being merged. */
#define MERGE_PREFETCH 8

/* A winner reference: source index in the high bits, record in the low. */
#define REF_SHIFT 40
#define REF_MAKE(s, r) ((((uint64_t)(s)) << REF_SHIFT) | (uint64_t)(r))
#define REF_SRC(ref) ((size_t)((ref) >> REF_SHIFT))
#define REF_REC(ref) ((size_t)((ref) & ((1ull << REF_SHIFT) - 1)))

typedef struct {
	engine__source **sources;
	size_t nsources;
	size_t *first; /* global number of each source's first record */
} merge_input;

/* The reference of the record with global number g. */
static uint64_t ref_of(const merge_input *in, size_t g)
{
	size_t lo = 0, hi = in->nsources;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (in->first[mid] <= g)
			lo = mid;
		else
			hi = mid;
	}
	return REF_MAKE(lo, g - in->first[lo]);
}

static inline const engine__record *ref_record(const merge_input *in,
					       uint64_t ref)
{
	return &in->sources[REF_SRC(ref)]->records[REF_REC(ref)];
}

static inline const char *ref_key(const merge_input *in, uint64_t ref)
{
	return in->sources[REF_SRC(ref)]->arena +
	       ref_record(in, ref)->key_off;
}

/* memcmp with the shorter of two equal prefixes first. */
static int bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	if (c)
		return c;
	return (an > bn) - (an < bn);
}

/* Does record `cand` beat the current winner `cur` of the same key? */
static int beats(const merge_input *in, uint64_t cand, uint64_t cur, int *err)
{
	const engine__record *a = ref_record(in, cand);
	const engine__record *b = ref_record(in, cur);
	const char *ablob = ref_key(in, cand) + a->key_len;
	const char *bblob = ref_key(in, cur) + b->key_len;
	int c = bytes_cmp(ablob, a->blob_len, bblob, b->blob_len);

	if (c)
		return c > 0;
	c = engine__record_compare_canon(in->sources[REF_SRC(cand)], a,
					 in->sources[REF_SRC(cur)], b, err);
	return c > 0;
}

/*
 * The sort key of a winner, 16 bytes: the first 12 bytes of (first order
 * field ++ key), which decide almost every comparison (a timestamp's tag,
 * seconds and most of its nanoseconds), then the full compare.
 */
typedef struct {
	uint64_t k1; /* big-endian bytes 0-7 of the prefix, 0-padded */
	uint32_t k2; /* bytes 8-11 */
	uint32_t g;  /* global record number */
} sort_item;

static uint64_t load_be(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void sort_item_init(sort_item *it, const merge_input *in, uint64_t ref,
			   size_t g)
{
	const engine__record *r = ref_record(in, ref);
	const char *key = ref_key(in, ref), *text;
	char buf[ENGINE__UUID_TEXT];
	unsigned char pre[12] = { 0 };
	size_t n = 0, i, text_len;

	for (i = 0; i < r->sort_len && n < 12; i++)
		pre[n++] = (unsigned char)key[r->key_len + i];
	text = engine__key_text(key, r->key_len, r->key_packed, buf,
				&text_len);
	for (i = 0; i < text_len && n < 12; i++)
		pre[n++] = (unsigned char)text[i];
	it->k1 = load_be(pre);
	it->k2 = (uint32_t)pre[8] << 24 | (uint32_t)pre[9] << 16 |
		 (uint32_t)pre[10] << 8 | pre[11];
	it->g = (uint32_t)g;
}

static int sort_item_cmp(const void *pa, const void *pb, void *ctx)
{
	const merge_input *in = ctx;
	const sort_item *a = pa, *b = pb;
	const engine__record *ra, *rb;
	uint64_t ref_a, ref_b;
	const char *ka, *kb;
	int c;

	if (a->k1 != b->k1)
		return a->k1 < b->k1 ? -1 : 1;
	if (a->k2 != b->k2)
		return a->k2 < b->k2 ? -1 : 1;
	ref_a = ref_of(in, a->g);
	ref_b = ref_of(in, b->g);
	ra = ref_record(in, ref_a);
	rb = ref_record(in, ref_b);
	ka = ref_key(in, ref_a);
	kb = ref_key(in, ref_b);
	c = bytes_cmp(ka + ra->key_len, ra->sort_len, kb + rb->key_len,
		      rb->sort_len);
	if (c)
		return c;
	return engine__key_cmp(ka, ra->key_len, ra->key_packed, kb,
			       rb->key_len, rb->key_packed);
}

/*
 * Stable bottom-up merge sort of n items using tmp (room for n).  Not
 * qsort: glibc's allocates a fresh temporary array on every call.
 */
static void sort_items(sort_item *items, sort_item *tmp, size_t n,
		       const merge_input *in)
{
	sort_item *src = items, *dst = tmp, *swap;
	size_t width, i;

	for (width = 1; width < n; width *= 2) {
		for (i = 0; i < n; i += 2 * width) {
			size_t a = i, am = i + width < n ? i + width : n;
			size_t b = am, bm = i + 2 * width < n ? i + 2 * width : n;
			size_t k = i;

			while (a < am && b < bm)
				dst[k++] = sort_item_cmp(&src[b], &src[a],
							 (void *)in) < 0 ?
						   src[b++] :
						   src[a++];
			while (a < am)
				dst[k++] = src[a++];
			while (b < bm)
				dst[k++] = src[b++];
		}
		swap = src;
		src = dst;
		dst = swap;
	}
	if (src != items)
		memcpy(items, src, n * sizeof(*items));
}

/*
 * Sorting on several threads: the items are cut into P runs (P a power
 * of two, one per thread), each run is sorted on its own thread, then
 * pairs of runs are merged in log2(P) rounds, each merge itself cut into
 * pieces of equal output so that every thread works in every round.  The
 * order is the one sort_items() gives: two winners never compare equal
 * (their keys differ), and ties would still keep the left run first.
 */
#define SORT_PARALLEL_FROM 65536
#define SORT_MAX_RUNS 4

typedef struct {
	sort_item *src, *dst;     /* this round merges src into dst */
	const merge_input *in;
	size_t bounds[SORT_MAX_RUNS + 1]; /* run r is [bounds[r], bounds[r+1]) */
	size_t runs;              /* runs in all */
	size_t width;             /* runs on each side of a pair this round */
} sort_job;

static void sort_run(void *ctx, size_t r)
{
	sort_job *job = ctx;
	size_t lo = job->bounds[r];

	sort_items(job->src + lo, job->dst + lo, job->bounds[r + 1] - lo,
		   job->in);
}

/*
 * How many of the first i outputs of merging a (na) and b (nb) come from
 * a, when equal items take a first.
 */
static size_t merge_split(const sort_item *a, size_t na, const sort_item *b,
			  size_t nb, size_t i, const merge_input *in)
{
	size_t lo = i > nb ? i - nb : 0, hi = i < na ? i : na;

	while (lo < hi) {
		size_t ia = lo + (hi - lo) / 2, ib = i - ia;

		/* Too few from a while a[ia] still goes before b[ib - 1]. */
		if (ib > 0 && ia < na &&
		    sort_item_cmp(&b[ib - 1], &a[ia], (void *)in) >= 0)
			lo = ia + 1;
		else
			hi = ia;
	}
	return lo;
}

/* Piece j of this round: a share of one pair's merged output. */
static void merge_piece(void *ctx, size_t j)
{
	sort_job *job = ctx;
	size_t pieces = 2 * job->width; /* per pair; pairs * pieces = runs */
	size_t pair = j / pieces, piece = j % pieces;
	size_t lo = job->bounds[2 * pair * job->width];
	size_t mid = job->bounds[(2 * pair + 1) * job->width];
	size_t hi = job->bounds[(2 * pair + 2) * job->width];
	const sort_item *a = job->src + lo, *b = job->src + mid;
	size_t na = mid - lo, nb = hi - mid, n = hi - lo;
	size_t from = n * piece / pieces, to = n * (piece + 1) / pieces;
	size_t ia = merge_split(a, na, b, nb, from, job->in), ib = from - ia;
	size_t ea = merge_split(a, na, b, nb, to, job->in), eb = to - ea;
	sort_item *out = job->dst + lo + from;

	while (ia < ea && ib < eb)
		*out++ = sort_item_cmp(&b[ib], &a[ia], (void *)job->in) < 0 ?
				 b[ib++] :
				 a[ia++];
	while (ia < ea)
		*out++ = a[ia++];
	while (ib < eb)
		*out++ = b[ib++];
}

/* sort_items() on a few threads when n is large enough to pay. */
static void sort_items_parallel(sort_item *items, sort_item *tmp, size_t n,
				const merge_input *in)
{
	sort_job job = { items, tmp, in, { 0 }, 1, 1 };
	size_t threads = n < SORT_PARALLEL_FROM ?
				 1 :
				 engine__parallel_threads(SORT_MAX_RUNS);
	size_t r;
	sort_item *swap;

	while (2 * job.runs <= threads)
		job.runs *= 2;
	if (job.runs == 1) {
		sort_items(items, tmp, n, in);
		return;
	}
	for (r = 0; r <= job.runs; r++)
		job.bounds[r] = n * r / job.runs;
	/* Runs sorted in place (tmp as scratch), then merged back and forth. */
	engine__parallel_run(job.runs, sort_run, &job);
	for (job.width = 1; job.width < job.runs; job.width *= 2) {
		engine__parallel_run(job.runs, merge_piece, &job);
		swap = job.src;
		job.src = job.dst;
		job.dst = swap;
	}
	if (job.src != items)
		memcpy(items, job.src, n * sizeof(*items));
}

/*
 * Merge record `jj` of source `i`, whose key hashes to slot `h`, into the
 * table of winners.  @return 0, or -EIO / -ENOMEM from a tie comparison
 */
static int merge_one(const merge_input *in, uint64_t *table, size_t mask,
		     size_t i, size_t jj, size_t h, size_t *nwin)
{
	const engine__source *s = in->sources[i];
	const engine__record *r = &s->records[jj];
	const char *key = s->arena + r->key_off;
	uint64_t ref = REF_MAKE(i, jj);
	int err = 0;

	for (;; h = (h + 1) & mask) {
		uint64_t cur = table[h];

		if (!cur) {
			table[h] = ref + 1;
			(*nwin)++;
			return 0;
		}
		cur--;
		if (ref_record(in, cur)->key_hash != r->key_hash ||
		    !engine__key_same(ref_record(in, cur), ref_key(in, cur),
				      r, key))
			continue;
		if (beats(in, ref, cur, &err))
			table[h] = ref + 1;
		return err;
	}
}

/* Number the records of `in` globally.  @return 0 or -ENOMEM */
static int input_number(merge_input *in)
{
	size_t total = 0, i;

	in->first = malloc((in->nsources + 1) * sizeof(*in->first));
	if (!in->first)
		return -ENOMEM;
	for (i = 0; i < in->nsources; i++) {
		in->first[i] = total;
		total += in->sources[i]->nrecords;
	}
	in->first[in->nsources] = total;
	return total > UINT32_MAX ? -ENOMEM : 0;
}

/*
 * A full merge on several threads: the table of winners is cut into
 * sub-tables by the top bits of the key hash, one per thread, so every
 * key has all its records merged by one thread, in file order, as on one
 * thread, and no slot is ever shared.  Each thread reads every record's
 * hash but inserts only its own.  The hash is not keyed, so a file can put
 * most keys in one part: a part that fills past 3/4 stops, and the table
 * is filled again on one thread (never full: it has room for every
 * record).  The sort items are then made per source, each source's from
 * its first item on.
 */
#define MERGE_PARALLEL_FROM 65536
#define MERGE_MAX_PARTS 4

typedef struct {
	const merge_input *in;
	uint64_t *table;       /* parts sub-tables of part_cap slots */
	size_t part_cap;       /* a power of two */
	size_t part_full;      /* keys in one part that make it stop */
	unsigned part_bits;    /* log2 of the number of parts */
	uint64_t *bits;        /* winners: one bit per global record */
	size_t nwin[MERGE_MAX_PARTS];
	int err[MERGE_MAX_PARTS];
	sort_item *items;
	size_t *start;         /* items: each source's first */
} merge_job;

static inline size_t part_of(const merge_job *job, uint32_t hash)
{
	return job->part_bits ? hash >> (32 - job->part_bits) : 0;
}

/* Merge record j of source i, whose key hashes to `slot`, into part p's
 * sub-table; -EAGAIN once the part holds more keys than it should. */
static int part_merge(merge_job *job, uint64_t *table, size_t p, size_t i,
		      size_t j, size_t slot)
{
	int err = merge_one(job->in, table, job->part_cap - 1, i, j, slot,
			    &job->nwin[p]);

	return err ? err : job->nwin[p] > job->part_full ? -EAGAIN : 0;
}

/* Sub-table p: merge the records whose keys fall in it, mark winners. */
static void table_fill(void *ctx, size_t p)
{
	merge_job *job = ctx;
	const merge_input *in = job->in;
	uint64_t *table = job->table + p * job->part_cap;
	size_t mask = job->part_cap - 1, i, j, k, n;
	int err = 0;

	for (i = 0; i < in->nsources && !err; i++) {
		const engine__record *recs = in->sources[i]->records;
		size_t nrec = in->sources[i]->nrecords;
		size_t rec[MERGE_PREFETCH], slot[MERGE_PREFETCH];

		/*
		 * The table is larger than the caches: take the hashes of a
		 * few records ahead and prefetch their slots, so the misses
		 * overlap.
		 */
		for (j = 0, n = 0; j < nrec && !err; j++) {
			uint32_t hash = recs[j].key_hash;

			if (part_of(job, hash) != p)
				continue;
			k = n++ % MERGE_PREFETCH;
			if (n > MERGE_PREFETCH)
				err = part_merge(job, table, p, i, rec[k],
						 slot[k]);
			rec[k] = j;
			slot[k] = hash & mask;
			__builtin_prefetch(&table[slot[k]], 1);
		}
		for (k = n > MERGE_PREFETCH ? n - MERGE_PREFETCH : 0;
		     k < n && !err; k++)
			err = part_merge(job, table, p, i,
					 rec[k % MERGE_PREFETCH],
					 slot[k % MERGE_PREFETCH]);
	}
	job->err[p] = err;
	for (k = 0; !err && k <= mask; k++) {
		if (table[k]) {
			uint64_t ref = table[k] - 1;
			size_t g = in->first[REF_SRC(ref)] + REF_REC(ref);

			/* Another part may mark the same word. */
			__atomic_fetch_or(&job->bits[g / 64], 1ull << (g % 64),
					  __ATOMIC_RELAXED);
		}
	}
}

/* How the parts ended: the first error, else -EAGAIN when a part filled
 * up, else 0. */
static int parts_error(const merge_job *job, size_t parts)
{
	size_t i;
	int err = 0;

	for (i = 0; i < parts; i++) {
		if (job->err[i] && job->err[i] != -EAGAIN)
			return job->err[i];
		if (job->err[i])
			err = -EAGAIN;
	}
	return err;
}

/* Winners among global records [from, to). */
static size_t bits_count(const uint64_t *bits, size_t from, size_t to)
{
	size_t n = 0;

	for (; from < to && from % 64; from++)
		n += (bits[from / 64] >> (from % 64)) & 1;
	for (; from + 64 <= to; from += 64)
		n += (size_t)__builtin_popcountll(bits[from / 64]);
	for (; from < to; from++)
		n += (bits[from / 64] >> (from % 64)) & 1;
	return n;
}

/* Sort items of source i's winners, in file order, from its start. */
static void items_fill(void *ctx, size_t i)
{
	merge_job *job = ctx;
	const merge_input *in = job->in;
	size_t k, n = in->sources[i]->nrecords, j = job->start[i];

	for (k = 0; k < n; k++) {
		size_t g = in->first[i] + k;

		if (job->bits[g / 64] & (1ull << (g % 64)))
			sort_item_init(&job->items[j++], in, REF_MAKE(i, k),
				       g);
	}
}

/*
 * Merge every record of `in` (numbered) into its winners, sorted.
 * @param items an empty big array; filled with *out_n sort items
 * @return 0, or -ENOMEM / -EIO (items left empty)
 */
static int merge_full(const merge_input *in, engine__big *items_map,
		      size_t *out_n)
{
	size_t total = in->first[in->nsources], cap = 16, nwin = 0, parts = 1;
	size_t i;
	engine__big table_map = { 0 }, tmp_map = { 0 };
	merge_job job = { .in = in };
	int err = 0, parallel = total >= MERGE_PARALLEL_FROM;

	*out_n = 0;
	while (cap < total + total / 3) /* load factor at most 3/4 */
		cap *= 2;
	if (parallel) {
		size_t threads = engine__parallel_threads(MERGE_MAX_PARTS);

		while (2 * parts <= threads)
			parts *= 2, job.part_bits++;
		/* A sub-table's slot bits must not reach the part bits. */
		while (parts > 1 && (cap / parts) >> (32 - job.part_bits))
			parts /= 2, job.part_bits--;
	}
	if (engine__big_reserve(&table_map, cap * sizeof(*job.table)) < 0 ||
	    !(job.bits = calloc(total / 64 + 1, sizeof(*job.bits)))) {
		err = -ENOMEM;
		goto out;
	}
	job.table = table_map.base;
	for (;;) {
		job.part_cap = cap / parts;
		job.part_full = job.part_cap / 4 * 3;
		memset(job.table, 0, cap * sizeof(*job.table));
		memset(job.nwin, 0, sizeof(job.nwin));
		if (parts > 1)
			engine__parallel_run(parts, table_fill, &job);
		else
			table_fill(&job, 0);
		err = parts_error(&job, parts);
		if (err != -EAGAIN || parts == 1)
			break;
		/* A part filled up: one table, and no marks from before. */
		parts = 1;
		job.part_bits = 0;
		memset(job.bits, 0, (total / 64 + 1) * sizeof(*job.bits));
	}
	for (i = 0; i < parts; i++)
		nwin += job.nwin[i];
	if (err)
		goto out;

	/*
	 * The winners are marked in a bitmap over all records and the table
	 * is dropped (peak memory is the index plus one of these arrays at a
	 * time); the records are then visited in file order, so the sort
	 * keys are read sequentially rather than at random through the
	 * table.  Pooled: the sorted items and slots grow into its pages.
	 */
	engine__big_free(&table_map);
	if (engine__big_reserve(items_map, (nwin + 1) * sizeof(sort_item)) ||
	    engine__big_reserve(&tmp_map, (nwin + 1) * sizeof(sort_item)) ||
	    !(job.start = malloc((in->nsources + 1) * sizeof(*job.start)))) {
		err = -ENOMEM;
		goto out;
	}
	job.items = items_map->base;
	job.start[0] = 0;
	for (i = 0; i < in->nsources; i++)
		job.start[i + 1] = job.start[i] +
				   bits_count(job.bits, in->first[i],
					      in->first[i + 1]);
	if (parallel)
		engine__parallel_run(in->nsources, items_fill, &job);
	else
		for (i = 0; i < in->nsources; i++)
			items_fill(&job, i);
	sort_items_parallel(job.items, tmp_map.base, nwin, in);
	*out_n = nwin;
out:
	free(job.bits);
	free(job.start);
	engine__big_free(&table_map);
	engine__big_free(&tmp_map);
	if (err)
		engine__big_free(items_map);
	return err;
}

static void slot_init(engine__slot *slot, const merge_input *in,
		      uint64_t ref)
{
	const engine__record *r = ref_record(in, ref);

	slot->src = REF_SRC(ref);
	slot->canon_len = r->canon_len;
	slot->rec = (uint32_t)REF_REC(ref);
	slot->key_hash = r->key_hash;
}

_Static_assert(sizeof(sort_item) == sizeof(engine__slot),
	       "slots are made in place of the sort items");

typedef struct {
	const merge_input *in;
	const sort_item *items;
	engine__slot *slots;
	size_t n, pieces;
} slots_job;

/* Piece k of the slots: items [n*k/pieces, n*(k+1)/pieces). */
static void slots_fill(void *ctx, size_t k)
{
	const slots_job *job = ctx;
	const merge_input *in = job->in;
	const sort_item *items = job->items;
	size_t i = job->n * k / job->pieces;
	size_t end = job->n * (k + 1) / job->pieces;

	for (; i < end; i++) {
		uint64_t ref = ref_of(in, items[i].g);

		/* Winners are in output order, their records anywhere. */
		if (i + MERGE_PREFETCH < end)
			__builtin_prefetch(ref_record(
				in, ref_of(in, items[i + MERGE_PREFETCH].g)));
		slot_init(&job->slots[i], in, ref);
	}
}

/*
 * Lay the sorted winners out as the slots of a view: into *out_slots, or,
 * when out_slots is items_map itself, in the items' place (slot i only
 * overwrites item i, after reading it), which saves an array the size of
 * both when no update will need the items.  Pieces on several threads
 * when there are many.
 */
static int slots_from_items(const merge_input *in, engine__big *items_map,
			    size_t n, engine__big *out_slots)
{
	slots_job job = { in, items_map->base, NULL, n, 1 };

	if (out_slots != items_map &&
	    engine__big_reserve(out_slots, (n + 1) * sizeof(*job.slots)) < 0)
		return -ENOMEM;
	job.slots = out_slots->base;
	if (n >= MERGE_PARALLEL_FROM) {
		job.pieces = engine__parallel_threads(MERGE_MAX_PARTS);
		engine__parallel_run(job.pieces, slots_fill, &job);
	} else {
		slots_fill(&job, 0);
	}
	return 0;
}

/*
 * The incremental merge.  When some sources changed, only keys found in
 * their records, before or after the change, can have a different winner:
 * those keys are merged again from every record that has them, and the
 * other winners keep their place in the previous sorted order.  The cost
 * is one sequential pass over the records and winners (hashes are kept in
 * the records) plus work in proportion to the changed sources.
 */
typedef struct {
	const char *key;          /* borrowed from a source arena */
	const engine__record *r;  /* a record with that key; NULL: free slot */
	uint32_t hash;            /* r->key_hash, without a trip to r */
	uint64_t best;   /* winner so far as ref + 1 in the new input; 0 none */
} affected_key;

/*
 * Most keys looked up are not affected: a bitmap of their hashes, small
 * enough to stay in the L2 cache, answers those without touching the
 * table.
 */
typedef struct {
	affected_key *slots;
	size_t mask;
	uint64_t *filter;   /* bit (hash >> 6) & filter_mask of every key */
	size_t filter_mask; /* bits - 1 */
} affected_set;

static int affected_maybe(const affected_set *set, uint32_t hash)
{
	size_t bit = (hash >> 6) & set->filter_mask;

	return (set->filter[bit / 64] >> (bit % 64)) & 1;
}

static affected_key *affected_find(affected_set *set, const char *key,
				   const engine__record *r, int insert)
{
	uint32_t hash = r->key_hash;
	size_t h = hash & set->mask, bit = (hash >> 6) & set->filter_mask;

	if (insert)
		set->filter[bit / 64] |= 1ull << (bit % 64);
	else if (!affected_maybe(set, hash))
		return NULL;
	for (;; h = (h + 1) & set->mask) {
		affected_key *a = &set->slots[h];

		if (!a->r) {
			if (!insert)
				return NULL;
			a->key = key;
			a->r = r;
			a->hash = hash;
			return a;
		}
		if (a->hash == hash &&
		    engine__key_same(a->r, a->key, r, key))
			return a;
	}
}

/* The table is larger than the caches: start loading a later slot. */
static inline void affected_prefetch(const affected_set *set,
				     const engine__source *s, size_t k)
{
	if (k < s->nrecords)
		__builtin_prefetch(
			&set->slots[s->records[k].key_hash & set->mask], 1);
}

/* Record k of source i of `in` competes for its key, if it is affected. */
static int affected_offer(affected_set *set, const merge_input *in, size_t i,
			  size_t k, int insert)
{
	const engine__record *r = &in->sources[i]->records[k];
	affected_key *a = affected_find(set, in->sources[i]->arena + r->key_off,
					r, insert);
	uint64_t ref = REF_MAKE(i, k);
	int err = 0;

	if (a && (!a->best || beats(in, ref, a->best - 1, &err)))
		a->best = ref + 1;
	return err;
}

/* Winners of the affected keys, as sort items of `in`, sorted. */
static int affected_winners(const affected_set *set, const merge_input *in,
			    engine__big *items_map, size_t *out_n)
{
	engine__big tmp_map = { 0 };
	sort_item *items;
	size_t n = 0, i;

	for (i = 0; i <= set->mask; i++)
		n += set->slots[i].best != 0;
	if (engine__big_reserve(items_map, (n + 1) * sizeof(*items)) < 0 ||
	    engine__big_reserve(&tmp_map, (n + 1) * sizeof(*items)) < 0) {
		engine__big_free(items_map);
		return -ENOMEM;
	}
	items = items_map->base;
	for (i = 0, n = 0; i <= set->mask; i++) {
		uint64_t ref = set->slots[i].best;

		if (ref--)
			sort_item_init(&items[n++], in, ref,
				       in->first[REF_SRC(ref)] + REF_REC(ref));
	}
	sort_items_parallel(items, tmp_map.base, n, in);
	engine__big_free(&tmp_map);
	*out_n = n;
	return 0;
}

/*
 * Merge `in` given the sorted winners of `old` (their sort items and the
 * slots of old's view, index for index), which has the same source
 * names.  shared[i] says how many leading records in->sources[i] has in
 * common with old's source i: all of them when it is the same source,
 * none when the file was rescanned, the records before its mark when the
 * file only grew (see engine__source_load).  Only keys of records outside
 * those can change winner.  Kept winners are copied in one sequential
 * pass: only the few whose key hash is in the affected filter have their
 * record read.
 * @return 0, or -ENOMEM / -EIO (items and slots left empty)
 */
static int merge_update(const merge_input *old, const sort_item *old_items,
			const engine__slot *old_slots, size_t old_n,
			const merge_input *in, const size_t *shared,
			engine__big *items_map, engine__big *slots_map,
			size_t *out_n)
{
	affected_set set = { NULL, 0, NULL, 0 };
	engine__big set_map = { 0 }, filter_map = { 0 };
	engine__big fresh_map = { 0 };
	const sort_item *fresh;
	sort_item *out;
	engine__slot *slots;
	size_t cap = 16, nkeys = 0, nfresh = 0, i, k, a, b = 0;
	int err = 0;

	*out_n = 0;
	for (i = 0; i < in->nsources; i++)
		nkeys += old->sources[i]->nrecords - shared[i] +
			 in->sources[i]->nrecords - shared[i];
	/* nkeys counts a key once per changed file that has it, so the
	 * load factor stays well under 1/2. */
	while (cap < nkeys + nkeys / 4)
		cap *= 2;
	set.mask = cap - 1;
	set.filter_mask = 32 * cap - 1; /* 32 bits a key or more */
	if (engine__big_reserve(&set_map, cap * sizeof(*set.slots)) < 0 ||
	    engine__big_reserve(&filter_map, 32 * cap / 8) < 0) {
		err = -ENOMEM;
		goto out;
	}
	set.slots = memset(set_map.base, 0, cap * sizeof(*set.slots));
	set.filter = memset(filter_map.base, 0, 32 * cap / 8);

	for (i = 0; i < in->nsources; i++) {
		const engine__source *s = old->sources[i];

		for (k = shared[i]; k < s->nrecords; k++) {
			affected_prefetch(&set, s, k + MERGE_PREFETCH);
			affected_find(&set, s->arena + s->records[k].key_off,
				      &s->records[k], 1);
		}
	}
	for (i = 0; i < in->nsources && !err; i++) {
		const engine__source *s = in->sources[i];

		for (k = shared[i]; k < s->nrecords && !err; k++) {
			affected_prefetch(&set, s, k + MERGE_PREFETCH);
			err = affected_offer(&set, in, i, k, 1);
		}
	}
	for (i = 0; i < in->nsources && !err; i++)
		for (k = 0; k < shared[i] && !err; k++)
			err = affected_offer(&set, in, i, k, 0);
	if (err || (err = affected_winners(&set, in, &fresh_map, &nfresh)) < 0)
		goto out;
	fresh = fresh_map.base;

	if (engine__big_reserve(items_map,
				(old_n + nfresh + 1) * sizeof(*out)) < 0 ||
	    engine__big_reserve(slots_map,
				(old_n + nfresh + 1) * sizeof(*slots)) < 0) {
		err = -ENOMEM;
		goto out;
	}
	out = items_map->base;
	slots = slots_map->base;
	for (a = 0, k = 0; a < old_n; a++) {
		const engine__slot *os = &old_slots[a];
		sort_item kept = old_items[a];

		if (kept.g - old->first[os->src] >= shared[os->src])
			continue; /* its record is gone or scanned again */
		if (affected_maybe(&set, os->key_hash)) {
			uint64_t ref = ref_of(old, kept.g);
			const engine__record *r = ref_record(old, ref);

			if (affected_find(&set, ref_key(old, ref), r, 0))
				continue;
		}
		kept.g = (uint32_t)(kept.g - old->first[os->src] +
				    in->first[os->src]);
		for (; b < nfresh &&
		       sort_item_cmp(&fresh[b], &kept, (void *)in) < 0;
		     b++, k++) {
			out[k] = fresh[b];
			slot_init(&slots[k], in, ref_of(in, fresh[b].g));
		}
		out[k] = kept;
		slots[k++] = *os;
	}
	for (; b < nfresh; b++, k++) {
		out[k] = fresh[b];
		slot_init(&slots[k], in, ref_of(in, fresh[b].g));
	}
	*out_n = k;
out:
	engine__big_free(&set_map);
	engine__big_free(&filter_map);
	engine__big_free(&fresh_map);
	if (err) {
		engine__big_free(items_map);
		engine__big_free(slots_map);
	}
	return err;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * Merge `in` (numbered) into sorted winners: from the previous merge of
 * `m` when only some of the same sources changed, else from scratch.
 */
static int merge_winners(const engine_merge *m, const merge_input *in,
			 engine__big *items, engine__big *slots, size_t *n)
{
	merge_input old = { m ? m->sources : NULL, m ? m->nsources : 0, NULL };
	const engine__slot *old_slots = NULL;
	size_t *shared = NULL;
	size_t i, redo = 0, nslots = 0;
	int rc;

	if (m && m->view)
		old_slots = engine__view_slots(m->view, &nslots);
	if (!old_slots || !m->winners.base || old.nsources != in->nsources)
		return merge_full(in, items, n);
	for (i = 0; i < in->nsources; i++)
		if (strcmp(old.sources[i]->name, in->sources[i]->name) != 0)
			return merge_full(in, items, n);
	if (!(shared = calloc(in->nsources + 1, sizeof(*shared))))
		return -ENOMEM;
	for (i = 0; i < in->nsources; i++) {
		const engine__source *o = old.sources[i], *s = in->sources[i];

		/* o is the scan s resumed, if it resumed: the same name. */
		shared[i] = o == s ? s->nrecords : s->nshared;
		redo += o->nrecords - shared[i] + s->nrecords - shared[i];
	}
	/* An update hashes the records outside the shared parts about as a
	 * full merge hashes every record: past that, merge again. */
	if (redo > in->first[in->nsources])
		rc = merge_full(in, items, n);
	else if ((rc = input_number(&old)) == 0 &&
		 (rc = merge_update(&old, m->winners.base, old_slots, nslots,
				    in, shared, items, slots, n)) == 0)
		atomic_fetch_add(&merge_updates, 1);
	free(old.first);
	free(shared);
	return rc;
}

/*
 * Build a view of `sources`; `t0` is when the (re)materialisation began.
 * The sorted winners go to *items, to be kept for the next update; when
 * there will be none (no m, or m not live) the slots are made in their
 * place and *items is left empty.
 */
static int build_view(engine_view **out, const engine_merge *m,
		      const desc_descriptor *desc, engine__source **sources,
		      size_t nsources, uint64_t generation,
		      const struct timespec *t0, engine__big *items)
{
	merge_input in = { sources, nsources, NULL };
	engine__big slots = { 0 };
	size_t n;
	int rc;

	*out = NULL;
	if ((rc = input_number(&in)) < 0 ||
	    (rc = merge_winners(m, &in, items, &slots, &n)) < 0)
		goto out;
	if (!slots.base && (!m || !m->live)) {
		/* In place: nothing to allocate, so nothing can fail. */
		(void)slots_from_items(&in, items, n, items);
		slots = *items;
		memset(items, 0, sizeof(*items));
	} else if (!slots.base &&
		   (rc = slots_from_items(&in, items, n, &slots)) < 0) {
		engine__big_free(items);
		goto out;
	}
	rc = engine__view_new(out, desc, sources, nsources, &slots, n,
			      generation, NULL);
	if (rc == 0)
		engine__view_set_build_seconds(*out, seconds_since(t0));
	else
		engine__big_free(items);
out:
	free(in.first);
	return rc;
}

int engine_merge_new(engine_merge **out, const desc_descriptor *desc,
		     int backing_fd)
{
	engine_merge *m = calloc(1, sizeof(*m));

	*out = NULL;
	if (!m)
		return -ENOMEM;
	m->desc = desc;
	m->backing_fd = backing_fd;
	*out = m;
	return 0;
}

static void sources_release(engine__source **sources, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		engine__source_unref(sources[i]);
	free(sources);
}

void engine_merge_free(engine_merge *m)
{
	if (!m)
		return;
	sources_release(m->sources, m->nsources);
	engine_view_unref(m->view);
	engine__big_free(&m->winners);
	free(m);
}

void engine_merge_live(engine_merge *m)
{
	m->live = 1;
}

void engine_merge_on_scan(engine_merge *m,
                          void (*fn)(void *arg, const char *name), void *arg)
{
	m->on_scan = fn;
	m->on_scan_arg = arg;
}

const desc_descriptor *engine_merge_descriptor(const engine_merge *m)
{
	return m->desc;
}

void engine_merge_invalidate(engine_merge *m, const char *name)
{
	size_t i;

	if (!name) {
		m->all_dirty = 1;
		return;
	}
	for (i = 0; i < m->nsources; i++)
		if (strcmp(m->sources[i]->name, name) == 0)
			m->sources[i]->dirty = 1;
}

/* Is the scanned source still what `name` holds on disk? */
static int source_current(const engine_merge *m, const engine__source *s)
{
	struct stat st;

	if (s->dirty || m->all_dirty || s->orig_fd < 0)
		return 0;
	if (fstatat(m->backing_fd, s->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return engine_same_file_state(&st, &s->orig_st);
}

/* Sources to scan in one refresh, shared out between threads. */
typedef struct {
	engine__source **slots;   /* slots[todo[j]] receives job j's source */
	const char *const *names; /* indexed like slots */
	const size_t *todo;
	engine__source *const *prev; /* prev[j]: job j's previous scan */
	int dirfd;
	const desc_descriptor *desc;
	int flags;
	int *rcs;                 /* rcs[j]: what job j returned */
	const engine_merge *m;    /* its on_scan hook, if any; may be NULL */
} load_jobs;

static void load_one(void *ctx, size_t j)
{
	load_jobs *jobs = ctx;
	size_t i = jobs->todo[j];

	if (jobs->m && jobs->m->on_scan)
		jobs->m->on_scan(jobs->m->on_scan_arg, jobs->names[i]);
	jobs->rcs[j] = engine__source_load(&jobs->slots[i], jobs->dirfd,
					   jobs->names[i], jobs->desc,
					   jobs->prev ? jobs->prev[j] : NULL,
					   jobs->flags);
}

/*
 * Scan names[todo[j]] into slots[todo[j]] for every j, files in parallel;
 * prev (may be NULL) holds the previous scan of each, or NULLs.
 * @return 0, or the first error (slots that loaded are filled either way)
 */
static int load_sources(engine__source **slots, const char *const *names,
			const size_t *todo, engine__source *const *prev,
			size_t ntodo, int dirfd, const desc_descriptor *desc,
			int flags, const engine_merge *m)
{
	int *rcs = calloc(ntodo ? ntodo : 1, sizeof(*rcs));
	load_jobs jobs = { slots, names, todo, prev, dirfd, desc, flags, rcs,
			   m };
	int rc = 0;
	size_t j;

	if (!rcs)
		return -ENOMEM;
	/* One load alone may spread its own work over the CPUs. */
	if (ntodo == 1)
		jobs.flags |= ENGINE__SOURCE_ALONE;
	engine__parallel_run(ntodo, load_one, &jobs);
	for (j = 0; j < ntodo && rc == 0; j++)
		rc = rcs[j];
	free(rcs);
	return rc;
}

int engine_merge_refresh(engine_merge *m, engine_view **out)
{
	engine__source **next = NULL, **prev = NULL;
	char **names = NULL;
	size_t n = 0, i, k = 0, ntodo = 0, *todo = NULL;
	struct timespec t0;
	int changed, rc;

	*out = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = desc_match_sources(&names, m->desc, m->backing_fd);
	if (rc < 0)
		return rc;
	n = (size_t)rc;
	next = calloc(n ? n : 1, sizeof(*next));
	todo = calloc(n ? n : 1, sizeof(*todo));
	prev = calloc(n ? n : 1, sizeof(*prev));
	if (!next || !todo || !prev) {
		rc = -ENOMEM;
		goto out;
	}
	changed = m->view == NULL || n != m->nsources;
	for (i = 0; i < n; i++) {
		/* Both lists are sorted by name: walk them together. */
		while (k < m->nsources &&
		       strcmp(m->sources[k]->name, names[i]) < 0)
			k++;
		if (k < m->nsources &&
		    strcmp(m->sources[k]->name, names[i]) == 0) {
			if (source_current(m, m->sources[k])) {
				next[i] = engine__source_ref(m->sources[k]);
				continue;
			}
			prev[ntodo] = m->sources[k];
		}
		changed = 1;
		todo[ntodo++] = i;
	}
	rc = load_sources(next, (const char *const *)names, todo, prev, ntodo,
			  m->backing_fd, m->desc,
			  m->live ? ENGINE__SOURCE_MARKS : 0, m);
	if (rc < 0)
		goto out;
	m->all_dirty = 0;
	if (changed) {
		engine__big winners = { 0 };
		engine_view *v;

		rc = build_view(&v, m, m->desc, next, n, m->generation + 1,
				&t0, &winners);
		if (rc < 0)
			goto out;
		m->generation++;
		engine_view_unref(m->view);
		m->view = v;
		engine__big_free(&m->winners);
		m->winners = winners;
		sources_release(m->sources, m->nsources);
		m->sources = next;
		m->nsources = n;
		next = NULL;
	}
	*out = engine_view_ref(m->view);
	rc = 0;
out:
	if (next)
		sources_release(next, n);
	free(todo);
	free(prev);
	desc_names_free(names);
	return rc;
}

int engine_merge_paths(engine_view **out, const desc_descriptor *desc,
		       const char *const *paths, size_t npaths)
{
	engine__source **sources = calloc(npaths ? npaths : 1,
					  sizeof(*sources));
	size_t *todo = calloc(npaths ? npaths : 1, sizeof(*todo));
	struct timespec t0;
	size_t i;
	int rc = -ENOMEM;

	*out = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!sources || !todo)
		goto out;
	for (i = 0; i < npaths; i++)
		todo[i] = i;
	rc = load_sources(sources, paths, todo, NULL, npaths, AT_FDCWD, desc,
			  0, NULL);
	if (rc == 0) {
		engine__big winners = { 0 };

		rc = build_view(out, NULL, desc, sources, npaths, 1, &t0,
				&winners);
		engine__big_free(&winners);
	}
out:
	if (sources)
		sources_release(sources, npaths);
	free(todo);
	return rc;
}
