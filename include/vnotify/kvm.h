/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_KVM_H
#define VN_VNOTIFY_KVM_H

/*
 * Guest notifiers under KVM (docs/design.md "Words", accelerator kvm): an MSI
 * message (address, data) becomes a KVM GSI route of type MSI with an irqfd on
 * it, so a device's eventfd write interrupts the guest without userspace. A
 * KVM machine plugs these into its struct vn_msi_ops (vnotify/machine.h).
 *
 * KVM_SET_GSI_ROUTING replaces the whole routing table, so the router owns
 * it: when the VM has the in-kernel irqchip, it keeps KVM's 24 default
 * routes (GSI n -> IO-APIC pin n, and the PIC for GSI 0-15) in front of the
 * MSI routes.
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/error.h>

struct vn_kvm_irq;

/* The first GSI an MSI route gets when the irqchip's 24 routes are kept. */
#define VN_KVM_IRQ_IRQCHIP_GSIS 24u
#define VN_KVM_IRQ_MAX_MSI_DEFAULT 256u

/**
 * struct vn_kvm_irq_cfg - the router of one VM
 * @vm_fd: the VM (stays the caller's; must outlive the router)
 * @irqchip: the VM has KVM_CREATE_IRQCHIP's IO-APIC and PIC: keep their
 *           default routes (GSI 0-23); MSI routes then start at GSI 24
 * @max_msi: MSI routes at most; 0 means VN_KVM_IRQ_MAX_MSI_DEFAULT
 */
struct vn_kvm_irq_cfg {
	int vm_fd;
	bool irqchip;
	unsigned int max_msi;
};

/**
 * vn_kvm_irq_new() - create an MSI router on a VM
 *
 * Return: 0; -EBADF for a negative fd; -EOPNOTSUPP without KVM_CAP_IRQFD or
 * KVM_CAP_IRQ_ROUTING; -EINVAL if @max_msi does not fit KVM's table;
 * -ENOMEM.
 */
VN_MUST_CHECK int vn_kvm_irq_new(const struct vn_kvm_irq_cfg *cfg, struct vn_kvm_irq **out);

/**
 * vn_kvm_irq_free() - drop every route still there (irqfds deassigned, their
 * fds closed) and free the router; NULL is allowed
 */
void vn_kvm_irq_free(struct vn_kvm_irq *irq);

/**
 * vn_kvm_irq_msi_route() - route an MSI message to an irqfd
 * @addr: the message address (0xfeeXXXXX on x86; the guest's, unchecked
 *        beyond what KVM checks)
 * @data: the message data
 * @fd: set to the irqfd: an eventfd the router owns; a write raises the MSI
 * @gsi: set to the route's GSI (names it for vn_kvm_irq_msi_unroute())
 *
 * Return: 0; -ENOSPC when @max_msi routes exist; -errno from eventfd(),
 * KVM_SET_GSI_ROUTING or KVM_IRQFD (then nothing changed).
 * Context: any thread; does not wait for vCPUs (KVM does, in the kernel).
 */
VN_MUST_CHECK int vn_kvm_irq_msi_route(struct vn_kvm_irq *irq, uint64_t addr, uint32_t data,
				       int *fd, uint32_t *gsi);

/**
 * vn_kvm_irq_msi_unroute() - drop a route: deassign its irqfd, close the fd,
 * free the GSI. An unknown @gsi is ignored.
 * Context: any thread; nobody writes the route's fd any more.
 */
void vn_kvm_irq_msi_unroute(struct vn_kvm_irq *irq, uint32_t gsi);

/** vn_kvm_irq_msi_count() - MSI routes in use. Context: any thread. */
unsigned int vn_kvm_irq_msi_count(struct vn_kvm_irq *irq);

#endif
