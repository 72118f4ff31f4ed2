/* SPDX-License-Identifier: MIT */
#ifndef VN_BASE_TRACE_H
#define VN_BASE_TRACE_H

#include <stdbool.h>

#include "base/compiler.h"

enum vn_trace_id {
#define VN_TRACE(name, desc) VN_TRACE_ID_##name,
#include "base/trace-events.h"
#undef VN_TRACE
	VN_TRACE__COUNT
};

/* One flag per trace point; see trace.c for why this is global. */
extern bool vn_trace_state[VN_TRACE__COUNT];

void vn_trace_emit(enum vn_trace_id id, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Name of a trace point, for listings and tests. */
const char *vn_trace_name(enum vn_trace_id id);

/*
 * Disabled tracing costs one predicted branch on a relaxed load. The format
 * is a literal at the call site, so -Wformat checks it.
 */
#define vn_trace(name, ...)                                                              \
	do {                                                                             \
		if (VN_UNLIKELY(__atomic_load_n(&vn_trace_state[VN_TRACE_ID_##name],     \
						__ATOMIC_RELAXED)))                      \
			vn_trace_emit(VN_TRACE_ID_##name, __VA_ARGS__);                  \
	} while (0)

#define vn_trace_is_on(name) \
	__atomic_load_n(&vn_trace_state[VN_TRACE_ID_##name], __ATOMIC_RELAXED)

#endif
