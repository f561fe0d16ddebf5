/* SPDX-License-Identifier: MIT */
/*
 * stop.c - ending the mount on SIGTERM, SIGINT or SIGHUP without a hang.
 *
 * libfuse's handlers end the request loop at once.  But a notification in
 * flight can be waiting in the kernel for a request only the loop answers:
 * invalidating a host file's pages waits for the page locks a write
 * through the mount holds until its WRITE is answered.  With the loop gone
 * that write is never answered, the notifier thread never returns, and the
 * daemon can neither finish nor die (the thread sleeps uninterruptibly
 * while it holds /dev/fuse open), leaving writers stuck in D state.
 *
 * So the stop comes in two steps.  The signal only wakes a stopper thread,
 * which stops the notifier, watcher and syncer while the loop still
 * answers every request; then it signals the loop's thread again, and
 * only that second signal ends the loop.
 */
#include "mount_i.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static int stop_fd = -1;                 /* eventfd: a signal, or quit */
static struct fuse_session *stop_se;
static pthread_t stop_loop_thread, stop_thread;
static volatile sig_atomic_t stop_loop_now; /* step two: end the loop */
static int stop_running, stop_quit;

static void stop_on_signal(int sig)
{
	uint64_t one = 1;
	int saved = errno;

	(void)sig;
	if (stop_loop_now)
		fuse_session_exit(stop_se);
	else if (write(stop_fd, &one, sizeof(one)) < 0)
		fuse_session_exit(stop_se); /* cannot happen; never hang */
	errno = saved;
}

static void *stopper_main(void *arg)
{
	struct fs_ctx *ctx = arg;
	uint64_t n;

	while (read(stop_fd, &n, sizeof(n)) < 0 && errno == EINTR)
		;
	if (__atomic_load_n(&stop_quit, __ATOMIC_ACQUIRE))
		return NULL; /* the loop ended by itself (unmounted) */
	fs_watch_stop(ctx);
	fs_syncer_halt(ctx->syncer); /* freed by the loop's thread, later */
	stop_loop_now = 1;
	pthread_kill(stop_loop_thread, SIGTERM);
	return NULL;
}

static int stop_handle(int sig, void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

int fs_stop_start(struct fs_ctx *ctx, struct fuse_session *se)
{
	sigset_t set, old;
	int r;

	stop_fd = eventfd(0, EFD_CLOEXEC);
	if (stop_fd < 0)
		return -errno;
	stop_se = se;
	stop_loop_thread = pthread_self();
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	r = -pthread_create(&stop_thread, NULL, stopper_main, ctx);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return r;
	stop_running = 1;
	if (stop_handle(SIGINT, stop_on_signal) < 0 ||
	    stop_handle(SIGTERM, stop_on_signal) < 0 ||
	    stop_handle(SIGHUP, stop_on_signal) < 0)
		return -errno;
	return 0;
}

void fs_stop_finish(void)
{
	uint64_t one = 1;

	if (stop_running) {
		/* A signal from now on ends nothing: the loop is over. */
		stop_loop_now = 1;
		__atomic_store_n(&stop_quit, 1, __ATOMIC_RELEASE);
		if (write(stop_fd, &one, sizeof(one)) < 0)
			pthread_cancel(stop_thread);
		pthread_join(stop_thread, NULL);
		stop_running = 0;
	}
	if (stop_fd >= 0) {
		stop_handle(SIGINT, SIG_DFL);
		stop_handle(SIGTERM, SIG_DFL);
		stop_handle(SIGHUP, SIG_DFL);
		close(stop_fd);
		stop_fd = -1;
	}
}
