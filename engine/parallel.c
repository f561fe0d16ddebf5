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

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
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

/*
 * Where a helper thread starts.  Linux places a new thread on its
 * creator's CPU and moves it only when it next balances load, which here
 * took 2 to 10 ms: as long as the scan of ten 1 MB host files, which then
 * ran on one CPU, the two threads taking turns (measured with
 * sched_getcpu() per job).  So a helper is created bound to another CPU
 * than its creator's and, once running there, is let loose again.
 */
typedef struct {
	void *(*fn)(void *);
	void *arg;
	cpu_set_t allowed; /* the process's CPUs, restored at start */
} thread_start;

static void *thread_begin(void *p)
{
	thread_start t = *(thread_start *)p;

	free(p);
	(void)sched_setaffinity(0, sizeof(t.allowed), &t.allowed);
	return t.fn(t.arg);
}

/*
 * Bind *attr to the index'th allowed CPU counting on from the caller's
 * (index 0: the next one; the caller's own comes last), recording the
 * allowed set in t.
 * @return 0 when the thread had better start where the kernel puts it
 */
static int thread_place(pthread_attr_t *attr, thread_start *t, size_t index)
{
	int here = sched_getcpu(), cpu = here, count;
	cpu_set_t one;

	if (here < 0 ||
	    sched_getaffinity(0, sizeof(t->allowed), &t->allowed) != 0 ||
	    (count = CPU_COUNT(&t->allowed)) < 2)
		return 0;
	index %= (size_t)count;
	do {
		if (++cpu == CPU_SETSIZE)
			cpu = 0;
	} while (!CPU_ISSET(cpu, &t->allowed) || index-- > 0);
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return pthread_attr_setaffinity_np(attr, sizeof(one), &one) == 0;
}

int engine__thread_start(pthread_t *tid, size_t index,
			 void *(*fn)(void *), void *arg)
{
	thread_start *t = malloc(sizeof(*t));
	pthread_attr_t attr;
	sigset_t all, old;
	int rc;

	if (!t || pthread_attr_init(&attr) != 0) {
		free(t);
		return EAGAIN;
	}
	t->fn = fn;
	t->arg = arg;
	/* Signals stay with the caller's threads (the mount's handlers). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = thread_place(&attr, t, index) ?
		     pthread_create(tid, &attr, thread_begin, t) : -1;
	if (rc != 0) { /* placing failed or was refused: start unplaced */
		free(t);
		rc = pthread_create(tid, NULL, fn, arg);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
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
		if (engine__thread_start(&tids[started], started,
					 parallel_worker, &jobs) != 0)
			break;
		started++;
	}
	parallel_worker(&jobs);
	for (t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
}
