/* SPDX-License-Identifier: MIT */
/*
 * git_load.c - find and load crdtfs-git.so, the only part of crdtfs that
 * links libgit2 (engine_sync(); see engine_git.h).
 *
 * Why a module: libgit2 pulls in 17 more shared libraries (krb5,
 * mbedtls, libssh2, pcre2, ...), which cost ~5 ms at every process start,
 * while only `crdtfs sync` and a mount with `-o sync=` need it.
 *
 * Where: next to the running executable first (a build tree, or an
 * install moved as a whole), then CRDTFS_GIT_MODULE_DIR fixed at build
 * time (LIBDIR/crdtfs).  The module is loaded once, RTLD_NOW so that a
 * missing symbol fails here and not in the middle of a sync, and never
 * unloaded: libgit2 keeps thread-local state until exit.
 */
#include "fs.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "engine.h"

static pthread_once_t git_once = PTHREAD_ONCE_INIT;
static const engine_git_module *git_mod; /* written once, under git_once */
#define GIT_ERR_HEAD "cannot load the git module: "
static char git_err[2048] = GIT_ERR_HEAD; /* likewise */

/* Add "PATH: why" to git_err, after "; " from the second on. */
static void err_add(const char *path, const char *why)
{
	size_t n = strlen(git_err);
	int named = strstr(why, path) != NULL; /* as dlerror() usually does */

	snprintf(git_err + n, sizeof(git_err) - n, "%s%s%s%s",
	         n > sizeof(GIT_ERR_HEAD) - 1 ? "; " : "", named ? "" : path,
	         named ? "" : ": ", why);
}

/* Load one candidate; NULL (reason added to git_err) if it will not do. */
static const engine_git_module *try_load(const char *path)
{
	const engine_git_module *m;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	const char *e;

	if (!h) {
		e = dlerror();
		err_add(path, e ? e : "cannot load");
		return NULL;
	}
	m = dlsym(h, ENGINE_GIT_MODULE_SYMBOL);
	if (!m) {
		err_add(path, "no " ENGINE_GIT_MODULE_SYMBOL " in it");
		dlclose(h);
		return NULL;
	}
	/* A module from another build would misread our structs. */
	if (strcmp(m->version, CRDTFS_VERSION) != 0 ||
	    m->opts_size != sizeof(engine_sync_opts) ||
	    m->result_size != sizeof(engine_sync_result) || !m->sync) {
		err_add(path,
		        "built for another crdtfs (version " CRDTFS_VERSION
		        " expected)");
		dlclose(h);
		return NULL;
	}
	return m;
}

static void git_load_once(void)
{
	static const char name[] = "/" CRDTFS_GIT_MODULE_NAME;
	char exe[PATH_MAX], path[PATH_MAX + sizeof(name)], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	exe[n > 0 ? n : 0] = '\0';
	slash = strrchr(exe, '/');
	if (slash) {
		/* the directory stays right even for "crdtfs (deleted)" */
		*slash = '\0';
		snprintf(path, sizeof(path), "%s%s", exe, name);
		if ((git_mod = try_load(path)))
			return;
	}
	if (!slash || strcmp(exe, CRDTFS_GIT_MODULE_DIR) != 0)
		git_mod = try_load(CRDTFS_GIT_MODULE_DIR
		                   "/" CRDTFS_GIT_MODULE_NAME);
}

const engine_git_module *fs_git_module(const char **reterr)
{
	pthread_once(&git_once, git_load_once);
	if (!git_mod && reterr)
		*reterr = git_err;
	return git_mod;
}
