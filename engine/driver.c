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
#include <stdlib.h>
#include <sys/stat.h>

static int write_view(void *ctx, int fd)
{
	return engine_view_write(ctx, fd);
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
