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
 * child's status, after the child has said why on the terminal.  A
 * signal to the waiting parent (Ctrl-C, timeout, mount -a giving up) is
 * passed on to the child, which stops as it would later.
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

	d->mountpoint = realpath(mountpoint, NULL);
	if (d->mountpoint && stat(d->mountpoint, &st) == 0)
		d->dev_before = st.st_dev;
}

static pid_t waited_child;
static volatile sig_atomic_t passed_on; /* the last signal passed on */

static void pass_on(int sig)
{
	int saved = errno;

	passed_on = sig;
	kill(waited_child, sig);
	errno = saved;
}

/*
 * The parent: exit 0 on the child's word that the mount answers, else
 * (the child closed the pipe without it) with the child's status: 0 when
 * the mount ended cleanly (unmounted at once), 128 + the signal when that
 * was because a signal was passed on.
 */
static _Noreturn void parent_wait(pid_t child, int ready_fd)
{
	struct sigaction sa;
	char word;
	ssize_t n;
	int status;

	waited_child = child;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pass_on;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	do
		n = read(ready_fd, &word, 1);
	while (n < 0 && errno == EINTR);
	/* A signal passed on stops the daemon even if it answered since. */
	if (n == 1 && !passed_on)
		_exit(FS_EXIT_OK);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	/* Stopped cleanly because we were told to: as if killed by it. */
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && passed_on)
		_exit(128 + passed_on);
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	fprintf(stderr, "crdtfs: the daemon was killed by signal %d (%s)\n",
	        WTERMSIG(status), strsignal(WTERMSIG(status)));
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

/* Errors that say no daemon answers on the connection. */
static int connection_error(int e)
{
	return e == ENOTCONN || e == ECONNREFUSED || e == ECONNABORTED ||
	       e == ENODEV;
}

/*
 * Does the mount answer?  An O_PATH descriptor of the mountpoint is on the
 * new mount if its device changed; fstat() and fstatfs() then send
 * requests, which the kernel holds until INIT is answered and fails with
 * a connection error when INIT was refused (cheap requests: they merge
 * nothing, so mounting stays lazy).  Any other answer, an error included,
 * came from this daemon.  What cannot be told (the mountpoint will not
 * open) counts as answering: a mount that works is never given up.
 * @return 1 it answers; 0 it does not, with *why the connection error, or
 *         0 when the mount is gone already (the loop's end tells why)
 */
static int mount_answers(const struct fs_daemon *d, int *why)
{
	struct stat st;
	struct statfs sf;
	int fd, r = 1;

	*why = 0;
	if (!d->mountpoint ||
	    (fd = open(d->mountpoint, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return 1;
	if (fstat(fd, &st) < 0 || fstatfs(fd, &sf) < 0) {
		if (connection_error(errno)) {
			*why = errno;
			r = 0;
		}
	} else if (st.st_dev == d->dev_before) {
		r = 0;
	}
	close(fd);
	return r;
}

static void *probe_main(void *arg)
{
	struct fs_daemon *d = arg;
	char word = 0;
	int why, answers = mount_answers(d, &why);

	if (why)
		fprintf(stderr, "crdtfs: %s: the mount did not start: %s\n",
		        d->mountpoint, strerror(why));
	if (answers) {
		leave_terminal();
		while (write(d->ready_fd, &word, 1) < 0 && errno == EINTR)
			;
	}
	/* Without the word, the parent waits for this process's status:
	 * refused at INIT or unmounted, the loop ends by itself. */
	close(d->ready_fd);
	d->ready_fd = -1;
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
