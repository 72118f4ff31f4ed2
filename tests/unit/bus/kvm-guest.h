/* SPDX-License-Identifier: MIT */
#ifndef VN_TESTS_KVM_GUEST_H
#define VN_TESTS_KVM_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vnotify/bus.h>

/*
 * A tiny KVM VM with one vCPU in 64-bit mode, for tests that need a real
 * guest write: the vCPU executes one OUT or MOV and then HLT. The low 4 GiB
 * are identity-mapped; guest RAM is only KVM_GUEST_RAM_BASE..+SIZE (page
 * tables and the code), so every other address below 4 GiB is MMIO.
 */
#define KVM_GUEST_RAM_BASE 0x100000ull
#define KVM_GUEST_RAM_SIZE 0x10000ull

struct kvm_guest {
	int kvm_fd, vm_fd, vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	void *ram;
	unsigned long exits; /* writes and reads that reached userspace */
};

/*
 * 0; -ENODEV without /dev/kvm; -errno. @irqchip: create the in-kernel
 * IO-APIC/PIC/LAPICs first.
 */
int kvm_guest_init(struct kvm_guest *g, bool irqchip);
void kvm_guest_destroy(struct kvm_guest *g);

/*
 * The vCPU writes @value (@size bytes) to @addr of @space.
 * Return: VN_BUS_IOEVENTFD if the write never left the kernel (an
 * ioeventfd took it), VN_BUS_UNASSIGNED if it exited to userspace (checked:
 * the exit names the same access); -EINVAL for a size other than 1/2/4/8 or
 * a wrapping range (nothing a CPU can do); -EOPNOTSUPP for an access this
 * vCPU cannot make (8-byte PIO, a port past 0xffff, an address past 4 GiB or
 * inside its RAM); -EIO for an unexpected exit.
 */
int kvm_guest_write(struct kvm_guest *g, enum vn_space space, uint64_t addr, unsigned int size,
		    uint64_t value);
/* The same for a read: VN_BUS_UNASSIGNED when it exited to userspace. */
int kvm_guest_read(struct kvm_guest *g, enum vn_space space, uint64_t addr, unsigned int size);

#endif
