/* SPDX-License-Identifier: MIT */
#include "guest/vdrv-env.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/pci_regs.h>

#include "base/compiler.h"
#include "base/log.h"

#define PCI_CLASS_BRIDGE_BASE 0x06
#define CFG_ADDR_PORT 0xcf8
#define CFG_DATA_PORT 0xcfc

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* ---- env: allocators ---- */

int vn_vdrv_env_new(const struct vn_vdrv_env_cfg *cfg, struct vn_vdrv_env **out)
{
	struct vn_vdrv_env *env;

	if (!cfg || !cfg->bus || !cfg->mem || !cfg->irq_fd || !cfg->ram_size ||
	    cfg->ram_base + cfg->ram_size < cfg->ram_base)
		return -EINVAL;
	env = calloc(1, sizeof(*env));
	if (!env)
		return -ENOMEM;
	env->cfg = *cfg;
	if (!env->cfg.msi_data_max)
		env->cfg.msi_data_max = VN_VDRV_MSI_DATA_MAX_DEFAULT;
	pthread_mutex_init(&env->lock, NULL);
	pthread_mutex_init(&env->cfg_lock, NULL);
	env->ram_next = cfg->ram_base;
	env->pio_next = VN_VDRV_PIO_BASE;
	env->mmio_next = VN_VDRV_MMIO_BASE;
	*out = env;
	return 0;
}

void vn_vdrv_env_free(struct vn_vdrv_env *env)
{
	if (!env)
		return;
	pthread_mutex_destroy(&env->lock);
	pthread_mutex_destroy(&env->cfg_lock);
	free(env);
}

int vn_vdrv_env_alloc(struct vn_vdrv_env *env, uint64_t size, uint64_t align, uint64_t *gpa)
{
	uint64_t at, end = env->cfg.ram_base + env->cfg.ram_size;
	int r = 0;

	if (!align || (align & (align - 1)) || !size)
		return -EINVAL;
	pthread_mutex_lock(&env->lock);
	at = align_up(env->ram_next, align);
	if (at < env->ram_next || at > end || size > end - at) {
		r = -ENOMEM;
	} else {
		env->ram_next = at + size;
		*gpa = at;
	}
	pthread_mutex_unlock(&env->lock);
	return r;
}

void *vn_vdrv_env_ptr(struct vn_vdrv_env *env, uint64_t gpa, uint64_t len)
{
	return vn_gmem_ptr(env->cfg.mem, gpa, len);
}

int vn_vdrv_env_alloc_msi(struct vn_vdrv_env *env, unsigned int n, unsigned int *first)
{
	int r = 0;

	pthread_mutex_lock(&env->lock);
	if (n > env->cfg.msi_data_max - env->msi_next) {
		r = -ENOSPC;
	} else {
		*first = env->msi_next;
		env->msi_next += n;
	}
	pthread_mutex_unlock(&env->lock);
	return r;
}

/* ---- PCI configuration mechanism #1 ---- */

static uint32_t cfg_addr(unsigned int slot, unsigned int reg)
{
	return 0x80000000u | (slot << 11) | (reg & 0xfc);
}

static bool cfg_args_ok(unsigned int slot, unsigned int reg, unsigned int size)
{
	return slot < VN_VDRV_PCI_SLOTS && reg < 256 && (size == 1 || size == 2 || size == 4) &&
	       !(reg & (size - 1));
}

uint32_t vn_vdrv_pci_cfg_read(struct vn_vdrv_env *env, unsigned int slot, unsigned int reg,
			      unsigned int size)
{
	uint64_t v = ~0ull;

	if (!cfg_args_ok(slot, reg, size))
		return ~0u;
	pthread_mutex_lock(&env->cfg_lock);
	if (vn_bus_write(env->cfg.bus, VN_SPACE_PIO, CFG_ADDR_PORT, 4, cfg_addr(slot, reg)) < 0 ||
	    vn_bus_read(env->cfg.bus, VN_SPACE_PIO, CFG_DATA_PORT + (reg & 3), size, &v) < 0)
		v = ~0ull;
	pthread_mutex_unlock(&env->cfg_lock);
	return (uint32_t)(size == 4 ? v : v & ((1u << (8 * size)) - 1));
}

int vn_vdrv_pci_cfg_write(struct vn_vdrv_env *env, unsigned int slot, unsigned int reg,
			  unsigned int size, uint32_t value)
{
	int r;

	if (!cfg_args_ok(slot, reg, size))
		return -EINVAL;
	pthread_mutex_lock(&env->cfg_lock);
	r = vn_bus_write(env->cfg.bus, VN_SPACE_PIO, CFG_ADDR_PORT, 4, cfg_addr(slot, reg));
	if (r >= 0)
		r = vn_bus_write(env->cfg.bus, VN_SPACE_PIO, CFG_DATA_PORT + (reg & 3), size,
				 value);
	pthread_mutex_unlock(&env->cfg_lock);
	return r < 0 ? r : 0;
}

/* ---- firmware ---- */

/* Size BAR @i (decode is off); 64-bit BARs take i + 1 too. Return: BARs used. */
static int size_bar(struct vn_vdrv_env *env, unsigned int slot, unsigned int i,
		    struct vn_vdrv_pci_bar *bar)
{
	unsigned int reg = PCI_BASE_ADDRESS_0 + 4 * i;
	uint32_t lo, hi = 0;
	uint64_t mask;
	int r;

	memset(bar, 0, sizeof(*bar));
	r = vn_vdrv_pci_cfg_write(env, slot, reg, 4, ~0u);
	if (r < 0)
		return r;
	lo = vn_vdrv_pci_cfg_read(env, slot, reg, 4);
	if (lo == 0 || lo == ~0u)
		return 1; /* not implemented */
	if (lo & PCI_BASE_ADDRESS_SPACE_IO) {
		bar->io = true;
		bar->size = (uint32_t) ~((lo & PCI_BASE_ADDRESS_IO_MASK) | 0xffff0000u) + 1;
		return 1;
	}
	mask = lo & PCI_BASE_ADDRESS_MEM_MASK;
	if ((lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64) {
		if (i + 1 >= VN_VDRV_PCI_BARS)
			return -ENODEV;
		r = vn_vdrv_pci_cfg_write(env, slot, reg + 4, 4, ~0u);
		if (r < 0)
			return r;
		hi = vn_vdrv_pci_cfg_read(env, slot, reg + 4, 4);
		bar->is64 = true;
		mask |= (uint64_t)hi << 32;
		bar->size = ~mask + 1;
	} else {
		bar->size = (uint32_t) ~(uint32_t)mask + 1;
	}
	return bar->is64 ? 2 : 1;
}

static int place_bar(struct vn_vdrv_env *env, unsigned int slot, unsigned int i,
		     struct vn_vdrv_pci_bar *bar)
{
	unsigned int reg = PCI_BASE_ADDRESS_0 + 4 * i;
	uint64_t *next = bar->io ? &env->pio_next : &env->mmio_next;
	uint64_t end = bar->io ? VN_VDRV_PIO_END : VN_VDRV_MMIO_END;
	uint64_t at;
	int r;

	if (!bar->size || (bar->size & (bar->size - 1)))
		return bar->size ? -ENODEV : 0;
	pthread_mutex_lock(&env->lock);
	at = align_up(*next, bar->size);
	if (at > end || bar->size > end - at) {
		pthread_mutex_unlock(&env->lock);
		return -ENOSPC;
	}
	*next = at + bar->size;
	pthread_mutex_unlock(&env->lock);
	bar->addr = at;
	r = vn_vdrv_pci_cfg_write(env, slot, reg, 4, (uint32_t)at);
	if (r >= 0 && bar->is64)
		r = vn_vdrv_pci_cfg_write(env, slot, reg + 4, 4, (uint32_t)(at >> 32));
	return r;
}

static int scan_slot(struct vn_vdrv_env *env, unsigned int slot)
{
	struct vn_vdrv_pci_fn *fn = &env->fn[slot];
	uint32_t id = vn_vdrv_pci_cfg_read(env, slot, PCI_VENDOR_ID, 4);
	int r, used;

	if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0)
		return 0;
	fn->present = true;
	fn->vendor = (uint16_t)id;
	fn->device = (uint16_t)(id >> 16);
	fn->class_code = (uint8_t)vn_vdrv_pci_cfg_read(env, slot, PCI_CLASS_DEVICE + 1, 1);
	fn->subclass = (uint8_t)vn_vdrv_pci_cfg_read(env, slot, PCI_CLASS_DEVICE, 1);
	fn->subsys_vendor = (uint16_t)vn_vdrv_pci_cfg_read(env, slot, PCI_SUBSYSTEM_VENDOR_ID, 2);
	fn->subsys = (uint16_t)vn_vdrv_pci_cfg_read(env, slot, PCI_SUBSYSTEM_ID, 2);
	if (fn->class_code == PCI_CLASS_BRIDGE_BASE ||
	    (vn_vdrv_pci_cfg_read(env, slot, PCI_HEADER_TYPE, 1) & 0x7f) != PCI_HEADER_TYPE_NORMAL)
		return 1;
	/* No decoding while the BARs read as all ones. */
	r = vn_vdrv_pci_cfg_write(env, slot, PCI_COMMAND, 2, 0);
	if (r < 0)
		return r;
	for (unsigned int i = 0; i < VN_VDRV_PCI_BARS; i += (unsigned int)used) {
		used = size_bar(env, slot, i, &fn->bar[i]);
		if (used < 0)
			return used;
		r = place_bar(env, slot, i, &fn->bar[i]);
		if (r < 0)
			return r;
	}
	r = vn_vdrv_pci_cfg_write(env, slot, PCI_COMMAND, 2,
				  PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	return r < 0 ? r : 1;
}

int vn_vdrv_pci_scan(struct vn_vdrv_env *env)
{
	int n = 0, r;

	if (env->scanned) {
		for (unsigned int s = 0; s < VN_VDRV_PCI_SLOTS; s++)
			n += env->fn[s].present;
		return n;
	}
	for (unsigned int s = 0; s < VN_VDRV_PCI_SLOTS; s++) {
		r = scan_slot(env, s);
		if (r < 0) {
			vn_log(VN_LOG_ERR, "vdrv", "pci slot %u: %s", s, strerror(-r));
			return r;
		}
		n += r;
	}
	env->scanned = true;
	return n;
}

int vn_vdrv_pci_find(struct vn_vdrv_env *env, uint16_t vendor, uint16_t device, unsigned int index)
{
	for (unsigned int s = 0; s < VN_VDRV_PCI_SLOTS; s++) {
		const struct vn_vdrv_pci_fn *fn = &env->fn[s];

		if (fn->present && fn->vendor == vendor && fn->device == device && index-- == 0)
			return (int)s;
	}
	return -ENOENT;
}
