/* SPDX-License-Identifier: MIT */
/*
 * cmd_merge.c - `crdtfs merge` (the merged bytes on standard output, the
 * same bytes the mount serves) and `crdtfs check` (every problem of every
 * host file and descriptor, as file:line:column: message).
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "uthash.h"

#include "engine.h"

static const char merge_usage[] =
	"usage: crdtfs merge [--descriptor FILE | --target NAME] [--strict] BACKING\n"
	"Write the merged file to standard output; problems go to standard error.\n"
	"  --descriptor FILE  merge by this descriptor (a path)\n"
	"  --target NAME      merge the target NAME (default unified-memory.json),\n"
	"                     described by BACKING/NAME.merge.json or built in\n"
	"  --strict           fail, writing nothing, if any input has a problem\n";

static const char check_usage[] =
	"usage: crdtfs check BACKING\n"
	"Validate every host file and merge descriptor in BACKING; print each\n"
	"problem as file:line:column: message; exit 1 if there is any.\n";

static void print_desc_error(FILE *to, const desc_error *e)
{
	if (e->line > 0)
		fprintf(to, "%s:%d:%d: error: %s\n", e->source, e->line,
			e->column, e->text);
	else
		fprintf(to, "%s: error: %s\n", e->source, e->text);
}

/*
 * The descriptor of target `name` in the backing directory: its
 * `<name>.merge.json`, or the built-in default for unified-memory.json.
 * Prints the reason on failure.
 */
static int load_target(desc_descriptor **out, int backing_fd,
		       const char *backing, const char *name)
{
	desc_error err = { .line = 0 };
	char *rel = NULL;
	int rc;

	if (asprintf(&rel, "%s%s", name, DESC_SUFFIX) < 0)
		return -ENOMEM;
	rc = desc_load(out, backing_fd, rel, &err);
	if (rc == -ENOENT && strcmp(name, DESC_DEFAULT_TARGET) == 0)
		rc = desc_default(out);
	else if (rc == -ENOENT)
		fprintf(stderr,
			"crdtfs merge: no target %s: %s/%s does not exist\n",
			name, backing, rel);
	else if (rc < 0)
		print_desc_error(stderr, &err);
	free(rel);
	return rc;
}

static int open_backing(const char *cmd, const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		fprintf(stderr, "crdtfs %s: cannot open backing directory %s: %s\n",
			cmd, path, strerror(errno));
	return fd;
}

static void print_problems(FILE *to, const engine_problems *p)
{
	char line[1024];
	size_t i;

	for (i = 0; i < p->count; i++) {
		engine_problem_format(&p->items[i], line, sizeof(line));
		fprintf(to, "%s\n", line);
	}
}

/* Refreshes of a merge whose host files keep changing while read. */
#define MERGE_SETTLE_TRIES 3

/*
 * A merge of `desc` and a view of it in which every host file still holds
 * the bytes it was scanned from.  A file rewritten while each of its scans
 * ran leaves a view that is not intact: its entries and problems describe
 * no state of the file, so it is built again, a few times, and otherwise
 * refused with -EAGAIN.
 * @return 0, -EAGAIN, or -errno
 */
static int merge_settled(const desc_descriptor *desc, int backing_fd,
			 engine_merge **merge, engine_view **view)
{
	int rc, tries;

	*view = NULL;
	if ((rc = engine_merge_new(merge, desc, backing_fd)) < 0)
		return rc;
	for (tries = 0; tries < MERGE_SETTLE_TRIES; tries++) {
		if ((rc = engine_merge_refresh(*merge, view)) < 0)
			return rc;
		if (engine_view_intact(*view))
			return 0;
		engine_view_unref(*view);
		*view = NULL;
	}
	return -EAGAIN;
}

/* The reason a merge failed, for a message. */
static const char *merge_error(int rc)
{
	if (rc == -EMFILE)
		return "Too many open files (a merge keeps one file open per "
		       "source; raise the open-file limit, ulimit -n)";
	if (rc == -EAGAIN)
		return "a host file kept changing while it was read; run again";
	return strerror(-rc);
}

int fs_cmd_merge(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "descriptor", required_argument, NULL, 'd' },
		{ "target", required_argument, NULL, 't' },
		{ "strict", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *descriptor = NULL, *target = NULL, *backing;
	desc_descriptor *desc = NULL;
	engine_merge *merge = NULL;
	engine_view *view = NULL;
	desc_error err = { .line = 0 };
	int strict = 0, backing_fd = -1, status = FS_EXIT_FAIL, c, rc;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			descriptor = optarg;
			break;
		case 't':
			target = optarg;
			break;
		case 's':
			strict = 1;
			break;
		case 'h':
			fputs(merge_usage, stdout);
			return FS_EXIT_OK;
		default:
			return fs_option_error("merge", c, argv, optind);
		}
	}
	if (descriptor && target)
		return fs_usage_error("merge", "--descriptor and --target exclude each other");
	/* Its descriptor is BACKING/NAME.merge.json, never a file elsewhere. */
	if (target && (!*target || strchr(target, '/') ||
		       strcmp(target, ".") == 0 || strcmp(target, "..") == 0))
		return fs_usage_error("merge", "--target NAME: a merged file's name, not a path");
	if (optind != argc - 1)
		return fs_usage_error("merge", optind == argc ? "missing BACKING" : "too many arguments");
	backing = argv[optind];

	if ((backing_fd = open_backing("merge", backing)) < 0)
		goto out;
	if (descriptor) {
		rc = desc_load_given(&desc, descriptor, &err);
		if (rc == -ENOENT)
			fprintf(stderr, "crdtfs merge: %s: no such descriptor\n",
				descriptor);
		else if (rc < 0)
			print_desc_error(stderr, &err);
	} else {
		rc = load_target(&desc, backing_fd, backing,
				 target ? target : DESC_DEFAULT_TARGET);
	}
	if (rc < 0)
		goto out;
	if ((rc = merge_settled(desc, backing_fd, &merge, &view)) < 0) {
		fprintf(stderr, "crdtfs merge: %s: %s\n", backing,
			merge_error(rc));
		goto out;
	}
	print_problems(stderr, engine_view_problems(view));
	if (strict && engine_view_problems(view)->count) {
		size_t total = engine_problems_total(engine_view_problems(view));

		fprintf(stderr, "crdtfs merge: %zu problem%s; --strict: nothing "
			"written\n", total, total == 1 ? "" : "s");
		goto out;
	}
	if ((rc = engine_view_write(view, STDOUT_FILENO)) < 0) {
		fprintf(stderr, "crdtfs merge: writing the merged file: %s\n",
			rc == -EIO ? "a host file changed while it was read; run again" : strerror(-rc));
		goto out;
	}
	status = FS_EXIT_OK;
out:
	engine_view_unref(view);
	engine_merge_free(merge);
	desc_free(desc);
	if (backing_fd >= 0)
		close(backing_fd);
	return status;
}

/* Lines already printed by check, so a file two targets read is listed once. */
typedef struct {
	UT_hash_handle hh;
	char line[]; /* the key */
} seen_line;

static int print_once(seen_line **seen, const char *line)
{
	seen_line *s;
	size_t n = strlen(line);

	HASH_FIND(hh, *seen, line, n, s);
	if (s)
		return 0;
	s = malloc(sizeof(*s) + n + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s->line, line, n + 1);
	HASH_ADD(hh, *seen, line, n, s);
	printf("%s\n", line);
	return 1;
}

/*
 * A real file or directory named like a target: the mount shows the
 * merged file in its place (a host file named so, say memory-x.json,
 * then reads as merged through the mount, and prepare through the mount
 * takes the merged bytes for its host file).
 */
static size_t check_shadowed(seen_line **seen, const desc_descriptor *desc,
			     int backing_fd)
{
	char line[1024];
	struct stat st;

	if (fstatat(backing_fd, desc->target, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	snprintf(line, sizeof(line),
		 "%s: warning: a merged file of this name hides this %s in "
		 "the mount", desc->target,
		 S_ISDIR(st.st_mode) ? "directory" : "file");
	return print_once(seen, line) > 0;
}

/*
 * Merge one target and print its problems; returns how many problems the
 * lines printed stand for ("... and N more" counts N).
 */
static size_t check_target(seen_line **seen, const desc_descriptor *desc,
			   int backing_fd, const char *backing, int on_mount,
			   size_t *entries)
{
	engine_merge *merge = NULL;
	engine_view *view = NULL;
	const engine_problems *p;
	char line[1024];
	size_t count = 0, i;
	int rc;

	if ((rc = merge_settled(desc, backing_fd, &merge, &view)) < 0) {
		snprintf(line, sizeof(line), "%s: error: cannot merge %s: %s",
			 backing, desc->target, merge_error(rc));
		count += print_once(seen, line) > 0;
		goto out;
	}
	p = engine_view_problems(view);
	for (i = 0; i < p->count; i++) {
		engine_problem_format(&p->items[i], line, sizeof(line));
		if (print_once(seen, line) > 0)
			count += p->items[i].stands_for;
	}
	for (i = 0; i < engine_view_nsources(view); i++)
		*entries += engine_view_source(view, i).entries;
	/* On a mount the name is the merged file itself. */
	if (!on_mount)
		count += check_shadowed(seen, desc, backing_fd);
out:
	engine_view_unref(view);
	engine_merge_free(merge);
	return count;
}

/* Names that look like descriptors or sources but are never read. */
static size_t check_unread_files(seen_line **seen, int backing_fd,
				 const desc_descriptor *const *descs,
				 size_t ndescs)
{
	engine_problems unread;
	char line[1024];
	size_t count = 0, i;

	engine_problems_init(&unread);
	(void)fs_unread_files(backing_fd, descs, ndescs, &unread);
	for (i = 0; i < unread.count; i++) {
		engine_problem_format(&unread.items[i], line, sizeof(line));
		count += print_once(seen, line) > 0;
	}
	engine_problems_dispose(&unread);
	return count;
}

int fs_cmd_check(int argc, char **argv)
{
	seen_line *seen = NULL, *s, *tmp;
	char **names = NULL;
	desc_descriptor **descs = NULL; /* every valid one, default included */
	size_t problems = 0, entries = 0, targets = 0, i;
	int backing_fd, has_default_override = 0, on_mount, n;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "-h") == 0)) {
		fputs(check_usage, stdout);
		return FS_EXIT_OK;
	}
	if (argc == 3 && strcmp(argv[1], "--") == 0) { /* as merge takes it */
		argv++;
		argc--;
	} else if (argc >= 2 && argv[1][0] == '-' && argv[1][1]) {
		char reason[128];

		snprintf(reason, sizeof(reason), "%s: unknown option", argv[1]);
		return fs_usage_error("check", reason);
	}
	if (argc != 2)
		return fs_usage_error("check", argc < 2 ? "missing BACKING" : "expected exactly one argument, BACKING");
	if ((backing_fd = open_backing("check", argv[1])) < 0)
		return FS_EXIT_FAIL;
	on_mount = fs_is_crdtfs_mount(argv[1]);

	n = desc_list(&names, backing_fd);
	if (n < 0) {
		fprintf(stderr, "crdtfs check: %s: %s\n", argv[1],
			strerror(-n));
		close(backing_fd);
		return FS_EXIT_FAIL;
	}
	/* Room for each descriptor and the default. */
	if (!(descs = calloc((size_t)n + 1, sizeof(*descs)))) {
		fprintf(stderr, "crdtfs check: %s\n", strerror(ENOMEM));
		desc_names_free(names);
		close(backing_fd);
		return FS_EXIT_FAIL;
	}
	for (i = 0; i < (size_t)n; i++) {
		desc_descriptor *desc = NULL;
		desc_error err = { .line = 0 };

		/* Even an invalid override hides the default, as in the
		 * mount and in merge, which refuse it. */
		if (strcmp(names[i], DESC_DEFAULT_TARGET DESC_SUFFIX) == 0)
			has_default_override = 1;
		if (desc_load(&desc, backing_fd, names[i], &err) < 0) {
			char line[1024];

			if (err.line > 0)
				snprintf(line, sizeof(line), "%s:%d:%d: error: %s",
					 err.source, err.line, err.column,
					 err.text);
			else
				snprintf(line, sizeof(line), "%s: error: %s",
					 err.source, err.text);
			problems += print_once(&seen, line) > 0;
			continue;
		}
		problems += check_target(&seen, desc, backing_fd, argv[1],
					 on_mount, &entries);
		descs[targets++] = desc;
	}
	if (!has_default_override) {
		desc_descriptor *desc = NULL;

		if (desc_default(&desc) == 0) {
			problems += check_target(&seen, desc, backing_fd,
						 argv[1], on_mount, &entries);
			descs[targets++] = desc;
		}
	}
	problems += check_unread_files(&seen, backing_fd,
				       (const desc_descriptor *const *)descs,
				       targets);
	for (i = 0; i < targets; i++)
		desc_free(descs[i]);
	free(descs);
	desc_names_free(names);
	close(backing_fd);
	HASH_ITER(hh, seen, s, tmp) {
		HASH_DEL(seen, s);
		free(s);
	}
	fflush(stdout);
	fprintf(stderr, "crdtfs check: %zu target%s, %zu %s scanned, %zu "
		"problem%s\n", targets, targets == 1 ? "" : "s", entries,
		entries == 1 ? "entry" : "entries", problems,
		problems == 1 ? "" : "s");
	return problems ? FS_EXIT_FAIL : FS_EXIT_OK;
}
