/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_VDEV_H
#define VN_VNOTIFY_VDEV_H

/*
 * The virtio device core (virtio 1.2 §2, §3): features, the status register,
 * config space, queues and their handlers, guest notifiers, reset.
 *
 * A device type (virtio-blk, virtio-net) fills a `static const struct
 * vn_vdev_ops` and creates a device with vn_vdev_new(). Transports
 * (virtio-pci, virtio-mmio, vhost-user) drive the same object through the
 * register-level functions below; they never see the device type's ops, and
 * the device type never sees the transport (CONTRIBUTING.md "API shape").
 *
 * Locking: the functions that model driver register accesses
 * (set_status, set_driver_features, config_read/write, queue_*) run with the
 * device lock held (vn_vdev_lock()). Functions marked "any thread" don't need it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vnotify/error.h>
#include <vnotify/vq.h>

struct vn_vdev;
struct vn_gmem;

/* No MSI-X vector assigned (virtio 1.2 §4.1.5.1.2). */
#define VN_VDEV_NO_VECTOR 0xffff

/* ISR bits (virtio 1.2 §4.1.4.5) */
#define VN_VDEV_ISR_QUEUE 0x1
#define VN_VDEV_ISR_CONFIG 0x2

/**
 * typedef vn_vdev_queue_handler_fn - process a queue after a kick
 * @vdev: the device
 * @vq: the kicked queue
 *
 * Context: the queue's owning thread (a vCPU under the device lock when the
 * kick is synchronous, the queue's iothread when a host notifier is assigned).
 */
typedef void vn_vdev_queue_handler_fn(struct vn_vdev *vdev, struct vn_vq *vq);

/**
 * struct vn_vdev_ops - what a device type implements; every member optional
 * @validate_features: at FEATURES_OK; return 0 to accept the driver's
 *                     features, -errno to refuse (FEATURES_OK then stays clear)
 * @config_write: the driver wrote config space; return 0 or -errno (default
 *                without it: -EPERM, the config space is read-only)
 * @status_changed: after a status write took effect (not called for reset)
 * @reset: the device resets its own state; queues are reset after it returns
 *
 * The device type's own section of the saved state (the DEVICE section of
 * the stream, beside the core's, the queues' and the transport's); the four
 * state_* ops come together or not at all:
 * @state_version: the version of the payload it writes (1 for a first one)
 * @state_size: payload bytes (fixed for the device's lifetime)
 * @state_save: write exactly state_size() bytes into @buf. Return 0, or
 *              -EBUSY while it has work in flight (requests at a backend):
 *              saving needs a quiesced device. Context: device lock and
 *              every queue's run lock held.
 * @state_check: would state_load() accept this payload of @version?
 *               Return 0, or -EINVAL with *@field set to the refused field's
 *               name (a static string). It must not change anything.
 * @state_load: apply a payload state_check() accepted (device lock held)
 * @quiesce_queue: finish the work in flight on queue @q (requests submitted
 *                 to a backend complete to the guest) and return; nothing
 *                 feeds the queue meanwhile. Without it, the device's
 *                 handlers complete every chain before they return.
 *                 Context: device lock NOT held; may wait.
 * @ioeventfd_default: the device type is known to tolerate asynchronous
 *                     doorbells (an ioeventfd: the doorbell write returns
 *                     before the device looks at the ring). The default of
 *                     a transport's ioeventfd=on|off for devices of this
 *                     type; false (the zero value) for a type nobody has
 *                     checked, as the seeds had it. A user's explicit
 *                     option wins.
 */
struct vn_vdev_ops {
	int (*validate_features)(struct vn_vdev *vdev, uint64_t features);
	int (*config_write)(struct vn_vdev *vdev, uint32_t off, const void *buf, uint32_t len);
	void (*status_changed)(struct vn_vdev *vdev, uint8_t old, uint8_t status);
	void (*reset)(struct vn_vdev *vdev);
	uint16_t state_version;
	size_t (*state_size)(struct vn_vdev *vdev);
	int (*state_save)(struct vn_vdev *vdev, void *buf, size_t len);
	int (*state_check)(struct vn_vdev *vdev, unsigned int version, const void *buf, size_t len,
			   const char **field);
	void (*state_load)(struct vn_vdev *vdev, unsigned int version, const void *buf,
			   size_t len);
	void (*quiesce_queue)(struct vn_vdev *vdev, unsigned int q);
	bool ioeventfd_default;
};

/**
 * struct vn_vdev_cfg - how to build a device
 * @name: for log messages ("blk0")
 * @device_id: virtio device ID (2 for block, 1 for net)
 * @ops: the device type's table, static const, not NULL
 * @opaque: the device type's private data (vn_vdev_opaque())
 * @features: device feature bits; VIRTIO_F_VERSION_1 is always added
 * @nr_queues: 1..1024
 * @queue_size_max: power of 2, 1..32768
 * @config_len: bytes of device config space (0..4096)
 * @nr_vectors: guest notifiers (eventfds), 1..2048; how they reach the guest
 *              is the transport's choice (vn_vdev_bind_irq())
 */
struct vn_vdev_cfg {
	const char *name;
	uint32_t device_id;
	const struct vn_vdev_ops *ops;
	void *opaque;
	uint64_t features;
	unsigned int nr_queues;
	unsigned int queue_size_max;
	unsigned int config_len;
	unsigned int nr_vectors;
};

/**
 * vn_vdev_new() - create a device in its reset state
 *
 * The device has no guest memory yet: its transport binds it
 * (vn_vdev_bind_mem()).
 * Return: 0 and *@out set, -EINVAL for a bad @cfg, -ENOMEM, or -errno
 * from eventfd creation.
 */
VN_MUST_CHECK int vn_vdev_new(const struct vn_vdev_cfg *cfg, struct vn_vdev **out);

/**
 * vn_vdev_bind_mem() - give the device the guest memory its queues use
 * @vdev: the device
 * @mem: the guest memory (<vnotify/gmem.h>); must outlive the binding
 *
 * The transport or front door binds it, not the device type:
 * vn_machine_add_virtio_pci() binds the machine's RAM (and
 * vn_virtio_pci_remove() unbinds it); the vhost-user server binds its own
 * map of the frontend's memory for as long as it serves the device. An
 * embedder that drives the device through this header itself binds a map
 * it made with vn_gmem_new(). A device with no memory bound refuses to
 * start a queue: vn_vdev_queue_enable() (and loading a ready queue) fails
 * with -ENXIO.
 *
 * Return: 0; -EINVAL for a NULL @mem; -EBUSY if memory is bound already:
 * a device has one transport at a time, and only that one may unbind it.
 * Context: no device lock held (it takes it); not on a queue's thread.
 */
VN_MUST_CHECK int vn_vdev_bind_mem(struct vn_vdev *vdev, struct vn_gmem *mem);

/**
 * enum vn_vdev_irq - how the transport delivers the device's interrupts
 * @VN_VDEV_IRQ_VECTORS: one eventfd per vector (MSI-X, vhost-user call fds):
 *                       a queue or the config change raises its own vector;
 *                       VN_VDEV_NO_VECTOR stays silent. A new device's model.
 * @VN_VDEV_IRQ_SHARED: one interrupt line (INTx, virtio-mmio): every
 *                      interrupt raises vector 0 and the ISR says why.
 */
enum vn_vdev_irq {
	VN_VDEV_IRQ_VECTORS = 0,
	VN_VDEV_IRQ_SHARED = 1,
};

/**
 * vn_vdev_bind_irq() - the transport sets the interrupt model
 *
 * The device type does not choose: virtio-pci and the vhost-user server
 * bind VN_VDEV_IRQ_VECTORS when they take the device, a transport with one
 * interrupt line binds VN_VDEV_IRQ_SHARED.
 * Return: 0; -EINVAL for an unknown @model; -EBUSY unless the device is in
 * its reset state (status 0), since interrupts may be in flight otherwise.
 * Context: no device lock held (it takes it).
 */
VN_MUST_CHECK int vn_vdev_bind_irq(struct vn_vdev *vdev, enum vn_vdev_irq model);

/**
 * vn_vdev_unbind_mem() - take the guest memory away; nothing bound is fine
 *
 * The device is reset first (the device type waits for its I/O in flight),
 * so no queue uses the old memory once this returns, and the memory may
 * then be freed or bound to another device.
 * Context: as vn_vdev_bind_mem().
 */
void vn_vdev_unbind_mem(struct vn_vdev *vdev);

/**
 * vn_vdev_free() - destroy a device; NULL is fine
 * Context: no queue is being processed and no hook is registered any more.
 */
void vn_vdev_free(struct vn_vdev *vdev);

/** vn_vdev_opaque() - the device type's private pointer from the cfg */
void *vn_vdev_opaque(const struct vn_vdev *vdev);

/**
 * vn_vdev_ioeventfd_default() - the device type's ioeventfd default
 * (struct vn_vdev_ops.ioeventfd_default): what a transport uses when the
 * user did not say ioeventfd=on|off
 */
bool vn_vdev_ioeventfd_default(const struct vn_vdev *vdev);

/** vn_vdev_lock() - take the device lock (docs/design.md "Threads and locks") */
void vn_vdev_lock(struct vn_vdev *vdev);
/** vn_vdev_unlock() - release it */
void vn_vdev_unlock(struct vn_vdev *vdev);

/*
 * VIRTIO_F_NOTIFICATION_DATA (virtio 1.2 §6), missing from older
 * <linux/virtio_config.h>. virtio-pci adds it to a device's offer when
 * ioeventfd is off (docs/design.md "The board").
 */
#define VN_VIRTIO_F_NOTIFICATION_DATA 38

/** vn_vdev_device_features() - what the device offers. Context: any thread. */
uint64_t vn_vdev_device_features(const struct vn_vdev *vdev);

/** vn_vdev_driver_features() - what the driver wrote (final once FEATURES_OK) */
uint64_t vn_vdev_driver_features(const struct vn_vdev *vdev);

/** vn_vdev_has_feature() - is @bit negotiated (offered and accepted)? */
bool vn_vdev_has_feature(const struct vn_vdev *vdev, unsigned int bit);

/**
 * vn_vdev_set_driver_features() - the driver writes its feature bits
 * Return: 0, or -EPERM once FEATURES_OK (or DRIVER_OK) is set: features are
 * final then (virtio 1.2 §3.1.1) and the write is ignored.
 * Context: device lock held.
 */
VN_MUST_CHECK int vn_vdev_set_driver_features(struct vn_vdev *vdev, uint64_t features);

/**
 * vn_vdev_get_status() - the status register, NEEDS_RESET included
 * Context: any thread.
 */
uint8_t vn_vdev_get_status(const struct vn_vdev *vdev);

/**
 * vn_vdev_set_status() - the driver writes the status register
 *
 * 0 resets the device. NEEDS_RESET is the device's bit and is ignored in a
 * write. FEATURES_OK is accepted only if the driver's features are a subset
 * of the device's, include VERSION_1, and the device type agrees; otherwise
 * it stays clear for the driver to see (§3.1.1 step 6). DRIVER_OK is refused
 * for a VERSION_1 driver that has no FEATURES_OK. For a legacy driver (no
 * VERSION_1) features become final at DRIVER_OK.
 *
 * Not VN_MUST_CHECK: the result is advisory. A refused bit is already what
 * the driver reads back, which is how virtio reports it (§3.1.1); a register
 * write path has nothing more to do with it.
 *
 * Return: 0, or -EINVAL when a bit was refused (the rest of the write took
 * effect).
 * Context: device lock held.
 */
int vn_vdev_set_status(struct vn_vdev *vdev, uint8_t status);

/**
 * vn_vdev_reset() - reset the device and every queue to their initial state
 * Context: device lock held.
 */
void vn_vdev_reset(struct vn_vdev *vdev);

/**
 * vn_vdev_set_needs_reset() - the device hit an error it cannot recover from
 *
 * Sets NEEDS_RESET and, with DRIVER_OK set, raises a config interrupt
 * (virtio 1.2 §2.1.2). Called by the queues on a guest error. Idempotent.
 * Context: any thread.
 */
void vn_vdev_set_needs_reset(struct vn_vdev *vdev);

/** vn_vdev_config_len() - bytes of device config space */
unsigned int vn_vdev_config_len(const struct vn_vdev *vdev);

/**
 * vn_vdev_config_read() - the driver reads config space
 * Return: 0, or -EINVAL if [off, off + len) is outside the config space.
 * Context: any thread.
 */
VN_MUST_CHECK int vn_vdev_config_read(struct vn_vdev *vdev, uint32_t off, void *buf,
				      uint32_t len);

/**
 * vn_vdev_config_write() - the driver writes config space
 * Return: 0, -EINVAL out of range, -EPERM if the device type has no
 * config_write, or its error.
 * Context: device lock held.
 */
VN_MUST_CHECK int vn_vdev_config_write(struct vn_vdev *vdev, uint32_t off, const void *buf,
				       uint32_t len);

/**
 * vn_vdev_config_update() - the device changes its own config space
 *
 * Bumps the config generation and, with DRIVER_OK set, sends a config change
 * interrupt.
 * Return: 0 or -EINVAL out of range.
 * Context: any thread.
 */
VN_MUST_CHECK int vn_vdev_config_update(struct vn_vdev *vdev, uint32_t off, const void *buf,
					uint32_t len);

/** vn_vdev_config_generation() - changes whenever the device changes config */
uint32_t vn_vdev_config_generation(const struct vn_vdev *vdev);

/** vn_vdev_nr_queues() - number of queues */
unsigned int vn_vdev_nr_queues(const struct vn_vdev *vdev);

/** vn_vdev_queue() - queue @q, or NULL if out of range */
struct vn_vq *vn_vdev_queue(struct vn_vdev *vdev, unsigned int q);

/**
 * vn_vdev_set_queue_handler() - what runs when queue @q is kicked
 * Return: 0 or -EINVAL for a bad @q.
 * Context: before the driver is running (the device type's realize).
 */
VN_MUST_CHECK int vn_vdev_set_queue_handler(struct vn_vdev *vdev, unsigned int q,
					    vn_vdev_queue_handler_fn *fn);

/**
 * vn_vdev_queue_kick() - run queue @q's handler, as a doorbell does
 *
 * Does nothing for a queue that is not ready or is broken, or has no handler.
 *
 * Context: the queue's owning thread (see vn_vdev_queue_handler_fn).
 * Return: 1 if the handler ran, 0 if not, -EINVAL for a bad @q.
 */
VN_MUST_CHECK int vn_vdev_queue_kick(struct vn_vdev *vdev, unsigned int q);

/**
 * vn_vdev_queue_lock() / vn_vdev_queue_unlock() - the queue's run lock
 *
 * Whoever works on queue @q's rings holds it: the host notifier state
 * machine around every run of the queue's handler (on the vCPU or the
 * iothread), and a device type around work it does on the queue outside the
 * handler (pushing a completion from an I/O thread, say). So a queue is never
 * worked on by two threads at once. The device lock may be held when taking
 * it, never the other way round; the handler itself runs with it held.
 * @q must be < vn_vdev_nr_queues() (a programmer error otherwise).
 */
void vn_vdev_queue_lock(struct vn_vdev *vdev, unsigned int q);
void vn_vdev_queue_unlock(struct vn_vdev *vdev, unsigned int q);

/**
 * vn_vdev_queue_set_num() / _set_addr() / _enable() - driver queue setup
 *
 * Return: as vn_vq_set_num(), vn_vq_set_addr(); -EINVAL for a bad @q.
 * vn_vdev_queue_enable() checks the rings; a bad ring is a guest error and
 * makes the device NEEDS_RESET, as does enabling a queue of a device with no
 * guest memory bound (-ENXIO).
 * Context: device lock held.
 */
VN_MUST_CHECK int vn_vdev_queue_set_num(struct vn_vdev *vdev, unsigned int q, unsigned int num);
VN_MUST_CHECK int vn_vdev_queue_set_addr(struct vn_vdev *vdev, unsigned int q, uint64_t desc,
					 uint64_t avail, uint64_t used);
VN_MUST_CHECK int vn_vdev_queue_enable(struct vn_vdev *vdev, unsigned int q);

/**
 * vn_vdev_queue_reset() - reset one queue (VIRTIO_F_RING_RESET, §2.6.1)
 * Return: 0 or -EINVAL for a bad @q.
 * Context: device lock held.
 */
VN_MUST_CHECK int vn_vdev_queue_reset(struct vn_vdev *vdev, unsigned int q);

/**
 * vn_vdev_queue_set_vector() / vn_vdev_set_config_vector() - interrupt routing
 * Return: 0, or -EINVAL for a bad @q or a vector >= nr_vectors other than
 * VN_VDEV_NO_VECTOR.
 * Context: device lock held.
 */
VN_MUST_CHECK int vn_vdev_queue_set_vector(struct vn_vdev *vdev, unsigned int q,
					   uint16_t vector);
VN_MUST_CHECK int vn_vdev_set_config_vector(struct vn_vdev *vdev, uint16_t vector);

/**
 * vn_vdev_notify_queue() - interrupt the guest for @vq if it wants one
 *
 * Asks vn_vq_should_notify() (event index or NO_INTERRUPT), then sets the
 * ISR queue bit and signals the queue's vector.
 * Context: the queue's owning thread.
 * Return: 1 if an interrupt was sent, 0 if suppressed, -errno.
 */
VN_MUST_CHECK int vn_vdev_notify_queue(struct vn_vdev *vdev, struct vn_vq *vq);

/**
 * vn_vdev_isr_read_clear() - read and clear the ISR (virtio-pci ISR status)
 * Context: any thread.
 */
uint8_t vn_vdev_isr_read_clear(struct vn_vdev *vdev);

/**
 * vn_vdev_guest_notifier_fd() - the eventfd of interrupt vector @vector
 *
 * For an irqfd, or for a test that plays the guest. The device keeps
 * ownership.
 * Return: the fd, or -EINVAL for a bad vector.
 */
int vn_vdev_guest_notifier_fd(const struct vn_vdev *vdev, unsigned int vector);

/**
 * vn_vdev_set_guest_notifier_fd() - use @fd (an eventfd) for @vector
 * @fd: takes ownership on success; on error the caller still owns it. The
 *      old eventfd of the vector is closed.
 * Return: 0, -EINVAL for a bad vector, -EBADF for a negative fd.
 * Context: device lock held. Safe against interrupts raised on other threads
 * at the same time: the old eventfd is closed only once no raise uses it.
 */
VN_MUST_CHECK int vn_vdev_set_guest_notifier_fd(struct vn_vdev *vdev, unsigned int vector,
						int fd);

#endif
