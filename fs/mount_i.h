/* SPDX-License-Identifier: MIT */
/*
 * mount_i.h - declarations shared only by the files of the FUSE mount:
 * mount.c (command line, session, lifetime), ops.c (the low-level ops
 * table and the pass-through of backing files), virtual.c (merged targets,
 * their generations, the status file), watch.c (inotify and the kernel
 * cache notifier) and status.c (the status JSON).
 *
 * Node ids are pointers to struct fs_inode (as in libfuse's
 * passthrough_ll.c), except FUSE_ROOT_ID for the backing root.
 *
 * Lock order (never take an earlier lock while holding a later one):
 *   wlock (watch) -> tlock (target set) -> target mlock -> target plock
 *   -> ilock (inodes, generations, handles) -> nlock (notifier queue).
 * One exception: the scan threads of a refresh take wlock, briefly, under
 * the target's mlock (fs_watch_source), which is safe because no holder
 * of wlock ever waits for an mlock.
 * No lock is held while a reply or a notification is sent.
 */
#ifndef CRDTFS_FS_MOUNT_I_H
#define CRDTFS_FS_MOUNT_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <fuse_lowlevel.h>
#include "uthash.h"

#include "engine.h"
#include "fs.h"

/* Attribute and entry timeout of pass-through files, in seconds. */
#define FS_PASS_TIMEOUT 1.0
/* Attribute timeout of a generation of a merged file (never changes). */
#define FS_GEN_ATTR_TIMEOUT 86400.0
/* Rebuilds before a LOOKUP settles for a view whose sources are intact. */
#define FS_LOOKUP_RETRIES 8
/* ... and after this many, holds new writes through the mount back until
 * it has built one (a writer that never pauses must not starve readers). */
#define FS_LOOKUP_GATE 16
/* How long after its LOOKUP a generation still expects its OPEN: writes
 * through the mount preserve its sources for it (seconds). */
#define FS_OPEN_GRACE 1.0
/* Most pending invalidated names per target before "everything". */
#define FS_PENDING_MAX 1024
/* The longest -o sync period: a year. */
#define FS_SYNC_MAX_SECONDS 31536000u

struct fs_ctx;

/* (st_dev, st_ino) of a backing file: the key of the inode table. */
struct fs_ikey {
	dev_t dev;
	ino_t ino;
};

enum fs_kind {
	FS_KIND_BACKING, /* a file or directory of the backing tree */
	FS_KIND_GEN,     /* one generation of a merged target */
	FS_KIND_STATUS   /* the status file */
};

/*
 * One node id.  Backing inodes live in ctx->inodes (keyed by ikey) and
 * hold an O_PATH fd; generation inodes live in ctx->gens and hold a view.
 */
struct fs_inode {
	enum fs_kind kind;
	uint64_t nlookup; /* kernel lookup count; ilock */
	/* FS_KIND_BACKING */
	struct fs_ikey key; /* immutable */
	int fd;             /* O_PATH, owned; immutable */
	/* Owned, relative to the root ("" for the root), the last name
	 * looked up; NULL when unknown; ilock. */
	char *path;
	int wd; /* > 0: a directory's watch it holds (fs_watch_hold); ilock */
	UT_hash_handle hh; /* ctx->inodes; ilock */
	/* FS_KIND_GEN */
	struct fs_target *target; /* owned reference; immutable */
	engine_view *view;        /* owned reference; immutable */
	unsigned nopen;           /* open readers; ilock */
	int cache_dropped;        /* no page cache kept since its last OPEN
				     (fs_target_retire); ilock */
	int lost;                 /* a source was rewritten while nothing
				     could read it: refuse OPEN; ilock */
	double looked_up;         /* CLOCK_MONOTONIC seconds of the last
				     LOOKUP that handed it out; ilock */
	struct fs_inode *gprev;   /* ctx->gens; ilock */
	struct fs_inode *gnext;   /* ctx->gens; ilock */
};

/*
 * One merged target: a descriptor, its engine_merge and the current
 * generation inode.  Refcounted: the target set holds one reference and
 * every generation inode one more.
 */
struct fs_target {
	atomic_uint refs;
	char *name;            /* owned: file name in the root */
	uint64_t st_ino;       /* inode number shown for all gens */
	desc_descriptor *desc; /* owned */
	char *desc_file;       /* owned: descriptor file, NULL: default */
	struct stat desc_st;   /* descriptor file when loaded */
	pthread_mutex_t mlock; /* guards merge */
	engine_merge *merge;   /* owned; mlock */
	pthread_mutex_t plock; /* guards the pending fields */
	char **pending;        /* owned names to invalidate; plock */
	size_t npending;       /* plock */
	int pending_all;       /* invalidate everything; plock */
	struct fs_inode *cur;  /* newest generation inode; ilock */
};

enum fs_hkind { FS_H_FILE, FS_H_GEN, FS_H_STATUS, FS_H_DIR };

/* One directory entry of a directory snapshot. */
struct fs_dirent {
	char *name; /* owned */
	ino_t ino;
	unsigned char type; /* DT_* */
	int virt;           /* a virtual file of the root */
};

/* One open file or directory (fi->fh); all live in ctx->handles. */
struct fs_handle {
	enum fs_hkind kind;
	struct fs_handle *prev; /* ctx->handles; ilock */
	struct fs_handle *next; /* ctx->handles; ilock */
	/* FS_H_FILE */
	int fd;           /* owned */
	char *path;       /* owned: relative path at open, or NULL */
	atomic_int wrote; /* written through this handle */
	/* FS_H_GEN */
	struct fs_inode *gen;  /* borrowed: the kernel holds a lookup */
	engine_reader *reader; /* owned */
	/* FS_H_STATUS */
	char *buf; /* owned snapshot */
	size_t len;
	/* FS_H_DIR */
	struct fs_dirent *ents; /* owned; serialised by the kernel */
	size_t nents;
	int served; /* readdir was answered at least once */
};

/*
 * One inotify watch.  On a backing directory, for its names: the root, a
 * directory a source pattern reaches into, or one the kernel holds
 * (fs_watch_hold), or both.  On a regular file, for its content: a host
 * file about to be scanned (fs_watch_source), or one the kernel holds, or
 * both.  See watch.c for why content is watched per file.
 */
struct fs_watch {
	int wd;             /* key */
	int file;           /* a regular file, else a directory */
	char *path;         /* owned, relative; a directory: "" for the root,
			       NULL when watched only because the kernel
			       holds it; a file: the name it was last scanned
			       by while that name leads to it (a host file or
			       a descriptor), else NULL */
	struct fs_ikey key; /* the directory or file */
	int seen;           /* directories: wanted by the root or a source
			       pattern (the mark of a rescan) */
	unsigned held;      /* inodes of the kernel's that hold it */
	UT_hash_handle hh;
	UT_hash_handle hp;  /* files with a path: in ctx->scanned by path */
};

enum fs_note_kind {
	FS_NOTE_INODE, /* inval_inode of backing inode ik */
	FS_NOTE_ENTRY, /* inval_entry of `name` in directory ik */
	FS_NOTE_GEN    /* inval_inode of generation `generation` of target
			  `name`, unless it is open by then */
};

/* One queued kernel cache notification (deduplicated by text key). */
struct fs_note {
	char *key;               /* owned, hash key */
	enum fs_note_kind kind;
	int root;                /* INODE, ENTRY: ik is the root */
	struct fs_ikey ik;       /* INODE, ENTRY */
	char *name;              /* owned; ENTRY, GEN */
	uint64_t generation;     /* GEN */
	UT_hash_handle hh;
};

/* Options parsed from the command line. */
struct fs_opts {
	char *backing; /* owned: as given */
	unsigned sync; /* -o sync=SECONDS, 0: off; <= FS_SYNC_MAX_SECONDS */
	char *remote;  /* -o remote=NAME, owned */
	char *host;    /* -o host=NAME, owned */
	int has_fsname;
	int has_subtype;
	int allow_other;
	int has_default_permissions;
	unsigned max_read;
	int xattr;     /* -o xattr */
};

/* Everything a mount owns; fuse_req_userdata() of every request. */
struct fs_ctx {
	struct fuse_session *se;
	char *backing;  /* owned absolute path; immutable */
	int backing_fd; /* O_RDONLY|O_DIRECTORY; immutable */
	uid_t uid;      /* owner of the backing root */
	gid_t gid;
	struct timespec started; /* mount time */
	int debug;
	unsigned max_read; /* -o max_read=N, 0: the kernel's */
	int xattr;         /* -o xattr: pass extended attributes through */
	/* The mountpoint's parent directory and name there: when it lies in
	 * the backing tree the mount hides that entry, never reaching into
	 * itself (a walk would hold the mount busy, or deadlock with -s). */
	struct fs_ikey mnt_parent;
	char *mnt_name; /* owned; NULL: the mountpoint is "/" */

	pthread_mutex_t ilock;
	struct fs_inode root;      /* FUSE_ROOT_ID; fd is backing_fd */
	struct fs_inode status;    /* the status file node */
	uint64_t status_ino;       /* its st_ino */
	pthread_mutex_t slock;
	char *status_last;             /* its last rendered bytes; slock */
	size_t status_last_len;        /* slock */
	struct timespec status_mtime;  /* when they last changed; slock */
	struct fs_inode *inodes;   /* uthash by key; ilock */
	struct fs_inode *gens;     /* list of generation inodes; ilock */
	struct fs_handle *handles; /* list of open handles; ilock */
	uint64_t mod_epoch;        /* bumped at each begin/end of a source
				      modification through the mount; ilock */
	unsigned mod_active;       /* source modifications running; ilock */
	unsigned mod_gate;         /* LOOKUPs holding new ones back; ilock */
	pthread_cond_t mod_cond;   /* mod_active dropped to 0, or mod_gate
				      lifted; ilock */

	pthread_rwlock_t tlock;
	struct fs_target **targets;    /* owned refs; tlock */
	size_t ntargets;               /* tlock */
	engine_problems desc_problems; /* invalid descriptors; tlock */
	atomic_int targets_dirty;      /* reload the target set before use */
	atomic_int targets_loaded;     /* the set was loaded at least once */

	pthread_mutex_t wlock;
	int inotify_fd;            /* non-blocking; -1 before init */
	struct fs_watch *watches;  /* by wd; wlock */
	struct fs_watch *scanned;  /* the file watches with a path, by path
				      (one each); wlock */
	unsigned watches_held[2];  /* watches with held > 0, of directories
				      [0] and of files [1]; wlock */
	unsigned watches_held_max; /* at most this many of each; set at init */
	unsigned watches_scanned;  /* file watches with a path; wlock */
	int watch_rescan;          /* rescan the watch set; wlock */
	int wake_fd;               /* eventfd that stops the watcher */
	pthread_t watch_thread;
	int watch_running;

	pthread_mutex_t nlock;
	pthread_cond_t ncond;
	struct fs_note *notes; /* FIFO; nlock */
	int nstop;             /* nlock */
	pthread_t notify_thread;
	int notify_running;

	fs_syncer *syncer; /* NULL when not syncing */
};

static inline struct fs_ctx *fs_ctx_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Every node id is a pointer to its fs_inode, the root's excepted. */
static inline struct fs_inode *fs_inode_of(fuse_req_t req, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs_ctx_of(req)->root;
	return (struct fs_inode *)(uintptr_t)ino;
}

/* ---- ops.c ---- */

/** The low-level operations table of the mount. */
const struct fuse_lowlevel_ops *fs_ops_table(void);

/** Node id of a live backing inode (the root included), or 0. */
fuse_ino_t fs_inode_resolve(struct fs_ctx *ctx, const struct fs_ikey *key);

/** Is `name` in backing directory `dir` the mountpoint itself? */
int fs_is_mountpoint(const struct fs_ctx *ctx, const struct fs_ikey *dir,
                     const char *name);

/** Free every inode and handle still held at unmount. */
void fs_inodes_free(struct fs_ctx *ctx);

/**
 * A per-thread buffer of at least size bytes, kept for the thread's life
 * (requests never allocate).  @return the buffer or NULL (out of memory)
 */
char *fs_thread_buf(size_t size);
/** Free the calling thread's buffer now (the main thread at exit). */
void fs_thread_buf_release(void);

/** Link / unlink a handle in ctx->handles. */
void fs_handle_link(struct fs_ctx *ctx, struct fs_handle *h);
void fs_handle_unlink(struct fs_ctx *ctx, struct fs_handle *h);

/* ---- xattr.c: extended attributes of backing files, passed through ---- */
void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                 size_t size);
void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                 const char *value, size_t size, int flags);
void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ---- creds.c ---- */
#define FS_CREDS_MAX_GROUPS 256

/* A thread's filesystem identity while it makes a node for a caller. */
struct fs_creds {
	int switched; /* to the caller's; the groups are what to restore */
	int ngroups;
	gid_t groups[FS_CREDS_MAX_GROUPS];
};

/**
 * Before the call that makes a node for req: umask 0 for the thread (the
 * kernel applied the caller's) and, when the daemon runs as root for
 * another user, the caller's fsuid, fsgid and groups.  Every successful
 * enter is followed by fs_creds_leave().  @return 0 or -errno
 */
int fs_creds_enter(fuse_req_t req, struct fs_creds *c);
void fs_creds_leave(const struct fs_creds *c);

/* ---- virtual.c ---- */

/** Reload the target set when it is marked dirty (or never loaded). */
void fs_targets_ensure(struct fs_ctx *ctx);

/** Drop the whole target set (unmount). */
void fs_targets_free(struct fs_ctx *ctx);

/**
 * True when `name` in the root is served by the mount itself (a target,
 * the status file, or the hidden `.git`); such names cannot be created,
 * removed or renamed through the mount.
 */
int fs_name_reserved(struct fs_ctx *ctx, const char *name);

/** fs_name_reserved() without reloading the target set (any lock held). */
int fs_name_served(struct fs_ctx *ctx, const char *name);

/**
 * Look up a root name that is virtual.
 * @return 0 with e filled (one lookup counted), 1 when the name is not
 *         virtual (pass it through), or -errno (-ENOENT for `.git`)
 */
int fs_virtual_lookup(struct fs_ctx *ctx, const char *name,
                      struct fuse_entry_param *e);

/** Attributes of a generation or status inode. @return 0 or -errno */
int fs_virtual_getattr(struct fs_ctx *ctx, struct fs_inode *in, struct stat *st,
                       double *timeout);

/** Open a generation or status inode (replies itself). */
void fs_virtual_open(fuse_req_t req, struct fs_inode *in,
                     struct fuse_file_info *fi);

/** Read / release a FS_H_GEN or FS_H_STATUS handle (replies itself). */
void fs_virtual_read(fuse_req_t req, struct fs_handle *h, size_t size,
                     off_t off);
void fs_virtual_release(struct fs_ctx *ctx, struct fs_handle *h);

/** Drop n lookups of a generation inode; frees it at zero. */
void fs_gen_forget(struct fs_ctx *ctx, struct fs_inode *in, uint64_t n);

/**
 * Virtual entries of the root for readdir: appends owned fs_dirent items
 * (the status file and, unless status_only, every target) to *ents.
 * @return 0 or -ENOMEM
 */
int fs_virtual_dirents(struct fs_ctx *ctx, int status_only,
                       struct fs_dirent **ents, size_t *n,
                       size_t *cap);

/**
 * Backing file `path` (relative to the root) changed or may change:
 * mark every target it is a source of so the next refresh rescans it,
 * and mark the target set dirty when it is a descriptor.
 * @return number of targets it is a source of
 */
int fs_sources_changed(struct fs_ctx *ctx, const char *path);

/** Mark every target fully dirty and the target set too. */
void fs_invalidate_all(struct fs_ctx *ctx);

/**
 * Backing file (dev, ino) is about to be rewritten in place through the
 * mount: every live generation with open readers that reads it, and the
 * current generation of each target (a LOOKUP may have handed it out
 * before its OPEN), keeps a private copy (engine_view_preserve_inode).
 * Each view copies a given file at most once.
 */
void fs_preserve(struct fs_ctx *ctx, dev_t dev, ino_t ino);

/**
 * True when backing `path` (NULL: unknown, counts as a source) is a
 * source of some target.
 */
int fs_is_source(struct fs_ctx *ctx, const char *path);

/**
 * Bracket an in-place modification of backing inode (dev, ino) at `path`
 * through the mount.  fs_mod_begin() preserves what readers need
 * (fs_preserve); fs_mod_end() marks `path` changed.  A LOOKUP whose
 * refresh overlapped a bracket refreshes again before it hands out a
 * generation, so a generation never reads a file being rewritten.
 * Both do nothing for files that are no source (begin returns 0).
 * @return a token for fs_mod_end()
 */
int fs_mod_begin(struct fs_ctx *ctx, dev_t dev, ino_t ino, const char *path);
void fs_mod_end(struct fs_ctx *ctx, int token, const char *path);

/**
 * Bring `t` up to date and return a new reference to its current view.
 * @return 0 or -errno
 */
int fs_target_view(struct fs_target *t, engine_view **out);

/** Take / drop a reference on a target. */
struct fs_target *fs_target_ref(struct fs_target *t);
void fs_target_unref(struct fs_target *t);

/**
 * Node id of generation `generation` of target `target` while the kernel
 * holds it and nothing has it open, else 0.
 */
fuse_ino_t fs_gen_resolve(struct fs_ctx *ctx, const char *target,
                          uint64_t generation);

/** Fixed inode number for a virtual name (top bit set). */
uint64_t fs_virtual_ino(const char *name);

/* ---- watch.c ---- */

/** Set up inotify on the root (no thread yet). @return 0 or -errno */
int fs_watch_init(struct fs_ctx *ctx);
/** Start the watcher and notifier threads. @return 0 or -errno */
int fs_watch_start(struct fs_ctx *ctx);
/** Stop and join both threads; free queued notifications. */
void fs_watch_stop(struct fs_ctx *ctx);
/** Close inotify and free the watch table. */
void fs_watch_free(struct fs_ctx *ctx);
/** Handle every queued inotify event now (synchronously). */
void fs_watch_drain(struct fs_ctx *ctx);
/** Recompute the watched directories from the target set. */
void fs_watch_rescan(struct fs_ctx *ctx);
/**
 * Watch the directory or regular file open as O_PATH `fd` while a kernel
 * node holds it (call with no lock held).
 * @return the watch descriptor to release, or 0 when not watched (no
 *         inotify, another kind of file, or too many watched already)
 */
int fs_watch_hold(struct fs_ctx *ctx, int fd);
/** Drop a hold taken by fs_watch_hold() for inode `key`. */
void fs_watch_release(struct fs_ctx *ctx, int wd, const struct fs_ikey *key);
/**
 * engine_merge_on_scan() hook (arg: the fs_ctx): watch host file `name`
 * for writes before it is scanned.  Thread-safe.
 */
void fs_watch_source(void *arg, const char *name);

/* ---- stop.c ---- */

/**
 * From now on SIGTERM, SIGINT and SIGHUP first stop the notifier, watcher
 * and syncer while the loop still answers, then end the loop run by the
 * calling thread.  @return 0 or -errno
 */
int fs_stop_start(struct fs_ctx *ctx, struct fuse_session *se);
/** After the loop: join the stopper, restore the default handlers. */
void fs_stop_finish(void);

/** Queue notify_inval_inode for backing inode key (deduplicated). */
void fs_notify_inode(struct fs_ctx *ctx, const struct fs_ikey *key);
/**
 * Queue notify_inval_entry for `name` in directory `parent` (NULL: the
 * root), deduplicated.
 */
void fs_notify_entry(struct fs_ctx *ctx, const struct fs_ikey *parent,
                     const char *name);
/**
 * Queue notify_inval_inode for generation `generation` of target `target`,
 * sent only if nothing has it open by then (deduplicated).
 */
void fs_notify_gen_cache(struct fs_ctx *ctx, const char *target,
                         uint64_t generation);

/* ---- daemon.c ---- */

/** Going to the background: the parent exits once the mount answers. */
struct fs_daemon {
	char *mountpoint;  /* absolute, for the probe */
	dev_t dev_before;  /* the mountpoint's device before mounting */
	int ready_fd;      /* the child's end of the pipe to the parent */
	pthread_t probe;
	int probing;
};

/** Before mounting: note the mountpoint and its device (d starts as
 * { .ready_fd = -1 }, which is also all a foreground mount needs). */
void fs_daemon_prepare(struct fs_daemon *d, const char *mountpoint);
/**
 * After mounting: fork.  The parent never returns: it exits 0 once the
 * child's probe saw the mount answer, or with the child's status if the
 * child ended first.  The child returns 0 in a session of its own, stdio
 * still on the terminal.  @return 0, or -1 (said why) if fork failed
 */
int fs_daemon_fork(struct fs_daemon *d, struct fuse_session *se);
/**
 * Just before the loop: a thread that waits for the mount to answer, then
 * moves stdio to /dev/null and releases the parent (a no-op in the
 * foreground).  @return 0 or -errno
 */
int fs_daemon_probe_start(struct fs_daemon *d);
/** After the session is destroyed: join the probe, free. */
void fs_daemon_finish(struct fs_daemon *d);

/* ---- status.c ---- */

/**
 * Render the status file (refreshing every merge): pretty JSON ending in
 * a newline.  Two calls with nothing changed give the same bytes.
 * @param out owned buffer on success
 * @param changed if not NULL: when the rendered bytes last changed (the
 *        file's mtime; stable while nothing changes, so tar and rsync see
 *        an unchanged file)
 * @return 0 or -ENOMEM
 */
int fs_status_render(struct fs_ctx *ctx, char **out, size_t *len,
                     struct timespec *changed);

#endif
