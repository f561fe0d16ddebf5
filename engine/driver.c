/* SPDX-License-Identifier: MIT */
/*
 * driver.c - `crdtfs merge-driver`: the git merge driver, git calls it
 * for each conflicted host file.
 *
 * It needs no libgit2 (git hands it three paths), so it lives apart from
 * sync.c and runs without loading the git module: a `git merge` that
 * touches many host files starts crdtfs once per file.
 */
#include "engine_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_view(void *ctx, int fd)
{
	return engine_view_write(ctx, fd);
}

int engine__format_of_bytes(const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' &&
		    buf[i] != '\r')
			return buf[i] == '{' ? DESC_FORMAT_JSONL :
					       DESC_FORMAT_JSON;
	return -1;
}

/* engine__format_of_bytes() of a file: -1 when it is blank (or cannot
 * be read). */
static int format_of(const char *path)
{
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), f = -1;

	if (fd < 0)
		return -1;
	while (f < 0 && (n = read(fd, buf, sizeof(buf))) > 0)
		f = engine__format_of_bytes(buf, (size_t)n);
	close(fd);
	return f;
}

desc_format engine_merged_format(const char *ours, const char *theirs)
{
	int f = format_of(ours);

	if (f < 0)
		f = format_of(theirs);
	return f < 0 ? DESC_FORMAT_JSON : (desc_format)f;
}

int engine_merge_driver(const char *ancestor, const char *ours,
                        const char *theirs, engine_problems *probs)
{
	desc_descriptor *desc = NULL;
	engine_view *v = NULL;
	const char *paths[2] = { ours, theirs };
	size_t i;
	int r;

	(void)ancestor; /* a join needs no ancestor (see engine_git.h) */
	if ((r = desc_default(&desc)) < 0)
		return r;
	desc->format = engine_merged_format(ours, theirs);
	r = engine_merge_paths(&v, desc, paths, 2);
	if (r == 0)
		r = engine_problems_extend(probs, engine_view_problems(v));
	/* Unreadable input must fail the driver (git then keeps the
	 * conflict), not merge as if the file were empty. */
	for (i = 0; r == 0 && i < 2; i++)
		if (engine_view_source(v, i).unreadable)
			r = -EIO;
	/* The result replaces %A by rename, keeping its mode. */
	if (r == 0)
		r = engine__replace_file(ours, 0600, write_view, v, NULL);
	engine_view_unref(v);
	desc_free(desc);
	return r;
}
