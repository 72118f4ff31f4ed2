/* SPDX-License-Identifier: MIT */
#ifndef VN_BASE_COMPILER_H
#define VN_BASE_COMPILER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <vnotify/error.h>

#define VN_LIKELY(x) __builtin_expect(!!(x), 1)
#define VN_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define VN_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define vn_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/*
 * A broken internal invariant (CONTRIBUTING.md "Errors": a programmer error).
 * Never use it on a value a guest or a peer controls: those return -errno
 * instead.
 */
#define VN_BUG_ON(cond)                                                              \
	do {                                                                         \
		if (VN_UNLIKELY(cond)) {                                             \
			fprintf(stderr, "vnotify: BUG at %s:%d: %s\n", __FILE__, __LINE__, \
				#cond);                                              \
			abort();                                                     \
		}                                                                    \
	} while (0)

/* true when a + b overflows; *res holds the wrapped sum either way */
#define vn_add_overflow(a, b, res) __builtin_add_overflow(a, b, res)
#define vn_mul_overflow(a, b, res) __builtin_mul_overflow(a, b, res)

#endif
