/* SPDX-License-Identifier: MIT */
/*
 * cpu.c - whether the 64-byte (AVX-512) versions of the scanner's string
 * loop and of the canonicaliser may run on this CPU.
 *
 * Both have a narrow version that runs everywhere and must give the same
 * results; the choice is made once per process, and tests may turn the
 * wide versions off to check the narrow ones on a CPU that has both.
 */
#include "engine_i.h"

#include <stdatomic.h>

static atomic_int wide_state = -1; /* -1 not yet asked, 0 no, 1 yes */

static int wide_detect(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	return __builtin_cpu_supports("avx512f") &&
	       __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vbmi2");
#else
	return 0;
#endif
}

int engine__cpu_wide(void)
{
	int w = atomic_load_explicit(&wide_state, memory_order_relaxed);

	if (w < 0) {
		/* Every thread that races here stores the same answer. */
		w = wide_detect();
		atomic_store_explicit(&wide_state, w, memory_order_relaxed);
	}
	return w;
}

int engine__cpu_wide_allow(int allow)
{
	int w = allow ? wide_detect() : 0;

	atomic_store_explicit(&wide_state, w, memory_order_relaxed);
	return w;
}
