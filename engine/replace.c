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

int engine__replace_file(const char *path, mode_t new_mode,
			 int (*fill)(void *ctx, int fd), void *ctx,
			 struct stat *written)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	char *tmp = NULL, *dirpath = NULL;
	struct stat old;
	int fd = -1, dfd, r;

	dirpath = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path))
			: strdup(".");
	if (!dirpath || asprintf(&tmp, "%s/.%s.tmp.XXXXXX", dirpath, base) < 0) {
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
	/* A replaced file keeps its mode (a 0600 host file stays private). */
	if (stat(path, &old) == 0)
		new_mode = old.st_mode;
	if (fchmod(fd, new_mode & 07777) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = fill(ctx, fd)) < 0)
		goto out;
	if (fsync(fd) < 0) {
		r = -errno;
		goto out;
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto out;
	}
	free(tmp);
	tmp = NULL;
	/* After the rename, which changes the ctime git's index records. */
	if (written && fstat(fd, written) < 0)
		r = -errno;
	if ((dfd = open(dirpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
out:
	/* Open until now for the fstat; fsync already reported any error. */
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	free(dirpath);
	return r;
}

typedef struct {
	const char *data;
	size_t len;
} replace_bytes;

static int fill_bytes(void *ctx, int fd)
{
	const replace_bytes *b = ctx;

	return engine__write_all(fd, b->data, b->len);
}

int engine__replace_file_bytes(const char *path, mode_t new_mode,
			       const char *data, size_t len,
			       struct stat *written)
{
	replace_bytes b = { data, len };

	return engine__replace_file(path, new_mode, fill_bytes, &b, written);
}
