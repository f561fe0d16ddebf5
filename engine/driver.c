/* SPDX-License-Identifier: MIT */
/*
 * driver.c - `crdtfs merge-driver`: the git merge driver, git calls it
 * for each conflicted host file.
 *
 * It needs no libgit2 (git hands it three paths), so it lives apart from
 * sync.c and runs without loading the git module: a `git merge` that
 * touches many host files starts crdtfs once per file.
 */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int engine_merge_driver(const char *ancestor, const char *ours,
                        const char *theirs, engine_problems *probs)
{
	desc_descriptor *desc = NULL;
	engine_view *v = NULL;
	const char *paths[2] = { ours, theirs };
	const engine_problems *vp;
	char *tmp = NULL, *dir = NULL, *slash;
	struct stat st;
	int fd = -1, r;

	(void)ancestor; /* a join needs no ancestor (see engine_git.h) */
	for (fd = 0; fd < 2; fd++) {
		/* Unreadable input must fail the driver (git then keeps the
		 * conflict), not merge as if the file were empty. */
		int t = open(paths[fd], O_RDONLY | O_CLOEXEC);

		if (t < 0) {
			r = -errno;
			(void)engine_problems_add(probs, ENGINE_ERROR,
			                          paths[fd], 0, 0,
			                          "cannot read: %s",
			                          strerror(-r));
			return r;
		}
		close(t);
	}
	fd = -1;
	if ((r = desc_default(&desc)) < 0)
		return r;
	r = engine_merge_paths(&v, desc, paths, 2);
	if (r < 0)
		goto out;
	vp = engine_view_problems(v);
	if ((r = engine_problems_extend(probs, vp)) < 0)
		goto out;
	/* The result replaces %A by rename, in its own directory. */
	dir = strdup(ours);
	if (!dir) {
		r = -ENOMEM;
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash)
		slash[1] = '\0';
	else
		dir[0] = '\0';
	if (asprintf(&tmp, "%s.crdtfs-merge.XXXXXX", dir) < 0) {
		tmp = NULL;
		r = -ENOMEM;
		goto out;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		free(tmp);
		tmp = NULL;
		goto out;
	}
	if (stat(ours, &st) == 0)
		(void)fchmod(fd, st.st_mode & 07777);
	if ((r = engine_view_write(v, fd)) < 0)
		goto out;
	if (fsync(fd) < 0 || close(fd) < 0) {
		fd = -1;
		r = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, ours) < 0) {
		r = -errno;
		goto out;
	}
	free(tmp);
	tmp = NULL;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(dir);
	engine_view_unref(v);
	desc_free(desc);
	return r;
}
