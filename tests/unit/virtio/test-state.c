/* SPDX-License-Identifier: MIT */
/* Device state save/load: round trip, and every refusal leaves the device untouched. */
#include <stdlib.h>

#include "vtest.h"
#include "virtio/state.h"

#define RING_F (F(VIRTIO_RING_F_INDIRECT_DESC) | F(VIRTIO_RING_F_EVENT_IDX))

/* A source device with traffic: 3 chains popped, 2 pushed, config written. */
static int make_source(struct vn_t *t, struct vt *v)
{
	struct vn_vq_elem e;
	uint8_t c[8] = { 9, 8, 7, 6, 5, 4, 3, 2 };

	if (vt_init(t, v, RING_F))
		return -1;
	for (uint16_t i = 0; i < 3; i++) {
		vt_desc(v, VT_DESC, i, VT_BUF, 16, VRING_DESC_F_WRITE, 0);
		vt_avail(v, i);
		if (!VN_CHECK_EQ_INT(t, vt_pop(v, &e), 1))
			return -1;
	}
	vt_avail(v, 3); /* available, not popped */
	if (!VN_CHECK_OK(t, vn_vq_push(v->vq, 0, 1)) || !VN_CHECK_OK(t, vn_vq_push(v->vq, 1, 1)))
		return -1;
	return VN_CHECK_OK(t, vn_vdev_config_update(v->vdev, 0, c, 8)) ? 0 : -1;
}

/* A fresh device over the same guest memory (the memory is migrated separately). */
static int make_dest(struct vn_t *t, struct vt *src, struct vn_vdev **out)
{
	struct vn_vdev_cfg cfg = {
		.name = "dst", .device_id = 42, .ops = src->vdev->ops,
		.features = RING_F, .nr_queues = 2, .queue_size_max = 256, .config_len = 8,
		.nr_vectors = 2, .msix = true,
	};

	if (!VN_CHECK_OK(t, vn_vdev_new(&cfg, out)))
		return -1;
	return VN_CHECK_OK(t, vn_vdev_bind_mem(*out, &src->mem)) ? 0 : -1;
}

static void test_round_trip(struct vn_t *t)
{
	struct vt v;
	struct vn_vdev *d;
	struct vn_vq *q;
	uint8_t buf[512], buf2[512], c[8];
	struct vn_vq_elem e;
	int n;

	if (make_source(t, &v) || make_dest(t, &v, &d))
		return;
	VN_CHECK_EQ_INT(t, vn_state_save(v.vdev, buf, 10), -ENOSPC);
	n = vn_state_save(v.vdev, buf, sizeof(buf));
	VN_REQUIRE_EQ_INT(t, n, (int)vn_state_size(v.vdev));
	VN_REQUIRE_OK(t, vn_state_load(d, buf, (size_t)n, NULL));
	VN_CHECK_EQ_U(t, vn_vdev_get_status(d), vn_vdev_get_status(v.vdev));
	VN_CHECK_EQ_U(t, vn_vdev_driver_features(d), vn_vdev_driver_features(v.vdev));
	VN_CHECK_EQ_U(t, vn_vdev_config_generation(d), vn_vdev_config_generation(v.vdev));
	VN_CHECK_OK(t, vn_vdev_config_read(d, 0, c, 8));
	VN_CHECK_EQ_U(t, c[0], 9);
	q = vn_vdev_queue(d, 0);
	VN_CHECK(t, vn_vq_is_ready(q));
	VN_CHECK(t, q->event_idx && q->indirect);
	VN_CHECK_EQ_U(t, q->last_avail_idx, 3);
	VN_CHECK_EQ_U(t, q->used_idx, 2);
	VN_CHECK_EQ_U(t, vn_vdev_queue_vector(d, 0), 0);
	VN_CHECK_EQ_U(t, vn_vdev_config_vector(d), 1);
	/* saving the loaded device gives the same stream */
	VN_CHECK_EQ_INT(t, vn_state_save(d, buf2, sizeof(buf2)), n);
	VN_CHECK(t, memcmp(buf, buf2, (size_t)n) == 0);
	/* and the destination carries on where the source stopped */
	memset(&e, 0, sizeof(e));
	e.iov = v.s.iov;
	e.iov_cap = 8;
	VN_CHECK_EQ_INT(t, vn_vq_pop(q, &e), 1);
	VN_CHECK_EQ_U(t, e.head, 3);
	VN_CHECK_OK(t, vn_vq_push(q, 2, 5));
	VN_CHECK_EQ_U(t, vt_le16(&v, VT_USED + 2), 3);
	vn_vdev_free(d);
	vt_fini(&v);
}

/* Offsets in the stream (see state.h): header, core section, queue 0's section */
#define OFF_MAGIC 0
#define OFF_VERSION 4
#define OFF_CORE (8 + 12)
#define OFF_DEVID (OFF_CORE + 0)
#define OFF_NQ (OFF_CORE + 4)
#define OFF_CFGVEC (OFF_CORE + 6)
#define OFF_DEVF (OFF_CORE + 8)
#define OFF_DRVF (OFF_CORE + 16)
#define OFF_STATUS (OFF_CORE + 24)
#define OFF_NR (OFF_CORE + 25)
#define OFF_ISR (OFF_CORE + 26)
#define OFF_CFGLEN (OFF_CORE + 32)
#define OFF_Q0 (OFF_CORE + 36 + 8 + 12)
#define Q_READY 1
#define Q_NUM 2
#define Q_VEC 4
#define Q_USED 6
#define Q_LAST 8 /* the vring base: last_avail_idx for a split ring */
#define Q_DESC 12
#define Q_AVAIL 20

struct bad {
	const char *name;
	size_t off;
	unsigned int width;
	uint64_t value;
	const char *field;
};

static const struct bad bads[] = {
	{ "magic", OFF_MAGIC, 4, 0x12345678, "magic" },
	{ "version", OFF_VERSION, 2, 1, "version" }, /* 1: the old fixed-layout stream */
	{ "device id", OFF_DEVID, 4, 1, "device_id" },
	{ "queue count", OFF_NQ, 2, 3, "nr_queues" },
	{ "config vector", OFF_CFGVEC, 2, 7, "config_vector" },
	{ "device features", OFF_DEVF, 8, 1ull << 50, "device_features" },
	{ "driver features", OFF_DRVF, 8, F(VIRTIO_F_VERSION_1) | F(3), "driver_features" },
	{ "status bits", OFF_STATUS, 1, 0x1f | 0x20, "status" },
	{ "driver ok without features ok", OFF_STATUS, 1, 0x7, "status" },
	{ "needs reset", OFF_NR, 1, 2, "needs_reset" },
	{ "isr", OFF_ISR, 1, 4, "isr" },
	{ "config len", OFF_CFGLEN, 4, 16, "config_len" },
	{ "queue num", OFF_Q0 + Q_NUM, 2, 48, "queue[0].num" },
	{ "queue num too big", OFF_Q0 + Q_NUM, 2, 512, "queue[0].num" },
	{ "queue ready", OFF_Q0 + Q_READY, 1, 3, "queue[0].ready" },
	{ "queue vector", OFF_Q0 + Q_VEC, 2, 2, "queue[0].vector" },
	{ "last avail ahead of guest", OFF_Q0 + Q_LAST, 2, 0, "queue[0].used_idx" },
	{ "last avail past guest", OFF_Q0 + Q_LAST, 2, 5, "queue[0].last_avail_idx" },
	{ "used idx disagrees", OFF_Q0 + Q_USED, 2, 1, "queue[0].used_idx" },
	{ "desc misaligned", OFF_Q0 + Q_DESC, 8, VT_DESC + 8, "queue[0].desc" },
	{ "avail outside memory", OFF_Q0 + Q_AVAIL, 8, VT_GPA + VT_SIZE, "queue[0].avail" },
};

static void put_le(uint8_t *p, unsigned int w, uint64_t v)
{
	for (unsigned int i = 0; i < w; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void test_load_refuses(struct vn_t *t)
{
	struct vt v;
	struct vn_vdev *d;
	uint8_t good[512], bad[512], before[512], after[512];
	int n, nb;

	if (make_source(t, &v) || make_dest(t, &v, &d))
		return;
	n = vn_state_save(v.vdev, good, sizeof(good));
	VN_REQUIRE(t, n > 0);
	nb = vn_state_save(d, before, sizeof(before));
	for (size_t i = 0; i < VN_ARRAY_SIZE(bads); i++) {
		const char *field = NULL;

		memcpy(bad, good, (size_t)n);
		put_le(bad + bads[i].off, bads[i].width, bads[i].value);
		if (!VN_CHECK_EQ_INT(t, vn_state_load(d, bad, (size_t)n, &field), -EINVAL)) {
			vn_t_diag("case %s", bads[i].name);
			continue;
		}
		if (!field || strcmp(field, bads[i].field) != 0)
			vn_t_fail(t, __FILE__, __LINE__, "case %s: field %s, want %s", bads[i].name,
				  field ? field : "(null)", bads[i].field);
		VN_CHECK_EQ_INT(t, vn_state_save(d, after, sizeof(after)), nb);
		if (memcmp(before, after, (size_t)nb) != 0)
			vn_t_fail(t, __FILE__, __LINE__, "case %s: device changed", bads[i].name);
	}
	/* short and long streams */
	const char *field = NULL;
	VN_CHECK_EQ_INT(t, vn_state_load(d, good, (size_t)n - 1, &field), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_state_load(d, good, 10, &field), -EINVAL);
	VN_CHECK(t, field && strcmp(field, "length") == 0);
	VN_CHECK_OK(t, vn_state_load(d, good, (size_t)n, NULL));
	vn_vdev_free(d);
	vt_fini(&v);
}

/* The "loaded" hook runs after a successful load only. */
static void loaded(void *opaque, struct vn_vdev *vdev)
{
	(*(int *)opaque)++;
}

static const struct vn_vdev_hooks load_hooks = { .loaded = loaded };

static void test_loaded_hook(struct vn_t *t)
{
	struct vt v;
	struct vn_vdev *d;
	uint8_t buf[512];
	int n, calls = 0;

	if (make_source(t, &v) || make_dest(t, &v, &d))
		return;
	VN_REQUIRE_OK(t, vn_vdev_add_hooks(d, &load_hooks, &calls));
	n = vn_state_save(v.vdev, buf, sizeof(buf));
	VN_REQUIRE(t, n > 0);
	buf[0] ^= 1;
	VN_CHECK_EQ_INT(t, vn_state_load(d, buf, (size_t)n, NULL), -EINVAL);
	VN_CHECK_EQ_INT(t, calls, 0);
	buf[0] ^= 1;
	VN_CHECK_OK(t, vn_state_load(d, buf, (size_t)n, NULL));
	VN_CHECK_EQ_INT(t, calls, 1);
	vn_vdev_free(d);
	vt_fini(&v);
}

VN_TESTS(VN_TEST(test_round_trip), VN_TEST(test_load_refuses), VN_TEST(test_loaded_hook))
