/* SPDX-License-Identifier: MIT */
#ifndef VN_VIRTIO_VDEV_H
#define VN_VIRTIO_VDEV_H

/*
 * Device core internals. <vnotify/vdev.h> has the API; this adds the struct
 * layout and the hook points for code that sits beside the device core in
 * src/virtio/ or in a folder above it (the host notifier state machine, the
 * transports).
 */

/*
 * Lock order. A thread takes locks only downwards in this table (a lower
 * rank while holding a higher one is a bug), and waits for an iothread
 * (vn_iothread_run_sync()) holding none of the ranked ones. Debug builds
 * assert it (base/lockorder.h: a per-thread stack of held ranks, checked in
 * the wrappers named here), so every threaded test checks the order.
 *
 *  rank  lock                       wrapper / owner       held while
 *  20    device lock                vn_vdev_lock()        register accesses (vCPU),
 *                                                         lifecycle hooks, state load
 *  30    queue run lock, one per    vn_vdev_queue_lock()  running the queue's handler
 *        queue; several only in                           (any thread), completions,
 *        ascending index order                            the engine's state changes
 *  40    vector lock, one per       raise_irq(),          signalling or replacing a
 *        vector                     set_*_notifier_fd()   vector's eventfd
 *  41    config lock                vdev.c config_lock()  config bytes, generation
 *  50    gmem writer lock           gmem.c                adding/removing regions
 *
 * Locks outside the table (not asserted). Above the device lock: the
 * machine's lock (pausing calls each device with it held) and the PCI host
 * lock (a config write to a function's BARs or MSI-X control takes the
 * device lock inside it); never taken inside a ranked lock. Below it: the
 * bus mutex and the kvm accelerator's lock (the engine's assign and
 * deassign), which take nothing themselves. Leaves: gmem's fault-guard lock
 * (process-wide, installs the SIGBUS guard), the loop's bottom-half lock,
 * the iothread's run_sync lock, the promoter's lock (taken after the region
 * callback returned, never held while waiting for an iothread) and the
 * log's rate-limit lock. The queue-notifier engine
 * (hostnotif) has no lock of its own: its state changes under the queue's
 * run lock (and the device lock for the assign policy), attach and detach
 * happen on the queue's iothread. The vhost-user server has none either:
 * its one control thread owns its state, and it reaches a queue's thread
 * through vn_iothread_run_sync() holding no lock.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <vnotify/vdev.h>

#include "base/log.h"
#include "base/notifier.h"
#include "mem/gmem.h"
#include "virtio/vq.h"

#define VN_VDEV_MAX_HOOKS 4
#define VN_VDEV_MAX_QUEUES 1024
#define VN_VDEV_MAX_VECTORS 2048
#define VN_VDEV_MAX_CONFIG 4096

/**
 * struct vn_vdev_hooks - lifecycle hooks for the host notifier state
 * machine and transports; every member optional
 *
 * All run with the device lock held, on the thread that holds it, in
 * registration order ("_pre") or reverse order ("_post"). They may call
 * the queue functions of this device, but not register or remove hooks.
 *
 * @status_pre: a status write (not 0) is about to take effect: @old -> @status.
 *              The place to stop host notifiers when DRIVER_OK goes away.
 * @status_post: it took effect (the value the driver will read back is
 *               @status). The place to start them on DRIVER_OK.
 * @reset_pre: the device is about to reset (status 0 or vn_vdev_reset());
 *             queues still hold their state: stop and drain here.
 * @reset_post: the device and every queue are in their initial state.
 * @queue_reset_pre: queue @q alone is about to be reset (VIRTIO_F_RING_RESET).
 * @queue_enabled: the driver enabled queue @q and its rings checked out.
 * @queue_stop: vn_vdev_queue_stop() or _quiesce() is about to quiesce queue
 *              @q: stop feeding it (detach its notifier, drain a kick that
 *              raced). Context: unlike the others, device lock NOT held;
 *              may wait for the queue's thread.
 * @loaded: device state was loaded (state.c); start what DRIVER_OK needs.
 * @needs_reset: the device went NEEDS_RESET. Context: any thread, without the
 *               device lock (a queue's thread found the guest error).
 */
struct vn_vdev_hooks {
	void (*status_pre)(void *opaque, struct vn_vdev *vdev, uint8_t old, uint8_t status);
	void (*status_post)(void *opaque, struct vn_vdev *vdev, uint8_t old, uint8_t status);
	void (*reset_pre)(void *opaque, struct vn_vdev *vdev);
	void (*reset_post)(void *opaque, struct vn_vdev *vdev);
	void (*queue_reset_pre)(void *opaque, struct vn_vdev *vdev, unsigned int q);
	void (*queue_enabled)(void *opaque, struct vn_vdev *vdev, unsigned int q);
	void (*queue_stop)(void *opaque, struct vn_vdev *vdev, unsigned int q);
	void (*loaded)(void *opaque, struct vn_vdev *vdev);
	void (*needs_reset)(void *opaque, struct vn_vdev *vdev);
};

/* A queue with its handler, vector and run lock; private to vdev.c. */
struct vn_vdev_queue;

/**
 * struct vn_vdev_section - a section of the saved state (state.h) owned by
 * someone beside the device core: a transport. The core, the queues and
 * the device type (struct vn_vdev_ops state_*) have theirs built in.
 * @name: names the section in refusals ("virtio-pci"): "<name>.<field>"
 * @id: its section id (VN_STATE_SEC_TRANSPORT)
 * @version: the version this owner writes
 * @size: payload bytes it writes (fixed for the device's lifetime)
 * @save: write exactly size() bytes into @buf; 0, or -EBUSY if it has work
 *        in flight (not quiesced)
 * @check: would load() accept this payload of @version? 0, or -EINVAL with
 *         *@field naming the refused field (a string that stays valid)
 * @load: apply a payload check() accepted; cannot fail
 *
 * Context: device lock held; save() also with every queue's run lock held,
 * so it must not take them.
 */
struct vn_vdev_section {
	const char *name;
	uint16_t id;
	uint16_t version;
	size_t (*size)(void *opaque);
	int (*save)(void *opaque, uint8_t *buf, size_t len);
	int (*check)(void *opaque, unsigned int version, const uint8_t *buf, size_t len,
		     const char **field);
	void (*load)(void *opaque, unsigned int version, const uint8_t *buf, size_t len);
};

#define VN_VDEV_MAX_SECTIONS 2

struct vn_vdev {
	char name[32];
	uint32_t device_id;
	const struct vn_vdev_ops *ops;
	void *opaque;
	struct vn_gmem *mem;
	pthread_mutex_t lock;           /* the device lock */
	struct vn_ratelimit rl;         /* guest-caused messages of this device */

	uint64_t device_features; /* the type's, plus transport_features */
	uint64_t transport_features;
	uint64_t driver_features;
	uint8_t status;                 /* without NEEDS_RESET; atomic loads */
	bool needs_reset;               /* atomic: set from any thread */
	uint8_t isr;                    /* atomic */

	pthread_mutex_t config_lock;    /* config bytes and generation */
	uint8_t *config;
	unsigned int config_len;
	uint32_t config_generation;
	uint16_t config_vector;

	unsigned int nr_queues;
	unsigned int nr_run_locks;      /* queues whose run_lock is initialised */
	struct vn_vdev_queue *queues;

	unsigned int nr_vectors;
	bool msix;                      /* VN_VDEV_IRQ_VECTORS; else SHARED */
	struct vn_notifier *vectors;
	/*
	 * One per vector: raising an interrupt and replacing the vector's
	 * eventfd exclude each other, so an interrupt never writes to an fd
	 * number that was closed (and maybe reused) under it.
	 */
	pthread_mutex_t *vector_locks;

	unsigned int nr_hooks;
	struct {
		const struct vn_vdev_hooks *h;
		void *opaque;
	} hooks[VN_VDEV_MAX_HOOKS];

	unsigned int nr_sections;
	struct {
		const struct vn_vdev_section *s;
		void *opaque;
	} sections[VN_VDEV_MAX_SECTIONS];
};

/**
 * vn_vdev_add_hooks() - register lifecycle hooks (static const table)
 * Return: 0, -ENOSPC past VN_VDEV_MAX_HOOKS, -EEXIST if already there.
 * Context: device lock held; no queue thread running (needs_reset reads the list).
 */
VN_MUST_CHECK int vn_vdev_add_hooks(struct vn_vdev *vdev, const struct vn_vdev_hooks *h,
				    void *opaque);

/**
 * vn_vdev_remove_hooks() - unregister
 *
 * Not VN_MUST_CHECK: like a free, teardown paths call it blindly.
 * Return: 0 or -ENOENT.
 * Context: as vn_vdev_add_hooks().
 */
int vn_vdev_remove_hooks(struct vn_vdev *vdev, const struct vn_vdev_hooks *h,
				       void *opaque);

/** vn_vdev_mem() - the guest memory a transport bound, or NULL (vn_vdev_bind_mem()) */
struct vn_gmem *vn_vdev_mem(const struct vn_vdev *vdev);

/**
 * vn_vdev_add_section() - add a state section (static const table)
 * Return: 0, -ENOSPC past VN_VDEV_MAX_SECTIONS, -EEXIST if already there.
 * Context: device lock held.
 */
VN_MUST_CHECK int vn_vdev_add_section(struct vn_vdev *vdev, const struct vn_vdev_section *s,
				      void *opaque);

/**
 * vn_vdev_remove_section() - remove it again; a teardown call, not checked
 * Return: 0 or -ENOENT.
 * Context: device lock held.
 */
int vn_vdev_remove_section(struct vn_vdev *vdev, const struct vn_vdev_section *s, void *opaque);

/*
 * The vring-level interface, beside the register-level one of
 * <vnotify/vdev.h>: for a front door that is handed whole rings (the
 * vhost-user server) instead of a driver's register writes (virtio-pci).
 * Each takes the locks it needs; none is called with the device lock held.
 */

/**
 * vn_vdev_activate() - make the device live with the negotiated @features:
 * a fresh reset, the features final (checked as FEATURES_OK checks them;
 * without VERSION_1, final as a legacy driver's at DRIVER_OK), DRIVER_OK.
 * Return: 0, or -EINVAL if the features were refused (the device stays
 * without DRIVER_OK).
 * Context: device lock NOT held.
 */
VN_MUST_CHECK int vn_vdev_activate(struct vn_vdev *vdev, uint64_t features);

/**
 * vn_vdev_queue_start() - queue @q runs from ring state @st (size,
 * addresses, last_avail_idx, used_idx; ready), interrupting through @vector
 * @field: on a refused @st, the name of the offending field (may be NULL)
 * Return: 0; -EINVAL for a bad @q or @vector, or a bad @st (vn_vq_check_state()).
 * The caller attaches its notifier afterwards.
 * Context: device lock NOT held; the queue is not running.
 */
VN_MUST_CHECK int vn_vdev_queue_start(struct vn_vdev *vdev, unsigned int q,
				      const struct vn_vq_state *st, uint16_t vector,
				      const char **field);

/**
 * vn_vdev_queue_quiesce() - stop feeding queue @q (its notifier detaches,
 * a kick that raced runs it once: the queue_stop hooks) and wait for the
 * device's work in flight on it (the quiesce_queue op). The queue keeps its
 * state and can be fed again.
 * Context: device lock NOT held; may wait for the queue's thread.
 */
void vn_vdev_queue_quiesce(struct vn_vdev *vdev, unsigned int q);

/** vn_vdev_quiesce() - vn_vdev_queue_quiesce() for every queue */
void vn_vdev_quiesce(struct vn_vdev *vdev);

/**
 * vn_vdev_queue_stop() - quiesce queue @q, hand back its ring state in @out
 * and reset it (not ready; it keeps the negotiated ring features)
 * Return: 0 or -EINVAL for a bad @q.
 * Context: as vn_vdev_queue_quiesce().
 */
VN_MUST_CHECK int vn_vdev_queue_stop(struct vn_vdev *vdev, unsigned int q,
				     struct vn_vq_state *out);

/**
 * vn_vdev_queue_inflight() - chains queue @q has popped and not pushed
 * Context: any thread (takes the queue's run lock).
 */
unsigned int vn_vdev_queue_inflight(struct vn_vdev *vdev, unsigned int q);

/** vn_vdev_name() - the device's name, for log messages */
const char *vn_vdev_name(const struct vn_vdev *vdev);

/** vn_vdev_nr_vectors() - interrupt vectors; vn_vdev_is_msix(): one per queue possible */
unsigned int vn_vdev_nr_vectors(const struct vn_vdev *vdev);
bool vn_vdev_is_msix(const struct vn_vdev *vdev);

/** vn_vdev_queue_vector() - the vector of queue @q (VN_VDEV_NO_VECTOR if none or bad @q) */
uint16_t vn_vdev_queue_vector(const struct vn_vdev *vdev, unsigned int q);

/** vn_vdev_config_vector() - the config change vector */
uint16_t vn_vdev_config_vector(const struct vn_vdev *vdev);

/** vn_vdev_is_legacy() - the driver did not negotiate VERSION_1 */
bool vn_vdev_is_legacy(const struct vn_vdev *vdev);

/**
 * vn_vdev_set_transport_features() - bits the transport offers on top of the
 * device type's own
 * @bits: transport feature bits (VN_VIRTIO_F_NOTIFICATION_DATA is the only
 *        one a transport may add); replaces what was set before, 0 clears
 *
 * A transport offers a feature only it can honour (the doorbell's data
 * reaches the transport, not the device type), so the device type's
 * configuration does not carry it and another transport on the same
 * device does not inherit it.
 * Return: 0; -EINVAL for another bit; -EBUSY unless the device is reset
 * (status 0): a driver may already have read the offer.
 * Context: device lock held.
 */
VN_MUST_CHECK int vn_vdev_set_transport_features(struct vn_vdev *vdev, uint64_t bits);

/*
 * For state.c: apply loaded values without the register-write rules (they
 * were validated as a whole), then run the "loaded" hooks.
 */
void vn_vdev_load_apply(struct vn_vdev *vdev, uint64_t driver_features, uint8_t status,
			bool needs_reset, uint8_t isr, uint16_t config_vector,
			uint32_t config_generation, const uint8_t *config);
void vn_vdev_run_loaded_hooks(struct vn_vdev *vdev);

/**
 * vn_vdev_set_peer_notifier_fd() - vn_vdev_set_guest_notifier_fd() for an
 * eventfd a peer gave us (a vhost-user call fd), checked with
 * vn_notifier_check_peer_fd(): raising the vector never blocks on it.
 * Context and Return: as vn_vdev_set_guest_notifier_fd().
 */
VN_MUST_CHECK int vn_vdev_set_peer_notifier_fd(struct vn_vdev *vdev, unsigned int vector, int fd);

#endif
