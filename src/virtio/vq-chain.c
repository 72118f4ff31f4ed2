/* SPDX-License-Identifier: MIT */
/*
 * Walking a split ring's descriptor chain the guest wrote (virtio 1.2
 * §2.7.5, §2.7.13); vq-split.c takes the head from the avail ring.
 *
 * Everything read here is hostile (CONTRIBUTING.md "Guest input"): each
 * descriptor is copied once into a local, checked, and only the copy is used,
 * so a guest that rewrites the table while we walk it cannot make us use a
 * value we did not check. Every loop is bounded by the queue size.
 */
#include "virtio/vq.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>

#include "virtio/vq-priv.h"

/* A descriptor after the one copy out of guest memory, in host byte order. */
struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* Walk state shared by the direct and the indirect part of one chain. */
struct walk {
	struct vn_vq *vq;
	struct vn_vq_elem *elem;
	unsigned int visited;   /* buffer descriptors, direct plus indirect */
	uint64_t out_len, in_len;
};

static int read_desc(struct walk *w, uint64_t table, uint16_t i, struct desc *d)
{
	struct vring_desc raw;
	int r = vn_gmem_read(w->vq->mem, table + 16ull * i, &raw, sizeof(raw));

	/*
	 * Return r itself, not vq_fail()'s result: the caller then knows *d is
	 * written whenever we return 0 (gcc -O3 cannot see that vq_fail()
	 * returns the negative err it was given and warns maybe-uninitialized).
	 */
	if (r < 0) {
		(void)vq_fail(w->vq, r, "descriptor %u at 0x%llx outside guest memory", i,
			      (unsigned long long)table);
		return r;
	}
	d->addr = le64toh(raw.addr);
	d->len = le32toh(raw.len);
	d->flags = le16toh(raw.flags);
	d->next = le16toh(raw.next);
	return 0;
}

/* One buffer descriptor (not an indirect one) into the element's iovecs. */
static int add_buffer(struct walk *w, const struct desc *d)
{
	struct vn_vq *vq = w->vq;
	struct vn_vq_elem *e = w->elem;
	bool writable = d->flags & VRING_DESC_F_WRITE;
	unsigned int used = e->out_num + e->in_num;
	int n;

	/* CONTRIBUTING.md "Guest input"; virtio 1.2 §2.7.4.2: no readable after writable */
	if (!writable && e->in_num)
		return vq_fail(vq, -EINVAL, "head %u: readable descriptor after a writable one",
			       e->head);
	n = vn_gmem_map(vq->mem, d->addr, d->len, e->iov + used, e->iov_cap - used);
	if (n == -E2BIG)
		return vq_fail(vq, -E2BIG, "head %u: more than %u iovecs", e->head, e->iov_cap);
	if (n < 0)
		return vq_fail(vq, n, "head %u: buffer 0x%llx+0x%x outside guest memory", e->head,
			       (unsigned long long)d->addr, d->len);
	/* The used ring's len is 32 bits: a total that does not fit is bogus. */
	if (writable) {
		e->in_num += (unsigned int)n;
		w->in_len += d->len;
		if (w->in_len > UINT32_MAX)
			return vq_fail(vq, -EOVERFLOW, "head %u: writable total overflows",
				       e->head);
	} else {
		e->out_num += (unsigned int)n;
		w->out_len += d->len;
		if (w->out_len > UINT32_MAX)
			return vq_fail(vq, -EOVERFLOW, "head %u: readable total overflows",
				       e->head);
	}
	return 0;
}

/*
 * Counts a descriptor against the chain bound. Direct descriptors: at most
 * the ring's size (more means a loop). With an indirect table, the chain
 * may be as long as the largest queue the device supports (num_max), even
 * on a smaller ring: virtio 1.2 §2.7.5.3.1 asks the driver for no more than
 * the queue size, but devices advertise seg_max from their largest queue
 * (QEMU: queue_size - 2; we: at most num_max - 2), which the driver reads
 * before it sizes the ring, and Linux builds indirect tables of seg_max + 2
 * whatever ring size it got (a QEMU queue-size below 128). §2.7.4.1 lets a
 * device allow a reasonable limit of its own: ours is num_max.
 */
static int count(struct walk *w, unsigned int limit)
{
	if (++w->visited > limit)
		return vq_fail(w->vq, -ELOOP, "head %u: chain longer than %u descriptors",
			       w->elem->head, limit);
	return 0;
}

static int walk_indirect(struct walk *w, const struct desc *ind)
{
	struct vn_vq *vq = w->vq;
	uint32_t max;
	uint16_t i = 0;
	struct desc d;
	int r;

	/* virtio 1.2 §2.7.5.3.1 */
	if (!vq->indirect)
		return vq_fail(vq, -EINVAL, "head %u: indirect descriptor not negotiated",
			       w->elem->head);
	if (ind->flags & VRING_DESC_F_NEXT)
		return vq_fail(vq, -EINVAL, "head %u: indirect descriptor with NEXT",
			       w->elem->head);
	if (ind->len == 0 || ind->len % 16)
		return vq_fail(vq, -EINVAL, "head %u: indirect table length %u", w->elem->head,
			       ind->len);
	r = vn_gmem_check(vq->mem, ind->addr, ind->len);
	if (r < 0)
		return vq_fail(vq, r, "head %u: indirect table 0x%llx+0x%x outside guest memory",
			       w->elem->head, (unsigned long long)ind->addr, ind->len);
	max = ind->len / 16;
	for (uint32_t n = 0;; n++) {
		/* More entries visited than the table holds: a loop inside it. */
		if (n >= max)
			return vq_fail(vq, -ELOOP, "head %u: loop in the indirect table",
				       w->elem->head);
		r = count(w, vq->num_max);
		if (r < 0)
			return r;
		r = read_desc(w, ind->addr, i, &d);
		if (r < 0)
			return r;
		if (d.flags & VRING_DESC_F_INDIRECT)
			return vq_fail(vq, -EINVAL, "head %u: indirect inside indirect",
				       w->elem->head);
		r = add_buffer(w, &d);
		if (r < 0)
			return r;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= max)
			return vq_fail(vq, -EINVAL, "head %u: indirect next %u >= %u",
				       w->elem->head, d.next, max);
		i = d.next;
	}
}

static int walk_chain(struct walk *w)
{
	struct vn_vq *vq = w->vq;
	uint16_t i = w->elem->head;
	struct desc d;
	int r;

	for (;;) {
		r = read_desc(w, vq->desc, i, &d);
		if (r < 0)
			return r;
		/*
		 * virtio 1.2 §2.7.5.3.2: zero or more direct descriptors, then at
		 * most one indirect one, which ends the chain (no NEXT).
		 */
		if (d.flags & VRING_DESC_F_INDIRECT)
			return walk_indirect(w, &d);
		r = count(w, vq->num);
		if (r < 0)
			return r;
		r = add_buffer(w, &d);
		if (r < 0)
			return r;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		if (d.next >= vq->num)
			return vq_fail(vq, -EINVAL, "head %u: next %u >= queue size %u",
				       w->elem->head, d.next, vq->num);
		i = d.next;
	}
}

int vq_split_walk(struct vn_vq *vq, struct vn_vq_elem *elem)
{
	struct walk w = { .vq = vq, .elem = elem };
	int r = walk_chain(&w);

	if (r < 0)
		return r;
	elem->out_len = (uint32_t)w.out_len;
	elem->in_len = (uint32_t)w.in_len;
	elem->ndesc = (uint16_t)w.visited;
	return 0;
}

/*
 * Dirty-log the device-writable buffers of the chain at @head when it is
 * pushed: the device wrote them through the pop's iovecs, which gmem does
 * not see. All of them, not only the used length: a device may write more
 * than it reports (virtio 1.2 §2.7.8.2). The chain was checked at the pop
 * and the driver must leave it alone while the device owns it, so this walk
 * only has to stay bounded, not judge: on anything odd it stops quietly
 * (a page it misses is one a misbehaving driver changed under the device).
 */
void vq_split_log_chain(struct vn_vq *vq, uint16_t head)
{
	uint64_t table = vq->desc;
	unsigned int max = vq->num;
	bool in_indirect = false;
	uint16_t i = head;

	/* At most num buffer descriptors plus one indirect, as the pop allowed. */
	for (unsigned int n = 0; n <= vq->num; n++) {
		struct desc d;
		struct vring_desc raw;

		if (i >= max || vn_gmem_read(vq->mem, table + 16ull * i, &raw, sizeof(raw)) < 0)
			return;
		d.addr = le64toh(raw.addr);
		d.len = le32toh(raw.len);
		d.flags = le16toh(raw.flags);
		d.next = le16toh(raw.next);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (in_indirect || d.len == 0 || d.len % 16)
				return;
			in_indirect = true;
			table = d.addr;
			max = d.len / 16;
			i = 0;
			continue;
		}
		if (d.flags & VRING_DESC_F_WRITE)
			vn_gmem_log_mark(vq->mem, d.addr, d.len);
		if (!(d.flags & VRING_DESC_F_NEXT))
			return;
		i = d.next;
	}
}
