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
struct vn_ratelimit {
	pthread_mutex_t lock;
	uint64_t window_start_ns;
	unsigned int burst;     /* lines allowed per window */
	unsigned int used;      /* lines emitted in this window */
	unsigned long suppressed;
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

void vn_log_v(enum vn_log_level level, const char *tag, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC, the clock timers use). */
uint64_t vn_now_ns(void);

#endif
