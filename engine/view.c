/* SPDX-License-Identifier: MIT */
/*
 * view.c - one immutable generation of a merged file, and the readers that
 * stream its bytes.
 *
 * A view is a layout, not a buffer: the output is
 *   prefix, entry 0, separator, entry 1, ..., entry n-1, suffix
 * (json: "[\n", ",\n", "\n]\n"; jsonl: "", "\n", "\n"), where each entry is
 * a byte range of a host file, canonicalised on the fly when it holds
 * whitespace.  Its size is known exactly before any byte is read.
 *
 * A reader answers read(offset, size) from per-source windows (one pread
 * fills a window that serves the following entries of that source, which
 * come in file order when hosts append in time order), and remembers where
 * it stopped inside a pretty-printed entry so that sequential reads never
 * canonicalise a byte twice.  After reading it checks that every source it
 * touched still is the file it scanned (size, mtime, ctime): a source
 * rewritten in place under the view makes the read fail with EIO rather
 * than return a mix of two generations.
 *
 * That state (windows, place inside an entry) lives in a cursor; the
 * batch queues of one read are borrowed for that read.  A reader holds
 * up to one cursor per CPU: the kernel keeps a few readahead READs of one
 * open file in flight, and each takes a free cursor (preferably the one
 * whose last read ended where it starts), so they run on several FUSE
 * threads at once instead of queueing behind one lock (a cold `cat` of
 * the 100 MB corpus through the mount: 170 ms of streaming with one
 * cursor, 110 ms with two on 2 vCPUs).  All cursors read the same view:
 * one reader, one generation.
 */
#include "engine_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Window memory of one cursor (a reader has up to one per CPU), and the
 * bounds of one window. */
#define READER_WINDOWS_BYTES (1024 * 1024)
#define READER_WINDOW_MIN (16 * 1024)
#define READER_WINDOW_MAX (128 * 1024)
/* Raw bytes canonicalised at a time inside a pretty-printed entry. */
#define READER_CANON_CHUNK (16 * 1024)
/* Most cursors of one reader (also capped by the online CPUs). */
#define READER_MAX_CURSORS 4
/* Pretty-printed entries up to this size are read in the batch. */
#define READER_DEFER_MAX (64 * 1024)
/* Raw bytes of deferred entries read before they are canonicalised: few
 * enough to still be in the CPU's cache when the canonicaliser reads
 * them (queueing a whole 1 MiB read made it wait on memory). */
#define READER_RAW_BATCH (96 * 1024)
/* A read this close after a window's end counts as reading on. */
#define READER_SEQUENTIAL_GAP (64 * 1024)
/* Slots ahead whose records are prefetched while serving one. */
#define READER_PREFETCH 8
/* A slot's start in the output is kept for every this many slots. */
#define VIEW_MARK_EVERY 64

static const engine__layout format_json = { "[\n", ",\n", "\n]\n", "[]\n",
					   2, 2, 3, 3 };
static const engine__layout format_jsonl = { "", "\n", "\n", "", 0, 1, 1, 0 };

const engine__layout *engine__layout_of(desc_format format)
{
	return format == DESC_FORMAT_JSONL ? &format_jsonl : &format_json;
}

struct engine_view {
	long refs;                   /* atomic */
	uint64_t generation;
	uint64_t size;               /* bytes of the merged file */
	struct timespec mtime;       /* when built */
	double build_seconds;
	const desc_descriptor *desc; /* borrowed from the merge */
	const engine__layout *fmt;
	engine__source **sources;    /* owned refs */
	size_t nsources;
	engine__slot *slots;         /* n slots in output order */
	engine__big slots_map;       /* owned, holds slots */
	size_t n;
	uint64_t *marks;             /* owned: marks[j] is where slot
					j * VIEW_MARK_EVERY starts */
	engine_problems problems;    /* of all sources, in source order */
};

/* The record slot s serves. */
static inline const engine__record *slot_record(const engine_view *v,
						const engine__slot *s)
{
	return &v->sources[s->src]->records[s->rec];
}

/* Output bytes of slot i's entry and the separator after it. */
static inline uint64_t slot_span(const engine_view *v, size_t i)
{
	return v->slots[i].canon_len + v->fmt->sep_len;
}

int engine__view_new(engine_view **out, const desc_descriptor *desc,
		     engine__source **sources, size_t nsources,
		     engine__big *slots, size_t n, uint64_t generation,
		     const engine_problems *extra_problems)
{
	engine_view *v = calloc(1, sizeof(*v));
	uint64_t pos;
	size_t i;

	*out = NULL;
	if (!v)
		goto fail;
	v->refs = 1;
	v->generation = generation;
	v->desc = desc;
	v->fmt = engine__layout_of(desc->format);
	v->slots_map = *slots;
	v->slots = slots->base;
	v->n = n;
	memset(slots, 0, sizeof(*slots));
	engine_problems_init(&v->problems);
	clock_gettime(CLOCK_REALTIME, &v->mtime);
	v->sources = calloc(nsources ? nsources : 1, sizeof(*v->sources));
	if (!v->sources)
		goto fail;
	for (i = 0; i < nsources; i++) {
		v->sources[i] = engine__source_ref(sources[i]);
		v->nsources++;
		if (engine_problems_extend(&v->problems,
					   &sources[i]->problems) < 0)
			goto fail;
	}
	if (extra_problems &&
	    engine_problems_extend(&v->problems, extra_problems) < 0)
		goto fail;

	if (n == 0) {
		v->size = v->fmt->empty_len;
	} else {
		v->marks = malloc((n / VIEW_MARK_EVERY + 1) *
				  sizeof(*v->marks));
		if (!v->marks)
			goto fail;
		pos = v->fmt->prefix_len;
		for (i = 0; i < n; i++) {
			if (i % VIEW_MARK_EVERY == 0)
				v->marks[i / VIEW_MARK_EVERY] = pos;
			pos += slot_span(v, i);
		}
		v->size = pos - v->fmt->sep_len + v->fmt->suffix_len;
	}
	*out = v;
	return 0;
fail:
	engine__big_free(slots);
	engine_view_unref(v);
	return -ENOMEM;
}

void engine__view_set_build_seconds(engine_view *v, double seconds)
{
	v->build_seconds = seconds;
}

const engine__slot *engine__view_slots(const engine_view *v, size_t *n)
{
	*n = v->n;
	return v->slots;
}

engine_view *engine_view_ref(engine_view *v)
{
	if (v)
		atomic_fetch_add((_Atomic long *)&v->refs, 1);
	return v;
}

void engine_view_unref(engine_view *v)
{
	size_t i;

	if (!v || atomic_fetch_sub((_Atomic long *)&v->refs, 1) != 1)
		return;
	for (i = 0; i < v->nsources; i++)
		engine__source_unref(v->sources[i]);
	free(v->sources);
	engine__big_free(&v->slots_map);
	free(v->marks);
	engine_problems_dispose(&v->problems);
	free(v);
}

uint64_t engine_view_size(const engine_view *v)
{
	return v->size;
}

uint64_t engine_view_generation(const engine_view *v)
{
	return v->generation;
}

struct timespec engine_view_mtime(const engine_view *v)
{
	return v->mtime;
}

size_t engine_view_entries(const engine_view *v)
{
	return v->n;
}

double engine_view_build_seconds(const engine_view *v)
{
	return v->build_seconds;
}

const engine_problems *engine_view_problems(const engine_view *v)
{
	return &v->problems;
}

size_t engine_view_nsources(const engine_view *v)
{
	return v->nsources;
}

engine_source_info engine_view_source(const engine_view *v, size_t i)
{
	engine_source_info info = { v->sources[i]->name,
				    v->sources[i]->nrecords,
				    engine_problems_total(&v->sources[i]->problems),
				    v->sources[i]->unreadable,
				    v->sources[i]->cut_short };
	return info;
}

const desc_descriptor *engine_view_descriptor(const engine_view *v)
{
	return v->desc;
}

int engine_view_uses_inode(const engine_view *v, dev_t dev, ino_t ino)
{
	size_t i;

	for (i = 0; i < v->nsources; i++)
		if (v->sources[i]->orig_fd >= 0 &&
		    v->sources[i]->orig_st.st_dev == dev &&
		    v->sources[i]->orig_st.st_ino == ino)
			return 1;
	return 0;
}

int engine_view_intact(const engine_view *v)
{
	struct stat expect;
	size_t i;

	for (i = 0; i < v->nsources; i++) {
		int fd = engine__source_fd(v->sources[i], &expect);

		if (fd >= 0 && engine__source_check(fd, &expect) < 0)
			return 0;
	}
	return 1;
}

int engine_view_preserve_inode(engine_view *v, dev_t dev, ino_t ino)
{
	size_t i;
	int rc;

	for (i = 0; i < v->nsources; i++) {
		engine__source *s = v->sources[i];

		if (s->orig_fd < 0 || s->orig_st.st_dev != dev ||
		    s->orig_st.st_ino != ino)
			continue;
		if ((rc = engine__source_preserve(s)) < 0)
			return rc;
	}
	return 0;
}

/* ---- readers ---- */

typedef struct {
	char *buf;      /* owned, allocated on first use */
	uint64_t off;   /* file offset of buf[0] */
	size_t len;     /* valid bytes in buf */
	int fd;         /* fd and identity in use during this read() */
	struct stat expect;
	int touched;    /* read from during this read() */
} window;

/*
 * What one read() queues and does together: reads for engine__read_batch,
 * then the pretty-printed entries to canonicalise from their raw bytes.
 * Every read empties it, so a read borrows one from a small shared pool
 * rather than each cursor (or thread) owning one: there are as many as
 * reads ever ran at once, and an open file read once and left open holds
 * none (with one per cursor, each open file that had been read kept about
 * 0.7 MB).
 */
typedef struct {
	engine__big ops;          /* engine__read_op[nops] */
	size_t nops;
	engine__big deferred;     /* deferred_canon[ndeferred] */
	size_t ndeferred;
	engine__big raw;          /* raw bytes of deferred entries */
	size_t raw_len;
	engine__big canon_tmp;    /* READER_DEFER_MAX bytes, on first use
				     (a big array: faulted in at once, or
				     pooled pages already touched) */
} read_scratch;

/*
 * The state of one stream of reads through a view: a reader holds a few,
 * so that concurrent reads of one open file (the kernel's readahead keeps
 * several READs in flight) run on several threads at once.  A cursor is
 * used by one read at a time.
 */
typedef struct {
	const engine_view *view;  /* borrowed from the reader */
	window *win;              /* owned, one per source */
	size_t win_size;
	/* Where the last read stopped inside a pretty-printed entry. */
	size_t cur_slot;          /* slot index, or SIZE_MAX for none */
	uint64_t cur_raw;         /* raw bytes of the entry consumed */
	engine__canon cur_canon;  /* canonicaliser state after cur_raw */
	uint64_t pend_start;      /* canonical offset of pend[0] */
	size_t pend_len;          /* canonical bytes in pend */
	char *pend;               /* owned, READER_CANON_CHUNK bytes */
	read_scratch *q;          /* borrowed for the read in progress */
} cursor;

struct engine_reader {
	engine_view *view;                 /* owned ref */
	pthread_mutex_t lock;              /* guards the cursor table */
	pthread_cond_t freed;              /* a cursor was given back */
	cursor *cur[READER_MAX_CURSORS];   /* owned; made on demand; lock */
	uint64_t next[READER_MAX_CURSORS]; /* where cur[i]'s last read
					      ended, UINT64_MAX after a
					      failure; lock */
	int busy[READER_MAX_CURSORS];      /* cur[i] is reading; lock */
	size_t ncur;                       /* cursors made; lock */
	size_t max;                        /* cursors allowed: the CPUs */
};

/* A pretty-printed entry whose raw bytes are queued, canonicalised later. */
typedef struct {
	size_t raw_off;  /* its raw bytes at raw.base + raw_off */
	size_t raw_len;
	char *out;       /* where canonical bytes [from, from+len) go */
	uint64_t from;
	size_t len;
	int fd;
	uint64_t off;    /* of the entry in its source */
} deferred_canon;

static void cursor_free(cursor *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; c->win && i < c->view->nsources; i++)
		free(c->win[i].buf);
	free(c->win);
	free(c->pend);
	free(c);
}

/* A cursor at the start of v; buffers come on first use.  NULL: ENOMEM */
static cursor *cursor_new(const engine_view *v)
{
	cursor *c = calloc(1, sizeof(*c));
	size_t i;

	if (!c)
		return NULL;
	c->view = v;
	c->win = calloc(v->nsources ? v->nsources : 1, sizeof(*c->win));
	if (!c->win) {
		free(c);
		return NULL;
	}
	for (i = 0; i < v->nsources; i++)
		c->win[i].fd = -1;
	c->win_size = v->nsources ? READER_WINDOWS_BYTES / v->nsources :
				    READER_WINDOW_MAX;
	if (c->win_size < READER_WINDOW_MIN)
		c->win_size = READER_WINDOW_MIN;
	if (c->win_size > READER_WINDOW_MAX)
		c->win_size = READER_WINDOW_MAX;
	c->cur_slot = SIZE_MAX;
	return c;
}

int engine_reader_new(engine_reader **out, engine_view *v)
{
	engine_reader *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return -ENOMEM;
	/* The first cursor now, so that running out of memory shows at open. */
	if (!(r->cur[0] = cursor_new(v))) {
		free(r);
		return -ENOMEM;
	}
	r->ncur = 1;
	r->max = engine__parallel_threads(READER_MAX_CURSORS);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->freed, NULL);
	r->view = engine_view_ref(v);
	*out = r;
	return 0;
}

void engine_reader_free(engine_reader *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->ncur; i++)
		cursor_free(r->cur[i]);
	pthread_cond_destroy(&r->freed);
	pthread_mutex_destroy(&r->lock);
	engine_view_unref(r->view);
	free(r);
}

engine_view *engine_reader_view(const engine_reader *r)
{
	return r->view;
}

static void window_touch(cursor *c, uint32_t src)
{
	window *w = &c->win[src];

	if (!w->touched) {
		w->fd = engine__source_fd(c->view->sources[src], &w->expect);
		w->touched = 1;
	}
}

/* Does the window hold [off, off+len)? */
static int window_holds(const window *w, uint64_t off, size_t len)
{
	return w->len && off >= w->off && off + len <= w->off + w->len;
}

/* Does a read at `off` carry on from the end of the window? */
static int window_follows(const window *w, uint64_t off)
{
	return w->len && off >= w->off + w->len &&
	       off - (w->off + w->len) < READER_SEQUENTIAL_GAP;
}

/* Fill the window with `fill` bytes at `off`; -EIO if fewer than `need`. */
static int window_fill(cursor *c, window *w, uint64_t off,
		       size_t fill, size_t need)
{
	ssize_t n;

	if (!w->buf && !(w->buf = malloc(c->win_size)))
		return -ENOMEM;
	n = engine__pread_full(w->fd, w->buf, fill, off);
	if (n < 0)
		return (int)n;
	w->off = off;
	w->len = (size_t)n;
	return (size_t)n < need ? -EIO : 0; /* shrank: rewritten in place */
}

/*
 * Point *p at `len` (<= window size) bytes of source `src` at `off`.  The
 * whole window is filled only when reading on from its end (entries of a
 * source that come in file order); a jump elsewhere reads just the pages
 * asked for.
 */
static int window_get(cursor *c, uint32_t src, uint64_t off,
		      size_t len, const char **p)
{
	window *w = &c->win[src];
	size_t fill = c->win_size;
	int rc;

	window_touch(c, src);
	if (!window_holds(w, off, len)) {
		if (!window_follows(w, off)) {
			fill = (size_t)(((off + len + 4095) & ~(uint64_t)4095) -
					off);
			if (fill > c->win_size)
				fill = c->win_size;
		}
		if ((rc = window_fill(c, w, off, fill, len)) < 0)
			return rc;
	}
	*p = w->buf + (off - w->off);
	return 0;
}

/* Queue a read of `len` bytes at `off` of fd into dst. */
static int queue_read(cursor *c, int fd, char *dst, size_t len,
		      uint64_t off)
{
	read_scratch *q = c->q;
	engine__read_op *op;

	if (engine__big_reserve(&q->ops, (q->nops + 1) * sizeof(*op)) < 0)
		return -ENOMEM;
	op = (engine__read_op *)q->ops.base + q->nops++;
	op->fd = fd;
	op->dst = dst;
	op->len = len;
	op->off = off;
	return 0;
}

/*
 * Copy canonical bytes [from, from+len) of a compact entry (raw == canon):
 * from the window when it holds them or when the source is read in file
 * order, else by a read straight into the caller's buffer, queued.
 */
static int copy_compact(cursor *c, const engine__slot *s,
			const engine__record *r, uint64_t from, char *out,
			size_t len)
{
	window *w = &c->win[s->src];
	uint64_t off = r->offset + from;
	const char *p;
	int rc;

	window_touch(c, s->src);
	if (window_holds(w, off, len) ||
	    (window_follows(w, off) && len <= c->win_size)) {
		if ((rc = window_get(c, s->src, off, len, &p)) < 0)
			return rc;
		memcpy(out, p, len);
		return 0;
	}
	return queue_read(c, w->fd, out, len, off);
}

static int flush_queued(cursor *c);

/* Queue the canonical bytes [from, from+len) of a small pretty entry. */
static int defer_pretty(cursor *c, const engine__slot *s,
			const engine__record *r, char *out, uint64_t from,
			size_t len)
{
	read_scratch *q = c->q;
	deferred_canon *d;
	int rc;

	window_touch(c, s->src);
	if (q->raw_len + r->raw_len > READER_RAW_BATCH &&
	    (rc = flush_queued(c)) < 0)
		return rc;
	if (engine__big_reserve(&q->deferred,
				(q->ndeferred + 1) * sizeof(*d)) < 0 ||
	    engine__big_reserve(&q->raw, q->raw_len + r->raw_len) < 0)
		return -ENOMEM;
	d = (deferred_canon *)q->deferred.base + q->ndeferred++;
	d->raw_off = q->raw_len;
	d->raw_len = r->raw_len;
	d->out = out;
	d->from = from;
	d->len = len;
	d->fd = c->win[s->src].fd;
	d->off = r->offset;
	q->raw_len += r->raw_len;
	return 0;
}

/* Do every queued read, then canonicalise the deferred entries; the
 * queues are empty after. */
static int flush_queued(cursor *c)
{
	read_scratch *q = c->q;
	deferred_canon *d = q->deferred.base;
	char *raw = q->raw.base;
	size_t i;
	int rc;

	for (i = 0; i < q->ndeferred; i++)
		if ((rc = queue_read(c, d[i].fd, raw + d[i].raw_off,
				     d[i].raw_len, d[i].off)) < 0)
			return rc;
	if ((rc = engine__read_batch(q->ops.base, q->nops)) < 0)
		return rc;
	if (q->ndeferred &&
	    engine__big_reserve(&q->canon_tmp, READER_DEFER_MAX) < 0)
		return -ENOMEM;
	for (i = 0; i < q->ndeferred; i++) {
		engine__canon st = { 0 };
		size_t n = engine__canon_chunk(&st, raw + d[i].raw_off,
					       d[i].raw_len,
					       q->canon_tmp.base);

		if (d[i].from + d[i].len > n)
			return -EIO; /* bytes changed under the layout */
		memcpy(d[i].out, (char *)q->canon_tmp.base + d[i].from,
		       d[i].len);
	}
	q->nops = q->ndeferred = q->raw_len = 0;
	return 0;
}

/*
 * Copy canonical bytes [from, from+len) of a pretty-printed entry, resuming
 * from where the previous read of this slot stopped when possible.
 */
static int copy_pretty(cursor *c, size_t slot, const engine__record *r,
		       char *out, uint64_t from, size_t len)
{
	const engine__slot *s = &c->view->slots[slot];
	int rc;

	if (!c->pend && !(c->pend = malloc(READER_CANON_CHUNK)))
		return -ENOMEM;
	if (c->cur_slot != slot || from < c->pend_start) {
		c->cur_slot = slot;
		c->cur_raw = 0;
		memset(&c->cur_canon, 0, sizeof(c->cur_canon));
		c->pend_start = 0;
		c->pend_len = 0;
	}
	while (len) {
		uint64_t pend_end = c->pend_start + c->pend_len;

		if (from < pend_end) {
			size_t k = (size_t)(pend_end - from);

			if (k > len)
				k = len;
			memcpy(out, c->pend + (from - c->pend_start), k);
			out += k;
			from += k;
			len -= k;
			continue;
		}
		/* Canonicalise the next raw piece into pend. */
		size_t raw = r->raw_len - c->cur_raw;
		const char *p;

		if (raw == 0)
			return -EIO; /* layout and bytes disagree */
		if (raw > READER_CANON_CHUNK)
			raw = READER_CANON_CHUNK;
		if (raw > c->win_size)
			raw = c->win_size;
		if ((rc = window_get(c, s->src, r->offset + c->cur_raw, raw,
				     &p)) < 0)
			return rc;
		c->pend_start = pend_end;
		c->pend_len = engine__canon_chunk(&c->cur_canon, p, raw,
						  c->pend);
		c->cur_raw += raw;
	}
	return 0;
}

/*
 * Index of the slot whose entry-plus-trailer span holds `pos` (the first
 * or last slot for a pos in the prefix or suffix), and in *start where
 * that entry starts: a binary search of the marks, then a walk of at most
 * VIEW_MARK_EVERY - 1 slots.
 */
static size_t find_slot(const engine_view *v, uint64_t pos, uint64_t *start)
{
	size_t lo = 0, hi = (v->n + VIEW_MARK_EVERY - 1) / VIEW_MARK_EVERY, i;
	uint64_t at;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (v->marks[mid] <= pos)
			lo = mid;
		else
			hi = mid;
	}
	i = lo * VIEW_MARK_EVERY;
	at = v->marks[lo];
	while (i + 1 < v->n && at + slot_span(v, i) <= pos)
		at += slot_span(v, i++);
	*start = at;
	return i;
}

/* Fill buf with [off, off+len) of the view; len already clipped to EOF. */
static int read_range(cursor *c, char *buf, uint64_t off, size_t len)
{
	const engine_view *v = c->view;
	const engine__layout *f = v->fmt;
	uint64_t start;
	size_t i;
	int rc;

	if (v->n == 0) {
		memcpy(buf, f->empty + off, len);
		return 0;
	}
	if (off < f->prefix_len) {
		size_t k = f->prefix_len - (size_t)off;

		if (k > len)
			k = len;
		memcpy(buf, f->prefix + off, k);
		buf += k;
		off += k;
		len -= k;
	}
	i = find_slot(v, off, &start);
	while (len) {
		const engine__slot *s = &v->slots[i];
		const engine__record *r = slot_record(v, s);
		uint64_t entry_end = start + s->canon_len;
		size_t k;

		if (off < entry_end) {
			k = (size_t)(entry_end - off);
			if (k > len)
				k = len;
			if (r->raw_len == r->canon_len)
				rc = copy_compact(c, s, r, off - start, buf, k);
			else if (r->raw_len <= READER_DEFER_MAX &&
				 !(c->cur_slot == i &&
				   off - start >= c->pend_start))
				rc = defer_pretty(c, s, r, buf, off - start, k);
			else
				rc = copy_pretty(c, i, r, buf, off - start,
						 k);
			if (rc < 0)
				return rc;
		} else {
			int last = i + 1 == v->n;
			const char *t = last ? f->suffix : f->sep;
			size_t tlen = last ? f->suffix_len : f->sep_len;

			k = (size_t)(entry_end + tlen - off);
			if (k > len)
				k = len;
			memcpy(buf, t + (off - entry_end), k);
			if (off + k == entry_end + tlen) {
				start = entry_end + tlen;
				i++;
				/* Entries come in output order, their records
				 * anywhere. */
				if (i + READER_PREFETCH < v->n)
					__builtin_prefetch(slot_record(
						v, &v->slots[i + READER_PREFETCH]));
			}
		}
		buf += k;
		off += k;
		len -= k;
	}
	return flush_queued(c);
}

/*
 * One attempt at a read: the bytes, then the check that every source read
 * from is still the file it was.  When it fails, sets *moved if a source
 * was switched to its private copy since the attempt took its fd.
 */
static int cursor_attempt(cursor *c, char *buf, uint64_t offset,
			  size_t len, int *moved)
{
	const engine_view *v = c->view;
	struct stat now_expect;
	size_t i;
	int rc;

	/* A failed read may have left reads queued. */
	c->q->nops = c->q->ndeferred = c->q->raw_len = 0;
	rc = read_range(c, buf, offset, len);
	/* Only now, after the bytes were read, is the check meaningful. */
	for (i = 0; i < v->nsources; i++) {
		window *w = &c->win[i];

		if (!w->touched)
			continue;
		w->touched = 0;
		if (rc == 0 && engine__source_check(w->fd, &w->expect) < 0)
			rc = -EIO;
		if (rc < 0) {
			w->len = 0; /* never reuse bytes of a failed read */
			if (engine__source_fd(v->sources[i], &now_expect) !=
			    w->fd)
				*moved = 1;
		}
	}
	if (rc < 0)
		c->cur_slot = SIZE_MAX;
	return rc;
}

/*
 * Take a free cursor for a read at `offset`: the one whose last read ended
 * there when free (sequential readers keep their windows and their place
 * inside an entry), else the free one that stopped closest before it, else
 * any free one; a new one only when all are busy and fewer than the CPUs
 * exist; else wait for one.
 * @return the cursor's index
 */
static int reader_take(engine_reader *r, uint64_t offset)
{
	size_t i, best;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		best = SIZE_MAX;
		for (i = 0; i < r->ncur; i++) {
			if (r->busy[i])
				continue;
			if (best == SIZE_MAX ||
			    (r->next[i] <= offset &&
			     (r->next[best] > offset ||
			      r->next[i] > r->next[best])))
				best = i;
		}
		if (best != SIZE_MAX)
			break;
		if (r->ncur < r->max &&
		    (r->cur[r->ncur] = cursor_new(r->view))) {
			best = r->ncur++;
			break;
		}
		pthread_cond_wait(&r->freed, &r->lock);
	}
	r->busy[best] = 1;
	pthread_mutex_unlock(&r->lock);
	return (int)best;
}

/* Give cursor i back; its last read ended at `end`. */
static void reader_give(engine_reader *r, int i, uint64_t end)
{
	pthread_mutex_lock(&r->lock);
	r->busy[i] = 0;
	r->next[i] = end;
	pthread_cond_signal(&r->freed);
	pthread_mutex_unlock(&r->lock);
}

/* Scratch kept for later reads: about what 2 CPUs ever run at once. */
#define READER_SCRATCH_POOL 4

static struct {
	pthread_mutex_t lock;
	read_scratch *free[READER_SCRATCH_POOL];
	size_t n;
} scratch_pool = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void scratch_free(read_scratch *q)
{
	engine__big_free(&q->ops);
	engine__big_free(&q->deferred);
	engine__big_free(&q->raw);
	engine__big_free(&q->canon_tmp);
	free(q);
}

/* A scratch for one read: a pooled one, else a new one.  NULL: ENOMEM */
static read_scratch *scratch_take(void)
{
	read_scratch *q = NULL;

	pthread_mutex_lock(&scratch_pool.lock);
	if (scratch_pool.n)
		q = scratch_pool.free[--scratch_pool.n];
	pthread_mutex_unlock(&scratch_pool.lock);
	return q ? q : calloc(1, sizeof(*q));
}

static void scratch_give(read_scratch *q)
{
	pthread_mutex_lock(&scratch_pool.lock);
	if (scratch_pool.n < READER_SCRATCH_POOL) {
		scratch_pool.free[scratch_pool.n++] = q;
		q = NULL;
	}
	pthread_mutex_unlock(&scratch_pool.lock);
	if (q)
		scratch_free(q);
}

ssize_t engine_reader_read(engine_reader *r, char *buf, size_t size,
			   uint64_t offset)
{
	const engine_view *v = r->view;
	read_scratch *q;
	size_t len;
	int rc, i, moved = 0;

	if (offset >= v->size || size == 0)
		return 0;
	len = size;
	if (len > v->size - offset)
		len = (size_t)(v->size - offset);
	if (!(q = scratch_take()))
		return -ENOMEM;

	i = reader_take(r, offset);
	r->cur[i]->q = q;
	rc = cursor_attempt(r->cur[i], buf, offset, len, &moved);
	/*
	 * A source preserved while this read was in flight: the bytes read
	 * from the original may already be the writer's, but the private
	 * copy holds this generation's.  Read once more, from the copy.
	 */
	if (rc == -EIO && moved)
		rc = cursor_attempt(r->cur[i], buf, offset, len, &moved);
	r->cur[i]->q = NULL;
	reader_give(r, i, rc < 0 ? UINT64_MAX : offset + len);
	scratch_give(q);
	return rc < 0 ? rc : (ssize_t)len;
}
