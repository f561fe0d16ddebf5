/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the merge engine: scanning host files, indexing entries,
 * merging them by a merge descriptor, and serving the merged bytes.
 *
 * The only header other folders include from engine/.
 *
 * Life of a merged file:
 *   engine_merge_new()      one per descriptor; remembers per-source scans
 *   engine_merge_refresh()  rescans only sources whose identity (inode,
 *                           size, mtime, ctime) changed or that were marked
 *                           dirty, and hands out the current engine_view
 *   engine_view             an immutable generation: sorted winners laid
 *                           out as byte ranges of the per-host files, held
 *                           open by fd; refcounted, safe to share between
 *                           threads
 *   engine_reader           one per open file: streams the bytes of one
 *                           view in chunks; never builds the file in memory
 *
 * Merge semantics (default descriptor): entries grouped by key; the winner
 * of a group is the maximum under (order fields..., canonical bytes).  The
 * output is sorted by (first order field, key).  Each output entry is its
 * source entry with insignificant whitespace removed.  The result depends
 * only on the set of entries, never on file order, formatting or
 * duplication.
 *
 * Threading: an engine_merge is not thread-safe (callers hold a lock);
 * views are immutable and their refcount is atomic; concurrent reads of
 * one reader run in parallel, up to one per CPU.  The engine never logs:
 * problems are returned as data.
 */
#ifndef CRDTFS_ENGINE_ENGINE_H
#define CRDTFS_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "desc.h"

#define CRDTFS_MUST_CHECK __attribute__((warn_unused_result))

/* ---- problems: what was wrong with the input, as data ---- */

typedef enum { ENGINE_WARNING, ENGINE_ERROR } engine_severity;

typedef struct {
	char *file;            /* owned; path as the user knows it */
	unsigned long line;    /* 1-based; 0 when the problem has no position */
	unsigned long column;  /* 1-based byte column; 0 when none */
	engine_severity severity;
	char *message;         /* owned; no trailing newline */
	size_t stands_for;     /* problems it counts for: 1, or N for a line
				  "... and N more problems in this file" */
} engine_problem;

typedef struct {
	engine_problem *items; /* owned array of count problems */
	size_t count;
	size_t cap;
} engine_problems;

void engine_problems_init(engine_problems *p);
void engine_problems_dispose(engine_problems *p);

/**
 * Append a problem; the message is printf-formatted.
 * @return 0, or -ENOMEM
 */
int engine_problems_add(engine_problems *p, engine_severity severity,
			const char *file, unsigned long line,
			unsigned long column, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/** Problems p counts, those a summary line stands for included. */
size_t engine_problems_total(const engine_problems *p);

/** Append copies of every problem in `from`. @return 0 or -ENOMEM */
int engine_problems_extend(engine_problems *p, const engine_problems *from);

/**
 * Format as `file:line:column: error: message` (line and column left out
 * when 0) into buf, always NUL-terminated, control characters (from file
 * names) written as \xHH.
 */
void engine_problem_format(const engine_problem *pr, char *buf, size_t size);

/**
 * Copy text `s` into out (NUL-terminated, cut to `size` whole characters)
 * with control characters and bytes that are not UTF-8 written as \xHH,
 * as engine_problem_format() writes file names.  4 * strlen(s) + 2 bytes
 * always suffice.
 */
void engine_escape_text(char *out, size_t size, const char *s);

/**
 * True when two stats describe the same file in the same state: device,
 * inode, size, mtime and ctime all equal (the signature by which a scan
 * is reused).
 */
int engine_same_file_state(const struct stat *a, const struct stat *b);

/* ---- views: one immutable generation of a merged file ---- */

typedef struct engine_view engine_view;

/** Per-source facts of a view, for the status file. */
typedef struct {
	const char *name;   /* relative to the backing root; lives with view */
	size_t entries;     /* complete valid entries scanned in this source */
	size_t problems;    /* problems found in this source (all of them,
			       listed or not) */
	int unreadable;     /* it could not be opened or read to the end:
			       entries of it may be missing */
	int cut_short;      /* it ends inside an entry (a writer died) */
} engine_source_info;

engine_view *engine_view_ref(engine_view *v);
/** Drop a reference; the last one closes the source fds.  NULL is fine. */
void engine_view_unref(engine_view *v);

/** Exact byte size of the merged file. */
uint64_t engine_view_size(const engine_view *v);
/** Generation number, increasing by one per rebuild of one engine_merge. */
uint64_t engine_view_generation(const engine_view *v);
/** Wall-clock time this generation was built (its mtime). */
struct timespec engine_view_mtime(const engine_view *v);
/** Entries in the merged output. */
size_t engine_view_entries(const engine_view *v);
/** Seconds the last (re)materialisation of this view took. */
double engine_view_build_seconds(const engine_view *v);
/** Every problem found in the sources of this view. Lives with view. */
const engine_problems *engine_view_problems(const engine_view *v);
size_t engine_view_nsources(const engine_view *v);
engine_source_info engine_view_source(const engine_view *v, size_t i);
/** The descriptor this view was built from (borrowed from the merge). */
const desc_descriptor *engine_view_descriptor(const engine_view *v);
/** True when the view reads the backing file (dev, ino). */
int engine_view_uses_inode(const engine_view *v, dev_t dev, ino_t ino);

/**
 * True when every source of the view still holds the bytes the view was
 * built from (same inode, size and mtime, or a private copy).
 */
int engine_view_intact(const engine_view *v);

/**
 * Before backing file (dev, ino) is rewritten in place through the mount:
 * if this view reads it, copy its current bytes to a private unlinked file
 * and read from that copy from now on, so open readers keep one
 * consistent generation.  Views sharing the source share the copy.
 * @return 0, or -errno when the copy failed (the view is then unchanged)
 */
int engine_view_preserve_inode(engine_view *v, dev_t dev, ino_t ino);

/**
 * Write the whole merged file to fd, streaming in chunks: chunks are
 * produced by up to one thread per CPU and written in order by the
 * calling thread.  Memory stays bounded (a few MiB).
 * @return 0, -EIO when a source changed under the view, or -errno of
 *         a failed write
 */
int engine_view_write(const engine_view *v, int fd) CRDTFS_MUST_CHECK;

/* ---- readers: one per open file ---- */

typedef struct engine_reader engine_reader;

/** Start reading `v` (takes its own reference). @return 0 or -ENOMEM */
int engine_reader_new(engine_reader **out, engine_view *v);
void engine_reader_free(engine_reader *r);
engine_view *engine_reader_view(const engine_reader *r);

/**
 * Copy up to `size` bytes at `offset` into buf.  Short only at EOF; 0 past
 * EOF.  Sequential reads are O(size): the reader remembers where it was.
 * Thread-safe: concurrent reads of one reader run in parallel on up to
 * one cursor per CPU (a cursor's state is made on the first contended
 * read), later ones wait for a cursor.
 * @return bytes copied, or -EIO when a source was rewritten in place under
 *         the view (its bytes are gone), or another -errno
 */
ssize_t engine_reader_read(engine_reader *r, char *buf, size_t size,
			   uint64_t offset);

/* ---- merges: one per descriptor, incremental ---- */

typedef struct engine_merge engine_merge;

/**
 * Set up a merge of `desc` over the backing directory `backing_fd`.
 * Reads nothing yet.  Both arguments are borrowed and must outlive the
 * merge.
 * @return 0 or -ENOMEM
 */
int engine_merge_new(engine_merge **out, const desc_descriptor *desc,
		     int backing_fd);
void engine_merge_free(engine_merge *m);

/**
 * The merge lives on (a mount) and is refreshed after each change of its
 * host files, which mostly grow at the end.  Keep what an incremental
 * refresh starts from: the sorted winners (16 bytes per entry) and a
 * hash per 256 KiB scanned, so that a refresh re-merges only changed
 * keys and scans only what a file gained.  Without it (a command that
 * refreshes once) nothing is kept, and a later refresh, though it still
 * rescans only changed files, merges from scratch.
 */
void engine_merge_live(engine_merge *m);

/**
 * Call fn(arg, name) just before each host file `name` is (re)scanned by
 * engine_merge_refresh(), from whichever thread scans it, so a mount can
 * start watching the file for writes before its bytes are read: a write
 * after that is then either in the scan or reported.  fn must be
 * thread-safe; NULL removes it.
 */
void engine_merge_on_scan(engine_merge *m,
                          void (*fn)(void *arg, const char *name), void *arg);

/**
 * Bring the merge up to date and return a new reference to the current
 * view.  Lists the sources again, re-stats each, rescans only changed or
 * dirty ones, and builds a new generation only if anything changed.
 * @return 0, or -errno for failures that leave no view at all (the
 *         backing directory vanished, out of memory); bad input is never
 *         a failure, it is a problem in the view
 */
int engine_merge_refresh(engine_merge *m, engine_view **out)
	CRDTFS_MUST_CHECK;

/**
 * Note that backing file `name` (NULL: anything) may have changed, so the
 * next refresh rescans it even when its stat signature looks the same.
 */
void engine_merge_invalidate(engine_merge *m, const char *name);

/** The descriptor (borrowed). */
const desc_descriptor *engine_merge_descriptor(const engine_merge *m);

/**
 * The format of the CRDT merge of two versions of a host file: that of
 * `ours` (JSON Lines when its first non-blank byte is '{'), or of `theirs`
 * when ours is empty: a tool that appends lines to its file must still
 * find lines after a merge, not an array.
 */
desc_format engine_merged_format(const char *ours, const char *theirs);

/**
 * One-shot merge of explicit files (paths as given, relative to the
 * current directory) by `desc`, e.g. for a git merge driver.  The file
 * names take the role of sources; the globs of `desc` are not used.
 * A file that cannot be opened or read is a problem in the view, like
 * any other bad input.
 * @param out new view on success
 * @return 0, or -ENOMEM
 */
int engine_merge_paths(engine_view **out, const desc_descriptor *desc,
		       const char *const *paths, size_t npaths)
	CRDTFS_MUST_CHECK;

/** Seconds on the monotonic clock: for intervals, not dates. */
static inline double engine_mono_seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#include "engine_git.h"

#endif
