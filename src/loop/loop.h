/* SPDX-License-Identifier: MIT */
#ifndef VN_LOOP_LOOP_H
#define VN_LOOP_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <vnotify/loop.h>

#include "base/notifier.h"

/*
 * Internal view of a loop, shared by loop.c, bh.c and timer.c. Everything
 * here is touched only by the loop's thread, except what is marked atomic or
 * guarded by bh_lock.
 */

struct vn_fd_handler {
	int fd;
	uint32_t events;
	vn_fd_handler_fn *handler;
	vn_poll_fn *poll;
	vn_poll_state_fn *poll_state;
	void *opaque;
	bool deleted;
	bool poll_started;            /* told started, not yet told stopped */
	struct vn_fd_handler *next;
};

struct vn_bh {
	struct vn_loop *loop;
	vn_bh_fn *fn;
	void *opaque;
	bool scheduled;   /* guarded by loop->bh_lock */
	bool oneshot;     /* a vn_loop_call(): freed after it runs */
	bool embedded;    /* in its owner's storage: never freed by the loop */
	struct vn_bh *next;
};

struct vn_timer {
	struct vn_loop *loop;
	vn_bh_fn *fn;
	void *opaque;
	uint64_t deadline_ns;
	bool armed;
	struct vn_timer *next;
};

struct vn_loop {
	char name[32];
	int epfd;
	int tfd;                      /* timerfd, CLOCK_MONOTONIC, absolute */
	struct vn_notifier wake;
	int wake_pending;             /* atomic: a wake-up is in flight */
	int stop;                     /* atomic */
	pthread_t thread;             /* valid while thread_set */
	int thread_set;               /* atomic */

	struct vn_fd_handler *handlers;
	struct vn_fd_handler *dead;   /* deleted during dispatch, freed after it */
	int dispatching;
	unsigned int npoll;           /* live handlers with a poll callback */

	pthread_mutex_t bh_lock;
	struct vn_bh *bh_head, *bh_tail;
	unsigned int bh_count;        /* queued bottom halves */
	int bh_pending;               /* atomic mirror of bh_head != NULL */
	unsigned int live_bhs;        /* guarded by bh_lock; must be 0 at free */

	struct vn_timer *timers;      /* armed timers, sorted by deadline */
	uint64_t tfd_deadline;        /* what the timerfd is set to (0: disarmed) */
	unsigned int live_timers;

	uint64_t poll_max_ns;
	uint64_t poll_ns;
	unsigned int poll_hit_streak;
	bool poll_started;            /* some handler was told started */

	struct vn_loop_stats stats;   /* written by the loop thread with atomic stores */
};

#define VN_LOOP_STAT_ADD(loop, field, n) \
	__atomic_store_n(&(loop)->stats.field, (loop)->stats.field + (n), __ATOMIC_RELAXED)

/*
 * bh.c: set up a bottom half in the caller's storage (a stack frame, a
 * struct). It needs no allocation, so scheduling it cannot fail; the loop
 * never frees it and does not touch it once its function has started, so
 * the owner may release the storage as soon as the function has signalled
 * completion. It is not counted in live_bhs: the owner must not let it die
 * while scheduled.
 */
void vn_bh_init_embedded(struct vn_loop *loop, struct vn_bh *bh, vn_bh_fn *fn, void *opaque);
/* bh.c: run every pending bottom half once; returns how many ran. */
int vn_loop_run_bhs(struct vn_loop *loop);
/* timer.c: run expired timers in deadline order; returns how many ran. */
int vn_loop_run_timers(struct vn_loop *loop, uint64_t now);
/* timer.c: earliest armed deadline, or UINT64_MAX. */
uint64_t vn_loop_next_deadline(const struct vn_loop *loop);
/* timer.c: consume a timerfd expiry. */
void vn_loop_timerfd_read(struct vn_loop *loop);

/* True when the loop is run by a thread other than the caller. */
bool vn_loop_owned_elsewhere(const struct vn_loop *loop);

#endif
