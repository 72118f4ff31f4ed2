/* SPDX-License-Identifier: MIT */
#include "guest/vdrv-blk.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>

#include "base/compiler.h"
#include "base/log.h"

#define PCI_VENDOR_VIRTIO 0x1af4
#define VIRTIO_ID_BLOCK 2
#define SLOT_SIZE 32 /* header (16) + status byte, padded */
#define SLOT_STATUS 16
#define STATUS_UNSET 0xff /* a device never writes this */

#define F(b) (1ull << (b))

/* Per request: where its header and status live, and whose it is. */
struct blk_slot {
	void *token;
	bool busy; /* in the ring, or completed and waiting in the backlog */
	bool in_backlog;
	bool raw;
	int done_status; /* for the backlog */
	uint32_t done_len;
};

struct vn_vdrv_blkq {
	struct vn_vdrv_blk *blk;
	struct vn_vdrv_vq *vq;
	unsigned int index;
	unsigned int nslots;
	uint64_t slots_gpa;
	uint8_t *slots_hva; /* NULL if the slots cross regions: go through gmem */
	struct blk_slot *slots;
	uint16_t *free; /* stack of free slot indices */
	unsigned int nfree;
	uint16_t *backlog; /* slots completed by a reinit, not reaped yet */
	unsigned int nbacklog, backlog_pos;
	struct vn_vdrv_blkq_stats st;
} __attribute__((aligned(64))); /* one vCPU per queue: no false sharing */

struct vn_vdrv_blk {
	struct vn_vdrv_env *env;
	struct vn_vdrv_pci *pci;
	struct vn_vdrv_blk_cfg cfg;
	struct vn_vdrv_blk_info info;
	uint64_t wanted;
	unsigned int nr_queues;
	unsigned int max_segs;
	struct vn_vdrv_blkq *qs;
};

/* ---- slots ---- */

static uint16_t slot_idx(const struct vn_vdrv_blkq *q, const struct blk_slot *s)
{
	return (uint16_t)(s - q->slots);
}

static uint64_t slot_gpa(const struct vn_vdrv_blkq *q, uint16_t i)
{
	return q->slots_gpa + (uint64_t)SLOT_SIZE * i;
}

static int slot_write(struct vn_vdrv_blkq *q, uint16_t i, unsigned int off, const void *p, size_t n)
{
	/*
	 * Plain stores: the device reads the header only after it has seen the
	 * chain through the release store of avail->idx in kick_prepare.
	 */
	if (q->slots_hva) {
		memcpy(q->slots_hva + (size_t)SLOT_SIZE * i + off, p, n);
		return 0;
	}
	return vn_gmem_write(q->blk->env->cfg.mem, slot_gpa(q, i) + off, p, n);
}

static uint8_t slot_status(struct vn_vdrv_blkq *q, uint16_t i)
{
	uint8_t v = STATUS_UNSET;

	/* Ordered after the device's write by the acquire load of used->idx. */
	if (q->slots_hva)
		return q->slots_hva[(size_t)SLOT_SIZE * i + SLOT_STATUS];
	(void)!vn_gmem_read(q->blk->env->cfg.mem, slot_gpa(q, i) + SLOT_STATUS, &v, 1);
	return v;
}

static void slot_free(struct vn_vdrv_blkq *q, struct blk_slot *s)
{
	s->busy = false;
	s->in_backlog = false;
	s->token = NULL;
	q->free[q->nfree++] = slot_idx(q, s);
}

static int queue_alloc(struct vn_vdrv_blk *blk, struct vn_vdrv_blkq *q, unsigned int nslots)
{
	int r;

	q->blk = blk;
	q->nslots = nslots;
	q->slots = calloc(nslots, sizeof(q->slots[0]));
	q->free = calloc(nslots, sizeof(q->free[0]));
	q->backlog = calloc(nslots, sizeof(q->backlog[0]));
	if (!q->slots || !q->free || !q->backlog)
		return -ENOMEM;
	r = vn_vdrv_env_alloc(blk->env, (uint64_t)SLOT_SIZE * nslots, 64, &q->slots_gpa);
	if (r < 0)
		return r;
	q->slots_hva = vn_vdrv_env_ptr(blk->env, q->slots_gpa, (uint64_t)SLOT_SIZE * nslots);
	for (unsigned int i = 0; i < nslots; i++)
		q->free[i] = (uint16_t)(nslots - 1 - i);
	q->nfree = nslots;
	return 0;
}

static void queue_free(struct vn_vdrv_blkq *q)
{
	free(q->slots);
	free(q->free);
	free(q->backlog);
}

/* ---- setup ---- */

static int read_config(struct vn_vdrv_blk *blk)
{
	struct vn_vdrv_blk_info *in = &blk->info;
	struct virtio_blk_config c;
	uint32_t len = offsetof(struct virtio_blk_config, physical_block_exp);
	int r;

	memset(&c, 0, sizeof(c));
	r = vn_vdrv_pci_config_read(blk->pci, 0, &c, len);
	if (r < 0)
		return r;
	if (in->features & F(VIRTIO_BLK_F_MQ)) {
		r = vn_vdrv_pci_config_read(blk->pci,
					    offsetof(struct virtio_blk_config, num_queues),
					    &c.num_queues, sizeof(c.num_queues));
		if (r < 0)
			return r;
	}
	in->capacity = le64toh(c.capacity);
	in->size_max = in->features & F(VIRTIO_BLK_F_SIZE_MAX) ? le32toh(c.size_max) : 0;
	in->seg_max = in->features & F(VIRTIO_BLK_F_SEG_MAX) ? le32toh(c.seg_max) : 0;
	in->blk_size = in->features & F(VIRTIO_BLK_F_BLK_SIZE) ? le32toh(c.blk_size) : 512;
	in->num_queues = in->features & F(VIRTIO_BLK_F_MQ) ? le16toh(c.num_queues) : 1;
	in->ro = in->features & F(VIRTIO_BLK_F_RO);
	if (!in->num_queues)
		return -ENODEV;
	return 0;
}

static int setup_queue(struct vn_vdrv_blk *blk, struct vn_vdrv_blkq *q)
{
	struct vn_vdrv_vq_cfg vc = {
		.size = blk->cfg.queue_size ? blk->cfg.queue_size : VN_VDRV_BLK_QUEUE_SIZE_DEFAULT,
		.max_indirect = (blk->info.features & F(VIRTIO_RING_F_INDIRECT_DESC))
					? blk->max_segs + 2
					: 0,
	};
	int r = vn_vdrv_pci_queue_setup(blk->pci, q->index, &vc, &q->vq);

	if (r < 0)
		return r;
	/* Interrupts only while the owner sleeps in vn_vdrv_blkq_wait(). */
	vn_vdrv_ring_disable_cb(&q->vq->ring);
	return 0;
}

/* virtio 1.2 §3.1.1 from reset to DRIVER_OK; @first sizes the queues. */
static int bring_up(struct vn_vdrv_blk *blk, bool first)
{
	unsigned int nq;
	int r;

	r = vn_vdrv_pci_negotiate(blk->pci, blk->wanted, &blk->info.features);
	if (r < 0)
		return r;
	r = read_config(blk);
	if (r < 0)
		return r;
	nq = blk->info.num_queues;
	if (nq > vn_vdrv_pci_num_queues(blk->pci))
		nq = vn_vdrv_pci_num_queues(blk->pci);
	if (first) {
		if (blk->cfg.nr_queues > nq)
			return -EINVAL;
		blk->nr_queues = blk->cfg.nr_queues ? blk->cfg.nr_queues : nq;
	} else if (blk->nr_queues > nq) {
		return -ENODEV;
	}
	for (unsigned int i = 0; i < blk->nr_queues; i++) {
		struct vn_vdrv_blkq *q = &blk->qs[i];

		q->index = i;
		r = setup_queue(blk, q);
		if (r < 0)
			return r;
		if (first) {
			r = queue_alloc(blk, q, vn_vdrv_ring_num_free(&q->vq->ring));
			if (r < 0)
				return r;
		}
	}
	return vn_vdrv_pci_driver_ok(blk->pci);
}

int vn_vdrv_blk_new(struct vn_vdrv_env *env, const struct vn_vdrv_blk_cfg *cfg,
		    struct vn_vdrv_blk **out)
{
	struct vn_vdrv_pci_cfg pc = {.slot = cfg->slot, .mode = cfg->mode};
	struct vn_vdrv_blk *blk;
	int r;

	if (cfg->max_segs > VN_VDRV_BLK_MAX_SEGS_LIMIT || (cfg->queue_size & (cfg->queue_size - 1)))
		return -EINVAL;
	blk = calloc(1, sizeof(*blk));
	if (!blk)
		return -ENOMEM;
	blk->env = env;
	blk->cfg = *cfg;
	blk->wanted = cfg->features ? cfg->features : VN_VDRV_BLK_FEATURES_DEFAULT;
	blk->max_segs = cfg->max_segs ? cfg->max_segs : VN_VDRV_BLK_MAX_SEGS_DEFAULT;
	r = vn_vdrv_pci_open(env, &pc, &blk->pci);
	if (r < 0)
		goto err_free;
	if (blk->pci->device_id != VIRTIO_ID_BLOCK) {
		r = -ENODEV;
		goto err_free;
	}
	r = posix_memalign((void **)&blk->qs, 64, sizeof(blk->qs[0]) * blk->pci->nr_vqs);
	if (r) {
		blk->qs = NULL;
		r = -ENOMEM;
		goto err_free;
	}
	memset(blk->qs, 0, sizeof(blk->qs[0]) * blk->pci->nr_vqs);
	r = bring_up(blk, true);
	if (r < 0)
		goto err_free;
	*out = blk;
	return 0;
err_free:
	vn_vdrv_blk_free(blk);
	return r;
}

void vn_vdrv_blk_free(struct vn_vdrv_blk *blk)
{
	if (!blk)
		return;
	vn_vdrv_pci_close(blk->pci);
	if (blk->qs)
		for (unsigned int i = 0; i < blk->nr_queues; i++)
			queue_free(&blk->qs[i]);
	free(blk->qs);
	free(blk);
}

const struct vn_vdrv_blk_info *vn_vdrv_blk_get_info(const struct vn_vdrv_blk *blk)
{
	return &blk->info;
}

struct vn_vdrv_pci *vn_vdrv_blk_pci(struct vn_vdrv_blk *blk)
{
	return blk->pci;
}

unsigned int vn_vdrv_blk_nr_queues(const struct vn_vdrv_blk *blk)
{
	return blk->nr_queues;
}

struct vn_vdrv_blkq *vn_vdrv_blk_queue(struct vn_vdrv_blk *blk, unsigned int i)
{
	return i < blk->nr_queues ? &blk->qs[i] : NULL;
}

/* ---- completions ---- */

static void complete_slot(struct vn_vdrv_blkq *q, struct blk_slot *s, uint32_t len,
			  struct vn_vdrv_blk_done *d)
{
	uint8_t st = slot_status(q, slot_idx(q, s));

	d->token = s->token;
	d->len = len;
	d->status = s->raw ? VN_VDRV_BLK_S_RAW : st == STATUS_UNSET ? VN_VDRV_BLK_S_NONE : st;
	q->st.completed++;
	slot_free(q, s);
}

/* Move what the device finished, then everything else in flight, to the backlog. */
static void quiesce_queue(struct vn_vdrv_blkq *q)
{
	void *tok;
	uint32_t len;

	while (q->vq && vn_vdrv_ring_get_used(&q->vq->ring, &tok, &len) == 1) {
		struct blk_slot *s = tok;
		uint8_t st = slot_status(q, slot_idx(q, s));

		s->done_status = s->raw		      ? VN_VDRV_BLK_S_RAW
				 : st == STATUS_UNSET ? VN_VDRV_BLK_S_NONE
						      : st;
		s->done_len = len;
		s->in_backlog = true;
		q->backlog[q->nbacklog++] = slot_idx(q, s);
	}
	for (unsigned int i = 0; i < q->nslots; i++) {
		struct blk_slot *s = &q->slots[i];

		if (s->busy && !s->in_backlog) {
			s->done_status = VN_VDRV_BLK_S_ABORTED;
			s->done_len = 0;
			s->in_backlog = true;
			q->backlog[q->nbacklog++] = (uint16_t)i;
		}
	}
}

int vn_vdrv_blk_reinit(struct vn_vdrv_blk *blk)
{
	int r = vn_vdrv_pci_reset(blk->pci);

	if (r < 0)
		return r;
	/* The device no longer touches the rings: take back what it left. */
	for (unsigned int i = 0; i < blk->nr_queues; i++)
		quiesce_queue(&blk->qs[i]);
	return bring_up(blk, false);
}

int vn_vdrv_blkq_reap(struct vn_vdrv_blkq *q, struct vn_vdrv_blk_done *done, unsigned int max)
{
	unsigned int n = 0;
	void *tok;
	uint32_t len;
	int r;

	while (n < max && q->backlog_pos < q->nbacklog) {
		struct blk_slot *s = &q->slots[q->backlog[q->backlog_pos++]];

		done[n++] = (struct vn_vdrv_blk_done){
			.token = s->token, .status = s->done_status, .len = s->done_len};
		q->st.completed++;
		slot_free(q, s);
	}
	if (q->backlog_pos == q->nbacklog)
		q->backlog_pos = q->nbacklog = 0;
	while (n < max) {
		r = vn_vdrv_ring_get_used(&q->vq->ring, &tok, &len);
		if (r == 0)
			break;
		if (r < 0) {
			vn_log(VN_LOG_ERR, "vdrv", "blk queue %u: bad used ring: %s", q->index,
			       strerror(-r));
			return -EIO;
		}
		complete_slot(q, tok, len, &done[n++]);
	}
	return (int)n;
}

/* ---- submission ---- */

static int add_chain(struct vn_vdrv_blkq *q, struct blk_slot *s, const struct vn_vdrv_buf *out,
		     unsigned int on, const struct vn_vdrv_buf *in, unsigned int in_n)
{
	int r = vn_vdrv_ring_add(&q->vq->ring, out, on, in, in_n, s);

	if (r < 0)
		return r;
	q->nfree--;
	s->busy = true;
	q->st.submitted++;
	return 0;
}

int vn_vdrv_blkq_submit(struct vn_vdrv_blkq *q, const struct vn_vdrv_blk_io *io)
{
	struct vn_vdrv_buf out[VN_VDRV_BLK_MAX_SEGS_LIMIT + 1], in[VN_VDRV_BLK_MAX_SEGS_LIMIT + 1];
	bool to_guest = io->type == VIRTIO_BLK_T_IN || io->type == VIRTIO_BLK_T_GET_ID;
	struct virtio_blk_outhdr h = {
		.type = htole32(io->type),
		.sector = htole64(io->sector),
	};
	static const uint8_t unset = STATUS_UNSET;
	unsigned int on = 0, in_n = 0;
	struct blk_slot *s;
	uint16_t i;
	int r;

	if (!io->token || io->nsegs > q->blk->max_segs)
		return -EINVAL;
	if (!q->nfree)
		return -ENOSPC;
	i = q->free[q->nfree - 1];
	s = &q->slots[i];
	r = slot_write(q, i, 0, &h, sizeof(h));
	if (r == 0)
		r = slot_write(q, i, SLOT_STATUS, &unset, 1);
	if (r < 0)
		return r;
	out[on++] = (struct vn_vdrv_buf){.gpa = slot_gpa(q, i), .len = sizeof(h)};
	for (unsigned int k = 0; k < io->nsegs; k++) {
		if (to_guest)
			in[in_n++] = io->segs[k];
		else
			out[on++] = io->segs[k];
	}
	in[in_n++] = (struct vn_vdrv_buf){.gpa = slot_gpa(q, i) + SLOT_STATUS, .len = 1};
	s->token = io->token;
	s->raw = false;
	return add_chain(q, s, out, on, in, in_n);
}

int vn_vdrv_blkq_submit_raw(struct vn_vdrv_blkq *q, const struct vn_vdrv_buf *out,
			    unsigned int out_n, const struct vn_vdrv_buf *in, unsigned int in_n,
			    void *token)
{
	struct blk_slot *s;

	if (!token)
		return -EINVAL;
	if (!q->nfree)
		return -ENOSPC;
	s = &q->slots[q->free[q->nfree - 1]];
	s->token = token;
	s->raw = true;
	return add_chain(q, s, out, out_n, in, in_n);
}

int vn_vdrv_blkq_kick(struct vn_vdrv_blkq *q)
{
	int r = vn_vdrv_ring_kick_prepare(&q->vq->ring);

	if (r <= 0) {
		if (r == 0)
			q->st.kicks_suppressed++;
		return r;
	}
	r = vn_vdrv_vq_kick(q->vq);
	if (r < 0)
		return r;
	q->st.kicks++;
	if (r == VN_BUS_IOEVENTFD)
		q->st.kicks_ioeventfd++;
	return 1;
}

int vn_vdrv_blkq_wait(struct vn_vdrv_blkq *q, int timeout_ms)
{
	int r;

	if (q->backlog_pos < q->nbacklog)
		return 1;
	r = vn_vdrv_ring_enable_cb(&q->vq->ring);
	if (r == 0) {
		q->st.waits++;
		r = vn_vdrv_vq_wait_irq(q->vq, timeout_ms);
		if (r > 0)
			q->st.irqs++;
	}
	vn_vdrv_ring_disable_cb(&q->vq->ring);
	return r;
}

int vn_vdrv_blkq_rw_sync(struct vn_vdrv_blkq *q, const struct vn_vdrv_blk_io *io, int timeout_ms)
{
	uint64_t deadline = vn_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct vn_vdrv_blk_done d;
	int r;

	if (vn_vdrv_blkq_inflight(q))
		return -EBUSY;
	r = vn_vdrv_blkq_submit(q, io);
	if (r < 0)
		return r;
	r = vn_vdrv_blkq_kick(q);
	if (r < 0)
		return r;
	for (;;) {
		uint64_t now;

		r = vn_vdrv_blkq_reap(q, &d, 1);
		if (r != 0)
			return r < 0 ? r : d.status;
		now = vn_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		r = vn_vdrv_blkq_wait(q, (int)((deadline - now) / 1000000ull) + 1);
		if (r < 0)
			return r;
	}
}

unsigned int vn_vdrv_blkq_inflight(const struct vn_vdrv_blkq *q)
{
	return q->nslots - q->nfree;
}

unsigned int vn_vdrv_blkq_depth(const struct vn_vdrv_blkq *q)
{
	return q->nslots;
}

struct vn_vdrv_vq *vn_vdrv_blkq_vq(struct vn_vdrv_blkq *q)
{
	return q->vq;
}

void vn_vdrv_blkq_get_stats(const struct vn_vdrv_blkq *q, struct vn_vdrv_blkq_stats *out)
{
	*out = q->st;
}
