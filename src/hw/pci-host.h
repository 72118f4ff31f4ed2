/* SPDX-License-Identifier: MIT */
#ifndef VN_HW_PCI_HOST_H
#define VN_HW_PCI_HOST_H

/*
 * The PCI host bridge of the soft machine: configuration mechanism #1 on PIO
 * 0xcf8 (address latch, 32-bit) and 0xcfc-0xcff (data, 1/2/4 bytes); bus 0,
 * slots 0..31, function 0; an empty slot reads all ones.
 *
 * Each function has a 256-byte type-0 header with per-byte write masks, up
 * to six BARs and a capability list. The host owns BAR decoding: a BAR's
 * region is on the bus only while the command register enables its kind
 * of decode and the BAR lies entirely inside the host's window (PIO
 * 0xc000-0xffff, MMIO 0xe0000000-0xefffffff). Any config write that may
 * change a mapping re-evaluates every BAR of every function, so a BAR that
 * lost an overlap comes back once the other one moves.
 *
 * Locking: one host lock serialises every config access (the conf1 latch is
 * shared, as on real hardware) and every mapping change. Function callbacks
 * run with it held; they may take a device lock, so BAR region callbacks
 * (which run under a device lock) must never take the host lock. Regions
 * are removed with the host lock held and no device lock, as
 * vn_bus_del_region() requires.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <vnotify/bus.h>

#include "base/compiler.h"
#include "base/log.h"

#define VN_PCI_CONFIG_SIZE 256u
#define VN_PCI_NR_BARS 6u
#define VN_PCI_CAP_START 0x40u
#define VN_PCI_BAR_UNMAPPED UINT64_MAX

/* Class codes (base class << 8 | subclass), from the PCI Code and ID Assignment spec. */
#define VN_PCI_CLASS_STORAGE_SCSI 0x0100u
#define VN_PCI_CLASS_NETWORK_ETHERNET 0x0200u
#define VN_PCI_CLASS_BRIDGE_HOST 0x0600u
#define VN_PCI_CLASS_OTHERS 0xff00u

/* BAR kinds */
#define VN_PCI_BAR_IO 0x1u
#define VN_PCI_BAR_MEM64 0x2u
#define VN_PCI_BAR_PREFETCH 0x4u

struct vn_pci_host;

/**
 * struct vn_pci_bar_cfg - one BAR
 * @size: a power of 2; I/O 4..256, memory >= 16; 0 means no BAR
 * @flags: VN_PCI_BAR_*; a 64-bit BAR also takes the next BAR slot
 * @name: region name (copied by the bus)
 * @ops, @opaque: the region's callbacks
 * @promoter: NULL, or make the region a promoter candidate (copied)
 */
struct vn_pci_bar_cfg {
	uint64_t size;
	unsigned int flags;
	const char *name;
	const struct vn_region_ops *ops;
	void *opaque;
	const struct vn_promoter_cfg *promoter;
};

/**
 * struct vn_pci_func_ops - a function's hooks; every member optional.
 * Context: all run with the host lock held.
 * @config_read: take over a read of [@off, @off + @size) (a capability
 *               window); return true if handled, with *@val set
 * @config_write: a write took effect in the header bytes (masked);
 *                @val is what the guest wrote
 * @mapping_changed: the command register, a BAR, or a BAR's mapping
 *                   changed; read the new state with vn_pci_func_bar_addr()
 *                   and vn_pci_func_command()
 * @region_added: a BAR region was put on the bus (to exclude ranges from
 *                the promoter, say)
 * @region_removing: a BAR region is about to leave the bus and be freed;
 *                   drop every reference to it (host lock held, no device
 *                   lock)
 * @reset: a system reset put the header back to its power-on bytes; bring
 *         the state kept beside it (MSI-X) back too. The BARs are remapped
 *         (and @mapping_changed called) after it returns.
 */
struct vn_pci_func_ops {
	bool (*config_read)(void *opaque, uint32_t off, unsigned int size, uint32_t *val);
	void (*config_write)(void *opaque, uint32_t off, unsigned int size, uint32_t val);
	void (*mapping_changed)(void *opaque);
	void (*region_added)(void *opaque, unsigned int bar, struct vn_region *region);
	void (*region_removing)(void *opaque, unsigned int bar, struct vn_region *region);
	void (*reset)(void *opaque);
};

/* A PCI function; caller-owned storage, initialised by vn_pci_func_init(). */
struct vn_pci_func {
	struct vn_pci_host *host;
	int slot; /* -1 when not plugged */
	const struct vn_pci_func_ops *ops;
	void *opaque;
	uint8_t config[VN_PCI_CONFIG_SIZE];
	uint8_t wmask[VN_PCI_CONFIG_SIZE];
	uint8_t reset_config[VN_PCI_CONFIG_SIZE]; /* the header as plugged: power-on state */
	uint8_t next_cap; /* where the next capability goes */
	struct {
		struct vn_pci_bar_cfg cfg;
		struct vn_region *region;
		uint64_t mapped; /* VN_PCI_BAR_UNMAPPED or the base */
	} bar[VN_PCI_NR_BARS];
};

/** vn_pci_host_new() - put conf1 on @bus and the host bridge at slot 0 */
VN_MUST_CHECK int vn_pci_host_new(struct vn_bus *bus, struct vn_pci_host **out);

/** vn_pci_host_free() - every function must be unplugged but the bridge. NULL ok. */
void vn_pci_host_free(struct vn_pci_host *h);

/**
 * vn_pci_func_init() - an empty type-0 header with the given ids
 * @class_code: base class << 16 | subclass << 8 | prog-if
 */
void vn_pci_func_init(struct vn_pci_func *f, uint16_t vendor, uint16_t device, uint32_t class_code,
		      uint8_t revision, const struct vn_pci_func_ops *ops, void *opaque);

/**
 * vn_pci_func_set_bar() - describe BAR @idx (before plugging)
 * Return: 0, or -EINVAL for a bad size, index, or a 64-bit BAR at index 5.
 */
VN_MUST_CHECK int vn_pci_func_set_bar(struct vn_pci_func *f, unsigned int idx,
				      const struct vn_pci_bar_cfg *cfg);

/**
 * vn_pci_func_add_cap() - append a capability of @len bytes (header
 * included) to the list (before plugging)
 * Return: its offset in config space, or -ENOSPC.
 */
VN_MUST_CHECK int vn_pci_func_add_cap(struct vn_pci_func *f, uint8_t id, uint8_t len);

/**
 * vn_pci_host_plug() - make @f answer on @slot
 * Return: 0; -EINVAL for slot 0 or >= 32; -EBUSY if taken.
 */
VN_MUST_CHECK int vn_pci_host_plug(struct vn_pci_host *h, unsigned int slot, struct vn_pci_func *f);

/**
 * vn_pci_host_unplug() - the slot reads all ones again and every BAR region
 * of @f leaves the bus (callbacks running elsewhere finish first).
 * Context: no device lock held; not from a bus callback.
 */
void vn_pci_host_unplug(struct vn_pci_host *h, struct vn_pci_func *f);

/**
 * vn_pci_host_reset_func() - a system reset of @f (PCI 3.0 §6.2: the
 * header returns to its power-on values): command register clear (no
 * decode, no bus master), BARs back to 0, capabilities as plugged; then
 * @f's @reset hook, and every BAR is unmapped.
 * Context: no device lock held; not from a bus callback.
 */
void vn_pci_host_reset_func(struct vn_pci_host *h, struct vn_pci_func *f);

/**
 * vn_pci_host_config_read() / _write() - a configuration cycle to bus 0
 * (what conf1 does after decoding the latch)
 * @size: 1, 2 or 4, and [@off, @off + @size) inside the 256-byte header;
 *        anything else reads all ones / is dropped
 */
uint32_t vn_pci_host_config_read(struct vn_pci_host *h, unsigned int slot, uint32_t off,
				 unsigned int size);
void vn_pci_host_config_write(struct vn_pci_host *h, unsigned int slot, uint32_t off,
			      unsigned int size, uint32_t val);

/** vn_pci_func_bar_addr() - where BAR @idx is decoded, or VN_PCI_BAR_UNMAPPED */
uint64_t vn_pci_func_bar_addr(const struct vn_pci_func *f, unsigned int idx);

/** vn_pci_func_command() - the command register */
uint16_t vn_pci_func_command(const struct vn_pci_func *f);

/**
 * vn_pci_func_bar_access() - access BAR @idx at @off directly, decoded or
 * not, without the ioeventfd table (the virtio PCI config access window)
 * Return: 0, or -EINVAL for a missing BAR, bad size or out of range.
 * Context: host lock held (a config callback).
 */
VN_MUST_CHECK int vn_pci_func_bar_access(struct vn_pci_func *f, unsigned int idx, uint64_t off,
					 unsigned int size, bool write, uint64_t *val);

static inline uint16_t vn_pci_get16(const struct vn_pci_func *f, uint32_t off)
{
	return (uint16_t)(f->config[off] | (f->config[off + 1] << 8));
}

static inline uint32_t vn_pci_get32(const struct vn_pci_func *f, uint32_t off)
{
	return (uint32_t)f->config[off] | ((uint32_t)f->config[off + 1] << 8) |
	       ((uint32_t)f->config[off + 2] << 16) | ((uint32_t)f->config[off + 3] << 24);
}

static inline void vn_pci_set16(struct vn_pci_func *f, uint32_t off, uint16_t v)
{
	f->config[off] = (uint8_t)v;
	f->config[off + 1] = (uint8_t)(v >> 8);
}

static inline void vn_pci_set32(struct vn_pci_func *f, uint32_t off, uint32_t v)
{
	vn_pci_set16(f, off, (uint16_t)v);
	vn_pci_set16(f, off + 2, (uint16_t)(v >> 16));
}

#endif
