/* SPDX-License-Identifier: MIT */
/*
 * test_engine_race.c - a host file rewritten in place while it is being
 * scanned, every time it is scanned.
 *
 * The writer is this file's pread(): a read of the second block of the
 * racing file first rewrites the file with the other of two contents, so
 * each scan sees the first block of one content and the rest of the
 * other.  A scan like that must never be taken for a state of the file:
 * a view built from it either says it is not intact (a mount refuses to
 * open it) or holds exactly the bytes of a fresh merge.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine_i.h"
#include "merge_fixture.h"

static char race_path[128];
static ino_t race_ino;
static int race_left;      /* rewrites still to do */
static const char *race_content[2];

/* Entries of about 900 bytes; `pad` more bytes in the first one shift
 * every later entry. */
static char *host_content(size_t pad)
{
	size_t cap = 1 << 20, len = 0;
	char *s = malloc(cap);
	int i;

	len += (size_t)snprintf(s + len, cap - len, "[\n");
	for (i = 0; i < 400; i++)
		len += (size_t)snprintf(
			s + len, cap - len,
			"%s  {\"text\": \"%0*d\", \"_crdt_metadata\": "
			"{\"host\": \"a\", \"timestamp\": "
			"\"2025-01-01T00:%02d:%02dZ\", \"version\": 1, "
			"\"unique_id\": \"id-%d\"}}",
			i ? ",\n" : "", 800 + (i ? 0 : (int)pad), i,
			i / 60 % 60, i % 60, i);
	snprintf(s + len, cap - len, "\n]\n");
	return s;
}

static void put_file(const char *text)
{
	int fd = open(race_path, O_WRONLY | O_TRUNC);

	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ_INT(write(fd, text, strlen(text)), strlen(text));
	close(fd);
}

static void race(int fd, off_t off)
{
	struct stat st;

	if (race_left > 0 && off == ENGINE__CHUNK && fstat(fd, &st) == 0 &&
	    st.st_ino == race_ino) {
		race_left--;
		put_file(race_content[race_left % 2]);
	}
}

/*
 * The engine's reads come here first: the executable's symbols win, and
 * with 64-bit file offsets every pread() is a call to pread64().
 */
ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	race(fd, off);
	return syscall(SYS_pread64, fd, buf, n, off);
}

static void race_setup(int rewrites)
{
	struct stat st;
	int fd;

	make_dir();
	race_content[0] = host_content(0);
	race_content[1] = host_content(7);
	snprintf(race_path, sizeof(race_path), "%s/memory-a.json", tmpdir);
	fd = open(race_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ASSERT_TRUE(fd >= 0 && fstat(fd, &st) == 0);
	close(fd);
	race_ino = st.st_ino;
	put_file(race_content[1]);
	race_left = rewrites;
}

static void race_done(void)
{
	free((char *)race_content[0]);
	free((char *)race_content[1]);
	remove_dir();
}

/* A view that claims to be intact holds the bytes of a fresh merge. */
static void check_view(engine_view *v, const char *what)
{
	size_t a_len, b_len;
	char *a, *b;

	ASSERT_EQ_INT(race_left, 0);
	if (!engine_view_intact(v)) {
		printf("# %s: not intact\n", what);
		return;
	}
	a = view_bytes(v, &a_len);
	b = merge_dir(&b_len);
	if (a_len != b_len || memcmp(a, b, a_len) != 0) {
		printf("# %s: intact, but %zu bytes against a fresh merge's "
		       "%zu\n", what, a_len, b_len);
		harness_failed = 1;
	}
	free(a);
	free(b);
}

/* Every scan of a one-shot merge (`crdtfs merge`) is raced. */
static void test_engine_race__every_scan_of_a_merge(void)
{
	merge_fixture f;

	race_setup(100);
	fixture_open(&f);
	ASSERT_TRUE(race_left < 100);
	race_left = 0;
	if (f.v)
		check_view(f.v, "merge");
	fixture_close(&f);
	race_done();
}

/*
 * A mount's merge: every scan of one refresh is raced, then the writer
 * stops.  The next refresh (nothing told it of a change, as when the
 * watcher's event was read before the view was built) must not keep the
 * torn scan.
 */
static void test_engine_race__every_scan_of_a_live_refresh(void)
{
	desc_descriptor *desc;
	engine_merge *m;
	engine_view *v = NULL;
	int dirfd;

	race_setup(0);
	dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	ASSERT_TRUE(desc_default(&desc) == 0);
	ASSERT_TRUE(engine_merge_new(&m, desc, dirfd) == 0);
	engine_merge_live(m);
	ASSERT_TRUE(engine_merge_refresh(m, &v) == 0);
	check_view(v, "first");
	engine_view_unref(v);

	race_left = 100;
	engine_merge_invalidate(m, "memory-a.json");
	ASSERT_TRUE(engine_merge_refresh(m, &v) == 0);
	ASSERT_TRUE(race_left < 100);
	race_left = 0;
	check_view(v, "raced");
	engine_view_unref(v);

	v = NULL;
	ASSERT_TRUE(engine_merge_refresh(m, &v) == 0);
	check_view(v, "after");
	ASSERT_TRUE(engine_view_intact(v));
	engine_view_unref(v);

	engine_merge_free(m);
	desc_free(desc);
	close(dirfd);
	race_done();
}

static const harness_case cases[] = {
	TEST(test_engine_race__every_scan_of_a_merge),
	TEST(test_engine_race__every_scan_of_a_live_refresh),
};

HARNESS_MAIN(cases)
