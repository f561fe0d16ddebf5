/* SPDX-License-Identifier: MIT */
/*
 * merge_fixture.h - what the merge tests share: a scratch backing
 * directory, a merge of it by the default descriptor, and a view's bytes.
 * Static functions, included by one test file each.
 */
#ifndef CRDTFS_TESTS_MERGE_FIXTURE_H
#define CRDTFS_TESTS_MERGE_FIXTURE_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "engine.h"
#include "tmpdir.h"

/* A merge of tmpdir by the default descriptor, and its current view. */
typedef struct {
	desc_descriptor *desc;
	engine_merge *m;
	engine_view *v;
	int dirfd;
} merge_fixture;

static void fixture_open(merge_fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
	ASSERT_TRUE(desc_default(&f->desc) == 0);
	ASSERT_TRUE(engine_merge_new(&f->m, f->desc, f->dirfd) == 0);
	ASSERT_TRUE(engine_merge_refresh(f->m, &f->v) == 0);
}

static void fixture_close(merge_fixture *f)
{
	engine_view_unref(f->v);
	engine_merge_free(f->m);
	desc_free(f->desc);
	close(f->dirfd);
}

/* The whole output of a view as a malloc'd string of *len bytes. */
static char *view_bytes(engine_view *v, size_t *len)
{
	int memfd = memfd_create("out", 0);
	char *out;

	ASSERT_TRUE(engine_view_write(v, memfd) == 0);
	*len = (size_t)lseek(memfd, 0, SEEK_END);
	ASSERT_EQ_INT(*len, engine_view_size(v));
	out = calloc(1, *len + 1);
	ASSERT_EQ_INT(pread(memfd, out, *len, 0), *len);
	close(memfd);
	return out;
}

/* A fresh merge of tmpdir, as a malloc'd string of *len bytes (inline:
 * not every test file calls it). */
static inline char *merge_dir(size_t *len)
{
	merge_fixture f;
	char *out = NULL;

	fixture_open(&f);
	if (f.v)
		out = view_bytes(f.v, len);
	fixture_close(&f);
	return out;
}

#endif
