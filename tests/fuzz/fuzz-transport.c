/* SPDX-License-Identifier: MIT */
/*
 * fuzz-transport: sequences of guest accesses to a virtio-pci function on
 * the soft machine: conf1 cycles, BAR0 (legacy), BAR1 (MSI-X), BAR4
 * (modern), of any size including refused ones, plus guest memory writes
 * (rings), firmware placement, and pause/resume. The device behind them
 * is an echo device with two queues, so status changes, queue enable and
 * reset, doorbells and host notifier transitions all happen.
 *
 * Input: byte 0 picks the options (transitional or modern-only, ioeventfd,
 * iothread, notify multiplier); then every 12 bytes are one operation:
 *   [0] kind  [1] size/direction  [2..3] offset (le16)  [4..11] value (le64)
 * Invariants: no crash or sanitizer report, no fd leaked, and the device
 * can always be removed.
 */
#include <dirent.h>
#include <linux/pci_regs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <vnotify/bus.h>
#include <vnotify/iothread.h>
#include <vnotify/log.h>
#include <vnotify/machine.h>
#include <vnotify/pci.h>

#include "fuzz/fuzz-input.h"
#include "hw/machine.h"
#include "mem/gmem.h"
#include "virtio/vdev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OP_SIZE 12
#define MAX_OPS 512
#define SLOT 3
#define BAR0 0xc000u
#define BAR1 0xe0000000u
#define BAR4 0xe0100000ull
#define RAM (1u << 20)

static void echo(struct vn_vdev *vdev, struct vn_vq *vq)
{
	struct iovec iov[8];
	struct vn_vq_elem e = { .iov = iov, .iov_cap = 8 };
	unsigned int n = 0;

	while (vn_vq_pop(vq, &e) > 0 && n++ < 1024) {
		if (vn_vq_push(vq, e.head, 0) < 0)
			break;
	}
	if (n && vn_vdev_notify_queue(vdev, vq) < 0)
		return;
}

static int echo_config_write(struct vn_vdev *vdev, uint32_t off, const void *buf, uint32_t len)
{
	return vn_vdev_config_update(vdev, off, buf, len);
}

static const struct vn_vdev_ops echo_ops = { .config_write = echo_config_write };

static struct vn_iothread *iothread(void)
{
	static struct vn_iothread *it;
	struct vn_iothread_cfg c = { .name = "fuzz-io" };

	/* One for the process: a thread per input would dominate the run. */
	if (!it)
		vn_log_set_level(VN_LOG_ERR); /* guest mistakes are the point here */
	if (!it && (vn_iothread_new(&c, &it) < 0 || vn_iothread_start(it) < 0)) {
		vn_iothread_free(it);
		it = NULL;
	}
	return it;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static unsigned int op_size(uint8_t b)
{
	static const unsigned int sizes[8] = { 1, 2, 4, 8, 1, 2, 4, 3 };

	return sizes[b & 7];
}

static void guest_access(struct vn_bus *bus, enum vn_space sp, uint64_t addr, uint8_t sz, uint64_t v)
{
	uint64_t r;

	if (sz & 0x80)
		(void)vn_bus_write(bus, sp, addr, op_size(sz), v);
	else
		(void)vn_bus_read(bus, sp, addr, op_size(sz), &r);
}

static void firmware(struct vn_bus *bus, uint64_t v)
{
	static const uint32_t regs[] = { PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_1,
					 PCI_BASE_ADDRESS_4, PCI_BASE_ADDRESS_5 };
	const uint32_t vals[] = { BAR0, BAR1, (uint32_t)BAR4, 0 };

	for (unsigned int i = 0; i < 4; i++) {
		(void)vn_bus_write(bus, VN_SPACE_PIO, 0xcf8, 4,
				   0x80000000u | (SLOT << 11) | regs[i]);
		(void)vn_bus_write(bus, VN_SPACE_PIO, 0xcfc, 4, (v & 0x100) ? ~0u : vals[i]);
	}
	(void)vn_bus_write(bus, VN_SPACE_PIO, 0xcf8, 4, 0x80000000u | (SLOT << 11) | PCI_COMMAND);
	(void)vn_bus_write(bus, VN_SPACE_PIO, 0xcfc, 2, v & 7);
}

static void run(struct vn_machine *m, struct vn_gmem *mem, struct vn_fz_in *in)
{
	struct vn_bus *bus = vn_machine_bus(m);
	const uint8_t *op;

	for (unsigned int ops = 0; ops < MAX_OPS && (op = vn_fz_take(in, OP_SIZE)); ops++) {
		struct vn_fz_in rec = vn_fz_in(op, OP_SIZE);
		uint8_t kind = vn_fz_u8(&rec), sz = vn_fz_u8(&rec);
		uint16_t off = vn_fz_u16(&rec);
		uint64_t v = vn_fz_u64(&rec);

		switch (kind % 9) {
		case 0: /* conf1 address: mostly our slot */
			(void)vn_bus_write(bus, VN_SPACE_PIO, 0xcf8, 4,
					   (kind & 0x80) ? (uint32_t)v
							 : 0x80000000u | (SLOT << 11) | (off & 0xfc));
			break;
		case 1:
			guest_access(bus, VN_SPACE_PIO, 0xcf8 + (off & 7), sz, v);
			break;
		case 2:
			guest_access(bus, VN_SPACE_PIO, BAR0 + (off & 0xff), sz, v);
			break;
		case 3:
			guest_access(bus, VN_SPACE_MMIO, BAR1 + (off & 0xfff), sz, v);
			break;
		case 4:
		case 5:
			guest_access(bus, VN_SPACE_MMIO, BAR4 + (off & 0x3fff), sz, v);
			break;
		case 6:
			firmware(bus, v);
			break;
		case 7: /* the guest writes its memory (rings, buffers) */
			if (vn_gmem_write(mem, ((uint64_t)off << 4) % (RAM - 8), &v, 1 + (sz & 7)) < 0)
				abort(); /* inside RAM by construction */
			break;
		case 8:
			if (v & 1)
				vn_machine_pause(m);
			else
				vn_machine_resume(m);
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vn_machine_cfg mc;
	struct vn_machine *m;
	struct vn_vdev *vdev = NULL;
	struct vn_virtio_pci *vp = NULL;
	struct vn_virtio_pci_cfg pc;
	struct vn_vdev_cfg dc = {
		.name = "fuzz", .device_id = 2, .ops = &echo_ops,
		.features = (1ull << 28) | (1ull << 29) | (1ull << 40), .nr_queues = 2,
		.queue_size_max = 16, .config_len = 16, .nr_vectors = 3,
	};
	static const unsigned int mults[4] = { 4, 0, 2, 4096 };
	struct vn_iothread *it = iothread();
	struct vn_fz_in in = vn_fz_in(data, size);
	int fds;
	uint8_t opt;

	if (!in.left)
		return 0;
	opt = vn_fz_u8(&in);
	fds = count_fds();
	vn_machine_cfg_init(&mc);
	mc.ram_size = RAM;
	mc.nr_irqs = 8;
	if (vn_machine_new(&mc, &m) < 0)
		return 0;
	if (vn_vdev_new(&dc, &vdev) < 0 || vn_vdev_set_queue_handler(vdev, 0, echo) < 0 ||
	    vn_vdev_set_queue_handler(vdev, 1, echo) < 0)
		goto out;
	vn_virtio_pci_cfg_init(&pc, vdev, (opt & 2) ? it : NULL, SLOT);
	pc.modern_only = opt & 1;
	pc.ioeventfd = !(opt & 4);
	pc.notify_off_multiplier = mults[(opt >> 3) & 3];
	if (vn_machine_add_virtio_pci(m, &pc, &vp) < 0)
		goto out;
	run(m, vn_machine_gmem(m), &in);
	vn_machine_resume(m);
out:
	vn_virtio_pci_remove(vp);
	vn_vdev_free(vdev);
	vn_machine_free(m);
	if (fds >= 0 && count_fds() != fds) {
		fprintf(stderr, "fuzz-transport: fd leak (%d -> %d)\n", fds, count_fds());
		abort();
	}
	return 0;
}
