/* SPDX-License-Identifier: MIT */
/*
 * prepare.c - `crdtfs prepare`: turn a tool's own memory file (a JSON array,
 * or the MCP memory server's JSON Lines) into BACKING/memory-HOST.json.
 *
 * Invariants:
 * - Idempotent: an unchanged source gives a byte-identical host file, and
 *   then the file is not rewritten at all (its mtime stays).  Entries are
 *   matched by unique_id and compared by canonical content (the entry minus
 *   `_crdt_metadata`, keys sorted, compact), so a tool that reorders keys
 *   or respaces its file does not re-stamp anything.  An entry that
 *   carries a stamp already is copied as it is, unless its stamp is no
 *   newer than the host file's copy: then it is that copy (kept) or an
 *   edit of it made here (re-stamped).
 * - Deterministic ids: unique_id depends only on the entry's logical
 *   identity (never on the host, never random), so one entity edited on
 *   two hosts is one key and last-writer-wins applies across hosts.
 * - Hybrid logical clock: a new stamp is never earlier than the wall clock,
 *   and always later than every valid stamp in every memory-*.json of the
 *   backing directory, so it never goes backwards on one host even when
 *   the wall clock does, and an edit made after pulling another host's
 *   edit sorts after it.  All entries stamped in one run share one stamp.
 * - Atomic: temp file in the backing directory, fsync, rename, fsync dir.
 *
 * Entries are found by a small bracket-matching splitter and parsed one by
 * one with jansson, so a damaged entry costs only itself.  Their bytes are
 * kept as written (minus insignificant whitespace): key order, escapes and
 * number spellings of the source survive, and `_crdt_metadata` is appended
 * as the last member.  Files are read whole: memory files are small
 * (thousands of entries); the streaming engine is for the merged view.
 */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include "uthash.h"

#include "engine_i.h"
#include "sha1.h"

/* Identities longer than this (or with control bytes) are hashed. */
#define PREP_UID_LITERAL_MAX 200
/* Stamps further ahead of the wall clock than this are reported. */
#define PREP_FUTURE_WARN_SEC 300
/* 10000-01-01T00:00:00Z in seconds since the epoch. */
#define PREP_YEAR_10000 253402300800LL
/* Name of the metadata member. */
#define PREP_MD "_crdt_metadata"

typedef struct prep_entry {
	char *uid; /* owned, NUL-terminated decoded unique_id */
	size_t uid_len;
	char *bytes; /* owned: compact entry as written to the file */
	size_t len;
	char *content;     /* owned: canonical content; NULL when not needed */
	char *numbers;     /* owned: its numbers as written (number_texts) */
	int ts_rank;       /* 0 absent, 1 invalid, 2 valid (engine order) */
	engine__time ts;   /* valid when ts_rank == 2 */
	long long version; /* -1 when absent or not an integer */
	int used;          /* old entries: matched by a source entry;
			      seeded entries: PREP_SAME_FOUND | PREP_OTHER_FOUND */
	char *md_host;     /* seeded entries: the stamp's host (owned) */
	UT_hash_handle hh; /* old-file table, keyed by uid */
} prep_entry;

/* What the repository holds under a seeded entry's stamp (prep_seeded). */
#define PREP_SAME_FOUND 1  /* a copy with the same content */
#define PREP_OTHER_FOUND 2 /* a copy with other content */

typedef struct {
	char *id;       /* owned identity */
	unsigned count; /* occurrences so far in the source (in `last`: the
			   ordinal of the last entry) */
	UT_hash_handle hh;
} prep_seen;

typedef struct {
	prep_entry **items; /* owned array of owned entries */
	size_t count;
	size_t cap;
} prep_list;

/* Where an entry starts in its file (1-based line, byte column). */
typedef struct {
	unsigned long line, col;
} prep_pos;

/* Called per top-level object; obj is borrowed for the call. */
typedef int (*prep_span_fn)(void *ctx, json_t *obj, const char *raw, size_t len,
                            prep_pos at);

static void entry_free(prep_entry *e)
{
	if (!e)
		return;
	free(e->uid);
	free(e->bytes);
	free(e->content);
	free(e->numbers);
	free(e->md_host);
	free(e);
}

/* Free a table of entries (the old host file's, the seeded ones). */
static void entries_free(prep_entry **table)
{
	prep_entry *e, *tmp;

	HASH_ITER(hh, *table, e, tmp) {
		HASH_DEL(*table, e);
		entry_free(e);
	}
}

static void seen_free(prep_seen **table)
{
	prep_seen *sn, *tmp;

	HASH_ITER(hh, *table, sn, tmp) {
		HASH_DEL(*table, sn);
		free(sn->id);
		free(sn);
	}
}

static void list_dispose(prep_list *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		entry_free(l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* Append e; on failure e is freed. @return 0 or -ENOMEM */
static int list_take(prep_list *l, prep_entry *e)
{
	if (l->count == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		prep_entry **items = realloc(l->items, cap * sizeof(*items));

		if (!items) {
			entry_free(e);
			return -ENOMEM;
		}
		l->items = items;
		l->cap = cap;
	}
	l->items[l->count++] = e;
	return 0;
}

/* What read_whole() reads: a host file or the tool's memory file. */
enum { READ_HOST_FILE, READ_SOURCE };
/* read_whole()'s error for a file of another kind (a directory, a FIFO). */
#define NOT_READABLE_KIND ENODEV

/*
 * Read a whole file.  *out is NUL-terminated and owned by the caller.  A
 * host file, as in the merge, is a regular file and never a symlink, and
 * opening one never waits (a FIFO would); the source may also be a pipe
 * (`tool export | crdtfs prepare /dev/stdin`).
 * @return 0, or -errno: -ENOENT when it does not exist, -ELOOP for a
 *         symlinked host file, -EISDIR, -NOT_READABLE_KIND for another
 *         kind
 */
static int read_whole(const char *path, int what, char **out, size_t *outlen)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, cap;
	ssize_t n;
	int fd, r = 0;

	*out = NULL;
	*outlen = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC |
	                (what == READ_HOST_FILE ? O_NOFOLLOW | O_NONBLOCK : 0));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) &&
	    !(what == READ_SOURCE && S_ISFIFO(st.st_mode))) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -NOT_READABLE_KIND;
		goto out;
	}
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (len == cap) {
			char *nb = realloc(buf, 2 * cap + 1);

			if (!nb) {
				r = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

/*
 * Say in probs why `file` could not be read or written (every failure of
 * a prepare but a bad host name or a lack of memory is an error naming
 * its file).
 * @return r, or -ENOMEM
 */
static int cannot(engine_problems *probs, const char *what,
                  const char *file, int r)
{
	const char *why = r == -ELOOP ? "a symlink (host files are never "
					"followed)" :
			  r == -NOT_READABLE_KIND ? "not a regular file" :
						    strerror(-r);

	if (r == -ENOMEM ||
	    engine_problems_add(probs, ENGINE_ERROR, file, 0, 0,
	                        "cannot %s: %s; nothing written", what,
	                        why) < 0)
		return -ENOMEM;
	return r;
}

static int cannot_read(engine_problems *probs, const char *file, int r)
{
	return cannot(probs, "read", file, r);
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/*
 * Line and column of raw[at], where raw[0] is at line `line`, column
 * `col` (columns count bytes from 1).
 */
static void position_of(const char *raw, size_t at, unsigned long line,
                        unsigned long col, unsigned long *l, unsigned long *c)
{
	size_t k, lstart = 0;

	for (k = 0; k < at; k++)
		if (raw[k] == '\n') {
			line++;
			lstart = k + 1;
			col = 1;
		}
	*l = line;
	*c = col + at - lstart;
}

/* Index of the quote that ends the string opening at raw[i] (or len). */
static size_t string_end(const char *raw, size_t len, size_t i)
{
	for (i++; i < len && raw[i] != '"'; i++)
		if (raw[i] == '\\')
			i++;
	return i;
}

/* Value of hex digit c, or -1. */
static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Whether the body s[0..n) of a JSON string, escapes as written, spells
 * `_crdt_metadata`: a key written `"\u005fcrdt_metadata"` is that key to
 * jansson and to the merge, so it must be to every cut and skip here too.
 * Only \uXXXX escapes can spell its letters.
 */
static int spells_md(const char *s, size_t n)
{
	static const char md[] = PREP_MD;
	size_t i = 0, k = 0;

	if (n == sizeof(md) - 1 && memcmp(s, md, n) == 0)
		return 1;
	if (!memchr(s, '\\', n))
		return 0;
	while (i < n) {
		int c = (unsigned char)s[i++];

		if (c == '\\') {
			int j, d;

			if (i + 5 > n || s[i] != 'u')
				return 0;
			for (c = 0, j = 1; j <= 4; j++) {
				if ((d = hex_digit(s[i + j])) < 0)
					return 0;
				c = c * 16 + d;
			}
			i += 5;
		}
		if (k == sizeof(md) - 1 || c != (unsigned char)md[k++])
			return 0;
	}
	return k == sizeof(md) - 1;
}

/* Deepest nesting of brackets outside strings in raw. */
static size_t nesting_depth(const char *raw, size_t len)
{
	size_t depth = 0, deepest = 0, i;

	for (i = 0; i < len; i++) {
		char c = raw[i];

		if (c == '"')
			i = string_end(raw, len, i);
		else if ((c == '[' || c == '{') && ++depth > deepest)
			deepest = depth;
		else if ((c == ']' || c == '}') && depth)
			depth--;
	}
	return deepest;
}

/* Parse one entry's bytes, as every entry of a file is parsed here. */
static json_t *load_entry(const char *raw, size_t len, json_error_t *jerr)
{
	json_t *obj = json_loadb(raw, len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
	                         jerr);

	if (!obj) /* integers beyond int64: keep the entry all the same */
		obj = json_loadb(raw, len,
		                 JSON_DECODE_ANY | JSON_ALLOW_NUL |
		                         JSON_DECODE_INT_AS_REAL,
		                 NULL);
	return obj;
}

/* A scan of bytes in memory. */
typedef struct {
	const char *buf;
	size_t len;
} mem_file;

static ssize_t mem_read(void *ctx, char *buf, size_t size, uint64_t offset)
{
	const mem_file *m = ctx;

	if (offset >= m->len)
		return 0;
	if (size > m->len - offset)
		size = m->len - (size_t)offset;
	memcpy(buf, m->buf + offset, size);
	return (ssize_t)size;
}

static int ignore_entry(void *ctx, const engine__entry *e)
{
	(void)ctx;
	(void)e;
	return 0;
}

/* How emit_span() gets an entry: an array's element, or a line of JSON
 * Lines that a LF ends or the last line without one. */
enum { SPAN_ELEMENT, SPAN_LINE, SPAN_LAST_LINE };

/*
 * Report an entry jansson refused the way the merge's scanner (and so
 * `crdtfs check`) reports it, at the byte it points to: the entry alone,
 * as the element of an array or, from JSON Lines, as it was (trailing
 * blanks, its LF or the file's end) after a line holding `{}`.
 * @return 0 and *done when it did; 0 and !*done when the scanner finds
 *         nothing wrong (the caller then says what jansson said)
 */
static int scanner_problem(const char *raw, size_t len, int kind,
                           unsigned long line, unsigned long col,
                           const char *name, engine_problems *probs,
                           int *done)
{
	int lines = kind != SPAN_ELEMENT;
	static const char head_array[] = "[", head_lines[] = "{}\n";
	const char *head = lines ? head_lines : head_array;
	size_t hlen = strlen(head);
	engine__scan_spec spec = { { NULL }, 0, NULL, NULL };
	engine_problems found;
	const engine_problem *p;
	mem_file m;
	size_t i;
	char *buf;
	int r;

	*done = 0;
	if (!(buf = malloc(hlen + len + 1)))
		return -ENOMEM;
	memcpy(buf, head, hlen);
	memcpy(buf + hlen, raw, len);
	buf[hlen + len] = lines ? '\n' : ']';
	m.buf = buf;
	m.len = hlen + len + (kind != SPAN_LAST_LINE);
	engine_problems_init(&found);
	r = engine__scan(mem_read, &m, ENGINE__CHUNK, name, &spec,
	                 ignore_entry, NULL, &found);
	free(buf);
	if (r == -ENOMEM) {
		engine_problems_dispose(&found);
		return r;
	}
	r = 0;
	/*
	 * Back from the wrapper's lines and columns to the file's: every
	 * problem of a JSON Lines line, as check lists them; of an array's
	 * element the first (after it, the scanner may be reading the
	 * wrapper's `]` as part of a damaged entry).
	 */
	for (i = 0; r == 0 && i < found.count && (lines || i == 0); i++) {
		p = &found.items[i];
		if (lines)
			r = engine_problems_add(probs, ENGINE_ERROR, name,
			                        line + p->line - 2,
			                        p->line == 2 ? col + p->column - 1 :
			                                       p->column,
			                        "%s", p->message);
		else
			r = engine_problems_add(probs, ENGINE_ERROR, name,
			                        line + p->line - 1,
			                        p->line == 1 ? col + p->column - 2 :
			                                       p->column,
			                        "%s", p->message);
		*done = r == 0;
	}
	engine_problems_dispose(&found);
	return r;
}

/*
 * Parse one element's raw bytes (a line of JSON Lines, as `kind` says)
 * and hand it to fn when it is an object.  Anything else is reported and
 * skipped.  @return 0 or fn's error
 */
static int emit_span(const char *raw, size_t len, int kind,
                     unsigned long line, unsigned long col, const char *name,
                     prep_span_fn fn, void *ctx, engine_problems *probs)
{
	size_t whole = len;
	json_error_t jerr;
	const char *nul;
	json_t *obj;
	int r;

	while (len && is_blank(raw[len - 1]))
		len--;
	/* jansson takes a NUL right after a number as its end; the merge
	 * takes no NUL outside a string, and inside one it is escaped. */
	nul = memchr(raw, '\0', len);
	/* In the host file's array the entry is one level deeper, and the
	 * merge skips what passes ENGINE__MAX_DEPTH there. */
	if (!nul && nesting_depth(raw, len) > ENGINE__MAX_DEPTH - 1)
		return engine_problems_add(probs, ENGINE_ERROR, name, line, col,
		                           "invalid entry skipped: nesting "
		                           "deeper than %d levels",
		                           ENGINE__MAX_DEPTH - 1);
	obj = nul ? NULL : load_entry(raw, len, &jerr);
	if (!obj) {
		unsigned long el, ec;
		int bc, done;

		/* Said as check says it, where it says it; else as jansson
		 * (or the NUL) does. */
		r = scanner_problem(raw, kind == SPAN_ELEMENT ? len : whole,
		                    kind, line, col, name, probs, &done);
		if (r < 0 || done)
			return r;
		if (nul) {
			position_of(raw, (size_t)(nul - raw), line, col, &el,
			            &ec);
			return engine_problems_add(probs, ENGINE_ERROR, name,
			                           el, ec, "invalid entry "
			                           "skipped: NUL byte");
		}
		bc = desc_byte_column(raw, len, jerr.position, jerr.column);
		el = jerr.line > 0 ? (unsigned long)jerr.line : 1;
		ec = bc > 0 ? (unsigned long)bc : 1;
		return engine_problems_add(probs, ENGINE_ERROR, name,
		                           line + el - 1,
		                           el == 1 ? col + ec - 1 : ec,
		                           "invalid entry skipped: %s",
		                           jerr.text);
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		return engine_problems_add(probs, ENGINE_ERROR, name, line, col,
		                           "element is not an object; skipped");
	}
	r = fn(ctx, obj, raw, len, (prep_pos){ line, col });
	json_decref(obj);
	return r;
}

/*
 * Split a JSON array of objects into its elements by matching brackets
 * outside strings; each element is then parsed on its own.  A bracket
 * mismatch or a truncated file stops the split (elements before are kept).
 */
static int split_array(const char *buf, size_t len, size_t i, const char *name,
                       prep_span_fn fn, void *ctx, engine_problems *probs)
{
	char *stack;
	size_t depth = 0, start = 0, lstart;
	unsigned long line, col, sline = 0, scol = 0;
	int in_str = 0, esc = 0, have = 0, after_comma = 0, closed = 0, r = 0;

	stack = malloc(ENGINE__MAX_DEPTH + 1);
	if (!stack)
		return -ENOMEM;
	position_of(buf, i, 1, 1, &line, &col);
	lstart = i - (col - 1);
	for (; i < len; i++) {
		char c = buf[i];

		if (c == '\n') {
			line++;
			lstart = i + 1;
		}
		if (closed) { /* past the array's ']' */
			if (is_blank(c))
				continue;
			r = engine_problems_add(probs, ENGINE_WARNING, name,
			                        line, i - lstart + 1,
			                        "data after the array ignored");
			goto out;
		}
		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (is_blank(c))
			continue;
		if (depth == 1 && !have && c != ',' && c != ']') {
			have = 1;
			after_comma = 0;
			start = i;
			sline = line;
			scol = i - lstart + 1;
		}
		switch (c) {
		case '"':
			in_str = 1;
			break;
		case '[':
		case '{':
			if (depth >= ENGINE__MAX_DEPTH) {
				r = engine_problems_add(
				        probs, ENGINE_ERROR, name, line,
				        i - lstart + 1,
				        "nesting too deep; rest of file skipped");
				goto out;
			}
			stack[depth++] = c;
			break;
		case ']':
		case '}':
			if (!depth ||
			    stack[depth - 1] != (c == ']' ? '[' : '{')) {
				r = engine_problems_add(
				        probs, ENGINE_ERROR, name, line,
				        i - lstart + 1,
				        "unexpected '%c'; rest of file skipped",
				        c);
				goto out;
			}
			depth--;
			if (depth == 0) {
				if (have)
					r = emit_span(buf + start, i - start,
					              SPAN_ELEMENT, sline, scol,
					              name, fn, ctx, probs);
				else if (after_comma)
					r = engine_problems_add(
					        probs, ENGINE_ERROR, name, line,
					        i - lstart + 1,
					        "invalid JSON: trailing comma "
					        "before ']'");
				if (r < 0)
					goto out;
				have = 0;
				closed = 1;
			}
			break;
		case ',':
			if (depth == 1) {
				if (!have) {
					r = engine_problems_add(
					        probs, ENGINE_ERROR, name, line,
					        i - lstart + 1,
					        "empty array element; rest of file skipped");
					goto out;
				}
				r = emit_span(buf + start, i - start,
				              SPAN_ELEMENT, sline, scol, name, fn,
				              ctx, probs);
				if (r < 0)
					goto out;
				have = 0;
				after_comma = 1;
			}
			break;
		default:
			break;
		}
	}
	if (closed)
		goto out;
	r = engine_problems_add(probs, ENGINE_ERROR, name, line, i - lstart + 1,
	                        "unexpected end of file inside the array%s",
	                        have ? "; the last entry is incomplete" : "");
out:
	free(stack);
	return r;
}

/* JSON Lines: one object per line, blank lines allowed. */
static int split_lines(const char *buf, size_t len, const char *name,
                       prep_span_fn fn, void *ctx, engine_problems *probs)
{
	unsigned long line = 0;
	size_t i = 0;
	int r = 0;

	while (i < len && r >= 0) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - buf) : len, s = i;

		line++;
		while (s < end && is_blank(buf[s]))
			s++;
		if (s < end)
			r = emit_span(buf + s, end - s,
			              nl ? SPAN_LINE : SPAN_LAST_LINE, line,
			              s - i + 1, name, fn, ctx, probs);
		i = end + 1;
	}
	return r;
}

/*
 * Call fn for every top-level object of a host or source file, chosen by
 * its first non-blank byte: `[` an array, `{` JSON Lines, nothing empty.
 */
static int split_entries(const char *buf, size_t len, const char *name,
                         prep_span_fn fn, void *ctx, engine_problems *probs)
{
	size_t i = 0;

	while (i < len && is_blank(buf[i]))
		i++;
	if (i == len)
		return 0;
	if (buf[i] == '[')
		return split_array(buf, len, i, name, fn, ctx, probs);
	if (buf[i] == '{')
		return split_lines(buf, len, name, fn, ctx, probs);
	/* The merge's words (scan.c), at the byte's own position. */
	if (i == 0 && len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
		return engine_problems_add(
		        probs, ENGINE_ERROR, name, 1, 1,
		        "byte order mark is not allowed (save the file as "
		        "UTF-8 without BOM); ignored");
	{
		unsigned long line, col;

		position_of(buf, i, 1, 1, &line, &col);
		return engine_problems_add(
		        probs, ENGINE_ERROR, name, line, col,
		        "neither a JSON array ('[') nor JSON Lines ('{'); "
		        "ignored");
	}
}

/* Raw entry bytes less insignificant whitespace; owned result. */
static char *canon_dup(const char *raw, size_t len, size_t *outlen)
{
	engine__canon st = { 0 };
	char *out = malloc(len + 1);

	if (!out)
		return NULL;
	*outlen = engine__canon_chunk(&st, raw, len, out);
	out[*outlen] = '\0';
	return out;
}

typedef struct {
	const char *p;
	size_t len;
} prep_token;

static int token_cmp(const void *a, const void *b)
{
	const prep_token *x = a, *y = b;
	int r = memcmp(x->p, y->p, x->len < y->len ? x->len : y->len);

	return r ? r : (x->len > y->len) - (x->len < y->len);
}

/*
 * The numbers of an object as written, outside its _crdt_metadata member,
 * sorted (so that key order does not matter) and space-separated: jansson
 * holds numbers as int64 or double, and an edit past 17 significant digits
 * must still count as an edit.  raw is valid JSON (jansson parsed it).
 * @return owned string ("" when none), or NULL on ENOMEM
 */
static char *number_texts(const char *raw, size_t len)
{
	static const char digits[] = "0123456789+-.eE";
	prep_token *tok = NULL, *grown;
	size_t n = 0, cap = 0, total = 1, depth = 0, key, i, j;
	int key_next = 0, skipping = 0;
	char *out, *at;

	for (i = 0; i < len; i++) {
		char c = raw[i];

		if (c == '"') {
			key = i + 1;
			i = string_end(raw, len, i);
			if (depth == 1 && key_next) {
				skipping = spells_md(raw + key, i - key);
				key_next = 0;
			}
		} else if (c == '{' || c == '[') {
			key_next = ++depth == 1;
		} else if (c == '}' || c == ']') {
			depth--;
		} else if (c == ',' && depth == 1) {
			key_next = 1;
			skipping = 0;
		} else if (c == '-' || (c >= '0' && c <= '9')) {
			for (j = i; j < len && raw[j] && strchr(digits, raw[j]);
			     j++)
				;
			if (!skipping) {
				if (n == cap) {
					cap = cap ? 2 * cap : 8;
					grown = realloc(tok, cap * sizeof(*tok));
					if (!grown) {
						free(tok);
						return NULL;
					}
					tok = grown;
				}
				tok[n].p = raw + i;
				tok[n++].len = j - i;
				total += j - i + 1;
			}
			i = j - 1;
		}
	}
	if (n > 1)
		qsort(tok, n, sizeof(*tok), token_cmp);
	if ((at = out = malloc(total))) {
		for (i = 0; i < n; i++) {
			if (i)
				*at++ = ' ';
			memcpy(at, tok[i].p, tok[i].len);
			at += tok[i].len;
		}
		*at = '\0';
	}
	free(tok);
	return out;
}

/* Canonical content: the object minus _crdt_metadata, sorted, compact. */
static char *content_of(json_t *obj)
{
	json_t *copy = obj;
	char *s;

	if (json_object_get(obj, PREP_MD)) {
		copy = json_copy(obj);
		if (!copy)
			return NULL;
		json_object_del(copy, PREP_MD);
	} else {
		json_incref(copy);
	}
	s = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY |
	                             JSON_REAL_PRECISION(17));
	json_decref(copy);
	return s;
}

static int str_field(json_t *obj, const char *key, const char **s, size_t *n)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_string(v))
		return 0;
	*s = json_string_value(v);
	*n = json_string_length(v);
	return 1;
}

/*
 * `prefix` then `n` byte strings, each after a "LEN:" when `counted` and
 * with commas between: owned and NUL-terminated, its length in *len.
 * Names may hold NUL bytes (\u0000), so nothing here stops at one.
 */
static char *ident_join(size_t *len, const char *prefix, int counted,
                        size_t n, const char *const *part,
                        const size_t *part_len)
{
	size_t cap = strlen(prefix) + 1, at, i;
	char *out;

	for (i = 0; i < n; i++)
		cap += part_len[i] + 22;
	if (!(out = malloc(cap)))
		return NULL;
	at = (size_t)snprintf(out, cap, "%s", prefix);
	for (i = 0; i < n; i++) {
		if (i)
			out[at++] = ',';
		if (counted)
			at += (size_t)snprintf(out + at, cap - at, "%zu:",
			                       part_len[i]);
		memcpy(out + at, part[i], part_len[i]);
		at += part_len[i];
	}
	out[at] = '\0';
	*len = at;
	return out;
}

/*
 * The logical identity of a source entry (see engine_prepare()), of *len
 * bytes.  `content` is its canonical content.
 * @return owned string, or NULL on ENOMEM/EIO
 */
static char *identity_of(json_t *obj, const char *content, size_t *len)
{
	const char *part[3];
	size_t part_len[3];
	char hex[ENGINE__SHA1_HEX], *out = NULL, *text;
	json_t *id;

	if (str_field(obj, "type", &part[0], &part_len[0])) {
		if (part_len[0] == 6 && memcmp(part[0], "entity", 6) == 0 &&
		    str_field(obj, "name", &part[0], &part_len[0]))
			return ident_join(len, "entity:", 0, 1, part, part_len);
		/* Length prefixes make the triple unambiguous. */
		if (part_len[0] == 8 && memcmp(part[0], "relation", 8) == 0 &&
		    str_field(obj, "from", &part[0], &part_len[0]) &&
		    str_field(obj, "to", &part[1], &part_len[1]) &&
		    str_field(obj, "relationType", &part[2], &part_len[2]))
			return ident_join(len, "relation:", 1, 3, part,
			                  part_len);
	}
	id = json_object_get(obj, "id");
	if (json_is_string(id)) {
		part[0] = json_string_value(id);
		part_len[0] = json_string_length(id);
		return ident_join(len, "id:", 0, 1, part, part_len);
	}
	if (json_is_integer(id) || json_is_real(id)) {
		text = json_dumps(id, JSON_ENCODE_ANY);
		if (text) {
			part[0] = text;
			part_len[0] = strlen(text);
			out = ident_join(len, "id:", 0, 1, part, part_len);
		}
		free(text);
		return out;
	}
	engine__git_blob_id(content, strlen(content), hex);
	part[0] = hex;
	part_len[0] = strlen(hex);
	return ident_join(len, "content:", 0, 1, part, part_len);
}

/* unique_id from an identity of `len` bytes; owned result or NULL. */
static char *uid_of(const char *ident, size_t len)
{
	char hex[ENGINE__SHA1_HEX], *out = NULL;
	int literal = len > 0 && len <= PREP_UID_LITERAL_MAX;
	size_t i;

	for (i = 0; literal && i < len; i++)
		if ((unsigned char)ident[i] < 0x20 || ident[i] == 0x7f)
			literal = 0;
	if (literal)
		return strndup(ident, len);
	engine__git_blob_id(ident, len, hex);
	if (asprintf(&out, "sha1:%s", hex) < 0)
		return NULL;
	return out;
}

/* Fill ts_rank/ts, version and uid of e from its metadata object. */
static int entry_meta(prep_entry *e, json_t *md)
{
	json_t *v;

	e->ts_rank = 0;
	e->version = -1;
	if (!json_is_object(md))
		return 0;
	v = json_object_get(md, "timestamp");
	if (v) {
		e->ts_rank = 1;
		if (json_is_string(v) &&
		    engine__time_parse(&e->ts, json_string_value(v),
		                       json_string_length(v)) == 0)
			e->ts_rank = 2;
	}
	v = json_object_get(md, "version");
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		e->version = json_integer_value(v);
	v = json_object_get(md, "unique_id");
	if (json_is_string(v) && !e->uid) {
		e->uid_len = json_string_length(v);
		e->uid = malloc(e->uid_len + 1);
		if (!e->uid)
			return -ENOMEM;
		memcpy(e->uid, json_string_value(v), e->uid_len);
		e->uid[e->uid_len] = '\0';
	}
	return 0;
}

static int time_cmp(const engine__time *a, const engine__time *b)
{
	if (a->sec != b->sec)
		return a->sec < b->sec ? -1 : 1;
	if (a->nsec != b->nsec)
		return a->nsec < b->nsec ? -1 : 1;
	return 0;
}

/* (ts_rank, ts, version) of a against b. */
static int meta_cmp(const prep_entry *a, const prep_entry *b)
{
	int c;

	if (a->ts_rank != b->ts_rank)
		return a->ts_rank < b->ts_rank ? -1 : 1;
	if (a->ts_rank == 2 && (c = time_cmp(&a->ts, &b->ts)) != 0)
		return c;
	if (a->version != b->version)
		return a->version < b->version ? -1 : 1;
	return 0;
}

/* Host file order: (timestamp tuple, unique_id bytes, entry bytes). */
static int order_cmp(const void *pa, const void *pb)
{
	const prep_entry *a = *(prep_entry *const *)pa;
	const prep_entry *b = *(prep_entry *const *)pb;
	size_t n;
	int c;

	if (a->ts_rank != b->ts_rank)
		return a->ts_rank < b->ts_rank ? -1 : 1;
	if (a->ts_rank == 2 && (c = time_cmp(&a->ts, &b->ts)) != 0)
		return c;
	n = a->uid_len < b->uid_len ? a->uid_len : b->uid_len;
	if ((c = memcmp(a->uid, b->uid, n)) != 0)
		return c;
	if (a->uid_len != b->uid_len)
		return a->uid_len < b->uid_len ? -1 : 1;
	n = a->len < b->len ? a->len : b->len;
	if ((c = memcmp(a->bytes, b->bytes, n)) != 0)
		return c;
	return a->len < b->len ? -1 : a->len > b->len;
}

/* ---- the old host file ---- */

typedef struct {
	prep_entry *table; /* owned: uid -> newest old entry */
	engine__time max;  /* newest valid stamp seen */
	int have_max;
	const char *max_file; /* borrowed name of the file holding it */
	const char *name;     /* file being read, for messages */
	engine_problems *probs;
} prep_old;

static void note_max(prep_old *o, const engine__time *t)
{
	if (!o->have_max || time_cmp(t, &o->max) > 0) {
		o->max = *t;
		o->have_max = 1;
		o->max_file = o->name;
	}
}

static int old_entry_cb(void *ctx, json_t *obj, const char *raw, size_t len,
                        prep_pos at)
{
	prep_old *o = ctx;
	prep_entry *e, *prev = NULL;
	int r;

	(void)at;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	if ((r = entry_meta(e, json_object_get(obj, PREP_MD))) < 0)
		goto fail;
	if (e->ts_rank == 2)
		note_max(o, &e->ts);
	if (!e->uid) /* not one of ours: it will be re-stamped */
		goto drop;
	e->bytes = canon_dup(raw, len, &e->len);
	e->content = content_of(obj);
	e->numbers = number_texts(raw, len);
	r = -ENOMEM;
	if (!e->bytes || !e->content || !e->numbers)
		goto fail;
	HASH_FIND(hh, o->table, e->uid, e->uid_len, prev);
	if (prev && meta_cmp(prev, e) >= 0)
		goto drop;
	if (prev) {
		HASH_DEL(o->table, prev);
		entry_free(prev);
	}
	HASH_ADD_KEYPTR(hh, o->table, e->uid, e->uid_len, e);
	return 0;
drop:
	entry_free(e);
	return 0;
fail:
	entry_free(e);
	return r;
}

/* Only the newest stamp matters in other hosts' files. */
static int max_entry_cb(void *ctx, const engine__entry *e)
{
	prep_old *o = ctx;
	const engine__value *v = &e->values[0];
	engine__time t;

	if (v->kind == ENGINE__VAL_STRING && !v->truncated &&
	    engine__time_parse(&t, v->text, v->len) == 0)
		note_max(o, &t);
	return 0;
}

/*
 * Newest stamp in every other memory-*.json of the backing directory (the
 * host's own file is read separately), with the engine's streaming scanner
 * (about 10x faster than parsing every entry: these files can be large).
 * Damaged files count as far as they are valid; their problems are not
 * this host's business and are dropped (`crdtfs check` shows them).
 */
static int scan_backing_max(prep_old *o, const char *backing, const char *own,
                            char ***names_out)
{
	static char part_md[] = PREP_MD, part_ts[] = "timestamp";
	static char *parts[] = { part_md, part_ts };
	static char text[] = PREP_MD ".timestamp";
	static const desc_path ts_path = { parts, 2, text };
	engine__scan_spec spec = { { &ts_path }, 1, NULL, NULL };
	engine_problems quiet;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	DIR *d;
	int r = 0;

	*names_out = NULL;
	d = opendir(backing);
	if (!d)
		return cannot_read(o->probs, backing, -errno);
	engine_problems_init(&quiet);
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		char **nn;
		int fd;

		if (fnmatch("memory-*.json", de->d_name, FNM_PERIOD) != 0 ||
		    strcmp(de->d_name, own) == 0)
			continue;
		fd = openat(dirfd(d), de->d_name,
		            O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue; /* raced with a rename, or a symlink */
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			continue;
		}
		/* Keep the name alive: o->max_file may point at it. */
		nn = realloc(names, (n + 2) * sizeof(*names));
		if (!nn || !(nn[n] = strdup(de->d_name))) {
			names = nn ? nn : names;
			if (names)
				names[n] = NULL;
			close(fd);
			r = -ENOMEM;
			break;
		}
		names = nn;
		o->name = names[n++];
		names[n] = NULL;
		r = engine__scan(engine__read_fd, &fd, ENGINE__CHUNK, o->name, &spec,
		                 max_entry_cb, o, &quiet);
		close(fd);
		if (r == -ENOMEM)
			break;
		r = 0; /* an unreadable file only loses its stamps */
	}
	closedir(d);
	engine_problems_dispose(&quiet);
	*names_out = names;
	return r < 0 ? r : 0;
}

/* ---- the source ---- */

/* An entry of the source as the first pass found it. */
typedef struct {
	char *uid;      /* owned, NUL-terminated (entry_uid) */
	size_t uid_len;
	char *content;  /* owned (content_of) */
} prep_first;

typedef struct {
	const char *host;
	const char *name;   /* source name for messages */
	prep_old *old;      /* borrowed */
	prep_seen *seen;    /* owned: identity -> occurrences */
	prep_seen *last;    /* owned: unique_id -> the ordinal of the last
			       entry given it (entry_uid) */
	prep_first *first;  /* owned: what the first pass found of each
			       entry, in order; the second takes it */
	unsigned nfirst, capfirst;
	unsigned ordinal;   /* entries handled so far in this pass */
	prep_entry *seeded; /* owned: unique_id -> the last stamped source
			       entry this host file lacks (prep_seeded) */
	prep_list out;      /* owned: the new host file's entries */
	engine__time stamp; /* stamp for new and changed entries */
	char stamp_text[40];
	engine_prepare_stats st;
	engine_problems *probs;
} prep_src;

static void format_time(char out[40], const engine__time *t)
{
	struct tm tm;
	time_t s = (time_t)t->sec;

	char buf[96];

	gmtime_r(&s, &tm);
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ",
	         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec, (int)t->nsec);
	snprintf(out, 40, "%.39s", buf);
}

/*
 * Count an identity of *len bytes; returns the owned, disambiguated
 * identity and its length in *len.  A second "entity:x" is "dup2:entity:x":
 * every first identity starts with one of identity_of()'s kinds, so no name
 * can spell a duplicate's identity (a suffix such as "#2" could: an
 * entity really named "x#2").
 */
static char *dedupe_identity(prep_seen **table, char *ident, size_t *len)
{
	prep_seen *seen = NULL;
	char *out = NULL;
	int n;

	HASH_FIND(hh, *table, ident, *len, seen);
	if (!seen) {
		seen = calloc(1, sizeof(*seen));
		if (!seen || !(seen->id = malloc(*len + 1))) {
			free(seen);
			free(ident);
			return NULL;
		}
		memcpy(seen->id, ident, *len + 1);
		HASH_ADD_KEYPTR(hh, *table, seen->id, *len, seen);
	}
	if (++seen->count == 1)
		return ident;
	n = snprintf(NULL, 0, "dup%u:", seen->count);
	if ((out = malloc((size_t)n + *len + 1))) {
		snprintf(out, (size_t)n + 1, "dup%u:", seen->count);
		memcpy(out + n, ident, *len + 1);
		*len += (size_t)n;
	}
	free(ident);
	return out;
}

/*
 * Cut every top-level member `"_crdt_metadata":...` (a key may be written
 * twice, and with escapes) out of the canonical object
 * canon[0..*len), in place, with its comma.  The members are walked as in
 * number_texts.  @return members cut
 */
static int strip_metadata(char *canon, size_t *len)
{
	size_t n = *len, depth = 0, start = 1, out = 1, i, e;
	int is_md = 0, cut = 0;

	if (n < 2 || canon[0] != '{')
		return 0;
	for (i = 1; i < n; i++) {
		char c = canon[i];

		if (c == '"') {
			e = string_end(canon, n, i);
			if (depth == 0 && i == start) /* a member's key */
				is_md = spells_md(canon + i + 1, e - i - 1);
			i = e;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if ((c == '}' || c == ']') && depth) {
			depth--;
		} else if (depth == 0 && (c == ',' || c == '}')) {
			/* The member canon[start, i) ends: keep it or cut it. */
			if (is_md) {
				cut++;
			} else if (i > start) {
				if (out > 1)
					canon[out++] = ',';
				memmove(canon + out, canon + start, i - start);
				out += i - start;
			}
			is_md = 0;
			start = i + 1;
			if (c == '}') {
				canon[out++] = '}';
				*len = out;
				break;
			}
		}
	}
	return cut;
}

/* Entry bytes with fresh metadata appended, in place of any it had. */
static char *stamped_bytes(prep_src *s, const char *raw, size_t len,
                           const prep_entry *e, size_t *outlen)
{
	json_t *md;
	char *mds = NULL, *canon = NULL, *out = NULL;
	size_t clen;

	md = json_pack("{s:s, s:s, s:I, s:s%}", "host", s->host, "timestamp",
	               s->stamp_text, "version", (json_int_t)e->version,
	               "unique_id", e->uid, e->uid_len);
	if (!md)
		return NULL;
	canon = canon_dup(raw, len, &clen);
	if (!canon)
		goto out;
	strip_metadata(canon, &clen);
	mds = json_dumps(md, JSON_COMPACT);
	if (!mds || clen < 2)
		goto out;
	if (asprintf(&out, "%.*s%s\"" PREP_MD "\":%s}", (int)(clen - 1), canon,
	             clen == 2 ? "" : ",", mds) < 0)
		out = NULL;
	else
		*outlen = strlen(out);
out:
	json_decref(md);
	free(mds);
	free(canon);
	return out;
}

static int same_content(const prep_entry *old, const prep_entry *e)
{
	return strcmp(old->content, e->content) == 0 &&
	       strcmp(old->numbers, e->numbers) == 0;
}

/* Source entry e is `old` unchanged: the old bytes and metadata, as they
 * were, go to the new host file. */
static int keep_old(prep_src *s, prep_entry *e, prep_entry *old)
{
	old->used = 1;
	e->bytes = strdup(old->bytes);
	if (!e->bytes) {
		entry_free(e);
		return -ENOMEM;
	}
	e->len = old->len;
	e->ts_rank = old->ts_rank;
	e->ts = old->ts;
	e->version = old->version;
	s->st.unchanged++;
	return list_take(&s->out, e);
}

/* The unique_id of a `_crdt_metadata` object, or NULL. */
static const char *stamped_uid(json_t *md, size_t *len)
{
	json_t *v = json_object_get(md, "unique_id");

	if (!json_is_object(md) || !json_is_string(v))
		return NULL;
	*len = json_string_length(v);
	return json_string_value(v);
}

/*
 * The unique_id of a source entry (found once, by the first pass): its
 * stamp's; else, stamped, its identity; else its identity counted in
 * `table` (dup2:...) made a unique_id.  Owned, or NULL for no memory.
 */
static char *entry_uid(prep_seen **table, json_t *obj, const char *content,
                       size_t *len)
{
	json_t *md = json_object_get(obj, PREP_MD);
	const char *u;
	char *ident, *uid;

	if (json_is_object(md)) {
		if (!(u = stamped_uid(md, len)))
			return identity_of(obj, content, len);
		if ((uid = malloc(*len + 1))) {
			memcpy(uid, u, *len);
			uid[*len] = '\0';
		}
		return uid;
	}
	ident = identity_of(obj, content, len);
	if (!ident || !(ident = dedupe_identity(table, ident, len)))
		return NULL;
	uid = uid_of(ident, *len);
	free(ident);
	if (uid)
		*len = strlen(uid);
	return uid;
}

/* ---- seeded entries ---- */

/*
 * A stamped source entry that this host file lacks (a memory seeded from
 * a merged file, edited before its first prepare) is copied as it is,
 * unless it is an edit: the tool kept the stamp and changed the rest, and
 * the copy would tie with the stamp's own copy on (time, version, host)
 * and could lose on the bytes.  Its stamp's copies are looked up in the
 * other host files: when some exist and none has its content, it is an
 * edit made here and gets a stamp of its own.  Only such entries cost
 * anything: the other files are scanned (fast) for their unique_ids, and
 * only matching entries are parsed.
 */

/* The stamp's host of md as an owned string, "" when absent. */
static char *stamp_host(json_t *md)
{
	json_t *h = json_object_get(md, "host");

	return strdup(json_is_string(h) ? json_string_value(h) : "");
}

/* First pass: remember a stamped entry this host file lacks (the last one
 * given its unique_id).  @return 0 or -ENOMEM */
static int note_seeded(prep_src *s, json_t *obj, const char *raw, size_t len,
                       const char *uid, size_t n, const char *content)
{
	json_t *md = json_object_get(obj, PREP_MD);
	prep_entry *e, *prev;

	if (!stamped_uid(md, &(size_t){ 0 }))
		return 0;
	HASH_FIND(hh, s->old->table, uid, n, prev);
	if (prev)
		return 0;
	if (!(e = calloc(1, sizeof(*e))) || entry_meta(e, md) < 0 ||
	    !(e->content = strdup(content)) ||
	    !(e->numbers = number_texts(raw, len)) ||
	    !(e->md_host = stamp_host(md))) {
		entry_free(e);
		return -ENOMEM;
	}
	HASH_FIND(hh, s->seeded, uid, n, prev);
	if (prev) {
		HASH_DEL(s->seeded, prev);
		entry_free(prev);
	}
	HASH_ADD_KEYPTR(hh, s->seeded, e->uid, e->uid_len, e);
	return 0;
}

typedef struct {
	prep_src *s;
	int fd;
} prep_copies;

/* An entry of another host file: if it is a copy under a seeded entry's
 * stamp, note whether its content is the same. */
static int seeded_copy_cb(void *ctx, const engine__entry *en)
{
	prep_copies *c = ctx;
	const engine__value *v = &en->values[0];
	prep_entry *want, got = { .version = -1 };
	json_t *obj = NULL, *md;
	char *raw = NULL;
	int r = 0;

	if (v->kind != ENGINE__VAL_STRING || v->truncated)
		return 0;
	HASH_FIND(hh, c->s->seeded, v->text, v->len, want);
	if (!want || !(raw = malloc(en->raw_len ? en->raw_len : 1)))
		return want ? -ENOMEM : 0;
	if (pread(c->fd, raw, en->raw_len, (off_t)en->offset) !=
	            (ssize_t)en->raw_len ||
	    !(obj = load_entry(raw, en->raw_len, NULL)) ||
	    !json_is_object(obj))
		goto out; /* changed meanwhile: no copy to go by */
	md = json_object_get(obj, PREP_MD);
	r = -ENOMEM;
	if (entry_meta(&got, md) < 0 || !(got.md_host = stamp_host(md)) ||
	    !(got.content = content_of(obj)) ||
	    !(got.numbers = number_texts(raw, en->raw_len)))
		goto out;
	r = 0;
	if (meta_cmp(&got, want) != 0 || strcmp(got.md_host, want->md_host))
		goto out;
	want->used |= same_content(&got, want) ? PREP_SAME_FOUND :
	                                         PREP_OTHER_FOUND;
out:
	free(got.uid);
	free(got.content);
	free(got.numbers);
	free(got.md_host);
	json_decref(obj);
	free(raw);
	return r;
}

/* Look up the seeded entries' stamps in the other host files `names`. */
static int find_seeded_copies(prep_src *s, const char *backing, char **names)
{
	static char part_md[] = PREP_MD, part_uid[] = "unique_id";
	static char *parts[] = { part_md, part_uid };
	static char text[] = PREP_MD ".unique_id";
	static const desc_path uid_path = { parts, 2, text };
	engine__scan_spec spec = { { &uid_path }, 1, NULL, NULL };
	engine_problems quiet;
	prep_copies c = { .s = s };
	size_t i;
	int r = 0;

	if (!s->seeded)
		return 0;
	engine_problems_init(&quiet);
	for (i = 0; names && names[i] && r >= 0; i++) {
		char *path;

		if (asprintf(&path, "%s/%s", backing, names[i]) < 0) {
			r = -ENOMEM;
			break;
		}
		c.fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		free(path);
		if (c.fd < 0)
			continue; /* gone since: its copies do not count */
		r = engine__scan(engine__read_fd, &c.fd, ENGINE__CHUNK,
		                 names[i], &spec, seeded_copy_cb, &c, &quiet);
		close(c.fd);
		if (r != -ENOMEM)
			r = 0; /* an unreadable file only hides its copies */
	}
	engine_problems_dispose(&quiet);
	return r;
}

/* Is the stamped entry e, which this host file lacks, an edit made here? */
static int seeded_edit(prep_src *s, const prep_entry *e)
{
	prep_entry *want;

	HASH_FIND(hh, s->seeded, e->uid, e->uid_len, want);
	return want && (want->used & PREP_OTHER_FOUND) &&
	       !(want->used & PREP_SAME_FOUND);
}

/*
 * First pass: each entry's unique_id and content, kept for the second
 * pass, and the ordinal of the last entry each unique_id is given (a
 * stamped one this host file lacks is also noted: note_seeded).
 */
static int first_pass_cb(void *ctx, json_t *obj, const char *raw, size_t len,
                         prep_pos at)
{
	prep_src *s = ctx;
	prep_first *f;
	prep_seen *seen;
	int r;

	(void)at;
	if (s->nfirst == s->capfirst) {
		unsigned cap = s->capfirst ? 2 * s->capfirst : 64;

		if (!(f = realloc(s->first, cap * sizeof(*f))))
			return -ENOMEM;
		s->first = f;
		s->capfirst = cap;
	}
	f = &s->first[s->nfirst];
	memset(f, 0, sizeof(*f));
	if (!(f->content = content_of(obj)) ||
	    !(f->uid = entry_uid(&s->seen, obj, f->content, &f->uid_len))) {
		free(f->content);
		return -ENOMEM;
	}
	s->nfirst++;
	if ((r = note_seeded(s, obj, raw, len, f->uid, f->uid_len,
	                     f->content)) < 0)
		return r;
	HASH_FIND(hh, s->last, f->uid, f->uid_len, seen);
	if (!seen) {
		if (!(seen = calloc(1, sizeof(*seen))) ||
		    !(seen->id = strdup(f->uid))) {
			free(seen);
			return -ENOMEM;
		}
		HASH_ADD_KEYPTR(hh, s->last, seen->id, f->uid_len, seen);
	}
	seen->count = s->nfirst;
	return 0;
}

/*
 * Is another entry further on given this entry's unique_id?  Then the
 * last one is taken (a tool appending an updated copy, stamped or not),
 * and this one is reported and left out: two entries of one key in the
 * host file would be left to the merge's tie-break.
 */
static int superseded_later(prep_src *s, const char *uid, size_t n,
                            prep_pos at)
{
	prep_seen *seen;

	HASH_FIND(hh, s->last, uid, n, seen);
	if (!seen || seen->count == s->ordinal)
		return 0;
	(void)engine_problems_add(s->probs, ENGINE_WARNING, s->name, at.line,
	                          at.col,
	                          "unique_id \"%.*s\" is given again further "
	                          "on; the last one is taken",
	                          (int)(n < 200 ? n : 200), uid);
	return 1;
}

/*
 * The merge skips an entry larger than ENGINE__MAX_ENTRY, so one written
 * to the host file would reach no view: it is an error here (e is freed),
 * and the host file keeps its old copy.  @return 1 when it was too large
 */
static int too_large(prep_src *s, prep_entry *e, prep_pos at)
{
	if (e->len <= ENGINE__MAX_ENTRY)
		return 0;
	(void)engine_problems_add(s->probs, ENGINE_ERROR, s->name, at.line,
	                          at.col,
	                          "invalid entry skipped: larger than %u MiB "
	                          "as written to the host file, where the "
	                          "merge would skip it",
	                          ENGINE__MAX_ENTRY >> 20);
	entry_free(e);
	return 1;
}

/*
 * Second pass: the entry as the host file will hold it.  Already stamped
 * (a tool that keeps members it does not know, a memory seeded from a
 * merged file, another host's later version seeded again), it is copied
 * as it is, unless
 * - its metadata has no valid timestamp (a unique_id written by hand),
 *   which the merge would rank below every stamp;
 * - its stamp is no newer than this host file's copy: it is that copy, or
 *   an edit made here (the tool kept the stamp and changed the rest, and
 *   without a new stamp the edit would tie with every other host's copy
 *   and could lose);
 * - this host file has no copy, and the repository's copies under its
 *   stamp all differ from it: an edit in a seeded memory (seeded_edit).
 * Else, and for every entry without a stamp: the host file's copy when
 * the content is unchanged, or the entry with a new stamp.
 */
static int source_entry_cb(void *ctx, json_t *obj, const char *raw, size_t len,
                           prep_pos at)
{
	prep_src *s = ctx;
	json_t *md = json_object_get(obj, PREP_MD);
	prep_first *f;
	prep_entry *e, *old = NULL;
	int r = -ENOMEM, copy = 0;

	if (s->ordinal >= s->nfirst)
		return -EIO; /* the two passes saw different entries */
	f = &s->first[s->ordinal++];
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->uid = f->uid;
	e->uid_len = f->uid_len;
	e->content = f->content;
	f->uid = f->content = NULL;
	if (!(e->numbers = number_texts(raw, len)))
		goto fail;
	if (md && !json_is_object(md))
		(void)engine_problems_add(s->probs, ENGINE_WARNING, s->name,
		                          at.line, at.col,
		                          "\"" PREP_MD
		                          "\" is not an object; replaced");
	if (superseded_later(s, e->uid, e->uid_len, at)) {
		entry_free(e);
		return 0;
	}
	HASH_FIND(hh, s->old->table, e->uid, e->uid_len, old);
	if (json_is_object(md)) {
		if ((r = entry_meta(e, md)) < 0)
			goto fail;
		copy = e->ts_rank == 2 &&
		       !(old ? !old->used && meta_cmp(e, old) <= 0 :
		               seeded_edit(s, e));
	}
	r = -ENOMEM;
	if (copy) {
		e->bytes = canon_dup(raw, len, &e->len);
		if (!e->bytes)
			goto fail;
		if (too_large(s, e, at))
			return 0;
		if (!old)
			s->st.added++;
		else if (old->len == e->len &&
		         memcmp(old->bytes, e->bytes, e->len) == 0)
			s->st.unchanged++;
		else
			s->st.changed++;
		if (old)
			old->used = 1;
		return list_take(&s->out, e);
	}
	if (old && !old->used && same_content(old, e))
		return keep_old(s, e, old);
	if (old && e->version < old->version)
		e->version = old->version;
	e->version = e->version >= 0 ? e->version + 1 : 1;
	e->ts_rank = 2;
	e->ts = s->stamp;
	e->bytes = stamped_bytes(s, raw, len, e, &e->len);
	if (!e->bytes)
		goto fail;
	if (too_large(s, e, at))
		return 0;
	if (old) {
		old->used = 1;
		s->st.changed++;
	} else {
		s->st.added++;
	}
	snprintf(s->st.stamp, sizeof(s->st.stamp), "%s", s->stamp_text);
	return list_take(&s->out, e);
fail:
	entry_free(e);
	return r;
}

/* ---- output ---- */

static int valid_host(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > 200 || h[0] == '.' || strchr(h, '/'))
		return 0;
	for (; *h; h++)
		if ((unsigned char)*h < 0x20 || *h == 0x7f)
			return 0;
	return 1;
}

/* The host file bytes, laid out as a merged file of `format` is. */
static char *render(const prep_list *l, desc_format format, size_t *outlen)
{
	const engine__layout *f = engine__layout_of(format);
	size_t total = f->prefix_len + f->suffix_len + f->empty_len, i;
	size_t at = 0;
	char *out;

	for (i = 0; i < l->count; i++)
		total += l->items[i]->len + f->sep_len;
	out = malloc(total + 1);
	if (!out)
		return NULL;
	if (l->count == 0) {
		memcpy(out, f->empty, f->empty_len);
		at = f->empty_len;
	} else {
		memcpy(out, f->prefix, f->prefix_len);
		at = f->prefix_len;
		for (i = 0; i < l->count; i++) {
			if (i) {
				memcpy(out + at, f->sep, f->sep_len);
				at += f->sep_len;
			}
			memcpy(out + at, l->items[i]->bytes, l->items[i]->len);
			at += l->items[i]->len;
		}
		memcpy(out + at, f->suffix, f->suffix_len);
		at += f->suffix_len;
	}
	out[at] = '\0';
	*outlen = at;
	return out;
}

/* Nothing but blanks (or nothing at all)? */
static int all_blank(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!is_blank(buf[i]))
			return 0;
	return 1;
}

/*
 * The format prepare writes a host file in: the existing file's (a tool
 * or script appending lines to it could not append to an array; a blank
 * one stays blank, no entries being no lines), else a JSON array.
 */
static desc_format host_file_format(int have_old, const char *buf,
                                    size_t len)
{
	int f = have_old ? engine__format_of_bytes(buf, len) : DESC_FORMAT_JSON;

	return f < 0 ? DESC_FORMAT_JSONL : (desc_format)f;
}

/* Is any of the problems from index `from` on an error? */
static int has_error(const engine_problems *probs, size_t from)
{
	for (; from < probs->count; from++)
		if (probs->items[from].severity == ENGINE_ERROR)
			return 1;
	return 0;
}

/*
 * A source with errors never deletes: the entries it no longer lists may
 * be what it lost (a tool that died while rewriting it, the wrong file),
 * so the old host file's entries stay, as they were.
 */
static int keep_unlisted(prep_old *old, prep_src *s)
{
	prep_entry *e, *tmp;
	size_t kept = 0;
	int r;

	HASH_ITER(hh, old->table, e, tmp) {
		if (e->used)
			continue;
		HASH_DEL(old->table, e);
		if ((r = list_take(&s->out, e)) < 0)
			return r;
		kept++;
	}
	if (!kept)
		return 0;
	return engine_problems_add(s->probs, ENGINE_WARNING, s->name, 0, 0,
	                           "the file has errors: %zu %s it no "
	                           "longer lists %s kept, not removed",
	                           kept, kept == 1 ? "entry" : "entries",
	                           kept == 1 ? "is" : "are");
}

int engine_prepare(const engine_prepare_opts *opts, engine_prepare_stats *stats,
                   engine_problems *probs)
{
	prep_old old = { 0 };
	prep_src src = { 0 };
	prep_entry *e, *tmp;
	engine__time now, one = { 0, 1 };
	struct timespec ts;
	char *own = NULL, *path = NULL, *obuf = NULL, *sbuf = NULL;
	char *nbuf = NULL, **names = NULL;
	size_t olen = 0, slen = 0, nlen = 0, nprob, i;
	int r, have_old = 0;

	if (!opts->host || !valid_host(opts->host))
		return -EINVAL;
	if (opts->now) {
		if (engine__time_parse(&now, opts->now, strlen(opts->now)) <
		    0) {
			r = engine_problems_add(
			        probs, ENGINE_ERROR, "CRDTFS_NOW", 0, 0,
			        "\"%s\" is not an RFC 3339 timestamp; "
			        "nothing written", opts->now);
			r = r < 0 ? r : -EDOM;
			goto out;
		}
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		now.sec = ts.tv_sec;
		now.nsec = (int32_t)ts.tv_nsec;
	}
	old.probs = probs;
	r = -ENOMEM;
	if (asprintf(&own, "memory-%s.json", opts->host) < 0 ||
	    asprintf(&path, "%s/%s", opts->backing, own) < 0)
		goto out;

	/* The host file as it is now; absent is fine. */
	r = read_whole(path, READ_HOST_FILE, &obuf, &olen);
	if (r == -ENOENT && access(opts->backing, X_OK) == 0) {
		r = 0;
	} else if (r < 0) {
		r = cannot_read(probs, r == -ENOENT ? opts->backing : path, r);
		goto out;
	} else {
		have_old = 1;
		old.name = own;
		r = split_entries(obuf, olen, own, old_entry_cb, &old, probs);
		if (r < 0)
			goto out;
	}
	if ((r = scan_backing_max(&old, opts->backing, own, &names)) < 0)
		goto out;

	/* Hybrid logical clock: max(wall, newest stamp + 1 ns). */
	src.stamp = now;
	if (old.have_max) {
		engine__time next = old.max;

		next.nsec += one.nsec;
		if (next.nsec >= 1000000000) {
			next.nsec -= 1000000000;
			next.sec++;
		}
		if (time_cmp(&next, &src.stamp) > 0)
			src.stamp = next;
		if (old.max.sec > now.sec + PREP_FUTURE_WARN_SEC) {
			char t[40];

			format_time(t, &old.max);
			r = engine_problems_add(
			        probs, ENGINE_WARNING, old.max_file, 0, 0,
			        "timestamp %s is %lld s ahead of the clock; new stamps follow it",
			        t, (long long)(old.max.sec - now.sec));
			if (r < 0)
				goto out;
		}
	}
	/* RFC 3339 years have four digits: nothing after 9999 can be
	 * written, and the merge would rank it as invalid. */
	if (src.stamp.sec >= PREP_YEAR_10000) {
		int clock = !old.have_max || time_cmp(&now, &old.max) > 0;
		char t[40];

		format_time(t, clock ? &now : &old.max);
		r = engine_problems_add(
		        probs, ENGINE_ERROR,
		        !clock ? old.max_file :
		        opts->now ? "CRDTFS_NOW" : "the clock", 0, 0,
		        "timestamp %s (UTC) leaves no later stamp that RFC 3339 "
		        "can write (years end at 9999); fix %s; nothing written",
		        t, !clock ? "that entry" :
		        opts->now ? "CRDTFS_NOW" : "the clock");
		r = r < 0 ? r : -ERANGE;
		goto out;
	}
	format_time(src.stamp_text, &src.stamp);

	/* The source, entry by entry. */
	r = read_whole(opts->source, READ_SOURCE, &sbuf, &slen);
	if (r < 0) {
		r = cannot_read(probs, opts->source, r);
		goto out;
	}
	src.host = opts->host;
	src.name = opts->source;
	src.old = &old;
	src.probs = probs;
	nprob = probs->count;
	{
		engine_problems quiet; /* the second pass reports them */

		engine_problems_init(&quiet);
		r = split_entries(sbuf, slen, opts->source, first_pass_cb,
		                  &src, &quiet);
		engine_problems_dispose(&quiet);
		if (r < 0 ||
		    (r = find_seeded_copies(&src, opts->backing, names)) < 0)
			goto out;
		src.ordinal = 0;
	}
	r = split_entries(sbuf, slen, opts->source, source_entry_cb, &src,
	                  probs);
	if (r < 0)
		goto out;
	if (!opts->allow_empty && all_blank(sbuf, slen) && old.table) {
		r = engine_problems_add(
		        probs, ENGINE_ERROR, opts->source, 0, 0,
		        "empty: taken for a tool that died rewriting it, not for "
		        "an empty memory (that is `[]`; --allow-empty takes it)");
		if (r < 0)
			goto out;
	}
	if (has_error(probs, nprob)) {
		src.st.source_errors = 1;
		if ((r = keep_unlisted(&old, &src)) < 0)
			goto out;
	} else {
		HASH_ITER(hh, old.table, e, tmp)
			if (!e->used)
				src.st.removed++;
	}

	if (src.out.count > 1)
		qsort(src.out.items, src.out.count, sizeof(*src.out.items),
		      order_cmp);
	nbuf = render(&src.out, host_file_format(have_old, obuf, olen), &nlen);
	if (!nbuf) {
		r = -ENOMEM;
		goto out;
	}
	if (!have_old || nlen != olen || memcmp(nbuf, obuf, olen) != 0) {
		r = engine__replace_file_bytes(path, 0644, nbuf, nlen, NULL, NULL,
					       NULL);
		if (r < 0) {
			r = cannot(probs, "write", path, r);
			goto out;
		}
		src.st.written = 1;
	}
	src.st.entries = src.out.count;
	if (stats)
		*stats = src.st;
	r = 0;
out:
	entries_free(&old.table);
	entries_free(&src.seeded);
	seen_free(&src.seen);
	seen_free(&src.last);
	for (i = 0; i < src.nfirst; i++) {
		free(src.first[i].uid);
		free(src.first[i].content);
	}
	free(src.first);
	list_dispose(&src.out);
	for (i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
	free(own);
	free(path);
	free(obuf);
	free(sbuf);
	free(nbuf);
	return r;
}
