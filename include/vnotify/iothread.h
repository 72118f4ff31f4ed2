/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_IOTHREAD_H
#define VN_VNOTIFY_IOTHREAD_H

#include <stdint.h>

#include <vnotify/error.h>
#include <vnotify/loop.h>

/*
 * An iothread: one thread running one vn_loop. Virtqueues attached to it are
 * owned by it while their host notifiers are ASSIGNED.
 */
struct vn_iothread;

struct vn_iothread_cfg {
	/* Thread name (at most 15 bytes reach the kernel); may be NULL. */
	const char *name;
	/* Passed to the loop: 0 turns busy polling off. */
	uint64_t poll_max_ns;
};

/** typedef vn_iothread_fn - work for vn_iothread_run_sync(); its result is returned */
typedef int vn_iothread_fn(void *opaque);

/**
 * vn_iothread_new() - create an iothread and its loop (not started)
 * Return: 0, or -errno.
 */
VN_MUST_CHECK int vn_iothread_new(const struct vn_iothread_cfg *cfg, struct vn_iothread **out);

/**
 * vn_iothread_start() - start the thread
 * Return: 0, -EALREADY if it runs, or -errno from pthread_create.
 */
VN_MUST_CHECK int vn_iothread_start(struct vn_iothread *it);

/**
 * vn_iothread_run_sync() - run @fn(@opaque) on the iothread and wait for it
 *
 * Called from the iothread itself, it runs @fn directly. If the thread is
 * not running, or has stopped taking calls because it is stopping, @fn runs
 * in the caller's thread (nobody else can touch the loop then). Either way
 * @fn runs exactly once: the call allocates nothing and cannot fail, so
 * teardown paths may rely on it.
 *
 * Return: what @fn returned.
 * Context: any thread; never while holding a lock @fn or the iothread's
 * other handlers may take.
 */
int vn_iothread_run_sync(struct vn_iothread *it, vn_iothread_fn *fn, void *opaque);

/**
 * vn_iothread_run_sync_void() - vn_iothread_run_sync() for work without a result
 *
 * Same rules: runs @fn(@opaque) exactly once, on the iothread if it takes
 * calls, else in the caller; cannot fail. For teardown and barriers, where
 * there is nothing to report.
 * Context: as vn_iothread_run_sync().
 */
void vn_iothread_run_sync_void(struct vn_iothread *it, vn_bh_fn *fn, void *opaque);

/**
 * vn_iothread_stop() - stop the loop and join the thread
 *
 * Calls queued with vn_iothread_run_sync() before the stop still run.
 * Stopping a stopped iothread does nothing.
 * Context: any thread but the iothread itself.
 */
void vn_iothread_stop(struct vn_iothread *it);

/**
 * vn_iothread_free() - stop if needed, free the loop and the thread; NULL ok
 */
void vn_iothread_free(struct vn_iothread *it);

/** vn_iothread_loop() - the iothread's loop */
struct vn_loop *vn_iothread_loop(struct vn_iothread *it);

/** vn_iothread_name() - the name given at creation ("iothread" if none) */
const char *vn_iothread_name(const struct vn_iothread *it);

/**
 * vn_iothread_cpu_ns() - CPU time the thread has used so far
 * Return: nanoseconds, or 0 if the thread is not running.
 */
uint64_t vn_iothread_cpu_ns(const struct vn_iothread *it);

#endif
