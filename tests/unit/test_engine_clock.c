/* SPDX-License-Identifier: MIT */
/*
 * test_engine_clock.c - RFC 3339 parsing (engine__time_parse): tables of
 * valid timestamps with their UTC seconds and nanoseconds (computed
 * independently with Python's datetime), tables of invalid ones, and
 * ordering: two spellings of one instant compare equal.
 */
#include <errno.h>
#include <string.h>

#include "engine_i.h"
#include "harness.h"

typedef struct {
	const char *text;
	int64_t sec;
	int32_t nsec;
} clock_case;

static int parse(const char *s, engine__time *t)
{
	return engine__time_parse(t, s, strlen(s));
}

/* -1, 0 or 1 as a is before, at or after b */
static int cmp(const engine__time *a, const engine__time *b)
{
	if (a->sec != b->sec)
		return a->sec < b->sec ? -1 : 1;
	if (a->nsec != b->nsec)
		return a->nsec < b->nsec ? -1 : 1;
	return 0;
}

static void test_engine_clock__valid(void)
{
	static const clock_case cases[] = {
		{ "1970-01-01T00:00:00Z", 0, 0 },
		{ "1970-01-01T00:00:00z", 0, 0 },
		{ "1970-01-01t00:00:00Z", 0, 0 },
		{ "1970-01-01 00:00:00Z", 0, 0 },
		{ "1970-01-01T00:00:00+00:00", 0, 0 },
		{ "1970-01-01T00:00:00-00:00", 0, 0 },
		{ "1969-12-31T23:59:59Z", -1, 0 },
		{ "1969-12-31T23:59:59.5Z", -1, 500000000 },
		{ "2025-01-01T00:00:00Z", 1735689600, 0 },
		/* fractions of 1 to 9 digits */
		{ "2025-01-01T00:00:00.1Z", 1735689600, 100000000 },
		{ "2025-01-01T00:00:00.12Z", 1735689600, 120000000 },
		{ "2025-01-01T00:00:00.123Z", 1735689600, 123000000 },
		{ "2025-01-01T00:00:00.1234Z", 1735689600, 123400000 },
		{ "2025-01-01T00:00:00.12345Z", 1735689600, 123450000 },
		{ "2025-01-01T00:00:00.123456Z", 1735689600, 123456000 },
		{ "2025-01-01T00:00:00.1234567Z", 1735689600, 123456700 },
		{ "2025-01-01T00:00:00.12345678Z", 1735689600, 123456780 },
		{ "2025-01-01T00:00:00.123456789Z", 1735689600, 123456789 },
		{ "2025-01-01T00:00:00.000000001Z", 1735689600, 1 },
		{ "2025-01-01T00:00:00.0Z", 1735689600, 0 },
		/* leap years and February 29 */
		{ "2000-02-29T12:34:56.789+02:00", 951820496, 789000000 },
		{ "2024-02-29T00:00:00Z", 1709164800, 0 },
		{ "1900-03-01T00:00:00Z", -2203891200, 0 },
		/* a leap second counts as the next second */
		{ "2016-12-31T23:59:60Z", 1483228800, 0 },
		{ "2017-01-01T00:00:00Z", 1483228800, 0 },
		/* offsets crossing midnight and the year, both ways */
		{ "2024-12-31T23:30:00-01:00", 1735691400, 0 },
		{ "2025-01-01T00:30:00+01:00", 1735687800, 0 },
		{ "2025-09-15T07:55:34-05:45", 1757943634, 0 },
		{ "2025-01-01T00:00:00+23:59", 1735689600 - 86340, 0 },
		{ "2025-01-01T00:00:00-23:59", 1735689600 + 86340, 0 },
		/* the whole year range */
		{ "0000-01-01T00:00:00Z", -62167219200, 0 },
		{ "0001-01-01T00:00:00Z", -62135596800, 0 },
		{ "9999-12-31T23:59:59.999999999Z", 253402300799, 999999999 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		engine__time t = { -7, -7 };
		int r = parse(cases[i].text, &t);

		if (r != 0 || t.sec != cases[i].sec || t.nsec != cases[i].nsec)
			printf("#   case \"%s\": r=%d sec=%lld nsec=%d\n",
			       cases[i].text, r, (long long)t.sec, t.nsec);
		ASSERT_EQ_INT(r, 0);
		ASSERT_EQ_INT(t.sec, cases[i].sec);
		ASSERT_EQ_INT(t.nsec, cases[i].nsec);
	}
}

static void test_engine_clock__invalid(void)
{
	static const char *const cases[] = {
		"",
		"2025",
		"2025-01-01",
		"2025-01-01T00:00:00",               /* no zone */
		"2025-01-01T00:00Z",                 /* no seconds */
		"2025-01-01T00:00:00.Z",             /* '.' without digits */
		"2025-01-01T00:00:00.1234567890Z",   /* 10 digits */
		"2025-01-01T00:00:00.123456789012Z", /* 12 digits */
		"2025-01-01T00:00:00,5Z",            /* comma fraction */
		"2025-01-01T00:00:00+01",            /* short offset */
		"2025-01-01T00:00:00+0100",          /* no colon */
		"2025-01-01T00:00:00+24:00",         /* offset hour */
		"2025-01-01T00:00:00+01:60",         /* offset minute */
		"2025-01-01T00:00:00+1:00",
		"2025-01-01T00:00:00Z ", /* trailing blank */
		" 2025-01-01T00:00:00Z", /* leading blank */
		"2025-01-01T00:00:00ZZ",
		"2025-01-01T00:00:00+01:00Z",
		"2025-01-01X00:00:00Z", /* bad separator */
		"2025-01-01T00:00:00UTC",
		"2025-1-01T00:00:00Z",
		"2025-01-1T00:00:00Z",
		"+2025-01-01T00:00:00Z",
		"-2025-01-01T00:00:00Z",
		"20250-01-01T00:00:00Z",
		"2025-00-01T00:00:00Z", /* month 0 */
		"2025-13-01T00:00:00Z", /* month 13 */
		"2025-01-00T00:00:00Z", /* day 0 */
		"2025-01-32T00:00:00Z",
		"2025-04-31T00:00:00Z",
		"2023-02-29T00:00:00Z", /* not a leap year */
		"1900-02-29T00:00:00Z", /* century, not leap */
		"2000-02-30T00:00:00Z",
		"2025-01-01T24:00:00Z", /* hour 24 */
		"2025-01-01T00:60:00Z",
		"2025-01-01T00:00:61Z",
		"2025-01-01T0a:00:00Z",
		"2025-01-01T00:00:00.1a2Z",
		"2025-01-01T00:00:00.-1Z",
		"garbage that is long enough!!",
		"2025-01-01T00:00:00 Z",
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		engine__time t = { 42, 43 };
		int r = parse(cases[i], &t);

		if (r != -EINVAL)
			printf("#   case \"%s\" was accepted\n", cases[i]);
		ASSERT_EQ_INT(r, -EINVAL);
		/* the output is left alone on failure */
		ASSERT_EQ_INT(t.sec, 42);
		ASSERT_EQ_INT(t.nsec, 43);
	}
}

static void test_engine_clock__length_is_respected(void)
{
	engine__time t;
	const char *s = "2025-01-01T00:00:00Zjunk";

	/* only len bytes count: no NUL terminator is needed or used */
	ASSERT_EQ_INT(engine__time_parse(&t, s, 20), 0);
	ASSERT_EQ_INT(t.sec, 1735689600);
	ASSERT_EQ_INT(engine__time_parse(&t, s, 21), -EINVAL);
	ASSERT_EQ_INT(engine__time_parse(&t, s, 19), -EINVAL);
	/* a NUL inside (a string value may hold \u0000) is invalid */
	ASSERT_EQ_INT(engine__time_parse(&t, "2025-01-01T00:00:00\0Z", 21),
	              -EINVAL);
	ASSERT_EQ_INT(engine__time_parse(&t, NULL, 0), -EINVAL);
}

static void test_engine_clock__same_instant_compares_equal(void)
{
	static const char *const same[][2] = {
		{ "2025-01-01T01:00:00+01:00", "2025-01-01T00:00:00Z" },
		{ "2025-01-01T00:00:00.5Z", "2025-01-01T00:00:00.500000000z" },
		{ "2024-12-31T19:00:00-05:00", "2025-01-01 00:00:00Z" },
		{ "2016-12-31T23:59:60Z", "2017-01-01T00:00:00.000Z" },
		{ "2025-03-01T00:00:00+00:00", "2025-02-28T23:00:00-01:00" },
		{ "2024-03-01T00:30:00+01:00", "2024-02-29T23:30:00Z" },
	};
	size_t i;

	for (i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		engine__time a, b;

		ASSERT_EQ_INT(parse(same[i][0], &a), 0);
		ASSERT_EQ_INT(parse(same[i][1], &b), 0);
		if (cmp(&a, &b) != 0)
			printf("#   \"%s\" != \"%s\"\n", same[i][0],
			       same[i][1]);
		ASSERT_EQ_INT(cmp(&a, &b), 0);
	}
}

static void test_engine_clock__ordering(void)
{
	/* strictly increasing instants, deliberately not in text order */
	static const char *const asc[] = {
		"0000-01-01T00:00:00Z",
		"1969-12-31T23:59:59.999999999Z",
		"1970-01-01T00:00:00Z",
		"2025-01-01T00:00:00.000000001+00:00",
		"2025-01-01T00:00:00.1Z",
		"2025-01-01T00:00:00.10000001Z",
		"2025-01-01T00:00:00.9Z",
		"2024-12-31T23:00:01-01:00",
		"2025-01-01T02:00:02+02:00",
		"2025-01-01T00:00:02.5Z",
		"2025-01-02T00:00:00+23:59",
		"9999-12-31T23:59:59.999999999Z",
	};
	size_t i, j;

	for (i = 0; i < sizeof(asc) / sizeof(asc[0]); i++)
		for (j = 0; j < sizeof(asc) / sizeof(asc[0]); j++) {
			engine__time a, b;
			int want = i < j ? -1 : i > j ? 1 : 0;

			ASSERT_EQ_INT(parse(asc[i], &a), 0);
			ASSERT_EQ_INT(parse(asc[j], &b), 0);
			if (cmp(&a, &b) != want)
				printf("#   order of \"%s\" vs \"%s\"\n",
				       asc[i], asc[j]);
			ASSERT_EQ_INT(cmp(&a, &b), want);
		}
}

static void test_engine_clock__every_day_round_trips(void)
{
	/*
	 * Walk every day of 0000..9999 with our own calendar arithmetic:
	 * each day must parse, be exactly 86400 s after the previous one,
	 * and the day after the last of a month must not exist.
	 */
	static const int dim[12] = { 31, 28, 31, 30, 31, 30,
		                     31, 31, 30, 31, 30, 31 };
	int64_t prev = 0;
	int y, m, d, first = 1, bad = 0;
	char buf[32];

	for (y = 0; y <= 9999; y++)
		for (m = 1; m <= 12; m++) {
			int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
			int n = dim[m - 1] + (m == 2 && leap);
			engine__time t;

			for (d = 1; d <= n; d++) {
				snprintf(buf, sizeof(buf),
				         "%04d-%02d-%02dT00:00:00Z", y, m, d);
				if (parse(buf, &t) != 0 ||
				    (!first && t.sec != prev + 86400))
					bad++;
				prev = t.sec;
				first = 0;
			}
			snprintf(buf, sizeof(buf), "%04d-%02d-%02dT00:00:00Z",
			         y, m, n + 1);
			if (parse(buf, &t) != -EINVAL)
				bad++;
		}
	ASSERT_EQ_INT(bad, 0);
	ASSERT_EQ_INT(prev, 253402214400); /* 9999-12-31 */
}

static const harness_case cases[] = {
	TEST(test_engine_clock__valid),
	TEST(test_engine_clock__invalid),
	TEST(test_engine_clock__length_is_respected),
	TEST(test_engine_clock__same_instant_compares_equal),
	TEST(test_engine_clock__ordering),
	TEST(test_engine_clock__every_day_round_trips),
};

HARNESS_MAIN(cases)
