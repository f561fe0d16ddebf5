/* SPDX-License-Identifier: MIT */
/*
 * batch.c - many small positional reads at once.
 *
 * Serving a merged file reads one byte range per entry, from wherever the
 * entry lies in its host file: with host files not in time order that is
 * one random read per entry (about 1 KiB each).  Whether those reads are
 * cheaper as one io_uring submission or as that many pread calls depends
 * on the machine: where a syscall costs about 2 us, more than copying the
 * kilobyte, a batch of 32 reads took 0.05 s for 70 000 random 1 KiB reads
 * against 0.13 s with pread; on a machine with cheap syscalls (AMD EPYC,
 * 2026-11-24) pread took 0.46 us a read and io_uring 0.60 us.  So each
 * thread times its batches and uses the cheaper way, trying the other one
 * now and then (BATCH_EXPLORE) to follow a change in the machine's load.
 * Where io_uring is unavailable (old kernel, disabled by sysctl, seccomp)
 * every read is a pread.
 *
 * One ring per thread, made on first use and torn down at thread exit, so
 * readers on different FUSE threads never share a ring.
 */
#include "engine_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include <liburing.h>

/* Submission queue entries per ring, and so reads in flight at once. */
#define BATCH_DEPTH 64
/* Batches of fewer reads are not timed: their fixed costs would count. */
#define BATCH_TIMED_MIN 8
/* One timed batch in this many goes the way that looked dearer; one in
 * BATCH_EXPLORE_FAR when it looked more than 1.5 times as dear, so
 * trying it costs at most a few percent. */
#define BATCH_EXPLORE 32
#define BATCH_EXPLORE_FAR 256

enum batch_way { BATCH_PREAD, BATCH_RING };

typedef struct {
	struct io_uring ring;
	int ok;     /* 1: ring set up, -1: io_uring unavailable here */
	int broken; /* a submission failed: pread from now on */
	/* Nanoseconds a read in the recent timed batches, each way (0: not
	 * timed yet; see the end of engine__read_batch), and the timed
	 * batches so far. */
	double ns[2];
	unsigned long timed;
} thread_ring;

/* Batches done each way, for the tests. */
static atomic_ulong batch_ways[2];

static pthread_key_t ring_key;
static pthread_once_t ring_once = PTHREAD_ONCE_INIT;

static void ring_destroy(void *p)
{
	thread_ring *t = p;

	if (t->ok == 1)
		io_uring_queue_exit(&t->ring);
	free(t);
}

static void ring_key_init(void)
{
	(void)pthread_key_create(&ring_key, ring_destroy);
}

static thread_ring *ring_get(void)
{
	thread_ring *t;

	pthread_once(&ring_once, ring_key_init);
	t = pthread_getspecific(ring_key);
	if (t)
		return t;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ok = io_uring_queue_init(BATCH_DEPTH, &t->ring, 0) == 0 ? 1 : -1;
	if (pthread_setspecific(ring_key, t) != 0) {
		ring_destroy(t);
		return NULL;
	}
	return t;
}

ssize_t engine__pread_full(int fd, char *buf, size_t size, uint64_t off)
{
	size_t got = 0;

	while (got < size) {
		ssize_t n = pread(fd, buf + got, size - got,
				  (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

ssize_t engine__read_fd(void *ctx, char *buf, size_t size, uint64_t offset)
{
	return engine__pread_full(*(const int *)ctx, buf, size, offset);
}

/* The rest of op after `done` bytes: 0, -EIO when short, -errno. */
static int read_one(const engine__read_op *op, size_t done)
{
	ssize_t n = engine__pread_full(op->fd, op->dst + done, op->len - done,
				       op->off + done);

	if (n < 0)
		return (int)n;
	return (size_t)n == op->len - done ? 0 : -EIO;
}

/* Finish op from `res`, the completion of its read: 0 or -errno. */
static int read_finish(const engine__read_op *op, int res)
{
	if (res < 0)
		return res == -EINTR || res == -EAGAIN ? read_one(op, 0) : res;
	if ((size_t)res < op->len) /* short: finish by pread */
		return read_one(op, (size_t)res);
	return 0;
}

/*
 * Submit up to BATCH_DEPTH reads and reap every one that was submitted
 * before returning, so no read is left writing into a buffer the caller
 * has moved on from.  Reads the kernel did not take are done with pread,
 * and the ring is not used again (its queue may still hold them).  The
 * one exception: when waiting itself fails (the ring is unusable, which
 * EINTR and EAGAIN are not), completions cannot be awaited at all; the
 * ring is then abandoned and this thread reads with pread from then on.
 */
static int ring_round(thread_ring *t, const engine__read_op *ops, size_t n)
{
	struct io_uring *ring = &t->ring;
	struct io_uring_cqe *cqe;
	size_t i, submitted = 0, reaped = 0;
	int rc = 0, r;

	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

		io_uring_prep_read(sqe, ops[i].fd, ops[i].dst,
				   (unsigned)ops[i].len, ops[i].off);
		io_uring_sqe_set_data64(sqe, i);
	}
	while (submitted < n) {
		r = io_uring_submit_and_wait(ring, (unsigned)(n - submitted));
		if (r == -EINTR)
			continue;
		if (r <= 0)
			break;
		submitted += (size_t)r;
	}
	while (reaped < submitted) {
		if ((r = io_uring_wait_cqe(ring, &cqe)) < 0) {
			if (r == -EINTR || r == -EAGAIN)
				continue;
			/* Cannot tell when the rest land: stop using them. */
			t->broken = 1;
			return r;
		}
		r = cqe->res;
		i = (size_t)io_uring_cqe_get_data64(cqe);
		io_uring_cqe_seen(ring, cqe);
		reaped++;
		if (rc == 0)
			rc = read_finish(&ops[i], r);
	}
	if (submitted < n) {
		t->broken = 1;
		for (i = submitted; i < n && rc == 0; i++)
			rc = read_one(&ops[i], 0);
	}
	return rc;
}

void engine__read_batch_ways(unsigned long *pread, unsigned long *ring)
{
	*pread = atomic_load(&batch_ways[BATCH_PREAD]);
	*ring = atomic_load(&batch_ways[BATCH_RING]);
}

/* The way this thread's next batch goes. */
static enum batch_way batch_choose(const thread_ring *t)
{
	enum batch_way cheaper, dearer;
	unsigned long every;

	if (t->ns[BATCH_RING] == 0)
		return BATCH_RING;
	if (t->ns[BATCH_PREAD] == 0)
		return BATCH_PREAD;
	cheaper = t->ns[BATCH_RING] <= t->ns[BATCH_PREAD] ? BATCH_RING :
							    BATCH_PREAD;
	dearer = cheaper == BATCH_RING ? BATCH_PREAD : BATCH_RING;
	every = t->ns[dearer] > 1.5 * t->ns[cheaper] ? BATCH_EXPLORE_FAR :
						       BATCH_EXPLORE;
	return t->timed % every == every - 1 ? dearer : cheaper;
}

static int read_each(const engine__read_op *ops, size_t n)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++)
		if ((rc = read_one(&ops[i], 0)) < 0)
			return rc;
	return 0;
}

static int read_ring(thread_ring *t, const engine__read_op *ops, size_t n)
{
	size_t i;
	int rc;

	for (i = 0; !t->broken && i < n; i += BATCH_DEPTH) {
		size_t k = n - i < BATCH_DEPTH ? n - i : BATCH_DEPTH;

		if ((rc = ring_round(t, ops + i, k)) < 0)
			return rc;
	}
	return i < n ? read_each(ops + i, n - i) : 0;
}

int engine__read_batch(const engine__read_op *ops, size_t n)
{
	thread_ring *t = n > 1 ? ring_get() : NULL;
	enum batch_way way;
	double start, ns;
	int rc;

	if (!t || t->ok != 1 || t->broken)
		return read_each(ops, n);
	way = batch_choose(t);
	atomic_fetch_add_explicit(&batch_ways[way], 1, memory_order_relaxed);
	if (n < BATCH_TIMED_MIN)
		return way == BATCH_RING ? read_ring(t, ops, n) :
					   read_each(ops, n);
	start = engine_mono_seconds();
	rc = way == BATCH_RING ? read_ring(t, ops, n) : read_each(ops, n);
	ns = (engine_mono_seconds() - start) * 1e9 / (double)n;
	t->timed++;
	if (rc < 0) /* stopped early: its time says nothing */
		return rc;
	if (ns <= 0) /* a coarse clock; 0 means "not timed" */
		ns = 1e-3;
	/*
	 * Down at once, up by an eighth of at most 4 times the estimate: one
	 * slow batch (a cold cache, a preemption), the first above all, must
	 * not make its way look dear for hundreds of batches.
	 */
	if (t->ns[way] == 0 || ns < t->ns[way])
		t->ns[way] = ns;
	else if (ns > 4 * t->ns[way])
		t->ns[way] += 3 * t->ns[way] / 8;
	else
		t->ns[way] += (ns - t->ns[way]) / 8;
	return 0;
}
