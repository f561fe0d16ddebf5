/* SPDX-License-Identifier: MIT */
/*
 * key.c - entry keys as the index stores them.
 *
 * Keys are most of an index record's memory, and the key of nearly every
 * real memory entry is a random UUID written by Python's str(uuid4()):
 * 36 characters, 32 of them hex digits.  Such a key is stored as its 16
 * bytes, saving 20 bytes per entry; any other key is stored as written.
 *
 * Only the exact lowercase 8-4-4-4-12 spelling packs, so a key text has
 * one stored form: two keys are equal exactly when their packed flags,
 * stored lengths and stored bytes are.  Packed keys compare among
 * themselves as their texts do (a hex digit's value orders as its
 * lowercase character does, and the dashes sit at the same places);
 * comparing a packed with an unpacked key unpacks it first.
 */
#include "engine_i.h"

#include <string.h>

static const char key_hex[16] = "0123456789abcdef";

/* Where the hex digits of a UUID's text are, in order. */
static const unsigned char key_digit_at[32] = {
	0,  1,  2,  3,  4,  5,  6,  7,  9,  10, 11, 12, 14, 15, 16, 17,
	19, 20, 21, 22, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
};

/*
 * A lowercase hex digit's value plus one, 0 for any other byte: a table,
 * because branching on random digits mispredicts half the time (the
 * branchy version was 5% of a whole merge).
 */
static const unsigned char key_hex_value[256] = {
	['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,
	['5'] = 6,  ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10,
	['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15,
	['f'] = 16,
};

int engine__key_pack(const char *text, size_t len,
		     unsigned char out[ENGINE__UUID_PACKED])
{
	const unsigned char *t = (const unsigned char *)text;
	unsigned bad = 0;
	size_t i;

	if (len != ENGINE__UUID_TEXT || t[8] != '-' || t[13] != '-' ||
	    t[18] != '-' || t[23] != '-')
		return 0;
	for (i = 0; i < ENGINE__UUID_PACKED; i++) {
		unsigned hi = key_hex_value[t[key_digit_at[2 * i]]];
		unsigned lo = key_hex_value[t[key_digit_at[2 * i + 1]]];

		bad |= (hi == 0) | (lo == 0);
		out[i] = (unsigned char)((hi - 1) << 4 | ((lo - 1) & 15));
	}
	return !bad;
}

const char *engine__key_text(const char *stored, size_t stored_len,
			     int packed, char buf[ENGINE__UUID_TEXT],
			     size_t *len)
{
	size_t i;

	if (!packed) {
		*len = stored_len;
		return stored;
	}
	buf[8] = buf[13] = buf[18] = buf[23] = '-';
	for (i = 0; i < ENGINE__UUID_PACKED; i++) {
		unsigned char b = (unsigned char)stored[i];

		buf[key_digit_at[2 * i]] = key_hex[b >> 4];
		buf[key_digit_at[2 * i + 1]] = key_hex[b & 15];
	}
	*len = ENGINE__UUID_TEXT;
	return buf;
}

int engine__key_cmp(const char *a, size_t an, int ap, const char *b,
		    size_t bn, int bp)
{
	char abuf[ENGINE__UUID_TEXT], bbuf[ENGINE__UUID_TEXT];
	int c;

	if (ap != bp) {
		a = engine__key_text(a, an, ap, abuf, &an);
		b = engine__key_text(b, bn, bp, bbuf, &bn);
	}
	c = memcmp(a, b, an < bn ? an : bn);
	if (c)
		return c;
	return (an > bn) - (an < bn);
}
