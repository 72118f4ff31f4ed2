/* SPDX-License-Identifier: MIT */
#include "virtio/vq.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
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

void vn_vq_ring_sizes(unsigned int num, uint64_t *desc, uint64_t *avail, uint64_t *used)
{
	*desc = 16ull * num;
	*avail = 6ull + 2ull * num;     /* flags, idx, ring[num], used_event */
	*used = 6ull + 8ull * num;      /* flags, idx, ring[num], avail_event */
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
	vn_vq_reset(vq);
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
	vq->inflight = 0;
	__atomic_store_n(&vq->broken, 0, __ATOMIC_RELAXED);
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

void vn_vq_set_features(struct vn_vq *vq, uint64_t f)
{
	vq->event_idx = f & (1ull << VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = f & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
}

static int check_rings(const struct vn_vq *vq, unsigned int num, uint64_t desc, uint64_t avail,
		       uint64_t used, const char **field)
{
	uint64_t ds, as, us;

	if (num == 0 || num > vq->num_max || (num & (num - 1))) {
		*field = "num";
		return -EINVAL;
	}
	/* virtio 1.2 §2.7: desc 16-, avail 2-, used 4-byte aligned */
	vn_vq_ring_sizes(num, &ds, &as, &us);
	if (desc % VRING_DESC_ALIGN_SIZE || vn_gmem_check(vq->mem, desc, ds)) {
		*field = "desc";
		return desc % VRING_DESC_ALIGN_SIZE ? -EINVAL : -EFAULT;
	}
	if (avail % VRING_AVAIL_ALIGN_SIZE || vn_gmem_check(vq->mem, avail, as)) {
		*field = "avail";
		return avail % VRING_AVAIL_ALIGN_SIZE ? -EINVAL : -EFAULT;
	}
	if (used % VRING_USED_ALIGN_SIZE || vn_gmem_check(vq->mem, used, us)) {
		*field = "used";
		return used % VRING_USED_ALIGN_SIZE ? -EINVAL : -EFAULT;
	}
	return 0;
}

int vn_vq_enable(struct vn_vq *vq)
{
	const char *field;
	int r = check_rings(vq, vq->num, vq->desc, vq->avail, vq->used, &field);

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
 * The guest's avail->idx. Acquire pairs with the driver's release (or
 * seq_cst) store of avail->idx, which it does after writing the ring entry
 * and the descriptors: what we read of them afterwards is what it wrote.
 */
int vq_read_avail_idx(struct vn_vq *vq, bool seqcst)
{
	uint16_t idx;
	int r;

	if (seqcst)
		r = vn_gmem_load_le16_seqcst(vq->mem, vq->avail + 2, &idx);
	else
		r = vn_gmem_load_le16_acquire(vq->mem, vq->avail + 2, &idx);
	if (r < 0)
		return vq_fail(vq, r, "avail ring at 0x%llx unreadable",
			       (unsigned long long)vq->avail);
	/* Every walk has a bound: avail advances by at most the queue size (CONTRIBUTING.md). */
	if ((uint16_t)(idx - vq->last_avail_idx) > vq->num)
		return vq_fail(vq, -EINVAL, "avail idx moved from %u to %u (size %u)",
			       vq->last_avail_idx, idx, vq->num);
	vq->shadow_avail_idx = idx;
	return 0;
}

int vn_vq_avail_count(struct vn_vq *vq)
{
	int r;

	if (!vq->ready || vn_vq_is_broken(vq))
		return -EIO;
	r = vq_read_avail_idx(vq, false);
	if (r < 0)
		return r;
	return (uint16_t)(vq->shadow_avail_idx - vq->last_avail_idx);
}

int vn_vq_push(struct vn_vq *vq, uint16_t head, uint32_t len)
{
	uint64_t at = vq->used + 4 + 8ull * (vq->used_idx & (vq->num - 1));
	struct vring_used_elem e = { .id = htole32(head), .len = htole32(len) };
	int r;

	/* A reset already forgot every chain: nothing is counted any more. */
	if (!vq->ready)
		return -EIO;
	/* Pushing what was never popped is a device bug, not a guest one. */
	VN_BUG_ON(vq->inflight == 0 || head >= vq->num);
	/*
	 * A broken ring takes nothing back, and the chain must not stay counted:
	 * whoever waits for the ring to drain (GET_VRING_BASE, a memory table
	 * change) would wait for a push that never comes. It is abandoned.
	 */
	if (vn_vq_is_broken(vq)) {
		vq->inflight--;
		vq->n_abandoned++;
		return -EIO;
	}
	r = vn_gmem_write(vq->mem, at, &e, sizeof(e));
	if (r < 0) {
		vq->inflight--;
		vq->n_abandoned++;
		return vq_fail(vq, r, "used ring at 0x%llx unwritable", (unsigned long long)vq->used);
	}
	vq->used_idx++;
	vq->inflight--;
	vq->n_push++;
	/*
	 * seq_cst store: as a release it pairs with the driver's acquire load of
	 * used->idx, so the element above is visible before the index; as
	 * seq_cst it is ordered before the used_event load in
	 * vn_vq_should_notify() (a store->load pair: the driver does the mirror,
	 * store used_event then re-read used->idx, with seq_cst too).
	 */
	r = vn_gmem_store_le16_seqcst(vq->mem, vq->used + 2, vq->used_idx);
	if (r < 0)
		return vq_fail(vq, r, "used idx unwritable");
	return 0;
}

void vn_vq_abandon(struct vn_vq *vq, uint16_t head)
{
	/* After a reset nothing is counted: the reset forgot the chain already. */
	if (!vq->ready)
		return;
	VN_BUG_ON(vq->inflight == 0 || head >= vq->num);
	vq->inflight--;
	vq->n_abandoned++;
}

int vn_vq_should_notify(struct vn_vq *vq)
{
	uint16_t v, old, new;
	bool valid;
	int r;

	if (!vq->ready || vn_vq_is_broken(vq))
		return 0;
	if (!vq->event_idx) {
		/* seq_cst: after our used->idx store in vn_vq_push() (see there). */
		r = vn_gmem_load_le16_seqcst(vq->mem, vq->avail, &v);
		if (r < 0)
			return vq_fail(vq, r, "avail flags unreadable");
		r = !(v & VRING_AVAIL_F_NO_INTERRUPT);
		goto out;
	}
	/* used_event sits after avail->ring[num]; seq_cst pairs as above. */
	r = vn_gmem_load_le16_seqcst(vq->mem, vq->avail + 4 + 2ull * vq->num, &v);
	if (r < 0)
		return vq_fail(vq, r, "used_event unreadable");
	valid = vq->signalled_used_valid;
	old = vq->signalled_used;
	new = vq->used_idx;
	/* virtio 1.2 §2.7.10: interrupt when used_idx passes used_event */
	r = !valid || vring_need_event(v, new, old);
out:
	if (r) {
		vq->signalled_used_valid = true;
		vq->signalled_used = vq->used_idx;
		vq->n_notify++;
	} else {
		vq->n_notify_suppressed++;
	}
	return r;
}

void vn_vq_disable_notify(struct vn_vq *vq)
{
	int r;

	if (!vq->ready || vn_vq_is_broken(vq) || vq->event_idx)
		return; /* with EVENT_IDX, leaving avail_event behind suppresses kicks */
	/* Relaxed: a hint; a kick that arrives anyway costs one extra run. */
	r = vn_gmem_store_le16_relaxed(vq->mem, vq->used, VRING_USED_F_NO_NOTIFY);
	if (r < 0)
		vq_fail(vq, r, "used flags unwritable");
}

int vn_vq_enable_notify(struct vn_vq *vq)
{
	int r;

	if (!vq->ready || vn_vq_is_broken(vq))
		return -EIO;
	/*
	 * seq_cst store, then the seq_cst load of avail->idx below: the
	 * store->load order that pairs with the driver's "store avail->idx,
	 * then load avail_event / used->flags" (both seq_cst). Either the driver
	 * sees notifications on and kicks, or we see its new entry here.
	 */
	if (vq->event_idx)
		r = vn_gmem_store_le16_seqcst(vq->mem, vq->used + 4 + 8ull * vq->num,
					      vq->last_avail_idx);
	else
		r = vn_gmem_store_le16_seqcst(vq->mem, vq->used, 0);
	if (r < 0)
		return vq_fail(vq, r, "used ring unwritable");
	r = vq_read_avail_idx(vq, true);
	if (r < 0)
		return r;
	return vq->shadow_avail_idx != vq->last_avail_idx;
}

void vn_vq_get_state(const struct vn_vq *vq, struct vn_vq_state *st)
{
	memset(st, 0, sizeof(*st));
	st->num = vq->num;
	st->ready = vq->ready;
	st->desc = vq->desc;
	st->avail = vq->avail;
	st->used = vq->used;
	st->last_avail_idx = vq->last_avail_idx;
	st->used_idx = vq->used_idx;
}

int vn_vq_check_state(const struct vn_vq *vq, const struct vn_vq_state *st, const char **field)
{
	uint16_t aidx, uidx;
	int r;

	if (!st->ready) {
		if (st->num == 0 || st->num > vq->num_max || (st->num & (st->num - 1))) {
			*field = "num";
			return -EINVAL;
		}
		if (st->last_avail_idx || st->used_idx) {
			*field = "last_avail_idx";
			return -EINVAL;
		}
		return 0;
	}
	r = check_rings(vq, st->num, st->desc, st->avail, st->used, field);
	if (r < 0)
		return r;
	/* More popped than pushed, by at most the queue size. */
	if ((uint16_t)(st->last_avail_idx - st->used_idx) > st->num) {
		*field = "used_idx";
		return -EINVAL;
	}
	/* The guest's indices must agree with ours (as QEMU checks on load). */
	r = vn_gmem_load_le16_acquire(vq->mem, st->avail + 2, &aidx);
	if (r < 0 || (uint16_t)(aidx - st->last_avail_idx) > st->num) {
		*field = "last_avail_idx";
		return -EINVAL;
	}
	r = vn_gmem_load_le16_acquire(vq->mem, st->used + 2, &uidx);
	if (r < 0 || uidx != st->used_idx) {
		*field = "used_idx";
		return -EINVAL;
	}
	return 0;
}

void vn_vq_set_state(struct vn_vq *vq, const struct vn_vq_state *st)
{
	vq->num = st->num;
	vq->ready = st->ready;
	vq->desc = st->desc;
	vq->avail = st->avail;
	vq->used = st->used;
	vq->last_avail_idx = st->last_avail_idx;
	vq->shadow_avail_idx = st->last_avail_idx;
	vq->used_idx = st->used_idx;
	vq->inflight = (uint16_t)(st->last_avail_idx - st->used_idx);
	/* Interrupt on the first push after a load: the guest may be waiting. */
	vq->signalled_used_valid = false;
	vq->signalled_used = st->used_idx;
	__atomic_store_n(&vq->broken, 0, __ATOMIC_RELAXED);
}
