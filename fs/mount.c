/* SPDX-License-Identifier: MIT */
/*
 * mount.c - `crdtfs [options] BACKING MOUNTPOINT`: the command line, the
 * FUSE session and the life of a mount.
 *
 * Options are the usual FUSE ones (-f, -d, -s, -o opt,...; parsed with
 * fuse_opt_parse and fuse_parse_cmdline like passthrough_ll.c) plus
 * `-o sync=SECONDS` and `-o remote=NAME` for the background git sync and
 * `-o xattr` (xattr.c).
 * `fsname` defaults to the absolute BACKING path and `subtype` to crdtfs;
 * `allow_other` brings `default_permissions` with it.  mount.fuse3 runs
 * `crdtfs BACKING MNT -o ...`, which parses the same way.
 *
 * The loop is multithreaded (fuse_session_loop_mt) unless -s.  SIGTERM,
 * SIGINT, SIGHUP or an unmount end it (a signal only after the watcher,
 * notifier and syncer have stopped: stop.c); the threads are joined, the
 * session is unmounted and destroyed, and every inode, handle and target
 * is freed before exit status 0.
 *
 * Exit statuses: 0 clean exit, 1 mount or runtime failure, 2 usage error
 * (one line on stderr saying why).  Without -f the command returns once
 * the mount answers (daemon.c), with 1 and the reason if it never did.
 */
#include "mount_i.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

enum {
	FS_KEY_FSNAME,
	FS_KEY_SUBTYPE,
	FS_KEY_ALLOW_OTHER,
	FS_KEY_DEFAULT_PERMISSIONS,
	FS_KEY_MAX_READ,
};

static const struct fuse_opt fs_opt_spec[] = {
	{ "sync=%u", offsetof(struct fs_opts, sync), 0 },
	{ "remote=%s", offsetof(struct fs_opts, remote), 0 },
	{ "host=%s", offsetof(struct fs_opts, host), 0 },
	{ "xattr", offsetof(struct fs_opts, xattr), 1 },
	FUSE_OPT_KEY("fsname=", FS_KEY_FSNAME),
	FUSE_OPT_KEY("subtype=", FS_KEY_SUBTYPE),
	FUSE_OPT_KEY("allow_other", FS_KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("default_permissions", FS_KEY_DEFAULT_PERMISSIONS),
	FUSE_OPT_KEY("max_read=", FS_KEY_MAX_READ),
	FUSE_OPT_END
};

static const char fs_usage[] =
        "usage: crdtfs [options] BACKING MOUNTPOINT\n"
        "\n"
        "Mounts BACKING (a directory of memory-<host>.json files) on\n"
        "MOUNTPOINT: host files pass through, unified-memory.json (and one\n"
        "file per *.merge.json descriptor) is the merged view, and\n"
        ".crdtfs-status.json reports generations and problems.\n"
        "\n"
        "crdtfs options:\n"
        "    -o sync=SECONDS        commit and sync BACKING with git\n"
        "    -o remote=NAME         git remote to sync with (default origin)\n"
        "    -o host=NAME           this machine's host name for the sync, as\n"
        "                           prepare --host (default: the hostname)\n"
        "    -o fsname=NAME         default: the absolute BACKING path\n"
        "    -o allow_other         implies -o default_permissions\n"
        "    -o xattr               pass extended attributes through (each\n"
        "                           write then costs the kernel one more call)\n"
        "\n";

/* Keys of fs_opt_spec; the first non-option argument is BACKING. */
static int fs_opt_proc(void *data, const char *arg, int key,
                       struct fuse_args *outargs)
{
	struct fs_opts *o = data;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!o->backing) {
			o->backing = strdup(arg);
			return o->backing ? 0 : -1;
		}
		return 1;
	case FS_KEY_FSNAME:
		o->has_fsname = 1;
		return 1;
	case FS_KEY_SUBTYPE:
		o->has_subtype = 1;
		return 1;
	case FS_KEY_ALLOW_OTHER:
		o->allow_other = 1;
		return 1;
	case FS_KEY_DEFAULT_PERMISSIONS:
		o->has_default_permissions = 1;
		return 1;
	case FS_KEY_MAX_READ:
		/* Read as libfuse reads it; libfuse still owns the option. */
		if (sscanf(arg + strlen("max_read="), "%u", &o->max_read) != 1)
			o->max_read = 0;
		return 1;
	default:
		return 1;
	}
}

/* Append `-o opt` with commas and backslashes in opt escaped. */
static int fs_add_opt(struct fuse_args *args, const char *opt)
{
	char *opts = NULL;
	int r;

	if (fuse_opt_add_opt_escaped(&opts, opt) < 0)
		return -1;
	r = fuse_opt_add_arg(args, "-o");
	if (r == 0)
		r = fuse_opt_add_arg(args, opts);
	free(opts);
	return r;
}

/* Many looked-up inodes each hold an O_PATH fd. */
static void fs_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * Set up everything a mount needs except the session and threads: the
 * backing fd, the root and status nodes, locks and inotify.
 * @return 0 or -errno (ctx is then freed by fs_ctx_dispose)
 */
static int fs_ctx_init(struct fs_ctx *ctx, const char *backing, int debug)
{
	struct stat st;
	int r;

	memset(ctx, 0, sizeof(*ctx));
	ctx->backing_fd = ctx->inotify_fd = ctx->wake_fd = -1;
	ctx->debug = debug;
	pthread_mutex_init(&ctx->ilock, NULL);
	pthread_rwlock_init(&ctx->tlock, NULL);
	pthread_mutex_init(&ctx->wlock, NULL);
	pthread_mutex_init(&ctx->nlock, NULL);
	pthread_mutex_init(&ctx->slock, NULL);
	pthread_cond_init(&ctx->ncond, NULL);
	pthread_cond_init(&ctx->mod_cond, NULL);
	engine_problems_init(&ctx->desc_problems);
	atomic_init(&ctx->targets_dirty, 1);
	atomic_init(&ctx->targets_loaded, 0);
	clock_gettime(CLOCK_REALTIME, &ctx->started);

	if (!(ctx->backing = strdup(backing)))
		return -ENOMEM;
	ctx->backing_fd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ctx->backing_fd < 0 || fstat(ctx->backing_fd, &st))
		return -errno;
	ctx->uid = st.st_uid;
	ctx->gid = st.st_gid;
	ctx->root.kind = FS_KIND_BACKING;
	ctx->root.fd = ctx->backing_fd;
	ctx->root.key.dev = st.st_dev;
	ctx->root.key.ino = st.st_ino;
	ctx->root.nlookup = 2;
	if (!(ctx->root.path = strdup("")))
		return -ENOMEM;
	ctx->status.kind = FS_KIND_STATUS;
	ctx->status.fd = -1;
	ctx->status_ino = fs_virtual_ino(FS_STATUS_NAME);
	if ((r = fs_watch_init(ctx)) < 0)
		return r;
	return 0;
}

static void fs_ctx_dispose(struct fs_ctx *ctx)
{
	fs_inodes_free(ctx);
	fs_targets_free(ctx);
	fs_watch_free(ctx);
	if (ctx->backing_fd >= 0)
		close(ctx->backing_fd);
	free(ctx->backing);
	free(ctx->mnt_name);
	free(ctx->status_last);
	pthread_mutex_destroy(&ctx->slock);
	pthread_cond_destroy(&ctx->ncond);
	pthread_cond_destroy(&ctx->mod_cond);
	pthread_mutex_destroy(&ctx->nlock);
	pthread_mutex_destroy(&ctx->wlock);
	pthread_rwlock_destroy(&ctx->tlock);
	pthread_mutex_destroy(&ctx->ilock);
}

/*
 * The syncer pulled changes into the backing directory.  inotify saw every
 * file git wrote (and the engine re-stats sources), so no full rebuild:
 * handle the events now and reread the descriptors.
 */
static void fs_sync_changed(void *arg)
{
	struct fs_ctx *ctx = arg;

	fs_watch_drain(ctx);
	atomic_store(&ctx->targets_dirty, 1);
}

/* Run the session loop. @return 0 when it ended cleanly, else -1 */
static int fs_loop(struct fuse_session *se, const struct fuse_cmdline_opts *co)
{
	struct fuse_loop_config *cfg;
	int r;

	if (co->singlethread) {
		r = fuse_session_loop(se);
	} else {
		cfg = fuse_loop_cfg_create();
		if (!cfg)
			return -1;
		fuse_loop_cfg_set_clone_fd(cfg, co->clone_fd);
		fuse_loop_cfg_set_max_threads(cfg, co->max_threads);
		if (co->max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(cfg,
			                               co->max_idle_threads);
		r = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	/* libfuse reports the signal that ended the loop: a clean end. */
	if (r == 0 || r == SIGTERM || r == SIGINT || r == SIGHUP)
		return 0;
	return -1;
}

/* Does directory `dir` hold a .git (a directory, or a worktree's file;
 * through a symlink too, as libgit2 follows one)? */
static int has_git_dir(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/.git", dir);
	return stat(path, &st) == 0 && (S_ISDIR(st.st_mode) ||
	                                S_ISREG(st.st_mode));
}

/* Remember where the mountpoint is (see fs_ctx.mnt_parent). */
static int note_mountpoint(struct fs_ctx *ctx, const char *mountpoint)
{
	char *mp = realpath(mountpoint, NULL), *slash;
	struct stat st;
	int r = 0;

	if (!mp)
		return 0; /* fuse reports a bad mountpoint itself */
	slash = strrchr(mp, '/');
	if (slash && slash[1]) {
		*slash = '\0';
		if (stat(*mp ? mp : "/", &st) == 0) {
			ctx->mnt_parent.dev = st.st_dev;
			ctx->mnt_parent.ino = st.st_ino;
			if (!(ctx->mnt_name = strdup(slash + 1)))
				r = -ENOMEM;
			else
				desc_match_hide(st.st_dev, st.st_ino,
				                ctx->mnt_name);
		}
	}
	free(mp);
	return r;
}

/* Would a mount on `mountpoint` hide the path `abs` (absolute, real)? */
static int mount_hides(const char *mountpoint, const char *abs)
{
	char *mp = realpath(mountpoint, NULL);
	size_t n;
	int hides;

	if (!mp)
		return 0; /* fuse reports a bad mountpoint itself */
	n = strlen(mp);
	hides = strncmp(abs, mp, n) == 0 &&
		(abs[n] == '\0' || abs[n] == '/' || n == 1);
	free(mp);
	return hides;
}

int fs_mount_main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts co;
	struct fs_opts o;
	struct fuse_session *se = NULL;
	struct fs_ctx *ctx = NULL;
	struct fs_daemon daemon = { .ready_fd = -1 };
	char *abs = NULL, *fsname = NULL;
	const char *err;
	int status = FS_EXIT_USAGE, mounted = 0, handlers = 0, r;
	int backing_errno = 0;
	struct stat st;

	memset(&o, 0, sizeof(o));
	memset(&co, 0, sizeof(co));
	if (fuse_opt_parse(&args, &o, fs_opt_spec, fs_opt_proc) < 0)
		goto out;
	if (o.backing && !(abs = realpath(o.backing, NULL)))
		backing_errno = errno; /* reported once the options are known */
	if (abs) {
		if (!o.has_fsname) {
			fsname = malloc(strlen(abs) + sizeof("fsname="));
			if (!fsname)
				goto out;
			strcpy(fsname, "fsname=");
			strcat(fsname, abs);
			if (fs_add_opt(&args, fsname) < 0)
				goto out;
		}
		if (!o.has_subtype && fs_add_opt(&args, "subtype=crdtfs") < 0)
			goto out;
	}
	if (o.allow_other && !o.has_default_permissions &&
	    fs_add_opt(&args, "default_permissions") < 0)
		goto out;
	if (fuse_parse_cmdline(&args, &co) != 0)
		goto out;
	if (co.show_help) {
		fputs(fs_usage, stdout);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		status = FS_EXIT_OK;
		goto out;
	}
	if (co.show_version) {
		printf("crdtfs %s\n", CRDTFS_VERSION);
		fuse_lowlevel_version();
		status = FS_EXIT_OK;
		goto out;
	}
	if (!o.backing) {
		fputs("crdtfs: missing BACKING directory (try crdtfs --help)\n",
		      stderr);
		goto out;
	}
	if (!co.mountpoint) {
		fputs("crdtfs: missing MOUNTPOINT (try crdtfs --help)\n",
		      stderr);
		goto out;
	}
	if (!abs || stat(abs, &st) || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "crdtfs: %s: %s\n", o.backing,
		        !abs ? strerror(backing_errno) :
		        !stat(abs, &st) ? "not a directory" : strerror(errno));
		goto out;
	}
	/* %u takes "-1" as 4294967295: a year is the most that means anything. */
	if (o.sync > FS_SYNC_MAX_SECONDS) {
		fprintf(stderr,
		        "crdtfs: -o sync=SECONDS: a whole number of seconds "
		        "from 0 to %u\n",
		        FS_SYNC_MAX_SECONDS);
		goto out;
	}
	/* libfuse would mount on a file too, and hide it behind our root. */
	if (stat(co.mountpoint, &st) == 0 && !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "crdtfs: %s: not a directory (MOUNTPOINT must "
		                "be one)\n", co.mountpoint);
		goto out;
	}

	status = FS_EXIT_FAIL;
	/*
	 * git reaches the repository by path, and a mount on BACKING or on
	 * a directory above it would hide it (the watcher uses the backing
	 * fd instead; libgit2 cannot).
	 */
	if (o.sync && mount_hides(co.mountpoint, abs)) {
		fprintf(stderr, "crdtfs: -o sync needs a MOUNTPOINT other than "
		                "BACKING or a directory above it (%s)\n", abs);
		status = FS_EXIT_USAGE;
		goto out;
	}
	if ((o.remote && !*o.remote) || (o.host && !*o.host)) {
		fprintf(stderr, "crdtfs: -o %s=NAME: the name is empty\n",
		        o.remote && !*o.remote ? "remote" : "host");
		status = FS_EXIT_USAGE;
		goto out;
	}
	/* Said now, on the terminal, rather than by every later sync in
	 * the status file only: sync opens BACKING itself as a work tree. */
	if (o.sync && !has_git_dir(abs)) {
		fprintf(stderr, "crdtfs: -o sync: %s is not a git work tree "
		                "(no .git): `git init` it and add a remote, or "
		                "mount without -o sync\n", abs);
		goto out;
	}
	/* Only syncing needs libgit2: load it now, while a failure still
	 * reaches the terminal (the syncer starts after daemonizing). */
	if (o.sync && !fs_git_module(&err)) {
		fprintf(stderr, "crdtfs: %s\n", err);
		goto out;
	}
	fs_raise_nofile();
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		goto out;
	if ((r = fs_ctx_init(ctx, abs, co.debug)) < 0 ||
	    (r = note_mountpoint(ctx, co.mountpoint)) < 0) {
		fprintf(stderr, "crdtfs: %s: %s\n", abs, strerror(-r));
		goto out;
	}
	ctx->max_read = o.max_read;
	ctx->xattr = o.xattr;
	se = fuse_session_new(&args, fs_ops_table(), sizeof(*fs_ops_table()),
	                      ctx);
	if (!se) {
		status = FS_EXIT_USAGE;
		goto out;
	}
	ctx->se = se;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = 1;
	if (!co.foreground)
		fs_daemon_prepare(&daemon, co.mountpoint);
	if (fuse_session_mount(se, co.mountpoint) != 0)
		goto out;
	mounted = 1;
	if (co.foreground ? fuse_daemonize(1) : fs_daemon_fork(&daemon, se))
		goto out;
	/* Threads start after daemonizing: they would not survive fork. */
	if ((r = fs_watch_start(ctx)) < 0) {
		fprintf(stderr, "crdtfs: starting threads: %s\n", strerror(-r));
		goto out;
	}
	if (o.sync) {
		sigset_t set, old;

		sigemptyset(&set);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGHUP);
		pthread_sigmask(SIG_BLOCK, &set, &old);
		r = fs_syncer_start(&ctx->syncer, abs, o.sync, o.remote,
		                    o.host, fs_sync_changed, ctx);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (r < 0) {
			fprintf(stderr, "crdtfs: starting git sync: %s\n",
			        strerror(-r));
			goto out;
		}
	}
	if ((r = fs_stop_start(ctx, se)) < 0 ||
	    (r = fs_daemon_probe_start(&daemon)) < 0) {
		fprintf(stderr, "crdtfs: starting threads: %s\n", strerror(-r));
		goto out;
	}
	status = fs_loop(se, &co) == 0 ? FS_EXIT_OK : FS_EXIT_FAIL;
out:
	fs_stop_finish();
	if (ctx) {
		fs_watch_stop(ctx);
		fs_syncer_stop(ctx->syncer);
		ctx->syncer = NULL;
	}
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	fs_daemon_finish(&daemon); /* after the session: its requests fail */
	if (ctx) {
		fs_ctx_dispose(ctx);
		free(ctx);
	}
	fs_thread_buf_release();
	free(co.mountpoint);
	free(fsname);
	free(abs);
	free(o.backing);
	free(o.remote);
	free(o.host);
	fuse_opt_free_args(&args);
	return status;
}
