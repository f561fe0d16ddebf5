/* SPDX-License-Identifier: MIT */
/*
 * test_engine_scan.c - the streaming scanner (engine__scan) and the
 * canonicaliser (engine__canon_chunk).
 *
 * - Chunk invariance: every sample, good and bad, scanned with every
 *   chunk size from 1 to len+1 gives exactly the entries (offsets,
 *   lengths, canon_len, line/column, values) and problems it gives with
 *   ENGINE__CHUNK.
 * - Exact results for the samples, checked field by field.
 * - Bad input: each case's message, line:column and kept entries;
 *   100 000 levels of nesting and a 50 MB string (synthesised by the
 *   reader, so the test itself holds no big buffer) in bounded memory.
 * - JSONTestSuite (shared/testdata): every y_ document is accepted and
 *   every n_ document rejected, wrapped as a value inside an entry.
 * - canon_chunk: equal to a byte-at-a-time reference stripper for every
 *   split point (and every pair of split points on short inputs), and to
 *   the scanner's canon_len.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "engine_i.h"
#include "harness.h"

/* ---- the paths extracted in every test ---- */

static char s_meta[] = "_crdt_metadata", s_uid[] = "unique_id",
            s_ts[] = "timestamp", s_ver[] = "version", s_host[] = "host",
            s_k[] = "k", s_a[] = "a", s_b[] = "b", s_c[] = "c";
static char t_uid[] = "_crdt_metadata.unique_id",
            t_ts[] = "_crdt_metadata.timestamp",
            t_ver[] = "_crdt_metadata.version",
            t_host[] = "_crdt_metadata.host", t_abc[] = "a.b.c", t_ab[] = "a.b";
static char *p_uid[] = { s_meta, s_uid };
static char *p_ts[] = { s_meta, s_ts };
static char *p_ver[] = { s_meta, s_ver };
static char *p_host[] = { s_meta, s_host };
static char *p_k[] = { s_k };
static char *p_abc[] = { s_a, s_b, s_c };
static char *p_meta[] = { s_meta };
static char *p_ab[] = { s_a, s_b };

static desc_path test_paths[] = {
	{ p_uid, 2, t_uid },   { p_ts, 2, t_ts }, { p_ver, 2, t_ver },
	{ p_host, 2, t_host }, { p_k, 1, s_k },   { p_abc, 3, t_abc },
	{ p_meta, 1, s_meta }, { p_ab, 2, t_ab },
};

enum { V_UID, V_TS, V_VER, V_HOST, V_K, V_ABC, V_META, V_AB, NPATHS };

static engine__scan_spec test_spec = {
	{ &test_paths[0], &test_paths[1], &test_paths[2], &test_paths[3],
	  &test_paths[4], &test_paths[5], &test_paths[6], &test_paths[7] },
	NPATHS,
	NULL,
	NULL,
};

/* ---- reading from memory, or from a generator ---- */

typedef struct {
	const char *data;
	size_t len;
	uint64_t fail_at; /* reads reaching past this offset fail; 0: never */
	size_t reads;
} mem_src;

static ssize_t mem_read(void *ctx, char *buf, size_t size, uint64_t off)
{
	mem_src *m = ctx;
	size_t n;

	m->reads++;
	if (m->fail_at && off + size > m->fail_at)
		return -EIO;
	if (off >= m->len)
		return 0;
	n = m->len - off < size ? m->len - off : size;
	memcpy(buf, m->data + off, n);
	return (ssize_t)n;
}

/* head + `count` copies of `fill` + tail, produced on the fly */
typedef struct {
	const char *head, *tail;
	char fill;
	uint64_t count;
} gen_src;

static ssize_t gen_read(void *ctx, char *buf, size_t size, uint64_t off)
{
	const gen_src *g = ctx;
	uint64_t hl = strlen(g->head), tl = strlen(g->tail);
	uint64_t total = hl + g->count + tl;
	size_t i;

	for (i = 0; i < size && off + i < total; i++) {
		uint64_t o = off + i;

		if (o < hl)
			buf[i] = g->head[o];
		else if (o < hl + g->count)
			buf[i] = g->fill;
		else
			buf[i] = g->tail[o - hl - g->count];
	}
	return (ssize_t)i;
}

/* ---- collecting results ---- */

typedef struct {
	int r;
	engine__entry *ents; /* owned */
	size_t nents;
	char **probs; /* owned, formatted problems */
	size_t nprobs;
	size_t total; /* problems they count for (engine_problems_total) */
	int stop_after; /* the callback fails after this many; 0: never */
} result;

static int collect(void *ctx, const engine__entry *e)
{
	result *res = ctx;
	engine__entry *n;

	if (res->stop_after && res->nents == (size_t)res->stop_after)
		return -ECANCELED;
	n = realloc(res->ents, (res->nents + 1) * sizeof(*n));
	if (!n)
		abort();
	res->ents = n;
	res->ents[res->nents++] = *e;
	return 0;
}

static void result_take_problems(result *res, engine_problems *pr)
{
	size_t i;

	res->probs = calloc(pr->count + 1, sizeof(char *));
	for (i = 0; i < pr->count; i++) {
		char buf[512];

		engine_problem_format(&pr->items[i], buf, sizeof(buf));
		res->probs[i] = strdup(buf);
	}
	res->nprobs = pr->count;
	res->total = engine_problems_total(pr);
	engine_problems_dispose(pr);
}

static void result_free(result *res)
{
	size_t i;

	for (i = 0; i < res->nprobs; i++)
		free(res->probs[i]);
	free(res->probs);
	free(res->ents);
	memset(res, 0, sizeof(*res));
}

/*
 * Scan data from mark `from` (NULL: the start), recording the new mark in
 * *mark (may be NULL); the callback fails after `stop` entries (0: never).
 */
static void scan_mem_from(result *res, const char *data, size_t len,
                          size_t chunk, int stop,
                          const engine__scan_mark *from,
                          engine__scan_mark *mark)
{
	mem_src m = { data, len, 0, 0 };
	engine_problems pr;

	memset(res, 0, sizeof(*res));
	res->stop_after = stop;
	engine_problems_init(&pr);
	res->r = engine__scan_from(mem_read, &m, chunk, "f", &test_spec,
	                           collect, res, &pr, from, mark);
	result_take_problems(res, &pr);
}

static void scan_mem_stop(result *res, const char *data, size_t len,
                          size_t chunk, int stop)
{
	scan_mem_from(res, data, len, chunk, stop, NULL, NULL);
}

static void scan_mem(result *res, const char *data, size_t len, size_t chunk)
{
	scan_mem_stop(res, data, len, chunk, 0);
}

static void scan_str(result *res, const char *s, size_t chunk)
{
	scan_mem(res, s, strlen(s), chunk);
}

static void value_dump(const engine__value *v)
{
	static const char *const kinds[] = { "ABSENT", "STRING", "NUMBER",
		                             "OTHER" };

	printf(" %s%s", kinds[v->kind], v->truncated ? "(trunc)" : "");
	if (v->kind == ENGINE__VAL_STRING || v->kind == ENGINE__VAL_NUMBER)
		printf("[%.*s]", (int)v->len, v->text);
}

static void result_dump(const char *label, const result *res)
{
	size_t i, j;

	printf("# %s: r=%d\n", label, res->r);
	for (i = 0; i < res->nents; i++) {
		const engine__entry *e = &res->ents[i];

		printf("#   entry off=%llu raw=%llu canon=%llu %lu:%lu",
		       (unsigned long long)e->offset,
		       (unsigned long long)e->raw_len,
		       (unsigned long long)e->canon_len, e->line, e->column);
		for (j = 0; j < NPATHS; j++)
			value_dump(&e->values[j]);
		printf("\n");
	}
	for (i = 0; i < res->nprobs; i++)
		printf("#   problem %s\n", res->probs[i]);
}

static int value_equal(const engine__value *a, const engine__value *b)
{
	return a->kind == b->kind && a->truncated == b->truncated &&
	       a->len == b->len && memcmp(a->text, b->text, a->len + 1) == 0;
}

static int result_equal(const result *a, const result *b)
{
	size_t i, j;

	if (a->r != b->r || a->nents != b->nents || a->nprobs != b->nprobs)
		return 0;
	for (i = 0; i < a->nents; i++) {
		const engine__entry *x = &a->ents[i], *y = &b->ents[i];

		if (x->offset != y->offset || x->raw_len != y->raw_len ||
		    x->canon_len != y->canon_len || x->line != y->line ||
		    x->column != y->column)
			return 0;
		for (j = 0; j < NPATHS; j++)
			if (!value_equal(&x->values[j], &y->values[j]))
				return 0;
	}
	for (i = 0; i < a->nprobs; i++)
		if (strcmp(a->probs[i], b->probs[i]) != 0)
			return 0;
	return 1;
}

/* ---- a reference whitespace stripper, one byte at a time ---- */

static size_t ref_strip(const char *in, size_t n, char *out)
{
	size_t i, o = 0;
	int str = 0, esc = 0;

	for (i = 0; i < n; i++) {
		char c = in[i];

		if (str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				str = 0;
		} else if (c == '"') {
			str = 1;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			continue;
		}
		out[o++] = c;
	}
	return o;
}

/* ---- samples ---- */

static const char sample_pretty[] =
        "[\n"
        "  {\n"
        "    \"id\": 1,\n"
        "    \"_crdt_metadata\": {\n"
        "      \"host\": \"alpha\",\n"
        "      \"timestamp\": \"2025-01-01T00:00:00Z\",\n"
        "      \"version\": 3,\n"
        "      \"unique_id\": \"u1\"\n"
        "    }\n"
        "  },\n"
        "  {\n"
        "    \"id\": 2,\n"
        "    \"k\": \"top\",\n"
        "    \"_crdt_metadata\": {\"unique_id\": \"u2\", \"version\": "
        "-0.5e+3, \"host\": null}\n"
        "  }\n"
        "]\n";

static const char sample_compact[] =
        "[{\"a\":{\"b\":{\"c\":\"deep\"}},\"k\":1},{\"k\":[1,2,{\"k\":3}]},{}]";

static const char sample_jsonl[] = "{\"k\":\"one\"}\r\n"
                                   "\r\n"
                                   "  {\"k\": 2} \t\r\n"
                                   "\n"
                                   "   \t \n"
                                   "{\"k\":true, \"a\" : { \"b\" : [ ] } }";

static const char sample_unicode[] =
        "[{\"k\":\"caf\\u00e9 \\ud83d\\ude00 \xc3\xa9 \xe6\x97\xa5 "
        "\xf0\x9f\x98\x80 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u0000!\","
        "\"\\u006b\":\"dup\","
        "\"_crdt_metadata\":{\"unique_\\u0069d\":\"esc-key\","
        "\"host\":\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\xe0\xa0\x80\xed\x9f\xbf\"}},\n"
        " {\"k\":\"\\uD834\\uDD1E\\uFFFF\\u0041\"}]";

static const char sample_dups[] =
        "[{\"_crdt_metadata\":{\"host\":\"h1\"},"
        "\"_crdt_metadata\":{\"host\":\"h2\",\"unique_id\":\"x\"}},\n"
        "{\"a\":{\"b\":1},\"a\":{\"b\":{\"c\":2}}},\n"
        "{\"a\":[{\"b\":{\"c\":3}}]},\n"
        "{\"a\":\"str\",\"k\":{\"k\":1}},\n"
        "{\"x\":{\"a\":{\"b\":{\"c\":4}}},\"a\":{\"x\":{\"b\":5},\"b\":"
        "{\"x\":{\"c\":6},\"c\":[7],\"c\":8}}}]";

static const char sample_numbers[] =
        "[{\"k\":-0,\"n\":[0,1,-1,1.5,1e5,1E+5,1e-5,-0.0e0,"
        "123456789012345678901234567890]},{\"k\":1.25E-10}, {\"k\" :0e0}]";

/* every sample used by the chunk-invariance test */
typedef struct {
	const char *name;
	const char *data;
	size_t len;
} sample;

#define SAMPLE(n, s)                \
	{                           \
		n, s, sizeof(s) - 1 \
	}

static const sample samples[] = {
	SAMPLE("pretty", sample_pretty),
	SAMPLE("compact", sample_compact),
	SAMPLE("jsonl", sample_jsonl),
	SAMPLE("unicode", sample_unicode),
	SAMPLE("dups", sample_dups),
	SAMPLE("numbers", sample_numbers),
	SAMPLE("empty", ""),
	SAMPLE("empty array", "[]"),
	SAMPLE("spaced array", "[ ]"),
	SAMPLE("blank", " \n\t\r\n "),
	SAMPLE("array lines", "\n\n  [\n]\n\n"),
	SAMPLE("jsonl no eol", "{}"),
	/* bad ones: problems must not depend on chunking either */
	SAMPLE("truncated", "[{\"k\":1},\n {\"k\":2,\"s\":\"ab"),
	SAMPLE("truncated2", "[{\"k\":1},\n {\"k\":2"),
	SAMPLE("bad middle", "[{\"k\":1},{\"k\":2,,\"x\":1},{\"k\":3}]"),
	SAMPLE("bad utf8", "[{\"k\":\"\xc3\"},{\"k\":\"\xe2\x82\"}, "
	                   "{\"k\":\"\xf0\x9f\x98\"},{\"k\":\"ok\"}]"),
	SAMPLE("nul", "[{\"k\":\"a\0b\"},{\"k\":2}\0]"),
	SAMPLE("non objects", "[1, \"x\", {\"k\":1}, [2, {}], true, false, "
	                      "null, -3.5, {\"k\":2}]"),
	SAMPLE("jsonl bad lines", "{\"k\":1}\n{\"k\":2,}\n[1]\n{\"k\":3} x\n"
	                          "{\"k\":4}{\"k\":5}\n{\"k\":\"a\nb\"}\n"
	                          "{\"k\":6}\n{\n\"k\":7}\n{\"k\":8}"),
	SAMPLE("pretty object", "{\n  \"k\": 1\n}\n"),
	SAMPLE("escapes", "[{\"k\":\"\\x\"},{\"k\":\"\\u12g4\"},"
	                  "{\"k\":\"\\ud800\"},{\"k\":\"\\udc00x\"},"
	                  "{\"k\":\"\\ud800\\\"\"},{\"k\":\"\\ud800\\u0041\"},"
	                  "{\"k\":\"ok\"}]"),
	SAMPLE("controls", "[{\"k\":\"a\tb\"},{\"k\":\"a\nb\"},{\"k\":3}]"),
	SAMPLE("garbage", "[{\"k\":1}] x"),
	SAMPLE("trailing comma", "[{\"k\":1},]"),
	SAMPLE("bom", "\xef\xbb\xbf[{\"k\":1}]"),
	SAMPLE("start", "  x"),
	/* more bad lines than a file lists (ENGINE__MAX_FILE_PROBLEMS),
	 * with good ones between them: marks after listed and after
	 * unlisted problems */
	SAMPLE("over the limit",
	       "{\"k\":1}\nx\nx\nx\nx\nx\nx\nx\nx\nx\nx\n{\"k\":2}\n"
	       "x\nx\nx\nx\nx\nx\nx\nx\nx\nx\nx\nx\n{\"k\":3}\n"
	       "x\nx\nx\n{\"k\":4}\n"),
};

/* ---- chunk invariance ---- */

static void test_engine_scan__every_chunk_size(void)
{
	size_t i, chunk;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		const sample *sm = &samples[i];
		result ref, got;
		int bad = 0;

		scan_mem(&ref, sm->data, sm->len, ENGINE__CHUNK);
		for (chunk = 1; chunk <= sm->len + 1; chunk++) {
			scan_mem(&got, sm->data, sm->len, chunk);
			if (!result_equal(&ref, &got) && !bad++) {
				printf("# sample \"%s\" differs at chunk %zu\n",
				       sm->name, chunk);
				result_dump("reference", &ref);
				result_dump("chunked", &got);
			}
			result_free(&got);
		}
		ASSERT_EQ_INT(bad, 0);
		result_free(&ref);
	}
}

/* ---- resuming at a mark ---- */

/*
 * A file cut anywhere is scanned with a mark; the whole file, scanned
 * again from that mark, gives exactly the entries after it and the
 * problems of a scan from the start after the mark's count of them.
 */
static void test_engine_scan__resume_at_marks(void)
{
	size_t i, cut, k, resumed = 0, after_problems = 0;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		const sample *sm = &samples[i];
		result full;

		scan_mem(&full, sm->data, sm->len, ENGINE__CHUNK);
		for (cut = 0; cut <= sm->len; cut++) {
			engine__scan_mark mark, next;
			result old, tail, want;

			scan_mem_from(&old, sm->data, cut, 5, 0, NULL, &mark);
			result_free(&old);
			if (!mark.set)
				continue;
			resumed++;
			after_problems += mark.problems > 0;
			ASSERT_TRUE(mark.entries <= full.nents);
			ASSERT_TRUE(mark.problems <= full.nprobs);
			scan_mem_from(&tail, sm->data, sm->len, 3, 0, &mark,
				      &next);
			/* What a scan from the start says after the mark. */
			want = full;
			want.ents = full.ents + mark.entries;
			want.nents = full.nents - mark.entries;
			want.probs = full.probs + mark.problems;
			want.nprobs = full.nprobs - mark.problems;
			if (full.r >= 0)
				want.r = full.r - (int)mark.entries;
			if (!result_equal(&want, &tail)) {
				printf("# sample \"%s\" cut at %zu, resumed "
				       "at %llu\n",
				       sm->name, cut,
				       (unsigned long long)mark.offset);
				result_dump("from the start", &full);
				result_dump("resumed", &tail);
				ASSERT_TRUE(0);
			}
			/* The next mark counts entries from the file start. */
			if (next.set)
				ASSERT_TRUE(next.entries > mark.entries &&
				            next.entries <= full.nents);
			for (k = 0; k < tail.nents; k++)
				ASSERT_TRUE(tail.ents[k].offset >= mark.offset);
			result_free(&tail);
		}
		result_free(&full);
	}
	printf("# %zu resumed scans, %zu after problems\n", resumed,
	       after_problems);
	ASSERT_TRUE(resumed > 100);
	ASSERT_TRUE(after_problems > 50);
}

/* canon_len agrees with the canonicaliser and with ref_strip */
static void test_engine_scan__canon_len(void)
{
	size_t i, j;

	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		const sample *sm = &samples[i];
		result res;

		scan_mem(&res, sm->data, sm->len, ENGINE__CHUNK);
		for (j = 0; j < res.nents; j++) {
			const engine__entry *e = &res.ents[j];
			const char *raw = sm->data + e->offset;
			char *a = malloc(e->raw_len + 1);
			char *b = malloc(e->raw_len + 1);
			engine__canon st = { 0, 0 };
			size_t na, nb;

			ASSERT_TRUE(raw[0] == '{');
			ASSERT_TRUE(raw[e->raw_len - 1] == '}');
			na = engine__canon_chunk(&st, raw, e->raw_len, a);
			nb = ref_strip(raw, e->raw_len, b);
			ASSERT_EQ_MEM(a, na, b, nb);
			ASSERT_EQ_INT(e->canon_len, na);
			ASSERT_EQ_INT(st.in_string, 0);
			free(a);
			free(b);
		}
		result_free(&res);
	}
}

/* ---- exact results of the good samples ---- */

static void expect_str(const engine__value *v, const char *s, size_t len)
{
	ASSERT_EQ_INT(v->kind, ENGINE__VAL_STRING);
	ASSERT_EQ_INT(v->truncated, 0);
	ASSERT_EQ_MEM(v->text, v->len, s, len);
	ASSERT_EQ_INT(v->text[v->len], 0);
}

#define EXPECT_STR(v, s) expect_str((v), (s), sizeof(s) - 1)

static void expect_num(const engine__value *v, const char *s)
{
	ASSERT_EQ_INT(v->kind, ENGINE__VAL_NUMBER);
	ASSERT_EQ_INT(v->truncated, 0);
	ASSERT_EQ_STR(v->text, s);
	ASSERT_EQ_INT(v->len, strlen(s));
}

static void expect_entry(const engine__entry *e, uint64_t off, uint64_t raw,
                         uint64_t canon, unsigned long line, unsigned long col)
{
	ASSERT_EQ_INT(e->offset, off);
	ASSERT_EQ_INT(e->raw_len, raw);
	ASSERT_EQ_INT(e->canon_len, canon);
	ASSERT_EQ_INT(e->line, line);
	ASSERT_EQ_INT(e->column, col);
}

static void test_engine_scan__pretty(void)
{
	result res;
	const engine__entry *e;

	scan_str(&res, sample_pretty, ENGINE__CHUNK);
	ASSERT_EQ_INT(res.r, 2);
	ASSERT_EQ_INT(res.nprobs, 0);
	ASSERT_EQ_INT(res.nents, 2);
	if (res.nents != 2)
		goto out;
	e = &res.ents[0];
	expect_entry(e, 4, 158, 106, 2, 3);
	ASSERT_EQ_INT(sample_pretty[4 + 158 - 1], '}');
	EXPECT_STR(&e->values[V_UID], "u1");
	EXPECT_STR(&e->values[V_TS], "2025-01-01T00:00:00Z");
	expect_num(&e->values[V_VER], "3");
	EXPECT_STR(&e->values[V_HOST], "alpha");
	ASSERT_EQ_INT(e->values[V_META].kind, ENGINE__VAL_OTHER);
	ASSERT_EQ_INT(e->values[V_K].kind, ENGINE__VAL_ABSENT);
	ASSERT_EQ_INT(e->values[V_ABC].kind, ENGINE__VAL_ABSENT);
	e = &res.ents[1];
	expect_entry(e, 166, 110, 84, 11, 3);
	EXPECT_STR(&e->values[V_UID], "u2");
	ASSERT_EQ_INT(e->values[V_TS].kind, ENGINE__VAL_ABSENT);
	expect_num(&e->values[V_VER], "-0.5e+3");
	ASSERT_EQ_INT(e->values[V_HOST].kind, ENGINE__VAL_OTHER);
	EXPECT_STR(&e->values[V_K], "top");
out:
	result_free(&res);
}

static void test_engine_scan__compact_and_empty(void)
{
	static const char *const empty[] = {
		"", "[]", "[ ]", " \n\t\r\n ", "\n\n  [\n]\n\n", "\r\n"
	};
	result res;
	size_t i;

	scan_str(&res, sample_compact, ENGINE__CHUNK);
	ASSERT_EQ_INT(res.r, 3);
	ASSERT_EQ_INT(res.nprobs, 0);
	if (res.nents == 3) {
		expect_entry(&res.ents[0], 1, 30, 30, 1, 2);
		EXPECT_STR(&res.ents[0].values[V_ABC], "deep");
		ASSERT_EQ_INT(res.ents[0].values[V_AB].kind, ENGINE__VAL_OTHER);
		expect_num(&res.ents[0].values[V_K], "1");
		expect_entry(&res.ents[1], 32, 19, 19, 1, 33);
		/* k is the array; the nested "k" does not count */
		ASSERT_EQ_INT(res.ents[1].values[V_K].kind, ENGINE__VAL_OTHER);
		expect_entry(&res.ents[2], 52, 2, 2, 1, 53);
		ASSERT_EQ_INT(res.ents[2].values[V_K].kind, ENGINE__VAL_ABSENT);
	}
	result_free(&res);

	for (i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		scan_str(&res, empty[i], ENGINE__CHUNK);
		ASSERT_EQ_INT(res.r, 0);
		ASSERT_EQ_INT(res.nents, 0);
		ASSERT_EQ_INT(res.nprobs, 0);
		result_free(&res);
	}
}

static void test_engine_scan__jsonl(void)
{
	result res;

	scan_str(&res, sample_jsonl, ENGINE__CHUNK);
	ASSERT_EQ_INT(res.r, 3);
	ASSERT_EQ_INT(res.nprobs, 0);
	if (res.nents == 3) {
		expect_entry(&res.ents[0], 0, 11, 11, 1, 1);
		EXPECT_STR(&res.ents[0].values[V_K], "one");
		expect_entry(&res.ents[1], 17, 8, 7, 3, 3);
		expect_num(&res.ents[1].values[V_K], "2");
		expect_entry(&res.ents[2], 36, 32, 23, 6, 1);
		ASSERT_EQ_INT(res.ents[2].values[V_K].kind, ENGINE__VAL_OTHER);
		ASSERT_EQ_INT(res.ents[2].values[V_AB].kind, ENGINE__VAL_OTHER);
		ASSERT_EQ_INT(res.ents[2].values[V_ABC].kind,
		              ENGINE__VAL_ABSENT);
	}
	result_free(&res);
}

static void test_engine_scan__unicode_and_escapes(void)
{
	static const char k0[] = "caf\xc3\xa9 \xf0\x9f\x98\x80 \xc3\xa9 "
	                         "\xe6\x97\xa5 \xf0\x9f\x98\x80 \"q\" \\ / "
	                         "\b\f\n\r\t \0!";
	static const char host[] = "\xef\xbf\xbf\xf4\x8f\xbf\xbf\xe0\xa0\x80"
	                           "\xed\x9f\xbf";
	result res;

	scan_str(&res, sample_unicode, ENGINE__CHUNK);
	ASSERT_EQ_INT(res.r, 2);
	ASSERT_EQ_INT(res.nprobs, 0);
	if (res.nents == 2) {
		/* \u0000 decodes to a NUL inside the text */
		EXPECT_STR(&res.ents[0].values[V_K], k0);
		/* a key spelled with escapes matches; duplicates don't */
		EXPECT_STR(&res.ents[0].values[V_UID], "esc-key");
		EXPECT_STR(&res.ents[0].values[V_HOST], host);
		EXPECT_STR(&res.ents[1].values[V_K],
		           "\xf0\x9d\x84\x9e\xef\xbf\xbf"
		           "A");
		ASSERT_EQ_INT(res.ents[1].line, 2);
		ASSERT_EQ_INT(res.ents[1].column, 2);
	}
	result_free(&res);
}

static void test_engine_scan__duplicate_keys_and_paths(void)
{
	result res;
	const engine__entry *e;

	scan_str(&res, sample_dups, ENGINE__CHUNK);
	ASSERT_EQ_INT(res.r, 5);
	ASSERT_EQ_INT(res.nprobs, 0);
	if (res.nents != 5)
		goto out;
	/* the first "_crdt_metadata" wins as a whole */
	e = &res.ents[0];
	EXPECT_STR(&e->values[V_HOST], "h1");
	ASSERT_EQ_INT(e->values[V_UID].kind, ENGINE__VAL_ABSENT);
	/* a.b is the first a's b (a number), so a.b.c is absent */
	e = &res.ents[1];
	expect_num(&e->values[V_AB], "1");
	ASSERT_EQ_INT(e->values[V_ABC].kind, ENGINE__VAL_ABSENT);
	/* arrays and strings on the way: absent */
	e = &res.ents[2];
	ASSERT_EQ_INT(e->values[V_AB].kind, ENGINE__VAL_ABSENT);
	ASSERT_EQ_INT(e->values[V_ABC].kind, ENGINE__VAL_ABSENT);
	e = &res.ents[3];
	ASSERT_EQ_INT(e->values[V_AB].kind, ENGINE__VAL_ABSENT);
	ASSERT_EQ_INT(e->values[V_K].kind, ENGINE__VAL_OTHER);
	/* keys of the same name deeper or elsewhere never count */
	e = &res.ents[4];
	ASSERT_EQ_INT(e->values[V_AB].kind, ENGINE__VAL_OTHER);
	ASSERT_EQ_INT(e->values[V_ABC].kind, ENGINE__VAL_OTHER);
out:
	result_free(&res);
}

static void test_engine_scan__numbers_as_written(void)
{
	result res;

	scan_str(&res, sample_numbers, ENGINE__CHUNK);
	ASSERT_EQ_INT(res.r, 3);
	ASSERT_EQ_INT(res.nprobs, 0);
	if (res.nents == 3) {
		expect_num(&res.ents[0].values[V_K], "-0");
		expect_num(&res.ents[1].values[V_K], "1.25E-10");
		expect_num(&res.ents[2].values[V_K], "0e0");
	}
	result_free(&res);
}

static void test_engine_scan__long_values_truncate(void)
{
	char *doc = malloc(4096), *want = malloc(1024);
	size_t n = 0, i;
	result res;

	/* 600 bytes of decoded text; an escape sits across the limit */
	n += (size_t)sprintf(doc + n, "[{\"k\":\"");
	for (i = 0; i < 510; i++)
		doc[n++] = 'a';
	n += (size_t)sprintf(doc + n, "\\u00e9\\u00e9");
	for (i = 0; i < 86; i++)
		doc[n++] = 'b';
	n += (size_t)sprintf(doc + n, "\",\"a\":{\"b\":");
	for (i = 0; i < 600; i++)
		doc[n++] = (char)('1' + i % 9);
	n += (size_t)sprintf(doc + n, "},\"_crdt_metadata\":{\"unique_id\":"
	                              "\"");
	for (i = 0; i < 512; i++)
		doc[n++] = 'u';
	n += (size_t)sprintf(doc + n, "\"}}]");

	scan_mem(&res, doc, n, ENGINE__CHUNK);
	ASSERT_EQ_INT(res.r, 1);
	if (res.nents == 1) {
		const engine__value *k = &res.ents[0].values[V_K];
		const engine__value *ab = &res.ents[0].values[V_AB];
		const engine__value *uid = &res.ents[0].values[V_UID];

		memset(want, 'a', 510);
		memcpy(want + 510, "\xc3\xa9", 2);
		ASSERT_EQ_INT(k->kind, ENGINE__VAL_STRING);
		ASSERT_EQ_INT(k->truncated, 1);
		ASSERT_EQ_MEM(k->text, k->len, want, 512);
		ASSERT_EQ_INT(k->text[512], 0);
		ASSERT_EQ_INT(ab->kind, ENGINE__VAL_NUMBER);
		ASSERT_EQ_INT(ab->truncated, 1);
		ASSERT_EQ_INT(ab->len, 512);
		ASSERT_EQ_INT(memcmp(ab->text, "123456789", 9), 0);
		/* exactly ENGINE__VALUE_MAX bytes is not truncated */
		ASSERT_EQ_INT(uid->kind, ENGINE__VAL_STRING);
		ASSERT_EQ_INT(uid->truncated, 0);
		ASSERT_EQ_INT(uid->len, 512);
	}
	result_free(&res);
	free(doc);
	free(want);
}

/* ---- bad input: exact problems and kept entries ---- */

/*
 * Scan `doc` (at ENGINE__CHUNK and a few small chunk sizes, which must
 * agree) and compare the problems with `want` (NULL-terminated, as
 * "line:col: message") and the entries' values of "k" with `keys`
 * (a string of one character per entry, the NUMBER or STRING text).
 */
static void expect_scan(const char *doc, size_t len, const char *keys,
                        const char *const *want)
{
	static const size_t chunks[] = { 1, 2, 3, 5, 16, 17, 64 };
	result res, other;
	size_t i, nwant = 0, nkeys = strlen(keys);
	int ok = 1;

	while (want[nwant])
		nwant++;
	scan_mem(&res, doc, len, ENGINE__CHUNK);
	if (res.r != (int)nkeys || res.nents != nkeys || res.nprobs != nwant)
		ok = 0;
	for (i = 0; ok && i < nkeys; i++) {
		const engine__value *v = &res.ents[i].values[V_K];

		if (v->len != 1 || v->text[0] != keys[i])
			ok = 0;
	}
	for (i = 0; ok && i < nwant; i++) {
		/* want[i] is "L:C: msg"; problems read "f:L:C: error: msg" */
		const char *sep = strstr(want[i], ": ");
		char buf[512];

		snprintf(buf, sizeof(buf), "f:%.*s: error: %s",
		         (int)(sep - want[i]), want[i], sep + 2);
		if (strcmp(res.probs[i], buf) != 0)
			ok = 0;
	}
	if (!ok) {
		printf("# unexpected result; wanted keys \"%s\" and:\n", keys);
		for (i = 0; i < nwant; i++)
			printf("#   %s\n", want[i]);
		result_dump("got", &res);
	}
	ASSERT_TRUE(ok);
	for (i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		scan_mem(&other, doc, len, chunks[i]);
		if (!result_equal(&res, &other)) {
			printf("# chunk %zu differs\n", chunks[i]);
			result_dump("chunked", &other);
			ASSERT_TRUE(0);
		}
		result_free(&other);
	}
	result_free(&res);
}

#define EXPECT(doc, keys, ...)                                         \
	do {                                                           \
		static const char *const w_[] = { __VA_ARGS__, NULL }; \
		expect_scan((doc), sizeof(doc) - 1, (keys), w_);       \
	} while (0)

#define EXPECT_CLEAN(doc, keys)                                  \
	do {                                                     \
		static const char *const w_[] = { NULL };        \
		expect_scan((doc), sizeof(doc) - 1, (keys), w_); \
	} while (0)

static void test_engine_scan__truncated(void)
{
	EXPECT("[{\"k\":1},\n {\"k\":2", "1",
	       "2:8: unexpected end of file: the JSON array is not closed "
	       "(truncated file?)");
	EXPECT("[{\"k\":1},\n {\"k\":\"2", "1",
	       "2:7: invalid JSON: unterminated string (truncated file?)");
	EXPECT("[{\"k\":1}", "1",
	       "1:9: unexpected end of file: the JSON array is not closed "
	       "(truncated file?)");
	EXPECT("[{\"k\":1},\n", "1",
	       "2:1: unexpected end of file: the JSON array is not closed "
	       "(truncated file?)");
	EXPECT("[{\"k\":tr", "",
	       "1:9: unexpected end of file: the JSON array is not closed "
	       "(truncated file?)");
	EXPECT("[{\"k\":-", "",
	       "1:8: unexpected end of file: the JSON array is not closed "
	       "(truncated file?)");
	EXPECT("[{\"k\":\"\\u12", "",
	       "1:7: invalid JSON: unterminated string (truncated file?)");
	EXPECT("{\"k\":1}\n{\"k\":2", "1",
	       "2:7: unexpected end of file: the last line holds an "
	       "incomplete object (truncated file?)");
	EXPECT("{\"k\":1}\n{\"k\":\"2", "1",
	       "2:6: invalid JSON: unterminated string (truncated file?)");
}

static void test_engine_scan__invalid_json_in_the_middle(void)
{
	/* a grammar error stops an array; earlier entries are kept */
	EXPECT("[{\"k\":1},{\"k\":2,,\"x\":1},{\"k\":3}]", "1",
	       "1:17: invalid JSON: expected a string key but found ','");
	EXPECT("[{\"k\":1},\n{\"k\" 2}]", "1",
	       "2:6: invalid JSON: expected ':' after a key but found '2'");
	EXPECT("[{\"k\":1} {\"k\":2}]", "1",
	       "1:10: invalid JSON: expected ',' or ']' but found '{'");
	EXPECT("[{\"k\":1,\"x\":[1 2]}]", "",
	       "1:16: invalid JSON: expected ',' or ']' but found '2'");
	EXPECT("[{\"k\":1,\"x\":{\"y\":1]}]", "",
	       "1:19: invalid JSON: expected ',' or '}' but found ']'");
	EXPECT("[{\"k\":1},{1:2}]", "1",
	       "1:11: invalid JSON: expected a string key or '}' but found "
	       "'1'");
	EXPECT("[{\"k\":truth}]", "", "1:10: invalid literal: expected 'true'");
	EXPECT("[{\"k\":nul}]", "", "1:10: invalid literal: expected 'null'");
	EXPECT("[{\"k\":fals}]", "", "1:11: invalid literal: expected 'false'");
	EXPECT("[{\"k\":True}]", "",
	       "1:7: invalid JSON: expected a value but found 'T'");
	EXPECT("[{\"k\":'x'}]", "",
	       "1:7: invalid JSON: expected a value but found '''");
	EXPECT("[{\"k\":1},{\"k\":2}]]", "12",
	       "1:18: invalid JSON: unexpected ']' after the end of the "
	       "JSON array");
	EXPECT("[{\"k\":1}] x", "1",
	       "1:11: invalid JSON: unexpected 'x' after the end of the "
	       "JSON array");
	EXPECT("[{\"k\":1}]\n[]", "1",
	       "2:1: invalid JSON: unexpected '[' after the end of the JSON "
	       "array");
	EXPECT("[{\"k\":1}, /* c */ {\"k\":2}]", "1",
	       "1:11: invalid JSON: expected a value but found '/'");
	EXPECT("[{\"k\":1},\f{\"k\":2}]", "1",
	       "1:10: invalid JSON: expected a value but found byte 0x0c");
}

static void test_engine_scan__trailing_commas_and_numbers(void)
{
	EXPECT("[{\"k\":1},]", "1",
	       "1:10: invalid JSON: trailing comma before ']'");
	EXPECT("[{\"k\":1,}]", "",
	       "1:9: invalid JSON: trailing comma before '}'");
	EXPECT("[{\"k\":[1,]}]", "",
	       "1:10: invalid JSON: trailing comma before ']'");
	EXPECT("[{\"k\":01}]", "",
	       "1:8: invalid number: leading zeros are not allowed");
	EXPECT("[{\"k\":-01}]", "",
	       "1:9: invalid number: leading zeros are not allowed");
	EXPECT("[{\"k\":+1}]", "",
	       "1:7: invalid number: a leading '+' is not allowed");
	EXPECT("[{\"k\":.5}]", "",
	       "1:7: invalid number: expected a digit before '.'");
	EXPECT("[{\"k\":1.}]", "",
	       "1:9: invalid number: expected a digit after '.'");
	EXPECT("[{\"k\":1.e5}]", "",
	       "1:9: invalid number: expected a digit after '.'");
	EXPECT("[{\"k\":1e}]", "",
	       "1:9: invalid number: expected a digit in the exponent");
	EXPECT("[{\"k\":1e+}]", "",
	       "1:10: invalid number: expected a digit in the exponent");
	EXPECT("[{\"k\":-}]", "",
	       "1:8: invalid number: expected a digit after '-'");
	EXPECT("[{\"k\":-a}]", "",
	       "1:8: invalid number: expected a digit after '-'");
	EXPECT("[{\"k\":0x1}]", "",
	       "1:8: invalid JSON: expected ',' or '}' but found 'x'");
	EXPECT("[{\"k\":1.5.2}]", "",
	       "1:10: invalid JSON: expected ',' or '}' but found '.'");
	EXPECT("[{\"k\":NaN}]", "",
	       "1:7: invalid JSON: expected a value but found 'N'");
	EXPECT("[{\"k\":-Infinity}]", "",
	       "1:8: invalid number: expected a digit after '-'");
	EXPECT_CLEAN("[{\"k\":0},{\"k\":9},{\"x\":0.0e-0,\"k\":1}]", "091");
}

static void test_engine_scan__invalid_utf8(void)
{
	/* a bad string skips its element; scanning goes on */
	EXPECT("[{\"k\":\"\xff\"},\n {\"k\":\"\xc3\xa9\",\"x\":\"a\xc3(\"},"
	       "{\"k\":2}]",
	       "2", "1:8: invalid UTF-8 byte 0xff in string",
	       "2:18: invalid UTF-8 in string: truncated sequence (byte "
	       "0x28 after 0xc3)");
	EXPECT("[{\"k\":\"\xc0\xaf\"},{\"k\":\"\xe0\x80\xaf\"},"
	       "{\"k\":\"\xed\xa0\x80\"},{\"k\":\"\xf4\x90\x80\x80\"},"
	       "{\"k\":\"\xf0\x80\x80\xaf\"},{\"k\":\"\xf5\x80\x80\x80\"},"
	       "{\"k\":\"\x80\"},{\"k\":\"\xe2\x82\"},{\"k\":3}]",
	       "3", "1:8: invalid UTF-8 byte 0xc0 in string",
	       "1:19: invalid UTF-8 in string: overlong encoding (byte 0x80 "
	       "after 0xe0)",
	       "1:31: invalid UTF-8 in string: encoded surrogate (byte 0xa0 "
	       "after 0xed)",
	       "1:43: invalid UTF-8 in string: code point above U+10FFFF "
	       "(byte 0x90 after 0xf4)",
	       "1:56: invalid UTF-8 in string: overlong encoding (byte 0x80 "
	       "after 0xf0)",
	       "1:69: invalid UTF-8 byte 0xf5 in string",
	       "1:82: invalid UTF-8 byte 0x80 in string",
	       "1:92: invalid UTF-8 in string: truncated sequence (byte 0x22 "
	       "after 0xe2)");
	/* only the first problem of an element is reported */
	EXPECT("[{\"k\":\"\xff\xfe\",\"x\":\"\xff\"},{\"k\":4}]", "4",
	       "1:8: invalid UTF-8 byte 0xff in string");
	/* invalid UTF-8 in a key, and in a non-object element */
	EXPECT("[{\"\xff\":1},\"\xff\",{\"k\":5}]", "5",
	       "1:4: invalid UTF-8 byte 0xff in string",
	       "1:10: array element is not an object (found a string)");
	/* outside strings, a high byte is a grammar error */
	EXPECT("[{\"k\":1},\xc3\xa9]", "1",
	       "1:10: invalid JSON: expected a value but found byte 0xc3");
}

static void test_engine_scan__nul_and_control_bytes(void)
{
	EXPECT("[{\"k\":\"a\0b\"},{\"k\":2}\0]", "2",
	       "1:9: control character 0x00 in string",
	       "1:21: invalid JSON: expected ',' or ']' but found byte 0x00");
	EXPECT("\0[]", "",
	       "1:1: expected a JSON array ('[') or JSON Lines ('{') but "
	       "found byte 0x00");
	EXPECT("[{\"k\":\"a\tb\"},{\"k\":\"a\nb\"},\n{\"k\":3}]", "3",
	       "1:9: control character 0x09 in string",
	       "1:21: control character 0x0a in string");
	EXPECT("[{\"k\":\"\\x\"},{\"k\":\"\\u12g4\"},{\"k\":\"\\ud800\"},"
	       "{\"k\":\"\\udc00x\"},{\"k\":\"\\ud800\\\"\"},"
	       "{\"k\":\"\\ud800\\u0041\"},{\"k\":\"\\\x01\"},{\"k\":\"6\"}]",
	       "6", "1:8: invalid escape '\\x' in string",
	       "1:19: invalid \\u escape in string: expected 4 hex digits",
	       "1:34: lone surrogate \\ud800 in string",
	       "1:49: lone surrogate \\udc00 in string",
	       "1:65: lone surrogate \\ud800 in string",
	       "1:82: lone surrogate \\ud800 in string",
	       "1:103: invalid escape in string: '\\' followed by byte 0x01");
	/* the same in strings whose text is not extracted (fast path) */
	EXPECT("[{\"x\":\"\\x\"},{\"x\":[\"\\a\"]},{\"\\'\":1},"
	       "{\"x\":\"\\U0041\"},{\"x\":\"\\u004\"},"
	       "{\"x\":\"\\ud800\\n\"},{\"k\":7}]",
	       "7", "1:8: invalid escape '\\x' in string",
	       "1:20: invalid escape '\\a' in string",
	       "1:28: invalid escape '\\'' in string",
	       "1:41: invalid escape '\\U' in string",
	       "1:56: invalid \\u escape in string: expected 4 hex digits",
	       "1:70: lone surrogate \\ud800 in string");
	EXPECT_CLEAN(
	        "[{\"x\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00\","
	        "\"k\":9},{\"k\":8}]",
	        "98");
}

static void test_engine_scan__non_object_elements(void)
{
	EXPECT("[1, \"x\", {\"k\":1}, [2, {}], true, false, null, -3.5, "
	       "{\"k\":2}]",
	       "12", "1:2: array element is not an object (found a number)",
	       "1:5: array element is not an object (found a string)",
	       "1:19: array element is not an object (found an array)",
	       "1:28: array element is not an object (found a boolean)",
	       "1:34: array element is not an object (found a boolean)",
	       "1:41: array element is not an object (found null)",
	       "1:47: array element is not an object (found a number)");
	/* a non-object element must still be valid JSON */
	EXPECT("[[1,}, {\"k\":1}]", "",
	       "1:2: array element is not an object (found an array)",
	       "1:5: invalid JSON: expected a value but found '}'");
}

static void test_engine_scan__formats(void)
{
	EXPECT("x", "",
	       "1:1: expected a JSON array ('[') or JSON Lines ('{') but "
	       "found 'x'");
	EXPECT("\n  \"k\"", "",
	       "2:3: expected a JSON array ('[') or JSON Lines ('{') but "
	       "found '\"'");
	EXPECT("\xef\xbb\xbf[{\"k\":1}]", "",
	       "1:1: byte order mark is not allowed (save the file as UTF-8 "
	       "without BOM)");
	/* a pretty-printed top-level object is not JSON Lines */
	EXPECT("{\n  \"k\": 1\n}\n", "",
	       "1:2: JSON Lines: each line must hold one complete object "
	       "(this one continues on the next line)",
	       "2:3: JSON Lines: each line must hold one complete object "
	       "(found '\"')",
	       "3:1: JSON Lines: each line must hold one complete object "
	       "(found '}')");
	/* bad JSON Lines lines are skipped, the others kept */
	EXPECT("{\"k\":1}\n{\"k\":2,}\n[1]\n{\"k\":3} x\n"
	       "{\"k\":4}{\"k\":5}\n{\"k\":\"a\nb\"}\n"
	       "{\"k\":6}\n{\n\"k\":7}\n{\"k\":8}\r\n  \r\n{\"k\":9} \t\r",
	       "1689", "2:8: invalid JSON: trailing comma before '}'",
	       "3:1: JSON Lines: each line must hold one complete object "
	       "(found '[')",
	       "4:9: JSON Lines: each line must hold one complete object "
	       "(found 'x' after it)",
	       "5:8: JSON Lines: each line must hold one complete object "
	       "(found '{' after it)",
	       "6:8: invalid JSON: unterminated string at the end of the "
	       "line",
	       "7:1: JSON Lines: each line must hold one complete object "
	       "(found 'b')",
	       "9:2: JSON Lines: each line must hold one complete object "
	       "(this one continues on the next line)",
	       "10:1: JSON Lines: each line must hold one complete object "
	       "(found '\"')");
	/* non-object values on a line and bad strings */
	EXPECT("{\"k\":1}\n\"x\"\n{\"k\":\"\xff\"}\n{\"k\":2}\n", "12",
	       "2:1: JSON Lines: each line must hold one complete object "
	       "(found '\"')",
	       "3:7: invalid UTF-8 byte 0xff in string");
}

static void test_engine_scan__problem_limit(void)
{
	char doc[4096];
	size_t n = 0;
	int i;

	n += (size_t)sprintf(doc + n, "{}\n");
	for (i = 0; i < 29; i++)
		n += (size_t)sprintf(doc + n, "x\n");
	n += (size_t)sprintf(doc + n, "{\"k\":7}\n");
	{
		result res;

		scan_mem(&res, doc, n, ENGINE__CHUNK);
		/* line 1 is "{}", lines 2..30 are bad: 29 problems */
		ASSERT_EQ_INT(res.r, 2);
		ASSERT_EQ_INT(res.nprobs, ENGINE__MAX_FILE_PROBLEMS + 1);
		if (res.nprobs == ENGINE__MAX_FILE_PROBLEMS + 1) {
			ASSERT_EQ_STR(res.probs[0],
			              "f:2:1: error: JSON Lines: each line "
			              "must hold one complete object (found "
			              "'x')");
			ASSERT_EQ_STR(res.probs[ENGINE__MAX_FILE_PROBLEMS],
			              "f: error: ... and 9 more problems in "
			              "this file");
		}
		/* the summary line counts for the problems it stands for */
		ASSERT_EQ_INT(res.total, 29);
		result_free(&res);
	}
}

static long max_rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void test_engine_scan__deep_nesting(void)
{
	const size_t levels = 100000;
	char *doc = malloc(2 * levels + 64);
	size_t n = 0, i;
	result res;

	/* 100 000 levels inside an entry: the entry is skipped */
	n += (size_t)sprintf(doc + n, "[{\"a\":");
	for (i = 0; i < levels; i++)
		doc[n++] = '[';
	for (i = 0; i < levels; i++)
		doc[n++] = ']';
	n += (size_t)sprintf(doc + n, "},{\"k\":1}]");
	scan_mem(&res, doc, n, ENGINE__CHUNK);
	ASSERT_EQ_INT(res.r, 1);
	ASSERT_EQ_INT(res.nprobs, 1);
	if (res.nprobs == 1)
		/* depth 1025: the array is 1, the entry 2, '[' number 1023 */
		ASSERT_EQ_STR(res.probs[0], "f:1:1029: error: nesting deeper "
		                            "than 1024 levels");
	result_free(&res);

	/* exactly 1024 levels is fine */
	n = 0;
	n += (size_t)sprintf(doc + n, "[{\"k\":1,\"a\":");
	for (i = 0; i < 1022; i++)
		doc[n++] = '[';
	for (i = 0; i < 1022; i++)
		doc[n++] = ']';
	n += (size_t)sprintf(doc + n, "}]");
	scan_mem(&res, doc, n, ENGINE__CHUNK);
	ASSERT_EQ_INT(res.r, 1);
	ASSERT_EQ_INT(res.nprobs, 0);
	result_free(&res);

	/* 100 000 unclosed levels: no crash, no hang, three problems */
	for (i = 0; i < levels; i++)
		doc[i] = '[';
	scan_mem(&res, doc, levels, ENGINE__CHUNK);
	ASSERT_EQ_INT(res.r, 0);
	ASSERT_EQ_INT(res.nprobs, 3);
	if (res.nprobs == 3) {
		ASSERT_EQ_STR(res.probs[0], "f:1:2: error: array element is "
		                            "not an object (found an array)");
		ASSERT_EQ_STR(res.probs[1], "f:1:1025: error: nesting deeper "
		                            "than 1024 levels");
		ASSERT_EQ_STR(res.probs[2],
		              "f:1:100001: error: unexpected end of file: the "
		              "JSON array is not closed (truncated file?)");
	}
	result_free(&res);
	/* the same read one byte at a time */
	scan_mem(&res, doc, levels, 1);
	ASSERT_EQ_INT(res.nprobs, 3);
	result_free(&res);

	/*
	 * Past 16M levels (more than any entry within the size limit can
	 * hold) the nesting is no longer followed: the scan stops there,
	 * having used 2 MiB of stack bits at most.
	 */
	{
		gen_src g = { "", "", '[', ENGINE__MAX_ENTRY + 10 };
		engine_problems pr;
		long before = max_rss_kib();

		memset(&res, 0, sizeof(res));
		engine_problems_init(&pr);
		res.r = engine__scan(gen_read, &g, ENGINE__CHUNK, "f",
		                     &test_spec, collect, &res, &pr);
		result_take_problems(&res, &pr);
		ASSERT_EQ_INT(res.r, 0);
		ASSERT_EQ_INT(res.nprobs, 3);
		if (res.nprobs == 3)
			ASSERT_EQ_STR(res.probs[2],
			              "f:1:16777217: error: nesting deeper "
			              "than 16777216 levels: giving up");
		ASSERT_TRUE(max_rss_kib() - before < 8 * 1024);
		result_free(&res);
	}

	/* JSON Lines: the object counts as level 1 */
	n = 0;
	n += (size_t)sprintf(doc + n, "{\"a\":");
	for (i = 0; i < 2000; i++)
		doc[n++] = '[';
	for (i = 0; i < 2000; i++)
		doc[n++] = ']';
	n += (size_t)sprintf(doc + n, "}\n{\"k\":1}\n");
	scan_mem(&res, doc, n, ENGINE__CHUNK);
	ASSERT_EQ_INT(res.r, 1);
	ASSERT_EQ_INT(res.nprobs, 1);
	if (res.nprobs == 1)
		ASSERT_EQ_STR(res.probs[0], "f:1:1029: error: nesting deeper "
		                            "than 1024 levels");
	result_free(&res);
	free(doc);
}

static void test_engine_scan__huge_string_bounded_memory(void)
{
	/* 50 MB inside an entry, made up by the reader as it is read */
	gen_src g = { "[{\"k\":1,\"s\":\"", "\"},\n{\"k\":2}]", 'x',
		      50u * 1000 * 1000 };
	engine_problems pr;
	result res;
	long before = max_rss_kib();

	memset(&res, 0, sizeof(res));
	engine_problems_init(&pr);
	res.r = engine__scan(gen_read, &g, ENGINE__CHUNK, "f", &test_spec,
	                     collect, &res, &pr);
	result_take_problems(&res, &pr);
	ASSERT_EQ_INT(res.r, 1);
	ASSERT_EQ_INT(res.nents, 1);
	if (res.nents == 1) {
		expect_num(&res.ents[0].values[V_K], "2");
		ASSERT_EQ_INT(res.ents[0].line, 2);
		ASSERT_EQ_INT(res.ents[0].offset, 50000000 + 13 + 4);
	}
	ASSERT_EQ_INT(res.nprobs, 1);
	if (res.nprobs == 1)
		ASSERT_EQ_STR(res.probs[0],
		              "f:1:2: error: entry larger than 16 MiB");
	/* the high-water mark grew by far less than the string */
	printf("# max RSS grew by %ld KiB\n", max_rss_kib() - before);
	ASSERT_TRUE(max_rss_kib() - before < 16 * 1024);
	result_free(&res);

	/* exactly at the limit is fine, one byte more is not */
	g.head = "[{\"k\":1,\"s\":\"";
	g.tail = "\"},{\"k\":2}]";
	g.count = ENGINE__MAX_ENTRY - 14;
	engine_problems_init(&pr);
	memset(&res, 0, sizeof(res));
	res.r = engine__scan(gen_read, &g, ENGINE__CHUNK, "f", &test_spec,
	                     collect, &res, &pr);
	result_take_problems(&res, &pr);
	ASSERT_EQ_INT(res.r, 2);
	if (res.nents == 2)
		ASSERT_EQ_INT(res.ents[0].raw_len, ENGINE__MAX_ENTRY);
	result_free(&res);
	g.count++;
	engine_problems_init(&pr);
	memset(&res, 0, sizeof(res));
	res.r = engine__scan(gen_read, &g, ENGINE__CHUNK, "f", &test_spec,
	                     collect, &res, &pr);
	result_take_problems(&res, &pr);
	ASSERT_EQ_INT(res.r, 1);
	ASSERT_EQ_INT(res.nprobs, 1);
	result_free(&res);
}

static void test_engine_scan__read_error_and_callback_stop(void)
{
	static const char doc[] = "[{\"k\":1},{\"k\":2},{\"k\":3}]";
	mem_src m = { doc, sizeof(doc) - 1, 12, 0 };
	engine_problems pr;
	result res;

	/* reads fail past offset 12: -EIO and one problem, nothing else */
	memset(&res, 0, sizeof(res));
	engine_problems_init(&pr);
	res.r = engine__scan(mem_read, &m, 4, "f", &test_spec, collect, &res,
	                     &pr);
	result_take_problems(&res, &pr);
	ASSERT_EQ_INT(res.r, -EIO);
	ASSERT_EQ_INT(res.nents, 1);
	ASSERT_EQ_INT(res.nprobs, 1);
	if (res.nprobs == 1)
		ASSERT_EQ_STR(res.probs[0], "f: error: cannot read the file: "
		                            "Input/output error");
	result_free(&res);

	/* a negative callback return stops the scan and is returned */
	scan_mem_stop(&res, doc, sizeof(doc) - 1, 5, 2);
	ASSERT_EQ_INT(res.r, -ECANCELED);
	ASSERT_EQ_INT(res.nents, 2);
	result_free(&res);
	scan_mem_stop(&res, "{\"k\":1}\n{\"k\":2}\n", 16, ENGINE__CHUNK, 1);
	ASSERT_EQ_INT(res.r, -ECANCELED);
	ASSERT_EQ_INT(res.nents, 1);
	result_free(&res);

	/* the file is read in chunks, never all at once */
	m.fail_at = 0;
	m.reads = 0;
	memset(&res, 0, sizeof(res));
	engine_problems_init(&pr);
	res.r = engine__scan(mem_read, &m, 8, "f", &test_spec, collect, &res,
	                     &pr);
	result_take_problems(&res, &pr);
	ASSERT_EQ_INT(res.r, 3);
	ASSERT_EQ_INT(m.reads, (sizeof(doc) - 1 + 7) / 8 + 1);
	result_free(&res);
}

/* ---- JSONTestSuite ---- */

static char *suite_dir(void)
{
	const char *env = getenv("CRDTFS_JSONTESTSUITE");
	char path[PATH_MAX], *slash;

	if (env)
		return strdup(env);
	/* tests/unit/<file> -> ../../../shared/testdata/... */
	snprintf(path, sizeof(path), "%s", __FILE__);
	slash = strrchr(path, '/');
	if (!slash)
		return NULL;
	snprintf(slash, sizeof(path) - (size_t)(slash - path),
	         "/../../../shared/testdata/JSONTestSuite/test_parsing");
	return strdup(path);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void test_engine_scan__json_test_suite(void)
{
	char *dirpath = suite_dir();
	DIR *dir = dirpath ? opendir(dirpath) : NULL;
	struct dirent *de;
	size_t ny = 0, nn = 0, ni = 0;

	if (!dir) {
		printf("# JSONTestSuite not found at %s: skipped\n",
		       dirpath ? dirpath : "?");
		free(dirpath);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		char path[PATH_MAX * 2], *doc, *wrapped;
		size_t len, wlen, chunk;
		char kind = de->d_name[0];
		result res, other;

		if ((kind != 'y' && kind != 'n' && kind != 'i') ||
		    de->d_name[1] != '_')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dirpath, de->d_name);
		doc = read_file(path, &len);
		if (!doc)
			continue;
		/* the document as the value of a key inside one entry */
		wrapped = malloc(len + 16);
		memcpy(wrapped, "[{\"v\":", 6);
		memcpy(wrapped + 6, doc, len);
		memcpy(wrapped + 6 + len, "}]", 2);
		wlen = len + 8;
		scan_mem(&res, wrapped, wlen, ENGINE__CHUNK);
		if (kind == 'y') {
			ny++;
			if (res.nents != 1 || res.nprobs != 0) {
				printf("# %s rejected\n", de->d_name);
				result_dump("got", &res);
				ASSERT_TRUE(0);
			}
		} else if (kind == 'n') {
			/*
			 * Rejected: a problem, always.  (An entry may still be
			 * kept when the document starts with a valid value,
			 * e.g. `{}}`: entries before a grammar error count.)
			 */
			nn++;
			if (res.nprobs == 0) {
				printf("# %s accepted\n", de->d_name);
				ASSERT_TRUE(0);
			}
		} else {
			ni++;
		}
		/* whatever the verdict, chunking must not change it */
		for (chunk = 1; chunk <= wlen + 1 && chunk <= 40; chunk++) {
			scan_mem(&other, wrapped, wlen, chunk);
			if (!result_equal(&res, &other)) {
				printf("# %s differs at chunk %zu\n",
				       de->d_name, chunk);
				ASSERT_TRUE(0);
			}
			result_free(&other);
		}
		result_free(&res);
		free(wrapped);
		free(doc);
	}
	closedir(dir);
	free(dirpath);
	printf("# JSONTestSuite: %zu y, %zu n, %zu i\n", ny, nn, ni);
	ASSERT_TRUE(ny > 90 && nn > 180);
}

/* ---- the two string loops ---- */

/* Append s at out + *o. */
static void put(char *out, size_t *o, const char *s)
{
	size_t n = strlen(s);

	memcpy(out + *o, s, n);
	*o += n;
}

/*
 * Pieces of string bodies: ASCII, valid sequences at the edges of the
 * ranges the checks care about, invalid ones of every kind, escapes, and
 * a lead byte cut short by the closing quote or an escape.  The first
 * UTF8_VALID_PIECES are valid.
 */
#define UTF8_VALID_PIECES 15
static const char *const utf8_pieces[] = {
	"abc", "0123456789abcdef0123456789abcdef", " ", "\\\"", "\\u00e9",
	"\xc3\xa9", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf",
	"\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
	"\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x98\x80",
	"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80",
	"\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff",
	"\x80", "\xc3", "\xe6\x97", "\xf0\x9f\x98", "\xc3\\n", "\x01",
};

/*
 * Generated strings, valid and not, scanned with the 64-byte loop and
 * with the narrow one at several chunk sizes: the same entries, values
 * and problems (file, line, column, message).  Most pieces are valid so
 * that long valid runs put every sequence across block edges.
 */
static void test_engine_scan__string_loops_agree(void)
{
	enum { NPIECES = sizeof(utf8_pieces) / sizeof(utf8_pieces[0]) };
	static const size_t chunks[] = { ENGINE__CHUNK, 61, 7 };
	char *buf = malloc(32768);
	unsigned seed = 7;
	int i, bad = 0;

	if (!engine__cpu_wide())
		printf("# this CPU lacks AVX-512: only one string loop\n");
	for (i = 0; i < 300; i++) {
		size_t o = 0, k, c, npieces = (size_t)(rand_r(&seed) % 60);
		size_t start, len;
		int invalid = rand_r(&seed) % 3 == 0;

		/* The string twice: as "k", whose value is decoded, and as
		 * "x", which is only checked (escapes stepped over). */
		put(buf, &o, "[{\"k\": \"");
		start = o;
		for (k = 0; k < npieces; k++) {
			size_t j = (size_t)rand_r(&seed) %
				   (invalid ? NPIECES : UTF8_VALID_PIECES);

			put(buf, &o, utf8_pieces[j]);
		}
		len = o - start;
		put(buf, &o, "\", \"x\": \"");
		memmove(buf + o, buf + start, len);
		o += len;
		put(buf, &o, "\", \"id\": 1},\n{\"k\": \"\xc3\xa9\"}]");
		for (c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
			result wide, narrow;

			engine__cpu_wide_allow(1);
			scan_mem(&wide, buf, o, chunks[c]);
			engine__cpu_wide_allow(0);
			scan_mem(&narrow, buf, o, chunks[c]);
			engine__cpu_wide_allow(1);
			if (!result_equal(&wide, &narrow) && !bad++) {
				printf("# loops differ on \"%.*s\" (chunk %zu)\n",
				       (int)o, buf, chunks[c]);
				result_dump("wide", &wide);
				result_dump("narrow", &narrow);
			}
			result_free(&wide);
			result_free(&narrow);
		}
	}
	ASSERT_EQ_INT(bad, 0);
	free(buf);
}

/* ---- the canonicaliser ---- */

static const char *const canon_inputs[] = {
	"{ \"a\" : 1 ,\n\t\"b\" : [ 1 , 2 ] }",
	"{\"s\": \"  spaces \\\" inside \\\\\", \"t\" : \"\\\\\" , \"u\":\"\\\"\"}",
	"{\r\n  \"x\": \"a\\\\\\\"b\"\r\n}",
	"{\"long\": \"0123456789abcdef0123456789abcdef 0123456789abcdef\\\"\\\\"
	"0123456789abcdef0123456789abcdef\" ,  \"n\" : -1.5e3 }",
	"{\"\xe6\x97\xa5\" : \"\xf0\x9f\x98\x80 \\u00e9\\n\"  }",
	"{}",
	"  ",
	"",
};

typedef size_t (*canon_fn)(engine__canon *, const char *, size_t, char *);

/* The versions to check: narrow always, wide where this CPU has it. */
static size_t canon_versions(canon_fn fns[2])
{
	fns[0] = engine__canon_chunk_narrow;
	fns[1] = engine__canon_chunk_wide;
	return engine__cpu_wide() ? 2 : 1;
}

/*
 * Every version, cut at every split point (every pair of them on short
 * inputs) and byte by byte, gives ref_strip's bytes.
 * @return the number of cuts that differed
 */
static int canon_splits_differ(canon_fn canon, const char *in, size_t n,
			       const char *want, size_t nwant, char *got)
{
	size_t i, j, o;
	int bad = 0;

	for (i = 0; i <= n; i++) {
		engine__canon st = { 0, 0 };

		o = canon(&st, in, i, got);
		o += canon(&st, in + i, n - i, got + o);
		if (o != nwant || memcmp(got, want, o) != 0)
			bad++;
	}
	for (i = 0; n <= 200 && i <= n; i++)
		for (j = i; j <= n; j++) {
			engine__canon st = { 0, 0 };

			o = canon(&st, in, i, got);
			o += canon(&st, in + i, j - i, got + o);
			o += canon(&st, in + j, n - j, got + o);
			if (o != nwant || memcmp(got, want, o) != 0)
				bad++;
		}
	{
		engine__canon st = { 0, 0 };

		for (i = 0, o = 0; i < n; i++)
			o += canon(&st, in + i, 1, got + o);
		if (o != nwant || memcmp(got, want, o) != 0 || st.in_string ||
		    st.escaped)
			bad++;
	}
	return bad;
}

static void check_canon(const char *in, size_t n)
{
	char *want = malloc(n + 1), *got = malloc(n + 1);
	size_t nwant = ref_strip(in, n, want), v, nv;
	canon_fn fns[2];

	nv = canon_versions(fns);
	for (v = 0; v < nv; v++) {
		int bad = canon_splits_differ(fns[v], in, n, want, nwant, got);

		if (bad)
			printf("# canon (%s) differs on \"%.*s\" (%d cuts)\n",
			       v ? "wide" : "narrow", (int)n, in, bad);
		ASSERT_EQ_INT(bad, 0);
	}
	free(want);
	free(got);
}

/*
 * A valid JSON object for the canonicaliser: blank runs of every length
 * outside strings, strings with blanks, runs of backslashes (odd and
 * even) before quotes and letters, multibyte UTF-8, so that every kind of
 * byte falls on and around 64-byte block edges.
 */
static size_t canon_random_object(char *out, size_t room, unsigned *seed)
{
	static const char *const pieces[] = {
		" ", "\n", "\r\n", "\t", "                ",
	};
	size_t o = 0, k, nfields = 1 + (size_t)(rand_r(seed) % 12);

#define PUT(s) put(out, &o, s)
	PUT("{");
	for (k = 0; k < nfields && o + 1024 < room; k++) {
		size_t len = (size_t)(rand_r(seed) % 90), j;

		if (k)
			PUT(",");
		PUT(pieces[rand_r(seed) % 5]);
		PUT("\"");
		for (j = 0; j < len; j++) {
			switch (rand_r(seed) % 10) {
			case 0: PUT("\\\""); break;
			case 1: PUT("\\\\"); break;
			case 2: PUT("\\\\\\\""); break;
			case 3: PUT(" "); break;
			case 4: PUT("\xc3\xa9"); break;
			case 5: PUT("\\n"); break;
			default: out[o++] = (char)('a' + rand_r(seed) % 26);
			}
		}
		PUT("\"");
		for (j = rand_r(seed) % 3; j > 0; j--)
			PUT(pieces[rand_r(seed) % 5]);
		PUT(":");
		PUT(pieces[rand_r(seed) % 5]);
		if (rand_r(seed) % 2)
			PUT("[ 1 ,\t-2.5e3 , true , null ]");
		else
			PUT("\"x\\\\\"");
	}
	PUT(pieces[rand_r(seed) % 5]);
	PUT("}");
#undef PUT
	return o;
}

/* Both versions against ref_strip on generated objects, cut anywhere. */
static void test_engine_scan__canon_generated(void)
{
	char *in = malloc(8192);
	unsigned seed = 20261123;
	int i;

	for (i = 0; i < 400; i++)
		check_canon(in, canon_random_object(in, 8192, &seed));
	free(in);
	if (!engine__cpu_wide())
		printf("# this CPU lacks AVX-512 VBMI2: wide version not "
		       "checked\n");
}

static void test_engine_scan__canon_every_split(void)
{
	size_t i;

	for (i = 0; i < sizeof(canon_inputs) / sizeof(canon_inputs[0]); i++)
		check_canon(canon_inputs[i], strlen(canon_inputs[i]));
	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		if (i < 6) /* the valid multi-entry samples */
			check_canon(samples[i].data, samples[i].len);
}

static void test_engine_scan__canon_exact(void)
{
	static const char in[] = "{ \"a b\" : [ 1 , \"\\\" x\" ] ,\n"
	                         "  \"c\\\\\" : \"\\\\\" }";
	static const char want[] =
	        "{\"a b\":[1,\"\\\" x\"],\"c\\\\\":\"\\\\\"}";
	char out[sizeof(in)];
	engine__canon st = { 0, 0 };
	size_t n = engine__canon_chunk(&st, in, sizeof(in) - 1, out);

	ASSERT_EQ_MEM(out, n, want, sizeof(want) - 1);
	/* state carries over: a chunk ending on a backslash in a string */
	memset(&st, 0, sizeof(st));
	n = engine__canon_chunk(&st, "\"a\\", 3, out);
	ASSERT_EQ_INT(st.in_string, 1);
	ASSERT_EQ_INT(st.escaped, 1);
	n += engine__canon_chunk(&st, "\" \" ", 4, out + n);
	ASSERT_EQ_MEM(out, n, "\"a\\\" \"", 6);
	ASSERT_EQ_INT(st.in_string, 0);
}

static void test_engine_scan__problem_names_escaped(void)
{
	/* A control character in a file name would act on the terminal
	 * the problem is printed to. */
	engine_problem pr = { (char *)"memory-\033[2J\x7f.json", 3, 1,
			      ENGINE_ERROR, (char *)"bad", 1 };
	char buf[64], small[12];

	engine_problem_format(&pr, buf, sizeof(buf));
	ASSERT_EQ_STR(buf, "memory-\\x1b[2J\\x7f.json:3:1: error: bad");
	engine_problem_format(&pr, small, sizeof(small));
	ASSERT_EQ_STR(small, "memory-"); /* never half an escape */

	/* Bytes that are not UTF-8, and C1 controls (U+009B is CSI), too;
	 * characters pass whole or not at all. */
	pr.file = (char *)"m-\xff-\xc2\x9b-\xc3\xa9-\xe2\x82\xac-\xed\xa0\x80";
	engine_problem_format(&pr, buf, sizeof(buf));
	ASSERT_EQ_STR(buf, "m-\\xff-\\xc2\\x9b-\xc3\xa9-\xe2\x82\xac-"
	                   "\\xed\\xa0\\x80:3:1: error: bad");
	pr.file = (char *)"memory-\xe2\x82\xac";
	engine_problem_format(&pr, small, 10);
	ASSERT_EQ_STR(small, "memory-");
}

/*
 * A file that ends inside an entry is cut short (a writer died), as the
 * spec's flag says; damage before the end is not.  Sync repairs only the
 * first kind from another copy.
 */
static void test_engine_scan__cut_short(void)
{
	static const struct {
		const char *doc;
		int cut;
	} docs[] = {
		{ "[{\"k\":1},{\"k\":", 1 },
		{ "[{\"k\":1},{\"k\":\"ab", 1 },
		{ "[{\"k\":1}", 1 },
		{ "{\"k\":1}\n{\"k\":", 1 },
		{ "{\"k\":1}\n{\"k\":\"x", 1 },
		{ "[{\"k\":1},,{\"k\":2}]", 0 },
		{ "{\"k\":1}\n{\"k\":\n{\"k\":2}\n", 0 },
		{ "[{\"k\":1}] x", 0 },
		{ "[{\"k\":1}]", 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		mem_src m = { docs[i].doc, strlen(docs[i].doc), 0, 0 };
		engine__scan_spec spec = test_spec;
		engine_problems pr;
		result res;
		int cut = 0;

		spec.cut_short = &cut;
		memset(&res, 0, sizeof(res));
		engine_problems_init(&pr);
		res.r = engine__scan(mem_read, &m, 3, "f", &spec, collect,
		                     &res, &pr);
		result_take_problems(&res, &pr);
		if (cut != docs[i].cut)
			fprintf(stdout, "# %s\n", docs[i].doc);
		ASSERT_EQ_INT(cut, docs[i].cut);
		result_free(&res);
	}
}

static const harness_case cases[] = {
	TEST(test_engine_scan__cut_short),
	TEST(test_engine_scan__problem_names_escaped),
	TEST(test_engine_scan__huge_string_bounded_memory),
	TEST(test_engine_scan__every_chunk_size),
	TEST(test_engine_scan__resume_at_marks),
	TEST(test_engine_scan__canon_len),
	TEST(test_engine_scan__canon_generated),
	TEST(test_engine_scan__pretty),
	TEST(test_engine_scan__compact_and_empty),
	TEST(test_engine_scan__jsonl),
	TEST(test_engine_scan__unicode_and_escapes),
	TEST(test_engine_scan__duplicate_keys_and_paths),
	TEST(test_engine_scan__numbers_as_written),
	TEST(test_engine_scan__long_values_truncate),
	TEST(test_engine_scan__truncated),
	TEST(test_engine_scan__invalid_json_in_the_middle),
	TEST(test_engine_scan__trailing_commas_and_numbers),
	TEST(test_engine_scan__invalid_utf8),
	TEST(test_engine_scan__nul_and_control_bytes),
	TEST(test_engine_scan__non_object_elements),
	TEST(test_engine_scan__formats),
	TEST(test_engine_scan__problem_limit),
	TEST(test_engine_scan__deep_nesting),
	TEST(test_engine_scan__read_error_and_callback_stop),
	TEST(test_engine_scan__json_test_suite),
	TEST(test_engine_scan__string_loops_agree),
	TEST(test_engine_scan__canon_every_split),
	TEST(test_engine_scan__canon_exact),
};

HARNESS_MAIN(cases)
