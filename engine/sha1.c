/* SPDX-License-Identifier: MIT */
/*
 * sha1.c - SHA-1 as FIPS 180-4 section 6.1 describes it, and git blob ids.
 *
 * Why in-tree: keys of entries without a usable key (`~blob:`) and the
 * identities of prepare.c are git blob ids.  Taking them from libgit2
 * made every crdtfs process load libgit2 and its 17 libraries (~5 ms per
 * start); the hash itself is ~100 lines.  Plain SHA-1, not git's
 * collision-detecting variant: the ids name content, they guard nothing.
 */
#include "sha1.h"

#include <stdio.h>
#include <string.h>

static uint32_t rotl(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

static uint32_t load_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void store_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* One 512-bit block (FIPS 180-4 6.1.2, steps 1-4). */
static void sha1_block(uint32_t h[5], const unsigned char *p)
{
	uint32_t w[80], a, b, c, d, e, f, k, t;
	unsigned i;

	for (i = 0; i < 16; i++)
		w[i] = load_be32(p + 4 * i);
	for (i = 16; i < 80; i++)
		w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	a = h[0];
	b = h[1];
	c = h[2];
	d = h[3];
	e = h[4];
	for (i = 0; i < 80; i++) {
		if (i < 20) { /* Ch */
			f = (b & c) ^ (~b & d);
			k = 0x5a827999;
		} else if (i < 40) { /* Parity */
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) { /* Maj */
			f = (b & c) ^ (b & d) ^ (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = rotl(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rotl(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

void engine__sha1_init(engine__sha1_ctx *c)
{
	/* FIPS 180-4 5.3.1 */
	c->h[0] = 0x67452301;
	c->h[1] = 0xefcdab89;
	c->h[2] = 0x98badcfe;
	c->h[3] = 0x10325476;
	c->h[4] = 0xc3d2e1f0;
	c->len = 0;
}

void engine__sha1_update(engine__sha1_ctx *c, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t have = (size_t)(c->len % 64);

	c->len += len;
	if (have) {
		size_t n = 64 - have < len ? 64 - have : len;

		memcpy(c->buf + have, p, n);
		p += n;
		len -= n;
		if (have + n < 64)
			return;
		sha1_block(c->h, c->buf);
	}
	for (; len >= 64; p += 64, len -= 64)
		sha1_block(c->h, p);
	if (len)
		memcpy(c->buf, p, len);
}

void engine__sha1_final(engine__sha1_ctx *c,
                        unsigned char out[ENGINE__SHA1_LEN])
{
	/* 5.1.1: a 1 bit, zeros up to 56 mod 64 bytes, the length in bits
	 * as 64 bits big-endian. */
	uint64_t bits = c->len * 8;
	size_t have = (size_t)(c->len % 64);
	unsigned i;

	c->buf[have++] = 0x80;
	if (have > 56) {
		memset(c->buf + have, 0, 64 - have);
		sha1_block(c->h, c->buf);
		have = 0;
	}
	memset(c->buf + have, 0, 56 - have);
	store_be32(c->buf + 56, (uint32_t)(bits >> 32));
	store_be32(c->buf + 60, (uint32_t)bits);
	sha1_block(c->h, c->buf);
	for (i = 0; i < 5; i++)
		store_be32(out + 4 * i, c->h[i]);
}

static void to_hex(const unsigned char d[ENGINE__SHA1_LEN],
                   char out[ENGINE__SHA1_HEX])
{
	static const char digits[] = "0123456789abcdef";
	unsigned i;

	for (i = 0; i < ENGINE__SHA1_LEN; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * ENGINE__SHA1_LEN] = '\0';
}

void engine__sha1_final_hex(engine__sha1_ctx *c, char out[ENGINE__SHA1_HEX])
{
	unsigned char d[ENGINE__SHA1_LEN];

	engine__sha1_final(c, d);
	to_hex(d, out);
}

void engine__git_blob_begin(engine__sha1_ctx *c, size_t len)
{
	char head[32];
	int n = snprintf(head, sizeof(head), "blob %zu", len);

	engine__sha1_init(c);
	/* the header's NUL is part of the object */
	engine__sha1_update(c, head, (size_t)n + 1);
}

void engine__git_blob_id(const void *data, size_t len,
                         char out[ENGINE__SHA1_HEX])
{
	engine__sha1_ctx c;

	engine__git_blob_begin(&c, len);
	engine__sha1_update(&c, data, len);
	engine__sha1_final_hex(&c, out);
}
