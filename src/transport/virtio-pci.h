/* SPDX-License-Identifier: MIT */
#ifndef VN_TRANSPORT_VIRTIO_PCI_H
#define VN_TRANSPORT_VIRTIO_PCI_H

/*
 * virtio-pci internals, shared by pci.c (the function, config space, host
 * notifier gate, lifecycle), pci-legacy.c (BAR0) and pci-modern.c (BAR4 and
 * the vendor capabilities).
 *
 * Locks (see also pci-host.h): config-space callbacks run under the host
 * lock and take the device lock; BAR callbacks take only the device lock.
 * Everything below marked "device lock" is state the driver changes through
 * registers, serialised by vn_vdev_lock().
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/bus.h>
#include <vnotify/pci.h>

#include "base/log.h"
#include "hw/machine.h"
#include "hw/msix.h"
#include "hw/pci-host.h"
#include "virtio/hostnotif.h"
#include "virtio/vdev.h"

/* Legacy register block (virtio 1.2 §4.1.4.10) before device config. */
#define VN_VIRTIO_PCI_LEGACY_HDR_MSIX 24u

/* What the driver set up for a queue before enabling it (device lock). */
struct vn_virtio_pci_vq {
	uint16_t num;
	uint64_t desc, avail, used;
	bool reset; /* VIRTIO_F_RING_RESET: reset done, not re-enabled yet */
};

struct vn_virtio_pci {
	struct vn_machine *m;
	struct vn_vdev *vdev;
	struct vn_virtio_pci_cfg cfg;
	struct vn_promoter_cfg promoter;
	bool has_promoter;
	/* promoter candidates on the bus, for the reset (device lock) */
	struct vn_region *pro_region[VN_PCI_NR_BARS];
	struct vn_pci_func func;
	struct vn_msix msix;
	bool msix_ok;
	struct vn_hostnotif *hn;
	struct vn_machine_dev mdev;
	bool hooks_added;
	bool mem_bound;   /* the machine's RAM is bound to the device */
	bool plugged;
	struct vn_ratelimit rl;

	unsigned int nr_queues;
	uint64_t legacy_size; /* BAR0 */
	uint64_t modern_size; /* BAR4 */
	uint64_t notify_len;  /* bytes of the notify structure */
	unsigned int cfg_cap; /* config offset of the PCI config access capability */

	/* Driver-visible register state (device lock). */
	uint32_t dfselect, gfselect;
	uint16_t queue_sel;
	struct vn_virtio_pci_vq *vqs;

	/* The host notifier gate (device lock); see update_gate() in pci.c. */
	uint64_t bar0_addr, bar4_addr; /* as decoded, snapshot from the host */
	bool bus_master;
	/*
	 * BUS_MASTER_BUG: a legacy driver wrote DRIVER_OK with bus master off
	 * (Linux before 2.6.34 never sets it); from then on the device acts as
	 * if bus master were on, until vn_virtio_pci_system_reset().
	 */
	bool bus_master_bug;
	bool gate;	    /* what vn_hostnotif_set_bus_master() was told */
	bool gate_legacy;   /* notifiers are (or would be) the legacy PIO ones */
	uint64_t gate_base; /* the BAR base the registered notifiers use */

	struct vn_virtio_pci_stats stats; /* atomic adds */

	/*
	 * Loaded config space and MSI-X table + PBA, until
	 * vn_virtio_pci_state_finish() applies them (device lock).
	 */
	uint8_t loaded_config[VN_PCI_CONFIG_SIZE];
	uint8_t *loaded_msix;
	bool config_loaded;
	bool section_added;
	bool transport_features_set;
};

#define VN_VP_STAT_INC(vp, field) __atomic_add_fetch(&(vp)->stats.field, 1, __ATOMIC_RELAXED)

/*
 * vn_virtio_pci_hostnotif() - the function's host notifier state machine,
 * for white-box tests and tools (its type is internal, so this is not in
 * <vnotify/pci.h>; vn_virtio_pci_get_stats() is the public view)
 */
struct vn_hostnotif *vn_virtio_pci_hostnotif(struct vn_virtio_pci *vp);

/* The transport's section of the saved device state (virtio-pci-state.c). */
extern const struct vn_vdev_section vn_virtio_pci_section;

/**
 * vn_virtio_pci_state_finish() - after vn_state_load(): replay the loaded
 * PCI configuration space (BARs, command register, MSI-X control) through
 * the config cycle path, so decoding, the bus master gate and MSI-X
 * binding follow it. Nothing to do if no state was loaded since.
 * Context: no device lock held (a config write takes the host lock first).
 */
void vn_virtio_pci_state_finish(struct vn_virtio_pci *vp);

/* BAR region callbacks (each takes the device lock). */
extern const struct vn_region_ops vn_virtio_pci_legacy_ops;
extern const struct vn_region_ops vn_virtio_pci_modern_ops;

/** vn_virtio_pci_legacy_size() - BAR0 size for the device, or 0 if too big */
uint64_t vn_virtio_pci_legacy_size(const struct vn_vdev *vdev);

/**
 * vn_virtio_pci_modern_layout() - BAR4 size and the notify length
 */
void vn_virtio_pci_modern_layout(struct vn_virtio_pci *vp);

/**
 * vn_virtio_pci_modern_caps() - add the vendor capabilities (common, ISR,
 * device, notify, PCI config access) to the function
 * Return: 0 or -ENOSPC.
 */
VN_MUST_CHECK int vn_virtio_pci_modern_caps(struct vn_virtio_pci *vp);

/*
 * The PCI config access capability's data window. Host lock held.
 * _read: refresh the data bytes in config space before a read of them.
 * _write: the data bytes were written; perform the BAR write.
 */
void vn_virtio_pci_cfg_window_read(struct vn_virtio_pci *vp);
void vn_virtio_pci_cfg_window_write(struct vn_virtio_pci *vp);

/**
 * vn_virtio_pci_bad() - count and log (rate-limited) a refused guest access
 */
void vn_virtio_pci_bad(struct vn_virtio_pci *vp, const char *what, uint64_t off, unsigned int size);

/**
 * vn_virtio_pci_doorbell_locked() - a doorbell write for queue @q reached a
 * register (no ioeventfd took it). Dropped while bus master is off or the
 * machine is paused (the restart self-kicks).
 * Context: device lock held.
 */
void vn_virtio_pci_doorbell_locked(struct vn_virtio_pci *vp, unsigned int q);

/**
 * vn_virtio_pci_set_status_locked() - a status register write, legacy or
 * modern: the gate is brought up to date (the driver's mode is known now),
 * then vn_vdev_set_status() and its hooks do the rest.
 * Context: device lock held.
 */
void vn_virtio_pci_set_status_locked(struct vn_virtio_pci *vp, uint8_t status);

/**
 * vn_virtio_pci_set_vector_locked() - queue @q's MSI-X vector, or the config
 * vector for @q == UINT32_MAX; a vector the device cannot use reads back as
 * NO_VECTOR (virtio 1.2 §4.1.5.1.2)
 * Context: device lock held; @q valid.
 */
void vn_virtio_pci_set_vector_locked(struct vn_virtio_pci *vp, uint32_t q, uint16_t vector);

/** vn_virtio_pci_queue_max() - queue @q's maximum size (0 for a bad @q) */
uint16_t vn_virtio_pci_queue_max(struct vn_virtio_pci *vp, unsigned int q);

/*
 * vn_virtio_pci_bus_master() - may the device fetch from guest memory: the
 * command register's bus master bit, or the BUS_MASTER_BUG workaround.
 * Device lock held.
 */
static inline bool vn_virtio_pci_bus_master(const struct vn_virtio_pci *vp)
{
	return vp->bus_master || vp->bus_master_bug;
}

/*
 * vn_virtio_pci_system_reset() - what a machine reset does to the function:
 * the virtio device resets (notifiers stop with their drain) and the
 * BUS_MASTER_BUG workaround is dropped, since the next guest may be a new
 * kernel. The ioeventfd option is configuration and survives. Takes the
 * device lock.
 */
void vn_virtio_pci_system_reset(struct vn_virtio_pci *vp);

/** vn_virtio_pci_reset_vq_state() - queue @q's register state to defaults */
void vn_virtio_pci_reset_vq_state(struct vn_virtio_pci *vp, unsigned int q);

/** ones() - all ones of @size bytes, what a refused read returns */
static inline uint64_t vn_virtio_pci_ones(unsigned int size)
{
	return size >= 8 ? UINT64_MAX : (1ull << (8 * size)) - 1;
}

#endif
