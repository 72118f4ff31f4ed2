/* SPDX-License-Identifier: MIT */
#include "guest/vdrv-ring.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_ring.h>

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

uint64_t vn_vdrv_ring_layout(unsigned int num, uint64_t base, uint64_t align, uint64_t *desc,
			     uint64_t *avail, uint64_t *used)
{
	*desc = base;
	*avail = base + 16ull * num;
	*used = align_up(*avail + 6 + 2ull * num, align);
	return *used + 6 + 8ull * num - base;
}

/* Ring field addresses. */
static uint64_t avail_flags(const struct vn_vdrv_ring *r)
{
	return r->cfg.avail;
}

static uint64_t avail_idx(const struct vn_vdrv_ring *r)
{
	return r->cfg.avail + 2;
}

static uint64_t avail_ring(const struct vn_vdrv_ring *r, uint16_t i)
{
	return r->cfg.avail + 4 + 2ull * (i & (r->num - 1));
}

static uint64_t used_event(const struct vn_vdrv_ring *r)
{
	return r->cfg.avail + 4 + 2ull * r->num;
}

static uint64_t used_flags(const struct vn_vdrv_ring *r)
{
	return r->cfg.used;
}

static uint64_t used_idx(const struct vn_vdrv_ring *r)
{
	return r->cfg.used + 2;
}

static uint64_t used_ring(const struct vn_vdrv_ring *r, uint16_t i)
{
	return r->cfg.used + 4 + 8ull * (i & (r->num - 1));
}

static uint64_t avail_event(const struct vn_vdrv_ring *r)
{
	return r->cfg.used + 4 + 8ull * r->num;
}

int vn_vdrv_ring_init(struct vn_vdrv_ring *ring, const struct vn_vdrv_ring_cfg *cfg)
{
	unsigned int num = cfg->num;
	uint64_t ds = 16ull * num, as = 6 + 2ull * num, us = 6 + 8ull * num;
	static const uint8_t zero[256];
	int r;

	memset(ring, 0, sizeof(*ring));
	if (!cfg->mem || num == 0 || num > 32768 || (num & (num - 1)) ||
	    (cfg->indirect && (cfg->max_indirect < 2 || cfg->max_indirect > num)))
		return -EINVAL;
	ring->cfg = *cfg;
	ring->num = (uint16_t)num;
	if (vn_gmem_check(cfg->mem, cfg->desc, ds) || vn_gmem_check(cfg->mem, cfg->avail, as) ||
	    vn_gmem_check(cfg->mem, cfg->used, us) ||
	    (cfg->indirect &&
	     vn_gmem_check(cfg->mem, cfg->indirect_area, 16ull * num * cfg->max_indirect)))
		return -EFAULT;
	/* Zero the rings: a fresh queue has every index at 0 (virtio 1.2 §2.7). */
	for (uint64_t off = 0; off < as; off += sizeof(zero)) {
		r = vn_gmem_write(cfg->mem, cfg->avail + off, zero,
				  as - off < sizeof(zero) ? as - off : sizeof(zero));
		if (r < 0)
			return r;
	}
	for (uint64_t off = 0; off < us; off += sizeof(zero)) {
		r = vn_gmem_write(cfg->mem, cfg->used + off, zero,
				  us - off < sizeof(zero) ? us - off : sizeof(zero));
		if (r < 0)
			return r;
	}
	ring->next = calloc(num, sizeof(ring->next[0]));
	ring->heads = calloc(num, sizeof(ring->heads[0]));
	if (!ring->next || !ring->heads) {
		vn_vdrv_ring_destroy(ring);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < num; i++)
		ring->next[i] = (uint16_t)(i + 1);
	ring->num_free = (uint16_t)num;
	ring->free_head = 0;
	ring->cb_enabled = true;
	return 0;
}

void vn_vdrv_ring_destroy(struct vn_vdrv_ring *ring)
{
	free(ring->next);
	free(ring->heads);
	ring->next = NULL;
	ring->heads = NULL;
}

unsigned int vn_vdrv_ring_num_free(const struct vn_vdrv_ring *ring)
{
	return ring->num_free;
}

static int write_desc(const struct vn_gmem *mem, uint64_t at, uint64_t addr, uint32_t len,
		      uint16_t flags, uint16_t next)
{
	struct vring_desc d = {
		.addr = htole64(addr),
		.len = htole32(len),
		.flags = htole16(flags),
		.next = htole16(next),
	};

	return vn_gmem_write(mem, at, &d, sizeof(d));
}

/* Take @n descriptors off the free list, linked through ring->next. */
static uint16_t alloc_chain(struct vn_vdrv_ring *ring, unsigned int n, uint16_t *last)
{
	uint16_t head = ring->free_head, i = head;

	for (unsigned int k = 1; k < n; k++)
		i = ring->next[i];
	*last = i;
	ring->free_head = ring->next[i];
	ring->num_free -= (uint16_t)n;
	return head;
}

int vn_vdrv_ring_add(struct vn_vdrv_ring *ring, const struct vn_vdrv_buf *out,
		     unsigned int out_n, const struct vn_vdrv_buf *in, unsigned int in_n,
		     void *token)
{
	const struct vn_gmem *mem = ring->cfg.mem;
	unsigned int total = out_n + in_n;
	bool indirect = ring->cfg.indirect && total > 1 && total <= ring->cfg.max_indirect;
	unsigned int need = indirect ? 1 : total;
	uint16_t head, last, i;
	int r;

	if (total == 0 || !token)
		return -EINVAL;
	if (need > ring->num_free)
		return -ENOSPC;
	head = alloc_chain(ring, need, &last);
	if (indirect) {
		uint64_t table = ring->cfg.indirect_area + 16ull * ring->cfg.max_indirect * head;

		for (unsigned int k = 0; k < total; k++) {
			const struct vn_vdrv_buf *b = k < out_n ? &out[k] : &in[k - out_n];
			uint16_t f = (k < out_n ? 0 : VRING_DESC_F_WRITE) |
				     (k + 1 < total ? VRING_DESC_F_NEXT : 0);

			r = write_desc(mem, table + 16ull * k, b->gpa, b->len, f, (uint16_t)(k + 1));
			if (r < 0)
				return r;
		}
		r = write_desc(mem, ring->cfg.desc + 16ull * head, table, 16 * total,
			       VRING_DESC_F_INDIRECT, 0);
		if (r < 0)
			return r;
	} else {
		i = head;
		for (unsigned int k = 0; k < total; k++) {
			const struct vn_vdrv_buf *b = k < out_n ? &out[k] : &in[k - out_n];
			uint16_t f = (k < out_n ? 0 : VRING_DESC_F_WRITE) |
				     (k + 1 < total ? VRING_DESC_F_NEXT : 0);

			r = write_desc(mem, ring->cfg.desc + 16ull * i, b->gpa, b->len, f,
				       k + 1 < total ? ring->next[i] : 0);
			if (r < 0)
				return r;
			if (k + 1 < total)
				i = ring->next[i];
		}
	}
	ring->heads[head] = (struct vn_vdrv_head){ .token = token, .ndesc = (uint16_t)need,
						   .busy = true };
	ring->n_added++;
	return vn_vdrv_ring_add_head(ring, head);
}

int vn_vdrv_ring_add_head(struct vn_vdrv_ring *ring, uint16_t head)
{
	uint16_t le = htole16(head);
	/*
	 * A plain write: the device reads this entry only after it has seen
	 * the new avail->idx, published with release in kick_prepare.
	 */
	int r = vn_gmem_write(ring->cfg.mem, avail_ring(ring, ring->avail_idx), &le, sizeof(le));

	if (r < 0)
		return r;
	ring->avail_idx++;
	return 0;
}

int vn_vdrv_ring_kick_prepare(struct vn_vdrv_ring *ring)
{
	uint16_t old = ring->kicked_avail_idx, new = ring->avail_idx, v;
	int r;

	/*
	 * seq_cst store of avail->idx: as a release it pairs with the device's
	 * acquire load in vn_vq_pop(), so the descriptors and ring entries
	 * written above are visible first. As seq_cst it is ordered before the
	 * seq_cst load of avail_event / used->flags below: the mirror of the
	 * device's vn_vq_enable_notify() (store avail_event or flags, then
	 * re-read avail->idx). One of the two sides sees the other's store, so
	 * a kick is never lost.
	 */
	r = vn_gmem_store_le16_seqcst(ring->cfg.mem, avail_idx(ring), new);
	if (r < 0)
		return r;
	ring->kicked_avail_idx = new;
	if (ring->cfg.event_idx) {
		r = vn_gmem_load_le16_seqcst(ring->cfg.mem, avail_event(ring), &v);
		if (r < 0)
			return r;
		r = vring_need_event(v, new, old);
	} else {
		r = vn_gmem_load_le16_seqcst(ring->cfg.mem, used_flags(ring), &v);
		if (r < 0)
			return r;
		r = !(v & VRING_USED_F_NO_NOTIFY);
	}
	if (r)
		ring->n_kicks++;
	else
		ring->n_kicks_suppressed++;
	return r;
}

int vn_vdrv_ring_get_used(struct vn_vdrv_ring *ring, void **token, uint32_t *len)
{
	struct vring_used_elem e;
	uint16_t idx, id, i;
	struct vn_vdrv_head *h;
	int r;

	/*
	 * seq_cst load of used->idx: as an acquire it pairs with the device's
	 * release (seq_cst) store in vn_vq_push(), so the element is visible.
	 * seq_cst also orders it after the used_event store of enable_cb.
	 */
	r = vn_gmem_load_le16_seqcst(ring->cfg.mem, used_idx(ring), &idx);
	if (r < 0)
		return r;
	if (idx == ring->last_used_idx)
		return 0;
	if ((uint16_t)(idx - ring->last_used_idx) > ring->num)
		return -EINVAL;
	r = vn_gmem_read(ring->cfg.mem, used_ring(ring, ring->last_used_idx), &e, sizeof(e));
	if (r < 0)
		return r;
	id = (uint16_t)le32toh(e.id);
	if (le32toh(e.id) >= ring->num || !ring->heads[id].busy)
		return -EINVAL;
	h = &ring->heads[id];
	*token = h->token;
	*len = le32toh(e.len);
	/* Return the chain to the free list: it is ours again. */
	i = id;
	for (unsigned int k = 1; k < h->ndesc; k++)
		i = ring->next[i];
	ring->next[i] = ring->free_head;
	ring->free_head = id;
	ring->num_free += h->ndesc;
	h->busy = false;
	h->token = NULL;
	ring->last_used_idx++;
	ring->n_used++;
	/* With EVENT_IDX, ask for an interrupt at the next entry (Linux does this too). */
	if (ring->cfg.event_idx && ring->cb_enabled) {
		r = vn_gmem_store_le16_seqcst(ring->cfg.mem, used_event(ring), ring->last_used_idx);
		if (r < 0)
			return r;
	}
	return 1;
}

void vn_vdrv_ring_disable_cb(struct vn_vdrv_ring *ring)
{
	ring->cb_enabled = false;
	if (ring->cfg.event_idx)
		return; /* used_event left behind suppresses interrupts */
	/* Relaxed: a hint; an interrupt that comes anyway is harmless. */
	(void)!vn_gmem_store_le16_relaxed(ring->cfg.mem, avail_flags(ring),
					  VRING_AVAIL_F_NO_INTERRUPT);
}

int vn_vdrv_ring_enable_cb(struct vn_vdrv_ring *ring)
{
	uint16_t idx;
	int r;

	ring->cb_enabled = true;
	/*
	 * seq_cst store then seq_cst load of used->idx: mirrors the device's
	 * "store used->idx, then load used_event / avail->flags" in
	 * vn_vq_push() + vn_vq_should_notify(). Either the device sees the
	 * enable and interrupts, or we see its used entry here.
	 */
	if (ring->cfg.event_idx)
		r = vn_gmem_store_le16_seqcst(ring->cfg.mem, used_event(ring), ring->last_used_idx);
	else
		r = vn_gmem_store_le16_seqcst(ring->cfg.mem, avail_flags(ring), 0);
	if (r < 0)
		return r;
	r = vn_gmem_load_le16_seqcst(ring->cfg.mem, used_idx(ring), &idx);
	if (r < 0)
		return r;
	return idx != ring->last_used_idx;
}
