/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_MACHINE_H
#define VN_VNOTIFY_MACHINE_H

/*
 * The soft machine (docs/design.md "The board"): one VM's worth of state
 * without a CPU. It owns
 *   - guest RAM: one region at guest physical 0, a memfd by default (so a
 *     vhost-user backend can map the same pages), or private anonymous
 *     memory or hugetlbfs pages (enum vn_machine_ram);
 *   - a bus (PIO and MMIO address spaces, the ioeventfd table) through which
 *     the guest's vCPU threads (vnotify's own driver, or a VMM) reach devices
 *     with vn_bus_read() / vn_bus_write();
 *   - an accelerator: soft (the bus's own table) by default, or KVM on a VM fd;
 *   - a PCI host bridge on configuration mechanism #1 (PIO 0xcf8 address,
 *     0xcfc-0xcff data; bus 0, slots 0..31, function 0), with the host bridge
 *     itself at slot 0 (vendor 0x8086, device 0x1237, class 0x0600);
 *   - MSI delivery: a write of data D to address 0xfee00000 signals the
 *     machine's interrupt eventfd D (vn_machine_irq_fd()), through a small
 *     routing table (struct vn_msi_ops) that a KVM machine replaces with
 *     irqfd/GSI routes;
 *   - a run state: pausing stops every device's host notifiers, resuming
 *     restarts them.
 *
 * The firmware places BARs in these windows; the host bridge decodes a BAR
 * only while it lies entirely inside its window.
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/error.h>

struct vn_machine;
struct vn_bus;
struct vn_accel;

/* The host bridge's windows for BARs (the firmware's contract). */
#define VN_MACHINE_PIO_WINDOW_BASE 0xc000ull
#define VN_MACHINE_PIO_WINDOW_END 0x10000ull /* exclusive */
#define VN_MACHINE_MMIO_WINDOW_BASE 0xe0000000ull
#define VN_MACHINE_MMIO_WINDOW_END 0xf0000000ull /* exclusive */

/* Configuration mechanism #1 ports. */
#define VN_MACHINE_PCI_CONF1_ADDR 0xcf8u
#define VN_MACHINE_PCI_CONF1_DATA 0xcfcu
#define VN_MACHINE_PCI_SLOTS 32u

/* MSI on the soft machine: address 0xfee00000 (upper 32 bits 0), data = irq. */
#define VN_MACHINE_MSI_ADDR 0xfee00000ull
#define VN_MACHINE_NR_IRQS_DEFAULT 64u
#define VN_MACHINE_NR_IRQS_MAX 4096u

#define VN_MACHINE_RAM_SIZE_DEFAULT (64ull << 20)

/**
 * struct vn_msi_route - where one MSI message (address, data) goes
 * @fd: an eventfd; a write to it raises the interrupt. Owned by whoever
 *      routed it (the machine, or the msi_ops provider); users dup it.
 * @cookie: for the provider (a KVM GSI, say)
 */
struct vn_msi_route {
	int fd;
	uint64_t cookie;
};

/**
 * struct vn_msi_ops - MSI routing, replaceable (a KVM machine routes to
 * irqfds on GSI routes instead of the soft machine's eventfds)
 * @route: fill @out for the message (@addr, @data). Return 0, or -EINVAL for a
 *         message that goes nowhere (the vector then stays silent).
 * @unroute: @route is no longer used (after every dup of its fd was closed)
 *
 * Context: any thread; called with a device lock held, so it must not wait
 * for a vCPU or an iothread.
 */
struct vn_msi_ops {
	int (*route)(void *opaque, uint64_t addr, uint32_t data, struct vn_msi_route *out);
	void (*unroute)(void *opaque, const struct vn_msi_route *route);
};

/**
 * enum vn_machine_ram - what backs guest RAM
 * @VN_MACHINE_RAM_MEMFD: a sealed memfd, advised MADV_HUGEPAGE (huge pages
 *                        only where shmem THP allows advice); its fd can be
 *                        shared (vn_machine_ram_fd())
 * @VN_MACHINE_RAM_ANON: private anonymous memory, 2 MiB aligned and advised
 *                       MADV_HUGEPAGE (huge pages unless THP is "never");
 *                       no fd, so no vhost-user backend can map it
 * @VN_MACHINE_RAM_HUGETLB: hugetlbfs pages, reserved at creation: a file in
 *                          the mount @ram_path, or a MFD_HUGETLB memfd
 */
enum vn_machine_ram {
	VN_MACHINE_RAM_MEMFD = 0,
	VN_MACHINE_RAM_ANON,
	VN_MACHINE_RAM_HUGETLB,
};

/**
 * struct vn_machine_cfg - machine options
 * @ram_size: bytes of RAM at guest physical 0, a multiple of 4096;
 *            0 means VN_MACHINE_RAM_SIZE_DEFAULT
 * @kvm_vm_fd: -1 (or any negative value): the soft accelerator. Otherwise a
 *             KVM VM fd: ioeventfds go to KVM_IOEVENTFD (the fd stays the
 *             caller's and must outlive the machine). Note that 0 is a valid
 *             fd: initialise the field.
 * @max_ioeventfds: the ioeventfd table limit per space (soft: the bus's
 *                  table; kvm: what the accelerator reports); 0 means
 *                  VN_IOEV_LIMIT_DEFAULT
 * @nr_irqs: interrupt eventfds of the soft MSI route (data < @nr_irqs);
 *           0 means VN_MACHINE_NR_IRQS_DEFAULT, at most VN_MACHINE_NR_IRQS_MAX
 * @msi_ops: NULL for the soft routing above; else the replacement
 * @msi_opaque: passed to @msi_ops
 * @ram: what backs guest RAM (default VN_MACHINE_RAM_MEMFD)
 * @ram_path: with VN_MACHINE_RAM_HUGETLB, a hugetlbfs mount, or NULL
 */
struct vn_machine_cfg {
	uint64_t ram_size;
	int kvm_vm_fd;
	unsigned int max_ioeventfds;
	unsigned int nr_irqs;
	const struct vn_msi_ops *msi_ops;
	void *msi_opaque;
	enum vn_machine_ram ram;
	const char *ram_path;
};

/** vn_machine_cfg_init() - the defaults (soft accelerator, 64 MiB, 64 irqs) */
void vn_machine_cfg_init(struct vn_machine_cfg *cfg);

/**
 * vn_machine_new() - create a running machine with RAM, bus, accelerator
 * and the PCI host bridge
 * @cfg: options; NULL for vn_machine_cfg_init()'s defaults
 * @out: set on success
 *
 * Return: 0; -EINVAL for a bad option; -ENOMEM (also: too few free huge
 * pages for VN_MACHINE_RAM_HUGETLB); -ENOTTY for a @ram_path that is not
 * hugetlbfs; -errno from memfd, mmap, eventfd or the KVM accelerator.
 */
VN_MUST_CHECK int vn_machine_new(const struct vn_machine_cfg *cfg, struct vn_machine **out);

/**
 * vn_machine_free() - free a machine; NULL is allowed
 * Context: every device was removed first and no vCPU thread uses the bus.
 */
void vn_machine_free(struct vn_machine *m);

/** vn_machine_bus() - the machine's bus (vCPU threads call vn_bus_read/write on it) */
struct vn_bus *vn_machine_bus(struct vn_machine *m);

/** vn_machine_accel() - where ioeventfds are registered */
struct vn_accel *vn_machine_accel(struct vn_machine *m);

/** vn_machine_ram_size() - bytes of RAM at guest physical 0 */
uint64_t vn_machine_ram_size(const struct vn_machine *m);

/**
 * vn_machine_ram_fd() - the fd behind guest RAM (for a vhost-user backend
 * or a second mapping). The machine keeps ownership.
 * Return: the fd, or -ENOENT for VN_MACHINE_RAM_ANON, which has none.
 */
int vn_machine_ram_fd(const struct vn_machine *m);

/** vn_machine_nr_irqs() - how many soft interrupt eventfds there are */
unsigned int vn_machine_nr_irqs(const struct vn_machine *m);

/**
 * vn_machine_irq_fd() - the eventfd the soft MSI route signals for data @irq
 *
 * The guest (driver) waits on it and reads it to acknowledge. The machine
 * keeps ownership.
 * Return: the fd, or -EINVAL for @irq >= vn_machine_nr_irqs().
 * Context: any thread.
 */
int vn_machine_irq_fd(struct vn_machine *m, unsigned int irq);

/**
 * vn_machine_msi_route() / vn_machine_msi_unroute() - route an MSI message
 * through the machine's msi_ops (see struct vn_msi_ops)
 * Return: 0, or -EINVAL for a message that goes nowhere.
 * Context: any thread.
 */
VN_MUST_CHECK int vn_machine_msi_route(struct vn_machine *m, uint64_t addr, uint32_t data,
				       struct vn_msi_route *out);
void vn_machine_msi_unroute(struct vn_machine *m, const struct vn_msi_route *route);

/**
 * vn_machine_pause() - stop the machine: every device's host notifiers stop
 * (ASSIGNED queues go DEASSIGNED, with the drain-on-stop rule) and no queue
 * is run on their behalf until vn_machine_resume(). Idempotent.
 * Context: any thread but a device's callback; no device lock held.
 */
void vn_machine_pause(struct vn_machine *m);

/**
 * vn_machine_resume() - run again: host notifiers restart where their
 * conditions hold, with a self-kick. Idempotent.
 * Context: as vn_machine_pause().
 */
void vn_machine_resume(struct vn_machine *m);

/**
 * vn_machine_reset() - a system reset (a guest reboot): every device goes
 * back to its power-on state and the configuration stays. For virtio-pci:
 * the PCI header as plugged (no decode, no bus master, BARs 0, MSI-X off
 * and every entry masked), so the host notifiers stop with their drain;
 * the BUS_MASTER_BUG workaround is dropped; the virtio device resets,
 * which waits for its I/O in flight (a block write reaches the image, its
 * completion to the old guest is dropped) and drops the promoter's dynamic
 * ioeventfds. The ioeventfd option, the iothread and promoter candidates
 * are configuration and survive. When it returns no device touches guest
 * memory, so firmware may load the next kernel. The run state is not
 * changed.
 * Context: no vCPU is inside the bus (the VMM parked them) and no device
 * lock is held; not from a bus callback.
 */
void vn_machine_reset(struct vn_machine *m);

/** vn_machine_is_running() - true unless paused. Context: any thread. */
bool vn_machine_is_running(const struct vn_machine *m);

#endif
