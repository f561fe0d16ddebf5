/* SPDX-License-Identifier: MIT */
/*
 * daemon.c - going to the background only once the mount answers.
 *
 * fuse_daemonize() lets the parent exit 0 as soon as the child is forked:
 * before the kernel's INIT has been answered and before the daemon's
 * threads have started, with the child's stderr already on /dev/null.  A
 * mount that libfuse refused at INIT, or a thread that could not start
 * (inotify instances used up), left the user with exit status 0, no mount
 * and no reason.
 *
 * Here the parent waits.  The child keeps the terminal's stdio until a
 * thread of its own has seen the new mount answer a request (the kernel
 * holds every request until INIT is done, and fails them all when INIT
 * was refused); then it lets go of the terminal and tells the parent,
 * which exits 0.  If the child ends first, the parent exits with the
 * child's status, after the child has said why on the terminal.
 */
#include "mount_i.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

void fs_daemon_prepare(struct fs_daemon *d, const char *mountpoint)
{
	struct stat st;

	memset(d, 0, sizeof(*d));
	d->ready_fd = -1;
	d->mountpoint = realpath(mountpoint, NULL);
	if (d->mountpoint && stat(d->mountpoint, &st) == 0)
		d->dev_before = st.st_dev;
}

/* The parent: wait for the child's word, then exit with it. */
static _Noreturn void parent_wait(pid_t child, int ready_fd)
{
	char ok = 1;
	ssize_t n;
	int status;

	do
		n = read(ready_fd, &ok, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1 && ok == 0)
		_exit(FS_EXIT_OK);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (n == 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0)
		_exit(WEXITSTATUS(status));
	_exit(FS_EXIT_FAIL);
}

int fs_daemon_fork(struct fs_daemon *d, struct fuse_session *se)
{
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		fprintf(stderr, "crdtfs: pipe: %s\n", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "crdtfs: fork: %s\n", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid > 0) {
		/* Its /dev/fuse copy would keep a dead child's mount
		 * connected, and the child's probe waiting on it. */
		close(fuse_session_fd(se));
		close(fds[1]);
		parent_wait(pid, fds[0]);
	}
	close(fds[0]);
	d->ready_fd = fds[1];
	if (setsid() < 0)
		fprintf(stderr, "crdtfs: setsid: %s\n", strerror(errno));
	if (chdir("/") < 0)
		fprintf(stderr, "crdtfs: chdir /: %s\n", strerror(errno));
	return 0;
}

/* Stdio to /dev/null, as a daemon's. */
static void leave_terminal(void)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0)
		return;
	fflush(stdout);
	fflush(stderr);
	dup2(null, STDIN_FILENO);
	dup2(null, STDOUT_FILENO);
	dup2(null, STDERR_FILENO);
	if (null > STDERR_FILENO)
		close(null);
}

/*
 * Does the mount answer?  An O_PATH descriptor of the mountpoint is on the
 * new mount if its device changed; fstatfs() then sends a STATFS, which
 * the kernel holds until INIT is answered (a cheap request: it merges
 * nothing, so mounting stays lazy).
 */
static int mount_answers(const struct fs_daemon *d)
{
	struct stat st;
	struct statfs sf;
	int fd, r = 0;

	if (!d->mountpoint)
		return -ENOENT;
	fd = open(d->mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || fstatfs(fd, &sf) < 0)
		r = -errno;
	else if (st.st_dev == d->dev_before)
		r = -ENOTCONN; /* the mount is already gone */
	close(fd);
	return r;
}

static void *probe_main(void *arg)
{
	struct fs_daemon *d = arg;
	int r = mount_answers(d);
	char word = r == 0 ? 0 : 1;

	if (r < 0)
		fprintf(stderr, "crdtfs: %s: the mount did not start: %s\n",
		        d->mountpoint ? d->mountpoint : "MOUNTPOINT",
		        strerror(-r));
	else
		leave_terminal();
	while (write(d->ready_fd, &word, 1) < 0 && errno == EINTR)
		;
	close(d->ready_fd);
	d->ready_fd = -1;
	/* Refused at INIT, the loop ends by itself; otherwise end it. */
	if (r < 0 && r != -ECONNREFUSED && r != -ENOTCONN)
		kill(getpid(), SIGTERM);
	return NULL;
}

int fs_daemon_probe_start(struct fs_daemon *d)
{
	sigset_t set, old;
	int r;

	if (d->ready_fd < 0)
		return 0; /* foreground: nobody waits */
	/* Signals are for the loop's threads, not this one. */
	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	r = -pthread_create(&d->probe, NULL, probe_main, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0)
		d->probing = 1;
	return r;
}

void fs_daemon_finish(struct fs_daemon *d)
{
	if (d->probing)
		pthread_join(d->probe, NULL);
	d->probing = 0;
	if (d->ready_fd >= 0)
		close(d->ready_fd);
	d->ready_fd = -1;
	free(d->mountpoint);
	d->mountpoint = NULL;
}
