/* SPDX-License-Identifier: MIT */
/*
 * harness.h - a tiny TAP test harness for the unit tests.
 *
 * Each test file defines `static void test_x__y(void)` functions and lists
 * them in a TESTS table; main() comes from HARNESS_MAIN.  Run a test binary
 * with a case name to run that case alone.  ASSERT_* print the failing
 * expression with file and line and mark the case failed (it goes on, so
 * one run shows every failure of a case).
 */
#ifndef CRDTFS_TESTS_HARNESS_H
#define CRDTFS_TESTS_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int harness_failed;

#define ASSERT_TRUE(expr)                                                   \
	do {                                                                \
		if (!(expr)) {                                              \
			printf("#   %s:%d: ASSERT_TRUE(%s) failed\n",       \
			       __FILE__, __LINE__, #expr);                  \
			harness_failed = 1;                                 \
		}                                                           \
	} while (0)

#define ASSERT_EQ_INT(a, b)                                                 \
	do {                                                                \
		long long a_ = (long long)(a), b_ = (long long)(b);         \
		if (a_ != b_) {                                             \
			printf("#   %s:%d: %s == %s failed: %lld != %lld\n",\
			       __FILE__, __LINE__, #a, #b, a_, b_);         \
			harness_failed = 1;                                 \
		}                                                           \
	} while (0)

#define ASSERT_EQ_STR(a, b)                                                 \
	do {                                                                \
		const char *a_ = (a), *b_ = (b);                            \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                    \
			printf("#   %s:%d: %s == %s failed: \"%s\" != \"%s\"\n",\
			       __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)",\
			       b_ ? b_ : "(null)");                         \
			harness_failed = 1;                                 \
		}                                                           \
	} while (0)

#define ASSERT_EQ_MEM(a, alen, b, blen)                                     \
	do {                                                                \
		size_t al_ = (alen), bl_ = (blen);                          \
		if (al_ != bl_ || memcmp((a), (b), al_) != 0) {             \
			printf("#   %s:%d: %s == %s failed (%zu vs %zu bytes)\n",\
			       __FILE__, __LINE__, #a, #b, al_, bl_);       \
			harness_failed = 1;                                 \
		}                                                           \
	} while (0)

typedef struct {
	const char *name;
	void (*fn)(void);
} harness_case;

#define TEST(fn) { #fn, fn }

static inline int harness_run(const harness_case *cases, size_t n, int argc,
			      char **argv)
{
	size_t planned = 0, i;
	int failures = 0, k = 0;

	for (i = 0; i < n; i++)
		if (argc < 2 || strcmp(argv[1], cases[i].name) == 0)
			planned++;
	printf("1..%zu\n", planned);
	for (i = 0; i < n; i++) {
		if (argc >= 2 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		harness_failed = 0;
		cases[i].fn();
		fflush(stdout);
		printf("%s %d - %s\n", harness_failed ? "not ok" : "ok", ++k,
		       cases[i].name);
		failures += harness_failed;
	}
	return failures ? 1 : 0;
}

#define HARNESS_MAIN(table)                                                 \
	int main(int argc, char **argv)                                     \
	{                                                                   \
		return harness_run(table, sizeof(table) / sizeof(table[0]), \
				   argc, argv);                             \
	}

#endif
