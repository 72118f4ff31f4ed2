/* SPDX-License-Identifier: MIT */
#include "virtio/vq.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_ring.h>

#include "base/trace.h"
#include "virtio/vq-priv.h"

/* Guest-caused messages go through the owner's rate limit (CONTRIBUTING.md). */
static void vq_log(struct vn_vq *vq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vq_log(struct vn_vq *vq, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (vq->rl)
		vn_log_limited(vq->rl, VN_LOG_WARN, "vq", "%s", msg);
	else
		vn_log(VN_LOG_WARN, "vq", "%s", msg);
}

void vn_vq_init(struct vn_vq *vq, const struct vn_gmem *mem, uint16_t index, uint16_t num_max,
		struct vn_ratelimit *rl)
{
	VN_BUG_ON(num_max == 0 || num_max > VN_VQ_MAX_SIZE || (num_max & (num_max - 1)));
	memset(vq, 0, sizeof(*vq));
	vq->mem = mem;
	vq->index = index;
	vq->num_max = num_max;
	vq->rl = rl;
	vq->ops = &vq_split_ops;
	vn_vq_reset(vq);
}

void vn_vq_set_mem(struct vn_vq *vq, const struct vn_gmem *mem)
{
	VN_BUG_ON(vq->ready);
	vq->mem = mem;
}

void vn_vq_set_error_handler(struct vn_vq *vq, vn_vq_error_fn *fn, void *opaque)
{
	vq->on_error = fn;
	vq->opaque = opaque;
}

void vn_vq_reset(struct vn_vq *vq)
{
	vq->num = vq->num_max;
	vq->desc = vq->avail = vq->used = 0;
	vq->ready = false;
	vq->event_idx = false;
	vq->indirect = false;
	vq->last_avail_idx = 0;
	vq->shadow_avail_idx = 0;
	vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_used_valid = false;
	vq->avail_wrap = vq->used_wrap = false;
	vq->inflight = 0;
	vq->polled = false;
	vq->ops = &vq_split_ops;
	memset(vq->busy, 0, sizeof(vq->busy));
	vq->ilog = NULL;
	free(vq->resubmit);
	vq->resubmit = NULL;
	vq->nr_resubmit = vq->resubmit_pos = 0;
	__atomic_store_n(&vq->broken, 0, __ATOMIC_RELAXED);
}

int vn_vq_set_inflight(struct vn_vq *vq, struct vn_vq_inflight_hdr *region,
		       const uint16_t *resubmit, unsigned int n, uint64_t counter)
{
	uint16_t *list = NULL;

	/* Right after vn_vq_set_state(): nothing popped, no bit set yet. */
	if (!vq->ready || n > vq->inflight || (n && !region))
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++) {
		if (resubmit[i] >= vq->num || vq_busy(vq, resubmit[i])) {
			memset(vq->busy, 0, sizeof(vq->busy));
			return -EINVAL;
		}
		vq_set_busy(vq, resubmit[i], true);
	}
	if (n) {
		list = malloc(n * sizeof(*list));
		if (!list) {
			memset(vq->busy, 0, sizeof(vq->busy));
			return -ENOMEM;
		}
		memcpy(list, resubmit, n * sizeof(*list));
	}
	free(vq->resubmit);
	vq->resubmit = list;
	vq->nr_resubmit = (uint16_t)n;
	vq->resubmit_pos = 0;
	/* Counted again as each is popped. */
	vq->inflight -= (uint16_t)n;
	vq->ilog = region;
	vq->ilog_counter = counter;
	return 0;
}

int vn_vq_set_num(struct vn_vq *vq, unsigned int num)
{
	if (vq->ready)
		return -EBUSY;
	if (num == 0 || num > vq->num_max || (num & (num - 1)))
		return -EINVAL;
	vq->num = (uint16_t)num;
	return 0;
}

int vn_vq_set_addr(struct vn_vq *vq, uint64_t desc, uint64_t avail, uint64_t used)
{
	if (vq->ready)
		return -EBUSY;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	return 0;
}

/*
 * The ops of @format, or NULL for one we cannot run (packed, until its
 * issue lands: no device offers VIRTIO_F_RING_PACKED, see vdev.c).
 */
static const struct vq_format_ops *format_ops(unsigned int format)
{
	return format == VN_VQ_FORMAT_SPLIT ? &vq_split_ops : NULL;
}

void vn_vq_set_features(struct vn_vq *vq, uint64_t f)
{
	/* A ring format we cannot run is never offered, so split is the only outcome today. */
	vq->ops = format_ops(VN_VQ_FORMAT_SPLIT);
	vq->event_idx = f & (1ull << VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = f & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
}

static int check_rings(const struct vn_vq *vq, const struct vq_format_ops *ops, unsigned int num,
		       uint64_t desc, uint64_t avail, uint64_t used, const char **field)
{
	static const char *const names[3] = { "desc", "avail", "used" };
	const uint64_t at[3] = { desc, avail, used };
	struct vq_layout l;

	/* No transport bound guest memory: there is nothing a ring could be in. */
	if (!vq->mem) {
		*field = "memory";
		return -ENXIO;
	}
	if (num == 0 || num > vq->num_max || ops->layout(num, &l) < 0) {
		*field = "num";
		return -EINVAL;
	}
	for (unsigned int i = 0; i < 3; i++) {
		if (at[i] % l.align[i]) {
			*field = names[i];
			return -EINVAL;
		}
		if (vn_gmem_check(vq->mem, at[i], l.size[i])) {
			*field = names[i];
			return -EFAULT;
		}
	}
	return 0;
}

int vn_vq_enable(struct vn_vq *vq)
{
	const char *field;
	int r = check_rings(vq, vq->ops, vq->num, vq->desc, vq->avail, vq->used, &field);

	if (r < 0) {
		vq_log(vq, "vq %u: enable: bad %s ring (%s)",
			       vq->index, field, vn_strerror(r));
		return r;
	}
	vq->ready = true;
	return 0;
}

int vn_vq_is_broken(const struct vn_vq *vq)
{
	/* Relaxed: other threads read it as a status hint, never to order data. */
	return __atomic_load_n(&vq->broken, __ATOMIC_RELAXED);
}

unsigned int vn_vq_index(const struct vn_vq *vq)
{
	return vq->index;
}

unsigned int vn_vq_size(const struct vn_vq *vq)
{
	return vq->num;
}

bool vn_vq_is_ready(const struct vn_vq *vq)
{
	return vq->ready && !vn_vq_is_broken(vq);
}

int vq_fail(struct vn_vq *vq, int err, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The first error wins; later ones (there should be none) stay quiet. */
	if (vn_vq_is_broken(vq))
		return err;
	__atomic_store_n(&vq->broken, err, __ATOMIC_RELAXED);
	vq_log(vq, "vq %u: guest error: %s (%s)", vq->index, msg,
		       vn_strerror(err));
	vn_trace(vq_needs_reset, "vq=%u err=%d %s", vq->index, err, msg);
	if (vq->on_error)
		vq->on_error(vq->opaque, vq, err);
	return err;
}

/*
 * The public ring API: the gate every format shares (ready, not broken),
 * then the format's op. One indirect call per operation; its target never
 * changes while the queue runs, so it is predicted.
 */
int vn_vq_avail_count(struct vn_vq *vq)
{
	if (!vq->ready || vn_vq_is_broken(vq))
		return -EIO;
	return vq->ops->avail_count(vq);
}

int vn_vq_check_next_avail(const struct vn_vq *vq, uint16_t next)
{
	if (!vq->ready || vn_vq_is_broken(vq))
		return -EIO;
	return vq->ops->check_next_avail(vq, next);
}

int vn_vq_pop(struct vn_vq *vq, struct vn_vq_elem *elem)
{
	elem->out_num = elem->in_num = 0;
	elem->out_len = elem->in_len = 0;
	elem->ndesc = 0;
	if (!vq->ready || vn_vq_is_broken(vq))
		return -EIO;
	return vq->ops->pop(vq, elem);
}

int vn_vq_push(struct vn_vq *vq, uint16_t head, uint32_t len)
{
	/* A reset already forgot every chain: nothing is counted any more. */
	if (!vq->ready)
		return -EIO;
	/* Pushing what was never popped is a device bug, not a guest one. */
	VN_BUG_ON(vq->inflight == 0 || head >= vq->num);
	/*
	 * The device wrote the chain's buffers through the pop's iovecs, which
	 * gmem does not see: log them now, before the chain goes back.
	 */
	if (VN_UNLIKELY(vn_gmem_log_is_enabled(vq->mem)))
		vq->ops->log_chain(vq, head);
	/*
	 * A broken ring takes nothing back, and the chain must not stay counted:
	 * whoever waits for the ring to drain (GET_VRING_BASE, a memory table
	 * change) would wait for a push that never comes. It is abandoned.
	 */
	vq_set_busy(vq, head, false);
	if (vn_vq_is_broken(vq)) {
		vq->inflight--;
		vq->n_abandoned++;
		return -EIO;
	}
	return vq->ops->push(vq, head, len);
}

void vn_vq_abandon(struct vn_vq *vq, uint16_t head)
{
	/* After a reset nothing is counted: the reset forgot the chain already. */
	if (!vq->ready)
		return;
	VN_BUG_ON(vq->inflight == 0 || head >= vq->num);
	/* The device may have written part of it: the log must still say so. */
	if (VN_UNLIKELY(vn_gmem_log_is_enabled(vq->mem)))
		vq->ops->log_chain(vq, head);
	/*
	 * The inflight region keeps it marked: the chain was never finished, so
	 * a backend that takes over redoes it.
	 */
	vq_set_busy(vq, head, false);
	vq->inflight--;
	vq->n_abandoned++;
}

int vn_vq_should_notify(struct vn_vq *vq)
{
	if (!vq->ready || vn_vq_is_broken(vq))
		return 0;
	return vq->ops->should_notify(vq);
}

void vn_vq_disable_notify(struct vn_vq *vq)
{
	if (!vq->ready || vn_vq_is_broken(vq))
		return;
	vq->ops->disable_notify(vq);
}

int vn_vq_enable_notify(struct vn_vq *vq)
{
	int r;

	if (!vq->ready || vn_vq_is_broken(vq))
		return -EIO;
	if (!vq->polled)
		return vq->ops->enable_notify(vq);
	/*
	 * The queue's thread polls the ring: kicks stay off until
	 * vn_vq_poll_end(), which publishes the enable. The re-check stays, so
	 * the handler's drain loop works unchanged.
	 */
	r = vq->ops->avail_count(vq);
	return r < 0 ? r : r > 0;
}

void vn_vq_poll_begin(struct vn_vq *vq)
{
	if (!vq->ready || vn_vq_is_broken(vq) || vq->polled)
		return;
	vq->polled = true;
	vq->ops->disable_notify(vq);
}

int vn_vq_poll_end(struct vn_vq *vq)
{
	if (!vq->polled)
		return 0;
	vq->polled = false;
	if (!vq->ready || vn_vq_is_broken(vq))
		return 0;
	return vq->ops->enable_notify(vq);
}

bool vn_vq_is_polled(const struct vn_vq *vq)
{
	return vq->polled;
}

void vn_vq_get_state(const struct vn_vq *vq, struct vn_vq_state *st)
{
	memset(st, 0, sizeof(*st));
	st->format = vq->ops == &vq_split_ops ? VN_VQ_FORMAT_SPLIT : VN_VQ_FORMAT_PACKED;
	st->num = vq->num;
	st->ready = vq->ready;
	st->desc = vq->desc;
	st->avail = vq->avail;
	st->used = vq->used;
	vq->ops->get_pos(vq, st);
}

int vn_vq_check_state(const struct vn_vq *vq, const struct vn_vq_state *st, const char **field)
{
	const struct vq_format_ops *ops = format_ops(st->format);
	int r;

	if (!ops) {
		*field = "format";
		return -EINVAL;
	}
	if (!st->ready) {
		struct vq_layout l;

		if (st->num == 0 || st->num > vq->num_max || ops->layout(st->num, &l) < 0) {
			*field = "num";
			return -EINVAL;
		}
		/* A queue the driver never enabled has not moved. */
		if (st->last_avail_idx || st->used_idx || st->avail_wrap || st->used_wrap) {
			*field = "last_avail_idx";
			return -EINVAL;
		}
		return 0;
	}
	r = check_rings(vq, ops, st->num, st->desc, st->avail, st->used, field);
	if (r < 0)
		return r;
	return ops->check_state(vq, st, field);
}

void vn_vq_set_state(struct vn_vq *vq, const struct vn_vq_state *st)
{
	vq->ops = format_ops(st->format);
	VN_BUG_ON(!vq->ops); /* vn_vq_check_state() refused it */
	vq->num = st->num;
	vq->ready = st->ready;
	vq->desc = st->desc;
	vq->avail = st->avail;
	vq->used = st->used;
	vq->ops->set_pos(vq, st);
	/* The chains in flight before the load are not ours to push. */
	memset(vq->busy, 0, sizeof(vq->busy));
	vq->ilog = NULL;
	free(vq->resubmit);
	vq->resubmit = NULL;
	vq->nr_resubmit = vq->resubmit_pos = 0;
	__atomic_store_n(&vq->broken, 0, __ATOMIC_RELAXED);
}

unsigned int vn_vq_num_max(const struct vn_vq *vq)
{
	return vq->num_max;
}

unsigned int vn_vq_format(const struct vn_vq *vq)
{
	return vq->ops == &vq_split_ops ? VN_VQ_FORMAT_SPLIT : VN_VQ_FORMAT_PACKED;
}

void vn_vq_ring_addrs(const struct vn_vq *vq, uint64_t *desc, uint64_t *avail, uint64_t *used)
{
	*desc = vq->desc;
	*avail = vq->avail;
	*used = vq->used;
}

uint16_t vn_vq_last_avail(const struct vn_vq *vq)
{
	return vq->last_avail_idx;
}

unsigned int vn_vq_resubmit_pending(const struct vn_vq *vq)
{
	return (unsigned int)(vq->nr_resubmit - vq->resubmit_pos);
}

unsigned int vn_vq_inflight(const struct vn_vq *vq)
{
	return vq->inflight;
}

void vn_vq_get_stats(const struct vn_vq *vq, struct vn_vq_stats *out)
{
	out->pops = vq->n_pop;
	out->pushes = vq->n_push;
	out->notifies = vq->n_notify;
	out->notifies_suppressed = vq->n_notify_suppressed;
	out->abandoned = vq->n_abandoned;
}

/* vhost-user.rst: "vring descriptor index" (split), "... indices" (packed). */
#define PACKED_IDX_MASK 0x7fffu
#define PACKED_WRAP (1u << 15)

uint32_t vn_vq_vring_base(const struct vn_vq_state *st)
{
	if (st->format != VN_VQ_FORMAT_PACKED)
		return st->last_avail_idx;
	return (st->last_avail_idx & PACKED_IDX_MASK) | (st->avail_wrap ? PACKED_WRAP : 0) |
	       (uint32_t)((st->used_idx & PACKED_IDX_MASK) | (st->used_wrap ? PACKED_WRAP : 0))
		       << 16;
}

int vn_vq_set_vring_base(struct vn_vq_state *st, uint32_t base)
{
	switch (st->format) {
	case VN_VQ_FORMAT_SPLIT:
		if (base > UINT16_MAX)
			return -EINVAL; /* bits 16-31 are reserved (zero) */
		st->last_avail_idx = (uint16_t)base;
		return 0;
	case VN_VQ_FORMAT_PACKED:
		st->last_avail_idx = base & PACKED_IDX_MASK;
		st->avail_wrap = base & PACKED_WRAP;
		st->used_idx = (base >> 16) & PACKED_IDX_MASK;
		st->used_wrap = (base >> 16) & PACKED_WRAP;
		return 0;
	default:
		return -EINVAL;
	}
}
