/* SPDX-License-Identifier: MIT */
/*
 * ops.c - the low-level FUSE operations of the mount: the inode table and
 * the pass-through of the backing directory, in the manner of libfuse's
 * passthrough_ll.c (fuse-3.14.0).
 *
 * Every node id is a pointer to a struct fs_inode (FUSE_ROOT_ID is the
 * backing root).  Backing inodes are keyed by (st_dev, st_ino), hold an
 * O_PATH fd and the kernel's lookup count, and die on FORGET.  The virtual
 * files (generations of merged targets, the status file) are handed to
 * virtual.c; this file only dispatches on the inode kind.
 *
 * Freshness: every call that changes a backing file through the mount
 * (write, create, truncate, unlink, rename, link, release after a write)
 * tells virtual.c which relative path changed *before* replying, so an
 * open() that starts after the call returned sees a new generation.  Before
 * a file is rewritten in place, open readers of merged files that read it
 * get a private copy (fs_preserve).
 *
 * Pass-through files use 1 s attribute and entry timeouts and keep_cache=0;
 * outside changes are pushed to the kernel by watch.c, in the root and in
 * every directory the kernel holds up to a budget (past it, and before the
 * watcher has told the kernel, an open of a file replaced from outside gets
 * ESTALE, and the kernel looks the name up again).  Replies
 * to READ come from a per-thread buffer that lives as long as the thread:
 * on this kind of VM a fresh 128 KiB allocation per request costs more
 * than the copy (perf-notes.md).
 *
 * Nodes are made with the caller's mode and, for other users of a root
 * daemon, owner (creds.c); extended attributes pass through with -o xattr
 * (xattr.c).  Not implemented on purpose: locks (the kernel keeps them
 * local), writeback caching.
 */
#include "mount_i.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "desc.h"

/* ---- per-thread reply buffer ---- */

static pthread_key_t fs_tbuf_key;
static pthread_once_t fs_tbuf_once = PTHREAD_ONCE_INIT;
static __thread char *fs_tbuf;
static __thread size_t fs_tbuf_cap;

static void fs_tbuf_key_init(void)
{
	(void)pthread_key_create(&fs_tbuf_key, free);
}

char *fs_thread_buf(size_t size)
{
	char *p;
	size_t cap;

	if (size <= fs_tbuf_cap)
		return fs_tbuf;
	(void)pthread_once(&fs_tbuf_once, fs_tbuf_key_init);
	cap = fs_tbuf_cap ? fs_tbuf_cap : 128 * 1024;
	while (cap < size)
		cap *= 2;
	p = realloc(fs_tbuf, cap);
	if (!p)
		return NULL;
	fs_tbuf = p;
	fs_tbuf_cap = cap;
	/* The key only makes the buffer die with its thread. */
	(void)pthread_setspecific(fs_tbuf_key, p);
	return p;
}

void fs_thread_buf_release(void)
{
	if (!fs_tbuf)
		return;
	(void)pthread_setspecific(fs_tbuf_key, NULL);
	free(fs_tbuf);
	fs_tbuf = NULL;
	fs_tbuf_cap = 0;
}

/* ---- small accessors ---- */

static struct fs_handle *fs_handle_of(struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

static int fs_is_root(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID;
}

static void fs_proc_path(char *buf, size_t size, int fd)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

/*
 * The st_ino shown for a backing file.  Every file of the mount has the
 * mount's st_dev, so a file of another filesystem mounted inside BACKING
 * could show the st_ino of an unrelated one, and tar, rsync -H and cp -a
 * would take the two for hard links (one came back with the other's
 * bytes).  Those get their number mixed with their device, off the
 * virtual files' range (top bit set).
 */
static ino_t fs_shown_ino(const struct fs_ctx *ctx, dev_t dev, ino_t ino)
{
	if (dev == ctx->root.key.dev)
		return ino;
	return (ino ^ ((uint64_t)dev * 0x9E3779B97F4A7C15ULL)) & ~(1ULL << 63);
}

/*
 * Flags to open a backing file with for an open through the mount.  The
 * kernel honoured O_NOFOLLOW when it walked the path, and does O_DIRECT
 * itself (it sends the caller's reads and writes straight to the daemon);
 * on the backing file O_DIRECT would ask for aligned buffers, which
 * libfuse's are not, and writes failed with EINVAL.
 */
static int fs_backing_flags(const struct fuse_file_info *fi)
{
	return fi->flags & ~(O_NOFOLLOW | O_DIRECT);
}

void fs_handle_link(struct fs_ctx *ctx, struct fs_handle *h)
{
	pthread_mutex_lock(&ctx->ilock);
	h->prev = NULL;
	h->next = ctx->handles;
	if (ctx->handles)
		ctx->handles->prev = h;
	ctx->handles = h;
	pthread_mutex_unlock(&ctx->ilock);
}

void fs_handle_unlink(struct fs_ctx *ctx, struct fs_handle *h)
{
	pthread_mutex_lock(&ctx->ilock);
	if (h->prev)
		h->prev->next = h->next;
	else
		ctx->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->prev = h->next = NULL;
	pthread_mutex_unlock(&ctx->ilock);
}

static void fs_dirents_free(struct fs_dirent *ents, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(ents[i].name);
	free(ents);
}

/* Free a handle that is no longer linked (or is being torn down). */
static void fs_handle_free(struct fs_handle *h)
{
	if (!h)
		return;
	if (h->kind == FS_H_FILE && h->fd >= 0)
		close(h->fd);
	free(h->path);
	engine_reader_free(h->reader);
	free(h->buf);
	fs_dirents_free(h->ents, h->nents);
	free(h);
}

/*
 * Relative path of `name` inside directory inode `dir`, as the mount last
 * saw it.  @return an owned string, or NULL when unknown or out of memory
 */
static char *fs_child_path(struct fs_ctx *ctx, struct fs_inode *dir,
                           const char *name)
{
	char *p = NULL;
	size_t dl, nl;

	pthread_mutex_lock(&ctx->ilock);
	if (dir->path) {
		dl = strlen(dir->path);
		nl = strlen(name);
		p = malloc(dl + nl + 2);
		if (p) {
			if (dl) {
				memcpy(p, dir->path, dl);
				p[dl++] = '/';
			}
			memcpy(p + dl, name, nl + 1);
		}
	}
	pthread_mutex_unlock(&ctx->ilock);
	return p;
}

/* Owned copy of an inode's path, or NULL. */
static char *fs_inode_path(struct fs_ctx *ctx, struct fs_inode *in)
{
	char *p = NULL;

	pthread_mutex_lock(&ctx->ilock);
	if (in->path)
		p = strdup(in->path);
	pthread_mutex_unlock(&ctx->ilock);
	return p;
}

/* Notify virtual.c and the syncer that a backing path changed. */
static void fs_changed(struct fs_ctx *ctx, const char *path)
{
	if (!path)
		return;
	if (fs_sources_changed(ctx, path) > 0 && ctx->syncer)
		fs_syncer_poke(ctx->syncer);
}

/* Around an in-place modification of a backing file (see fs_mod_begin). */
static int fs_mod_start(struct fs_ctx *ctx, struct fs_inode *in,
                        const char *path)
{
	return fs_mod_begin(ctx, in->key.dev, in->key.ino, path);
}

/*
 * path (NULL: nothing changed) is the name the file was opened or looked
 * up by; renamed outside since, it may name another file now, and marking
 * that one changed would make a new generation per write (a host file
 * rotated away while a writer keeps it open): then only the stat of the
 * file's own names tells a refresh.  Checked only for a write to a source
 * (a token), not on every write through the mount.
 */
static void fs_mod_done(struct fs_ctx *ctx, int token, struct fs_inode *in,
                        const char *path)
{
	struct stat st;

	if (token && path &&
	    (fstatat(ctx->backing_fd, path, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
	     st.st_dev != in->key.dev || st.st_ino != in->key.ino))
		path = NULL;
	fs_mod_end(ctx, token, path);
	if (token && path && ctx->syncer)
		fs_syncer_poke(ctx->syncer);
}

/* ---- the inode table ---- */

fuse_ino_t fs_inode_resolve(struct fs_ctx *ctx, const struct fs_ikey *key)
{
	struct fs_inode *in;
	fuse_ino_t id = 0;

	if (key->dev == ctx->root.key.dev && key->ino == ctx->root.key.ino)
		return FUSE_ROOT_ID;
	pthread_mutex_lock(&ctx->ilock);
	HASH_FIND(hh, ctx->inodes, key, sizeof(*key), in);
	if (in && in->nlookup > 0)
		id = (fuse_ino_t)(uintptr_t)in;
	pthread_mutex_unlock(&ctx->ilock);
	return id;
}

int fs_is_mountpoint(const struct fs_ctx *ctx, const struct fs_ikey *dir,
                     const char *name)
{
	return ctx->mnt_name && dir->dev == ctx->mnt_parent.dev &&
	       dir->ino == ctx->mnt_parent.ino &&
	       strcmp(name, ctx->mnt_name) == 0;
}

/*
 * Look `name` up in backing directory `dir` and count one kernel lookup
 * on its inode (creating the inode on first sight).
 * @return 0 with e filled, or -errno
 */
static int fs_do_lookup(struct fs_ctx *ctx, struct fs_inode *dir,
                        const char *name, struct fuse_entry_param *e)
{
	struct fs_inode *in;
	struct fs_ikey key;
	char *path, *old = NULL;
	int fd, r = 0, created = 0;

	memset(e, 0, sizeof(*e));
	e->attr_timeout = FS_PASS_TIMEOUT;
	e->entry_timeout = FS_PASS_TIMEOUT;
	if (fs_is_mountpoint(ctx, &dir->key, name))
		return -ENOENT;
	fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
		r = -errno;
		close(fd);
		return r;
	}
	path = fs_child_path(ctx, dir, name);
	memset(&key, 0, sizeof(key));
	key.dev = e->attr.st_dev;
	key.ino = e->attr.st_ino;
	e->attr.st_ino = fs_shown_ino(ctx, key.dev, key.ino);

	pthread_mutex_lock(&ctx->ilock);
	HASH_FIND(hh, ctx->inodes, &key, sizeof(key), in);
	if (in) {
		in->nlookup++;
		if (path && (!in->path || strcmp(in->path, path) != 0)) {
			old = in->path;
			in->path = path;
			path = NULL;
		}
	} else {
		in = calloc(1, sizeof(*in));
		if (!in) {
			r = -ENOMEM;
		} else {
			in->kind = FS_KIND_BACKING;
			in->key = key;
			in->fd = fd;
			in->path = path;
			in->nlookup = 1;
			HASH_ADD(hh, ctx->inodes, key, sizeof(in->key), in);
			fd = -1;
			path = NULL;
			created = 1;
		}
	}
	pthread_mutex_unlock(&ctx->ilock);

	if (fd >= 0)
		close(fd);
	free(path);
	free(old);
	/* Before the reply: no FORGET can come for it until then. */
	if (created &&
	    (S_ISDIR(e->attr.st_mode) || S_ISREG(e->attr.st_mode))) {
		int wd = fs_watch_hold(ctx, in->fd);

		pthread_mutex_lock(&ctx->ilock);
		in->wd = wd;
		pthread_mutex_unlock(&ctx->ilock);
	}
	if (r == 0)
		e->ino = (fuse_ino_t)(uintptr_t)in;
	return r;
}

static void fs_forget_one(struct fs_ctx *ctx, fuse_ino_t ino, uint64_t n)
{
	struct fs_inode *in;
	int dead = 0;

	if (ino == FUSE_ROOT_ID)
		return;
	in = (struct fs_inode *)(uintptr_t)ino;
	if (in->kind == FS_KIND_GEN) {
		fs_gen_forget(ctx, in, n);
		return;
	}
	if (in->kind != FS_KIND_BACKING)
		return;
	pthread_mutex_lock(&ctx->ilock);
	assert(in->nlookup >= n);
	in->nlookup = in->nlookup >= n ? in->nlookup - n : 0;
	if (in->nlookup == 0) {
		HASH_DEL(ctx->inodes, in);
		dead = 1;
	}
	pthread_mutex_unlock(&ctx->ilock);
	if (dead) {
		if (in->wd > 0)
			fs_watch_release(ctx, in->wd, &in->key);
		close(in->fd);
		free(in->path);
		free(in);
	}
}

/* Reply an entry; undo the lookup when the request was interrupted. */
static void fs_reply_entry(fuse_req_t req, const struct fuse_entry_param *e)
{
	if (fuse_reply_entry(req, e) == -ENOENT && e->ino)
		fs_forget_one(fs_ctx_of(req), e->ino, 1);
}

/* Is `path` below directory `dir` (of length n)? */
static int fs_path_below(const char *path, const char *dir, size_t n)
{
	return path && strncmp(path, dir, n) == 0 && path[n] == '/';
}

/*
 * Rewrite the remembered paths of inodes below directory `from` (moved to
 * `to`), and when `exchange`, of those below `to` (moved to `from`) in the
 * same pass.  Called with ilock held.
 */
static void fs_paths_moved(struct fs_ctx *ctx, const char *from, const char *to,
                           int exchange)
{
	struct fs_inode *in, *tmp;
	size_t fl = strlen(from), tl = strlen(to);
	char *p;

	HASH_ITER(hh, ctx->inodes, in, tmp) {
		const char *head;
		size_t cut;

		if (fs_path_below(in->path, from, fl)) {
			head = to;
			cut = fl;
		} else if (exchange && fs_path_below(in->path, to, tl)) {
			head = from;
			cut = tl;
		} else {
			continue;
		}
		p = malloc(strlen(head) + strlen(in->path + cut) + 1);
		if (p) {
			strcpy(p, head);
			strcat(p, in->path + cut);
		}
		free(in->path);
		in->path = p;
	}
}

/*
 * After a rename: remember the new path of the inode now at `path`, and
 * of what lies below it when it is a directory that was at `oldpath`
 * (both ways for an exchange, whichever of the two is a directory).
 */
static void fs_path_renamed(struct fs_ctx *ctx, struct fs_inode *dir,
                            const char *name, const char *oldpath,
                            const char *path, int exchange)
{
	struct fs_inode *in;
	struct fs_ikey key;
	struct stat st;
	char *old = NULL, *copy;

	if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW))
		return;
	memset(&key, 0, sizeof(key));
	key.dev = st.st_dev;
	key.ino = st.st_ino;
	copy = path ? strdup(path) : NULL;
	pthread_mutex_lock(&ctx->ilock);
	HASH_FIND(hh, ctx->inodes, &key, sizeof(key), in);
	if (in) {
		old = in->path;
		in->path = copy;
		copy = NULL;
	}
	if ((S_ISDIR(st.st_mode) || exchange) && oldpath && path)
		fs_paths_moved(ctx, oldpath, path, exchange);
	pthread_mutex_unlock(&ctx->ilock);
	free(old);
	free(copy);
}

void fs_inodes_free(struct fs_ctx *ctx)
{
	struct fs_inode *in, *tmp;
	struct fs_handle *h;

	while ((h = ctx->handles)) {
		ctx->handles = h->next;
		fs_handle_free(h);
	}
	while ((in = ctx->gens)) {
		ctx->gens = in->gnext;
		if (in->target && in->target->cur == in)
			in->target->cur = NULL;
		engine_view_unref(in->view);
		fs_target_unref(in->target);
		free(in);
	}
	HASH_ITER(hh, ctx->inodes, in, tmp) {
		HASH_DEL(ctx->inodes, in);
		close(in->fd);
		free(in->path);
		free(in);
	}
	free(ctx->root.path);
	ctx->root.path = NULL;
}

/* ---- lifecycle ---- */

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs_ctx *ctx = userdata;

	/* libfuse refuses the INIT unless this repeats -o max_read. */
	if (ctx->max_read)
		conn->max_read = ctx->max_read;
	/* Generated files must never be owned by the kernel's cache. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Splicing requests in costs a pipe round trip per READ. */
	conn->want &= ~FUSE_CAP_SPLICE_READ;
	conn->time_gran = 1;
}

/* ---- attributes ---- */

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *in = fs_inode_of(req, ino);
	struct stat st;
	double timeout = FS_PASS_TIMEOUT;
	int r;

	(void)fi;
	if (in->kind != FS_KIND_BACKING) {
		r = fs_virtual_getattr(ctx, in, &st, &timeout);
		if (r < 0)
			fuse_reply_err(req, -r);
		else
			fuse_reply_attr(req, &st, timeout);
		return;
	}
	if (fstatat(in->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
		fuse_reply_err(req, errno);
		return;
	}
	st.st_ino = fs_shown_ino(ctx, st.st_dev, st.st_ino);
	fuse_reply_attr(req, &st, timeout);
}

/*
 * access(2) answers what open(2) would do.  Without it the kernel takes
 * every access check as granted (FUSE's "no access handler" rule), so
 * `test -w` would call a merged file writable.  With default_permissions
 * (allow_other) the kernel checks the mode itself and never asks.
 */
static void fs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct fs_inode *in = fs_inode_of(req, ino);
	char proc[64];

	if (in->kind != FS_KIND_BACKING) {
		/* Merged files and the status file: read-only, never run. */
		fuse_reply_err(req, mask & (W_OK | X_OK) ? EACCES : 0);
		return;
	}
	fs_proc_path(proc, sizeof(proc), in->fd);
	fuse_reply_err(req, faccessat(AT_FDCWD, proc, mask, AT_EACCESS) ?
	                            errno : 0);
}

/* utimens times from a SETATTR request. */
static void fs_setattr_times(const struct stat *attr, int valid,
                             struct timespec tv[2])
{
	tv[0].tv_sec = tv[1].tv_sec = 0;
	tv[0].tv_nsec = tv[1].tv_nsec = UTIME_OMIT;
	if (valid & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (valid & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
}

/*
 * setattr of a merged file or the status file: their mode, owner and times
 * are the generation's, so a change is EPERM (as chmod of a file one does
 * not own), a size change EACCES (as truncate without write permission),
 * and what changes nothing succeeds, so `chmod 444` or `chown -1:-1` do.
 */
static void fs_virtual_setattr(fuse_req_t req, struct fs_ctx *ctx,
                               struct fs_inode *in, const struct stat *attr,
                               int valid)
{
	double timeout = FS_PASS_TIMEOUT;
	struct stat st;
	int r = fs_virtual_getattr(ctx, in, &st, &timeout);

	if (r == 0 && (valid & FUSE_SET_ATTR_SIZE))
		r = -EACCES;
	else if (r == 0 &&
	         (((valid & FUSE_SET_ATTR_MODE) &&
	           (attr->st_mode & 07777) != (st.st_mode & 07777)) ||
	          ((valid & FUSE_SET_ATTR_UID) && attr->st_uid != st.st_uid) ||
	          ((valid & FUSE_SET_ATTR_GID) && attr->st_gid != st.st_gid) ||
	          (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))))
		r = -EPERM;
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, timeout);
}

/*
 * Pass-through setattr.  A size or time change is a modification: open
 * readers get the old bytes first (they tell an outside rewrite by size
 * and mtime, so even a touch counts), and the path is marked changed
 * before the reply.
 */
static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                       int valid, struct fuse_file_info *fi)
{
	const int modifies = FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME |
	                     FUSE_SET_ATTR_MTIME;
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *in = fs_inode_of(req, ino);
	struct fs_handle *h = fi ? fs_handle_of(fi) : NULL;
	struct timespec tv[2];
	char proc[64];
	char *path;
	int fd, tok, changed = 0, r = 0;

	if (in->kind != FS_KIND_BACKING) {
		fs_virtual_setattr(req, ctx, in, attr, valid);
		return;
	}
	if (h && h->kind != FS_H_FILE)
		h = NULL;
	fd = h ? h->fd : -1;
	fs_proc_path(proc, sizeof(proc), in->fd);

	if (valid & FUSE_SET_ATTR_MODE) {
		if ((fd >= 0 ? fchmod(fd, attr->st_mode) :
		               chmod(proc, attr->st_mode))) {
			r = -errno;
			goto out;
		}
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid :
		                                          (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid :
		                                          (gid_t)-1;

		if (fchownat(in->fd, "", uid, gid,
		             AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)) {
			r = -errno;
			goto out;
		}
	}
	if (!(valid & modifies))
		goto out;
	path = h && h->path ? strdup(h->path) : fs_inode_path(ctx, in);
	tok = fs_mod_start(ctx, in, path);
	if (valid & FUSE_SET_ATTR_SIZE) {
		if ((fd >= 0 ? ftruncate(fd, attr->st_size) :
		               truncate(proc, attr->st_size)))
			r = -errno;
		else
			changed = 1;
	}
	fs_setattr_times(attr, valid, tv);
	if (r == 0 && (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		if ((fd >= 0 ? futimens(fd, tv) :
		               utimensat(AT_FDCWD, proc, tv, 0)))
			r = -errno;
		else
			changed = 1;
	}
	fs_mod_done(ctx, tok, in, changed ? path : NULL);
	free(path);
out:
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fs_getattr(req, ino, fi);
}

/* ---- names ---- */

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *dir = fs_inode_of(req, parent);
	struct fuse_entry_param e;
	int r;

	if (dir->kind != FS_KIND_BACKING) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (fs_is_root(parent)) {
		r = fs_virtual_lookup(ctx, name, &e);
		if (r == 0) {
			fs_reply_entry(req, &e);
			return;
		}
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	r = fs_do_lookup(ctx, dir, name, &e);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fs_reply_entry(req, &e);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_forget_one(fs_ctx_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count,
                            struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		fs_forget_one(fs_ctx_of(req), forgets[i].ino,
		              forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_inode *in = fs_inode_of(req, ino);
	char buf[PATH_MAX + 1];
	ssize_t n;

	if (in->kind != FS_KIND_BACKING) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	n = readlinkat(in->fd, "", buf, sizeof(buf));
	if (n < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if ((size_t)n == sizeof(buf)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

/*
 * Checks shared by the calls that make a name: the parent must be a
 * backing directory and the name must not be one the mount serves.
 * @return 0 or a positive errno to reply
 */
static int fs_check_new_name(fuse_req_t req, fuse_ino_t parent,
                             const char *name, int err)
{
	struct fs_inode *dir = fs_inode_of(req, parent);

	if (dir->kind != FS_KIND_BACKING)
		return ENOTDIR;
	if (!fs_is_root(parent) || !fs_name_reserved(fs_ctx_of(req), name))
		return 0;
	/* Hidden, so not there to exist: making it is refused (`git init`
	 * of the mount then says so, not that .git exists). */
	return strcmp(name, ".git") == 0 ? EPERM : err;
}

/* After `name` was made in dir: note the change, answer with its entry. */
static void fs_reply_created(fuse_req_t req, struct fs_ctx *ctx,
                             struct fs_inode *dir, const char *name)
{
	struct fuse_entry_param e;
	char *path = fs_child_path(ctx, dir, name);
	int r;

	fs_changed(ctx, path);
	free(path);
	r = fs_do_lookup(ctx, dir, name, &e);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fs_reply_entry(req, &e);
}

/* mkdir and symlink: make the name, then look it up. */
/* mkdir (mode has S_IFDIR), mknod (FIFOs, sockets, ...), or symlink. */
static void fs_make_node(fuse_req_t req, fuse_ino_t parent, const char *name,
                         mode_t mode, dev_t rdev, const char *link)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *dir = fs_inode_of(req, parent);
	struct fs_creds cr;
	int r, err;

	if ((r = fs_check_new_name(req, parent, name, EEXIST))) {
		fuse_reply_err(req, r);
		return;
	}
	if ((r = fs_creds_enter(req, &cr)) < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	r = link          ? symlinkat(link, dir->fd, name) :
	    S_ISDIR(mode) ? mkdirat(dir->fd, name, mode & 07777) :
	                    mknodat(dir->fd, name, mode, rdev);
	err = errno;
	fs_creds_leave(&cr);
	if (r) {
		fuse_reply_err(req, err);
		return;
	}
	fs_reply_created(req, ctx, dir, name);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode)
{
	fs_make_node(req, parent, name, S_IFDIR | (mode & 07777), 0, NULL);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode, dev_t rdev)
{
	fs_make_node(req, parent, name, mode, rdev, NULL);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                       const char *name)
{
	fs_make_node(req, parent, name, 0, 0, link);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent,
                    const char *name)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *in = fs_inode_of(req, ino);
	struct fs_inode *dir = fs_inode_of(req, parent);
	char proc[64];
	int r;

	if (in->kind != FS_KIND_BACKING) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if ((r = fs_check_new_name(req, parent, name, EEXIST))) {
		fuse_reply_err(req, r);
		return;
	}
	fs_proc_path(proc, sizeof(proc), in->fd);
	if (linkat(AT_FDCWD, proc, dir->fd, name, AT_SYMLINK_FOLLOW)) {
		fuse_reply_err(req, errno);
		return;
	}
	fs_reply_created(req, ctx, dir, name);
}

static void fs_remove(fuse_req_t req, fuse_ino_t parent, const char *name,
                      int flags)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *dir = fs_inode_of(req, parent);
	char *path;
	int r;

	if ((r = fs_check_new_name(req, parent, name, EACCES))) {
		fuse_reply_err(req, r);
		return;
	}
	path = fs_child_path(ctx, dir, name);
	if (unlinkat(dir->fd, name, flags)) {
		r = errno;
	} else {
		fs_changed(ctx, path);
		r = 0;
	}
	free(path);
	fuse_reply_err(req, r);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_remove(req, parent, name, 0);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_remove(req, parent, name, AT_REMOVEDIR);
}

/*
 * Rename with RENAME_NOREPLACE / RENAME_EXCHANGE through renameat2;
 * other flags are EINVAL (never ENOSYS, which would make the kernel fail
 * every later rename).  Names the mount serves cannot be moved or
 * replaced (EACCES).
 */
static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname,
                      unsigned int flags)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *dir = fs_inode_of(req, parent);
	struct fs_inode *ndir = fs_inode_of(req, newparent);
	char *from = NULL, *to = NULL;
	int r;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((r = fs_check_new_name(req, parent, name, EACCES)) ||
	    (r = fs_check_new_name(req, newparent, newname, EACCES))) {
		fuse_reply_err(req, r);
		return;
	}
	from = fs_child_path(ctx, dir, name);
	to = fs_child_path(ctx, ndir, newname);
	if (renameat2(dir->fd, name, ndir->fd, newname, flags)) {
		r = errno;
		goto out;
	}
	fs_changed(ctx, from);
	fs_changed(ctx, to);
	fs_path_renamed(ctx, ndir, newname, from, to,
	                !!(flags & RENAME_EXCHANGE));
	if (flags & RENAME_EXCHANGE)
		fs_path_renamed(ctx, dir, name, NULL, from, 0);
out:
	free(from);
	free(to);
	fuse_reply_err(req, r);
}

/* ---- files ---- */

static void fs_reply_open(fuse_req_t req, struct fs_handle *h,
                          struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);

	fi->fh = (uintptr_t)h;
	fs_handle_link(ctx, h);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* Interrupted: the kernel will never release it. */
		fs_handle_unlink(ctx, h);
		fs_handle_free(h);
	}
}

/*
 * Was the file of `in` replaced (an editor's or git's rename) outside,
 * with no notification to the kernel yet (the watcher's is on its way, or
 * the directory is past the watch budget)?  Its entry may name the old
 * file for FS_PASS_TIMEOUT, and writes would go to
 * a file nobody will see; ESTALE makes the kernel look the name up.  A
 * deleted file whose name is gone is opened as it is: a reopen through
 * /proc/PID/fd of a file unlinked while open is one.
 */
static int fs_replaced(struct fs_ctx *ctx, struct fs_inode *in,
                       const char *path)
{
	struct stat st, now;

	if (!path || fstat(in->fd, &st) < 0 || st.st_nlink > 0)
		return 0;
	return fstatat(ctx->backing_fd, *path ? path : ".", &now,
	               AT_SYMLINK_NOFOLLOW) == 0 &&
	       (now.st_dev != st.st_dev || now.st_ino != st.st_ino);
}

/*
 * Open a backing file.  Opening for writing or with O_TRUNC preserves
 * what open readers of merged files need first; O_TRUNC marks the path
 * changed before the reply.
 */
static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *in = fs_inode_of(req, ino);
	struct fs_handle *h;
	char proc[64];
	int flags = fs_backing_flags(fi);
	int fd, err, tok = 0;

	if (in->kind != FS_KIND_BACKING) {
		fs_virtual_open(req, in, fi);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->kind = FS_H_FILE;
	h->fd = -1;
	h->path = fs_inode_path(ctx, in);
	if (fs_replaced(ctx, in, h->path)) {
		fuse_reply_err(req, ESTALE);
		fs_handle_free(h);
		return;
	}
	/* ATOMIC_O_TRUNC: the truncation happens here, not in setattr. */
	if (flags & O_TRUNC)
		tok = fs_mod_start(ctx, in, h->path);
	fs_proc_path(proc, sizeof(proc), in->fd);
	fd = open(proc, flags);
	err = errno;
	if (flags & O_TRUNC)
		fs_mod_done(ctx, tok, in, fd < 0 ? NULL : h->path);
	if (fd < 0) {
		fuse_reply_err(req, err);
		fs_handle_free(h);
		return;
	}
	h->fd = fd;
	fi->keep_cache = 0;
	fs_reply_open(req, h, fi);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                      mode_t mode, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *dir = fs_inode_of(req, parent);
	struct fuse_entry_param e;
	struct fs_handle *h;
	struct fs_creds cr;
	int fd, err, r;

	if ((r = fs_check_new_name(req, parent, name, EACCES))) {
		fuse_reply_err(req, r);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->kind = FS_H_FILE;
	h->fd = -1;
	if ((r = fs_creds_enter(req, &cr)) < 0) {
		fuse_reply_err(req, -r);
		fs_handle_free(h);
		return;
	}
	fd = openat(dir->fd, name, fs_backing_flags(fi) | O_CREAT, mode);
	err = errno;
	fs_creds_leave(&cr);
	if (fd < 0) {
		fuse_reply_err(req, err);
		fs_handle_free(h);
		return;
	}
	h->fd = fd;
	h->path = fs_child_path(ctx, dir, name);
	fs_changed(ctx, h->path);
	r = fs_do_lookup(ctx, dir, name, &e);
	if (r < 0) {
		fuse_reply_err(req, -r);
		fs_handle_free(h);
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->keep_cache = 0;
	fs_handle_link(ctx, h);
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		fs_handle_unlink(ctx, h);
		fs_handle_free(h);
		fs_forget_one(ctx, e.ino, 1);
	}
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
	struct fs_handle *h = fs_handle_of(fi);
	char *buf;
	ssize_t n;

	(void)ino;
	if (h->kind != FS_H_FILE) {
		fs_virtual_read(req, h, size, off);
		return;
	}
	buf = fs_thread_buf(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = pread(h->fd, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, n);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *in = fs_inode_of(req, ino);
	struct fs_handle *h = fs_handle_of(fi);
	ssize_t n;
	int tok, err;

	if (h->kind != FS_H_FILE || in->kind != FS_KIND_BACKING) {
		fuse_reply_err(req, EBADF);
		return;
	}
	tok = fs_mod_start(ctx, in, h->path);
	n = pwrite(h->fd, buf, size, off);
	err = errno;
	fs_mod_done(ctx, tok, in, n < 0 ? NULL : h->path);
	if (n < 0) {
		fuse_reply_err(req, err);
		return;
	}
	atomic_store(&h->wrote, 1);
	fuse_reply_write(req, n);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_handle *h = fs_handle_of(fi);
	int r = 0, fd;

	(void)ino;
	/* close() of a dup releases POSIX locks like the caller's close;
	 * what it reports (NFS-style write-back errors) is the caller's. */
	if (h->kind == FS_H_FILE) {
		if ((fd = dup(h->fd)) < 0 || close(fd) < 0)
			r = errno;
	}
	fuse_reply_err(req, r);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_handle *h = fs_handle_of(fi);

	(void)ino;
	fs_handle_unlink(ctx, h);
	if (h->kind == FS_H_FILE) {
		if (atomic_load(&h->wrote))
			fs_changed(ctx, h->path);
	} else {
		fs_virtual_release(ctx, h);
	}
	fs_handle_free(h);
	fuse_reply_err(req, 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                     struct fuse_file_info *fi)
{
	struct fs_handle *h = fs_handle_of(fi);
	int r = 0;

	(void)ino;
	if (h->kind == FS_H_FILE &&
	    (datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0)
		r = errno;
	fuse_reply_err(req, r);
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                         off_t length, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *in = fs_inode_of(req, ino);
	struct fs_handle *h = fs_handle_of(fi);
	int r = 0, tok;

	if (h->kind != FS_H_FILE) {
		fuse_reply_err(req, EBADF);
		return;
	}
	tok = fs_mod_start(ctx, in, h->path);
	if (fallocate(h->fd, mode, offset, length) < 0)
		r = errno;
	fs_mod_done(ctx, tok, in, r ? NULL : h->path);
	fuse_reply_err(req, r);
}

/*
 * SEEK_DATA and SEEK_HOLE (the kernel does the other whences itself): a
 * backing file's own; a merged or status file has no holes.
 */
static void fs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                     struct fuse_file_info *fi)
{
	struct fs_handle *h = fs_handle_of(fi);
	off_t size, r;

	(void)ino;
	if (h->kind == FS_H_FILE) {
		r = lseek(h->fd, off, whence);
		if (r < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_lseek(req, r);
		return;
	}
	if (h->kind == FS_H_DIR || (whence != SEEK_DATA && whence != SEEK_HOLE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	size = h->kind == FS_H_GEN ?
	               (off_t)engine_view_size(engine_reader_view(h->reader)) :
	               (off_t)h->len;
	if (off < 0 || off >= size)
		fuse_reply_err(req, ENXIO);
	else
		fuse_reply_lseek(req, whence == SEEK_DATA ? off : size);
}

/* ---- directories ---- */

static int fs_dirent_push(struct fs_dirent **ents, size_t *n, size_t *cap,
                          const char *name, ino_t ino, unsigned char type)
{
	struct fs_dirent *p;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;

		p = realloc(*ents, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*ents = p;
		*cap = ncap;
	}
	p = &(*ents)[*n];
	p->name = strdup(name);
	if (!p->name)
		return -ENOMEM;
	p->ino = ino;
	p->type = type;
	p->virt = 0;
	(*n)++;
	return 0;
}

/*
 * Read a whole directory into h->ents.  In the root, `.git` and the
 * backing files shadowed by virtual files are left out and the virtual
 * files are added.  Offsets handed to the kernel are indexes + 1.
 * @return 0 or -errno
 */
static int fs_dir_snapshot(struct fs_ctx *ctx, struct fs_inode *in,
                           struct fs_handle *h)
{
	struct fs_dirent *ents = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	struct stat st;
	DIR *dp;
	int root = in == &ctx->root;
	int fd, gone, r = 0;

	fd = openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dp = fdopendir(fd);
	if (!dp) {
		r = -errno;
		close(fd);
		return r;
	}
	if (root)
		fs_targets_ensure(ctx);
	/* A deleted directory lists nothing, not even "." and "..".  The
	 * root of a mount whose BACKING was deleted lists only the status
	 * file, which says so: no lookup would find a merged file. */
	gone = root && fstat(fd, &st) == 0 && st.st_nlink == 0;
	for (;;) {
		errno = 0;
		de = readdir(dp);
		if (!de) {
			r = -errno;
			break;
		}
		if ((root && fs_name_reserved(ctx, de->d_name)) ||
		    fs_is_mountpoint(ctx, &in->key, de->d_name))
			continue;
		if ((r = fs_dirent_push(&ents, &n, &cap, de->d_name, de->d_ino,
		                        de->d_type)) < 0)
			break;
	}
	closedir(dp);
	if (r == 0 && root)
		r = fs_virtual_dirents(ctx, gone, &ents, &n, &cap);
	if (r < 0) {
		fs_dirents_free(ents, n);
		return r;
	}
	fs_dirents_free(h->ents, h->nents);
	h->ents = ents;
	h->nents = n;
	return 0;
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *in = fs_inode_of(req, ino);
	struct fs_handle *h;
	int r;

	if (in->kind != FS_KIND_BACKING) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->kind = FS_H_DIR;
	h->fd = -1;
	if ((r = fs_dir_snapshot(ctx, in, h)) < 0) {
		fuse_reply_err(req, -r);
		fs_handle_free(h);
		return;
	}
	fs_reply_open(req, h, fi);
}

static int fs_is_dot(const char *name)
{
	return name[0] == '.' &&
	       (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static void fs_do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
                          off_t off, struct fuse_file_info *fi, int plus)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_inode *dir = fs_inode_of(req, ino);
	struct fs_handle *h = fs_handle_of(fi);
	size_t rem = size, i, used;
	char *buf, *p;
	int r = 0;

	if (off == 0 && h->served && (r = fs_dir_snapshot(ctx, dir, h)) < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	h->served = 1;
	buf = fs_thread_buf(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p = buf;
	for (i = off; i < h->nents; i++) {
		struct fs_dirent *d = &h->ents[i];
		struct fuse_entry_param e;
		size_t entsize;

		if (plus) {
			if (d->virt || fs_is_dot(d->name)) {
				/* ino 0: the kernel only lists the name. */
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = d->ino;
				e.attr.st_mode = (mode_t)d->type << 12;
			} else {
				r = fs_do_lookup(ctx, dir, d->name, &e);
				if (r == -ENOENT) {
					/* Gone since the snapshot: left out
					 * (POSIX allows either), never an
					 * error for the whole call. */
					r = 0;
					continue;
				}
				if (r < 0)
					break;
			}
			entsize = fuse_add_direntry_plus(req, p, rem, d->name,
			                                 &e, i + 1);
			if (entsize > rem) {
				if (e.ino)
					fs_forget_one(ctx, e.ino, 1);
				break;
			}
		} else {
			struct stat st;

			memset(&st, 0, sizeof(st));
			/* As stat shows it: entries are on the directory's
			 * device (a mountpoint's is the covered one's). */
			st.st_ino = d->virt ? d->ino :
			                      fs_shown_ino(ctx, dir->key.dev,
			                                   d->ino);
			st.st_mode = (mode_t)d->type << 12;
			entsize = fuse_add_direntry(req, p, rem, d->name, &st,
			                            i + 1);
			if (entsize > rem)
				break;
		}
		p += entsize;
		rem -= entsize;
	}
	used = size - rem;
	if (r < 0 && used == 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, used);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	fs_do_readdir(req, ino, size, off, fi, 0);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
                           off_t off, struct fuse_file_info *fi)
{
	fs_do_readdir(req, ino, size, off, fi, 1);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
                          struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fs_ctx_of(req);
	struct fs_handle *h = fs_handle_of(fi);

	(void)ino;
	fs_handle_unlink(ctx, h);
	fs_handle_free(h);
	fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                        struct fuse_file_info *fi)
{
	struct fs_inode *in = fs_inode_of(req, ino);
	int fd, r = 0;

	(void)fi;
	fd = openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if ((datasync ? fdatasync(fd) : fsync(fd)) < 0)
		r = errno;
	close(fd);
	fuse_reply_err(req, r);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	if (fstatvfs(fs_ctx_of(req)->backing_fd, &sv))
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.access = fs_access,
	.mkdir = fs_mkdir,
	.mknod = fs_mknod,
	.symlink = fs_symlink,
	.link = fs_link,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.rename = fs_rename,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.fallocate = fs_fallocate,
	.lseek = fs_lseek,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.setxattr = fs_setxattr,
	.removexattr = fs_removexattr,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.fsyncdir = fs_fsyncdir,
	.statfs = fs_statfs,
};

const struct fuse_lowlevel_ops *fs_ops_table(void)
{
	return &fs_ops;
}
