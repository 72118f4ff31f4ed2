/* SPDX-License-Identifier: MIT */
#include "base/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/*
 * The log sink is process-wide on purpose: a process has one stderr and an
 * embedder installs one sink. Everything else lives in objects.
 */
static vn_log_sink_fn *log_sink;
static void *log_sink_opaque;
static int log_level = VN_LOG_INFO;

static const char *const level_names[] = {
	[VN_LOG_ERR] = "err",
	[VN_LOG_WARN] = "warn",
	[VN_LOG_INFO] = "info",
	[VN_LOG_DEBUG] = "debug",
};

uint64_t vn_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vn_log_set_sink(vn_log_sink_fn *fn, void *opaque)
{
	log_sink = fn;
	log_sink_opaque = opaque;
}

void vn_log_set_level(enum vn_log_level level)
{
	__atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

int vn_log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (s && strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

static void emit(enum vn_log_level level, const char *tag, const char *msg)
{
	if (log_sink) {
		log_sink(log_sink_opaque, level, tag, msg);
		return;
	}
	uint64_t now = vn_now_ns();
	fprintf(stderr, "[%6llu.%06llu] %s: %s: %s\n",
		(unsigned long long)(now / 1000000000ull),
		(unsigned long long)(now % 1000000000ull / 1000), level_names[level], tag, msg);
}

void vn_log_v(enum vn_log_level level, const char *tag, const char *fmt, va_list ap)
{
	char msg[512];
	bool trace = strcmp(tag, "trace") == 0;

	if (!trace && (int)level > __atomic_load_n(&log_level, __ATOMIC_RELAXED))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	emit(level, tag, msg);
}

void vn_log(enum vn_log_level level, const char *tag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vn_log_v(level, tag, fmt, ap);
	va_end(ap);
}

void vn_ratelimit_init(struct vn_ratelimit *rl, unsigned int burst_per_sec)
{
	pthread_mutex_init(&rl->lock, NULL);
	rl->window_start_ns = 0;
	rl->burst = burst_per_sec;
	rl->used = 0;
	rl->suppressed = 0;
	rl->nkeys = 0;
}

void vn_ratelimit_destroy(struct vn_ratelimit *rl)
{
	pthread_mutex_destroy(&rl->lock);
}

/* Is @key new in this window? Then remember it (while there is room). */
static bool key_is_new(struct vn_ratelimit *rl, uint64_t key)
{
	if (!key)
		return false;
	for (unsigned int i = 0; i < rl->nkeys; i++)
		if (rl->keys[i] == key)
			return false;
	if (rl->nkeys == VN_RATELIMIT_KEYS)
		return false;
	rl->keys[rl->nkeys++] = key;
	return true;
}

static void __attribute__((format(printf, 5, 0)))
log_limited_v(struct vn_ratelimit *rl, uint64_t key, enum vn_log_level level, const char *tag,
	      const char *fmt, va_list ap)
{
	uint64_t now = vn_now_ns();
	unsigned long dropped = 0;
	bool ok, fresh;

	pthread_mutex_lock(&rl->lock);
	if (now - rl->window_start_ns >= 1000000000ull) {
		dropped = rl->suppressed;
		rl->suppressed = 0;
		rl->used = 0;
		rl->nkeys = 0;
		rl->window_start_ns = now;
	}
	fresh = key_is_new(rl, key);
	ok = rl->used < rl->burst || fresh;
	if (ok)
		rl->used++;
	else
		rl->suppressed++;
	pthread_mutex_unlock(&rl->lock);

	if (dropped)
		vn_log(level, tag, "%lu similar messages suppressed", dropped);
	if (ok)
		vn_log_v(level, tag, fmt, ap);
}

void vn_log_limited(struct vn_ratelimit *rl, enum vn_log_level level, const char *tag,
		    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_limited_v(rl, 0, level, tag, fmt, ap);
	va_end(ap);
}

void vn_log_limited_key(struct vn_ratelimit *rl, uint64_t key, enum vn_log_level level,
			const char *tag, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_limited_v(rl, key, level, tag, fmt, ap);
	va_end(ap);
}

uint64_t vn_log_reason_key(uint64_t seed, const char *text)
{
	uint64_t h = 0xcbf29ce484222325ull ^ seed; /* FNV-1a */
	bool hex = false;

	for (const char *p = text; *p; p++) {
		char c = *p;

		if (c == 'x' && p > text && p[-1] == '0') {
			hex = true;
			continue;
		}
		if ((c >= '0' && c <= '9') || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))))
			continue;
		hex = false;
		h = (h ^ (uint8_t)c) * 0x100000001b3ull;
	}
	return h ? h : 1;
}
