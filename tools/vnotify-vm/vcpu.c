/* SPDX-License-Identifier: MIT */
/*
 * vCPU threads: KVM_RUN until the guest powers off or the VMM stops; a
 * guest reboot parks them while main resets the machine (reset.c). PIO and MMIO exits go to the UART or to the machine's bus, and are
 * counted by type. The boot vCPU enters the kernel in 32-bit protected
 * mode (flat segments, no paging, esi = boot_params); the others wait for
 * the in-kernel local APIC's INIT/SIPI.
 */
#include "vm.h"
#include "cpuid.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>

#include <vnotify/bus.h>
#include <vnotify/machine.h>

static const char *const exit_names[VM_EXIT_COUNT] = {
	[VM_EXIT_PIO_SERIAL] = "pio-serial",
	[VM_EXIT_PIO_PCI_CONF] = "pio-pci-conf",
	[VM_EXIT_PIO_BUS] = "pio-bus",
	[VM_EXIT_PIO_OTHER] = "pio-unassigned",
	[VM_EXIT_MMIO_BUS] = "mmio-bus",
	[VM_EXIT_MMIO_OTHER] = "mmio-unassigned",
	[VM_EXIT_INTR] = "intr",
	[VM_EXIT_OTHER] = "other",
};

const char *vm_exit_name(enum vm_exit e)
{
	return exit_names[e];
}

static void count(struct vm *vm, enum vm_exit e)
{
	atomic_fetch_add_explicit(&vm->exits[e], 1, memory_order_relaxed);
}

void vm_request_end(struct vm *vm, int reason)
{
	int none = 0;

	atomic_compare_exchange_strong(&vm->end_reason, &none, reason);
	atomic_store(&vm->stop, true);
	pthread_kill(vm->main_thread, SIGUSR2);
}

/*
 * A guest reboot (triple fault, the keyboard controller's reset line, a
 * reset system event): with --no-reboot the VM ends; else main resets the
 * machine (reset.c) while every vCPU is parked.
 */
void vm_request_reset(struct vm *vm)
{
	if (vm->no_reboot) {
		vm_request_end(vm, 1);
		return;
	}
	atomic_store(&vm->reset_pending, true);
	pthread_kill(vm->main_thread, SIGUSR2);
}

static int set_cpuid(struct vm *vm, struct vm_vcpu *c)
{
	struct kvm_cpuid2 *cp = calloc(1, sizeof(*cp) + 256 * sizeof(cp->entries[0]));
	int r = 0;

	if (!cp)
		return -ENOMEM;
	cp->nent = 256;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cp) < 0) {
		r = -errno;
		goto out;
	}
	r = vm_cpuid_edit(cp->entries, cp->nent, 256, c->id);
	if (r < 0)
		goto out;
	cp->nent = (uint32_t)r;
	r = 0;
	if (ioctl(c->fd, KVM_SET_CPUID2, cp) < 0)
		r = -errno;
out:
	free(cp);
	return r;
}

int vm_vcpu_boot_regs(struct vm_vcpu *c, uint64_t entry, uint64_t boot_params)
{
	struct kvm_sregs s;
	struct kvm_regs regs;
	struct kvm_segment code = {
		.base = 0,
		.limit = 0xffffffff,
		.selector = 0x10,
		.type = 0xb,
		.present = 1,
		.s = 1,
		.db = 1,
		.g = 1,
	};
	struct kvm_segment data = code;

	if (ioctl(c->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	data.selector = 0x18;
	data.type = 0x3;
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.cr0 |= 1; /* PE; paging stays off */
	if (ioctl(c->fd, KVM_SET_SREGS, &s) < 0)
		return -errno;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = entry;
	regs.rsi = boot_params;
	if (ioctl(c->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

int vm_vcpu_init(struct vm *vm, unsigned int id, uint64_t entry, uint64_t boot_params)
{
	struct vm_vcpu *c = &vm->cpu[id];
	int r;

	c->vm = vm;
	c->id = id;
	c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (c->fd < 0)
		return -errno;
	c->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->run == MAP_FAILED) {
		c->run = NULL;
		return -errno;
	}
	r = set_cpuid(vm, c);
	/* KVM's power-on state, for a reset (after CPUID: it sizes the extended state) */
	if (!r)
		r = vm_vcpu_save_power_on(c);
	if (!r && id == 0)
		r = vm_vcpu_boot_regs(c, entry, boot_params);
	return r;
}

static void handle_pio(struct vm_vcpu *c)
{
	struct vm *vm = c->vm;
	struct kvm_run *run = c->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint16_t port = run->io.port;
	unsigned int size = run->io.size;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;

	if (port >= 0x3f8 && port < 0x400) {
		count(vm, VM_EXIT_PIO_SERIAL);
		for (uint32_t i = 0; i < run->io.count; i++)
			serial_io(&vm->serial, port, write, data + i * size, size);
		return;
	}
	/* reboot=k: the keyboard controller's reset line */
	if (port == 0x64 && write && size == 1 && data[0] == 0xfe) {
		vm_request_reset(vm);
		return;
	}
	/*
	 * The CMOS RTC: Linux polls status A until "update in progress"
	 * clears, which all ones never does. Say it is clear; no clock.
	 */
	if (port == 0x70 || port == 0x71) {
		count(vm, VM_EXIT_PIO_OTHER);
		if (!write)
			memset(data, port == 0x71 && vm->cmos_index == 0x0a ? 0x26 : 0, size);
		else if (port == 0x70)
			vm->cmos_index = data[0] & 0x7f;
		return;
	}
	if (port >= VN_MACHINE_PCI_CONF1_ADDR && port < VN_MACHINE_PCI_CONF1_DATA + 4)
		count(vm, VM_EXIT_PIO_PCI_CONF);
	for (uint32_t i = 0; i < run->io.count; i++, data += size) {
		struct vn_bus *bus = vn_machine_bus(vm->m);
		uint64_t v = 0;
		int r;

		if (write) {
			memcpy(&v, data, size);
			r = vn_bus_write(bus, VN_SPACE_PIO, port, size, v);
		} else {
			r = vn_bus_read(bus, VN_SPACE_PIO, port, size, &v);
			memcpy(data, &v, size);
		}
		if (i == 0 &&
		    !(port >= VN_MACHINE_PCI_CONF1_ADDR && port < VN_MACHINE_PCI_CONF1_DATA + 4)) {
			if (r == VN_BUS_UNASSIGNED) {
				count(vm, VM_EXIT_PIO_OTHER);
				atomic_fetch_add_explicit(&vm->unassigned_port[port], 1,
							  memory_order_relaxed);
			} else {
				count(vm, VM_EXIT_PIO_BUS);
			}
		}
	}
}

static void handle_mmio(struct vm_vcpu *c)
{
	struct kvm_run *run = c->run;
	struct vn_bus *bus = vn_machine_bus(c->vm->m);
	uint64_t v = 0;
	unsigned int len = run->mmio.len;
	int r;

	if (len > 8)
		len = 8;
	if (run->mmio.is_write) {
		memcpy(&v, run->mmio.data, len);
		r = vn_bus_write(bus, VN_SPACE_MMIO, run->mmio.phys_addr, len, v);
	} else {
		r = vn_bus_read(bus, VN_SPACE_MMIO, run->mmio.phys_addr, len, &v);
		memcpy(run->mmio.data, &v, len);
	}
	count(c->vm,
	      r == VN_BUS_REGION || r == VN_BUS_IOEVENTFD ? VM_EXIT_MMIO_BUS : VM_EXIT_MMIO_OTHER);
}

static void *vcpu_thread(void *opaque)
{
	struct vm_vcpu *c = opaque;
	struct vm *vm = c->vm;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", c->id);
	pthread_setname_np(pthread_self(), name);
	while (!atomic_load(&vm->stop)) {
		if (atomic_load(&vm->paused) || atomic_load(&vm->reset_pending)) {
			/*
			 * Before a reset rewrites the registers, let KVM finish
			 * the exit we handled (api.rst: an I/O exit completes on
			 * the next KVM_RUN; immediate_exit returns at once).
			 */
			if (atomic_load(&vm->reset_pending)) {
				c->run->immediate_exit = 1;
				(void)ioctl(c->fd, KVM_RUN, 0);
				c->run->immediate_exit = 0;
			}
			/* parked: the devices may be stopped, do not enter the guest */
			pthread_mutex_lock(&vm->pause_lock);
			vm->nparked++;
			pthread_cond_broadcast(&vm->pause_cond);
			while ((atomic_load(&vm->paused) || atomic_load(&vm->reset_pending)) &&
			       !atomic_load(&vm->stop))
				pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
			vm->nparked--;
			pthread_mutex_unlock(&vm->pause_lock);
			continue;
		}
		if (ioctl(c->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				count(vm, VM_EXIT_INTR);
				continue;
			}
			fprintf(stderr, "vnotify-vm: vcpu%u: KVM_RUN: %s\n", c->id,
				strerror(errno));
			vm_request_end(vm, 3);
			break;
		}
		switch (c->run->exit_reason) {
		case KVM_EXIT_IO:
			handle_pio(c);
			break;
		case KVM_EXIT_MMIO:
			handle_mmio(c);
			break;
		case KVM_EXIT_INTR:
			count(vm, VM_EXIT_INTR);
			break;
		case KVM_EXIT_SHUTDOWN: /* a triple fault: reboot=t, or a crash (panic=-1) */
			vm_request_reset(vm);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			if (c->run->system_event.type == KVM_SYSTEM_EVENT_RESET)
				vm_request_reset(vm);
			else /* shutdown or crash: the guest's poweroff */
				vm_request_end(vm, 4);
			break;
		case KVM_EXIT_HLT:
			count(vm, VM_EXIT_OTHER);
			break;
		default:
			fprintf(stderr,
				"vnotify-vm: vcpu%u: unhandled exit %u (hw reason 0x%llx)\n", c->id,
				c->run->exit_reason,
				(unsigned long long)c->run->hw.hardware_exit_reason);
			vm_request_end(vm, 3);
			return NULL;
		}
	}
	return NULL;
}

int vm_vcpu_start(struct vm_vcpu *c)
{
	int r = pthread_create(&c->thread, NULL, vcpu_thread, c);

	if (r)
		return -r;
	c->started = true;
	return 0;
}

/*
 * Park every vCPU outside KVM_RUN. A signal kicks each one out (KVM_RUN
 * returns EINTR); it is repeated because one that arrives just before a
 * vCPU enters KVM_RUN is lost until the guest's next exit.
 */
void vm_vcpus_pause(struct vm *vm)
{
	unsigned int running = 0;

	for (unsigned int i = 0; i < vm->ncpus; i++)
		running += vm->cpu[i].started;
	atomic_store(&vm->paused, true);
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->nparked < running && !atomic_load(&vm->stop)) {
		struct timespec ts;

		for (unsigned int i = 0; i < vm->ncpus; i++)
			if (vm->cpu[i].started)
				pthread_kill(vm->cpu[i].thread, VM_SIG_KICK);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&vm->pause_cond, &vm->pause_lock, &ts);
	}
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_vcpus_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->paused, false);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

/* stop every vCPU: a signal kicks each out of KVM_RUN until it has seen stop */
void vm_vcpus_stop(struct vm *vm)
{
	atomic_store(&vm->stop, true);
	/* parked vCPUs wake up and see stop */
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		struct vm_vcpu *c = &vm->cpu[i];

		if (!c->started)
			continue;
		for (;;) {
			struct timespec ts;

			pthread_kill(c->thread, VM_SIG_KICK);
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 20 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (pthread_timedjoin_np(c->thread, NULL, &ts) == 0)
				break;
		}
		c->started = false;
	}
}
