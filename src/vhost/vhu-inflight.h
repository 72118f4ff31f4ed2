/* SPDX-License-Identifier: MIT */
#ifndef VN_VHOST_VHU_INFLIGHT_H
#define VN_VHOST_VHU_INFLIGHT_H

/*
 * The inflight region (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, vhost-user.rst
 * "Inflight I/O tracking"), split rings only.
 *
 * GET_INFLIGHT_FD: we create a sealed memfd of num_queues parts, one per
 * queue, each a struct vn_vq_inflight_hdr and queue_size descriptor entries,
 * 64-byte aligned; the frontend keeps it across our restarts and gives it
 * back with SET_INFLIGHT_FD. When a ring starts, vn_vhu_inflight_recover()
 * reads its part (once, into our own memory: the frontend can write to it
 * at any time, so its content is frontend input like any message) and tells
 * which chains to redo; the virtqueue then keeps the region up to date
 * (vn_vq_set_inflight()).
 */

#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "virtio/vq.h"

/* GET/SET_INFLIGHT_FD payload; QEMU sends 24 bytes (its struct's padding). */
struct vn_vhu_inflight_msg {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
} __attribute__((packed));

#define VN_VHU_INFLIGHT_MSG_MIN 20u
#define VN_VHU_INFLIGHT_MSG_MAX 24u

/* The region as mapped by the server. */
struct vn_vhu_inflight {
	int fd; /* -1: none */
	void *map;
	uint64_t size;
	uint16_t num_queues, queue_size;
};

/** vn_vhu_inflight_queue_bytes() - bytes of one queue's part (64-byte aligned) */
uint64_t vn_vhu_inflight_queue_bytes(uint16_t queue_size);

/**
 * vn_vhu_inflight_create() - a fresh zeroed region for GET_INFLIGHT_FD
 * @num_queues, @queue_size: as the frontend asked, already checked
 * Return: 0 or -errno; @in holds the mapped region and its fd.
 */
VN_MUST_CHECK int vn_vhu_inflight_create(struct vn_vhu_inflight *in, uint16_t num_queues,
					 uint16_t queue_size);

/**
 * vn_vhu_inflight_adopt() - SET_INFLIGHT_FD: check @m and @fd and map it
 * @fd: owned from now on (closed on failure)
 * @why: receives the refused field, for the log
 *
 * The size must be exactly num_queues parts of queue_size, the offset page
 * aligned, the fd a regular file (a memfd) holding offset + size bytes and
 * sealed against shrinking: a frontend that could truncate it later would
 * have us fault on the next pop.
 * Return: 0 or -EINVAL/-errno.
 */
VN_MUST_CHECK int vn_vhu_inflight_adopt(struct vn_vhu_inflight *in,
					const struct vn_vhu_inflight_msg *m, int fd,
					const char **why);

/** vn_vhu_inflight_release() - unmap and close; the struct becomes "none" */
void vn_vhu_inflight_release(struct vn_vhu_inflight *in);

/** vn_vhu_inflight_queue() - queue @q's part, or NULL (no region, @q past it) */
struct vn_vq_inflight_hdr *vn_vhu_inflight_queue(const struct vn_vhu_inflight *in,
						 unsigned int q);

/**
 * struct vn_vhu_inflight_plan - what recovering one queue's part says
 * @resubmit: heads to redo, oldest pop first (malloc'd, @n entries)
 * @n: how many (last_avail_idx becomes the guest's used_idx + @n)
 * @counter: the next pop counter
 */
struct vn_vhu_inflight_plan {
	uint16_t *resubmit;
	unsigned int n;
	uint64_t counter;
};

/**
 * vn_vhu_inflight_recover() - read queue part @r for a ring of @num
 * descriptors whose used->idx is @used_idx
 * @why: receives the refused field, for the log
 *
 * A fresh part (version 0) is initialised and gives nothing to redo. A part
 * in use must have version 1 and desc_num = the region's queue size >= @num;
 * an entry's flag must be 0 or 1 and a flagged head must be < @num.
 * last_batch_head's flag is cleared when used_idx shows its push completed.
 * Return: 0 or -EINVAL (the region lies: the ring must not start), -ENOMEM.
 */
VN_MUST_CHECK int vn_vhu_inflight_recover(struct vn_vq_inflight_hdr *r, uint16_t queue_size,
					  uint16_t num, uint16_t used_idx,
					  struct vn_vhu_inflight_plan *plan, const char **why);

#endif
