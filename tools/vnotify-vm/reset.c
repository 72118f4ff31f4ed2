/* SPDX-License-Identifier: MIT */
/*
 * A guest reboot without ending the VM: what a reset line does to a PC.
 * KVM has no "reset the vCPU" call, so each vCPU's state right after
 * KVM_CREATE_VCPU (KVM's power-on values: real mode, LAPIC enabled at its
 * default base, the APs waiting for INIT/SIPI) and the in-kernel PIC,
 * IO-APIC and PIT after their creation are saved, and a reset writes them
 * back, then does what vnotify-vm's firmware did at the first boot.
 *
 * The order (main thread, every vCPU parked outside KVM_RUN):
 *   1. devices: vn_machine_reset() (notifiers stop with their drain, block
 *      I/O in flight completes at the backend and its completion to the old
 *      guest is dropped, BUS_MASTER_BUG cleared, ioeventfd option kept), the
 *      promoter candidates' dynamic ioeventfds dropped, the UART and CMOS
 *      latch at power-on. After this nothing writes guest RAM;
 *   2. firmware: BARs placed again, the kernel, initramfs, boot_params and
 *      MP table loaded again (RAM is not cleared, as on a PC);
 *   3. chipset and CPUs: irqchip and PIT, then each vCPU's saved state, then
 *      the boot vCPU's entry registers.
 */
#include "vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include <vnotify/machine.h>

/*
 * Not written back: the TSC keeps counting (writing each vCPU's at a
 * different moment would unsynchronise them, and Linux does not need 0);
 * the wall clock MSRs are one-shot writes that would make KVM write the
 * clock at guest address 0. Every other MSR, the paravirtual ones included,
 * goes back to its power-on value: MSR_KVM_SYSTEM_TIME(_NEW), async PF,
 * steal time and PV EOI to 0 (disabled), so KVM stops writing the old
 * kernel's kvm-clock and steal-time areas into what is now the new
 * kernel's memory; the new kernel arms them again.
 */
#define MSR_IA32_TSC 0x10u
#define MSR_KVM_WALL_CLOCK 0x11u
#define MSR_KVM_WALL_CLOCK_NEW 0x4b564d00u

struct vcpu_power_on {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	bool has_xcrs;
	struct kvm_xsave *xsave; /* NULL without KVM_CAP_XSAVE */
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_debugregs dregs;
	struct kvm_mp_state mp;
	struct kvm_msrs *msrs; /* the MSRs KVM let us read */
};

struct irqchip_power_on {
	struct kvm_irqchip chip[3]; /* PIC master, PIC slave, IO-APIC */
	struct kvm_pit_state2 pit;
};

/* one MSR for KVM_GET_MSRS / KVM_SET_MSRS: the header and its one entry */
union msr_one {
	struct kvm_msrs h;
	uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
};

static bool skip_msr(uint32_t index)
{
	return index == MSR_IA32_TSC || index == MSR_KVM_WALL_CLOCK ||
	       index == MSR_KVM_WALL_CLOCK_NEW;
}

/* One MSR at a time: KVM_GET_MSRS stops at the first it refuses. */
static int save_msrs(struct vm *vm, struct vm_vcpu *c, struct vcpu_power_on *p)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *list;
	int r = 0;

	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return -errno;
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
	p->msrs = calloc(1, sizeof(*p->msrs) + probe.nmsrs * sizeof(p->msrs->entries[0]));
	if (!list || !p->msrs) {
		r = -ENOMEM;
		goto out;
	}
	list->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		r = -errno;
		goto out;
	}
	for (uint32_t i = 0; i < list->nmsrs && i < probe.nmsrs; i++) {
		union msr_one one;

		if (skip_msr(list->indices[i]))
			continue;
		memset(&one, 0, sizeof(one));
		one.h.nmsrs = 1;
		one.h.entries[0].index = list->indices[i];
		if (ioctl(c->fd, KVM_GET_MSRS, &one) == 1)
			p->msrs->entries[p->msrs->nmsrs++] = one.h.entries[0];
	}
out:
	free(list);
	return r;
}

int vm_vcpu_save_power_on(struct vm_vcpu *c)
{
	struct vm *vm = c->vm;
	struct vcpu_power_on *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	c->power_on = p;
	if (ioctl(c->fd, KVM_GET_REGS, &p->regs) < 0 || ioctl(c->fd, KVM_GET_SREGS, &p->sregs) < 0 ||
	    ioctl(c->fd, KVM_GET_FPU, &p->fpu) < 0 || ioctl(c->fd, KVM_GET_LAPIC, &p->lapic) < 0 ||
	    ioctl(c->fd, KVM_GET_VCPU_EVENTS, &p->events) < 0 ||
	    ioctl(c->fd, KVM_GET_DEBUGREGS, &p->dregs) < 0 ||
	    ioctl(c->fd, KVM_GET_MP_STATE, &p->mp) < 0)
		return -errno;
	if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0) {
		if (ioctl(c->fd, KVM_GET_XCRS, &p->xcrs) < 0)
			return -errno;
		p->has_xcrs = true;
	}
	/* KVM_GET_XSAVE takes 4 KiB; a larger state (AMX) needs KVM_GET_XSAVE2, sized per VM */
	if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0) {
		int size = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
		size_t len = size > (int)sizeof(struct kvm_xsave) ? (size_t)size
								   : sizeof(struct kvm_xsave);

		p->xsave = calloc(1, len);
		if (!p->xsave)
			return -ENOMEM;
		if (ioctl(c->fd, len > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE,
			  p->xsave) < 0)
			return -errno;
	}
	r = save_msrs(vm, c, p);
	return r;
}

int vm_irqchip_save_power_on(struct vm *vm)
{
	struct irqchip_power_on *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	vm->irqchip_power_on = p;
	for (unsigned int i = 0; i < 3; i++) {
		p->chip[i].chip_id = i;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &p->chip[i]) < 0)
			return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &p->pit) < 0)
		return -errno;
	return 0;
}

/*
 * Back to the saved MSRs, one at a time so one refusal does not stop the
 * rest. A refusal is reported, not fatal: a read-only MSR that KVM let us
 * read is already at its value.
 */
static void restore_msrs(struct vm_vcpu *c, const struct kvm_msrs *msrs)
{
	unsigned int refused = 0;
	uint32_t first = 0;

	for (uint32_t i = 0; i < msrs->nmsrs; i++) {
		union msr_one one;

		memset(&one, 0, sizeof(one));
		one.h.nmsrs = 1;
		one.h.entries[0] = msrs->entries[i];
		if (ioctl(c->fd, KVM_SET_MSRS, &one) != 1 && !refused++)
			first = msrs->entries[i].index;
	}
	if (refused)
		fprintf(stderr, "vnotify-vm: vcpu%u: reset: %u MSR(s) refused, first 0x%x\n", c->id,
			refused, first);
}

/*
 * QEMU's order for a reset state: registers, extended state, control
 * registers (SREGS sets EFER and the APIC base), MSRs, then the run state,
 * the local APIC (after its base MSR) and the pending events last, so no
 * exception or NMI of the old kernel survives.
 */
static int restore_vcpu(struct vm_vcpu *c)
{
	struct vcpu_power_on *p = c->power_on;
	struct kvm_vcpu_events ev = p->events;
	struct kvm_lapic_state lapic = p->lapic;

	if (ioctl(c->fd, KVM_SET_REGS, &p->regs) < 0 || ioctl(c->fd, KVM_SET_FPU, &p->fpu) < 0)
		return -errno;
	if (p->xsave && ioctl(c->fd, KVM_SET_XSAVE, p->xsave) < 0)
		return -errno;
	if (p->has_xcrs && ioctl(c->fd, KVM_SET_XCRS, &p->xcrs) < 0)
		return -errno;
	if (ioctl(c->fd, KVM_SET_SREGS, &p->sregs) < 0)
		return -errno;
	restore_msrs(c, p->msrs);
	if (ioctl(c->fd, KVM_SET_MP_STATE, &p->mp) < 0 || ioctl(c->fd, KVM_SET_LAPIC, &lapic) < 0)
		return -errno;
	/* the saved flags say which fields KVM filled (NMI pending, SIPI vector, shadow, SMM) */
	if (ioctl(c->fd, KVM_SET_VCPU_EVENTS, &ev) < 0 ||
	    ioctl(c->fd, KVM_SET_DEBUGREGS, &p->dregs) < 0)
		return -errno;
	return 0;
}

static int restore_irqchip(struct vm *vm)
{
	struct irqchip_power_on *p = vm->irqchip_power_on;

	for (unsigned int i = 0; i < 3; i++) {
		struct kvm_irqchip chip = p->chip[i];

		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
			return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &p->pit) < 0)
		return -errno;
	return 0;
}

int vm_reset(struct vm *vm)
{
	uint64_t entry = 0, bp = 0;
	int r;

	vm_promote_reset();
	vn_machine_reset(vm->m);
	serial_reset(&vm->serial);
	vm->cmos_index = 0;

	r = vm_assign_bars(vm);
	if (!r)
		r = vm_load_linux(vm, vm->kernel, vm->initrd, vm->cmdline, &entry, &bp);
	if (!r)
		r = vm_write_mptable(vm);
	if (r) {
		fprintf(stderr, "vnotify-vm: reset: the firmware step failed: %s\n", strerror(-r));
		return r;
	}
	r = restore_irqchip(vm);
	if (r) {
		fprintf(stderr, "vnotify-vm: reset: irqchip/PIT: %s\n", strerror(-r));
		return r;
	}
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		r = restore_vcpu(&vm->cpu[i]);
		if (!r && i == 0)
			r = vm_vcpu_boot_regs(&vm->cpu[i], entry, bp);
		if (r) {
			fprintf(stderr, "vnotify-vm: reset: vcpu%u: %s\n", i, strerror(-r));
			return r;
		}
	}
	return 0;
}

void vm_reset_free(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		struct vcpu_power_on *p = vm->cpu[i].power_on;

		if (!p)
			continue;
		free(p->xsave);
		free(p->msrs);
		free(p);
		vm->cpu[i].power_on = NULL;
	}
	free(vm->irqchip_power_on);
	vm->irqchip_power_on = NULL;
}
