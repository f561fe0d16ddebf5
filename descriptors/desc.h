/* SPDX-License-Identifier: MIT */
/*
 * desc.h - merge descriptors: which sources, which key, which order, which
 * output format make up one merged file.
 *
 * A descriptor is a small JSON file named `<target>.merge.json` in the root
 * of the backing directory, for example `notes.json.merge.json` describes
 * the merged file `notes.json`.  With no descriptor for it, the built-in
 * default describes `unified-memory.json` from `memory-*.json`, keyed by
 * `_crdt_metadata.unique_id` and ordered by timestamp, version and host.
 *
 * Descriptor format (every field but "target" and "sources" optional):
 *
 *   {
 *     "target":  "unified-memory.json",
 *     "sources": ["memory-*.json"],
 *     "key":     ["_crdt_metadata.unique_id"],
 *     "order":   [ {"path": "_crdt_metadata.timestamp", "type": "timestamp"},
 *                  {"path": "_crdt_metadata.version",   "type": "integer"},
 *                  {"path": "_crdt_metadata.host",      "type": "string"} ],
 *     "format":  "json"
 *   }
 *
 * When loaded from `<name>.merge.json`, "target" must equal `<name>`.
 *
 * Validation is strict: unknown fields, wrong types, empty lists, absolute
 * paths, `..`, empty path segments, bad globs and targets that are not a
 * plain file name are rejected with a message naming the descriptor and the
 * field.  This module depends on jansson only and never logs.
 */
#ifndef CRDTFS_DESCRIPTORS_DESC_H
#define CRDTFS_DESCRIPTORS_DESC_H

#include <stddef.h>
#include <sys/types.h>

/** Suffix that marks a descriptor file in the backing root. */
#define DESC_SUFFIX ".merge.json"
/** The merged file the built-in default descriptor produces. */
#define DESC_DEFAULT_TARGET "unified-memory.json"
/** Most key paths or order fields a descriptor may name. */
#define DESC_MAX_FIELDS 8

typedef enum { DESC_FORMAT_JSON, DESC_FORMAT_JSONL } desc_format;

typedef enum {
	DESC_ORDER_TIMESTAMP, /* RFC 3339 string, compared as UTC ns */
	DESC_ORDER_INTEGER,   /* JSON integer, compared as int64 */
	DESC_ORDER_STRING     /* string, compared bytewise after unescaping */
} desc_order_type;

/** A dotted path such as `_crdt_metadata.unique_id`, split at the dots. */
typedef struct {
	char **parts;  /* owned, nparts entries, each non-empty, owned */
	size_t nparts;
	char *text;    /* owned, the path as written, for messages */
} desc_path;

typedef struct {
	desc_path path;
	desc_order_type type;
} desc_order;

typedef struct {
	char *target;        /* owned: plain file name in the backing root */
	char **sources;      /* owned: nsources glob patterns, relative */
	size_t nsources;
	desc_path *keys;     /* owned: nkeys paths, first present wins */
	size_t nkeys;
	desc_order *order;   /* owned: norder fields, most significant first */
	size_t norder;
	desc_format format;
	char *origin;        /* owned: descriptor path, or "(built-in default)" */
} desc_descriptor;

/**
 * Where a descriptor problem is; filled by the first error only, allocating
 * nothing (jansson's json_error_t pattern).
 */
typedef struct {
	char source[256]; /* descriptor file name, or "(built-in default)" */
	int line;         /* 1-based, 0 when unknown */
	int column;       /* 1-based, 0 when unknown */
	char text[512];   /* "field \"order[1].type\": must be one of ..." */
} desc_error;

/**
 * The byte column of a jansson error, which jansson counts in characters:
 * crdtfs reports every position in bytes.  `position` and `column` are the
 * json_error_t's (bytes read, characters read on the line, both as far as
 * the token that failed).
 * @return the 1-based byte column, or `column` when it is not positive
 */
int desc_byte_column(const char *text, size_t len, int position, int column);

/**
 * Build the built-in default descriptor for `unified-memory.json`.
 * @param out set to a new descriptor on success, NULL on failure
 * @return 0, or -ENOMEM
 */
int desc_default(desc_descriptor **out);

/**
 * Parse and validate descriptor text.
 * @param out set to a new descriptor on success, NULL on failure
 * @param origin name used in messages and kept in ->origin
 * @param err optional; filled on failure
 * @return 0, -EINVAL for an invalid descriptor, -ENOMEM
 */
int desc_parse(desc_descriptor **out, const char *text, size_t len,
	       const char *origin, desc_error *err);

/**
 * Read and validate the descriptor at `relpath` inside the backing
 * directory `backing_fd` (the file itself must not be a symlink).
 * @return 0, -EINVAL (invalid; err filled), -ENOENT, -EIO, -ENOMEM,
 *         -EMFILE or -ENFILE (out of descriptors: try again later)
 */
int desc_load(desc_descriptor **out, int backing_fd, const char *relpath,
	      desc_error *err);

/**
 * Read and validate a descriptor the user named (`merge --descriptor`):
 * unlike one in the backing directory it may be reached through a symlink
 * or be a pipe (`<(...)`), as the user chose it; what it reads is still
 * bounded by its sources' rules.
 * @return 0, -EINVAL (invalid; err filled), -ENOENT, -EIO, -ENOMEM,
 *         -EMFILE or -ENFILE (out of descriptors: try again later)
 */
int desc_load_given(desc_descriptor **out, const char *path, desc_error *err);

/**
 * Is `rel` (a path relative to the backing root) a descriptor's file name:
 * a name in the root, longer than DESC_SUFFIX, ending in it?
 */
int desc_is_file_name(const char *rel);

/**
 * List the descriptor files (`*.merge.json`) in the backing root, sorted
 * bytewise.  Only regular files count; symlinks are left out.
 * @param out set to a NULL-terminated owned array of owned names
 * @return number of names (>= 0), or -errno
 */
int desc_list(char ***out, int backing_fd);

/** Free an array returned by desc_list() or desc_match_sources(). */
void desc_names_free(char **names);

/**
 * Find the backing files a descriptor's source globs match.  A pattern is
 * split at `/`; each segment is matched with fnmatch(3) (FNM_PERIOD), so
 * hidden files only match patterns that start with a dot.  Only regular
 * files are returned; symlinks (to files or directories) are never
 * followed.  Descriptor files and the descriptor's own target never
 * match.  Names are relative to the backing root, deduplicated, sorted
 * bytewise.
 * @param out set to a NULL-terminated owned array of owned names
 * @return number of names (>= 0), or -errno
 */
int desc_match_sources(char ***out, const desc_descriptor *desc,
		       int backing_fd);

/**
 * Never look at entry `name` of the directory (dev, ino) in any later
 * desc_match_sources() of this process: a mount whose mountpoint lies in
 * its own backing tree hides it, since a stat of it would cross into the
 * mount (from inside one of its own requests).  Call once, before any
 * thread matches; `name` must outlive every match.
 */
void desc_match_hide(dev_t dev, ino_t ino, const char *name);

/** True when `name` (relative to the backing root) matches a source glob. */
int desc_is_source(const desc_descriptor *desc, const char *name);

/** Free a descriptor; accepts NULL and half-built descriptors. */
void desc_free(desc_descriptor *desc);

#endif
