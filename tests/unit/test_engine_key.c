/* SPDX-License-Identifier: MIT */
/*
 * test_engine_key.c - keys as the index stores them (key.c): which keys
 * pack into 16 bytes, that packing round-trips, and that comparing and
 * equating stored keys agrees with comparing their texts, on a pool that
 * mixes packed UUIDs with keys that look almost like them.
 */
#include <string.h>

#include "engine_i.h"
#include "harness.h"

typedef struct {
	char text[64];
	size_t len;
	unsigned char stored[64];
	size_t stored_len;
	int packed;
} stored_key;

static void store(stored_key *k, const char *text)
{
	unsigned char packed[ENGINE__UUID_PACKED];

	k->len = strlen(text);
	memcpy(k->text, text, k->len);
	k->packed = engine__key_pack(text, k->len, packed);
	if (k->packed) {
		memcpy(k->stored, packed, sizeof(packed));
		k->stored_len = sizeof(packed);
	} else {
		memcpy(k->stored, text, k->len);
		k->stored_len = k->len;
	}
}

static int sign(int c)
{
	return (c > 0) - (c < 0);
}

/* The reference order: bytewise, a prefix first. */
static int text_cmp(const stored_key *a, const stored_key *b)
{
	int c = memcmp(a->text, b->text, a->len < b->len ? a->len : b->len);

	return c ? sign(c) : (a->len > b->len) - (a->len < b->len);
}

static void test_engine_key__what_packs(void)
{
	static const char *const yes[] = {
		"00000000-0000-0000-0000-000000000000",
		"ffffffff-ffff-ffff-ffff-ffffffffffff",
		"3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7b",
	};
	static const char *const no[] = {
		"3F2A9C1E-7B4D-4E8A-9F10-2C3D4E5F6A7B", /* uppercase */
		"3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7",  /* 35 bytes */
		"3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7b0", /* 37 bytes */
		"3f2a9c1e7b4d-4e8a-9f10-2c3d4e5f6a7b0", /* a dash moved */
		"3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7g", /* not hex */
		"{3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a}",
		"",
		"u1",
	};
	unsigned char out[ENGINE__UUID_PACKED];
	char buf[ENGINE__UUID_TEXT];
	size_t i, len;

	for (i = 0; i < sizeof(yes) / sizeof(*yes); i++) {
		const char *text;

		ASSERT_EQ_INT(engine__key_pack(yes[i], strlen(yes[i]), out), 1);
		text = engine__key_text((const char *)out, sizeof(out), 1, buf,
					&len);
		ASSERT_EQ_MEM(text, len, yes[i], strlen(yes[i]));
	}
	for (i = 0; i < sizeof(no) / sizeof(*no); i++)
		ASSERT_EQ_INT(engine__key_pack(no[i], strlen(no[i]), out), 0);
}

/* Random UUIDs, round trips, and their order against their texts. */
static void test_engine_key__random_uuids_round_trip(void)
{
	uint64_t x = 0x2545f4914f6cdd1dull;
	int i, bad = 0;

	for (i = 0; i < 20000; i++) {
		char text[ENGINE__UUID_TEXT + 1], buf[ENGINE__UUID_TEXT];
		unsigned char out[ENGINE__UUID_PACKED];
		const char *back;
		size_t len;
		int j;

		for (j = 0; j < ENGINE__UUID_TEXT; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			text[j] = "0123456789abcdef"[x & 15];
		}
		text[8] = text[13] = text[18] = text[23] = '-';
		text[ENGINE__UUID_TEXT] = 0;
		if (!engine__key_pack(text, ENGINE__UUID_TEXT, out)) {
			bad++;
			continue;
		}
		back = engine__key_text((const char *)out, sizeof(out), 1,
					buf, &len);
		if (len != ENGINE__UUID_TEXT || memcmp(back, text, len))
			bad++;
	}
	ASSERT_EQ_INT(bad, 0);
}

/*
 * Every pair of a mixed pool: packed UUIDs next to keys that share their
 * prefixes, extend them, or differ only in case.
 */
static void test_engine_key__order_and_equality_follow_the_text(void)
{
	static const char *const pool[] = {
		"3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7b",
		"3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7c",
		"3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7b0",
		"3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7",
		"3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7B",
		"3F2A9C1E-7B4D-4E8A-9F10-2C3D4E5F6A7B",
		"3f2a9c1e",
		"3f2a9c1e-",
		"3f2a9c1e.7b4d-4e8a-9f10-2c3d4e5f6a7b",
		"00000000-0000-0000-0000-000000000000",
		"ffffffff-ffff-ffff-ffff-ffffffffffff",
		"a0000000-0000-0000-0000-000000000000",
		"9fffffff-ffff-ffff-ffff-ffffffffffff",
		/* 16 bytes stored as the UUID after it packs to */
		"0123456789abcdef",
		"30313233-3435-3637-3839-616263646566",
		"",
		"u1",
		"~blob:0123456789abcdef0123456789abcdef01234567",
		"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
	};
	enum { N = sizeof(pool) / sizeof(*pool) };
	stored_key k[N];
	size_t i, j;
	int bad_order = 0, bad_equal = 0;

	for (i = 0; i < N; i++)
		store(&k[i], pool[i]);
	ASSERT_TRUE(k[0].packed && k[9].packed && !k[2].packed && !k[5].packed);
	for (i = 0; i < N; i++) {
		for (j = 0; j < N; j++) {
			int c = engine__key_cmp(
				(const char *)k[i].stored, k[i].stored_len,
				k[i].packed, (const char *)k[j].stored,
				k[j].stored_len, k[j].packed);
			int same = k[i].packed == k[j].packed &&
				   k[i].stored_len == k[j].stored_len &&
				   !memcmp(k[i].stored, k[j].stored,
					   k[i].stored_len);

			if (sign(c) != text_cmp(&k[i], &k[j])) {
				printf("#   order of \"%s\" and \"%s\"\n",
				       pool[i], pool[j]);
				bad_order++;
			}
			if (same != (i == j))
				bad_equal++;
		}
	}
	ASSERT_EQ_INT(bad_order, 0);
	ASSERT_EQ_INT(bad_equal, 0);
}

static const harness_case cases[] = {
	TEST(test_engine_key__what_packs),
	TEST(test_engine_key__random_uuids_round_trip),
	TEST(test_engine_key__order_and_equality_follow_the_text),
};

HARNESS_MAIN(cases)
