/* SPDX-License-Identifier: MIT */
/*
 * test_engine_replace.c - replacing and removing a file only if a check of
 * the file put out of the way accepts it (replace.c): accepted, refused
 * (the file is back), no file, and a save that lands during the check,
 * which is never lost.  No hidden temp file may be left behind, except a
 * save that would otherwise be lost.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine_i.h"
#include "harness.h"
#include "tmpdir.h"

static char path[256];

/* Contents of tmpdir/name (static buffer), or "(missing)". */
static const char *contents(const char *name)
{
	static char buf[256];
	char p[300];
	size_t n;
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	if (!(f = fopen(p, "r")))
		return "(missing)";
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Entries of tmpdir, other than "f"; the first hidden one's contents. */
static int others(const char **hidden)
{
	struct dirent *de;
	DIR *d = opendir(tmpdir);
	int n = 0;

	*hidden = "";
	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, "f"))
			continue;
		if (!n++)
			*hidden = contents(de->d_name);
	}
	if (d)
		closedir(d);
	return n;
}

typedef struct {
	int answer;       /* what check() says */
	const char *save; /* a save to land at path during the check */
	char seen[64];    /* what it saw: the file's bytes, or "(none)" */
} checker;

static int check(void *ctx, const char *displaced)
{
	checker *k = ctx;
	FILE *f;

	snprintf(k->seen, sizeof(k->seen), "%.63s",
		 displaced ? contents(strrchr(displaced, '/') + 1) : "(none)");
	if (k->save) {
		char tmp[300];

		snprintf(tmp, sizeof(tmp), "%s/save.tmp", tmpdir);
		if ((f = fopen(tmp, "w"))) {
			fputs(k->save, f);
			fclose(f);
			if (rename(tmp, path) != 0)
				k->answer = -1;
		}
	}
	return k->answer;
}

static int replace(const char *bytes, checker *k)
{
	return engine__replace_file_bytes(path, 0644, bytes, strlen(bytes),
					  NULL, k ? check : NULL, k);
}

static void setup(const char *old)
{
	make_dir();
	snprintf(path, sizeof(path), "%s/f", tmpdir);
	if (old)
		write_file("f", old);
}

static void test_engine_replace__accepted_or_unchecked(void)
{
	checker k = { 1, NULL, "" };
	const char *hidden;

	setup("old");
	ASSERT_EQ_INT(replace("new", &k), 0);
	ASSERT_EQ_STR(k.seen, "old"); /* checked after it was moved away */
	ASSERT_EQ_STR(contents("f"), "new");
	ASSERT_EQ_INT(replace("newer", NULL), 0);
	ASSERT_EQ_STR(contents("f"), "newer");
	ASSERT_EQ_INT(others(&hidden), 0);
	remove_dir();
}

static void test_engine_replace__refused_is_put_back(void)
{
	checker k = { 0, NULL, "" };
	const char *hidden;

	setup("a save");
	ASSERT_EQ_INT(replace("new", &k), -ESTALE);
	ASSERT_EQ_STR(k.seen, "a save");
	ASSERT_EQ_STR(contents("f"), "a save");
	ASSERT_EQ_INT(others(&hidden), 0);
	remove_dir();
}

/*
 * A save lands while the check looks at the displaced file: it replaced
 * what we wrote.  It is the newest, so it ends at the path; the displaced
 * one, which it superseded, goes, as it would have without us.
 */
static void test_engine_replace__save_during_the_check_wins(void)
{
	checker k = { 0, "newest save", "" };
	const char *hidden;

	setup("a save");
	ASSERT_EQ_INT(replace("new", &k), -ESTALE);
	ASSERT_EQ_STR(contents("f"), "newest save");
	ASSERT_EQ_INT(others(&hidden), 0);
	remove_dir();
}

static void test_engine_replace__no_file_yet(void)
{
	checker yes = { 1, NULL, "" }, no = { 0, NULL, "" };
	const char *hidden;

	setup(NULL);
	ASSERT_EQ_INT(replace("new", &no), -ESTALE);
	ASSERT_EQ_STR(no.seen, "(none)");
	ASSERT_EQ_STR(contents("f"), "(missing)");
	ASSERT_EQ_INT(replace("new", &yes), 0);
	ASSERT_EQ_STR(contents("f"), "new");
	ASSERT_EQ_INT(others(&hidden), 0);
	remove_dir();
}

static void test_engine_replace__remove(void)
{
	checker yes = { 1, NULL, "" }, no = { 0, NULL, "" };
	checker racing = { 0, "created meanwhile", "" };
	const char *hidden;

	setup("a save");
	ASSERT_EQ_INT(engine__remove_file_if(path, check, &no), -ESTALE);
	ASSERT_EQ_STR(no.seen, "a save");
	ASSERT_EQ_STR(contents("f"), "a save");
	ASSERT_EQ_INT(others(&hidden), 0);
	ASSERT_EQ_INT(engine__remove_file_if(path, check, &yes), 0);
	ASSERT_EQ_STR(contents("f"), "(missing)");
	ASSERT_EQ_INT(engine__remove_file_if(path, check, &yes), 0);
	ASSERT_EQ_STR(yes.seen, "(none)");
	ASSERT_EQ_INT(others(&hidden), 0);
	/* A file made at the path during the check: both are kept. */
	write_file("f", "a save");
	ASSERT_EQ_INT(engine__remove_file_if(path, check, &racing), -ESTALE);
	ASSERT_EQ_STR(contents("f"), "created meanwhile");
	ASSERT_EQ_INT(others(&hidden), 1);
	ASSERT_EQ_STR(hidden, "a save");
	remove_dir();
}

/* check(): refuse, after reading back the hidden name it was given. */
static int read_back(void *ctx, const char *displaced)
{
	char *out = ctx;

	if (!displaced ||
	    !engine__hidden_of(strrchr(displaced, '/') + 1, out, 32))
		snprintf(out, 32, "(not a hidden name)");
	return 0;
}

static void test_engine_replace__hidden_names_read_back(void)
{
	char out[32];

	/* The names this module hides files under name the file again. */
	snprintf(path, sizeof(path), "%s/memory-a.json", tmpdir);
	write_file("memory-a.json", "v1");
	ASSERT_EQ_INT(engine__replace_file_bytes(path, 0644, "v2", 2, NULL,
						 read_back, out),
		      -ESTALE);
	ASSERT_EQ_STR(out, "memory-a.json");
	ASSERT_EQ_INT(engine__remove_file_if(path, read_back, out), -ESTALE);
	ASSERT_EQ_STR(out, "memory-a.json");
	ASSERT_EQ_STR(contents("memory-a.json"), "v1");
	ASSERT_EQ_INT(engine__hidden_of(".x.del.123456", out, sizeof(out)), 1);
	ASSERT_EQ_STR(out, "x");
	ASSERT_EQ_INT(engine__hidden_of("memory-a.json", out, sizeof(out)), 0);
	ASSERT_EQ_INT(engine__hidden_of(".tmp.123456", out, sizeof(out)), 0);
	ASSERT_EQ_INT(engine__hidden_of(".a.json.bak.123456", out,
					sizeof(out)),
		      0);
	ASSERT_EQ_INT(engine__hidden_of(".a-name-longer-than-thirty-two-bytes.tmp."
					"123456",
					out, sizeof(out)),
		      0);
}

static const harness_case cases[] = {
	TEST(test_engine_replace__hidden_names_read_back),
	TEST(test_engine_replace__accepted_or_unchecked),
	TEST(test_engine_replace__refused_is_put_back),
	TEST(test_engine_replace__save_during_the_check_wins),
	TEST(test_engine_replace__no_file_yet),
	TEST(test_engine_replace__remove),
};

HARNESS_MAIN(cases)
