/* SPDX-License-Identifier: MIT */
/*
 * write.c - the whole merged file to an fd, produced by several threads.
 *
 * Producing the output (one read per entry, canonicalising, copying) is
 * about half of `crdtfs merge`.  A view is immutable and readers are
 * independent, so the output is cut into chunks and chunk k is
 * filled by worker k % n, each worker with its own reader, while the
 * calling thread writes the chunks to the fd strictly in order.  n is the
 * number of online CPUs, at most a few; views below WRITE_PARALLEL_FROM
 * are written by the calling thread alone, as starting threads would cost
 * more than they save.
 *
 * Memory is bounded whatever the size of the view: every worker owns
 * WRITE_BUFS chunk buffers, filled in turn, and waits when the writer has
 * not yet emptied the next one.  Chunks of 1 MiB, against the 256 KiB of a
 * single reader, because a worker then skips n - 1 MiB of output between
 * its chunks: far enough that its per-source windows see a jump and read
 * only what the next chunk needs, where a smaller skip would look like
 * reading on and fill whole windows with bytes another worker serves
 * (measured: 256 KiB chunks cost 5-10% more than 512 KiB or 1 MiB).
 *
 * On 2 vCPUs the output of the 100 MB corpus takes about 60 ms instead of
 * 93 ms, for about 25% more CPU time: workers share the sources' page
 * cache pages and file references, whose counters bounce between cores.
 *
 * Errors: the first one (a source changed under the view: -EIO; a failed
 * write) stops every thread, and all are joined before returning.
 */
#include "engine_i.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

/*
 * Bytes of output per chunk: 1 MiB for large files; 256 KiB below
 * WRITE_SMALL, where first touches of the buffers (about 20 us a page on
 * these VMs) would cost more than the larger chunks save.
 */
#define WRITE_CHUNK (1024 * 1024)
#define WRITE_CHUNK_SMALL (256 * 1024)
#define WRITE_SMALL (64u * 1024 * 1024)
/* Chunk buffers per worker: one being filled, one waiting to be written. */
#define WRITE_BUFS 2
/* Views smaller than this are written by the calling thread alone. */
#define WRITE_PARALLEL_FROM (1024 * 1024)

typedef struct write_job write_job;

typedef struct {
	write_job *job;
	size_t index;           /* fills chunks index, index + n, ... */
	engine_reader *reader;  /* owned */
	char *buf[WRITE_BUFS];  /* in job->bufs */
	int full[WRITE_BUFS];   /* buf[b] holds its chunk, all chunk_len()
				   bytes of it, for the writer; job->lock */
	pthread_cond_t emptied; /* a buffer was written, or stop */
	pthread_t tid;
} write_worker;

struct write_job {
	const engine_view *v;
	size_t chunk;           /* bytes per chunk */
	uint64_t nchunks;
	size_t n;               /* workers */
	write_worker *w;        /* owned, n of them */
	engine__big bufs;       /* owned, every worker's buffers */
	pthread_mutex_t lock;
	pthread_cond_t filled;  /* a buffer was filled, or stop; lock */
	int stop;               /* lock */
	int err;                /* first error, 0 for none; lock */
};

/* Bytes per chunk for a view of `size` bytes. */
static size_t write_chunk(uint64_t size)
{
	return size < WRITE_SMALL ? WRITE_CHUNK_SMALL : WRITE_CHUNK;
}

/* Bytes of chunk k (the last one may be short). */
static size_t chunk_len(const write_job *job, uint64_t k)
{
	uint64_t left = engine_view_size(job->v) - k * job->chunk;

	return left < job->chunk ? (size_t)left : job->chunk;
}

/* Stop everything, keeping the first error (0: none).  Holds job->lock. */
static void job_stop(write_job *job, int err)
{
	size_t i;

	if (!job->err)
		job->err = err;
	job->stop = 1;
	pthread_cond_broadcast(&job->filled);
	for (i = 0; i < job->n; i++)
		pthread_cond_broadcast(&job->w[i].emptied);
}

static void *worker_main(void *arg)
{
	write_worker *w = arg;
	write_job *job = w->job;
	uint64_t k;
	size_t b = 0;

	for (k = w->index; k < job->nchunks; k += job->n) {
		size_t len = chunk_len(job, k);
		ssize_t got;
		int stop;

		pthread_mutex_lock(&job->lock);
		while (w->full[b] && !job->stop)
			pthread_cond_wait(&w->emptied, &job->lock);
		stop = job->stop;
		pthread_mutex_unlock(&job->lock);
		if (stop)
			break;
		got = engine_reader_read(w->reader, w->buf[b], len,
					 k * job->chunk);
		pthread_mutex_lock(&job->lock);
		if (got != (ssize_t)len) {
			job_stop(job, got < 0 ? (int)got : -EIO);
		} else {
			w->full[b] = 1;
			pthread_cond_signal(&job->filled);
		}
		pthread_mutex_unlock(&job->lock);
		b = (b + 1) % WRITE_BUFS;
	}
	return NULL;
}

/* The calling thread's part: every chunk to fd, in order. */
static void job_write(write_job *job, int fd)
{
	uint64_t k;

	for (k = 0; k < job->nchunks; k++) {
		write_worker *w = &job->w[k % job->n];
		size_t b = (size_t)(k / job->n) % WRITE_BUFS;
		int rc;

		pthread_mutex_lock(&job->lock);
		while (!w->full[b] && !job->stop)
			pthread_cond_wait(&job->filled, &job->lock);
		if (job->stop) {
			pthread_mutex_unlock(&job->lock);
			return;
		}
		pthread_mutex_unlock(&job->lock);
		/* The worker leaves a full buffer alone: no lock needed. */
		rc = engine__write_all(fd, w->buf[b], chunk_len(job, k));
		pthread_mutex_lock(&job->lock);
		if (rc < 0) {
			job_stop(job, rc);
		} else {
			w->full[b] = 0;
			pthread_cond_signal(&w->emptied);
		}
		pthread_mutex_unlock(&job->lock);
		if (rc < 0)
			return;
	}
}

/*
 * Write v in `nchunks` chunks of `chunk` bytes with n worker threads.
 * @return 0, -EAGAIN when threads could not be started (nothing was
 *         written then), -ENOMEM, or the first error of a worker or write
 */
static int write_parallel(const engine_view *v, int fd, size_t chunk,
			  uint64_t nchunks, size_t n)
{
	write_job job = { .v = v, .chunk = chunk, .nchunks = nchunks, .n = n };
	size_t i, b, started = 0;
	int rc;

	pthread_mutex_init(&job.lock, NULL);
	pthread_cond_init(&job.filled, NULL);
	job.w = calloc(n, sizeof(*job.w));
	if (!job.w) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		pthread_cond_init(&job.w[i].emptied, NULL);
	/* One mapping for all buffers: big enough for huge pages. */
	if ((rc = engine__big_reserve(&job.bufs,
				      n * WRITE_BUFS * job.chunk)) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		write_worker *w = &job.w[i];

		w->job = &job;
		w->index = i;
		for (b = 0; b < WRITE_BUFS; b++)
			w->buf[b] = (char *)job.bufs.base +
				    (i * WRITE_BUFS + b) * job.chunk;
		if ((rc = engine_reader_new(&w->reader, (engine_view *)v)) < 0)
			goto out;
	}
	for (started = 0; started < n; started++)
		if (engine__thread_start(&job.w[started].tid, started,
					 worker_main, &job.w[started]) != 0)
			break;
	if (started < n) {
		pthread_mutex_lock(&job.lock);
		job_stop(&job, -EAGAIN);
		pthread_mutex_unlock(&job.lock);
	} else {
		job_write(&job, fd);
		/* Done or failed: either way no worker may wait on. */
		pthread_mutex_lock(&job.lock);
		job_stop(&job, 0);
		pthread_mutex_unlock(&job.lock);
	}
	for (i = 0; i < started; i++)
		pthread_join(job.w[i].tid, NULL);
	rc = job.err;
out:
	for (i = 0; job.w && i < n; i++) {
		engine_reader_free(job.w[i].reader);
		pthread_cond_destroy(&job.w[i].emptied);
	}
	free(job.w);
	engine__big_free(&job.bufs);
	pthread_cond_destroy(&job.filled);
	pthread_mutex_destroy(&job.lock);
	return rc;
}

/* Write v in `nchunks` chunks with one reader on the calling thread. */
static int write_serial(const engine_view *v, int fd, size_t chunk,
			uint64_t nchunks)
{
	const write_job job = { .v = v, .chunk = chunk, .nchunks = nchunks };
	engine_reader *r = NULL;
	char *buf = malloc(job.chunk);
	uint64_t k;
	int rc;

	if (!buf)
		return -ENOMEM;
	if ((rc = engine_reader_new(&r, (engine_view *)v)) < 0)
		goto out;
	for (k = 0; k < nchunks; k++) {
		size_t len = chunk_len(&job, k);
		ssize_t n = engine_reader_read(r, buf, len, k * job.chunk);

		if (n != (ssize_t)len) {
			rc = n < 0 ? (int)n : -EIO;
			goto out;
		}
		if ((rc = engine__write_all(fd, buf, len)) < 0)
			goto out;
	}
	rc = 0;
out:
	engine_reader_free(r);
	free(buf);
	return rc;
}

int engine_view_write(const engine_view *v, int fd)
{
	uint64_t size = engine_view_size(v);
	size_t chunk = write_chunk(size), n = 1;
	uint64_t nchunks = (size + chunk - 1) / chunk;
	int rc;

	if (size >= WRITE_PARALLEL_FROM)
		n = engine__parallel_threads((size_t)nchunks);
	if (n > 1 &&
	    (rc = write_parallel(v, fd, chunk, nchunks, n)) != -EAGAIN)
		return rc;
	return write_serial(v, fd, chunk, nchunks);
}
