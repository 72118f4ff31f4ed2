/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_BLK_H
#define VN_VNOTIFY_BLK_H

/*
 * virtio-blk (virtio 1.2 §5.2): a block device over an image file or a
 * block device, with an io_uring backend and a thread-pool fallback.
 *
 * The device is transport-neutral: vn_blk_new() creates its own struct
 * vn_vdev (device id 2), which virtio-pci, virtio-mmio or the vhost-user
 * server drive through <vnotify/vdev.h>; the transport also binds the
 * guest memory it works on (vn_vdev_bind_mem()). Requests are popped and
 * submitted on whichever thread owns a queue (a vCPU under the device lock,
 * or the queue's iothread) and completed on the queue's completion iothread
 * (the device's, or each queue's own: @queue_iothreads), which takes the
 * queue's run lock (vn_vdev_queue_lock()) to push them.
 * Completions never take the device lock, so a reset, which runs under the
 * device lock, can wait for the I/O in flight.
 *
 * Requests: IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES. A request for
 * sectors outside the disk, a host I/O error, or a write to a read-only disk
 * completes with VIRTIO_BLK_S_IOERR; an unknown type with
 * VIRTIO_BLK_S_UNSUPP. A malformed request (header shorter than 16 bytes,
 * no device-writable status byte, data not a multiple of 512 bytes, more
 * than seg_max data segments) puts the device into NEEDS_RESET.
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/error.h>

struct vn_blk;
struct vn_vdev;
struct vn_iothread;

/* virtio 1.2 §5.2.6: GET_ID returns at most 20 bytes. */
#define VN_BLK_SERIAL_LEN 20

/** enum vn_blk_backend - how the device does its I/O */
enum vn_blk_backend {
	VN_BLK_BACKEND_AUTO = 0, /* io_uring; the pool if io_uring is refused (one log line) */
	VN_BLK_BACKEND_URING,	 /* io_uring only; vn_blk_new() fails without it */
	VN_BLK_BACKEND_POOL,	 /* worker threads doing preadv/pwritev/fdatasync/fallocate */
};

/**
 * struct vn_blk_cfg - how to build a virtio-blk device
 * @name: for log messages ("blk0"); NULL gives "blk"
 * @path: the image file or block device; NULL to use @fd
 * @fd: used only when @path is NULL: the device works on a dup of it (the
 *      caller keeps @fd). With @direct, O_DIRECT is set on the shared file
 *      description, so the caller's fd sees it too.
 * @readonly: open read-only and offer VIRTIO_BLK_F_RO; writes get IOERR
 * @direct: O_DIRECT (bypass the page cache); guest buffers must then be
 *          aligned as the filesystem wants, or the I/O fails with IOERR
 * @nr_queues: request queues, 1..64 (0 means 1); more than one offers MQ
 * @queue_size: the largest queue size, a power of 2 up to 1024 (0 means 256)
 * @serial: the GET_ID string, up to 20 bytes used; NULL gives an empty ID
 * @backend: see enum vn_blk_backend
 * @iothread: where completions are processed. NULL: the device creates and
 *            owns one. Otherwise it must be started and outlive the device.
 *            Give the queues' iothread here and a kick there completes what
 *            io_uring finished at submit at once, on that thread.
 * @queue_iothreads: optional, instead of @iothread: queue q's completions
 *            are processed on @queue_iothreads[q % @nr_queue_iothreads]
 *            (each started, outliving the device). Give the iothreads that
 *            run the queues (a vhost-user server's, same mapping) and each
 *            queue pops, submits, reaps and signals on one thread: one
 *            hand-off per request. The pool backend's workers still hand
 *            completions over (through the queue's eventfd).
 * @nr_queue_iothreads: entries of @queue_iothreads
 * @discard: offer VIRTIO_BLK_F_DISCARD (not with @readonly)
 * @write_zeroes: offer VIRTIO_BLK_F_WRITE_ZEROES (not with @readonly)
 * @seg_max: most data segments per request (0 means min(126, @queue_size - 2);
 *           at most min(@queue_size - 2, 1000))
 * @blk_size: logical block size in bytes: a power of 2, 512..65536
 *            (0 means 512). I/O not aligned to it completes with IOERR.
 * @pool_threads: worker threads of the pool backend (0 means 4)
 */
struct vn_blk_cfg {
	const char *name;
	const char *path;
	int fd;
	bool readonly;
	bool direct;
	unsigned int nr_queues;
	unsigned int queue_size;
	const char *serial;
	enum vn_blk_backend backend;
	struct vn_iothread *iothread;
	struct vn_iothread *const *queue_iothreads;
	unsigned int nr_queue_iothreads;
	bool discard;
	bool write_zeroes;
	unsigned int seg_max;
	unsigned int blk_size;
	unsigned int pool_threads;
};

/**
 * struct vn_blk_stats - counters of one request queue
 * @requests: requests completed (any status)
 * @bytes_read: data bytes read from the image by IN requests that succeeded
 * @bytes_written: data bytes written by OUT requests that succeeded
 * @errors: requests completed with IOERR or UNSUPP
 * @in_flight: requests submitted to the backend and not completed yet
 * @flushes: FLUSH requests completed successfully
 * @held: requests the backend finished that a fault delay still holds back
 *        from the guest (struct vn_blk_fault): in flight as the guest sees it
 */
struct vn_blk_stats {
	uint64_t requests;
	uint64_t bytes_read;
	uint64_t bytes_written;
	uint64_t errors;
	uint64_t in_flight;
	uint64_t flushes;
	uint64_t held;
};

/**
 * vn_blk_new() - open the image and create the device in its reset state
 * @cfg: the configuration; strings are copied
 * @out: set to the device on success
 *
 * The image's size, rounded down to 512 bytes, is the capacity. The
 * device has @cfg->nr_queues + 1 interrupt vectors (one per queue, one for
 * config changes); the transport binds how they reach the guest, and its
 * guest memory.
 *
 * Return: 0; -EINVAL for a bad @cfg; -errno from open/fstat; -ENOSYS or
 * -errno from io_uring with VN_BLK_BACKEND_URING; -ENOMEM; -errno from
 * thread, eventfd or iothread creation.
 * Context: not on @cfg->iothread.
 */
VN_MUST_CHECK int vn_blk_new(const struct vn_blk_cfg *cfg, struct vn_blk **out);

/**
 * vn_blk_free() - destroy a device; NULL is fine
 *
 * Waits for the I/O still in flight (its completions are dropped), detaches
 * from the iothread, frees the device's struct vn_vdev and closes the image.
 * Context: no transport uses the device any more (no queue handler runs);
 * not on the completion iothread.
 */
void vn_blk_free(struct vn_blk *blk);

/** vn_blk_vdev() - the device core object, for a transport */
struct vn_vdev *vn_blk_vdev(struct vn_blk *blk);

/** vn_blk_capacity() - the disk size in 512-byte sectors */
uint64_t vn_blk_capacity(const struct vn_blk *blk);

/** vn_blk_backend_name() - "uring" or "pool": what the device really uses */
const char *vn_blk_backend_name(const struct vn_blk *blk);

/**
 * vn_blk_get_stats() - copy the counters of queue @q
 * Return: 0, or -EINVAL for a bad @q.
 * Context: any thread (each counter is exact on its own; the set is not a
 * snapshot).
 */
VN_MUST_CHECK int vn_blk_get_stats(const struct vn_blk *blk, unsigned int q,
				   struct vn_blk_stats *out);

/**
 * vn_blk_move_queue() - reap queue @q's completions on iothread @to from now
 *
 * The backend's eventfd and the queue's fault-delay timer leave the old
 * loop and join @to's, which then completes whatever finished meanwhile at
 * once: no completion waits for longer than the move. Pair it with the
 * transport's move of the queue's notifier (vn_virtio_pci_move_queue()) so
 * one thread keeps doing both. @to must be started and outlive the device.
 * Return: 0 (also when it is there already); -EINVAL for a bad @q or a NULL
 * @to; -errno if @to's loop refused the fd or timer (the queue stays where
 * it was).
 * Context: not on an iothread of this device; holding no queue run lock;
 * moves of one device serialised by the caller.
 */
VN_MUST_CHECK int vn_blk_move_queue(struct vn_blk *blk, unsigned int q, struct vn_iothread *to);

/**
 * vn_blk_queue_iothread() - where queue @q's completions are reaped (NULL for a bad @q)
 * Context: any thread.
 */
struct vn_iothread *vn_blk_queue_iothread(const struct vn_blk *blk, unsigned int q);

/**
 * vn_blk_drain() - wait until every request submitted so far has completed
 *
 * Completions are pushed to the guest as usual (held ones from a fault
 * delay at once). For a transport that must quiesce the queues (a vhost-user
 * memory table change, GET_VRING_BASE): stop the kicks first, then drain.
 * Context: any thread but the completion iothread, holding no queue run
 * lock of this device.
 */
void vn_blk_drain(struct vn_blk *blk);

/**
 * struct vn_blk_fault - host I/O fault injection, for tests of any layer
 * @error: a negative errno (-EIO, -ENOSPC, ...) that replaces the result of
 *         the next @count backend completions (the I/O itself was done; the
 *         guest sees VIRTIO_BLK_S_IOERR, as for a real host error)
 * @count: how many completions to fail; 0 fails none
 * @delay_ns: hold every backend completion this long before it is given to
 *            the guest (a slow disk); 0 for none. A reset or vn_blk_drain()
 *            does not wait for the delay.
 * @jitter_ns: add a pseudo-random 0..@jitter_ns to each completion's delay,
 *             so held completions reach the guest out of the order the
 *             backend finished them in (a disk that reorders); 0 for none
 *
 * Only requests that reach the backend (IN, OUT, FLUSH, DISCARD,
 * WRITE_ZEROES) are affected; GET_ID and requests refused by validation
 * are not.
 */
struct vn_blk_fault {
	int error;
	unsigned int count;
	uint64_t delay_ns;
	uint64_t jitter_ns;
};

/**
 * vn_blk_inject_fault() - set (replace) the fault injection state
 * @fault: the new state; all zero turns injection off
 * Return: 0, or -EINVAL if @fault->count is set and @fault->error is not
 * a negative errno.
 * Context: any thread.
 */
VN_MUST_CHECK int vn_blk_inject_fault(struct vn_blk *blk, const struct vn_blk_fault *fault);

/**
 * vn_blk_fault_pending() - injected errors not yet used up
 * Context: any thread.
 */
unsigned int vn_blk_fault_pending(struct vn_blk *blk);

#endif
