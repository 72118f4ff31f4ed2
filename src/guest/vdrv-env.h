/* SPDX-License-Identifier: MIT */
#ifndef VN_GUEST_VDRV_ENV_H
#define VN_GUEST_VDRV_ENV_H

/*
 * The machine as the guest driver sees it (src/guest/): the bus it reaches
 * devices through, its view of guest memory, the MSI eventfds, and the
 * firmware's and the guest kernel's global state: PCI configuration
 * mechanism #1 (ports 0xcf8/0xcfc), BAR sizing and placement in the host
 * bridge's windows, and the allocators of guest RAM and MSI data values.
 *
 * Keeping this apart from the machine's internals (an irq-fd callback, not
 * an include) keeps the driver usable on any machine with that contract.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <vnotify/bus.h>

#include "mem/gmem.h"

/* The firmware's windows (the contract with the soft machine). */
#define VN_VDRV_PIO_BASE 0xc000u
#define VN_VDRV_PIO_END 0x10000u
#define VN_VDRV_MMIO_BASE 0xe0000000ull
#define VN_VDRV_MMIO_END 0xf0000000ull
#define VN_VDRV_MSI_ADDR 0xfee00000u
#define VN_VDRV_MSI_DATA_MAX_DEFAULT 64u

#define VN_VDRV_PCI_SLOTS 32
#define VN_VDRV_PCI_BARS 6

/**
 * typedef vn_vdrv_irq_fd_fn - the eventfd the machine signals for MSI data @data
 * Return: the fd (owned by the machine, read only by this driver), or -errno.
 */
typedef int vn_vdrv_irq_fd_fn(void *opaque, unsigned int data);

/**
 * struct vn_vdrv_env_cfg - what the driver may touch of a machine
 * @bus: the machine's bus; must outlive the env
 * @mem: the driver's view of guest memory; must outlive the env
 * @ram_base, @ram_size: guest RAM the driver lays its rings and buffers in
 * @irq_fd: gives the eventfd of an MSI data value
 * @irq_opaque: passed to @irq_fd
 * @msi_data_max: data values handed out are < this; 0 means 64
 */
struct vn_vdrv_env_cfg {
	struct vn_bus *bus;
	const struct vn_gmem *mem;
	uint64_t ram_base, ram_size;
	vn_vdrv_irq_fd_fn *irq_fd;
	void *irq_opaque;
	unsigned int msi_data_max;
};

/* One PCI function as the firmware found and placed it. */
struct vn_vdrv_pci_bar {
	uint64_t addr;
	uint64_t size; /* 0: not implemented (or the upper half of a 64-bit BAR) */
	bool io;
	bool is64;
};

struct vn_vdrv_pci_fn {
	bool present;
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys;
	uint8_t class_code, subclass;
	struct vn_vdrv_pci_bar bar[VN_VDRV_PCI_BARS];
};

/*
 * The env: the machine's bus and memory plus the firmware's and the
 * kernel's global state (PCI config lock, RAM and MSI allocators).
 */
struct vn_vdrv_env {
	struct vn_vdrv_env_cfg cfg;
	pthread_mutex_t lock;	  /* guards the allocators */
	pthread_mutex_t cfg_lock; /* makes the 0xcf8/0xcfc pair one configuration cycle */
	uint64_t ram_next;
	uint64_t pio_next, mmio_next;
	unsigned int msi_next;
	bool scanned;
	struct vn_vdrv_pci_fn fn[VN_VDRV_PCI_SLOTS];
};

/**
 * vn_vdrv_env_new() - an env over a machine's bus and memory
 * Return: 0; -EINVAL without a bus, memory, irq_fd or RAM; -ENOMEM.
 */
VN_MUST_CHECK int vn_vdrv_env_new(const struct vn_vdrv_env_cfg *cfg, struct vn_vdrv_env **out);

/** vn_vdrv_env_free() - free the env (devices opened on it first); NULL ok */
void vn_vdrv_env_free(struct vn_vdrv_env *env);

/**
 * vn_vdrv_env_alloc() - take @size bytes of guest RAM aligned to @align
 *
 * A bump allocator: the guest kernel's memory for rings, request headers and
 * data buffers. Memory is never given back (devices reuse theirs across a
 * reset). It is zero when first handed out (fresh memfd pages).
 * Return: 0 with *@gpa set, -EINVAL for a bad @align, -ENOMEM when RAM is
 * exhausted.
 * Context: any thread.
 */
VN_MUST_CHECK int vn_vdrv_env_alloc(struct vn_vdrv_env *env, uint64_t size, uint64_t align,
				    uint64_t *gpa);

/**
 * vn_vdrv_env_ptr() - host pointer to guest RAM @gpa (for filling buffers)
 * Return: NULL if [gpa, gpa + len) is not inside one region of the driver's map.
 */
void *vn_vdrv_env_ptr(struct vn_vdrv_env *env, uint64_t gpa, uint64_t len);

/**
 * vn_vdrv_pci_scan() - the firmware: find the functions of bus 0 and place them
 *
 * For every slot that answers, sizes each BAR (all ones, read back), assigns
 * it from the PIO or MMIO window at its natural alignment, then enables I/O
 * decode, memory decode and bus master. Host bridges are listed but not
 * touched. Runs once; later calls return the same count.
 * Return: the number of functions found, or -ENOSPC if the windows are too
 * small, -errno from the bus.
 * Context: any thread.
 */
VN_MUST_CHECK int vn_vdrv_pci_scan(struct vn_vdrv_env *env);

/**
 * vn_vdrv_pci_find() - the @index-th function (0-based, by slot) with this id
 * Return: the slot, or -ENOENT.
 */
VN_MUST_CHECK int vn_vdrv_pci_find(struct vn_vdrv_env *env, uint16_t vendor, uint16_t device,
				   unsigned int index);

/**
 * vn_vdrv_pci_cfg_read() / vn_vdrv_pci_cfg_write() - a configuration cycle
 * @size: 1, 2 or 4; @reg must be aligned to it
 *
 * cfg_read returns all ones for an empty slot, as the hardware does.
 * Return (write): 0, or -EINVAL for a bad slot, size or alignment.
 * Context: any thread (the address/data pair is taken under the env lock).
 */
uint32_t vn_vdrv_pci_cfg_read(struct vn_vdrv_env *env, unsigned int slot, unsigned int reg,
			      unsigned int size);
VN_MUST_CHECK int vn_vdrv_pci_cfg_write(struct vn_vdrv_env *env, unsigned int slot,
					unsigned int reg, unsigned int size, uint32_t value);

/**
 * vn_vdrv_env_alloc_msi() - take @n consecutive MSI data values
 * Return: 0 with *@first set, or -ENOSPC when they ran out.
 * Context: any thread.
 */
VN_MUST_CHECK int vn_vdrv_env_alloc_msi(struct vn_vdrv_env *env, unsigned int n,
					unsigned int *first);

#endif
