/* SPDX-License-Identifier: MIT */
/*
 * The io_uring backend: one ring per request queue. The queue's owner
 * prepares SQEs and submits them at the end of each batch; the ring's
 * completion eventfd (io_uring_register_eventfd) wakes the completion
 * iothread, which reaps the CQEs. Both sides hold the queue's run lock, so
 * the ring has one user at a time though the threads differ (a ring without
 * IORING_SETUP_SINGLE_ISSUER may be used from any thread).
 *
 * One hand-off per request: when the submitter is the queue's completion
 * iothread itself (the queue's notifier iothread given to the device as
 * that queue's completion iothread, as vnotify-vm does), the flush after a
 * batch also reaps the CQEs that are
 * already there (a buffered read that hits the page cache completes inside
 * io_uring_enter()), so the same thread pops, submits, completes and raises
 * the guest notifier. Only there: the fault-delay timer belongs to that
 * loop, and any other submitter (a vCPU) leaves completions to it.
 */
#include "devices/blk-backend.h"

#ifdef VN_HAVE_URING

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <liburing.h>

#include <vnotify/iothread.h>
#include <vnotify/loop.h>

struct uring_queue {
	struct io_uring ring;
	bool ring_ok;
	bool reaping; /* in reap_ready(): a resubmit's flush must not reap again */
	int efd;
};

static int uring_open(struct vn_blk *blk)
{
	return 0;
}

static void uring_close(struct vn_blk *blk)
{
}

/* Everything the device asks of the kernel must be there (FALLOCATE: Linux 5.6). */
static int probe_ops(struct io_uring *ring)
{
	static const int ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
				  IORING_OP_FALLOCATE};
	struct io_uring_probe *p = io_uring_get_probe_ring(ring);
	int r = 0;

	if (!p)
		return -ENOSYS;
	for (unsigned int i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!io_uring_opcode_supported(p, ops[i]))
			r = -ENOSYS;
	io_uring_free_probe(p);
	return r;
}

static void uring_queue_close(struct blk_queue *bq)
{
	struct uring_queue *uq = bq->be;

	if (!uq)
		return;
	if (uq->ring_ok)
		io_uring_queue_exit(&uq->ring);
	if (uq->efd >= 0)
		close(uq->efd);
	free(uq);
	bq->be = NULL;
	bq->event_fd = -1;
}

static int uring_queue_open(struct blk_queue *bq)
{
	struct uring_queue *uq = calloc(1, sizeof(*uq));
	int r;

	if (!uq)
		return -ENOMEM;
	uq->efd = -1;
	bq->be = uq;
	r = io_uring_queue_init(bq->blk->queue_size, &uq->ring, 0);
	if (r < 0)
		goto err;
	uq->ring_ok = true;
	r = probe_ops(&uq->ring);
	if (r < 0)
		goto err;
	uq->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (uq->efd < 0) {
		r = -errno;
		goto err;
	}
	r = io_uring_register_eventfd(&uq->ring, uq->efd);
	if (r < 0)
		goto err;
	bq->event_fd = uq->efd;
	return 0;

err:
	uring_queue_close(bq);
	return r;
}

static void submit_all(struct uring_queue *uq)
{
	int r;

	do {
		r = io_uring_submit(&uq->ring);
	} while (r == -EINTR || r == -EAGAIN);
}

static int uring_submit(struct blk_queue *bq, struct blk_req *req)
{
	struct uring_queue *uq = bq->be;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&uq->ring);
	int fd = bq->blk->fd;

	if (!sqe) {
		/* Not expected: the ring has a slot per request. Make room. */
		submit_all(uq);
		sqe = io_uring_get_sqe(&uq->ring);
		if (!sqe)
			return -EBUSY;
	}
	switch (req->op) {
	case BLK_OP_READ:
		io_uring_prep_readv(sqe, fd, req->data, req->ndata, req->offset + req->done);
		break;
	case BLK_OP_WRITE:
		io_uring_prep_writev2(sqe, fd, req->data, req->ndata, req->offset + req->done,
				      req->dsync ? RWF_DSYNC : 0);
		break;
	case BLK_OP_FLUSH:
		/* The io_uring fdatasync(). */
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_OP_FALLOC:
		io_uring_prep_fallocate(sqe, fd, req->fl_mode, req->offset, req->len);
		break;
	}
	io_uring_sqe_set_data(sqe, req);
	return 0;
}

/* Complete the CQEs that are there. Context: the queue's run lock. */
static void reap_ready(struct blk_queue *bq)
{
	struct uring_queue *uq = bq->be;
	struct io_uring_cqe *cqe;

	uq->reaping = true;
	while (io_uring_peek_cqe(&uq->ring, &cqe) == 0) {
		struct blk_req *req = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(&uq->ring, cqe);
		vn_blk_req_done(bq, req, res);
	}
	uq->reaping = false;
}

static void uring_flush(struct blk_queue *bq)
{
	struct uring_queue *uq = bq->be;

	if (!io_uring_sq_ready(&uq->ring))
		return;
	submit_all(uq);
	/* The eventfd still fires for these: the loop's next read finds nothing. */
	if (!uq->reaping && bq->it && vn_loop_in_thread(vn_iothread_loop(bq->it)))
		reap_ready(bq);
}

static void uring_reap(struct blk_queue *bq, bool wait)
{
	struct uring_queue *uq = bq->be;
	uint64_t cnt;
	int r;

	/* Clear first: a CQE posted after this read signals again. */
	if (read(uq->efd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN) {
		/* Nothing to do: the CQ ring is what counts. */
	}
	if (wait) {
		do {
			/* Submits anything still queued, then waits for one CQE. */
			r = io_uring_submit_and_wait(&uq->ring, 1);
		} while (r == -EINTR || r == -EAGAIN);
	}
	reap_ready(bq);
}

static bool uring_has_done(struct blk_queue *bq)
{
	struct uring_queue *uq = bq->be;

	/* the CQ tail, an acquire load of shared memory */
	return io_uring_cq_ready(&uq->ring) > 0;
}

static const struct blk_backend_ops uring_ops = {
	.name = "uring",
	.open = uring_open,
	.close = uring_close,
	.queue_open = uring_queue_open,
	.queue_close = uring_queue_close,
	.submit = uring_submit,
	.flush = uring_flush,
	.reap = uring_reap,
	.has_done = uring_has_done,
};

const struct blk_backend_ops *const vn_blk_uring_ops = &uring_ops;

#else

/* Built without liburing: the pool is the only backend. */
const struct blk_backend_ops *const vn_blk_uring_ops = NULL;

#endif
