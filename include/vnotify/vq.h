/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_VQ_H
#define VN_VNOTIFY_VQ_H

/*
 * The split virtqueue, device side (virtio 1.2 §2.7). What a device
 * implementation needs to consume requests: pop a chain, push it back used,
 * decide whether to interrupt, and suppress kicks while it drains.
 *
 * The usual handler, which loses no kick that races the end of the drain:
 *
 *	do {
 *		vn_vq_disable_notify(vq);
 *		while ((r = vn_vq_pop(vq, &elem)) > 0) {
 *			... handle elem.iov ...
 *			vn_vq_push(vq, elem.head, written);
 *		}
 *		if (r < 0)
 *			break;          (the device is now NEEDS_RESET)
 *	} while (vn_vq_enable_notify(vq) > 0);
 *	vn_vdev_notify_queue(vdev, vq);   (interrupt the guest if it wants one)
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <vnotify/error.h>

struct vn_vq;

/* virtio 1.2 §2.7: the largest split queue. */
#define VN_VQ_MAX_SIZE 32768

/**
 * struct vn_vq_elem - one descriptor chain taken from a queue
 * @iov: the caller's iovec array, @iov_cap entries. After a pop,
 *       iov[0 .. out_num) are device-readable (driver to device) and
 *       iov[out_num .. out_num + in_num) device-writable. They point into
 *       guest memory, are borrowed, and stay valid while the memory map does.
 * @iov_cap: entries in @iov; a chain that needs more is a guest error (-E2BIG)
 * @out_num: readable iovecs
 * @in_num: writable iovecs
 * @out_len: total readable bytes
 * @in_len: total writable bytes
 * @head: the chain's head descriptor index, to give back to vn_vq_push()
 * @ndesc: descriptors the chain consisted of (direct plus indirect)
 */
struct vn_vq_elem {
	struct iovec *iov;
	unsigned int iov_cap;
	unsigned int out_num;
	unsigned int in_num;
	uint32_t out_len;
	uint32_t in_len;
	uint16_t head;
	uint16_t ndesc;
};

/**
 * vn_vq_pop() - take the next available chain from a virtqueue
 * @vq: the queue
 * @elem: @elem->iov and @elem->iov_cap set by the caller; the rest is filled
 *
 * Each descriptor is copied once from guest memory, checked, and only the
 * copy is used. A malformed chain (index out of range, loop, nested indirect,
 * indirect with NEXT, bad indirect length, address outside guest memory,
 * length overflow, readable after writable, avail index too far ahead)
 * breaks the queue: the error is logged (rate-limited), the owner is told
 * (the device core sets NEEDS_RESET and raises a config interrupt), and every
 * later pop returns -EIO until the queue is reset.
 *
 * Context: the queue's owning thread.
 * Return: 1 if a chain was taken, 0 if the queue is empty, -EIO if the queue
 * is broken or not ready, or the guest error: -EINVAL (malformed value),
 * -ELOOP (a loop: more direct descriptors than the ring holds, an indirect
 * table walked past its end, or a chain longer than the largest queue size
 * the device supports), -EFAULT (outside guest memory),
 * -EOVERFLOW (byte total above 4 GiB - 1), -E2BIG (more than @iov_cap iovecs).
 */
VN_MUST_CHECK int vn_vq_pop(struct vn_vq *vq, struct vn_vq_elem *elem);

/**
 * vn_vq_push() - return a chain to the driver through the used ring
 * @vq: the queue
 * @head: the head of a chain popped earlier and not pushed since
 * @len: bytes written into the chain's writable part
 *
 * Publishes the new used index at once. Call vn_vq_should_notify() (or the
 * device core's notify helper) afterwards to decide on an interrupt.
 *
 * On failure the chain is abandoned (see vn_vq_abandon()): a broken ring
 * takes nothing back, and the chain no longer counts as in flight.
 *
 * Context: the queue's owning thread.
 * Return: 0, -EIO if the queue is broken or not ready, -EFAULT if the used
 * ring is no longer in guest memory (the queue is then broken).
 */
VN_MUST_CHECK int vn_vq_push(struct vn_vq *vq, uint16_t head, uint32_t len);

/**
 * vn_vq_abandon() - give up a popped chain without returning it
 * @vq: the queue
 * @head: the head of a chain popped earlier and not pushed since
 *
 * For a chain the device cannot complete: one so malformed that it has no
 * place for a status (the device then sets NEEDS_RESET), or one whose queue
 * broke. The chain stops counting as in flight, so a wait for the queue to
 * drain does not wait for it; the driver gets it back only by resetting the
 * device (virtio 1.2 §2.1.2: after NEEDS_RESET the driver must reset).
 * On a queue that is not ready (reset since the pop) this does nothing.
 *
 * Context: the queue's owning thread.
 */
void vn_vq_abandon(struct vn_vq *vq, uint16_t head);

/**
 * vn_vq_should_notify() - does the driver want an interrupt now?
 * @vq: the queue, after one or more vn_vq_push() calls
 *
 * With VIRTIO_RING_F_EVENT_IDX: true when the used index crossed the
 * driver's used_event since the last interrupt; without it: unless the
 * driver set VRING_AVAIL_F_NO_INTERRUPT. Records that an interrupt is being
 * sent when it returns true.
 *
 * Context: the queue's owning thread.
 * Return: 1 to interrupt, 0 not to, -errno if the ring is unreadable.
 */
VN_MUST_CHECK int vn_vq_should_notify(struct vn_vq *vq);

/**
 * vn_vq_disable_notify() - ask the driver not to kick while we drain
 *
 * A hint: the driver may still kick. Context: the queue's owning thread.
 */
void vn_vq_disable_notify(struct vn_vq *vq);

/**
 * vn_vq_enable_notify() - ask for kicks again, then re-check the avail ring
 *
 * A kick the driver skipped because notifications were off is not lost: the
 * avail index is re-read after the enable is published (a store->load order
 * that pairs with the driver's publish-avail-then-check).
 *
 * Context: the queue's owning thread.
 * Return: 1 if chains are available (drain again), 0 if none, -errno if the
 * avail index is bad (the queue is then broken).
 */
VN_MUST_CHECK int vn_vq_enable_notify(struct vn_vq *vq);

/**
 * vn_vq_avail_count() - chains the driver has made available but we did not pop
 * Context: the queue's owning thread.
 * Return: the count (0..queue size), -EIO if not ready or broken, -EINVAL if
 * the avail index ran more than the queue size ahead (the queue is broken).
 */
VN_MUST_CHECK int vn_vq_avail_count(struct vn_vq *vq);

/** vn_vq_index() - the queue's index in its device */
unsigned int vn_vq_index(const struct vn_vq *vq);

/** vn_vq_size() - the negotiated queue size */
unsigned int vn_vq_size(const struct vn_vq *vq);

/** vn_vq_is_ready() - enabled by the driver and not broken */
bool vn_vq_is_ready(const struct vn_vq *vq);

#endif
