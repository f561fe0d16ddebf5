/* SPDX-License-Identifier: MIT */
/*
 * netwatch.h - a watchdog for network I/O that libgit2 1.5 would wait on
 * forever (see netwatch.c).  Used by sync.c only.
 */
#ifndef CRDTFS_ENGINE_NETWATCH_H
#define CRDTFS_ENGINE_NETWATCH_H

#include <time.h>

typedef struct engine__netwatch engine__netwatch;

/** Milliseconds on the monotonic clock (the watch's, and sync's). */
static inline long long engine__mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/**
 * Watch the calling thread: if stall_ms pass with no call to
 * engine__netwatch_alive(), or cancelled(ctx) (may be NULL) says so, its
 * blocking socket calls are interrupted (EINTR) until it stops the watch.
 * @return 0 or -errno
 */
int engine__netwatch_start(engine__netwatch **out, long long stall_ms,
                           int (*cancelled)(void *ctx), void *ctx);
/** The remote answered: the stall clock starts again.  NULL is ignored. */
void engine__netwatch_alive(engine__netwatch *w);
/**
 * End the watch (NULL is ignored).
 * @return 0, -ETIMEDOUT (it stalled), -ECANCELED (it was cancelled)
 */
int engine__netwatch_stop(engine__netwatch *w);

#endif
