/* SPDX-License-Identifier: MIT */
#include "hw/pci-host.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <stdlib.h>
#include <string.h>

#include <vnotify/machine.h>

#include "base/log.h"
#include "base/trace.h"

struct vn_pci_host {
	struct vn_bus *bus;
	pthread_mutex_t lock;
	uint32_t latch; /* conf1 address register */
	struct vn_pci_func *slots[VN_MACHINE_PCI_SLOTS];
	struct vn_pci_func bridge;
	struct vn_region *conf1;
	struct vn_ratelimit rl;
};

#define CONF1_ENABLE 0x80000000u

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

void vn_pci_func_init(struct vn_pci_func *f, uint16_t vendor, uint16_t device, uint32_t class_code,
		      uint8_t revision, const struct vn_pci_func_ops *ops, void *opaque)
{
	memset(f, 0, sizeof(*f));
	f->slot = -1;
	f->ops = ops;
	f->opaque = opaque;
	f->next_cap = VN_PCI_CAP_START;
	for (unsigned int i = 0; i < VN_PCI_NR_BARS; i++)
		f->bar[i].mapped = VN_PCI_BAR_UNMAPPED;
	vn_pci_set16(f, PCI_VENDOR_ID, vendor);
	vn_pci_set16(f, PCI_DEVICE_ID, device);
	f->config[PCI_REVISION_ID] = revision;
	f->config[PCI_CLASS_PROG] = (uint8_t)class_code;
	vn_pci_set16(f, PCI_CLASS_DEVICE, (uint16_t)(class_code >> 8));
	f->config[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
	/* Writable: I/O, memory, bus master, INTx disable; cache line, latency, irq line. */
	f->wmask[PCI_COMMAND] = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	f->wmask[PCI_COMMAND + 1] = PCI_COMMAND_INTX_DISABLE >> 8;
	f->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
	f->wmask[PCI_LATENCY_TIMER] = 0xff;
	f->wmask[PCI_INTERRUPT_LINE] = 0xff;
	f->config[PCI_INTERRUPT_PIN] = 1; /* INTA# */
}

int vn_pci_func_set_bar(struct vn_pci_func *f, unsigned int idx, const struct vn_pci_bar_cfg *cfg)
{
	uint32_t off = PCI_BASE_ADDRESS_0 + 4 * idx;
	uint32_t type, mask;
	bool io = cfg->flags & VN_PCI_BAR_IO;
	bool is64 = cfg->flags & VN_PCI_BAR_MEM64;

	if (idx >= VN_PCI_NR_BARS || !is_pow2(cfg->size) || !cfg->ops ||
	    (io && (cfg->size < 4 || cfg->size > 256 || is64)) || (!io && cfg->size < 16) ||
	    (!io && cfg->size > (1ull << 31)) || (is64 && idx == VN_PCI_NR_BARS - 1))
		return -EINVAL;
	f->bar[idx].cfg = *cfg;
	if (io) {
		type = PCI_BASE_ADDRESS_SPACE_IO;
		mask = ~(uint32_t)(cfg->size - 1) & ~3u;
	} else {
		type = is64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : PCI_BASE_ADDRESS_MEM_TYPE_32;
		if (cfg->flags & VN_PCI_BAR_PREFETCH)
			type |= PCI_BASE_ADDRESS_MEM_PREFETCH;
		mask = ~(uint32_t)(cfg->size - 1) & ~0xfu;
	}
	vn_pci_set32(f, off, type);
	for (unsigned int i = 0; i < 4; i++)
		f->wmask[off + i] = (uint8_t)(mask >> (8 * i));
	if (is64) {
		vn_pci_set32(f, off + 4, 0);
		memset(&f->wmask[off + 4], 0xff, 4);
	}
	return 0;
}

int vn_pci_func_add_cap(struct vn_pci_func *f, uint8_t id, uint8_t len)
{
	unsigned int off = f->next_cap;
	uint8_t prev;

	if (len < 2 || off + len > VN_PCI_CONFIG_SIZE)
		return -ENOSPC;
	/* Link it at the end of the list. */
	if (!(vn_pci_get16(f, PCI_STATUS) & PCI_STATUS_CAP_LIST)) {
		vn_pci_set16(f, PCI_STATUS, vn_pci_get16(f, PCI_STATUS) | PCI_STATUS_CAP_LIST);
		f->config[PCI_CAPABILITY_LIST] = (uint8_t)off;
	} else {
		prev = f->config[PCI_CAPABILITY_LIST];
		while (f->config[prev + PCI_CAP_LIST_NEXT])
			prev = f->config[prev + PCI_CAP_LIST_NEXT];
		f->config[prev + PCI_CAP_LIST_NEXT] = (uint8_t)off;
	}
	f->config[off + PCI_CAP_LIST_ID] = id;
	f->config[off + PCI_CAP_LIST_NEXT] = 0;
	f->next_cap = (uint8_t)((off + len + 3) & ~3u);
	if (off + len + 3 >= VN_PCI_CONFIG_SIZE)
		f->next_cap = 0xff; /* full */
	return (int)off;
}

uint16_t vn_pci_func_command(const struct vn_pci_func *f)
{
	return vn_pci_get16(f, PCI_COMMAND);
}

uint64_t vn_pci_func_bar_addr(const struct vn_pci_func *f, unsigned int idx)
{
	return idx < VN_PCI_NR_BARS ? f->bar[idx].mapped : VN_PCI_BAR_UNMAPPED;
}

/* Where BAR @i should be decoded now, or VN_PCI_BAR_UNMAPPED. */
static uint64_t bar_wanted(const struct vn_pci_func *f, unsigned int i)
{
	const struct vn_pci_bar_cfg *c = &f->bar[i].cfg;
	uint32_t off = PCI_BASE_ADDRESS_0 + 4 * i;
	uint16_t cmd = vn_pci_func_command(f);
	uint64_t addr, base, end;

	if (!c->size)
		return VN_PCI_BAR_UNMAPPED;
	if (c->flags & VN_PCI_BAR_IO) {
		if (!(cmd & PCI_COMMAND_IO))
			return VN_PCI_BAR_UNMAPPED;
		addr = vn_pci_get32(f, off) & ~(uint64_t)3;
		base = VN_MACHINE_PIO_WINDOW_BASE;
		end = VN_MACHINE_PIO_WINDOW_END;
	} else {
		if (!(cmd & PCI_COMMAND_MEMORY))
			return VN_PCI_BAR_UNMAPPED;
		addr = vn_pci_get32(f, off) & ~(uint64_t)0xf;
		if (c->flags & VN_PCI_BAR_MEM64)
			addr |= (uint64_t)vn_pci_get32(f, off + 4) << 32;
		base = VN_MACHINE_MMIO_WINDOW_BASE;
		end = VN_MACHINE_MMIO_WINDOW_END;
	}
	/* The write mask keeps @addr aligned to the size; check the window. */
	if (addr < base || addr >= end || c->size > end - addr)
		return VN_PCI_BAR_UNMAPPED;
	return addr;
}

static void bar_unmap(struct vn_pci_host *h, struct vn_pci_func *f, unsigned int i)
{
	if (!f->bar[i].region)
		return;
	vn_trace(pci_bar_unmap, "slot=%d bar=%u addr=0x%llx", f->slot, i,
		 (unsigned long long)f->bar[i].mapped);
	if (f->ops && f->ops->region_removing)
		f->ops->region_removing(f->opaque, i, f->bar[i].region);
	vn_bus_del_region(h->bus, f->bar[i].region);
	f->bar[i].region = NULL;
	f->bar[i].mapped = VN_PCI_BAR_UNMAPPED;
}

/* Returns true if the mapping changed. */
static bool bar_map(struct vn_pci_host *h, struct vn_pci_func *f, unsigned int i, uint64_t addr)
{
	const struct vn_pci_bar_cfg *c = &f->bar[i].cfg;
	struct vn_region_cfg rc = {
		.name = c->name,
		.space = (c->flags & VN_PCI_BAR_IO) ? VN_SPACE_PIO : VN_SPACE_MMIO,
		.base = addr,
		.size = c->size,
		.ops = c->ops,
		.opaque = c->opaque,
		.promoter = c->promoter,
	};
	int r = vn_bus_add_region(h->bus, &rc, &f->bar[i].region);

	if (r < 0) {
		f->bar[i].region = NULL;
		vn_log_limited(&h->rl, VN_LOG_WARN, "pci",
			       "slot %d BAR%u at 0x%llx not decoded: %s", f->slot, i,
			       (unsigned long long)addr, vn_strerror(r));
		return false;
	}
	f->bar[i].mapped = addr;
	vn_trace(pci_bar_map, "slot=%d bar=%u addr=0x%llx size=0x%llx", f->slot, i,
		 (unsigned long long)addr, (unsigned long long)c->size);
	if (f->ops && f->ops->region_added)
		f->ops->region_added(f->opaque, i, f->bar[i].region);
	return true;
}

/*
 * Make every BAR's decoding match the headers: unmap what moved or lost
 * decode first, then map, so a BAR can move onto the place another just
 * left. Functions whose mappings changed, and @touched, are told.
 * Host lock held.
 */
static void remap_all(struct vn_pci_host *h, struct vn_pci_func *touched)
{
	bool changed[VN_MACHINE_PCI_SLOTS] = {0};

	for (unsigned int s = 0; s < VN_MACHINE_PCI_SLOTS; s++) {
		struct vn_pci_func *f = h->slots[s];

		for (unsigned int i = 0; f && i < VN_PCI_NR_BARS; i++) {
			if (f->bar[i].region && f->bar[i].mapped != bar_wanted(f, i)) {
				bar_unmap(h, f, i);
				changed[s] = true;
			}
		}
	}
	for (unsigned int s = 0; s < VN_MACHINE_PCI_SLOTS; s++) {
		struct vn_pci_func *f = h->slots[s];

		for (unsigned int i = 0; f && i < VN_PCI_NR_BARS; i++) {
			uint64_t want = bar_wanted(f, i);

			if (!f->bar[i].region && want != VN_PCI_BAR_UNMAPPED)
				changed[s] |= bar_map(h, f, i, want);
		}
	}
	for (unsigned int s = 0; s < VN_MACHINE_PCI_SLOTS; s++) {
		struct vn_pci_func *f = h->slots[s];

		if (f && (changed[s] || f == touched) && f->ops && f->ops->mapping_changed)
			f->ops->mapping_changed(f->opaque);
	}
}

static bool access_ok(uint32_t off, unsigned int size)
{
	return (size == 1 || size == 2 || size == 4) && off < VN_PCI_CONFIG_SIZE &&
	       size <= VN_PCI_CONFIG_SIZE - off;
}

static uint32_t func_read(struct vn_pci_func *f, uint32_t off, unsigned int size)
{
	uint32_t v = 0;

	if (f->ops && f->ops->config_read && f->ops->config_read(f->opaque, off, size, &v))
		return v;
	for (unsigned int i = 0; i < size; i++)
		v |= (uint32_t)f->config[off + i] << (8 * i);
	return v;
}

static bool overlaps(uint32_t off, unsigned int size, uint32_t start, uint32_t end)
{
	return off < end && off + size > start;
}

static void func_write(struct vn_pci_host *h, struct vn_pci_func *f, uint32_t off,
		       unsigned int size, uint32_t val)
{
	for (unsigned int i = 0; i < size; i++) {
		uint8_t m = f->wmask[off + i];
		uint8_t b = (uint8_t)(val >> (8 * i));

		f->config[off + i] = (uint8_t)((f->config[off + i] & ~m) | (b & m));
	}
	if (f->ops && f->ops->config_write)
		f->ops->config_write(f->opaque, off, size, val);
	if (overlaps(off, size, PCI_COMMAND, PCI_COMMAND + 2) ||
	    overlaps(off, size, PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_5 + 4))
		remap_all(h, f);
}

uint32_t vn_pci_host_config_read(struct vn_pci_host *h, unsigned int slot, uint32_t off,
				 unsigned int size)
{
	uint32_t v = UINT32_MAX;

	if (!access_ok(off, size))
		return UINT32_MAX;
	if (size < 4)
		v = (1u << (8 * size)) - 1;
	pthread_mutex_lock(&h->lock);
	if (slot < VN_MACHINE_PCI_SLOTS && h->slots[slot])
		v = func_read(h->slots[slot], off, size);
	pthread_mutex_unlock(&h->lock);
	vn_trace(pci_config_read, "slot=%u off=0x%x size=%u val=0x%x", slot, off, size, v);
	return v;
}

void vn_pci_host_config_write(struct vn_pci_host *h, unsigned int slot, uint32_t off,
			      unsigned int size, uint32_t val)
{
	if (!access_ok(off, size))
		return;
	vn_trace(pci_config_write, "slot=%u off=0x%x size=%u val=0x%x", slot, off, size, val);
	pthread_mutex_lock(&h->lock);
	if (slot < VN_MACHINE_PCI_SLOTS && h->slots[slot])
		func_write(h, h->slots[slot], off, size, val);
	pthread_mutex_unlock(&h->lock);
}

/*
 * Decode the latch: enable bit, bus 0, device, function 0. Returns the slot
 * or -1 for a cycle nobody answers. *@reg gets the dword-aligned register.
 */
static int conf1_target(uint32_t latch, uint32_t *reg)
{
	if (!(latch & CONF1_ENABLE) || ((latch >> 16) & 0xff) != 0 || ((latch >> 8) & 7) != 0)
		return -1;
	*reg = latch & 0xfc;
	return (int)((latch >> 11) & 0x1f);
}

static uint64_t conf1_read(void *opaque, uint64_t offset, unsigned int size)
{
	struct vn_pci_host *h = opaque;
	uint64_t ones = size >= 8 ? UINT64_MAX : (1ull << (8 * size)) - 1;
	uint32_t latch, reg;
	int slot;

	if (offset < 4)
		return (offset == 0 && size == 4) ? __atomic_load_n(&h->latch, __ATOMIC_RELAXED)
						  : ones;
	if (size > 4 || offset - 4 + size > 4)
		return ones;
	latch = __atomic_load_n(&h->latch, __ATOMIC_RELAXED);
	slot = conf1_target(latch, &reg);
	if (slot < 0)
		return ones;
	return vn_pci_host_config_read(h, (unsigned int)slot, reg + (uint32_t)(offset - 4), size);
}

static void conf1_write(void *opaque, uint64_t offset, unsigned int size, uint64_t value)
{
	struct vn_pci_host *h = opaque;
	uint32_t reg;
	int slot;

	if (offset < 4) {
		/* Only a dword write at 0xcf8 is the address register (as on a PC). */
		if (offset == 0 && size == 4)
			__atomic_store_n(&h->latch, (uint32_t)value, __ATOMIC_RELAXED);
		return;
	}
	if (size > 4 || offset - 4 + size > 4)
		return;
	slot = conf1_target(__atomic_load_n(&h->latch, __ATOMIC_RELAXED), &reg);
	if (slot < 0)
		return;
	vn_pci_host_config_write(h, (unsigned int)slot, reg + (uint32_t)(offset - 4), size,
				 (uint32_t)value);
}

static const struct vn_region_ops conf1_ops = {
	.read = conf1_read,
	.write = conf1_write,
};

int vn_pci_host_new(struct vn_bus *bus, struct vn_pci_host **out)
{
	struct vn_region_cfg rc = {
		.name = "pci-conf1",
		.space = VN_SPACE_PIO,
		.base = VN_MACHINE_PCI_CONF1_ADDR,
		.size = 8,
		.ops = &conf1_ops,
	};
	struct vn_pci_host *h = calloc(1, sizeof(*h));
	int r;

	if (!h)
		return -ENOMEM;
	h->bus = bus;
	pthread_mutex_init(&h->lock, NULL);
	vn_ratelimit_init(&h->rl, 10);
	/* The i440FX host bridge's ids, as PC firmware expects at 00:00.0. */
	vn_pci_func_init(&h->bridge, 0x8086, 0x1237, VN_PCI_CLASS_BRIDGE_HOST << 8, 2, NULL, NULL);
	/* A host bridge has no decode of its own to turn off. */
	h->bridge.wmask[PCI_COMMAND] = 0;
	vn_pci_set16(&h->bridge, PCI_COMMAND,
		     PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	h->bridge.config[PCI_INTERRUPT_PIN] = 0;
	h->bridge.slot = 0;
	h->bridge.host = h;
	h->slots[0] = &h->bridge;
	rc.opaque = h;
	r = vn_bus_add_region(bus, &rc, &h->conf1);
	if (r < 0) {
		vn_ratelimit_destroy(&h->rl);
		pthread_mutex_destroy(&h->lock);
		free(h);
		return r;
	}
	*out = h;
	return 0;
}

void vn_pci_host_free(struct vn_pci_host *h)
{
	if (!h)
		return;
	for (unsigned int s = 1; s < VN_MACHINE_PCI_SLOTS; s++)
		VN_BUG_ON(h->slots[s] != NULL);
	vn_bus_del_region(h->bus, h->conf1);
	vn_ratelimit_destroy(&h->rl);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int vn_pci_host_plug(struct vn_pci_host *h, unsigned int slot, struct vn_pci_func *f)
{
	int r = 0;

	if (slot == 0 || slot >= VN_MACHINE_PCI_SLOTS)
		return -EINVAL;
	pthread_mutex_lock(&h->lock);
	if (h->slots[slot]) {
		r = -EBUSY;
	} else {
		f->host = h;
		f->slot = (int)slot;
		h->slots[slot] = f;
		memcpy(f->reset_config, f->config, sizeof(f->config));
		vn_trace(pci_plug, "slot=%u vendor=0x%04x device=0x%04x", slot,
			 vn_pci_get16(f, PCI_VENDOR_ID), vn_pci_get16(f, PCI_DEVICE_ID));
	}
	pthread_mutex_unlock(&h->lock);
	return r;
}

void vn_pci_host_reset_func(struct vn_pci_host *h, struct vn_pci_func *f)
{
	pthread_mutex_lock(&h->lock);
	if (f->slot >= 0 && h->slots[f->slot] == f) {
		vn_trace(pci_reset, "slot=%d", f->slot);
		memcpy(f->config, f->reset_config, sizeof(f->config));
		if (f->ops && f->ops->reset)
			f->ops->reset(f->opaque);
		remap_all(h, f);
	}
	pthread_mutex_unlock(&h->lock);
}

void vn_pci_host_unplug(struct vn_pci_host *h, struct vn_pci_func *f)
{
	if (!h || f->slot < 0)
		return;
	pthread_mutex_lock(&h->lock);
	if (h->slots[f->slot] == f)
		h->slots[f->slot] = NULL;
	for (unsigned int i = 0; i < VN_PCI_NR_BARS; i++)
		bar_unmap(h, f, i);
	vn_trace(pci_unplug, "slot=%d", f->slot);
	f->slot = -1;
	pthread_mutex_unlock(&h->lock);
}

int vn_pci_func_bar_access(struct vn_pci_func *f, unsigned int idx, uint64_t off, unsigned int size,
			   bool write, uint64_t *val)
{
	const struct vn_pci_bar_cfg *c;

	if (idx >= VN_PCI_NR_BARS)
		return -EINVAL;
	c = &f->bar[idx].cfg;
	if (!c->size || (size != 1 && size != 2 && size != 4 && size != 8) || off >= c->size ||
	    size > c->size - off)
		return -EINVAL;
	if (write)
		c->ops->write(c->opaque, off, size, *val);
	else
		*val = c->ops->read(c->opaque, off, size);
	return 0;
}
