/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_PCI_H
#define VN_VNOTIFY_PCI_H

/*
 * virtio-pci (virtio 1.2 §4.1 "Virtio Over PCI Bus") on the soft machine's
 * PCI host bridge.
 *
 * Layout (QEMU's):
 *   vendor 0x1af4; transitional: device 0x1000 + (virtio id - 1), subsystem
 *   id = virtio id; modern-only: device 0x1040 + virtio id (revision 1)
 *   BAR0  I/O, the legacy register block (transitional only)
 *   BAR1  32-bit memory, the MSI-X table (offset 0) and PBA (offset 0x800,
 *         or after the table when it is larger)
 *   BAR4  64-bit prefetchable memory with the modern structures:
 *         0x0000 common config, 0x1000 ISR, 0x2000 device config,
 *         0x3000 notify (queue q at q * notify_off_multiplier)
 *   capabilities: MSI-X, then the virtio vendor capabilities (common, ISR,
 *   device, notify, PCI config access)
 *
 * Host notifiers: legacy drivers (no VERSION_1) kick with a 2-byte PIO
 * write at BAR0 + 16 and get an ioeventfd with datamatch on the queue
 * index; modern drivers get one at each queue's notify address (any length
 * when the accelerator can, else 2 bytes). They are (re)registered at
 * DRIVER_OK, when the notify BAR moves, and when decode or bus master is
 * toggled.
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/error.h>

struct vn_machine;
struct vn_vdev;
struct vn_iothread;
struct vn_promoter_cfg;
struct vn_virtio_pci;

#define VN_VIRTIO_PCI_VENDOR 0x1af4u
#define VN_VIRTIO_PCI_NOTIFY_MULT_DEFAULT 4u
#define VN_VIRTIO_PCI_NOTIFY_MULT_MAX 4096u

/* BAR numbers of the layout above. */
#define VN_VIRTIO_PCI_BAR_LEGACY 0
#define VN_VIRTIO_PCI_BAR_MSIX 1
#define VN_VIRTIO_PCI_BAR_MODERN 4

/* Offsets inside BAR4. */
#define VN_VIRTIO_PCI_COMMON_OFF 0x0000u
#define VN_VIRTIO_PCI_ISR_OFF 0x1000u
#define VN_VIRTIO_PCI_DEVICE_OFF 0x2000u
#define VN_VIRTIO_PCI_NOTIFY_OFF 0x3000u

/**
 * struct vn_virtio_pci_cfg - one virtio-pci function
 * @vdev: the device (created on the machine's guest memory); it must outlive
 *        the function and have no other transport
 * @iothread: runs the queues whose host notifiers are assigned; NULL means
 *            kicks are always synchronous
 * @queue_iothreads: optional, with @iothread set: queue q runs on
 *                   @queue_iothreads[q % @nr_queue_iothreads] instead (a
 *                   multi-queue device spread over iothreads); read at
 *                   creation only, each entry started and outliving the function
 * @nr_queue_iothreads: entries of @queue_iothreads; 0: every queue on @iothread
 * @slot: PCI slot 1..31 on bus 0 (slot 0 is the host bridge)
 * @modern_only: no legacy BAR0, device id 0x1040 + id; else transitional
 * @ioeventfd: the ioeventfd=on|off option (default: the device type's)
 * @notify_off_multiplier: 0 or a power of 2 up to 4096 (with 0 every queue
 *                         shares one notify address and the ioeventfd
 *                         matches the queue index); use
 *                         VN_VIRTIO_PCI_NOTIFY_MULT_DEFAULT for 4
 * @msix_vectors: MSI-X table size; 0 means the device's vector count; at
 *                most that count
 * @safety_net_ns: the missed-doorbell timer period; 0 is off
 * @promoter: NULL, or make BAR0/BAR1/BAR4 hot-write promoter candidates
 *            (the MSI-X table and PBA are always excluded)
 */
struct vn_virtio_pci_cfg {
	struct vn_vdev *vdev;
	struct vn_iothread *iothread;
	struct vn_iothread *const *queue_iothreads;
	unsigned int nr_queue_iothreads;
	unsigned int slot;
	bool modern_only;
	bool ioeventfd;
	unsigned int notify_off_multiplier;
	unsigned int msix_vectors;
	uint64_t safety_net_ns;
	const struct vn_promoter_cfg *promoter;
};

/**
 * vn_virtio_pci_cfg_init() - defaults: transitional, ioeventfd as the
 * device type says (vn_vdev_ioeventfd_default(); on when @vdev is NULL,
 * for a caller that fills it in later), multiplier 4, every vector, safety net off
 */
void vn_virtio_pci_cfg_init(struct vn_virtio_pci_cfg *cfg, struct vn_vdev *vdev,
			    struct vn_iothread *iothread, unsigned int slot);

/**
 * vn_machine_add_virtio_pci() - plug a virtio device into a PCI slot
 * @m: the machine
 * @cfg: the function; see struct vn_virtio_pci_cfg
 * @out: set on success
 *
 * The function appears with its command register clear: nothing is decoded
 * and no host notifier is assigned until the driver places the BARs, sets
 * decode and bus master, and sets DRIVER_OK. The device's guest notifier
 * eventfds are replaced with the transport's (MSI-X routing).
 * Return: 0; -EINVAL for a bad option; -EBUSY if the slot is taken;
 * -ENOMEM; -errno from eventfd creation.
 * Context: no device lock held; not from a bus callback.
 */
VN_MUST_CHECK int vn_machine_add_virtio_pci(struct vn_machine *m,
					    const struct vn_virtio_pci_cfg *cfg,
					    struct vn_virtio_pci **out);

/**
 * vn_virtio_pci_remove() - unplug and free; NULL is allowed
 *
 * The slot reads all ones again, the BARs are unmapped (callbacks already
 * running on other threads finish first), the host notifiers are stopped
 * (a racing kick is drained) and the device's lifecycle hooks removed. The
 * device itself stays the caller's.
 * Context: no device lock held; not from a bus callback.
 */
void vn_virtio_pci_remove(struct vn_virtio_pci *vp);

/** vn_virtio_pci_vdev() - the device behind the function */
struct vn_vdev *vn_virtio_pci_vdev(struct vn_virtio_pci *vp);

/**
 * vn_virtio_pci_move_queue() - queue @q's host notifier runs on @to from now
 *
 * For a load balancer: an assigned queue is stopped (a kick that raced the
 * stop runs it once), moved, and assigned again on @to with a self-kick, so
 * no kick is lost; meanwhile its doorbells run it synchronously. The
 * device's own per-queue work (virtio-blk's completions:
 * vn_blk_move_queue()) is the caller's to move. @to must be started and
 * outlive the function.
 * Return: 0; -EINVAL for a bad @q or a function without iothreads; -EBUSY
 * while a vhost backend holds the queue; -errno if @to's loop refused it
 * (the queue stays where it was).
 * Context: no device lock held; not on an iothread or from a bus callback;
 * moves of one function serialised by the caller.
 */
VN_MUST_CHECK int vn_virtio_pci_move_queue(struct vn_virtio_pci *vp, unsigned int q,
					   struct vn_iothread *to);

/**
 * vn_virtio_pci_queue_iothread() - the iothread queue @q runs on when its
 * notifier is assigned; NULL for a bad @q or none
 * Context: any thread.
 */
struct vn_iothread *vn_virtio_pci_queue_iothread(struct vn_virtio_pci *vp, unsigned int q);

/**
 * struct vn_virtio_pci_stats - guest mistakes and interrupt routing, counted
 * @bad_accesses: register accesses refused (bad offset, size or value)
 * @doorbells: doorbell writes that reached the register (not an ioeventfd)
 * @msix_pending_delivered: masked interrupts delivered on unmask
 * @rebinds: host notifier re-registrations (BAR move, decode toggle)
 * @notify_data: doorbells that carried VIRTIO_F_NOTIFICATION_DATA (offered
 *               only with ioeventfd off: an ioeventfd drops the value)
 * @notify_data_ahead: of those, the ones whose avail index was ahead of
 *                     what the ring published (the driver lied; the
 *                     queue still runs only what the ring publishes)
 */
struct vn_virtio_pci_stats {
	uint64_t bad_accesses;
	uint64_t doorbells;
	uint64_t msix_pending_delivered;
	uint64_t rebinds;
	uint64_t notify_data;
	uint64_t notify_data_ahead;
};

/** vn_virtio_pci_get_stats() - copy the counters. Context: any thread. */
void vn_virtio_pci_get_stats(struct vn_virtio_pci *vp, struct vn_virtio_pci_stats *out);

#endif
