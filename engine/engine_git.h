/* SPDX-License-Identifier: MIT */
/*
 * engine_git.h - preparing host files and syncing them through git
 * (included by engine.h; filled in by prepare.c, sync.c and driver.c).
 *
 * engine_prepare()       a tool's memory file -> BACKING/memory-HOST.json,
 *                        stamping only what changed (hybrid logical clock)
 * engine_sync()          commit, fetch, integrate (CRDT-merging host files
 *                        changed on both sides), push, retry when rejected
 * engine_merge_driver()  `git merge` driver: A := CRDT merge of A and B
 *
 * Like the rest of the engine these never log: problems and notes go to
 * the caller's engine_problems, facts to the result structs.
 */
#ifndef CRDTFS_ENGINE_ENGINE_GIT_H
#define CRDTFS_ENGINE_ENGINE_GIT_H

#include <stddef.h>

#include "engine.h"

/* ---- prepare (prepare.c) ---- */

typedef struct {
	const char *host;    /* host name: a plain file-name part, required */
	const char *source;  /* the tool's memory file (JSON array or JSONL) */
	const char *backing; /* backing directory; the host file goes here */
	const char *now;     /* RFC 3339 time used instead of the wall clock
				(a test hook: CRDTFS_NOW); NULL: real clock */
	int allow_empty;     /* an empty SOURCE empties the host file */
} engine_prepare_opts;

typedef struct {
	size_t entries;   /* entries in the host file */
	size_t added;     /* identities new to the host file (stamped) */
	size_t changed;   /* entries whose content changed (re-stamped) */
	size_t unchanged; /* entries kept byte for byte */
	size_t removed;   /* entries of the old host file not in the source */
	int written;      /* 1 when the host file was (re)written */
	int source_errors; /* 1 when the source had errors (see below) */
	char stamp[40];   /* the stamp given to added/changed entries, or "" */
} engine_prepare_stats;

/**
 * Turn `opts->source` into `opts->backing/memory-<host>.json`.
 *
 * Each source entry gets a logical identity: `entity:NAME` for an MCP
 * entity, `relation:` + length-prefixed from, to, relationType for an MCP
 * relation, `id:ID` for an entry with an `id`, else `content:` + the git
 * blob SHA-1 of its canonical content.  The unique_id is the identity
 * itself when at most 200 bytes without control characters, else `sha1:`
 * + the SHA-1 hex of the identity: the same logical entry has the same
 * unique_id on every host.  An identity repeated inside one source gets
 * `dup2:`, `dup3:`... in source order.
 *
 * An entry whose canonical content (the entry minus `_crdt_metadata`,
 * keys sorted, compact) equals that of the same unique_id in the current
 * host file is kept byte for byte; a changed or new one gets
 * `_crdt_metadata` {host, timestamp, version = old + 1 or 1, unique_id},
 * all with one stamp from the hybrid logical clock: the maximum of the
 * wall clock, the newest valid timestamp in any memory-*.json in the
 * backing directory + 1 ns (this host's file included).  Source entries
 * that already carry a `_crdt_metadata` object are copied as they are,
 * unless their stamp is no newer than the host file's copy: then they are
 * that copy, or an edit of it (re-stamped).
 * Entries no longer in the source leave the host file (it mirrors the
 * source; there are no tombstones).
 *
 * The host file is written as a JSON array, one compact entry per line,
 * sorted by (timestamp, unique_id), atomically (temp file, fsync, rename,
 * fsync of the directory), and only when its bytes change.
 *
 * Bad entries in the source or the old host file are skipped and
 * reported in `probs` (non-NULL); when the source has errors, entries of
 * the old host file it does not list are kept rather than removed (it
 * may be truncated), and so are all of them when the source is empty
 * (no byte but blanks: the trace of a tool that died after truncating
 * it; a deliberate empty memory is `[]`) unless `allow_empty`; a stamp more than 5 minutes ahead of
 * the wall clock in the backing directory is reported as a warning.
 * The source may be a regular file or a pipe; host files are regular
 * files, never followed through a symlink.
 * @param stats optional; filled on success
 * @return 0, -EINVAL (bad host name), -ENOMEM, or another -errno after
 *         an error naming the file (or CRDTFS_NOW) was added to probs:
 *         nothing was written
 */
int engine_prepare(const engine_prepare_opts *opts, engine_prepare_stats *stats,
                   engine_problems *probs) CRDTFS_MUST_CHECK;

/* ---- sync (sync.c): only in the git module; the program calls
 * engine_sync() through its engine_git_module table (below) ---- */

typedef struct {
	const char *backing;   /* top of a git work tree (non-bare) */
	const char *remote;    /* remote name; NULL: branch.<b>.remote, else
				  "origin" */
	const char *host;      /* for messages and the fallback author;
				  NULL: gethostname() */
	unsigned max_attempts; /* push attempts; 0: 8 */
	unsigned max_seconds;  /* time budget for push retries, and the
	                          longest a remote may be silent; 0: 20 */
	int (*cancelled)(void *ctx); /* polled while waiting; NULL: never */
	void *cancel_ctx;
} engine_sync_opts;

typedef struct {
	int committed;      /* changed host files were committed */
	int fast_forward;   /* the remote was integrated by fast-forward */
	int merged;         /* ... or by a merge commit */
	size_t crdt_merged; /* host files merged by the CRDT rule */
	int pulled;         /* files in the work tree changed */
	int pushed;         /* the remote branch now holds our head */
	unsigned attempts;  /* push attempts made */
	unsigned rejected;  /* of which rejected (non-fast-forward, hook) */
	char branch[128];   /* local branch name */
	char upstream[256]; /* "<remote>/<its branch>" synced with */
	char head[41];      /* hex id of the local head afterwards, or "" */
	char error[512];    /* why the last step failed, or "" */
} engine_sync_result;

/**
 * One sync of the git work tree at `opts->backing`:
 *  1. stage the top-level `memory-*.json` and `*.merge.json` files that
 *     changed (never merged targets, hidden/temp/swap files) and commit
 *     them if anything is staged ("crdtfs: update ... on HOST");
 *  2. fetch the branch's remote branch;
 *  3. integrate it: nothing to do, fast-forward, or a merge commit in
 *     which every host file changed on both sides (or arriving damaged)
 *     is the CRDT merge of both sides;
 *  4. push; when rejected (or, for a local remote, the branch moved
 *     under us) go back to 2 after an exponential backoff with jitter,
 *     bounded by max_attempts and max_seconds.
 * Work-tree files are replaced atomically (rename), never rewritten in
 * place, and only when they still hold the committed bytes.  A local
 * remote (a path or file://) is pushed with a compare-and-swap of the
 * branch; others through libgit2's transports.  Syncs of one work tree
 * are serialised by a lock file in its .git directory.
 *
 * Notes (what was committed, merged, damaged input from the remote) are
 * added to `probs` as warnings or errors, with the host file's name.
 * @param res required; filled even on failure
 * @return 0; -EHOSTUNREACH when the remote could not be reached (the local
 *         commit is kept); -EAGAIN when the push was still rejected after
 *         the last attempt; -ENOTDIR (not a work tree); -ENOENT (no such
 *         remote); -EBUSY (work tree changed during the sync, or a
 *         conflict on a file that is not a host file); -ECANCELED;
 *         -ENOMEM; -EIO
 */
int engine_sync(const engine_sync_opts *opts, engine_sync_result *res,
                engine_problems *probs) CRDTFS_MUST_CHECK;

/* ---- the git merge driver (driver.c) ---- */

/**
 * The git merge driver: replace `ours` (%A) by the CRDT merge of `ours`
 * and `theirs` (%B) with the default descriptor, atomically.  The
 * ancestor (%O) is not needed: the merge is a join (a maximum per
 * unique_id), so everything the ancestor holds is already dominated by
 * ours or theirs.  Damaged input is merged as far as it is valid and
 * reported in `probs`.
 * @return 0, or -errno when a file cannot be read at all or written
 */
int engine_merge_driver(const char *ancestor, const char *ours,
                        const char *theirs,
                        engine_problems *probs) CRDTFS_MUST_CHECK;

/* ---- the git module (git_module.c) ---- */

/*
 * libgit2 and the 17 libraries it needs cost ~5 ms at every process start,
 * so engine_sync() is not in the crdtfs executable: sync.c and
 * git_module.c are built as a module, crdtfs-git.so, that the program
 * dlopen()s only to sync.  The module exports one symbol,
 * ENGINE_GIT_MODULE_SYMBOL, this table; it takes the engine_* and desc_*
 * functions it calls from the executable that loads it.
 */
typedef struct engine_git_module {
	const char *version;  /* CRDTFS_VERSION the module was built from */
	size_t opts_size;     /* sizeof(engine_sync_opts) there */
	size_t result_size;   /* sizeof(engine_sync_result) there */
	int (*sync)(const engine_sync_opts *opts, engine_sync_result *res,
	            engine_problems *probs);
} engine_git_module;

#define ENGINE_GIT_MODULE_SYMBOL "crdtfs_git_module"

#endif
