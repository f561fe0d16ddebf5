/* SPDX-License-Identifier: MIT */
/*
 * unread.c - names in the backing root that look like descriptors or host
 * files but are never read: symlinks (never followed, so nothing outside
 * the backing directory is read), directories, devices.  The merge skips
 * them silently; `crdtfs check` and the status file say so, because a
 * memory file linked into the backing directory would otherwise just be
 * missing from the merged view.  A host file here is a name some valid
 * descriptor's sources match (the built-in default's `memory-*.json`
 * among them, unless overridden); only the root is looked at.
 */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "desc.h"

/* One name the merge skips, and whether it names a descriptor. */
typedef struct {
	char *name;  /* owned */
	int is_desc; /* 1, or 2 for the bare DESC_SUFFIX */
	int is_link;
} unread_name;

static int unread_cmp(const void *a, const void *b)
{
	return strcmp(((const unread_name *)a)->name,
		      ((const unread_name *)b)->name);
}

/* Would one of the descriptors read `name` if it were a regular file? */
static int read_by_some(const char *name, const desc_descriptor *const *descs,
			size_t ndescs)
{
	size_t k;

	for (k = 0; k < ndescs; k++)
		if (desc_is_source(descs[k], name))
			return 1;
	return 0;
}

int fs_unread_files(int backing_fd, const desc_descriptor *const *descs,
		    size_t ndescs, engine_problems *probs)
{
	int fd = openat(backing_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	unread_name *v = NULL, *grown;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	int r = 0;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(dir))) {
		int is_desc = desc_is_file_name(de->d_name);
		int bare = strcmp(de->d_name, DESC_SUFFIX) == 0;
		struct stat st;

		if (!bare &&
		    ((!is_desc && !read_by_some(de->d_name, descs, ndescs)) ||
		     de->d_type == DT_REG ||
		     fstatat(backing_fd, de->d_name, &st,
		             AT_SYMLINK_NOFOLLOW) < 0 ||
		     S_ISREG(st.st_mode)))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 8;
			if (!(grown = realloc(v, cap * sizeof(*v)))) {
				r = -ENOMEM;
				break;
			}
			v = grown;
		}
		if (!(v[n].name = strdup(de->d_name))) {
			r = -ENOMEM;
			break;
		}
		v[n].is_desc = bare ? 2 : is_desc;
		v[n++].is_link = !bare && S_ISLNK(st.st_mode);
	}
	closedir(dir);
	/* In name order, so that every machine lists them alike. */
	if (n)
		qsort(v, n, sizeof(*v), unread_cmp);
	for (i = 0; i < n; i++) {
		if (r == 0)
			r = engine_problems_add(
			        probs, v[i].is_desc ? ENGINE_ERROR : ENGINE_WARNING,
			        v[i].name, 0, 0, "%s is not read: %s",
			        v[i].is_desc ? "descriptor" : "host file",
			        v[i].is_desc == 2 ?
			                "it names no target (a descriptor is "
			                "TARGET" DESC_SUFFIX ")" :
			        v[i].is_link ? "it is a symlink (symlinks are "
			                       "never followed)" :
			                       "it is not a regular file");
		free(v[i].name);
	}
	free(v);
	return r < 0 ? r : 0;
}
