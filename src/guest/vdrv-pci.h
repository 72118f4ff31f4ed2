/* SPDX-License-Identifier: MIT */
#ifndef VN_GUEST_VDRV_PCI_H
#define VN_GUEST_VDRV_PCI_H

/*
 * The guest's virtio-pci driver (docs/design.md "The guest driver"), the way
 * QEMU's libqos drives devices in its tests: on a function the firmware placed
 * (vdrv-env.h), it plays the guest kernel (virtio 1.2 §4.1 "Virtio Over PCI
 * Bus": legacy I/O BAR or modern capabilities, feature negotiation, queue
 * setup, MSI-X, status, reset, bus master).
 *
 * Every register access and every doorbell goes through vn_bus_read() /
 * vn_bus_write() of the machine's bus, so a doorbell hits the ioeventfd or
 * the synchronous exit exactly as a VM's would. Interrupts arrive on the
 * eventfd the machine signals for an MSI data value (the env's irq_fd
 * callback, which keeps this layer out of the machine's internals).
 *
 * Threads: one thread per queue on the fast path (vn_vdrv_vq_kick(), the
 * ring, the queue's interrupt eventfd) with no lock and no allocation. The
 * device-wide registers (status, features, queue select + queue fields,
 * device config, PCI config cycles) are serialised by a mutex of the
 * device and one of the env, so several threads may call any of these
 * functions at once.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <vnotify/bus.h>
#include <vnotify/vdev.h>

#include "guest/vdrv-env.h"
#include "guest/vdrv-ring.h"
#include "mem/gmem.h"

/* ---- one virtio-pci device ---- */

/** enum vn_vdrv_pci_mode - which interface of a (transitional) device to drive */
enum vn_vdrv_pci_mode {
	VN_VDRV_PCI_MODERN = 0, /* virtio 1.x capabilities in a memory BAR */
	VN_VDRV_PCI_LEGACY = 1, /* the legacy I/O BAR0 (transitional devices only) */
};

struct vn_vdrv_pci;

/**
 * struct vn_vdrv_vq - one queue as the driver set it up
 *
 * The fast path is here: the ring (the owning thread's alone), the doorbell
 * address and the interrupt eventfd.
 */
struct vn_vdrv_vq {
	struct vn_vdrv_pci *dev;
	unsigned int index;
	bool ready;
	struct vn_vdrv_ring ring;
	/* doorbell */
	enum vn_space notify_space;
	uint64_t notify_addr;
	bool notify_data; /* NOTIFICATION_DATA: 4-byte doorbells carry avail idx */
	/* interrupts */
	uint16_t vector;
	int irq_fd;
	/* guest memory kept across resets */
	uint64_t mem_gpa, mem_size; /* rings */
	uint64_t ind_gpa, ind_size; /* indirect tables */
	unsigned int mem_num;	    /* queue size the memory was sized for */
	unsigned int mem_ind;	    /* indirect entries the memory was sized for */
	/* counters of the owning thread */
	uint64_t n_doorbells;
	uint64_t n_irqs; /* interrupts taken (eventfd reads) */
};

/**
 * struct vn_vdrv_pci_cfg - which device, driven how
 * @slot: PCI slot on bus 0 (from vn_vdrv_pci_find())
 * @mode: modern or legacy; legacy needs a transitional device
 */
struct vn_vdrv_pci_cfg {
	unsigned int slot;
	enum vn_vdrv_pci_mode mode;
};

/**
 * struct vn_vdrv_vq_cfg - queue setup options
 * @size: queue size (a power of 2), capped at the device's maximum; 0 for
 *        the maximum. Legacy queues always have the device's size.
 * @max_indirect: entries per indirect table, 0 for no indirect tables (use
 *                only if VIRTIO_RING_F_INDIRECT_DESC was negotiated)
 */
struct vn_vdrv_vq_cfg {
	unsigned int size;
	unsigned int max_indirect;
};

struct vn_vdrv_pci {
	struct vn_vdrv_env *env;
	unsigned int slot;
	enum vn_vdrv_pci_mode mode;
	uint16_t device_id;   /* virtio device type (2: block) */
	pthread_mutex_t lock; /* device-wide registers */
	/* legacy */
	uint64_t legacy_io; /* BAR0 PIO address */
	/* modern: addresses of the structures, and their spaces */
	enum vn_space common_space, notify_space, isr_space, device_space;
	uint64_t common, notify, isr, devcfg;
	uint32_t common_len, notify_len, isr_len, devcfg_len;
	uint32_t notify_mult;
	/* MSI-X */
	uint8_t msix_cap;
	unsigned int msix_size;
	uint64_t msix_table;	/* MMIO address of the table */
	unsigned int msi_data0; /* data of vector 0; vector v is msi_data0 + v */
	bool msix_enabled;
	/* negotiated */
	uint64_t device_features, features;
	unsigned int nr_vqs;
	struct vn_vdrv_vq *vqs;
};

/**
 * vn_vdrv_pci_open() - bind the driver to a virtio-pci function
 *
 * Checks the ids (vendor 0x1af4; legacy mode needs a transitional id
 * 0x1000..0x103f and an I/O BAR0), walks the capability list (modern: common,
 * notify, ISR, device config; MSI-X always), takes MSI data values from the
 * env and programs the MSI-X table (vector v -> data msi_data0 + v,
 * unmasked), enables MSI-X, and resets the device. The function must have
 * been placed by vn_vdrv_pci_scan().
 * Return: 0; -ENODEV if the slot holds no virtio device or lacks a needed
 * capability for @mode; -ENOSPC if MSI data values ran out; -ENOMEM;
 * -ETIMEDOUT if the reset does not finish.
 */
VN_MUST_CHECK int vn_vdrv_pci_open(struct vn_vdrv_env *env, const struct vn_vdrv_pci_cfg *cfg,
				   struct vn_vdrv_pci **out);

/**
 * vn_vdrv_pci_close() - reset the device and free the driver; NULL is fine
 * Context: no thread uses its queues any more.
 */
void vn_vdrv_pci_close(struct vn_vdrv_pci *dev);

/**
 * vn_vdrv_pci_reset() - write status 0 and wait until the device reads back 0
 *
 * The device forgets its queues; the driver marks them not ready (their
 * rings keep their memory for the next setup; in-flight chains are
 * abandoned, see vn_vdrv_ring).
 * Return: 0, -ETIMEDOUT, or -ENODEV if the status register reads all ones
 * (the function is gone or its decode is off).
 */
VN_MUST_CHECK int vn_vdrv_pci_reset(struct vn_vdrv_pci *dev);

/** vn_vdrv_pci_get_status() - read the device status register */
uint8_t vn_vdrv_pci_get_status(struct vn_vdrv_pci *dev);

/** vn_vdrv_pci_set_status() - write the device status register as is */
void vn_vdrv_pci_set_status(struct vn_vdrv_pci *dev, uint8_t status);

/**
 * vn_vdrv_pci_negotiate() - reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK
 * @wanted: features the driver can use; the result is @wanted & offered.
 *          Modern: VIRTIO_F_VERSION_1 is added and required; legacy: only
 *          the low 32 bits exist and VERSION_1 is dropped.
 * @out: the negotiated features (may be NULL)
 *
 * virtio 1.2 §3.1.1 steps 1-6 (legacy §3.1.2 has no FEATURES_OK).
 * Return: 0; -ENODEV if the device does not offer VERSION_1 in modern mode
 * or refuses FEATURES_OK; -ETIMEDOUT from the reset.
 */
VN_MUST_CHECK int vn_vdrv_pci_negotiate(struct vn_vdrv_pci *dev, uint64_t wanted, uint64_t *out);

/** vn_vdrv_pci_has_feature() - was feature @bit negotiated? */
bool vn_vdrv_pci_has_feature(const struct vn_vdrv_pci *dev, unsigned int bit);

/**
 * vn_vdrv_pci_num_queues() - queues the device has (modern: num_queues;
 * legacy: queues with a non-zero QUEUE_NUM), at most the MSI-X table allows
 * one vector each beside the config vector
 */
unsigned int vn_vdrv_pci_num_queues(struct vn_vdrv_pci *dev);

/**
 * vn_vdrv_pci_config_read() - read device config space (modern: retried
 * until config_generation is stable, §4.1.4.3.1)
 * Return: 0, or -EINVAL past the config structure.
 */
VN_MUST_CHECK int vn_vdrv_pci_config_read(struct vn_vdrv_pci *dev, uint32_t off, void *buf,
					  uint32_t len);

/**
 * vn_vdrv_pci_queue_setup() - set up queue @q and enable it
 *
 * Lays out the rings in guest RAM (taken from the env the first time, reused
 * after a reset), routes the queue to MSI-X vector q + 1 and checks the
 * device took it, writes size and addresses (legacy: QUEUE_PFN, 4 KiB
 * aligned), and enables the queue. The ring uses EVENT_IDX if negotiated.
 * Call between vn_vdrv_pci_negotiate() and vn_vdrv_pci_driver_ok().
 * Return: 0 with *@out set (owned by @dev); -EINVAL for a bad @q or size;
 * -ENOENT if the device has no such queue; -EIO if the device refused the
 * vector; -ENOMEM when RAM is exhausted.
 */
VN_MUST_CHECK int vn_vdrv_pci_queue_setup(struct vn_vdrv_pci *dev, unsigned int q,
					  const struct vn_vdrv_vq_cfg *cfg,
					  struct vn_vdrv_vq **out);

/**
 * vn_vdrv_pci_driver_ok() - set DRIVER_OK
 * Return: 0, or -EIO if the device does not show it (or shows NEEDS_RESET).
 */
VN_MUST_CHECK int vn_vdrv_pci_driver_ok(struct vn_vdrv_pci *dev);

/**
 * vn_vdrv_pci_set_bus_master() - set or clear bus master in the command register
 * Return: 0 or -errno from the config cycle.
 */
VN_MUST_CHECK int vn_vdrv_pci_set_bus_master(struct vn_vdrv_pci *dev, bool on);

/** vn_vdrv_pci_config_irq_fd() - the eventfd of the config interrupt (vector 0) */
int vn_vdrv_pci_config_irq_fd(struct vn_vdrv_pci *dev);

/**
 * vn_vdrv_vq_kick() - ring the doorbell of @vq
 *
 * Legacy: a 2-byte PIO write of the queue index at QUEUE_NOTIFY. Modern: a
 * 2-byte MMIO write of the index at the queue's notify address, or with
 * VIRTIO_F_NOTIFICATION_DATA negotiated a 4-byte write of the index and the
 * ring's avail idx in the upper half (virtio 1.2 §4.1.5.2).
 * Return: what vn_bus_write() returned (VN_BUS_IOEVENTFD when an ioeventfd
 * took it, VN_BUS_REGION for a synchronous exit).
 * Context: the queue's owning thread; no lock is taken.
 */
int vn_vdrv_vq_kick(struct vn_vdrv_vq *vq);

/**
 * vn_vdrv_vq_wait_irq() - wait for @vq's interrupt and acknowledge it
 * @timeout_ms: -1 waits for ever
 *
 * Reads (clears) the vector's eventfd. Re-enable callbacks on the ring and
 * re-check it before calling this, or an interrupt may already be spent.
 * Return: 1 if the interrupt fired, 0 on timeout, -errno.
 * Context: the queue's owning thread.
 */
VN_MUST_CHECK int vn_vdrv_vq_wait_irq(struct vn_vdrv_vq *vq, int timeout_ms);

#endif
