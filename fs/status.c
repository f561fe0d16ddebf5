/* SPDX-License-Identifier: MIT */
/*
 * status.c - the status file `.crdtfs-status.json` at the mount root.
 *
 * A pretty JSON object describing every merged target: its name, the
 * descriptor it comes from, the current generation, entry count, size,
 * how long the last (re)materialisation took, each source with its entry
 * and problem counts, every problem found in the sources (file, line,
 * column, severity, message), and whether a real backing file of the same
 * name is shadowed.  Invalid descriptors are listed with their problems,
 * and names that look like descriptors or host files but are never read
 * (symlinks, directories) as `unread_files`.
 * With `-o sync`, what the background syncs did: when the last one
 * ended, what it did or why it failed, and its notes (a daemon's stderr
 * goes nowhere).
 *
 * Rendering refreshes every merge, so reading the status file is also a
 * way to bring the merged files up to date.  The bytes depend only on the
 * state (no clock; the last sync's end is state), so lookup, getattr and
 * open agree on the size when nothing changes in between.
 */
#include "mount_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "config.h"
#include "desc.h"

/*
 * A JSON string for arbitrary bytes: a name that is not UTF-8 (file names
 * need not be, JSON text must be) is written as `crdtfs check` writes it,
 * its bytes that are not UTF-8 as \xHH, so two such names stay apart.
 * @return a new reference, or NULL on out of memory
 */
static json_t *fs_json_str(const char *s)
{
	size_t size;
	json_t *j;
	char *copy;

	if (!s)
		return json_null();
	j = json_string(s);
	if (j)
		return j;
	size = 4 * strlen(s) + 2;
	copy = malloc(size);
	if (!copy)
		return NULL;
	engine_escape_text(copy, size, s);
	j = json_string(copy);
	free(copy);
	return j;
}

static json_t *fs_json_problem(const engine_problem *pr)
{
	return json_pack("{s:o, s:I, s:I, s:s, s:o}", "file",
	                 fs_json_str(pr->file), "line", (json_int_t)pr->line,
	                 "column", (json_int_t)pr->column, "severity",
	                 pr->severity == ENGINE_ERROR ? "error" : "warning",
	                 "message", fs_json_str(pr->message));
}

static json_t *fs_json_problems(const engine_problems *p)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < p->count; i++)
		json_array_append_new(a, fs_json_problem(&p->items[i]));
	return a;
}

/* The status object of one target (refreshing its merge). */
static json_t *fs_json_target(struct fs_ctx *ctx, struct fs_target *t)
{
	json_t *o = json_object(), *srcs, *pats;
	engine_view *v = NULL;
	struct stat st;
	size_t i;
	int r;

	if (!o)
		return NULL;
	json_object_set_new(o, "name", fs_json_str(t->name));
	json_object_set_new(o, "descriptor",
	                    fs_json_str(t->desc_file ? t->desc_file :
	                                               t->desc->origin));
	pats = json_array();
	for (i = 0; pats && i < t->desc->nsources; i++)
		json_array_append_new(pats, fs_json_str(t->desc->sources[i]));
	json_object_set_new(o, "patterns", pats);
	json_object_set_new(o, "format",
	                    json_string(t->desc->format == DESC_FORMAT_JSONL ?
	                                        "jsonl" :
	                                        "json"));
	json_object_set_new(o, "shadows_backing_file",
	                    json_boolean(fstatat(ctx->backing_fd, t->name, &st,
	                                         AT_SYMLINK_NOFOLLOW) == 0));
	r = fs_target_view(t, &v);
	if (r < 0) {
		json_object_set_new(o, "error", json_string(strerror(-r)));
		return o;
	}
	json_object_set_new(
	        o, "generation",
	        json_integer((json_int_t)engine_view_generation(v)));
	json_object_set_new(o, "entries",
	                    json_integer((json_int_t)engine_view_entries(v)));
	json_object_set_new(o, "size",
	                    json_integer((json_int_t)engine_view_size(v)));
	json_object_set_new(o, "build_seconds",
	                    json_real(engine_view_build_seconds(v)));
	srcs = json_array();
	for (i = 0; srcs && i < engine_view_nsources(v); i++) {
		engine_source_info si = engine_view_source(v, i);

		json_array_append_new(
		        srcs, json_pack("{s:o, s:I, s:I}", "file",
		                        fs_json_str(si.name), "entries",
		                        (json_int_t)si.entries, "problems",
		                        (json_int_t)si.problems));
	}
	json_object_set_new(o, "sources", srcs);
	json_object_set_new(o, "problems",
	                    fs_json_problems(engine_view_problems(v)));
	engine_view_unref(v);
	return o;
}

/* A time as RFC 3339 UTC, or null for none. */
static json_t *fs_json_time(time_t t)
{
	struct tm tm;
	char buf[32];

	if (t == 0 || !gmtime_r(&t, &tm) ||
	    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return json_null();
	return json_string(buf);
}

static json_t *fs_json_text(const char *s)
{
	return s[0] ? fs_json_str(s) : json_null();
}

/* The background sync's state (-o sync), or null when not syncing. */
static json_t *fs_json_sync(struct fs_ctx *ctx)
{
	fs_sync_snapshot snap;
	json_t *o;

	if (!ctx->syncer)
		return json_null();
	/* Out of memory: the notes are cut short, the rest holds. */
	(void)fs_syncer_snapshot(ctx->syncer, &snap);
	o = json_pack("{s:I, s:o, s:I, s:I, s:o, s:o, s:o, s:o}",
	              "every_seconds", (json_int_t)snap.seconds,
	              "remote", fs_json_str(snap.remote),
	              "runs", (json_int_t)snap.runs,
	              "failed_in_a_row", (json_int_t)snap.failed_in_a_row,
	              "last_finished", fs_json_time(snap.last_end),
	              "last_result", fs_json_text(snap.result),
	              "last_error", fs_json_text(snap.error),
	              "last_problems", fs_json_problems(&snap.problems));
	engine_problems_dispose(&snap.problems);
	return o;
}

/* Remember the rendered bytes; their mtime moves only when they change. */
static void status_stamp(struct fs_ctx *ctx, const char *buf, size_t len,
                         struct timespec *changed)
{
	pthread_mutex_lock(&ctx->slock);
	if (!ctx->status_last || ctx->status_last_len != len ||
	    memcmp(ctx->status_last, buf, len) != 0) {
		char *copy = malloc(len);

		/* Out of memory: the bytes count as changed next time too. */
		free(ctx->status_last);
		ctx->status_last = copy;
		ctx->status_last_len = len;
		if (copy)
			memcpy(copy, buf, len);
		clock_gettime(CLOCK_REALTIME, &ctx->status_mtime);
	}
	if (changed)
		*changed = ctx->status_mtime;
	pthread_mutex_unlock(&ctx->slock);
}

int fs_status_render(struct fs_ctx *ctx, char **out, size_t *len,
                     struct timespec *changed)
{
	struct fs_target **set = NULL;
	const desc_descriptor **descs;
	engine_problems unread;
	json_t *root = NULL, *targets;
	size_t n = 0, i, l;
	char *s = NULL, *buf;
	int r = -ENOMEM;

	*out = NULL;
	*len = 0;
	fs_targets_ensure(ctx);
	root = json_object();
	targets = json_array();
	if (!root || !targets) {
		json_decref(targets);
		goto out;
	}
	json_object_set_new(root, "version", json_string(CRDTFS_VERSION));
	json_object_set_new(root, "backing", fs_json_str(ctx->backing));

	pthread_rwlock_rdlock(&ctx->tlock);
	set = calloc(ctx->ntargets + 1, sizeof(*set));
	if (set) {
		n = ctx->ntargets;
		for (i = 0; i < n; i++)
			set[i] = fs_target_ref(ctx->targets[i]);
	}
	json_object_set_new(root, "descriptor_problems",
	                    fs_json_problems(&ctx->desc_problems));
	pthread_rwlock_unlock(&ctx->tlock);
	if (!set) {
		json_decref(targets);
		goto out;
	}
	for (i = 0; i < n; i++)
		json_array_append_new(targets, fs_json_target(ctx, set[i]));
	json_object_set_new(root, "targets", targets);
	engine_problems_init(&unread);
	/* Sources of the targets' descriptors: the names to look for. */
	descs = calloc(n ? n : 1, sizeof(*descs));
	for (i = 0; descs && i < n; i++)
		descs[i] = set[i]->desc;
	if (descs)
		(void)fs_unread_files(ctx->backing_fd, descs, n, &unread);
	for (i = 0; i < n; i++)
		fs_target_unref(set[i]);
	free(set);
	free(descs);
	json_object_set_new(root, "unread_files", fs_json_problems(&unread));
	engine_problems_dispose(&unread);
	json_object_set_new(root, "sync", fs_json_sync(ctx));

	s = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
	if (!s)
		goto out;
	l = strlen(s);
	buf = malloc(l + 2);
	if (!buf)
		goto out;
	memcpy(buf, s, l);
	buf[l++] = '\n';
	buf[l] = '\0';
	status_stamp(ctx, buf, l, changed);
	*out = buf;
	*len = l;
	r = 0;
out:
	free(s);
	json_decref(root);
	return r;
}
