/* SPDX-License-Identifier: MIT */
/*
 * canon.c - the canonicaliser: an entry's raw bytes with the whitespace
 * outside string literals left out.
 *
 * It runs on every byte served of a pretty-printed entry, so it is a
 * streaming copy, not a parser: the input was validated by the scanner,
 * and the only state that crosses a chunk boundary is whether we are
 * inside a string and whether the previous byte was a backslash there.
 * String bodies (most of the bytes) are copied 16 bytes at a time with
 * SSE2 while looking for '"' and '\\' (a scalar loop elsewhere); between
 * strings, bytes are copied one at a time, and a run of blanks (the
 * indentation of a pretty-printed file) is skipped 16 at a time.  About
 * 2.8 GB/s here.
 *
 * Output is never longer than input, so `out` needs room for n bytes.
 * `in` and `out` must not overlap.
 */
#include "engine_i.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/*
 * Copy a string body from p to *po up to the first '"' or '\\' (not
 * copied) or e.  Returns the pointer to that byte, or e.  Copies 16 bytes
 * at a time while 16 remain: the store may run ahead of the special byte,
 * which is harmless because output never gets ahead of input (o - out <=
 * p - in), so o + 16 stays within the caller's n bytes.
 */
static const char *canon_copy_string(const char *p, const char *e, char **po)
{
	char *o = *po;

#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i bslash = _mm_set1_epi8('\\');

	while (e - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(
		        _mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)));

		_mm_storeu_si128((__m128i *)(void *)o, v);
		if (m) {
			unsigned k = (unsigned)__builtin_ctz(m);

			*po = o + k;
			return p + k;
		}
		p += 16;
		o += 16;
	}
#endif
	while (p < e && *p != '"' && *p != '\\')
		*o++ = *p++;
	*po = o;
	return p;
}

/*
 * First non-blank byte in [p, e), or e.  Pretty-printed files indent
 * every line, so blanks come in runs worth skipping 16 at a time.
 */
static const char *canon_skip_blanks(const char *p, const char *e)
{
#ifdef __SSE2__
	const __m128i sp = _mm_set1_epi8(' '), nl = _mm_set1_epi8('\n');
	const __m128i cr = _mm_set1_epi8('\r'), tab = _mm_set1_epi8('\t');

	while (e - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i b = _mm_or_si128(
			_mm_or_si128(_mm_cmpeq_epi8(v, sp),
				     _mm_cmpeq_epi8(v, nl)),
			_mm_or_si128(_mm_cmpeq_epi8(v, cr),
				     _mm_cmpeq_epi8(v, tab)));
		unsigned m = (unsigned)_mm_movemask_epi8(b) ^ 0xffffu;

		if (m)
			return p + __builtin_ctz(m);
		p += 16;
	}
#endif
	while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	return p;
}

size_t engine__canon_chunk(engine__canon *st, const char *in, size_t n,
                           char *out)
{
	const char *p = in, *e = in + n;
	char *o = out;
	int in_string = st->in_string;

	if (st->escaped && p < e) {
		/* The byte after a backslash is never a delimiter. */
		*o++ = *p++;
		st->escaped = 0;
	}
	while (p < e) {
		if (in_string) {
			p = canon_copy_string(p, e, &o);
			if (p == e)
				break;
			*o++ = *p;
			if (*p++ == '"') {
				in_string = 0;
				continue;
			}
			if (p == e) {
				st->escaped = 1;
				break;
			}
			*o++ = *p++;
			continue;
		}
		while (p < e) {
			char c = *p++;

			if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
				p = canon_skip_blanks(p, e);
				continue;
			}
			*o++ = c;
			if (c == '"') {
				in_string = 1;
				break;
			}
		}
	}
	st->in_string = in_string;
	return (size_t)(o - out);
}
