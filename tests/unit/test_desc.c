/* SPDX-License-Identifier: MIT */
/*
 * test_desc.c - unit tests for descriptors/: the built-in default, parsing
 * and every validation rule (exact messages), loading from a directory
 * (symlinks, size cap, file name vs target), listing descriptor files and
 * matching sources in a real temporary tree with hidden files, symlinks
 * to files and directories (one pointing outside), `.git`, FIFOs, the
 * target and descriptor files.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "desc.h"
#include "harness.h"

#define DEFAULT_ORIGIN "(built-in default)"

/* ---- helpers ---- */

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_file(int dirfd, const char *rel, const char *text)
{
	int fd = openat(dirfd, rel, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	size_t len = strlen(text);

	ASSERT_TRUE(fd >= 0);
	if (fd < 0)
		return;
	ASSERT_EQ_INT(write(fd, text, len), len);
	close(fd);
}

/* Compare a NULL-terminated name list with the expected one. */
static void check_names(char **got, int n, const char *const *want)
{
	int i, nwant = 0;

	while (want[nwant])
		nwant++;
	ASSERT_EQ_INT(n, nwant);
	if (!got)
		return;
	for (i = 0; got[i] || want[i]; i++) {
		if (!got[i] || !want[i]) {
			ASSERT_EQ_STR(got[i], want[i]);
			break;
		}
		ASSERT_EQ_STR(got[i], want[i]);
	}
}

static void check_path(const desc_path *p, const char *text,
                       const char *const *parts, size_t nparts)
{
	size_t i;

	ASSERT_EQ_STR(p->text, text);
	ASSERT_EQ_INT(p->nparts, nparts);
	for (i = 0; i < nparts && i < p->nparts; i++)
		ASSERT_EQ_STR(p->parts[i], parts[i]);
}

/* Parse `text` expecting -EINVAL with exactly `msg`. */
static void check_reject(const char *text, const char *msg)
{
	desc_descriptor *d = (desc_descriptor *)1;
	desc_error err;
	int r;

	memset(&err, 0x55, sizeof(err));
	r = desc_parse(&d, text, strlen(text), "t.merge.json", &err);
	ASSERT_EQ_INT(r, -EINVAL);
	ASSERT_TRUE(d == NULL);
	if (r != -EINVAL) {
		desc_free(d);
		printf("#   for %s\n", text);
		return;
	}
	ASSERT_EQ_STR(err.source, "t.merge.json");
	ASSERT_EQ_INT(err.line, 0);
	ASSERT_EQ_INT(err.column, 0);
	if (strcmp(err.text, msg) != 0) {
		printf("#   for %s\n", text);
		ASSERT_EQ_STR(err.text, msg);
	}
}

static desc_descriptor *parse_ok(const char *text)
{
	desc_descriptor *d = NULL;
	desc_error err;
	int r;

	r = desc_parse(&d, text, strlen(text), "ok.merge.json", &err);
	ASSERT_EQ_INT(r, 0);
	if (r < 0)
		printf("#   %s: %s\n", text, err.text);
	return d;
}

/* ---- cases ---- */

static void test_desc__default(void)
{
	static const char *const key[] = { "_crdt_metadata", "unique_id" };
	static const char *const ts[] = { "_crdt_metadata", "timestamp" };
	static const char *const ver[] = { "_crdt_metadata", "version" };
	static const char *const host[] = { "_crdt_metadata", "host" };
	desc_descriptor *d = NULL;

	ASSERT_EQ_INT(desc_default(&d), 0);
	ASSERT_TRUE(d != NULL);
	if (!d)
		return;
	ASSERT_EQ_STR(d->target, "unified-memory.json");
	ASSERT_EQ_STR(d->target, DESC_DEFAULT_TARGET);
	ASSERT_EQ_INT(d->nsources, 1);
	ASSERT_EQ_STR(d->sources[0], "memory-*.json");
	ASSERT_EQ_INT(d->nkeys, 1);
	check_path(&d->keys[0], "_crdt_metadata.unique_id", key, 2);
	ASSERT_EQ_INT(d->norder, 3);
	check_path(&d->order[0].path, "_crdt_metadata.timestamp", ts, 2);
	ASSERT_EQ_INT(d->order[0].type, DESC_ORDER_TIMESTAMP);
	check_path(&d->order[1].path, "_crdt_metadata.version", ver, 2);
	ASSERT_EQ_INT(d->order[1].type, DESC_ORDER_INTEGER);
	check_path(&d->order[2].path, "_crdt_metadata.host", host, 2);
	ASSERT_EQ_INT(d->order[2].type, DESC_ORDER_STRING);
	ASSERT_EQ_INT(d->format, DESC_FORMAT_JSON);
	ASSERT_EQ_STR(d->origin, DEFAULT_ORIGIN);
	desc_free(d);
	desc_free(NULL);
}

static void test_desc__full(void)
{
	static const char *const k0[] = { "id" };
	static const char *const k1[] = { "meta", "uuid", "v" };
	static const char *const o0[] = { "meta", "when" };
	static const char *const o1[] = { "rank" };
	static const char *const o2[] = { "meta", "who" };
	const char *text =
	        "{\n"
	        "  \"format\": \"jsonl\",\n"
	        "  \"target\": \"notes.jsonl\",\n"
	        "  \"sources\": [\"notes/*.jsonl\", \"notes-[a-z]?.json\",\n"
	        "              \".hidden/[[:digit:]]*\", \"a\\\\*b\"],\n"
	        "  \"key\": [\"id\", \"meta.uuid.v\"],\n"
	        "  \"order\": [\n"
	        "    {\"type\": \"timestamp\", \"path\": \"meta.when\"},\n"
	        "    {\"path\": \"rank\", \"type\": \"integer\"},\n"
	        "    {\"path\": \"meta.who\", \"type\": \"string\"}\n"
	        "  ]\n"
	        "}\n";
	desc_descriptor *d = parse_ok(text);

	if (!d)
		return;
	ASSERT_EQ_STR(d->target, "notes.jsonl");
	ASSERT_EQ_INT(d->nsources, 4);
	ASSERT_EQ_STR(d->sources[0], "notes/*.jsonl");
	ASSERT_EQ_STR(d->sources[1], "notes-[a-z]?.json");
	ASSERT_EQ_STR(d->sources[2], ".hidden/[[:digit:]]*");
	ASSERT_EQ_STR(d->sources[3], "a\\*b");
	ASSERT_EQ_INT(d->nkeys, 2);
	check_path(&d->keys[0], "id", k0, 1);
	check_path(&d->keys[1], "meta.uuid.v", k1, 3);
	ASSERT_EQ_INT(d->norder, 3);
	check_path(&d->order[0].path, "meta.when", o0, 2);
	ASSERT_EQ_INT(d->order[0].type, DESC_ORDER_TIMESTAMP);
	check_path(&d->order[1].path, "rank", o1, 1);
	ASSERT_EQ_INT(d->order[1].type, DESC_ORDER_INTEGER);
	check_path(&d->order[2].path, "meta.who", o2, 2);
	ASSERT_EQ_INT(d->order[2].type, DESC_ORDER_STRING);
	ASSERT_EQ_INT(d->format, DESC_FORMAT_JSONL);
	ASSERT_EQ_STR(d->origin, "ok.merge.json");
	desc_free(d);
}

static void test_desc__defaults_when_omitted(void)
{
	static const char *const key[] = { "_crdt_metadata", "unique_id" };
	desc_descriptor *d, *def = NULL;
	size_t i;

	d = parse_ok("{\"target\":\"n.json\",\"sources\":[\"n-*.json\"]}");
	ASSERT_EQ_INT(desc_default(&def), 0);
	if (!d || !def)
		goto out;
	ASSERT_EQ_STR(d->target, "n.json");
	ASSERT_EQ_INT(d->nkeys, 1);
	check_path(&d->keys[0], "_crdt_metadata.unique_id", key, 2);
	ASSERT_EQ_INT(d->norder, def->norder);
	for (i = 0; i < d->norder && i < def->norder; i++) {
		ASSERT_EQ_STR(d->order[i].path.text, def->order[i].path.text);
		ASSERT_EQ_INT(d->order[i].type, def->order[i].type);
	}
	ASSERT_EQ_INT(d->format, DESC_FORMAT_JSON);
	/* No error, no position: parse with err NULL must work too. */
	desc_free(d);
	d = NULL;
	ASSERT_EQ_INT(desc_parse(&d, "{\"target\":\"x\",\"sources\":[\"y\"]}",
	                         30, NULL, NULL),
	              0);
	if (d)
		ASSERT_EQ_STR(d->origin, "(descriptor)");
	desc_free(d);
	ASSERT_EQ_INT(desc_parse(&d, "[]", 2, NULL, NULL), -EINVAL);
	ASSERT_TRUE(d == NULL);
out:
	desc_free(d);
	desc_free(def);
}

#define T(rest) "{\"target\":\"t.json\",\"sources\":[\"s-*.json\"]" rest "}"
#define S(src)  "{\"target\":\"t.json\",\"sources\":" src "}"
#define O3      "{\"path\":\"a\",\"type\":\"string\"},"

static void test_desc__rejections(void)
{
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{ "[1]", "descriptor must be a JSON object" },
		{ "{\"target\":\"t.json\",\"sorce\":[\"x\"]}",
		  "unknown field \"sorce\"" },
		{ T(",\"a\\\"\\n\":1"), "unknown field \"a\\\"\\x0a\"" },
		{ "{\"sources\":[\"x\"]}", "field \"target\": is required" },
		{ "{\"target\":5,\"sources\":[\"x\"]}",
		  "field \"target\": must be a string" },
		{ "{\"target\":\"\",\"sources\":[\"x\"]}",
		  "field \"target\": must not be empty" },
		{ "{\"target\":\"a/b.json\",\"sources\":[\"x\"]}",
		  "field \"target\": must be a plain file name (no \"/\")" },
		{ "{\"target\":\"x.merge.json\",\"sources\":[\"x\"]}",
		  "field \"target\": must not end in \".merge.json\"" },
		{ "{\"target\":\"..\",\"sources\":[\"x\"]}",
		  "field \"target\": must not start with \".\"" },
		{ "{\"target\":\".hidden\",\"sources\":[\"x\"]}",
		  "field \"target\": must not start with \".\"" },
		{ "{\"target\":\"memory-all.json\",\"sources\":[\"a/*\","
		  "\"memory-*.json\"]}",
		  "field \"target\": matched by its own source pattern "
		  "\"memory-*.json\" (sources[1])" },
		{ "{\"target\":\"t.json\"}",
		  "field \"sources\": must be a non-empty array of strings" },
		{ S("[]"),
		  "field \"sources\": must be a non-empty array of strings" },
		{ S("\"x.json\""),
		  "field \"sources\": must be a non-empty array of strings" },
		{ S("[\"a\",2]"), "field \"sources[1]\": must be a string" },
		{ S("[\"a.json\",\"/etc/x\"]"),
		  "field \"sources[1]\": absolute paths are not allowed" },
		{ S("[\"../x.json\"]"),
		  "field \"sources[0]\": \"..\" is not allowed" },
		{ S("[\"a/../b\"]"),
		  "field \"sources[0]\": \"..\" is not allowed" },
		{ S("[\"a/..\"]"),
		  "field \"sources[0]\": \"..\" is not allowed" },
		{ S("[\"./x\"]"),
		  "field \"sources[0]\": \".\" is not allowed" },
		{ S("[\"a//b\"]"), "field \"sources[0]\": empty path segment" },
		{ S("[\"a/\"]"),
		  "field \"sources[0]\": must not end in \"/\"" },
		{ S("[\"\"]"), "field \"sources[0]\": must not be empty" },
		{ S("[\"a[bc\"]"),
		  "field \"sources[0]\": unterminated \"[\" in glob" },
		{ S("[\"ok\",\"x/[]\"]"),
		  "field \"sources[1]\": unterminated \"[\" in glob" },
		{ S("[\"[!]\"]"),
		  "field \"sources[0]\": unterminated \"[\" in glob" },
		{ S("[\"[[:alpha:]\"]"),
		  "field \"sources[0]\": unterminated \"[\" in glob" },
		{ S("[\"[[:alpha]\"]"),
		  "field \"sources[0]\": unterminated \"[\" in glob" },
		{ S("[\"a[/]b\"]"),
		  "field \"sources[0]\": unterminated \"[\" in glob" },
		{ S("[\"[[:foo:]]\"]"),
		  "field \"sources[0]\": unknown character class \"[:foo:]\" in "
		  "glob" },
		{ S("[\"[[.a.]]\"]"),
		  "field \"sources[0]\": collating symbols (\"[.\") are not "
		  "supported in globs" },
		{ S("[\"a\\\\\"]"),
		  "field \"sources[0]\": glob ends in a lone \"\\\"" },
		{ T(",\"key\":[\"a..b\"]"),
		  "field \"key[0]\": empty path segment" },
		{ T(",\"key\":[\"ok\",\".a\"]"),
		  "field \"key[1]\": empty path segment" },
		{ T(",\"key\":[\"a.\"]"),
		  "field \"key[0]\": empty path segment" },
		{ T(",\"key\":[\"\"]"), "field \"key[0]\": must not be empty" },
		{ T(",\"key\":[]"),
		  "field \"key\": must be a non-empty array of strings" },
		{ T(",\"key\":\"id\""),
		  "field \"key\": must be a non-empty array of strings" },
		{ T(",\"key\":[1]"), "field \"key[0]\": must be a string" },
		{ T(",\"key\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\","
		    "\"9\"]"),
		  "field \"key\": at most 8 paths are allowed" },
		{ T(",\"order\":[" O3 O3
		    "{\"path\":\"c\",\"type\":\"float\"}]"),
		  "field \"order[2].type\": must be \"timestamp\", \"integer\" "
		  "or \"string\" (not \"float\")" },
		{ T(",\"order\":[{\"path\":\"c\",\"type\":\"x\\u001b[31m\"}]"),
		  "field \"order[0].type\": must be \"timestamp\", \"integer\" "
		  "or \"string\" (not \"x\\x1b[31m\")" },
		{ T(",\"order\":[{\"path\":\"c\",\"type\":3}]"),
		  "field \"order[0].type\": must be \"timestamp\", \"integer\" "
		  "or \"string\"" },
		{ T(",\"order\":[{\"path\":\"c\"}]"),
		  "field \"order[0].type\": is required" },
		{ T(",\"order\":[{\"type\":\"string\"}]"),
		  "field \"order[0].path\": is required" },
		{ T(",\"order\":[{\"path\":[],\"type\":\"string\"}]"),
		  "field \"order[0].path\": must be a string" },
		{ T(",\"order\":[" O3
		    "{\"path\":\"a..b\",\"type\":\"string\"}]"),
		  "field \"order[1].path\": empty path segment" },
		{ T(",\"order\":[{\"path\":\"c\",\"type\":\"string\",\"x\":1}]"),
		  "unknown field \"order[0].x\"" },
		{ T(",\"order\":[1]"),
		  "field \"order[0]\": must be an object" },
		{ T(",\"order\":[]"),
		  "field \"order\": must be a non-empty array of objects" },
		{ T(",\"order\":{}"),
		  "field \"order\": must be a non-empty array of objects" },
		{ T(",\"order\":[" O3 O3 O3 O3 O3 O3 O3 O3 "{\"path\":\"a\","
		    "\"type\":\"string\"}]"),
		  "field \"order\": at most 8 fields are allowed" },
		{ T(",\"format\":\"yaml\""),
		  "field \"format\": must be \"json\" or \"jsonl\"" },
		{ T(",\"format\":null"),
		  "field \"format\": must be \"json\" or \"jsonl\"" },
	};
	char text[8192], *p;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_reject(cases[i].text, cases[i].msg);

	/* A target of 244 bytes is fine, 245 is not (244 + 11 = NAME_MAX). */
	p = text + sprintf(text, "{\"target\":\"");
	memset(p, 'x', 244);
	strcpy(p + 244, "\",\"sources\":[\"y\"]}");
	desc_free(parse_ok(text));
	memset(p, 'x', 245);
	strcpy(p + 245, "\",\"sources\":[\"y\"]}");
	check_reject(text, "field \"target\": longer than 244 bytes");

	/* 64 pattern segments are fine, 65 are not. */
	p = text + sprintf(text, "{\"target\":\"t\",\"sources\":[\"");
	for (i = 0; i < 64; i++)
		p += sprintf(p, "%sd", i ? "/" : "");
	strcpy(p, "\"]}");
	desc_free(parse_ok(text));
	strcpy(p, "/d\"]}");
	check_reject(text, "field \"sources[0]\": more than 64 path segments");

	/* Patterns of 4095 bytes are fine, 4096 are not. */
	p = text + sprintf(text, "{\"target\":\"t\",\"sources\":[\"");
	for (i = 0; i < 4095; i++)
		*p++ = (i % 128 == 127) ? '/' : 'a';
	strcpy(p, "\"]}");
	desc_free(parse_ok(text));
	strcpy(p, "b\"]}");
	check_reject(text, "field \"sources[0]\": longer than 4095 bytes");

	/* Eight keys and eight order fields are fine. */
	desc_free(parse_ok(T(",\"key\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\","
	                     "\"7\",\"8\"],\"order\":[" O3 O3 O3 O3 O3 O3 O3
	                     "{\"path\":\"a\",\"type\":\"string\"}]")));
}

static void test_desc__syntax_error(void)
{
	const char *text = "{\n"
	                   "  \"target\": \"t.json\",\n"
	                   "  \"sources\": [\"a\" \"b\"]\n"
	                   "}\n";
	const char *dup = "{\"target\":\"a\",\n\"target\":\"b\"}";
	desc_descriptor *d = NULL;
	desc_error err;

	ASSERT_EQ_INT(desc_parse(&d, text, strlen(text), "x.merge.json", &err),
	              -EINVAL);
	ASSERT_TRUE(d == NULL);
	ASSERT_EQ_STR(err.source, "x.merge.json");
	ASSERT_EQ_INT(err.line, 3);
	/* jansson reports the column where the offending token ends. */
	ASSERT_EQ_INT(err.column, 21);
	ASSERT_TRUE(strncmp(err.text, "invalid JSON: ", 14) == 0);
	printf("# syntax: %s\n", err.text);
	/* in bytes, as every position crdtfs reports: "é" is 2, "€" 3 */
	{
		const char *wide = "{\"target\": \"t.json\",\n"
		                   "\"sources\": [\"\xc3\xa9\xe2\x82\xac\" \"b\"]}";

		ASSERT_EQ_INT(desc_parse(&d, wide, strlen(wide), "w", &err),
		              -EINVAL);
		ASSERT_EQ_INT(err.line, 2);
		ASSERT_EQ_INT(err.column, 23); /* the '"' closing "b" */
	}

	ASSERT_EQ_INT(desc_parse(&d, dup, strlen(dup), "d", &err), -EINVAL);
	ASSERT_EQ_INT(err.line, 2);
	ASSERT_TRUE(strstr(err.text, "duplicate object key") != NULL);
	printf("# duplicate: %s\n", err.text);

	/* Empty input and trailing garbage are syntax errors too. */
	ASSERT_EQ_INT(desc_parse(&d, "", 0, "e", &err), -EINVAL);
	ASSERT_TRUE(strncmp(err.text, "invalid JSON: ", 14) == 0);
	ASSERT_EQ_INT(err.line, 1);
	ASSERT_EQ_INT(err.column, 1); /* not 0: columns count from 1 */
	ASSERT_EQ_INT(desc_parse(&d, "{\n", 2, "e", &err), -EINVAL);
	ASSERT_EQ_INT(err.line, 2);
	ASSERT_EQ_INT(err.column, 1);
	ASSERT_EQ_INT(desc_parse(&d, "{} x", 4, "e", &err), -EINVAL);
	ASSERT_TRUE(strncmp(err.text, "invalid JSON: ", 14) == 0);
	ASSERT_EQ_INT(err.line, 1);
	/* JSON text with a NUL in a string is rejected (jansson default),
	 * in words that do not name jansson's flag. */
	ASSERT_EQ_INT(desc_parse(&d, "{\"target\":\"a\\u0000b\"}", 21, "e",
	                         &err),
	              -EINVAL);
	ASSERT_TRUE(d == NULL);
	ASSERT_EQ_STR(err.text, "invalid JSON: \\u0000 (a NUL character) is "
	              "not allowed in a descriptor");
}

/* Make a fresh temporary directory; returns an fd to it, name in dir. */
static int make_tmp(char *dir, size_t size)
{
	snprintf(dir, size, "/tmp/test_desc.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return open(dir, O_RDONLY | O_DIRECTORY);
}

static void test_desc__load(void)
{
	const char *good = "{\"target\":\"notes.json\","
	                   "\"sources\":[\"notes-*.json\"]}";
	desc_descriptor *d = NULL;
	desc_error err;
	char dir[64], *big;
	int fd, bfd;

	fd = make_tmp(dir, sizeof(dir));
	ASSERT_TRUE(fd >= 0);
	if (fd < 0)
		return;
	write_file(fd, "notes.json.merge.json", good);
	ASSERT_EQ_INT(desc_load(&d, fd, "notes.json.merge.json", &err), 0);
	if (d) {
		ASSERT_EQ_STR(d->target, "notes.json");
		ASSERT_EQ_STR(d->origin, "notes.json.merge.json");
		desc_free(d);
		d = NULL;
	}

	/* A file named for another target is rejected. */
	write_file(fd, "other.json.merge.json", good);
	ASSERT_EQ_INT(desc_load(&d, fd, "other.json.merge.json", &err),
	              -EINVAL);
	ASSERT_EQ_STR(err.source, "other.json.merge.json");
	ASSERT_EQ_STR(err.text, "field \"target\": must be \"other.json\" to "
	                        "match the descriptor file name");
	/* A file not named *.merge.json can describe any target. */
	write_file(fd, "custom.json", good);
	ASSERT_EQ_INT(desc_load(&d, fd, "custom.json", &err), 0);
	desc_free(d);
	d = NULL;

	/* Symlinked descriptor. */
	ASSERT_EQ_INT(symlinkat("notes.json.merge.json", fd,
	                        "link.json.merge.json"),
	              0);
	ASSERT_EQ_INT(desc_load(&d, fd, "link.json.merge.json", &err), -EINVAL);
	ASSERT_TRUE(d == NULL);
	ASSERT_EQ_STR(err.source, "link.json.merge.json");
	ASSERT_EQ_STR(err.text,
	              "descriptor must be a regular file, not a symlink");

	/* Missing. */
	ASSERT_EQ_INT(desc_load(&d, fd, "none.json.merge.json", &err), -ENOENT);
	ASSERT_EQ_STR(err.source, "none.json.merge.json");

	/* A directory and a FIFO (must not block). */
	ASSERT_EQ_INT(mkdirat(fd, "dir.json.merge.json", 0755), 0);
	ASSERT_EQ_INT(desc_load(&d, fd, "dir.json.merge.json", &err), -EINVAL);
	ASSERT_EQ_STR(err.text, "descriptor must be a regular file");
	ASSERT_EQ_INT(mkfifoat(fd, "fifo.json.merge.json", 0644), 0);
	ASSERT_EQ_INT(desc_load(&d, fd, "fifo.json.merge.json", &err), -EINVAL);
	ASSERT_EQ_STR(err.text, "descriptor must be a regular file");

	/* Syntax errors carry the file name and position. */
	write_file(fd, "bad.json.merge.json", "{\n\n  \"target\" 1}");
	ASSERT_EQ_INT(desc_load(&d, fd, "bad.json.merge.json", &err), -EINVAL);
	ASSERT_EQ_STR(err.source, "bad.json.merge.json");
	ASSERT_EQ_INT(err.line, 3);
	ASSERT_EQ_INT(err.column, 12);

	/* Exactly 1 MiB (padded with spaces) loads; one byte more does not. */
	big = malloc(1024 * 1024 + 2);
	if (big) {
		size_t n = strlen(good);

		memset(big, ' ', 1024 * 1024 + 1);
		memcpy(big, "{\"target\":\"notes.json\",", 23);
		memcpy(big + 1024 * 1024 - (n - 23), good + 23, n - 23);
		big[1024 * 1024] = '\0';
		bfd = openat(fd, "big.json", O_WRONLY | O_CREAT, 0644);
		ASSERT_EQ_INT(write(bfd, big, 1024 * 1024), 1024 * 1024);
		ASSERT_EQ_INT(desc_load(&d, fd, "big.json", &err), 0);
		if (!d)
			printf("#   %s\n", err.text);
		desc_free(d);
		d = NULL;
		ASSERT_EQ_INT(write(bfd, " ", 1), 1);
		close(bfd);
		ASSERT_EQ_INT(desc_load(&d, fd, "big.json", &err), -EINVAL);
		ASSERT_EQ_STR(err.text, "descriptor is larger than 1 MiB");
		free(big);
	}
	ASSERT_TRUE(d == NULL);
	close(fd);
	rm_tree(dir);
}

/*
 * A descriptor named on the command line (`merge --descriptor`) is the
 * user's choice: reached through a symlink, or a pipe (`<(...)`), it
 * loads; a directory still does not.
 */
static void test_desc__load_given(void)
{
	const char *good = "{\"target\":\"notes.json\","
	                   "\"sources\":[\"notes-*.json\"]}";
	desc_descriptor *d = NULL;
	desc_error err;
	char dir[64], path[128];
	int fd, p[2];

	fd = make_tmp(dir, sizeof(dir));
	ASSERT_TRUE(fd >= 0);
	if (fd < 0)
		return;
	write_file(fd, "notes.json.merge.json", good);
	ASSERT_EQ_INT(symlinkat("notes.json.merge.json", fd, "link.json"), 0);
	snprintf(path, sizeof(path), "%s/link.json", dir);
	ASSERT_EQ_INT(desc_load_given(&d, path, &err), 0);
	if (d)
		ASSERT_EQ_STR(d->target, "notes.json");
	desc_free(d);
	d = NULL;

	ASSERT_EQ_INT(pipe(p), 0);
	ASSERT_EQ_INT(write(p[1], good, strlen(good)), (int)strlen(good));
	close(p[1]);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p[0]);
	ASSERT_EQ_INT(desc_load_given(&d, path, &err), 0);
	if (d)
		ASSERT_EQ_STR(d->target, "notes.json");
	desc_free(d);
	d = NULL;
	close(p[0]);

	ASSERT_EQ_INT(desc_load_given(&d, dir, &err), -EINVAL);
	ASSERT_EQ_STR(err.text, "descriptor must be a regular file");
	snprintf(path, sizeof(path), "%s/none", dir);
	ASSERT_EQ_INT(desc_load_given(&d, path, &err), -ENOENT);
	ASSERT_TRUE(d == NULL);
	close(fd);
	rm_tree(dir);
}

static void test_desc__list(void)
{
	static const char *const want[] = { ".h.merge.json", "a.merge.json",
		                            "b.merge.json", NULL };
	static const char *const none[] = { NULL };
	char dir[64], **names = NULL;
	int fd, n;

	fd = make_tmp(dir, sizeof(dir));
	ASSERT_TRUE(fd >= 0);
	if (fd < 0)
		return;
	n = desc_list(&names, fd);
	check_names(names, n, none);
	ASSERT_TRUE(names && !names[0]);
	desc_names_free(names);

	write_file(fd, "b.merge.json", "{}");
	write_file(fd, "a.merge.json", "{}");
	write_file(fd, ".h.merge.json", "{}");
	write_file(fd, ".merge.json", "{}");
	write_file(fd, "x.merge.jsonx", "{}");
	write_file(fd, "merge.json", "{}");
	ASSERT_EQ_INT(symlinkat("a.merge.json", fd, "l.merge.json"), 0);
	ASSERT_EQ_INT(symlinkat("/nonexistent", fd, "d.merge.json"), 0);
	ASSERT_EQ_INT(mkdirat(fd, "dir.merge.json", 0755), 0);
	ASSERT_EQ_INT(mkdirat(fd, "sub", 0755), 0);
	write_file(fd, "sub/c.merge.json", "{}");
	ASSERT_EQ_INT(mkfifoat(fd, "f.merge.json", 0644), 0);

	names = NULL;
	n = desc_list(&names, fd);
	check_names(names, n, want);
	desc_names_free(names);
	desc_names_free(NULL);
	close(fd);
	rm_tree(dir);
}

/*
 * The tree used by the matching tests:
 *   memory-a.json memory-b.json         regular files
 *   memory-c.json -> memory-a.json      symlink to a file
 *   memory-out.json -> OUT/memory-x.json  symlink outside
 *   memory-dir.json/                    directory
 *   memory-fifo.json                    FIFO
 *   memory-z.merge.json                 a descriptor file
 *   unified-memory.json                 the default target
 *   .memory-h.json .hidden.json         hidden files
 *   top.json                            regular file
 *   hosts/h1.json hosts/.h2.json hosts/h3.txt
 *   hosts/sub/h4.json hosts/sub/deep/h5.json
 *   hosts/link.json -> h1.json
 *   linkdir -> hosts                    symlink to a directory inside
 *   outdir -> OUT                       symlink to a directory outside
 *   .git/memory-g.json .git/h1.json    git's directory
 *   .cache/memory-k.json                hidden directory
 *   a/h1.json                           another directory
 */
static int make_tree(char *dir, size_t size, char *out, size_t osize)
{
	char target[128];
	int fd, ofd;

	ofd = make_tmp(out, osize);
	fd = make_tmp(dir, size);
	if (fd < 0 || ofd < 0)
		return -1;
	write_file(ofd, "memory-x.json", "[]");
	write_file(ofd, "h1.json", "[]");
	close(ofd);

	write_file(fd, "memory-a.json", "[]");
	write_file(fd, "memory-b.json", "[]");
	ASSERT_EQ_INT(symlinkat("memory-a.json", fd, "memory-c.json"), 0);
	snprintf(target, sizeof(target), "%s/memory-x.json", out);
	ASSERT_EQ_INT(symlinkat(target, fd, "memory-out.json"), 0);
	ASSERT_EQ_INT(mkdirat(fd, "memory-dir.json", 0755), 0);
	ASSERT_EQ_INT(mkfifoat(fd, "memory-fifo.json", 0644), 0);
	write_file(fd, "memory-z.merge.json", "{}");
	write_file(fd, "unified-memory.json", "[]");
	write_file(fd, ".memory-h.json", "[]");
	write_file(fd, ".hidden.json", "[]");
	write_file(fd, "top.json", "[]");
	ASSERT_EQ_INT(mkdirat(fd, "hosts", 0755), 0);
	write_file(fd, "hosts/h1.json", "[]");
	write_file(fd, "hosts/.h2.json", "[]");
	write_file(fd, "hosts/h3.txt", "[]");
	ASSERT_EQ_INT(mkdirat(fd, "hosts/sub", 0755), 0);
	write_file(fd, "hosts/sub/h4.json", "[]");
	ASSERT_EQ_INT(mkdirat(fd, "hosts/sub/deep", 0755), 0);
	write_file(fd, "hosts/sub/deep/h5.json", "[]");
	ASSERT_EQ_INT(symlinkat("h1.json", fd, "hosts/link.json"), 0);
	ASSERT_EQ_INT(symlinkat("hosts", fd, "linkdir"), 0);
	ASSERT_EQ_INT(symlinkat(out, fd, "outdir"), 0);
	ASSERT_EQ_INT(mkdirat(fd, ".git", 0755), 0);
	write_file(fd, ".git/memory-g.json", "[]");
	write_file(fd, ".git/h1.json", "[]");
	ASSERT_EQ_INT(mkdirat(fd, ".cache", 0755), 0);
	write_file(fd, ".cache/memory-k.json", "[]");
	ASSERT_EQ_INT(mkdirat(fd, "a", 0755), 0);
	write_file(fd, "a/h1.json", "[]");
	return fd;
}

/* Every name returned must also pass desc_is_source(). */
static void check_consistent(const desc_descriptor *d, char **names)
{
	size_t i;

	for (i = 0; names && names[i]; i++)
		if (!desc_is_source(d, names[i])) {
			printf("#   not a source: %s\n", names[i]);
			ASSERT_TRUE(desc_is_source(d, names[i]));
		}
}

static void test_desc__match_default(void)
{
	static const char *const want[] = { "memory-a.json", "memory-b.json",
		                            NULL };
	desc_descriptor *d = NULL;
	char dir[64], out[64], **names = NULL;
	int fd, n;

	fd = make_tree(dir, sizeof(dir), out, sizeof(out));
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ_INT(desc_default(&d), 0);
	if (fd >= 0 && d) {
		n = desc_match_sources(&names, d, fd);
		check_names(names, n, want);
		check_consistent(d, names);
		desc_names_free(names);
	}
	desc_free(d);
	if (fd >= 0)
		close(fd);
	rm_tree(dir);
	rm_tree(out);
}

static void test_desc__match_globs(void)
{
	static const char *const want[] = {
		".cache/memory-k.json", "a/h1.json",
		"hosts/h1.json",        "hosts/sub/deep/h5.json",
		"hosts/sub/h4.json",    "memory-a.json",
		"memory-b.json",        "top.json",
		"unified-memory.json",  NULL
	};
	const char *text = "{\"target\":\"merged.out\",\"sources\":["
	                   "\"*.json\", \"*/h1.json\", \"hosts/*.json\","
	                   "\"hosts/*/*.json\", \"hosts/sub/deep/h5.json\","
	                   "\"hosts/*/*/*.json\", \".*/memory-*.json\","
	                   "\"memory-[ab].json\", \"nothing/*\"]}";
	desc_descriptor *d;
	char dir[64], out[64], **names = NULL;
	int fd, n;

	fd = make_tree(dir, sizeof(dir), out, sizeof(out));
	ASSERT_TRUE(fd >= 0);
	d = parse_ok(text);
	if (fd >= 0 && d) {
		n = desc_match_sources(&names, d, fd);
		check_names(names, n, want);
		check_consistent(d, names);
		desc_names_free(names);

		/* The target is never a source, even if a glob matched it. */
		free(d->target);
		d->target = strdup("top.json");
		names = NULL;
		n = desc_match_sources(&names, d, fd);
		ASSERT_EQ_INT(n, 8);
		ASSERT_TRUE(!desc_is_source(d, "top.json"));
		for (n = 0; names && names[n]; n++)
			ASSERT_TRUE(strcmp(names[n], "top.json") != 0);
		desc_names_free(names);
	}
	desc_free(d);

	/* Hidden names need a pattern starting with a dot. */
	d = parse_ok("{\"target\":\"o\",\"sources\":[\".*.json\","
	             "\"hosts/.*\"]}");
	if (fd >= 0 && d) {
		static const char *const hidden[] = { ".hidden.json",
			                              ".memory-h.json",
			                              "hosts/.h2.json", NULL };

		names = NULL;
		n = desc_match_sources(&names, d, fd);
		check_names(names, n, hidden);
		desc_names_free(names);
	}
	desc_free(d);
	if (fd >= 0)
		close(fd);
	rm_tree(dir);
	rm_tree(out);
}

static void test_desc__match_errors(void)
{
	desc_descriptor *d = NULL;
	char dir[64], **names = (char **)1;
	int fd;

	ASSERT_EQ_INT(desc_default(&d), 0);
	if (!d)
		return;
	fd = make_tmp(dir, sizeof(dir));
	ASSERT_TRUE(fd >= 0);
	/* An empty directory gives an empty, NULL-terminated list. */
	ASSERT_EQ_INT(desc_match_sources(&names, d, fd), 0);
	ASSERT_TRUE(names && !names[0]);
	desc_names_free(names);
	/* A vanished backing directory is an error, not an empty list. */
	rm_tree(dir);
	names = (char **)1;
	ASSERT_EQ_INT(desc_match_sources(&names, d, fd), -ENOENT);
	ASSERT_TRUE(names == NULL);
	ASSERT_EQ_INT(desc_list(&names, fd), -ENOENT);
	ASSERT_TRUE(names == NULL);
	ASSERT_EQ_INT(desc_match_sources(&names, d, -1), -EBADF);
	close(fd);
	desc_free(d);
}

static void test_desc__is_source(void)
{
	static const struct {
		const char *name;
		int want;
	} def[] = {
		{ "memory-a.json", 1 },
		{ "memory-.json", 1 },
		{ "memory-x.merge.json", 0 },
		{ "unified-memory.json", 0 },
		{ "sub/memory-a.json", 0 },
		{ ".memory-a.json", 0 },
		{ "memory-a.json/", 0 },
		{ "/memory-a.json", 0 },
		{ "", 0 },
		{ "memory-a.jsonx", 0 },
	}, globs[] = {
		{ "hosts/h1.json", 1 },
		{ "hosts/sub/h4.json", 1 },
		{ "hosts/sub", 0 },
		{ "hosts//h1.json", 0 },
		{ "hosts/./h1.json", 0 },
		{ "hosts/../h1.json", 0 },
		{ "hosts/.h2.json", 0 },
		{ ".cache/memory-k.json", 1 },
		{ ".git/memory-g.json", 0 },
		{ "x/.git/memory-g.json", 0 },
		{ "a/h1.json", 1 },
		{ "a/b/h1.json", 0 },
		{ "top.json", 1 },
		{ "merged.out", 0 },
		{ "h1.json/", 0 },
	};
	desc_descriptor *d = NULL;
	size_t i;

	ASSERT_EQ_INT(desc_default(&d), 0);
	for (i = 0; d && i < sizeof(def) / sizeof(def[0]); i++)
		if (desc_is_source(d, def[i].name) != def[i].want) {
			printf("#   default: %s\n", def[i].name);
			ASSERT_EQ_INT(desc_is_source(d, def[i].name),
			              def[i].want);
		}
	ASSERT_TRUE(!desc_is_source(d, NULL));
	ASSERT_TRUE(!desc_is_source(NULL, "memory-a.json"));
	desc_free(d);

	d = parse_ok("{\"target\":\"merged.out\",\"sources\":["
	             "\"*.json\", \"*/h1.json\", \"hosts/*/*.json\","
	             "\".*/memory-*.json\"]}");
	for (i = 0; d && i < sizeof(globs) / sizeof(globs[0]); i++)
		if (desc_is_source(d, globs[i].name) != globs[i].want) {
			printf("#   globs: %s\n", globs[i].name);
			ASSERT_EQ_INT(desc_is_source(d, globs[i].name),
			              globs[i].want);
		}
	desc_free(d);
}

static const harness_case tests[] = {
	TEST(test_desc__default),
	TEST(test_desc__full),
	TEST(test_desc__defaults_when_omitted),
	TEST(test_desc__rejections),
	TEST(test_desc__syntax_error),
	TEST(test_desc__load),
	TEST(test_desc__load_given),
	TEST(test_desc__list),
	TEST(test_desc__match_default),
	TEST(test_desc__match_globs),
	TEST(test_desc__match_errors),
	TEST(test_desc__is_source),
};

HARNESS_MAIN(tests)
