/* SPDX-License-Identifier: MIT */
/*
 * virtual.c - the files the mount makes up: one merged file per target
 * (the default `unified-memory.json` and one per valid `*.merge.json`
 * descriptor in the backing root) and the status file.
 *
 * Generations.  Each generation of a merged file is its own node id,
 * holding a reference on an immutable engine_view, so its attributes and
 * bytes never change: attr_timeout is a day and open() sets keep_cache, so
 * warm re-reads come from the page cache at nearly plain-file speed.  All
 * generations of one target show the same st_ino (a hash of the name with
 * the top bit set).  LOOKUP of a target name is answered with
 * entry_timeout 0, so every path walk asks again: it drains inotify,
 * refreshes the merge and answers the current generation, so an open()
 * that starts after a write returned always sees the new content, while
 * an open handle keeps its generation to EOF.
 *
 * Laziness.  Mounting reads nothing: the target set is loaded on the first
 * root lookup or readdir, and a merge is materialised by the first LOOKUP
 * of its name (readdirplus lists virtual names without looking them up).
 *
 * Invalidation.  Writers (ops.c, watch.c) only append names to a target's
 * pending list under a small lock; the next refresh, under the merge lock,
 * hands them to engine_merge_invalidate.  Writers therefore never wait for
 * a rebuild in progress.
 *
 * Threading: see the lock order in mount_i.h.  engine_merge calls happen
 * only under the target's mlock.
 */
#include "mount_i.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "desc.h"

/* Serialises reloads of the target set (taken before every other lock). */
static pthread_mutex_t fs_reload_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t fs_virtual_ino(const char *name)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */

	for (; *name; name++) {
		h ^= (unsigned char)*name;
		h *= 1099511628211ULL;
	}
	return h | (1ULL << 63);
}

/* ---- targets ---- */

struct fs_target *fs_target_ref(struct fs_target *t)
{
	atomic_fetch_add(&t->refs, 1);
	return t;
}

static void fs_pending_clear(struct fs_target *t)
{
	size_t i;

	for (i = 0; i < t->npending; i++)
		free(t->pending[i]);
	free(t->pending);
	t->pending = NULL;
	t->npending = 0;
}

void fs_target_unref(struct fs_target *t)
{
	if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	engine_merge_free(t->merge);
	desc_free(t->desc);
	fs_pending_clear(t);
	pthread_mutex_destroy(&t->mlock);
	pthread_mutex_destroy(&t->plock);
	free(t->desc_file);
	free(t->name);
	free(t);
}

/*
 * Make a target for descriptor `desc` (taken, freed on failure) found in
 * `desc_file` (NULL: the built-in default) with stat `st`.
 * @return 0 or -ENOMEM
 */
static int fs_target_new(struct fs_target **out, struct fs_ctx *ctx,
                         desc_descriptor *desc, const char *desc_file,
                         const struct stat *st)
{
	struct fs_target *t;
	int r;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t) {
		desc_free(desc);
		return -ENOMEM;
	}
	atomic_init(&t->refs, 1);
	t->desc = desc;
	pthread_mutex_init(&t->mlock, NULL);
	pthread_mutex_init(&t->plock, NULL);
	t->name = strdup(desc->target);
	t->desc_file = desc_file ? strdup(desc_file) : NULL;
	if (!t->name || (desc_file && !t->desc_file)) {
		fs_target_unref(t);
		return -ENOMEM;
	}
	if (st)
		t->desc_st = *st;
	t->st_ino = fs_virtual_ino(t->name);
	if ((r = engine_merge_new(&t->merge, t->desc, ctx->backing_fd)) < 0) {
		fs_target_unref(t);
		return r;
	}
	/* Refreshed after every change: keep what an update starts from. */
	engine_merge_live(t->merge);
	engine_merge_on_scan(t->merge, fs_watch_source, ctx);
	*out = t;
	return 0;
}

static int fs_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Names a descriptor may not take as its target. */
static int fs_target_name_bad(const char *name)
{
	return !*name || strchr(name, '/') || strcmp(name, ".") == 0 ||
	       strcmp(name, "..") == 0 || strcmp(name, ".git") == 0 ||
	       strcmp(name, FS_STATUS_NAME) == 0 ||
	       fs_ends_with(name, DESC_SUFFIX);
}

/*
 * A target of the current set with descriptor file `file` in the state
 * `st` (in any state when st is NULL; file NULL: the built-in default).
 */
static struct fs_target *
fs_target_reusable(struct fs_ctx *ctx, const char *file, const struct stat *st)
{
	size_t i;

	for (i = 0; i < ctx->ntargets; i++) {
		struct fs_target *t = ctx->targets[i];

		if (!file && !t->desc_file)
			return fs_target_ref(t);
		if (file && t->desc_file && strcmp(file, t->desc_file) == 0 &&
		    (!st || engine_same_file_state(st, &t->desc_st)))
			return fs_target_ref(t);
	}
	return NULL;
}

static int fs_set_push(struct fs_target ***set, size_t *n, size_t *cap,
                       struct fs_target *t)
{
	struct fs_target **p;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;

		p = realloc(*set, ncap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*set = p;
		*cap = ncap;
	}
	(*set)[(*n)++] = t;
	return 0;
}

static struct fs_target *fs_set_find(struct fs_target **set, size_t n,
                                     const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(set[i]->name, name) == 0)
			return set[i];
	return NULL;
}

/* An error that passes: out of descriptors or memory for a moment. */
static int fs_transient(int r)
{
	return r == -EMFILE || r == -ENFILE || r == -ENOMEM || r == -EAGAIN ||
	       r == -EINTR;
}

/*
 * Read every descriptor of the backing root and build the new target set.
 * Targets whose descriptor file did not change are kept (with their merge
 * and generations).  Invalid descriptors become problems; one
 * that cannot be read for want of resources keeps its old target, and the
 * set is built again at the next request that needs it.  Called with
 * fs_reload_lock held, so ctx->targets only changes here.
 */
static void fs_targets_reload(struct fs_ctx *ctx)
{
	struct fs_target **set = NULL, **old, *t, *dup;
	size_t n = 0, cap = 0, nold, i;
	engine_problems probs, oldprobs;
	char **names = NULL;
	desc_descriptor *d;
	int r, count, overridden = 0, retry = 0;

	engine_problems_init(&probs);
	count = desc_list(&names, ctx->backing_fd);
	if (count < 0 && fs_transient(count) &&
	    atomic_load(&ctx->targets_loaded)) {
		/* Out of descriptors for a moment: keep what is served. */
		atomic_store(&ctx->targets_dirty, 1);
		return;
	}
	if (count < 0) {
		(void)engine_problems_add(&probs, ENGINE_ERROR, ".", 0, 0,
		                          "cannot list descriptors: %s",
		                          strerror(-count));
		names = NULL;
	}
	for (i = 0; names && names[i]; i++) {
		desc_error err;
		struct stat st;

		/* Watched before it is read, as host files are: an outside
		 * edit in place then reloads the target set. */
		fs_watch_source(ctx, names[i]);
		if (fstatat(ctx->backing_fd, names[i], &st,
		            AT_SYMLINK_NOFOLLOW))
			continue;
		/* An invalid override hides the default as any invalid
		 * descriptor hides its target: serving the built-in one
		 * instead (another format, other sources) would differ
		 * from `crdtfs merge`, which refuses it. */
		if (strcmp(names[i], DESC_DEFAULT_TARGET DESC_SUFFIX) == 0)
			overridden = 1;
		t = fs_target_reusable(ctx, names[i], &st);
		if (!t) {
			memset(&err, 0, sizeof(err));
			r = desc_load(&d, ctx->backing_fd, names[i], &err);
			if (r == -ENOENT)
				continue;
			if (r < 0 && fs_transient(r)) {
				retry = 1;
				t = fs_target_reusable(ctx, names[i], NULL);
			}
			if (r < 0 && !t) {
				(void)engine_problems_add(
				        &probs, ENGINE_ERROR, names[i],
				        err.line > 0 ? err.line : 0,
				        err.column > 0 ? err.column : 0, "%s",
				        err.text[0] ? err.text : strerror(-r));
				continue;
			}
			if (r == 0 &&
			    (r = fs_target_new(&t, ctx, d, names[i], &st)) < 0) {
				retry = 1;
				t = fs_target_reusable(ctx, names[i], NULL);
				if (!t)
					continue;
			}
		}
		if (fs_target_name_bad(t->name)) {
			(void)engine_problems_add(
			        &probs, ENGINE_ERROR, names[i], 0, 0,
			        "target \"%s\" is a name the mount reserves",
			        t->name);
			fs_target_unref(t);
			continue;
		}
		if ((dup = fs_set_find(set, n, t->name))) {
			(void)engine_problems_add(
			        &probs, ENGINE_ERROR, names[i], 0, 0,
			        "target \"%s\" is already defined by %s",
			        t->name, dup->desc_file);
			fs_target_unref(t);
			continue;
		}
		if (fs_set_push(&set, &n, &cap, t) < 0)
			fs_target_unref(t);
	}
	if (!overridden && !fs_set_find(set, n, DESC_DEFAULT_TARGET)) {
		t = fs_target_reusable(ctx, NULL, NULL);
		if (!t && desc_default(&d) == 0 &&
		    fs_target_new(&t, ctx, d, NULL, NULL) < 0)
			t = NULL;
		if (t && fs_set_push(&set, &n, &cap, t) < 0)
			fs_target_unref(t);
	}

	pthread_rwlock_wrlock(&ctx->tlock);
	old = ctx->targets;
	nold = ctx->ntargets;
	ctx->targets = set;
	ctx->ntargets = n;
	oldprobs = ctx->desc_problems;
	ctx->desc_problems = probs;
	pthread_rwlock_unlock(&ctx->tlock);

	/*
	 * A name that became a target may be cached as a backing file (1 s
	 * entry timeout).  Nothing is cached before the first load, and
	 * notifying then would only evict the first generation's pages.
	 */
	for (i = 0; i < n && atomic_load(&ctx->targets_loaded); i++)
		if (!fs_set_find(old, nold, set[i]->name))
			fs_notify_entry(ctx, NULL, set[i]->name);
	for (i = 0; i < nold; i++) {
		if (!fs_set_find(set, n, old[i]->name))
			fs_notify_entry(ctx, NULL, old[i]->name);
		fs_target_unref(old[i]);
	}
	free(old);
	engine_problems_dispose(&oldprobs);
	desc_names_free(names);
	atomic_store(&ctx->targets_loaded, 1);
	/* A descriptor not loaded for want of resources: try again at the
	 * next request that needs the set (its old target, if any, still
	 * served meanwhile). */
	if (retry || count < 0)
		atomic_store(&ctx->targets_dirty, 1);
	fs_watch_rescan(ctx);
}

void fs_targets_ensure(struct fs_ctx *ctx)
{
	if (!atomic_load(&ctx->targets_dirty))
		return;
	pthread_mutex_lock(&fs_reload_lock);
	if (atomic_exchange(&ctx->targets_dirty, 0))
		fs_targets_reload(ctx);
	pthread_mutex_unlock(&fs_reload_lock);
}

void fs_targets_free(struct fs_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->ntargets; i++)
		fs_target_unref(ctx->targets[i]);
	free(ctx->targets);
	ctx->targets = NULL;
	ctx->ntargets = 0;
	engine_problems_dispose(&ctx->desc_problems);
}

/* A new reference to the target called `name`, or NULL. */
static struct fs_target *fs_target_get(struct fs_ctx *ctx, const char *name)
{
	struct fs_target *t;

	pthread_rwlock_rdlock(&ctx->tlock);
	t = fs_set_find(ctx->targets, ctx->ntargets, name);
	if (t)
		fs_target_ref(t);
	pthread_rwlock_unlock(&ctx->tlock);
	return t;
}

int fs_name_served(struct fs_ctx *ctx, const char *name)
{
	struct fs_target *t;

	if (strcmp(name, ".git") == 0 || strcmp(name, FS_STATUS_NAME) == 0)
		return 1;
	pthread_rwlock_rdlock(&ctx->tlock);
	t = fs_set_find(ctx->targets, ctx->ntargets, name);
	pthread_rwlock_unlock(&ctx->tlock);
	return t != NULL;
}

int fs_name_reserved(struct fs_ctx *ctx, const char *name)
{
	fs_targets_ensure(ctx);
	return fs_name_served(ctx, name);
}

/* ---- invalidation ---- */

/* Has a source of t changed since its last refresh (as far as told)? */
static int fs_target_pending(struct fs_target *t)
{
	int r;

	pthread_mutex_lock(&t->plock);
	r = t->pending_all || t->npending;
	pthread_mutex_unlock(&t->plock);
	return r;
}

/* Remember that `path` must be rescanned at the next refresh of t. */
static void fs_target_pend(struct fs_target *t, const char *path)
{
	char **p;
	size_t i;

	pthread_mutex_lock(&t->plock);
	if (t->pending_all)
		goto out;
	for (i = 0; i < t->npending; i++)
		if (strcmp(t->pending[i], path) == 0)
			goto out;
	if (t->npending >= FS_PENDING_MAX)
		goto all;
	p = realloc(t->pending, (t->npending + 1) * sizeof(*p));
	if (!p)
		goto all;
	t->pending = p;
	if (!(p[t->npending] = strdup(path)))
		goto all;
	t->npending++;
	goto out;
all:
	fs_pending_clear(t);
	t->pending_all = 1;
out:
	pthread_mutex_unlock(&t->plock);
}

/*
 * A source of t changed, so its current generation gives way to a new one
 * at the next lookup, and the kernel then frees the old one's page cache
 * inside that lookup, on the caller's time: about 5 ms for a 69 MB merged
 * file read whole, most of the lookup.  Unless something has it open, drop
 * that cache now, from the notifier thread.  Called with tlock held.
 */
static void fs_target_retire(struct fs_ctx *ctx, struct fs_target *t)
{
	struct fs_inode *g;

	pthread_mutex_lock(&ctx->ilock);
	g = t->cur;
	if (g && !g->nopen && !g->cache_dropped) {
		g->cache_dropped = 1;
		fs_notify_gen_cache(ctx, t->name,
		                    engine_view_generation(g->view));
	}
	pthread_mutex_unlock(&ctx->ilock);
}

fuse_ino_t fs_gen_resolve(struct fs_ctx *ctx, const char *target,
                          uint64_t generation)
{
	struct fs_inode *g;
	fuse_ino_t id = 0;

	pthread_mutex_lock(&ctx->ilock);
	for (g = ctx->gens; g && !id; g = g->gnext)
		if (g->nlookup > 0 && !g->nopen &&
		    engine_view_generation(g->view) == generation &&
		    strcmp(g->target->name, target) == 0)
			id = (fuse_ino_t)(uintptr_t)g;
	pthread_mutex_unlock(&ctx->ilock);
	return id;
}

int fs_sources_changed(struct fs_ctx *ctx, const char *path)
{
	size_t i;
	int n = 0;

	if (desc_is_file_name(path))
		atomic_store(&ctx->targets_dirty, 1);
	pthread_rwlock_rdlock(&ctx->tlock);
	for (i = 0; i < ctx->ntargets; i++) {
		struct fs_target *t = ctx->targets[i];

		if (desc_is_source(t->desc, path)) {
			fs_target_pend(t, path);
			fs_target_retire(ctx, t);
			n++;
		}
	}
	pthread_rwlock_unlock(&ctx->tlock);
	return n;
}

void fs_invalidate_all(struct fs_ctx *ctx)
{
	size_t i;

	atomic_store(&ctx->targets_dirty, 1);
	pthread_rwlock_rdlock(&ctx->tlock);
	for (i = 0; i < ctx->ntargets; i++) {
		struct fs_target *t = ctx->targets[i];

		pthread_mutex_lock(&t->plock);
		fs_pending_clear(t);
		t->pending_all = 1;
		pthread_mutex_unlock(&t->plock);
	}
	pthread_rwlock_unlock(&ctx->tlock);
}

void fs_preserve(struct fs_ctx *ctx, dev_t dev, ino_t ino)
{
	engine_view **views = NULL, **p;
	size_t n = 0, cap = 0, i;
	double now = engine_mono_seconds();
	struct fs_inode *g;
	int r;

	pthread_mutex_lock(&ctx->ilock);
	for (g = ctx->gens; g; g = g->gnext) {
		if (!engine_view_uses_inode(g->view, dev, ino))
			continue;
		/*
		 * The current generation counts even without readers: a
		 * LOOKUP may have handed it out and its OPEN may not have
		 * arrived yet; so does an older one handed out just now
		 * (another LOOKUP made a newer one current before this
		 * OPEN came: under load, the retried OPEN often lost the
		 * same race again, and the caller got ESTALE).  Any other
		 * without readers is not worth a copy: an OPEN of it that
		 * still comes is refused, see fs_virtual_open().
		 */
		if (!g->nopen && g->target->cur != g &&
		    now - g->looked_up > FS_OPEN_GRACE) {
			g->lost = 1;
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			p = realloc(views, cap * sizeof(*p));
			if (!p)
				break;
			views = p;
		}
		views[n++] = engine_view_ref(g->view);
	}
	pthread_mutex_unlock(&ctx->ilock);
	for (i = 0; i < n; i++) {
		r = engine_view_preserve_inode(views[i], dev, ino);
		if (r < 0 && ctx->debug)
			fuse_log(FUSE_LOG_DEBUG,
			         "crdtfs: preserving for readers: %s\n",
			         strerror(-r));
		engine_view_unref(views[i]);
	}
	free(views);
}

int fs_is_source(struct fs_ctx *ctx, const char *path)
{
	size_t i;
	int r = 0;

	if (!path)
		return 1;
	pthread_rwlock_rdlock(&ctx->tlock);
	for (i = 0; i < ctx->ntargets && !r; i++)
		r = desc_is_source(ctx->targets[i]->desc, path);
	pthread_rwlock_unlock(&ctx->tlock);
	return r;
}

/* Does a generation read the backing inode (under any name)? */
static int fs_inode_viewed(struct fs_ctx *ctx, dev_t dev, ino_t ino)
{
	struct fs_inode *g;
	int r = 0;

	pthread_mutex_lock(&ctx->ilock);
	for (g = ctx->gens; g && !r; g = g->gnext)
		r = engine_view_uses_inode(g->view, dev, ino);
	pthread_mutex_unlock(&ctx->ilock);
	return r;
}

int fs_mod_begin(struct fs_ctx *ctx, dev_t dev, ino_t ino, const char *path)
{
	/* A hard link with another name writes the same bytes. */
	if (!fs_is_source(ctx, path) && !fs_inode_viewed(ctx, dev, ino))
		return 0;
	pthread_mutex_lock(&ctx->ilock);
	while (ctx->mod_gate)
		pthread_cond_wait(&ctx->mod_cond, &ctx->ilock);
	ctx->mod_active++;
	ctx->mod_epoch++;
	pthread_mutex_unlock(&ctx->ilock);
	fs_preserve(ctx, dev, ino);
	return 1;
}

void fs_mod_end(struct fs_ctx *ctx, int token, const char *path)
{
	/* Pending before the bracket closes: a refresh after it sees it. */
	if (path)
		(void)fs_sources_changed(ctx, path);
	if (!token)
		return;
	pthread_mutex_lock(&ctx->ilock);
	ctx->mod_epoch++;
	if (--ctx->mod_active == 0)
		pthread_cond_broadcast(&ctx->mod_cond);
	pthread_mutex_unlock(&ctx->ilock);
}

int fs_target_view(struct fs_target *t, engine_view **out)
{
	char **names;
	size_t n, i;
	int all, r;

	pthread_mutex_lock(&t->mlock);
	pthread_mutex_lock(&t->plock);
	names = t->pending;
	n = t->npending;
	all = t->pending_all;
	t->pending = NULL;
	t->npending = 0;
	t->pending_all = 0;
	pthread_mutex_unlock(&t->plock);
	if (all)
		engine_merge_invalidate(t->merge, NULL);
	for (i = 0; i < n; i++) {
		if (!all)
			engine_merge_invalidate(t->merge, names[i]);
		free(names[i]);
	}
	free(names);
	r = engine_merge_refresh(t->merge, out);
	pthread_mutex_unlock(&t->mlock);
	return r;
}

/* ---- generation inodes ---- */

static void fs_gen_stat(struct fs_ctx *ctx, const struct fs_inode *g,
                        struct stat *st)
{
	uint64_t size = engine_view_size(g->view);
	struct timespec mt = engine_view_mtime(g->view);

	memset(st, 0, sizeof(*st));
	st->st_ino = g->target->st_ino;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_uid = ctx->uid;
	st->st_gid = ctx->gid;
	st->st_size = size;
	st->st_blocks = (size + 511) / 512;
	st->st_blksize = 4096;
	st->st_atim = mt;
	st->st_mtim = mt;
	st->st_ctim = mt;
}

/* Lift the gate a LOOKUP set after `tries` builds, if it set one (ilock). */
static void fs_lookup_ungate(struct fs_ctx *ctx, int tries)
{
	if (tries >= FS_LOOKUP_GATE && --ctx->mod_gate == 0)
		pthread_cond_broadcast(&ctx->mod_cond);
}

/*
 * LOOKUP of a target name: refresh its merge and count one lookup on the
 * inode of the current generation, making a new one when the generation
 * changed.  @return 0 with e filled, or -errno
 */
static int fs_target_lookup(struct fs_ctx *ctx, struct fs_target *t,
                            struct fuse_entry_param *e)
{
	struct fs_inode *g, *fresh = NULL;
	engine_view *view;
	uint64_t epoch;
	int r, tries;

	fresh = calloc(1, sizeof(*fresh));
	for (tries = 0;; tries++) {
		pthread_mutex_lock(&ctx->ilock);
		if (tries == FS_LOOKUP_GATE)
			ctx->mod_gate++;
		while (ctx->mod_active)
			pthread_cond_wait(&ctx->mod_cond, &ctx->ilock);
		epoch = ctx->mod_epoch;
		pthread_mutex_unlock(&ctx->ilock);
		if ((r = fs_target_view(t, &view)) < 0) {
			pthread_mutex_lock(&ctx->ilock);
			fs_lookup_ungate(ctx, tries);
			pthread_mutex_unlock(&ctx->ilock);
			free(fresh);
			return r;
		}
		pthread_mutex_lock(&ctx->ilock);
		/*
		 * A source was being rewritten through the mount while the
		 * view was built: its bytes may already be gone.  Let the
		 * writes in flight finish (their preserve step did not see
		 * this view), then build again (the writer left a pending
		 * invalidation).  When writers keep us busy, settle for a
		 * view whose sources are all provably unchanged: from the
		 * moment it is current, every later writer preserves it.
		 * Past FS_LOOKUP_GATE tries no new writer starts, so the
		 * epoch holds still and the next build is taken.
		 */
		while (ctx->mod_active)
			pthread_cond_wait(&ctx->mod_cond, &ctx->ilock);
		if (ctx->mod_epoch == epoch ||
		    (tries >= FS_LOOKUP_RETRIES && engine_view_intact(view)))
			break;
		pthread_mutex_unlock(&ctx->ilock);
		engine_view_unref(view);
	}
	fs_lookup_ungate(ctx, tries);
	g = t->cur;
	if (g &&
	    engine_view_generation(g->view) == engine_view_generation(view)) {
		g->nlookup++;
		g->looked_up = engine_mono_seconds();
	} else if (fresh) {
		g = fresh;
		fresh = NULL;
		g->kind = FS_KIND_GEN;
		g->fd = -1;
		g->nlookup = 1;
		g->target = fs_target_ref(t);
		g->view = view;
		g->looked_up = engine_mono_seconds();
		g->cache_dropped = 1; /* nothing read yet */
		view = NULL;
		g->gprev = NULL;
		g->gnext = ctx->gens;
		if (ctx->gens)
			ctx->gens->gprev = g;
		ctx->gens = g;
		t->cur = g;
	} else {
		g = NULL;
	}
	pthread_mutex_unlock(&ctx->ilock);

	free(fresh);
	engine_view_unref(view);
	if (!g)
		return -ENOMEM;
	memset(e, 0, sizeof(*e));
	e->ino = (fuse_ino_t)(uintptr_t)g;
	e->attr_timeout = FS_GEN_ATTR_TIMEOUT;
	e->entry_timeout = 0;
	fs_gen_stat(ctx, g, &e->attr);
	/*
	 * No inval_entry for the name: with entry_timeout 0 every path walk
	 * asks again anyway, and dropping the dentry would evict the new
	 * generation's inode and its page cache after its first reader.
	 */
	return 0;
}

void fs_gen_forget(struct fs_ctx *ctx, struct fs_inode *g, uint64_t n)
{
	int dead = 0;

	pthread_mutex_lock(&ctx->ilock);
	g->nlookup = g->nlookup >= n ? g->nlookup - n : 0;
	if (g->nlookup == 0) {
		if (g->gprev)
			g->gprev->gnext = g->gnext;
		else
			ctx->gens = g->gnext;
		if (g->gnext)
			g->gnext->gprev = g->gprev;
		if (g->target->cur == g)
			g->target->cur = NULL;
		dead = 1;
	}
	pthread_mutex_unlock(&ctx->ilock);
	if (dead) {
		engine_view_unref(g->view);
		fs_target_unref(g->target);
		free(g);
	}
}

/* ---- the status file node ---- */

static int fs_status_stat(struct fs_ctx *ctx, struct stat *st)
{
	struct timespec changed;
	char *buf;
	size_t len;
	int r;

	if ((r = fs_status_render(ctx, &buf, &len, &changed)) < 0)
		return r;
	free(buf);
	memset(st, 0, sizeof(*st));
	st->st_ino = ctx->status_ino;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_uid = ctx->uid;
	st->st_gid = ctx->gid;
	st->st_size = len;
	st->st_blocks = (len + 511) / 512;
	st->st_blksize = 4096;
	st->st_atim = st->st_mtim = st->st_ctim = changed;
	return 0;
}

/* ---- entry points for ops.c ---- */

int fs_virtual_lookup(struct fs_ctx *ctx, const char *name,
                      struct fuse_entry_param *e)
{
	struct fs_target *t;
	int r;

	if (strcmp(name, ".git") == 0)
		return -ENOENT;
	/* Completed outside writes are queued in inotify by now. */
	fs_watch_drain(ctx);
	if (strcmp(name, FS_STATUS_NAME) == 0) {
		memset(e, 0, sizeof(*e));
		if ((r = fs_status_stat(ctx, &e->attr)) < 0)
			return r;
		e->ino = (fuse_ino_t)(uintptr_t)&ctx->status;
		return 0;
	}
	fs_targets_ensure(ctx);
	t = fs_target_get(ctx, name);
	if (!t)
		return 1;
	r = fs_target_lookup(ctx, t, e);
	fs_target_unref(t);
	return r;
}

int fs_virtual_getattr(struct fs_ctx *ctx, struct fs_inode *in, struct stat *st,
                       double *timeout)
{
	if (in->kind == FS_KIND_STATUS) {
		*timeout = 0;
		return fs_status_stat(ctx, st);
	}
	fs_gen_stat(ctx, in, st);
	*timeout = FS_GEN_ATTR_TIMEOUT;
	return 0;
}

/*
 * Open a generation (a reader on its view; keep_cache because its bytes
 * never change) or the status file (a snapshot; direct_io so every open
 * reads what it rendered).  Writing is EACCES.
 */
void fs_virtual_open(fuse_req_t req, struct fs_inode *in,
                     struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_handle *h;
	int r, lost, current;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->fd = -1;
	if (in->kind == FS_KIND_STATUS) {
		h->kind = FS_H_STATUS;
		if ((r = fs_status_render(ctx, &h->buf, &h->len, NULL)) < 0)
			goto fail;
		fi->direct_io = 1;
	} else {
		fs_watch_drain(ctx);
		h->kind = FS_H_GEN;
		h->gen = in;
		/*
		 * Refuse a generation whose bytes may be gone: rewritten in
		 * place through the mount before this OPEN (in->lost) or from
		 * outside (not intact).  ESTALE makes the kernel look the
		 * name up again and open the current generation instead of
		 * failing reads later with EIO.  Counted first, so that every
		 * later writer preserves it.  The current generation with
		 * nothing pending (the drain above queued every outside
		 * change) is intact without a stat of each source.
		 */
		pthread_mutex_lock(&ctx->ilock);
		lost = in->lost;
		current = in->target->cur == in;
		if (!lost) {
			in->nopen++;
			in->cache_dropped = 0;
		}
		pthread_mutex_unlock(&ctx->ilock);
		if (lost || ((!current || fs_target_pending(in->target)) &&
		             !engine_view_intact(in->view)))
			r = -ESTALE;
		else
			r = engine_reader_new(&h->reader, in->view);
		if (r < 0) {
			if (!lost)
				fs_virtual_release(ctx, h);
			goto fail;
		}
		fi->keep_cache = 1;
	}
	fi->noflush = 1;
	fi->fh = (uintptr_t)h;
	fs_handle_link(ctx, h);
	if (fuse_reply_open(req, fi) == -ENOENT) {
		fs_handle_unlink(ctx, h);
		fs_virtual_release(ctx, h);
		engine_reader_free(h->reader);
		free(h->buf);
		free(h);
	}
	return;
fail:
	fuse_reply_err(req, -r);
	free(h);
}

void fs_virtual_read(fuse_req_t req, struct fs_handle *h, size_t size,
                     off_t off)
{
	char *buf;
	ssize_t n;

	if (h->kind != FS_H_GEN && h->kind != FS_H_STATUS) {
		fuse_reply_err(req, EBADF);
		return;
	}
	buf = fs_thread_buf(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (h->kind == FS_H_STATUS) {
		/*
		 * Copied: once the reply reaches the kernel the reader may
		 * close, and RELEASE may free h on another thread before
		 * writev() has returned here.
		 */
		n = (uint64_t)off >= h->len ?
		            0 :
		            (ssize_t)(h->len - off < size ? h->len - off :
		                                            size);
		if (n)
			memcpy(buf, h->buf + off, n);
	} else {
		n = engine_reader_read(h->reader, buf, size, off);
	}
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, n);
}

void fs_virtual_release(struct fs_ctx *ctx, struct fs_handle *h)
{
	if (h->kind != FS_H_GEN)
		return;
	pthread_mutex_lock(&ctx->ilock);
	h->gen->nopen--;
	pthread_mutex_unlock(&ctx->ilock);
}

int fs_virtual_dirents(struct fs_ctx *ctx, int status_only,
                       struct fs_dirent **ents, size_t *n, size_t *cap)
{
	struct fs_dirent *p;
	size_t i, need;
	int r = 0;

	pthread_rwlock_rdlock(&ctx->tlock);
	need = *n + ctx->ntargets + 1;
	if (need > *cap) {
		p = realloc(*ents, need * sizeof(*p));
		if (!p) {
			r = -ENOMEM;
			goto out;
		}
		*ents = p;
		*cap = need;
	}
	for (i = status_only ? ctx->ntargets : 0; i <= ctx->ntargets; i++) {
		const char *name = i < ctx->ntargets ? ctx->targets[i]->name :
		                                       FS_STATUS_NAME;

		p = &(*ents)[*n];
		p->name = strdup(name);
		if (!p->name) {
			r = -ENOMEM;
			goto out;
		}
		p->ino = i < ctx->ntargets ? ctx->targets[i]->st_ino :
		                             ctx->status_ino;
		p->type = DT_REG;
		p->virt = 1;
		(*n)++;
	}
out:
	pthread_rwlock_unlock(&ctx->tlock);
	return r;
}
