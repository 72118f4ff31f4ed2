/* SPDX-License-Identifier: MIT */
#ifndef VN_BASE_LOG_H
#define VN_BASE_LOG_H

#include <stdint.h>
#include <pthread.h>

#include <vnotify/log.h>

/*
 * Rate limit for guest- and peer-caused messages (CONTRIBUTING.md "Guest
 * input"): a hostile guest must not be able to flood the host's log.
 */
/* Reasons (keys) a window remembers: each is shown once even past the burst. */
#define VN_RATELIMIT_KEYS 64

struct vn_ratelimit {
	pthread_mutex_t lock;
	uint64_t window_start_ns;
	unsigned int burst;     /* lines allowed per window */
	unsigned int used;      /* lines emitted in this window */
	unsigned long suppressed;
	unsigned int nkeys;	/* keys seen in this window */
	uint64_t keys[VN_RATELIMIT_KEYS];
};

void vn_ratelimit_init(struct vn_ratelimit *rl, unsigned int burst_per_sec);
void vn_ratelimit_destroy(struct vn_ratelimit *rl);

/**
 * vn_log_limited() - vn_log() through a rate limit
 *
 * When a window opens after lines were dropped, the count of dropped lines is
 * logged first.
 */
void vn_log_limited(struct vn_ratelimit *rl, enum vn_log_level level, const char *tag,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/**
 * vn_log_limited_key() - vn_log_limited(), where @key names the reason
 *
 * A burst of one reason must not hide another: a line whose @key (not 0)
 * was not seen in this window is logged even past the burst, for up to
 * VN_RATELIMIT_KEYS distinct keys a window; so at most burst +
 * VN_RATELIMIT_KEYS lines a second. Key 0 is no key (vn_log_limited()).
 */
void vn_log_limited_key(struct vn_ratelimit *rl, uint64_t key, enum vn_log_level level,
			const char *tag, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/**
 * vn_log_reason_key() - a key for @text that ignores the values in it: the
 * digits, and the hex digits after "0x" ("region 3: size 0x1000" and
 * "region 5: size 0x0" are one reason); never 0
 */
uint64_t vn_log_reason_key(uint64_t seed, const char *text);

void vn_log_v(enum vn_log_level level, const char *tag, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC, the clock timers use). */
uint64_t vn_now_ns(void);

#endif
