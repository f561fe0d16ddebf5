/* SPDX-License-Identifier: MIT */
/*
 * leftovers.c - what an interrupted sync leaves behind, swept by the next
 * one.  Part of the git module.
 *
 * A sync killed mid-way can leave its scratch directory
 * (.git/crdtfs-merge-XXXXXX: copies of blobs and merge results, nothing
 * else) and, beside a host file it was replacing, a hidden temp file
 * (.memory-x.json.tmp.XXXXXX or .del.XXXXXX, see replace.c).  The sweep
 * runs under the sync lock, so no other sync of this work tree is alive
 * and every scratch directory is a leftover.  A temp file is a leftover
 * only if older than LEFTOVER_AGE_S (crdtfs prepare writes the same names
 * without the sync lock), and it is deleted only if its bytes are a blob
 * of this repository: after a crash at the wrong moment it may hold the
 * user's own save that the sync had displaced, which must never be lost.
 * Such a file is kept and named in a warning until the user decides.
 */
#include "engine_i.h"
#include "leftovers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCRATCH_PREFIX "crdtfs-merge-"
/* Younger temp files may belong to a prepare still at work. */
#define LEFTOVER_AGE_S 60

/* Remove .git/crdtfs-merge-XXXXXX: flat, regular files only. */
static void remove_scratch(int gitfd, const char *name, const char *gitdir,
			   engine_problems *probs)
{
	int fd = openat(gitfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (de->d_type == DT_REG)
			(void)unlinkat(fd, de->d_name, 0);
	closedir(d);
	if (unlinkat(gitfd, name, AT_REMOVEDIR) < 0) {
		char *path = NULL;
		int e = errno;

		if (asprintf(&path, "%s%s", gitdir, name) >= 0)
			(void)engine_problems_add(
				probs, ENGINE_WARNING, path, 0, 0,
				"a scratch directory an interrupted sync left; "
				"cannot remove it: %s",
				strerror(e));
		free(path);
	}
}

void engine__sweep_leftovers(git_repository *repo,
			     int (*managed)(const char *name),
			     engine_problems *probs)
{
	const char *gitdir = git_repository_path(repo);
	const char *workdir = git_repository_workdir(repo);
	git_odb *odb = NULL;
	struct dirent *de;
	DIR *d;

	if ((d = opendir(gitdir))) {
		while ((de = readdir(d)))
			if (!strncmp(de->d_name, SCRATCH_PREFIX,
				     strlen(SCRATCH_PREFIX)))
				remove_scratch(dirfd(d), de->d_name, gitdir,
					       probs);
		closedir(d);
	}
	if (!workdir || !(d = opendir(workdir)))
		return;
	if (git_repository_odb(&odb, repo) < 0) {
		closedir(d);
		return;
	}
	while ((de = readdir(d))) {
		char target[NAME_MAX + 1], *path = NULL;
		struct stat st;
		git_oid id;

		if (!engine__hidden_of(de->d_name, target, sizeof(target)) ||
		    !managed(target) ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) <
			    0 ||
		    !S_ISREG(st.st_mode) ||
		    st.st_mtime > time(NULL) - LEFTOVER_AGE_S ||
		    asprintf(&path, "%s%s", workdir, de->d_name) < 0)
			continue;
		if (git_odb_hashfile(&id, path, GIT_OBJECT_BLOB) == 0 &&
		    git_odb_exists(odb, &id))
			(void)unlinkat(dirfd(d), de->d_name, 0);
		else
			(void)engine_problems_add(
				probs, ENGINE_WARNING, de->d_name, 0, 0,
				"left beside %s by an interrupted sync or "
				"prepare; it holds bytes that are in no commit "
				"here: look at it, then remove it",
				target);
		free(path);
	}
	git_odb_free(odb);
	closedir(d);
}
