/* SPDX-License-Identifier: MIT */
/*
 * virtio-pci with the hot-write promoter on its BARs (docs/design.md "The
 * promoter"), on the soft machine: the promoter never takes a doorbell,
 * honours ioeventfd=off, and loses its dynamic ioeventfds at device reset
 * without waiting for the iothread under the device lock; and a queue a
 * vhost backend holds follows a BAR move. Each test is a reproduction of
 * issue 13 that failed before the rule it checks.
 */
#include "transport/virtio-pci.h"

#include <linux/pci_regs.h>
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <vnotify/bus.h>
#include <vnotify/iothread.h>
#include <vnotify/log.h>
#include <vnotify/loop.h>
#include <vnotify/machine.h>
#include <vnotify/notifier.h>
#include <vnotify/pci.h>

#include "harness.h"
#include "hw/machine.h"
#include "mem/gmem.h"
#include "virtio/hostnotif.h"
#include "virtio/vdev.h"

#define NQ 2
#define NUM 64
#define SLOT 3
#define BAR0 0xc000u
#define BAR1 0xe0000000u
#define BAR4 0xe0100000ull
#define NEWBAR4 0xe0200000ull
#define RING_BASE 0x100000ull
#define BUF 0x200000ull
#define MULT 4u
#define COMMON(off) (BAR4 + VN_VIRTIO_PCI_COMMON_OFF + (off))
#define DEVCFG (BAR4 + VN_VIRTIO_PCI_DEVICE_OFF)
#define PIO VN_SPACE_PIO
#define MMIO VN_SPACE_MMIO
#define HITS VN_PROMOTER_HITS_DEFAULT

struct fx {
	struct vn_machine *m;
	struct vn_bus *bus;
	struct vn_gmem *mem;
	struct vn_iothread *it;
	struct vn_vdev *vdev;
	struct vn_virtio_pci *vp;
	bool legacy;
	uint64_t desc[NQ], avail[NQ], used[NQ];
	uint16_t avail_idx[NQ];
	int on_iothread[NQ];
	int notify_errors;
};

/* The echo device: completes every request, remembers where it ran. */
static void fx_handler(struct vn_vdev *vdev, struct vn_vq *vq)
{
	struct fx *f = vn_vdev_opaque(vdev);
	unsigned int q = vn_vq_index(vq);
	struct iovec iov[4];
	struct vn_vq_elem e = { .iov = iov, .iov_cap = 4 };
	unsigned int n = 0;

	while (vn_vq_pop(vq, &e) > 0) {
		if (vn_vq_push(vq, e.head, 0) < 0)
			break;
		n++;
	}
	if (n)
		__atomic_store_n(&f->on_iothread[q], vn_loop_in_thread(vn_iothread_loop(f->it)),
				 __ATOMIC_RELAXED);
	if (n && vn_vdev_notify_queue(vdev, vq) < 0)
		__atomic_fetch_add(&f->notify_errors, 1, __ATOMIC_RELAXED);
}

/* Device config is writable: the promoter's idempotent target here. */
static int fx_config_write(struct vn_vdev *vdev, uint32_t off, const void *buf, uint32_t len)
{
	return vn_vdev_config_update(vdev, off, buf, len);
}

static const struct vn_vdev_ops fx_ops = { .config_write = fx_config_write };

static void cfg_write(struct fx *f, unsigned int reg, unsigned int size, uint32_t val)
{
	VN_BUG_ON(vn_bus_write(f->bus, PIO, 0xcf8, 4, 0x80000000u | (SLOT << 11) | (reg & 0xfc)) < 0);
	VN_BUG_ON(vn_bus_write(f->bus, PIO, 0xcfc + (reg & 3), size, val) < 0);
}

static int wr(struct fx *f, enum vn_space sp, uint64_t a, unsigned int size, uint64_t v)
{
	return vn_bus_write(f->bus, sp, a, size, v);
}

static uint64_t rd(struct fx *f, enum vn_space sp, uint64_t a, unsigned int size)
{
	uint64_t v = 0;

	VN_BUG_ON(vn_bus_read(f->bus, sp, a, size, &v) < 0);
	return v;
}

static const uint16_t CMD_ALL = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;

static unsigned int fx_max_ioeventfds; /* the machine option, 0: default */

static int fx_init(struct vn_t *t, struct fx *f, bool ioeventfd)
{
	struct vn_machine_cfg mcfg;
	struct vn_iothread_cfg icfg = { .name = "pci-io" };
	struct vn_virtio_pci_cfg pcfg;
	struct vn_promoter_cfg pro;
	struct vn_vdev_cfg dcfg = {
		.name = "echo", .device_id = 2, .ops = &fx_ops, .opaque = f,
		.features = 0, .nr_queues = NQ, .queue_size_max = NUM, .config_len = 8,
		.nr_vectors = NQ + 1,
	};

	memset(f, 0, sizeof(*f));
	vn_machine_cfg_init(&mcfg);
	mcfg.max_ioeventfds = fx_max_ioeventfds;
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
	pro = (struct vn_promoter_cfg){ .accel = vn_machine_accel(f->m), .iothread = f->it };
	vn_virtio_pci_cfg_init(&pcfg, f->vdev, f->it, SLOT);
	pcfg.ioeventfd = ioeventfd;
	pcfg.notify_off_multiplier = MULT;
	pcfg.promoter = &pro;
	if (!VN_CHECK_OK(t, vn_machine_add_virtio_pci(f->m, &pcfg, &f->vp)))
		return -1;
	cfg_write(f, PCI_BASE_ADDRESS_0, 4, BAR0);
	cfg_write(f, PCI_BASE_ADDRESS_1, 4, BAR1);
	cfg_write(f, PCI_BASE_ADDRESS_4, 4, (uint32_t)BAR4);
	cfg_write(f, PCI_BASE_ADDRESS_5, 4, 0);
	cfg_write(f, PCI_COMMAND, 2, CMD_ALL);
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

static void status(struct fx *f, uint8_t s)
{
	if (f->legacy)
		VN_BUG_ON(wr(f, PIO, BAR0 + VIRTIO_PCI_STATUS, 1, s) < 0);
	else
		VN_BUG_ON(wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_STATUS), 1, s) < 0);
}

#define S_UP (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER)

static void modern_driver(struct fx *f)
{
	f->legacy = false;
	zero_rings(f);
	status(f, 0);
	status(f, S_UP);
	wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_GFSELECT), 4, 1);
	wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_GF), 4, 1); /* VERSION_1 */
	status(f, S_UP | VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned int q = 0; q < NQ; q++) {
		uint64_t base = RING_BASE + 0x10000ull * q;

		f->desc[q] = base;
		f->avail[q] = base + 0x2000;
		f->used[q] = base + 0x3000;
		f->avail_idx[q] = 0;
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SELECT), 2, q);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_SIZE), 2, NUM);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_DESCLO), 4, (uint32_t)f->desc[q]);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_AVAILLO), 4, (uint32_t)f->avail[q]);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_USEDLO), 4, (uint32_t)f->used[q]);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_MSIX), 2, q + 1);
		wr(f, MMIO, COMMON(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
	}
	status(f, S_UP | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
}

static void legacy_driver(struct fx *f)
{
	f->legacy = true;
	zero_rings(f);
	status(f, 0);
	status(f, S_UP);
	for (unsigned int q = 0; q < NQ; q++) {
		uint64_t base = RING_BASE + 0x10000ull * q;

		f->desc[q] = base;
		f->avail[q] = base + 16 * NUM;
		f->used[q] = base + 0x1000;
		f->avail_idx[q] = 0;
		wr(f, PIO, BAR0 + VIRTIO_PCI_QUEUE_SEL, 2, q);
		wr(f, PIO, BAR0 + VIRTIO_PCI_QUEUE_PFN, 4, base >> 12);
	}
	status(f, S_UP | VIRTIO_CONFIG_S_DRIVER_OK);
}

static void add_req(struct fx *f, unsigned int q)
{
	uint16_t slot = f->avail_idx[q] % NUM;
	struct vring_desc d = { .addr = htole64(BUF + 16ull * slot), .len = htole32(16) };
	uint16_t head = htole16(slot);

	VN_BUG_ON(vn_gmem_write(f->mem, f->desc[q] + 16ull * slot, &d, sizeof(d)) != 0);
	VN_BUG_ON(vn_gmem_write(f->mem, f->avail[q] + 4 + 2ull * slot, &head, 2) != 0);
	f->avail_idx[q]++;
	VN_BUG_ON(vn_gmem_store_le16_release(f->mem, f->avail[q] + 2, f->avail_idx[q]) != 0);
}

static uint64_t doorbell_addr(struct fx *f, uint64_t bar4, unsigned int q)
{
	if (f->legacy)
		return BAR0 + VIRTIO_PCI_QUEUE_NOTIFY;
	return bar4 + VN_VIRTIO_PCI_NOTIFY_OFF + (uint64_t)q * MULT;
}

static int kick(struct fx *f, unsigned int q)
{
	return wr(f, f->legacy ? PIO : MMIO, doorbell_addr(f, BAR4, q), 2, q);
}

static bool done(struct fx *f, unsigned int q)
{
	uint16_t v = 0;

	VN_BUG_ON(vn_gmem_load_le16_acquire(f->mem, f->used[q] + 2, &v) != 0);
	return v == f->avail_idx[q];
}

static struct vn_hostnotif *hn(struct fx *f)
{
	return vn_virtio_pci_hostnotif(f->vp);
}

static struct vn_region_stats bar_stats(struct fx *f, unsigned int bar)
{
	struct vn_region_stats s = { 0 };

	vn_region_get_stats(f->vp->func.bar[bar].region, &s);
	return s;
}

static uint64_t fallbacks(struct fx *f)
{
	struct vn_hostnotif_stats s;

	vn_hostnotif_get_stats(hn(f), &s);
	return s.fallbacks;
}

/*
 * (a) Identical doorbells while the queue is DEASSIGNED (bus master off)
 * must not be promoted: the state machine's own assign would then fail
 * with -EEXIST and the device fall back to synchronous notify for good.
 */
static void doorbells_while_deassigned(struct vn_t *t, bool legacy)
{
	unsigned int bar = legacy ? VN_VIRTIO_PCI_BAR_LEGACY : VN_VIRTIO_PCI_BAR_MODERN;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, true) == 0);
	if (legacy)
		legacy_driver(&f);
	else
		modern_driver(&f);
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(hn(&f), 0), VN_HOSTNOTIF_ASSIGNED);
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(hn(&f), 0), VN_HOSTNOTIF_DEASSIGNED);
	for (unsigned int i = 0; i < 3 * HITS; i++)
		VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, bar_stats(&f, bar).promotions, 0u);
	cfg_write(&f, PCI_COMMAND, 2, CMD_ALL);
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(hn(&f), 0), VN_HOSTNOTIF_ASSIGNED);
	VN_CHECK_EQ_U(t, fallbacks(&f), 0u);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_IOEVENTFD);
	VN_CHECK(t, VN_WAIT_FOR(done(&f, 0), 5000));
	fx_fini(&f);
}

static void test_doorbell_never_promoted(struct vn_t *t)
{
	doorbells_while_deassigned(t, false);
	doorbells_while_deassigned(t, true);
}

/* (b) ioeventfd=off: every kick stays a synchronous exit, the 11th too. */
static void test_ioeventfd_off_no_dynamic(struct vn_t *t)
{
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, false) == 0);
	modern_driver(&f);
	for (unsigned int i = 0; i < 3 * HITS; i++) {
		add_req(&f, 0);
		VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_REGION);
		VN_CHECK(t, done(&f, 0));
		VN_CHECK_EQ_INT(t, f.on_iothread[0], 0);
	}
	/* Nor anything else: off is the promoter's off too. */
	for (unsigned int i = 0; i < 3 * HITS; i++)
		VN_CHECK_EQ_INT(t, wr(&f, MMIO, DEVCFG, 1, 0x5a), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, bar_stats(&f, VN_VIRTIO_PCI_BAR_MODERN).promotions, 0u);
	fx_fini(&f);
}

static void promote_devcfg(struct vn_t *t, struct fx *f)
{
	for (unsigned int i = 0; i < HITS; i++)
		VN_CHECK_EQ_INT(t, wr(f, MMIO, DEVCFG, 1, 0x5a), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, bar_stats(f, VN_VIRTIO_PCI_BAR_MODERN).dynamic, 1u);
}

/* (c) A status-0 write drops the dynamic ioeventfds and counting restarts. */
static void test_reset_drops_dynamic(struct vn_t *t)
{
	struct vn_region_stats s;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, true) == 0);
	modern_driver(&f);
	promote_devcfg(t, &f);
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, DEVCFG, 1, 0x5a), VN_BUS_IOEVENTFD);
	VN_CHECK(t, VN_WAIT_FOR(bar_stats(&f, VN_VIRTIO_PCI_BAR_MODERN).replays == 1, 5000));
	VN_CHECK_EQ_U(t, rd(&f, MMIO, DEVCFG, 1), 0x5au); /* the replay reached the device */
	status(&f, 0);
	s = bar_stats(&f, VN_VIRTIO_PCI_BAR_MODERN);
	VN_CHECK_EQ_U(t, s.dynamic, 0u);
	VN_CHECK(t, s.counting);
	/* Synchronous again, and counting from zero: the tenth promotes anew. */
	for (unsigned int i = 0; i < HITS - 1; i++)
		VN_CHECK_EQ_INT(t, wr(&f, MMIO, DEVCFG, 1, 0x5a), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, bar_stats(&f, VN_VIRTIO_PCI_BAR_MODERN).dynamic, 0u);
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, DEVCFG, 1, 0x5a), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, bar_stats(&f, VN_VIRTIO_PCI_BAR_MODERN).dynamic, 1u);
	fx_fini(&f);
}

struct reset_call {
	struct fx *f;
	bool done;
};

/*
 * As a vCPU whose status-0 write races a promoted write: the device lock is
 * held when the promoted write lands, so its replay on the iothread waits
 * for the lock while the reset runs.
 */
static void *reset_fn(void *opaque)
{
	struct reset_call *c = opaque;

	vn_vdev_lock(c->f->vdev);
	VN_BUG_ON(wr(c->f, MMIO, DEVCFG, 1, 0x5a) != VN_BUS_IOEVENTFD);
	usleep(10000); /* let the iothread reach the replay (not needed to pass) */
	vn_virtio_pci_set_status_locked(c->f->vp, 0);
	vn_vdev_unlock(c->f->vdev);
	__atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * The reset runs under the device lock, and a replay takes it: a reset that
 * waited for the iothread would never return. The pending write is still
 * replayed, exactly once.
 */
static void test_reset_does_not_wait_for_iothread(struct vn_t *t)
{
	struct reset_call c;
	pthread_t th;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, true) == 0);
	c = (struct reset_call){ .f = &f };
	modern_driver(&f);
	/* No queue ASSIGNED: the promoter is the reset's only iothread user. */
	cfg_write(&f, PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	promote_devcfg(t, &f);
	VN_REQUIRE(t, pthread_create(&th, NULL, reset_fn, &c) == 0);
	if (!VN_CHECK(t, VN_WAIT_FOR(__atomic_load_n(&c.done, __ATOMIC_ACQUIRE), 5000)))
		_exit(1); /* deadlocked: the threads cannot be joined */
	pthread_join(th, NULL);
	VN_CHECK_EQ_U(t, bar_stats(&f, VN_VIRTIO_PCI_BAR_MODERN).dynamic, 0u);
	VN_CHECK(t, VN_WAIT_FOR(bar_stats(&f, VN_VIRTIO_PCI_BAR_MODERN).replays == 1, 5000));
	/* The next synchronous write finishes the drop: still one replay. */
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, DEVCFG, 1, 0x5a), VN_BUS_REGION);
	VN_CHECK_EQ_U(t, bar_stats(&f, VN_VIRTIO_PCI_BAR_MODERN).replays, 1u);
	fx_fini(&f);
}

/*
 * The watchdog of a test that would deadlock if its rule broke: the
 * threads cannot be joined then, so say why and end the process. The bound
 * only catches a hang; nothing here measures time.
 */
static void deadlock_alarm(int sig)
{
	static const char msg[] = "Bail out! deadlock: a lifecycle call waited for the iothread "
				  "while holding the device lock it needs\n";

	(void)sig;
	(void)!write(STDOUT_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

/*
 * Never wait for the iothread while holding a lock it may need. The
 * iothread's path here takes the device lock: the replay of a promoted
 * device config write (the region callback locks the device). We hold the
 * device lock and make the promoted write, so the iothread is in, or can
 * only next enter, that replay (fd handlers are dispatched before bottom
 * halves, and nothing else is pending on an idle iothread): anything we
 * post to it from here waits behind a replay that waits for us. Then, with
 * every queue ASSIGNED, each lifecycle call runs under the lock: pause and
 * resume, stop and start (bus master), a vhost grab and give-back (the
 * ioeventfd deassigned and assigned again), and reset. One of them waiting
 * for the iothread hangs the test: the alarm ends it as a failure.
 */
static void test_lifecycle_never_waits_for_iothread(struct vn_t *t)
{
	struct sigaction sa = { .sa_handler = deadlock_alarm };
	struct vn_hostnotif *h;
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, true) == 0);
	modern_driver(&f);
	h = hn(&f);
	VN_REQUIRE(t, vn_hostnotif_state(h, 0) == VN_HOSTNOTIF_ASSIGNED &&
			      vn_hostnotif_state(h, 1) == VN_HOSTNOTIF_ASSIGNED);
	promote_devcfg(t, &f);
	vn_hostnotif_sync(h); /* the iothread is idle */
	VN_REQUIRE_OK(t, sigaction(SIGALRM, &sa, NULL));
	alarm(10);

	vn_vdev_lock(f.vdev);
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, DEVCFG, 1, 0x5a), VN_BUS_IOEVENTFD);
	vn_hostnotif_set_running(h, false);
	vn_hostnotif_set_running(h, true);
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(h, 0), VN_HOSTNOTIF_ASSIGNED);
	vn_hostnotif_set_bus_master(h, false);
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(h, 0), VN_HOSTNOTIF_DEASSIGNED);
	vn_hostnotif_set_bus_master(h, true);
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(h, 0), VN_HOSTNOTIF_ASSIGNED);
	VN_CHECK_OK(t, vn_hostnotif_set_host_notifier(h, 1, true));
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(h, 1), VN_HOSTNOTIF_OFFLIMITS);
	VN_CHECK_OK(t, vn_hostnotif_set_host_notifier(h, 1, false));
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(h, 1), VN_HOSTNOTIF_ASSIGNED);
	vn_virtio_pci_set_status_locked(f.vp, 0);
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(h, 0), VN_HOSTNOTIF_DEASSIGNED);
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(h, 1), VN_HOSTNOTIF_DEASSIGNED);
	vn_vdev_unlock(f.vdev);

	/* The replay that waited for the lock has run, once. */
	VN_CHECK(t, VN_WAIT_FOR(bar_stats(&f, VN_VIRTIO_PCI_BAR_MODERN).replays == 1, 5000));
	vn_hostnotif_sync(h);
	alarm(0);
	fx_fini(&f);
}

/*
 * (d) A queue taken by a vhost backend (OFFLIMITS) while the notify BAR
 * moves: given back, its ioeventfd is at the new address, none at the old.
 */
static void test_offlimits_follows_bar_move(struct vn_t *t)
{
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, true) == 0);
	modern_driver(&f);
	vn_vdev_lock(f.vdev);
	VN_CHECK_OK(t, vn_hostnotif_set_host_notifier(hn(&f), 0, true));
	vn_vdev_unlock(f.vdev);
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(hn(&f), 0), VN_HOSTNOTIF_OFFLIMITS);
	cfg_write(&f, PCI_BASE_ADDRESS_4, 4, (uint32_t)NEWBAR4);
	/* The backend's doorbell moved with the BAR. */
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, doorbell_addr(&f, NEWBAR4, 0), 2, 0), VN_BUS_IOEVENTFD);
	vn_vdev_lock(f.vdev);
	VN_CHECK_OK(t, vn_hostnotif_set_host_notifier(hn(&f), 0, false));
	vn_vdev_unlock(f.vdev);
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(hn(&f), 0), VN_HOSTNOTIF_ASSIGNED);
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, doorbell_addr(&f, BAR4, 0), 2, 0), VN_BUS_UNASSIGNED);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, doorbell_addr(&f, NEWBAR4, 0), 2, 0), VN_BUS_IOEVENTFD);
	VN_CHECK(t, VN_WAIT_FOR(done(&f, 0), 5000));
	fx_fini(&f);
}

/* The MSI-X BAR is never promoted: the same mask write again and again. */
static void test_msix_never_promoted(struct vn_t *t)
{
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, true) == 0);
	modern_driver(&f);
	for (unsigned int i = 0; i < 3 * HITS; i++)
		VN_CHECK_EQ_INT(t, wr(&f, MMIO, BAR1 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4, 1),
				VN_BUS_REGION);
	VN_CHECK_EQ_U(t, bar_stats(&f, VN_VIRTIO_PCI_BAR_MSIX).promotions, 0u);
	fx_fini(&f);
}

static pthread_mutex_t trace_lock = PTHREAD_MUTEX_INITIALIZER;
static char trace_buf[8192];

static void trace_sink(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
	size_t n;

	if (strcmp(tag, "trace"))
		return;
	pthread_mutex_lock(&trace_lock);
	n = strlen(trace_buf);
	snprintf(trace_buf + n, sizeof(trace_buf) - n, "%s\n", msg);
	pthread_mutex_unlock(&trace_lock);
}

static bool traced(const char *line)
{
	bool r;

	pthread_mutex_lock(&trace_lock);
	r = strstr(trace_buf, line) != NULL;
	pthread_mutex_unlock(&trace_lock);
	return r;
}

/* Each promoter trace point names its entry: region, addr, size, data. */
static void test_trace_points_carry_the_entry(struct vn_t *t)
{
	char want[128];
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, true) == 0);
	modern_driver(&f);
	trace_buf[0] = '\0';
	vn_log_set_sink(trace_sink, NULL);
	VN_CHECK(t, vn_trace_enable("promoter_*") > 0);
	promote_devcfg(t, &f);
	VN_CHECK_EQ_INT(t, wr(&f, MMIO, DEVCFG, 1, 0x5a), VN_BUS_IOEVENTFD);
	VN_CHECK(t, VN_WAIT_FOR(bar_stats(&f, VN_VIRTIO_PCI_BAR_MODERN).replays == 1, 5000));
	status(&f, 0);
	snprintf(want, sizeof(want), "region=virtio-modern addr=0x%llx size=1 data=0x5a",
		 (unsigned long long)DEVCFG);
	for (unsigned int i = 0; i < 3; i++) {
		static const char *const names[] = {"promoter_promote ", "promoter_replay ",
						    "promoter_drop "};
		char line[192];

		snprintf(line, sizeof(line), "%s%s", names[i], want);
		if (!VN_CHECK(t, traced(line)))
			vn_t_diag("missing \"%s\" in:\n%s", line, trace_buf);
	}
	(void)vn_trace_enable("");
	vn_log_set_sink(NULL, NULL);
	fx_fini(&f);
}

/* The public notifier view: states, sources and a fallback with its reason. */
static void test_notifier_info(struct vn_t *t)
{
	struct vn_notifier_queue_info qi;
	struct vn_notifier_info ni;
	struct vn_ioev fill = { .space = VN_SPACE_MMIO, .len = 4 };
	struct fx f;

	VN_REQUIRE(t, fx_init(t, &f, true) == 0);
	modern_driver(&f);
	vn_virtio_pci_notifier_info(f.vp, &ni);
	VN_CHECK(t, ni.ioeventfd);
	VN_CHECK_EQ_U(t, ni.fallbacks, 0u);
	VN_CHECK_EQ_U(t, ni.nr_queues, NQ);
	VN_CHECK_OK(t, vn_virtio_pci_queue_notifier_info(f.vp, 0, &qi));
	VN_CHECK(t, !strcmp(qi.state, "assigned") && !strcmp(qi.source, "ioeventfd"));
	VN_CHECK_EQ_INT(t, vn_virtio_pci_queue_notifier_info(f.vp, NQ, &qi), -EINVAL);
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_IOEVENTFD);
	VN_CHECK(t, VN_WAIT_FOR(done(&f, 0), 5000));
	vn_virtio_pci_notifier_info(f.vp, &ni);
	VN_CHECK_EQ_U(t, ni.doorbells_exited, 0u);
	fx_fini(&f);

	/*
	 * Room for one ioeventfd, two queues: a fallback, and it says why. The
	 * bus is one bigger than the old kernels' 6 (smaller ones never try)
	 * with all slots but one taken.
	 */
	fx_max_ioeventfds = VN_IOEV_LIMIT_OLD_KERNEL + 1;
	VN_REQUIRE(t, fx_init(t, &f, true) == 0);
	fx_max_ioeventfds = 0;
	fill.fd = eventfd(0, EFD_CLOEXEC);
	VN_REQUIRE(t, fill.fd >= 0);
	for (unsigned int i = 0; i < VN_IOEV_LIMIT_OLD_KERNEL; i++) {
		fill.addr = 0xf0000000ull + 4 * i;
		VN_CHECK_OK(t, vn_accel_assign(vn_machine_accel(f.m), &fill));
	}
	modern_driver(&f);
	vn_virtio_pci_notifier_info(f.vp, &ni);
	VN_CHECK(t, !ni.ioeventfd);
	VN_CHECK_EQ_U(t, ni.fallbacks, 1u);
	VN_CHECK(t, ni.fallback_err < 0);
	VN_CHECK_EQ_U(t, ni.fallback_queue, 1u);
	VN_CHECK_OK(t, vn_virtio_pci_queue_notifier_info(f.vp, 1, &qi));
	VN_CHECK(t, !strcmp(qi.state, "deassigned") && !strcmp(qi.source, "doorbell"));
	add_req(&f, 0);
	VN_CHECK_EQ_INT(t, kick(&f, 0), VN_BUS_REGION);
	vn_virtio_pci_notifier_info(f.vp, &ni);
	VN_CHECK_EQ_U(t, ni.doorbells_exited, 1u);
	for (unsigned int i = 0; i < VN_IOEV_LIMIT_OLD_KERNEL; i++) {
		fill.addr = 0xf0000000ull + 4 * i;
		VN_CHECK_OK(t, vn_accel_deassign(vn_machine_accel(f.m), &fill));
	}
	close(fill.fd);
	fx_fini(&f);
}

VN_TESTS(VN_TEST(test_doorbell_never_promoted), VN_TEST(test_ioeventfd_off_no_dynamic),
	 VN_TEST(test_reset_drops_dynamic), VN_TEST(test_reset_does_not_wait_for_iothread),
	 VN_TEST(test_lifecycle_never_waits_for_iothread), VN_TEST(test_offlimits_follows_bar_move),
	 VN_TEST(test_msix_never_promoted), VN_TEST(test_trace_points_carry_the_entry),
	 VN_TEST(test_notifier_info))
