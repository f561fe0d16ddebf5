/* SPDX-License-Identifier: MIT */
/*
 * replace.c - replace a file atomically: nothing a user wrote is ever lost
 * or seen half-written.
 *
 * The new bytes go to a hidden temp file in the same directory (hidden, so
 * no glob of sources matches it; same directory, so rename is atomic),
 * which is fsynced and renamed over the target; the directory is fsynced
 * so the rename survives a crash.
 *
 * A caller that may replace or remove a file only if it still holds known
 * bytes (sync: the committed version) passes a check.  Checking and then
 * renaming would lose a save landing in between, so the check is made
 * after the swap, on the file the swap displaced (renameat2 with
 * RENAME_EXCHANGE: the displaced file keeps a hidden name), and a refused
 * one is swapped back.  No file this did not write is ever deleted: a
 * save that lands while a refused file is put back is kept at the hidden
 * name.  A writer that keeps a file open and writes it in place after the
 * check is not seen; atomic saves (temp file, rename) always are.
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

/*
 * Create a unique, empty, hidden file beside `path`: "<dir>/.<base>.<kind>.
 * XXXXXX" (hidden, so no glob of sources matches it; beside, so renames
 * between the two are atomic).  Its name goes to *name (owned).
 * @return its fd, or -errno
 */
static int hidden_beside(const char *path, const char *kind, char **name)
{
	const char *slash = strrchr(path, '/');
	int fd;

	if (asprintf(name, "%.*s.%s.%s.XXXXXX",
		     slash ? (int)(slash - path + 1) : 0, path,
		     slash ? slash + 1 : path, kind) < 0) {
		*name = NULL;
		return -ENOMEM;
	}
	if ((fd = mkostemp(*name, O_CLOEXEC)) < 0) {
		fd = -errno;
		free(*name);
		*name = NULL;
	}
	return fd;
}

int engine__hidden_of(const char *name, char *out, size_t size)
{
	size_t n = strlen(name), suffix = strlen(".tmp.XXXXXX");

	if (n < 2 + suffix || name[0] != '.' || n - suffix >= size)
		return 0;
	if (strncmp(name + n - suffix, ".tmp.", 5) != 0 &&
	    strncmp(name + n - suffix, ".del.", 5) != 0)
		return 0;
	memcpy(out, name + 1, n - suffix - 1);
	out[n - suffix - 1] = '\0';
	return 1;
}

/* Is file `path` inode `ino` of device `dev`?  (Is it still ours?) */
static int is_inode(const char *path, dev_t dev, ino_t ino)
{
	struct stat st;

	return lstat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

/*
 * Move `tmp` to `path` if check() accepts what that displaces.
 * @return 0, -ESTALE (refused: path holds the displaced file again, or a
 *         save that landed meanwhile), -errno
 */
static int swap_in(const char *tmp, const char *path, const struct stat *ours,
		   engine__check_fn check, void *cctx)
{
	struct stat old;

	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) < 0) {
		if (errno == EINVAL) {
			/* No exchange on this filesystem: check, then rename. */
			if (!check(cctx, access(path, F_OK) == 0 ? path : NULL))
				return -ESTALE;
			return rename(tmp, path) < 0 ? -errno : 0;
		}
		if (errno != ENOENT)
			return -errno;
		if (!check(cctx, NULL))
			return -ESTALE;
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) <
		    0)
			return errno == EEXIST ? -ESTALE : -errno;
		return 0;
	}
	/* tmp names the displaced file now. */
	if (lstat(tmp, &old) < 0)
		return -errno;
	if (check(cctx, tmp)) {
		unlink(tmp);
		return 0;
	}
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) < 0)
		return -errno;
	if (!is_inode(tmp, ours->st_dev, ours->st_ino) &&
	    renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) == 0 &&
	    !is_inode(tmp, old.st_dev, old.st_ino))
		return -ESTALE; /* a third save: keep it hidden, never lost */
	/* tmp is ours, or the displaced save a newer one replaced. */
	unlink(tmp);
	return -ESTALE;
}

int engine__replace_file_if(const char *path, mode_t new_mode,
			    int (*fill)(void *ctx, int fd), void *ctx,
			    struct stat *written, engine__check_fn check,
			    void *cctx)
{
	const char *slash = strrchr(path, '/');
	char *tmp = NULL, *dirpath = NULL;
	struct stat old;
	int fd = -1, dfd, r;

	dirpath = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path))
			: strdup(".");
	if (!dirpath) {
		r = -ENOMEM;
		goto out;
	}
	if ((fd = hidden_beside(path, "tmp", &tmp)) < 0) {
		r = fd;
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
	if (check) {
		struct stat ours;

		if (fstat(fd, &ours) < 0) {
			r = -errno;
			goto out;
		}
		r = swap_in(tmp, path, &ours, check, cctx);
		/* After a swap, tmp may name a user's file: never delete it. */
		if (r < 0 && !is_inode(tmp, ours.st_dev, ours.st_ino)) {
			free(tmp);
			tmp = NULL;
		}
		if (r < 0)
			goto out;
	} else if (rename(tmp, path) < 0) {
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

int engine__replace_file(const char *path, mode_t new_mode,
			 int (*fill)(void *ctx, int fd), void *ctx,
			 struct stat *written)
{
	return engine__replace_file_if(path, new_mode, fill, ctx, written, NULL,
				       NULL);
}

int engine__remove_file_if(const char *path, engine__check_fn check,
			   void *cctx)
{
	char *tmp;
	int fd, r;

	/* A unique hidden name, which the rename then takes over. */
	if ((fd = hidden_beside(path, "del", &tmp)) < 0)
		return fd;
	close(fd);
	if (rename(path, tmp) < 0) {
		r = errno == ENOENT ? (check(cctx, NULL) ? 0 : -ESTALE) :
				      -errno;
		unlink(tmp);
	} else if (check(cctx, tmp)) {
		r = unlink(tmp) < 0 ? -errno : 0;
	} else {
		/* Put it back; if a new file took the name, keep both. */
		r = -ESTALE;
		(void)renameat2(AT_FDCWD, tmp, AT_FDCWD, path,
				RENAME_NOREPLACE);
	}
	free(tmp);
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
			       struct stat *written, engine__check_fn check,
			       void *cctx)
{
	replace_bytes b = { data, len };

	return engine__replace_file_if(path, new_mode, fill_bytes, &b, written,
				       check, cctx);
}
