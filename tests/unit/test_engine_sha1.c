/* SPDX-License-Identifier: MIT */
/*
 * test_engine_sha1.c - SHA-1 and git blob ids (sha1.c): the FIPS 180-2
 * example vectors, messages whose padding crosses the 55/56/64-byte
 * boundaries, updates split at every offset, and git blob ids checked
 * against `git hash-object --stdin` (values computed once and written
 * here; the boundary digests came from Python's hashlib).
 */
#include <stdio.h>
#include <string.h>

#include "sha1.h"
#include "harness.h"

/* The digest of `len` bytes at `data`, in one update. */
static void sha1_hex(const void *data, size_t len, char out[ENGINE__SHA1_HEX])
{
	engine__sha1_ctx c;

	engine__sha1_init(&c);
	engine__sha1_update(&c, data, len);
	engine__sha1_final_hex(&c, out);
}

static void test_engine_sha1__fips_vectors(void)
{
	char hex[ENGINE__SHA1_HEX];

	sha1_hex("abc", 3, hex);
	ASSERT_EQ_STR(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
	sha1_hex("", 0, hex);
	ASSERT_EQ_STR(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	/* 448 bits: the padding needs a second block */
	sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
	       hex);
	ASSERT_EQ_STR(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	sha1_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
	       "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
	       112, hex);
	ASSERT_EQ_STR(hex, "a49b2446a02c645bf419f995b67091253a04a259");
}

static void test_engine_sha1__million_a(void)
{
	static char chunk[1000];
	engine__sha1_ctx c;
	unsigned char d[ENGINE__SHA1_LEN];
	static const unsigned char want[ENGINE__SHA1_LEN] = {
		0x34, 0xaa, 0x97, 0x3c, 0xd4, 0xc4, 0xda, 0xa4, 0xf6, 0x1e,
		0xeb, 0x2b, 0xdb, 0xad, 0x27, 0x31, 0x65, 0x34, 0x01, 0x6f,
	};
	int i;

	memset(chunk, 'a', sizeof(chunk));
	engine__sha1_init(&c);
	for (i = 0; i < 1000; i++)
		engine__sha1_update(&c, chunk, sizeof(chunk));
	engine__sha1_final(&c, d);
	ASSERT_EQ_MEM(d, sizeof(d), want, sizeof(want));
}

static void test_engine_sha1__padding_boundaries(void)
{
	static const struct {
		size_t len;
		const char *hex;
	} cases[] = {
		{ 55, "cef734ba81a024479e09eb5a75b6ddae62e6abf1" },
		{ 56, "901305367c259952f4e7af8323f480d59f81335b" },
		{ 57, "025ecbd5d70f8fb3c5457cd96bab13fda305dc59" },
		{ 63, "0ddc4e0cccd9a12850deb5abb0853a4425559fec" },
		{ 64, "bb2fa3ee7afb9f54c6dfb5d021f14b1ffe40c163" },
		{ 65, "78c741ddc482e4cdf8c474a0876347a0905b6233" },
	};
	char msg[65], hex[ENGINE__SHA1_HEX];
	size_t i;

	memset(msg, 'x', sizeof(msg));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sha1_hex(msg, cases[i].len, hex);
		ASSERT_EQ_STR(hex, cases[i].hex);
	}
}

/* Feeding a message in two pieces, split anywhere, gives the same digest. */
static void test_engine_sha1__split_updates(void)
{
	char msg[200], whole[ENGINE__SHA1_HEX];
	unsigned char d[ENGINE__SHA1_LEN], w[ENGINE__SHA1_LEN];
	engine__sha1_ctx c;
	size_t i, cut, bad = 0;

	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (char)(i * 31 + 7);
	sha1_hex(msg, sizeof(msg), whole);
	engine__sha1_init(&c);
	engine__sha1_update(&c, msg, sizeof(msg));
	engine__sha1_final(&c, w);
	/* The one-shot digest is the streamed one, in hex. */
	for (i = 0; i < sizeof(w); i++) {
		char two[3];

		snprintf(two, sizeof(two), "%02x", w[i]);
		ASSERT_TRUE(memcmp(whole + 2 * i, two, 2) == 0);
	}
	for (cut = 0; cut <= sizeof(msg); cut++) {
		engine__sha1_init(&c);
		engine__sha1_update(&c, msg, cut);
		engine__sha1_update(&c, msg + cut, sizeof(msg) - cut);
		engine__sha1_final(&c, d);
		if (memcmp(d, w, sizeof(d)) != 0)
			bad++;
	}
	ASSERT_EQ_INT(bad, 0);
	/* byte by byte too */
	engine__sha1_init(&c);
	for (i = 0; i < sizeof(msg); i++)
		engine__sha1_update(&c, msg + i, 1);
	engine__sha1_final(&c, d);
	ASSERT_EQ_MEM(d, sizeof(d), w, sizeof(w));
}

static void test_engine_sha1__git_blob_text(void)
{
	char hex[ENGINE__SHA1_HEX];

	/* the empty blob every git repository knows */
	engine__git_blob_id("", 0, hex);
	ASSERT_EQ_STR(hex, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
	engine__git_blob_id("hello world\n", 12, hex);
	ASSERT_EQ_STR(hex, "3b18e512dba79e4c8300dd08aeb37f8e728b8dad");
	engine__git_blob_id("{\"a\":1}", 7, hex);
	ASSERT_EQ_STR(hex, "daa5053ecf5f9a37b2de733d0751cc1ab53ac010");
}

/*
 * Blobs of bytes (i * 7 + 3) % 256 (NULs and high bytes included).  With
 * the "blob N\0" header (8 bytes for N of 10..99), 47..49 bytes put the
 * object at 55..57 bytes and 55..57 at 63..65: both padding boundaries.
 */
static void test_engine_sha1__git_blob_boundaries(void)
{
	static const struct {
		size_t len;
		const char *hex;
	} cases[] = {
		{ 0, "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391" },
		{ 1, "fc2b5693e00bdbea3f74ac60459b1df43c295356" },
		{ 47, "6d9aed2856e19f539d581289bc9ef5aeda32b2f5" },
		{ 48, "337a6d4e5fdec761dfa08b317d5d69aa25fa257e" },
		{ 49, "797779cef5571730fbcb13bb7f7cd346088d2ec0" },
		{ 55, "1abe178a5e7d928b8cf998ad8479d32f2a5a50c1" },
		{ 56, "1d9a2224c862e8d1d2c222a7743e7e90522e8979" },
		{ 57, "90c4ea9afe58b2d71fe02c3059c077ad5ef48a03" },
		{ 63, "ae8df5ff9be67a8d83e29f107b4f65608503aff1" },
		{ 64, "7a750f53f0d82924d58e4994486faa24db9a1cbc" },
		{ 65, "996d36b8af0df3c01f859b2d2d55e4fac47f6659" },
		{ 119, "ed5cf336e9d28fc71f8bf11b05520c63a23e083a" },
		{ 120, "d4ffa4b455d65886892e4637177028134070d0d8" },
		{ 1000, "91475c4915324f928254bb924272e5b930262344" },
	};
	unsigned char data[1000];
	char hex[ENGINE__SHA1_HEX];
	size_t i;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)((i * 7 + 3) % 256);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		engine__git_blob_id(data, cases[i].len, hex);
		ASSERT_EQ_STR(hex, cases[i].hex);
	}
}

static const harness_case cases[] = {
	TEST(test_engine_sha1__fips_vectors),
	TEST(test_engine_sha1__million_a),
	TEST(test_engine_sha1__padding_boundaries),
	TEST(test_engine_sha1__split_updates),
	TEST(test_engine_sha1__git_blob_text),
	TEST(test_engine_sha1__git_blob_boundaries),
};

HARNESS_MAIN(cases)
