// SPDX-License-Identifier: MIT
/*
 * slow_ref_lock.c - an LD_PRELOAD shim for test_git.py: every open(2) that
 * creates a file whose path ends in $SLOW_LOCK_SUFFIX (a ref's lock file)
 * first sleeps 150 ms and appends a line to $SLOW_LOCK_LOG.
 *
 * Why: libgit2 decides some things about a ref before it takes the ref's
 * lock.  Holding every syncing process just before the lock turns a race
 * that needs a loaded machine into one that happens on every run.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

typedef int (*open_fn)(const char *, int, ...);

static void wait_if_lock(const char *path, int flags)
{
	const char *suffix = getenv("SLOW_LOCK_SUFFIX");
	const char *log = getenv("SLOW_LOCK_LOG");
	size_t n, m;

	if (!(flags & O_CREAT) || !suffix || !path)
		return;
	n = strlen(path);
	m = strlen(suffix);
	if (n < m || strcmp(path + n - m, suffix) != 0)
		return;
	nanosleep(&(struct timespec){ .tv_nsec = 150 * 1000 * 1000 }, NULL);
	if (log) {
		FILE *f = fopen(log, "a");

		if (f) {
			fprintf(f, "%s\n", path);
			fclose(f);
		}
	}
}

static int call_open(const char *name, const char *path, int flags,
                     va_list ap)
{
	open_fn real = (open_fn)dlsym(RTLD_NEXT, name);
	mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;

	wait_if_lock(path, flags);
	return real(path, flags, mode);
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	int r;

	va_start(ap, flags);
	r = call_open("open", path, flags, ap);
	va_end(ap);
	return r;
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	int r;

	va_start(ap, flags);
	r = call_open("open64", path, flags, ap);
	va_end(ap);
	return r;
}
