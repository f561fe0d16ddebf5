/* SPDX-License-Identifier: MIT */
/*
 * git_module.c - the one symbol crdtfs-git.so exports: the table through
 * which the crdtfs program calls engine_sync() after dlopen() (see
 * engine_git.h and fs/git_load.c).  The module is built with hidden
 * visibility; only this table is visible to dlsym().
 */
#include "engine.h"

#include "config.h"

__attribute__((visibility("default"))) extern const engine_git_module
        crdtfs_git_module;

const engine_git_module crdtfs_git_module = {
	.version = CRDTFS_VERSION,
	.opts_size = sizeof(engine_sync_opts),
	.result_size = sizeof(engine_sync_result),
	.sync = engine_sync,
};
