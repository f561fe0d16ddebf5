/* SPDX-License-Identifier: MIT */
/*
 * source.c - one host file, scanned into compact index records.
 *
 * The memory a source holds grows with its number of entries, not with
 * their bytes: per entry a 32-byte record plus its key and order blob in
 * an arena (16 + 23 bytes for a UUID key, the default descriptor and a
 * 7-byte host name; see key.c and below).  Entry bytes stay in the file
 * and are read again, by fd, when served.
 *
 * The order blob encodes each order field so that memcmp() of two blobs
 * compares the order tuples of seed 001's total order:
 *   absent  -> 0x00
 *   invalid -> 0x01
 *   valid, by type:
 *     timestamp: 0x02, 5 bytes big-endian seconds + 2^39 (years 0000 to
 *                9999 need 38 bits), 4 bytes big-endian nanoseconds
 *     integer:   a tag saying the sign and how many bytes follow, then
 *                the value's low bytes big-endian: 0x0b + n for values
 *                >= 0 needing n bytes (none for 0), 0x0a - n for
 *                negative ones whose complement needs n (none for -1);
 *                a version is 2 bytes instead of 9
 *     string:    0x02, the bytes, 0x00 escaped as 0x00 0xff, ended by
 *                0x00 0x00
 * Every encoding is prefix-free, so the concatenation compares field by
 * field.  Strings compare bytewise with a prefix first, as in Python.
 *
 * Entries without a usable key are keyed by `~blob:` and the git blob id
 * of their canonical bytes: identical copies collapse, nothing is random.
 */
#include "engine_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pthread.h>

#include "sha1.h"

/* Warnings listed per source before they are only counted. */
#define SOURCE_MAX_WARNINGS 20
/* Scans of a file that keeps changing while it is scanned. */
#define SOURCE_SCAN_ATTEMPTS 5

typedef struct {
	engine__source *src;
	const desc_descriptor *desc;
	size_t warnings;  /* warnings seen, listed or not */
} load_ctx;

static int arena_reserve(engine__source *s, size_t more)
{
	if (s->arena_len + more > UINT32_MAX)
		return -ENOMEM;
	if (engine__big_reserve(&s->arena_map, s->arena_len + more) < 0)
		return -ENOMEM;
	s->arena = s->arena_map.base;
	return 0;
}

static void put_be(char *out, uint64_t v, int bytes)
{
	int i;

	for (i = bytes - 1; i >= 0; i--) {
		out[i] = (char)(v & 0xff);
		v >>= 8;
	}
}

/* JSON integer grammar -?(0|[1-9][0-9]*) within int64. */
static int parse_int64(const char *s, size_t len, int64_t *out)
{
	size_t i = 0;
	int neg = 0;
	uint64_t v = 0, limit;

	if (i < len && s[i] == '-') {
		neg = 1;
		i++;
	}
	if (i == len || (s[i] == '0' && len - i > 1))
		return -EINVAL;
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (limit - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/*
 * Report an order field that ranks low: missing (v NULL) or present but
 * `not_what` (e.g. "not an integer").  Counted past the listing cap.
 */
static void warn_field(load_ctx *c, const engine__entry *e, const char *path,
		       const engine__value *v, const char *not_what)
{
	char shown[64];

	if (c->warnings++ >= SOURCE_MAX_WARNINGS)
		return;
	if (!v) {
		(void)engine_problems_add(&c->src->problems, ENGINE_WARNING,
					  c->src->name, e->line, e->column,
					  "%s is missing", path);
		return;
	}
	if (v->kind == ENGINE__VAL_STRING)
		snprintf(shown, sizeof(shown), "\"%.40s%s\"", v->text,
			 v->len > 40 ? "..." : "");
	else if (v->kind == ENGINE__VAL_NUMBER)
		snprintf(shown, sizeof(shown), "%.40s", v->text);
	else
		snprintf(shown, sizeof(shown),
			 "of another kind (object, array, boolean or null)");
	(void)engine_problems_add(&c->src->problems, ENGINE_WARNING,
				  c->src->name, v->line, v->column,
				  "%s %s is %s", path, shown, not_what);
}

/* Seconds from year 0000 to 9999, biased, fit 5 bytes unsigned. */
#define TIME_BIAS ((int64_t)1 << 39)

/* An integer in as few bytes as keep memcmp() order (see above). */
static size_t encode_int(int64_t v, char *out)
{
	uint64_t mag = v < 0 ? ~(uint64_t)v : (uint64_t)v;
	int n = 0;

	while (n < 8 && mag >> (8 * n))
		n++;
	out[0] = (char)(v < 0 ? 0x0a - n : 0x0b + n);
	put_be(out + 1, (uint64_t)v, n);
	return 1 + (size_t)n;
}

/*
 * Encode one order field into out (room for 2 * ENGINE__VALUE_MAX + 16).
 * Returns the encoded length.
 */
static size_t encode_field(load_ctx *c, const engine__entry *e,
			   const desc_order *o, const engine__value *v,
			   char *out)
{
	const char *path = o->path.text;
	engine__time t;
	int64_t iv;
	size_t n = 0, i;

	if (v->kind == ENGINE__VAL_ABSENT) {
		warn_field(c, e, path, NULL, NULL);
		out[0] = 0x00;
		return 1;
	}
	switch (o->type) {
	case DESC_ORDER_TIMESTAMP:
		if (v->kind != ENGINE__VAL_STRING || v->truncated ||
		    engine__time_parse(&t, v->text, v->len) < 0)
			break;
		out[0] = 0x02;
		put_be(out + 1, (uint64_t)(t.sec + TIME_BIAS), 5);
		put_be(out + 6, (uint64_t)t.nsec, 4);
		return 10;
	case DESC_ORDER_INTEGER:
		if (v->kind != ENGINE__VAL_NUMBER ||
		    parse_int64(v->text, v->len, &iv) < 0)
			break;
		return encode_int(iv, out);
	case DESC_ORDER_STRING:
		if (v->kind != ENGINE__VAL_STRING || v->truncated)
			break;
		out[n++] = 0x02;
		for (i = 0; i < v->len; i++) {
			out[n++] = v->text[i];
			if (v->text[i] == 0)
				out[n++] = (char)0xff;
		}
		out[n++] = 0x00;
		out[n++] = 0x00;
		return n;
	}
	switch (o->type) {
	case DESC_ORDER_TIMESTAMP:
		warn_field(c, e, path, v, "not an RFC 3339 timestamp");
		break;
	case DESC_ORDER_INTEGER:
		warn_field(c, e, path, v, "not an integer");
		break;
	case DESC_ORDER_STRING:
		warn_field(c, e, path, v, "not a string of at most 512 bytes");
		break;
	}
	out[0] = 0x01;
	return 1;
}

/* Streams the canonical bytes of one record in small pieces. */
typedef struct {
	int fd;
	uint64_t next;       /* next raw offset to read */
	uint64_t raw_left;   /* raw bytes not read yet */
	engine__canon canon;
	char raw[4096];
	char out[4096];
	size_t pos, len;     /* unconsumed canonical bytes in out */
} canon_stream;

static void canon_stream_init(canon_stream *cs, int fd,
			      const engine__record *r)
{
	memset(&cs->canon, 0, sizeof(cs->canon));
	cs->fd = fd;
	cs->next = r->offset;
	cs->raw_left = r->raw_len;
	cs->pos = cs->len = 0;
}

/* Refill cs->out; returns bytes available, 0 at the end, -errno. */
static ssize_t canon_stream_fill(canon_stream *cs)
{
	while (cs->pos == cs->len && cs->raw_left) {
		size_t want = cs->raw_left < sizeof(cs->raw) ? cs->raw_left :
							       sizeof(cs->raw);
		ssize_t n = engine__pread_full(cs->fd, cs->raw, want, cs->next);

		if (n < 0)
			return n;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		cs->next += (uint64_t)n;
		cs->raw_left -= (uint64_t)n;
		cs->len = engine__canon_chunk(&cs->canon, cs->raw, (size_t)n,
					      cs->out);
		cs->pos = 0;
	}
	return (ssize_t)(cs->len - cs->pos);
}

/*
 * Git blob id of a record's canonical bytes, as 40 hex digits, hashed as
 * they stream by (an entry may be up to ENGINE__MAX_ENTRY bytes).
 */
static int blob_key(int fd, const engine__record *r, char hex[41])
{
	canon_stream *cs = malloc(sizeof(*cs));
	engine__sha1_ctx sha;
	size_t got = 0;
	int rc = -EIO;

	if (!cs)
		return -ENOMEM;
	canon_stream_init(cs, fd, r);
	engine__git_blob_begin(&sha, r->canon_len);
	for (;;) {
		ssize_t n = canon_stream_fill(cs);

		if (n <= 0) {
			rc = (int)n;
			break;
		}
		engine__sha1_update(&sha, cs->out + cs->pos, (size_t)n);
		got += (size_t)n;
		cs->pos = cs->len;
	}
	/* The file changed under the scan if the length is not the one
	 * it reported. */
	if (rc == 0 && got != r->canon_len)
		rc = -EIO;
	if (rc == 0)
		engine__sha1_final_hex(&sha, hex);
	free(cs);
	return rc;
}

/*
 * An entry with none of the key paths usable (present as a non-empty
 * string): named all, at the first one present, else at the entry.
 */
static void warn_no_key(load_ctx *c, const engine__entry *e,
			const char *blobkey)
{
	const desc_descriptor *d = c->desc;
	unsigned long line = e->line, column = e->column;
	size_t i, size = 1, at = 0;
	char *names;

	for (i = d->nkeys; i-- > 0;) {
		if (e->values[i].kind != ENGINE__VAL_ABSENT) {
			line = e->values[i].line;
			column = e->values[i].column;
		}
		size += strlen(d->keys[i].text) + 4;
	}
	if (!(names = malloc(size)))
		return;
	names[0] = '\0';
	for (i = 0; i < d->nkeys; i++)
		at += (size_t)snprintf(names + at, size - at, "%s%s",
				       i == 0 ? "" :
				       i + 1 == d->nkeys ? " or " : ", ",
				       d->keys[i].text);
	(void)engine_problems_add(&c->src->problems, ENGINE_WARNING,
				  c->src->name, line, column,
				  "entry has no usable %s: keyed by its content "
				  "as %s", names, blobkey);
	free(names);
}

static int on_entry(void *ctx, const engine__entry *e)
{
	load_ctx *c = ctx;
	engine__source *s = c->src;
	const desc_descriptor *d = c->desc;
	char blob[DESC_MAX_FIELDS * (2 * ENGINE__VALUE_MAX + 16)];
	char blobkey[6 + 41];
	unsigned char packed[ENGINE__UUID_PACKED];
	const char *key = NULL;
	size_t key_len = 0, blob_len = 0, sort_len = 0, i;
	engine__record *r;
	int rc;

	if (engine__big_reserve(&s->records_map,
				(s->nrecords + 1) * sizeof(*r)) < 0)
		return -ENOMEM;
	s->records = s->records_map.base;
	r = &s->records[s->nrecords];
	r->offset = e->offset;
	r->raw_len = (uint32_t)e->raw_len;
	r->canon_len = (uint32_t)e->canon_len;

	for (i = 0; i < d->nkeys; i++) {
		const engine__value *v = &e->values[i];
		if (v->kind == ENGINE__VAL_STRING && !v->truncated && v->len) {
			key = v->text;
			key_len = v->len;
			break;
		}
	}
	if (!key) {
		memcpy(blobkey, "~blob:", 6);
		rc = blob_key(s->orig_fd, r, blobkey + 6);
		if (rc < 0)
			return rc;
		key = blobkey;
		key_len = 46;
		if (c->warnings++ < SOURCE_MAX_WARNINGS)
			warn_no_key(c, e, blobkey);
	}
	for (i = 0; i < d->norder; i++) {
		size_t n = encode_field(c, e, &d->order[i],
					&e->values[d->nkeys + i],
					blob + blob_len);
		if (i == 0)
			sort_len = n;
		blob_len += n;
	}
	r->key_hash = engine__key_hash(key, key_len);
	r->key_packed = (uint16_t)engine__key_pack(key, key_len, packed);
	if (r->key_packed) {
		key = (const char *)packed;
		key_len = sizeof(packed);
	}
	if ((rc = arena_reserve(s, key_len + blob_len)) < 0)
		return rc;
	r->key_off = (uint32_t)s->arena_len;
	r->key_len = (uint16_t)key_len;
	r->blob_len = (uint16_t)blob_len;
	r->sort_len = (uint16_t)sort_len;
	memcpy(s->arena + s->arena_len, key, key_len);
	memcpy(s->arena + s->arena_len + key_len, blob, blob_len);
	s->arena_len += key_len + blob_len;
	s->nrecords++;
	return 0;
}

int engine_same_file_state(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void source_reset_scan(engine__source *s)
{
	engine__big_free(&s->records_map);
	engine__big_free(&s->arena_map);
	s->records = NULL;
	s->arena = NULL;
	s->nrecords = s->arena_len = 0;
	engine_problems_dispose(&s->problems);
	engine_problems_init(&s->problems);
	engine__prefix_hash_dispose(&s->prefix);
	memset(&s->mark, 0, sizeof(s->mark));
	s->nshared = 0;
	s->unreadable = 0;
}

static void scan_spec_of(const desc_descriptor *desc, engine__scan_spec *spec)
{
	size_t i;

	spec->npaths = 0;
	for (i = 0; i < desc->nkeys; i++)
		spec->paths[spec->npaths++] = &desc->keys[i];
	for (i = 0; i < desc->norder; i++)
		spec->paths[spec->npaths++] = &desc->order[i].path;
}

/*
 * Scan the open file into s's records from `from` (NULL: the start, else
 * s holds the records and problems before it), through `read`, leaving
 * the last mark in s->mark when `marks`.
 * @return what engine__scan_from() returns
 */
static int source_scan_into(engine__source *s, const desc_descriptor *desc,
			    engine__read_fn read, void *read_ctx,
			    const engine__scan_mark *from, int marks)
{
	engine__scan_spec spec;
	load_ctx c = { .src = s, .desc = desc,
		       .warnings = from ? from->counted : 0 };
	int rc;

	scan_spec_of(desc, &spec);
	spec.mark_count = &c.warnings;
	s->cut_short = 0; /* the end is scanned again, resumed or not */
	spec.cut_short = &s->cut_short;
	rc = engine__scan_from(read, read_ctx, ENGINE__CHUNK, s->name, &spec,
			       on_entry, &c, &s->problems, from,
			       marks ? &s->mark : NULL);
	if (rc != -ENOMEM && c.warnings > SOURCE_MAX_WARNINGS)
		(void)engine__problems_add_more(
			&s->problems, ENGINE_WARNING, s->name,
			c.warnings - SOURCE_MAX_WARNINGS, "warnings");
	return rc;
}

/* Is the open file still in the state it was scanned in? */
static int source_unchanged(const engine__source *s)
{
	struct stat now;

	return fstat(s->orig_fd, &now) == 0 &&
	       engine_same_file_state(&now, &s->orig_st);
}

/*
 * Make the scan's mark usable by a later load: only with the hashes of
 * every byte before the mark.  Called before the final check that the
 * file did not change while scanned.
 */
static int source_keep_mark(engine__source *s)
{
	int rc;

	if (s->mark.set) {
		rc = engine__prefix_hash_finish(&s->prefix, s->orig_fd,
						s->mark.offset);
		if (rc == 0)
			return 0;
		if (rc == -ENOMEM)
			return rc;
	}
	memset(&s->mark, 0, sizeof(s->mark));
	engine__prefix_hash_dispose(&s->prefix);
	return 0;
}

/*
 * Scan the open file; retried when the file changes while it is scanned,
 * so the records always describe one state of the file.  When it never
 * holds still, s->orig_st stays the stat from before the last scan: the
 * file no longer matches it, so a view of these records is not intact
 * (never served) and the next refresh scans the file again.
 */
static int source_scan(engine__source *s, const desc_descriptor *desc,
		       int flags)
{
	int marks = flags & ENGINE__SOURCE_MARKS;
	int attempt, rc = 0;

	for (attempt = 0; attempt < SOURCE_SCAN_ATTEMPTS; attempt++) {
		engine__hashing_read hashing = { s->orig_fd, &s->prefix, 0, 0,
						 0 };

		source_reset_scan(s);
		rc = source_scan_into(s, desc,
				      marks ? engine__read_fd_hashing :
					      engine__read_fd,
				      marks ? (void *)&hashing :
					      (void *)&s->orig_fd,
				      NULL, marks);
		if (rc == -ENOMEM)
			return rc;
		if (rc < 0) { /* a read error, already reported as a problem */
			s->unreadable = 1;
			break;
		}
		if ((rc = source_keep_mark(s)) < 0)
			return rc;
		if (source_unchanged(s) || attempt == SOURCE_SCAN_ATTEMPTS - 1)
			break;
		/* changed while scanning: again */
		if (fstat(s->orig_fd, &s->orig_st) < 0)
			break;
	}
	return 0;
}

static atomic_ulong source_resumes;

unsigned long engine__source_resumes(void)
{
	return atomic_load(&source_resumes);
}

/* Take the first `prev->mark.entries` records of prev, the problems
 * before its mark, and its hashes. */
static int source_copy_prefix(engine__source *s, const engine__source *prev)
{
	size_t n = prev->mark.entries;
	size_t arena_len = n < prev->nrecords ? prev->records[n].key_off :
						prev->arena_len;
	size_t nblocks = prev->prefix.n;

	if (engine__big_reserve(&s->records_map,
				(n + 1) * sizeof(*s->records)) < 0 ||
	    engine__big_reserve(&s->arena_map, arena_len + 1) < 0)
		return -ENOMEM;
	s->records = memcpy(s->records_map.base, prev->records,
			    n * sizeof(*s->records));
	s->arena = memcpy(s->arena_map.base, prev->arena, arena_len);
	s->nrecords = n;
	s->arena_len = arena_len;
	s->prefix.blocks = malloc((nblocks ? nblocks : 1) * sizeof(uint64_t));
	if (!s->prefix.blocks)
		return -ENOMEM;
	if (nblocks) /* a file under 256 KiB has none */
		memcpy(s->prefix.blocks, prev->prefix.blocks,
		       nblocks * sizeof(uint64_t));
	s->prefix.n = s->prefix.cap = nblocks;
	return engine__problems_extend_n(&s->problems, &prev->problems,
					 prev->mark.problems);
}

/*
 * Host files grow by appending: when the file still begins with the bytes
 * prev scanned up to its mark, keep prev's records of them and scan only
 * from the mark on.
 * @return 1 done, 0 not possible (s is left to a full scan), or -ENOMEM
 */
static int source_resume(engine__source *s, const engine__source *prev,
			 const desc_descriptor *desc, int flags)
{
	engine__hashing_read hashing = {
		s->orig_fd, &s->prefix,
		(size_t)(prev->mark.offset % ENGINE__CHUNK), prev->prefix.tail, 0
	};
	int rc;

	if (!prev->mark.set ||
	    (uint64_t)s->orig_st.st_size < prev->mark.offset)
		return 0;
	rc = engine__prefix_hash_matches(&prev->prefix, s->orig_fd,
					 flags & ENGINE__SOURCE_ALONE ?
						 SIZE_MAX : 1);
	if (rc <= 0)
		return rc == -ENOMEM ? rc : 0;
	if ((rc = source_copy_prefix(s, prev)) < 0)
		return rc;
	rc = source_scan_into(s, desc, engine__read_fd_hashing, &hashing,
			      &prev->mark, 1);
	if (rc == -ENOMEM)
		return rc;
	if (!s->mark.set)
		s->mark = prev->mark; /* nothing new: resume there again */
	if (rc < 0 || hashing.first_differs ||
	    (rc = source_keep_mark(s)) < 0 || !source_unchanged(s)) {
		source_reset_scan(s);
		return rc == -ENOMEM ? rc : 0;
	}
	s->nshared = prev->mark.entries;
	atomic_fetch_add(&source_resumes, 1);
	return 1;
}

int engine__source_load(engine__source **out, int dirfd, const char *name,
			const desc_descriptor *desc,
			const engine__source *prev, int flags)
{
	engine__source *s;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->refs = 1;
	s->orig_fd = s->copy_fd = s->fd = -1;
	engine_problems_init(&s->problems);
	s->name = strdup(name);
	if (!s->name) {
		engine__source_unref(s);
		return -ENOMEM;
	}
	s->orig_fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (s->orig_fd < 0 || fstat(s->orig_fd, &s->orig_st) < 0) {
		/*
		 * Out of fds or memory says nothing about the file: fail the
		 * merge rather than leave the file's entries out of it.
		 */
		if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
			rc = -errno;
			goto done;
		}
		s->unreadable = 1;
		rc = engine_problems_add(&s->problems, ENGINE_ERROR, name, 0, 0,
					 "cannot read: %s", strerror(errno));
		goto done;
	}
	if (!S_ISREG(s->orig_st.st_mode)) {
		s->unreadable = 1;
		rc = engine_problems_add(&s->problems, ENGINE_ERROR, name, 0, 0,
					 "not a regular file");
		goto done;
	}
	s->fd = s->orig_fd;
	rc = prev ? source_resume(s, prev, desc, flags) : 0;
	if (rc == 0)
		rc = source_scan(s, desc, flags);
	else if (rc == 1)
		rc = 0;
done:
	if (rc < 0) {
		engine__source_unref(s);
		return rc;
	}
	*out = s;
	return 0;
}

engine__source *engine__source_ref(engine__source *s)
{
	if (s)
		atomic_fetch_add((_Atomic long *)&s->refs, 1);
	return s;
}

void engine__source_unref(engine__source *s)
{
	if (!s || atomic_fetch_sub((_Atomic long *)&s->refs, 1) != 1)
		return;
	if (s->orig_fd >= 0)
		close(s->orig_fd);
	if (s->copy_fd >= 0)
		close(s->copy_fd);
	source_reset_scan(s);
	engine_problems_dispose(&s->problems);
	free(s->name);
	free(s);
}

/* Guards the switch of a source to its private copy. */
static pthread_mutex_t preserve_lock = PTHREAD_MUTEX_INITIALIZER;

int engine__source_fd(engine__source *s, struct stat *expect)
{
	int fd = atomic_load((_Atomic int *)&s->fd);

	*expect = fd == s->orig_fd ? s->orig_st : s->copy_st;
	return fd;
}

int engine__source_check(int fd, const struct stat *expect)
{
	struct stat now;

	/*
	 * Not ctime: renaming another file over this one, or unlinking it,
	 * changes its ctime but not a byte of it, and that is exactly how
	 * editors and git replace host files under open readers.  A rewrite
	 * in place changes the size or the mtime.
	 */
	if (fd < 0 || fstat(fd, &now) < 0 || now.st_ino != expect->st_ino ||
	    now.st_size != expect->st_size ||
	    now.st_mtim.tv_sec != expect->st_mtim.tv_sec ||
	    now.st_mtim.tv_nsec != expect->st_mtim.tv_nsec)
		return -EIO;
	return 0;
}

/*
 * An unlinked scratch file for a preserved copy.  It lives in the temp
 * directory: a source does not know its directory, and the copy must not
 * appear in the backing directory anyway.
 */
static int open_private_copy(void)
{
	const char *dir = getenv("TMPDIR");
	int fd = open(dir && *dir ? dir : "/tmp",
		      O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	return fd < 0 ? -errno : fd;
}

int engine__source_preserve(engine__source *s)
{
	off_t off = 0;
	struct stat st;
	int fd = -1, rc = 0;

	pthread_mutex_lock(&preserve_lock);
	if (s->copy_fd >= 0 || s->orig_fd < 0)
		goto out;
	if (engine__source_check(s->orig_fd, &s->orig_st) < 0) {
		rc = -EIO; /* already rewritten: nothing left to keep */
		goto out;
	}
	if ((fd = open_private_copy()) < 0) {
		rc = fd;
		goto out;
	}
	while (off < s->orig_st.st_size) {
		ssize_t n = sendfile(fd, s->orig_fd, &off,
				     (size_t)(s->orig_st.st_size - off));
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto out;
		}
	}
	if (engine__source_check(s->orig_fd, &s->orig_st) < 0 ||
	    fstat(fd, &st) < 0) {
		rc = -EIO;
		goto out;
	}
	s->copy_st = st;
	s->copy_fd = fd;
	fd = -1;
	atomic_store((_Atomic int *)&s->fd, s->copy_fd);
out:
	if (fd >= 0)
		close(fd);
	pthread_mutex_unlock(&preserve_lock);
	return rc;
}

int engine__record_compare_canon(engine__source *a, const engine__record *ra,
				 engine__source *b, const engine__record *rb,
				 int *err)
{
	canon_stream *x = malloc(2 * sizeof(*x)), *y;
	struct stat ignored;
	int result = 0;

	if (!x) {
		*err = -ENOMEM;
		return 0;
	}
	y = x + 1;
	canon_stream_init(x, engine__source_fd(a, &ignored), ra);
	canon_stream_init(y, engine__source_fd(b, &ignored), rb);
	for (;;) {
		ssize_t nx = canon_stream_fill(x), ny = canon_stream_fill(y);
		size_t n;

		if (nx < 0 || ny < 0) {
			*err = (int)(nx < 0 ? nx : ny);
			break;
		}
		if (nx == 0 || ny == 0) {
			result = (nx > 0) - (ny > 0);
			break;
		}
		n = (size_t)(nx < ny ? nx : ny);
		result = memcmp(x->out + x->pos, y->out + y->pos, n);
		if (result)
			break;
		x->pos += n;
		y->pos += n;
	}
	free(x);
	return result;
}
