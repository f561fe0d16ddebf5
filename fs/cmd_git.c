/* SPDX-License-Identifier: MIT */
/*
 * cmd_git.c - `crdtfs prepare`, `crdtfs sync`, `crdtfs merge-driver`, and
 * the background syncer of the mount (`-o sync=SECONDS`).
 *
 * The work is in engine/prepare.c, engine/driver.c and engine/sync.c; this
 * file parses arguments, prints problems and results, and maps errors to
 * exit statuses (0 ok, 1 failure, 2 usage, 3 remote unreachable).  Syncs
 * go through the git module (git_load.c), loaded only when a sync is due.
 *
 * The syncer is one thread per mount.  It syncs once at start, then
 * sleeps until SECONDS passed or a write poked it; after a poke it waits
 * for 1 s without further pokes (at most 5 s after the first one), so a
 * burst of writes becomes one commit.
 * Syncs run only on this thread, never on a FUSE request thread; a sync in
 * progress is cancelled (at its next wait) by fs_syncer_stop().
 */
#include "fs.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

/* Quiet time after the last poke before syncing, and its upper bound. */
#define SYNCER_SETTLE_MS     1000
#define SYNCER_SETTLE_MAX_MS 5000

static void print_problems(const char *cmd, const engine_problems *p)
{
	char buf[1024];
	size_t i;

	for (i = 0; i < p->count; i++) {
		engine_problem_format(&p->items[i], buf, sizeof(buf));
		fprintf(stderr, "crdtfs %s: %s\n", cmd, buf);
	}
}

/* ---- prepare ---- */

static const char prepare_usage[] =
        "usage: crdtfs prepare [--host NAME] [--allow-empty] [-q] SOURCE [BACKING]\n"
        "Write BACKING/memory-NAME.json (BACKING defaults to .) from a tool's\n"
        "memory file SOURCE (a JSON array, or JSON Lines as the MCP memory\n"
        "server writes).  Adds _crdt_metadata to new entries and re-stamps only\n"
        "entries whose content changed; an unchanged SOURCE changes no byte.\n"
        "SOURCE may be a pipe (/dev/stdin).\n"
        "  --host NAME    host name (default: this machine's hostname)\n"
        "  --allow-empty  an empty SOURCE (no byte but blanks) empties the\n"
        "                 host file; without it, it counts as an error (a\n"
        "                 tool that died after truncating it) and nothing\n"
        "                 is removed ([] is always an empty memory)\n"
        "  -q, --quiet    print nothing but problems\n"
        "Exit status: 0 done; 1 SOURCE has errors (its valid entries were\n"
        "taken, none removed) or nothing could be written (the error names\n"
        "the file); 2 usage.\n"
        "Environment: CRDTFS_NOW=<RFC 3339 time> replaces the wall clock (a\n"
        "test hook; stamps still never go backwards).\n";

int fs_cmd_prepare(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "allow-empty", no_argument, NULL, 'E' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	engine_prepare_opts o = { NULL, NULL, ".", NULL, 0 };
	engine_prepare_stats st;
	engine_problems probs;
	char host[256];
	int c, r, quiet = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":H:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'H':
			o.host = optarg;
			break;
		case 'E':
			o.allow_empty = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			fputs(prepare_usage, stdout);
			return FS_EXIT_OK;
		default:
			return fs_option_error("prepare", c, argv, optind);
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
		return fs_usage_error("prepare", "expected SOURCE [BACKING]");
	o.source = argv[optind];
	if (argc - optind == 2)
		o.backing = argv[optind + 1];
	if (!o.host) {
		if (gethostname(host, sizeof(host) - 1) < 0)
			return fs_usage_error("prepare",
			                   "no hostname; use --host");
		host[sizeof(host) - 1] = '\0';
		o.host = host;
	}
	o.now = getenv("CRDTFS_NOW");
	if (o.now && !*o.now)
		o.now = NULL;

	engine_problems_init(&probs);
	r = engine_prepare(&o, &st, &probs);
	print_problems("prepare", &probs);
	engine_problems_dispose(&probs);
	if (r == -EINVAL) {
		fprintf(stderr,
		        "crdtfs prepare: bad host name \"%s\" (a file-name part of 1 to 200 bytes, not starting with a dot)\n",
		        o.host);
		return FS_EXIT_USAGE;
	}
	/* Any other failure but a lack of memory is a problem printed above. */
	if (r == -ENOMEM)
		fprintf(stderr, "crdtfs prepare: %s\n", strerror(-r));
	if (r < 0)
		return FS_EXIT_FAIL;
	if (!quiet)
		printf("memory-%s.json: %zu %s: %zu added, %zu changed, %zu unchanged, %zu removed; %s%s%s\n",
		       o.host, st.entries, st.entries == 1 ? "entry" : "entries",
		       st.added, st.changed, st.unchanged,
		       st.removed, st.written ? "written" : "not rewritten",
		       st.stamp[0] ? ", stamp " : "", st.stamp);
	/* A cron job must notice a source it could not fully read. */
	return st.source_errors ? FS_EXIT_FAIL : FS_EXIT_OK;
}

/* ---- sync ---- */

static const char sync_usage[] =
        "usage: crdtfs sync [--remote NAME] [--host NAME] [--attempts N]\n"
        "                   [--timeout SECONDS] [-q] BACKING\n"
        "Commit BACKING's changed host files (memory-*.json) and descriptors\n"
        "(*.merge.json), fetch, integrate (host files changed on both sides\n"
        "are merged by the CRDT rule), push; retry rejected pushes.\n"
        "  --remote NAME      remote (default: the branch's upstream, or origin)\n"
        "  --host NAME        this machine's host name, whose host file is\n"
        "                     memory-NAME.json (default: hostname)\n"
        "  --attempts N       push attempts (default 8)\n"
        "  --timeout SECONDS  time budget for push retries, and the longest a\n"
        "                     remote may stay silent (default 20)\n"
        "  -q, --quiet        print only problems and errors\n"
        "Exit status: 0 synced, 1 failed, 2 usage, 3 remote unreachable (the\n"
        "local commit is kept).\n";

static int parse_uint(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > 100000)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* What a sync did, in one line without the "crdtfs sync: " prefix. */
static void format_sync_result(const engine_sync_result *res, char *buf,
                               size_t size)
{
	/* The head's id in 12 digits, or the whole of "(no commit yet)". */
	snprintf(buf, size, "%s%s%s%s%s%s%s -> %s at %.*s",
	       res->committed ? "committed; " : "",
	       res->fast_forward ? "fast-forwarded; " : "",
	       res->merged ? "merged; " : "",
	       res->crdt_merged ? "host files merged by CRDT; " : "",
	       res->pulled ? "work tree updated; " : "",
	       !res->pushed ? "not pushed" :
	       res->attempts ? "pushed" : "nothing to push",
	       res->rejected ? " (after rejected pushes)" : "", res->upstream,
	       res->head[0] ? 12 : 15,
	       res->head[0] ? res->head : "(no commit yet)");
}

/* Why a sync failed (r: its return), in one line without the prefix. */
static void format_sync_error(int r, const engine_sync_result *res, char *buf,
                              size_t size)
{
	snprintf(buf, size, "%s%s", res->error[0] ? res->error : strerror(-r),
	         r == -EHOSTUNREACH ? " (local commit kept)" : "");
}

static void print_sync_result(const engine_sync_result *res)
{
	char line[512];

	format_sync_result(res, line, sizeof(line));
	printf("crdtfs sync: %s\n", line);
}

int fs_cmd_sync(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "remote", required_argument, NULL, 'r' },
		{ "host", required_argument, NULL, 'H' },
		{ "attempts", required_argument, NULL, 'a' },
		{ "timeout", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const engine_git_module *git;
	const char *err;
	engine_sync_opts o;
	engine_sync_result res;
	engine_problems probs;
	char line[FS_SYNC_ERROR_MAX];
	int c, r, quiet = 0;

	memset(&o, 0, sizeof(o));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":r:H:a:t:qh", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'r':
			o.remote = optarg;
			break;
		case 'H':
			o.host = optarg;
			break;
		case 'a':
			if (parse_uint(optarg, &o.max_attempts) < 0)
				return fs_usage_error("sync", "bad --attempts");
			break;
		case 't':
			if (parse_uint(optarg, &o.max_seconds) < 0)
				return fs_usage_error("sync", "bad --timeout");
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			fputs(sync_usage, stdout);
			return FS_EXIT_OK;
		default:
			return fs_option_error("sync", c, argv, optind);
		}
	}
	if (argc - optind != 1)
		return fs_usage_error("sync", "expected BACKING");
	o.backing = argv[optind];
	if (fs_is_crdtfs_mount(o.backing)) {
		fprintf(stderr,
		        "crdtfs sync: %s is a crdtfs mount, which hides .git: "
		        "sync its backing directory (a mount over the backing "
		        "directory itself leaves it out of reach: mount "
		        "elsewhere)\n",
		        o.backing);
		return FS_EXIT_FAIL;
	}
	if (!(git = fs_git_module(&err))) {
		fprintf(stderr, "crdtfs sync: %s\n", err);
		return FS_EXIT_FAIL;
	}

	engine_problems_init(&probs);
	r = git->sync(&o, &res, &probs);
	print_problems("sync", &probs);
	engine_problems_dispose(&probs);
	if (r == 0) {
		if (!quiet)
			print_sync_result(&res);
		return FS_EXIT_OK;
	}
	format_sync_error(r, &res, line, sizeof(line));
	fprintf(stderr, "crdtfs sync: %s\n", line);
	return r == -EHOSTUNREACH ? FS_EXIT_OFFLINE : FS_EXIT_FAIL;
}

/* ---- merge driver ---- */

static const char driver_usage[] =
        "usage: crdtfs merge-driver ANCESTOR OURS THEIRS [MARKER-SIZE [PATH]]\n"
        "A git merge driver: replaces OURS by the CRDT merge of OURS and\n"
        "THEIRS (the ancestor is not needed: the merge is a union by unique_id\n"
        "keeping the newest version).  Set it up with\n"
        "  .gitattributes:  memory-*.json merge=crdtfs\n"
        "  git config merge.crdtfs.driver \"crdtfs merge-driver %O %A %B %L %P\"\n"
        "Messages name PATH (the host file being merged, git's %P) and the side,\n"
        "ours or theirs, rather than git's temporary files.\n"
        "Exit status 0 merged (damaged entries are skipped and reported), 1 a\n"
        "file could not be read or written (git then keeps the conflict).\n";

/*
 * Name the sides in problems as the user knows them: git hands the driver
 * temporary files, gone when the messages are read.
 */
static int driver_relabel(engine_problems *probs, const char *ours,
                          const char *theirs, const char *path)
{
	size_t i;

	for (i = 0; i < probs->count; i++) {
		engine_problem *p = &probs->items[i];
		const char *side = strcmp(p->file, ours) == 0   ? "ours" :
		                   strcmp(p->file, theirs) == 0 ? "theirs" :
		                                                  NULL;
		char *label;

		if (!side)
			continue;
		if (asprintf(&label, "%s (%s)", path ? path : p->file,
		             side) < 0)
			return -ENOMEM;
		free(p->file);
		p->file = label;
	}
	return 0;
}

int fs_cmd_merge_driver(int argc, char **argv)
{
	engine_problems probs;
	const char *path;
	size_t before;
	int r;

	if (argc >= 2 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(driver_usage, stdout);
		return FS_EXIT_OK;
	}
	if (argc < 4 || argc > 6)
		return fs_usage_error("merge-driver", "expected %O %A %B");
	path = argc == 6 ? argv[5] : NULL;
	engine_problems_init(&probs);
	r = engine_merge_driver(argv[1], argv[2], argv[3], &probs);
	before = probs.count;
	if (driver_relabel(&probs, argv[2], argv[3], path) < 0 && r == 0)
		r = -ENOMEM;
	print_problems("merge-driver", &probs);
	engine_problems_dispose(&probs);
	if (r < 0) {
		/* An unreadable side is -EIO, and a problem above says why. */
		if (r == -EIO && before)
			fprintf(stderr, "crdtfs merge-driver: %s not merged; git "
			        "keeps the conflict\n", path ? path : argv[2]);
		else
			fprintf(stderr, "crdtfs merge-driver: %s not merged: %s\n",
			        path ? path : argv[2], strerror(-r));
		return FS_EXIT_FAIL;
	}
	return FS_EXIT_OK;
}

/* ---- the background syncer ---- */

struct fs_syncer {
	pthread_t thread;
	const engine_git_module *git;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled on poke and stop */
	char *backing;       /* owned */
	char *remote;        /* owned, or NULL */
	char *host;          /* owned, or NULL: the hostname */
	unsigned seconds;
	void (*changed)(void *ctx);
	void *ctx;
	int stop;                   /* guarded by lock; read atomically too */
	int halted;                 /* the thread was joined */
	int poked;                  /* guarded by lock */
	struct timespec first_poke; /* guarded by lock; CLOCK_MONOTONIC */
	struct timespec last_poke;  /* guarded by lock; CLOCK_MONOTONIC */
	/* What the status file shows (a daemon's stderr is /dev/null);
	 * its seconds and remote are the fields above, filled in by
	 * fs_syncer_snapshot(). */
	fs_sync_snapshot last;      /* guarded by lock */
};

static struct timespec ts_add_ms(struct timespec t, long ms)
{
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_nsec -= 1000000000L;
		t.tv_sec++;
	}
	return t;
}

static int ts_before(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec ||
	       (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

static struct timespec mono_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

static int syncer_cancelled(void *ctx)
{
	fs_syncer *s = ctx;

	return __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE);
}

/*
 * Keep what this sync did (r: its return; error: why it failed, or "")
 * for fs_syncer_snapshot().
 * @return 1 when it failed as the sync before it did, else 0
 */
static int syncer_note(fs_syncer *s, int r, const engine_sync_result *res,
                       const char *error, engine_problems *probs)
{
	fs_sync_snapshot *l = &s->last;
	int again;

	pthread_mutex_lock(&s->lock);
	again = r != 0 && strcmp(l->error, error) == 0;
	l->runs++;
	l->failed_in_a_row = r == 0 ? 0 : l->failed_in_a_row + 1;
	l->last_end = time(NULL);
	l->result[0] = '\0';
	if (r == 0)
		format_sync_result(res, l->result, sizeof(l->result));
	snprintf(l->error, sizeof(l->error), "%s", error);
	/* Moved, not copied: the caller is left an empty list. */
	engine_problems_dispose(&l->problems);
	l->problems = *probs;
	engine_problems_init(probs);
	pthread_mutex_unlock(&s->lock);
	return again;
}

int fs_syncer_snapshot(fs_syncer *s, fs_sync_snapshot *out)
{
	int r;

	pthread_mutex_lock(&s->lock);
	*out = s->last;
	out->seconds = s->seconds;
	out->remote = s->remote;
	engine_problems_init(&out->problems);
	r = engine_problems_extend(&out->problems, &s->last.problems);
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void syncer_run_once(fs_syncer *s)
{
	engine_sync_opts o;
	engine_sync_result res;
	engine_problems probs;
	char error[sizeof(s->last.error)] = "";
	int r, again = 0;

	memset(&o, 0, sizeof(o));
	o.backing = s->backing;
	o.remote = s->remote;
	o.host = s->host;
	o.cancelled = syncer_cancelled;
	o.cancel_ctx = s;
	engine_problems_init(&probs);
	r = s->git->sync(&o, &res, &probs);
	print_problems("sync", &probs);
	if (r != 0)
		format_sync_error(r, &res, error, sizeof(error));
	if (r != -ECANCELED)
		again = syncer_note(s, r, &res, error, &probs);
	engine_problems_dispose(&probs);
	if (r == 0) {
		if (res.committed || res.merged || res.fast_forward)
			print_sync_result(&res);
		fflush(stdout);
	} else if (r != -ECANCELED && !again) {
		/* Say it once, not every period while it lasts. */
		fprintf(stderr, "crdtfs sync: %s\n", error);
	}
	if (res.pulled && s->changed)
		s->changed(s->ctx);
}

static void *syncer_main(void *arg)
{
	fs_syncer *s = arg;

	int first = 1;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		/* The first sync runs at once: the mount starts fresh. */
		struct timespec due =
		        ts_add_ms(mono_now(), first ? 0 : 1000L * s->seconds);

		first = 0;

		while (!s->stop && !s->poked && ts_before(mono_now(), due))
			pthread_cond_timedwait(&s->cond, &s->lock, &due);
		/* Coalesce a burst: wait for a quiet second. */
		while (!s->stop && s->poked) {
			struct timespec quiet =
			        ts_add_ms(s->last_poke, SYNCER_SETTLE_MS);
			struct timespec cap =
			        ts_add_ms(s->first_poke, SYNCER_SETTLE_MAX_MS);
			struct timespec until = ts_before(cap, quiet) ? cap :
			                                                quiet;

			if (!ts_before(mono_now(), until))
				break;
			pthread_cond_timedwait(&s->cond, &s->lock, &until);
		}
		if (s->stop)
			break;
		s->poked = 0;
		pthread_mutex_unlock(&s->lock);
		syncer_run_once(s);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int fs_syncer_start(fs_syncer **out, const char *backing, unsigned seconds,
                    const char *remote, const char *host,
                    void (*changed)(void *ctx), void *ctx)
{
	pthread_condattr_t ca;
	fs_syncer *s;
	int r;

	*out = NULL;
	if (seconds == 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	/* The mount loaded it already to report failure early (mount.c). */
	if (!(s->git = fs_git_module(NULL))) {
		free(s);
		return -ELIBACC;
	}
	s->backing = strdup(backing);
	s->remote = remote ? strdup(remote) : NULL;
	s->host = host ? strdup(host) : NULL;
	if (!s->backing || (remote && !s->remote) || (host && !s->host)) {
		r = -ENOMEM;
		goto fail;
	}
	s->seconds = seconds;
	engine_problems_init(&s->last.problems);
	s->changed = changed;
	s->ctx = ctx;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	r = pthread_create(&s->thread, NULL, syncer_main, s);
	if (r) {
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
		r = -r;
		goto fail;
	}
	*out = s;
	return 0;
fail:
	free(s->backing);
	free(s->remote);
	free(s->host);
	free(s);
	return r;
}

void fs_syncer_poke(fs_syncer *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->last_poke = mono_now();
	if (!s->poked)
		s->first_poke = s->last_poke;
	s->poked = 1;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void fs_syncer_halt(fs_syncer *s)
{
	if (!s || s->halted)
		return;
	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	s->halted = 1;
}

void fs_syncer_stop(fs_syncer *s)
{
	if (!s)
		return;
	fs_syncer_halt(s);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	engine_problems_dispose(&s->last.problems);
	free(s->backing);
	free(s->remote);
	free(s->host);
	free(s);
}
