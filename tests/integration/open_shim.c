// SPDX-License-Identifier: MIT
/*
 * open_shim.c - an LD_PRELOAD shim for the tests that acts on every
 * open(2) of a path ending in $SHIM_MATCH (with $SHIM_ON=rename: every
 * rename(2) or renameat2(2) to such a path; with $SHIM_ON=pread or
 * pwrite: every pread(2) or pwrite(2) of such a file, at offset
 * $SHIM_OFFSET only when that is set), just before the call:
 *   SHIM_SLEEP_MS  sleep that long;
 *   SHIM_RUN       run this shell command (without the shim), the first
 *                  time only in each process, or every time if
 *                  $SHIM_RUN_EVERY is set, or the first $SHIM_RUN_TIMES;
 *   SHIM_LOG       append the path to this file.
 * With $SHIM_ON=fstatvfs the same acts on every fstatvfs(3) of such a
 * directory (a hung or failing file system under BACKING), which then
 * fails with errno $SHIM_ERRNO when that is set.
 * With $SHIM_ON=pthread_create, every pthread_create(3) fails with EAGAIN
 * instead, as when the user's process limit is reached.
 * With $SHIM_ON=openat, every openat(2) of a name ending in $SHIM_MATCH
 * fails with errno $SHIM_ERRNO while the file $SHIM_WHILE exists (a
 * moment out of descriptors, for one file only).
 *
 * Why: some races need a writer or another process to act in a window of
 * microseconds (between libgit2's check of a ref and its lock, between a
 * stat of a file and its read, between a check of a file and its
 * replacement, between two reads of one scan).  Acting at the call turns
 * them into races that happen on every run.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

typedef int (*open_fn)(const char *, int, ...);
typedef int (*open_fn_at)(int, const char *, int, ...);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*renameat2_fn)(int, const char *, int, const char *, unsigned);
typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);

static int hooked(const char *call)
{
	const char *on = getenv("SHIM_ON");

	return strcmp(on ? on : "open", call) == 0;
}

static void act_on(const char *path)
{
	static int ran;
	const char *match = getenv("SHIM_MATCH");
	const char *sleep_ms = getenv("SHIM_SLEEP_MS");
	const char *run = getenv("SHIM_RUN");
	const char *times = getenv("SHIM_RUN_TIMES");
	const char *log = getenv("SHIM_LOG");
	int limit = getenv("SHIM_RUN_EVERY") ? -1 : times ? atoi(times) : 1;
	size_t n, m;

	if (!match || !path)
		return;
	n = strlen(path);
	m = strlen(match);
	if (n < m || strcmp(path + n - m, match) != 0)
		return;
	if (sleep_ms) {
		long ms = atol(sleep_ms);
		struct timespec ts = { ms / 1000, ms % 1000 * 1000000L };

		nanosleep(&ts, NULL);
	}
	if (run && (limit < 0 || ran < limit)) {
		char *cmd = strdup(run);

		ran++;
		unsetenv("LD_PRELOAD");
		if (cmd && system(cmd) != 0)
			fprintf(stderr, "open_shim: '%s' failed\n", cmd);
		free(cmd);
	}
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

	if (hooked("open"))
		act_on(path);
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

int rename(const char *from, const char *to)
{
	rename_fn real = (rename_fn)dlsym(RTLD_NEXT, "rename");

	if (hooked("rename"))
		act_on(to);
	return real(from, to);
}

int renameat2(int fromfd, const char *from, int tofd, const char *to,
              unsigned flags)
{
	renameat2_fn real = (renameat2_fn)dlsym(RTLD_NEXT, "renameat2");

	if (hooked("rename"))
		act_on(to);
	return real(fromfd, from, tofd, to, flags);
}

/* A positional read or write of fd at off: act on its path. */
static void act_on_fd(const char *call, int fd, off_t off)
{
	const char *at = getenv("SHIM_OFFSET");
	char link[64], path[4096];
	ssize_t k;

	if (!hooked(call) || (at && off != atoll(at)))
		return;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	k = readlink(link, path, sizeof(path) - 1);
	if (k > 0) {
		path[k] = '\0';
		act_on(path);
	}
}

/* With 64-bit file offsets, every pread() is a call to pread64(), and
 * every pwrite() one to pwrite64(). */
ssize_t pread64(int fd, void *buf, size_t size, off_t off)
{
	pread_fn real = (pread_fn)dlsym(RTLD_NEXT, "pread64");

	act_on_fd("pread", fd, off);
	return real(fd, buf, size, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t size, off_t off)
{
	pwrite_fn real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");

	act_on_fd("pwrite", fd, off);
	return real(fd, buf, size, off);
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                   void *(*start)(void *), void *arg)
{
	typedef int (*create_fn)(pthread_t *, const pthread_attr_t *,
	                         void *(*)(void *), void *);
	create_fn real = (create_fn)dlsym(RTLD_NEXT, "pthread_create");

	if (hooked("pthread_create"))
		return EAGAIN;
	return real(thread, attr, start, arg);
}

/* With 64-bit file offsets every openat() is a call to openat64(). */
int openat64(int dirfd, const char *path, int flags, ...)
{
	open_fn_at real = (open_fn_at)dlsym(RTLD_NEXT, "openat64");
	const char *fail = getenv("SHIM_ERRNO"), *match = getenv("SHIM_MATCH");
	const char *flag = getenv("SHIM_WHILE");
	mode_t mode = 0;
	va_list ap;
	size_t n, m;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = va_arg(ap, mode_t);
		va_end(ap);
	}
	n = strlen(path);
	m = match ? strlen(match) : 0;
	if (hooked("openat") && fail && match && n >= m &&
	    strcmp(path + n - m, match) == 0 &&
	    (!flag || access(flag, F_OK) == 0)) {
		errno = atoi(fail);
		return -1;
	}
	return real(dirfd, path, flags, mode);
}

int fstatvfs64(int fd, struct statvfs64 *buf)
{
	typedef int (*statvfs_fn)(int, struct statvfs64 *);
	statvfs_fn real = (statvfs_fn)dlsym(RTLD_NEXT, "fstatvfs64");
	const char *fail = getenv("SHIM_ERRNO");

	act_on_fd("fstatvfs", fd, 0);
	if (hooked("fstatvfs") && fail) {
		errno = atoi(fail);
		return -1;
	}
	return real(fd, buf);
}
