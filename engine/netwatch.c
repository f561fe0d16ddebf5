/* SPDX-License-Identifier: MIT */
/*
 * netwatch.c - interrupt network I/O that stalls or is no longer wanted.
 *
 * libgit2 1.5 has no network timeout: a server that accepts a connection
 * and never answers (a hung daemon, a half-open VPN path) keeps a sync in
 * recv() forever, and a mount's unmount waits for that sync.  A watchdog
 * thread therefore signals the syncing thread (SIGURG, whose handler does
 * nothing and is installed without SA_RESTART) until it stops the watch:
 * the blocking connect/recv/send returns EINTR, which libgit2 reports as
 * an error.  Disk I/O is not interrupted by signals, so only the network
 * calls fail.  Progress callbacks call engine__netwatch_alive(), so a slow
 * transfer that keeps moving is never cut off.
 */
#include "netwatch.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NETWATCH_TICK_MS 100

struct engine__netwatch {
	pthread_t watched, thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	long long stall_ms;
	long long alive_ms; /* atomic: last sign of life */
	int (*cancelled)(void *ctx);
	void *ctx;
	int done;   /* under lock: the watched thread stopped the watch */
	int result; /* under lock: 0, -ETIMEDOUT, -ECANCELED */
};

static void on_sigurg(int sig)
{
	(void)sig; /* interrupting the call is the point */
}

static void install_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigurg;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: blocked calls return EINTR */
	sigaction(SIGURG, &sa, NULL);
}

static void *watch_main(void *arg)
{
	engine__netwatch *w = arg;
	struct timespec until;

	pthread_mutex_lock(&w->lock);
	while (!w->done) {
		if (!w->result) {
			if (w->cancelled && w->cancelled(w->ctx))
				w->result = -ECANCELED;
			else if (engine__mono_ms() - __atomic_load_n(&w->alive_ms,
			                                     __ATOMIC_RELAXED) >
			         w->stall_ms)
				w->result = -ETIMEDOUT;
		}
		/* Again at every tick: a signal can land just before the
		 * thread blocks in the next call. */
		if (w->result)
			pthread_kill(w->watched, SIGURG);
		clock_gettime(CLOCK_MONOTONIC, &until); /* the cond's clock */
		until.tv_nsec += NETWATCH_TICK_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->wake, &w->lock, &until);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int engine__netwatch_start(engine__netwatch **out, long long stall_ms,
                           int (*cancelled)(void *ctx), void *ctx)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	engine__netwatch *w = calloc(1, sizeof(*w));
	pthread_condattr_t ca;
	int r;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	pthread_once(&once, install_handler);
	w->watched = pthread_self();
	w->stall_ms = stall_ms;
	w->alive_ms = engine__mono_ms();
	w->cancelled = cancelled;
	w->ctx = ctx;
	pthread_mutex_init(&w->lock, NULL);
	/* A monotonic tick: a clock set back must not stall a cancel. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &ca);
	pthread_condattr_destroy(&ca);
	if ((r = pthread_create(&w->thread, NULL, watch_main, w)) != 0) {
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return -r;
	}
	*out = w;
	return 0;
}

void engine__netwatch_alive(engine__netwatch *w)
{
	if (w)
		__atomic_store_n(&w->alive_ms, engine__mono_ms(), __ATOMIC_RELAXED);
}

int engine__netwatch_stop(engine__netwatch *w)
{
	int r;

	if (!w)
		return 0;
	pthread_mutex_lock(&w->lock);
	w->done = 1;
	r = w->result;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
	return r;
}
