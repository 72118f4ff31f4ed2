/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk requests (virtio 1.2 §5.2.6): take a chain, copy its header
 * once, check it, hand it to the backend, and complete it with its status
 * byte when the backend is done.
 */
#include "devices/blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <linux/falloc.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>

#include <vnotify/loop.h>

#include "base/trace.h"
#include "devices/blk-backend.h"
#include "virtio/vdev.h"

#define SECTOR 512ull

/* Bytes of @iov (@n entries) from offset @off into @buf; returns bytes copied. */
static size_t iov_to_buf(const struct iovec *iov, unsigned int n, size_t off, void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		l -= off;
		if (l > len - done)
			l = len - done;
		memcpy((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + off, l);
		done += l;
		off = 0;
	}
	return done;
}

static size_t iov_from_buf(const struct iovec *iov, unsigned int n, const void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;

		memcpy(iov[i].iov_base, (const uint8_t *)buf + done, l);
		done += l;
	}
	return done;
}

/* Drop @bytes from the front of *@iov (*@n entries), in place. */
static void iov_skip_front(struct iovec **iov, unsigned int *n, size_t bytes)
{
	while (*n && bytes) {
		if ((*iov)->iov_len > bytes) {
			(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + bytes;
			(*iov)->iov_len -= bytes;
			return;
		}
		bytes -= (*iov)->iov_len;
		(*iov)++;
		(*n)--;
	}
	/* Leading empty entries (zero-length descriptors) carry nothing. */
	while (*n && (*iov)->iov_len == 0) {
		(*iov)++;
		(*n)--;
	}
}

/* Drop the last byte of @iov and return a pointer to it (@n > 0, bytes > 0). */
static uint8_t *iov_take_last_byte(struct iovec *iov, unsigned int *n)
{
	while (*n && iov[*n - 1].iov_len == 0)
		(*n)--;
	if (!*n)
		return NULL;
	iov[*n - 1].iov_len--;
	if (iov[*n - 1].iov_len == 0) {
		(*n)--;
		return iov[*n].iov_base;
	}
	return (uint8_t *)iov[*n - 1].iov_base + iov[*n - 1].iov_len;
}

bool vn_blk_has_feature(const struct vn_blk *blk, unsigned int bit)
{
	return __atomic_load_n(&blk->features, __ATOMIC_ACQUIRE) & (1ull << bit);
}

static struct blk_req *req_get(struct blk_queue *bq)
{
	struct blk_req *req = bq->free;

	if (req) {
		bq->free = req->next;
		req->next = NULL;
		req->elem.iov = req->iov;
		req->elem.iov_cap = bq->blk->iov_cap;
		req->done = 0;
		req->res = 0;
		req->dsync = false;
	}
	return req;
}

static void req_put(struct blk_queue *bq, struct blk_req *req)
{
	req->next = bq->free;
	bq->free = req;
}

static void stat_add(uint64_t *c, uint64_t v)
{
	__atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

/* Give @req back to the guest with @status. Context: queue run lock held. */
static void req_complete(struct blk_queue *bq, struct blk_req *req, uint8_t status,
			 uint32_t written)
{
	struct vn_blk *blk = bq->blk;
	struct vn_vq *vq = vn_vdev_queue(blk->vdev, bq->index);
	int r;

	if (__atomic_load_n(&blk->resetting, __ATOMIC_ACQUIRE)) {
		/* The driver reset the device: its rings are gone, write nothing. */
		vn_vq_abandon(vq, req->elem.head);
		req_put(bq, req);
		return;
	}
	*req->status = status;
	r = vn_vq_push(vq, req->elem.head, written);
	vn_trace(blk_complete, "dev=%s vq=%u head=%u status=%u push=%d", blk->name, bq->index,
		 req->elem.head, status, r);
	stat_add(&bq->stats.requests, 1);
	if (status != VIRTIO_BLK_S_OK)
		stat_add(&bq->stats.errors, 1);
	else if (req->op == BLK_OP_FLUSH)
		stat_add(&bq->stats.flushes, 1);
	bq->notify_pending = true;
	req_put(bq, req);
}

static void notify_locked(struct blk_queue *bq)
{
	struct vn_blk *blk = bq->blk;

	if (!bq->notify_pending)
		return;
	bq->notify_pending = false;
	if (__atomic_load_n(&blk->resetting, __ATOMIC_ACQUIRE))
		return;
	/* An unreadable ring broke the queue already (NEEDS_RESET): nothing more to do. */
	if (vn_vdev_notify_queue(blk->vdev, vn_vdev_queue(blk->vdev, bq->index)) < 0)
		return;
}

/* Status for a request the backend finished with @res. */
static void req_finish(struct blk_queue *bq, struct blk_req *req, int res)
{
	uint32_t written = 1;

	if (res < 0) {
		req_complete(bq, req, VIRTIO_BLK_S_IOERR, 1);
		return;
	}
	if (req->op == BLK_OP_READ) {
		stat_add(&bq->stats.bytes_read, req->len);
		written = (uint32_t)req->len + 1;
	} else if (req->op == BLK_OP_WRITE) {
		stat_add(&bq->stats.bytes_written, req->len);
	}
	req_complete(bq, req, VIRTIO_BLK_S_OK, written);
}

/* Advance @req's data past @bytes after a short transfer. */
static void req_advance(struct blk_req *req, size_t bytes)
{
	req->done += bytes;
	iov_skip_front(&req->data, &req->ndata, bytes);
}

static int resubmit(struct blk_queue *bq, struct blk_req *req)
{
	int r = bq->blk->be_ops->submit(bq, req);

	if (r < 0)
		return r;
	bq->in_flight++;
	stat_add(&bq->stats.in_flight, 1);
	bq->blk->be_ops->flush(bq);
	return 0;
}

/* xorshift64: the fault delay's jitter needs spread, not quality. */
static uint64_t jitter_next(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

/* Take one injected fault, if any. Return: the error to report, or 0. */
static int take_fault(struct vn_blk *blk, uint64_t *delay_ns)
{
	int err = 0;

	/* The hot path: no fault armed, no lock taken. Pairs with the release in inject. */
	if (!__atomic_load_n(&blk->fault_active, __ATOMIC_ACQUIRE)) {
		*delay_ns = 0;
		return 0;
	}
	pthread_mutex_lock(&blk->fault_lock);
	if (blk->fault.count) {
		blk->fault.count--;
		err = blk->fault.error;
	}
	*delay_ns = blk->fault.delay_ns;
	if (blk->fault.jitter_ns)
		*delay_ns += jitter_next(&blk->fault_rng) % (blk->fault.jitter_ns + 1);
	if (!blk->fault.count && !blk->fault.delay_ns && !blk->fault.jitter_ns)
		__atomic_store_n(&blk->fault_active, false, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&blk->fault_lock);
	return err;
}

/*
 * Hold @req until its due time. The list stays sorted by due time (a
 * jittered delay makes later completions due sooner), so the timer and a
 * release look at its head only. Context: queue run lock held.
 */
static void hold(struct blk_queue *bq, struct blk_req *req, uint64_t delay_ns)
{
	struct blk_req **pp = &bq->held;

	req->due_ns = vn_clock_ns() + delay_ns;
	while (*pp && (*pp)->due_ns <= req->due_ns)
		pp = &(*pp)->next;
	req->next = *pp;
	*pp = req;
	stat_add(&bq->stats.held, 1);
	/*
	 * A new head is due before everything held, so the timer moves to it.
	 * Only the queue's iothread reaps outside a drain, and it owns the timer.
	 */
	if (pp == &bq->held && bq->delay_timer)
		vn_timer_arm(bq->delay_timer, req->due_ns);
}

void vn_blk_req_done(struct blk_queue *bq, struct blk_req *req, int res)
{
	struct vn_blk *blk = bq->blk;
	uint64_t delay_ns;
	int fault;

	VN_BUG_ON(bq->in_flight == 0);
	bq->in_flight--;
	__atomic_fetch_sub(&bq->stats.in_flight, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&blk->resetting, __ATOMIC_ACQUIRE)) {
		vn_vq_abandon(vn_vdev_queue(blk->vdev, bq->index), req->elem.head);
		req_put(bq, req);
		return;
	}
	if ((req->op == BLK_OP_READ || req->op == BLK_OP_WRITE) && res >= 0 &&
	    req->done + (uint64_t)res < req->len) {
		/*
		 * A short transfer: carry on from where it stopped. Nothing at
		 * all means the image shrank under us (end of file): an error.
		 */
		if (res > 0) {
			req_advance(req, (size_t)res);
			if (resubmit(bq, req) == 0)
				return;
		}
		res = -EIO;
	}
	if (req->op == BLK_OP_FALLOC && res == -EOPNOTSUPP &&
	    (req->fl_mode & FALLOC_FL_ZERO_RANGE)) {
		/* tmpfs and some block devices lack ZERO_RANGE; a punched hole reads zeroes too. */
		__atomic_store_n(&blk->no_zero_range, true, __ATOMIC_RELAXED);
		req->fl_mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		if (resubmit(bq, req) == 0)
			return;
	}
	fault = take_fault(blk, &delay_ns);
	if (fault) {
		vn_trace(blk_fault, "dev=%s vq=%u head=%u result %d -> %d", blk->name, bq->index,
			 req->elem.head, res, fault);
		res = fault;
	}
	req->res = res;
	if (delay_ns && !__atomic_load_n(&blk->draining, __ATOMIC_ACQUIRE)) {
		hold(bq, req, delay_ns);
		return;
	}
	req_finish(bq, req, res);
}

uint64_t vn_blk_release_held_locked(struct blk_queue *bq, uint64_t now_ns)
{
	struct blk_req *req;

	while ((req = bq->held) && req->due_ns <= now_ns) {
		bq->held = req->next;
		__atomic_fetch_sub(&bq->stats.held, 1, __ATOMIC_RELAXED);
		req_finish(bq, req, req->res);
	}
	notify_locked(bq);
	return bq->held ? bq->held->due_ns : UINT64_MAX;
}

void vn_blk_reap_locked(struct blk_queue *bq, bool wait)
{
	bq->blk->be_ops->reap(bq, wait);
	notify_locked(bq);
}

/*
 * The guest broke the protocol (virtio 1.2 §5.2.6): say so, rate-limited,
 * and put the device into NEEDS_RESET. The chain is not given back (it may
 * have no status byte to write); the driver must reset the device. It is
 * abandoned, so it no longer counts as in flight: a drain (GET_VRING_BASE,
 * a memory table change, a reset) must not wait for it.
 */
static int bad_req(struct blk_queue *bq, struct blk_req *req, const char *why, uint64_t v)
{
	struct vn_blk *blk = bq->blk;

	vn_vq_abandon(vn_vdev_queue(blk->vdev, bq->index), req->elem.head);

	vn_log_limited(&blk->rl, VN_LOG_WARN, "blk", "%s: vq %u head %u: %s (%llu)", blk->name,
		       bq->index, req->elem.head, why, (unsigned long long)v);
	vn_trace(blk_bad_req, "dev=%s vq=%u head=%u %s", blk->name, bq->index, req->elem.head, why);
	req_put(bq, req);
	vn_vdev_set_needs_reset(blk->vdev);
	return -EINVAL;
}

/* Is [sector * 512, + bytes) inside the disk and aligned to the block size? */
static bool range_ok(const struct vn_blk *blk, uint64_t sector, uint64_t bytes)
{
	uint64_t off, end;

	if (vn_mul_overflow(sector, SECTOR, &off) || vn_add_overflow(off, bytes, &end))
		return false;
	if (end > blk->size)
		return false;
	return off % blk->blk_size == 0 && bytes % blk->blk_size == 0;
}

static int submit(struct blk_queue *bq, struct blk_req *req, bool *submitted)
{
	struct vn_blk *blk = bq->blk;
	int r;

	vn_trace(blk_req, "dev=%s vq=%u head=%u op=%d off=%llu len=%llu", blk->name, bq->index,
		 req->elem.head, (int)req->op, (unsigned long long)req->offset,
		 (unsigned long long)req->len);
	r = blk->be_ops->submit(bq, req);
	if (r < 0) {
		vn_log_limited(&blk->rl, VN_LOG_ERR, "blk", "%s: vq %u: submit failed: %s",
			       blk->name, bq->index, vn_strerror(r));
		req_complete(bq, req, VIRTIO_BLK_S_IOERR, 1);
		return 0;
	}
	bq->in_flight++;
	stat_add(&bq->stats.in_flight, 1);
	*submitted = true;
	return 0;
}

static int start_rw(struct blk_queue *bq, struct blk_req *req, bool write, uint64_t sector)
{
	struct vn_blk *blk = bq->blk;
	struct vn_vq_elem *e = &req->elem;
	uint64_t len;

	if (write) {
		req->data = e->iov;
		req->ndata = e->out_num;
		iov_skip_front(&req->data, &req->ndata, sizeof(struct virtio_blk_outhdr));
		len = e->out_len - sizeof(struct virtio_blk_outhdr);
	} else {
		req->data = e->iov + e->out_num;
		len = e->in_len - 1u;
	}
	if (len % SECTOR)
		return bad_req(bq, req, "data length not a multiple of 512", len);
	if (write && blk->readonly) {
		req_complete(bq, req, VIRTIO_BLK_S_IOERR, 1);
		return 0;
	}
	if (!range_ok(blk, sector, len)) {
		vn_log_limited(&blk->rl, VN_LOG_DEBUG, "blk",
			       "%s: vq %u: sector %llu +%llu refused", blk->name, bq->index,
			       (unsigned long long)sector, (unsigned long long)len);
		req_complete(bq, req, VIRTIO_BLK_S_IOERR, 1);
		return 0;
	}
	req->op = write ? BLK_OP_WRITE : BLK_OP_READ;
	req->offset = sector * SECTOR;
	req->len = len;
	/* virtio 1.2 §5.2.6.2: without FLUSH the device is write-through. */
	req->dsync = write && !vn_blk_has_feature(blk, VIRTIO_BLK_F_FLUSH);
	if (len == 0) {
		req_finish(bq, req, 0);
		return 0;
	}
	return 1;
}

static int start_dwz(struct blk_queue *bq, struct blk_req *req, uint32_t type)
{
	struct vn_blk *blk = bq->blk;
	struct vn_vq_elem *e = &req->elem;
	struct virtio_blk_discard_write_zeroes seg;
	unsigned int bit =
		type == VIRTIO_BLK_T_DISCARD ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES;
	uint64_t sector, bytes;
	uint32_t flags, num;

	if (blk->readonly) {
		req_complete(bq, req, VIRTIO_BLK_S_IOERR, 1);
		return 0;
	}
	/* One segment per request (max_discard_seg = max_write_zeroes_seg = 1). */
	if (!vn_blk_has_feature(blk, bit) ||
	    e->out_len - sizeof(struct virtio_blk_outhdr) != sizeof(seg)) {
		req_complete(bq, req, VIRTIO_BLK_S_UNSUPP, 1);
		return 0;
	}
	/* Copy once, then check the copy (CONTRIBUTING.md "Guest input"). */
	iov_to_buf(e->iov, e->out_num, sizeof(struct virtio_blk_outhdr), &seg, sizeof(seg));
	sector = le64toh(seg.sector);
	num = le32toh(seg.num_sectors);
	flags = le32toh(seg.flags);
	/* §5.2.6.2: unknown flags, or UNMAP on a discard, are unsupported. */
	if ((type == VIRTIO_BLK_T_DISCARD && flags) ||
	    (flags & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)) {
		req_complete(bq, req, VIRTIO_BLK_S_UNSUPP, 1);
		return 0;
	}
	bytes = (uint64_t)num * SECTOR;
	if (num > blk->max_discard_sectors || !range_ok(blk, sector, bytes)) {
		req_complete(bq, req, VIRTIO_BLK_S_IOERR, 1);
		return 0;
	}
	req->op = BLK_OP_FALLOC;
	req->offset = sector * SECTOR;
	req->len = bytes;
	if (type == VIRTIO_BLK_T_DISCARD || (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ||
	    __atomic_load_n(&blk->no_zero_range, __ATOMIC_RELAXED))
		req->fl_mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	else
		req->fl_mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	if (num == 0) {
		req_finish(bq, req, 0);
		return 0;
	}
	return 1;
}

static void get_id(struct blk_queue *bq, struct blk_req *req)
{
	struct vn_vq_elem *e = &req->elem;
	struct vn_blk *blk = bq->blk;
	size_t n;

	/* §5.2.6: up to 20 bytes, NUL-padded, not NUL-terminated when 20 long. */
	n = iov_from_buf(e->iov + e->out_num, e->in_num, blk->serial, sizeof(blk->serial));
	req->op = BLK_OP_READ;
	req_complete(bq, req, VIRTIO_BLK_S_OK, (uint32_t)n + 1);
}

/*
 * Check a popped request and start it. Return: 0 if it was completed or
 * submitted, -EINVAL if it was malformed (the device is NEEDS_RESET).
 */
static int req_start(struct blk_queue *bq, struct blk_req *req, bool *submitted)
{
	struct vn_blk *blk = bq->blk;
	struct vn_vq_elem *e = &req->elem;
	struct virtio_blk_outhdr hdr;
	uint32_t type;
	uint64_t sector;
	int r;

	if (e->out_len < sizeof(hdr))
		return bad_req(bq, req, "request header too short", e->out_len);
	if (e->in_len < 1)
		return bad_req(bq, req, "no status byte", 0);
	if (e->ndesc > blk->seg_max + 2u)
		return bad_req(bq, req, "more segments than seg_max", e->ndesc);
	iov_to_buf(e->iov, e->out_num, 0, &hdr, sizeof(hdr));
	type = le32toh(hdr.type);
	sector = le64toh(hdr.sector);
	req->status = iov_take_last_byte(e->iov + e->out_num, &e->in_num);
	req->ndata = e->in_num;
	req->op = BLK_OP_FLUSH;
	req->len = 0;

	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		r = start_rw(bq, req, type == VIRTIO_BLK_T_OUT, sector);
		break;
	case VIRTIO_BLK_T_FLUSH:
		req->offset = 0;
		r = 1;
		break;
	case VIRTIO_BLK_T_GET_ID:
		get_id(bq, req);
		r = 0;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		r = start_dwz(bq, req, type);
		break;
	default:
		req_complete(bq, req, VIRTIO_BLK_S_UNSUPP, 1);
		r = 0;
		break;
	}
	if (r <= 0)
		return r;
	return submit(bq, req, submitted);
}

static bool device_broken(struct vn_vdev *vdev)
{
	return vn_vdev_get_status(vdev) & VIRTIO_CONFIG_S_NEEDS_RESET;
}

/* Pop and start requests until the ring is empty. Return: 0, or -errno to stop. */
static int drain_ring(struct blk_queue *bq, struct vn_vq *vq, bool *submitted)
{
	struct vn_blk *blk = bq->blk;
	struct blk_req *req;
	int r;

	for (;;) {
		if (device_broken(blk->vdev))
			return -EIO;
		req = req_get(bq);
		if (!req) {
			/*
			 * Every request is in flight, so the driver has more chains
			 * out than its queue holds: it made a head available twice.
			 */
			if (vn_vq_avail_count(vq) > 0) {
				vn_log_limited(&blk->rl, VN_LOG_WARN, "blk",
					       "%s: vq %u: more requests than the queue size",
					       blk->name, bq->index);
				vn_vdev_set_needs_reset(blk->vdev);
				return -EINVAL;
			}
			return 0;
		}
		r = vn_vq_pop(vq, &req->elem);
		if (r <= 0) {
			req_put(bq, req);
			return r;
		}
		r = req_start(bq, req, submitted);
		if (r < 0)
			return r;
	}
}

void vn_blk_handle_queue(struct vn_vdev *vdev, struct vn_vq *vq)
{
	struct vn_blk *blk = vn_vdev_opaque(vdev);
	struct blk_queue *bq = &blk->queues[vn_vq_index(vq)];
	bool submitted = false;
	int r;

	if (vn_vq_index(vq) >= blk->nr_queues)
		return;
	do {
		vn_vq_disable_notify(vq);
		r = drain_ring(bq, vq, &submitted);
		if (r < 0)
			break;
	} while (vn_vq_enable_notify(vq) > 0);
	if (submitted)
		blk->be_ops->flush(bq);
	notify_locked(bq);
}
