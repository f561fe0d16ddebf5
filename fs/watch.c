/* SPDX-License-Identifier: MIT */
/*
 * watch.c - noticing changes made outside the mount, and telling the
 * kernel to drop what it cached.
 *
 * One non-blocking inotify fd watches, for their names, the backing root,
 * every directory a source pattern reaches into (pattern `hosts/NAME`
 * watches `hosts`), and every other directory the kernel holds a node of,
 * from its LOOKUP to its FORGET; and, for their content, every host file
 * from just before its first scan (fs_watch_source, the engine's on_scan
 * hook) and every regular file the kernel holds.  An outside change below
 * the root then reaches the kernel's caches within milliseconds, not
 * after their 1 s timeout, and a file deleted outside is forgotten by the
 * kernel, so its O_PATH fd is closed and its space freed.
 *
 * Content is watched per file, not through the directory: while a
 * directory is watched for events on its children (IN_MODIFY and the
 * like), every read of a file in it, the daemon's own included, takes
 * and drops a reference on the directory's dentry (fsnotify looks at the
 * parent), and serving a merged file reads its host files once per
 * entry from two threads at once.  Watching content per file made a cold
 * read of the 100 MB bench corpus 6% faster (median of 15 alternating
 * runs: 111.6 against 118.7 ms).  A host file's (or descriptor's) watch
 * stands for the name it was last scanned by, until that name goes (a
 * delete or a rename away), leads to another file, or the file goes
 * (IN_IGNORED).  At most FS_WATCH_MAX host files are watched so, and
 * past that a refresh's comparison of stats still finds every change;
 * every descriptor is (nothing else tells of an edit of one in place).
 *
 * A watcher thread drains the fd whenever it is readable; LOOKUP of a
 * merged name also drains it synchronously first.  The kernel queues an
 * inotify event before the writer's write() returns, so a drain at LOOKUP
 * sees every completed outside write without sleeping (and every refresh
 * also compares each host file's stat with its scan's).  Each event marks
 * the targets the file is a source of (virtual.c), and queues cache
 * notifications: inval_inode for a backing inode that changed, and
 * inval_entry for names created, removed or renamed.  IN_Q_OVERFLOW
 * invalidates every target and every inode the kernel holds, and the
 * names that no longer lead to them (fs_watch_overflow).
 *
 * Notifications go through a queue to a notifier thread of their own: they
 * are never sent from a request handler nor with a lock held (a handler
 * waiting on the lock while the kernel waits on the handler would
 * deadlock).  The queue deduplicates pending items and resolves node ids
 * only when sending, so nothing is sent for an inode the kernel forgot.
 * ENOENT, EBADF and ENODEV from the kernel are benign (forgotten inode,
 * unmount in progress).
 *
 * Both threads block the termination signals, so SIGTERM always lands on
 * a FUSE worker or the loop's thread (see stop.c).
 */
#include "mount_i.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "desc.h"

/* Directories: names only, no event of a child's own (see the top). */
#define FS_WATCH_DIR_MASK                                                     \
	(IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE |                \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW |        \
	 IN_EXCL_UNLINK)
/* Regular files: their bytes and attributes. */
#define FS_WATCH_FILE_MASK (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE)
/* Most directories watched for source patterns besides the root, and
 * most host files watched for being scanned. */
#define FS_WATCH_MAX 4096
/*
 * Most directories, and most files, watched because the kernel holds
 * them: at most this many of each, and at most an eighth of the user's
 * inotify watches each, which editors and other tools share.
 */
#define FS_WATCH_HELD_MAX 8192
/* Deepest directory level a source pattern may reach into. */
#define FS_WATCH_DEPTH 16

static char *fs_join(const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);
	char *p = malloc(dl + nl + 2);

	if (!p)
		return NULL;
	if (dl) {
		memcpy(p, dir, dl);
		p[dl++] = '/';
	}
	memcpy(p + dl, name, nl + 1);
	return p;
}

/* ---- the notifier ---- */

static void fs_note_free(struct fs_note *n)
{
	free(n->key);
	free(n->name);
	free(n);
}

/* Queue n under its key unless the same one is pending; takes n. */
static void fs_note_add(struct fs_ctx *ctx, struct fs_note *n,
                        const char *prefix, const char *name)
{
	struct fs_note *dup;
	size_t kl = strlen(prefix), nl = name ? strlen(name) : 0;

	n->key = malloc(kl + nl + 1);
	n->name = name ? strdup(name) : NULL;
	if (!n->key || (name && !n->name)) {
		fs_note_free(n);
		return;
	}
	memcpy(n->key, prefix, kl);
	memcpy(n->key + kl, name ? name : "", nl + 1);

	pthread_mutex_lock(&ctx->nlock);
	HASH_FIND_STR(ctx->notes, n->key, dup);
	if (dup || ctx->nstop) {
		pthread_mutex_unlock(&ctx->nlock);
		fs_note_free(n);
		return;
	}
	HASH_ADD_KEYPTR(hh, ctx->notes, n->key, strlen(n->key), n);
	pthread_cond_signal(&ctx->ncond);
	pthread_mutex_unlock(&ctx->nlock);
}

static void fs_note_queue(struct fs_ctx *ctx, enum fs_note_kind kind,
                          const struct fs_ikey *ik, const char *name)
{
	struct fs_note *n = calloc(1, sizeof(*n));
	char key[96];

	if (!n)
		return;
	n->kind = kind;
	n->root = ik == NULL;
	if (ik)
		n->ik = *ik;
	snprintf(key, sizeof(key),
	         "%c:%lu:%lu:", kind == FS_NOTE_ENTRY ? 'e' : 'i',
	         ik ? (unsigned long)ik->dev : 0UL,
	         ik ? (unsigned long)ik->ino : 0UL);
	fs_note_add(ctx, n, key, name);
}

void fs_notify_inode(struct fs_ctx *ctx, const struct fs_ikey *key)
{
	fs_note_queue(ctx, FS_NOTE_INODE, key, NULL);
}

void fs_notify_entry(struct fs_ctx *ctx, const struct fs_ikey *parent,
                     const char *name)
{
	fs_note_queue(ctx, FS_NOTE_ENTRY, parent, name);
}

void fs_notify_gen_cache(struct fs_ctx *ctx, const char *target,
                         uint64_t generation)
{
	struct fs_note *n = calloc(1, sizeof(*n));
	char key[48];

	if (!n)
		return;
	n->kind = FS_NOTE_GEN;
	n->generation = generation;
	snprintf(key, sizeof(key), "g:%llu:", (unsigned long long)generation);
	fs_note_add(ctx, n, key, target);
}

static void fs_note_send(struct fs_ctx *ctx, struct fs_note *n)
{
	fuse_ino_t id;
	int r;

	if (n->kind == FS_NOTE_GEN)
		id = fs_gen_resolve(ctx, n->name, n->generation);
	else
		id = n->root ? FUSE_ROOT_ID : fs_inode_resolve(ctx, &n->ik);
	if (!id)
		return;
	if (n->kind == FS_NOTE_ENTRY)
		r = fuse_lowlevel_notify_inval_entry(ctx->se, id, n->name,
		                                     strlen(n->name));
	else
		r = fuse_lowlevel_notify_inval_inode(ctx->se, id, 0, 0);
	/* ENOENT, EBADF and ENODEV are benign (see the top). */
	if (ctx->debug)
		fuse_log(FUSE_LOG_DEBUG, "crdtfs: notify %s: %s\n", n->key,
		         r < 0 ? strerror(-r) : "sent");
}

static void *fs_notify_main(void *arg)
{
	struct fs_ctx *ctx = arg;
	struct fs_note *batch, *n, *tmp;

	pthread_mutex_lock(&ctx->nlock);
	for (;;) {
		while (!ctx->notes && !ctx->nstop)
			pthread_cond_wait(&ctx->ncond, &ctx->nlock);
		if (ctx->nstop)
			break;
		batch = ctx->notes;
		ctx->notes = NULL;
		pthread_mutex_unlock(&ctx->nlock);
		/* uthash iterates in insertion order: a FIFO.  Once stopping,
		 * the rest is dropped: each can wait on writes in flight. */
		HASH_ITER(hh, batch, n, tmp) {
			HASH_DEL(batch, n);
			if (!__atomic_load_n(&ctx->nstop, __ATOMIC_ACQUIRE))
				fs_note_send(ctx, n);
			fs_note_free(n);
		}
		pthread_mutex_lock(&ctx->nlock);
	}
	pthread_mutex_unlock(&ctx->nlock);
	return NULL;
}

/* ---- the watch set ---- */

/* Forget the path file watch w was scanned by (wlock held). */
static void fs_watch_drop_path(struct fs_ctx *ctx, struct fs_watch *w)
{
	ctx->watches_scanned--;
	HASH_DELETE(hp, ctx->scanned, w);
	free(w->path);
	w->path = NULL;
}

/* Drop w from the table and free it (wlock held; its inotify watch is
 * already gone: IN_IGNORED, teardown; else see fs_watch_remove). */
static void fs_watch_forget(struct fs_ctx *ctx, struct fs_watch *w)
{
	if (w->held)
		ctx->watches_held[w->file]--;
	if (w->file && w->path)
		fs_watch_drop_path(ctx, w);
	HASH_DEL(ctx->watches, w);
	free(w->path);
	free(w);
}

/* Stop watch w and forget it (wlock held). */
static void fs_watch_remove(struct fs_ctx *ctx, struct fs_watch *w)
{
	inotify_rm_watch(ctx->inotify_fd, w->wd);
	fs_watch_forget(ctx, w);
}

/*
 * File watch w no longer stands for its path (the name went, or leads to
 * another file now): forget the path, and the watch unless the kernel
 * holds the file (wlock held; w may be freed).  Else a write to a file
 * renamed away would keep marking the name's new file changed, and the
 * watch would use up the budget for good.
 */
static void fs_watch_unscan(struct fs_ctx *ctx, struct fs_watch *w)
{
	if (!w->held)
		fs_watch_remove(ctx, w);
	else
		fs_watch_drop_path(ctx, w);
}

/* Does file watch w's path still lead to its file? */
static int fs_watch_path_holds(struct fs_ctx *ctx, const struct fs_watch *w)
{
	struct stat st;

	return fstatat(ctx->backing_fd, w->path, &st, AT_SYMLINK_NOFOLLOW) ==
	               0 &&
	       st.st_dev == w->key.dev && st.st_ino == w->key.ino;
}

/*
 * Watch the directory or regular file open as O_PATH `fd` (wlock held;
 * the caller keeps the fd: a watch owns none, so it costs no descriptor
 * and pins no mount).  An inode already watched keeps its watch: inotify
 * gives one watch descriptor per inode.
 * @return the watch, or NULL with errno set
 */
static struct fs_watch *fs_watch_fd(struct fs_ctx *ctx, int fd)
{
	struct fs_watch *w;
	struct stat st;
	char at[64];
	int wd, file;

	if (fstat(fd, &st))
		return NULL;
	file = S_ISREG(st.st_mode);
	if (!file && !S_ISDIR(st.st_mode)) {
		errno = EINVAL;
		return NULL;
	}
	/*
	 * Through the fd, not a path: the mount may sit on top of its own
	 * backing directory.  The fd's magic link is followed: for a
	 * directory by the "/.", which IN_DONT_FOLLOW would otherwise
	 * watch in its place.
	 */
	snprintf(at, sizeof(at), file ? "/proc/self/fd/%d" :
	                                 "/proc/self/fd/%d/.", fd);
	wd = inotify_add_watch(ctx->inotify_fd, at,
	                       file ? FS_WATCH_FILE_MASK : FS_WATCH_DIR_MASK);
	if (wd < 0)
		return NULL;
	HASH_FIND_INT(ctx->watches, &wd, w);
	if (w)
		return w;
	if (!(w = calloc(1, sizeof(*w)))) {
		inotify_rm_watch(ctx->inotify_fd, wd);
		errno = ENOMEM;
		return NULL;
	}
	w->wd = wd;
	w->file = file;
	w->key.dev = st.st_dev;
	w->key.ino = st.st_ino;
	HASH_ADD_INT(ctx->watches, wd, w);
	return w;
}

/* Is w wanted for something else than the kernel's holds? */
static int fs_watch_wanted(const struct fs_watch *w)
{
	return w->file ? w->path != NULL : w->seen;
}

/* Watch backing directory `rel` for a source pattern, or the root for
 * "" (wlock held).  @return 0 or -errno */
static int fs_watch_add(struct fs_ctx *ctx, const char *rel)
{
	struct fs_watch *w;
	char *copy;
	int fd, err;

	fd = openat(ctx->backing_fd, *rel ? rel : ".",
	            O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	w = fs_watch_fd(ctx, fd);
	err = errno;
	close(fd);
	if (!w)
		return -err;
	w->seen = 1;
	if ((!w->path || strcmp(w->path, rel) != 0) && (copy = strdup(rel))) {
		free(w->path);
		w->path = copy;
	}
	return w->path ? 0 : -ENOMEM;
}

int fs_watch_hold(struct fs_ctx *ctx, int fd)
{
	struct fs_watch *w;
	int wd = 0;

	if (ctx->inotify_fd < 0)
		return 0;
	pthread_mutex_lock(&ctx->wlock);
	if ((w = fs_watch_fd(ctx, fd))) {
		if (w->held == 0 && !fs_watch_wanted(w) &&
		    ctx->watches_held[w->file] >= ctx->watches_held_max) {
			/* Past the budget: only inodes watched already. */
			fs_watch_remove(ctx, w);
		} else {
			if (w->held++ == 0)
				ctx->watches_held[w->file]++;
			wd = w->wd;
		}
	}
	pthread_mutex_unlock(&ctx->wlock);
	return wd;
}

void fs_watch_release(struct fs_ctx *ctx, int wd, const struct fs_ikey *key)
{
	struct fs_watch *w;

	pthread_mutex_lock(&ctx->wlock);
	HASH_FIND_INT(ctx->watches, &wd, w);
	/* Gone already when the directory was deleted (IN_IGNORED). */
	if (w && w->held && w->key.dev == key->dev && w->key.ino == key->ino &&
	    --w->held == 0) {
		ctx->watches_held[w->file]--;
		if (!fs_watch_wanted(w)) {
			fs_watch_remove(ctx, w);
		}
	}
	pthread_mutex_unlock(&ctx->wlock);
}

void fs_watch_source(void *arg, const char *name)
{
	struct fs_ctx *ctx = arg;
	struct fs_watch *w, *other;
	int fd;

	if (ctx->inotify_fd < 0)
		return;
	fd = openat(ctx->backing_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return; /* gone: the scan finds that out too */
	pthread_mutex_lock(&ctx->wlock);
	if ((w = fs_watch_fd(ctx, fd)) && w->file &&
	    (!w->path || strcmp(w->path, name) != 0)) {
		HASH_FIND(hp, ctx->scanned, name, strlen(name), other);
		if (other) /* the name's file before this one */
			fs_watch_unscan(ctx, other);
		if (w->path) /* renamed, or another link: this name now */
			fs_watch_drop_path(ctx, w);
		if (ctx->watches_scanned >= FS_WATCH_MAX &&
		    !desc_is_file_name(name)) {
			/* Past the budget: refreshes still compare host files'
			 * stats.  Not a descriptor's: only its watch tells of
			 * an edit in place. */
			if (!w->held)
				fs_watch_remove(ctx, w);
		} else if ((w->path = strdup(name))) {
			ctx->watches_scanned++;
			HASH_ADD_KEYPTR(hp, ctx->scanned, w->path,
			                strlen(w->path), w);
		}
	}
	pthread_mutex_unlock(&ctx->wlock);
	close(fd);
}

/*
 * Watch the directories below `rel` matching segments[depth..last-1] of a
 * source pattern (the last segment names files).  Symlinks are never
 * followed, like desc_match_sources().
 */
static void fs_watch_walk(struct fs_ctx *ctx, const char *rel, char **segs,
                          size_t depth, size_t last, unsigned *budget)
{
	struct fs_ikey here;
	struct dirent *de;
	struct stat st;
	DIR *dp;
	int fd;

	if (depth >= last || depth >= FS_WATCH_DEPTH)
		return;
	fd = openat(ctx->backing_fd, *rel ? rel : ".",
	            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) < 0 || !(dp = fdopendir(fd))) {
		close(fd);
		return;
	}
	here.dev = st.st_dev;
	here.ino = st.st_ino;
	while ((de = readdir(dp)) && *budget > 0) {
		char *child;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (!*rel && strcmp(de->d_name, ".git") == 0)
			continue;
		if (fnmatch(segs[depth], de->d_name, FNM_PERIOD) != 0 ||
		    fs_is_mountpoint(ctx, &here, de->d_name))
			continue;
		if (de->d_type != DT_DIR &&
		    (de->d_type != DT_UNKNOWN ||
		     fstatat(dirfd(dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		     !S_ISDIR(st.st_mode)))
			continue;
		child = fs_join(rel, de->d_name);
		if (!child)
			break;
		if (fs_watch_add(ctx, child) == 0) {
			(*budget)--;
			fs_watch_walk(ctx, child, segs, depth + 1, last,
			              budget);
		}
		free(child);
	}
	closedir(dp);
}

/* Split a pattern at '/' into an owned array. @return segments or 0 */
static size_t fs_split(const char *pattern, char ***out)
{
	char *copy, *save = NULL, *tok, **segs = NULL, **p;
	size_t n = 0;

	*out = NULL;
	copy = strdup(pattern);
	if (!copy)
		return 0;
	for (tok = strtok_r(copy, "/", &save); tok;
	     tok = strtok_r(NULL, "/", &save)) {
		p = realloc(segs, (n + 1) * sizeof(*p));
		if (!p)
			break;
		segs = p;
		if (!(segs[n] = strdup(tok)))
			break;
		n++;
	}
	free(copy);
	*out = segs;
	return n;
}

/* Recompute the watch set (wlock held). */
static void fs_watch_rescan_locked(struct fs_ctx *ctx)
{
	struct fs_watch *w, *tmp;
	char **patterns = NULL, **p;
	size_t npat = 0, i, j;
	unsigned budget = FS_WATCH_MAX;

	ctx->watch_rescan = 0;
	HASH_ITER(hh, ctx->watches, w, tmp)
		w->seen = 0; /* files: unused */
	(void)fs_watch_add(ctx, "");

	pthread_rwlock_rdlock(&ctx->tlock);
	for (i = 0; i < ctx->ntargets; i++) {
		const desc_descriptor *d = ctx->targets[i]->desc;

		for (j = 0; j < d->nsources; j++) {
			if (!strchr(d->sources[j], '/'))
				continue;
			p = realloc(patterns, (npat + 1) * sizeof(*p));
			if (!p)
				break;
			patterns = p;
			if ((patterns[npat] = strdup(d->sources[j])))
				npat++;
		}
	}
	pthread_rwlock_unlock(&ctx->tlock);

	for (i = 0; i < npat; i++) {
		char **segs;
		size_t n = fs_split(patterns[i], &segs);

		if (n > 1)
			fs_watch_walk(ctx, "", segs, 0, n - 1, &budget);
		for (j = 0; j < n; j++)
			free(segs[j]);
		free(segs);
		free(patterns[i]);
	}
	free(patterns);

	HASH_ITER(hh, ctx->watches, w, tmp) {
		if (w->seen || w->file)
			continue;
		if (w->held) {
			/* Still watched for the kernel: no source dir now. */
			free(w->path);
			w->path = NULL;
			continue;
		}
		fs_watch_remove(ctx, w);
	}
}

void fs_watch_rescan(struct fs_ctx *ctx)
{
	if (ctx->inotify_fd < 0)
		return;
	pthread_mutex_lock(&ctx->wlock);
	fs_watch_rescan_locked(ctx);
	pthread_mutex_unlock(&ctx->wlock);
}

/* ---- events ---- */

/* A backing inode the kernel holds, as the overflow needs it. */
struct fs_held {
	struct fs_ikey key;
	char *path; /* owned; NULL when unknown */
};

static int fs_held_cmp(const void *a, const void *b)
{
	const struct fs_held *x = a, *y = b;

	if (!x->path || !y->path)
		return !x->path - !y->path; /* unknown paths last */
	return strcmp(x->path, y->path);
}

/*
 * Queue inval_entry for h's path (relative to the root, not ""), the
 * last name the kernel looked it up by, unless the name still leads to
 * it: dropping a name that did not change would cost more than a LOOKUP
 * (the kernel unhashes a directory's entry, so a process in it sees
 * getcwd() fail and mounts on it go).  The parent is each held inode of
 * that path in held[0..n) (sorted by path): a directory deleted with its
 * tree is still the kernel's parent of the names in it, and a child in
 * use when the directory's own name went keeps its name there until told.
 * Else the parent is found by its current path.
 */
static void fs_notify_path(struct fs_ctx *ctx, const struct fs_held *held,
                           size_t n, const struct fs_held *h)
{
	const char *slash = strrchr(h->path, '/');
	struct fs_held want = { { 0, 0 }, NULL };
	struct fs_ikey parent;
	struct stat st;
	size_t lo = 0, hi = n, told = 0;

	if (fstatat(ctx->backing_fd, h->path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_dev == h->key.dev && st.st_ino == h->key.ino)
		return;
	if (!slash) {
		fs_notify_entry(ctx, NULL, h->path);
		return;
	}
	if (!(want.path = strndup(h->path, (size_t)(slash - h->path))))
		return;
	while (lo < hi) { /* the first held inode of the parent's path */
		size_t mid = lo + (hi - lo) / 2;

		if (fs_held_cmp(&held[mid], &want) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < n && fs_held_cmp(&held[lo], &want) == 0; lo++, told++)
		fs_notify_entry(ctx, &held[lo].key, slash + 1);
	if (!told && fstatat(ctx->backing_fd, want.path, &st,
	                     AT_SYMLINK_NOFOLLOW) == 0) {
		memset(&parent, 0, sizeof(parent));
		parent.dev = st.st_dev;
		parent.ino = st.st_ino;
		fs_notify_entry(ctx, &parent, slash + 1);
	}
	free(want.path);
}

/*
 * Events were lost (the kernel's inotify queue overflowed): whatever
 * they said about the names the kernel holds is unknown.  So every held
 * backing inode is told to drop its attributes and cached data, and its
 * last name looked up, when it no longer leads to it, to be looked up
 * again: a file deleted meanwhile is then forgotten (its O_PATH fd
 * closed, its space freed) and an append shows at once, as if each event
 * had come.
 */
static void fs_watch_overflow(struct fs_ctx *ctx)
{
	struct fs_held *held = NULL;
	struct fs_watch *w, *wtmp;
	struct fs_inode *in, *tmp;
	size_t n = 0, cap = 0, i;

	fs_invalidate_all(ctx);
	ctx->watch_rescan = 1;
	/* Their IN_IGNORED may be among the events lost. */
	HASH_ITER(hp, ctx->scanned, w, wtmp)
		if (!fs_watch_path_holds(ctx, w))
			fs_watch_unscan(ctx, w);
	pthread_mutex_lock(&ctx->ilock);
	HASH_ITER(hh, ctx->inodes, in, tmp) {
		struct fs_held *more;

		if (in->kind != FS_KIND_BACKING)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			if (!(more = realloc(held, cap * sizeof(*held))))
				break;
			held = more;
		}
		held[n].key = in->key;
		held[n].path = in->path ? strdup(in->path) : NULL;
		n++;
	}
	pthread_mutex_unlock(&ctx->ilock);
	if (ctx->debug)
		fuse_log(FUSE_LOG_DEBUG,
		         "crdtfs: inotify queue overflowed: %zu held names "
		         "checked again\n",
		         n);
	if (n > 1)
		qsort(held, n, sizeof(*held), fs_held_cmp);
	for (i = 0; i < n; i++) {
		fs_notify_inode(ctx, &held[i].key);
		if (held[i].path && *held[i].path) /* not the root */
			fs_notify_path(ctx, held, n, &held[i]);
	}
	for (i = 0; i < n; i++)
		free(held[i].path);
	free(held);
}

static void fs_watch_event(struct fs_ctx *ctx, const struct inotify_event *ev)
{
	const struct fs_ikey *parent;
	struct fs_watch *w;
	char *path;

	if (ev->mask & IN_Q_OVERFLOW) {
		fs_watch_overflow(ctx);
		return;
	}
	HASH_FIND_INT(ctx->watches, &ev->wd, w);
	if (!w)
		return;
	if (ev->mask & IN_IGNORED) {
		if (w->path && !w->file)
			ctx->watch_rescan = 1;
		fs_watch_forget(ctx, w);
		return;
	}
	if (w->file) {
		/* Written or its attributes changed, under whatever name. */
		struct fs_ikey key = w->key;

		if (w->path && fs_watch_path_holds(ctx, w))
			(void)fs_sources_changed(ctx, w->path);
		else if (w->path)
			fs_watch_unscan(ctx, w);
		fs_notify_inode(ctx, &key);
		return;
	}
	if (!ev->len || !ev->name[0]) {
		/* The directory itself: deleted or moved. */
		if ((ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) && w->path)
			ctx->watch_rescan = 1;
		return;
	}
	/*
	 * Names the mount serves in the root (`.git`, targets, status) hide
	 * the backing files of the same name: nothing to tell the kernel.
	 */
	if (w->path && !*w->path && fs_name_served(ctx, ev->name))
		return;
	parent = w->path && !*w->path ? NULL : &w->key;
	if (ev->mask & IN_ISDIR) {
		if (ev->mask &
		    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) {
			if (w->path)
				ctx->watch_rescan = 1;
			fs_notify_entry(ctx, parent, ev->name);
		}
		return;
	}
	/* Only a directory a source pattern reaches into holds sources. */
	if (w->path) {
		struct fs_watch *f;

		if (!(path = fs_join(w->path, ev->name))) {
			fs_invalidate_all(ctx);
			return;
		}
		(void)fs_sources_changed(ctx, path);
		HASH_FIND(hp, ctx->scanned, path, strlen(path), f);
		if (f && (ev->mask & (IN_DELETE | IN_MOVED_FROM)))
			fs_watch_unscan(ctx, f); /* w is a directory's */
		free(path);
	}
	fs_notify_entry(ctx, parent, ev->name);
}

void fs_watch_drain(struct fs_ctx *ctx)
{
	char buf[16384]
	        __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t n;
	char *p;

	if (ctx->inotify_fd < 0)
		return;
	/*
	 * wlock per batch, read and handled together (so batches are handled
	 * in the order read): a long drain (an outside `rm -rf` of a large
	 * watched tree) lets directory LOOKUPs, which take it to hold a
	 * watch, in between.  Once a read finds nothing, every event queued
	 * before has been handled, by this thread or another.
	 */
	for (;;) {
		pthread_mutex_lock(&ctx->wlock);
		n = read(ctx->inotify_fd, buf, sizeof(buf));
		for (p = buf; n > 0 && p < buf + n;
		     p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			fs_watch_event(ctx, ev);
		}
		if (n <= 0 && ctx->watch_rescan)
			fs_watch_rescan_locked(ctx);
		pthread_mutex_unlock(&ctx->wlock);
		if (n <= 0)
			break;
	}
}

static void *fs_watch_main(void *arg)
{
	struct fs_ctx *ctx = arg;
	struct pollfd pfd[2];

	pfd[0].fd = ctx->inotify_fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = ctx->wake_fd;
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & POLLIN)
			fs_watch_drain(ctx);
		else if (pfd[0].revents)
			break;
	}
	return NULL;
}

/* ---- lifetime ---- */

/* How many directories (and how many files) the kernel holds may be
 * watched. */
static unsigned fs_watch_held_budget(void)
{
	FILE *f = fopen("/proc/sys/fs/inotify/max_user_watches", "re");
	unsigned long limit = 0;

	if (f) {
		if (fscanf(f, "%lu", &limit) != 1)
			limit = 0;
		fclose(f);
	}
	limit /= 8;
	return limit < FS_WATCH_HELD_MAX ? (unsigned)limit : FS_WATCH_HELD_MAX;
}

int fs_watch_init(struct fs_ctx *ctx)
{
	int r;

	ctx->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ctx->inotify_fd < 0)
		return -errno;
	ctx->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ctx->wake_fd < 0)
		return -errno;
	ctx->watches_held_max = fs_watch_held_budget();
	pthread_mutex_lock(&ctx->wlock);
	r = fs_watch_add(ctx, "");
	pthread_mutex_unlock(&ctx->wlock);
	return r;
}

int fs_watch_start(struct fs_ctx *ctx)
{
	sigset_t set, old;
	int r;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	r = -pthread_create(&ctx->notify_thread, NULL, fs_notify_main, ctx);
	if (r == 0) {
		ctx->notify_running = 1;
		r = -pthread_create(&ctx->watch_thread, NULL, fs_watch_main,
		                    ctx);
		if (r == 0)
			ctx->watch_running = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

void fs_watch_stop(struct fs_ctx *ctx)
{
	struct fs_note *n, *tmp;
	uint64_t one = 1;

	if (ctx->watch_running) {
		if (write(ctx->wake_fd, &one, sizeof(one)) < 0)
			fuse_log(FUSE_LOG_ERR,
			         "crdtfs: waking the watcher: %s\n",
			         strerror(errno));
		pthread_join(ctx->watch_thread, NULL);
		ctx->watch_running = 0;
	}
	pthread_mutex_lock(&ctx->nlock);
	__atomic_store_n(&ctx->nstop, 1, __ATOMIC_RELEASE);
	pthread_cond_signal(&ctx->ncond);
	pthread_mutex_unlock(&ctx->nlock);
	if (ctx->notify_running) {
		pthread_join(ctx->notify_thread, NULL);
		ctx->notify_running = 0;
	}
	HASH_ITER(hh, ctx->notes, n, tmp) {
		HASH_DEL(ctx->notes, n);
		fs_note_free(n);
	}
}

void fs_watch_free(struct fs_ctx *ctx)
{
	struct fs_watch *w, *tmp;

	HASH_ITER(hh, ctx->watches, w, tmp)
		fs_watch_forget(ctx, w);
	if (ctx->inotify_fd >= 0)
		close(ctx->inotify_fd);
	if (ctx->wake_fd >= 0)
		close(ctx->wake_fd);
	ctx->inotify_fd = ctx->wake_fd = -1;
}
