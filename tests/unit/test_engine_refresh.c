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
#include <sys/stat.h>
#include <unistd.h>

#include "merge_fixture.h"
#include "engine_i.h"

#define HOSTS 6
#define KEYS 40
#define ROUNDS 300

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
 * grows; when `may_edit`, sometimes also change a byte before them (same
 * length), which a refresh must notice although the file only seems to
 * have grown.
 */
static void append_host(unsigned h, int may_edit)
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
		/* Sometimes right after a last line without its LF. */
		if (pick(4) == 0)
			c = '\n';
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
	if (may_edit && pick(4) == 0) {
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

/* A long-lived merge of tmpdir, as a mount keeps one. */
typedef struct {
	desc_descriptor *desc;
	int dirfd;
	engine_merge *live;
} live_merge;

static void live_open(live_merge *l)
{
	l->dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	ASSERT_TRUE(l->dirfd >= 0);
	ASSERT_TRUE(desc_default(&l->desc) == 0);
	ASSERT_TRUE(engine_merge_new(&l->live, l->desc, l->dirfd) == 0);
	engine_merge_live(l->live);
}

static void live_close(live_merge *l)
{
	engine_merge_free(l->live);
	desc_free(l->desc);
	close(l->dirfd);
	remove_dir();
}

/* Do two problem lists say the same, line for line? */
static int problems_equal(const engine_problems *a, const engine_problems *b,
			  int show)
{
	char x[512], y[512];
	size_t i;

	if (a->count != b->count) {
		if (show)
			printf("# %zu problems live, %zu fresh\n", a->count,
			       b->count);
		return 0;
	}
	for (i = 0; i < a->count; i++) {
		engine_problem_format(&a->items[i], x, sizeof(x));
		engine_problem_format(&b->items[i], y, sizeof(y));
		if (strcmp(x, y) != 0) {
			if (show)
				printf("# live:  %s\n# fresh: %s\n", x, y);
			return 0;
		}
	}
	return 1;
}

/*
 * Refresh the live merge and compare its bytes and problems with a fresh
 * merge of the same files.  @return 1 when equal (else the first
 * difference is shown when `show`)
 */
static int live_equals_fresh(live_merge *l, int show)
{
	engine_view *v = NULL;
	merge_fixture fresh;
	size_t a_len, b_len;
	char *a, *b;
	int same;

	ASSERT_TRUE(engine_merge_refresh(l->live, &v) == 0);
	fixture_open(&fresh);
	a = view_bytes(v, &a_len);
	b = view_bytes(fresh.v, &b_len);
	same = a_len == b_len && memcmp(a, b, a_len) == 0;
	if (!same && show)
		printf("# live:  %s\n# fresh: %s\n", a, b);
	same = same && problems_equal(engine_view_problems(v),
				      engine_view_problems(fresh.v), show);
	free(a);
	free(b);
	fixture_close(&fresh);
	engine_view_unref(v);
	return same;
}

/*
 * Cut 1 to 3 bytes off the end of host h, as a torn write or an editor
 * that drops the final LF does; appends then continue the cut line.
 */
static void cut_tail(unsigned h)
{
	char path[160];
	struct stat st;
	off_t cut = 1 + (off_t)pick(3);

	host_path(path, sizeof(path), h);
	if (stat(path, &st) == 0)
		ASSERT_TRUE(truncate(path, st.st_size > cut ?
						   st.st_size - cut : 0) == 0);
}

static void test_engine_refresh__random_updates_equal_fresh_merges(void)
{
	unsigned long updates0 = engine__merge_updates();
	unsigned long resumes0 = engine__source_resumes();
	live_merge l;
	int round, mismatches = 0;
	char name[64];
	unsigned h;

	make_dir();
	for (h = 0; h < HOSTS; h++)
		rewrite_host(h);
	live_open(&l);
	for (round = 0; round < ROUNDS; round++) {
		unsigned changes = pick(3), c;

		for (c = 0; c < changes; c++) {
			h = pick(HOSTS);
			switch (pick(5)) {
			case 0:
			case 1:
				append_host(h, 1);
				break;
			case 2:
				cut_tail(h);
				break;
			default:
				rewrite_host(h);
			}
			/* As the mount's watcher does: a rewrite within one
			 * clock tick may keep size and mtime. */
			host_name(name, sizeof(name), h);
			engine_merge_invalidate(l.live, name);
		}
		if (!live_equals_fresh(&l, mismatches == 0) &&
		    mismatches++ == 0)
			printf("# round %d differs (above)\n", round);
	}
	ASSERT_EQ_INT(mismatches, 0);
	/* Most rounds changed 1 or 2 of 6 files: the update path ran. */
	printf("# %lu of %d refreshes were incremental updates\n",
	       engine__merge_updates() - updates0, ROUNDS);
	ASSERT_TRUE(engine__merge_updates() - updates0 > ROUNDS / 3);
	/* About half the changes were appends: most scans resumed. */
	printf("# %lu host file scans resumed after an append\n",
	       engine__source_resumes() - resumes0);
	ASSERT_TRUE(engine__source_resumes() - resumes0 > ROUNDS / 6);
	live_close(&l);
}

/*
 * A mount of one host file that keeps growing: every refresh resumes the
 * scan and updates the previous result (the file is all the records, but
 * only its new entries need merging), and still equals a fresh merge.
 */
static void test_engine_refresh__one_growing_file_is_updated(void)
{
	unsigned long updates, resumes;
	live_merge l;
	int round;

	make_dir();
	do
		rewrite_host(0);
	while (!host_entries[0]);
	live_open(&l);
	ASSERT_TRUE(live_equals_fresh(&l, 1));
	for (round = 1; round < 20; round++) {
		updates = engine__merge_updates();
		resumes = engine__source_resumes();
		append_host(0, 0);
		engine_merge_invalidate(l.live, "memory-h0.json");
		ASSERT_TRUE(live_equals_fresh(&l, 1));
		ASSERT_EQ_INT(engine__source_resumes(), resumes + 1);
		ASSERT_EQ_INT(engine__merge_updates(), updates + 1);
	}
	live_close(&l);
}

/* One JSON Lines line of kind k: an entry, an entry without a key, an
 * entry without a timestamp, or a line that is not JSON. */
static void write_line(FILE *f, unsigned k, unsigned n)
{
	static const char *const lines[] = {
		"{\"n\": %u, \"_crdt_metadata\": {\"host\": \"h0\", "
		"\"timestamp\": \"2025-01-01T00:00:00Z\", \"version\": 1, "
		"\"unique_id\": \"u%u\"}}\n",
		"{\"n\": %u, \"no key\": %u}\n",
		"{\"n\": %u, \"_crdt_metadata\": {\"host\": \"h0\", "
		"\"version\": 1, \"unique_id\": \"t%u\"}}\n",
		"not json %u %u\n",
	};

	fprintf(f, lines[k], n, n);
}

/*
 * A growing host file with warnings (no key, no timestamp) and errors
 * (lines that are not JSON), past both per-file listing limits: every
 * append still resumes the scan, and the view's bytes and problems equal
 * those of a fresh merge.
 */
static void test_engine_refresh__growing_file_with_problems_resumes(void)
{
	unsigned long resumes;
	unsigned n = 0, i;
	char path[160];
	live_merge l;
	FILE *f;
	int round;

	make_dir();
	host_path(path, sizeof(path), 0);
	f = fopen(path, "w");
	ASSERT_TRUE(f != NULL);
	for (i = 0; i < 8; i++, n++)
		write_line(f, i % 4, n);
	fclose(f);
	live_open(&l);
	for (round = 0; round < 16; round++) {
		resumes = engine__source_resumes();
		f = fopen(path, "a");
		ASSERT_TRUE(f != NULL);
		for (i = 0; i < 6; i++, n++)
			write_line(f, pick(4), n);
		fclose(f);
		engine_merge_invalidate(l.live, "memory-h0.json");
		ASSERT_TRUE(live_equals_fresh(&l, 1));
		/* The first refresh scans the file; each later one resumes. */
		ASSERT_EQ_INT(engine__source_resumes(), resumes + (round > 0));
	}
	live_close(&l);
}

/* Append `text` to host h. */
static void append_text(unsigned h, const char *text)
{
	char path[160];
	FILE *f;

	host_path(path, sizeof(path), h);
	f = fopen(path, "a");
	ASSERT_TRUE(f != NULL);
	fputs(text, f);
	fclose(f);
}

/*
 * A JSON Lines file loses its final LF, then grows on that same line:
 * the line is no longer an object, so its entry must leave the view (a
 * scan mark at the LF instead of past it kept the entry).
 */
static void test_engine_refresh__lost_final_lf_then_growth(void)
{
	struct stat st;
	char path[160];
	live_merge l;
	FILE *f;

	make_dir();
	host_path(path, sizeof(path), 0);
	f = fopen(path, "w");
	ASSERT_TRUE(f != NULL);
	write_line(f, 0, 1);
	write_line(f, 0, 2);
	fclose(f);
	live_open(&l);
	ASSERT_TRUE(live_equals_fresh(&l, 1));
	ASSERT_TRUE(stat(path, &st) == 0);
	ASSERT_TRUE(truncate(path, st.st_size - 1) == 0);
	engine_merge_invalidate(l.live, "memory-h0.json");
	ASSERT_TRUE(live_equals_fresh(&l, 1));
	append_text(0, "xyz");
	engine_merge_invalidate(l.live, "memory-h0.json");
	ASSERT_TRUE(live_equals_fresh(&l, 1));
	f = fopen(path, "a");
	ASSERT_TRUE(f != NULL);
	fputs("\n", f);
	write_line(f, 0, 3);
	fclose(f);
	engine_merge_invalidate(l.live, "memory-h0.json");
	ASSERT_TRUE(live_equals_fresh(&l, 1));
	live_close(&l);
}

/* Flip the digit of the first "body": N at or after byte `from` of host h. */
static void edit_body_after(unsigned h, long from)
{
	char path[160], buf[4096];
	size_t n, k;
	FILE *f;

	host_path(path, sizeof(path), h);
	f = fopen(path, "r+");
	ASSERT_TRUE(f != NULL);
	if (!f)
		return;
	fseek(f, from, SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	for (k = 0; k + 8 < n; k++)
		if (memcmp(buf + k, "\"body\": ", 8) == 0)
			break;
	ASSERT_TRUE(k + 8 < n);
	fseek(f, from + (long)k + 8, SEEK_SET);
	fputc(buf[k + 8] == '1' ? '2' : '1', f);
	fclose(f);
}

/*
 * A host file of several 256 KiB blocks: an append resumes after every
 * block is checked (on several threads, a refresh of one file), and an
 * edit of the same length in the first block or in a middle one, made
 * before an append, is found and the file scanned again.
 */
static void test_engine_refresh__large_file_checks_every_block(void)
{
	static const long edits[] = { 100, 2 * ENGINE__CHUNK + 100 };
	unsigned long resumes;
	live_merge l;
	char path[160];
	unsigned i;
	size_t e;
	FILE *f;

	make_dir();
	host_path(path, sizeof(path), 0);
	f = fopen(path, "w");
	ASSERT_TRUE(f != NULL);
	for (i = 0; f && i < 12000; i++) {
		write_entry(f, 0);
		fputc('\n', f);
	}
	if (f)
		fclose(f);
	host_jsonl[0] = 1;
	host_entries[0] = 12000;
	live_open(&l);
	ASSERT_TRUE(live_equals_fresh(&l, 1));
	for (e = 0; e <= sizeof(edits) / sizeof(*edits); e++) {
		/* Appends alone resume; an edit first forces a full scan. */
		resumes = engine__source_resumes();
		append_host(0, 0);
		engine_merge_invalidate(l.live, "memory-h0.json");
		ASSERT_TRUE(live_equals_fresh(&l, 1));
		ASSERT_EQ_INT(engine__source_resumes(), resumes + 1);
		if (e == sizeof(edits) / sizeof(*edits))
			break;
		resumes = engine__source_resumes();
		edit_body_after(0, edits[e]);
		append_host(0, 0);
		engine_merge_invalidate(l.live, "memory-h0.json");
		ASSERT_TRUE(live_equals_fresh(&l, 1));
		ASSERT_EQ_INT(engine__source_resumes(), resumes);
	}
	live_close(&l);
}

static const harness_case cases[] = {
	TEST(test_engine_refresh__one_growing_file_is_updated),
	TEST(test_engine_refresh__growing_file_with_problems_resumes),
	TEST(test_engine_refresh__lost_final_lf_then_growth),
	TEST(test_engine_refresh__random_updates_equal_fresh_merges),
	TEST(test_engine_refresh__large_file_checks_every_block),
};

HARNESS_MAIN(cases)
