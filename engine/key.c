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

/* Where the dashes of a UUID's text are. */
static int key_dash_at(size_t i)
{
	return i == 8 || i == 13 || i == 18 || i == 23;
}

static int key_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int engine__key_pack(const char *text, size_t len,
		     unsigned char out[ENGINE__UUID_PACKED])
{
	size_t i, n = 0;

	if (len != ENGINE__UUID_TEXT)
		return 0;
	for (i = 0; i < len; i++) {
		int v;

		if (key_dash_at(i)) {
			if (text[i] != '-')
				return 0;
			continue;
		}
		if ((v = key_nibble(text[i])) < 0)
			return 0;
		if (n % 2 == 0)
			out[n / 2] = (unsigned char)(v << 4);
		else
			out[n / 2] |= (unsigned char)v;
		n++;
	}
	return 1;
}

const char *engine__key_text(const char *stored, size_t stored_len,
			     int packed, char buf[ENGINE__UUID_TEXT],
			     size_t *len)
{
	size_t i, n = 0;

	if (!packed) {
		*len = stored_len;
		return stored;
	}
	for (i = 0; i < ENGINE__UUID_TEXT; i++) {
		unsigned char b = (unsigned char)stored[n / 2];

		if (key_dash_at(i)) {
			buf[i] = '-';
			continue;
		}
		buf[i] = key_hex[n % 2 == 0 ? b >> 4 : b & 15];
		n++;
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
