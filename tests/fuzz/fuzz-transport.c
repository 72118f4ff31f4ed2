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
 * Invariants: no crash or sanitizer report, no fd leaked, the device can
 * always be removed, and before that a correct driver session on the same
 * machine and device works after whatever the input did: the userspace
 * driver (src/guest) scans the bus (placing the BARs again), resets the
 * device, negotiates VERSION_1, sets up queue 0 with an MSI-X vector, makes
 * one chain available, rings the doorbell, sees the interrupt and reaps the
 * chain from the used ring.
 */
#include <dirent.h>
#include <linux/pci_regs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <vnotify/bus.h>
#include <vnotify/iothread.h>
#include <vnotify/log.h>
#include <vnotify/machine.h>
#include <vnotify/pci.h>

#include "fuzz/fuzz-input.h"
#include "guest/vdrv-env.h"
#include "guest/vdrv-pci.h"
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

/* Open fds (its own directory fd included, which stays open: an open per call was slow). */
static int count_fds(void)
{
	static DIR *d;
	int n = 0;

	if (!d)
		d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	rewinddir(d);
	while (readdir(d))
		n++;
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

static void die(const char *what, int r)
{
	fprintf(stderr, "fuzz-transport: the correct driver session failed: %s (%d)\n", what, r);
	abort();
}

static int irq_fd(void *opaque, unsigned int data)
{
	return vn_machine_irq_fd(opaque, data);
}

/* The driver's RAM: the upper half (the input's memory writes land anywhere). */
#define DRV_RAM (RAM / 2)

static void driver_session(struct vn_machine *m, bool modern_only)
{
	struct vn_vdrv_env_cfg ec = {
		.bus = vn_machine_bus(m),
		.mem = vn_machine_gmem(m),
		.ram_base = DRV_RAM,
		.ram_size = RAM - DRV_RAM,
		.irq_fd = irq_fd,
		.irq_opaque = m,
	};
	struct vn_vdrv_env *env;
	struct vn_vdrv_pci *dev;
	struct vn_vdrv_vq *vq;
	struct vn_vdrv_buf out, in;
	uint64_t feat, gpa;
	void *tok = NULL;
	uint32_t len;
	int r, slot;

	r = vn_vdrv_env_new(&ec, &env);
	if (r < 0)
		die("env", r);
	r = vn_vdrv_pci_scan(env);
	if (r < 0)
		die("scan", r);
	slot = vn_vdrv_pci_find(env, 0x1af4, modern_only ? 0x1042 : 0x1001, 0);
	if (slot != SLOT)
		die("find", slot);
	r = vn_vdrv_pci_open(env, &(struct vn_vdrv_pci_cfg){ .slot = SLOT }, &dev);
	if (r < 0)
		die("open (reset)", r);
	r = vn_vdrv_pci_negotiate(dev, 1ull << 32, &feat);
	if (r < 0 || !(feat & (1ull << 32)))
		die("negotiate", r);
	r = vn_vdrv_pci_queue_setup(dev, 0, &(struct vn_vdrv_vq_cfg){ .size = 16 }, &vq);
	if (r < 0)
		die("queue setup", r);
	r = vn_vdrv_pci_driver_ok(dev);
	if (r < 0)
		die("DRIVER_OK", r);
	r = vn_vdrv_env_alloc(env, 64, 16, &gpa);
	if (r < 0)
		die("alloc", r);
	out = (struct vn_vdrv_buf){ .gpa = gpa, .len = 16 };
	in = (struct vn_vdrv_buf){ .gpa = gpa + 32, .len = 16 };
	r = vn_vdrv_ring_add(&vq->ring, &out, 1, &in, 1, &out);
	if (r < 0)
		die("add", r);
	r = vn_vdrv_ring_kick_prepare(&vq->ring);
	if (r < 0)
		die("kick prepare", r);
	(void)vn_vdrv_vq_kick(vq);
	/*
	 * As a driver does: an interrupt, then the used ring. The input may
	 * have left an interrupt pending on the same line (it programmed MSI-X
	 * too), so one without a used chain is a stale one: wait again. The
	 * timeout bounds a broken device; it is no measurement.
	 */
	for (int i = 0; i < 3; i++) {
		r = vn_vdrv_vq_wait_irq(vq, 10000);
		if (r != 1)
			die("no interrupt", r);
		r = vn_vdrv_ring_get_used(&vq->ring, &tok, &len);
		if (r != 0)
			break;
	}
	if (r != 1 || tok != &out)
		die("used ring", r);
	vn_vdrv_pci_close(dev);
	vn_vdrv_env_free(env);
}

/*
 * The machine is made once (its RAM memfd, irq eventfds and bus were most
 * of an input's cost) and reset completely between inputs: RAM zeroed,
 * the conf1 latch cleared, pending interrupts consumed, the host bridge's
 * writable config bytes written back, and all of its config space checked
 * against what it was when new; anything else differing makes a new one.
 * The device and its virtio-pci function are new for every input.
 */
#define BRIDGE_CFG 64 /* dwords */

static struct vn_machine *g_m;
static uint32_t g_bridge[BRIDGE_CFG];

static uint32_t cfg_read(struct vn_bus *bus, unsigned int slot, unsigned int reg)
{
	uint64_t v = 0;

	(void)vn_bus_write(bus, VN_SPACE_PIO, 0xcf8, 4, 0x80000000u | (slot << 11) | reg);
	(void)vn_bus_read(bus, VN_SPACE_PIO, 0xcfc, 4, &v);
	return (uint32_t)v;
}

static void cfg_write(struct vn_bus *bus, unsigned int slot, unsigned int reg, uint32_t v)
{
	(void)vn_bus_write(bus, VN_SPACE_PIO, 0xcf8, 4, 0x80000000u | (slot << 11) | reg);
	(void)vn_bus_write(bus, VN_SPACE_PIO, 0xcfc, 4, v);
}

static struct vn_machine *machine(void)
{
	struct vn_machine_cfg mc;

	if (g_m)
		return g_m;
	vn_machine_cfg_init(&mc);
	mc.ram_size = RAM;
	mc.nr_irqs = 8;
	if (vn_machine_new(&mc, &g_m) < 0)
		return g_m = NULL;
	for (unsigned int i = 0; i < BRIDGE_CFG; i++)
		g_bridge[i] = cfg_read(vn_machine_bus(g_m), 0, 4 * i);
	(void)vn_bus_write(vn_machine_bus(g_m), VN_SPACE_PIO, 0xcf8, 4, 0);
	return g_m;
}

static void machine_reset(struct vn_machine *m)
{
	static const uint8_t zero[4096];
	struct vn_bus *bus = vn_machine_bus(m);
	bool same = true;

	vn_machine_resume(m);
	for (uint64_t a = 0; a < RAM; a += sizeof(zero))
		if (vn_gmem_write(vn_machine_gmem(m), a, zero, sizeof(zero)) < 0)
			abort();
	for (unsigned int irq = 0; irq < 8; irq++) {
		uint64_t v;

		/* nonblocking eventfds: empty them */
		(void)!read(vn_machine_irq_fd(m, irq), &v, sizeof(v));
	}
	/* command/status, cache line and latency, interrupt line */
	cfg_write(bus, 0, PCI_COMMAND, g_bridge[PCI_COMMAND / 4]);
	cfg_write(bus, 0, PCI_CACHE_LINE_SIZE, g_bridge[PCI_CACHE_LINE_SIZE / 4]);
	cfg_write(bus, 0, PCI_INTERRUPT_LINE, g_bridge[PCI_INTERRUPT_LINE / 4]);
	for (unsigned int i = 0; i < BRIDGE_CFG && same; i++)
		same = cfg_read(bus, 0, 4 * i) == g_bridge[i];
	(void)vn_bus_write(bus, VN_SPACE_PIO, 0xcf8, 4, 0);
	if (!same) {
		vn_machine_free(m);
		g_m = NULL;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
	m = machine();
	if (!m)
		return 0;
	fds = count_fds();
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
	driver_session(m, pc.modern_only);
out:
	vn_virtio_pci_remove(vp);
	vn_vdev_free(vdev);
	machine_reset(m);
	if (fds >= 0 && g_m && count_fds() != fds) {
		fprintf(stderr, "fuzz-transport: fd leak (%d -> %d)\n", fds, count_fds());
		abort();
	}
	return 0;
}
