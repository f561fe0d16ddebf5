/* SPDX-License-Identifier: MIT */
/*
 * xattr.c - extended attributes of backing files and directories, passed
 * through as passthrough_ll.c does: by the /proc/self/fd path of the
 * inode's O_PATH fd, which getxattr(2) and friends follow to the file.
 *
 * Only with `-o xattr`.  Once a filesystem answers getxattr, the kernel
 * asks it for security.capability before every write(2) (to drop file
 * capabilities on a write): 100-byte appends through the mount took 72-77
 * us instead of 23-35.  Without the option every call gets ENOSYS, which
 * the kernel takes as "no xattrs here" for good (EOPNOTSUPP to callers;
 * `cp -a` then copies without them, as onto any such filesystem).
 *
 * The kernel has already checked the caller's right to each call
 * (default_permissions, CAP_SYS_ADMIN for trusted.*).
 *
 * A symlink has no race-free path to its own attributes (the /proc path
 * would follow it), so it has none here: ENOTSUP, which copying tools
 * take quietly.  The merged and status files have none and take none.
 */
#include "mount_i.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>

/*
 * The path to reach the attributes of `in` by, in buf.
 * @return 0, or a positive errno to reply
 */
static int xattr_path(fuse_req_t req, const struct fs_inode *in, char *buf,
                      size_t size)
{
	struct stat st;

	if (!fs_ctx_of(req)->xattr)
		return ENOSYS;
	if (in->kind != FS_KIND_BACKING)
		return ENOTSUP;
	if (fstat(in->fd, &st) < 0)
		return errno;
	if (S_ISLNK(st.st_mode))
		return ENOTSUP;
	snprintf(buf, size, "/proc/self/fd/%d", in->fd);
	return 0;
}

/* Answer a get or list that produced n bytes (or -1) into buf. */
static void xattr_reply(fuse_req_t req, size_t size, ssize_t n,
                        const char *buf)
{
	if (n < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                 size_t size)
{
	struct fs_inode *in = fs_inode_of(req, ino);
	char path[64], *buf = NULL;
	int err = xattr_path(req, in, path, sizeof(path));

	if (err) {
		fuse_reply_err(req, err == ENOTSUP && in->kind != FS_KIND_BACKING ?
		                            ENODATA :
		                            err);
		return;
	}
	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	xattr_reply(req, size, getxattr(path, name, buf, size), buf);
	free(buf);
}

void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_inode *in = fs_inode_of(req, ino);
	char path[64], *buf = NULL;
	int err = xattr_path(req, in, path, sizeof(path));

	if (err) {
		if (err == ENOTSUP && in->kind != FS_KIND_BACKING)
			xattr_reply(req, size, 0, NULL); /* none */
		else
			fuse_reply_err(req, err);
		return;
	}
	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	xattr_reply(req, size, listxattr(path, buf, size), buf);
	free(buf);
}

void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                 const char *value, size_t size, int flags)
{
	char path[64];
	int err = xattr_path(req, fs_inode_of(req, ino), path, sizeof(path));

	if (!err && setxattr(path, name, value, size, flags) < 0)
		err = errno;
	fuse_reply_err(req, err);
}

void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	char path[64];
	int err = xattr_path(req, fs_inode_of(req, ino), path, sizeof(path));

	if (!err && removexattr(path, name) < 0)
		err = errno;
	fuse_reply_err(req, err);
}
