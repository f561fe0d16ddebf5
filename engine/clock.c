/* SPDX-License-Identifier: MIT */
/*
 * clock.c - RFC 3339 timestamps to integers (UTC seconds + nanoseconds).
 *
 * The merge orders entries by time, so a timestamp must mean one instant
 * whatever its spelling: `2025-01-01T01:00:00+01:00`, `2025-01-01t00:00Z`
 * and `2025-01-01 00:00:00.000000000z` compare equal.  Timestamps are
 * never compared as text.
 *
 * Accepted: `YYYY-MM-DD` `T`|`t`|space `HH:MM:SS` [`.` 1 to 9 digits]
 * then `Z`|`z` or `+hh:mm`|`-hh:mm` (hh <= 23, mm <= 59; `-00:00` is UTC).
 * Years 0000-9999, days checked against the month (Gregorian leap years),
 * second 60 is a leap second and counts as the next second (POSIX time has
 * no leap seconds).  Nothing else: no missing seconds, no comma fraction,
 * no `+hhmm`, no leading or trailing blanks, no more than 9 fraction
 * digits (a tenth digit cannot be represented in nanoseconds, and silently
 * rounding it would make two different values compare equal).
 *
 * Pure integer arithmetic (days from the civil date), no timegm(), no
 * locale and no global state, so it is thread-safe and deterministic.
 */
#include "engine_i.h"

#include <errno.h>

/* Value of `n` decimal digits at s, or -1 when one is not a digit. */
static int clock_digits(const char *s, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static int clock_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int clock_days_in_month(int y, int m)
{
	static const unsigned char dim[12] = { 31, 28, 31, 30, 31, 30,
		                               31, 31, 30, 31, 30, 31 };

	return m == 2 && clock_leap(y) ? 29 : dim[m - 1];
}

/*
 * Days since 1970-01-01 of the proleptic Gregorian date y-m-d (Howard
 * Hinnant's days_from_civil); negative before 1970.
 */
static int64_t clock_days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int engine__time_parse(engine__time *out, const char *s, size_t len)
{
	int year, mon, day, hour, min, sec, oh, om;
	int32_t nsec = 0;
	int64_t t, offset = 0;
	size_t i;

	/* "YYYY-MM-DDTHH:MM:SS" is 19 bytes, the shortest zone is 1 more. */
	if (!s || len < 20)
		return -EINVAL;
	if (s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':')
		return -EINVAL;
	if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
		return -EINVAL;
	year = clock_digits(s, 4);
	mon = clock_digits(s + 5, 2);
	day = clock_digits(s + 8, 2);
	hour = clock_digits(s + 11, 2);
	min = clock_digits(s + 14, 2);
	sec = clock_digits(s + 17, 2);
	if (year < 0 || mon < 1 || mon > 12 || day < 1 || hour < 0 ||
	    hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 60)
		return -EINVAL;
	if (day > clock_days_in_month(year, mon))
		return -EINVAL;

	i = 19;
	if (s[i] == '.') {
		int32_t scale = 100000000;
		size_t start = ++i;

		while (i < len && s[i] >= '0' && s[i] <= '9') {
			if (i - start >= 9)
				return -EINVAL;
			nsec += (s[i] - '0') * scale;
			scale /= 10;
			i++;
		}
		if (i == start)
			return -EINVAL;
	}
	if (i >= len)
		return -EINVAL;
	if (s[i] == 'Z' || s[i] == 'z') {
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		if (len - i < 6 || s[i + 3] != ':')
			return -EINVAL;
		oh = clock_digits(s + i + 1, 2);
		om = clock_digits(s + i + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return -EINVAL;
		offset = (int64_t)oh * 3600 + om * 60;
		if (s[i] == '-')
			offset = -offset;
		i += 6;
	} else {
		return -EINVAL;
	}
	if (i != len)
		return -EINVAL;

	/* Local time minus the offset is UTC; second 60 rolls over. */
	t = clock_days_from_civil(year, mon, day) * 86400 + hour * 3600 +
	    min * 60 + sec;
	out->sec = t - offset;
	out->nsec = nsec;
	return 0;
}
