/* SPDX-License-Identifier: MIT */
/*
 * The split ring format (virtio 1.2 §2.7): the avail and used rings, the
 * notification decisions and the index checks of a load. The descriptor
 * walk itself is in vq-chain.c; what every format shares is in vq.c.
 */
#include "virtio/vq.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <linux/virtio_ring.h>

#include "virtio/vq-priv.h"

void vn_vq_ring_sizes(unsigned int num, uint64_t *desc, uint64_t *avail, uint64_t *used)
{
	*desc = 16ull * num;
	*avail = 6ull + 2ull * num;     /* flags, idx, ring[num], used_event */
	*used = 6ull + 8ull * num;      /* flags, idx, ring[num], avail_event */
}

static int split_layout(unsigned int num, struct vq_layout *l)
{
	/* §2.7: a power of 2 */
	if (num & (num - 1))
		return -EINVAL;
	vn_vq_ring_sizes(num, &l->size[0], &l->size[1], &l->size[2]);
	/* §2.7: desc 16-, avail 2-, used 4-byte aligned */
	l->align[0] = VRING_DESC_ALIGN_SIZE;
	l->align[1] = VRING_AVAIL_ALIGN_SIZE;
	l->align[2] = VRING_USED_ALIGN_SIZE;
	return 0;
}

/*
 * The guest's avail->idx. Acquire pairs with the driver's release (or
 * seq_cst) store of avail->idx, which it does after writing the ring entry
 * and the descriptors: what we read of them afterwards is what it wrote.
 */
static int read_avail_idx(struct vn_vq *vq, bool seqcst)
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

/*
 * Notification data of a split ring is the whole avail->idx. Acquire, as
 * read_avail_idx(); the shadow index is the queue thread's, so not kept.
 */
static int split_check_next_avail(const struct vn_vq *vq, uint16_t next)
{
	uint16_t idx;
	uint16_t ahead;

	if (vn_gmem_load_le16_acquire(vq->mem, vq->avail + 2, &idx) < 0)
		return -EFAULT;
	/* Ring indices wrap: "ahead" is a forward distance of less than half the space. */
	ahead = (uint16_t)(next - idx);
	return ahead != 0 && ahead < 0x8000 ? -ERANGE : 0;
}

static int split_avail_count(struct vn_vq *vq)
{
	int r = read_avail_idx(vq, false);

	if (r < 0)
		return r;
	return (uint16_t)(vq->shadow_avail_idx - vq->last_avail_idx);
}

/*
 * The inflight region: the spec's order, so that a backend taking over can
 * tell what we left. The stores are atomic only so that the compiler keeps
 * them in this order: whoever reads the region reads it after we died.
 */
static void ilog_popped(struct vn_vq *vq, uint16_t head)
{
	struct vn_vq_inflight_desc *d = &vq->ilog->desc[head];

	__atomic_store_n(&d->counter, vq->ilog_counter++, __ATOMIC_RELAXED);
	__atomic_store_n(&d->inflight, 1, __ATOMIC_RELEASE);
}

/* A chain the previous backend took and never finished, walked from its head. */
static int pop_resubmit(struct vn_vq *vq, struct vn_vq_elem *elem)
{
	int r;

	elem->head = vq->resubmit[vq->resubmit_pos++];
	if (vq->resubmit_pos == vq->nr_resubmit) {
		free(vq->resubmit);
		vq->resubmit = NULL;
		vq->nr_resubmit = vq->resubmit_pos = 0;
	}
	r = vq_split_walk(vq, elem);
	if (r < 0)
		return r;
	/* still marked in the region from before; its bit was set at load */
	vq->inflight++;
	vq->n_pop++;
	return 1;
}

static int split_pop(struct vn_vq *vq, struct vn_vq_elem *elem)
{
	uint16_t head;
	int r;

	if (VN_UNLIKELY(vq->nr_resubmit))
		return pop_resubmit(vq, elem);
	if (vq->last_avail_idx == vq->shadow_avail_idx) {
		r = read_avail_idx(vq, false);
		if (r < 0)
			return r;
		if (vq->last_avail_idx == vq->shadow_avail_idx)
			return 0;
	}
	/*
	 * A plain read is enough: the acquire load of avail->idx above (or in
	 * an earlier pop) ordered it after the driver's write of this entry.
	 */
	r = vn_gmem_read(vq->mem, vq->avail + 4 + 2ull * (vq->last_avail_idx & (vq->num - 1)),
			 &head, sizeof(head));
	if (r < 0)
		return vq_fail(vq, r, "avail ring unreadable");
	head = le16toh(head);
	if (head >= vq->num)
		return vq_fail(vq, -EINVAL, "avail entry %u: head %u >= queue size %u",
			       vq->last_avail_idx, head, vq->num);
	/* Offered again before we gave it back: pushing both would complete it twice. */
	if (vq_busy(vq, head))
		return vq_fail(vq, -EINVAL, "avail entry %u: head %u is already in flight",
			       vq->last_avail_idx, head);
	elem->head = head;
	r = vq_split_walk(vq, elem);
	if (r < 0)
		return r;
	vq_set_busy(vq, head, true);
	if (vq->ilog)
		ilog_popped(vq, head);
	vq->last_avail_idx++;
	vq->inflight++;
	vq->n_pop++;
	return 1;
}

static int split_push(struct vn_vq *vq, uint16_t head, uint32_t len)
{
	uint64_t at = vq->used + 4 + 8ull * (vq->used_idx & (vq->num - 1));
	struct vring_used_elem e = { .id = htole32(head), .len = htole32(len) };
	int r;

	if (vq->ilog)
		__atomic_store_n(&vq->ilog->last_batch_head, head, __ATOMIC_RELEASE);
	r = vn_gmem_write(vq->mem, at, &e, sizeof(e));
	if (r < 0) {
		/* The ring breaks: the chain is abandoned, as vn_vq_push() says. */
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
	 * split_should_notify() (a store->load pair: the driver does the mirror,
	 * store used_event then re-read used->idx, with seq_cst too).
	 */
	r = vn_gmem_store_le16_seqcst(vq->mem, vq->used + 2, vq->used_idx);
	if (r < 0)
		return vq_fail(vq, r, "used idx unwritable");
	/*
	 * Done in the region: the flag first, then used_idx. A crash between
	 * the used->idx store and here leaves used_idx behind the guest's,
	 * which tells the next backend last_batch_head's flag is stale.
	 */
	if (vq->ilog) {
		__atomic_store_n(&vq->ilog->desc[head].inflight, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&vq->ilog->used_idx, vq->used_idx, __ATOMIC_RELEASE);
	}
	return 0;
}

static int split_should_notify(struct vn_vq *vq)
{
	uint16_t v, old, new;
	bool valid;
	int r;

	if (!vq->event_idx) {
		/* seq_cst: after our used->idx store in split_push() (see there). */
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

static void split_disable_notify(struct vn_vq *vq)
{
	int r;

	/* Relaxed: a hint; a kick that arrives anyway costs one extra run. */
	if (vq->event_idx) {
		if (!vq->polled)
			return; /* leaving avail_event behind suppresses all but one kick */
		/*
		 * Polled: not even that one. The driver kicks when its avail idx
		 * passes avail_event (virtio 1.2 §2.7.10); one entry behind ours
		 * is passed only after 64K more, since the driver stays within a
		 * queue size of us. Refreshed on each run while polled.
		 */
		r = vn_gmem_store_le16_relaxed(vq->mem, vq->used + 4 + 8ull * vq->num,
					       (uint16_t)(vq->last_avail_idx - 1));
		if (r < 0)
			vq_fail(vq, r, "avail_event unwritable");
		return;
	}
	r = vn_gmem_store_le16_relaxed(vq->mem, vq->used, VRING_USED_F_NO_NOTIFY);
	if (r < 0)
		vq_fail(vq, r, "used flags unwritable");
}

static int split_enable_notify(struct vn_vq *vq)
{
	int r;

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
	r = read_avail_idx(vq, true);
	if (r < 0)
		return r;
	return vq->shadow_avail_idx != vq->last_avail_idx;
}

static int split_check_state(const struct vn_vq *vq, const struct vn_vq_state *st,
			     const char **field)
{
	uint16_t aidx, uidx;
	int r;

	/* More popped than pushed, by at most the queue size. */
	if ((uint16_t)(st->last_avail_idx - st->used_idx) > st->num) {
		*field = "used_idx";
		return -EINVAL;
	}
	/* A split ring has no wrap counters: a set one is a packed state. */
	if (st->avail_wrap || st->used_wrap) {
		*field = "wrap";
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

static void split_get_pos(const struct vn_vq *vq, struct vn_vq_state *st)
{
	st->last_avail_idx = vq->last_avail_idx;
	st->used_idx = vq->used_idx;
}

static void split_set_pos(struct vn_vq *vq, const struct vn_vq_state *st)
{
	vq->last_avail_idx = st->last_avail_idx;
	vq->shadow_avail_idx = st->last_avail_idx;
	vq->used_idx = st->used_idx;
	vq->inflight = (uint16_t)(st->last_avail_idx - st->used_idx);
	/* Interrupt on the first push after a load: the guest may be waiting. */
	vq->signalled_used_valid = false;
	vq->signalled_used = st->used_idx;
}

const struct vq_format_ops vq_split_ops = {
	.name = "split",
	.layout = split_layout,
	.pop = split_pop,
	.push = split_push,
	.log_chain = vq_split_log_chain,
	.should_notify = split_should_notify,
	.disable_notify = split_disable_notify,
	.enable_notify = split_enable_notify,
	.avail_count = split_avail_count,
	.check_next_avail = split_check_next_avail,
	.check_state = split_check_state,
	.get_pos = split_get_pos,
	.set_pos = split_set_pos,
};
