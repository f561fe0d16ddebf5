/* SPDX-License-Identifier: MIT */
/*
 * creds.c - a node made through the mount gets the mode and the owner it
 * would get if the caller made it on the backing filesystem itself.
 *
 * Mode: the kernel applied the caller's umask before the request reached
 * the daemon (crdtfs does not ask for FUSE_CAP_DONT_MASK), so the daemon's
 * own umask must not apply a second time (with umask 002, files came out
 * 0644 instead of 0664).  A request thread gets a filesystem context of
 * its own, unshare(CLONE_FS) as Samba does for per-thread working
 * directories, with umask 0.  The process umask stays as it was for the
 * threads started before the loop: the syncer lets libgit2 create files.
 *
 * Owner: a daemon running as root serves other users only with
 * allow_other, and what they made belonged to root (they could not even
 * delete it).  It is handed to them: to the group of a setgid directory,
 * else to their own group.
 */
#include "mount_i.h"

#include <errno.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

void fs_creds_thread_init(void)
{
	static __thread int done;

	if (done)
		return;
	done = 1;
	/* Without a context of its own, the double umask stays. */
	if (unshare(CLONE_FS) == 0)
		umask(0);
}

int fs_creds_own(fuse_req_t req, int dirfd, const char *name, int fd)
{
	const struct fuse_ctx *who = fuse_req_ctx(req);
	struct stat dir, st;
	gid_t gid;
	int r;

	if (geteuid() != 0 || who->uid == 0)
		return 0;
	if (fstat(dirfd, &dir) < 0)
		return -errno;
	gid = (dir.st_mode & S_ISGID) ? (gid_t)-1 : who->gid;
	r = fd >= 0 ? fstat(fd, &st) :
		      fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return -errno;
	r = fd >= 0 ? fchown(fd, who->uid, gid) :
		      fchownat(dirfd, name, who->uid, gid, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return -errno;
	/*
	 * chown drops set-user-ID (and set-group-ID) from a file; the caller
	 * may keep set-user-ID on a file of its own, and set-group-ID for its
	 * own group.
	 */
	if (S_ISREG(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID))) {
		mode_t mode = st.st_mode & 07777;

		if (gid != who->gid)
			mode &= ~S_ISGID;
		r = fd >= 0 ? fchmod(fd, mode) : fchmodat(dirfd, name, mode, 0);
		if (r < 0)
			return -errno;
	}
	return 0;
}
