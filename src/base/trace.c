/* SPDX-License-Identifier: MIT */
#include "base/trace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"

/*
 * Trace state is process-wide, like the log sink: trace points are switched
 * on by name from the environment or a command line, for the whole process.
 */
bool vn_trace_state[VN_TRACE__COUNT];

static const char *const trace_names[VN_TRACE__COUNT] = {
#define VN_TRACE(name, desc) [VN_TRACE_ID_##name] = #name,
#include "base/trace-events.h"
#undef VN_TRACE
};

const char *vn_trace_name(enum vn_trace_id id)
{
	return (unsigned int)id < VN_TRACE__COUNT ? trace_names[id] : "?";
}

void vn_trace_emit(enum vn_trace_id id, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	vn_log(VN_LOG_DEBUG, "trace", "%s %s", trace_names[id], msg);
}

static bool pattern_matches(const char *pat, size_t len, const char *name)
{
	if (len > 0 && pat[len - 1] == '*')
		return strncmp(pat, name, len - 1) == 0;
	return strlen(name) == len && strncmp(pat, name, len) == 0;
}

int vn_trace_enable(const char *patterns)
{
	int enabled = 0;
	const char *p = patterns;

	for (int i = 0; i < VN_TRACE__COUNT; i++)
		__atomic_store_n(&vn_trace_state[i], false, __ATOMIC_RELAXED);
	if (!patterns || !*patterns)
		return 0;

	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		int hits = 0;

		for (int i = 0; i < VN_TRACE__COUNT; i++) {
			if (len && pattern_matches(p, len, trace_names[i])) {
				if (!vn_trace_state[i])
					enabled++;
				__atomic_store_n(&vn_trace_state[i], true, __ATOMIC_RELAXED);
				hits++;
			}
		}
		if (len && !hits)
			return -EINVAL;
		p += len;
		if (*p == ',')
			p++;
	}
	return enabled;
}
