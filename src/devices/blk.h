/* SPDX-License-Identifier: MIT */
#ifndef VN_DEVICES_BLK_H
#define VN_DEVICES_BLK_H

/*
 * virtio-blk internals, shared by blk.c (device, config, lifecycle),
 * blk-req.c (request parsing and completion) and the backends.
 *
 * Threads and locks. Everything in a struct blk_queue is guarded by that
 * queue's run lock (vn_vdev_queue_lock()): the queue handler holds it while
 * it pops and submits (on a vCPU or the queue's iothread), the completion
 * iothread takes it to reap the backend and push completions, and reset or
 * drain take it to wait for the backend. So the backend's per-queue state
 * (an io_uring, a done list) has one user at a time. Counters that other
 * threads read are atomics. The device lock is never needed for a
 * completion, so a reset under the device lock can wait for one.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <vnotify/blk.h>
#include <vnotify/vq.h>

#include "base/log.h"

struct vn_vdev;
struct vn_timer;
struct blk_backend_ops;

enum blk_op {
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_FALLOC,
};

/*
 * One request, from pop to push. @iov holds the popped chain; @data points
 * at the data part of it (the header and status byte trimmed off) and is
 * advanced after a short transfer.
 */
struct blk_req {
	struct blk_queue *bq;
	struct blk_req *next; /* free list, pool FIFO, done or held list */
	struct vn_vq_elem elem;
	uint8_t *status; /* the status byte, in guest memory (borrowed) */
	enum blk_op op;
	int fl_mode;	 /* fallocate mode for BLK_OP_FALLOC */
	bool dsync;	 /* BLK_OP_WRITE: write through (FLUSH not negotiated) */
	uint64_t offset; /* byte offset in the image */
	uint64_t len;	 /* bytes to transfer, or of the fallocate range */
	uint64_t done;	 /* bytes transferred so far */
	struct iovec *data;
	unsigned int ndata;
	int res;	    /* backend result: bytes or -errno */
	uint64_t due_ns;    /* fault delay: when to complete */
	struct iovec iov[]; /* blk->iov_cap entries */
};

struct blk_queue {
	struct vn_blk *blk;
	unsigned int index;
	struct blk_req **reqs; /* all requests, blk->queue_size of them */
	struct blk_req *free;
	struct blk_req *held; /* completions delayed by a fault, by due time */
	unsigned int in_flight;		   /* submitted to the backend, not reaped */
	bool notify_pending;		   /* pushed since the last interrupt decision */
	void *be;			   /* the backend's per-queue state */
	int event_fd;			   /* readable when the backend has completions */
	bool watched;			   /* event_fd is attached to @it */
	struct vn_iothread *it;		   /* completion iothread; written under the run lock (a move) */
	struct vn_timer *delay_timer;	   /* @it only: releases held completions */
	struct vn_blk_stats stats;	   /* atomics (relaxed): read from any thread */
};

struct vn_blk {
	char name[32];
	struct vn_vdev *vdev;
	int fd;
	uint64_t size; /* bytes: capacity * 512 */
	bool readonly;
	bool direct;
	unsigned int nr_queues;
	unsigned int queue_size;
	unsigned int seg_max;
	unsigned int blk_size;
	unsigned int iov_cap;
	uint32_t max_discard_sectors;
	char serial[VN_BLK_SERIAL_LEN];
	unsigned int pool_threads;

	const struct blk_backend_ops *be_ops;
	void *be; /* the backend's device state */

	struct vn_iothread *it; /* the completion iothread of every queue, or NULL */
	bool own_it;

	uint64_t features;  /* negotiated; atomic */
	int resetting;	    /* atomic: completions are dropped, not pushed */
	int draining;	    /* atomic: fault delays are skipped */
	bool no_zero_range; /* atomic: fallocate ZERO_RANGE is refused here */

	bool fault_active; /* atomic: fault.count, .delay_ns or .jitter_ns is set */
	pthread_mutex_t fault_lock;
	struct vn_blk_fault fault;
	uint64_t fault_rng; /* the jitter's generator state; under fault_lock */

	struct vn_ratelimit rl; /* guest-caused messages */
	struct blk_queue *queues;
};

/* blk-state.c: the device type's state section (struct vn_vdev_ops state_*) */
size_t vn_blk_state_size(struct vn_vdev *vdev);
int vn_blk_state_save(struct vn_vdev *vdev, void *buf, size_t len);
int vn_blk_state_check(struct vn_vdev *vdev, unsigned int version, const void *buf, size_t len,
		       const char **field);
void vn_blk_state_load(struct vn_vdev *vdev, unsigned int version, const void *buf, size_t len);

/* blk-req.c */

/*
 * The queue handler (vn_vdev_queue_handler_fn).
 * Context: the queue's owner, with its run lock held.
 */
void vn_blk_handle_queue(struct vn_vdev *vdev, struct vn_vq *vq);

/*
 * The backend finished one submission of @req with @res (bytes or -errno).
 * Handles short transfers and fallbacks by resubmitting, fault injection,
 * then completes the request to the guest (or holds it for a fault delay).
 * Context: @req's queue run lock held; the completion iothread, or a
 * thread draining the queue.
 */
void vn_blk_req_done(struct blk_queue *bq, struct blk_req *req, int res);

/*
 * Reap what the backend has for @bq and send one interrupt if the guest
 * wants it. With @wait, block until at least one completion came (only
 * when bq->in_flight > 0).
 * Context: @bq's run lock held.
 */
void vn_blk_reap_locked(struct blk_queue *bq, bool wait);

/*
 * Complete every held (fault-delayed) request of @bq that is due at @now_ns
 * (all of them for UINT64_MAX). Return: the earliest due time left, or
 * UINT64_MAX.
 * Context: @bq's run lock held.
 */
uint64_t vn_blk_release_held_locked(struct blk_queue *bq, uint64_t now_ns);

/* Negotiated feature test for the request path. Context: any thread. */
bool vn_blk_has_feature(const struct vn_blk *blk, unsigned int bit);

#endif
