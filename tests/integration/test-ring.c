/* SPDX-License-Identifier: MIT */
/*
 * Guest driver in the loop (CONTRIBUTING.md "Tests", after vringh_test):
 * vnotify's driver (src/guest/) builds real split rings in a memfd and the
 * device core consumes them in the same process.
 *
 * Variants: indirect on/off x event-idx on/off; a "shredded" device-side
 * memory map of hundreds of tiny regions, so every descriptor, buffer and
 * used element straddles region boundaries; the driver and the device always
 * see the memfd through different mappings (different host addresses).
 * The threaded tests run a driver thread against a device thread with
 * eventfd kicks and interrupts, and must be TSan-clean.
 *
 * Each request: out = { 16-byte header (seq, len), data }, in = { buffer }.
 * The device copies the data into the in buffer, with every byte xor 0x5a,
 * and pushes the length; the driver checks every byte.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "harness.h"
#include "base/log.h"
#include "base/notifier.h"
#include "guest/vdrv-ring.h"
#include "mem/gmem.h"
#include "virtio/vdev.h"
#include "virtio/vq.h"

#define BASE 0x40000000ull
#define MEMSZ 0x10000ull
#define RINGS (BASE)
#define IND (BASE + 0x2000)
#define BUFS (BASE + 0x4000)
#define NUM 128
#define MAXIND 4
#define SLOT 256
#define DATA_MAX 96

#define F(b) (1ull << (b))

struct rig {
	int memfd;
	struct vn_gmem drv_mem, dev_mem;
	struct vn_vdev *vdev;
	struct vn_vq *vq;
	struct vn_vdrv_ring ring;
	struct vn_notifier kick;        /* host notifier: driver -> device */
	int irq_fd;                     /* guest notifier of vector 0 */
	bool event_idx, indirect;

	/* driver bookkeeping */
	uint32_t seq_of_slot[NUM];
	uint32_t len_of_slot[NUM];
	uint16_t free_slots[NUM];
	unsigned int nfree;

	/* results */
	unsigned long done, bad;
	int device_errors;
};

static int add_view(struct vn_gmem *m, int memfd, uint64_t gpa, uint64_t size, uint64_t off)
{
	int fd = fcntl(memfd, F_DUPFD_CLOEXEC, 0);
	int r;

	if (fd < 0)
		return -errno;
	r = vn_gmem_add_fd(m, gpa, size, fd, off);
	if (r < 0)
		close(fd);
	return r;
}

/* Device-side view made of tiny regions; every size even so index fields stay whole. */
static int add_shredded(struct vn_gmem *m, int memfd)
{
	static const unsigned int sizes[] = { 8, 24, 40, 64, 2, 120, 200, 6, 500 };
	uint64_t off = 0;
	int r;

	for (unsigned int i = 0; off < MEMSZ; i++) {
		uint64_t sz = sizes[i % VN_ARRAY_SIZE(sizes)];

		if (sz > MEMSZ - off)
			sz = MEMSZ - off;
		r = add_view(m, memfd, BASE + off, sz, off);
		if (r < 0)
			return r;
		off += sz;
	}
	return 0;
}

static const struct vn_vdev_ops rig_ops = { 0 };

static void quiet_sink(void *o, enum vn_log_level l, const char *tag, const char *msg)
{
	if (l <= VN_LOG_WARN)
		fprintf(stderr, "%s: %s\n", tag, msg);
}

static int rig_init(struct vn_t *t, struct rig *g, bool indirect, bool event_idx, bool shredded)
{
	uint64_t desc, avail, used, feat = 0;
	struct vn_vdev_cfg cfg = {
		.name = "ring", .device_id = 99, .ops = &rig_ops,
		.nr_queues = 1, .queue_size_max = NUM, .nr_vectors = 1,
	};
	int r;

	memset(g, 0, sizeof(*g));
	vn_log_set_sink(quiet_sink, NULL);
	g->indirect = indirect;
	g->event_idx = event_idx;
	g->kick = (struct vn_notifier)VN_NOTIFIER_INIT;
	if (indirect)
		feat |= F(VIRTIO_RING_F_INDIRECT_DESC);
	if (event_idx)
		feat |= F(VIRTIO_RING_F_EVENT_IDX);
	cfg.features = feat;

	g->memfd = memfd_create("ring-test", MFD_CLOEXEC);
	if (!VN_CHECK(t, g->memfd >= 0) || !VN_CHECK_OK(t, ftruncate(g->memfd, MEMSZ)))
		return -1;
	if (!VN_CHECK_OK(t, vn_gmem_init(&g->drv_mem)) || !VN_CHECK_OK(t, vn_gmem_init(&g->dev_mem)))
		return -1;
	/* two mappings: the driver and the device never share a host address */
	if (!VN_CHECK_OK(t, add_view(&g->drv_mem, g->memfd, BASE, MEMSZ, 0)))
		return -1;
	r = shredded ? add_shredded(&g->dev_mem, g->memfd)
		     : add_view(&g->dev_mem, g->memfd, BASE, MEMSZ, 0);
	if (!VN_CHECK_OK(t, r))
		return -1;
	if (!VN_CHECK(t, vn_gmem_ptr(&g->drv_mem, BASE, 1) != vn_gmem_ptr(&g->dev_mem, BASE, 1)))
		return -1;
	if (shredded && !VN_CHECK(t, vn_gmem_nr_regions(&g->dev_mem) > 300))
		return -1;

	vn_vdrv_ring_layout(NUM, RINGS, 4, &desc, &avail, &used);
	struct vn_vdrv_ring_cfg rc = {
		.mem = &g->drv_mem, .num = NUM, .desc = desc, .avail = avail, .used = used,
		.indirect_area = IND, .max_indirect = MAXIND, .indirect = indirect,
		.event_idx = event_idx,
	};
	if (!VN_CHECK_OK(t, vn_vdrv_ring_init(&g->ring, &rc)))
		return -1;
	if (!VN_CHECK_OK(t, vn_notifier_init(&g->kick)) || !VN_CHECK_OK(t, vn_vdev_new(&cfg, &g->vdev)))
		return -1;
	if (!VN_CHECK_OK(t, vn_vdev_bind_mem(g->vdev, &g->dev_mem)))
		return -1;
	g->vq = vn_vdev_queue(g->vdev, 0);
	g->irq_fd = vn_vdev_guest_notifier_fd(g->vdev, 0);

	/* the driver's side of virtio 1.2 §3.1.1, through the device core */
	r = vn_vdev_set_status(g->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	r |= vn_vdev_set_driver_features(g->vdev, feat | F(VIRTIO_F_VERSION_1));
	r |= vn_vdev_set_status(g->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
						 VIRTIO_CONFIG_S_FEATURES_OK);
	r |= vn_vdev_queue_set_num(g->vdev, 0, NUM);
	r |= vn_vdev_queue_set_addr(g->vdev, 0, desc, avail, used);
	r |= vn_vdev_queue_set_vector(g->vdev, 0, 0);
	r |= vn_vdev_queue_enable(g->vdev, 0);
	r |= vn_vdev_set_status(g->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
						 VIRTIO_CONFIG_S_FEATURES_OK |
						 VIRTIO_CONFIG_S_DRIVER_OK);
	if (!VN_CHECK_EQ_INT(t, r, 0))
		return -1;
	for (unsigned int i = 0; i < NUM; i++)
		g->free_slots[i] = (uint16_t)(NUM - 1 - i);
	g->nfree = NUM;
	return 0;
}

static void rig_fini(struct rig *g)
{
	vn_vdev_free(g->vdev);
	vn_notifier_cleanup(&g->kick);
	vn_vdrv_ring_destroy(&g->ring);
	vn_gmem_destroy(&g->dev_mem);
	vn_gmem_destroy(&g->drv_mem);
	if (g->memfd >= 0)
		close(g->memfd);
	vn_log_set_sink(NULL, NULL);
}

static int vt_fired(int fd)
{
	uint64_t c;

	return read(fd, &c, sizeof(c)) == (ssize_t)sizeof(c) && c > 0;
}

/* ---- device side ---- */

/* Copy the out data (after the 16-byte header) into the in buffers, xor 0x5a. */
static int serve(struct rig *g, struct vn_vq_elem *e)
{
	uint8_t hdr[16], data[DATA_MAX];
	size_t got = 0, skip = 0, want;
	uint32_t len;

	for (unsigned int i = 0; i < e->out_num; i++) {
		const uint8_t *p = e->iov[i].iov_base;

		for (size_t k = 0; k < e->iov[i].iov_len; k++, skip++) {
			if (skip < 16)
				hdr[skip] = p[k];
			else if (got < DATA_MAX)
				data[got++] = p[k] ^ 0x5a;
		}
	}
	memcpy(&len, hdr + 4, 4);
	if (skip < 16 || len != got || e->in_len < got)
		return -1;
	want = got;
	for (unsigned int i = e->out_num; i < e->out_num + e->in_num && want; i++) {
		size_t n = e->iov[i].iov_len < want ? e->iov[i].iov_len : want;

		memcpy(e->iov[i].iov_base, data + (got - want), n);
		want -= n;
	}
	return (int)got;
}

/* The handler pattern of <vnotify/vq.h>: nothing that races the re-enable is lost. */
static int device_run(struct rig *g)
{
	struct iovec iov[64];
	struct vn_vq_elem e = { .iov = iov, .iov_cap = 64 };
	int r, n = 0;

	do {
		vn_vq_disable_notify(g->vq);
		while ((r = vn_vq_pop(g->vq, &e)) > 0) {
			int len = serve(g, &e);

			if (len < 0) {
				g->device_errors++;
				len = 0;
			}
			if (vn_vq_push(g->vq, e.head, (uint32_t)len) < 0)
				return -1;
			n++;
		}
		if (r < 0)
			return r;
		r = vn_vq_enable_notify(g->vq);
		if (r < 0)
			return r;
	} while (r > 0);
	if (n && vn_vdev_notify_queue(g->vdev, g->vq) < 0)
		return -1;
	return n;
}

/* ---- driver side ---- */

static int submit(struct rig *g, uint32_t seq)
{
	uint16_t slot;
	uint64_t at;
	uint32_t len = 1 + seq % DATA_MAX;
	uint8_t hdr[16] = { 0 }, data[DATA_MAX];
	int r;

	if (!g->nfree)
		return -ENOSPC;
	slot = g->free_slots[--g->nfree];
	at = BUFS + (uint64_t)SLOT * slot;
	memcpy(hdr, &seq, 4);
	memcpy(hdr + 4, &len, 4);
	for (uint32_t i = 0; i < len; i++)
		data[i] = (uint8_t)(seq * 31 + i);
	if (vn_gmem_write(&g->drv_mem, at, hdr, 16) || vn_gmem_write(&g->drv_mem, at + 16, data, len))
		return -EFAULT;
	struct vn_vdrv_buf out[2] = { { at, 16 }, { at + 16, len } };
	struct vn_vdrv_buf in[1] = { { at + 128, DATA_MAX } };
	r = vn_vdrv_ring_add(&g->ring, out, 2, in, 1, (void *)(uintptr_t)(slot + 1));
	if (r < 0) {
		g->nfree++;
		return r;
	}
	g->seq_of_slot[slot] = seq;
	g->len_of_slot[slot] = len;
	return 0;
}

static int reap(struct rig *g)
{
	void *tok;
	uint32_t len;
	int r, n = 0;

	while ((r = vn_vdrv_ring_get_used(&g->ring, &tok, &len)) > 0) {
		uint16_t slot = (uint16_t)((uintptr_t)tok - 1);
		uint32_t seq = g->seq_of_slot[slot];
		uint8_t got[DATA_MAX];

		if (len != g->len_of_slot[slot] ||
		    vn_gmem_read(&g->drv_mem, BUFS + (uint64_t)SLOT * slot + 128, got, len)) {
			g->bad++;
		} else {
			for (uint32_t i = 0; i < len; i++)
				if (got[i] != (uint8_t)((seq * 31 + i) ^ 0x5a)) {
					g->bad++;
					break;
				}
		}
		g->free_slots[g->nfree++] = slot;
		g->done++;
		n++;
	}
	return r < 0 ? r : n;
}

static int kick_if_needed(struct rig *g)
{
	int r = vn_vdrv_ring_kick_prepare(&g->ring);

	if (r > 0)
		return vn_notifier_set(&g->kick);
	return r;
}

/* ---- single thread: the device runs right after each kick ---- */

static void run_inline(struct vn_t *t, bool indirect, bool event_idx, bool shredded)
{
	struct rig g;
	struct vn_vq_stats st;
	uint32_t seq = 0;
	const uint32_t total = 3000;

	if (rig_init(t, &g, indirect, event_idx, shredded))
		goto out;
	while (g.done < total) {
		/* batches of varying size, up to a full ring */
		unsigned int batch = 1 + (seq * 7) % NUM;

		for (unsigned int i = 0; i < batch && seq < total; i++)
			if (submit(&g, seq) == 0)
				seq++;
		VN_REQUIRE_OK(t, kick_if_needed(&g));
		if (vn_notifier_test_and_clear(&g.kick) > 0)
			VN_REQUIRE_OK(t, device_run(&g));
		else if (g.nfree == 0)
			break; /* full ring and no kick: a lost notification */
		if (vt_fired(g.irq_fd) || g.nfree == 0)
			VN_REQUIRE_OK(t, reap(&g));
		VN_REQUIRE_OK(t, vn_vdrv_ring_enable_cb(&g.ring) >= 0 ? 0 : -1);
		VN_REQUIRE_OK(t, reap(&g));
	}
	VN_CHECK_EQ_U(t, g.done, total);
	VN_CHECK_EQ_U(t, g.bad, 0);
	VN_CHECK_EQ_INT(t, g.device_errors, 0);
	VN_CHECK_EQ_INT(t, vn_vq_is_broken(g.vq), 0);
	VN_CHECK_EQ_U(t, vn_vdrv_ring_num_free(&g.ring), NUM);
	VN_CHECK_EQ_U(t, vn_vdev_get_status(g.vdev) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
	vn_vq_get_stats(g.vq, &st);
	vn_t_diag("indirect=%d event_idx=%d shredded=%d: kicks %llu (suppressed %llu), "
		  "irqs %llu (suppressed %llu)", indirect, event_idx, shredded,
		  (unsigned long long)g.ring.n_kicks, (unsigned long long)g.ring.n_kicks_suppressed,
		  (unsigned long long)st.notifies, (unsigned long long)st.notifies_suppressed);
out:
	rig_fini(&g);
}

/* ---- two threads: a driver thread and a device thread ---- */

#define WAIT_MS 20000 /* a hang guard, not a timing assertion */

struct dev_thread {
	struct rig *g;
	int stop;
	int err;
	unsigned long runs;
};

static void *device_main(void *arg)
{
	struct dev_thread *d = arg;
	struct pollfd p = { .fd = vn_notifier_fd(&d->g->kick), .events = POLLIN };

	for (;;) {
		int r = poll(&p, 1, WAIT_MS);

		if (r <= 0) {
			d->err = r == 0 ? -ETIMEDOUT : -errno;
			return NULL;
		}
		if (vn_notifier_test_and_clear(&d->g->kick) < 0) {
			d->err = -EIO;
			return NULL;
		}
		/* acquire: pairs with the release store of stop by the driver */
		if (__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE))
			return NULL;
		if (device_run(d->g) < 0) {
			d->err = -EPROTO;
			return NULL;
		}
		d->runs++;
	}
}

struct drv_thread {
	struct rig *g;
	uint32_t total;
	int err;
	unsigned long waits;
};

static void *driver_main(void *arg)
{
	struct drv_thread *d = arg;
	struct rig *g = d->g;
	struct pollfd p = { .fd = g->irq_fd, .events = POLLIN };
	uint32_t seq = 0;
	int r;

	for (;;) {
		unsigned int batch = 1 + (seq * 13) % 40;
		bool full = false;

		for (unsigned int i = 0; i < batch && seq < d->total; i++) {
			if (submit(g, seq) < 0) {
				full = true;
				break;
			}
			seq++;
		}
		if ((r = kick_if_needed(g)) < 0 || (r = reap(g)) < 0)
			goto fail;
		if (g->done >= d->total)
			break;
		if (r > 0 || (!full && seq < d->total))
			continue;
		/* nothing to add and nothing came back: sleep until the device interrupts */
		vn_vdrv_ring_disable_cb(&g->ring);
		r = vn_vdrv_ring_enable_cb(&g->ring);
		if (r < 0)
			goto fail;
		if (r > 0)
			continue; /* used entries raced the enable: no sleep */
		r = poll(&p, 1, WAIT_MS);
		if (r <= 0) {
			r = r == 0 ? -ETIMEDOUT : -errno;
			goto fail;
		}
		(void)vt_fired(g->irq_fd);
		d->waits++;
	}
	return NULL;
fail:
	d->err = r;
	return NULL;
}

static void run_threads(struct vn_t *t, bool indirect, bool event_idx, bool shredded,
			uint32_t total)
{
	struct rig g;
	struct dev_thread dt = { .g = &g };
	struct drv_thread drv = { .g = &g, .total = total };
	pthread_t dth, vth;

	if (rig_init(t, &g, indirect, event_idx, shredded))
		goto out;
	VN_REQUIRE(t, pthread_create(&dth, NULL, device_main, &dt) == 0);
	VN_REQUIRE(t, pthread_create(&vth, NULL, driver_main, &drv) == 0);
	pthread_join(vth, NULL);
	__atomic_store_n(&dt.stop, 1, __ATOMIC_RELEASE);
	VN_CHECK_OK(t, vn_notifier_set(&g.kick));
	pthread_join(dth, NULL);
	VN_CHECK_EQ_INT(t, drv.err, 0);
	VN_CHECK_EQ_INT(t, dt.err, 0);
	VN_CHECK_EQ_U(t, g.done, total);
	VN_CHECK_EQ_U(t, g.bad, 0);
	VN_CHECK_EQ_INT(t, g.device_errors, 0);
	VN_CHECK_EQ_INT(t, vn_vq_is_broken(g.vq), 0);
	vn_t_diag("indirect=%d event_idx=%d shredded=%d: %lu device runs, %lu driver sleeps, "
		  "kicks %llu (suppressed %llu)", indirect, event_idx, shredded, dt.runs,
		  drv.waits, (unsigned long long)g.ring.n_kicks,
		  (unsigned long long)g.ring.n_kicks_suppressed);
out:
	rig_fini(&g);
}

static void test_inline_direct(struct vn_t *t)
{
	run_inline(t, false, false, false);
}

static void test_inline_direct_event_idx(struct vn_t *t)
{
	run_inline(t, false, true, false);
}

static void test_inline_indirect(struct vn_t *t)
{
	run_inline(t, true, false, false);
}

static void test_inline_indirect_event_idx(struct vn_t *t)
{
	run_inline(t, true, true, false);
}

static void test_inline_shredded(struct vn_t *t)
{
	run_inline(t, false, true, true);
	run_inline(t, true, false, true);
}

static void test_threads_direct(struct vn_t *t)
{
	run_threads(t, false, false, false, 20000);
}

static void test_threads_direct_event_idx(struct vn_t *t)
{
	run_threads(t, false, true, false, 20000);
}

static void test_threads_indirect(struct vn_t *t)
{
	run_threads(t, true, false, false, 20000);
}

static void test_threads_indirect_event_idx(struct vn_t *t)
{
	run_threads(t, true, true, false, 20000);
}

static void test_threads_shredded(struct vn_t *t)
{
	run_threads(t, true, true, true, 5000);
}

VN_TESTS(VN_TEST(test_inline_direct), VN_TEST(test_inline_direct_event_idx),
	 VN_TEST(test_inline_indirect), VN_TEST(test_inline_indirect_event_idx),
	 VN_TEST(test_inline_shredded), VN_TEST(test_threads_direct),
	 VN_TEST(test_threads_direct_event_idx), VN_TEST(test_threads_indirect),
	 VN_TEST(test_threads_indirect_event_idx), VN_TEST(test_threads_shredded))
