/* SPDX-License-Identifier: MIT */
/*
 * Shared fixture for the virtio unit tests: one memfd region of guest
 * memory, a device with one queue set up as a 1.x driver would, and raw
 * ring writers so a test can play a hostile guest (these tests link only
 * src/virtio/ and the folders below it, so not the guest driver).
 */
#ifndef VN_TESTS_VTEST_H
#define VN_TESTS_VTEST_H

#include <endian.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "harness.h"
#include "base/log.h"
#include "mem/gmem.h"
#include "virtio/vdev.h"
#include "virtio/vq.h"
#include "virtio/vq-priv.h" /* white-box: the virtio core's own tests read ring fields */

#define VT_GPA 0x100000ull          /* guest memory starts here */
#define VT_SIZE 0x100000ull         /* 1 MiB */
#define VT_DESC (VT_GPA)
#define VT_AVAIL (VT_GPA + 0x4000)
#define VT_USED (VT_GPA + 0x5000)
#define VT_IND (VT_GPA + 0x8000)    /* indirect tables */
#define VT_BUF (VT_GPA + 0x20000)   /* buffers */
#define VT_NUM 64

#define F(bit) (1ull << (bit))

struct vt {
	struct vn_gmem mem;
	struct vn_vdev *vdev;
	struct vn_vq *vq;
	unsigned int num;
	uint16_t avail_idx;
	struct vn_iov_store {
		struct iovec iov[256];
	} s;
};

static int vt_log_lines;
static char vt_last_log[512];

static void vt_sink(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
	if (strcmp(tag, "vq") == 0 || strcmp(tag, "vdev") == 0) {
		__atomic_fetch_add(&vt_log_lines, 1, __ATOMIC_RELAXED);
		snprintf(vt_last_log, sizeof(vt_last_log), "%s: %s", tag, msg);
	}
}

static const struct vn_vdev_ops vt_ops = { 0 };

static inline int vt_init_ex(struct vn_t *t, struct vt *v, uint64_t features, unsigned int num)
{
	struct vn_vdev_cfg cfg = {
		.name = "vt",
		.device_id = 42,
		.ops = &vt_ops,
		.features = features,
		.nr_queues = 2,
		.queue_size_max = 256,
		.config_len = 8,
		.nr_vectors = 2,
	};
	int r;

	memset(v, 0, sizeof(*v));
	vn_log_set_sink(vt_sink, NULL);
	vt_log_lines = 0;
	v->num = num;
	if (!VN_CHECK_OK(t, vn_gmem_init(&v->mem)))
		return -1;
	if (!VN_CHECK_OK(t, vn_gmem_add_memfd(&v->mem, VT_GPA, VT_SIZE, NULL)))
		return -1;
	if (!VN_CHECK_OK(t, vn_vdev_new(&cfg, &v->vdev)) ||
	    !VN_CHECK_OK(t, vn_vdev_bind_mem(v->vdev, &v->mem)))
		return -1;
	v->vq = vn_vdev_queue(v->vdev, 0);
	r = vn_vdev_set_status(v->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	r |= vn_vdev_set_driver_features(v->vdev, vn_vdev_device_features(v->vdev));
	r |= vn_vdev_set_status(v->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
						 VIRTIO_CONFIG_S_FEATURES_OK);
	r |= vn_vdev_queue_set_num(v->vdev, 0, num);
	r |= vn_vdev_queue_set_addr(v->vdev, 0, VT_DESC, VT_AVAIL, VT_USED);
	r |= vn_vdev_queue_set_vector(v->vdev, 0, 0);
	r |= vn_vdev_set_config_vector(v->vdev, 1);
	r |= vn_vdev_queue_enable(v->vdev, 0);
	r |= vn_vdev_set_status(v->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
						 VIRTIO_CONFIG_S_FEATURES_OK |
						 VIRTIO_CONFIG_S_DRIVER_OK);
	if (!VN_CHECK_EQ_INT(t, r, 0))
		return -1;
	return 0;
}

static inline int vt_init(struct vn_t *t, struct vt *v, uint64_t features)
{
	return vt_init_ex(t, v, features, VT_NUM);
}

static inline void vt_fini(struct vt *v)
{
	vn_vdev_free(v->vdev);
	vn_gmem_destroy(&v->mem);
	vn_log_set_sink(NULL, NULL);
}

/* Write descriptor @i of the table at @table. */
static inline void vt_desc(struct vt *v, uint64_t table, unsigned int i, uint64_t addr,
			   uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc d = {
		.addr = htole64(addr), .len = htole32(len),
		.flags = htole16(flags), .next = htole16(next),
	};

	VN_BUG_ON(vn_gmem_write(&v->mem, table + 16ull * i, &d, sizeof(d)) != 0);
}

/* Make @head available and publish the avail index. */
static inline void vt_avail(struct vt *v, uint16_t head)
{
	uint16_t le = htole16(head);

	VN_BUG_ON(vn_gmem_write(&v->mem, VT_AVAIL + 4 + 2ull * (v->avail_idx % v->num), &le, 2));
	v->avail_idx++;
	VN_BUG_ON(vn_gmem_store_le16_release(&v->mem, VT_AVAIL + 2, v->avail_idx) != 0);
}

static inline void vt_set_avail_idx(struct vt *v, uint16_t idx)
{
	v->avail_idx = idx;
	VN_BUG_ON(vn_gmem_store_le16_release(&v->mem, VT_AVAIL + 2, idx) != 0);
}

static inline int vt_pop(struct vt *v, struct vn_vq_elem *e)
{
	memset(e, 0, sizeof(*e));
	e->iov = v->s.iov;
	e->iov_cap = 256;
	return vn_vq_pop(v->vq, e);
}

static inline uint16_t vt_le16(struct vt *v, uint64_t gpa)
{
	uint16_t x = 0;

	VN_BUG_ON(vn_gmem_load_le16_acquire(&v->mem, gpa, &x) != 0);
	return x;
}

/* Read (and clear) an eventfd without blocking: 1 if it was signalled. */
static inline int vt_fd_fired(int fd)
{
	uint64_t c;

	return read(fd, &c, sizeof(c)) == (ssize_t)sizeof(c) && c > 0;
}

#endif
