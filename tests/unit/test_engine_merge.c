/* SPDX-License-Identifier: MIT */
/*
 * test_engine_merge.c - the merge, the view layout and the readers: exact
 * bytes for small inputs, order independence, reads at every offset and
 * size equal the whole output, incremental refresh, readers that keep
 * one generation while sources change, and the multi-threaded writer and
 * concurrent reads of one reader on a multi-MiB view.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "merge_fixture.h"

#define E(uid, ts, ver, host, body)                                          \
	"{\"id\":\"" uid "\",\"body\":" body ",\"_crdt_metadata\":{\"host\":\"" \
	host "\",\"timestamp\":\"" ts "\",\"version\":" #ver                 \
	",\"unique_id\":\"" uid "\"}}"

static void test_engine_merge__lww_by_parsed_time(void)
{
	size_t len;
	char *out;

	make_dir();
	/* As text "…T10:00:00+02:00" > "…T09:00:00Z", as time it is older. */
	write_file("memory-a.json",
		   "[" E("u1", "2025-01-01T10:00:00+02:00", 1, "a", "\"old\"") "]");
	write_file("memory-b.json",
		   E("u1", "2025-01-01T09:00:00Z", 1, "b", "\"new\"") "\n");
	out = merge_dir(&len);
	ASSERT_EQ_STR(out, "[\n" E("u1", "2025-01-01T09:00:00Z", 1, "b",
				   "\"new\"") "\n]\n");
	free(out);
	remove_dir();
}

static void test_engine_merge__tie_breaks(void)
{
	size_t len;
	char *out;

	make_dir();
	/* Same time: version decides, then host, then canonical bytes. */
	write_file("memory-a.json",
		   "[\n  " E("v", "2025-01-01T00:00:00Z", 2, "a", "1") ",\n  "
		   E("h", "2025-01-01T00:00:01Z", 1, "z", "1") ",\n  "
		   E("c", "2025-01-01T00:00:02Z", 1, "a", "\"b\"") "\n]\n");
	write_file("memory-b.json",
		   "[" E("v", "2025-01-01T00:00:00Z", 1, "b", "2") ","
		   E("h", "2025-01-01T00:00:01Z", 1, "y", "2") ","
		   E("c", "2025-01-01T00:00:02Z", 1, "a", "\"a\"") "]");
	out = merge_dir(&len);
	ASSERT_EQ_STR(out,
		      "[\n" E("v", "2025-01-01T00:00:00Z", 2, "a", "1") ",\n"
		      E("h", "2025-01-01T00:00:01Z", 1, "z", "1") ",\n"
		      E("c", "2025-01-01T00:00:02Z", 1, "a", "\"b\"") "\n]\n");
	free(out);
	remove_dir();
}

static void test_engine_merge__formatting_and_order_do_not_matter(void)
{
	const char *pretty =
		"[\n  {\n    \"id\": \"x\",\n    \"t\": \"a b\\n\\u00e9\",\n"
		"    \"_crdt_metadata\": {\"host\": \"h\", \"timestamp\": "
		"\"2025-02-01T00:00:00.5Z\", \"version\": 1, \"unique_id\": "
		"\"x\"}\n  }\n]\n";
	const char *compact =
		"{\"id\":\"x\",\"t\":\"a b\\n\\u00e9\",\"_crdt_metadata\":"
		"{\"host\":\"h\",\"timestamp\":\"2025-02-01T00:00:00.5Z\","
		"\"version\":1,\"unique_id\":\"x\"}}\n";
	size_t l1, l2, l3;
	char *o1, *o2, *o3;

	make_dir();
	write_file("memory-a.json", pretty);
	o1 = merge_dir(&l1);
	write_file("memory-b.json", compact); /* a duplicate, other format */
	o2 = merge_dir(&l2);
	write_file("memory-a.json", compact);
	write_file("memory-b.json", pretty);
	o3 = merge_dir(&l3);
	ASSERT_EQ_MEM(o1, l1, o2, l2);
	ASSERT_EQ_MEM(o1, l1, o3, l3);
	ASSERT_EQ_STR(o1, "[\n{\"id\":\"x\",\"t\":\"a b\\n\\u00e9\","
			  "\"_crdt_metadata\":{\"host\":\"h\",\"timestamp\":"
			  "\"2025-02-01T00:00:00.5Z\",\"version\":1,"
			  "\"unique_id\":\"x\"}}\n]\n");
	free(o1);
	free(o2);
	free(o3);
	remove_dir();
}

static void test_engine_merge__empty_inputs(void)
{
	size_t len;
	char *out;

	make_dir();
	out = merge_dir(&len);
	ASSERT_EQ_STR(out, "[]\n");
	free(out);
	write_file("memory-a.json", "");
	write_file("memory-b.json", "[ ]");
	out = merge_dir(&len);
	ASSERT_EQ_STR(out, "[]\n");
	free(out);
	remove_dir();
}

/* Every (offset, size) read through a reader equals the whole output. */
static void test_engine_merge__reads_at_every_offset(void)
{
	merge_fixture f;
	engine_reader *r = NULL;
	char *whole, buf[300];
	size_t len, off, size;

	make_dir();
	write_file("memory-a.json",
		   "[\n  " E("a1", "2025-01-01T00:00:03Z", 1, "a",
			     "{ \"k\" : [ 1 , 2 ] , \"s\" : \"  sp  \" }") ",\n  "
		   E("a2", "2025-01-01T00:00:01Z", 1, "a", "\"x\"") "\n]\n");
	write_file("memory-b.json",
		   E("b1", "2025-01-01T00:00:02Z", 1, "b", "\"y\"") "\n"
		   E("b2", "2025-01-01T00:00:04Z", 1, "b", "[ 3,  4 ]") "\n");
	whole = merge_dir(&len);
	fixture_open(&f);
	ASSERT_TRUE(engine_reader_new(&r, f.v) == 0);
	for (size = 1; size <= 97; size += 6) {
		for (off = 0; off <= len + 2; off++) {
			ssize_t n = engine_reader_read(r, buf, size, off);
			size_t want = off >= len ? 0 :
				      (len - off < size ? len - off : size);

			ASSERT_EQ_INT(n, want);
			if (n > 0 && memcmp(buf, whole + off, (size_t)n)) {
				printf("# mismatch at offset %zu size %zu\n",
				       off, size);
				harness_failed = 1;
				size = 1000;
				break;
			}
		}
	}
	engine_reader_free(r);
	fixture_close(&f);
	free(whole);
	remove_dir();
}

static void test_engine_merge__refresh_is_incremental(void)
{
	desc_descriptor *desc = NULL;
	engine_merge *m = NULL;
	engine_view *v1 = NULL, *v2 = NULL, *v3 = NULL;
	int dirfd;

	make_dir();
	write_file("memory-a.json",
		   "[" E("a1", "2025-01-01T00:00:03Z", 1, "a", "1") "]");
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	ASSERT_TRUE(desc_default(&desc) == 0);
	ASSERT_TRUE(engine_merge_new(&m, desc, dirfd) == 0);
	ASSERT_TRUE(engine_merge_refresh(m, &v1) == 0);
	ASSERT_TRUE(engine_merge_refresh(m, &v2) == 0);
	ASSERT_TRUE(v1 == v2); /* nothing changed: the same generation */
	engine_merge_invalidate(m, "memory-a.json");
	write_file("memory-b.json",
		   "[" E("b1", "2025-01-01T00:00:04Z", 1, "b", "2") "]");
	ASSERT_TRUE(engine_merge_refresh(m, &v3) == 0);
	ASSERT_EQ_INT(engine_view_generation(v3),
		      engine_view_generation(v1) + 1);
	ASSERT_EQ_INT(engine_view_entries(v3), 2);
	ASSERT_EQ_INT(engine_view_entries(v1), 1); /* old view unchanged */
	engine_view_unref(v1);
	engine_view_unref(v2);
	engine_view_unref(v3);
	engine_merge_free(m);
	desc_free(desc);
	close(dirfd);
	remove_dir();
}

/* Read a whole view through a fresh reader; returns -EIO on failure. */
static ssize_t read_all(engine_view *v, char *buf, size_t size)
{
	engine_reader *r = NULL;
	ssize_t n;

	if (engine_reader_new(&r, v) < 0)
		return -ENOMEM;
	n = engine_reader_read(r, buf, size, 0);
	engine_reader_free(r);
	return n;
}

static void test_engine_merge__preserved_source_keeps_generation(void)
{
	merge_fixture f;
	char before[512], after[512], path[256];
	struct stat st;
	ssize_t n1, n2;
	int fd;

	make_dir();
	write_file("memory-a.json",
		   "[" E("a1", "2025-01-01T00:00:03Z", 1, "a", "1") "]");
	fixture_open(&f);
	n1 = read_all(f.v, before, sizeof(before));
	ASSERT_TRUE(n1 > 0);

	snprintf(path, sizeof(path), "%s/memory-a.json", tmpdir);
	ASSERT_TRUE(stat(path, &st) == 0);
	ASSERT_TRUE(engine_view_uses_inode(f.v, st.st_dev, st.st_ino));
	ASSERT_TRUE(engine_view_preserve_inode(f.v, st.st_dev, st.st_ino) == 0);
	/* Rewrite in place: same inode, other bytes. */
	fd = open(path, O_WRONLY | O_TRUNC);
	ASSERT_TRUE(write(fd, "[]", 2) == 2);
	close(fd);
	n2 = read_all(f.v, after, sizeof(after));
	ASSERT_EQ_MEM(before, (size_t)n1, after, (size_t)(n2 < 0 ? 0 : n2));

	fixture_close(&f);
	remove_dir();
}

static void test_engine_merge__in_place_rewrite_fails_readers(void)
{
	merge_fixture f;
	char buf[512];

	make_dir();
	write_file("memory-a.json",
		   "[" E("a1", "2025-01-01T00:00:03Z", 1, "a", "1") "]");
	fixture_open(&f);
	usleep(20000); /* let the clock tick so mtime differs */
	write_file("memory-a.json",
		   "[" E("a1", "2025-01-01T00:00:03Z", 1, "a", "2") "]");
	ASSERT_EQ_INT(read_all(f.v, buf, sizeof(buf)), -EIO);
	fixture_close(&f);
	remove_dir();
}

static void test_engine_merge__merge_paths(void)
{
	desc_descriptor *desc = NULL;
	engine_view *v = NULL;
	char a[300], b[300], buf[1024];
	const char *paths[2] = { a, b };
	ssize_t n;

	make_dir();
	write_file("x", "[" E("k", "2025-01-01T00:00:03Z", 1, "a", "1") "]");
	write_file("y", "[" E("k", "2025-01-01T00:00:03Z", 2, "b", "2") "]");
	snprintf(a, sizeof(a), "%s/x", tmpdir);
	snprintf(b, sizeof(b), "%s/y", tmpdir);
	ASSERT_TRUE(desc_default(&desc) == 0);
	ASSERT_TRUE(engine_merge_paths(&v, desc, paths, 2) == 0);
	n = read_all(v, buf, sizeof(buf) - 1);
	ASSERT_TRUE(n > 0);
	buf[n > 0 ? n : 0] = 0;
	ASSERT_EQ_STR(buf, "[\n" E("k", "2025-01-01T00:00:03Z", 2, "b", "2")
			   "\n]\n");
	engine_view_unref(v);
	desc_free(desc);
	remove_dir();
}


/* An entry larger than the batch limit goes through the resumable cursor. */
static void test_engine_merge__large_pretty_entry_in_pieces(void)
{
	merge_fixture f;
	engine_reader *r = NULL;
	size_t big = 300 * 1024, len, off, i, sizes[] = { 4096, 65536, 7777 };
	char *text = malloc(big + 1024), *whole, *buf = malloc(70000);

	make_dir();
	/* Pretty-printed, so every piece must be canonicalised. */
	strcpy(text, "[\n  {\n    \"s\" : \"");
	for (i = strlen(text); i < big; i++)
		text[i] = (char)('a' + i % 26);
	strcpy(text + big, "\",\n    \"_crdt_metadata\" : { \"unique_id\" : "
			   "\"u\", \"timestamp\" : \"2025-01-01T00:00:00Z\", "
			   "\"version\" : 1, \"host\" : \"h\" }\n  }\n]\n");
	write_file("memory-a.json", text);
	whole = merge_dir(&len);
	ASSERT_TRUE(len > big);
	{
		/* Independent expectation: blanks outside strings dropped
		 * (the text has no escapes), inside the array layout. */
		char *want = malloc(big + 1024), *w = want;
		const char *t = strchr(text, '{');
		int in_str = 0;

		w += sprintf(w, "[\n");
		for (; *t && !(t[0] == '}' && !in_str && t[1] == '\n' &&
			       t[2] == ']'); t++) {
			if (*t == '"')
				in_str = !in_str;
			if (in_str || !strchr(" \n", *t))
				*w++ = *t;
		}
		w += sprintf(w, "}\n]\n");
		ASSERT_EQ_MEM(whole, len, want, (size_t)(w - want));
		free(want);
	}
	fixture_open(&f);
	ASSERT_TRUE(engine_reader_new(&r, f.v) == 0);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (off = 0; off < len; off += sizes[i]) {
			ssize_t n = engine_reader_read(r, buf, sizes[i], off);

			if (n <= 0 || memcmp(buf, whole + off, (size_t)n)) {
				printf("# mismatch at %zu (piece %zu)\n", off,
				       sizes[i]);
				harness_failed = 1;
				break;
			}
		}
	}
	/* A step back inside the entry restarts its cursor. */
	ASSERT_EQ_INT(engine_reader_read(r, buf, 100, 5000), 100);
	ASSERT_TRUE(memcmp(buf, whole + 5000, 100) == 0);
	engine_reader_free(r);
	fixture_close(&f);
	free(whole);
	free(text);
	free(buf);
	remove_dir();
}

/*
 * Host files for a view of several MiB: `hosts` files of `n` entries of
 * about 1 KiB, compact and pretty-printed in turn, in no time order, plus
 * one 300 KiB pretty entry that spans chunks of the writer.
 */
static void write_big_corpus(int hosts, int n)
{
	char path[256], pad[801];
	int h, j;

	memset(pad, 'p', 800);
	pad[800] = 0;
	for (h = 0; h < hosts; h++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/memory-%02d.json", tmpdir, h);
		f = fopen(path, "w");
		fputs("[\n", f);
		for (j = 0; j < n; j++) {
			int t = (j * 7919 + h * 13) % (n * hosts);

			fprintf(f, j % 2 ? "{\"id\":\"h%d-%d\",\"pad\":\"%.*s\","
					   "\"_crdt_metadata\":{\"host\":\"h%d\","
					   "\"timestamp\":\"2025-01-01T%02d:%02d:%02dZ\","
					   "\"version\":1,\"unique_id\":\"h%d-%d\"}}" :
					   "  {\n    \"id\" : \"h%d-%d\",\n    \"pad\" : \"%.*s\",\n"
					   "    \"_crdt_metadata\" : { \"host\" : \"h%d\",\n"
					   "      \"timestamp\" : \"2025-01-01T%02d:%02d:%02dZ\",\n"
					   "      \"version\" : 1, \"unique_id\" : \"h%d-%d\" }\n  }",
				h, j, 700 + j % 100, pad, h, t / 3600,
				t / 60 % 60, t % 60, h, j);
			fputs(",\n", f);
		}
		fputs("  {\n    \"big\" : \"", f);
		for (j = 0; j < 300 * 1024 / 800; j++)
			fputs(pad, f);
		fprintf(f, "\",\n    \"_crdt_metadata\" : { \"host\" : \"h%d\", "
			   "\"timestamp\" : \"2025-01-01T00:30:00Z\", "
			   "\"version\" : 1, \"unique_id\" : \"big-%d\" }\n  }\n]\n",
			h, h);
		fclose(f);
	}
}

/* The whole view, read by one reader in 64 KiB pieces. */
static char *read_sequential(engine_view *v)
{
	size_t len = engine_view_size(v), off;
	char *out = malloc(len + 1);
	engine_reader *r = NULL;

	ASSERT_TRUE(engine_reader_new(&r, v) == 0);
	for (off = 0; r && off < len; off += 65536)
		ASSERT_TRUE(engine_reader_read(r, out + off, 65536, off) > 0);
	engine_reader_free(r);
	return out;
}

static void test_engine_merge__parallel_write_equals_reader(void)
{
	merge_fixture f;
	size_t len;
	char *want, *got;
	int memfd = memfd_create("out", 0);

	make_dir();
	write_big_corpus(3, 2000);
	fixture_open(&f);
	len = engine_view_size(f.v);
	ASSERT_TRUE(len > 5 * 1024 * 1024); /* several writer chunks */
	want = read_sequential(f.v);
	ASSERT_TRUE(engine_view_write(f.v, memfd) == 0);
	got = malloc(len);
	ASSERT_EQ_INT(lseek(memfd, 0, SEEK_END), len);
	ASSERT_EQ_INT(pread(memfd, got, len, 0), len);
	ASSERT_EQ_MEM(got, len, want, len);
	free(got);
	free(want);
	close(memfd);
	fixture_close(&f);
	remove_dir();
}

typedef struct {
	engine_reader *r;
	char *out;
	size_t len, piece;
	int first, step;
	ssize_t fail; /* first failed read's result, or 0 */
} read_job;

static void *read_pieces(void *arg)
{
	read_job *j = arg;
	size_t off;

	for (off = (size_t)j->first * j->piece; off < j->len;
	     off += (size_t)j->step * j->piece) {
		ssize_t n = engine_reader_read(j->r, j->out + off, j->piece,
					       off);

		if (n <= 0 && !j->fail)
			j->fail = n ? n : -1;
	}
	return NULL;
}

/* Reads of one reader from several threads at once, as FUSE does. */
static void test_engine_merge__concurrent_reads_of_one_reader(void)
{
	merge_fixture f;
	engine_reader *r = NULL;
	read_job jobs[4];
	pthread_t tids[4];
	/* Readahead-sized pieces, then odd ones cutting through entries. */
	static const size_t pieces[] = { 131072, 4099 };
	size_t len, p;
	char *want, *got;
	int i;

	make_dir();
	write_big_corpus(3, 1000);
	fixture_open(&f);
	len = engine_view_size(f.v);
	want = read_sequential(f.v);
	got = malloc(len);
	ASSERT_TRUE(engine_reader_new(&r, f.v) == 0);
	for (p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
		memset(got, 0, len);
		for (i = 0; i < 4; i++) {
			jobs[i] = (read_job){ r, got, len, pieces[p], i, 4, 0 };
			ASSERT_TRUE(pthread_create(&tids[i], NULL, read_pieces,
						   &jobs[i]) == 0);
		}
		for (i = 0; i < 4; i++) {
			pthread_join(tids[i], NULL);
			ASSERT_EQ_INT(jobs[i].fail, 0);
		}
		ASSERT_EQ_MEM(got, len, want, len);
	}
	engine_reader_free(r);
	free(got);
	free(want);
	fixture_close(&f);
	remove_dir();
}

/* A source rewritten in place under the view: every thread stops, -EIO. */
static void test_engine_merge__parallel_write_fails_on_change(void)
{
	merge_fixture f;
	char path[256];
	int memfd = memfd_create("out", 0), fd;

	make_dir();
	write_big_corpus(3, 2000);
	fixture_open(&f);
	snprintf(path, sizeof(path), "%s/memory-01.json", tmpdir);
	fd = open(path, O_WRONLY | O_TRUNC);
	ASSERT_TRUE(write(fd, "[]", 2) == 2);
	close(fd);
	ASSERT_EQ_INT(engine_view_write(f.v, memfd), -EIO);
	ASSERT_TRUE(lseek(memfd, 0, SEEK_END) < (off_t)engine_view_size(f.v));
	close(memfd);
	fixture_close(&f);
	remove_dir();
}

/* A write that fails at once stops the workers (no hang, no leak). */
static void test_engine_merge__parallel_write_fails_on_output(void)
{
	merge_fixture f;
	int fd, pipefd[2];

	make_dir();
	write_big_corpus(3, 2000);
	fixture_open(&f);
	fd = open("/dev/full", O_WRONLY);
	if (fd >= 0) {
		ASSERT_EQ_INT(engine_view_write(f.v, fd), -ENOSPC);
		close(fd);
	}
	signal(SIGPIPE, SIG_IGN);
	ASSERT_TRUE(pipe(pipefd) == 0);
	close(pipefd[0]);
	ASSERT_EQ_INT(engine_view_write(f.v, pipefd[1]), -EPIPE);
	close(pipefd[1]);
	signal(SIGPIPE, SIG_DFL);
	fixture_close(&f);
	remove_dir();
}

static const harness_case cases[] = {
	TEST(test_engine_merge__lww_by_parsed_time),
	TEST(test_engine_merge__tie_breaks),
	TEST(test_engine_merge__formatting_and_order_do_not_matter),
	TEST(test_engine_merge__empty_inputs),
	TEST(test_engine_merge__reads_at_every_offset),
	TEST(test_engine_merge__refresh_is_incremental),
	TEST(test_engine_merge__preserved_source_keeps_generation),
	TEST(test_engine_merge__in_place_rewrite_fails_readers),
	TEST(test_engine_merge__merge_paths),
	TEST(test_engine_merge__large_pretty_entry_in_pieces),
	TEST(test_engine_merge__parallel_write_equals_reader),
	TEST(test_engine_merge__concurrent_reads_of_one_reader),
	TEST(test_engine_merge__parallel_write_fails_on_change),
	TEST(test_engine_merge__parallel_write_fails_on_output),
};

HARNESS_MAIN(cases)
