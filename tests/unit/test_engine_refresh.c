/* SPDX-License-Identifier: MIT */
/*
 * test_engine_refresh.c - a long-lived merge refreshed after random
 * changes to a few host files (the incremental path) gives byte for byte
 * what a fresh merge of the same files gives.
 *
 * The changes are drawn to hit what an update must get right: keys that
 * move between hosts, winners that disappear with their source, exact
 * copies of one entry in several files (ties broken by canonical bytes),
 * equal timestamps, emptied and added host files, and files that grow at
 * the end (scanned from where the last scan stopped), sometimes with a
 * byte changed before the growth, which must force a full scan.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "engine_i.h"

#define HOSTS 6
#define KEYS 40
#define ROUNDS 300

static char tmpdir[64];
static unsigned long long rng = 0x2545f4914f6cdd1dull;

static unsigned pick(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void host_name(char *buf, size_t size, unsigned h)
{
	snprintf(buf, size, "memory-h%u.json", h);
}

/* What each host file holds now, for appends. */
static unsigned host_entries[HOSTS];
static int host_jsonl[HOSTS];

static void write_entry(FILE *f, unsigned h)
{
	/* Few timestamps, versions and bodies: many exact ties. */
	fprintf(f,
		"{\"body\": %u, \"_crdt_metadata\": {\"host\": \"h%u\", "
		"\"timestamp\": \"2025-01-01T00:00:0%uZ\", "
		"\"version\": %u, \"unique_id\": \"k%02u\"}}",
		pick(3), pick(2) ? h : 0, pick(4), pick(2), pick(KEYS));
}

static void host_path(char *buf, size_t size, unsigned h)
{
	char name[64];

	host_name(name, sizeof(name), h);
	snprintf(buf, size, "%s/%s", tmpdir, name);
}

/*
 * Rewrite host h with random entries (or none, or remove the file), as a
 * JSON array or as JSON Lines with or without a final LF.
 */
static void rewrite_host(unsigned h)
{
	char path[160];
	unsigned n, i;
	FILE *f;

	host_path(path, sizeof(path), h);
	host_entries[h] = 0;
	if (pick(12) == 0) {
		unlink(path);
		return;
	}
	f = fopen(path, "w");
	n = pick(8) == 0 ? 0 : 1 + pick(15);
	host_jsonl[h] = pick(3) == 0;
	if (!host_jsonl[h])
		fputs(pick(2) ? "[\n" : "[", f);
	for (i = 0; i < n; i++) {
		if (host_jsonl[h])
			fputs(i ? "\n" : "", f);
		else
			fputs(i ? ",\n  " : "  ", f);
		write_entry(f, h);
	}
	if (!host_jsonl[h])
		fputs("\n]\n", f);
	else if (n && pick(2))
		fputs("\n", f);
	host_entries[h] = n;
	fclose(f);
}

/*
 * Add entries at the end of host h in place, the way a memory file
 * grows; sometimes also change a byte before them (same length), which
 * a refresh must notice although the file only seems to have grown.
 */
static void append_host(unsigned h)
{
	char path[160];
	unsigned more = 1 + pick(3), i;
	long end;
	FILE *f;

	host_path(path, sizeof(path), h);
	if (!host_entries[h] || !(f = fopen(path, "r+"))) {
		rewrite_host(h);
		return;
	}
	fseek(f, 0, SEEK_END);
	end = ftell(f);
	if (host_jsonl[h]) {
		int c;

		fseek(f, end - 1, SEEK_SET);
		c = fgetc(f);
		fseek(f, 0, SEEK_END);
		for (i = 0; i < more; i++) {
			fputs(i == 0 && c == '\n' ? "" : "\n", f);
			write_entry(f, h);
		}
		fputs(pick(2) ? "\n" : "", f);
	} else {
		/* Over the final "\n]\n". */
		fseek(f, end - 3, SEEK_SET);
		for (i = 0; i < more; i++) {
			fputs(",\n  ", f);
			write_entry(f, h);
		}
		fputs("\n]\n", f);
	}
	if (pick(4) == 0) {
		/* "body": N of some entry becomes another digit. */
		char buf[4096];
		size_t n, k;

		fflush(f);
		fseek(f, 0, SEEK_SET);
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		for (k = 0; k + 8 < n; k++)
			if (memcmp(buf + k, "\"body\": ", 8) == 0 && pick(2))
				break;
		if (k + 8 < n) {
			fseek(f, (long)(k + 8), SEEK_SET);
			fputc(buf[k + 8] == '1' ? '2' : '1', f);
		}
	}
	host_entries[h] += more;
	fclose(f);
}

/* The output of a view, as a malloc'd buffer of *len bytes. */
static char *view_bytes(engine_view *v, size_t *len)
{
	int memfd = memfd_create("out", 0);
	char *out;

	ASSERT_TRUE(engine_view_write(v, memfd) == 0);
	*len = (size_t)lseek(memfd, 0, SEEK_END);
	out = calloc(1, *len + 1);
	ASSERT_EQ_INT(pread(memfd, out, *len, 0), *len);
	close(memfd);
	return out;
}

static char *fresh_merge(const desc_descriptor *desc, int dirfd, size_t *len)
{
	engine_merge *m = NULL;
	engine_view *v = NULL;
	char *out;

	ASSERT_TRUE(engine_merge_new(&m, desc, dirfd) == 0);
	ASSERT_TRUE(engine_merge_refresh(m, &v) == 0);
	out = view_bytes(v, len);
	engine_view_unref(v);
	engine_merge_free(m);
	return out;
}

static void test_engine_refresh__random_updates_equal_fresh_merges(void)
{
	desc_descriptor *desc = NULL;
	engine_merge *live = NULL;
	int dirfd, round, mismatches = 0;
	char cmd[128], name[64];
	unsigned h;

	strcpy(tmpdir, "/tmp/crdtfs-refresh-XXXXXX");
	ASSERT_TRUE(mkdtemp(tmpdir) != NULL);
	for (h = 0; h < HOSTS; h++)
		rewrite_host(h);
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	ASSERT_TRUE(desc_default(&desc) == 0);
	ASSERT_TRUE(engine_merge_new(&live, desc, dirfd) == 0);
	engine_merge_expect_appends(live);

	for (round = 0; round < ROUNDS; round++) {
		unsigned changes = pick(3), c;
		engine_view *v = NULL;
		size_t a_len, b_len;
		char *a, *b;

		for (c = 0; c < changes; c++) {
			h = pick(HOSTS);
			if (pick(2))
				append_host(h);
			else
				rewrite_host(h);
			/* As the mount's watcher does: a rewrite within one
			 * clock tick may keep size and mtime. */
			host_name(name, sizeof(name), h);
			engine_merge_invalidate(live, name);
		}
		ASSERT_TRUE(engine_merge_refresh(live, &v) == 0);
		a = view_bytes(v, &a_len);
		b = fresh_merge(desc, dirfd, &b_len);
		if (a_len != b_len || memcmp(a, b, a_len) != 0) {
			if (mismatches++ == 0)
				printf("# round %d differs:\n# live:  %s\n"
				       "# fresh: %s\n",
				       round, a, b);
		}
		free(a);
		free(b);
		engine_view_unref(v);
	}
	ASSERT_EQ_INT(mismatches, 0);
	/* Most rounds changed 1 or 2 of 6 files: the update path ran. */
	printf("# %lu of %d refreshes were incremental updates\n",
	       engine__merge_updates(), ROUNDS);
	ASSERT_TRUE(engine__merge_updates() > ROUNDS / 3);
	/* About half the changes were appends: most scans resumed. */
	printf("# %lu host file scans resumed after an append\n",
	       engine__source_resumes());
	ASSERT_TRUE(engine__source_resumes() > ROUNDS / 6);
	engine_merge_free(live);
	desc_free(desc);
	close(dirfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("# cleanup of %s failed\n", tmpdir);
}

static const harness_case cases[] = {
	TEST(test_engine_refresh__random_updates_equal_fresh_merges),
};

HARNESS_MAIN(cases)
