/* SPDX-License-Identifier: MIT */
/*
 * parallel.c - run independent jobs on the machine's cores.
 *
 * Scanning host files is the largest cost of a merge and every file is
 * scanned on its own, so the files of one refresh are shared out between
 * a few short-lived threads.  Threads are created per call, not pooled:
 * a refresh happens at most once per change of the sources, and creating
 * a thread costs tens of microseconds against milliseconds of scanning.
 */
#include "engine_i.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

/* More threads than this do not pay on the machines crdtfs targets. */
#define PARALLEL_MAX_THREADS 4

typedef struct {
	void (*fn)(void *ctx, size_t i);
	void *ctx;
	size_t n;
	atomic_size_t next; /* the next job nobody has taken */
} parallel_jobs;

static void *parallel_worker(void *arg)
{
	parallel_jobs *jobs = arg;
	size_t i;

	while ((i = atomic_fetch_add(&jobs->next, 1)) < jobs->n)
		jobs->fn(jobs->ctx, i);
	return NULL;
}

int engine__thread_start(pthread_t *tid, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	/* Signals stay with the caller's threads (the mount's handlers). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(tid, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

static size_t parallel_cpus;
static pthread_once_t parallel_cpus_once = PTHREAD_ONCE_INIT;

/* glibc reads /sys for the online CPUs on every call: once is enough. */
static void parallel_cpus_init(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	parallel_cpus = cpus > 0 ? (size_t)cpus : 1;
	if (parallel_cpus > PARALLEL_MAX_THREADS)
		parallel_cpus = PARALLEL_MAX_THREADS;
}

size_t engine__parallel_threads(size_t jobs)
{
	pthread_once(&parallel_cpus_once, parallel_cpus_init);
	return parallel_cpus < jobs ? parallel_cpus : (jobs ? jobs : 1);
}

void engine__parallel_run(size_t n, void (*fn)(void *ctx, size_t i),
			  void *ctx)
{
	parallel_jobs jobs = { .fn = fn, .ctx = ctx, .n = n };
	pthread_t tids[PARALLEL_MAX_THREADS];
	size_t want = engine__parallel_threads(n), started = 0, t;

	atomic_init(&jobs.next, 0);
	/* The calling thread is one of the workers; a failed create only
	 * means fewer helpers. */
	for (t = 1; t < want; t++) {
		if (engine__thread_start(&tids[started], parallel_worker,
					 &jobs) != 0)
			break;
		started++;
	}
	parallel_worker(&jobs);
	for (t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
}
