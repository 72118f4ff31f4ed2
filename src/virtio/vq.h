/* SPDX-License-Identifier: MIT */
#ifndef VN_VIRTIO_VQ_H
#define VN_VIRTIO_VQ_H

/*
 * Split virtqueue internals (virtio 1.2 §2.7). The public half, pop/push/
 * notify, is in <vnotify/vq.h>; this adds the parts the device core,
 * state save/load and tests use: configuration, reset, state.
 *
 * Ring layout in guest memory (all little-endian):
 *   desc  16 * num bytes, 16-aligned: { le64 addr; le32 len; le16 flags; le16 next; }
 *   avail 2-aligned: le16 flags; le16 idx; le16 ring[num]; le16 used_event;
 *   used  4-aligned: le16 flags; le16 idx; { le32 id; le32 len; } ring[num]; le16 avail_event;
 *
 * Which side writes what: the driver writes desc, avail.*, the device
 * writes used.*. Each index is read by the other side, through gmem's
 * atomic accessors.
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/vq.h>

#include "base/log.h"
#include "mem/gmem.h"

struct vn_vq;

/*
 * Called once when the guest breaks the queue, from the thread that found
 * it, after the queue marked itself broken. The device core sets NEEDS_RESET.
 */
typedef void vn_vq_error_fn(void *opaque, struct vn_vq *vq, int err);

/* The part of a queue that save/load carries (state.c). */
struct vn_vq_state {
	uint16_t num;
	bool ready;
	uint64_t desc, avail, used;
	uint16_t last_avail_idx;
	uint16_t used_idx;
};

struct vn_vq {
	const struct vn_gmem *mem;
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
	uint16_t inflight;          /* popped, not yet pushed */
	int broken;                 /* the guest error that broke it, or 0; atomic */

	vn_vq_error_fn *on_error;
	void *opaque;
	struct vn_ratelimit *rl;    /* the owner's, for guest-caused messages */

	/* statistics (owning thread writes; read them quiesced) */
	uint64_t n_pop, n_push, n_notify, n_notify_suppressed;
	uint64_t n_abandoned;       /* popped, never pushed (vn_vq_abandon, failed pushes) */
};

/**
 * vn_vq_init() - a queue in its reset state
 * @num_max: the largest size the device supports (power of 2, <= 32768)
 * @rl: rate limit for guest-error messages; must outlive the queue
 */
void vn_vq_init(struct vn_vq *vq, const struct vn_gmem *mem, uint16_t index, uint16_t num_max,
		struct vn_ratelimit *rl);

/** vn_vq_set_error_handler() - who to tell when the guest breaks the queue */
void vn_vq_set_error_handler(struct vn_vq *vq, vn_vq_error_fn *fn, void *opaque);

/**
 * vn_vq_reset() - back to the state after init: size num_max, addresses 0,
 * not ready, indices 0, not broken, features off
 * Context: nobody else is using the queue.
 */
void vn_vq_reset(struct vn_vq *vq);

/**
 * vn_vq_set_num() - the driver's queue size
 * Return: 0, -EINVAL if not a power of 2 in 1..num_max, -EBUSY if ready.
 */
VN_MUST_CHECK int vn_vq_set_num(struct vn_vq *vq, unsigned int num);

/**
 * vn_vq_set_addr() - ring addresses (guest-physical)
 * Return: 0, -EBUSY if ready. Alignment and bounds are checked at enable.
 */
VN_MUST_CHECK int vn_vq_set_addr(struct vn_vq *vq, uint64_t desc, uint64_t avail, uint64_t used);

/** vn_vq_set_features() - ring features the driver accepted (EVENT_IDX, INDIRECT_DESC) */
void vn_vq_set_features(struct vn_vq *vq, uint64_t driver_features);

/**
 * vn_vq_enable() - the driver enabled the queue
 *
 * Checks that each ring is aligned as virtio 1.2 §2.7 requires and lies in
 * guest memory.
 *
 * Return: 0; -EINVAL for bad alignment or size; -EFAULT if a ring is
 * outside guest memory. The queue stays not ready on error.
 */
VN_MUST_CHECK int vn_vq_enable(struct vn_vq *vq);

/** vn_vq_ring_sizes() - bytes of the desc, avail and used rings for @num */
void vn_vq_ring_sizes(unsigned int num, uint64_t *desc, uint64_t *avail, uint64_t *used);

/** vn_vq_is_broken() - the guest error that broke the queue, or 0 */
int vn_vq_is_broken(const struct vn_vq *vq);

/** vn_vq_get_state() - snapshot for save */
void vn_vq_get_state(const struct vn_vq *vq, struct vn_vq_state *st);

/**
 * vn_vq_check_state() - would vn_vq_set_state() accept @st?
 * @field: on error, the name of the offending field
 *
 * Checks the size, alignment, that the rings are in guest memory and, for
 * a ready queue, that the guest's avail and used indices are consistent with
 * @st (no more than num ahead).
 *
 * Return: 0 or -EINVAL (or -EFAULT for rings outside guest memory).
 */
VN_MUST_CHECK int vn_vq_check_state(const struct vn_vq *vq, const struct vn_vq_state *st,
				    const char **field);

/**
 * vn_vq_set_state() - load a snapshot checked by vn_vq_check_state()
 * Context: nobody else is using the queue.
 */
void vn_vq_set_state(struct vn_vq *vq, const struct vn_vq_state *st);

#endif
