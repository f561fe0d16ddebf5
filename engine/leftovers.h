/* SPDX-License-Identifier: MIT */
/*
 * leftovers.h - sweeping what an interrupted sync left (see leftovers.c).
 * Used by sync.c only.
 */
#ifndef CRDTFS_ENGINE_LEFTOVERS_H
#define CRDTFS_ENGINE_LEFTOVERS_H

#include "engine.h"

#include <git2.h>

/**
 * Remove the scratch directories of interrupted syncs in the repository's
 * .git, and the hidden temp files beside work-tree files `managed` accepts
 * whose bytes are blobs of the repository; warn in `probs` of temp files
 * holding anything else (kept).  Call with the sync lock held.
 */
void engine__sweep_leftovers(git_repository *repo,
			     int (*managed)(const char *name),
			     engine_problems *probs);

#endif
