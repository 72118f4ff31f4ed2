/* SPDX-License-Identifier: MIT */
/*
 * The guest driver (src/guest/) against virtio-blk on virtio-pci on the soft
 * machine, over a temporary image file. Every register access and doorbell
 * goes through the machine's bus, so kicks hit the ioeventfd (iothread) or
 * the synchronous exit (device lock) exactly as a VM's would, and the
 * driver's interrupts are the machine's MSI eventfds.
 *
 * The driver sees guest RAM through its own mapping of the machine's memfd
 * (other host addresses than the device's), as a real guest would.
 *
 * What each case proves:
 *  - rw_*: several vCPU threads, one queue each, write distinct patterns
 *    across the disk and read them back verified, on modern / legacy /
 *    modern-only transports, with ioeventfd on and off, with and without
 *    EVENT_IDX and indirect descriptors, notify_off_multiplier 4 and 0.
 *    With ioeventfd on, doorbells are taken by ioeventfds; with it off,
 *    none are.
 *  - reset_inflight: a reset while every vCPU has requests in flight (held
 *    by a slow-disk fault): every request either completes or is aborted,
 *    none is lost or doubled, ASan sees no use after free, and after
 *    re-init every queue works again (no lost kick).
 *  - bus_master: clearing bus master mid-run stops the host notifiers;
 *    setting it again (DRIVER_OK still set) restarts them and I/O goes on.
 *  - malformed_*: each malformed request sent from the driver side puts
 *    the device into NEEDS_RESET with a config interrupt, and a re-init
 *    brings it back; unknown types and out-of-range sectors do not.
 *  - ioerr: an injected host error fails that request alone with IOERR.
 *  - flush_visible: data written then flushed is in the image file as
 *    another process reads it.
 */
#include <endian.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include <vnotify/blk.h>
#include <vnotify/bus.h>
#include <vnotify/iothread.h>
#include <vnotify/log.h>
#include <vnotify/machine.h>
#include <vnotify/pci.h>

#include "harness.h"
#include "base/log.h"
#include "guest/rig.h"
#include "guest/vdrv-blk.h"
#include "guest/vdrv-pci.h"
#include "guest/vdrv-vcpu.h"
#include "hw/machine.h"
#include "mem/gmem.h"
#include "transport/virtio-pci.h"
#include "virtio/hostnotif.h"

#define F(b) (1ull << (b))
#define SECT 512u
#define DISK_BYTES (2u << 20) /* 4096 sectors */
#define MAX_DEPTH 16
#define MAX_Q 4
#define WAIT_MS 50
#define STALL_NS (10ull * 1000000000ull) /* no progress this long: a lost kick */
#define BLK_SLOT 3

/* ---- the rig: machine + iothread + virtio-blk + virtio-pci + driver ---- */

struct rig_opts {
	bool modern_only;
	enum vn_vdrv_pci_mode mode;
	bool ioeventfd;
	bool mult_zero;	   /* notify_off_multiplier 0 (shared notify address) */
	uint64_t features; /* the driver's; 0 for its default */
	unsigned int nq;
	unsigned int seg_max; /* device's; 0 for its default */
	unsigned int nio;     /* iothreads; 0 for 1 */
	bool spread;	      /* queue q on iothread q % nio (notifier and completions) */
};

struct rig {
	char path[64];
	struct vn_rig r;
	struct rig_opts o;
};

static void quiet_sink(void *o, enum vn_log_level l, const char *tag, const char *msg)
{
	if (l <= VN_LOG_ERR)
		fprintf(stderr, "%s: %s\n", tag, msg);
}

static int rig_driver_up(struct vn_t *t, struct rig *g)
{
	struct vn_vdrv_blk_cfg bc = {
		.mode = g->o.mode,
		.features = g->o.features,
		.nr_queues = g->o.nq,
		.queue_size = 64,
		.max_segs = 8,
	};
	int slot;

	if (!VN_CHECK_EQ_INT(t, vn_rig_scan(&g->r), 2)) /* host bridge + blk */
		return -1;
	slot = vn_vdrv_pci_find(g->r.env, VN_VIRTIO_PCI_VENDOR, g->o.modern_only ? 0x1042 : 0x1001,
				0);
	if (!VN_CHECK_EQ_INT(t, slot, BLK_SLOT))
		return -1;
	bc.slot = (unsigned int)slot;
	if (!VN_CHECK_OK(t, vn_rig_driver_new(&g->r, &bc)))
		return -1;
	if (!VN_CHECK_EQ_U(t, vn_vdrv_blk_get_info(g->r.drv)->capacity, DISK_BYTES / SECT) ||
	    !VN_CHECK_EQ_U(t, vn_vdrv_blk_nr_queues(g->r.drv), g->o.nq))
		return -1;
	return 0;
}

static int rig_init(struct vn_t *t, struct rig *g, const struct rig_opts *o)
{
	struct vn_rig_cfg rc = {
		.nr_iothreads = o->nio ? o->nio : 1,
		.iothread_name = "blk-io",
		.spread_queues = o->spread,
		.blk = {
			.name = "blk0",
			.fd = -1,
			.nr_queues = o->nq,
			.queue_size = 64,
			.serial = "vnotify-test-serial",
			.seg_max = o->seg_max,
		},
		.blk_iothread = -1,
		/* The guest's own mapping of RAM: other host addresses than the device's. */
		.drv_own_mapping = true,
	};
	int fd;

	memset(g, 0, sizeof(*g));
	g->o = *o;
	vn_log_set_sink(quiet_sink, NULL);
	snprintf(g->path, sizeof(g->path), "/tmp/vn-pci-blk-XXXXXX");
	fd = mkstemp(g->path);
	if (!VN_CHECK(t, fd >= 0))
		return -1;
	if (!VN_CHECK_OK(t, ftruncate(fd, DISK_BYTES))) {
		close(fd);
		return -1;
	}
	close(fd);
	rc.blk.path = g->path;
	vn_virtio_pci_cfg_init(&rc.pci, NULL, NULL, BLK_SLOT);
	rc.pci.modern_only = o->modern_only;
	rc.pci.ioeventfd = o->ioeventfd;
	if (o->mult_zero)
		rc.pci.notify_off_multiplier = 0;
	if (!VN_CHECK_OK(t, vn_rig_init(&rc, &g->r)))
		return -1;
	return rig_driver_up(t, g);
}

static void rig_fini(struct rig *g)
{
	vn_rig_destroy(&g->r);
	if (g->path[0])
		unlink(g->path);
	vn_log_set_sink(NULL, NULL);
}

static uint8_t status_of(struct rig *g)
{
	return vn_vdrv_pci_get_status(vn_vdrv_blk_pci(g->r.drv));
}

/* ---- data patterns: a pure function of (seed, sector), so anyone can check ---- */

static void fill_sector(uint8_t *p, uint32_t seed, uint64_t sector)
{
	for (unsigned int w = 0; w < SECT / 8; w++) {
		uint64_t v = ((uint64_t)seed << 40) ^ (sector << 12) ^ w ^ 0x5a5a000000000000ull;

		memcpy(p + 8 * w, &v, 8);
	}
}

static bool check_sector(const uint8_t *p, uint32_t seed, uint64_t sector)
{
	uint8_t want[SECT];

	fill_sector(want, seed, sector);
	return memcmp(p, want, SECT) == 0;
}

/* ---- a vCPU's job: stream requests over a range of sectors ---- */

struct io_tok {
	unsigned int idx;
	uint64_t sector;
};

struct job {
	struct rig *g;
	unsigned int q;
	uint64_t first, nsect; /* the range */
	unsigned int bs;       /* bytes per request, a multiple of 512 */
	unsigned int depth;
	uint32_t seed;
	bool write;
	bool until_stop; /* wrap around the range until told to stop */
	uint64_t bufs_gpa;
	uint8_t *bufs;
	struct io_tok tok[MAX_DEPTH];
	unsigned int tfree[MAX_DEPTH], ntfree;
	/* results */
	uint64_t submitted, done, ok, aborted, bad_status, bad_data;
	int err;
	struct vn_vdrv_blkq_stats st;
	struct vn_vdrv_vcpu *vcpu;
};

static int job_prepare(struct vn_t *t, struct job *j, struct rig *g, unsigned int q)
{
	uint64_t bytes = (uint64_t)MAX_DEPTH * 4096;

	memset(j, 0, sizeof(*j));
	j->g = g;
	j->q = q;
	j->bs = 4096;
	j->depth = 8;
	if (!VN_CHECK_OK(t, vn_vdrv_env_alloc(g->r.env, bytes, 4096, &j->bufs_gpa)))
		return -1;
	j->bufs = vn_vdrv_env_ptr(g->r.env, j->bufs_gpa, bytes);
	return VN_CHECK(t, j->bufs != NULL) ? 0 : -1;
}

static void job_reset_tokens(struct job *j)
{
	j->ntfree = 0;
	for (unsigned int i = 0; i < j->depth; i++) {
		j->tok[i].idx = i;
		j->tfree[j->ntfree++] = j->depth - 1 - i;
	}
}

static void job_complete(struct job *j, const struct vn_vdrv_blk_done *d)
{
	struct io_tok *tk = d->token;
	uint8_t *buf = j->bufs + (size_t)tk->idx * j->bs;

	/* Atomic: the main thread watches progress (sum_done()). */
	__atomic_store_n(&j->done, j->done + 1, __ATOMIC_RELAXED);
	if (d->status == VIRTIO_BLK_S_OK) {
		j->ok++;
		for (unsigned int s = 0; !j->write && s < j->bs / SECT; s++)
			if (!check_sector(buf + (size_t)s * SECT, j->seed, tk->sector + s))
				j->bad_data++;
	} else if (d->status == VN_VDRV_BLK_S_ABORTED) {
		j->aborted++;
	} else {
		j->bad_status++;
	}
	j->tfree[j->ntfree++] = tk->idx;
}

static int job_submit_one(struct job *j, struct vn_vdrv_blkq *q, uint64_t n)
{
	unsigned int spr = j->bs / SECT, idx = j->tfree[j->ntfree - 1];
	struct io_tok *tk = &j->tok[idx];
	uint64_t nreq = j->nsect / spr, gpa = j->bufs_gpa + (uint64_t)idx * j->bs;
	uint8_t *buf = j->bufs + (size_t)idx * j->bs;
	struct vn_vdrv_buf segs[2];
	struct vn_vdrv_blk_io io = {
		.type = j->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
		.segs = segs,
		.token = tk,
	};
	int r;

	tk->sector = j->first + (n % nreq) * spr;
	io.sector = tk->sector;
	for (unsigned int s = 0; s < spr; s++) {
		if (j->write)
			fill_sector(buf + (size_t)s * SECT, j->seed, tk->sector + s);
		else
			memset(buf + (size_t)s * SECT, 0xee, SECT);
	}
	/* Every other request in two segments, so chains of 4 descriptors occur. */
	if ((n & 1) && j->bs >= 2 * SECT) {
		segs[0] = (struct vn_vdrv_buf){.gpa = gpa, .len = j->bs / 2};
		segs[1] = (struct vn_vdrv_buf){.gpa = gpa + j->bs / 2, .len = j->bs / 2};
		io.nsegs = 2;
	} else {
		segs[0] = (struct vn_vdrv_buf){.gpa = gpa, .len = j->bs};
		io.nsegs = 1;
	}
	r = vn_vdrv_blkq_submit(q, &io);
	if (r == 0) {
		j->ntfree--;
		j->submitted++;
	}
	return r;
}

static int job_run(struct vn_vdrv_vcpu *vcpu, void *arg)
{
	struct job *j = arg;
	struct vn_vdrv_blkq *q = vn_vdrv_blk_queue(j->g->r.drv, j->q);
	uint64_t nreq = j->nsect / (j->bs / SECT), next = 0, last = vn_now_ns();
	struct vn_vdrv_blk_done d[MAX_DEPTH];
	int r = 0, n;

	job_reset_tokens(j);
	for (;;) {
		if (j->until_stop ? vn_vdrv_vcpu_should_stop(vcpu) : j->done >= nreq)
			break;
		while (j->ntfree && (j->until_stop || next < nreq)) {
			r = job_submit_one(j, q, next);
			if (r == -ENOSPC)
				break;
			if (r < 0)
				goto out;
			next++;
		}
		r = vn_vdrv_blkq_kick(q);
		if (r < 0)
			goto out;
		n = vn_vdrv_blkq_reap(q, d, MAX_DEPTH);
		if (n < 0) {
			r = n;
			goto out;
		}
		for (int i = 0; i < n; i++)
			job_complete(j, &d[i]);
		if (n > 0) {
			last = vn_now_ns();
			continue;
		}
		r = vn_vdrv_blkq_wait(q, WAIT_MS);
		if (r < 0)
			goto out;
		if (!j->until_stop && vn_now_ns() - last > STALL_NS) {
			r = -ETIMEDOUT;
			goto out;
		}
	}
	r = 0;
out:
	vn_vdrv_blkq_get_stats(q, &j->st);
	j->err = r;
	return r;
}

/* Run one job per queue on vCPU threads at once and wait for them. */
static void run_jobs(struct vn_t *t, struct job *jobs, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		VN_CHECK_OK(t, vn_vdrv_vcpu_start(i, job_run, &jobs[i], &jobs[i].vcpu));
	for (unsigned int i = 0; i < n; i++) {
		VN_CHECK_OK(t, vn_vdrv_vcpu_join(jobs[i].vcpu));
		jobs[i].vcpu = NULL;
	}
}

/* Each queue writes its own slice of the whole disk, then reads it back. */
static void write_verify_all(struct vn_t *t, struct rig *g, struct job *jobs, uint32_t seed)
{
	unsigned int nq = g->o.nq;
	uint64_t slice = (DISK_BYTES / SECT) / nq;

	for (int pass = 0; pass < 2; pass++) {
		for (unsigned int i = 0; i < nq; i++) {
			jobs[i].first = slice * i;
			jobs[i].nsect = slice;
			jobs[i].seed = seed + i;
			jobs[i].write = pass == 0;
			jobs[i].until_stop = false;
			jobs[i].done = jobs[i].ok = jobs[i].bad_status = jobs[i].bad_data = 0;
			jobs[i].aborted = 0;
		}
		run_jobs(t, jobs, nq);
		for (unsigned int i = 0; i < nq; i++) {
			struct job *j = &jobs[i];

			VN_CHECK_EQ_INT(t, j->err, 0);
			VN_CHECK_EQ_U(t, j->ok, slice / (j->bs / SECT));
			VN_CHECK_EQ_U(t, j->bad_status, 0);
			VN_CHECK_EQ_U(t, j->bad_data, 0);
		}
	}
}

/* ---- rw: patterns across the disk, per transport and notify mode ---- */

/*
 * NOTIFICATION_DATA is offered exactly when ioeventfd is off (an ioeventfd
 * loses the value); a modern driver that wants it negotiates it, and then
 * every doorbell carries an avail idx the ring has published.
 */
static void check_notify_data(struct vn_t *t, struct rig *g, const struct rig_opts *o,
			      uint64_t kicks)
{
	uint64_t nd = F(VN_VIRTIO_F_NOTIFICATION_DATA);
	uint64_t wanted = o->features ? o->features : VN_VDRV_BLK_FEATURES_DEFAULT;
	bool neg = !o->ioeventfd && o->mode == VN_VDRV_PCI_MODERN && (wanted & nd);
	struct vn_virtio_pci_stats st;

	VN_CHECK_EQ_U(t, vn_vdev_device_features(vn_blk_vdev(g->r.blk)) & nd,
		      o->ioeventfd ? 0 : nd);
	VN_CHECK_EQ_U(t, vn_vdrv_blk_get_info(g->r.drv)->features & nd, neg ? nd : 0);
	vn_virtio_pci_get_stats(g->r.vp, &st);
	VN_CHECK_EQ_U(t, st.notify_data, neg ? kicks : 0);
	VN_CHECK_EQ_U(t, st.notify_data_ahead, 0);
	VN_CHECK_EQ_U(t, st.bad_accesses, 0);
}

static void rw_case(struct vn_t *t, const struct rig_opts *o)
{
	struct job jobs[MAX_Q];
	struct rig g;
	uint64_t kicks = 0, kicks_ioev = 0;

	if (rig_init(t, &g, o) < 0)
		goto out;
	for (unsigned int i = 0; i < o->nq; i++)
		if (job_prepare(t, &jobs[i], &g, i) < 0)
			goto out;
	write_verify_all(t, &g, jobs, 0x100);
	for (unsigned int i = 0; i < o->nq; i++) {
		kicks += jobs[i].st.kicks;
		kicks_ioev += jobs[i].st.kicks_ioeventfd;
	}
	VN_CHECK(t, kicks > 0);
	if (o->ioeventfd)
		VN_CHECK_EQ_U(t, kicks_ioev, kicks);
	else
		VN_CHECK_EQ_U(t, kicks_ioev, 0);
	VN_CHECK_EQ_U(t, status_of(&g) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
	check_notify_data(t, &g, o, kicks);
out:
	rig_fini(&g);
}

static void test_rw_modern_ioeventfd(struct vn_t *t)
{
	rw_case(t, &(struct rig_opts){.mode = VN_VDRV_PCI_MODERN, .ioeventfd = true, .nq = 4});
}

static void test_rw_modern_sync(struct vn_t *t)
{
	rw_case(t, &(struct rig_opts){.mode = VN_VDRV_PCI_MODERN, .ioeventfd = false, .nq = 4});
}

static void test_rw_legacy_ioeventfd(struct vn_t *t)
{
	rw_case(t, &(struct rig_opts){.mode = VN_VDRV_PCI_LEGACY, .ioeventfd = true, .nq = 4});
}

static void test_rw_legacy_sync_plain_ring(struct vn_t *t)
{
	/* No EVENT_IDX, no indirect tables: flags-based suppression, direct chains. */
	uint64_t f = F(VIRTIO_BLK_F_MQ) | F(VIRTIO_BLK_F_SEG_MAX) | F(VIRTIO_BLK_F_FLUSH);

	rw_case(t, &(struct rig_opts){
			   .mode = VN_VDRV_PCI_LEGACY, .ioeventfd = false, .features = f, .nq = 3});
}

static void test_rw_modern_only_ioeventfd_mult0(struct vn_t *t)
{
	uint64_t f = VN_VDRV_BLK_FEATURES_DEFAULT & ~F(VIRTIO_RING_F_EVENT_IDX);

	rw_case(t, &(struct rig_opts){.modern_only = true,
				      .mode = VN_VDRV_PCI_MODERN,
				      .ioeventfd = true,
				      .mult_zero = true,
				      .features = f,
				      .nq = 2});
}

static void test_rw_modern_only_sync_direct(struct vn_t *t)
{
	uint64_t f = VN_VDRV_BLK_FEATURES_DEFAULT & ~F(VIRTIO_RING_F_INDIRECT_DESC);

	rw_case(t, &(struct rig_opts){.modern_only = true,
				      .mode = VN_VDRV_PCI_MODERN,
				      .ioeventfd = false,
				      .features = f,
				      .nq = 1});
}

static void test_legacy_refused_on_modern_only(struct vn_t *t)
{
	struct rig g;
	struct vn_vdrv_pci *pci;
	int slot;

	if (rig_init(t, &g, &(struct rig_opts){.modern_only = true, .nq = 1}) < 0)
		goto out;
	slot = vn_vdrv_pci_find(g.r.env, VN_VIRTIO_PCI_VENDOR, 0x1042, 0);
	VN_CHECK_EQ_INT(t,
			vn_vdrv_pci_open(g.r.env,
					 &(struct vn_vdrv_pci_cfg){.slot = (unsigned int)slot,
								   .mode = VN_VDRV_PCI_LEGACY},
					 &pci),
			-ENODEV);
out:
	rig_fini(&g);
}

/* ---- the firmware's work, as the machine sees it ---- */

static bool bars_overlap(const struct vn_vdrv_pci_bar *a, const struct vn_vdrv_pci_bar *b)
{
	return a->io == b->io && a->addr < b->addr + b->size && b->addr < a->addr + a->size;
}

static void test_firmware_layout(struct vn_t *t)
{
	const struct vn_vdrv_pci_fn *fn;
	struct rig g;
	uint64_t gpa;

	if (rig_init(t, &g, &(struct rig_opts){.mode = VN_VDRV_PCI_MODERN, .nq = 1}) < 0)
		goto out;
	/* Slot 0 is the host bridge; empty slots read all ones. */
	VN_CHECK(t, g.r.env->fn[0].present);
	VN_CHECK_EQ_U(t, g.r.env->fn[0].class_code, 0x06);
	VN_CHECK_EQ_U(t, vn_vdrv_pci_cfg_read(g.r.env, 5, 0, 4), 0xffffffffu);
	VN_CHECK_EQ_U(t, vn_vdrv_pci_cfg_read(g.r.env, 5, 2, 2), 0xffffu);
	VN_CHECK_EQ_INT(t, vn_vdrv_pci_cfg_write(g.r.env, BLK_SLOT, 1, 2, 0), -EINVAL);
	fn = &g.r.env->fn[BLK_SLOT];
	VN_CHECK(t, fn->bar[0].io && fn->bar[0].size >= 32);
	VN_CHECK(t, !fn->bar[1].io && fn->bar[1].size > 0);
	VN_CHECK(t, !fn->bar[4].io && fn->bar[4].is64);
	for (unsigned int i = 0; i < VN_VDRV_PCI_BARS; i++) {
		const struct vn_vdrv_pci_bar *b = &fn->bar[i];
		uint32_t lo = vn_vdrv_pci_cfg_read(g.r.env, BLK_SLOT, 0x10 + 4 * i, 4);

		if (!b->size)
			continue;
		VN_CHECK_EQ_U(t, b->addr & (b->size - 1), 0); /* natural alignment */
		if (b->io) {
			VN_CHECK(t, b->addr >= VN_MACHINE_PIO_WINDOW_BASE &&
					    b->addr + b->size <= VN_MACHINE_PIO_WINDOW_END);
			VN_CHECK_EQ_U(t, lo & ~3u, b->addr);
		} else {
			VN_CHECK(t, b->addr >= VN_MACHINE_MMIO_WINDOW_BASE &&
					    b->addr + b->size <= VN_MACHINE_MMIO_WINDOW_END);
			VN_CHECK_EQ_U(t, lo & ~15u, (uint32_t)b->addr);
		}
		for (unsigned int k = 0; k < i; k++)
			VN_CHECK(t, !fn->bar[k].size || !bars_overlap(b, &fn->bar[k]));
	}
	VN_CHECK_EQ_U(t, vn_vdrv_pci_cfg_read(g.r.env, BLK_SLOT, 4, 2) & 7, 7); /* IO, MEM, MASTER */
	/* The guest's RAM allocator. */
	VN_CHECK_EQ_INT(t, vn_vdrv_env_alloc(g.r.env, 64, 3, &gpa), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_vdrv_env_alloc(g.r.env, 1ull << 40, 8, &gpa), -ENOMEM);
	VN_CHECK_OK(t, vn_vdrv_env_alloc(g.r.env, 1, 1, &gpa));
	VN_CHECK_OK(t, vn_vdrv_env_alloc(g.r.env, 100, 65536, &gpa));
	VN_CHECK_EQ_U(t, gpa & 65535, 0);
	VN_CHECK(t, gpa >= VN_RIG_DRV_RAM_BASE && gpa + 100 <= vn_machine_ram_size(g.r.m));
out:
	rig_fini(&g);
}

/* ---- reset with requests in flight ---- */

static uint64_t sum_done(struct job *jobs, unsigned int n)
{
	uint64_t s = 0;

	for (unsigned int i = 0; i < n; i++)
		s += __atomic_load_n(&jobs[i].done, __ATOMIC_RELAXED);
	return s;
}

static void start_streams(struct vn_t *t, struct job *jobs, unsigned int nq, uint32_t seed)
{
	uint64_t slice = (DISK_BYTES / SECT) / nq;

	for (unsigned int i = 0; i < nq; i++) {
		jobs[i].first = slice * i;
		jobs[i].nsect = slice;
		jobs[i].seed = seed + i;
		jobs[i].write = true;
		jobs[i].until_stop = true;
		jobs[i].submitted = jobs[i].done = jobs[i].ok = jobs[i].aborted = 0;
		jobs[i].bad_status = jobs[i].bad_data = 0;
		VN_CHECK_OK(t, vn_vdrv_vcpu_start(i, job_run, &jobs[i], &jobs[i].vcpu));
	}
}

static void stop_streams(struct vn_t *t, struct job *jobs, unsigned int nq)
{
	for (unsigned int i = 0; i < nq; i++)
		vn_vdrv_vcpu_stop(jobs[i].vcpu);
	for (unsigned int i = 0; i < nq; i++) {
		VN_CHECK_OK(t, vn_vdrv_vcpu_join(jobs[i].vcpu));
		jobs[i].vcpu = NULL;
	}
}

/* The vCPUs are stopped: reap what is left on each queue as its owner would. */
static void drain_jobs(struct vn_t *t, struct rig *g, struct job *jobs, unsigned int nq)
{
	struct vn_vdrv_blk_done d[MAX_DEPTH];

	for (unsigned int i = 0; i < nq; i++) {
		struct vn_vdrv_blkq *q = vn_vdrv_blk_queue(g->r.drv, i);
		uint64_t t0 = vn_now_ns();
		int n;

		while (vn_vdrv_blkq_inflight(q) && vn_now_ns() - t0 < STALL_NS) {
			n = vn_vdrv_blkq_reap(q, d, MAX_DEPTH);
			if (!VN_CHECK(t, n >= 0))
				break;
			for (int k = 0; k < n; k++)
				job_complete(&jobs[i], &d[k]);
			if (n == 0 && vn_vdrv_blkq_wait(q, WAIT_MS) < 0)
				break;
		}
		VN_CHECK_EQ_U(t, vn_vdrv_blkq_inflight(q), 0);
		VN_CHECK_EQ_U(t, jobs[i].done, jobs[i].submitted);
		VN_CHECK_EQ_U(t, jobs[i].bad_status, 0);
	}
}

static void reset_inflight_case(struct vn_t *t, const struct rig_opts *o)
{
	struct vn_blk_fault slow = {.delay_ns = 2000000}; /* every completion held 2 ms */
	struct vn_blk_fault none = {0};
	struct job jobs[MAX_Q];
	uint64_t aborted = 0;
	struct rig g;

	if (rig_init(t, &g, o) < 0)
		goto out;
	for (unsigned int i = 0; i < o->nq; i++)
		if (job_prepare(t, &jobs[i], &g, i) < 0)
			goto out;
	for (int round = 0; round < 3; round++) {
		if (!VN_CHECK_OK(t, vn_blk_inject_fault(g.r.blk, &slow)))
			goto out;
		start_streams(t, jobs, o->nq, 0x200);
		VN_CHECK(t, VN_WAIT_FOR(sum_done(jobs, o->nq) > 30, 10000));
		/* Device-wide registers from another thread while the queues run. */
		for (int k = 0; k < 50; k++) {
			uint64_t cap = 0;

			VN_CHECK_OK(t, vn_vdrv_pci_config_read(vn_vdrv_blk_pci(g.r.drv), 0, &cap, 8));
			VN_CHECK_EQ_U(t, le64toh(cap), DISK_BYTES / SECT);
		}
		/* The reset lands while every queue has requests held in the backend. */
		VN_CHECK_OK(t, vn_vdrv_pci_reset(vn_vdrv_blk_pci(g.r.drv)));
		VN_CHECK_EQ_U(t, status_of(&g), 0);
		stop_streams(t, jobs, o->nq);
		if (!VN_CHECK_OK(t, vn_blk_inject_fault(g.r.blk, &none)) ||
		    !VN_CHECK_OK(t, vn_vdrv_blk_reinit(g.r.drv)))
			goto out;
		drain_jobs(t, &g, jobs, o->nq);
		for (unsigned int i = 0; i < o->nq; i++)
			aborted += jobs[i].aborted;
	}
	vn_t_diag("requests aborted by the resets: %llu", (unsigned long long)aborted);
	/* Depth 8 is kept in flight on every queue: some of it must have been caught. */
	VN_CHECK(t, aborted > 0);
	/* Everything works after the re-init: no queue lost its kick. */
	write_verify_all(t, &g, jobs, 0x300);
out:
	rig_fini(&g);
}

static void test_reset_inflight_modern_ioeventfd(struct vn_t *t)
{
	reset_inflight_case(
		t, &(struct rig_opts){.mode = VN_VDRV_PCI_MODERN, .ioeventfd = true, .nq = 3});
}

/* Synchronous kicks: the reset competes with vCPU exits for the device lock. */
static void test_reset_inflight_legacy_sync(struct vn_t *t)
{
	reset_inflight_case(
		t, &(struct rig_opts){.mode = VN_VDRV_PCI_LEGACY, .ioeventfd = false, .nq = 3});
}

/* ---- bus master ---- */

static bool all_queues_in(struct rig *g, enum vn_hostnotif_state s)
{
	struct vn_hostnotif *hn = vn_virtio_pci_hostnotif(g->r.vp);

	for (unsigned int q = 0; q < g->o.nq; q++)
		if (vn_hostnotif_state(hn, q) != s)
			return false;
	return true;
}

static void test_bus_master(struct vn_t *t)
{
	struct job jobs[MAX_Q];
	struct rig g;
	uint64_t before;

	if (rig_init(t, &g,
		     &(struct rig_opts){.mode = VN_VDRV_PCI_MODERN, .ioeventfd = true, .nq = 2}) <
	    0)
		goto out;
	for (unsigned int i = 0; i < 2; i++)
		if (job_prepare(t, &jobs[i], &g, i) < 0)
			goto out;
	VN_CHECK(t, VN_WAIT_FOR(all_queues_in(&g, VN_HOSTNOTIF_ASSIGNED), 2000));
	for (int round = 0; round < 3; round++) {
		start_streams(t, jobs, 2, 0x400);
		VN_CHECK(t, VN_WAIT_FOR(sum_done(jobs, 2) > 20, 10000));
		VN_CHECK_OK(t, vn_vdrv_pci_set_bus_master(vn_vdrv_blk_pci(g.r.drv), false));
		VN_CHECK(t, VN_WAIT_FOR(all_queues_in(&g, VN_HOSTNOTIF_DEASSIGNED), 2000));
		VN_CHECK_OK(t, vn_vdrv_pci_set_bus_master(vn_vdrv_blk_pci(g.r.drv), true));
		VN_CHECK(t, status_of(&g) & VIRTIO_CONFIG_S_DRIVER_OK);
		VN_CHECK(t, VN_WAIT_FOR(all_queues_in(&g, VN_HOSTNOTIF_ASSIGNED), 2000));
		/* I/O goes on through the restarted notifiers. */
		before = sum_done(jobs, 2);
		VN_CHECK(t, VN_WAIT_FOR(sum_done(jobs, 2) > before + 20, 10000));
		stop_streams(t, jobs, 2);
		drain_jobs(t, &g, jobs, 2);
		for (unsigned int i = 0; i < 2; i++)
			VN_CHECK_EQ_U(t, jobs[i].aborted, 0);
	}
	VN_CHECK_EQ_U(t, status_of(&g) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
	write_verify_all(t, &g, jobs, 0x500);
out:
	rig_fini(&g);
}

/* ---- malformed and bad requests ---- */

struct scratch {
	uint64_t gpa;
	uint8_t *p;
};

static int scratch_get(struct vn_t *t, struct rig *g, struct scratch *s)
{
	if (!VN_CHECK_OK(t, vn_vdrv_env_alloc(g->r.env, 16384, 4096, &s->gpa)))
		return -1;
	s->p = vn_vdrv_env_ptr(g->r.env, s->gpa, 16384);
	return VN_CHECK(t, s->p != NULL) ? 0 : -1;
}

static void drain_fd(int fd)
{
	uint64_t c;
	struct pollfd p = {.fd = fd, .events = POLLIN};

	while (poll(&p, 1, 0) == 1 && read(fd, &c, sizeof(c)) == (ssize_t)sizeof(c))
		;
}

enum bad_kind {
	BAD_HDR_SHORT,
	BAD_HDR_WRITABLE,
	BAD_NO_STATUS,
	BAD_STATUS_EMPTY,
	BAD_DATA_NOT_512,
	BAD_TOO_MANY_SEGS,
	BAD_SEGMENT_OUTSIDE_RAM,
	BAD_KINDS,
};

static const char *const bad_names[BAD_KINDS] = {
	"header shorter than 16 bytes", "header device-writable",     "no status byte",
	"zero-length status",		"data not a multiple of 512", "more than seg_max segments",
	"segment outside guest RAM",
};

/* Layout in the scratch area: header at 0, status at 64, data from 4096. */
static void build_bad(struct rig *g, const struct scratch *s, enum bad_kind k,
		      struct vn_vdrv_buf *out, unsigned int *on, struct vn_vdrv_buf *in,
		      unsigned int *in_n)
{
	struct virtio_blk_outhdr h = {.type = htole32(VIRTIO_BLK_T_OUT), .sector = htole64(8)};
	struct vn_vdrv_buf hdr = {.gpa = s->gpa, .len = sizeof(h)};
	struct vn_vdrv_buf st = {.gpa = s->gpa + 64, .len = 1};
	struct vn_vdrv_buf data = {.gpa = s->gpa + 4096, .len = SECT};

	memcpy(s->p, &h, sizeof(h));
	*on = *in_n = 0;
	switch (k) {
	case BAD_HDR_SHORT:
		hdr.len = 8;
		out[(*on)++] = hdr, out[(*on)++] = data, in[(*in_n)++] = st;
		break;
	case BAD_HDR_WRITABLE:
		in[(*in_n)++] = hdr, in[(*in_n)++] = data, in[(*in_n)++] = st;
		break;
	case BAD_NO_STATUS:
		out[(*on)++] = hdr, out[(*on)++] = data, out[(*on)++] = st;
		break;
	case BAD_STATUS_EMPTY:
		st.len = 0;
		out[(*on)++] = hdr, out[(*on)++] = data, in[(*in_n)++] = st;
		break;
	case BAD_DATA_NOT_512:
		data.len = 100;
		out[(*on)++] = hdr, out[(*on)++] = data, in[(*in_n)++] = st;
		break;
	case BAD_TOO_MANY_SEGS: /* the device's seg_max is 4 */
		out[(*on)++] = hdr;
		for (unsigned int i = 0; i < 6; i++)
			out[(*on)++] =
				(struct vn_vdrv_buf){.gpa = data.gpa + SECT * i, .len = SECT};
		in[(*in_n)++] = st;
		break;
	case BAD_SEGMENT_OUTSIDE_RAM:
		data.gpa = vn_machine_ram_size(g->r.m) + 0x10000;
		out[(*on)++] = hdr, out[(*on)++] = data, in[(*in_n)++] = st;
		break;
	default:
		break;
	}
}

static void test_malformed_requests(struct vn_t *t)
{
	struct vn_vdrv_buf out[8], in[8];
	unsigned int on, in_n;
	struct scratch s;
	struct rig g;
	int tok, cfg_fd;

	/* Legacy + synchronous here; modern + ioeventfd below. */
	for (int variant = 0; variant < 2; variant++) {
		struct rig_opts o = {.mode = variant ? VN_VDRV_PCI_MODERN : VN_VDRV_PCI_LEGACY,
				     .ioeventfd = variant,
				     .nq = 1,
				     .seg_max = 4};

		if (rig_init(t, &g, &o) < 0 || scratch_get(t, &g, &s) < 0)
			goto next;
		cfg_fd = vn_vdrv_pci_config_irq_fd(vn_vdrv_blk_pci(g.r.drv));
		VN_CHECK(t, cfg_fd >= 0);
		VN_CHECK_EQ_U(t, vn_vdrv_blk_get_info(g.r.drv)->seg_max, 4);
		for (int k = 0; k < BAD_KINDS; k++) {
			struct vn_vdrv_blkq *q = vn_vdrv_blk_queue(g.r.drv, 0);
			struct vn_vdrv_blk_done d;
			struct pollfd p = {.fd = cfg_fd, .events = POLLIN};

			drain_fd(cfg_fd);
			build_bad(&g, &s, (enum bad_kind)k, out, &on, in, &in_n);
			VN_CHECK_OK(t, vn_vdrv_blkq_submit_raw(q, out, on, in, in_n, &tok));
			VN_CHECK_OK(t, vn_vdrv_blkq_kick(q));
			if (!VN_CHECK(t, VN_WAIT_FOR(status_of(&g) & VIRTIO_CONFIG_S_NEEDS_RESET,
						     5000)))
				vn_t_diag("variant %d: %s did not set NEEDS_RESET", variant,
					  bad_names[k]);
			/* virtio 1.2 §2.1.2: NEEDS_RESET comes with a config interrupt. */
			VN_CHECK_EQ_INT(t, poll(&p, 1, 2000), 1);
			VN_CHECK_OK(t, vn_vdrv_blk_reinit(g.r.drv));
			VN_CHECK_EQ_U(t, status_of(&g) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
			/* The bad chain comes back once, aborted (or done without status). */
			VN_CHECK_EQ_INT(t, vn_vdrv_blkq_reap(q, &d, 1), 1);
			VN_CHECK(t, d.token == &tok);
			VN_CHECK_EQ_U(t, vn_vdrv_blkq_inflight(q), 0);
			/* And the device works again. */
			struct vn_vdrv_buf seg = {.gpa = s.gpa + 4096, .len = SECT};
			struct vn_vdrv_blk_io io = {.type = VIRTIO_BLK_T_IN,
						    .sector = 1,
						    .segs = &seg,
						    .nsegs = 1,
						    .token = &tok};
			VN_CHECK_EQ_INT(t, vn_vdrv_blkq_rw_sync(q, &io, 5000), VIRTIO_BLK_S_OK);
		}
	next:
		rig_fini(&g);
	}
}

static void test_bad_requests_keep_running(struct vn_t *t)
{
	char id[VIRTIO_BLK_ID_BYTES + 1] = {0};
	struct vn_vdrv_blkq *q;
	struct vn_vdrv_buf seg;
	struct scratch s;
	struct rig g;
	int tok;

	if (rig_init(t, &g,
		     &(struct rig_opts){.mode = VN_VDRV_PCI_MODERN, .ioeventfd = true, .nq = 1}) <
		    0 ||
	    scratch_get(t, &g, &s) < 0)
		goto out;
	q = vn_vdrv_blk_queue(g.r.drv, 0);
	seg = (struct vn_vdrv_buf){.gpa = s.gpa + 4096, .len = SECT};
	/* An unknown type is UNSUPP, not a reason to reset. */
	VN_CHECK_EQ_INT(
		t,
		vn_vdrv_blkq_rw_sync(q,
				     &(struct vn_vdrv_blk_io){
					     .type = 99, .segs = &seg, .nsegs = 1, .token = &tok},
				     5000),
		VIRTIO_BLK_S_UNSUPP);
	/* A sector past the end is IOERR. */
	VN_CHECK_EQ_INT(t,
			vn_vdrv_blkq_rw_sync(q,
					     &(struct vn_vdrv_blk_io){.type = VIRTIO_BLK_T_IN,
								      .sector = DISK_BYTES / SECT,
								      .segs = &seg,
								      .nsegs = 1,
								      .token = &tok},
					     5000),
			VIRTIO_BLK_S_IOERR);
	VN_CHECK_EQ_INT(
		t,
		vn_vdrv_blkq_rw_sync(q,
				     &(struct vn_vdrv_blk_io){.type = VIRTIO_BLK_T_OUT,
							      .sector = DISK_BYTES / SECT - 1,
							      .segs = &seg,
							      .nsegs = 1,
							      .token = &tok},
				     5000),
		VIRTIO_BLK_S_OK);
	/* GET_ID: the serial, through a writable segment. */
	seg.len = VIRTIO_BLK_ID_BYTES;
	VN_CHECK_EQ_INT(t,
			vn_vdrv_blkq_rw_sync(q,
					     &(struct vn_vdrv_blk_io){.type = VIRTIO_BLK_T_GET_ID,
								      .segs = &seg,
								      .nsegs = 1,
								      .token = &tok},
					     5000),
			VIRTIO_BLK_S_OK);
	memcpy(id, s.p + 4096, VIRTIO_BLK_ID_BYTES);
	VN_CHECK(t, strcmp(id, "vnotify-test-serial") == 0);
	VN_CHECK_EQ_U(t, status_of(&g) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
out:
	rig_fini(&g);
}

/* ---- host errors ---- */

static void test_ioerr_injection(struct vn_t *t)
{
	static const int errs[] = {-EIO, -ENOSPC};
	struct vn_vdrv_blkq *q;
	struct vn_vdrv_buf seg;
	struct scratch s;
	struct rig g;
	int tok;

	if (rig_init(t, &g,
		     &(struct rig_opts){.mode = VN_VDRV_PCI_LEGACY, .ioeventfd = true, .nq = 1}) <
		    0 ||
	    scratch_get(t, &g, &s) < 0)
		goto out;
	q = vn_vdrv_blk_queue(g.r.drv, 0);
	seg = (struct vn_vdrv_buf){.gpa = s.gpa + 4096, .len = 4096};
	for (unsigned int e = 0; e < VN_ARRAY_SIZE(errs); e++) {
		struct vn_blk_fault f = {.error = errs[e], .count = 1};
		struct vn_vdrv_blk_io w = {.type = VIRTIO_BLK_T_OUT,
					   .sector = 16,
					   .segs = &seg,
					   .nsegs = 1,
					   .token = &tok};
		struct vn_vdrv_blk_io fl = {.type = VIRTIO_BLK_T_FLUSH, .token = &tok};

		VN_REQUIRE_OK(t, vn_blk_inject_fault(g.r.blk, &f));
		VN_CHECK_EQ_INT(t, vn_vdrv_blkq_rw_sync(q, &w, 5000), VIRTIO_BLK_S_IOERR);
		VN_CHECK_EQ_U(t, vn_blk_fault_pending(g.r.blk), 0);
		/* That request alone: the next one works. */
		VN_CHECK_EQ_INT(t, vn_vdrv_blkq_rw_sync(q, &w, 5000), VIRTIO_BLK_S_OK);
		VN_REQUIRE_OK(t, vn_blk_inject_fault(g.r.blk, &f));
		VN_CHECK_EQ_INT(t, vn_vdrv_blkq_rw_sync(q, &fl, 5000), VIRTIO_BLK_S_IOERR);
		VN_CHECK_EQ_INT(t, vn_vdrv_blkq_rw_sync(q, &fl, 5000), VIRTIO_BLK_S_OK);
	}
	VN_CHECK_EQ_U(t, status_of(&g) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
out:
	rig_fini(&g);
}

/* ---- durability as another process sees it ---- */

static int child_check(const char *path, uint64_t first, uint64_t n, uint32_t seed)
{
	uint8_t buf[SECT];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 2;
	for (uint64_t s = first; s < first + n; s++)
		if (pread(fd, buf, SECT, (off_t)(s * SECT)) != SECT || !check_sector(buf, seed, s))
			return 1;
	close(fd);
	return 0;
}

static void test_flush_visible(struct vn_t *t)
{
	struct job jobs[MAX_Q];
	struct rig g;
	pid_t pid;
	int st = -1, tok;

	if (rig_init(t, &g,
		     &(struct rig_opts){.mode = VN_VDRV_PCI_MODERN, .ioeventfd = true, .nq = 2}) <
	    0)
		goto out;
	for (unsigned int i = 0; i < 2; i++)
		if (job_prepare(t, &jobs[i], &g, i) < 0)
			goto out;
	write_verify_all(t, &g, jobs, 0x600);
	for (unsigned int i = 0; i < 2; i++) {
		struct vn_vdrv_blk_io fl = {.type = VIRTIO_BLK_T_FLUSH, .token = &tok};

		VN_CHECK_EQ_INT(t, vn_vdrv_blkq_rw_sync(vn_vdrv_blk_queue(g.r.drv, i), &fl, 5000),
				VIRTIO_BLK_S_OK);
	}
	pid = fork();
	VN_REQUIRE(t, pid >= 0);
	if (pid == 0) {
		uint64_t slice = (DISK_BYTES / SECT) / 2;
		int r = child_check(g.path, 0, slice, 0x600);

		_exit(r ? r : child_check(g.path, slice, slice, 0x601));
	}
	VN_CHECK_EQ_INT(t, waitpid(pid, &st, 0), pid);
	VN_CHECK(t, WIFEXITED(st));
	VN_CHECK_EQ_INT(t, WEXITSTATUS(st), 0);
out:
	rig_fini(&g);
}

/*
 * The driver's own view of RAM maps the machine's RAM fd a second time:
 * with anonymous RAM there is none, and the rig refuses cleanly.
 */
static void test_own_mapping_refused_on_anon_ram(struct vn_t *t)
{
	struct vn_machine_cfg mc;
	struct vn_rig_cfg rc = {
		.machine = &mc,
		.nr_iothreads = 1,
		.blk = { .name = "blk0", .fd = -1, .path = "/dev/null" },
		.blk_iothread = -1,
		.drv_own_mapping = true,
	};
	struct vn_rig r;
	char path[] = "/tmp/vn-pci-blk-anon-XXXXXX";
	int fd = mkstemp(path);

	VN_REQUIRE(t, fd >= 0);
	VN_CHECK_OK(t, ftruncate(fd, DISK_BYTES));
	close(fd);
	rc.blk.path = path;
	vn_machine_cfg_init(&mc);
	mc.ram = VN_MACHINE_RAM_ANON;
	vn_virtio_pci_cfg_init(&rc.pci, NULL, NULL, BLK_SLOT);
	VN_CHECK_EQ_INT(t, vn_rig_init(&rc, &r), -ENOENT);
	unlink(path);
}

/* ---- moving queues between iothreads under load ---- */

static bool queue_is_on(struct rig *g, unsigned int q, struct vn_iothread *it)
{
	return vn_virtio_pci_queue_iothread(g->r.vp, q) == it &&
	       vn_blk_queue_iothread(g->r.blk, q) == it &&
	       vn_hostnotif_state(vn_virtio_pci_hostnotif(g->r.vp), q) == VN_HOSTNOTIF_ASSIGNED;
}

/* Notifier and completions together, as a balancer moves a queue. */
static int move_queue(struct rig *g, unsigned int q, struct vn_iothread *to)
{
	int r = vn_virtio_pci_move_queue(g->r.vp, q, to);

	return r < 0 ? r : vn_blk_move_queue(g->r.blk, q, to);
}

/*
 * Both queues stream writes at depth 8, each completion held 1 ms (a slow
 * disk: completions wait on the queue's delay timer), while the main thread moves them
 * back and forth between iothreads 0 and 1, 20 times, waiting for each
 * queue to make progress after every move (a kick lost in a move stalls
 * its queue: the guest waits for a completion that never comes). Then both
 * are parked on iothread 2 and iothreads 0 and 1 are stopped: if either
 * part of a move (notifier, completion eventfd, delay timer) stayed on its
 * old loop, the streams stall there. Every request submitted completes, and the disk
 * verifies afterwards.
 */
static void test_move_queues_under_load(struct vn_t *t)
{
	struct job jobs[MAX_Q];
	struct rig g;
	struct vn_iothread **io = g.r.io;

	if (rig_init(t, &g,
		     &(struct rig_opts){.mode = VN_VDRV_PCI_MODERN, .ioeventfd = true, .nq = 2,
					.nio = 3, .spread = true}) < 0)
		goto out;
	for (unsigned int i = 0; i < 2; i++)
		if (job_prepare(t, &jobs[i], &g, i) < 0)
			goto out;
	VN_CHECK(t, VN_WAIT_FOR(all_queues_in(&g, VN_HOSTNOTIF_ASSIGNED), 2000));
	VN_CHECK(t, queue_is_on(&g, 0, io[0]));
	VN_CHECK(t, queue_is_on(&g, 1, io[1]));
	VN_CHECK_EQ_INT(t, vn_virtio_pci_move_queue(g.r.vp, 2, io[0]), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_blk_move_queue(g.r.blk, 2, io[0]), -EINVAL);
	/* Completions held 1 ms: the queues' delay timers must move with them too. */
	VN_CHECK_OK(t, vn_blk_inject_fault(g.r.blk, &(struct vn_blk_fault){ .delay_ns = 1000000 }));
	start_streams(t, jobs, 2, 0x500);
	for (unsigned int k = 0; k < 20; k++) {
		unsigned int q = k & 1;
		struct vn_iothread *to = vn_virtio_pci_queue_iothread(g.r.vp, q) == io[0] ? io[1]
											  : io[0];
		uint64_t before = __atomic_load_n(&jobs[q].done, __ATOMIC_RELAXED);

		if (!VN_CHECK_OK(t, move_queue(&g, q, to)))
			break;
		VN_CHECK(t, VN_WAIT_FOR(queue_is_on(&g, q, to), 2000));
		VN_CHECK(t, VN_WAIT_FOR(__atomic_load_n(&jobs[q].done, __ATOMIC_RELAXED) > before + 8,
					10000));
	}
	for (unsigned int q = 0; q < 2; q++) {
		VN_CHECK_OK(t, move_queue(&g, q, io[2]));
		VN_CHECK(t, VN_WAIT_FOR(queue_is_on(&g, q, io[2]), 2000));
	}
	vn_iothread_stop(io[0]);
	vn_iothread_stop(io[1]);
	for (unsigned int q = 0; q < 2; q++) {
		uint64_t before = __atomic_load_n(&jobs[q].done, __ATOMIC_RELAXED);

		VN_CHECK(t, VN_WAIT_FOR(__atomic_load_n(&jobs[q].done, __ATOMIC_RELAXED) > before + 50,
					10000));
	}
	stop_streams(t, jobs, 2);
	VN_CHECK_OK(t, vn_blk_inject_fault(g.r.blk, &(struct vn_blk_fault){ 0 }));
	drain_jobs(t, &g, jobs, 2);
	vn_t_diag("requests done while moving: %llu",
		  (unsigned long long)(jobs[0].done + jobs[1].done));
	write_verify_all(t, &g, jobs, 0x600);
out:
	rig_fini(&g);
}

VN_TESTS(VN_TEST(test_rw_modern_ioeventfd), VN_TEST(test_rw_modern_sync),
	 VN_TEST(test_rw_legacy_ioeventfd), VN_TEST(test_rw_legacy_sync_plain_ring),
	 VN_TEST(test_rw_modern_only_ioeventfd_mult0), VN_TEST(test_rw_modern_only_sync_direct),
	 VN_TEST(test_legacy_refused_on_modern_only), VN_TEST(test_firmware_layout),
	 VN_TEST(test_reset_inflight_modern_ioeventfd), VN_TEST(test_reset_inflight_legacy_sync),
	 VN_TEST(test_bus_master), VN_TEST(test_malformed_requests),
	 VN_TEST(test_bad_requests_keep_running), VN_TEST(test_ioerr_injection),
	 VN_TEST(test_flush_visible), VN_TEST(test_move_queues_under_load),
	 VN_TEST(test_own_mapping_refused_on_anon_ram));
