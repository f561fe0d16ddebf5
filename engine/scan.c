/* SPDX-License-Identifier: MIT */
/*
 * scan.c - the streaming scanner: finds the top-level objects (entries) of
 * a host file, validates every byte of it, and extracts the values at the
 * descriptor's dotted paths, reading the file in bounded chunks.
 *
 * Formats: the first non-blank byte chooses.  `[` is a JSON array whose
 * elements are the entries; `{` is JSON Lines, one object per line, blank
 * lines allowed, an object may not continue on the next line; only blanks
 * (space, tab, CR, LF) is an empty file.  Anything else, a UTF-8 byte
 * order mark included, is one error and no entries: RFC 8259 forbids
 * emitting a BOM, Python's json refuses it, and skipping it silently
 * would shift every reported column by three.
 *
 * Design (what makes it fast and bounded):
 * - A pull parser over one buffer of `chunk` bytes plus SCAN_PAD zero
 *   bytes.  The parser only ever asks for the byte after the last one it
 *   consumed, so a refill happens only when the buffer is used up and
 *   simply reads the next chunk over it (no memmove, no look-back).  The
 *   bytes a caller needs across a refill (decoded keys and values, the
 *   counts for canon_len) are copied or counted as they pass.
 * - The byte at `end` is always 0 (sentinel).  NUL is invalid everywhere
 *   in JSON, so every scanning loop stops at it without a bounds check,
 *   and only then asks "real NUL or end of buffer?".  SIMD loads may read
 *   up to 64 bytes past `end` into the zeroed padding, never further.
 * - Strings, most of the bytes, are skipped 64 bytes at a time with
 *   AVX-512 where the CPU has it (engine__cpu_wide), else 32 or 16 with
 *   SSE2, looking for '"', '\\', bytes < 0x20 and bytes >= 0x80.  Blocks
 *   holding non-ASCII text are validated as UTF-8 in the same registers
 *   (lead bytes say where continuation bytes must be; the second byte of
 *   E0/ED/F0/F4 sequences is range-checked), so accented and CJK text
 *   stays on the fast path; only blocks that cannot be proven valid (bad
 *   bytes, a sequence cut by the chunk end) go byte by byte, and that
 *   path alone produces the messages.  Simple escapes are stepped over
 *   inline.  Newlines never occur in valid strings, so lines are counted
 *   only while skipping whitespace (indentation: 16 spaces at a time).
 *   Measured on this 2-vCPU VM with SSE2: about 1.0-1.1 GB/s on pretty,
 *   compact and JSON Lines files of 1 KB entries full of unicode and
 *   escapes, about 1.4 GB/s on ASCII text, of which ~10% is the pread
 *   copy itself; the 64-byte loop takes a fifth off a whole merge of the
 *   bench corpus (user time 131 -> 113 ms).
 * - Nesting is an explicit bit stack (1 = object), grown on demand.  Past
 *   ENGINE__MAX_DEPTH the element is reported and skipped, but its
 *   structure is still followed so scanning can go on after it; past
 *   SCAN_STACK_MAX levels (2 MiB of stack, deeper than any entry the size
 *   limit allows) the scan gives up.  Memory is O(chunk + depth).
 * - Path extraction: for each object level of the current entry a bit
 *   mask says which paths still look for a key there.  A key is decoded
 *   only when some path looks at its level; the first occurrence of a key
 *   clears the bits, so a duplicated key never counts twice.
 *
 * Errors: element-level problems (not an object, bad string, too deep,
 * too large) skip the element and go on, one such problem per element
 * (plus one for depth); grammar errors stop an array and skip a JSON Lines
 * line.  After a read error nothing more is reported.
 *
 * Not thread-safe per call, but calls share nothing: scan files in
 * parallel freely.
 */
#include "engine_i.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SCAN_WIDE 1
#endif

/* Zero bytes after the data in the buffer: sentinel + SIMD over-read (the
 * wide string loop's second load, at p + 1, reaches end + 64). */
#define SCAN_PAD 65
/* Pseudo-bytes returned by the byte getters. */
#define SCAN_EOF (-1) /* end of file (or a read error) */
#define SCAN_EOL (-2) /* JSON Lines: a LF inside an object; p is at it */
/* Deepest nesting followed at all (bits of stack: 2 MiB). */
#define SCAN_STACK_MAX ((uint64_t)ENGINE__MAX_ENTRY)
#define SCAN_MAX_PATHS (2 * DESC_MAX_FIELDS)

/* One distinct key that some paths look for at one object level. */
typedef struct {
	const char *key; /* borrowed from the spec */
	size_t len;
	uint32_t mask; /* paths whose part at this level it is */
} scan_part;

/* The keys looked for at one object level of an entry. */
typedef struct {
	scan_part *parts; /* owned, nparts distinct keys */
	size_t nparts;
	uint32_t final; /* paths that end at this level */
} scan_level;

typedef struct {
	/* input */
	engine__read_fn read;
	void *read_ctx;
	size_t chunk;             /* bytes per read */
	unsigned char *buf;       /* owned: chunk + SCAN_PAD bytes */
	engine__big buf_map;      /* holds buf; pooled, so a refresh reuses
	                             pages already touched */
	const unsigned char *p;   /* next byte to look at */
	const unsigned char *end; /* end of the bytes read; *end == 0 */
	uint64_t buf_off;         /* file offset of buf[0] */
	int eof;                  /* the read callback returned 0 or failed */
	int ioerr;                /* -errno of a failed read, or 0 */

	/* position */
	unsigned long line;  /* 1-based line of p */
	uint64_t line_start; /* file offset of the first byte of that line */
	uint64_t ws_total;   /* whitespace bytes skipped outside strings */
	unsigned long str_line, str_col; /* opening quote of the string */

	/* structure */
	uint64_t *stack;    /* owned bit stack, bit d: level d+1 is an object */
	size_t stack_words; /* allocated words */
	uint64_t depth;     /* open containers (the top array counts) */
	uint64_t base;      /* depth at which entries start: 1 array, 0 JSONL */
	int jsonl;          /* the file is JSON Lines */
	int lf_stop;        /* JSON Lines: a LF ends the line (inside a line) */
	int wide;           /* strings 64 bytes at a time (engine__cpu_wide) */

	/* the current top-level element */
	uint64_t elem_off;       /* file offset of its first byte */
	unsigned long elem_line; /* its line and column */
	unsigned long elem_col;
	uint64_t elem_ws; /* ws_total when it began */
	int elem_bad;     /* a problem was reported for it */
	int elem_deep;    /* its depth problem was reported */
	int elem_ready;   /* JSON Lines: complete, waiting for EOL */

	/* paths */
	size_t npaths;
	scan_level *levels;  /* owned: nlevels, what each level looks for */
	size_t nlevels;      /* the longest path's number of parts */
	uint32_t all_mask;   /* paths that can be found at all */
	uint32_t val_final;  /* paths whose value is the next value */
	uint32_t val_deeper; /* paths that continue inside the next value */
	unsigned long val_line, val_col; /* where a stored value starts */
	uint32_t pending[ENGINE__MAX_DEPTH]; /* paths looking for a key at
						the object of entry level L */

	/* decoded text of the string or number being captured */
	size_t cap_len;
	int cap_trunc;
	char cap[ENGINE__VALUE_MAX + 1];

	engine__entry entry; /* the entry being built */

	/* output */
	engine__entry_fn fn;
	void *fn_ctx;
	engine_problems *probs;
	const char *name;
	size_t nprob; /* problems reported for this file */
	size_t more;  /* problems not reported past the limit */
	int count;    /* entries reported */
	int err;      /* -ENOMEM from adding a problem */
	int resume;              /* starting at a mark, not at offset 0 */
	size_t entries_before;   /* entries of the file before the start */
	engine__scan_mark *mark; /* where a later scan may resume, or NULL */
	const size_t *mark_count; /* spec->mark_count */
	int *cut_short;           /* spec->cut_short */
} scanner;

/* ---- input ---- */

static inline uint64_t scan_off(const scanner *s, const unsigned char *p)
{
	return s->buf_off + (uint64_t)(p - s->buf);
}

static void scan_problem(scanner *s, unsigned long line, unsigned long col,
                         const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void scan_problem(scanner *s, unsigned long line, unsigned long col,
                         const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (s->ioerr)
		return;
	if (s->nprob >= ENGINE__MAX_FILE_PROBLEMS) {
		s->more++;
		return;
	}
	s->nprob++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (engine_problems_add(s->probs, ENGINE_ERROR, s->name, line, col,
	                        "%s", msg) < 0)
		s->err = -ENOMEM;
}

/* Column of file offset `off`, which must lie on the current line. */
static inline unsigned long scan_col(const scanner *s, uint64_t off)
{
	return (unsigned long)(off - s->line_start + 1);
}

#define scan_error_here(s, ...)                                            \
	scan_problem((s), (s)->line, scan_col((s), scan_off((s), (s)->p)), \
	             __VA_ARGS__)

/*
 * A problem that makes the current element invalid (it is skipped); only
 * the first one of an element is reported.  `off` is on the current line.
 */
#define scan_elem_problem(s, off, ...)                                     \
	do {                                                               \
		if (!(s)->elem_bad)                                        \
			scan_problem((s), (s)->line, scan_col((s), (off)), \
			             __VA_ARGS__);                         \
		(s)->elem_bad = 1;                                         \
	} while (0)

/*
 * Read the next chunk over the buffer.  Only called when every byte of
 * the buffer was consumed (p == end).
 * @return 1 when bytes were read, 0 at EOF or after a read error (the
 *         error is recorded in s->ioerr and reported once)
 */
static int scan_refill(scanner *s)
{
	ssize_t n;

	if (s->eof)
		return 0;
	s->buf_off += (uint64_t)(s->end - s->buf);
	n = s->read(s->read_ctx, (char *)s->buf, s->chunk, s->buf_off);
	if (n < 0 || (size_t)n > s->chunk) {
		int e = n < 0 ? (int)n : -EIO;

		scan_problem(s, 0, 0, "cannot read the file: %s", strerror(-e));
		s->ioerr = e;
		n = 0;
	}
	s->p = s->buf;
	s->end = s->buf + n;
	memset(s->buf + n, 0, SCAN_PAD);
	if (n == 0) {
		s->eof = 1;
		return 0;
	}
	return 1;
}

/* The byte at p (refilling when needed), or SCAN_EOF. */
static inline int scan_peek(scanner *s)
{
	if (s->p == s->end && !scan_refill(s))
		return SCAN_EOF;
	return *s->p;
}

/*
 * Skip whitespace, counting lines and whitespace bytes.
 * @return the next byte (not consumed), SCAN_EOF, or SCAN_EOL when a LF
 *         ends a JSON Lines line (p is at the LF, not consumed)
 */
static inline int scan_ws(scanner *s)
{
	const unsigned char *p = s->p;

	for (;;) {
		const unsigned char *start = p;
		unsigned char c;

		for (;;) {
			c = *p;
			if (c > ' ')
				break;
			if (c == ' ' || c == '\t' || c == '\r') {
				p++;
				continue;
			}
			if (c != '\n')
				break;
			if (s->lf_stop) {
				s->ws_total += (uint64_t)(p - start);
				s->p = p;
				return SCAN_EOL;
			}
			s->line++;
			p++;
			s->line_start = scan_off(s, p);
#ifdef __SSE2__
			/* Indentation: skip runs of spaces 16 at a time. */
			for (;;) {
				__m128i v = _mm_loadu_si128(
				        (const __m128i *)(const void *)p);
				unsigned m = (unsigned)_mm_movemask_epi8(
				        _mm_cmpeq_epi8(v, _mm_set1_epi8(' ')));

				if (m != 0xffff) {
					p += __builtin_ctz(~m);
					break;
				}
				p += 16;
			}
#endif
		}
		s->ws_total += (uint64_t)(p - start);
		s->p = p;
		if (c || p != s->end)
			return c;
		if (!scan_refill(s))
			return SCAN_EOF;
		p = s->p;
	}
}

/* ---- captured text ---- */

static inline void scan_cap_reset(scanner *s)
{
	s->cap_len = 0;
	s->cap_trunc = 0;
}

static inline void scan_cap_append(scanner *s, const void *src, size_t n)
{
	size_t room = ENGINE__VALUE_MAX - s->cap_len;

	if (n > room) {
		n = room;
		s->cap_trunc = 1;
	}
	memcpy(s->cap + s->cap_len, src, n);
	s->cap_len += n;
}

static void scan_cap_utf8(scanner *s, uint32_t cp)
{
	unsigned char b[4];
	size_t n;

	if (cp < 0x80) {
		b[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (unsigned char)(0xC0 | cp >> 6);
		b[1] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (unsigned char)(0xE0 | cp >> 12);
		b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		b[2] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xF0 | cp >> 18);
		b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
		b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
		b[3] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	scan_cap_append(s, b, n);
}

/* Store the captured text (or just `kind`) as the value of paths `mask`. */
static void scan_store(scanner *s, uint32_t mask, engine__value_kind kind)
{
	while (mask) {
		engine__value *v = &s->entry.values[__builtin_ctz(mask)];

		mask &= mask - 1;
		v->kind = kind;
		v->line = s->val_line;
		v->column = s->val_col;
		if (kind == ENGINE__VAL_STRING || kind == ENGINE__VAL_NUMBER) {
			v->truncated = s->cap_trunc;
			v->len = s->cap_len;
			memcpy(v->text, s->cap, s->cap_len);
		} else {
			v->truncated = 0;
			v->len = 0;
		}
		v->text[v->len] = '\0';
	}
}

/*
 * Paths among `mask` whose part at `level` equals the captured key.  The
 * caller guarantees level < nlevels (only such paths are pending).
 */
static inline uint32_t scan_match_key(const scanner *s, uint64_t level,
                                      uint32_t mask)
{
	const scan_level *lv = &s->levels[level];
	size_t i;

	if (s->cap_trunc)
		return 0;
	for (i = 0; i < lv->nparts; i++) {
		const scan_part *pt = &lv->parts[i];

		if (pt->len == s->cap_len && (pt->mask & mask) &&
		    memcmp(pt->key, s->cap, pt->len) == 0)
			return pt->mask & mask;
	}
	return 0;
}

/*
 * Build the per-level tables of distinct keys from the spec.
 * @return 0 or -ENOMEM
 */
static int scan_levels_build(scanner *s, const engine__scan_spec *spec)
{
	size_t i, j, k;

	for (i = 0; i < s->npaths; i++)
		if (spec->paths[i]->nparts > s->nlevels)
			s->nlevels = spec->paths[i]->nparts;
	if (!s->nlevels)
		return 0;
	s->levels = calloc(s->nlevels, sizeof(*s->levels));
	if (!s->levels)
		return -ENOMEM;
	for (j = 0; j < s->nlevels; j++) {
		scan_level *lv = &s->levels[j];

		lv->parts = calloc(s->npaths, sizeof(*lv->parts));
		if (!lv->parts)
			return -ENOMEM;
		for (i = 0; i < s->npaths; i++) {
			const desc_path *path = spec->paths[i];
			size_t len;

			if (j >= path->nparts)
				continue;
			if (j + 1 == path->nparts)
				lv->final |= 1u << i;
			len = strlen(path->parts[j]);
			for (k = 0; k < lv->nparts; k++)
				if (lv->parts[k].len == len &&
				    memcmp(lv->parts[k].key, path->parts[j],
				           len) == 0)
					break;
			if (k == lv->nparts) {
				lv->parts[k].key = path->parts[j];
				lv->parts[k].len = len;
				lv->nparts++;
			}
			lv->parts[k].mask |= 1u << i;
		}
	}
	for (i = 0; i < s->npaths; i++)
		if (spec->paths[i]->nparts > 0)
			s->all_mask |= 1u << i;
	return 0;
}

/* ---- strings ---- */

#ifdef __SSE2__
#define SCAN_V(x) _mm_set1_epi8((char)(x))

/*
 * Validate the UTF-8 of the 16-byte block v at p up to position lim (the
 * first '"', '\\' or control byte, or 16).  Sequences must start and end
 * before lim, or when lim is 16 may run up to 3 bytes into the next block
 * (read from the padding at worst, which is zero and so fails).  Lead
 * bytes are classified by their high bits; the continuation bytes must
 * sit exactly where the leads say, and the second byte of E0, ED, F0 and
 * F4 sequences is range-checked (overlongs, surrogates, > U+10FFFF).
 * @return bytes validated (lim, or 16 plus the overhang), or 0 when the
 *         block is not valid as a whole (the scalar path then decides)
 */
static inline unsigned scan_utf8_block(const unsigned char *p, __m128i v,
                                       unsigned lim)
{
	const __m128i v1 =
	        _mm_loadu_si128((const __m128i *)(const void *)(p + 1));
	const __m128i v16 =
	        _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
	unsigned below = (1u << lim) - 1, cont, l2, l3, l4, bad, rng, want;
	__m128i ok_e0, ok_ed, ok_f0, ok_f4, r;

	cont = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
	               _mm_and_si128(v, SCAN_V(0xC0)), SCAN_V(0x80))) |
	       (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
	               _mm_and_si128(v16, SCAN_V(0xC0)), SCAN_V(0x80)))
	               << 16;
	l2 = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
	             _mm_and_si128(v, SCAN_V(0xE0)), SCAN_V(0xC0))) &
	     below;
	l3 = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
	             _mm_and_si128(v, SCAN_V(0xF0)), SCAN_V(0xE0))) &
	     below;
	l4 = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
	             _mm_and_si128(v, SCAN_V(0xF8)), SCAN_V(0xF0))) &
	     below;
	/* C0, C1 (always overlong) and F5..FF (beyond U+10FFFF) */
	bad = (unsigned)_mm_movemask_epi8(_mm_or_si128(
	        _mm_cmpeq_epi8(_mm_and_si128(v, SCAN_V(0xFE)), SCAN_V(0xC0)),
	        _mm_cmpeq_epi8(_mm_max_epu8(v, SCAN_V(0xF5)), v)));
	ok_e0 = _mm_cmpeq_epi8(_mm_max_epu8(v1, SCAN_V(0xA0)), v1);
	ok_ed = _mm_cmpeq_epi8(_mm_min_epu8(v1, SCAN_V(0x9F)), v1);
	ok_f0 = _mm_cmpeq_epi8(_mm_max_epu8(v1, SCAN_V(0x90)), v1);
	ok_f4 = _mm_cmpeq_epi8(_mm_min_epu8(v1, SCAN_V(0x8F)), v1);
	r = _mm_or_si128(
	        _mm_or_si128(_mm_andnot_si128(ok_e0,
	                                      _mm_cmpeq_epi8(v, SCAN_V(0xE0))),
	                     _mm_andnot_si128(ok_ed,
	                                      _mm_cmpeq_epi8(v, SCAN_V(0xED)))),
	        _mm_or_si128(_mm_andnot_si128(ok_f0,
	                                      _mm_cmpeq_epi8(v, SCAN_V(0xF0))),
	                     _mm_andnot_si128(
	                             ok_f4, _mm_cmpeq_epi8(v, SCAN_V(0xF4)))));
	rng = (unsigned)_mm_movemask_epi8(r);
	if ((bad | rng) & below)
		return 0;
	want = (l2 | l3 | l4) << 1 | (l3 | l4) << 2 | l4 << 3;
	if (lim < 16) {
		if (((cont ^ want) & below) || (want & ~below))
			return 0;
		return lim;
	}
	if ((cont ^ want) & 0xFFFF)
		return 0;
	want >>= 16;
	if (want & ~(cont >> 16))
		return 0;
	return 16 + (want ? 32 - (unsigned)__builtin_clz(want) : 0);
}
#endif

/*
 * Skip string bytes from p: printable ASCII and valid UTF-8, 16 bytes at
 * a time.  Returns the first '"', '\\' or control byte (there always is
 * one: the sentinel at end), or a non-ASCII byte the block check could not
 * validate (the scalar path then decides).
 */
static inline const unsigned char *scan_string_run(const unsigned char *p)
{
#ifdef __SSE2__
	const __m128i quote = SCAN_V('"');
	const __m128i bslash = SCAN_V('\\');
	const __m128i ctl = SCAN_V(0x1F);

	for (;;) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i w = _mm_loadu_si128(
		        (const __m128i *)(const void *)(p + 16));
		__m128i spv =
		        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
		                                  _mm_cmpeq_epi8(v, bslash)),
		                     _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
		__m128i spw =
		        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(w, quote),
		                                  _mm_cmpeq_epi8(w, bslash)),
		                     _mm_cmpeq_epi8(_mm_min_epu8(w, ctl), w));
		unsigned hi, sp, lim, n;

		/* 32 plain bytes at a time; the pad covers the over-read. */
		if (!_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(v, w),
		                                    _mm_or_si128(spv, spw)))) {
			p += 32;
			continue;
		}
		hi = (unsigned)_mm_movemask_epi8(v);
		sp = (unsigned)_mm_movemask_epi8(spv);
		if (!(hi | sp)) {
			p += 16;
			continue;
		}
		lim = sp ? (unsigned)__builtin_ctz(sp) : 16;
		if (!(hi & ((1u << lim) - 1)))
			return p + lim;
		n = scan_utf8_block(p, v, lim);
		if (!n)
			return p + __builtin_ctz(hi);
		p += n;
		if (lim < 16)
			return p;
	}
#else
	while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
		p++;
	return p;
#endif
}

#ifdef SCAN_WIDE
#define SCAN_W(x) _mm512_set1_epi8((char)(x))
#define SCAN_EQ(v, x) _mm512_cmpeq_epi8_mask(v, SCAN_W(x))
#define SCAN_HAS(v, m, x) SCAN_EQ(_mm512_and_si512(v, SCAN_W(m)), x)
#define SCAN_LT(v, x) _mm512_cmplt_epu8_mask(v, SCAN_W(x))
#define SCAN_GT(v, x) _mm512_cmpgt_epu8_mask(v, SCAN_W(x))

/*
 * scan_string_run with AVX-512BW, 64 bytes at a time: the same bytes stop
 * it, except that with `escapes` the simple escapes (all but \\u) are
 * stepped over inside the loop rather than by the caller, which matters
 * because real text has one every few dozen bytes.  UTF-8 is checked as
 * in scan_utf8_block, with 64-bit masks.  Every block starts on a
 * character boundary and never inside an escape: when a sequence would
 * run past a block, the next block starts at its lead byte, and a
 * backslash in a block's last byte stops the loop.  A block that is not
 * valid as a whole returns its first non-ASCII byte (everything before is
 * plain ASCII or simple escapes) for the scalar path.
 */
__attribute__((target("avx512f,avx512bw"), noinline))
static const unsigned char *scan_string_run_wide(const unsigned char *p,
                                                 int escapes)
{
	for (;;) {
		__m512i v = _mm512_loadu_si512((const void *)p), v1;
		uint64_t quote = SCAN_EQ(v, '"'), bs = SCAN_EQ(v, '\\');
		uint64_t ctl = _mm512_cmple_epu8_mask(v, SCAN_W(0x1F));
		uint64_t hi = _mm512_movepi8_mask(v);
		uint64_t special = quote | bs | ctl;
		uint64_t below, l2, l3, l4, cont, bad, rng, want, over;
		unsigned lim;

		if (!(special | hi)) {
			p += 64;
			continue;
		}
		/* p <= end, and the pad covers end + 64. */
		v1 = _mm512_loadu_si512((const void *)(p + 1));
		if (escapes && bs) {
			/* A block never starts inside an escape: no carry in. */
			uint64_t carry = 0;
			uint64_t escaped = engine__escaped_bits(bs, &carry);
			uint64_t escaping = escaped >> 1 | carry << 63;
			uint64_t simple = SCAN_EQ(v1, '"') | SCAN_EQ(v1, '\\') |
			                  SCAN_EQ(v1, '/') | SCAN_EQ(v1, 'b') |
			                  SCAN_EQ(v1, 'f') | SCAN_EQ(v1, 'n') |
			                  SCAN_EQ(v1, 'r') | SCAN_EQ(v1, 't');

			special = (quote & ~escaped) | ctl |
			          (escaping & ~(simple & ~(1ull << 63)));
			if (!(special | hi)) {
				p += 64;
				continue;
			}
		}
		lim = special ? (unsigned)__builtin_ctzll(special) : 64;
		below = lim == 64 ? ~0ull : (1ull << lim) - 1;
		hi &= below;
		if (!hi) {
			if (special)
				return p + lim;
			p += 64;
			continue;
		}
		l2 = SCAN_HAS(v, 0xE0, 0xC0) & below;
		l3 = SCAN_HAS(v, 0xF0, 0xE0) & below;
		l4 = SCAN_HAS(v, 0xF8, 0xF0) & below;
		cont = SCAN_HAS(v, 0xC0, 0x80);
		/* C0, C1 (always overlong) and F5..FF (beyond U+10FFFF) */
		bad = SCAN_HAS(v, 0xFE, 0xC0) | SCAN_GT(v, 0xF4);
		/* The second byte of E0, ED, F0 and F4 sequences. */
		rng = (SCAN_EQ(v, 0xE0) & SCAN_LT(v1, 0xA0)) |
		      (SCAN_EQ(v, 0xED) & SCAN_GT(v1, 0x9F)) |
		      (SCAN_EQ(v, 0xF0) & SCAN_LT(v1, 0x90)) |
		      (SCAN_EQ(v, 0xF4) & SCAN_GT(v1, 0x8F));
		over = (l2 & (1ull << 63)) | (l3 & (3ull << 62)) |
		       (l4 & (7ull << 61));
		if (over && !special) {
			/* The next block starts at that lead byte. */
			lim = (unsigned)__builtin_ctzll(over);
			below = (1ull << lim) - 1;
			l2 &= below;
			l3 &= below;
			l4 &= below;
		}
		/* Where continuation bytes must be; a stop byte may not cut a
		 * sequence. */
		want = (l2 | l3 | l4) << 1 | (l3 | l4) << 2 | l4 << 3;
		if (((bad | rng) & below) || ((cont ^ want) & below) ||
		    (want & ~below))
			return p + __builtin_ctzll(hi);
		if (special)
			return p + lim;
		p += lim;
	}
}
#endif

/*
 * The UTF-8 sequence at p, byte by byte: across a chunk boundary, or
 * invalid (reported; p is left after the lead byte, or at the byte that
 * broke the sequence when it is not a continuation byte).
 * @return 0, or SCAN_EOF inside the sequence
 */
static int scan_utf8_slow(scanner *s, int capture)
{
	unsigned char seq[4];
	unsigned c = *s->p, lo = 0x80, hi = 0xBF, need, i;
	uint64_t off = scan_off(s, s->p);
	const char *why;

	if (c < 0xC2 || c > 0xF4) {
		scan_elem_problem(s, off, "invalid UTF-8 byte 0x%02x in string",
		                  c);
		s->p++;
		return 0;
	}
	need = c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	seq[0] = (unsigned char)c;
	s->p++;
	for (i = 1; i <= need; i++) {
		int b = scan_peek(s);

		if (b == SCAN_EOF)
			return SCAN_EOF;
		if ((unsigned)b < lo || (unsigned)b > hi) {
			if (i > 1 || (b & 0xC0) != 0x80)
				why = "truncated sequence";
			else if (c == 0xED)
				why = "encoded surrogate";
			else if (c == 0xF4)
				why = "code point above U+10FFFF";
			else
				why = "overlong encoding";
			scan_elem_problem(s, off,
			                  "invalid UTF-8 in string: %s "
			                  "(byte 0x%02x after 0x%02x)",
			                  why, (unsigned)b, c);
			return 0;
		}
		seq[i] = (unsigned char)b;
		s->p++;
		lo = 0x80;
		hi = 0xBF;
	}
	if (capture)
		scan_cap_append(s, seq, need + 1);
	return 0;
}

/*
 * Four hex digits of a \u escape.
 * @return 0, 1 when a byte is not a hex digit (p is at it), SCAN_EOF
 */
static int scan_hex4(scanner *s, uint32_t *out)
{
	uint32_t v = 0;
	int i, c;

	for (i = 0; i < 4; i++) {
		c = scan_peek(s);
		if (c == SCAN_EOF)
			return SCAN_EOF;
		if (c >= '0' && c <= '9')
			v = v << 4 | (uint32_t)(c - '0');
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v = v << 4 | (uint32_t)((c | 0x20) - 'a' + 10);
		else
			return 1;
		s->p++;
	}
	*out = v;
	return 0;
}

/*
 * The escape sequence at p ('\\').  Invalid ones are reported and leave
 * p after the backslash (or after the \uXXXX), so the string goes on.
 * @return 0, or SCAN_EOF
 */
static int scan_escape(scanner *s, int capture)
{
	uint64_t off = scan_off(s, s->p), off2;
	uint32_t cp, lo;
	int c, r;

	s->p++;
	c = scan_peek(s);
simple:
	switch (c) {
	case SCAN_EOF:
		return SCAN_EOF;
	case '"':
	case '\\':
	case '/':
		break;
	case 'b':
		c = '\b';
		break;
	case 'f':
		c = '\f';
		break;
	case 'n':
		c = '\n';
		break;
	case 'r':
		c = '\r';
		break;
	case 't':
		c = '\t';
		break;
	case 'u':
		s->p++;
		r = scan_hex4(s, &cp);
		if (r == SCAN_EOF)
			return SCAN_EOF;
		if (r) {
			scan_elem_problem(s, off,
			                  "invalid \\u escape in string: "
			                  "expected 4 hex digits");
			return 0;
		}
		if (cp >= 0xDC00 && cp <= 0xDFFF) {
			scan_elem_problem(
			        s, off, "lone surrogate \\u%04x in string", cp);
			return 0;
		}
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			c = scan_peek(s);
			if (c == SCAN_EOF)
				return SCAN_EOF;
			if (c != '\\') {
				scan_elem_problem(s, off,
				                  "lone surrogate \\u%04x in "
				                  "string",
				                  cp);
				return 0;
			}
			off2 = scan_off(s, s->p);
			s->p++;
			c = scan_peek(s);
			if (c != 'u') {
				/* Not a pair; the second escape stands alone. */
				scan_elem_problem(s, off,
				                  "lone surrogate \\u%04x in "
				                  "string",
				                  cp);
				off = off2;
				goto simple;
			}
			s->p++;
			r = scan_hex4(s, &lo);
			if (r == SCAN_EOF)
				return SCAN_EOF;
			if (r) {
				scan_elem_problem(
				        s, off2,
				        "invalid \\u escape in string:"
				        " expected 4 hex digits");
				return 0;
			}
			if (lo < 0xDC00 || lo > 0xDFFF) {
				scan_elem_problem(s, off,
				                  "lone surrogate \\u%04x in "
				                  "string",
				                  cp);
				return 0;
			}
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		}
		if (capture)
			scan_cap_utf8(s, cp);
		return 0;
	default:
		if (c > ' ' && c < 0x7F)
			scan_elem_problem(s, off,
			                  "invalid escape '\\%c' in string", c);
		else
			scan_elem_problem(s, off,
			                  "invalid escape in string: '\\' "
			                  "followed by byte 0x%02x",
			                  c);
		return 0;
	}
	s->p++;
	if (capture) {
		char ch = (char)c;

		scan_cap_append(s, &ch, 1);
	}
	return 0;
}

/* Bytes that may follow a backslash, but for 'u'. */
static const unsigned char scan_simple_escape[256] = {
	['"'] = 1, ['\\'] = 1, ['/'] = 1, ['b'] = 1,
	['f'] = 1, ['n'] = 1,  ['r'] = 1, ['t'] = 1,
};

/*
 * The rest of a string whose opening quote is at p.  Validates it and,
 * when `capture`, decodes it into s->cap.
 * @return 0 (closing quote consumed), SCAN_EOF, or SCAN_EOL (JSON Lines:
 *         a raw LF; p is at it)
 */
static inline __attribute__((always_inline)) int scan_string(scanner *s,
                                                             int capture)
{
	const unsigned char *p;
	int r;

	s->str_line = s->line;
	s->str_col = scan_col(s, scan_off(s, s->p));
	p = ++s->p;
	if (capture)
		scan_cap_reset(s);
	for (;;) {
		const unsigned char *run = p;
		unsigned c;

#ifdef SCAN_WIDE
		p = s->wide ? scan_string_run_wide(p, !capture) :
		              scan_string_run(p);
#else
		p = scan_string_run(p);
#endif
		if (capture && p != run)
			scan_cap_append(s, run, (size_t)(p - run));
		c = *p;
		if (c == '"') {
			s->p = p + 1;
			return 0;
		}
		if (c >= 0x80) {
			int n;

			/* Runs of non-ASCII text (CJK...) stay here. */
			while ((n = engine__utf8_len(p)) != 0) {
				if (capture)
					scan_cap_append(s, p, (size_t)n);
				p += n;
				if (*p < 0x80)
					break;
			}
			if (n)
				continue;
			s->p = p;
			if ((r = scan_utf8_slow(s, capture)) < 0)
				return r;
			p = s->p;
			continue;
		}
		if (c == '\\') {
			/* Common escapes inline; the sentinel fails the test. */
			if (!capture && scan_simple_escape[p[1]]) {
				p += 2;
				continue;
			}
			s->p = p;
			if ((r = scan_escape(s, capture)) < 0)
				return r;
			p = s->p;
			continue;
		}
		/* c < 0x20 */
		if (c == 0 && p == s->end) {
			s->p = p;
			if (!scan_refill(s))
				return SCAN_EOF;
			p = s->p;
			continue;
		}
		s->p = p;
		if (c == '\n' && s->lf_stop)
			return SCAN_EOL;
		scan_elem_problem(s, scan_off(s, p),
		                  "control character 0x%02x in string", c);
		p++;
		if (c == '\n') {
			s->line++;
			s->line_start = scan_off(s, p);
		}
	}
}

/* ---- numbers and literals ---- */

/* A run of digits at p (maybe none), captured when asked. */
static void scan_digits(scanner *s, int capture)
{
	for (;;) {
		const unsigned char *p = s->p, *start = p;

		while (*p >= '0' && *p <= '9')
			p++;
		if (capture && p != start)
			scan_cap_append(s, start, (size_t)(p - start));
		s->p = p;
		if (*p || p != s->end || !scan_refill(s))
			return;
	}
}

static inline int scan_is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* Consume the byte at p (known to be there), capturing it when asked. */
static inline void scan_take(scanner *s, int capture)
{
	if (capture)
		scan_cap_append(s, s->p, 1);
	s->p++;
}

/*
 * A number starting at p ('-' or a digit), by the JSON grammar exactly:
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
 * @return 0, 1 (grammar error reported), SCAN_EOF inside the number
 */
static int scan_number(scanner *s, int capture)
{
	int c = *s->p;

	if (capture)
		scan_cap_reset(s);
	if (c == '-') {
		scan_take(s, capture);
		c = scan_peek(s);
		if (c == SCAN_EOF)
			return SCAN_EOF;
		if (!scan_is_digit(c)) {
			scan_error_here(s, "invalid number: expected a digit "
			                   "after '-'");
			return 1;
		}
	}
	if (c == '0') {
		scan_take(s, capture);
		c = scan_peek(s);
		if (scan_is_digit(c)) {
			scan_error_here(s, "invalid number: leading zeros are "
			                   "not allowed");
			return 1;
		}
	} else {
		scan_digits(s, capture);
		c = scan_peek(s);
	}
	if (c == '.') {
		scan_take(s, capture);
		c = scan_peek(s);
		if (c == SCAN_EOF)
			return SCAN_EOF;
		if (!scan_is_digit(c)) {
			scan_error_here(s, "invalid number: expected a digit "
			                   "after '.'");
			return 1;
		}
		scan_digits(s, capture);
		c = scan_peek(s);
	}
	if (c == 'e' || c == 'E') {
		scan_take(s, capture);
		c = scan_peek(s);
		if (c == '+' || c == '-') {
			scan_take(s, capture);
			c = scan_peek(s);
		}
		if (c == SCAN_EOF)
			return SCAN_EOF;
		if (!scan_is_digit(c)) {
			scan_error_here(s, "invalid number: expected a digit "
			                   "in the exponent");
			return 1;
		}
		scan_digits(s, capture);
	}
	return 0;
}

/*
 * `lit` ("true", "false" or "null") at p.
 * @return 0, 1 (grammar error reported), SCAN_EOF
 */
static int scan_literal(scanner *s, const char *lit)
{
	int c, i;

	for (i = 0; lit[i]; i++) {
		c = scan_peek(s);
		if (c == SCAN_EOF)
			return SCAN_EOF;
		if (c != lit[i]) {
			scan_error_here(s, "invalid literal: expected '%s'",
			                lit);
			return 1;
		}
		s->p++;
	}
	return 0;
}

/* ---- structure ---- */

/* How a byte is named in messages. */
static const char *scan_describe(int c, char *buf, size_t size)
{
	if (c == SCAN_EOF)
		snprintf(buf, size, "the end of the file");
	else if (c > ' ' && c < 0x7F)
		snprintf(buf, size, "'%c'", c);
	else
		snprintf(buf, size, "byte 0x%02x", (unsigned)c);
	return buf;
}

/*
 * Open a container (p is at its bracket).
 * @return 0, 1 (too deep to follow at all: grammar error reported), or
 *         -ENOMEM
 */
static int scan_push(scanner *s, int object)
{
	uint64_t d = s->depth;

	if (d >= SCAN_STACK_MAX) {
		scan_error_here(s, "nesting deeper than %llu levels: giving up",
		                (unsigned long long)SCAN_STACK_MAX);
		return 1;
	}
	if ((d >> 6) >= s->stack_words) {
		size_t words = s->stack_words * 2;
		uint64_t *st = realloc(s->stack, words * sizeof(*st));

		if (!st)
			return -ENOMEM;
		s->stack = st;
		s->stack_words = words;
	}
	if (object)
		s->stack[d >> 6] |= (uint64_t)1 << (d & 63);
	else
		s->stack[d >> 6] &= ~((uint64_t)1 << (d & 63));
	s->depth = d + 1;
	if (d + 1 > ENGINE__MAX_DEPTH && !s->elem_deep) {
		s->elem_deep = 1;
		s->elem_bad = 1;
		scan_error_here(s, "nesting deeper than %d levels",
		                ENGINE__MAX_DEPTH);
	}
	return 0;
}

static inline int scan_top_is_object(const scanner *s)
{
	uint64_t d = s->depth - 1;

	return (int)(s->stack[d >> 6] >> (d & 63) & 1);
}

/* A top-level element starts at p with byte c. */
static void scan_elem_begin(scanner *s, int c)
{
	uint64_t off = scan_off(s, s->p);
	const char *kind = NULL;
	size_t i;

	s->elem_off = off;
	s->elem_line = s->line;
	s->elem_col = scan_col(s, off);
	s->elem_ws = s->ws_total;
	s->elem_bad = 0;
	s->elem_deep = 0;
	switch (c) {
	case '{':
		for (i = 0; i < s->npaths; i++) {
			engine__value *v = &s->entry.values[i];

			v->kind = ENGINE__VAL_ABSENT;
			v->truncated = 0;
			v->len = 0;
			v->text[0] = '\0';
		}
		return;
	case '[':
		kind = "an array";
		break;
	case '"':
		kind = "a string";
		break;
	case 't':
	case 'f':
		kind = "a boolean";
		break;
	case 'n':
		kind = "null";
		break;
	default:
		if (c == '-' || scan_is_digit(c))
			kind = "a number";
		break;
	}
	/* Anything else is a grammar error, reported by the caller. */
	if (kind)
		scan_elem_problem(s, off,
		                  "array element is not an object "
		                  "(found %s)",
		                  kind);
}

/*
 * A top-level element ended just before p: report it if it is a valid
 * entry (at once in an array; JSON Lines waits for the end of the line).
 * @return 0, or the callback's negative return
 */
static int scan_elem_end(scanner *s)
{
	uint64_t raw = scan_off(s, s->p) - s->elem_off;
	engine__entry *e = &s->entry;
	int r;

	if (s->elem_bad)
		return 0;
	if (raw > ENGINE__MAX_ENTRY) {
		s->elem_bad = 1;
		scan_problem(s, s->elem_line, s->elem_col,
		             "entry larger than %u MiB",
		             ENGINE__MAX_ENTRY >> 20);
		return 0;
	}
	e->offset = s->elem_off;
	e->raw_len = raw;
	e->canon_len = raw - (s->ws_total - s->elem_ws);
	e->line = s->elem_line;
	e->column = s->elem_col;
	if (s->jsonl) {
		s->elem_ready = 1;
		return 0;
	}
	r = s->fn(s->fn_ctx, e);
	if (r < 0)
		return r;
	s->count++;
	return 0;
}

/*
 * Remember p as a place to resume at, after a reported entry, with what
 * a resumed scan needs to know of the problems before it.
 */
static void scan_set_mark(scanner *s)
{
	engine__scan_mark *m = s->mark;

	if (!m)
		return;
	m->offset = scan_off(s, s->p);
	m->line = s->line;
	m->line_start = s->line_start;
	m->entries = s->entries_before + (size_t)s->count;
	m->problems = s->probs->count;
	m->reported = s->nprob;
	m->unreported = s->more;
	m->counted = s->mark_count ? *s->mark_count : 0;
	m->jsonl = s->jsonl;
	m->set = 1;
}

/* JSON Lines: skip to after the next LF from p (p may be at it). */
static void scan_skip_line(scanner *s)
{
	for (;;) {
		const unsigned char *lf;

		lf = memchr(s->p, '\n', (size_t)(s->end - s->p));
		if (lf) {
			s->p = lf + 1;
			s->line++;
			s->line_start = scan_off(s, s->p);
			return;
		}
		s->p = s->end;
		if (!scan_refill(s))
			return;
	}
}

/*
 * The parser: a state machine over labels, with the nesting on the bit
 * stack.  At each label, c is the byte at p (not consumed) or a pseudo
 * byte.
 * @return 0 (bad input is reported, not returned), -ENOMEM, or the
 *         callback's negative return
 */
static int scan_run(scanner *s)
{
	char what[32];
	uint32_t final, deeper;
	uint64_t lvl;
	int c, r, comma = 0;

	if (s->resume) {
		/* Resuming at a mark: just past an entry (see scan_set_mark). */
		if (s->jsonl)
			goto line;
		s->base = 1;
		if ((r = scan_push(s, 0)) != 0)
			return r < 0 ? r : 0;
		goto between_elements;
	}
	c = scan_ws(s);
	if (c == SCAN_EOF)
		return 0;
	if (c == '[') {
		s->base = 1;
		if ((r = scan_push(s, 0)) != 0)
			return r < 0 ? r : 0;
		s->p++;
		c = scan_ws(s);
		if (c == ']') {
			s->p++;
			s->depth = 0;
			goto array_done;
		}
		goto value;
	}
	if (c == '{') {
		s->jsonl = 1;
		s->base = 0;
		goto line;
	}
	if (c == 0xEF && scan_off(s, s->p) == 0)
		scan_error_here(s, "byte order mark is not allowed (save the "
		                   "file as UTF-8 without BOM)");
	else
		scan_error_here(s,
		                "expected a JSON array ('[') or JSON Lines "
		                "('{') but found %s",
		                scan_describe(c, what, sizeof(what)));
	return 0;

line:
	/* JSON Lines: between objects; blank lines are fine. */
	s->lf_stop = 0;
	c = scan_ws(s);
	if (c == SCAN_EOF)
		return 0;
	if (c != '{') {
		scan_error_here(s,
		                "JSON Lines: each line must hold one "
		                "complete object (found %s)",
		                scan_describe(c, what, sizeof(what)));
		goto line_error;
	}
	s->lf_stop = 1;
	goto value;

value:
	/* A value starts at p (c), after '[', ',' in an array, or ':'. */
	if (s->depth == s->base)
		scan_elem_begin(s, c);
	final = s->val_final;
	deeper = s->val_deeper;
	s->val_final = 0;
	s->val_deeper = 0;
	if (final) { /* for messages about the value */
		s->val_line = s->line;
		s->val_col = scan_col(s, scan_off(s, s->p));
	}
	switch (c) {
	case '{':
		lvl = s->depth - s->base;
		if (lvl == 0)
			deeper = s->all_mask;
		if (final)
			scan_store(s, final, ENGINE__VAL_OTHER);
		if ((r = scan_push(s, 1)) != 0)
			goto push_failed;
		if (lvl < ENGINE__MAX_DEPTH)
			s->pending[lvl] = deeper;
		s->p++;
		c = scan_ws(s);
		if (c == '"')
			goto key;
		if (c == '}') {
			s->p++;
			s->depth--;
			goto after_value;
		}
		if (c < 0)
			goto bad_end;
		scan_error_here(s,
		                "invalid JSON: expected a string key or '}' "
		                "but found %s",
		                scan_describe(c, what, sizeof(what)));
		goto grammar_error;
	case '[':
		if (final)
			scan_store(s, final, ENGINE__VAL_OTHER);
		if ((r = scan_push(s, 0)) != 0)
			goto push_failed;
		s->p++;
		c = scan_ws(s);
		if (c == ']') {
			s->p++;
			s->depth--;
			goto after_value;
		}
		comma = 0;
		goto value;
	case '"':
		r = scan_string(s, final != 0);
		if (r < 0)
			goto string_end;
		if (final)
			scan_store(s, final, ENGINE__VAL_STRING);
		goto after_value;
	case '-':
	case '0':
	case '1':
	case '2':
	case '3':
	case '4':
	case '5':
	case '6':
	case '7':
	case '8':
	case '9':
		r = scan_number(s, final != 0);
		if (r == SCAN_EOF) {
			c = SCAN_EOF;
			goto bad_end;
		}
		if (r)
			goto grammar_error;
		if (final)
			scan_store(s, final, ENGINE__VAL_NUMBER);
		goto after_value;
	case 't':
	case 'f':
	case 'n':
		r = scan_literal(s, c == 't' ? "true" :
		                    c == 'f' ? "false" :
		                               "null");
		if (r == SCAN_EOF) {
			c = SCAN_EOF;
			goto bad_end;
		}
		if (r)
			goto grammar_error;
		if (final)
			scan_store(s, final, ENGINE__VAL_OTHER);
		goto after_value;
	default:
		if (c < 0)
			goto bad_end;
		if (comma && c == ']')
			scan_error_here(s,
			                "invalid JSON: trailing comma before "
			                "']'");
		else if (c == '+')
			scan_error_here(s, "invalid number: a leading '+' is "
			                   "not allowed");
		else if (c == '.')
			scan_error_here(s, "invalid number: expected a digit "
			                   "before '.'");
		else
			scan_error_here(s,
			                "invalid JSON: expected a value but "
			                "found %s",
			                scan_describe(c, what, sizeof(what)));
		goto grammar_error;
	}

key:
	/* A key starts at p ('"') in the object at entry level lvl. */
	lvl = s->depth - s->base - 1;
	deeper = lvl < ENGINE__MAX_DEPTH ? s->pending[lvl] : 0;
	r = scan_string(s, deeper != 0);
	if (r < 0)
		goto string_end;
	if (deeper) {
		uint32_t m = scan_match_key(s, lvl, deeper);

		s->pending[lvl] &= ~m;
		s->val_final = m & s->levels[lvl].final;
		s->val_deeper = m & ~s->levels[lvl].final;
	}
	c = scan_ws(s);
	if (c != ':') {
		if (c < 0)
			goto bad_end;
		scan_error_here(s,
		                "invalid JSON: expected ':' after a key but "
		                "found %s",
		                scan_describe(c, what, sizeof(what)));
		goto grammar_error;
	}
	s->p++;
	c = scan_ws(s);
	comma = 0;
	goto value;

after_value:
	/* A value ended just before p. */
	if (s->depth == s->base) {
		if ((r = scan_elem_end(s)) < 0)
			return r;
		if (s->jsonl)
			goto line_end;
		if (!s->elem_bad)
			scan_set_mark(s);
	}
between_elements:
	c = scan_ws(s);
	if (scan_top_is_object(s)) {
		if (c == ',') {
			s->p++;
			c = scan_ws(s);
			if (c == '"')
				goto key;
			if (c < 0)
				goto bad_end;
			if (c == '}')
				scan_error_here(s,
				                "invalid JSON: trailing comma "
				                "before '}'");
			else
				scan_error_here(s,
				                "invalid JSON: expected a "
				                "string key but found %s",
				                scan_describe(c, what,
				                              sizeof(what)));
			goto grammar_error;
		}
		if (c == '}') {
			s->p++;
			s->depth--;
			goto after_value;
		}
		if (c < 0)
			goto bad_end;
		scan_error_here(s,
		                "invalid JSON: expected ',' or '}' but "
		                "found %s",
		                scan_describe(c, what, sizeof(what)));
		goto grammar_error;
	}
	if (c == ',') {
		s->p++;
		c = scan_ws(s);
		comma = 1;
		goto value;
	}
	if (c == ']') {
		s->p++;
		s->depth--;
		if (s->depth == 0)
			goto array_done;
		goto after_value;
	}
	if (c < 0)
		goto bad_end;
	scan_error_here(s, "invalid JSON: expected ',' or ']' but found %s",
	                scan_describe(c, what, sizeof(what)));
	goto grammar_error;

line_end:
	/* JSON Lines: an object ended; only blanks may follow on its line. */
	c = scan_ws(s);
	if (c == SCAN_EOL) {
		/* Consumed here so that a mark lies past it: at the LF, a
		 * file that lost just its LF would resume as if the line
		 * were still ended. */
		s->p++;
		s->line++;
		s->line_start = scan_off(s, s->p);
	}
	if (c == SCAN_EOL || c == SCAN_EOF) {
		if (s->elem_ready) {
			s->elem_ready = 0;
			if ((r = s->fn(s->fn_ctx, &s->entry)) < 0)
				return r;
			s->count++;
			/* Past a LF only: at EOF, bytes appended right after
			 * the '}' would continue this line. */
			if (c == SCAN_EOL)
				scan_set_mark(s);
		}
		if (c == SCAN_EOF)
			return 0;
		goto line;
	}
	scan_error_here(s,
	                "JSON Lines: each line must hold one complete "
	                "object (found %s after it)",
	                scan_describe(c, what, sizeof(what)));
	goto line_error;

array_done:
	c = scan_ws(s);
	if (c == SCAN_EOF)
		return 0;
	scan_error_here(s,
	                "invalid JSON: unexpected %s after the end of the "
	                "JSON array",
	                scan_describe(c, what, sizeof(what)));
	return 0;

push_failed:
	if (r < 0)
		return r;
	goto grammar_error;

string_end:
	/* A string did not end: EOF, or (JSON Lines) a raw LF. */
	if (r == SCAN_EOL) {
		scan_error_here(s, "invalid JSON: unterminated string at the "
		                   "end of the line");
		goto line_error;
	}
	scan_problem(s, s->str_line, s->str_col,
	             "invalid JSON: unterminated string (truncated file?)");
	goto cut_short;

bad_end:
	/* c is SCAN_EOF or SCAN_EOL where more of a value was expected. */
	if (c == SCAN_EOL) {
		scan_error_here(s, "JSON Lines: each line must hold one "
		                   "complete object (this one continues on "
		                   "the next line)");
		goto line_error;
	}
	if (s->jsonl)
		scan_error_here(s,
		                "unexpected end of file: the last line holds "
		                "an incomplete object (truncated file?)");
	else
		scan_error_here(s, "unexpected end of file: the JSON array is "
		                   "not closed (truncated file?)");
cut_short:
	if (s->cut_short)
		*s->cut_short = 1;
	return 0;

grammar_error:
	if (!s->jsonl)
		return 0;
line_error:
	s->elem_ready = 0;
	s->depth = 0;
	s->val_final = 0;
	s->val_deeper = 0;
	scan_skip_line(s);
	goto line;
}

int engine__scan(engine__read_fn read, void *read_ctx, size_t chunk,
                 const char *name, const engine__scan_spec *spec,
                 engine__entry_fn fn, void *fn_ctx, engine_problems *probs)
{
	return engine__scan_from(read, read_ctx, chunk, name, spec, fn, fn_ctx,
	                         probs, NULL, NULL);
}

int engine__scan_from(engine__read_fn read, void *read_ctx, size_t chunk,
                      const char *name, const engine__scan_spec *spec,
                      engine__entry_fn fn, void *fn_ctx,
                      engine_problems *probs, const engine__scan_mark *from,
                      engine__scan_mark *mark)
{
	scanner *s;
	size_t i;
	int r = -ENOMEM;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->read = read;
	s->read_ctx = read_ctx;
	s->chunk = chunk ? chunk : ENGINE__CHUNK;
	s->name = name;
	s->probs = probs;
	s->line = 1;
	s->wide = engine__cpu_wide();
	s->mark = mark;
	if (mark)
		memset(mark, 0, sizeof(*mark));
	if (from && from->offset > 0) {
		s->resume = 1;
		s->buf_off = from->offset - from->offset % s->chunk;
		s->line = from->line;
		s->line_start = from->line_start;
		s->jsonl = from->jsonl;
		s->entries_before = from->entries;
		s->nprob = from->reported;
		s->more = from->unreported;
	}
	if (engine__big_reserve(&s->buf_map, s->chunk + SCAN_PAD) == 0)
		s->buf = s->buf_map.base;
	s->stack_words = 32;
	s->stack = calloc(s->stack_words, sizeof(*s->stack));
	if (!s->buf || !s->stack)
		goto out;
	memset(s->buf, 0, SCAN_PAD);
	s->p = s->end = s->buf;
	if (s->resume) {
		/* Read whole chunks from a chunk boundary, as a scan from the
		 * start would (a hashing reader sees the same blocks). */
		uint64_t at = from->offset - s->buf_off;

		if (scan_refill(s))
			s->p = s->buf + (at < (uint64_t)(s->end - s->buf) ?
			                         at :
			                         (uint64_t)(s->end - s->buf));
	}

	s->npaths = spec ? spec->npaths : 0;
	s->mark_count = spec ? spec->mark_count : NULL;
	s->cut_short = spec ? spec->cut_short : NULL;
	if (s->npaths > SCAN_MAX_PATHS)
		s->npaths = SCAN_MAX_PATHS;
	if (scan_levels_build(s, spec) < 0)
		goto out;

	s->fn = fn;
	s->fn_ctx = fn_ctx;
	r = scan_run(s);
	if (r >= 0 && s->more)
		engine__problems_add_more(probs, ENGINE_ERROR, name, s->more,
		                          "problems");
	if (r >= 0)
		r = s->ioerr ? s->ioerr : s->err ? s->err : s->count;
out:
	for (i = 0; s->levels && i < s->nlevels; i++)
		free(s->levels[i].parts);
	free(s->levels);
	free(s->stack);
	engine__big_free(&s->buf_map);
	free(s);
	return r;
}
