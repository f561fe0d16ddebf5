/* SPDX-License-Identifier: MIT */
/*
 * fs.h - the crdtfs program: subcommands and the mount.  main() in main.c
 * dispatches on the first argument; each entry point returns the process
 * exit status (0 ok, 1 failure or problems found, 2 usage error, and for
 * `sync` 3 when the remote could not be reached).
 */
#ifndef CRDTFS_FS_FS_H
#define CRDTFS_FS_FS_H

#include <time.h>

#include "engine.h"

/** `crdtfs merge [--descriptor FILE | --target NAME] [--strict] BACKING` */
int fs_cmd_merge(int argc, char **argv);
/** `crdtfs check BACKING` */
int fs_cmd_check(int argc, char **argv);
/** `crdtfs prepare --host NAME SOURCE [BACKING]` */
int fs_cmd_prepare(int argc, char **argv);
/** `crdtfs sync [--remote NAME] BACKING` */
int fs_cmd_sync(int argc, char **argv);
/** `crdtfs merge-driver %O %A %B` */
int fs_cmd_merge_driver(int argc, char **argv);
/** `crdtfs [options] BACKING MOUNTPOINT`: argv as given to main() */
int fs_mount_main(int argc, char **argv);

/**
 * Add a problem for each name in the backing root that looks like a
 * descriptor (an error) or a source of one of `descs` (a warning) but is
 * never read, not being a regular file; in name order (unread.c).
 * @return 0 or -ENOMEM
 */
int fs_unread_files(int backing_fd, const desc_descriptor *const *descs,
		    size_t ndescs, engine_problems *probs);

/*
 * Background git sync inside the mount (implemented in cmd_git.c): started
 * by the mount for `-o sync=SECONDS[,remote=NAME]`.  Runs on its own
 * thread, never on a FUSE request thread.
 */
typedef struct fs_syncer fs_syncer;

/**
 * Start syncing `backing` every `seconds` seconds and soon after writes.
 * @param remote the remote (NULL: the branch's own)
 * @param host this machine's host name (NULL: the hostname)
 * @param changed called from the sync thread after a pull changed files in
 *        the backing directory (may be NULL)
 * @return 0 or -errno (-ELIBACC: the git module cannot be loaded)
 */
int fs_syncer_start(fs_syncer **out, const char *backing, unsigned seconds,
		    const char *remote, const char *host,
		    void (*changed)(void *ctx), void *ctx);
/** A host file was written through the mount: sync soon (coalesced). */
void fs_syncer_poke(fs_syncer *s);
/** Stop and join the thread, cancelling a sync in progress; later pokes
 * do nothing.  NULL is fine. */
void fs_syncer_halt(fs_syncer *s);
/** Halt, then free; NULL is fine. */
void fs_syncer_stop(fs_syncer *s);

/* Name of the status file in the mount root. */
#define FS_STATUS_NAME ".crdtfs-status.json"

/* A sync's error line: engine_sync_result.error (512) and a suffix. */
#define FS_SYNC_ERROR_MAX 544

/** What the background syncs did, as the status file shows it. */
typedef struct {
	unsigned seconds;      /* the period */
	const char *remote;    /* NULL: the branch's own; lives with the syncer */
	unsigned long runs;    /* syncs that ended (not cancelled) */
	unsigned long failed_in_a_row;
	time_t last_end;       /* when the last one ended; 0: none yet */
	char result[512];      /* what the last one did, if it succeeded */
	char error[FS_SYNC_ERROR_MAX]; /* why the last one failed, if it did */
	engine_problems problems; /* the last one's notes (owned) */
} fs_sync_snapshot;

/**
 * Copy the syncer's state into *out; the caller disposes of
 * out->problems.  @return 0 or -ENOMEM (the problems then incomplete)
 */
int fs_syncer_snapshot(fs_syncer *s, fs_sync_snapshot *out);

/*
 * The git module, crdtfs-git.so (git_load.c): loaded on first use, next
 * to the executable or else in LIBDIR/crdtfs, and kept until exit; only
 * `sync` and a mount with `-o sync=` need it.  Thread-safe.
 * @param reterr on failure, a one-line reason naming the paths tried
 *        (static storage; may be NULL)
 * @return the module's table (engine_git.h), or NULL
 */
typedef struct engine_git_module engine_git_module;
const engine_git_module *fs_git_module(const char **reterr);

/** Say `crdtfs CMD: REASON (try crdtfs CMD --help)`. @return FS_EXIT_USAGE */
int fs_usage_error(const char *cmd, const char *reason);
/**
 * The usage error for what getopt_long() returned as `c` (':' for a
 * missing value, with a ':'-led optstring and opterr 0; else an unknown
 * option), naming argv[optind - 1].  @return FS_EXIT_USAGE
 */
int fs_option_error(const char *cmd, int c, char *const *argv, int optind);

/** Is `dir` the root of a crdtfs mount (FUSE, serving the status file)? */
int fs_is_crdtfs_mount(const char *dir);

/** Exit statuses shared by the subcommands. */
#define FS_EXIT_OK 0
#define FS_EXIT_FAIL 1
#define FS_EXIT_USAGE 2
#define FS_EXIT_OFFLINE 3

#endif
