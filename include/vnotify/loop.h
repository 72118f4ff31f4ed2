/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_LOOP_H
#define VN_VNOTIFY_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/error.h>

/*
 * An event loop: epoll for fds, timerfd for timers, bottom halves for work
 * handed over from other threads, and optional busy polling before blocking.
 *
 * Thread rules. A loop is run by one thread at a time (its owner, usually an
 * iothread). Everything that changes the loop's fd handlers or timers must
 * run in that thread, or while no thread runs the loop; other threads hand
 * work over with vn_bh_schedule(), vn_loop_call() or vn_loop_wakeup(), which
 * are the only thread-safe calls besides vn_loop_stop() and
 * vn_loop_get_stats().
 */

struct vn_loop;
struct vn_bh;
struct vn_timer;

/* Events of an fd handler; a subset of epoll's. */
#define VN_LOOP_READ 0x1u
#define VN_LOOP_WRITE 0x4u
#define VN_LOOP_ERR 0x8u    /* reported, never requested */
#define VN_LOOP_HUP 0x10u   /* reported, never requested */

/**
 * typedef vn_fd_handler_fn - called when a watched fd is ready
 * @opaque: the pointer given to vn_loop_add_fd()
 * @events: VN_LOOP_* bits that are ready
 *
 * Context: the loop's thread. The handler may remove itself (or any other
 * handler) with vn_loop_del_fd(); a removed handler is not called again, even
 * for events already collected in the same iteration.
 */
typedef void vn_fd_handler_fn(void *opaque, uint32_t events);

/**
 * typedef vn_poll_fn - check for work without blocking, and do it
 * @opaque: the pointer given to vn_loop_add_fd()
 *
 * Called repeatedly while the loop busy-polls. It must not block. A poll
 * callback for an eventfd typically tries vn_notifier_test_and_clear() and
 * runs the work if it was set; one for a virtqueue looks at the avail index.
 *
 * Return: true if it found and handled work.
 */
typedef bool vn_poll_fn(void *opaque);

/**
 * typedef vn_poll_state_fn - busy polling of a handler starts or stops
 * @opaque: the pointer given to vn_loop_add_fd()
 * @started: true when the loop enters a poll window, false before it blocks
 *
 * Lets a poll callback's source stop signalling while it is polled (a
 * virtqueue asks its driver not to kick) and signal again before the loop
 * sleeps. After a stop the loop calls the poll callback once more, so work
 * that raced the re-enabling is not left waiting for a signal that was
 * never sent. A handler removed while polled is not told: its owner ends
 * its own poll.
 *
 * Context: the loop's thread.
 */
typedef void vn_poll_state_fn(void *opaque, bool started);

/** typedef vn_bh_fn - a bottom half or timer callback; runs in the loop's thread */
typedef void vn_bh_fn(void *opaque);

struct vn_loop_cfg {
	/* Name used in logs and traces; may be NULL. */
	const char *name;
	/*
	 * Upper bound of the adaptive busy-poll window in nanoseconds. 0 turns
	 * polling off: the loop blocks in epoll_wait() at once.
	 */
	uint64_t poll_max_ns;
};

/* Default poll_max_ns for iothreads: a little over one cross-CPU wake-up here. */
#define VN_LOOP_POLL_MAX_NS_DEFAULT 32768u

struct vn_loop_stats {
	uint64_t iterations;     /* calls of vn_loop_run_once() that did anything or waited */
	uint64_t epoll_waits;    /* times the loop blocked (or could block) in epoll_wait */
	uint64_t fd_dispatches;  /* fd handler calls */
	uint64_t poll_hits;      /* poll windows that found work */
	uint64_t poll_misses;    /* poll windows that ended without work */
	uint64_t bh_runs;        /* bottom halves and vn_loop_call() functions run */
	uint64_t timer_fires;    /* timer callbacks run */
	uint64_t poll_ns;        /* the current poll window */
};

/**
 * vn_loop_new() - create a loop
 * @cfg: options; NULL means polling off
 * @out: set to the new loop on success
 *
 * Return: 0, or -errno (epoll, timerfd or eventfd creation failed; -ENOMEM).
 */
VN_MUST_CHECK int vn_loop_new(const struct vn_loop_cfg *cfg, struct vn_loop **out);

/**
 * vn_loop_free() - destroy a loop; NULL is allowed
 *
 * Pending bottom halves and calls are dropped, not run. Handlers still
 * attached are detached; their fds belong to their callers and stay open.
 * Context: no thread runs the loop.
 */
void vn_loop_free(struct vn_loop *loop);

/**
 * vn_loop_add_fd() - watch an fd
 * @fd: the fd; the caller keeps ownership and must detach before closing it
 * @events: VN_LOOP_READ and/or VN_LOOP_WRITE
 * @handler: called when ready
 * @poll: optional busy-poll callback (NULL if this fd cannot be polled)
 * @opaque: passed to both
 *
 * Return: 0, -EEXIST if @fd is already watched, -EINVAL, or -errno from epoll.
 * Context: the loop's thread, or no thread runs the loop.
 */
VN_MUST_CHECK int vn_loop_add_fd(struct vn_loop *loop, int fd, uint32_t events,
				 vn_fd_handler_fn *handler, vn_poll_fn *poll, void *opaque);

/**
 * vn_loop_mod_fd() - change the events watched on @fd
 * Return: 0, -ENOENT if @fd is not watched, or -errno from epoll.
 * Context: as vn_loop_add_fd().
 */
VN_MUST_CHECK int vn_loop_mod_fd(struct vn_loop *loop, int fd, uint32_t events);

/**
 * vn_loop_del_fd() - stop watching @fd; safe from inside any handler
 * Return: 0, or -ENOENT if @fd is not watched.
 * Context: as vn_loop_add_fd().
 */
int vn_loop_del_fd(struct vn_loop *loop, int fd);

/**
 * vn_loop_set_poll_state() - tell @fd's handler when its busy polling starts
 * and stops (see vn_poll_state_fn); NULL: stop telling it
 *
 * Only a handler with a poll callback is ever told. A loop whose
 * poll_max_ns is 0 never polls, so it never calls @fn.
 * Return: 0, or -ENOENT if @fd is not watched.
 * Context: as vn_loop_add_fd().
 */
VN_MUST_CHECK int vn_loop_set_poll_state(struct vn_loop *loop, int fd, vn_poll_state_fn *fn);

/**
 * vn_loop_run_once() - one iteration: poll, wait, dispatch
 * @timeout_ns: longest time to block; 0 does not block, UINT64_MAX blocks
 *              until something happens
 *
 * Return: the number of handlers, bottom halves and timers run (0 on a
 * timeout), or -errno if epoll_wait failed.
 */
int vn_loop_run_once(struct vn_loop *loop, uint64_t timeout_ns);

/**
 * vn_loop_run() - iterate until vn_loop_stop()
 * Return: 0 once stopped, or -errno from an iteration.
 * Context: becomes the loop's thread until it returns.
 */
int vn_loop_run(struct vn_loop *loop);

/**
 * vn_loop_stop() - make vn_loop_run() return after the current iteration
 * Context: any thread.
 */
void vn_loop_stop(struct vn_loop *loop);

/**
 * vn_loop_wakeup() - make a blocked or polling loop iterate
 * Context: any thread.
 */
void vn_loop_wakeup(struct vn_loop *loop);

/**
 * vn_loop_call() - run @fn(@opaque) once in the loop's thread
 *
 * Allocates; for repeated hand-overs on a hot path use a struct vn_bh.
 * Return: 0, or -ENOMEM.
 * Context: any thread.
 */
VN_MUST_CHECK int vn_loop_call(struct vn_loop *loop, vn_bh_fn *fn, void *opaque);

/**
 * vn_loop_get_stats() - copy the loop's counters
 * Context: any thread (the values are read without a lock, each one exact).
 */
void vn_loop_get_stats(const struct vn_loop *loop, struct vn_loop_stats *out);

/**
 * vn_loop_in_thread() - is the caller the thread running @loop?
 */
bool vn_loop_in_thread(const struct vn_loop *loop);

/**
 * vn_bh_new() - create a bottom half bound to @loop
 * Return: 0, or -ENOMEM.
 */
VN_MUST_CHECK int vn_bh_new(struct vn_loop *loop, vn_bh_fn *fn, void *opaque,
			    struct vn_bh **out);

/**
 * vn_bh_schedule() - run the bottom half once in the loop's thread
 *
 * Scheduling an already scheduled bottom half does nothing: it still runs
 * once. It may be scheduled again from inside its own callback.
 * Context: any thread.
 */
void vn_bh_schedule(struct vn_bh *bh);

/**
 * vn_bh_free() - cancel and free; NULL is allowed
 * Context: the loop's thread, or no thread runs the loop.
 */
void vn_bh_free(struct vn_bh *bh);

/**
 * vn_timer_new() - create a timer on @loop (not armed)
 * Return: 0, or -ENOMEM.
 */
VN_MUST_CHECK int vn_timer_new(struct vn_loop *loop, vn_bh_fn *fn, void *opaque,
			       struct vn_timer **out);

/**
 * vn_timer_arm() - fire once at @deadline_ns (CLOCK_MONOTONIC, absolute)
 *
 * Re-arming an armed timer moves it. The callback never runs before the
 * deadline; timers due together run in deadline order.
 * Context: the loop's thread, or no thread runs the loop.
 */
void vn_timer_arm(struct vn_timer *t, uint64_t deadline_ns);

/** vn_timer_arm_in() - fire once @delay_ns from now */
void vn_timer_arm_in(struct vn_timer *t, uint64_t delay_ns);

/** vn_timer_cancel() - disarm; a disarmed timer does nothing */
void vn_timer_cancel(struct vn_timer *t);

/** vn_timer_is_armed() - is the timer pending? */
bool vn_timer_is_armed(const struct vn_timer *t);

/** vn_timer_free() - cancel and free; NULL is allowed */
void vn_timer_free(struct vn_timer *t);

/** vn_clock_ns() - CLOCK_MONOTONIC now, in nanoseconds: the timers' clock */
uint64_t vn_clock_ns(void);

#endif
