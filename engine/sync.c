/* SPDX-License-Identifier: MIT */
/*
 * sync.c - `crdtfs sync` through libgit2 (no git subprocess).  Built into
 * the git module (crdtfs-git.so, see git_module.c), not into the crdtfs
 * executable, so that only a sync loads libgit2.
 *
 * One sync = stage + commit this work tree's changed host files, then up
 * to max_attempts rounds of fetch -> integrate -> push.  Because every host
 * writes only its own memory-HOST.json and the merged file is computed,
 * never committed, integrating is normally a fast-forward or a merge commit
 * that git's tree merge resolves alone.  When the same host file changed on
 * both sides (another host or a tool wrote to it), or a host file arrives
 * damaged, its merged blob is the CRDT merge of both sides made by the
 * engine (the same bytes `crdtfs merge` gives): a join, so it never loses
 * an entry version that either side had.
 *
 * Invariants and choices:
 * - Only top-level `memory-*.json` and `*.merge.json` are ever staged;
 *   hidden, temp and editor files never match those globs.
 * - Work-tree files are replaced by rename (never truncated in place), so
 *   readers of the merged view holding the old inode keep a consistent
 *   generation; a file is replaced only if it still holds the committed
 *   bytes, checked on the file the rename displaced (replace.c), so an
 *   atomic save racing with the sync is never overwritten (the sync
 *   commits it and integrates again, within its attempts).
 * - The branch ref moves last: if the process dies half-way, the work tree
 *   is ahead of HEAD and the next sync commits that as a local change.
 * - libgit2's local transport updates refs without compare-and-swap, so
 *   two hosts pushing to one local bare repo at once could drop a commit.
 *   For a local remote (a path or file:// URL) this file therefore pushes
 *   itself: it copies the missing objects into the remote (loose, or a
 *   pack for long histories) and moves the branch with
 *   git_reference_create_matching(), a compare-and-swap under the ref lock
 *   (also for the first push, which expects the all-zero id: no branch).
 *   It fetches from a local remote the same way: libgit2's local fetch
 *   builds a pack with a delta search that costs ~0.3 s per changed
 *   multi-megabyte host file (measured: 0.7 s vs 0.1 s for a 10-host sync).
 *   It writes there under the umask git would use for the remote's
 *   core.sharedRepository (libgit2 ignores the setting), and runs no
 *   hooks.  Other remotes (ssh, https, git) go through libgit2's
 *   transports, where the server's receive-pack does the compare-and-swap
 *   (and runs hooks).
 * - A rejected push (compare-and-swap lost, non-fast-forward, hook) leads
 *   to fetch + integrate + push again after 50 ms * 2^(n-1) (capped at 5 s)
 *   with equal jitter, bounded by attempts and seconds.
 * - Syncs of one work tree are serialised by flock() on
 *   .git/crdtfs-sync.lock (the CLI and a mount may both sync).  Holding
 *   it, a sync sweeps what a killed one left (leftovers.c).
 */
#include "engine_i.h"
#include "leftovers.h"
#include "netwatch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>

#define SYNC_ATTEMPTS       8
#define SYNC_SECONDS        20
#define SYNC_BACKOFF_MS     50
#define SYNC_BACKOFF_MAX_MS 5000
/* How long to wait for another sync of the same work tree. */
#define SYNC_LOCK_WAIT_MS 60000
#define SYNC_LOCK_NAME    "crdtfs-sync.lock"
/* Reads of one file to stage while writers keep replacing it. */
#define SYNC_STAGE_TRIES 8

typedef struct {
	const engine_sync_opts *opts; /* borrowed */
	engine_sync_result *res;      /* borrowed */
	engine_problems *probs;       /* borrowed */
	git_repository *repo;         /* owned */
	git_index *index;             /* owned: the repository's index */
	git_remote *remote;           /* owned: for fetching */
	git_remote *push_remote;      /* owned: remote.<n>.pushurl, or NULL */
	git_signature *sig;           /* owned */
	desc_descriptor *desc;        /* owned, lazily: the default */
	char host[256];
	char own_file[280];     /* memory-<host>.json, this host's own */
	char *branch_ref;    /* owned: refs/heads/<branch> */
	char *remote_name;   /* owned */
	char *merge_ref;     /* owned: the remote's branch ref */
	int merge_guessed;   /* no branch.<b>.merge: merge_ref is ours */
	char *tracking_ref;  /* owned: refs/remotes/<remote>/<b> */
	char *local_path;    /* owned: local push path, or NULL */
	char *fetch_path;    /* owned: local fetch path, or NULL */
	char *tmpdir;        /* owned: scratch dir in .git, or NULL */
	int have_remote_oid; /* remote branch exists */
	git_oid remote_oid;  /* its id as of the last fetch */
	unsigned cred_tries; /* credential callback calls */
	char *push_status;   /* owned: rejection from the server */
	engine__netwatch *watch; /* while talking to a network remote */
} sync_ctx;

/*
 * The lock file libgit2's message `m` says is in the way, into out (empty
 * if none): libgit2 names a ref's lock file but not the index's.
 */
static void lock_in_the_way(sync_ctx *c, const char *m, char *out,
                            size_t size)
{
	static const char ref_lock[] = "failed to lock file '";
	const char *at = strstr(m, ref_lock), *end;

	out[0] = '\0';
	if (at) {
		at += sizeof(ref_lock) - 1;
		if ((end = strchr(at, '\'')))
			snprintf(out, size, "%.*s", (int)(end - at), at);
	} else if (strstr(m, "index is locked") && c->repo) {
		snprintf(out, size, "%sindex.lock", git_repository_path(c->repo));
	}
}

/*
 * Record libgit2's last error as the result's error text.  A lock file in
 * the way is named with its age and the cure: git leaves one behind when
 * it is killed, and every later sync would fail on it.
 */
static int git_fail(sync_ctx *c, int code, const char *what)
{
	const git_error *e = git_error_last();
	const char *m = e && e->message ? e->message : "unknown error";
	char lock[512];
	struct stat st;

	lock_in_the_way(c, m, lock, sizeof(lock));
	if (lock[0] && stat(lock, &st) == 0)
		snprintf(c->res->error, sizeof(c->res->error),
		         "%s: %.320s exists (%lld s old): another git is at work "
		         "there, or one was killed; if none is running, "
		         "remove it",
		         what, lock, (long long)(time(NULL) - st.st_mtime));
	else
		snprintf(c->res->error, sizeof(c->res->error), "%s: %s", what,
		         m);
	return code;
}

static int fail_msg(sync_ctx *c, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail_msg(sync_ctx *c, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->res->error, sizeof(c->res->error), fmt, ap);
	va_end(ap);
	return code;
}

static int cancelled(sync_ctx *c)
{
	return c->opts->cancelled && c->opts->cancelled(c->opts->cancel_ctx);
}

/* Sleep ms milliseconds in short slices. @return 0 or -ECANCELED */
static int nap(sync_ctx *c, long long ms)
{
	long long end = engine__mono_ms() + ms;

	while (engine__mono_ms() < end) {
		struct timespec ts = { 0, 20 * 1000000 };
		long long left = end - engine__mono_ms();

		if (cancelled(c))
			return -ECANCELED;
		if (left < 20)
			ts.tv_nsec = (left > 0 ? left : 0) * 1000000;
		nanosleep(&ts, NULL);
	}
	return cancelled(c) ? -ECANCELED : 0;
}

static int is_memory_name(const char *p)
{
	return !strchr(p, '/') && fnmatch("memory-*.json", p, FNM_PERIOD) == 0;
}

/* The files a sync manages: top-level host files and descriptors. */
static int is_managed(const char *p)
{
	if (strchr(p, '/') || p[0] == '.')
		return 0;
	return is_memory_name(p) ||
	       fnmatch("*" DESC_SUFFIX, p, FNM_PERIOD) == 0;
}

/* ---- opening ---- */

static int config_string(git_repository *repo, const char *key, char **out)
{
	git_config *cfg = NULL;
	const char *v;
	int r;

	*out = NULL;
	if (git_repository_config_snapshot(&cfg, repo) < 0)
		return -EIO;
	r = git_config_get_string(&v, cfg, key);
	if (r == 0)
		*out = strdup(v);
	git_config_free(cfg);
	if (r == GIT_ENOTFOUND)
		return -ENOENT;
	if (r < 0)
		return -EIO;
	return *out ? 0 : -ENOMEM;
}

/* Length of the scheme of a URL `scheme://...`, 0 for anything else (a
 * path may hold "://" too: a scheme is letters, digits, + - .). */
static size_t url_scheme_len(const char *url)
{
	const char *sep = strstr(url, "://");
	size_t n = sep ? (size_t)(sep - url) : 0;

	return n && strspn(url, "abcdefghijklmnopqrstuvwxyz"
	                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") >= n ?
	               n : 0;
}

/*
 * A remote URL that can never work is a mistake to fix (exit 1), not a
 * remote to wait for (exit 3, which a cron job retries for ever).
 */
static int check_remote_url(sync_ctx *c, const char *name, const char *url)
{
	static const char *const schemes[] = { "https", "http", "ssh", "git",
		                               "file" };
	size_t n = url_scheme_len(url), i;

	if (!*url)
		return fail_msg(c, -EINVAL, "remote \"%s\" has an empty URL",
		                name);
	if (!n)
		return 0;
	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strlen(schemes[i]) == n && strncmp(url, schemes[i], n) == 0)
			return 0;
	return fail_msg(c, -EINVAL,
	                "remote \"%s\": %.*s:// is no protocol sync speaks "
	                "(https, http, ssh, git, file)",
	                name, (int)n, url);
}

/* file:// URL or plain path -> the path; NULL for other URLs. */
static char *local_remote_path(const char *url, const char *workdir)
{
	char *out = NULL;
	const char *p;
	size_t i, j;

	if (strncmp(url, "file://", 7) == 0) {
		p = url + 7;
		out = malloc(strlen(p) + 1);
		if (!out)
			return NULL;
		for (i = j = 0; p[i]; i++) {
			unsigned v;

			if (p[i] == '%' && sscanf(p + i + 1, "%2x", &v) == 1 &&
			    p[i + 1] && p[i + 2]) {
				out[j++] = (char)v;
				i += 2;
			} else {
				out[j++] = p[i];
			}
		}
		out[j] = '\0';
		return out;
	}
	if (url_scheme_len(url))
		return NULL;
	p = strchr(url, ':');
	if (p && (!strchr(url, '/') || p < strchr(url, '/')))
		return NULL; /* scp-like user@host:path */
	if (url[0] == '/')
		return strdup(url);
	if (asprintf(&out, "%s%s", workdir, url) < 0)
		return NULL;
	return out;
}

/* Does local path `path` (may be NULL) name this repository's work tree
 * or its .git?  A remote "" or "." does: syncing with it moves nothing. */
static int is_this_repository(sync_ctx *c, const char *path)
{
	char rp[PATH_MAX], rw[PATH_MAX], rg[PATH_MAX];

	if (!path || !realpath(path, rp))
		return 0;
	return (realpath(git_repository_workdir(c->repo), rw) &&
	        strcmp(rp, rw) == 0) ||
	       (realpath(git_repository_path(c->repo), rg) &&
	        strcmp(rp, rg) == 0);
}

/*
 * The remote `name`, from remote.<name>.url (and .pushurl for pushing).
 * Not git_remote_lookup(): in libgit2 1.5 it leaks PCRE2 match data (about
 * 20 KiB per call) reading the multivar fetch refspecs, which a mount
 * syncing every minute cannot afford; the refspecs are explicit here
 * anyway.  url.<base>.insteadOf is not applied (same leak).
 */
static int open_remote(sync_ctx *c, const char *name)
{
	git_remote_create_options ro;
	char *key = NULL, *url = NULL, *pushurl = NULL;
	const char *workdir = git_repository_workdir(c->repo);
	int r;

	if (asprintf(&key, "remote.%s.url", name) < 0)
		return -ENOMEM;
	r = config_string(c->repo, key, &url);
	free(key);
	if (r == -ENOENT)
		return fail_msg(c, -ENOENT,
		                "no remote named \"%s\" (git remote add ...)",
		                name);
	if (r < 0)
		return git_fail(c, r, "cannot read the remote");
	if (asprintf(&key, "remote.%s.pushurl", name) < 0) {
		r = -ENOMEM;
		goto out;
	}
	r = config_string(c->repo, key, &pushurl);
	free(key);
	if (r < 0 && r != -ENOENT)
		goto out;
	if ((r = check_remote_url(c, name, url)) < 0 ||
	    (pushurl && (r = check_remote_url(c, name, pushurl)) < 0))
		goto out;
	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.repository = c->repo;
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF |
	           GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	/*
	 * A local remote by its path from the work tree, as git resolves a
	 * relative one: libgit2 would take it from the current directory
	 * (a mount's daemon runs in /).
	 */
	c->fetch_path = local_remote_path(url, workdir);
	c->local_path = local_remote_path(pushurl ? pushurl : url, workdir);
	if (is_this_repository(c, c->fetch_path) ||
	    is_this_repository(c, c->local_path)) {
		r = fail_msg(c, -EINVAL,
		             "remote \"%s\" is this repository itself: "
		             "nothing would leave it", name);
		goto out;
	}
	if (git_remote_create_with_opts(&c->remote,
	                                c->fetch_path ? c->fetch_path : url,
	                                &ro) < 0 ||
	    (pushurl &&
	     git_remote_create_with_opts(&c->push_remote,
	                                 c->local_path ? c->local_path : pushurl,
	                                 &ro) < 0)) {
		r = git_fail(c, -EINVAL, "bad remote URL");
		goto out;
	}
	r = 0;
out:
	free(url);
	free(pushurl);
	return r;
}

/* Sync with the remote's branch `merge` (takes it): the refs and the
 * "<remote>/<its branch>" of the result and every message. */
static int set_merge_ref(sync_ctx *c, char *merge)
{
	char *tracking;

	if (asprintf(&tracking, "refs/remotes/%s/%s", c->remote_name,
	             merge + 11) < 0) {
		free(merge);
		return -ENOMEM;
	}
	free(c->merge_ref);
	free(c->tracking_ref);
	c->merge_ref = merge;
	c->tracking_ref = tracking;
	snprintf(c->res->upstream, sizeof(c->res->upstream), "%s/%s",
	         c->remote_name, merge + 11);
	return 0;
}

/*
 * Should a branch with no upstream follow the remote's default branch
 * when the remote has none of its name?  Only a branch named as new
 * repositories name theirs (main, master, init.defaultBranch) that never
 * synced with a remote branch of its own name (no remote-tracking ref): a
 * host set up by `git init` and `git remote add` is on `master` where the
 * others push `main`, and pushing `master` there would keep it apart for
 * good; a branch made on purpose (`experiment`) is pushed as itself.
 */
static int may_adopt(sync_ctx *c, const char *short_branch)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	char *def = NULL, *glob = NULL;
	int named, synced = 1;

	named = strcmp(short_branch, "main") == 0 ||
	        strcmp(short_branch, "master") == 0 ||
	        (config_string(c->repo, "init.defaultBranch", &def) == 0 &&
	         strcmp(short_branch, def) == 0);
	free(def);
	if (!named)
		return 0;
	/* With any remote. */
	if (asprintf(&glob, "refs/remotes/*/%s", short_branch) >= 0 &&
	    git_reference_iterator_glob_new(&it, c->repo, glob) == 0) {
		synced = git_reference_next(&ref, it) == 0;
		git_reference_free(ref);
		git_reference_iterator_free(it);
	}
	free(glob);
	git_error_clear();
	return !synced;
}

/*
 * Record `target` as the upstream of the branch on remote c->remote_name,
 * as `git push -u` would, so that the choice holds even if a branch of
 * our name appears there later; but only for the branch's own remote (a
 * one-off --remote changes nothing for good).  @return 1 recorded, 0 not
 */
static int record_upstream(sync_ctx *c, const char *target)
{
	git_config *cfg = NULL;
	char *key_remote = NULL, *key_merge = NULL, *cur = NULL;
	int configured, record = 0;

	if (asprintf(&key_remote, "branch.%s.remote", c->res->branch) < 0 ||
	    asprintf(&key_merge, "branch.%s.merge", c->res->branch) < 0)
		goto out;
	configured = config_string(c->repo, key_remote, &cur) == 0;
	record = configured ? strcmp(cur, c->remote_name) == 0 :
	                      !c->opts->remote;
	if (record && git_repository_config(&cfg, c->repo) == 0) {
		if (!configured)
			(void)git_config_set_string(cfg, key_remote,
			                            c->remote_name);
		(void)git_config_set_string(cfg, key_merge, target);
		git_config_free(cfg);
	}
out:
	free(key_remote);
	free(key_merge);
	free(cur);
	git_error_clear();
	return record;
}

/*
 * Follow the remote's default branch `target` (may be NULL) instead of
 * ours, when may_adopt() allowed it.  @return 1 adopted, 0 not, <0
 */
static int adopt_remote_default(sync_ctx *c, const char *target)
{
	char *merge;
	int r, recorded;

	if (!c->merge_guessed || !target ||
	    strncmp(target, "refs/heads/", 11) != 0 ||
	    strcmp(target, c->merge_ref) == 0)
		return 0;
	if (!(merge = strdup(target)))
		return -ENOMEM;
	if ((r = set_merge_ref(c, merge)) < 0)
		return r;
	c->merge_guessed = 0;
	recorded = record_upstream(c, target);
	r = engine_problems_add(
	        c->probs, ENGINE_WARNING, c->res->branch, 0, 0,
	        "no upstream and no %s/%s: following %s, the remote's default "
	        "branch, %s%s%s", c->remote_name, c->res->branch,
	        c->res->upstream,
	        recorded ? "from now on (branch." : "for this sync",
	        recorded ? c->res->branch : "", recorded ? ".merge)" : "");
	return r < 0 ? r : 1;
}

/*
 * The default branch of a local remote: what its HEAD names if that
 * exists, else its only branch; and while it has no branch at all, what
 * its HEAD names all the same, so that hosts whose first syncs race
 * (one on main, one on master) all push that one branch and meet there,
 * instead of each creating its own.  Owned, or NULL.
 */
static char *local_default(git_repository *rr)
{
	git_reference *head = NULL, *ref;
	git_reference_iterator *it = NULL;
	const char *named = NULL;
	char *out = NULL;
	size_t branches = 0;
	git_oid id;

	if (git_reference_lookup(&head, rr, "HEAD") == 0 &&
	    git_reference_type(head) == GIT_REFERENCE_SYMBOLIC)
		named = git_reference_symbolic_target(head);
	if (named && git_reference_name_to_id(&id, rr, named) == 0)
		out = strdup(named);
	if (!out && git_reference_iterator_glob_new(&it, rr,
	                                            "refs/heads/*") == 0) {
		while (git_reference_next(&ref, it) == 0) {
			if (branches++ == 0)
				out = strdup(git_reference_name(ref));
			git_reference_free(ref);
		}
		git_reference_iterator_free(it);
		if (branches != 1) {
			free(out);
			out = branches == 0 && named ? strdup(named) : NULL;
		}
	}
	git_reference_free(head);
	git_error_clear();
	return out;
}

/* The same from a network remote's advertised refs; borrowed, or NULL. */
static const char *advertised_default(const git_remote_head **heads,
                                      size_t n)
{
	const char *only = NULL;
	size_t i, branches = 0;

	for (i = 0; i < n; i++) {
		if (strcmp(heads[i]->name, "HEAD") == 0 &&
		    heads[i]->symref_target)
			return heads[i]->symref_target;
		if (strncmp(heads[i]->name, "refs/heads/", 11) == 0) {
			only = heads[i]->name;
			branches++;
		}
	}
	return branches == 1 ? only : NULL;
}

/* An operation git left mid-way, and how the user ends it. */
static const char *repo_state_advice(int state)
{
	switch (state) {
	case GIT_REPOSITORY_STATE_MERGE:
		return "a git merge is in progress: finish it (git commit) or "
		       "abort it (git merge --abort)";
	case GIT_REPOSITORY_STATE_REVERT:
	case GIT_REPOSITORY_STATE_REVERT_SEQUENCE:
		return "a git revert is in progress: finish it (git revert "
		       "--continue) or abort it (git revert --abort)";
	case GIT_REPOSITORY_STATE_CHERRYPICK:
	case GIT_REPOSITORY_STATE_CHERRYPICK_SEQUENCE:
		return "a git cherry-pick is in progress: finish it (git "
		       "cherry-pick --continue) or abort it (git cherry-pick "
		       "--abort)";
	case GIT_REPOSITORY_STATE_BISECT:
		return "a git bisect is in progress: end it (git bisect reset)";
	case GIT_REPOSITORY_STATE_APPLY_MAILBOX:
	case GIT_REPOSITORY_STATE_APPLY_MAILBOX_OR_REBASE:
		return "a git am is in progress: finish it (git am --continue) "
		       "or abort it (git am --abort)";
	default:
		return "a git rebase is in progress: finish it (git rebase "
		       "--continue) or abort it (git rebase --abort)";
	}
}

static int sync_open(sync_ctx *c)
{
	const engine_sync_opts *o = c->opts;
	git_reference *head = NULL;
	char rp_backing[PATH_MAX], rp_work[PATH_MAX];
	char *remote_name = NULL, *key = NULL, *merge = NULL;
	const char *target, *short_branch, *workdir;
	int r;

	if (git_repository_open_ext(&c->repo, o->backing,
	                            GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
		return git_fail(c, -ENOTDIR, "not a git repository");
	workdir = git_repository_workdir(c->repo);
	if (!workdir || git_repository_is_bare(c->repo))
		return fail_msg(c, -ENOTDIR,
		                "%s: a bare repository has no host files",
		                o->backing);
	if (!realpath(o->backing, rp_backing) || !realpath(workdir, rp_work) ||
	    strcmp(rp_backing, rp_work) != 0)
		return fail_msg(c, -ENOTDIR,
		                "%s: not the top of a git work tree",
		                o->backing);
	/* libgit2 1.5 finds no merge base past a shallow boundary. */
	if (git_repository_is_shallow(c->repo) == 1)
		return fail_msg(c, -EINVAL,
		                "%s is a shallow clone, which sync cannot merge: "
		                "run `git fetch --unshallow` there first",
		                o->backing);
	/* A commit now would drop the merge's second parent (or the
	 * cherry-pick's, the revert's source) and commit its resolution
	 * half-done under our message. */
	if (git_repository_state(c->repo) != GIT_REPOSITORY_STATE_NONE)
		return fail_msg(c, -EBUSY, "%s: %s first", o->backing,
		                repo_state_advice(
		                        git_repository_state(c->repo)));
	if (git_repository_index(&c->index, c->repo) < 0)
		return git_fail(c, -EIO, "cannot read the index");

	/* The branch HEAD names (possibly unborn). */
	if (git_reference_lookup(&head, c->repo, "HEAD") < 0)
		return git_fail(c, -EIO, "cannot read HEAD");
	if (git_reference_type(head) != GIT_REFERENCE_SYMBOLIC) {
		git_reference_free(head);
		return fail_msg(c, -EINVAL,
		                "HEAD is detached; check out a branch");
	}
	target = git_reference_symbolic_target(head);
	if (strncmp(target, "refs/heads/", 11) != 0) {
		git_reference_free(head);
		return fail_msg(c, -EINVAL, "HEAD points at %s, not a branch",
		                target);
	}
	c->branch_ref = strdup(target);
	git_reference_free(head);
	if (!c->branch_ref)
		return -ENOMEM;
	short_branch = c->branch_ref + 11;
	snprintf(c->res->branch, sizeof(c->res->branch), "%s", short_branch);

	/* Remote: --remote, else branch.<b>.remote, else origin. */
	if (asprintf(&key, "branch.%s.remote", short_branch) < 0)
		return -ENOMEM;
	if (o->remote) {
		remote_name = strdup(o->remote);
	} else if (config_string(c->repo, key, &remote_name) < 0) {
		remote_name = strdup("origin");
	}
	free(key);
	key = NULL;
	if (!(c->remote_name = remote_name))
		return -ENOMEM;
	if ((r = open_remote(c, remote_name)) < 0)
		return r;

	/* The remote branch: branch.<b>.merge when it tracks this remote;
	 * else ours, or the remote's default (adopt_remote_default). */
	if (asprintf(&key, "branch.%s.merge", short_branch) < 0)
		return -ENOMEM;
	if (config_string(c->repo, key, &merge) < 0 ||
	    strncmp(merge, "refs/heads/", 11) != 0) {
		free(merge);
		merge = strdup(c->branch_ref);
		c->merge_guessed = 1;
	}
	free(key);
	if (!merge)
		return -ENOMEM;
	if ((r = set_merge_ref(c, merge)) < 0)
		return r;
	if (c->merge_guessed)
		c->merge_guessed = may_adopt(c, short_branch);

	/* Author: git config, else crdtfs <crdtfs@HOST>. */
	if (git_signature_default(&c->sig, c->repo) < 0) {
		char email[300];

		snprintf(email, sizeof(email), "crdtfs@%s", c->host);
		if (git_signature_now(&c->sig, "crdtfs", email) < 0)
			return git_fail(c, -EIO, "cannot make a signature");
	}
	return 0;
}

/* Serialise syncs of one work tree.  @return lock fd or -errno */
static int sync_lock(sync_ctx *c)
{
	char *path = NULL;
	long long end = engine__mono_ms() + SYNC_LOCK_WAIT_MS;
	int fd;

	if (asprintf(&path, "%s" SYNC_LOCK_NAME, git_repository_path(c->repo)) <
	    0)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	free(path);
	if (fd < 0)
		return fail_msg(c, -errno, "cannot open the sync lock: %s",
		                strerror(errno));
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		if (e != EWOULDBLOCK || engine__mono_ms() > end) {
			close(fd);
			return fail_msg(
			        c, e == EWOULDBLOCK ? -EBUSY : -e,
			        "another sync of this work tree is running");
		}
		if (nap(c, 50) < 0) {
			close(fd);
			return -ECANCELED;
		}
	}
	return fd;
}

/* ---- 1. stage and commit ---- */

static int head_commit(sync_ctx *c, git_commit **out)
{
	git_oid id;
	int r;

	*out = NULL;
	r = git_reference_name_to_id(&id, c->repo, c->branch_ref);
	if (r == GIT_ENOTFOUND)
		return 0;
	if (r < 0 || git_commit_lookup(out, c->repo, &id) < 0)
		return git_fail(c, -EIO, "cannot read the branch head");
	return 1;
}

/*
 * Managed files are committed as plain blobs (100644) whatever their x bit,
 * as the sync writes them: else a host whose copy is executable and one
 * whose copy is not commit mode changes back and forth forever.
 */
static int stage_as_plain_blob(sync_ctx *c, const char *path)
{
	const git_index_entry *e = git_index_get_bypath(c->index, path, 0);
	git_index_entry plain;

	if (!e || e->mode == GIT_FILEMODE_BLOB)
		return 0;
	plain = *e;
	plain.path = path;
	plain.mode = GIT_FILEMODE_BLOB;
	return git_index_add(c->index, &plain);
}

/*
 * Stage one managed path as the work tree has it now: a regular file is
 * added, a missing one removed, a symlink left alone (never a host file).
 * A file renamed over while libgit2 reads it (an editor's or prepare's
 * atomic save) fails that read, as its size no longer matches; the rename
 * is atomic, so the next try reads one whole file.
 */
static int stage_path(sync_ctx *c, const char *path)
{
	char what[256];
	struct stat sb;
	char *full;
	int r = 0, tries;

	if (asprintf(&full, "%s%s", git_repository_workdir(c->repo), path) < 0)
		return -ENOMEM;
	for (tries = 0; tries < SYNC_STAGE_TRIES; tries++) {
		if (lstat(full, &sb) != 0)
			r = git_index_remove_bypath(c->index, path);
		else if (!S_ISREG(sb.st_mode))
			r = 0;
		else if ((r = git_index_add_bypath(c->index, path)) == 0)
			r = stage_as_plain_blob(c, path);
		if (r == 0)
			break;
	}
	free(full);
	if (r == 0)
		return 0;
	snprintf(what, sizeof(what), "%.200s: cannot stage it (it kept changing?)",
	         path);
	return git_fail(c, -EIO, what);
}

static int file_damaged(sync_ctx *c, const char *path, const char *file,
                        const char *label, int report);

/*
 * A host file about to be committed with errors: say so while it is here
 * to fix.  Past a grammar error no merge reads its entries, and another
 * host merging it keeps only what it can read.  The work-tree file is
 * scanned, still in the page cache from staging, rather than the blob
 * inflated back to disk: a save racing the commit can only make the
 * warning describe the newer bytes.  @return 0 or -errno
 */
static int report_damaged_commit(sync_ctx *c, const char *path)
{
	struct stat st;
	char *full;
	int r;

	if (!is_memory_name(path) ||
	    !git_index_get_bypath(c->index, path, 0))
		return 0;
	if (asprintf(&full, "%s%s", git_repository_workdir(c->repo), path) < 0)
		return -ENOMEM;
	/* Only a regular file is a host file (and is what was staged). */
	if (lstat(full, &st) < 0 || !S_ISREG(st.st_mode)) {
		free(full);
		return 0;
	}
	r = file_damaged(c, path, full, path, 1);
	free(full);
	if (r <= 0)
		return r;
	return engine_problems_add(c->probs, ENGINE_WARNING, path, 0, 0,
	                           "committed with the errors above: what "
	                           "they hide reaches no merge until the file "
	                           "is fixed");
}

/*
 * `git add -N` marks a file to be added later; git's own commit leaves
 * it out, libgit2 would commit it empty (and push that to every host).
 */
static int refuse_intent_to_add(sync_ctx *c)
{
	size_t i, n = git_index_entrycount(c->index);

	for (i = 0; i < n; i++) {
		const git_index_entry *e = git_index_get_byindex(c->index, i);

		if (e && (e->flags_extended & GIT_INDEX_ENTRY_INTENT_TO_ADD))
			return fail_msg(c, -EBUSY,
			                "%s is marked to be added later (git add "
			                "-N): add it or `git reset` it first",
			                e->path);
	}
	return 0;
}

static int stage_and_commit(sync_ctx *c)
{
	git_status_options so;
	char spec_mem[] = "memory-*.json", spec_desc[] = "*" DESC_SUFFIX;
	char *specs[] = { spec_mem, spec_desc };
	git_status_list *st = NULL;
	git_commit *parent = NULL;
	git_tree *tree = NULL;
	git_oid tree_id, commit_id;
	char *files = NULL, *msg = NULL;
	size_t i, n, nfiles = 0, flen = 0;
	const char *first = NULL;
	int r;

	/* Forced: a failed attempt may have left the in-memory index at
	 * the remote's tree (update_worktree), which a commit of it would
	 * then record as ours. */
	if (git_index_read(c->index, 1) < 0)
		return git_fail(c, -EIO, "cannot read the index");
	git_status_options_init(&so, GIT_STATUS_OPTIONS_VERSION);
	so.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
	/* Ignored too: a host file is synced whatever .gitignore says (a
	 * `*.json` rule would otherwise keep a new host out, silently). */
	so.flags = GIT_STATUS_OPT_INCLUDE_UNTRACKED |
	           GIT_STATUS_OPT_INCLUDE_IGNORED |
	           GIT_STATUS_OPT_EXCLUDE_SUBMODULES;
	so.pathspec.strings = specs;
	so.pathspec.count = 2;
	if (git_status_list_new(&st, c->repo, &so) < 0)
		return git_fail(c, -EIO, "cannot compute the status");
	n = git_status_list_entrycount(st);
	for (i = 0; i < n; i++) {
		const git_status_entry *e = git_status_byindex(st, i);
		const git_diff_delta *d = e->index_to_workdir;
		const char *path;

		if (!d || !(e->status &
		            (GIT_STATUS_WT_NEW | GIT_STATUS_WT_MODIFIED |
		             GIT_STATUS_WT_DELETED | GIT_STATUS_WT_TYPECHANGE |
		             GIT_STATUS_IGNORED)))
			continue;
		path = d->new_file.path ? d->new_file.path : d->old_file.path;
		if (!is_managed(path))
			continue;
		if ((r = stage_path(c, path)) < 0 ||
		    (r = report_damaged_commit(c, path)) < 0)
			goto out;
		if (!first)
			first = path;
		nfiles++;
		{
			char *nf = realloc(files, flen + strlen(path) + 4);

			if (!nf) {
				r = -ENOMEM;
				goto out;
			}
			files = nf;
			flen += (size_t)sprintf(files + flen, "  %s\n", path);
		}
	}
	if ((r = refuse_intent_to_add(c)) < 0)
		goto out;
	if (git_index_write_tree(&tree_id, c->index) < 0) {
		r = git_fail(c, -EBUSY,
		             "cannot write the index tree (unresolved merge?)");
		goto out;
	}
	if ((r = head_commit(c, &parent)) < 0)
		goto out;
	if (parent && git_oid_equal(&tree_id, git_commit_tree_id(parent))) {
		r = 0; /* nothing to commit */
		goto write_index;
	}
	if (!parent && git_index_entrycount(c->index) == 0) {
		r = 0;
		goto write_index;
	}
	if (nfiles == 1)
		r = asprintf(&msg, "crdtfs: update %s on %s\n", first, c->host);
	else if (nfiles > 1)
		r = asprintf(&msg, "crdtfs: update %zu host files on %s\n\n%s",
		             nfiles, c->host, files);
	else
		r = asprintf(&msg, "crdtfs: commit staged changes on %s\n",
		             c->host);
	if (r < 0) {
		r = -ENOMEM;
		goto out;
	}
	/*
	 * The index first: its lock is how another git says it is at work
	 * (`git commit` holds it while its editor is open), and a commit
	 * made under it would move the branch from under that git, whose
	 * own commit then fails and loses the message typed.
	 */
	if (git_index_write(c->index) < 0) {
		r = git_fail(c, -EIO, "cannot write the index");
		goto out;
	}
	if (git_tree_lookup(&tree, c->repo, &tree_id) < 0 ||
	    git_commit_create(&commit_id, c->repo, c->branch_ref, c->sig,
	                      c->sig, NULL, msg, tree, parent ? 1 : 0,
	                      (const git_commit **)&parent) < 0) {
		r = git_fail(c, -EIO, "cannot commit");
		goto out;
	}
	c->res->committed = 1;
	r = 0;
	goto out;
write_index:
	if (git_index_write(c->index) < 0)
		r = git_fail(c, -EIO, "cannot write the index");
	else
		r = 0;
out:
	git_status_list_free(st);
	git_commit_free(parent);
	git_tree_free(tree);
	free(files);
	free(msg);
	return r;
}

/* ---- 2. fetch ---- */

/* Loose objects directory of a repository (with a trailing slash). */
static char *objects_dir(git_repository *repo)
{
	char *out = NULL;

	if (asprintf(&out, "%sobjects/", git_repository_commondir(repo)) < 0)
		return NULL;
	return out;
}

/*
 * Hard-link the loose object `id` of src_objs into dst_objs, as
 * `git clone --local` does: objects never change, and this skips
 * inflating and deflating megabytes.  Not when the object's mode lacks a
 * permission bit in `need` (a shared remote's readers would be locked
 * out of it).  @return 0 linked (or there already), 1 not possible
 * (packed, other file system, mode), -1 error
 */
static int link_loose(const char *src_objs, const char *dst_objs,
                      const git_oid *id, mode_t need)
{
	char hex[GIT_OID_HEXSZ + 1], *src = NULL, *dst = NULL;
	struct stat st;
	int r = 1;

	git_oid_tostr(hex, sizeof(hex), id);
	if (asprintf(&src, "%s%.2s/%s", src_objs, hex, hex + 2) < 0 ||
	    asprintf(&dst, "%s%.2s/%s", dst_objs, hex, hex + 2) < 0) {
		r = -1;
		goto out;
	}
	if (need && (stat(src, &st) < 0 || (st.st_mode & need) != need))
		goto out;
	/* A missing fan-out directory is left to the git_odb_write()
	 * fallback, which creates it under the remote's umask. */
	if (link(src, dst) == 0 || errno == EEXIST)
		r = 0;
out:
	free(src);
	free(dst);
	return r;
}

typedef struct {
	git_odb *src;         /* borrowed */
	git_odb *dst;         /* borrowed */
	const char *src_objs; /* loose object dirs, for link_loose() */
	const char *dst_objs;
	mode_t need;          /* mode bits a linked object must have */
} sync_copy;

/* Copy one object unless dst has it. */
static int copy_object(const sync_copy *cp, const git_oid *id)
{
	git_odb_object *o = NULL;
	git_oid out;
	int r;

	if (git_odb_exists(cp->dst, id))
		return 0;
	r = link_loose(cp->src_objs, cp->dst_objs, id, cp->need);
	if (r <= 0) {
		/* The odb caches what exists: tell it about the link. */
		if (r == 0)
			(void)git_odb_refresh(cp->dst);
		return r;
	}
	if (git_odb_read(&o, cp->src, id) < 0)
		return -1;
	r = git_odb_write(&out, cp->dst, git_odb_object_data(o),
	                  git_odb_object_size(o), git_odb_object_type(o));
	git_odb_object_free(o);
	return r;
}

/*
 * Copy a tree and everything under it that dst lacks, children first, so
 * that a tree present in dst is always complete there (a copy cut short
 * leaves no tree pointing at missing objects).
 */
static int copy_tree(git_repository *repo, const sync_copy *cp,
                     const git_oid *id)
{
	git_tree *t = NULL;
	size_t i, n;
	int r = 0;

	if (git_odb_exists(cp->dst, id))
		return 0;
	if (git_tree_lookup(&t, repo, id) < 0)
		return -1;
	n = git_tree_entrycount(t);
	for (i = 0; i < n && r >= 0; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(t, i);

		if (git_tree_entry_type(e) == GIT_OBJECT_TREE)
			r = copy_tree(repo, cp, git_tree_entry_id(e));
		else if (git_tree_entry_type(e) == GIT_OBJECT_BLOB)
			r = copy_object(cp, git_tree_entry_id(e));
	}
	git_tree_free(t);
	return r < 0 ? r : copy_object(cp, id);
}

/*
 * Copy the commits of `walk` (a walk over `repo`, oldest first) with their
 * trees from `repo` to `rr` as loose objects.  A sync moves a few objects,
 * so this keeps the other side from collecting one pack file per sync (as
 * git's receive-pack below receive.unpackLimit), and it skips the delta
 * search of libgit2's pack builder, which costs most of a second per
 * megabytes-large host file.
 */
static int copy_commits_loose(git_repository *repo, git_repository *rr,
                              git_revwalk *walk, mode_t need)
{
	git_odb *src = NULL, *dst = NULL;
	git_commit *cm = NULL;
	sync_copy cp;
	git_oid id;
	int r;

	memset(&cp, 0, sizeof(cp));
	if (git_repository_odb(&src, repo) < 0 ||
	    git_repository_odb(&dst, rr) < 0 ||
	    !(cp.src_objs = objects_dir(repo)) ||
	    !(cp.dst_objs = objects_dir(rr))) {
		r = -1;
		goto out;
	}
	cp.src = src;
	cp.dst = dst;
	cp.need = need;
	while ((r = git_revwalk_next(&id, walk)) == 0) {
		if (git_commit_lookup(&cm, repo, &id) < 0 ||
		    copy_tree(repo, &cp, git_commit_tree_id(cm)) < 0 ||
		    copy_object(&cp, &id) < 0) {
			r = -1;
			goto out;
		}
		git_commit_free(cm);
		cm = NULL;
	}
	r = r == GIT_ITEROVER ? 0 : r;
out:
	free((char *)cp.src_objs);
	free((char *)cp.dst_objs);
	git_commit_free(cm);
	git_odb_free(src);
	git_odb_free(dst);
	return r;
}

static int cred_cb(git_credential **out, const char *url, const char *user,
                   unsigned int allowed, void *payload)
{
	sync_ctx *c = payload;

	(void)url;
	if (c->cred_tries++ > 2)
		return GIT_EAUTH;
	if (allowed & GIT_CREDENTIAL_SSH_KEY)
		return git_credential_ssh_key_from_agent(out,
		                                         user ? user : "git");
	if (allowed & GIT_CREDENTIAL_DEFAULT)
		return git_credential_default_new(out);
	return GIT_PASSTHROUGH;
}

static int push_ref_cb(const char *refname, const char *status, void *data)
{
	sync_ctx *c = data;

	(void)refname;
	if (status && !c->push_status)
		c->push_status = strdup(status);
	return 0;
}

/* Progress callbacks: each is a sign of life for the network watchdog. */
static int alive_sideband(const char *str, int len, void *data)
{
	(void)str, (void)len;
	engine__netwatch_alive(((sync_ctx *)data)->watch);
	return 0;
}

static int alive_transfer(const git_indexer_progress *stats, void *data)
{
	(void)stats;
	engine__netwatch_alive(((sync_ctx *)data)->watch);
	return 0;
}

static int alive_push(unsigned current, unsigned total, size_t bytes,
                      void *data)
{
	(void)current, (void)total, (void)bytes;
	engine__netwatch_alive(((sync_ctx *)data)->watch);
	return 0;
}

static int alive_pack(int stage, uint32_t current, uint32_t total, void *data)
{
	(void)stage, (void)current, (void)total;
	engine__netwatch_alive(((sync_ctx *)data)->watch);
	return 0;
}

static void set_callbacks(sync_ctx *c, git_remote_callbacks *cb)
{
	cb->credentials = cred_cb;
	cb->push_update_reference = push_ref_cb;
	cb->sideband_progress = alive_sideband;
	cb->transfer_progress = alive_transfer;
	cb->push_transfer_progress = alive_push;
	cb->pack_progress = alive_pack;
	cb->payload = c;
}

/* The sync's time budget: for push retries, and for a silent remote. */
static unsigned budget_s(const sync_ctx *c)
{
	return c->opts->max_seconds ? c->opts->max_seconds : SYNC_SECONDS;
}

static int cancel_asked(void *data)
{
	return cancelled(data);
}

/*
 * Watch the network I/O that follows (netwatch.c): a remote silent for the
 * sync's time budget, or a cancelled sync, interrupts it.
 */
static int net_begin(sync_ctx *c)
{
	return engine__netwatch_start(&c->watch, 1000LL * budget_s(c),
	                              cancel_asked, c);
}

/*
 * End the watch.  @return 0, or why the I/O was interrupted (-ECANCELED,
 * or -EHOSTUNREACH with the message): what explains a failed call
 */
static int net_end(sync_ctx *c)
{
	int w = engine__netwatch_stop(c->watch);

	c->watch = NULL;
	if (w == -ETIMEDOUT)
		return fail_msg(c, -EHOSTUNREACH,
		                "remote unreachable: no answer for %u s "
		                "(--timeout)",
		                budget_s(c));
	return w;
}

/* Commits copied loose at most; longer histories go as a pack. */
#define SYNC_LOOSE_MAX_COMMITS 64

/* Hide `ref`'s commit from walk when `rr` has it (errors ignored). */
static void hide_ref(git_revwalk *walk, git_repository *repo,
                     git_repository *rr, const char *ref)
{
	git_oid id;
	git_odb *odb = NULL;

	if (git_reference_name_to_id(&id, repo, ref) == 0 &&
	    git_repository_odb(&odb, rr) == 0 && git_odb_exists(odb, &id))
		(void)git_revwalk_hide(walk, &id);
	git_odb_free(odb);
	git_error_clear();
}

/* Does directory `path` hold anything? */
static int dir_has_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int any = 0;

	while (d && !any && (de = readdir(d)))
		any = strcmp(de->d_name, ".") != 0 &&
		      strcmp(de->d_name, "..") != 0;
	if (d)
		closedir(d);
	return any;
}

/* Does `path` hold a repository (objects/ and refs/, or a .git)?
 * libgit2 says "not found" also for one it refuses to open. */
static int looks_like_repository(const char *path)
{
	static const char *const parts[] = { "objects", "refs", ".git" };
	int has[3], i;

	for (i = 0; i < 3; i++) {
		char *p = NULL;
		struct stat st;

		has[i] = asprintf(&p, "%s/%s", path, parts[i]) >= 0 &&
		         stat(p, &st) == 0 && (i == 2 || S_ISDIR(st.st_mode));
		free(p);
	}
	return (has[0] && has[1]) || has[2];
}

/*
 * Fetch from a local repository by copying the missing objects loose.
 * @return 1 done, 0 use libgit2's fetch instead (long history), -errno
 */
static int fetch_local(sync_ctx *c)
{
	git_repository *rr = NULL;
	git_revwalk *walk = NULL;
	git_odb *odb = NULL;
	git_oid id;
	size_t n = 0;
	int r;

	if ((r = git_repository_open_ext(&rr, c->fetch_path,
	                                 GIT_REPOSITORY_OPEN_NO_SEARCH,
	                                 NULL)) < 0) {
		/* A mistake to fix, not a remote to wait for; but an empty
		 * directory may be a drive not mounted yet. */
		if (r == GIT_ENOTFOUND && looks_like_repository(c->fetch_path))
			return fail_msg(c, -EINVAL, "remote %s looks like a git "
			                "repository but cannot be opened (owned "
			                "by another user? libgit2 then wants "
			                "safe.directory to name it, not '*')",
			                c->fetch_path);
		if (r == GIT_ENOTFOUND && dir_has_entries(c->fetch_path))
			return fail_msg(c, -EINVAL, "remote %s is not a git "
			                "repository", c->fetch_path);
		return git_fail(c, -EHOSTUNREACH, "remote unreachable");
	}
	r = git_reference_name_to_id(&c->remote_oid, rr, c->merge_ref);
	if (r == GIT_ENOTFOUND && c->merge_guessed) {
		char *def = local_default(rr);

		r = adopt_remote_default(c, def);
		free(def);
		if (r < 0)
			goto out;
		r = git_reference_name_to_id(&c->remote_oid, rr, c->merge_ref);
	}
	if (r == GIT_ENOTFOUND) {
		r = 1; /* no branch there yet */
		goto out;
	}
	if (r < 0) {
		r = git_fail(c, -EHOSTUNREACH, "remote unreachable");
		goto out;
	}
	c->have_remote_oid = 1;
	if (git_repository_odb(&odb, c->repo) < 0) {
		r = git_fail(c, -EIO, "cannot open the object database");
		goto out;
	}
	r = 1;
	if (git_odb_exists(odb, &c->remote_oid))
		goto out;
	if (git_revwalk_new(&walk, rr) < 0 ||
	    git_revwalk_push(walk, &c->remote_oid) < 0) {
		r = git_fail(c, -EHOSTUNREACH, "remote unreachable (reading)");
		goto out;
	}
	hide_ref(walk, c->repo, rr, c->tracking_ref);
	hide_ref(walk, c->repo, rr, c->branch_ref);
	while (n <= SYNC_LOOSE_MAX_COMMITS && git_revwalk_next(&id, walk) == 0)
		n++;
	if (n > SYNC_LOOSE_MAX_COMMITS) {
		r = 0;
		goto out;
	}
	git_revwalk_reset(walk);
	git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
	(void)git_revwalk_push(walk, &c->remote_oid);
	hide_ref(walk, c->repo, rr, c->tracking_ref);
	hide_ref(walk, c->repo, rr, c->branch_ref);
	if (copy_commits_loose(rr, c->repo, walk, 0) < 0) {
		r = git_fail(c, -EHOSTUNREACH, "remote unreachable (copying)");
		goto out;
	}
	r = 1;
out:
	git_odb_free(odb);
	git_revwalk_free(walk);
	git_repository_free(rr);
	git_error_clear();
	return r;
}

/* Where the remote's refs `heads` put its branch c->merge_ref, if any. */
static void remote_branch_oid(sync_ctx *c, const git_remote_head **heads,
                              size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(heads[i]->name, c->merge_ref) == 0) {
			git_oid_cpy(&c->remote_oid, &heads[i]->oid);
			c->have_remote_oid = 1;
		}
}

/*
 * Learn where the remote branch is, download what is missing and set the
 * remote-tracking ref.  @return 0 or -EHOSTUNREACH
 */
static int sync_fetch(sync_ctx *c)
{
	git_fetch_options fo;
	git_remote_callbacks cb;
	const git_remote_head **heads;
	git_reference *ref = NULL;
	git_odb *odb = NULL;
	char *spec = NULL;
	git_strarray specs;
	struct stat st;
	size_t n;
	int r, w;

	c->have_remote_oid = 0;
	c->cred_tries = 0;
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	git_remote_init_callbacks(&cb, GIT_REMOTE_CALLBACKS_VERSION);
	set_callbacks(c, &cb);
	/* A path that is there but no directory is a mistake to fix, not
	 * a remote to wait for (a missing one may be a drive not mounted). */
	if (c->fetch_path && stat(c->fetch_path, &st) == 0 &&
	    !S_ISDIR(st.st_mode))
		return fail_msg(c, -EINVAL, "remote %s is not a directory, so "
		                "not a git repository", c->fetch_path);
	if (c->fetch_path && access(c->fetch_path, R_OK | X_OK) < 0)
		return fail_msg(c, -EHOSTUNREACH, "remote unreachable: %s: %s",
		                c->fetch_path, strerror(errno));
	if (c->fetch_path) {
		r = fetch_local(c);
		if (r < 0)
			return r;
		if (r == 1)
			goto set_tracking;
		c->have_remote_oid = 0;
	}
	if ((r = net_begin(c)) < 0)
		return r;
	if (git_remote_connect(c->remote, GIT_DIRECTION_FETCH, &cb, NULL,
	                       NULL) < 0) {
		r = git_fail(c, -EHOSTUNREACH, "remote unreachable");
		goto out;
	}
	if (git_remote_ls(&heads, &n, c->remote) < 0) {
		r = git_fail(c, -EHOSTUNREACH, "remote unreachable");
		goto out;
	}
	remote_branch_oid(c, heads, n);
	if (!c->have_remote_oid && c->merge_guessed) {
		r = adopt_remote_default(c, advertised_default(heads, n));
		if (r < 0)
			goto out;
		if (r == 1)
			remote_branch_oid(c, heads, n);
	}
	if (!c->have_remote_oid)
		goto set_tracking;
	if (git_repository_odb(&odb, c->repo) < 0) {
		r = git_fail(c, -EIO, "cannot open the object database");
		goto out;
	}
	if (!git_odb_exists(odb, &c->remote_oid)) {
		if (asprintf(&spec, "+%s:%s", c->merge_ref, c->tracking_ref) <
		    0) {
			r = -ENOMEM;
			goto out;
		}
		specs.strings = &spec;
		specs.count = 1;
		fo.callbacks = cb;
		fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
		fo.prune = GIT_FETCH_NO_PRUNE;
		fo.update_fetchhead = 0;
		if (git_remote_download(c->remote, &specs, &fo) < 0) {
			r = git_fail(c, -EHOSTUNREACH,
			             "remote unreachable (fetch)");
			goto out;
		}
	}
set_tracking:
	if (!c->have_remote_oid) {
		/* No branch there yet (a new remote): forget a stale one. */
		if (git_reference_lookup(&ref, c->repo, c->tracking_ref) == 0)
			(void)git_reference_delete(ref);
		r = 0;
		goto out;
	}
	if (git_reference_create(NULL, c->repo, c->tracking_ref, &c->remote_oid,
	                         1, "crdtfs sync: fetch") < 0) {
		r = git_fail(c, -EIO, "cannot update the remote-tracking ref");
		goto out;
	}
	r = 0;
out:
	(void)git_remote_disconnect(c->remote);
	if (c->watch && (w = net_end(c)) < 0 && r < 0)
		r = w;
	git_reference_free(ref);
	git_odb_free(odb);
	free(spec);
	return r;
}

/* ---- 3. integrate ---- */

static int ensure_tmpdir(sync_ctx *c)
{
	if (c->tmpdir)
		return 0;
	if (asprintf(&c->tmpdir, "%scrdtfs-merge-XXXXXX",
	             git_repository_path(c->repo)) < 0) {
		c->tmpdir = NULL;
		return -ENOMEM;
	}
	if (!mkdtemp(c->tmpdir)) {
		int e = errno;

		free(c->tmpdir);
		c->tmpdir = NULL;
		return fail_msg(c, -e, "cannot make a scratch directory: %s",
		                strerror(e));
	}
	return 0;
}

/* Write blob `id` to the scratch file `name`.  *out owned. */
static int blob_to_tmp(sync_ctx *c, const git_oid *id, const char *name,
                       char **out)
{
	git_blob *blob = NULL;
	int fd, r;

	*out = NULL;
	if ((r = ensure_tmpdir(c)) < 0)
		return r;
	if (asprintf(out, "%s/%s", c->tmpdir, name) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	if (git_blob_lookup(&blob, c->repo, id) < 0)
		return git_fail(c, -EIO, "cannot read a blob");
	fd = open(*out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
	} else {
		r = engine__write_all(fd, git_blob_rawcontent(blob),
		                      (size_t)git_blob_rawsize(blob));
		if (close(fd) < 0 && r == 0)
			r = -errno;
	}
	git_blob_free(blob);
	return r;
}

/* Copy the problems of a view, naming files by their labels. */
static size_t relabel_problems(sync_ctx *c, const engine_view *v,
                               char *const *paths, const char *const *labels,
                               size_t n, int errors_only)
{
	const engine_problems *p = engine_view_problems(v);
	size_t i, k, errors = 0;

	for (i = 0; i < p->count; i++) {
		const engine_problem *pr = &p->items[i];
		const char *label = pr->file;

		if (pr->severity == ENGINE_ERROR)
			errors++;
		if (errors_only && pr->severity != ENGINE_ERROR)
			continue;
		for (k = 0; k < n; k++)
			if (strcmp(pr->file, paths[k]) == 0)
				label = labels[k];
		(void)engine_problems_add(c->probs, pr->severity, label,
		                          pr->line, pr->column, "%s",
		                          pr->message);
	}
	return errors;
}

static int need_desc(sync_ctx *c)
{
	if (c->desc)
		return 0;
	return desc_default(&c->desc);
}

/*
 * Does `file`, a version of host file `path`, have errors (damaged
 * input)?  When `report`, errors are reported under `label`.
 * @return 1, or 2 when it ends inside an entry (cut short, as a tool
 *         that died writing it leaves it); 0, or -errno
 */
static int file_damaged(sync_ctx *c, const char *path, const char *file,
                        const char *label, int report)
{
	engine_view *v = NULL;
	int r;

	if ((r = need_desc(c)) < 0)
		return r;
	r = engine_merge_paths(&v, c->desc, &file, 1);
	if (r < 0)
		return fail_msg(c, r, "cannot merge %s", path);
	if (report) {
		r = relabel_problems(c, v, (char *const *)&file, &label, 1,
		                     1) > 0;
	} else {
		const engine_problems *p = engine_view_problems(v);
		size_t i;

		r = 0;
		for (i = 0; i < p->count; i++)
			if (p->items[i].severity == ENGINE_ERROR)
				r = 1;
	}
	if (r > 0 && engine_view_source(v, 0).cut_short)
		r = 2;
	engine_view_unref(v);
	return r;
}

/* file_damaged() of blob `id` of host file `path`. */
static int blob_damaged(sync_ctx *c, const char *path, const git_oid *id,
                        const char *label, int report)
{
	char *tmp = NULL, *name = NULL;
	int r;

	if (asprintf(&name, "check-%s", path) < 0)
		return -ENOMEM;
	r = blob_to_tmp(c, id, name, &tmp);
	free(name);
	if (r == 0)
		r = file_damaged(c, path, tmp, label, report);
	if (tmp)
		unlink(tmp);
	free(tmp);
	return r;
}

/* Is `path` this host's own host file, memory-HOST.json? */
static int is_own_host_file(const sync_ctx *c, const char *path)
{
	return strcmp(path, c->own_file) == 0;
}

/*
 * This machine's own host file, `ours` here and `base` at the merge base
 * (NULL: none), was changed on the remote.  One host file has one
 * writer: a second machine writing it is most often one with the same
 * host name (a cloned VM, containers named alike), and then `prepare` on
 * each removes the entries the other added.  Not when ours or the base
 * is damaged: another host repaired it.
 */
static int warn_second_writer(sync_ctx *c, const char *path,
                              const git_oid *ours, const git_oid *base)
{
	int r;

	if (!is_own_host_file(c, path))
		return 0;
	if (ours && (r = blob_damaged(c, path, ours, path, 0)) != 0)
		return r < 0 ? r : 0;
	if (base && !(ours && git_oid_equal(base, ours)) &&
	    (r = blob_damaged(c, path, base, path, 0)) != 0)
		return r < 0 ? r : 0;
	return engine_problems_add(
	        c->probs, ENGINE_WARNING, path, 0, 0,
	        "this host's file was changed on %s by another machine: if "
	        "it uses the host name %s too (a cloned machine, say), each "
	        "one's prepare removes the entries the other added; give "
	        "each machine its own (prepare --host NAME, and sync --host "
	        "NAME or a mount's -o host=NAME)",
	        c->res->upstream, c->host);
}

/*
 * The CRDT merge of blobs a (and b, unless NULL) of host file `path`, as
 * a new blob, in a's format (b's when `b_format`: JSON Lines or array,
 * else the other's).  Their problems are the callers' to report, found
 * when they looked for damage.
 * @return 0 or -errno
 */
static int crdt_merge_blobs(sync_ctx *c, const char *path, const git_oid *a,
                            const git_oid *b, int b_format, git_oid *out)
{
	engine_view *v = NULL;
	char *paths[3] = { NULL, NULL, NULL }, *names[3] = { NULL };
	size_t i, n = b ? 2 : 1;
	int fd = -1, r = -ENOMEM;

	if ((r = need_desc(c)) < 0)
		return r;
	if (asprintf(&names[0], "ours-%s", path) < 0 ||
	    asprintf(&names[1], "theirs-%s", path) < 0 ||
	    asprintf(&names[2], "merged-%s", path) < 0) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = blob_to_tmp(c, a, names[0], &paths[0])) < 0 ||
	    (b && (r = blob_to_tmp(c, b, names[1], &paths[1])) < 0))
		goto out;
	c->desc->format = b_format ?
	                  engine_merged_format(paths[n - 1], paths[0]) :
	                  engine_merged_format(paths[0], paths[n - 1]);
	r = engine_merge_paths(&v, c->desc, (const char *const *)paths, n);
	if (r < 0) {
		r = fail_msg(c, r, "cannot merge %s", path);
		goto out;
	}
	if (asprintf(&paths[2], "%s/%s", c->tmpdir, names[2]) < 0) {
		paths[2] = NULL;
		r = -ENOMEM;
		goto out;
	}
	fd = open(paths[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if ((r = engine_view_write(v, fd)) < 0) {
		r = fail_msg(c, r, "cannot write the merge of %s", path);
		goto out;
	}
	/* libgit2 streams the file into the object; it is never held whole. */
	if (git_blob_create_from_disk(out, c->repo, paths[2]) < 0) {
		r = git_fail(c, -EIO, "cannot store a merged host file");
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	engine_view_unref(v);
	for (i = 0; i < 3; i++) {
		if (paths[i])
			unlink(paths[i]);
		free(paths[i]);
		free(names[i]);
	}
	return r;
}

/*
 * Is a tree entry a host file's?  A regular file only: a symlink named
 * like one is never a host file (as in the merge) and git merges it like
 * any other file.
 */
static int host_file_entry(const git_tree_entry *e)
{
	git_filemode_t m = git_tree_entry_filemode(e);

	return m == GIT_FILEMODE_BLOB || m == GIT_FILEMODE_BLOB_EXECUTABLE;
}

static const git_oid *tree_blob(const git_tree *t, const char *name)
{
	const git_tree_entry *e;

	if (!t)
		return NULL;
	e = git_tree_entry_byname(t, name);
	if (!e || !host_file_entry(e))
		return NULL;
	return git_tree_entry_id(e);
}

/* Does tree t hold `name` as something other than a host file? */
static int holds_other(const git_tree *t, const char *name)
{
	const git_tree_entry *e = t ? git_tree_entry_byname(t, name) : NULL;

	return e && !host_file_entry(e);
}

static int oid_eq(const git_oid *a, const git_oid *b)
{
	if (!a || !b)
		return a == b;
	return git_oid_equal(a, b);
}

/* Sorted union of the top-level host file names of two trees. */
static int memory_names(const git_tree *a, const git_tree *b, char ***out,
                        size_t *n)
{
	const git_tree *trees[2] = { a, b };
	char **names = NULL;
	size_t k, i, j, cnt = 0;

	*out = NULL;
	*n = 0;
	for (k = 0; k < 2; k++) {
		size_t tc = trees[k] ? git_tree_entrycount(trees[k]) : 0;

		for (i = 0; i < tc; i++) {
			const git_tree_entry *e =
			        git_tree_entry_byindex(trees[k], i);
			const char *nm = git_tree_entry_name(e);
			char **nn;

			if (!is_memory_name(nm) || !host_file_entry(e))
				continue;
			for (j = 0; j < cnt; j++)
				if (strcmp(names[j], nm) == 0)
					break;
			if (j < cnt)
				continue;
			nn = realloc(names, (cnt + 1) * sizeof(*names));
			if (!nn || !(nn[cnt] = strdup(nm))) {
				names = nn ? nn : names;
				for (j = 0; j < cnt; j++)
					free(names[j]);
				free(names);
				return -ENOMEM;
			}
			names = nn;
			cnt++;
		}
	}
	*out = names;
	*n = cnt;
	return 0;
}

static void names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Put blob id (NULL: delete) at top-level `path` of an in-memory index. */
static int index_set(sync_ctx *c, git_index *idx, const char *path,
                     const git_oid *id)
{
	git_index_entry e;

	(void)git_index_conflict_remove(idx, path);
	if (!id) {
		if (git_index_remove(idx, path, 0) < 0 &&
		    git_index_get_bypath(idx, path, 0))
			return git_fail(c, -EIO, "cannot update the merge");
		return 0;
	}
	memset(&e, 0, sizeof(e));
	e.path = path;
	e.mode = GIT_FILEMODE_BLOB;
	git_oid_cpy(&e.id, id);
	if (git_index_add(idx, &e) < 0)
		return git_fail(c, -EIO, "cannot update the merge");
	return 0;
}

/*
 * Host files that change from `ours` to `theirs`: those we have no copy of
 * are taken as they are, so their problems are reported here (once,
 * whichever way the sync integrates).  With `check_held`, also: does one
 * we hold a copy of arrive damaged (a fast-forward would take it; a merge
 * repairs it and reports)?  @return 1, 0, -errno
 */
static int incoming_damaged(sync_ctx *c, const git_tree *ours,
                            const git_tree *theirs, int check_held)
{
	char **names = NULL, *label = NULL;
	size_t n, i;
	int r, any = 0;

	if ((r = memory_names(ours, theirs, &names, &n)) < 0)
		return r;
	for (i = 0; i < n && r >= 0; i++) {
		const git_oid *o = tree_blob(ours, names[i]);
		const git_oid *t = tree_blob(theirs, names[i]);

		if (!t || oid_eq(o, t) || (o && !check_held))
			continue;
		if (asprintf(&label, "%s:%s", c->res->upstream, names[i]) < 0)
			r = -ENOMEM;
		else
			r = blob_damaged(c, names[i], t, label, !o);
		free(label);
		label = NULL;
		if (r > 0 && o)
			any = 1;
	}
	names_free(names, n);
	return r < 0 ? r : any;
}

/*
 * The last version of host file `path` without errors before `t` in the
 * first-parent history of `theirs` (at most REPAIR_LOOKBACK commits back,
 * and not before the file was added).  @return 1 and *out, 0, -errno
 */
#define REPAIR_LOOKBACK 64
static int good_before(sync_ctx *c, const git_commit *theirs,
                       const char *path, const git_oid *t, git_oid *out)
{
	git_commit *cur = NULL, *parent = NULL;
	git_tree *tree = NULL;
	int steps, r = 0;

	if (git_commit_dup(&cur, (git_commit *)theirs) < 0)
		return 0;
	for (steps = 0; r == 0 && steps < REPAIR_LOOKBACK; steps++) {
		const git_oid *b;

		if (git_commit_parentcount(cur) == 0 ||
		    git_commit_parent(&parent, cur, 0) < 0)
			break;
		git_commit_free(cur);
		cur = parent;
		if (git_commit_tree(&tree, cur) < 0)
			break;
		b = tree_blob(tree, path);
		if (!b) {
			git_tree_free(tree);
			break;
		}
		if (!git_oid_equal(b, t) &&
		    (r = blob_damaged(c, path, b, path, 0)) == 0) {
			git_oid_cpy(out, b);
			r = 1;
		} else if (r > 0) {
			r = 0; /* damaged too: further back */
		}
		git_tree_free(tree);
	}
	git_commit_free(cur);
	git_error_clear();
	return r;
}

/*
 * Only they changed host file `path`, and their copy is damaged (`cut`:
 * cut short; its problems reported already): what it hides reaches no
 * merge.  *res is a CRDT merge that
 * repairs it when the file is this host's own (another machine damaged
 * it), or when it was cut short (a tool died writing it) and its last
 * good version on their side (else our copy) holds some entry version it
 * lost; that merge is in the owner's format.  Otherwise their bytes are
 * taken as they are, their problems reported: damage in the middle is
 * for the owner to fix, and a repair would cut the damage and what
 * follows it out of the owner's work tree too at its next sync.  Their
 * last good version, not ours: ours may be older, holding entries its
 * owner has removed since.
 */
static int repair_theirs(sync_ctx *c, const char *path, const git_oid *o,
                         const git_oid *t, int cut, const git_commit *theirs,
                         git_oid *merged, const git_oid **res)
{
	int own = is_own_host_file(c, path), r;
	git_oid alone, good;

	if (!own && !cut) {
		*res = t;
		return 0;
	}
	if (!own) {
		if ((r = good_before(c, theirs, path, t, &good)) < 0)
			return r;
		if (r == 1)
			o = &good;
	}
	if ((r = crdt_merge_blobs(c, path, o, t, !own, merged)) < 0 ||
	    (!own && (r = crdt_merge_blobs(c, path, t, NULL, 0, &alone)) < 0))
		return r;
	if (!own && git_oid_equal(merged, &alone)) {
		*res = t;
	} else {
		c->res->crdt_merged++;
		*res = merged;
	}
	return 0;
}

/*
 * Host file `path` changed on both sides: *res is the CRDT merge of both
 * copies, unless one of them has errors that are not a cut (the other
 * clean or cut short): that one is kept as it is, the merge would cut
 * what follows its damage out of the file its writer was told to fix.
 * @return 0 or -errno
 */
static int merge_both_changed(sync_ctx *c, const char *path, const git_oid *o,
                              const char *olabel, const git_oid *t,
                              const char *tlabel, git_oid *merged,
                              const git_oid **res)
{
	int dam_o, dam_t, r;

	/* Their problems are said here; ours were when we committed it. */
	if ((dam_o = blob_damaged(c, path, o, olabel, 0)) < 0)
		return dam_o;
	if ((dam_t = blob_damaged(c, path, t, tlabel, 1)) < 0)
		return dam_t;
	if (dam_o == 1 && dam_t != 1) {
		*res = o;
		return engine_problems_add(
		        c->probs, ENGINE_WARNING, path, 0, 0,
		        "kept as it is here, with its errors, for you to fix; "
		        "%s's version of it is left out (it stays in the "
		        "history)", c->res->upstream);
	}
	if (dam_t == 1 && dam_o != 1) {
		*res = t;
		return 0;
	}
	if ((r = crdt_merge_blobs(c, path, o, t, 0, merged)) < 0)
		return r;
	c->res->crdt_merged++;
	*res = merged;
	return 0;
}

/*
 * Their tree as git's tree merge is to see it: each host file changed on
 * both sides holds our blob, so that git takes it as it is.  Its merge
 * is the CRDT merge, made after; git's text merge of the two would only
 * be thrown away, at several times the file's size in memory (a 58 MB
 * host file changed on both sides: 552 MB peak and 9.2 s, now 150 MB and
 * 4.7 s).
 */
static int theirs_for_git(sync_ctx *c, const git_tree *bt, const git_tree *ot,
                          git_tree *tt, char **names, size_t n,
                          git_tree **out)
{
	git_tree_update *up = NULL;
	size_t i, k = 0;
	git_oid id;
	int r = 0;

	if (!(up = calloc(n ? n : 1, sizeof(*up))))
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const git_oid *o = tree_blob(ot, names[i]);
		const git_oid *t = tree_blob(tt, names[i]);
		const git_oid *b = tree_blob(bt, names[i]);

		if (!o || !t || oid_eq(o, t) || oid_eq(o, b) || oid_eq(t, b))
			continue;
		up[k].action = GIT_TREE_UPDATE_UPSERT;
		git_oid_cpy(&up[k].id, o);
		up[k].filemode = GIT_FILEMODE_BLOB;
		up[k++].path = names[i];
	}
	if (k == 0)
		r = git_tree_dup(out, tt) < 0 ? -EIO : 0;
	else if (git_tree_create_updated(&id, c->repo, tt, k, up) < 0 ||
	         git_tree_lookup(out, c->repo, &id) < 0)
		r = -EIO;
	free(up);
	return r < 0 ? git_fail(c, r, "cannot prepare the merge") : 0;
}

/*
 * Merge commit of ours and theirs: git's tree merge, then host files fixed
 * up by the CRDT rule.  @return 0 and *out, or -errno
 */
static int merge_commit(sync_ctx *c, git_commit *ours, git_commit *theirs,
                        git_oid *out)
{
	git_merge_options mo;
	git_tree *bt = NULL, *ot = NULL, *tt = NULL, *gt = NULL, *mt = NULL;
	git_commit *base = NULL;
	git_index *idx = NULL;
	git_oid base_id, tree_id;
	char **names = NULL, *olabel = NULL, *tlabel = NULL, *msg = NULL;
	const git_commit *parents[2] = { ours, theirs };
	size_t n = 0, i;
	int r;

	git_merge_options_init(&mo, GIT_MERGE_OPTIONS_VERSION);
	r = git_merge_base(&base_id, c->repo, git_commit_id(ours),
	                   git_commit_id(theirs));
	if (r == 0 && git_commit_lookup(&base, c->repo, &base_id) < 0)
		r = -1;
	if (r < 0 && r != GIT_ENOTFOUND)
		return git_fail(c, -EIO, "cannot find the merge base");
	if ((base && git_commit_tree(&bt, base) < 0) ||
	    git_commit_tree(&ot, ours) < 0 ||
	    git_commit_tree(&tt, theirs) < 0) {
		r = git_fail(c, -EIO, "cannot read a tree");
		goto out;
	}
	if ((r = memory_names(ot, tt, &names, &n)) < 0 ||
	    (r = theirs_for_git(c, bt, ot, tt, names, n, &gt)) < 0)
		goto out;
	if (git_merge_trees(&idx, c->repo, bt, ot, gt, &mo) < 0) {
		r = git_fail(c, -EIO, "cannot merge trees");
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *p = names[i];
		const git_oid *o = tree_blob(ot, p), *t = tree_blob(tt, p);
		const git_oid *b = tree_blob(bt, p), *res = NULL;
		git_oid merged;

		/* A symlink on either side: no host file, git's to merge. */
		if (holds_other(ot, p) || holds_other(tt, p))
			continue;
		if (oid_eq(o, t)) {
			res = o;
		} else if (oid_eq(t, b)) {
			res = o; /* only we changed it */
		} else if ((r = warn_second_writer(c, p, o, b)) < 0) {
			goto out;
		} else if (asprintf(&olabel, "HEAD:%s", p) < 0 ||
		           asprintf(&tlabel, "%s:%s", c->res->upstream, p) < 0) {
			r = -ENOMEM;
			goto out;
		} else if (oid_eq(o, b)) {
			/* Only they changed it: theirs, unless damaged. */
			res = t;
			if (o && t) {
				r = blob_damaged(c, p, t, tlabel, 1);
				if (r > 0)
					r = repair_theirs(c, p, o, t, r == 2,
					                  theirs, &merged, &res);
				if (r < 0)
					goto out;
			}
		} else if (o && t) {
			r = merge_both_changed(c, p, o, olabel, t, tlabel,
			                       &merged, &res);
			if (r < 0)
				goto out;
		} else {
			res = o ? o : t; /* changed on one side, deleted on
					    the other: keep the data */
		}
		free(olabel);
		free(tlabel);
		olabel = tlabel = NULL;
		if ((r = index_set(c, idx, p, res)) < 0)
			goto out;
	}
	if (git_index_has_conflicts(idx)) {
		git_index_conflict_iterator *it = NULL;
		const git_index_entry *a, *o2, *t2;
		const char *what = "?";

		if (git_index_conflict_iterator_new(&it, idx) == 0 &&
		    git_index_conflict_next(&a, &o2, &t2, it) == 0)
			what = o2 ? o2->path : t2 ? t2->path : a->path;
		r = fail_msg(
		        c, -EBUSY,
		        "merge conflict in %s (not a host file): resolve it with git",
		        what);
		git_index_conflict_iterator_free(it);
		goto out;
	}
	if (git_index_write_tree_to(&tree_id, idx, c->repo) < 0 ||
	    git_tree_lookup(&mt, c->repo, &tree_id) < 0) {
		r = git_fail(c, -EIO, "cannot write the merged tree");
		goto out;
	}
	if (asprintf(&msg, "crdtfs: merge %s into %s on %s\n", c->res->upstream,
	             c->res->branch, c->host) < 0) {
		r = -ENOMEM;
		goto out;
	}
	if (git_commit_create(out, c->repo, NULL, c->sig, c->sig, NULL, msg, mt,
	                      2, parents) < 0) {
		r = git_fail(c, -EIO, "cannot create the merge commit");
		goto out;
	}
	r = 0;
out:
	names_free(names, n);
	free(olabel);
	free(tlabel);
	free(msg);
	git_index_free(idx);
	git_tree_free(bt);
	git_tree_free(ot);
	git_tree_free(tt);
	git_tree_free(gt);
	git_tree_free(mt);
	git_commit_free(base);
	return r;
}

/* Index entry with the stat data of a file we just wrote. */
static int index_add_stat(sync_ctx *c, const char *path, const git_oid *id,
                          const struct stat *st)
{
	git_index_entry e;

	memset(&e, 0, sizeof(e));
	e.ctime.seconds = (int32_t)st->st_ctim.tv_sec;
	e.ctime.nanoseconds = (uint32_t)st->st_ctim.tv_nsec;
	e.mtime.seconds = (int32_t)st->st_mtim.tv_sec;
	e.mtime.nanoseconds = (uint32_t)st->st_mtim.tv_nsec;
	e.dev = (uint32_t)st->st_dev;
	e.ino = (uint32_t)st->st_ino;
	e.mode = GIT_FILEMODE_BLOB;
	e.uid = (uint32_t)st->st_uid;
	e.gid = (uint32_t)st->st_gid;
	e.file_size = (uint32_t)st->st_size;
	e.path = path;
	git_oid_cpy(&e.id, id);
	if (git_index_add(c->index, &e) < 0)
		return git_fail(c, -EIO, "cannot update the index");
	return 0;
}

/* What a work-tree file may hold when the sync replaces or removes it. */
typedef struct {
	git_repository *repo;
	const char *path;   /* in the work tree: its attributes apply */
	const git_oid *old; /* the version the sync started from, or NULL */
	const git_oid *new; /* the version it writes, or NULL */
} expected_blob;

/*
 * engine__check_fn: the displaced file holds `old` or `new` (or none).
 * Hashed as git would stage it, through the filters of `path` (with
 * `text=auto` a CRLF file is committed with LF: its raw bytes never hash
 * as the blob).
 */
static int holds_expected(void *ctx, const char *displaced)
{
	const expected_blob *x = ctx;
	git_oid cur;

	if (!displaced)
		return !x->old;
	if (git_repository_hashfile(&cur, x->repo, displaced, GIT_OBJECT_BLOB,
	                            x->path) < 0)
		return 0;
	return (x->old && git_oid_equal(&cur, x->old)) ||
	       (x->new && git_oid_equal(&cur, x->new));
}

/*
 * Bring work-tree file `path` from blob `old` (NULL: none) to `new` (NULL:
 * removed), atomically, unless a write changed it since the sync read it:
 * then that write is kept and this fails with -ESTALE.
 */
static int update_file(sync_ctx *c, const char *path, const git_oid *old,
                       const git_oid *new, struct stat *st)
{
	expected_blob x = { c->repo, path, old, new };
	git_blob *blob = NULL;
	char *dst = NULL;
	int r;

	if (asprintf(&dst, "%s%s", git_repository_workdir(c->repo), path) < 0)
		return -ENOMEM;
	if (!new)
		r = engine__remove_file_if(dst, holds_expected, &x);
	else if (git_blob_lookup(&blob, c->repo, new) < 0)
		r = git_fail(c, -EIO, "cannot read a blob");
	else
		r = engine__replace_file_bytes(dst, 0644,
					       git_blob_rawcontent(blob),
					       (size_t)git_blob_rawsize(blob),
					       st, holds_expected, &x);
	git_blob_free(blob);
	free(dst);
	if (r == -ESTALE)
		return fail_msg(c, r, "%s changed during the sync", path);
	return r < 0 && !c->res->error[0] ?
	               fail_msg(c, r, "cannot write %s", path) :
	               r;
}

typedef struct {
	char path[256]; /* the first file a checkout found in the way */
	int tracked;    /* it is committed here (and changed since) */
} in_the_way;

/* Checkout notification: remember the first path in the way. */
static int first_conflict(git_checkout_notify_t why, const char *path,
                          const git_diff_file *baseline,
                          const git_diff_file *target,
                          const git_diff_file *workdir, void *payload)
{
	in_the_way *w = payload;

	(void)why, (void)target, (void)workdir;
	if (!w->path[0]) {
		snprintf(w->path, sizeof(w->path), "%s", path);
		w->tracked = baseline && baseline->mode;
	}
	return 0;
}

/*
 * Is a change of the work tree ours to make (a host file's or a
 * descriptor's, replaced by rename), or git's checkout's?  A symlink
 * named like a host file, before or after, is no host file.
 */
static int delta_is_ours(const git_diff_delta *d)
{
	return is_managed(d->new_file.path) &&
	       d->old_file.mode != GIT_FILEMODE_LINK &&
	       (!d->new_file.mode || d->new_file.mode == GIT_FILEMODE_BLOB ||
	        d->new_file.mode == GIT_FILEMODE_BLOB_EXECUTABLE);
}

/*
 * Bring the work tree and index from tree `from` (NULL: empty) to `to`.
 * Host files and descriptors are replaced by rename if they still hold the
 * bytes of `from` (checked before anything changes, and again on the file
 * each rename displaces); other files go through a safe checkout.
 * @return 0, -ESTALE (a file changed under us), -EBUSY, -errno
 */
static int update_worktree(sync_ctx *c, git_tree *from, git_tree *to)
{
	in_the_way way = { "", 0 };
	git_checkout_options co;
	git_diff_options dopts;
	const char *wd = git_repository_workdir(c->repo);
	git_diff *diff = NULL;
	char **others = NULL;
	size_t n, i, nothers = 0;
	int r = 0, dirfd_ = -1;

	git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
	git_diff_options_init(&dopts, GIT_DIFF_OPTIONS_VERSION);
	/* A symlink that becomes a file is one change, not two. */
	dopts.flags |= GIT_DIFF_INCLUDE_TYPECHANGE;
	if (git_diff_tree_to_tree(&diff, c->repo, from, to, &dopts) < 0)
		return git_fail(c, -EIO, "cannot diff trees");
	n = git_diff_num_deltas(diff);
	others = calloc(n + 1, sizeof(*others));
	if (!others) {
		r = -ENOMEM;
		goto out;
	}
	/* Check first, change nothing if anything is in the way. */
	for (i = 0; i < n; i++) {
		const git_diff_delta *d = git_diff_get_delta(diff, i);
		const char *p = d->new_file.path;
		expected_blob x = {
			c->repo, p,
			d->old_file.mode ? &d->old_file.id : NULL,
			d->new_file.mode ? &d->new_file.id : NULL
		};
		char *full = NULL;
		struct stat lst;
		int ok;

		if (!delta_is_ours(d)) {
			others[nothers++] = (char *)p;
			continue;
		}
		if (asprintf(&full, "%s%s", wd, p) < 0) {
			r = -ENOMEM;
			goto out;
		}
		if (lstat(full, &lst) == 0 && !S_ISREG(lst.st_mode)) {
			/* Never replaced, never read (nor followed): a
			 * symlink, even dangling, or a directory. */
			r = fail_msg(c, -EBUSY,
			             "cannot update the work tree: %s is in the "
			             "way (a %s where %s); move it away",
			             p, S_ISLNK(lst.st_mode) ? "symlink" :
			                S_ISDIR(lst.st_mode) ? "directory" :
			                                       "special file",
			             d->new_file.mode ?
			                     "the remote has a host file" :
			                     "the remote deletes a host file");
			free(full);
			goto out;
		}
		ok = holds_expected(&x, access(full, F_OK) == 0 ? full : NULL);
		free(full);
		if (!ok) {
			r = fail_msg(c, -ESTALE, "%s changed during the sync",
			             p);
			goto out;
		}
	}
	if (nothers) {
		co.checkout_strategy = GIT_CHECKOUT_SAFE |
		                       GIT_CHECKOUT_DISABLE_PATHSPEC_MATCH;
		co.baseline = from;
		co.paths.strings = others;
		co.paths.count = nothers;
		co.notify_flags = GIT_CHECKOUT_NOTIFY_CONFLICT;
		co.notify_cb = first_conflict;
		co.notify_payload = &way;
		if (git_checkout_tree(c->repo, (const git_object *)to, &co) <
		    0) {
			r = way.path[0] && way.tracked ?
			            fail_msg(c, -EBUSY,
			                     "cannot update the work tree: %s has "
			                     "changes not committed here (sync "
			                     "commits only host files and "
			                     "descriptors), and the remote changed "
			                     "it too; commit or stash them",
			                     way.path) :
			    way.path[0] ?
			            fail_msg(c, -EBUSY,
			                     "cannot update the work tree: %s is "
			                     "in the way (not committed here, and "
			                     "the remote has another); move it "
			                     "away or commit it",
			                     way.path) :
			            git_fail(c, -EBUSY,
			                     "cannot update the work tree");
			goto out;
		}
		c->res->pulled = 1;
	}
	if (git_index_read_tree(c->index, to) < 0) {
		r = git_fail(c, -EIO, "cannot update the index");
		goto out;
	}
	for (i = 0; i < n; i++) {
		const git_diff_delta *d = git_diff_get_delta(diff, i);
		const char *p = d->new_file.path;
		struct stat st;

		if (!delta_is_ours(d))
			continue;
		c->res->pulled = 1;
		if ((r = update_file(c, p,
		                     d->old_file.mode ? &d->old_file.id : NULL,
		                     d->new_file.mode ? &d->new_file.id : NULL,
		                     &st)) < 0)
			goto out;
		if (d->new_file.mode &&
		    (r = index_add_stat(c, p, &d->new_file.id, &st)) < 0)
			goto out;
	}
	dirfd_ = open(wd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd_ >= 0) {
		(void)fsync(dirfd_);
		close(dirfd_);
	}
	if (git_index_write(c->index) < 0)
		r = git_fail(c, -EIO, "cannot write the index");
out:
	free(others);
	git_diff_free(diff);
	return r;
}

/*
 * Compare-and-swap a ref: point `name` at `id` only if it still points at
 * `old`, or, with `old` NULL, only if it does not exist yet.  Both cases
 * are decided under the ref's lock by passing an old id (all zeros: must
 * not exist); git_reference_create() with force=0 checks for an existing
 * ref before taking the lock, so two first pushes could both succeed.
 * @return 0, GIT_EMODIFIED (lost the race), GIT_ELOCKED, or another error
 */
static int ref_cas(git_repository *repo, const char *name, const git_oid *id,
                   const git_oid *old, const char *why)
{
	git_oid none;

	if (!old) {
		memset(&none, 0, sizeof(none));
		old = &none;
	}
	return git_reference_create_matching(NULL, repo, name, id, 1, old,
	                                     why);
}

/* Move the branch from `old` (NULL: unborn) to `id`. */
static int move_branch(sync_ctx *c, const git_oid *old, const git_oid *id,
                       const char *why)
{
	int r = ref_cas(c->repo, c->branch_ref, id, old, why);

	if (r < 0)
		return git_fail(c, -EBUSY, "the branch moved during the sync");
	return 0;
}

/* warn_second_writer() if a fast-forward from `from` to `to` changes
 * this host's own file. */
static int warn_second_writer_ff(sync_ctx *c, const git_tree *from,
                                 const git_tree *to)
{
	const git_oid *o = tree_blob(from, c->own_file);
	const git_oid *t = tree_blob(to, c->own_file);

	return t && !oid_eq(o, t) ? warn_second_writer(c, c->own_file, o, o) :
	                            0;
}

/* Move from our commit (tree ot) to theirs (tree nt). */
static int fast_forward(sync_ctx *c, git_tree *ot, git_tree *nt,
                        const git_oid *oid_ours)
{
	int r;

	if ((r = update_worktree(c, ot, nt)) < 0 ||
	    (r = move_branch(c, oid_ours, &c->remote_oid,
	                     "crdtfs sync: fast-forward")) < 0)
		return r;
	c->res->fast_forward = 1;
	return 0;
}

static int integrate(sync_ctx *c)
{
	git_commit *ours = NULL, *theirs = NULL;
	git_tree *ot = NULL, *nt = NULL;
	git_oid base, newid;
	const git_oid *oid_ours;
	int r, ff;

	if (!c->have_remote_oid)
		return 0;
	if ((r = head_commit(c, &ours)) < 0)
		return r;
	if (git_commit_lookup(&theirs, c->repo, &c->remote_oid) < 0) {
		r = git_fail(c, -EIO, "cannot read the remote commit");
		goto out;
	}
	if (!ours) {
		/* Unborn branch: take theirs as it is. */
		if (git_commit_tree(&nt, theirs) < 0) {
			r = git_fail(c, -EIO, "cannot read a tree");
			goto out;
		}
		if ((r = incoming_damaged(c, NULL, nt, 0)) < 0 ||
		    (r = update_worktree(c, NULL, nt)) < 0 ||
		    (r = move_branch(c, NULL, &c->remote_oid,
		                     "crdtfs sync: initial pull")) < 0)
			goto out;
		c->res->fast_forward = 1;
		goto out;
	}
	oid_ours = git_commit_id(ours);
	if (git_oid_equal(oid_ours, &c->remote_oid) ||
	    git_graph_descendant_of(c->repo, oid_ours, &c->remote_oid) == 1) {
		r = 0; /* nothing new there */
		goto out;
	}
	if (git_commit_tree(&ot, ours) < 0) {
		r = git_fail(c, -EIO, "cannot read a tree");
		goto out;
	}
	r = git_merge_base(&base, c->repo, oid_ours, &c->remote_oid);
	if (r < 0 && r != GIT_ENOTFOUND) {
		r = git_fail(c, -EIO, "cannot find the merge base");
		goto out;
	}
	ff = r == 0 && git_oid_equal(&base, oid_ours);
	if (git_commit_tree(&nt, theirs) < 0) {
		r = git_fail(c, -EIO, "cannot read a tree");
		goto out;
	}
	if ((r = incoming_damaged(c, ot, nt, ff)) < 0)
		goto out;
	if (ff && r == 0) {
		if ((r = warn_second_writer_ff(c, ot, nt)) == 0)
			r = fast_forward(c, ot, nt, oid_ours);
		goto out;
	}
	/* Diverged, or a damaged host file would replace a good one. */
	git_tree_free(nt);
	nt = NULL;
	if ((r = merge_commit(c, ours, theirs, &newid)) < 0)
		goto out;
	{
		git_commit *mc = NULL;

		if (git_commit_lookup(&mc, c->repo, &newid) < 0 ||
		    git_commit_tree(&nt, mc) < 0) {
			git_commit_free(mc);
			r = git_fail(c, -EIO, "cannot read the merge");
			goto out;
		}
		git_commit_free(mc);
	}
	/* A damaged host file taken as it is: their tree, so their commit
	 * (a merge commit would only be one more for every host to push). */
	if (ff && git_oid_equal(git_tree_id(nt), git_commit_tree_id(theirs))) {
		r = fast_forward(c, ot, nt, oid_ours);
		goto out;
	}
	if ((r = update_worktree(c, ot, nt)) < 0 ||
	    (r = move_branch(c, oid_ours, &newid, "crdtfs sync: merge")) < 0)
		goto out;
	c->res->merged = 1;
out:
	git_commit_free(ours);
	git_commit_free(theirs);
	git_tree_free(ot);
	git_tree_free(nt);
	return r;
}

/* ---- 4. push ---- */

/*
 * The umask under which git would write into a repository whose
 * core.sharedRepository is `v`, for a user whose umask is `cur`
 * (git's calc_shared_perm): "group" (or "true", "1") gives the group
 * what the owner gets; "all" ("world", "everybody", "2") also lets others
 * read; "0xxx" gives files mode xxx and directories x where r.  Anything
 * else ("umask", "false", "0") leaves `cur`.
 */
static mode_t shared_umask(const char *v, mode_t cur)
{
	unsigned long mode;
	char *end;

	if (!strcasecmp(v, "group") || !strcasecmp(v, "true") ||
	    !strcmp(v, "1"))
		return cur & ~(mode_t)070;
	if (!strcasecmp(v, "all") || !strcasecmp(v, "world") ||
	    !strcasecmp(v, "everybody") || !strcmp(v, "2"))
		return cur & ~(mode_t)075;
	if (v[0] != '0' || !v[1])
		return cur;
	mode = strtoul(v, &end, 8);
	/* git refuses a mode without rw for the owner */
	if (*end || mode > 0777 || (mode & 0600) != 0600)
		return cur;
	return (~(mode_t)mode & 0666) | ((~(mode_t)mode & 0444) >> 2);
}

/*
 * Write into a shared remote (core.sharedRepository) with the permissions
 * git gives its files, or other users of the remote cannot read what this
 * push wrote, nor write into the object directories it made.  The umask
 * is set for this thread alone: it first gets a filesystem context of its
 * own (in a mount the request threads share the process's umask).  The
 * remote's setgid directories give new ones their group.
 * @return 1 when *saved is the umask to restore, else 0; *need: the mode
 *         bits an object must have to be hard-linked into the remote
 */
static int shared_begin(git_repository *rr, mode_t *saved, mode_t *need)
{
	char *v = NULL;
	mode_t want;

	*need = 0;
	if (config_string(rr, "core.sharedRepository", &v) < 0)
		return 0;
	if (unshare(CLONE_FS) < 0) {
		/* Written as the umask has it; linked only if all may read. */
		free(v);
		*need = 0444;
		return 0;
	}
	*saved = umask(0); /* this thread's own now: read, then set */
	want = shared_umask(v, *saved);
	free(v);
	umask(want);
	/* Also when the umask is already right: the local object may have
	 * been written under another. */
	*need = 0444 & ~want;
	return 1;
}

/*
 * A write into a local remote that was reached failed: its permissions or
 * space (exit 1: to be fixed) or, say, a network file system gone (exit
 * 3: to be waited out, the local commit kept).  errno is often another
 * call's by now, so libgit2's message, which quotes strerror() of the
 * failing call, is read too.
 */
static int remote_write_fail(sync_ctx *c, const char *what)
{
	static const int fixable[] = { EACCES, EPERM, EROFS, ENOSPC, EDQUOT };
	const git_error *ge = git_error_last();
	const char *m = ge && ge->message ? ge->message : "";
	int e = errno, fix = 0;
	char msg[96];
	size_t i;

	for (i = 0; i < sizeof(fixable) / sizeof(*fixable); i++)
		fix |= e == fixable[i] || strstr(m, strerror(fixable[i]));
	if (fix) {
		snprintf(msg, sizeof(msg), "cannot write %s into the remote",
		         what);
		return git_fail(c, -EIO, msg);
	}
	snprintf(msg, sizeof(msg), "remote unreachable (writing %s)", what);
	return git_fail(c, -EHOSTUNREACH, msg);
}

/*
 * Push to a local bare repository: copy the missing objects (loose when
 * few, else as a pack), then move its branch by compare-and-swap from the
 * id we fetched.
 * @return 0, -EAGAIN (the branch moved: rejected), -EHOSTUNREACH, -errno
 */
static int push_local(sync_ctx *c, const git_oid *head)
{
	git_repository *rr = NULL;
	git_packbuilder *pb = NULL;
	git_revwalk *walk = NULL;
	git_reference *rhead = NULL, *resolved = NULL;
	char *packdir = NULL;
	mode_t saved_umask = 0, need = 0;
	int r, shared = 0;

	if (git_repository_open_ext(&rr, c->local_path,
	                            GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0)
		return git_fail(c, -EHOSTUNREACH, "remote unreachable");
	if (!git_repository_is_bare(rr)) {
		r = fail_msg(
		        c, -EINVAL,
		        "%s: pushing to a repository with a work tree is not supported; use a bare repository",
		        c->local_path);
		goto out;
	}
	shared = shared_begin(rr, &saved_umask, &need);
	/* Count the commits to send. */
	if (git_revwalk_new(&walk, c->repo) < 0 ||
	    git_revwalk_push(walk, head) < 0 ||
	    (c->have_remote_oid &&
	     git_revwalk_hide(walk, &c->remote_oid) < 0)) {
		r = git_fail(c, -EIO, "cannot list the commits to push");
		goto out;
	}
	{
		git_oid id;
		size_t ncommits = 0;

		while (ncommits <= SYNC_LOOSE_MAX_COMMITS &&
		       git_revwalk_next(&id, walk) == 0)
			ncommits++;
		git_revwalk_reset(walk);
		git_revwalk_sorting(walk,
		                    GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
		if (git_revwalk_push(walk, head) < 0 ||
		    (c->have_remote_oid &&
		     git_revwalk_hide(walk, &c->remote_oid) < 0)) {
			r = git_fail(c, -EIO,
			             "cannot list the commits to push");
			goto out;
		}
		if (ncommits <= SYNC_LOOSE_MAX_COMMITS) {
			if (copy_commits_loose(c->repo, rr, walk, need) < 0) {
				r = remote_write_fail(c, "objects");
				goto out;
			}
			goto update_ref;
		}
	}
	if (git_packbuilder_new(&pb, c->repo) < 0 ||
	    git_packbuilder_insert_walk(pb, walk) < 0) {
		r = git_fail(c, -EIO, "cannot pack the commits to push");
		goto out;
	}
	if (git_packbuilder_object_count(pb) > 0) {
		if (asprintf(&packdir, "%sobjects/pack",
		             git_repository_path(rr)) < 0) {
			r = -ENOMEM;
			goto out;
		}
		if (git_packbuilder_write(pb, packdir, 0, NULL, NULL) < 0) {
			r = remote_write_fail(c, "the pack");
			goto out;
		}
	}
update_ref:
	r = ref_cas(rr, c->merge_ref, head,
	            c->have_remote_oid ? &c->remote_oid : NULL,
	            "crdtfs sync: push");
	if (r == GIT_EMODIFIED || r == GIT_ELOCKED) {
		r = git_fail(c, -EAGAIN, "push rejected");
		goto out;
	}
	if (r < 0) {
		r = git_fail(c, -EIO, "cannot update the remote branch");
		goto out;
	}
	/* A new remote whose HEAD names no branch: point it at ours, so
	 * that `git clone` checks this branch out. */
	if (!c->have_remote_oid &&
	    git_reference_lookup(&rhead, rr, "HEAD") == 0 &&
	    git_reference_type(rhead) == GIT_REFERENCE_SYMBOLIC &&
	    git_reference_resolve(&resolved, rhead) == GIT_ENOTFOUND)
		(void)git_repository_set_head(rr, c->merge_ref);
	r = 0;
out:
	if (shared)
		umask(saved_umask);
	git_reference_free(rhead);
	git_reference_free(resolved);
	git_revwalk_free(walk);
	git_packbuilder_free(pb);
	git_repository_free(rr);
	free(packdir);
	return r;
}

/* Push through libgit2's transports (the server does the CAS). */
static int push_remote(sync_ctx *c)
{
	git_push_options po;
	char *spec = NULL;
	git_strarray specs;
	int r, w;

	git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
	if (asprintf(&spec, "%s:%s", c->branch_ref, c->merge_ref) < 0)
		return -ENOMEM;
	specs.strings = &spec;
	specs.count = 1;
	free(c->push_status);
	c->push_status = NULL;
	c->cred_tries = 0;
	set_callbacks(c, &po.callbacks);
	if ((r = net_begin(c)) < 0) {
		free(spec);
		return r;
	}
	r = git_remote_push(c->push_remote ? c->push_remote : c->remote, &specs,
	                    &po);
	free(spec);
	if ((w = net_end(c)) < 0 && r < 0)
		return w;
	if (r == GIT_ENONFASTFORWARD)
		return git_fail(c, -EAGAIN, "push rejected");
	if (r < 0)
		return git_fail(c, -EHOSTUNREACH, "remote unreachable (push)");
	if (c->push_status)
		return fail_msg(c, -EAGAIN, "push rejected: %s",
		                c->push_status);
	return 0;
}

static int sync_push(sync_ctx *c)
{
	git_oid head;
	int r;

	r = git_reference_name_to_id(&head, c->repo, c->branch_ref);
	if (r == GIT_ENOTFOUND)
		return 0; /* nothing committed anywhere yet */
	if (r < 0)
		return git_fail(c, -EIO, "cannot read the branch head");
	git_oid_tostr(c->res->head, sizeof(c->res->head), &head);
	if (c->have_remote_oid && git_oid_equal(&head, &c->remote_oid)) {
		c->res->pushed = 1;
		return 0;
	}
	c->res->attempts++;
	r = c->local_path ? push_local(c, &head) : push_remote(c);
	if (r == -EAGAIN)
		c->res->rejected++;
	if (r < 0)
		return r;
	(void)git_reference_create(NULL, c->repo, c->tracking_ref, &head, 1,
	                           "crdtfs sync: push");
	c->res->pushed = 1;
	return 0;
}

static unsigned backoff_ms(unsigned attempt, unsigned *seed)
{
	unsigned long d = SYNC_BACKOFF_MS;

	while (--attempt && d < SYNC_BACKOFF_MAX_MS)
		d *= 2;
	if (d > SYNC_BACKOFF_MAX_MS)
		d = SYNC_BACKOFF_MAX_MS;
	/* Equal jitter: half fixed, half random. */
	return (unsigned)(d / 2 + (unsigned long)rand_r(seed) % (d / 2 + 1));
}

static void sync_ctx_dispose(sync_ctx *c)
{
	if (c->tmpdir)
		rmdir(c->tmpdir);
	free(c->tmpdir);
	free(c->branch_ref);
	free(c->remote_name);
	free(c->merge_ref);
	free(c->tracking_ref);
	free(c->local_path);
	free(c->fetch_path);
	free(c->push_status);
	git_remote_free(c->push_remote);
	desc_free(c->desc);
	git_signature_free(c->sig);
	git_remote_free(c->remote);
	git_index_free(c->index);
	git_repository_free(c->repo);
}

int engine_sync(const engine_sync_opts *opts, engine_sync_result *res,
                engine_problems *probs)
{
	sync_ctx c;
	unsigned attempts = opts->max_attempts ? opts->max_attempts :
	                                         SYNC_ATTEMPTS;
	long long deadline;
	unsigned seed, n;
	int r, lockfd = -1;

	memset(res, 0, sizeof(*res));
	memset(&c, 0, sizeof(c));
	c.opts = opts;
	c.res = res;
	c.probs = probs;
	if (opts->host)
		snprintf(c.host, sizeof(c.host), "%s", opts->host);
	else if (gethostname(c.host, sizeof(c.host) - 1) < 0)
		snprintf(c.host, sizeof(c.host), "localhost");
	snprintf(c.own_file, sizeof(c.own_file), "memory-%s.json", c.host);
	seed = (unsigned)engine__mono_ms() ^ (unsigned)getpid();
	git_libgit2_init();

	if ((r = sync_open(&c)) < 0)
		goto out;
	if ((lockfd = sync_lock(&c)) < 0) {
		r = lockfd;
		goto out;
	}
	engine__sweep_leftovers(c.repo, is_managed, probs);
	if ((r = stage_and_commit(&c)) < 0)
		goto out;
	deadline = engine__mono_ms() + 1000LL * budget_s(&c);
	for (n = 1;; n++) {
		res->error[0] = '\0';
		if ((r = sync_fetch(&c)) < 0)
			break;
		r = integrate(&c);
		if (r == -ESTALE && n < attempts) {
			/* A host file was written meanwhile: commit it too
			 * and integrate again. */
			if ((r = stage_and_commit(&c)) < 0)
				break;
			continue;
		}
		if (r < 0)
			break;
		if ((r = sync_push(&c)) != -EAGAIN)
			break;
		if (n >= attempts || engine__mono_ms() >= deadline)
			break;
		{
			long long d = backoff_ms(n, &seed);

			if (engine__mono_ms() + d > deadline)
				d = deadline - engine__mono_ms();
			if ((r = nap(&c, d)) < 0)
				break;
		}
	}
	if (r == -ESTALE)
		r = -EBUSY;
	if (r == -EAGAIN) {
		char why[sizeof(res->error)];

		snprintf(why, sizeof(why), "%s", res->error);
		snprintf(
		        res->error, sizeof(res->error),
		        "push rejected %u times, giving up (local commit kept): %.400s",
		        res->rejected, why);
	}
out:
	if (c.repo && !res->head[0]) {
		git_oid head;

		if (c.branch_ref &&
		    git_reference_name_to_id(&head, c.repo, c.branch_ref) == 0)
			git_oid_tostr(res->head, sizeof(res->head), &head);
	}
	if (lockfd >= 0)
		close(lockfd);
	sync_ctx_dispose(&c);
	git_libgit2_shutdown();
	return r;
}
