/* SPDX-License-Identifier: MIT */
/*
 * engine_i.h - declarations shared only inside engine/: the streaming
 * scanner, the canonicaliser and timestamp parsing.
 */
#ifndef CRDTFS_ENGINE_ENGINE_I_H
#define CRDTFS_ENGINE_ENGINE_I_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "engine.h"

/* Bytes read per chunk; the scanner never holds more than this of a file. */
#define ENGINE__CHUNK (256 * 1024)
/* Longest value (decoded string bytes or number text) kept for a field. */
#define ENGINE__VALUE_MAX 512
/* Deepest nesting accepted inside one file (the array counts as 1). */
#define ENGINE__MAX_DEPTH 1024
/* Largest entry accepted, in raw bytes (documented in README). */
#define ENGINE__MAX_ENTRY (16u * 1024 * 1024)
/* Most problems reported per file; later ones are counted in one line. */
#define ENGINE__MAX_FILE_PROBLEMS 20

/* ---- timestamps (clock.c) ---- */

typedef struct {
	int64_t sec;  /* seconds since 1970-01-01T00:00:00Z */
	int32_t nsec; /* 0..999999999 */
} engine__time;

/**
 * Parse an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.F]` then `Z` or
 * `+hh:mm`/`-hh:mm`.  `T` may be `t` or a space, `Z` may be `z`; F has 1 to
 * 9 digits; fields are range-checked (days per month, leap years; second
 * 60 is a leap second and counts as the next second).  Converted to UTC.
 * @return 0, or -EINVAL when `s` is not such a timestamp
 */
int engine__time_parse(engine__time *out, const char *s, size_t len);

/* ---- the scanner (scan.c) ---- */

typedef enum {
	ENGINE__VAL_ABSENT = 0, /* path not present in the entry */
	ENGINE__VAL_STRING,     /* text: decoded UTF-8 bytes (escapes undone) */
	ENGINE__VAL_NUMBER,     /* text: the number as written */
	ENGINE__VAL_OTHER       /* object, array, true, false or null */
} engine__value_kind;

typedef struct {
	engine__value_kind kind;
	int truncated;                  /* value longer than ENGINE__VALUE_MAX */
	unsigned long line, column;     /* where the value starts, when present */
	size_t len;                     /* bytes in text (<= VALUE_MAX) */
	char text[ENGINE__VALUE_MAX + 1]; /* NUL-terminated; may contain NULs */
} engine__value;

/*
 * The bytes of a merged file around its entries, per format: prefix,
 * entries joined by sep, suffix; or `empty` when there is no entry.  The
 * same for a host file `prepare` writes.
 */
typedef struct {
	const char *prefix, *sep, *suffix, *empty;
	size_t prefix_len, sep_len, suffix_len, empty_len;
} engine__layout;

const engine__layout *engine__layout_of(desc_format format);

/**
 * The format a file's bytes are in, by their first non-blank byte: '{'
 * JSON Lines, anything else a JSON array.  @return the format, or -1
 * when all `len` bytes are blanks (a caller reading in pieces goes on)
 */
int engine__format_of_bytes(const char *buf, size_t len);

/** What a scan is asked for. */
typedef struct {
	/* Paths whose values the scanner extracts from every entry. */
	const desc_path *paths[2 * DESC_MAX_FIELDS];
	size_t npaths;
	/* A count of the caller's (its own warnings, say), copied into every
	 * mark the scan sets as mark.counted; may be NULL. */
	const size_t *mark_count;
	/* Set to 1 when the file ends inside an entry (cut short, as a
	 * writer that died leaves it); may be NULL. */
	int *cut_short;
} engine__scan_spec;

/** One complete, valid JSON object found at the top level of a file. */
typedef struct {
	uint64_t offset;        /* byte offset of its '{' in the file */
	uint64_t raw_len;       /* bytes from '{' to the matching '}' */
	uint64_t canon_len;     /* raw_len less insignificant whitespace */
	unsigned long line;     /* 1-based line of the '{' */
	unsigned long column;   /* 1-based byte column of the '{' */
	engine__value values[2 * DESC_MAX_FIELDS]; /* parallel to spec paths;
						      the first occurrence
						      of a duplicated key
						      counts */
} engine__entry;

/**
 * Called for each entry; a negative return stops the scan with it.  The
 * entry is reused for the next one: copy what you keep.
 */
typedef int (*engine__entry_fn)(void *ctx, const engine__entry *e);

/**
 * Reads up to `size` bytes at `offset` into buf (pread semantics).
 * @return bytes read (0 at EOF) or -errno
 */
typedef ssize_t (*engine__read_fn)(void *ctx, char *buf, size_t size,
				   uint64_t offset);

/**
 * Scan one host file in chunks of `chunk` bytes (ENGINE__CHUNK in
 * production; tests use every size from 1 up).  The format is chosen by
 * the first non-blank byte: `[` a JSON array of objects, `{` JSON Lines
 * (one object per line, blank lines allowed), nothing at all an empty
 * file.  Every byte is validated (JSON grammar, UTF-8, no raw control
 * characters in strings, depth, entry size).
 *
 * Problems go to `probs` with `name`, line and column, as ENGINE_ERROR:
 * - an element that is not an object, or an object with a bad string
 *   inside (invalid UTF-8, control character, bad escape, lone
 *   surrogate), nested deeper than ENGINE__MAX_DEPTH, or too large:
 *   that element is skipped, scanning goes on;
 * - a grammar error in a JSON array: scanning stops there; entries
 *   before it were reported;
 * - a grammar error on a JSON Lines line: that line is skipped.
 * At most ENGINE__MAX_FILE_PROBLEMS are listed per file, then one line
 * saying how many more there were.
 *
 * @return number of entries reported, or -errno when reading failed
 *         (a problem is added too), -ENOMEM, or the callback's negative
 *         return
 */
int engine__scan(engine__read_fn read, void *read_ctx, size_t chunk,
		 const char *name, const engine__scan_spec *spec,
		 engine__entry_fn fn, void *fn_ctx, engine_problems *probs);

/**
 * A place where a scan can be resumed: just past a complete entry.
 * Scanning the file again from there (the bytes before it unchanged)
 * gives what a scan from the start would give after those entries: the
 * same entries, and the same problems after the first `problems` of the
 * list, which the caller keeps from the scan that set the mark (a resumed
 * scan does not report them again, but counts them against the file's
 * limit).
 */
typedef struct {
	uint64_t offset;         /* array: just past the entry's '}';
				    JSON Lines: at the LF that ended it */
	unsigned long line;      /* line of that byte */
	uint64_t line_start;     /* file offset of the line's first byte */
	size_t entries;          /* entries of the file before it */
	size_t problems;         /* length of the problem list then */
	size_t reported;         /* the scanner's problems before it: */
	size_t unreported;       /* listed, and past the file's limit */
	size_t counted;          /* *spec->mark_count then, or 0 */
	int jsonl;               /* the file is JSON Lines */
	int set;                 /* a mark was found */
} engine__scan_mark;

/**
 * engine__scan(), starting at `from` (NULL: the start of the file), and
 * leaving in *mark (may be NULL) the last place past a reported entry.
 * The return counts only the entries of this call.
 */
int engine__scan_from(engine__read_fn read, void *read_ctx, size_t chunk,
		      const char *name, const engine__scan_spec *spec,
		      engine__entry_fn fn, void *fn_ctx, engine_problems *probs,
		      const engine__scan_mark *from, engine__scan_mark *mark);

/**
 * Append "... and `more` `what` in this file", counting as `more` problems
 * (engine_problems_total).  @return 0 or -ENOMEM
 */
int engine__problems_add_more(engine_problems *p, engine_severity severity,
			      const char *file, size_t more, const char *what);
/** The first n problems of `from` appended to p.  @return 0 or -ENOMEM */
int engine__problems_extend_n(engine_problems *p, const engine_problems *from,
			      size_t n);

/*
 * Length of the valid UTF-8 sequence at p (2 to 4), or 0 when it is not
 * valid (no overlong form, surrogate or code point past U+10FFFF).  It
 * reads a byte only while the ones before it fit, so a NUL ends a
 * NUL-terminated string safely; in the scanner it may read up to 3 bytes
 * past p, which the padding allows, and a sequence cut by the sentinel is
 * 0 (the slow path tells the two apart).
 */
static inline int engine__utf8_len(const unsigned char *p)
{
	unsigned c = p[0];

	if (c < 0xC2)
		return 0;
	if (c < 0xE0)
		return (p[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c < 0xF0) {
		unsigned lo = c == 0xE0 ? 0xA0 : 0x80;
		unsigned hi = c == 0xED ? 0x9F : 0xBF;

		if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80)
			return 0;
		return 3;
	}
	if (c < 0xF5) {
		unsigned lo = c == 0xF0 ? 0x90 : 0x80;
		unsigned hi = c == 0xF4 ? 0x8F : 0xBF;

		if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 ||
		    (p[3] & 0xC0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

/* ---- 64-byte versions of the hot loops (cpu.c) ---- */

/*
 * Bytes of a 64-byte block escaped by a backslash, from its backslashes
 * `bs`: bit 0 when *carry (the previous block ended on an escaping
 * backslash), and the byte after each backslash that is not itself
 * escaped.  *carry becomes whether the next block's first byte is
 * escaped.  Branch-free, as in simdjson's escape scanner: subtracting the
 * run starts from the odd bits makes each run of backslashes carry into
 * the byte after it exactly when the run's length is odd.
 */
static inline uint64_t engine__escaped_bits(uint64_t bs, uint64_t *carry)
{
	const uint64_t odd = 0xaaaaaaaaaaaaaaaaull;
	uint64_t next = *carry, maybe, codes, escaping;

	if (!bs) { /* most blocks */
		*carry = 0;
		return next;
	}
	maybe = bs & ~next;
	codes = (((maybe << 1) | odd) - maybe) ^ odd;
	escaping = codes & bs;
	*carry = escaping >> 63;
	return codes ^ (bs | next);
}

/** May the AVX-512 versions of the scanner's and canonicaliser's loops
 *  run here?  Asked once, then remembered. */
int engine__cpu_wide(void);
/** Tests: allow (when the CPU has them) or forbid the wide versions from
 *  now on.  @return whether they will run */
int engine__cpu_wide_allow(int allow);

/* ---- the canonicaliser (canon.c) ---- */

/** State carried between chunks of one entry's raw bytes. */
typedef struct {
	int in_string; /* inside a string literal */
	int escaped;   /* the previous byte was a backslash inside a string */
} engine__canon;

/**
 * Copy `in` to `out` (room for n bytes) leaving out whitespace that lies
 * outside string literals.  Input must be valid JSON (the scanner checked
 * it), cut into chunks anywhere.
 * @return bytes written to out
 */
size_t engine__canon_chunk(engine__canon *st, const char *in, size_t n,
			   char *out);
/* The two versions engine__canon_chunk chooses from (for tests): wide
 * needs engine__cpu_wide(). */
size_t engine__canon_chunk_narrow(engine__canon *st, const char *in,
				  size_t n, char *out);
size_t engine__canon_chunk_wide(engine__canon *st, const char *in, size_t n,
				char *out);

/* ---- big growable arrays (bigarray.c) ---- */

/** An array in its own mapping; zero-initialise, then reserve. */
typedef struct {
	void *base;    /* mapping, NULL until the first reserve */
	size_t cap;    /* bytes usable */
	size_t mapped; /* bytes mapped, >= cap */
	size_t populated; /* leading bytes already faulted in */
} engine__big;

/**
 * Make room for `need` bytes, keeping the contents (the base may move).
 * New bytes are unspecified (a mapping may be reused from the pool).
 * @return 0 or -ENOMEM (the array is unchanged)
 */
int engine__big_reserve(engine__big *b, size_t need);
/**
 * Release the array; it can be reserved again.  Large mappings are kept
 * in a small process-wide pool for the next reserve (see bigarray.c).
 */
void engine__big_free(engine__big *b);

/* ---- writing files (replace.c) ---- */

/** Write all of buf to fd, retrying short writes.  @return 0 or -errno */
int engine__write_all(int fd, const char *buf, size_t len);

/**
 * Replace `path` atomically with what fill(ctx, fd) writes: a hidden temp
 * file beside it, fsync, rename over path, fsync the directory.  The file
 * keeps path's mode, or gets `new_mode` when path did not exist.
 * *written (may be NULL) receives the new file's status, taken after the
 * rename.  On failure path is untouched and the temp file is gone.
 * @return 0, fill's negative return, or -errno
 */
int engine__replace_file(const char *path, mode_t new_mode,
			 int (*fill)(void *ctx, int fd), void *ctx,
			 struct stat *written);
/**
 * Whether a file may be replaced or removed, asked about the file itself
 * once it is out of the way (`displaced`: its temporary name), or with
 * NULL when there was none.  @return 1 yes, 0 no (it is put back)
 */
typedef int (*engine__check_fn)(void *ctx, const char *displaced);
/**
 * engine__replace_file() that replaces only what check() accepts; see
 * replace.c.  check NULL: replace anything.
 * @return 0, -ESTALE (refused; path was put back), fill's error, -errno
 */
int engine__replace_file_if(const char *path, mode_t new_mode,
			    int (*fill)(void *ctx, int fd), void *ctx,
			    struct stat *written, engine__check_fn check,
			    void *cctx);
/** engine__replace_file_if() with `len` bytes from memory. */
int engine__replace_file_bytes(const char *path, mode_t new_mode,
			       const char *data, size_t len,
			       struct stat *written, engine__check_fn check,
			       void *cctx);
/**
 * The file name a hidden temp file of this module (".NAME.tmp.XXXXXX" or
 * ".NAME.del.XXXXXX", in NAME's directory) stands beside, into out.
 * @return 1, or 0 when `name` is not one (or NAME does not fit)
 */
int engine__hidden_of(const char *name, char *out, size_t size);
/** Remove `path` if check() accepts it.  @return 0, -ESTALE, -errno */
int engine__remove_file_if(const char *path, engine__check_fn check,
			   void *cctx);

/* ---- parallel jobs (parallel.c) ---- */

/**
 * pthread_create() with every signal blocked in the new thread, so that
 * signals meant for the process reach the threads that handle them.  The
 * thread starts on the index'th CPU after the caller's (the caller's own
 * comes last), then may run anywhere: helpers 0, 1, ... of one caller
 * start on different CPUs instead of waiting for the kernel to spread them.
 * @return 0 or an error number
 */
int engine__thread_start(pthread_t *tid, size_t index, void *(*fn)(void *),
			 void *arg);

/** Threads engine__parallel_run() would use for `jobs` jobs. */
size_t engine__parallel_threads(size_t jobs);

/**
 * Call fn(ctx, i) for every i in [0, n), on up to a few threads (the
 * caller's included); returns when all calls have returned.  Calls run
 * concurrently, so fn must only touch what job i owns.
 */
void engine__parallel_run(size_t n, void (*fn)(void *ctx, size_t i),
			  void *ctx);

/* ---- batched reads (batch.c) ---- */

typedef struct {
	int fd;
	char *dst;     /* room for len bytes */
	size_t len;
	uint64_t off;
} engine__read_op;

/**
 * pread() until `size` bytes or end of file, retrying interrupted and
 * short reads.  @return bytes read (fewer only at end of file) or -errno
 */
ssize_t engine__pread_full(int fd, char *buf, size_t size, uint64_t off);

/** An engine__read_fn reading the fd that ctx points to. */
ssize_t engine__read_fd(void *ctx, char *buf, size_t size, uint64_t offset);

/**
 * Read every op in full, by one io_uring submission or by pread calls,
 * whichever this thread has measured to be cheaper (pread alone where
 * io_uring is unavailable).
 * @return 0, -EIO when a file ended before an op's range, or -errno
 */
int engine__read_batch(const engine__read_op *ops, size_t n);

/** Batches engine__read_batch() has done each way so far (for tests). */
void engine__read_batch_ways(unsigned long *pread, unsigned long *ring);

/* ---- hashes of a file's leading bytes (blockhash.c) ---- */

/** 64-bit non-cryptographic hash of n bytes. */
uint64_t engine__hash64(const void *p, size_t n);

/**
 * Hashes of [0, end) of a file as a scan read it: ENGINE__CHUNK-byte
 * blocks, then the tail of the last one.
 */
typedef struct {
	uint64_t *blocks; /* owned: n blocks from offset 0 */
	size_t n, cap;
	size_t short_len; /* while scanning: a short read at block n (the */
	uint64_t short_hash; /* file's end), its length and hash */
	uint64_t end;     /* bytes covered, once finished */
	uint64_t tail;    /* hash of [n * ENGINE__CHUNK, end) */
} engine__prefix_hash;

/**
 * An engine__read_fn (ctx: engine__hashing_read) that hashes every block
 * a scan reads, in order from a block boundary (the scan of a file from
 * its start, or resumed at a mark; see engine__scan_from()).
 */
typedef struct {
	int fd;
	engine__prefix_hash *h; /* blocks before the first read already in */
	/* A resumed scan re-reads the block its mark is in: those first
	 * bytes must still hash as the scan before read them. */
	size_t first_len;
	uint64_t first_hash;
	int first_differs; /* set when they did not */
} engine__hashing_read;
ssize_t engine__read_fd_hashing(void *ctx, char *buf, size_t size,
				uint64_t offset);
/**
 * After a scan through engine__read_fd_hashing: keep the hashes of
 * [0, end) only.  The tail is hashed from the block re-read, which must
 * still hash as the scan read it, so the hashes describe exactly the
 * bytes the scan saw.
 * @return 0, -ESTALE when the file changed since, -EIO when the scan
 *         did not read [0, end) in whole blocks, or -errno
 */
int engine__prefix_hash_finish(engine__prefix_hash *h, int fd, uint64_t end);
/**
 * Do fd's bytes [0, h->end) still hash as h?  Blocks are checked on up to
 * `threads` threads (1: the caller's only).  @return 1 yes, 0 no, or -errno
 */
int engine__prefix_hash_matches(const engine__prefix_hash *h, int fd,
				size_t threads);
void engine__prefix_hash_dispose(engine__prefix_hash *h);

/* ---- scanned sources (source.c) ---- */

/*
 * One complete valid entry of a source, as the merge needs it: where its
 * bytes are, and its key and order blob in the source's arena.  The order
 * blob encodes the descriptor's order fields so that memcmp() of two blobs
 * is the comparison of the order tuples (see source.c).
 */
typedef struct {
	uint64_t offset;    /* of the '{' in the file */
	uint32_t raw_len;   /* bytes '{'..'}' (<= ENGINE__MAX_ENTRY) */
	uint32_t canon_len; /* raw_len less whitespace outside strings */
	uint32_t key_off;   /* key bytes at arena + key_off */
	uint16_t key_len;   /* bytes stored (16 when packed) */
	uint16_t blob_len;  /* order blob follows the key in the arena */
	uint16_t sort_len;  /* leading blob bytes encoding the first field */
	uint16_t key_packed; /* the key is a UUID stored in 16 bytes */
	uint32_t key_hash;  /* engine__key_hash() of the key's text */
} engine__record;

/* ---- keys as stored (key.c) ---- */

#define ENGINE__UUID_TEXT 36
#define ENGINE__UUID_PACKED 16

/**
 * Pack `text` into 16 bytes when it is a UUID spelled in lowercase with
 * its four dashes.  @return 1 packed, 0 not a UUID (out unspecified)
 */
int engine__key_pack(const char *text, size_t len,
		     unsigned char out[ENGINE__UUID_PACKED]);
/**
 * The text of a stored key: `stored` itself, or unpacked into buf.
 * *len receives the text's length.
 */
const char *engine__key_text(const char *stored, size_t stored_len,
			     int packed, char buf[ENGINE__UUID_TEXT],
			     size_t *len);
/**
 * Compare two stored keys as their texts compare: bytewise, a prefix
 * first.  Equal stored keys (same packing, length and bytes) are equal
 * texts and the other way round, so equality needs no unpacking.
 */
int engine__key_cmp(const char *a, size_t an, int ap, const char *b,
		    size_t bn, int bp);

/** Are the keys of records a and b (stored at ka and kb) the same? */
static inline int engine__key_same(const engine__record *a, const char *ka,
				   const engine__record *b, const char *kb)
{
	return a->key_packed == b->key_packed && a->key_len == b->key_len &&
	       memcmp(ka, kb, a->key_len) == 0;
}

/** Hash of a record's key bytes, kept in the record for the merge. */
static inline uint32_t engine__key_hash(const char *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
	uint64_t w;

	while (n >= 8) {
		__builtin_memcpy(&w, p, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
		p += 8;
		n -= 8;
	}
	w = 0;
	__builtin_memcpy(&w, p, n);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
	return (uint32_t)(h ^ (h >> 29) ^ (h >> 40));
}

/*
 * A host file as scanned: immutable once built except for the fd, which
 * engine_view_preserve_inode() may switch to a private copy.  Shared by
 * the merge and every view built from it; refcounted.
 */
typedef struct {
	long refs;               /* atomic */
	char *name;              /* owned, relative to the backing root */
	int orig_fd;             /* the file as scanned */
	struct stat orig_st;     /* its identity when scanned */
	int copy_fd;             /* private copy, -1 until preserved */
	struct stat copy_st;     /* identity of the copy */
	int fd;                  /* atomic: the fd to read (orig or copy) */
	int dirty;               /* marked by engine_merge_invalidate() */
	int unreadable;          /* not opened, or a read failed: reported
				    as a problem, entries may be missing */
	int cut_short;           /* its last scan ended inside an entry */
	engine__record *records; /* nrecords in file order, in records_map */
	size_t nrecords;
	char *arena;             /* keys and order blobs, in arena_map */
	size_t arena_len;
	engine__big records_map; /* owned */
	engine__big arena_map;   /* owned */
	engine_problems problems;
	/* Appends: a later scan resumes at `mark` if [0, mark) still hashes
	 * as `prefix` (set when loaded with ENGINE__SOURCE_MARKS). */
	size_t nshared;           /* leading records copied from the scan
				     this one resumed (the merge's current
				     source of that name), else 0 */
	engine__scan_mark mark;   /* mark.set: resumable; mark.counted is
				     this file's warnings before it */
	engine__prefix_hash prefix;
} engine__source;

/* Flags of engine__source_load(). */
#define ENGINE__SOURCE_MARKS 1 /* hash what is scanned, to resume later */
#define ENGINE__SOURCE_ALONE 2 /* the only load of its refresh: it may use
				  every CPU (others already run in parallel) */

/** How many source loads so far resumed a previous scan (for tests). */
unsigned long engine__source_resumes(void);

/**
 * Open `name` relative to dirfd (no symlinks), scan it and build its
 * records.  Problems go into the new source (a source that cannot be
 * opened or read still comes back, empty, with the problem).  `prev`
 * (may be NULL) is the previous scan of the same name with the same
 * descriptor: when it is resumable and the file still begins with the
 * bytes it scanned, only what follows them is scanned.
 * @return 0 or -ENOMEM
 */
int engine__source_load(engine__source **out, int dirfd, const char *name,
			const desc_descriptor *desc,
			const engine__source *prev, int flags);
engine__source *engine__source_ref(engine__source *s);
void engine__source_unref(engine__source *s);
/** The fd to read now and the stat it must still match. */
int engine__source_fd(engine__source *s, struct stat *expect);
/** 0 when fd still matches `expect` (same size, mtime, ctime), else -EIO. */
int engine__source_check(int fd, const struct stat *expect);
/** Copy the source's bytes to a private file (see preserve_inode). */
int engine__source_preserve(engine__source *s);

/**
 * Compare the canonical bytes of two records bytewise, streaming.
 * @return <0, 0, >0 like memcmp, or sets *err to -EIO on a read failure
 */
int engine__record_compare_canon(engine__source *a, const engine__record *ra,
				 engine__source *b, const engine__record *rb,
				 int *err);

/** How many refreshes so far were incremental updates (for tests). */
unsigned long engine__merge_updates(void);

/* ---- views (view.c, built by merge.c) ---- */

/*
 * One entry of the merged output, 16 bytes: which record of which source
 * it is (the record has its offset and raw length; the view holds the
 * sources, so their records outlive it), and what the layout and updates
 * need without touching the record.  Where an entry starts in the output
 * is kept only for every 64th slot (see view.c).
 */
typedef struct {
	uint64_t src : 24;       /* index into the view's sources (a merge
				    reference has 24 bits for it too) */
	uint64_t canon_len : 25; /* <= ENGINE__MAX_ENTRY, 2^24 */
	uint32_t rec;            /* index into that source's records */
	uint32_t key_hash;       /* of the entry's key: lets an update skip
				    reading the records of unaffected keys */
} engine__slot;

/**
 * Build a view from sorted winners.  Takes the array `slots` (n of them;
 * left empty) and references on the sources.
 * @return 0 or -ENOMEM (slots freed)
 */
int engine__view_new(engine_view **out, const desc_descriptor *desc,
		     engine__source **sources, size_t nsources,
		     engine__big *slots, size_t n, uint64_t generation,
		     const engine_problems *extra_problems);
void engine__view_set_build_seconds(engine_view *v, double seconds);
/** The slots of a view in output order (n of them), for an update. */
const engine__slot *engine__view_slots(const engine_view *v, size_t *n);

#endif
