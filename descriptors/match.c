/* SPDX-License-Identifier: MIT */
/*
 * match.c - finding files inside the backing directory: the descriptor
 * files in its root, and the sources a descriptor's globs match.
 *
 * Safety rules, all enforced here so no caller has to remember them:
 * - the walk goes segment by segment with openat/fdopendir/fstatat and
 *   AT_SYMLINK_NOFOLLOW / O_NOFOLLOW: a symlink (to a file or a directory,
 *   inside or outside the backing directory) is never followed, and since
 *   validated patterns hold no `..` the walk never leaves the root;
 * - it never enters another file system (a directory that is a mount
 *   point inside the backing directory, such as a crdtfs mount of it, is
 *   left alone), and a mount inside its own backing tree is not even
 *   stat'ed (desc_match_hide);
 * - `.git`, `.` and `..` are never entered nor returned;
 * - only regular files are returned, never a descriptor file (name ending
 *   in DESC_SUFFIX) nor the descriptor's own target.
 *
 * Each segment is read with readdir and matched with fnmatch(FNM_PERIOD),
 * even when it holds no wildcard, so results never depend on how the file
 * system resolves a literal name.  A directory is entered only when its
 * name matches its segment; the default pattern `memory-*.json` reads the
 * root and stats only the names that match.  One directory stream is held
 * open per pattern segment (at most 64, see desc.c).
 *
 * Unreadable subdirectories (EACCES) and entries that vanish during the
 * walk are skipped; failing to read the root itself is an error.
 */
#include "desc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A growing list of owned names; v has room for a NULL after n names. */
typedef struct {
	char **v;   /* owned array of owned names */
	size_t n;   /* names in v */
	size_t cap; /* slots in v, including the one for NULL */
} name_vec;

/* The one entry no walk looks at (desc_match_hide); set before threads. */
static struct {
	dev_t dev;
	ino_t ino;
	const char *name; /* NULL: none */
} hidden;

void desc_match_hide(dev_t dev, ino_t ino, const char *name)
{
	hidden.dev = dev;
	hidden.ino = ino;
	hidden.name = name;
}

/* Is `name` in directory dirfd the hidden entry? */
static int is_hidden(int dirfd, const char *name)
{
	struct stat st;

	return hidden.name && strcmp(name, hidden.name) == 0 &&
	       fstat(dirfd, &st) == 0 && st.st_dev == hidden.dev &&
	       st.st_ino == hidden.ino;
}

/* What one desc_match_sources() call walks with. */
typedef struct {
	const desc_descriptor *desc; /* borrowed */
	dev_t dev;                   /* device of the backing root */
	char **segs;                 /* owned: segments of the pattern */
	size_t nsegs;
	char *path;      /* owned: relative path being built */
	size_t path_cap; /* bytes in path */
	name_vec found;  /* names matched so far */
} match_walk;

static void vec_dispose(name_vec *nv)
{
	size_t i;

	for (i = 0; i < nv->n; i++)
		free(nv->v[i]);
	free(nv->v);
	memset(nv, 0, sizeof(*nv));
}

/* Append a copy of `name`. @return 0 or -ENOMEM */
static int vec_push(name_vec *nv, const char *name)
{
	char *copy;

	if (nv->n + 1 >= nv->cap) {
		size_t cap = nv->cap ? 2 * nv->cap : 16;
		char **v = realloc(nv->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		nv->v = v;
		nv->cap = cap;
	}
	copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	nv->v[nv->n++] = copy;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Sort bytewise, drop duplicates, NULL-terminate and hand the array to
 * *out; nv is left empty.
 * @return the number of names, or -EOVERFLOW / -ENOMEM
 */
static int vec_finish(name_vec *nv, char ***out)
{
	size_t i, k = 0;

	if (!nv->v) {
		nv->v = calloc(1, sizeof(*nv->v));
		if (!nv->v)
			return -ENOMEM;
		nv->cap = 1;
	}
	if (nv->n > INT_MAX)
		return -EOVERFLOW;
	qsort(nv->v, nv->n, sizeof(*nv->v), cmp_names);
	for (i = 0; i < nv->n; i++) {
		if (k > 0 && strcmp(nv->v[k - 1], nv->v[i]) == 0)
			free(nv->v[i]);
		else
			nv->v[k++] = nv->v[i];
	}
	nv->v[k] = NULL;
	*out = nv->v;
	memset(nv, 0, sizeof(*nv));
	return (int)k;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

int desc_is_file_name(const char *rel)
{
	return !strchr(rel, '/') && strlen(rel) > sizeof(DESC_SUFFIX) - 1 &&
	       ends_with(rel, DESC_SUFFIX);
}

/* Names the walk never enters nor returns, whatever the pattern. */
static int name_skipped(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	       strcmp(name, ".git") == 0;
}

/* A relative name a descriptor never takes as a source. */
static int name_excluded(const desc_descriptor *desc, const char *rel)
{
	return ends_with(rel, DESC_SUFFIX) ||
	       (desc->target && strcmp(rel, desc->target) == 0);
}

/* Open a fresh stream on directory fd (fdopendir would take fd itself). */
static DIR *dir_open(int fd)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir;

	if (dfd < 0)
		return NULL;
	dir = fdopendir(dfd);
	if (!dir) {
		int e = errno;

		close(dfd);
		errno = e;
	}
	return dir;
}

static int walk_dir(match_walk *w, int dirfd, size_t plen, size_t seg);

/*
 * Entry `name` of dirfd matched segment `seg`: record it when it is the
 * last segment and a regular file, descend when it is a directory.
 * path[0..plen) holds the parent's relative path with its trailing `/`.
 * @return 0, or -ENOMEM
 */
static int walk_entry(match_walk *w, int dirfd, size_t plen, size_t seg,
                      const char *name, unsigned char type)
{
	int last = seg + 1 == w->nsegs;
	size_t nlen = strlen(name);
	struct stat st;
	int fd, r;

	if (last && type != DT_UNKNOWN && type != DT_REG)
		return 0;
	if (!last && type != DT_UNKNOWN && type != DT_DIR)
		return 0;
	if (plen + nlen + 2 > w->path_cap)
		return 0; /* cannot happen: segments are <= NAME_MAX */
	memcpy(w->path + plen, name, nlen + 1);
	/*
	 * readdir's DT_REG is the entry's own type (never a symlink's
	 * target), so a regular file needs no stat: a third of the cost
	 * on a directory of 10000 host files.
	 */
	if (is_hidden(dirfd, name))
		return 0;
	if (!last || type != DT_REG) {
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return errno == ENOMEM ? -ENOMEM : 0;
		if (st.st_dev != w->dev)
			return 0;
		if (last ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode))
			return 0;
	}
	if (last) {
		if (name_excluded(w->desc, w->path))
			return 0;
		return vec_push(&w->found, w->path);
	}
	/* O_NOFOLLOW: the entry may have been swapped for a symlink. */
	fd = openat(dirfd, name,
	            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOMEM ? -ENOMEM : 0;
	if (fstat(fd, &st) < 0 || st.st_dev != w->dev) {
		close(fd);
		return 0;
	}
	w->path[plen + nlen] = '/';
	w->path[plen + nlen + 1] = '\0';
	r = walk_dir(w, fd, plen + nlen + 1, seg + 1);
	close(fd);
	return r;
}

/*
 * Match the entries of dirfd against segment `seg` of the pattern.
 * @return 0, or -errno when the root cannot be read or memory ran out
 */
static int walk_dir(match_walk *w, int dirfd, size_t plen, size_t seg)
{
	struct dirent *de;
	DIR *dir;
	int r = 0;

	dir = dir_open(dirfd);
	if (!dir) {
		r = -errno;
		/*
		 * The root must be readable; a subdirectory that vanished or
		 * is unreadable is skipped, but running out of memory or
		 * file descriptors is not hidden.
		 */
		if (seg == 0 || r == -ENOMEM || r == -EMFILE || r == -ENFILE)
			return r;
		return 0;
	}
	for (;;) {
		errno = 0;
		de = readdir(dir);
		if (!de) {
			if (errno && seg == 0)
				r = -errno;
			break;
		}
		if (name_skipped(de->d_name) ||
		    fnmatch(w->segs[seg], de->d_name, FNM_PERIOD) != 0)
			continue;
		r = walk_entry(w, dirfd, plen, seg, de->d_name, de->d_type);
		if (r < 0)
			break;
	}
	closedir(dir);
	return r;
}

/* Split `pattern` at `/` into w->segs (owned copies). @return 0, -ENOMEM */
static int split_pattern(match_walk *w, const char *pattern)
{
	const char *p;
	size_t n = 1, i;
	char *copy, *s;

	for (p = pattern; (p = strchr(p, '/')); p++)
		n++;
	w->segs = calloc(n, sizeof(*w->segs));
	copy = strdup(pattern);
	if (!w->segs || !copy) {
		free(copy);
		return -ENOMEM;
	}
	w->nsegs = n;
	s = copy;
	for (i = 0; i < n; i++) {
		char *slash = strchr(s, '/');

		if (slash)
			*slash = '\0';
		w->segs[i] = strdup(s);
		if (!w->segs[i]) {
			free(copy);
			return -ENOMEM;
		}
		s = slash ? slash + 1 : s + strlen(s);
	}
	free(copy);
	return 0;
}

static void free_segments(match_walk *w)
{
	size_t i;

	for (i = 0; i < w->nsegs; i++)
		free(w->segs[i]);
	free(w->segs);
	w->segs = NULL;
	w->nsegs = 0;
}

int desc_match_sources(char ***out, const desc_descriptor *desc, int backing_fd)
{
	match_walk w;
	struct stat st;
	size_t i;
	int root = -1, r;

	*out = NULL;
	memset(&w, 0, sizeof(w));
	w.desc = desc;
	root = openat(backing_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return -errno;
	if (fstat(root, &st) < 0) {
		r = -errno;
		goto out;
	}
	/* A removed directory still reads as empty; say it is gone. */
	if (st.st_nlink == 0) {
		r = -ENOENT;
		goto out;
	}
	w.dev = st.st_dev;
	for (i = 0; i < desc->nsources; i++) {
		r = split_pattern(&w, desc->sources[i]);
		if (r < 0)
			goto out;
		w.path_cap = w.nsegs * (NAME_MAX + 1) + 1;
		w.path = malloc(w.path_cap);
		if (!w.path) {
			r = -ENOMEM;
			goto out;
		}
		w.path[0] = '\0';
		r = walk_dir(&w, root, 0, 0);
		if (r < 0)
			goto out;
		free(w.path);
		w.path = NULL;
		free_segments(&w);
	}
	r = vec_finish(&w.found, out);
out:
	free(w.path);
	free_segments(&w);
	vec_dispose(&w.found);
	close(root);
	return r;
}

/*
 * Match `name` against each pattern segment by segment, exactly as the
 * walk would (same skips, same exclusions, same fnmatch flags), without
 * touching the disk.
 */
int desc_is_source(const desc_descriptor *desc, const char *name)
{
	char nbuf[PATH_MAX], pbuf[PATH_MAX];
	const char *seg, *slash;
	size_t nlen, plen, i;

	if (!desc || !name || !*name || name[0] == '/')
		return 0;
	nlen = strlen(name);
	if (nlen >= sizeof(nbuf) || name_excluded(desc, name))
		return 0;
	for (seg = name; seg; seg = slash ? slash + 1 : NULL) {
		size_t n;

		slash = strchr(seg, '/');
		n = slash ? (size_t)(slash - seg) : strlen(seg);
		if (n == 0 || (n == 1 && seg[0] == '.') ||
		    (n == 2 && memcmp(seg, "..", 2) == 0) ||
		    (n == 4 && memcmp(seg, ".git", 4) == 0))
			return 0;
	}
	for (i = 0; i < desc->nsources; i++) {
		char *n = nbuf, *p = pbuf;

		plen = strlen(desc->sources[i]);
		if (plen >= sizeof(pbuf))
			continue;
		memcpy(nbuf, name, nlen + 1);
		memcpy(pbuf, desc->sources[i], plen + 1);
		for (;;) {
			char *ns = strchr(n, '/'), *ps = strchr(p, '/');

			if (!ns != !ps)
				break; /* segment counts differ */
			if (ns) {
				*ns = '\0';
				*ps = '\0';
			}
			if (fnmatch(p, n, FNM_PERIOD) != 0)
				break;
			if (!ns)
				return 1;
			n = ns + 1;
			p = ps + 1;
		}
	}
	return 0;
}

/*
 * d_type spares a stat for most entries; DT_UNKNOWN (some file systems)
 * falls back to fstatat.  A symlink named like a descriptor is left out.
 */
int desc_list(char ***out, int backing_fd)
{
	name_vec nv = { 0 };
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int r = 0;

	*out = NULL;
	dir = dir_open(backing_fd);
	if (!dir)
		return -errno;
	if (fstat(dirfd(dir), &st) < 0)
		r = -errno;
	else if (st.st_nlink == 0)
		r = -ENOENT; /* removed: it would read as empty */
	if (r < 0) {
		closedir(dir);
		return r;
	}
	for (;;) {
		errno = 0;
		de = readdir(dir);
		if (!de) {
			r = errno ? -errno : 0;
			break;
		}
		if (!desc_is_file_name(de->d_name))
			continue;
		if (de->d_type == DT_UNKNOWN) {
			if (fstatat(dirfd(dir), de->d_name, &st,
			            AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;
		} else if (de->d_type != DT_REG) {
			continue;
		}
		r = vec_push(&nv, de->d_name);
		if (r < 0)
			break;
	}
	closedir(dir);
	if (r >= 0)
		r = vec_finish(&nv, out);
	vec_dispose(&nv);
	return r;
}

void desc_names_free(char **names)
{
	size_t i;

	if (!names)
		return;
	for (i = 0; names[i]; i++)
		free(names[i]);
	free(names);
}
