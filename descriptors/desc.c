/* SPDX-License-Identifier: MIT */
/*
 * desc.c - merge descriptors: the built-in default, parsing and strict
 * validation of `<target>.merge.json` text, and loading a descriptor file
 * safely from the backing directory.
 *
 * Validation is strict on purpose: a descriptor decides which files of a
 * shared directory are read and what a virtual file is called, so anything
 * unexpected (unknown fields, wrong types, absolute or `..` paths, bad
 * globs) is rejected with one message naming the field rather than being
 * guessed at.  The first problem wins; reporting it allocates nothing
 * (desc_error is caller-owned, as jansson's json_error_t).
 *
 * Numbers that shaped it: a descriptor file is at most 1 MiB (they are a
 * few hundred bytes; the cap only bounds memory), a source pattern at most
 * 4095 bytes and 64 segments (the matcher holds one directory open per
 * segment), a target at most NAME_MAX less the suffix so that its
 * descriptor file name still fits in one directory entry.
 *
 * Directory walking (desc_list, desc_match_sources) lives in match.c.
 * This module depends on jansson only and never logs.
 */
#include "desc.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

/* Largest descriptor file read, in bytes. */
#define DESC__MAX_BYTES (1024 * 1024)
/* Longest source pattern, in bytes (PATH_MAX less the NUL). */
#define DESC__MAX_PATTERN 4095
/* Most `/`-separated segments in one source pattern. */
#define DESC__MAX_SEGMENTS 64
/* Longest target name: its descriptor `<target>.merge.json` must fit. */
#define DESC__MAX_TARGET (NAME_MAX - (sizeof(DESC_SUFFIX) - 1))
/* User text quoted in a message is cut after this many bytes. */
#define DESC__QUOTE_MAX 64

#define DESC__COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define DESC__ORIGIN_DEFAULT "(built-in default)"
#define DESC__ORIGIN_UNNAMED "(descriptor)"

static const char *const desc_default_source = "memory-*.json";
static const char *const desc_default_key = "_crdt_metadata.unique_id";

static const struct {
	const char *path;
	desc_order_type type;
} desc_default_order[] = {
	{ "_crdt_metadata.timestamp", DESC_ORDER_TIMESTAMP },
	{ "_crdt_metadata.version", DESC_ORDER_INTEGER },
	{ "_crdt_metadata.host", DESC_ORDER_STRING },
};

static const char *const desc_top_fields[] = {
	"target", "sources", "key", "order", "format",
};

static const char *const desc_glob_classes[] = {
	"alnum", "alpha", "blank", "cntrl", "digit", "graph",
	"lower", "print", "punct", "space", "upper", "xdigit",
};

/*
 * Fill `err` (when given) with a validation error at no position.
 * @return -EINVAL, so callers can `return fail(...)`
 */
static int fail(desc_error *err, const char *origin, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(desc_error *err, const char *origin, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -EINVAL;
	snprintf(err->source, sizeof(err->source), "%s", origin);
	err->line = 0;
	err->column = 0;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/*
 * Write `s` (len bytes) into buf as a double-quoted string fit for a
 * message: quotes, backslashes and control bytes escaped, cut after
 * DESC__QUOTE_MAX bytes with "...".  buf is always NUL-terminated.
 */
static void quote(char *buf, size_t size, const char *s, size_t len)
{
	size_t o = 0, i;

	if (size < 8) {
		if (size)
			buf[0] = '\0';
		return;
	}
	buf[o++] = '"';
	for (i = 0; i < len && i < DESC__QUOTE_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (o + 8 >= size)
			break;
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	if (i < len && o + 5 < size) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
}

static int ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static void path_dispose(desc_path *p)
{
	size_t i;

	if (p->parts)
		for (i = 0; i < p->nparts; i++)
			free(p->parts[i]);
	free(p->parts);
	free(p->text);
	memset(p, 0, sizeof(*p));
}

/*
 * Split the dotted path `text` into p (which must be zeroed).  `field`
 * names it in messages.  On failure p may be half-built; path_dispose()
 * frees it.
 * @return 0, -EINVAL (empty path or empty segment), -ENOMEM
 */
static int path_parse(desc_path *p, const char *text, const char *field,
                      const char *origin, desc_error *err)
{
	const char *seg, *dot;
	size_t n = 1, i;

	if (!*text)
		return fail(err, origin, "field \"%s\": must not be empty",
		            field);
	for (seg = text; (dot = strchr(seg, '.')); seg = dot + 1)
		n++;
	p->text = strdup(text);
	p->parts = calloc(n, sizeof(*p->parts));
	if (!p->text || !p->parts)
		return -ENOMEM;
	p->nparts = n;
	seg = text;
	for (i = 0; i < n; i++) {
		size_t len;

		dot = strchr(seg, '.');
		len = dot ? (size_t)(dot - seg) : strlen(seg);
		if (len == 0)
			return fail(err, origin,
			            "field \"%s\": empty path segment", field);
		p->parts[i] = strndup(seg, len);
		if (!p->parts[i])
			return -ENOMEM;
		seg = dot ? dot + 1 : seg + len;
	}
	return 0;
}

static int glob_class_known(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < DESC__COUNT(desc_glob_classes); i++)
		if (strlen(desc_glob_classes[i]) == len &&
		    memcmp(desc_glob_classes[i], name, len) == 0)
			return 1;
	return 0;
}

/*
 * Check the fnmatch(3) syntax of one pattern segment `s` (len bytes, no
 * `/`): every `[` class closed, character classes known, no collating
 * symbols or equivalence classes, no lone trailing backslash.
 * @return 0, or -EINVAL with err filled naming `field`
 */
static int glob_check(const char *s, size_t len, const char *field,
                      const char *origin, desc_error *err)
{
	size_t i = 0, j;

	while (i < len) {
		if (s[i] == '\\') {
			if (i + 1 >= len)
				return fail(
				        err, origin,
				        "field \"%s\": glob ends in a lone \"\\\"",
				        field);
			i += 2;
			continue;
		}
		if (s[i] != '[') {
			i++;
			continue;
		}
		j = i + 1;
		if (j < len && (s[j] == '!' || s[j] == '^'))
			j++;
		if (j < len && s[j] == ']')
			j++;
		for (;;) {
			if (j >= len)
				return fail(
				        err, origin,
				        "field \"%s\": unterminated \"[\" in glob",
				        field);
			if (s[j] == ']')
				break;
			if (s[j] == '[' && j + 1 < len &&
			    (s[j + 1] == '.' || s[j + 1] == '='))
				return fail(
				        err, origin,
				        "field \"%s\": collating symbols (\"[%c\") are not supported in globs",
				        field, s[j + 1]);
			if (s[j] == '[' && j + 1 < len && s[j + 1] == ':') {
				size_t k = j + 2;
				char q[2 * DESC__QUOTE_MAX];

				while (k + 1 < len &&
				       !(s[k] == ':' && s[k + 1] == ']'))
					k++;
				if (k + 1 >= len)
					return fail(
					        err, origin,
					        "field \"%s\": unterminated \"[\" in glob",
					        field);
				if (!glob_class_known(s + j + 2, k - j - 2)) {
					quote(q, sizeof(q), s + j, k + 2 - j);
					return fail(
					        err, origin,
					        "field \"%s\": unknown character class %s in glob",
					        field, q);
				}
				j = k + 2;
				continue;
			}
			if (s[j] == '\\' && j + 1 < len)
				j++;
			j++;
		}
		i = j + 1;
	}
	return 0;
}

/*
 * Validate one source pattern: relative, no trailing `/`, no empty, `.`
 * or `..` segment, at most DESC__MAX_SEGMENTS segments, each a valid glob.
 * @return 0, or -EINVAL with err filled naming `field`
 */
static int pattern_check(const char *pat, size_t len, const char *field,
                         const char *origin, desc_error *err)
{
	size_t start = 0, nseg = 0, end;
	int r;

	if (len == 0)
		return fail(err, origin, "field \"%s\": must not be empty",
		            field);
	if (pat[0] == '/')
		return fail(err, origin,
		            "field \"%s\": absolute paths are not allowed",
		            field);
	if (len > DESC__MAX_PATTERN)
		return fail(err, origin, "field \"%s\": longer than %d bytes",
		            field, DESC__MAX_PATTERN);
	if (pat[len - 1] == '/')
		return fail(err, origin, "field \"%s\": must not end in \"/\"",
		            field);
	while (start <= len) {
		const char *slash = memchr(pat + start, '/', len - start);
		size_t n;

		end = slash ? (size_t)(slash - pat) : len;
		n = end - start;
		if (n == 0)
			return fail(err, origin,
			            "field \"%s\": empty path segment", field);
		if (n == 1 && pat[start] == '.')
			return fail(err, origin,
			            "field \"%s\": \".\" is not allowed",
			            field);
		if (n == 2 && pat[start] == '.' && pat[start + 1] == '.')
			return fail(err, origin,
			            "field \"%s\": \"..\" is not allowed",
			            field);
		if (++nseg > DESC__MAX_SEGMENTS)
			return fail(err, origin,
			            "field \"%s\": more than %d path segments",
			            field, DESC__MAX_SEGMENTS);
		r = glob_check(pat + start, n, field, origin, err);
		if (r < 0)
			return r;
		start = end + 1;
	}
	return 0;
}

static int parse_target(desc_descriptor *d, json_t *v, const char *origin,
                        desc_error *err)
{
	const char *s;
	size_t n;

	if (!v)
		return fail(err, origin, "field \"target\": is required");
	if (!json_is_string(v))
		return fail(err, origin, "field \"target\": must be a string");
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0)
		return fail(err, origin, "field \"target\": must not be empty");
	if (memchr(s, '/', n))
		return fail(
		        err, origin,
		        "field \"target\": must be a plain file name (no \"/\")");
	if (ends_with(s, n, DESC_SUFFIX))
		return fail(err, origin,
		            "field \"target\": must not end in \"%s\"",
		            DESC_SUFFIX);
	if (s[0] == '.')
		return fail(err, origin,
		            "field \"target\": must not start with \".\"");
	if (n > DESC__MAX_TARGET)
		return fail(err, origin,
		            "field \"target\": longer than %zu bytes",
		            (size_t)DESC__MAX_TARGET);
	d->target = strdup(s);
	return d->target ? 0 : -ENOMEM;
}

static int parse_sources(desc_descriptor *d, json_t *v, const char *origin,
                         desc_error *err)
{
	size_t i, n;
	int r;

	if (!v || !json_is_array(v) || json_array_size(v) == 0)
		return fail(
		        err, origin,
		        "field \"sources\": must be a non-empty array of strings");
	n = json_array_size(v);
	d->sources = calloc(n + 1, sizeof(*d->sources));
	if (!d->sources)
		return -ENOMEM;
	d->nsources = n;
	for (i = 0; i < n; i++) {
		json_t *e = json_array_get(v, i);
		char field[32];

		snprintf(field, sizeof(field), "sources[%zu]", i);
		if (!json_is_string(e))
			return fail(err, origin,
			            "field \"%s\": must be a string", field);
		r = pattern_check(json_string_value(e), json_string_length(e),
		                  field, origin, err);
		if (r < 0)
			return r;
		d->sources[i] = strdup(json_string_value(e));
		if (!d->sources[i])
			return -ENOMEM;
	}
	return 0;
}

static int default_keys(desc_descriptor *d)
{
	d->keys = calloc(1, sizeof(*d->keys));
	if (!d->keys)
		return -ENOMEM;
	d->nkeys = 1;
	return path_parse(&d->keys[0], desc_default_key, "key[0]",
	                  DESC__ORIGIN_DEFAULT, NULL);
}

static int default_order(desc_descriptor *d)
{
	size_t i, n = DESC__COUNT(desc_default_order);
	int r;

	d->order = calloc(n, sizeof(*d->order));
	if (!d->order)
		return -ENOMEM;
	d->norder = n;
	for (i = 0; i < n; i++) {
		d->order[i].type = desc_default_order[i].type;
		r = path_parse(&d->order[i].path, desc_default_order[i].path,
		               "order", DESC__ORIGIN_DEFAULT, NULL);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_keys(desc_descriptor *d, json_t *v, const char *origin,
                      desc_error *err)
{
	size_t i, n;
	int r;

	if (!v)
		return default_keys(d);
	if (!json_is_array(v) || json_array_size(v) == 0)
		return fail(
		        err, origin,
		        "field \"key\": must be a non-empty array of strings");
	n = json_array_size(v);
	if (n > DESC_MAX_FIELDS)
		return fail(err, origin,
		            "field \"key\": at most %d paths are allowed",
		            DESC_MAX_FIELDS);
	d->keys = calloc(n, sizeof(*d->keys));
	if (!d->keys)
		return -ENOMEM;
	d->nkeys = n;
	for (i = 0; i < n; i++) {
		json_t *e = json_array_get(v, i);
		char field[32];

		snprintf(field, sizeof(field), "key[%zu]", i);
		if (!json_is_string(e))
			return fail(err, origin,
			            "field \"%s\": must be a string", field);
		r = path_parse(&d->keys[i], json_string_value(e), field, origin,
		               err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_order_item(desc_order *o, json_t *e, size_t i,
                            const char *origin, desc_error *err)
{
	char field[48], q[2 * DESC__QUOTE_MAX];
	const char *name, *type;
	json_t *v;
	int r;

	if (!json_is_object(e))
		return fail(err, origin,
		            "field \"order[%zu]\": must be an object", i);
	json_object_foreach(e, name, v) {
		if (strcmp(name, "path") != 0 && strcmp(name, "type") != 0) {
			char full[DESC__QUOTE_MAX + 32];

			snprintf(full, sizeof(full), "order[%zu].%s", i, name);
			quote(q, sizeof(q), full, strlen(full));
			return fail(err, origin, "unknown field %s", q);
		}
	}
	snprintf(field, sizeof(field), "order[%zu].path", i);
	v = json_object_get(e, "path");
	if (!v)
		return fail(err, origin, "field \"%s\": is required", field);
	if (!json_is_string(v))
		return fail(err, origin, "field \"%s\": must be a string",
		            field);
	r = path_parse(&o->path, json_string_value(v), field, origin, err);
	if (r < 0)
		return r;

	snprintf(field, sizeof(field), "order[%zu].type", i);
	v = json_object_get(e, "type");
	if (!v)
		return fail(err, origin, "field \"%s\": is required", field);
	type = json_string_value(v);
	if (type && strcmp(type, "timestamp") == 0)
		o->type = DESC_ORDER_TIMESTAMP;
	else if (type && strcmp(type, "integer") == 0)
		o->type = DESC_ORDER_INTEGER;
	else if (type && strcmp(type, "string") == 0)
		o->type = DESC_ORDER_STRING;
	else if (type) {
		quote(q, sizeof(q), type, strlen(type));
		return fail(err, origin,
		            "field \"%s\": must be \"timestamp\", \"integer\" "
		            "or \"string\" (not %s)",
		            field, q);
	} else
		return fail(
		        err, origin,
		        "field \"%s\": must be \"timestamp\", \"integer\" or \"string\"",
		        field);
	return 0;
}

static int parse_order(desc_descriptor *d, json_t *v, const char *origin,
                       desc_error *err)
{
	size_t i, n;
	int r;

	if (!v)
		return default_order(d);
	if (!json_is_array(v) || json_array_size(v) == 0)
		return fail(
		        err, origin,
		        "field \"order\": must be a non-empty array of objects");
	n = json_array_size(v);
	if (n > DESC_MAX_FIELDS)
		return fail(err, origin,
		            "field \"order\": at most %d fields are allowed",
		            DESC_MAX_FIELDS);
	d->order = calloc(n, sizeof(*d->order));
	if (!d->order)
		return -ENOMEM;
	d->norder = n;
	for (i = 0; i < n; i++) {
		r = parse_order_item(&d->order[i], json_array_get(v, i), i,
		                     origin, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_format(desc_descriptor *d, json_t *v, const char *origin,
                        desc_error *err)
{
	const char *s = v ? json_string_value(v) : "json";

	if (s && strcmp(s, "json") == 0)
		d->format = DESC_FORMAT_JSON;
	else if (s && strcmp(s, "jsonl") == 0)
		d->format = DESC_FORMAT_JSONL;
	else
		return fail(err, origin,
		            "field \"format\": must be \"json\" or \"jsonl\"");
	return 0;
}

/*
 * A target its own sources would match would read the merged output as
 * input.  Only one-segment patterns can match a root file name.
 */
static int check_target_not_source(const desc_descriptor *d, const char *origin,
                                   desc_error *err)
{
	char q[2 * DESC__QUOTE_MAX];
	size_t i;

	for (i = 0; i < d->nsources; i++) {
		if (strchr(d->sources[i], '/'))
			continue;
		if (fnmatch(d->sources[i], d->target, FNM_PERIOD) == 0) {
			quote(q, sizeof(q), d->sources[i],
			      strlen(d->sources[i]));
			return fail(
			        err, origin,
			        "field \"target\": matched by its own source pattern %s (sources[%zu])",
			        q, i);
		}
	}
	return 0;
}

/* Fill d from the parsed root value; the first problem wins. */
static int build(desc_descriptor *d, json_t *root, const char *origin,
                 desc_error *err)
{
	const char *name;
	json_t *v;
	size_t i;
	int r;

	if (!json_is_object(root))
		return fail(err, origin, "descriptor must be a JSON object");
	json_object_foreach(root, name, v) {
		int known = 0;
		char q[2 * DESC__QUOTE_MAX];

		for (i = 0; i < DESC__COUNT(desc_top_fields); i++)
			known |= strcmp(name, desc_top_fields[i]) == 0;
		if (!known) {
			quote(q, sizeof(q), name, strlen(name));
			return fail(err, origin, "unknown field %s", q);
		}
	}
	r = parse_target(d, json_object_get(root, "target"), origin, err);
	if (r < 0)
		return r;
	r = parse_sources(d, json_object_get(root, "sources"), origin, err);
	if (r < 0)
		return r;
	r = parse_keys(d, json_object_get(root, "key"), origin, err);
	if (r < 0)
		return r;
	r = parse_order(d, json_object_get(root, "order"), origin, err);
	if (r < 0)
		return r;
	r = parse_format(d, json_object_get(root, "format"), origin, err);
	if (r < 0)
		return r;
	return check_target_not_source(d, origin, err);
}

int desc_default(desc_descriptor **out)
{
	desc_descriptor *d;
	int r = -ENOMEM;

	*out = NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->target = strdup(DESC_DEFAULT_TARGET);
	d->origin = strdup(DESC__ORIGIN_DEFAULT);
	d->sources = calloc(2, sizeof(*d->sources));
	if (!d->target || !d->origin || !d->sources)
		goto out;
	d->nsources = 1;
	d->sources[0] = strdup(desc_default_source);
	if (!d->sources[0])
		goto out;
	if ((r = default_keys(d)) < 0 || (r = default_order(d)) < 0)
		goto out;
	d->format = DESC_FORMAT_JSON;
	*out = d;
	return 0;
out:
	desc_free(d);
	return r;
}

int desc_byte_column(const char *text, size_t len, int position, int column)
{
	size_t end = position > 0 ? (size_t)position : 0, start;

	if (column <= 0)
		return column;
	if (end > len)
		end = len;
	for (start = end; start > 0 && text[start - 1] != '\n'; start--)
		;
	return (int)(end - start);
}

/*
 * Parse with JSON_REJECT_DUPLICATES (a duplicated field is ambiguous);
 * jansson's syntax errors keep their line and column, validation errors
 * have none (jansson keeps no positions for values).
 */
int desc_parse(desc_descriptor **out, const char *text, size_t len,
               const char *origin, desc_error *err)
{
	desc_descriptor *d = NULL;
	json_error_t jerr;
	json_t *root;
	int r;

	*out = NULL;
	if (!origin)
		origin = DESC__ORIGIN_UNNAMED;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		if (err) {
			/* jansson names its own flag; say what is wrong. */
			if (json_error_code(&jerr) == json_error_null_character)
				fail(err, origin, "invalid JSON: \\u0000 (a NUL "
				     "character) is not allowed in a descriptor");
			else
				fail(err, origin, "invalid JSON: %s", jerr.text);
			err->line = jerr.line > 0 ? jerr.line : 0;
			err->column = desc_byte_column(text, len, jerr.position,
						       jerr.column);
			/* Before a line's first byte (an empty file, the end
			 * after a newline): its first column. */
			if (err->column < 1)
				err->column = err->line ? 1 : 0;
		}
		return -EINVAL;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		r = -ENOMEM;
		goto out;
	}
	d->origin = strdup(origin);
	if (!d->origin) {
		r = -ENOMEM;
		goto out;
	}
	r = build(d, root, origin, err);
	if (r < 0)
		goto out;
	*out = d;
	d = NULL;
out:
	desc_free(d);
	json_decref(root);
	return r;
}

/*
 * Read all of a regular file opened as fd, refusing more than
 * DESC__MAX_BYTES.
 * @return 0 with *ret_buf (owned) and *ret_len set, -EFBIG, -EIO, -ENOMEM
 */
static int read_all(int fd, char **ret_buf, size_t *ret_len)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap), *nb;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			if (cap > DESC__MAX_BYTES)
				break;
			cap = 2 * cap > DESC__MAX_BYTES + 1 ?
			              DESC__MAX_BYTES + 1 :
			              2 * cap;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -EIO;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > DESC__MAX_BYTES) {
		free(buf);
		return -EFBIG;
	}
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

/*
 * O_NOFOLLOW refuses a symlink as the last component; O_NONBLOCK keeps a
 * FIFO planted under a descriptor name from blocking the open, and fstat
 * then turns it away.  When the file name ends in DESC_SUFFIX the target
 * must be that name less the suffix, so two descriptors cannot claim one
 * target.
 */
/*
 * Read, parse and check the descriptor open at fd (closed here), named
 * relpath in messages; `any_kind` also takes what is not a regular file
 * (a pipe: `--descriptor <(...)`).
 */
static int load_fd(desc_descriptor **out, int fd, const char *relpath,
                   int any_kind, desc_error *err)
{
	desc_descriptor *d = NULL;
	const char *base;
	char *buf = NULL;
	struct stat st;
	size_t len = 0, blen;
	int r;

	if (fstat(fd, &st) < 0) {
		r = -EIO;
		fail(err, relpath, "cannot stat descriptor: %s",
		     strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) && (!any_kind || S_ISDIR(st.st_mode))) {
		r = fail(err, relpath, "descriptor must be a regular file");
		goto out;
	}
	if (st.st_size > DESC__MAX_BYTES) {
		r = fail(err, relpath, "descriptor is larger than 1 MiB");
		goto out;
	}
	r = read_all(fd, &buf, &len);
	if (r == -EFBIG) {
		r = fail(err, relpath, "descriptor is larger than 1 MiB");
		goto out;
	}
	if (r < 0) {
		fail(err, relpath, "cannot read descriptor: %s", strerror(-r));
		goto out;
	}
	r = desc_parse(&d, buf, len, relpath, err);
	if (r < 0)
		goto out;
	base = strrchr(relpath, '/');
	base = base ? base + 1 : relpath;
	blen = strlen(base);
	if (blen > sizeof(DESC_SUFFIX) - 1 &&
	    ends_with(base, blen, DESC_SUFFIX)) {
		size_t tlen = blen - (sizeof(DESC_SUFFIX) - 1);

		if (strlen(d->target) != tlen ||
		    memcmp(d->target, base, tlen) != 0) {
			char q[2 * DESC__QUOTE_MAX];

			quote(q, sizeof(q), base, tlen);
			r = fail(
			        err, relpath,
			        "field \"target\": must be %s to match the descriptor file name",
			        q);
			goto out;
		}
	}
	*out = d;
	d = NULL;
out:
	desc_free(d);
	free(buf);
	close(fd);
	return r;
}

/* -errno of a failed open of a descriptor, with its message. */
static int open_failed(int r, const char *relpath, desc_error *err)
{
	fail(err, relpath, "cannot open descriptor: %s", strerror(-r));
	if (r == -ENOENT || r == -ENOTDIR)
		return -ENOENT;
	/* Out of memory or descriptors passes: the caller may try again. */
	if (r == -ENOMEM || r == -EMFILE || r == -ENFILE)
		return r;
	return -EIO;
}

int desc_load(desc_descriptor **out, int backing_fd, const char *relpath,
              desc_error *err)
{
	struct stat st;
	int fd, r;

	*out = NULL;
	fd = openat(backing_fd, relpath,
	            O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		if (r == -ELOOP &&
		    fstatat(backing_fd, relpath, &st, AT_SYMLINK_NOFOLLOW) ==
		            0 &&
		    S_ISLNK(st.st_mode))
			return fail(
			        err, relpath,
			        "descriptor must be a regular file, not a symlink");
		return open_failed(r, relpath, err);
	}
	return load_fd(out, fd, relpath, 0, err);
}

int desc_load_given(desc_descriptor **out, const char *path, desc_error *err)
{
	int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);

	*out = NULL;
	if (fd < 0)
		return open_failed(-errno, path, err);
	return load_fd(out, fd, path, 1, err);
}

void desc_free(desc_descriptor *desc)
{
	size_t i;

	if (!desc)
		return;
	free(desc->target);
	if (desc->sources)
		for (i = 0; i < desc->nsources; i++)
			free(desc->sources[i]);
	free(desc->sources);
	if (desc->keys)
		for (i = 0; i < desc->nkeys; i++)
			path_dispose(&desc->keys[i]);
	free(desc->keys);
	if (desc->order)
		for (i = 0; i < desc->norder; i++)
			path_dispose(&desc->order[i].path);
	free(desc->order);
	free(desc->origin);
	free(desc);
}
