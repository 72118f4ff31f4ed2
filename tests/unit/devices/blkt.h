/* SPDX-License-Identifier: MIT */
/*
 * Fixture for the virtio-blk unit tests: guest memory, an image file, a
 * device over it with a completion iothread, and a raw guest that writes
 * descriptor chains straight into the rings (these tests link src/devices/
 * and the folders below it, so not the guest driver). The test thread plays
 * the vCPU: it kicks a queue by running its handler under the queue's run
 * lock, as a synchronous exit does.
 */
#ifndef VN_TESTS_BLKT_H
#define VN_TESTS_BLKT_H

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <sys/stat.h>

#include <vnotify/blk.h>
#include <vnotify/iothread.h>
#include <vnotify/vdev.h>

#include "harness.h"
#include "base/log.h"
#include "mem/gmem.h"
#include "virtio/vdev.h"

#define BT_NQ 4
#define BT_NUM 64
#define BT_GPA 0x100000ull
#define BT_MEMSZ 0x800000ull
#define BT_QBASE(q) (BT_GPA + 0x10000ull * (q))
#define BT_DESC(q) (BT_QBASE(q))
#define BT_AVAIL(q) (BT_QBASE(q) + 0x1000)
#define BT_USED(q) (BT_QBASE(q) + 0x2000)
#define BT_IND(q, s) (BT_GPA + 0x40000ull + 0x4000ull * (q) + 0x100ull * (s))
#define BT_HDR(q, s) (BT_GPA + 0x50000ull + 0x1000ull * (q) + 16ull * (s))
#define BT_STAT(q, s) (BT_GPA + 0x58000ull + 0x100ull * (q) + (s))
#define BT_DATA (BT_GPA + 0x100000ull) /* 7 MiB of data buffers */
#define BT_IMG_SECTORS 4096ull	       /* 2 MiB image */

#define BT_F(bit) (1ull << (bit))
#define BT_RUN                                                                                     \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |      \
	 VIRTIO_CONFIG_S_DRIVER_OK)

struct bt_opts {
	enum vn_blk_backend backend;
	bool readonly;
	bool direct;
	bool discard;
	bool write_zeroes;
	unsigned int nr_queues;
	unsigned int seg_max;
	unsigned int blk_size;
	const char *serial;
	const char *dir;	/* where the image lives; NULL: the build dir */
	uint64_t img_sectors;	/* 0: BT_IMG_SECTORS */
	uint64_t drop_features; /* offered features the driver refuses */
	bool queue_iothreads;	/* completions of queue q on {it, it2}[q % 2] */
};

struct bt {
	struct vn_gmem mem;
	struct vn_iothread *it;
	struct vn_iothread *it2; /* with queue_iothreads */
	struct vn_iothread *its[2];
	struct vn_blk *blk;
	struct vn_vdev *vdev;
	char path[512];
	int img; /* the test's own fd on the image */
	unsigned int nq;
	uint64_t features; /* negotiated */
	uint16_t avail_idx[BT_NQ];
	uint16_t used_seen[BT_NQ];
	uint16_t next_desc[BT_NQ];
	struct bt_opts o;
};

/* One buffer of a chain: guest address, length, device-writable? */
struct bt_seg {
	uint64_t gpa;
	uint32_t len;
	bool in;
};

static inline const char *bt_backend_name(enum vn_blk_backend b)
{
	return b == VN_BLK_BACKEND_URING ? "uring" : b == VN_BLK_BACKEND_POOL ? "pool" : "auto";
}

/* Driver setup: features, every queue, DRIVER_OK. */
static inline int bt_driver_init(struct bt *b)
{
	int r = 0;

	vn_vdev_lock(b->vdev);
	r |= vn_vdev_set_status(b->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	b->features = vn_vdev_device_features(b->vdev) & ~b->o.drop_features;
	r |= vn_vdev_set_driver_features(b->vdev, b->features);
	r |= vn_vdev_set_status(b->vdev, BT_RUN & ~VIRTIO_CONFIG_S_DRIVER_OK);
	for (unsigned int q = 0; q < b->nq; q++) {
		static const uint8_t zero[0x3000];

		r |= vn_gmem_write(&b->mem, BT_QBASE(q), zero, sizeof(zero));
		r |= vn_vdev_queue_set_num(b->vdev, q, BT_NUM);
		r |= vn_vdev_queue_set_addr(b->vdev, q, BT_DESC(q), BT_AVAIL(q), BT_USED(q));
		r |= vn_vdev_queue_set_vector(b->vdev, q, (uint16_t)q);
		r |= vn_vdev_queue_enable(b->vdev, q);
		b->avail_idx[q] = b->used_seen[q] = b->next_desc[q] = 0;
	}
	r |= vn_vdev_set_config_vector(b->vdev, (uint16_t)b->nq);
	r |= vn_vdev_set_status(b->vdev, BT_RUN);
	vn_vdev_unlock(b->vdev);
	return r;
}

static inline int bt_open_image(struct bt *b, const char *dir, uint64_t sectors)
{
	static const uint8_t fill[4096];
	char tmpl[512];
	int fd;

	snprintf(tmpl, sizeof(tmpl), "%s/vn-blk-test-XXXXXX", dir ? dir : ".");
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(b->path, sizeof(b->path), "%s", tmpl);
	/* Non-zero content everywhere, so zeroing is visible: byte = sector & 0xff ^ 0x5a. */
	for (uint64_t s = 0; s < sectors; s += 8) {
		uint8_t buf[4096];

		memcpy(buf, fill, sizeof(buf));
		for (unsigned int i = 0; i < 4096; i++)
			buf[i] = (uint8_t)(((s + i / 512) & 0xff) ^ 0x5a);
		if (pwrite(fd, buf, sizeof(buf), (off_t)(s * 512)) != (ssize_t)sizeof(buf)) {
			close(fd);
			return -EIO;
		}
	}
	b->img = fd;
	return 0;
}

/* Return: 0, 1 if the test must skip (reason given), -1 on failure (reported). */
static inline int bt_init(struct vn_t *t, struct bt *b, const struct bt_opts *o)
{
	struct vn_iothread_cfg icfg = {.name = "bt-io"};
	struct vn_blk_cfg cfg = {0};
	uint64_t sectors;
	int r;

	memset(b, 0, sizeof(*b));
	b->img = -1;
	b->o = *o;
	b->nq = o->nr_queues ? o->nr_queues : 1;
	sectors = o->img_sectors ? o->img_sectors : BT_IMG_SECTORS;
	if (!VN_CHECK_OK(t, vn_gmem_init(&b->mem)) ||
	    !VN_CHECK_OK(t, vn_gmem_add_memfd(&b->mem, BT_GPA, BT_MEMSZ, NULL)) ||
	    !VN_CHECK_OK(t, vn_iothread_new(&icfg, &b->it)) ||
	    !VN_CHECK_OK(t, vn_iothread_start(b->it)) ||
	    !VN_CHECK_OK(t, bt_open_image(b, o->dir, sectors)))
		return -1;
	if (o->queue_iothreads) {
		if (!VN_CHECK_OK(t, vn_iothread_new(&icfg, &b->it2)) ||
		    !VN_CHECK_OK(t, vn_iothread_start(b->it2)))
			return -1;
		b->its[0] = b->it;
		b->its[1] = b->it2;
		cfg.queue_iothreads = b->its;
		cfg.nr_queue_iothreads = 2;
	}
	cfg.name = "bt";
	cfg.path = b->path;
	cfg.readonly = o->readonly;
	cfg.direct = o->direct;
	cfg.nr_queues = b->nq;
	cfg.serial = o->serial;
	cfg.backend = o->backend;
	cfg.iothread = o->queue_iothreads ? NULL : b->it;
	cfg.discard = o->discard;
	cfg.write_zeroes = o->write_zeroes;
	cfg.seg_max = o->seg_max;
	cfg.blk_size = o->blk_size;
	r = vn_blk_new(&cfg, &b->blk);
	if (r < 0 && o->backend == VN_BLK_BACKEND_URING && r != -EINVAL && r != -ENOMEM) {
		/* Seccomp, io_uring_disabled or an old kernel: the pool covers this host. */
		vn_t_skip(t, "io_uring unavailable: %s", strerror(-r));
		return 1;
	}
	if (!VN_CHECK_OK(t, r))
		return r;
	b->vdev = vn_blk_vdev(b->blk);
	/* the test plays the transport: it binds the guest memory */
	if (!VN_CHECK_OK(t, vn_vdev_bind_mem(b->vdev, &b->mem)))
		return -1;
	if (o->backend != VN_BLK_BACKEND_AUTO &&
	    !VN_CHECK(t, strcmp(vn_blk_backend_name(b->blk), bt_backend_name(o->backend)) == 0))
		return -1;
	if (!VN_CHECK_EQ_INT(t, bt_driver_init(b), 0))
		return -1;
	return 0;
}

static inline void bt_fini(struct bt *b)
{
	vn_blk_free(b->blk);
	b->blk = NULL;
	vn_iothread_free(b->it);
	b->it = NULL;
	vn_iothread_free(b->it2);
	b->it2 = NULL;
	vn_gmem_destroy(&b->mem);
	if (b->img >= 0)
		close(b->img);
	b->img = -1;
	if (b->path[0])
		unlink(b->path);
	b->path[0] = 0;
}

static inline void bt_w(struct bt *b, uint64_t gpa, const void *p, size_t len)
{
	VN_BUG_ON(vn_gmem_write(&b->mem, gpa, p, len) != 0);
}

static inline void bt_r(struct bt *b, uint64_t gpa, void *p, size_t len)
{
	VN_BUG_ON(vn_gmem_read(&b->mem, gpa, p, len) != 0);
}

/*
 * Put a chain made of @segs on queue @q, direct (or through one indirect
 * table with @indirect), and make it available. Return: its head.
 */
static inline uint16_t bt_add(struct bt *b, unsigned int q, const struct bt_seg *segs,
			      unsigned int n, bool indirect)
{
	uint16_t head = b->next_desc[q] % BT_NUM;
	uint64_t table = indirect ? BT_IND(q, head % 64) : BT_DESC(q);
	uint16_t le;

	for (unsigned int i = 0; i < n; i++) {
		uint16_t idx = indirect ? (uint16_t)i : (uint16_t)((head + i) % BT_NUM);
		uint16_t nxt = indirect ? (uint16_t)(i + 1) : (uint16_t)((head + i + 1) % BT_NUM);
		struct vring_desc d = {
			.addr = htole64(segs[i].gpa),
			.len = htole32(segs[i].len),
			.flags = htole16((uint16_t)((i + 1 < n ? VRING_DESC_F_NEXT : 0) |
						    (segs[i].in ? VRING_DESC_F_WRITE : 0))),
			.next = htole16(i + 1 < n ? nxt : 0),
		};

		bt_w(b, table + 16ull * idx, &d, sizeof(d));
	}
	if (indirect) {
		struct vring_desc d = {
			.addr = htole64(table),
			.len = htole32(16u * n),
			.flags = htole16(VRING_DESC_F_INDIRECT),
		};

		bt_w(b, BT_DESC(q) + 16ull * head, &d, sizeof(d));
		b->next_desc[q] = (uint16_t)(b->next_desc[q] + 1);
	} else {
		b->next_desc[q] = (uint16_t)(b->next_desc[q] + n);
	}
	le = htole16(head);
	bt_w(b, BT_AVAIL(q) + 4 + 2ull * (b->avail_idx[q] % BT_NUM), &le, 2);
	b->avail_idx[q]++;
	VN_BUG_ON(vn_gmem_store_le16_release(&b->mem, BT_AVAIL(q) + 2, b->avail_idx[q]) != 0);
	return head;
}

/* The vCPU's synchronous exit: run the handler under the queue's run lock. */
static inline int bt_kick(struct bt *b, unsigned int q)
{
	int r;

	vn_vdev_queue_lock(b->vdev, q);
	r = vn_vdev_queue_kick(b->vdev, q);
	vn_vdev_queue_unlock(b->vdev, q);
	return r;
}

static inline uint16_t bt_used_idx(struct bt *b, unsigned int q)
{
	uint16_t v = 0;

	VN_BUG_ON(vn_gmem_load_le16_acquire(&b->mem, BT_USED(q) + 2, &v) != 0);
	return v;
}

/* Wait until @n more chains are used on @q. Return: true if they were. */
static inline bool bt_wait_used(struct bt *b, unsigned int q, unsigned int n)
{
	uint16_t want = (uint16_t)(b->used_seen[q] + n);

	return VN_WAIT_FOR((uint16_t)(bt_used_idx(b, q) - want) < 0x8000, 10000);
}

/* The next used element of @q (after bt_wait_used()). */
static inline void bt_pop_used(struct bt *b, unsigned int q, uint16_t *id, uint32_t *len)
{
	struct vring_used_elem e;

	bt_r(b, BT_USED(q) + 4 + 8ull * (b->used_seen[q] % BT_NUM), &e, sizeof(e));
	b->used_seen[q]++;
	*id = (uint16_t)le32toh(e.id);
	*len = le32toh(e.len);
}

static inline bool bt_needs_reset(struct bt *b)
{
	return vn_vdev_get_status(b->vdev) & VIRTIO_CONFIG_S_NEEDS_RESET;
}

/*
 * Queue a request: header {type, sector}, then @segs, then the status byte.
 * Return: the head.
 */
static inline uint16_t bt_queue_req(struct bt *b, unsigned int q, uint32_t type, uint64_t sector,
				    const struct bt_seg *data, unsigned int n, bool indirect)
{
	struct bt_seg segs[64];
	uint16_t slot = b->next_desc[q] % BT_NUM;
	struct virtio_blk_outhdr h = {
		.type = htole32(type),
		.ioprio = 0,
		.sector = htole64(sector),
	};
	uint8_t poison = 0xee;

	VN_BUG_ON(n + 2 > 64);
	bt_w(b, BT_HDR(q, slot), &h, sizeof(h));
	bt_w(b, BT_STAT(q, slot), &poison, 1);
	segs[0] = (struct bt_seg){.gpa = BT_HDR(q, slot), .len = sizeof(h)};
	for (unsigned int i = 0; i < n; i++)
		segs[1 + i] = data[i];
	segs[n + 1] = (struct bt_seg){.gpa = BT_STAT(q, slot), .len = 1, .in = true};
	return bt_add(b, q, segs, n + 2, indirect);
}

static inline uint8_t bt_status(struct bt *b, unsigned int q, uint16_t head)
{
	uint8_t s;

	bt_r(b, BT_STAT(q, head), &s, 1);
	return s;
}

/*
 * One request, start to finish: queue, kick, wait, check the used element.
 * Return: the status byte, or -1 if it never completed.
 */
static inline int bt_req(struct vn_t *t, struct bt *b, unsigned int q, uint32_t type,
			 uint64_t sector, const struct bt_seg *data, unsigned int n)
{
	uint16_t head = bt_queue_req(b, q, type, sector, data, n, false), id;
	uint32_t len;

	if (!VN_CHECK_EQ_INT(t, bt_kick(b, q), 1))
		return -1;
	if (!VN_CHECK(t, bt_wait_used(b, q, 1)))
		return -1;
	bt_pop_used(b, q, &id, &len);
	VN_CHECK_EQ_U(t, id, head);
	return bt_status(b, q, head);
}

/* Read/write helpers: one data segment of @len bytes at guest @gpa. */
static inline int bt_rw(struct vn_t *t, struct bt *b, unsigned int q, bool write, uint64_t sector,
			uint64_t gpa, uint32_t len)
{
	struct bt_seg d = {.gpa = gpa, .len = len, .in = !write};

	return bt_req(t, b, q, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, sector, &d, 1);
}

static inline int bt_dwz(struct vn_t *t, struct bt *b, uint32_t type, uint64_t sector, uint32_t num,
			 uint32_t flags)
{
	struct virtio_blk_discard_write_zeroes s = {
		.sector = htole64(sector),
		.num_sectors = htole32(num),
		.flags = htole32(flags),
	};
	struct bt_seg d = {.gpa = BT_DATA + 0x600000, .len = sizeof(s)};

	bt_w(b, d.gpa, &s, sizeof(s));
	return bt_req(t, b, 0, type, 0, &d, 1);
}

static inline void bt_fill(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((i * 131u + seed * 7u + (i >> 9)) & 0xff);
}

/* Does the image hold @len bytes of @want at byte @off (read through another fd)? */
static inline bool bt_image_is(struct bt *b, uint64_t off, const void *want, size_t len)
{
	uint8_t *buf = malloc(len);
	bool ok;

	VN_BUG_ON(!buf);
	ok = pread(b->img, buf, len, (off_t)off) == (ssize_t)len && memcmp(buf, want, len) == 0;
	free(buf);
	return ok;
}

static inline bool bt_image_zero(struct bt *b, uint64_t off, size_t len)
{
	uint8_t *z = calloc(1, len);
	bool ok;

	VN_BUG_ON(!z);
	ok = bt_image_is(b, off, z, len);
	free(z);
	return ok;
}

/* The test's own reset, as a driver writing status 0 from a vCPU. */
static inline void bt_reset(struct bt *b)
{
	vn_vdev_lock(b->vdev);
	vn_vdev_reset(b->vdev);
	vn_vdev_unlock(b->vdev);
}

/* Read (and clear) an eventfd without blocking: true if it was signalled. */
static inline bool bt_fd_fired(int fd)
{
	uint64_t c;

	return read(fd, &c, sizeof(c)) == (ssize_t)sizeof(c) && c > 0;
}

/* Run @fn once per backend: the suite must hold for both. */
#define BT_BOTH(fn)                                                                                \
	static void fn##_uring(struct vn_t *t)                                                     \
	{                                                                                          \
		fn(t, VN_BLK_BACKEND_URING);                                                       \
	}                                                                                          \
	static void fn##_pool(struct vn_t *t)                                                      \
	{                                                                                          \
		fn(t, VN_BLK_BACKEND_POOL);                                                        \
	}
#define BT_TESTS_BOTH(fn) VN_TEST(fn##_uring), VN_TEST(fn##_pool)

#endif
