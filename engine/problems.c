/* SPDX-License-Identifier: MIT */
/*
 * problems.c - a growable list of input problems (file, line, column,
 * severity, message).  The engine reports bad input as data so that the
 * program layer decides how to show it (stderr, the status file, --strict).
 */
#include "engine_i.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void engine_problems_init(engine_problems *p)
{
	memset(p, 0, sizeof(*p));
}

void engine_problems_dispose(engine_problems *p)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < p->count; i++) {
		free(p->items[i].file);
		free(p->items[i].message);
	}
	free(p->items);
	memset(p, 0, sizeof(*p));
}

/* Append a problem whose strings are already owned; frees them on failure. */
static int problems_push(engine_problems *p, engine_severity severity,
			 char *file, unsigned long line, unsigned long column,
			 char *message, size_t stands_for)
{
	engine_problem *pr;

	if (!file || !message)
		goto fail;
	if (p->count == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 8;
		engine_problem *items =
			realloc(p->items, cap * sizeof(*items));

		if (!items)
			goto fail;
		p->items = items;
		p->cap = cap;
	}
	pr = &p->items[p->count++];
	pr->file = file;
	pr->line = line;
	pr->column = column;
	pr->severity = severity;
	pr->message = message;
	pr->stands_for = stands_for;
	return 0;
fail:
	free(file);
	free(message);
	return -ENOMEM;
}

/*
 * One line per problem: control bytes a message quotes from the input (a
 * parser's "near '...'") become spaces, so `file:line:column: message`
 * stays one line for grep and for editors' error lists.
 */
static char *one_line(char *message)
{
	char *c;

	for (c = message; c && *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	return message;
}

int engine_problems_add(engine_problems *p, engine_severity severity,
			const char *file, unsigned long line,
			unsigned long column, const char *fmt, ...)
{
	char *message = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&message, fmt, ap);
	va_end(ap);
	if (n < 0)
		message = NULL;
	return problems_push(p, severity, strdup(file ? file : "?"), line,
			     column, one_line(message), 1);
}

int engine__problems_add_more(engine_problems *p, engine_severity severity,
			      const char *file, size_t more, const char *what)
{
	char *message = NULL;

	/* `what` is a plural ending in "s": "problems", "warnings". */
	if (asprintf(&message, "... and %zu more %.*s in this file", more,
		     (int)strlen(what) - (more == 1), what) < 0)
		message = NULL;
	return problems_push(p, severity, strdup(file ? file : "?"), 0, 0,
			     message, more);
}

size_t engine_problems_total(const engine_problems *p)
{
	size_t i, n = 0;

	for (i = 0; i < p->count; i++)
		n += p->items[i].stands_for;
	return n;
}

int engine__problems_extend_n(engine_problems *p, const engine_problems *from,
			      size_t n)
{
	size_t i;
	int r;

	for (i = 0; i < n && i < from->count; i++) {
		const engine_problem *f = &from->items[i];

		r = problems_push(p, f->severity, strdup(f->file), f->line,
				  f->column, strdup(f->message), f->stands_for);
		if (r < 0)
			return r;
	}
	return 0;
}

int engine_problems_extend(engine_problems *p, const engine_problems *from)
{
	return engine__problems_extend_n(p, from, from->count);
}

/*
 * Length of the printable UTF-8 character at p (2 to 4), else 0: invalid,
 * or a C1 control (U+0080-U+009F), which terminals may obey as escapes.
 */
static size_t utf8_printable_len(const unsigned char *p)
{
	if (p[0] == 0xC2 && p[1] < 0xA0)
		return 0;
	return (size_t)engine__utf8_len(p);
}

/*
 * Copy `s` into out (NUL-terminated, cut to size) with control characters
 * and bytes that are not UTF-8 as \xHH: a file name is printed to a
 * terminal, where an escape sequence in it would act.  Never cuts a
 * character or an escape in two.
 */
void engine_escape_text(char *out, size_t size, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0, k;

	while (*p) {
		k = *p < 0x80 ? (*p >= 0x20 && *p != 0x7f) :
		                utf8_printable_len(p);
		if (k && n + k < size) {
			memcpy(out + n, p, k);
			n += k;
			p += k;
		} else if (!k && n + 5 < size) {
			snprintf(out + n, 5, "\\x%02x", *p++);
			n += 4;
		} else {
			break;
		}
	}
	out[n] = '\0';
}

void engine_problem_format(const engine_problem *pr, char *buf, size_t size)
{
	const char *sev = pr->severity == ENGINE_ERROR ? "error" : "warning";
	char line[1536];

	if (pr->line && pr->column)
		snprintf(line, sizeof(line), "%s:%lu:%lu: %s: %s", pr->file,
			 pr->line, pr->column, sev, pr->message);
	else if (pr->line)
		snprintf(line, sizeof(line), "%s:%lu: %s: %s", pr->file,
			 pr->line, sev, pr->message);
	else
		snprintf(line, sizeof(line), "%s: %s: %s", pr->file, sev,
			 pr->message);
	if (size)
		engine_escape_text(buf, size, line);
}
