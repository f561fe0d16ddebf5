/* SPDX-License-Identifier: MIT */
/*
 * unread.c - names in the backing root that look like descriptors or host
 * files but are never read: symlinks (never followed, so nothing outside
 * the backing directory is read), directories, devices.  The merge skips
 * them silently; `crdtfs check` and the status file say so, because a
 * memory file linked into the backing directory would otherwise just be
 * missing from the merged view.
 */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "desc.h"

int fs_unread_files(int backing_fd, engine_problems *probs)
{
	int fd = openat(backing_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int r = 0;

	if (!dir) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while (r >= 0 && (de = readdir(dir))) {
		int is_desc = desc_is_file_name(de->d_name);
		struct stat st;

		if ((!is_desc &&
		     fnmatch("memory-*.json", de->d_name, FNM_PERIOD) != 0) ||
		    de->d_type == DT_REG ||
		    fstatat(backing_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) <
		            0 ||
		    S_ISREG(st.st_mode))
			continue;
		r = engine_problems_add(
		        probs, is_desc ? ENGINE_ERROR : ENGINE_WARNING,
		        de->d_name, 0, 0, "%s is not read: %s",
		        is_desc ? "descriptor" : "host file",
		        S_ISLNK(st.st_mode) ?
		                "it is a symlink (symlinks are never followed)" :
		                "it is not a regular file");
	}
	closedir(dir);
	return r < 0 ? r : 0;
}
