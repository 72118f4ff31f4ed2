/* SPDX-License-Identifier: MIT */
#ifndef VN_GUEST_VDRV_RING_H
#define VN_GUEST_VDRV_RING_H

/*
 * The guest side of a split virtqueue (docs/design.md "The guest driver"):
 * lays out desc/avail/used in guest memory, adds buffer chains (direct or
 * through an indirect table), publishes the avail index, decides whether to
 * kick (VIRTIO_RING_F_EVENT_IDX or VRING_USED_F_NO_NOTIFY), and reaps used
 * buffers. Tests and the benchmark use it to play the guest, the way Linux's
 * tools/virtio plays one for vringh.
 *
 * It accesses guest memory only through a struct vn_gmem (its own view, which
 * may map the same memfd at other host addresses than the device's), with the
 * same atomic index accessors as the device; see the comments in the .c for
 * what each one pairs with.
 *
 * Context: one thread at a time per ring (the "driver thread").
 */

#include <stdbool.h>
#include <stdint.h>

#include "mem/gmem.h"

struct vn_vdrv_buf {
	uint64_t gpa;
	uint32_t len;
};

/**
 * struct vn_vdrv_ring_cfg - where the ring lives
 * @mem: the driver's view of guest memory; must outlive the ring
 * @num: queue size (power of 2, <= 32768)
 * @desc, @avail, @used: ring addresses (see vn_vdrv_ring_layout())
 * @indirect_area: guest memory for indirect tables, num * max_indirect * 16
 *                 bytes (one table slot per head), or 0 for none
 * @max_indirect: entries per indirect table
 * @indirect: use indirect tables for chains of more than one buffer
 * @event_idx: VIRTIO_RING_F_EVENT_IDX was negotiated
 */
struct vn_vdrv_ring_cfg {
	const struct vn_gmem *mem;
	unsigned int num;
	uint64_t desc, avail, used;
	uint64_t indirect_area;
	unsigned int max_indirect;
	bool indirect;
	bool event_idx;
};

struct vn_vdrv_head {
	void *token;
	uint16_t ndesc;
	bool busy;
};

struct vn_vdrv_ring {
	struct vn_vdrv_ring_cfg cfg;
	uint16_t num;
	uint16_t free_head;
	uint16_t num_free;
	uint16_t *next;                 /* private copy of the chain links */
	struct vn_vdrv_head *heads;
	uint16_t avail_idx;             /* next avail entry; published by kick_prepare */
	uint16_t kicked_avail_idx;      /* avail idx at the last kick_prepare */
	uint16_t last_used_idx;
	bool cb_enabled;

	uint64_t n_kicks, n_kicks_suppressed, n_added, n_used;
};

/**
 * vn_vdrv_ring_layout() - place desc, avail and used one after the other
 * @base: guest address, 16-byte aligned
 * @align: alignment of the used ring (4 for virtio 1.x, 4096 for legacy)
 * Return: total bytes from @base to the end of the used ring.
 */
uint64_t vn_vdrv_ring_layout(unsigned int num, uint64_t base, uint64_t align, uint64_t *desc,
			     uint64_t *avail, uint64_t *used);

/**
 * vn_vdrv_ring_init() - zero the rings in guest memory and set up the free list
 * Return: 0, -EINVAL for a bad cfg, -EFAULT if the rings are not in guest
 * memory, -ENOMEM.
 */
VN_MUST_CHECK int vn_vdrv_ring_init(struct vn_vdrv_ring *ring, const struct vn_vdrv_ring_cfg *cfg);

/** vn_vdrv_ring_destroy() - free private memory; safe twice */
void vn_vdrv_ring_destroy(struct vn_vdrv_ring *ring);

/**
 * vn_vdrv_ring_add() - add a chain: @out (device-readable) then @in (writable)
 * @token: returned by vn_vdrv_ring_get_used() for this chain (not NULL)
 *
 * Not visible to the device until vn_vdrv_ring_kick_prepare().
 * Return: 0, -ENOSPC if the ring is full, -EINVAL for an empty chain,
 * -EFAULT if the ring is not writable.
 */
VN_MUST_CHECK int vn_vdrv_ring_add(struct vn_vdrv_ring *ring, const struct vn_vdrv_buf *out,
				   unsigned int out_n, const struct vn_vdrv_buf *in,
				   unsigned int in_n, void *token);

/**
 * vn_vdrv_ring_add_head() - make descriptor @head available as is
 *
 * For tests that write hostile descriptor tables by hand: no descriptor is
 * written, no free-list bookkeeping is done.
 * Return: 0 or -EFAULT.
 */
VN_MUST_CHECK int vn_vdrv_ring_add_head(struct vn_vdrv_ring *ring, uint16_t head);

/**
 * vn_vdrv_ring_kick_prepare() - publish added chains; should we kick?
 * Return: 1 to kick the device, 0 if it asked not to be, -errno.
 */
VN_MUST_CHECK int vn_vdrv_ring_kick_prepare(struct vn_vdrv_ring *ring);

/**
 * vn_vdrv_ring_get_used() - reap one used chain
 * Return: 1 with *@token and *@len set, 0 if none, -EINVAL if the device
 * returned an id that is not in flight or moved used->idx too far.
 */
VN_MUST_CHECK int vn_vdrv_ring_get_used(struct vn_vdrv_ring *ring, void **token, uint32_t *len);

/** vn_vdrv_ring_disable_cb() - ask the device not to interrupt (a hint) */
void vn_vdrv_ring_disable_cb(struct vn_vdrv_ring *ring);

/**
 * vn_vdrv_ring_enable_cb() - ask for interrupts again, then re-check used
 * Return: 1 if used chains are pending (reap them before sleeping), 0 if
 * none, -errno.
 */
VN_MUST_CHECK int vn_vdrv_ring_enable_cb(struct vn_vdrv_ring *ring);

/** vn_vdrv_ring_num_free() - free descriptors */
unsigned int vn_vdrv_ring_num_free(const struct vn_vdrv_ring *ring);

#endif
