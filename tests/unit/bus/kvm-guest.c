/* SPDX-License-Identifier: MIT */
#include "kvm-guest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>

/* guest-physical layout inside the RAM slot */
#define PML4 (KVM_GUEST_RAM_BASE + 0x0000)
#define PDPT (KVM_GUEST_RAM_BASE + 0x1000)
#define PD0 (KVM_GUEST_RAM_BASE + 0x2000) /* four PDs: 4 GiB in 2 MiB pages */
#define CODE (KVM_GUEST_RAM_BASE + 0x6000)
#define STUB 16 /* bytes per stub */

/* stub index: [read][space][log2 size] */
static const uint8_t stubs[2][2][4][STUB] = {
	{
		/* PIO writes, port in dx, value in rax; 8 bytes impossible */
		{{0xee, 0xf4}, {0x66, 0xef, 0xf4}, {0xef, 0xf4}, {0xf4}},
		/* MMIO writes to [rdi]: mov [rdi], al / ax / eax / rax */
		{{0x88, 0x07, 0xf4},
		 {0x66, 0x89, 0x07, 0xf4},
		 {0x89, 0x07, 0xf4},
		 {0x48, 0x89, 0x07, 0xf4}},
	},
	{
		/* PIO reads: in al / ax / eax, dx */
		{{0xec, 0xf4}, {0x66, 0xed, 0xf4}, {0xed, 0xf4}, {0xf4}},
		/* MMIO reads: mov al / ax / eax / rax, [rdi] */
		{{0x8a, 0x07, 0xf4},
		 {0x66, 0x8b, 0x07, 0xf4},
		 {0x8b, 0x07, 0xf4},
		 {0x48, 0x8b, 0x07, 0xf4}},
	},
};

static void *gpa(struct kvm_guest *g, uint64_t a)
{
	return (char *)g->ram + (a - KVM_GUEST_RAM_BASE);
}

static int setup_memory(struct kvm_guest *g)
{
	struct kvm_userspace_memory_region slot = {
		.slot = 0,
		.guest_phys_addr = KVM_GUEST_RAM_BASE,
		.memory_size = KVM_GUEST_RAM_SIZE,
	};
	uint64_t *pml4, *pdpt, *pd;

	g->ram = mmap(NULL, KVM_GUEST_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      -1, 0);
	if (g->ram == MAP_FAILED) {
		g->ram = NULL;
		return -errno;
	}
	slot.userspace_addr = (uint64_t)(uintptr_t)g->ram;
	if (ioctl(g->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return -errno;
	pml4 = gpa(g, PML4);
	pdpt = gpa(g, PDPT);
	pml4[0] = PDPT | 0x3; /* present, writable */
	for (uint64_t i = 0; i < 4; i++) {
		pdpt[i] = (PD0 + i * 0x1000) | 0x3;
		pd = gpa(g, PD0 + i * 0x1000);
		for (uint64_t j = 0; j < 512; j++)
			/* present, writable, PS (2 MiB), cache-disabled like MMIO */
			pd[j] = ((i << 30) | (j << 21)) | 0x83 | 0x10;
	}
	for (int r = 0; r < 2; r++)
		for (int s = 0; s < 2; s++)
			for (int z = 0; z < 4; z++)
				memcpy(gpa(g, CODE + (uint64_t)((r * 8 + s * 4 + z) * STUB)),
				       stubs[r][s][z], STUB);
	return 0;
}

static int setup_cpuid(struct kvm_guest *g)
{
	struct kvm_cpuid2 *c;
	int r = 0;

	c = calloc(1, sizeof(*c) + 256 * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	c->nent = 256;
	if (ioctl(g->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0 ||
	    ioctl(g->vcpu_fd, KVM_SET_CPUID2, c) < 0)
		r = -errno;
	free(c);
	return r;
}

static int setup_long_mode(struct kvm_guest *g)
{
	struct kvm_sregs s;
	struct kvm_segment cs = {
		.base = 0,
		.limit = 0xffffffff,
		.selector = 0x8,
		.type = 11,
		.present = 1,
		.dpl = 0,
		.db = 0,
		.s = 1,
		.l = 1,
		.g = 1,
	};
	struct kvm_segment ds = cs;

	if (ioctl(g->vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	ds.type = 3;
	ds.selector = 0x10;
	ds.l = 0;
	ds.db = 1;
	s.cs = cs;
	s.ds = s.es = s.fs = s.gs = s.ss = ds;
	s.cr3 = PML4;
	s.cr4 = 1u << 5;		  /* PAE */
	s.cr0 = 0x80000001u | (1u << 16); /* PG, PE, WP */
	s.efer = (1u << 8) | (1u << 10);  /* LME, LMA */
	if (ioctl(g->vcpu_fd, KVM_SET_SREGS, &s) < 0)
		return -errno;
	return 0;
}

int kvm_guest_init(struct kvm_guest *g, bool irqchip)
{
	int r;

	memset(g, 0, sizeof(*g));
	g->vm_fd = g->vcpu_fd = -1;
	g->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (g->kvm_fd < 0)
		return -ENODEV;
	g->vm_fd = ioctl(g->kvm_fd, KVM_CREATE_VM, 0);
	if (g->vm_fd < 0)
		goto err_errno;
	if (irqchip && ioctl(g->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		goto err_errno;
	r = setup_memory(g);
	if (r)
		goto err;
	g->vcpu_fd = ioctl(g->vm_fd, KVM_CREATE_VCPU, 0);
	if (g->vcpu_fd < 0)
		goto err_errno;
	r = ioctl(g->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (r < 0)
		goto err_errno;
	g->run_size = (size_t)r;
	g->run = mmap(NULL, g->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, g->vcpu_fd, 0);
	if (g->run == MAP_FAILED) {
		g->run = NULL;
		goto err_errno;
	}
	r = setup_cpuid(g);
	if (!r)
		r = setup_long_mode(g);
	if (r)
		goto err;
	return 0;
err_errno:
	r = -errno;
err:
	kvm_guest_destroy(g);
	return r;
}

void kvm_guest_destroy(struct kvm_guest *g)
{
	if (g->run)
		munmap(g->run, g->run_size);
	if (g->ram)
		munmap(g->ram, KVM_GUEST_RAM_SIZE);
	if (g->vcpu_fd >= 0)
		close(g->vcpu_fd);
	if (g->vm_fd >= 0)
		close(g->vm_fd);
	if (g->kvm_fd >= 0)
		close(g->kvm_fd);
	memset(g, 0, sizeof(*g));
	g->kvm_fd = g->vm_fd = g->vcpu_fd = -1;
}

static int log2_size(unsigned int size)
{
	switch (size) {
	case 1:
		return 0;
	case 2:
		return 1;
	case 4:
		return 2;
	case 8:
		return 3;
	default:
		return -1;
	}
}

static int run_once(struct kvm_guest *g)
{
	if (ioctl(g->vcpu_fd, KVM_RUN, 0) < 0)
		return -errno;
	return (int)g->run->exit_reason;
}

static int guest_access(struct kvm_guest *g, bool read, enum vn_space space, uint64_t addr,
			unsigned int size, uint64_t value)
{
	struct kvm_regs regs;
	int z = log2_size(size), r;
	bool reached = false;

	if (z < 0 || addr + size < addr)
		return -EINVAL;
	if (space == VN_SPACE_PIO ? (size == 8 || addr + size > 0x10000)
				  : (addr + size > (4ull << 30) ||
				     (addr + size > KVM_GUEST_RAM_BASE &&
				      addr < KVM_GUEST_RAM_BASE + KVM_GUEST_RAM_SIZE)))
		return -EOPNOTSUPP;
	if (space != VN_SPACE_PIO && space != VN_SPACE_MMIO)
		return -EINVAL;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = CODE + (uint64_t)((read * 8 + (int)space * 4 + z) * STUB);
	regs.rax = value;
	regs.rdx = addr;
	regs.rdi = addr;
	if (ioctl(g->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	for (int exits = 0; exits < 4; exits++) {
		r = run_once(g);
		if (r < 0)
			return r;
		if (r == KVM_EXIT_HLT)
			break;
		if (r == KVM_EXIT_IO && space == VN_SPACE_PIO && !reached &&
		    g->run->io.port == addr && g->run->io.size == size && g->run->io.count == 1 &&
		    g->run->io.direction == (read ? KVM_EXIT_IO_IN : KVM_EXIT_IO_OUT)) {
			uint64_t got = 0;

			memcpy(&got, (char *)g->run + g->run->io.data_offset, size);
			if (!read &&
			    got != (size == 8 ? value : value & ((1ull << (8 * size)) - 1)))
				return -EIO;
			reached = true; /* an IN completes with whatever data is there */
			continue;
		}
		if (r == KVM_EXIT_MMIO && space == VN_SPACE_MMIO && !reached &&
		    g->run->mmio.phys_addr == addr && g->run->mmio.len == size &&
		    g->run->mmio.is_write == !read) {
			uint64_t got = 0;

			memcpy(&got, g->run->mmio.data, size);
			if (!read &&
			    got != (size == 8 ? value : value & ((1ull << (8 * size)) - 1)))
				return -EIO;
			reached = true;
			continue;
		}
		fprintf(stderr, "kvm-guest: unexpected exit %d\n", r);
		return -EIO;
	}
	if (r != KVM_EXIT_HLT)
		return -EIO;
	if (reached)
		g->exits++;
	return reached ? VN_BUS_UNASSIGNED : VN_BUS_IOEVENTFD;
}

int kvm_guest_write(struct kvm_guest *g, enum vn_space space, uint64_t addr, unsigned int size,
		    uint64_t value)
{
	return guest_access(g, false, space, addr, size, value);
}

int kvm_guest_read(struct kvm_guest *g, enum vn_space space, uint64_t addr, unsigned int size)
{
	return guest_access(g, true, space, addr, size, 0);
}
