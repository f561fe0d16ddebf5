/* SPDX-License-Identifier: MIT */
/*
 * test_engine_batch.c - batched positional reads (batch.c): every op gets
 * exactly its bytes whichever way the batch went, both ways are taken
 * where io_uring works (the thread times them and keeps trying the dearer
 * one), a range past the end of its file is -EIO either way, and a thread
 * of its own starts over with no timings.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_i.h"
#include "harness.h"
#include "tmpdir.h"

#define FILE_BYTES (1024 * 1024)
#define FILES 3
#define OPS 64
#define ROUNDS 200

static char *contents[FILES];
static int fds[FILES];

/* Whether this kernel and sandbox let a ring be made at all. */
static int uring_works(void)
{
	struct io_uring ring;

	if (io_uring_queue_init(4, &ring, 0) != 0)
		return 0;
	io_uring_queue_exit(&ring);
	return 1;
}

static void setup(void)
{
	unsigned seed = 7;
	char name[32], path[128];
	size_t f, i;

	make_dir();
	for (f = 0; f < FILES; f++) {
		contents[f] = malloc(FILE_BYTES);
		ASSERT_TRUE(contents[f] != NULL);
		for (i = 0; i < FILE_BYTES; i++)
			contents[f][i] = (char)(rand_r(&seed) >> 7);
		snprintf(name, sizeof(name), "f%zu", f);
		write_bytes(name, contents[f], FILE_BYTES);
		snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
		fds[f] = open(path, O_RDONLY);
		ASSERT_TRUE(fds[f] >= 0);
	}
}

static void teardown(void)
{
	size_t f;

	for (f = 0; f < FILES; f++) {
		close(fds[f]);
		free(contents[f]);
	}
	remove_dir();
}

/* ROUNDS batches of OPS random ranges, each checked against the file;
 * threads may run it at once. */
static void read_rounds(void)
{
	char (*dst)[2048] = malloc(OPS * sizeof(*dst));
	engine__read_op ops[OPS];
	unsigned seed = 11;
	size_t r, i, bad = 0;

	ASSERT_TRUE(dst != NULL);
	for (r = 0; dst && r < ROUNDS; r++) {
		for (i = 0; i < OPS; i++) {
			size_t f = (size_t)rand_r(&seed) % FILES;
			size_t len = 1 + (size_t)rand_r(&seed) % 2048;

			ops[i].fd = fds[f];
			ops[i].dst = dst[i];
			ops[i].len = len;
			ops[i].off = (uint64_t)rand_r(&seed) %
				     (FILE_BYTES - len + 1);
			memset(dst[i], 0, sizeof(dst[i]));
		}
		/* Now and then a small batch, which is not timed. */
		ASSERT_EQ_INT(engine__read_batch(ops, r % 10 ? OPS : 3), 0);
		for (i = 0; i < (r % 10 ? OPS : 3u); i++) {
			const char *want = contents[0];
			size_t f;

			for (f = 0; f < FILES; f++)
				if (ops[i].fd == fds[f])
					want = contents[f];
			if (memcmp(dst[i], want + ops[i].off, ops[i].len))
				bad++;
		}
	}
	ASSERT_EQ_INT((int)bad, 0);
	free(dst);
}

static void test_engine_batch__every_op_gets_its_bytes_both_ways(void)
{
	unsigned long pread_before, ring_before, pread_after, ring_after;

	setup();
	engine__read_batch_ways(&pread_before, &ring_before);
	read_rounds();
	engine__read_batch_ways(&pread_after, &ring_after);
	if (uring_works()) {
		/* A thread's first timed batches go one each way. */
		ASSERT_TRUE(pread_after - pread_before >= 1);
		ASSERT_TRUE(ring_after - ring_before >= 1);
	} else {
		printf("# io_uring unavailable here: pread only\n");
		ASSERT_EQ_INT((int)(ring_after - ring_before), 0);
	}
	teardown();
}

static void *rounds_thread(void *arg)
{
	(void)arg;
	read_rounds();
	return NULL;
}

static void test_engine_batch__a_new_thread_reads_right_from_its_first_batch(void)
{
	pthread_t t[2];
	size_t i;

	setup();
	for (i = 0; i < 2; i++)
		ASSERT_EQ_INT(pthread_create(&t[i], NULL, rounds_thread, NULL),
			      0);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	teardown();
}

/*
 * On a thread of its own, so the order of ways is known: its first batch
 * goes by io_uring, and so does every batch until one has been timed;
 * the next goes by pread, and so does every batch until one has been
 * timed that way (a failed batch is not).
 */
static void *past_the_end_thread(void *arg)
{
	char dst[12][16];
	engine__read_op ops[12];
	size_t i;

	(void)arg;
	for (i = 0; i < 12; i++)
		ops[i] = (engine__read_op){ fds[i % 3], dst[i], sizeof(dst[i]),
					    100 * i };
	ops[11].off = FILE_BYTES - 8; /* runs 8 bytes past the end */
	ASSERT_EQ_INT(engine__read_batch(ops, 12), -EIO);   /* io_uring */
	ASSERT_EQ_INT(engine__read_batch(ops, 11), 0);      /* io_uring, timed */
	ASSERT_EQ_INT(engine__read_batch(ops, 12), -EIO);   /* pread */
	ASSERT_EQ_INT(engine__read_batch(ops + 8, 4), -EIO); /* pread */
	ASSERT_EQ_MEM(dst[0], sizeof(dst[0]), contents[0], sizeof(dst[0]));
	return NULL;
}

static void test_engine_batch__a_range_past_the_end_is_eio(void)
{
	unsigned long pread_before, ring_before, pread_after, ring_after;
	pthread_t t;

	setup();
	engine__read_batch_ways(&pread_before, &ring_before);
	ASSERT_EQ_INT(pthread_create(&t, NULL, past_the_end_thread, NULL), 0);
	pthread_join(t, NULL);
	engine__read_batch_ways(&pread_after, &ring_after);
	if (uring_works()) {
		ASSERT_EQ_INT((int)(ring_after - ring_before), 2);
		ASSERT_EQ_INT((int)(pread_after - pread_before), 2);
	} else {
		ASSERT_EQ_INT((int)(ring_after - ring_before), 0);
	}
	teardown();
}

/* A thread's timed batches, and how many went each way. */
static void *many_batches_thread(void *arg)
{
	unsigned long *ways = arg, p0, r0, p1, r1;
	char (*dst)[1024] = malloc(OPS * sizeof(*dst));
	engine__read_op ops[OPS];
	unsigned seed = 5;
	size_t r, i;

	ASSERT_TRUE(dst != NULL);
	engine__read_batch_ways(&p0, &r0);
	for (r = 0; dst && r < 600; r++) {
		for (i = 0; i < OPS; i++)
			ops[i] = (engine__read_op){
				fds[i % FILES], dst[i], sizeof(dst[i]),
				(uint64_t)rand_r(&seed) %
				        (FILE_BYTES - sizeof(dst[i]))
			};
		ASSERT_EQ_INT(engine__read_batch(ops, OPS), 0);
	}
	engine__read_batch_ways(&p1, &r1);
	ways[0] = p1 - p0;
	ways[1] = r1 - r0;
	free(dst);
	return NULL;
}

/* Whichever way is cheaper here, the other is tried again now and then
 * (one batch in 32, or in 256 when it looked far dearer), not only once. */
static void test_engine_batch__the_dearer_way_is_tried_again(void)
{
	unsigned long ways[2] = { 0, 0 };
	pthread_t t;

	setup();
	ASSERT_EQ_INT(pthread_create(&t, NULL, many_batches_thread, ways), 0);
	pthread_join(t, NULL);
	if (uring_works()) {
		printf("# 600 batches: %lu by pread, %lu by io_uring\n", ways[0],
		       ways[1]);
		ASSERT_TRUE(ways[0] >= 3 && ways[1] >= 3);
		ASSERT_EQ_INT((int)(ways[0] + ways[1]), 600);
	}
	teardown();
}

static const harness_case cases[] = {
	TEST(test_engine_batch__the_dearer_way_is_tried_again),
	TEST(test_engine_batch__every_op_gets_its_bytes_both_ways),
	TEST(test_engine_batch__a_new_thread_reads_right_from_its_first_batch),
	TEST(test_engine_batch__a_range_past_the_end_is_eio),
};

HARNESS_MAIN(cases)
