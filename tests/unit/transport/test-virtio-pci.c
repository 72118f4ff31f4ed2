/* SPDX-License-Identifier: MIT */
/*
 * virtio-pci on the soft machine, driven the way a guest does: PCI config
 * cycles on 0xcf8/0xcfc, register accesses and doorbells through the bus
 * (so they hit an ioeventfd or the synchronous exit), raw split rings in
 * guest RAM. The device is a small echo device with two queues.
 */
#include "transport/virtio-pci.h"

#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vnotify/bus.h>
#include <vnotify/iothread.h>
#include <vnotify/loop.h>
#include <vnotify/machine.h>
#include <vnotify/notifier.h>
#include <vnotify/pci.h>

#include "harness.h"
#include "hw/machine.h"
#include "mem/gmem.h"
#include "virtio/hostnotif.h"
#include "virtio/state.h"
#include "virtio/vdev.h"

#define NQ 2
#define NUM 64
#define DEV_ID 2
#define SLOT 3
#define BAR0 0xc000u
#define BAR1 0xe0000000u
#define BAR4 0xe0100000ull
#define BAR4_SIZE 0x4000ull
#define RING_BASE 0x100000ull
#define BUF 0x200000ull
#define COMMON(off) (BAR4 + VN_VIRTIO_PCI_COMMON_OFF + (off))
#define PIO VN_SPACE_PIO
#define MMIO VN_SPACE_MMIO
#define DEV_FEATURES ((1ull << VIRTIO_F_RING_RESET) | (1ull << 3))

struct fx {
	struct vn_machine *m;
	struct vn_bus *bus;
	struct vn_gmem *mem;
	struct vn_iothread *it;
	struct vn_vdev *vdev;
	struct vn_virtio_pci *vp;
	unsigned int mult;
	bool legacy;
	uint64_t desc[NQ], avail[NQ], used[NQ];
	uint16_t avail_idx[NQ];
	uint64_t processed[NQ];
	int on_iothread[NQ];
	int notify_errors;
	uint8_t config[8];
	uint64_t extra_features; /* what modern_driver() accepts beyond DEV_FEATURES */
	struct park *park_q1;	 /* queue 1's next handler run parks here (atomic) */
};

static void park_fn(void *opaque);

/* The echo device: completes every request, then interrupts. */
static void fx_handler(struct vn_vdev *vdev, struct vn_vq *vq)
{
	struct fx *f = vn_vdev_opaque(vdev);
	unsigned int q = vn_vq_index(vq);
	struct iovec iov[4];
	struct vn_vq_elem e = { .iov = iov, .iov_cap = 4 };
	unsigned int n = 0;
	struct park *p = q == 1 ? __atomic_exchange_n(&f->park_q1, NULL, __ATOMIC_ACQ_REL) : NULL;

	if (p)
		park_fn(p);
	while (vn_vq_pop(vq, &e) > 0) {
		if (vn_vq_push(vq, e.head, 0) < 0)
			break;
		__atomic_fetch_add(&f->processed[q], 1, __ATOMIC_RELAXED);
		n++;
	}
	/* Where the last real work ran (self-kicks of an idle queue don't count). */
	if (n)
		__atomic_store_n(&f->on_iothread[q], vn_loop_in_thread(vn_iothread_loop(f->it)),
				 __ATOMIC_RELAXED);
	if (n && vn_vdev_notify_queue(vdev, vq) < 0)
		__atomic_fetch_add(&f->notify_errors, 1, __ATOMIC_RELAXED);
}

/* Config space is writable: the device takes what the driver wrote. */
static int fx_config_write(struct vn_vdev *vdev, uint32_t off, const void *buf, uint32_t len)
{
	return vn_vdev_config_update(vdev, off, buf, len);
}

static const struct vn_vdev_ops fx_ops = { .config_write = fx_config_write };

struct fx_opts {
	bool modern_only;
	bool ioeventfd_off;
	bool no_iothread;
	unsigned int mult;
	unsigned int max_ioeventfds;
};

static uint32_t conf_addr(unsigned int reg)
{
	return 0x80000000u | (SLOT << 11) | (reg & 0xfc);
}

static uint32_t cfg_read(struct fx *f, unsigned int reg, unsigned int size)
{
	uint64_t v = 0;

	VN_BUG_ON(vn_bus_write(f->bus, PIO, 0xcf8, 4, conf_addr(reg)) < 0);
	VN_BUG_ON(vn_bus_read(f->bus, PIO, 0xcfc + (reg & 3), size, &v) < 0);
	return (uint32_t)v;
}

static void cfg_write(struct fx *f, unsigned int reg, unsigned int size, uint32_t val)
{
	VN_BUG_ON(vn_bus_write(f->bus, PIO, 0xcf8, 4, conf_addr(reg)) < 0);
	VN_BUG_ON(vn_bus_write(f->bus, PIO, 0xcfc + (reg & 3), size, val) < 0);
}

static uint64_t rd(struct fx *f, enum vn_space sp, uint64_t a, unsigned int size)
{
	uint64_t v = 0;

	VN_BUG_ON(vn_bus_read(f->bus, sp, a, size, &v) < 0);
	return v;
}

static int wr(struct fx *f, enum vn_space sp, uint64_t a, unsigned int size, uint64_t v)
{
	return vn_bus_write(f->bus, sp, a, size, v);
}

static uint64_t bad_count(struct fx *f)
{
	struct vn_virtio_pci_stats s;

	vn_virtio_pci_get_stats(f->vp, &s);
	return s.bad_accesses;
}

/* Find a capability: returns its config offset or 0. */
static unsigned int find_vcap(struct fx *f, uint8_t id, uint8_t cfg_type)
{
	unsigned int off = cfg_read(f, PCI_CAPABILITY_LIST, 1);

	for (int i = 0; off && i < 48; i++) {
		if (cfg_read(f, off, 1) == id &&
		    (id != PCI_CAP_ID_VNDR || cfg_read(f, off + VIRTIO_PCI_CAP_CFG_TYPE, 1) == cfg_type))
			return off;
		off = cfg_read(f, off + 1, 1);
	}
	return 0;
}

/* The firmware: place the BARs, enable decode and bus master. */
static void fx_firmware(struct fx *f)
{
	cfg_write(f, PCI_BASE_ADDRESS_0, 4, BAR0);
	cfg_write(f, PCI_BASE_ADDRESS_1, 4, BAR1);
	cfg_write(f, PCI_BASE_ADDRESS_4, 4, (uint32_t)BAR4);
	cfg_write(f, PCI_BASE_ADDRESS_5, 4, 0);
	cfg_write(f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static int fx_init(struct vn_t *t, struct fx *f, const struct fx_opts *o)
{
	struct vn_machine_cfg mcfg;
	struct vn_iothread_cfg icfg = { .name = "pci-io" };
	struct vn_virtio_pci_cfg pcfg;
	struct vn_vdev_cfg dcfg = {
		.name = "echo", .device_id = DEV_ID, .ops = &fx_ops, .opaque = f,
		.features = DEV_FEATURES, .nr_queues = NQ, .queue_size_max = NUM, .config_len = 8,
		.nr_vectors = NQ + 1,
	};

	memset(f, 0, sizeof(*f));
	vn_machine_cfg_init(&mcfg);
	mcfg.max_ioeventfds = o->max_ioeventfds;
	if (!VN_CHECK_OK(t, vn_machine_new(&mcfg, &f->m)))
		return -1;
	f->bus = vn_machine_bus(f->m);
	f->mem = vn_machine_gmem(f->m);
	if (!VN_CHECK_OK(t, vn_iothread_new(&icfg, &f->it)) ||
	    !VN_CHECK_OK(t, vn_iothread_start(f->it)) ||
	    !VN_CHECK_OK(t, vn_vdev_new(&dcfg, &f->vdev)))
		return -1;
	for (unsigned int q = 0; q < NQ; q++)
		if (!VN_CHECK_OK(t, vn_vdev_set_queue_handler(f->vdev, q, fx_handler)))
			return -1;
	vn_virtio_pci_cfg_init(&pcfg, f->vdev, o->no_iothread ? NULL : f->it, SLOT);
	pcfg.modern_only = o->modern_only;
	pcfg.ioeventfd = !o->ioeventfd_off;
	pcfg.notify_off_multiplier = o->mult ? o->mult : 4;
	if (o->mult == 1)
		pcfg.notify_off_multiplier = 0; /* 1 asks for 0 here */
	f->mult = pcfg.notify_off_multiplier;
	if (!VN_CHECK_OK(t, vn_machine_add_virtio_pci(f->m, &pcfg, &f->vp)))
		return -1;
	fx_firmware(f);
	return 0;
}

static void fx_fini(struct fx *f)
{
	vn_virtio_pci_remove(f->vp);
	vn_iothread_free(f->it);
	vn_vdev_free(f->vdev);
	vn_machine_free(f->m);
}

static void zero_rings(struct fx *f)
{
	static const uint8_t zero[0x4000];

	for (unsigned int q = 0; q < NQ; q++)
		VN_BUG_ON(vn_gmem_write(f->mem, RING_BASE + 0x10000ull * q, zero, sizeof(zero)));
}

static void set_status_modern(struct fx *f, uint8_t s)
{
	VN_BUG_ON(wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, s) < 0);
}

/* A modern driver up to DRIVER_OK (if @ok); queue q's vector is q + 1. */
static void modern_driver(struct fx *f, bool ok)
{
	uint64_t feat = DEV_FEATURES | (1ull << VIRTIO_F_VERSION_1) | f->extra_features;

	f->legacy = false;
	zero_rings(f);
	set_status_modern(f, 0);
	set_status_modern(f, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 0);
	wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_GF), 4, (uint32_t)feat);
	wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 1);
	wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_GF), 4, feat >> 32);
	set_status_modern(f, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				     VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned int q = 0; q < NQ; q++) {
		uint64_t base = RING_BASE + 0x10000ull * q;

		f->desc[q] = base;
		f->avail[q] = base + 0x2000;
		f->used[q] = base + 0x3000;
		f->avail_idx[q] = 0;
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, q);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, NUM);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, (uint32_t)f->desc[q]);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_DESCHI), 4, 0);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 8, f->avail[q]);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_USEDLO), 4, (uint32_t)f->used[q]);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_USEDHI), 4, 0);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, q + 1);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
	}
	if (ok)
		set_status_modern(f, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					     VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* A legacy driver: features, QUEUE_PFN per queue, DRIVER_OK. */
static void legacy_driver(struct fx *f)
{
	f->legacy = true;
	zero_rings(f);
	wr(f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1, 0);
	wr(f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(f, PIO, BAR0 + VIRTIO_PCI_GUEST_FEATURES, 4,
	   rd(f, PIO, BAR0 + VIRTIO_PCI_HOST_FEATURES, 4));
	for (unsigned int q = 0; q < NQ; q++) {
		uint64_t base = RING_BASE + 0x10000ull * q;

		f->desc[q] = base;
		f->avail[q] = base + 16 * NUM;
		f->used[q] = base + 0x1000;
		f->avail_idx[q] = 0;
		wr(f, PIO, BAR0 + VIRTIO_PCI_QUEUE_SEL, 2, q);
		wr(f, PIO, BAR0 + VIRTIO_PCI_QUEUE_PFN, 4, base >> 12);
	}
	wr(f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK);
}

static uint16_t used_idx(struct fx *f, unsigned int q)
{
	uint16_t v = 0;

	VN_BUG_ON(vn_gmem_load_le16_acquire(f->mem, f->used[q] + 2, &v) != 0);
	return v;
}

/* One request on queue @q, no kick. */
static void add_req(struct fx *f, unsigned int q)
{
	uint16_t slot = f->avail_idx[q] % NUM;
	struct vring_desc d = { .addr = htole64(BUF + 16ull * slot), .len = htole32(16) };
	uint16_t head = htole16(slot);

	VN_BUG_ON(vn_gmem_write(f->mem, f->desc[q] + 16ull * slot, &d, sizeof(d)) != 0);
	VN_BUG_ON(vn_gmem_write(f->mem, f->avail[q] + 4 + 2ull * slot, &head, 2) != 0);
	f->avail_idx[q]++;
	/* Release: the descriptor and ring entry before the index. */
	VN_BUG_ON(vn_gmem_store_le16_release(f->mem, f->avail[q] + 2, f->avail_idx[q]) != 0);
}

static uint64_t notify_addr(struct fx *f, unsigned int q)
{
	return BAR4 + VN_VIRTIO_PCI_NOTIFY_OFF + (uint64_t)q * f->mult;
}

/* The doorbell, as the guest's driver for its mode writes it. */
static int kick(struct fx *f, unsigned int q)
{
	if (f->legacy)
		return wr(f, PIO, BAR0 + VIRTIO_PCI_QUEUE_NOTIFY, 2, q);
	return wr(f, MMIO, notify_addr(f, q), 2, q);
}

static bool done(struct fx *f, unsigned int q)
{
	return used_idx(f, q) == f->avail_idx[q];
}

static enum vn_hostnotif_state st(struct fx *f, unsigned int q)
{
	return vn_hostnotif_state(vn_virtio_pci_hostnotif(f->vp), q);
}

static void sync_hn(struct fx *f)
{
	vn_hostnotif_sync(vn_virtio_pci_hostnotif(f->vp));
}

/* Request + kick on @q; returns 1 if served on the iothread, 0 on the caller, -1 lost. */
static int request(struct fx *f, unsigned int q)
{
	add_req(f, q);
	if (kick(f, q) < 0 || !VN_WAIT_FOR(done(f, q), 5000))
		return -1;
	return __atomic_load_n(&f->on_iothread[q], __ATOMIC_RELAXED);
}

static bool fd_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static bool irq_wait_clear(struct fx *f, unsigned int irq, int ms)
{
	struct pollfd p = { .fd = vn_machine_irq_fd(f->m, irq), .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, ms) != 1)
		return false;
	return read(p.fd, &v, sizeof(v)) == sizeof(v);
}

static void drain_irqs(struct fx *f)
{
	uint64_t v;

	for (unsigned int i = 0; i < vn_machine_nr_irqs(f->m); i++)
		while (fd_readable(vn_machine_irq_fd(f->m, i)))
			if (read(vn_machine_irq_fd(f->m, i), &v, sizeof(v)) < 0)
				break;
}

/* ---- identity and capabilities ---- */

/* Ring address @which (0 desc, 1 avail, 2 used) of queue @q, through the vq accessor. */
static uint64_t qaddr(struct vn_vdev *vdev, unsigned int q, int which)
{
	uint64_t a[3];

	vn_vq_ring_addrs(vn_vdev_queue(vdev, q), &a[0], &a[1], &a[2]);
	return a[which];
}

static void test_ids_and_caps(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	struct fx f;
	unsigned int c;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_VENDOR_ID, 2), 0x1af4u);
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_DEVICE_ID, 2), 0x1000u + DEV_ID - 1);
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_REVISION_ID, 1), 0u);
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4u);
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_SUBSYSTEM_ID, 2), DEV_ID);
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_CLASS_DEVICE, 2), VN_PCI_CLASS_STORAGE_SCSI);
	VN_CHECK(t, cfg_read(&f, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	c = find_vcap(&f, PCI_CAP_ID_MSIX, 0);
	VN_CHECK(t, c != 0);
	VN_CHECK_EQ_U(t, cfg_read(&f, c + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE, NQ);
	VN_CHECK_EQ_U(t, cfg_read(&f, c + PCI_MSIX_TABLE, 4), 1u);
	VN_CHECK_EQ_U(t, cfg_read(&f, c + PCI_MSIX_PBA, 4), 0x801u);
	c = find_vcap(&f, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_COMMON_CFG);
	VN_CHECK(t, c != 0);
	VN_CHECK_EQ_U(t, cfg_read(&f, c + VIRTIO_PCI_CAP_BAR, 1), 4u);
	VN_CHECK_EQ_U(t, cfg_read(&f, c + VIRTIO_PCI_CAP_OFFSET, 4), 0u);
	VN_CHECK(t, find_vcap(&f, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_ISR_CFG) != 0);
	VN_CHECK(t, find_vcap(&f, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_DEVICE_CFG) != 0);
	VN_CHECK(t, find_vcap(&f, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG) != 0);
	c = find_vcap(&f, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_NOTIFY_CFG);
	VN_CHECK(t, c != 0);
	VN_CHECK_EQ_U(t, cfg_read(&f, c + VIRTIO_PCI_NOTIFY_CAP_MULT, 4), 4u);
	VN_CHECK_EQ_U(t, cfg_read(&f, c + VIRTIO_PCI_CAP_OFFSET, 4), VN_VIRTIO_PCI_NOTIFY_OFF);
	/* BAR kinds: BAR0 I/O, BAR1 32-bit memory, BAR4 64-bit prefetchable. */
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_BASE_ADDRESS_0, 4), BAR0 | 1u);
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_BASE_ADDRESS_4, 4), (uint32_t)BAR4 | 0xcu);
	/* Capabilities are read-only. */
	cfg_write(&f, c + VIRTIO_PCI_NOTIFY_CAP_MULT, 4, 0);
	VN_CHECK_EQ_U(t, cfg_read(&f, c + VIRTIO_PCI_NOTIFY_CAP_MULT, 4), 4u);
	fx_fini(&f);

	o.modern_only = true;
	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_DEVICE_ID, 2), 0x1040u + DEV_ID);
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_REVISION_ID, 1), 1u);
	cfg_write(&f, PCI_BASE_ADDRESS_0, 4, 0xffffffffu);
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_BASE_ADDRESS_0, 4), 0u);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0, 4), 0xffffffffu);
	fx_fini(&f);
}

static void test_bad_cfg(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	struct vn_virtio_pci_cfg c;
	struct vn_virtio_pci *vp;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	vn_virtio_pci_cfg_init(&c, f.vdev, NULL, 0);
	VN_CHECK_EQ_INT(t, vn_machine_add_virtio_pci(f.m, &c, &vp), -EINVAL);
	c.slot = 32;
	VN_CHECK_EQ_INT(t, vn_machine_add_virtio_pci(f.m, &c, &vp), -EINVAL);
	c.slot = 4;
	c.notify_off_multiplier = 3;
	VN_CHECK_EQ_INT(t, vn_machine_add_virtio_pci(f.m, &c, &vp), -EINVAL);
	c.notify_off_multiplier = 8192;
	VN_CHECK_EQ_INT(t, vn_machine_add_virtio_pci(f.m, &c, &vp), -EINVAL);
	c.notify_off_multiplier = 4;
	c.msix_vectors = NQ + 2;
	VN_CHECK_EQ_INT(t, vn_machine_add_virtio_pci(f.m, &c, &vp), -EINVAL);
	/* a good config, but the device has a transport (and memory) already */
	c.msix_vectors = 0;
	VN_CHECK_EQ_INT(t, vn_machine_add_virtio_pci(f.m, &c, &vp), -EBUSY);
	VN_CHECK(t, vn_vdev_mem(f.vdev) == vn_machine_gmem(f.m));
	fx_fini(&f);
}

/* ---- legacy registers ---- */

static void test_legacy_registers(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	unsigned int msix;
	uint64_t bad;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	/* HOST_FEATURES: the low 32 bits (never VERSION_1). */
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_HOST_FEATURES, 4), (uint32_t)DEV_FEATURES);
	bad = bad_count(&f);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_HOST_FEATURES, 2), 0xffffu);
	VN_CHECK_EQ_INT(t, wr(&f, PIO, BAR0 + VIRTIO_PCI_HOST_FEATURES, 4, 0), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, bad_count(&f), bad + 2);
	/* Status and features. */
	wr(&f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(&f, PIO, BAR0 + VIRTIO_PCI_GUEST_FEATURES, 4, 1u << 3);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_GUEST_FEATURES, 4), 1u << 3);
	VN_CHECK_EQ_U(t, vn_vdev_driver_features(f.vdev), 1ull << 3);
	/* Queue select, size (read-only for legacy), PFN. */
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_NUM, 2), NUM);
	wr(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_NUM, 2, 8);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_NUM, 2), NUM);
	wr(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_SEL, 2, 1);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_SEL, 2), 1u);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_PFN, 4), 0u);
	wr(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_PFN, 4, 0x123);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_PFN, 4), 0x123u);
	VN_CHECK(t, vn_vq_is_ready(vn_vdev_queue(f.vdev, 1)));
	VN_CHECK_EQ_U(t, qaddr(f.vdev, 1, 1), 0x123000u + 16 * NUM);
	VN_CHECK_EQ_U(t, qaddr(f.vdev, 1, 2), 0x124000u);
	/* A queue that does not exist. */
	wr(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_SEL, 2, 7);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_NUM, 2), 0u);
	bad = bad_count(&f);
	wr(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_PFN, 4, 0x200);
	VN_CHECK_EQ_U(t, bad_count(&f), bad + 1);
	/* ISR: read clears. */
	__atomic_store_n(&f.vdev->isr, 3, __ATOMIC_RELAXED);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_ISR, 1), 3u);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_ISR, 1), 0u);
	/* Without MSI-X: no vector registers; config at 20. */
	bad = bad_count(&f);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_MSI_CONFIG_VECTOR, 2),
		      ((uint32_t)f.vdev->config[1] << 8) | f.vdev->config[0]);
	memcpy(f.vdev->config, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + 20, 4), 0x44332211u);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + 24, 4), 0x88776655u);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + 27, 2), 0xffffu); /* past the end */
	wr(&f, PIO, BAR0 + 21, 1, 0xaa);
	VN_CHECK_EQ_U(t, f.vdev->config[1], 0xaau);
	VN_CHECK_EQ_U(t, bad_count(&f), bad + 1);
	/* MSI-X on: vector registers appear, config moves to 24. */
	msix = find_vcap(&f, PCI_CAP_ID_MSIX, 0);
	cfg_write(&f, msix + PCI_MSIX_FLAGS + 1, 1, PCI_MSIX_FLAGS_ENABLE >> 8);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_MSI_CONFIG_VECTOR, 2), VIRTIO_MSI_NO_VECTOR);
	wr(&f, PIO, BAR0 + VIRTIO_MSI_CONFIG_VECTOR, 2, 0);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_MSI_CONFIG_VECTOR, 2), 0u);
	wr(&f, PIO, BAR0 + VIRTIO_MSI_CONFIG_VECTOR, 2, 99); /* no such vector */
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_MSI_CONFIG_VECTOR, 2), VIRTIO_MSI_NO_VECTOR);
	wr(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_SEL, 2, 1);
	wr(&f, PIO, BAR0 + VIRTIO_MSI_QUEUE_VECTOR, 2, 2);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_MSI_QUEUE_VECTOR, 2), 2u);
	VN_CHECK_EQ_U(t, vn_vdev_queue_vector(f.vdev, 1), 2u);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + 24, 4), 0x4433aa11u);
	/* Every offset at every size: no crash, the unknown ones refused. */
	for (unsigned int off = 0; off < 64; off++)
		for (unsigned int sz = 1; sz <= 4; sz <<= 1) {
			uint64_t v;

			(void)vn_bus_read(f.bus, PIO, BAR0 + off, sz, &v);
			if (off != VIRTIO_PCI_STATUS && off != VIRTIO_PCI_QUEUE_PFN &&
			    off != VIRTIO_PCI_QUEUE_NOTIFY)
				(void)vn_bus_write(f.bus, PIO, BAR0 + off, sz, 0x5a5a5a5a);
		}
	/* Status 0 resets. */
	wr(&f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1, 0);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1), 0u);
	VN_CHECK(t, !vn_vq_is_ready(vn_vdev_queue(f.vdev, 1)));
	fx_fini(&f);
}

/* ---- common config ---- */

static void test_common_config(struct vn_t *t)
{
	struct fx_opts o = { .modern_only = true };
	uint64_t bad;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 1);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4), 1u);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_DF), 4),
		      (uint32_t)((DEV_FEATURES | (1ull << VIRTIO_F_VERSION_1)) >> 32));
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 0);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_DF), 4), (uint32_t)DEV_FEATURES);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 5);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_DF), 4), 0u);
	/* Driver features in two halves. */
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 1);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_GF), 4, 1);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 0);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_GF), 4, 8);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_GF), 4), 8u);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4), 0u);
	VN_CHECK_EQ_U(t, vn_vdev_driver_features(f.vdev), (1ull << 32) | 8);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_NUMQ), 2), NQ);
	set_status_modern(&f, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_STATUS), 1),
		      VIRTIO_CONFIG_S_ACKNOWLEDGE);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_CFGGENERATION), 1),
		      vn_vdev_config_generation(f.vdev) & 0xff);
	/* Config vector. */
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_MSIX), 2, 0);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_MSIX), 2), 0u);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_MSIX), 2, 77);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_MSIX), 2), VIRTIO_MSI_NO_VECTOR);
	/* Queue fields. */
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, 1);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2), 1u);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), NUM);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, 16);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 16u);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_NOFF), 2), 1u);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_NDATA), 2), 1u);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, 2);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), 2u);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, 3);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), VIRTIO_MSI_NO_VECTOR);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, 0x11000);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_DESCHI), 4, 0);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 8, 0x12000);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_USEDLO), 4, 0x13000);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_USEDHI), 4, 1);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 8), 0x11000u);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 4), 0x12000u);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_USEDHI), 4), 1u);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 0u);
	/* Used ring above RAM: enable fails, the queue stays off. */
	bad = bad_count(&f);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 0u);
	VN_CHECK_EQ_U(t, bad_count(&f), bad + 1);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_USEDHI), 4, 0);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2), 1u);
	VN_CHECK_EQ_U(t, vn_vq_size(vn_vdev_queue(f.vdev, 1)), 16u);
	VN_CHECK_EQ_U(t, qaddr(f.vdev, 1, 2), 0x13000u);
	/* An enabled queue's rings are fixed. */
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, 0x55000);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4), 0x11000u);
	/* Queue reset (RING_RESET negotiated above? bit 40 not: refused). */
	bad = bad_count(&f);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_RESET), 2, 1);
	VN_CHECK_EQ_U(t, bad_count(&f), bad + 1);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_RESET), 2), 0u);
	/* A missing queue: size 0, writes refused. */
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, NQ);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2), 0u);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2), VIRTIO_MSI_NO_VECTOR);
	bad = bad_count(&f);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, 0);
	VN_CHECK_EQ_U(t, bad_count(&f), bad + 2);
	/* Wrong sizes, read-only fields, unaligned halves, past the structure. */
	bad = bad_count(&f);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_STATUS), 2), 0xffffu);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_NUMQ), 4), 0xffffffffu);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_NUMQ), 2, 9);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_DF), 4, 9);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO + 2), 4, 9);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(0x100), 4), 0xffffffffu);
	VN_CHECK_EQ_U(t, bad_count(&f), bad + 6);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_NUMQ), 2), NQ);
	/* ISR and device config through BAR4. */
	__atomic_store_n(&f.vdev->isr, 1, __ATOMIC_RELAXED);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR4 + VN_VIRTIO_PCI_ISR_OFF, 1), 1u);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR4 + VN_VIRTIO_PCI_ISR_OFF, 1), 0u);
	wr(&f, MMIO, BAR4 + VN_VIRTIO_PCI_DEVICE_OFF + 4, 4, 0xdeadbeef);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR4 + VN_VIRTIO_PCI_DEVICE_OFF + 4, 4), 0xdeadbeefu);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR4 + VN_VIRTIO_PCI_DEVICE_OFF + 6, 2), 0xdeadu);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR4 + VN_VIRTIO_PCI_DEVICE_OFF + 6, 4), 0xffffffffu);
	/* Every offset of BAR4 at every size: no crash. */
	for (uint64_t off = 0; off < BAR4_SIZE; off += 3)
		for (unsigned int sz = 1; sz <= 8; sz <<= 1) {
			uint64_t v;

			(void)vn_bus_read(f.bus, MMIO, BAR4 + off, sz, &v);
			if (off != VIRTIO_PCI_COMMON_STATUS)
				(void)vn_bus_write(f.bus, MMIO, BAR4 + off, sz, off * 0x9e3779b9u);
		}
	fx_fini(&f);
}

/* ---- doorbells ---- */

static void test_legacy_doorbell_datamatch(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	struct fx f;
	uint64_t n = 0;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	legacy_driver(&f);
	for (unsigned int q = 0; q < NQ; q++) {
		struct vn_ioev e = {
			.space = PIO, .addr = BAR0 + VIRTIO_PCI_QUEUE_NOTIFY, .len = 2,
			.datamatch = true, .data = q,
		};

		VN_CHECK_EQ_INT(t, st(&f, q), VN_HOSTNOTIF_ASSIGNED);
		add_req(&f, q);
		VN_CHECK_EQ_INT(t, kick(&f, q), VN_BUS_IOEVENTFD);
		VN_CHECK(t, VN_WAIT_FOR(done(&f, q), 5000));
		VN_CHECK_EQ_INT(t, f.on_iothread[q], 1);
		e.fd = vn_hostnotif_fd(vn_virtio_pci_hostnotif(f.vp), q);
		VN_CHECK_OK(t, vn_bus_ioev_signals(f.bus, &e, &n));
		VN_CHECK_EQ_U(t, n, 1u);
	}
	/* Another value or size is no ioeventfd's: the register refuses it. */
	VN_CHECK_EQ_INT(t, wr(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_NOTIFY, 2, 5), VN_BUS_REGION);
	VN_CHECK_EQ_INT(t, wr(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_NOTIFY, 4, 0), VN_BUS_REGION);
	/* No modern ioeventfds for a legacy driver. */
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, BAR4 + VN_VIRTIO_PCI_NOTIFY_OFF, 2, 0), VN_BUS_REGION);
	fx_fini(&f);
}

static void run_modern_mult(struct vn_t *t, unsigned int mult)
{
	struct fx_opts o = { .modern_only = true, .mult = mult };
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	modern_driver(&f, true);
	for (unsigned int q = 0; q < NQ; q++) {
		VN_CHECK_EQ_INT(t, st(&f, q), VN_HOSTNOTIF_ASSIGNED);
		add_req(&f, q);
		VN_CHECK_EQ_INT(t, kick(&f, q), VN_BUS_IOEVENTFD);
		VN_CHECK(t, VN_WAIT_FOR(done(&f, q), 5000));
		VN_CHECK_EQ_INT(t, f.on_iothread[q], 1);
		/* Any length at the address (4 bytes: NOTIFICATION_DATA style). */
		add_req(&f, q);
		VN_CHECK_EQ_INT(t, wr(&f, MMIO, notify_addr(&f, q), 4, q),
				f.mult ? VN_BUS_IOEVENTFD : VN_BUS_REGION);
		VN_CHECK(t, VN_WAIT_FOR(done(&f, q), 5000));
	}
	fx_fini(&f);
}

static void test_modern_notify_multiplier(struct vn_t *t)
{
	run_modern_mult(t, 4);
	run_modern_mult(t, 2);
	run_modern_mult(t, 4096);
	run_modern_mult(t, 1); /* multiplier 0: one address, datamatch on the index */
}

static void test_ioeventfd_off_runs_on_caller(struct vn_t *t)
{
	struct fx_opts o = { .ioeventfd_off = true };
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	modern_driver(&f, true);
	for (unsigned int q = 0; q < NQ; q++) {
		VN_CHECK_EQ_INT(t, st(&f, q), VN_HOSTNOTIF_DEASSIGNED);
		add_req(&f, q);
		VN_CHECK_EQ_INT(t, kick(&f, q), VN_BUS_REGION);
		/* Synchronous: done when the exit returns, on this thread. */
		VN_CHECK(t, done(&f, q));
		VN_CHECK_EQ_INT(t, f.on_iothread[q], 0);
	}
	fx_fini(&f);
	/* No iothread: the same. */
	o.ioeventfd_off = false;
	o.no_iothread = true;
	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	legacy_driver(&f);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_DEASSIGNED);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_REGION);
	VN_CHECK(t, done(&f, 0));
	fx_fini(&f);
}

/*
 * The ioeventfd default is the device type's: the echo type says nothing,
 * so a transport built from the defaults keeps its doorbells synchronous.
 */
static void test_ioeventfd_type_default(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	struct vn_virtio_pci_cfg pc;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	VN_CHECK(t, !vn_vdev_ioeventfd_default(f.vdev));
	vn_virtio_pci_cfg_init(&pc, f.vdev, f.it, SLOT + 1);
	VN_CHECK(t, !pc.ioeventfd);
	fx_fini(&f);
}

/* The log, captured: lines at WARN or worse, and the last one's text. */
struct log_cap {
	pthread_mutex_t lock;
	unsigned int warns;
	char last[256];
};

static void cap_sink(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
	struct log_cap *c = opaque;

	if (level > VN_LOG_WARN)
		return;
	pthread_mutex_lock(&c->lock);
	c->warns++;
	snprintf(c->last, sizeof(c->last), "%s: %s", tag, msg);
	pthread_mutex_unlock(&c->lock);
}

static unsigned int cap_warns(struct log_cap *c)
{
	unsigned int n;

	pthread_mutex_lock(&c->lock);
	n = c->warns;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/*
 * A start that fails part-way (the table has room for queue 0, not for
 * queue 1) rolls back to synchronous notify and says so in exactly one log
 * line, naming the queue that failed and why: not one per queue undone,
 * none for the undo, none for the accelerator's refusal, and none again
 * for later kicks.
 */
static void test_ioeventfd_limit_falls_back(struct vn_t *t)
{
	/* One more than the old kernels' 6: smaller buses never try (policy). */
	struct fx_opts o = { .max_ioeventfds = VN_IOEV_LIMIT_OLD_KERNEL + 1 };
	struct vn_ioev e = { .space = MMIO, .len = 4 };
	struct log_cap cap = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct vn_virtio_pci_stats s;
	char want[64];
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	e.fd = eventfd(0, EFD_CLOEXEC);
	VN_REQUIRE(t, e.fd >= 0);
	for (unsigned int i = 0; i < VN_IOEV_LIMIT_OLD_KERNEL; i++) {
		e.addr = 0xf0000000ull + 4 * i;
		VN_CHECK_OK(t, vn_accel_assign(vn_machine_accel(f.m), &e));
	}
	vn_log_set_sink(cap_sink, &cap);
	modern_driver(&f, true);
	/* Two queues, room for one: all or nothing, so both stay synchronous. */
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_DEASSIGNED);
	VN_CHECK_EQ_INT(t, st(&f, 1), VN_HOSTNOTIF_DEASSIGNED);
	VN_CHECK(t, !vn_hostnotif_ioeventfd_on(vn_virtio_pci_hostnotif(f.vp)));
	VN_CHECK_EQ_INT(t, request(&f, 1), 0);
	VN_CHECK_EQ_INT(t, request(&f, 0), 0);
	vn_virtio_pci_get_stats(f.vp, &s);
	VN_CHECK(t, s.doorbells > 0);
	vn_log_set_sink(NULL, NULL);
	VN_CHECK_EQ_U(t, cap_warns(&cap), 1);
	snprintf(want, sizeof(want), "vq 1 failed (%s)", vn_strerror(-ENOSPC));
	if (!VN_CHECK(t, strstr(cap.last, want) != NULL))
		vn_t_diag("log line: \"%s\", want \"%s\" in it", cap.last, want);
	for (unsigned int i = 0; i < VN_IOEV_LIMIT_OLD_KERNEL; i++) {
		e.addr = 0xf0000000ull + 4 * i;
		VN_CHECK_OK(t, vn_accel_deassign(vn_machine_accel(f.m), &e));
	}
	close(e.fd);
	fx_fini(&f);
}

/* A doorbell with notification data: vqn, then the avail idx the driver claims. */
static int kick_data(struct fx *f, unsigned int q, unsigned int vqn, uint16_t next)
{
	return wr(f, MMIO, notify_addr(f, q), 4, vqn | (uint32_t)next << 16);
}

static void test_notification_data(struct vn_t *t)
{
	uint64_t nd = 1ull << VN_VIRTIO_F_NOTIFICATION_DATA;
	struct fx_opts o = { .ioeventfd_off = true };
	struct vn_virtio_pci_stats s;
	uint64_t bad;
	struct fx f;

	/* Offered only with ioeventfd off: an ioeventfd would drop the value. */
	VN_REQUIRE(t, fx_init(t, &f, &(struct fx_opts){ 0 }) == 0);
	VN_CHECK_EQ_U(t, vn_vdev_device_features(f.vdev) & nd, 0);
	fx_fini(&f);
	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	VN_CHECK_EQ_U(t, vn_vdev_device_features(f.vdev) & nd, nd);
	wr(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 1);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_DF), 4) & (nd >> 32), nd >> 32);
	f.extra_features = nd;
	modern_driver(&f, true);
	VN_REQUIRE(t, vn_vdev_has_feature(f.vdev, VN_VIRTIO_F_NOTIFICATION_DATA));

	/* An honest doorbell: the index the ring now publishes. */
	add_req(&f, 1);
	VN_CHECK_EQ_INT(t, kick_data(&f, 1, 1, f.avail_idx[1]), VN_BUS_REGION);
	VN_CHECK(t, done(&f, 1));
	vn_virtio_pci_get_stats(f.vp, &s);
	VN_CHECK_EQ_U(t, s.notify_data, 1);
	VN_CHECK_EQ_U(t, s.notify_data_ahead, 0);

	/*
	 * A driver that claims three entries it never published: counted, and
	 * the queue still runs only what avail->idx says (nothing new here).
	 */
	VN_CHECK_EQ_INT(t, kick_data(&f, 1, 1, (uint16_t)(f.avail_idx[1] + 3)), VN_BUS_REGION);
	vn_virtio_pci_get_stats(f.vp, &s);
	VN_CHECK_EQ_U(t, s.notify_data, 2);
	VN_CHECK_EQ_U(t, s.notify_data_ahead, 1);
	VN_CHECK_EQ_U(t, used_idx(&f, 1), f.avail_idx[1]);
	VN_CHECK_EQ_U(t, f.processed[1], 1);
	VN_CHECK_EQ_U(t, vn_vdev_get_status(f.vdev) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);

	/* A hint behind the ring (another submitter was faster) is no lie. */
	add_req(&f, 0);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, kick_data(&f, 0, 0, (uint16_t)(f.avail_idx[0] - 1)), VN_BUS_REGION);
	VN_CHECK(t, done(&f, 0));
	vn_virtio_pci_get_stats(f.vp, &s);
	VN_CHECK_EQ_U(t, s.notify_data_ahead, 1);

	/* vqn must name the queue of the address: refused, nothing runs. */
	bad = bad_count(&f);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, kick_data(&f, 0, 1, f.avail_idx[0]), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, bad_count(&f), bad + 1);
	VN_CHECK(t, !done(&f, 0));
	/* A 2-byte doorbell from such a driver still kicks, without a hint. */
	VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_REGION);
	VN_CHECK(t, done(&f, 0));
	vn_virtio_pci_get_stats(f.vp, &s);
	VN_CHECK_EQ_U(t, s.notify_data, 3);

	/* The offer is the transport's: it leaves with it. */
	vn_virtio_pci_remove(f.vp);
	f.vp = NULL;
	VN_CHECK_EQ_U(t, vn_vdev_device_features(f.vdev) & nd, 0);
	fx_fini(&f);
}

/* ---- the counted vhost grab ---- */

/* Parks the iothread in a bottom half until the test opens it. */
struct park {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool in, open;
};

static void park_fn(void *opaque)
{
	struct park *p = opaque;

	pthread_mutex_lock(&p->lock);
	p->in = true;
	pthread_cond_broadcast(&p->cond);
	while (!p->open)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

static bool parked(struct park *p)
{
	bool in;

	pthread_mutex_lock(&p->lock);
	in = p->in;
	pthread_mutex_unlock(&p->lock);
	return in;
}

static void unpark(struct park *p)
{
	pthread_mutex_lock(&p->lock);
	p->open = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/*
 * Userspace consumption stops before the grab returns, not when the
 * detach bottom half runs. Kicks for queue 1 and then queue 0 land while
 * the iothread is parked, so one epoll batch holds both, queue 1 first
 * (epoll reports in the order the fds became ready). Queue 1's handler
 * parks again, inside that batch: a request is on queue 0's ring, its kick
 * is pending, and the grab happens now. The detach the grab posts waits
 * for the batch to end, so queue 0's event is dispatched before it: only
 * the state check under the run lock keeps the iothread off the ring. The
 * guest keeps kicking; nothing may run and no used entry appear until the
 * queue is given back.
 */
static void test_grab_stops_consumption_at_once(struct vn_t *t)
{
	struct park p = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct park p1 = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct fx_opts o = { 0 };
	struct vn_notifier_queue_info qi;
	struct vn_notifier_info di;
	struct vn_hostnotif *hn;
	uint64_t processed;
	uint16_t used;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	modern_driver(&f, true);
	hn = vn_virtio_pci_hostnotif(f.vp);
	VN_REQUIRE(t, st(&f, 0) == VN_HOSTNOTIF_ASSIGNED && st(&f, 1) == VN_HOSTNOTIF_ASSIGNED);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	sync_hn(&f);
	used = used_idx(&f, 0);
	processed = __atomic_load_n(&f.processed[0], __ATOMIC_RELAXED);

	VN_REQUIRE_OK(t, vn_loop_call(vn_iothread_loop(f.it), park_fn, &p));
	VN_REQUIRE(t, VN_WAIT_FOR(parked(&p), 5000));
	__atomic_store_n(&f.park_q1, &p1, __ATOMIC_RELEASE);
	add_req(&f, 1);
	VN_CHECK_EQ_INT(t, kick(&f, 1), VN_BUS_IOEVENTFD);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_IOEVENTFD);
	unpark(&p);
	VN_REQUIRE(t, VN_WAIT_FOR(parked(&p1), 5000));
	/* Queue 0's event is in the batch the iothread is dispatching. */
	VN_CHECK_EQ_U(t, __atomic_load_n(&f.processed[0], __ATOMIC_RELAXED), processed);
	vn_vdev_lock(f.vdev);
	VN_CHECK_OK(t, vn_hostnotif_set_host_notifier(hn, 0, true));
	vn_vdev_unlock(f.vdev);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_OFFLIMITS);
	unpark(&p1);
	for (unsigned int i = 0; i < 8; i++) {
		add_req(&f, 0);
		VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_IOEVENTFD);
	}
	/* FIFO: the detach and every fd dispatch of the iothread before it are done. */
	sync_hn(&f);
	VN_CHECK(t, done(&f, 1));
	VN_CHECK_OK(t, vn_virtio_pci_queue_notifier_info(f.vp, 0, &qi));
	vn_virtio_pci_notifier_info(f.vp, &di);
	VN_CHECK_EQ_U(t, qi.offlimits_runs, 0);
	VN_CHECK_EQ_U(t, di.offlimits_runs, 0);
	VN_CHECK_EQ_U(t, used_idx(&f, 0), used);
	VN_CHECK_EQ_U(t, __atomic_load_n(&f.processed[0], __ATOMIC_RELAXED), processed);

	/* Given back: the self-kick serves all nine. */
	vn_vdev_lock(f.vdev);
	VN_CHECK_OK(t, vn_hostnotif_set_host_notifier(hn, 0, false));
	vn_vdev_unlock(f.vdev);
	VN_CHECK(t, VN_WAIT_FOR(done(&f, 0), 5000));
	VN_CHECK_EQ_U(t, __atomic_load_n(&f.processed[0], __ATOMIC_RELAXED), processed + 9);
	fx_fini(&f);
}

/* ---- state machine triggers ---- */

static void test_queue_pfn_zero_resets(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	legacy_driver(&f);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_ASSIGNED);
	add_req(&f, 1); /* a kick that never came: the reset drains nothing, runs nothing */
	wr(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_PFN, 4, 0);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1), 0u);
	for (unsigned int q = 0; q < NQ; q++) {
		VN_CHECK_EQ_INT(t, st(&f, q), VN_HOSTNOTIF_DEASSIGNED);
		VN_CHECK(t, !vn_vq_is_ready(vn_vdev_queue(f.vdev, q)));
	}
	/* No stale ioeventfd: the doorbell reaches the register. */
	VN_CHECK_EQ_INT(t, wr(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_NOTIFY, 2, 0), VN_BUS_REGION);
	/* And the device comes back. */
	legacy_driver(&f);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	fx_fini(&f);
}

static void test_bus_master(struct vn_t *t)
{
	struct fx_opts o = { .modern_only = true };
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	modern_driver(&f, true);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	/* Bus master off: notifiers stop, doorbells do nothing. */
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	for (unsigned int q = 0; q < NQ; q++)
		VN_CHECK_EQ_INT(t, st(&f, q), VN_HOSTNOTIF_DEASSIGNED);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_REGION);
	sync_hn(&f);
	VN_CHECK(t, !done(&f, 0));
	/* Bus master on again: assigned, and the pending request is served. */
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_ASSIGNED);
	VN_CHECK(t, VN_WAIT_FOR(done(&f, 0), 5000));
	VN_CHECK_EQ_INT(t, request(&f, 1), 1);
	/* Off, then a reset and a new DRIVER_OK with it on: works. */
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	modern_driver(&f, true);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_DEASSIGNED);
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	fx_fini(&f);
}

/*
 * A guest older than Linux 2.6.34: legacy, and it never sets bus master.
 * DRIVER_OK without it turns BUS_MASTER_BUG on, so the queues run (assigned
 * and through the register) and keep running across a device reset; a
 * system reset drops it, and a later driver needs bus master again.
 */
static void test_bus_master_bug(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	legacy_driver(&f);
	VN_CHECK(t, f.vp->bus_master_bug);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_ASSIGNED);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	VN_CHECK_EQ_INT(t, request(&f, 1), 1);
	/*
	 * The same kernel re-probing (device reset, DRIVER_OK again) keeps it.
	 * The reset comes first, as a driver's does: the rings are not rewritten
	 * under a running queue.
	 */
	wr(&f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1, 0);
	sync_hn(&f);
	VN_CHECK(t, f.vp->bus_master_bug);
	legacy_driver(&f);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	/* System reset: cleared, notifiers stopped, device reset. */
	vn_virtio_pci_system_reset(f.vp);
	VN_CHECK(t, !f.vp->bus_master_bug);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1), 0u);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_DEASSIGNED);
	/* The ioeventfd option survives: a new driver with bus master is assigned. */
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	legacy_driver(&f);
	VN_CHECK(t, !f.vp->bus_master_bug);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	/* It turns bus master off: the device honours it, no workaround now. */
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_DEASSIGNED);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_REGION);
	sync_hn(&f);
	VN_CHECK(t, !done(&f, 0));
	fx_fini(&f);

	/* A modern driver gets no workaround: DRIVER_OK without bus master waits. */
	o.modern_only = true;
	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	modern_driver(&f, true);
	VN_CHECK(t, !f.vp->bus_master_bug);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_DEASSIGNED);
	fx_fini(&f);
}

static void msix_entry(struct fx *f, unsigned int v, uint32_t data, bool masked);

/* Blocks the iothread until released, so a kick can sit in its eventfd. */
struct io_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool entered, open;
};

static void io_gate_fn(void *opaque)
{
	struct io_gate *g = opaque;

	pthread_mutex_lock(&g->lock);
	g->entered = true;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void io_gate_close(struct fx *f, struct io_gate *g)
{
	*g = (struct io_gate){ 0 };
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	VN_BUG_ON(vn_loop_call(vn_iothread_loop(f->it), io_gate_fn, g) != 0);
	pthread_mutex_lock(&g->lock);
	while (!g->entered)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void io_gate_open(struct io_gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* Once the iothread has left io_gate_fn(): after a sync with it. */
static void io_gate_fini(struct io_gate *g)
{
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
}

/*
 * A guest reboot, as vnotify-vm does it: vn_machine_reset() with an old
 * legacy guest (BUS_MASTER_BUG on), MSI-X programmed and a kick sitting in
 * the ioeventfd (the iothread is held). The kick is drained (run once, on
 * the resetting thread), the header is at power-on (no decode, no bus
 * master, BARs 0, MSI-X off and masked), the workaround is gone, and after
 * the firmware and a second driver init the queues are assigned again: the
 * ioeventfd option survived.
 */
static void test_machine_reset(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	struct vn_notifier_info ni;
	struct io_gate g;
	unsigned int cap;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	cap = find_vcap(&f, PCI_CAP_ID_MSIX, 0);
	msix_entry(&f, 1, 7, false);
	cfg_write(&f, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	legacy_driver(&f);
	VN_REQUIRE(t, f.vp->bus_master_bug);
	VN_REQUIRE_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_ASSIGNED);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	sync_hn(&f);
	vn_virtio_pci_notifier_info(f.vp, &ni);
	VN_CHECK_EQ_U(t, ni.drain_runs, 0u);

	io_gate_close(&f, &g);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_IOEVENTFD);
	vn_machine_reset(f.m);
	/* the drain ran the raced kick here, on the rings the driver still owned */
	VN_CHECK_EQ_U(t, __atomic_load_n(&f.processed[0], __ATOMIC_RELAXED), 2u);
	io_gate_open(&g);
	sync_hn(&f);
	io_gate_fini(&g);
	vn_virtio_pci_notifier_info(f.vp, &ni);
	VN_CHECK_EQ_U(t, ni.drain_runs, 1u);
	VN_CHECK_EQ_U(t, __atomic_load_n(&f.processed[0], __ATOMIC_RELAXED), 2u);
	VN_CHECK(t, !f.vp->bus_master_bug);
	for (unsigned int q = 0; q < NQ; q++)
		VN_CHECK_EQ_INT(t, st(&f, q), VN_HOSTNOTIF_DEASSIGNED);
	/* the header as plugged: no decode, no bus master, BARs at 0 */
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_COMMAND, 2), 0u);
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_BASE_ADDRESS_0, 4), PCI_BASE_ADDRESS_SPACE_IO);
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_BASE_ADDRESS_4, 4) & PCI_BASE_ADDRESS_MEM_MASK, 0u);
	VN_CHECK_EQ_U(t, cfg_read(&f, cap + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE, 0u);
	VN_CHECK_EQ_INT(t, wr(&f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1, 0), VN_BUS_UNASSIGNED);

	/* the firmware again, and a new kernel's driver with bus master */
	fx_firmware(&f);
	VN_CHECK_EQ_U(t, rd(&f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1), 0u);
	/* every MSI-X entry masked at power-on (PCI 3.0 §6.8.2.9) */
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR1 + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4),
		      PCI_MSIX_ENTRY_CTRL_MASKBIT);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR1 + 16 + PCI_MSIX_ENTRY_DATA, 4), 0u);
	legacy_driver(&f);
	VN_CHECK(t, !f.vp->bus_master_bug);
	for (unsigned int q = 0; q < NQ; q++) {
		VN_CHECK_EQ_INT(t, st(&f, q), VN_HOSTNOTIF_ASSIGNED);
		VN_CHECK_EQ_INT(t, request(&f, q), 1);
	}
	vn_virtio_pci_notifier_info(f.vp, &ni);
	VN_CHECK(t, ni.ioeventfd);
	VN_CHECK_EQ_U(t, ni.fallbacks, 0u);
	fx_fini(&f);
}

static void test_bar_move_reregisters(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	uint64_t newbar = 0xe0200000ull;
	struct vn_virtio_pci_stats s;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	modern_driver(&f, true);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	cfg_write(&f, PCI_BASE_ADDRESS_4, 4, (uint32_t)newbar);
	vn_virtio_pci_get_stats(f.vp, &s);
	VN_CHECK_EQ_U(t, s.rebinds, 1u);
	/* Nothing left at the old address, not even an ioeventfd. */
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, notify_addr(&f, 0), 2, 0), VN_BUS_UNASSIGNED);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_ASSIGNED);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, newbar + VN_VIRTIO_PCI_NOTIFY_OFF, 2, 0),
			VN_BUS_IOEVENTFD);
	VN_CHECK(t, VN_WAIT_FOR(done(&f, 0), 5000));
	/* Memory decode off: stopped; on: assigned again at the same place. */
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MASTER);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_DEASSIGNED);
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, newbar + VN_VIRTIO_PCI_NOTIFY_OFF, 2, 0),
			VN_BUS_UNASSIGNED);
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	VN_CHECK_EQ_INT(t, st(&f, 1), VN_HOSTNOTIF_ASSIGNED);
	add_req(&f, 1);
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, newbar + VN_VIRTIO_PCI_NOTIFY_OFF + 4, 2, 1),
			VN_BUS_IOEVENTFD);
	VN_CHECK(t, VN_WAIT_FOR(done(&f, 1), 5000));
	fx_fini(&f);

	/* The legacy BAR too. */
	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	legacy_driver(&f);
	cfg_write(&f, PCI_BASE_ADDRESS_0, 4, 0xd000);
	VN_CHECK_EQ_INT(t, wr(&f, PIO, BAR0 + VIRTIO_PCI_QUEUE_NOTIFY, 2, 0), VN_BUS_UNASSIGNED);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, wr(&f, PIO, 0xd000 + VIRTIO_PCI_QUEUE_NOTIFY, 2, 0), VN_BUS_IOEVENTFD);
	VN_CHECK(t, VN_WAIT_FOR(done(&f, 0), 5000));
	fx_fini(&f);
}

static void test_pause_resume(struct vn_t *t)
{
	struct fx_opts o = { .modern_only = true };
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	modern_driver(&f, true);
	vn_machine_pause(f.m);
	VN_CHECK(t, !vn_machine_is_running(f.m));
	for (unsigned int q = 0; q < NQ; q++)
		VN_CHECK_EQ_INT(t, st(&f, q), VN_HOSTNOTIF_DEASSIGNED);
	/* A paused machine's queues don't move. */
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_REGION);
	sync_hn(&f);
	VN_CHECK(t, !done(&f, 0));
	vn_machine_pause(f.m);
	vn_machine_resume(f.m);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_ASSIGNED);
	VN_CHECK(t, VN_WAIT_FOR(done(&f, 0), 5000));
	VN_CHECK_EQ_INT(t, request(&f, 1), 1);
	fx_fini(&f);
}

/* ---- MSI-X ---- */

static void msix_entry(struct fx *f, unsigned int v, uint32_t data, bool masked)
{
	uint64_t e = BAR1 + 16ull * v;

	wr(f, MMIO, e + PCI_MSIX_ENTRY_LOWER_ADDR, 4, VN_MACHINE_MSI_ADDR);
	wr(f, MMIO, e + PCI_MSIX_ENTRY_UPPER_ADDR, 4, 0);
	wr(f, MMIO, e + PCI_MSIX_ENTRY_DATA, 4, data);
	wr(f, MMIO, e + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, masked);
}

static void test_msix_routing(struct vn_t *t)
{
	struct fx_opts o = { .modern_only = true };
	struct vn_virtio_pci_stats s;
	unsigned int cap;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	cap = find_vcap(&f, PCI_CAP_ID_MSIX, 0);
	msix_entry(&f, 1, 7, false);
	msix_entry(&f, 2, 9, false);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR1 + 16 + PCI_MSIX_ENTRY_DATA, 4), 7u);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR1 + 16, 8), VN_MACHINE_MSI_ADDR);
	cfg_write(&f, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	VN_CHECK_EQ_U(t, cfg_read(&f, cap + PCI_MSIX_FLAGS, 2),
		      PCI_MSIX_FLAGS_ENABLE | (NQ));
	modern_driver(&f, true);
	drain_irqs(&f);
	/* Queue 0 uses vector 1 -> irq 7; queue 1 vector 2 -> irq 9. */
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	VN_CHECK(t, irq_wait_clear(&f, 7, 5000));
	VN_CHECK(t, !fd_readable(vn_machine_irq_fd(f.m, 9)));
	VN_CHECK_EQ_INT(t, request(&f, 1), 1);
	VN_CHECK(t, irq_wait_clear(&f, 9, 5000));
	/* Masked: no interrupt, the PBA bit instead; unmask delivers. */
	wr(&f, MMIO, BAR1 + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	VN_CHECK(t, !irq_wait_clear(&f, 7, 50));
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR1 + 0x800, 8) & 2, 2u);
	wr(&f, MMIO, BAR1 + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	VN_CHECK(t, irq_wait_clear(&f, 7, 5000));
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR1 + 0x800, 4), 0u);
	/* Masked and unmasked without a PBA read in between: still delivered. */
	wr(&f, MMIO, BAR1 + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	wr(&f, MMIO, BAR1 + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	VN_CHECK(t, irq_wait_clear(&f, 7, 5000));
	/* Function mask holds back every vector. */
	cfg_write(&f, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	VN_CHECK_EQ_INT(t, request(&f, 1), 1);
	VN_CHECK(t, !irq_wait_clear(&f, 7, 50));
	VN_CHECK(t, !irq_wait_clear(&f, 9, 0));
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR1 + 0x800, 4), 6u);
	cfg_write(&f, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	VN_CHECK(t, irq_wait_clear(&f, 7, 5000));
	VN_CHECK(t, irq_wait_clear(&f, 9, 5000));
	vn_virtio_pci_get_stats(f.vp, &s);
	VN_CHECK_EQ_U(t, s.msix_pending_delivered, 4u);
	/* Reprogramming an entry reroutes it. */
	wr(&f, MMIO, BAR1 + 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1);
	msix_entry(&f, 1, 11, false);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	VN_CHECK(t, irq_wait_clear(&f, 11, 5000));
	/* A message that goes nowhere: silent, no crash. */
	msix_entry(&f, 1, 1000, false);
	VN_CHECK_EQ_INT(t, request(&f, 0), 1);
	/* Bad table accesses and PBA writes are refused. */
	(void)rd(&f, MMIO, BAR1 + 2, 2);
	wr(&f, MMIO, BAR1 + 0x800, 8, ~0ull);
	wr(&f, MMIO, BAR1 + 3, 4, 0);
	VN_CHECK_EQ_U(t, rd(&f, MMIO, BAR1 + 0x800, 8) & ~6ull, 0u);
	fx_fini(&f);
}

/* ---- saved state: the transport's section ---- */

/* Offset of the first section with @id in a state stream, or 0. */
static size_t state_sec(const uint8_t *b, size_t n, uint16_t id)
{
	size_t off = VN_STATE_HDR_LEN;

	while (off + VN_STATE_SEC_HDR_LEN <= n) {
		uint32_t len = (uint32_t)b[off + 8] | (uint32_t)b[off + 9] << 8 |
			       (uint32_t)b[off + 10] << 16 | (uint32_t)b[off + 11] << 24;

		if ((b[off] | b[off + 1] << 8) == id)
			return off;
		off += VN_STATE_SEC_HDR_LEN + len;
	}
	return 0;
}

static void state_refused(struct vn_t *t, struct fx *d, const uint8_t *buf, size_t n,
			  const char *want)
{
	const char *field = NULL;
	int r;

	vn_vdev_lock(d->vdev);
	r = vn_state_load(d->vdev, buf, n, &field);
	vn_vdev_unlock(d->vdev);
	VN_CHECK_EQ_INT(t, r, -EINVAL);
	if (!field || strcmp(field, want) != 0)
		vn_t_fail(t, __FILE__, __LINE__, "field %s, want %s", field ? field : "(null)",
			  want);
}

/*
 * A paused source's feature selects, queue select, BARs, command register,
 * MSI-X table, control and a pending PBA bit arrive on a fresh destination
 * (its firmware placed BAR0 elsewhere), and take effect there; a bad
 * section is refused by name.
 */
static void test_state_transport_section(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	static uint8_t buf[8192], bad[8192], ram[0x4000];
	struct fx s, d;
	unsigned int cap;
	size_t sec, p;
	int n, r;

	VN_REQUIRE(t, fx_init(t, &s, &o) == 0);
	VN_REQUIRE(t, fx_init(t, &d, &o) == 0);
	cap = find_vcap(&s, PCI_CAP_ID_MSIX, 0);
	msix_entry(&s, 1, 7, false);
	msix_entry(&s, 2, 9, true);
	cfg_write(&s, cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	modern_driver(&s, true);
	drain_irqs(&s);
	VN_REQUIRE(t, request(&s, 1) >= 0); /* vector 2 is masked: a PBA bit */
	cfg_write(&s, PCI_BASE_ADDRESS_0, 4, 0xd000);
	wr(&s, MMIO, COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4, 1);
	wr(&s, MMIO, COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 1);
	wr(&s, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, 1);

	/* saving needs the machine paused */
	vn_vdev_lock(s.vdev);
	VN_CHECK_EQ_INT(t, vn_state_save(s.vdev, buf, sizeof(buf)), -EBUSY);
	vn_vdev_unlock(s.vdev);
	vn_machine_pause(s.m);
	vn_vdev_lock(s.vdev);
	n = vn_state_save(s.vdev, buf, sizeof(buf));
	vn_vdev_unlock(s.vdev);
	VN_REQUIRE(t, n > 0);
	sec = state_sec(buf, (size_t)n, VN_STATE_SEC_TRANSPORT);
	VN_REQUIRE(t, sec > 0);
	/* guest memory travels separately: the rings */
	for (unsigned int q = 0; q < NQ; q++) {
		VN_REQUIRE_OK(t, vn_gmem_read(s.mem, RING_BASE + 0x10000ull * q, ram, sizeof(ram)));
		VN_REQUIRE_OK(t, vn_gmem_write(d.mem, RING_BASE + 0x10000ull * q, ram, sizeof(ram)));
	}

	/* a destination that decodes nothing yet: the load must turn it on */
	cfg_write(&d, PCI_COMMAND, 2, 0);

	/* refusals, named, before the good load */
	p = sec + VN_STATE_SEC_HDR_LEN;
	memcpy(bad, buf, (size_t)n);
	bad[p + 10] = NQ + 1;
	state_refused(t, &d, bad, (size_t)n, "virtio-pci.nr_queues");
	memcpy(bad, buf, (size_t)n);
	bad[p + 12 + 28 * NQ + PCI_VENDOR_ID] ^= 1;
	state_refused(t, &d, bad, (size_t)n, "virtio-pci.pci_config");
	p += 12 + 28 * NQ + 256 + 4; /* the MSI-X table */
	memcpy(bad, buf, (size_t)n);
	bad[p + PCI_MSIX_ENTRY_VECTOR_CTRL + 1] = 1;
	state_refused(t, &d, bad, (size_t)n, "virtio-pci.msix.table");
	memcpy(bad, buf, (size_t)n);
	bad[p + 16 * (NQ + 1)] |= 1u << (NQ + 1); /* past the last vector */
	state_refused(t, &d, bad, (size_t)n, "virtio-pci.msix.pba");
	memcpy(bad, buf, (size_t)n);
	bad[sec + 4] = 2;
	state_refused(t, &d, bad, (size_t)n, "virtio-pci.version");

	vn_vdev_lock(d.vdev);
	r = vn_state_load(d.vdev, buf, (size_t)n, NULL);
	vn_vdev_unlock(d.vdev);
	VN_REQUIRE_OK(t, r);
	vn_virtio_pci_state_finish(d.vp);
	/* config space, and what follows from it */
	VN_CHECK_EQ_U(t, cfg_read(&d, PCI_BASE_ADDRESS_0, 4), cfg_read(&s, PCI_BASE_ADDRESS_0, 4));
	VN_CHECK_EQ_U(t, cfg_read(&d, PCI_BASE_ADDRESS_4, 4), cfg_read(&s, PCI_BASE_ADDRESS_4, 4));
	VN_CHECK_EQ_U(t, cfg_read(&d, PCI_COMMAND, 2), cfg_read(&s, PCI_COMMAND, 2));
	VN_CHECK_EQ_U(t, cfg_read(&d, cap + PCI_MSIX_FLAGS, 2), PCI_MSIX_FLAGS_ENABLE | NQ);
	VN_CHECK_EQ_U(t, rd(&d, PIO, 0xd000 + VIRTIO_PCI_QUEUE_NUM, 2), NUM); /* BAR0 moved */
	/* registers */
	VN_CHECK_EQ_U(t, rd(&d, MMIO, COMMON(VIRTIO_PCI_COMMON_DFSELECT), 4), 1u);
	VN_CHECK_EQ_U(t, rd(&d, MMIO, COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4), 1u);
	VN_CHECK_EQ_U(t, rd(&d, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2), 1u);
	VN_CHECK_EQ_U(t, rd(&d, MMIO, COMMON(VIRTIO_PCI_COMMON_STATUS), 1),
		      rd(&s, MMIO, COMMON(VIRTIO_PCI_COMMON_STATUS), 1));
	/* MSI-X table and PBA; unmasking the pending vector delivers it here */
	VN_CHECK_EQ_U(t, rd(&d, MMIO, BAR1 + 16 + PCI_MSIX_ENTRY_DATA, 4), 7u);
	VN_CHECK_EQ_U(t, rd(&d, MMIO, BAR1 + 32 + PCI_MSIX_ENTRY_DATA, 4), 9u);
	VN_CHECK_EQ_U(t, rd(&d, MMIO, BAR1 + 32 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 1u);
	VN_CHECK_EQ_U(t, rd(&d, MMIO, BAR1 + 0x800, 8) & 4, 4u);
	drain_irqs(&d);
	wr(&d, MMIO, BAR1 + 32 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 0);
	VN_CHECK(t, irq_wait_clear(&d, 9, 5000));
	/* and the destination serves its queues through the loaded vectors */
	memcpy(d.desc, s.desc, sizeof(d.desc));
	memcpy(d.avail, s.avail, sizeof(d.avail));
	memcpy(d.used, s.used, sizeof(d.used));
	memcpy(d.avail_idx, s.avail_idx, sizeof(d.avail_idx));
	VN_CHECK(t, request(&d, 0) >= 0);
	VN_CHECK(t, irq_wait_clear(&d, 7, 5000));
	vn_machine_resume(s.m);
	fx_fini(&d);
	fx_fini(&s);
}

/* ---- PCI config access capability ---- */

static uint32_t window(struct fx *f, unsigned int cap, unsigned int bar, uint32_t off,
		       uint32_t len, bool write, uint32_t val)
{
	cfg_write(f, cap + VIRTIO_PCI_CAP_BAR, 1, bar);
	cfg_write(f, cap + VIRTIO_PCI_CAP_OFFSET, 4, off);
	cfg_write(f, cap + VIRTIO_PCI_CAP_LENGTH, 4, len);
	if (write) {
		cfg_write(f, cap + sizeof(struct virtio_pci_cap), len, val);
		return 0;
	}
	return cfg_read(f, cap + sizeof(struct virtio_pci_cap),
			len == 1 || len == 2 ? len : 4);
}

static void test_pci_cfg_window(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	struct vn_hostnotif_stats hs;
	unsigned int cap;
	uint64_t bad;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	cap = find_vcap(&f, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);
	VN_REQUIRE(t, cap != 0);
	/* Reads: the same registers as through the BAR. */
	VN_CHECK_EQ_U(t, window(&f, cap, 4, VIRTIO_PCI_COMMON_NUMQ, 2, false, 0), NQ);
	VN_CHECK_EQ_U(t, window(&f, cap, 4, VIRTIO_PCI_COMMON_DF, 4, false, 0),
		      rd(&f, MMIO, COMMON(VIRTIO_PCI_COMMON_DF), 4));
	VN_CHECK_EQ_U(t, window(&f, cap, 0, VIRTIO_PCI_HOST_FEATURES, 4, false, 0),
		      (uint32_t)DEV_FEATURES);
	/* Writes: status through the window. */
	window(&f, cap, 4, VIRTIO_PCI_COMMON_STATUS, 1, true, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	VN_CHECK_EQ_U(t, vn_vdev_get_status(f.vdev), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	/* It works with decode off too (it is config space). */
	cfg_write(&f, PCI_COMMAND, 2, 0);
	VN_CHECK_EQ_U(t, window(&f, cap, 4, VIRTIO_PCI_COMMON_STATUS, 1, false, 0),
		      VIRTIO_CONFIG_S_ACKNOWLEDGE);
	fx_firmware(&f);
	/* A doorbell through the window while ASSIGNED: forwarded, served on the iothread. */
	modern_driver(&f, true);
	VN_CHECK_EQ_INT(t, st(&f, 1), VN_HOSTNOTIF_ASSIGNED);
	add_req(&f, 1);
	window(&f, cap, 4, VN_VIRTIO_PCI_NOTIFY_OFF + 4, 2, true, 1);
	VN_CHECK(t, VN_WAIT_FOR(done(&f, 1), 5000));
	VN_CHECK_EQ_INT(t, f.on_iothread[1], 1);
	vn_hostnotif_get_stats(vn_virtio_pci_hostnotif(f.vp), &hs);
	VN_CHECK(t, hs.forwarded >= 1);
	/* Bad windows: length 3, unaligned, out of the BAR, a missing BAR. */
	bad = bad_count(&f);
	(void)window(&f, cap, 4, 0, 3, false, 0);
	window(&f, cap, 4, 1, 2, false, 0);
	window(&f, cap, 4, 0x10000, 4, false, 0);
	window(&f, cap, 2, 0, 4, true, 0);
	window(&f, cap, 200, 0, 4, true, 0);
	VN_CHECK(t, bad_count(&f) >= bad + 5);
	fx_fini(&f);
}

/* ---- removal and threads ---- */

static void test_remove_while_assigned(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	struct fx f;
	int fds;

	fds = vn_t_count_fds();
	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	modern_driver(&f, true);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_IOEVENTFD);
	vn_virtio_pci_remove(f.vp);
	f.vp = NULL;
	/* The racing kick was served before removal returned. */
	VN_CHECK(t, done(&f, 0));
	/* The device lost the machine's RAM with its transport, and was reset. */
	VN_CHECK(t, vn_vdev_mem(f.vdev) == NULL);
	VN_CHECK_EQ_U(t, vn_vdev_get_status(f.vdev), 0);
	VN_CHECK(t, !vn_vq_is_ready(vn_vdev_queue(f.vdev, 0)));
	VN_CHECK_EQ_U(t, cfg_read(&f, PCI_VENDOR_ID, 4), 0xffffffffu);
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, notify_addr(&f, 0), 2, 0), VN_BUS_UNASSIGNED);
	fx_fini(&f);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds);
}

struct hammer {
	struct fx *f;
	int id;
	volatile bool *stop;
};

static void *hammer_fn(void *opaque)
{
	struct hammer *h = opaque;
	struct fx *f = h->f;
	uint64_t v;

	for (unsigned int i = 0; !__atomic_load_n(h->stop, __ATOMIC_RELAXED); i++) {
		(void)vn_bus_read(f->bus, MMIO, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, &v);
		(void)vn_bus_write(f->bus, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, i & 1);
		(void)vn_bus_read(f->bus, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, &v);
		(void)vn_bus_read(f->bus, MMIO, BAR4 + VN_VIRTIO_PCI_DEVICE_OFF, 4, &v);
		(void)vn_bus_read(f->bus, MMIO, BAR1 + 0x800, 8, &v);
		(void)vn_bus_read(f->bus, PIO, BAR0 + VIRTIO_PCI_ISR, 1, &v);
		(void)vn_bus_write(f->bus, PIO, 0xcf8, 4, conf_addr(PCI_COMMAND));
		(void)vn_bus_read(f->bus, PIO, 0xcfc, 2, &v);
	}
	return NULL;
}

static void test_concurrent_register_access(struct vn_t *t)
{
	struct fx_opts o = { 0 };
	volatile bool stop = false;
	struct hammer h[2];
	pthread_t th[2];
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, &o) == 0);
	modern_driver(&f, true);
	for (int i = 0; i < 2; i++) {
		h[i] = (struct hammer){ .f = &f, .id = i, .stop = &stop };
		VN_REQUIRE(t, pthread_create(&th[i], NULL, hammer_fn, &h[i]) == 0);
	}
	/* Meanwhile the "vCPU" kicks, toggles bus master and moves a BAR. */
	for (int i = 0; i < 50; i++) {
		VN_CHECK(t, request(&f, i & 1) >= 0);
		cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
		add_req(&f, 0);
		(void)kick(&f, 0); /* dropped: no bus master */
		cfg_write(&f, PCI_BASE_ADDRESS_0, 4, (i & 2) ? 0xd000 : BAR0);
		cfg_write(&f, PCI_COMMAND, 2,
			  PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
		/* ...and served once bus master is back. */
		VN_CHECK(t, VN_WAIT_FOR(done(&f, 0), 5000));
	}
	__atomic_store_n(&stop, true, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	fx_fini(&f);
}

VN_TESTS(VN_TEST(test_ids_and_caps), VN_TEST(test_bad_cfg), VN_TEST(test_legacy_registers),
	 VN_TEST(test_common_config), VN_TEST(test_legacy_doorbell_datamatch),
	 VN_TEST(test_modern_notify_multiplier), VN_TEST(test_ioeventfd_off_runs_on_caller),
	 VN_TEST(test_notification_data), VN_TEST(test_grab_stops_consumption_at_once),
	 VN_TEST(test_ioeventfd_limit_falls_back), VN_TEST(test_queue_pfn_zero_resets),
	 VN_TEST(test_bus_master), VN_TEST(test_bus_master_bug), VN_TEST(test_machine_reset),
	 VN_TEST(test_ioeventfd_type_default), VN_TEST(test_bar_move_reregisters),
	 VN_TEST(test_pause_resume), VN_TEST(test_msix_routing),
	 VN_TEST(test_state_transport_section), VN_TEST(test_pci_cfg_window),
	 VN_TEST(test_remove_while_assigned), VN_TEST(test_concurrent_register_access))
