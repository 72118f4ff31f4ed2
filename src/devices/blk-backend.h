/* SPDX-License-Identifier: MIT */
#ifndef VN_DEVICES_BLK_BACKEND_H
#define VN_DEVICES_BLK_BACKEND_H

/*
 * Host I/O backends of virtio-blk: a small static const ops table each
 * (CONTRIBUTING.md "API shape"). A backend reads and writes the image for
 * requests prepared by blk-req.c and reports each finished submission through
 * vn_blk_req_done(); it never touches the guest's rings.
 *
 * Per-queue calls (queue_*, submit, flush, reap) run with the queue's run
 * lock held, so a backend's per-queue state needs no lock of its own. The
 * threads differ: submit and flush on the queue's owner (a vCPU or an
 * iothread), reap on the completion iothread or on a thread that drains.
 */

#include <stdbool.h>

#include "devices/blk.h"

struct blk_backend_ops {
	const char *name;
	/* Device-wide state (worker threads). Return 0 or -errno. */
	int (*open)(struct vn_blk *blk);
	void (*close)(struct vn_blk *blk);
	/* Per-queue state; sets bq->event_fd. Return 0 or -errno. */
	int (*queue_open)(struct blk_queue *bq);
	void (*queue_close)(struct blk_queue *bq);
	/*
	 * Queue one submission of @req (op, offset, len, data, done). It may be
	 * started only at the next flush. Return 0, or -errno if it cannot be
	 * queued (nothing was started then).
	 */
	int (*submit)(struct blk_queue *bq, struct blk_req *req);
	/* Start what submit queued (the end of a batch). */
	void (*flush)(struct blk_queue *bq);
	/*
	 * Call vn_blk_req_done() for every finished submission. With @wait,
	 * first block until at least one has finished (bq->in_flight > 0).
	 */
	void (*reap)(struct blk_queue *bq, bool wait);
	/*
	 * Optional: are completions ready to reap? Without a syscall: the
	 * loop calls it while it busy-polls, so a completion is not left
	 * waiting for the poll window to end. Caller holds the run lock.
	 */
	bool (*has_done)(struct blk_queue *bq);
};

extern const struct blk_backend_ops vn_blk_pool_ops;
/* NULL when built without liburing. */
extern const struct blk_backend_ops *const vn_blk_uring_ops;

/*
 * Pick and open the backend of @blk->cfg choice (auto: io_uring, falling
 * back to the pool with one log line) and open its per-queue state.
 * Return: 0 or -errno; on error nothing is left open.
 */
VN_MUST_CHECK int vn_blk_backend_open(struct vn_blk *blk, enum vn_blk_backend kind);

/* Close every queue's and the device's backend state; safe if never opened. */
void vn_blk_backend_close(struct vn_blk *blk);

/*
 * One pass of the synchronous part of a backend operation, for the pool
 * workers: preadv/pwritev2/fdatasync/fallocate of @req's current state.
 * Return: bytes transferred (0 for flush and fallocate) or -errno.
 */
int vn_blk_backend_do_sync(struct vn_blk *blk, struct blk_req *req);

#endif
