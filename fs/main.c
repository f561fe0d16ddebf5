/* SPDX-License-Identifier: MIT */
/*
 * main.c - the crdtfs program: dispatches subcommands, and mounts when the
 * first argument is not one.
 */
#include "fs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "config.h"

static const char usage_text[] =
	"usage: crdtfs [options] BACKING MOUNTPOINT   mount the merged view\n"
	"       crdtfs merge [--descriptor FILE | --target NAME] [--strict] BACKING\n"
	"       crdtfs check BACKING\n"
	"       crdtfs prepare [--host NAME] [--allow-empty] [-q] SOURCE [BACKING]\n"
	"       crdtfs sync [--remote NAME] [--host NAME] [--attempts N] [--timeout S] [-q] BACKING\n"
	"       crdtfs merge-driver %O %A %B %L %P\n"
	"\n"
	"Mount options: -f (foreground), -d (debug), -s (single-threaded),\n"
	"  -o allow_other, -o fsname=NAME, -o sync=SECONDS[,remote=NAME][,host=NAME],\n"
	"  -o xattr (pass extended attributes through),\n"
	"  and the usual FUSE options (see mount.fuse3(8)).\n"
	"Run `crdtfs COMMAND --help` for a command's options.\n";

typedef struct {
	const char *name;
	int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
	{ "merge", fs_cmd_merge },
	{ "check", fs_cmd_check },
	{ "prepare", fs_cmd_prepare },
	{ "sync", fs_cmd_sync },
	{ "merge-driver", fs_cmd_merge_driver },
};

/*
 * A merge holds one fd per source file, and the mount one per inode the
 * kernel remembers (an O_PATH fd, as in libfuse's passthrough examples):
 * the usual soft limit of 1024 would cut a big merge short and make `find`
 * stop in a directory of a few thousand files, so take the hard limit, as
 * libfuse's passthrough_hp does.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int fs_usage_error(const char *cmd, const char *reason)
{
	fprintf(stderr, "crdtfs %s: %s (try crdtfs %s --help)\n", cmd, reason,
	        cmd);
	return FS_EXIT_USAGE;
}

int fs_option_error(const char *cmd, int c, char *const *argv, int optind)
{
	char reason[128];

	snprintf(reason, sizeof(reason), "%s: %s", argv[optind - 1],
	         c == ':' ? "missing value" : "unknown option");
	return fs_usage_error(cmd, reason);
}

/* statfs f_type of every FUSE file system (linux/magic.h). */
#define FS_FUSE_SUPER_MAGIC 0x65735546

int fs_is_crdtfs_mount(const char *dir)
{
	struct statfs sf;
	struct stat st;
	char path[PATH_MAX];

	if (statfs(dir, &sf) < 0 || sf.f_type != FS_FUSE_SUPER_MAGIC)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", dir, FS_STATUS_NAME);
	return stat(path, &st) == 0;
}

static int run(int argc, char **argv)
{
	size_t i;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 ||
			  strcmp(argv[1], "-h") == 0)) {
		fputs(usage_text, stdout);
		return FS_EXIT_OK;
	}
	if (argc >= 2 && (strcmp(argv[1], "--version") == 0 ||
			  strcmp(argv[1], "-V") == 0)) {
		printf("crdtfs %s\n", CRDTFS_VERSION);
		return FS_EXIT_OK;
	}
	if (argc < 2) {
		fputs("crdtfs: missing BACKING and MOUNTPOINT (try crdtfs --help)\n",
		      stderr);
		return FS_EXIT_USAGE;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	return fs_mount_main(argc, argv);
}

int main(int argc, char **argv)
{
	int status;

	raise_fd_limit();
	status = run(argc, argv);
	/* What went through stdio (help, versions, check's lines) and could
	 * not be written is a failure, as in coreutils: `--help >/dev/full`. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "crdtfs: write error: %s\n", strerror(errno));
		return status ? status : FS_EXIT_FAIL;
	}
	return status;
}
