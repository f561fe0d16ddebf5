/* SPDX-License-Identifier: MIT */
/*
 * creds.c - a node made through the mount is made as the caller would make
 * it on the backing filesystem itself.
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
 * delete it).  The call that makes the node now runs with the caller's
 * filesystem identity (fsuid, fsgid and supplementary groups, set for the
 * thread alone, as mergerfs does), so the backing filesystem decides the
 * owner, the group (a setgid directory's), set-group-ID and the caller's
 * right to make it.  Making it as root and handing it over afterwards
 * would give away whatever a racing rename put at the name in between.
 */
#include "mount_i.h"

#include <errno.h>
#include <sched.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void fs_creds_umask(void)
{
	static __thread int done;

	if (done)
		return;
	done = 1;
	/* Without a context of its own, the double umask stays. */
	if (unshare(CLONE_FS) == 0)
		umask(0);
}

int fs_creds_enter(fuse_req_t req, struct fs_creds *c)
{
	const struct fuse_ctx *who = fuse_req_ctx(req);
	gid_t groups[FS_CREDS_MAX_GROUPS];
	int n;

	fs_creds_umask();
	c->switched = 0;
	if (geteuid() != 0 || who->uid == 0)
		return 0;
	if ((c->ngroups = getgroups(FS_CREDS_MAX_GROUPS, c->groups)) < 0)
		return -errno;
	n = fuse_req_getgroups(req, FS_CREDS_MAX_GROUPS, groups);
	if (n < 0)
		n = 0; /* the caller's own group only, then */
	if (n > FS_CREDS_MAX_GROUPS)
		n = FS_CREDS_MAX_GROUPS;
	/* The system call itself: glibc's setgroups() changes every thread. */
	if (syscall(SYS_setgroups, (size_t)n, groups) < 0)
		return -errno;
	(void)setfsgid(who->gid);
	(void)setfsuid(who->uid);
	c->switched = 1;
	return 0;
}

void fs_creds_leave(const struct fs_creds *c)
{
	if (!c->switched)
		return;
	/* Back to the daemon's: setfsuid and setfsgid left euid and egid
	 * alone.  The filesystem capabilities come back with fsuid 0. */
	(void)setfsuid(geteuid());
	(void)setfsgid(getegid());
	(void)syscall(SYS_setgroups, (size_t)c->ngroups, c->groups);
}
