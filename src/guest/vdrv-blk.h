/* SPDX-License-Identifier: MIT */
#ifndef VN_GUEST_VDRV_BLK_H
#define VN_GUEST_VDRV_BLK_H

/*
 * The guest's virtio-blk driver (virtio 1.2 §5.2) on top of vdrv-pci: each
 * request is a chain header (16 bytes, device-readable) + data segments +
 * status byte (device-writable), direct or through an indirect table.
 *
 * One queue per thread ("vCPU"): the queue functions take no lock, allocate
 * nothing and make no syscall besides the doorbell write (only when the
 * device asks for a kick: event index or NO_NOTIFY) and the interrupt wait.
 * Request headers and status bytes live in per-queue slots of guest RAM
 * taken once at creation and reused across resets.
 *
 * Typical loop of a vCPU:
 *
 *	while (...) {
 *		vn_vdrv_blkq_submit(q, &io) ... until -ENOSPC or enough;
 *		vn_vdrv_blkq_kick(q);
 *		if (vn_vdrv_blkq_reap(q, done, N) == 0)
 *			vn_vdrv_blkq_wait(q, timeout_ms);  // or spin on reap: polling
 *	}
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ring.h>

#include "guest/vdrv-pci.h"

/* Completion states that are not a status byte from the device. */
#define VN_VDRV_BLK_S_ABORTED (-ECANCELED) /* in flight when the device was reset */
#define VN_VDRV_BLK_S_NONE (-ENODATA)	   /* completed without writing the status byte */
#define VN_VDRV_BLK_S_RAW (-ENOMSG)	   /* a raw chain: the caller reads its own status */

/* What the driver accepts by default (VERSION_1 is added in modern mode). */
#define VN_VDRV_BLK_FEATURES_DEFAULT                                                               \
	((1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |               \
	 (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |                        \
	 (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH) |                          \
	 (1ull << VIRTIO_BLK_F_MQ) | (1ull << VIRTIO_BLK_F_DISCARD) |                              \
	 (1ull << VIRTIO_BLK_F_WRITE_ZEROES) | (1ull << VIRTIO_BLK_F_RO) |                         \
	 (1ull << VN_VIRTIO_F_NOTIFICATION_DATA))

#define VN_VDRV_BLK_MAX_SEGS_DEFAULT 4u
#define VN_VDRV_BLK_MAX_SEGS_LIMIT 64u
#define VN_VDRV_BLK_QUEUE_SIZE_DEFAULT 256u

/**
 * struct vn_vdrv_blk_cfg - how to drive a virtio-blk function
 * @slot, @mode: as struct vn_vdrv_pci_cfg
 * @features: features the driver accepts (ring and blk bits); 0 means
 *            VN_VDRV_BLK_FEATURES_DEFAULT. Leave out VIRTIO_RING_F_EVENT_IDX
 *            or _INDIRECT_DESC to drive the device without them.
 * @nr_queues: queues to use; 0: all the device has (1 without MQ)
 * @queue_size: 0: the device's maximum, at most 256 (legacy: the device's)
 * @max_segs: data segments per request, 0: 4, at most
 *            VN_VDRV_BLK_MAX_SEGS_LIMIT. The indirect tables have room for
 *            @max_segs + 2 entries.
 */
struct vn_vdrv_blk_cfg {
	unsigned int slot;
	enum vn_vdrv_pci_mode mode;
	uint64_t features;
	unsigned int nr_queues;
	unsigned int queue_size;
	unsigned int max_segs;
};

/** struct vn_vdrv_blk_info - the device as negotiated and configured */
struct vn_vdrv_blk_info {
	uint64_t features;   /* negotiated */
	uint64_t capacity;   /* 512-byte sectors */
	uint32_t size_max;   /* 0 if not offered */
	uint32_t seg_max;    /* 0 if not offered */
	uint32_t blk_size;   /* 512 if not offered */
	uint32_t num_queues; /* what the device has (1 without MQ) */
	bool ro;
};

/**
 * struct vn_vdrv_blk_io - one request
 * @type: VIRTIO_BLK_T_*
 * @sector: 512-byte sector (0 for FLUSH, GET_ID, DISCARD, WRITE_ZEROES)
 * @segs: data segments: device-writable for IN and GET_ID, readable otherwise
 * @nsegs: 0..max_segs
 * @token: returned with the completion (not NULL)
 */
struct vn_vdrv_blk_io {
	uint32_t type;
	uint64_t sector;
	const struct vn_vdrv_buf *segs;
	unsigned int nsegs;
	void *token;
};

/**
 * struct vn_vdrv_blk_done - one completion
 * @token: the request's token
 * @status: VIRTIO_BLK_S_OK / _IOERR / _UNSUPP (the byte the device wrote),
 *          or VN_VDRV_BLK_S_ABORTED / _NONE / _RAW
 * @len: bytes the device says it wrote (the used element's len)
 */
struct vn_vdrv_blk_done {
	void *token;
	int status;
	uint32_t len;
};

/** struct vn_vdrv_blkq_stats - counters of one queue (owning thread's view) */
struct vn_vdrv_blkq_stats {
	uint64_t submitted;	   /* requests added to the ring */
	uint64_t completed;	   /* requests reaped (aborted ones included) */
	uint64_t kicks;		   /* doorbell writes */
	uint64_t kicks_suppressed; /* kick_prepare said the device did not want one */
	uint64_t kicks_ioeventfd;  /* doorbells an ioeventfd took (the rest were exits) */
	uint64_t irqs;		   /* interrupts taken */
	uint64_t waits;		   /* calls of vn_vdrv_blkq_wait() that slept */
};

struct vn_vdrv_blk;
struct vn_vdrv_blkq;

/**
 * vn_vdrv_blk_new() - probe, negotiate, set up the queues, DRIVER_OK
 * @env: scanned with vn_vdrv_pci_scan()
 * Return: 0 with *@out set; -ENODEV if @cfg->slot is no virtio-blk device
 * or refuses the features; -EINVAL for a bad @cfg; -ENOMEM (host or guest
 * RAM); -EIO if DRIVER_OK does not stick.
 */
VN_MUST_CHECK int vn_vdrv_blk_new(struct vn_vdrv_env *env, const struct vn_vdrv_blk_cfg *cfg,
				  struct vn_vdrv_blk **out);

/**
 * vn_vdrv_blk_free() - reset the device and free the driver; NULL is fine
 * Context: no thread uses its queues any more.
 */
void vn_vdrv_blk_free(struct vn_vdrv_blk *blk);

/** vn_vdrv_blk_get_info() - what was negotiated and read from config space */
const struct vn_vdrv_blk_info *vn_vdrv_blk_get_info(const struct vn_vdrv_blk *blk);

/** vn_vdrv_blk_pci() - the transport, for status, bus master, reset */
struct vn_vdrv_pci *vn_vdrv_blk_pci(struct vn_vdrv_blk *blk);

/** vn_vdrv_blk_nr_queues() - queues in use */
unsigned int vn_vdrv_blk_nr_queues(const struct vn_vdrv_blk *blk);

/** vn_vdrv_blk_queue() - queue @i (< nr_queues), or NULL */
struct vn_vdrv_blkq *vn_vdrv_blk_queue(struct vn_vdrv_blk *blk, unsigned int i);

/**
 * vn_vdrv_blk_reinit() - bring the device back after a reset (or NEEDS_RESET)
 *
 * Reaps what the device completed before it was reset, turns every request
 * still in flight into a VN_VDRV_BLK_S_ABORTED completion (the owner reaps
 * them as usual), then resets, negotiates the same features, sets the
 * queues up again with fresh rings and sets DRIVER_OK.
 * Return: 0 or an error of vn_vdrv_blk_new().
 * Context: no thread uses the queues meanwhile (a guest kernel quiesces its
 * queues the same way).
 */
VN_MUST_CHECK int vn_vdrv_blk_reinit(struct vn_vdrv_blk *blk);

/**
 * vn_vdrv_blkq_submit() - add a request to the ring (not yet kicked)
 * Return: 0; -ENOSPC if the queue is full (reap first); -EINVAL for a bad
 * @io (no token, too many segments); -EFAULT if a ring write failed.
 * Context: the queue's owning thread.
 */
VN_MUST_CHECK int vn_vdrv_blkq_submit(struct vn_vdrv_blkq *q, const struct vn_vdrv_blk_io *io);

/**
 * vn_vdrv_blkq_submit_raw() - add a chain built by the caller, as is
 *
 * For tests that send malformed requests: the driver adds @out then @in
 * (through an indirect table if the ring uses them and it fits), without
 * looking at them. Its completion has status VN_VDRV_BLK_S_RAW.
 * Return: as vn_vdrv_blkq_submit().
 */
VN_MUST_CHECK int vn_vdrv_blkq_submit_raw(struct vn_vdrv_blkq *q, const struct vn_vdrv_buf *out,
					  unsigned int out_n, const struct vn_vdrv_buf *in,
					  unsigned int in_n, void *token);

/**
 * vn_vdrv_blkq_kick() - publish what was submitted; ring the doorbell if the
 * device wants it
 * Return: 1 if the doorbell was written, 0 if not needed, -errno.
 */
VN_MUST_CHECK int vn_vdrv_blkq_kick(struct vn_vdrv_blkq *q);

/**
 * vn_vdrv_blkq_reap() - take up to @max completions
 * Return: the number taken (0 if none), or -EIO if the device broke the
 * used ring (an id not in flight).
 */
VN_MUST_CHECK int vn_vdrv_blkq_reap(struct vn_vdrv_blkq *q, struct vn_vdrv_blk_done *done,
				    unsigned int max);

/**
 * vn_vdrv_blkq_wait() - sleep until the queue's interrupt (or something to reap)
 * @timeout_ms: -1: no limit
 *
 * Enables interrupts on the ring, re-checks it, waits on the vector's
 * eventfd, and disables them again (they stay off while the thread is
 * busy, as Linux's NAPI-like drivers do).
 * Return: 1 if completions may be ready, 0 on timeout, -errno.
 */
VN_MUST_CHECK int vn_vdrv_blkq_wait(struct vn_vdrv_blkq *q, int timeout_ms);

/**
 * vn_vdrv_blkq_rw_sync() - submit one request, kick, wait for it, return its status
 * @timeout_ms: for the whole request
 * Return: the completion's status (VIRTIO_BLK_S_* or VN_VDRV_BLK_S_*);
 * -EBUSY if other requests are in flight; -ETIMEDOUT; other -errno.
 */
VN_MUST_CHECK int vn_vdrv_blkq_rw_sync(struct vn_vdrv_blkq *q, const struct vn_vdrv_blk_io *io,
				       int timeout_ms);

/** vn_vdrv_blkq_inflight() - requests submitted and not reaped */
unsigned int vn_vdrv_blkq_inflight(const struct vn_vdrv_blkq *q);

/** vn_vdrv_blkq_depth() - how many requests can be in flight at most */
unsigned int vn_vdrv_blkq_depth(const struct vn_vdrv_blkq *q);

/** vn_vdrv_blkq_vq() - the transport queue (doorbell, ring, interrupt fd) */
struct vn_vdrv_vq *vn_vdrv_blkq_vq(struct vn_vdrv_blkq *q);

/** vn_vdrv_blkq_get_stats() - copy the counters. Context: the owning thread. */
void vn_vdrv_blkq_get_stats(const struct vn_vdrv_blkq *q, struct vn_vdrv_blkq_stats *out);

#endif
