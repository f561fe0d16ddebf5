/* SPDX-License-Identifier: MIT */
/*
 * tmpdir.h - a scratch directory for one test file: made with make_dir(),
 * filled with write_file(), removed with remove_dir().  Static inline, so
 * a test that uses only some of them builds without warnings.
 */
#ifndef CRDTFS_TESTS_TMPDIR_H
#define CRDTFS_TESTS_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static char tmpdir[64];

static inline void make_dir(void)
{
	strcpy(tmpdir, "/tmp/crdtfs-test-XXXXXX");
	if (!mkdtemp(tmpdir))
		abort();
}

static inline void remove_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# cleanup of %s failed\n", tmpdir);
}

/* Write `len` bytes to tmpdir/name, replacing it. */
static inline void write_bytes(const char *name, const char *data,
                               size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	ASSERT_TRUE(f != NULL);
	if (!f)
		return;
	ASSERT_TRUE(fwrite(data, 1, len, f) == len);
	fclose(f);
}

/* Write `text` to tmpdir/name, replacing it. */
static inline void write_file(const char *name, const char *text)
{
	write_bytes(name, text, strlen(text));
}

#endif
