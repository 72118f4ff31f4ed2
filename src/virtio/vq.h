/* SPDX-License-Identifier: MIT */
#ifndef VN_VIRTIO_VQ_H
#define VN_VIRTIO_VQ_H

/*
 * Virtqueue internals beside the public pop/push/notify API of
 * <vnotify/vq.h>: configuration, reset, state, and the few accessors that
 * transports, the vhost-user server and tests need. struct vn_vq itself is
 * private to the virtio core (src/virtio/vq-priv.h): code outside it sees
 * only these functions, so a second ring format (packed, virtio 1.2 §2.8)
 * changes no caller.
 *
 * The ring format sits behind an internal ops table (vq-split.c today).
 * Split ring layout in guest memory (all little-endian):
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

/* The ring format (virtio 1.2 §2.7 split, §2.8 packed). */
enum vn_vq_format {
	VN_VQ_FORMAT_SPLIT = 0,
	VN_VQ_FORMAT_PACKED = 1,        /* not implemented yet: refused on load */
};

/**
 * struct vn_vq_state - the part of a queue that save/load and vhost-user carry
 * @format: enum vn_vq_format
 * @num: queue size
 * @ready: enabled by the driver
 * @desc: descriptor table (split) or descriptor ring (packed)
 * @avail: available ring (split) or driver event suppression area (packed)
 * @used: used ring (split) or device event suppression area (packed)
 * @last_avail_idx: next available entry the device takes
 * @used_idx: next used entry the device fills
 * @avail_wrap: packed only (false for split): the driver ring wrap counter
 * @used_wrap: packed only (false for split): the device ring wrap counter
 */
struct vn_vq_state {
	uint8_t format;
	uint16_t num;
	bool ready;
	uint64_t desc, avail, used;
	uint16_t last_avail_idx;
	uint16_t used_idx;
	bool avail_wrap;
	bool used_wrap;
};

/** struct vn_vq_stats - counters of the queue's thread; read them quiesced */
struct vn_vq_stats {
	uint64_t pops, pushes, notifies, notifies_suppressed;
	uint64_t abandoned;     /* popped, never pushed (vn_vq_abandon(), failed pushes) */
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
 * vn_vq_set_mem() - the guest memory the queue translates through (NULL: none)
 *
 * A queue without memory refuses to become ready: vn_vq_enable() and
 * vn_vq_check_state() of a ready state fail with -ENXIO.
 * Context: the queue is not ready (a programmer error otherwise).
 */
void vn_vq_set_mem(struct vn_vq *vq, const struct vn_gmem *mem);

/**
 * vn_vq_enable() - the driver enabled the queue
 *
 * Checks that each ring is aligned as virtio 1.2 §2.7 requires and lies in
 * guest memory.
 *
 * Return: 0; -EINVAL for bad alignment or size; -EFAULT if a ring is
 * outside guest memory; -ENXIO if no guest memory is bound. The queue stays
 * not ready on error.
 */
VN_MUST_CHECK int vn_vq_enable(struct vn_vq *vq);

/** vn_vq_ring_sizes() - bytes of the desc, avail and used rings of a split ring of @num */
void vn_vq_ring_sizes(unsigned int num, uint64_t *desc, uint64_t *avail, uint64_t *used);

/**
 * vn_vq_check_next_avail() - does a doorbell's notification data agree with
 * the ring?
 * @next: what the driver said it makes available next (virtio 1.2 §2.9;
 *        split: next_off and next_wrap together are its avail->idx)
 *
 * The data is a hint and never a source of work: pops go by the avail index
 * the ring publishes. A driver stores avail->idx before it rings, so the
 * published index is @next or, when another submitter added more since,
 * past it; a @next ahead of it claims entries nobody published.
 * Reads the guest's avail->idx only: no queue state changes.
 * Return: 0 if @next is published (or behind), -ERANGE if it is ahead,
 * -EIO if the queue is not ready or broken, -EFAULT if the ring is unreadable.
 * Context: device lock held (the queue stays ready); any thread.
 */
VN_MUST_CHECK int vn_vq_check_next_avail(const struct vn_vq *vq, uint16_t next);

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

/** vn_vq_num_max() - the largest queue size the device supports */
unsigned int vn_vq_num_max(const struct vn_vq *vq);

/** vn_vq_format() - the ring format (enum vn_vq_format), fixed by the negotiated features */
unsigned int vn_vq_format(const struct vn_vq *vq);

/** vn_vq_ring_addrs() - the ring addresses the driver set (guest-physical) */
void vn_vq_ring_addrs(const struct vn_vq *vq, uint64_t *desc, uint64_t *avail, uint64_t *used);

/**
 * vn_vq_last_avail() - the next available entry the device will take
 * Context: the queue's owning thread, or the queue quiesced.
 */
uint16_t vn_vq_last_avail(const struct vn_vq *vq);

/**
 * vn_vq_inflight() - chains popped and not yet pushed
 * Context: the queue's owning thread, or the queue quiesced.
 */
unsigned int vn_vq_inflight(const struct vn_vq *vq);

/** vn_vq_get_stats() - the queue's counters. Context: as vn_vq_inflight(). */
void vn_vq_get_stats(const struct vn_vq *vq, struct vn_vq_stats *out);

/**
 * vn_vq_vring_base() - the queue position as vhost-user's "vring base"
 *
 * vhost-user.rst, "A vring descriptor index for split virtqueues" and
 * "Vring descriptor indices for packed virtqueues": split carries
 * last_avail_idx in bits 0-15 (16-31 zero); packed carries last_avail_idx
 * in bits 0-14, the driver ring wrap counter in bit 15, used_idx in bits
 * 16-30 and the device ring wrap counter in bit 31. The one encoding the
 * vhost-user server (SET/GET_VRING_BASE) and the saved state both use.
 */
uint32_t vn_vq_vring_base(const struct vn_vq_state *st);

/**
 * vn_vq_set_vring_base() - the inverse, into @st (whose @format is set)
 *
 * Split: sets last_avail_idx (used_idx comes from the guest's used ring).
 * Packed: sets last_avail_idx, avail_wrap, used_idx and used_wrap.
 *
 * Return: 0, or -EINVAL for a reserved bit set (split: bits 16-31) or an
 * unknown format.
 */
VN_MUST_CHECK int vn_vq_set_vring_base(struct vn_vq_state *st, uint32_t base);

/*
 * vhost-user's inflight region for a split ring (vhost-user.rst "Inflight
 * I/O tracking"): shared memory that outlives the backend process, so that
 * a restarted backend knows which chains its predecessor took and never
 * finished. One queue's part: this header, then one entry per descriptor.
 * All fields in the host's byte order (the region never leaves the host).
 */
struct vn_vq_inflight_desc {
	uint8_t inflight; /* 1: popped at @counter, not pushed yet */
	uint8_t padding[5];
	uint16_t next;	  /* packed rings only; unused */
	uint64_t counter; /* pop order, for resubmitting in order */
};

struct vn_vq_inflight_hdr {
	uint64_t features;
	uint16_t version;	  /* 0: a fresh region; 1: in use */
	uint16_t desc_num;	  /* entries of desc[] */
	uint16_t last_batch_head; /* the head being pushed */
	uint16_t used_idx;	  /* used->idx once that push completed */
	struct vn_vq_inflight_desc desc[];
};

#define VN_VQ_INFLIGHT_VERSION 1

/**
 * vn_vq_set_inflight() - track the queue's chains in an inflight region and
 * take @resubmit first
 * @region: the queue's part of the region (header and @region->desc_num
 *          entries, already checked against the ring size); NULL stops the
 *          tracking. Must stay mapped until the queue is reset or this is
 *          called again.
 * @resubmit: heads the previous backend popped and never pushed, in the
 *            order to redo them; each < the queue size, no two the same
 * @n: entries of @resubmit; the queue was started with last_avail_idx =
 *     used_idx + @n, so these chains are counted as in flight until popped
 * @counter: the next pop counter to write (above every counter in the region)
 *
 * From now on each pop marks its head in flight in @region and each push
 * clears it (last_batch_head and used_idx as the spec orders them). Pops
 * return the resubmitted chains first, walked from their heads. A head that
 * is in flight (resubmitted or popped) and shows up in the avail ring again
 * breaks the ring: nothing is ever completed twice, whatever the region said.
 *
 * Return: 0, -EINVAL for a bad @n or head, -ENOMEM.
 * Context: the queue started (vn_vq_set_state()) and not running.
 */
VN_MUST_CHECK int vn_vq_set_inflight(struct vn_vq *vq, struct vn_vq_inflight_hdr *region,
				     const uint16_t *resubmit, unsigned int n, uint64_t counter);

/**
 * vn_vq_poll_begin() - the queue's thread busy-polls the avail ring: the
 * driver need not kick
 *
 * Asks the driver not to kick (VRING_USED_F_NO_NOTIFY, or with EVENT_IDX an
 * avail_event it will not pass) until vn_vq_poll_end(). In between,
 * vn_vq_enable_notify() only re-checks the ring, so a handler's drain loop
 * leaves the kicks off. Nothing for a queue not ready, broken or polled.
 * Context: the queue's owning thread, with its run lock held.
 */
void vn_vq_poll_begin(struct vn_vq *vq);

/**
 * vn_vq_poll_end() - polling stops: ask for kicks again, then re-check
 *
 * Return: as vn_vq_enable_notify() (1: entries raced the enable, run the
 * queue), or 0 if the queue was not polled, not ready or broken.
 * Context: as vn_vq_poll_begin().
 */
int vn_vq_poll_end(struct vn_vq *vq);

/** vn_vq_is_polled() - between vn_vq_poll_begin() and vn_vq_poll_end()? Context: as above. */
bool vn_vq_is_polled(const struct vn_vq *vq);

/**
 * vn_vq_resubmit_pending() - resubmitted chains not popped yet
 * Context: the queue's owning thread, or the queue quiesced.
 */
unsigned int vn_vq_resubmit_pending(const struct vn_vq *vq);

#endif
