/* SPDX-License-Identifier: MIT */
/*
 * replace.c - replace a file atomically: nothing a user wrote is ever lost
 * or seen half-written.
 *
 * The new bytes go to a hidden temp file in the same directory (hidden, so
 * no glob of sources matches it; same directory, so rename is atomic),
 * which is fsynced and renamed over the target; the directory is fsynced
 * so the rename survives a crash.
 */
#include "engine_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int engine__write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int engine__replace_file(const char *path, mode_t mode,
			 int (*fill)(void *ctx, int fd), void *ctx)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	int dirlen = slash ? (int)(slash - path) : 1;
	const char *dir = slash ? path : ".";
	char *tmp = NULL, *dirpath = NULL;
	int fd = -1, dfd, r;

	if (slash == path) /* a file in / */
		dirlen = 1;
	if (asprintf(&dirpath, "%.*s", dirlen, dir) < 0 ||
	    asprintf(&tmp, "%s/.%s.tmp.XXXXXX", dirpath, base) < 0) {
		tmp = NULL;
		r = -ENOMEM;
		goto out;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		r = -errno;
		free(tmp);
		tmp = NULL;
		goto out;
	}
	if (fchmod(fd, mode & 07777) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = fill(ctx, fd)) < 0)
		goto out;
	if (fsync(fd) < 0) {
		r = -errno;
		goto out;
	}
	r = close(fd) < 0 ? -errno : 0;
	fd = -1;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		goto out;
	free(tmp);
	tmp = NULL;
	if ((dfd = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(dirpath);
	return r;
}
