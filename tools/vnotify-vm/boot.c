/* SPDX-License-Identifier: MIT */
/*
 * What firmware would do: load a bzImage by Linux's 32-bit boot protocol
 * (Documentation/arch/x86/boot.rst: boot_params, e820, command line,
 * initrd), write an MP table (Intel MP spec 1.4) so Linux finds the local
 * APICs and the IO-APIC without ACPI, and place the PCI BARs inside the
 * host bridge's windows (the machine decodes them only there).
 */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <asm/bootparam.h>

#include <vnotify/bus.h>
#include <vnotify/machine.h>

#include "base/compiler.h"

#define BOOT_PARAMS_ADDR 0x7000ull
#define CMDLINE_ADDR 0x20000ull
#define CMDLINE_MAX 0x10000ull
#define KERNEL_ADDR 0x100000ull
#define EBDA_START 0x9fc00ull
#define MPTABLE_ADDR 0xf0000ull
#define IOAPIC_ADDR 0xfec00000u
#define LAPIC_ADDR 0xfee00000u
#define E820_TYPE_RAM 1
#define E820_TYPE_RESERVED 2

static int read_file(const char *path, uint8_t **buf, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;
	size_t done = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len ? *len : 1);
	if (!*buf) {
		r = -ENOMEM;
		goto out;
	}
	while (done < *len) {
		ssize_t n = read(fd, *buf + done, *len - done);

		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			free(*buf);
			goto out;
		}
		done += (size_t)n;
	}
out:
	close(fd);
	return r;
}

static void e820_add(struct boot_params *bp, uint64_t addr, uint64_t size, uint32_t type)
{
	struct boot_e820_entry *e = &bp->e820_table[bp->e820_entries++];

	e->addr = addr;
	e->size = size;
	e->type = type;
}

int vm_load_linux(struct vm *vm, const char *kernel, const char *initrd, const char *cmdline,
		  uint64_t *entry, uint64_t *boot_params)
{
	struct boot_params bp;
	uint8_t *buf = NULL, *rd = NULL;
	size_t len, rd_len, setup_size, hdr_len;
	unsigned int setup_sects;
	int r;

	r = read_file(kernel, &buf, &len);
	if (r) {
		fprintf(stderr, "vnotify-vm: %s: %s\n", kernel, strerror(-r));
		return r;
	}
	memset(&bp, 0, sizeof(bp));
	if (len < 0x1000 || memcmp(buf + 0x202, "HdrS", 4) != 0) {
		fprintf(stderr, "vnotify-vm: %s is not a bzImage\n", kernel);
		r = -EINVAL;
		goto out;
	}
	hdr_len = 0x202 + buf[0x201] - 0x1f1;
	memcpy(&bp.hdr, buf + 0x1f1, hdr_len < sizeof(bp.hdr) ? hdr_len : sizeof(bp.hdr));
	if (bp.hdr.version < 0x20a) {
		fprintf(stderr, "vnotify-vm: boot protocol 0x%x is too old\n", bp.hdr.version);
		r = -EINVAL;
		goto out;
	}
	setup_sects = bp.hdr.setup_sects ? bp.hdr.setup_sects : 4;
	setup_size = (setup_sects + 1) * 512ull;
	if (setup_size >= len || KERNEL_ADDR + (len - setup_size) > vm->ram_size) {
		r = -EINVAL;
		goto out;
	}
	memcpy(vm->ram + KERNEL_ADDR, buf + setup_size, len - setup_size);

	if (strlen(cmdline) + 1 > CMDLINE_MAX || strlen(cmdline) + 1 > bp.hdr.cmdline_size + 1ull) {
		fprintf(stderr, "vnotify-vm: command line too long\n");
		r = -EINVAL;
		goto out;
	}
	strcpy((char *)vm->ram + CMDLINE_ADDR, cmdline);
	bp.hdr.cmd_line_ptr = (uint32_t)CMDLINE_ADDR;
	bp.hdr.type_of_loader = 0xff;
	bp.hdr.loadflags |= CAN_USE_HEAP;
	bp.hdr.heap_end_ptr = 0xfe00;
	bp.hdr.vid_mode = 0xffff;

	if (initrd) {
		uint64_t top = vm->ram_size, addr;

		r = read_file(initrd, &rd, &rd_len);
		if (r) {
			fprintf(stderr, "vnotify-vm: %s: %s\n", initrd, strerror(-r));
			goto out;
		}
		if (top > (uint64_t)bp.hdr.initrd_addr_max + 1)
			top = (uint64_t)bp.hdr.initrd_addr_max + 1;
		addr = (top - rd_len) & ~0xfffull;
		if (rd_len > top || addr < KERNEL_ADDR + (len - setup_size) + (64ull << 20)) {
			fprintf(stderr, "vnotify-vm: the initrd does not fit in guest memory\n");
			r = -ENOMEM;
			goto out;
		}
		memcpy(vm->ram + addr, rd, rd_len);
		bp.hdr.ramdisk_image = (uint32_t)addr;
		bp.hdr.ramdisk_size = (uint32_t)rd_len;
	}

	e820_add(&bp, 0, EBDA_START, E820_TYPE_RAM);
	e820_add(&bp, EBDA_START, KERNEL_ADDR - EBDA_START, E820_TYPE_RESERVED);
	e820_add(&bp, KERNEL_ADDR, vm->ram_size - KERNEL_ADDR, E820_TYPE_RAM);

	memcpy(vm->ram + BOOT_PARAMS_ADDR, &bp, sizeof(bp));
	*entry = bp.hdr.code32_start ? bp.hdr.code32_start : KERNEL_ADDR;
	*boot_params = BOOT_PARAMS_ADDR;
out:
	free(buf);
	free(rd);
	return r;
}

/* ---- the MP table ---- */

struct mpf {
	char signature[4];
	uint32_t physptr;
	uint8_t length, specification, checksum, feature1;
	uint8_t feature2, feature3, feature4, feature5;
} __attribute__((packed));

struct mpc {
	char signature[4];
	uint16_t length;
	uint8_t spec, checksum;
	char oem[8], productid[12];
	uint32_t oemptr;
	uint16_t oemsize, oemcount;
	uint32_t lapic;
	uint16_t reserved_len;
	uint8_t reserved_sum, reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type, apicid, apicver, cpuflag;
	uint32_t cpufeature, featureflag, reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type, busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type, apicid, apicver, flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type, irqtype;
	uint16_t irqflag;
	uint8_t srcbus, srcbusirq, dstapic, dstirq;
} __attribute__((packed));

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)-sum;
}

int vm_write_mptable(struct vm *vm)
{
	uint8_t *base = vm->ram + MPTABLE_ADDR;
	struct mpf *mpf = (struct mpf *)(void *)base;
	struct mpc *mpc = (struct mpc *)(void *)(base + sizeof(*mpf));
	uint8_t *p = (uint8_t *)(mpc + 1);
	uint8_t ioapic_id = (uint8_t)vm->ncpus, bus_pci = 0, bus_isa = 1;
	uint16_t count = 0;

	memset(base, 0, 0x1000);
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		struct mpc_cpu c = {
			.type = 0,
			.apicid = (uint8_t)i,
			.apicver = 0x14,
			.cpuflag = (uint8_t)(1 | (i == 0 ? 2 : 0)),
			.cpufeature = 0x600,
			.featureflag = 0x201, /* FPU, APIC */
		};
		memcpy(p, &c, sizeof(c));
		p += sizeof(c);
		count++;
	}
	{
		struct mpc_bus pci = { .type = 1, .busid = bus_pci, .bustype = "PCI   " };
		struct mpc_bus isa = { .type = 1, .busid = bus_isa, .bustype = "ISA   " };
		struct mpc_ioapic io = { .type = 2,
					 .apicid = ioapic_id,
					 .apicver = 0x11,
					 .flags = 1,
					 .apicaddr = IOAPIC_ADDR };

		memcpy(p, &pci, sizeof(pci));
		p += sizeof(pci);
		memcpy(p, &isa, sizeof(isa));
		p += sizeof(isa);
		memcpy(p, &io, sizeof(io));
		p += sizeof(io);
		count += 3;
	}
	/* ISA IRQ n -> IO-APIC pin n: KVM's default GSI routes */
	for (uint8_t irq = 0; irq < 16; irq++) {
		struct mpc_intsrc s = { .type = 3,
					.irqtype = 0,
					.irqflag = 0,
					.srcbus = bus_isa,
					.srcbusirq = irq,
					.dstapic = ioapic_id,
					.dstirq = irq };

		if (irq == 2)
			continue;
		memcpy(p, &s, sizeof(s));
		p += sizeof(s);
		count++;
	}
	/* LINT0 ExtINT (the PIC), LINT1 NMI, on every local APIC */
	for (uint8_t lint = 0; lint < 2; lint++) {
		struct mpc_intsrc s = { .type = 4,
					.irqtype = lint ? 1 : 3,
					.srcbus = bus_isa,
					.dstapic = 0xff,
					.dstirq = lint };

		memcpy(p, &s, sizeof(s));
		p += sizeof(s);
		count++;
	}
	memcpy(mpc->signature, "PCMP", 4);
	mpc->length = (uint16_t)(p - (uint8_t *)mpc);
	mpc->spec = 4;
	memcpy(mpc->oem, "VNOTIFY ", 8);
	memcpy(mpc->productid, "VNOTIFY-VM  ", 12);
	mpc->oemcount = count;
	mpc->lapic = LAPIC_ADDR;
	mpc->checksum = checksum((uint8_t *)mpc, mpc->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = (uint32_t)(MPTABLE_ADDR + sizeof(*mpf));
	mpf->length = 1;
	mpf->specification = 4;
	mpf->checksum = checksum((uint8_t *)mpf, sizeof(*mpf));
	return 0;
}

/* ---- BARs ---- */

static uint32_t conf_read(struct vm *vm, unsigned int slot, unsigned int reg)
{
	struct vn_bus *bus = vn_machine_bus(vm->m);
	uint64_t v = 0;

	(void)vn_bus_write(bus, VN_SPACE_PIO, VN_MACHINE_PCI_CONF1_ADDR, 4,
			   0x80000000u | (slot << 11) | (reg & 0xfc));
	(void)vn_bus_read(bus, VN_SPACE_PIO, VN_MACHINE_PCI_CONF1_DATA, 4, &v);
	return (uint32_t)v;
}

static void conf_write(struct vm *vm, unsigned int slot, unsigned int reg, uint32_t v)
{
	struct vn_bus *bus = vn_machine_bus(vm->m);

	(void)vn_bus_write(bus, VN_SPACE_PIO, VN_MACHINE_PCI_CONF1_ADDR, 4,
			   0x80000000u | (slot << 11) | (reg & 0xfc));
	(void)vn_bus_write(bus, VN_SPACE_PIO, VN_MACHINE_PCI_CONF1_DATA, 4, v);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

int vm_assign_bars(struct vm *vm)
{
	uint64_t io = VN_MACHINE_PIO_WINDOW_BASE, mem = VN_MACHINE_MMIO_WINDOW_BASE;

	for (unsigned int slot = 1; slot < VN_MACHINE_PCI_SLOTS; slot++) {
		if ((conf_read(vm, slot, 0) & 0xffff) == 0xffff)
			continue;
		for (unsigned int bar = 0; bar < 6; bar++) {
			unsigned int reg = 0x10 + 4 * bar;
			uint32_t v;
			uint64_t size;

			conf_write(vm, slot, reg, 0xffffffffu);
			v = conf_read(vm, slot, reg);
			if (!v)
				continue;
			if (v & 1) {
				size = (~(v & ~3u) + 1) & 0xffff;
				io = align_up(io, size);
				if (!size || io + size > VN_MACHINE_PIO_WINDOW_END)
					return -ENOSPC;
				conf_write(vm, slot, reg, (uint32_t)io | 1);
				io += size;
				continue;
			}
			size = (uint32_t)(~(v & ~0xfu) + 1);
			mem = align_up(mem, size);
			if (!size || mem + size > VN_MACHINE_MMIO_WINDOW_END)
				return -ENOSPC;
			conf_write(vm, slot, reg, (uint32_t)mem | (v & 0xf));
			if (((v >> 1) & 3) == 2) { /* 64-bit: the high half is 0 */
				conf_write(vm, slot, reg + 4, 0);
				bar++;
			}
			mem += size;
		}
	}
	return 0;
}
