/* SPDX-License-Identifier: MIT */
/*
 * test_engine_prepare.c - engine_prepare(): exact host-file bytes, stamps
 * from the injected clock, idempotence, identities, damaged input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "desc.h"
#include "engine.h"
#include "harness.h"
#include "tmpdir.h"

#define T0 "2026-01-01T00:00:00Z"
#define MD(ts, ver, uid)                                           \
	",\"_crdt_metadata\":{\"host\":\"h1\",\"timestamp\":\"" ts \
	"\",\"version\":" #ver ",\"unique_id\":\"" uid "\"}}"

/* Contents of a file in tmpdir; static buffer. */
static const char *get(const char *name)
{
	static char buf[65536];
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	buf[0] = '\0';
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return "(missing)";
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* The last problem as text; static buffer. */
static const char *last_problem(const engine_problems *p)
{
	static char buf[1024];

	buf[0] = '\0';
	if (p->count)
		engine_problem_format(&p->items[p->count - 1], buf, sizeof(buf));
	return buf;
}

/* Does some problem of p, formatted, end with `end`? */
static int has_problem(const engine_problems *p, const char *end)
{
	char buf[1024];
	size_t i, m = strlen(end);

	for (i = 0; i < p->count; i++) {
		size_t n;

		engine_problem_format(&p->items[i], buf, sizeof(buf));
		n = strlen(buf);
		if (n >= m && strcmp(buf + n - m, end) == 0)
			return 1;
		printf("# problem %zu: %s\n", i, buf);
	}
	printf("# none ends with \"%s\"\n", end);
	return 0;
}

static int ends_with(const char *s, const char *end)
{
	size_t n = strlen(s), m = strlen(end);

	if (n >= m && strcmp(s + n - m, end) == 0)
		return 1;
	printf("# \"%s\" does not end with \"%s\"\n", s, end);
	return 0;
}

static int prepare(const char *src, const char *now, engine_prepare_stats *st,
                   engine_problems *probs)
{
	char source[256];
	engine_prepare_opts o = { "h1", source, tmpdir, now, 0 };

	snprintf(source, sizeof(source), "%s/%s", tmpdir, src);
	return engine_prepare(&o, st, probs);
}

/* Assert that memory-h1.json holds each of the n strings want[]. */
static void host_file_has_all(const char *const *want, size_t n)
{
	const char *out = get("memory-h1.json");
	size_t i;

	for (i = 0; i < n; i++)
		ASSERT_TRUE(strstr(out, want[i]) != NULL);
}

/* Entries of the default merged view of tmpdir. */
static int merged_entries(void)
{
	desc_descriptor *d = NULL;
	engine_merge *m = NULL;
	engine_view *v = NULL;
	int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY), n = -1;

	if (dfd >= 0 && desc_default(&d) == 0 &&
	    engine_merge_new(&m, d, dfd) == 0 &&
	    engine_merge_refresh(m, &v) == 0)
		n = (int)engine_view_entries(v);
	engine_view_unref(v);
	engine_merge_free(m);
	desc_free(d);
	if (dfd >= 0)
		close(dfd);
	return n;
}

static const char src1[] =
        "{\"type\":\"entity\",\"name\":\"b\",\"entityType\":\"t\","
        "\"observations\":[\"x\"]}\n"
        "{\"type\":\"entity\",\"name\":\"a\",\"entityType\":\"t\","
        "\"observations\":[]}\n"
        "{\"type\":\"relation\",\"from\":\"a\",\"to\":\"b\","
        "\"relationType\":\"r\"}\n";

static const char want1[] =
        "[\n"
        "{\"type\":\"entity\",\"name\":\"a\",\"entityType\":\"t\","
        "\"observations\":[]" MD(
                "2026-01-01T00:00:00.000000000Z", 1,
                "entity:a") ",\n"
                            "{\"type\":\"entity\",\"name\":\"b\",\"entityType\":\"t\","
                            "\"observations\":[\"x\"]" MD(
                                    "2026-01-01T00:00:00.000000000Z", 1,
                                    "entity:b") ",\n"
                                                "{\"type\":\"relation\",\"from\":\"a\",\"to\":\"b\","
                                                "\"relationType\":\"r\"" MD(
                                                        "2026-01-01T00:00:00.000000000Z",
                                                        1,
                                                        "relation:1:a,1:b,1:r") "\n"
                                                                                "]\n";

static void test_engine_prepare__new_entries_stamped(void)
{
	engine_prepare_stats st;
	engine_problems p;

	make_dir();
	engine_problems_init(&p);
	write_file("m.jsonl", src1);
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	ASSERT_EQ_INT(p.count, 0);
	ASSERT_EQ_INT(st.added, 3);
	ASSERT_EQ_INT(st.entries, 3);
	ASSERT_EQ_INT(st.written, 1);
	ASSERT_EQ_STR(st.stamp, "2026-01-01T00:00:00.000000000Z");
	ASSERT_EQ_STR(get("memory-h1.json"), want1);
	engine_problems_dispose(&p);
	remove_dir();
}

static void test_engine_prepare__unchanged_source_no_rewrite(void)
{
	engine_prepare_stats st;
	engine_problems p;
	struct stat a, b;
	char path[128];

	make_dir();
	engine_problems_init(&p);
	write_file("m.jsonl", src1);
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	snprintf(path, sizeof(path), "%s/memory-h1.json", tmpdir);
	ASSERT_EQ_INT(stat(path, &a), 0);
	/* Same content, other order and spacing, a later clock. */
	write_file("m.jsonl",
	    "\n{ \"type\": \"relation\", \"to\": \"b\", \"from\": \"a\","
	    " \"relationType\": \"r\" }\n"
	    "{\"name\":\"a\",\"type\":\"entity\",\"observations\":[],"
	    "\"entityType\":\"t\"}\n"
	    "{\"type\":\"entity\",\"name\":\"b\",\"entityType\":\"t\","
	    "\"observations\":[\"x\"]}\n");
	ASSERT_EQ_INT(prepare("m.jsonl", "2026-02-01T00:00:00Z", &st, &p), 0);
	ASSERT_EQ_INT(st.unchanged, 3);
	ASSERT_EQ_INT(st.written, 0);
	ASSERT_EQ_STR(st.stamp, "");
	ASSERT_EQ_STR(get("memory-h1.json"), want1);
	ASSERT_EQ_INT(stat(path, &b), 0);
	ASSERT_EQ_INT(a.st_ino, b.st_ino);
	ASSERT_EQ_INT(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
	ASSERT_EQ_INT(p.count, 0);
	engine_problems_dispose(&p);
	remove_dir();
}

static void test_engine_prepare__change_and_clock_set_back(void)
{
	engine_prepare_stats st;
	engine_problems p;
	const char *out;

	make_dir();
	engine_problems_init(&p);
	write_file("m.jsonl", src1);
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	write_file("m.jsonl",
	    "{\"type\":\"entity\",\"name\":\"b\",\"entityType\":\"t\","
	    "\"observations\":[\"x\",\"y\"]}\n"
	    "{\"type\":\"entity\",\"name\":\"a\",\"entityType\":\"t\","
	    "\"observations\":[]}\n"
	    "{\"type\":\"relation\",\"from\":\"a\",\"to\":\"b\","
	    "\"relationType\":\"r\"}\n");
	/* The wall clock went back a day: the stamp is newest + 1 ns. */
	ASSERT_EQ_INT(prepare("m.jsonl", "2025-12-31T00:00:00Z", &st, &p), 0);
	ASSERT_EQ_INT(st.changed, 1);
	ASSERT_EQ_INT(st.unchanged, 2);
	ASSERT_EQ_STR(st.stamp, "2026-01-01T00:00:00.000000001Z");
	out = get("memory-h1.json");
	ASSERT_TRUE(strstr(out, "\"observations\":[\"x\",\"y\"]" MD(
	                                "2026-01-01T00:00:00.000000001Z", 2,
	                                "entity:b") "\n]\n") != NULL);
	/* A removed entry leaves the host file. */
	write_file("m.jsonl", "{\"type\":\"entity\",\"name\":\"a\","
	               "\"entityType\":\"t\",\"observations\":[]}\n");
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.removed, 2);
	ASSERT_EQ_INT(st.entries, 1);
	engine_problems_dispose(&p);
	remove_dir();
}

static void test_engine_prepare__identities(void)
{
	engine_prepare_stats st;
	engine_problems p;
	const char *out;

	make_dir();
	engine_problems_init(&p);
	write_file("m.json",
	    "[ {\"id\": 7, \"v\": 1.50},\n"
	    "  {\"id\": \"x\"},\n"
	    "  {\"id\": \"x\", \"second\": true},\n"
	    "  {},\n"
	    "  {\"k\": 1, \"_crdt_metadata\": {\"unique_id\": \"mine\","
	    " \"timestamp\": \"2020-01-01T00:00:00Z\"}} ]");
	ASSERT_EQ_INT(prepare("m.json", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.entries, 5);
	/* An entry that brings its metadata is new here all the same. */
	ASSERT_EQ_INT(st.added, 5);
	ASSERT_EQ_INT(st.changed, 0);
	out = get("memory-h1.json");
	/* Carried metadata kept as it is (and sorted first: oldest). */
	{
		static const char lead[] =
			"[\n{\"k\":1,\"_crdt_metadata\":{\"unique_id\":"
			"\"mine\",";

		ASSERT_TRUE(strncmp(out, lead, sizeof(lead) - 1) == 0);
	}
	ASSERT_TRUE(strstr(out, "{\"id\":7,\"v\":1.50,\"_crdt_metadata\"") !=
	            NULL);
	ASSERT_TRUE(strstr(out, "\"unique_id\":\"id:7\"") != NULL);
	ASSERT_TRUE(strstr(out, "\"unique_id\":\"id:x\"") != NULL);
	ASSERT_TRUE(strstr(out, "\"unique_id\":\"dup2:id:x\"") != NULL);
	/* {} : git blob SHA-1 of "{}". */
	ASSERT_TRUE(strstr(out, "{\"_crdt_metadata\":{\"host\":\"h1\"") !=
	            NULL);
	ASSERT_TRUE(strstr(out, "\"unique_id\":\"content:"
	                        "9e26dfeeb6e641a33dae4961196235bdb965b21b\"") !=
	            NULL);
	engine_problems_dispose(&p);
	remove_dir();
}

/*
 * Names holding a NUL (\u0000) are identities of their own: "a\u0000b" is
 * not "a".  unique_ids are the git blob ids of the identity bytes.
 */
static void test_engine_prepare__identities_with_nul(void)
{
	static const char *const want[] = {
		"\"unique_id\":\"entity:a\"",
		/* entity:a NUL b, then its second occurrence (dup2:) */
		"sha1:d69369dbca14027a7606219329e88c745d5f1b8c",
		"sha1:ed64b5e3566f22ffd9a1c5ac66a28a51637ce2f7",
		/* relation:3:x NUL p,1:y,1:r */
		"sha1:d4cd5e792ea071500d563f4b52cb919f81e8efa4",
		/* id:k NUL z */
		"sha1:1d99cb99760c003d93bf3f1025940a8707649673",
	};
	engine_prepare_stats st;
	engine_problems p;

	make_dir();
	engine_problems_init(&p);
	write_file("m.jsonl",
	    "{\"type\":\"entity\",\"name\":\"a\"}\n"
	    "{\"type\":\"entity\",\"name\":\"a\\u0000b\"}\n"
	    "{\"type\":\"entity\",\"name\":\"a\\u0000b\",\"n\":2}\n"
	    "{\"type\":\"relation\",\"from\":\"x\\u0000p\",\"to\":\"y\","
	    "\"relationType\":\"r\"}\n"
	    "{\"type\":\"relation\",\"from\":\"x\\u0000q\",\"to\":\"y\","
	    "\"relationType\":\"r\"}\n"
	    "{\"id\":\"k\\u0000z\"}\n"
	    "{\"id\":\"k\\u0000y\"}\n");
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.entries, 7);
	ASSERT_EQ_INT((int)p.count, 0);
	host_file_has_all(want, sizeof(want) / sizeof(want[0]));
	/* seven entries, seven keys: nothing collapsed */
	ASSERT_EQ_INT(merged_entries(), 7);
	engine_problems_dispose(&p);
	remove_dir();
}

/*
 * A duplicate's identity is never a real one: the second "a" used to be
 * "entity:a#2", the identity of an entity named "a#2", and one of the two
 * left the merged view (and every run re-stamped them).
 */
static void test_engine_prepare__duplicates_never_collide(void)
{
	static const char *const want[] = {
		"\"unique_id\":\"entity:a\"",
		"\"unique_id\":\"dup2:entity:a\"",
		"\"unique_id\":\"entity:a#2\"",
		"\"unique_id\":\"entity:dup2:entity:a\"",
	};
	engine_prepare_stats st;
	engine_problems p;

	make_dir();
	engine_problems_init(&p);
	write_file("m.jsonl",
	    "{\"type\":\"entity\",\"name\":\"a\",\"n\":1}\n"
	    "{\"type\":\"entity\",\"name\":\"a\",\"n\":2}\n"
	    "{\"type\":\"entity\",\"name\":\"a#2\",\"n\":3}\n"
	    "{\"type\":\"entity\",\"name\":\"dup2:entity:a\",\"n\":4}\n");
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	host_file_has_all(want, sizeof(want) / sizeof(want[0]));
	ASSERT_EQ_INT(merged_entries(), 4);
	ASSERT_EQ_INT(prepare("m.jsonl", "2026-02-01T00:00:00Z", &st, &p), 0);
	ASSERT_EQ_INT(st.unchanged, 4);
	ASSERT_EQ_INT(st.written, 0);
	ASSERT_EQ_INT((int)p.count, 0);
	engine_problems_dispose(&p);
	remove_dir();
}

static void test_engine_prepare__damaged_inputs(void)
{
	engine_prepare_stats st;
	engine_problems p;
	const char *out;

	make_dir();
	engine_problems_init(&p);
	/* A truncated host file: its good entries still count. */
	write_file("memory-h1.json",
	    "[\n{\"type\":\"entity\",\"name\":\"a\",\"entityType\":\"t\","
	    "\"observations\":[]" MD(
	            "2026-03-01T00:00:00Z", 4,
	            "entity:a") ",\n{\"type\":\"entity\",\"name\":\"b\",\"ent");
	write_file("m.jsonl", "{\"type\":\"entity\",\"name\":\"a\",\"entityType\":"
	               "\"t\",\"observations\":[]}\nnot json\n"
	               "{\"type\":\"entity\",\"name\":\"b\",\"entityType\":"
	               "\"t\",\"observations\":[]}\n");
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	ASSERT_TRUE(p.count >= 2);
	ASSERT_EQ_INT(st.unchanged, 1);
	ASSERT_EQ_INT(st.added, 1);
	out = get("memory-h1.json");
	ASSERT_TRUE(strstr(out, MD("2026-03-01T00:00:00Z", 4, "entity:a")) !=
	            NULL);
	ASSERT_TRUE(strstr(out, MD("2026-03-01T00:00:00.000000001Z", 1,
	                           "entity:b")) != NULL);
	engine_problems_dispose(&p);
	remove_dir();
}

/*
 * A source with errors never deletes: entries it no longer lists stay in
 * the host file (a truncated rewrite, the wrong file); a clean source
 * that drops them removes them.
 */
static void test_engine_prepare__damaged_source_never_deletes(void)
{
	static const char abc[] =
		"{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n";
	engine_prepare_stats st;
	engine_problems p;
	char before[65536];

	make_dir();
	engine_problems_init(&p);
	write_file("m.jsonl", abc);
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.entries, 3);
	ASSERT_EQ_INT(st.source_errors, 0);
	snprintf(before, sizeof(before), "%s", get("memory-h1.json"));

	write_file("m.jsonl", "garbage");
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.source_errors, 1);
	ASSERT_EQ_INT(st.written, 0);
	ASSERT_EQ_INT(st.removed, 0);
	ASSERT_EQ_STR(get("memory-h1.json"), before);

	/* a rewrite that died after the first entry */
	write_file("m.jsonl", "{\"id\":\"a\"}\n{\"id\":");
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.entries, 3);
	ASSERT_EQ_INT(st.removed, 0);
	ASSERT_EQ_STR(get("memory-h1.json"), before);
	ASSERT_TRUE(strstr(p.items[p.count - 1].message,
	                   "2 entries it no longer lists are kept") != NULL);

	/* the same, clean: the tool deleted b and c */
	write_file("m.jsonl", "{\"id\":\"a\"}\n");
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.entries, 1);
	ASSERT_EQ_INT(st.removed, 2);
	ASSERT_TRUE(strstr(get("memory-h1.json"), "\"id:b\"") == NULL);
	engine_problems_dispose(&p);
	remove_dir();
}

/* Write an entry {"id":"kN","v":[[...]]} with `arrays` nested arrays. */
static void write_deep(FILE *f, int n, int arrays)
{
	int i;

	fprintf(f, "{\"id\":\"k%d\",\"v\":", n);
	for (i = 0; i < arrays; i++)
		fputc('[', f);
	for (i = 0; i < arrays; i++)
		fputc(']', f);
	fputs("}\n", f);
}

/*
 * An entry the merge would skip in the host file's array (deeper than
 * ENGINE__MAX_DEPTH counting the array) is refused by prepare too, rather
 * than stamped and then lost from the merged view.
 */
static void test_engine_prepare__nesting_limit_of_the_merge(void)
{
	engine_prepare_stats st;
	engine_problems p;
	char path[256];
	FILE *f;

	make_dir();
	engine_problems_init(&p);
	snprintf(path, sizeof(path), "%s/m.jsonl", tmpdir);
	f = fopen(path, "w");
	ASSERT_TRUE(f != NULL);
	write_deep(f, 1, 1022); /* the object and 1022 arrays: 1023 */
	write_deep(f, 2, 1023);
	fclose(f);
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.entries, 1);
	ASSERT_TRUE(strstr(get("memory-h1.json"), "\"id:k1\"") != NULL);
	ASSERT_EQ_INT((int)p.count, 1);
	ASSERT_EQ_INT((int)p.items[0].line, 2);
	ASSERT_EQ_STR(p.items[0].message,
	              "invalid entry skipped: nesting deeper than 1023 levels");
	engine_problems_dispose(&p);
	remove_dir();
}

/* Positions are in bytes, as the merge's: "é" is 2 bytes, "€" 3. */
static void test_engine_prepare__error_columns_in_bytes(void)
{
	engine_prepare_stats st;
	engine_problems p;

	make_dir();
	engine_problems_init(&p);
	write_file("m.jsonl", "{\"id\":\"a\"}\n"
	                      "{\"id\":\"\xc3\xa9\xe2\x82\xac\", x}\n");
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	ASSERT_EQ_INT((int)p.count, 1);
	ASSERT_TRUE(ends_with(last_problem(&p), "/m.jsonl:2:16: error: invalid "
	                      "JSON: expected a string key but found 'x'"));
	engine_problems_dispose(&p);
	remove_dir();
}

/*
 * What the merge reports in an array, prepare reports too, at the same
 * place: a trailing comma (it was taken silently, and the entries the
 * source no longer listed were removed), a raw NUL after a number (jansson
 * takes it for the number's end), data after the array (on its own line).
 */
static void test_engine_prepare__array_errors_as_the_merge_sees_them(void)
{
	static const char nul[] = "[{\"id\":\"x\",\"n\":1\0}]";
	engine_prepare_stats st;
	engine_problems p;

	make_dir();
	engine_problems_init(&p);
	write_file("m.json", "[{\"id\":\"x\"},{\"id\":\"y\"}]");
	ASSERT_EQ_INT(prepare("m.json", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.entries, 2);

	write_file("m.json", "[{\"id\":\"x\"},]");
	ASSERT_EQ_INT(prepare("m.json", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.source_errors, 1);
	ASSERT_EQ_INT(st.removed, 0);
	ASSERT_TRUE(strstr(get("memory-h1.json"), "\"id:y\"") != NULL);
	ASSERT_TRUE(has_problem(&p, "/m.json:1:13: error: invalid JSON: "
	                            "trailing comma before ']'"));
	ASSERT_TRUE(ends_with(last_problem(&p), "/m.json: warning: the file "
	                      "has errors: 1 entry it no longer lists is "
	                      "kept, not removed"));
	engine_problems_dispose(&p);
	engine_problems_init(&p);

	write_bytes("m.json", nul, sizeof(nul) - 1);
	ASSERT_EQ_INT(prepare("m.json", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.source_errors, 1);
	ASSERT_TRUE(has_problem(&p, "/m.json:1:17: error: invalid JSON: "
	                            "expected ',' or '}' but found byte "
	                            "0x00"));
	engine_problems_dispose(&p);
	engine_problems_init(&p);

	write_file("m.json", "[{\"id\":\"x\"},{\"id\":\"y\"}]\n\n\n   xyz\n");
	ASSERT_EQ_INT(prepare("m.json", T0, &st, &p), 0);
	ASSERT_EQ_INT((int)p.count, 1);
	ASSERT_TRUE(ends_with(last_problem(&p), "/m.json:4:4: warning: data "
	                      "after the array ignored"));
	engine_problems_dispose(&p);
	remove_dir();
}

/*
 * A message quoting raw input stays one line, and is the merge's: the
 * scanner's, at the byte it points to (jansson's said "near '...'" with
 * the raw newline, at the end of what it had read).
 */
static void test_engine_prepare__messages_are_one_line(void)
{
	engine_prepare_stats st;
	engine_problems p;

	make_dir();
	engine_problems_init(&p);
	write_file("s.json", "[{\"a\":\"\\u12\n\"}]\n");
	ASSERT_EQ_INT(prepare("s.json", T0, &st, &p), 0);
	ASSERT_EQ_INT((int)p.count, 1);
	ASSERT_TRUE(ends_with(last_problem(&p), "/s.json:1:8: error: invalid "
	                      "\\u escape in string: expected 4 hex digits"));
	engine_problems_dispose(&p);
	remove_dir();
}

/*
 * Numbers are compared as written: an edit past double precision is an
 * edit, while reordered keys and respacing are not.
 */
static void test_engine_prepare__numbers_as_written(void)
{
	engine_prepare_stats st;
	engine_problems p;

	make_dir();
	engine_problems_init(&p);
	write_file("m.jsonl",
	           "{\"id\":\"n\",\"v\":123456789012345678901,"
	           "\"w\":[-1.5e3,0.10000000000000000001,{\"x\":7}]}\n");
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.added, 1);
	/* the same entry, keys reordered and respaced: untouched */
	write_file("m.jsonl",
	           "{ \"w\": [-1.5e3, 0.10000000000000000001, {\"x\": 7}],"
	           " \"v\": 123456789012345678901, \"id\": \"n\" }\n");
	ASSERT_EQ_INT(prepare("m.jsonl", "2026-01-02T00:00:00Z", &st, &p), 0);
	ASSERT_EQ_INT(st.unchanged, 1);
	ASSERT_EQ_INT(st.written, 0);
	/* the last digit of the big integer edited: re-stamped */
	write_file("m.jsonl",
	           "{\"id\":\"n\",\"v\":123456789012345678902,"
	           "\"w\":[-1.5e3,0.10000000000000000001,{\"x\":7}]}\n");
	ASSERT_EQ_INT(prepare("m.jsonl", "2026-01-03T00:00:00Z", &st, &p), 0);
	ASSERT_EQ_INT(st.changed, 1);
	ASSERT_TRUE(strstr(get("memory-h1.json"),
	                   "\"v\":123456789012345678902") != NULL);
	/* and a long fraction */
	write_file("m.jsonl",
	           "{\"id\":\"n\",\"v\":123456789012345678902,"
	           "\"w\":[-1.5e3,0.10000000000000000002,{\"x\":7}]}\n");
	ASSERT_EQ_INT(prepare("m.jsonl", "2026-01-04T00:00:00Z", &st, &p), 0);
	ASSERT_EQ_INT(st.changed, 1);
	ASSERT_EQ_INT((int)p.count, 0);
	engine_problems_dispose(&p);
	remove_dir();
}

static void test_engine_prepare__errors(void)
{
	engine_prepare_stats st;
	engine_problems p;
	char source[128];
	engine_prepare_opts o = { ".bad", source, NULL, NULL, 0 };

	make_dir();
	engine_problems_init(&p);
	o.backing = tmpdir;
	snprintf(source, sizeof(source), "%s/m.jsonl", tmpdir);
	write_file("m.jsonl", "");
	ASSERT_EQ_INT(engine_prepare(&o, &st, &p), -EINVAL);
	o.host = "a/b";
	ASSERT_EQ_INT(engine_prepare(&o, &st, &p), -EINVAL);
	ASSERT_EQ_INT((int)p.count, 0);
	o.host = "h1";
	o.now = "yesterday";
	ASSERT_EQ_INT(engine_prepare(&o, &st, &p), -EDOM);
	ASSERT_EQ_STR(last_problem(&p), "CRDTFS_NOW: error: \"yesterday\" is "
	              "not an RFC 3339 timestamp; nothing written");
	o.now = T0;
	ASSERT_EQ_INT(prepare("nope.jsonl", T0, &st, &p), -ENOENT);
	ASSERT_TRUE(ends_with(last_problem(&p), "/nope.jsonl: error: cannot "
	                      "read: No such file or directory; nothing "
	                      "written"));
	o.backing = "/nonexistent/backing";
	ASSERT_EQ_INT(engine_prepare(&o, &st, &p), -ENOENT);
	ASSERT_EQ_STR(last_problem(&p), "/nonexistent/backing: error: cannot "
	              "read: No such file or directory; nothing written");
	o.backing = tmpdir;
	ASSERT_EQ_INT(prepare(".", T0, &st, &p), -EISDIR);
	ASSERT_TRUE(ends_with(last_problem(&p), "/.: error: cannot read: Is a "
	                      "directory; nothing written"));
	ASSERT_EQ_STR(get("memory-h1.json"), "(missing)");
	/* An empty source gives an empty host file. */
	ASSERT_EQ_INT(engine_prepare(&o, &st, &p), 0);
	ASSERT_EQ_STR(get("memory-h1.json"), "[]\n");
	/* A source of no known kind: where it goes wrong, in the merge's
	 * words for a byte order mark. */
	write_file("bom.json", "\xEF\xBB\xBF[]");
	ASSERT_EQ_INT(prepare("bom.json", T0, &st, &p), 0);
	ASSERT_TRUE(ends_with(last_problem(&p), "/bom.json:1:1: error: byte "
	                      "order mark is not allowed (save the file as "
	                      "UTF-8 without BOM); ignored"));
	write_file("odd.json", "\n  \n  x");
	ASSERT_EQ_INT(prepare("odd.json", T0, &st, &p), 0);
	ASSERT_TRUE(ends_with(last_problem(&p), "/odd.json:3:3: error: neither "
	                      "a JSON array ('[') nor JSON Lines ('{'); "
	                      "ignored"));
	ASSERT_EQ_INT(st.source_errors, 1);
	engine_problems_dispose(&p);
	remove_dir();
}

/* A path in tmpdir, in one of two static buffers used in turn. */
static const char *in_dir(const char *name)
{
	static char path[2][256];
	static int turn;

	turn = !turn;
	snprintf(path[turn], sizeof(path[turn]), "%s/%s", tmpdir, name);
	return path[turn];
}

/*
 * Host files that are not regular files: never followed, never opened in
 * a way that waits (a FIFO with no writer used to hang the prepare), and
 * the host's own one never replaced.  The source may be a pipe.
 */
static void test_engine_prepare__files_of_other_kinds(void)
{
	engine_prepare_stats st;
	engine_problems p;
	char target[64];
	int fds[2];
	pid_t pid;

	make_dir();
	engine_problems_init(&p);
	write_file("m.jsonl", "{\"id\":\"x\"}\n");
	/* another host's file is a FIFO: skipped */
	ASSERT_EQ_INT(mkfifo(in_dir("memory-other.json"), 0644), 0);
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), 0);
	ASSERT_EQ_INT(st.added, 1);
	ASSERT_EQ_INT((int)p.count, 0);
	/* the host's own file is a FIFO, then a symlink: refused */
	ASSERT_EQ_INT(rename(in_dir("memory-h1.json"), in_dir("kept.json")), 0);
	ASSERT_EQ_INT(rename(in_dir("memory-other.json"),
	                     in_dir("memory-h1.json")), 0);
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), -ENODEV);
	ASSERT_TRUE(ends_with(last_problem(&p), "/memory-h1.json: error: "
	                      "cannot read: not a regular file; nothing "
	                      "written"));
	ASSERT_EQ_INT(unlink(in_dir("memory-h1.json")), 0);
	ASSERT_EQ_INT(symlink("kept.json", in_dir("memory-h1.json")), 0);
	ASSERT_EQ_INT(prepare("m.jsonl", T0, &st, &p), -ELOOP);
	ASSERT_TRUE(ends_with(last_problem(&p), "/memory-h1.json: error: "
	                      "cannot read: a symlink (host files are never "
	                      "followed); nothing written"));
	ASSERT_EQ_INT(readlink(in_dir("memory-h1.json"), target,
	                       sizeof(target)), 9);
	ASSERT_EQ_INT(unlink(in_dir("memory-h1.json")), 0);
	/* the source is a pipe */
	ASSERT_EQ_INT(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		static const char more[] = "{\"id\":\"x\"}\n{\"id\":\"y\"}\n";

		close(fds[0]);
		_exit(write(fds[1], more, sizeof(more) - 1) ==
		      (ssize_t)sizeof(more) - 1 ? 0 : 1);
	}
	close(fds[1]);
	ASSERT_EQ_INT(rename(in_dir("kept.json"), in_dir("memory-h1.json")), 0);
	{
		char source[64];
		engine_prepare_opts o = { "h1", source, tmpdir, T0, 0 };

		snprintf(source, sizeof(source), "/proc/self/fd/%d", fds[0]);
		ASSERT_EQ_INT(engine_prepare(&o, &st, &p), 0);
	}
	close(fds[0]);
	waitpid(pid, NULL, 0);
	ASSERT_EQ_INT(st.added, 1);
	ASSERT_EQ_INT(st.unchanged, 1);
	engine_problems_dispose(&p);
	remove_dir();
}

static const harness_case cases[] = {
	TEST(test_engine_prepare__new_entries_stamped),
	TEST(test_engine_prepare__unchanged_source_no_rewrite),
	TEST(test_engine_prepare__change_and_clock_set_back),
	TEST(test_engine_prepare__identities),
	TEST(test_engine_prepare__identities_with_nul),
	TEST(test_engine_prepare__duplicates_never_collide),
	TEST(test_engine_prepare__damaged_inputs),
	TEST(test_engine_prepare__damaged_source_never_deletes),
	TEST(test_engine_prepare__nesting_limit_of_the_merge),
	TEST(test_engine_prepare__messages_are_one_line),
	TEST(test_engine_prepare__numbers_as_written),
	TEST(test_engine_prepare__errors),
	TEST(test_engine_prepare__error_columns_in_bytes),
	TEST(test_engine_prepare__array_errors_as_the_merge_sees_them),
	TEST(test_engine_prepare__files_of_other_kinds),
};

HARNESS_MAIN(cases)
