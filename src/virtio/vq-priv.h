/* SPDX-License-Identifier: MIT */
#ifndef VN_VIRTIO_VQ_PRIV_H
#define VN_VIRTIO_VQ_PRIV_H

/*
 * The virtqueue's layout and its ring-format seam. Private to the virtio
 * core (src/virtio/ and its unit tests; scripts/check-layers.sh refuses it
 * anywhere else): everyone else uses the accessors of virtio/vq.h.
 *
 * vq.c holds what every format shares (configuration, the ready/broken
 * gate, state save/load, accessors); a format's file (vq-split.c, with
 * vq-chain.c for its descriptor walk) fills a struct vq_format_ops. The ops
 * are what a packed ring (virtio 1.2 §2.8) also has to provide: its own
 * layout rule, pop/push, the two notification decisions, the avail count,
 * the index checks on load and the position in and out of a vn_vq_state.
 * (vhost-user's vring base encoding is spelled out for both formats by the
 * spec, so it is one switch in vq.c, not an op.)
 */

#include <stdbool.h>

#include "virtio/vq.h"

/* Sizes and alignments of a format's three ring areas, for one queue size. */
struct vq_layout {
	uint64_t size[3];       /* desc, avail (driver area), used (device area) */
	uint64_t align[3];
};

/*
 * One ring format. Each op runs on the queue's owning thread (or with the
 * queue quiesced, for the state ops), after vq.c checked that the queue is
 * ready and not broken where the public API asks for that. Guest errors go
 * through vq_fail().
 */
struct vq_format_ops {
	const char *name;
	/* -EINVAL if @num is not a size this format allows (1..num_max checked by the caller) */
	int (*layout)(unsigned int num, struct vq_layout *l);
	int (*pop)(struct vn_vq *vq, struct vn_vq_elem *elem);
	int (*push)(struct vn_vq *vq, uint16_t head, uint32_t len);
	/* dirty-log the device-writable buffers of the popped chain at @head (never fails) */
	void (*log_chain)(struct vn_vq *vq, uint16_t head);
	int (*should_notify)(struct vn_vq *vq);
	void (*disable_notify)(struct vn_vq *vq);
	int (*enable_notify)(struct vn_vq *vq);
	int (*avail_count)(struct vn_vq *vq);
	/* vn_vq_check_next_avail(): @next against the published ring, no state change */
	int (*check_next_avail)(const struct vn_vq *vq, uint16_t next);
	/* ring indices of a ready @st against the guest's rings (rings already checked) */
	int (*check_state)(const struct vn_vq *vq, const struct vn_vq_state *st,
			   const char **field);
	/* the format's part of the position (indices, wrap counters) */
	void (*get_pos)(const struct vn_vq *vq, struct vn_vq_state *st);
	void (*set_pos)(struct vn_vq *vq, const struct vn_vq_state *st);
};

extern const struct vq_format_ops vq_split_ops;

struct vn_vq {
	const struct vn_gmem *mem;
	const struct vq_format_ops *ops; /* fixed while ready; chosen by the features */
	uint16_t index;
	uint16_t num_max;

	/* set by the driver through the transport while the queue is not ready */
	uint16_t num;
	uint64_t desc, avail, used;
	bool ready;
	bool event_idx;     /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;      /* VIRTIO_RING_F_INDIRECT_DESC negotiated */

	/* device-side ring state, owned by the queue's thread */
	uint16_t last_avail_idx;    /* next avail entry to pop */
	uint16_t shadow_avail_idx;  /* avail->idx as last read */
	uint16_t used_idx;          /* next used entry to fill; published */
	uint16_t signalled_used;    /* used_idx when we last interrupted */
	bool signalled_used_valid;
	bool avail_wrap, used_wrap; /* packed only; false for split */
	uint16_t inflight;          /* popped, not yet pushed */
	bool polled;                /* vn_vq_poll_begin(): kicks stay off until poll_end */
	int broken;                 /* the guest error that broke it, or 0; atomic */

	vn_vq_error_fn *on_error;
	void *opaque;
	struct vn_ratelimit *rl;    /* the owner's, for guest-caused messages */

	/*
	 * Heads popped and not pushed (and resubmitted ones not yet popped): a
	 * head the avail ring offers while its bit is set breaks the ring, so
	 * no chain is ever pushed twice. Owned by the queue's thread.
	 */
	uint64_t busy[VN_VQ_MAX_SIZE / 64];

	/* vhost-user inflight tracking (vn_vq_set_inflight()); NULL: none */
	struct vn_vq_inflight_hdr *ilog;
	uint64_t ilog_counter;
	uint16_t *resubmit;	 /* heads to pop first, malloc'd */
	uint16_t nr_resubmit, resubmit_pos;

	/* statistics (owning thread writes; read them quiesced) */
	uint64_t n_pop, n_push, n_notify, n_notify_suppressed;
	uint64_t n_abandoned;       /* popped, never pushed (vn_vq_abandon, failed pushes) */
};

/*
 * Break the queue for a guest error: log (rate-limited), trace, tell the
 * owner once. Returns @err so callers can `return vq_fail(...)`.
 */
int vq_fail(struct vn_vq *vq, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Is @head popped and not pushed? Mark it busy / free (vq.c). */
static inline bool vq_busy(const struct vn_vq *vq, uint16_t head)
{
	return vq->busy[head / 64] & (1ull << (head % 64));
}

static inline void vq_set_busy(struct vn_vq *vq, uint16_t head, bool on)
{
	if (on)
		vq->busy[head / 64] |= 1ull << (head % 64);
	else
		vq->busy[head / 64] &= ~(1ull << (head % 64));
}

/* The split format's chain walk (vq-chain.c): pop the chain at @head. */
int vq_split_walk(struct vn_vq *vq, struct vn_vq_elem *elem);

/* Dirty-log the chain's device-writable buffers, at push (vq-chain.c). */
void vq_split_log_chain(struct vn_vq *vq, uint16_t head);

#endif
