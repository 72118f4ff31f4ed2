/* SPDX-License-Identifier: MIT */
#include "devices/blk-backend.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/uio.h>

#include "base/log.h"
#include "base/trace.h"

int vn_blk_backend_do_sync(struct vn_blk *blk, struct blk_req *req)
{
	ssize_t n;

	switch (req->op) {
	case BLK_OP_READ:
		n = preadv(blk->fd, req->data, (int)req->ndata, (off_t)(req->offset + req->done));
		break;
	case BLK_OP_WRITE:
		n = pwritev2(blk->fd, req->data, (int)req->ndata, (off_t)(req->offset + req->done),
			     req->dsync ? RWF_DSYNC : 0);
		break;
	case BLK_OP_FLUSH:
		n = fdatasync(blk->fd);
		break;
	case BLK_OP_FALLOC:
		n = fallocate(blk->fd, req->fl_mode, (off_t)req->offset, (off_t)req->len);
		break;
	default:
		return -EINVAL;
	}
	if (n < 0)
		return -errno;
	/* A transfer is at most 4 GiB - 1 bytes per chain, but preadv caps it lower. */
	return n > 0x7fffffff ? 0x7fffffff : (int)n;
}

static void close_queues(struct vn_blk *blk, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		blk->be_ops->queue_close(&blk->queues[i]);
}

static int open_with(struct vn_blk *blk, const struct blk_backend_ops *ops)
{
	unsigned int q;
	int r;

	blk->be_ops = ops;
	r = ops->open(blk);
	if (r < 0)
		goto err;
	for (q = 0; q < blk->nr_queues; q++) {
		r = ops->queue_open(&blk->queues[q]);
		if (r < 0)
			goto err_queues;
	}
	return 0;

err_queues:
	close_queues(blk, q);
	ops->close(blk);
err:
	blk->be_ops = NULL;
	return r;
}

int vn_blk_backend_open(struct vn_blk *blk, enum vn_blk_backend kind)
{
	int r;

	switch (kind) {
	case VN_BLK_BACKEND_POOL:
		r = open_with(blk, &vn_blk_pool_ops);
		break;
	case VN_BLK_BACKEND_URING:
		r = vn_blk_uring_ops ? open_with(blk, vn_blk_uring_ops) : -ENOSYS;
		break;
	case VN_BLK_BACKEND_AUTO:
		r = vn_blk_uring_ops ? open_with(blk, vn_blk_uring_ops) : -ENOSYS;
		if (r < 0) {
			/* A host resource error with a fallback: say it once (CONTRIBUTING.md "Errors"). */
			vn_log(VN_LOG_INFO, "blk",
			       "%s: io_uring unavailable (%s), using the thread pool", blk->name,
			       vn_strerror(r));
			r = open_with(blk, &vn_blk_pool_ops);
		}
		break;
	default:
		return -EINVAL;
	}
	if (r == 0)
		vn_trace(blk_backend, "dev=%s backend=%s queues=%u", blk->name, blk->be_ops->name,
			 blk->nr_queues);
	return r;
}

void vn_blk_backend_close(struct vn_blk *blk)
{
	if (!blk->be_ops)
		return;
	/* Workers first: none may still hold a request of a queue being closed. */
	blk->be_ops->close(blk);
	close_queues(blk, blk->nr_queues);
	blk->be_ops = NULL;
}
