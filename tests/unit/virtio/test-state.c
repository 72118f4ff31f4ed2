/* SPDX-License-Identifier: MIT */
/* Device state save/load: round trip, and every refusal leaves the device untouched. */
#include <pthread.h>
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
		.nr_vectors = 2,
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

/* ---- sections ---- */

/* Offset of section (@id, @inst) in @buf, or -1. */
static long find_sec(const uint8_t *buf, size_t n, uint16_t id, uint16_t inst)
{
	size_t off = VN_STATE_HDR_LEN;

	while (off + VN_STATE_SEC_HDR_LEN <= n) {
		uint16_t sid = (uint16_t)(buf[off] | buf[off + 1] << 8);
		uint16_t sin = (uint16_t)(buf[off + 2] | buf[off + 3] << 8);
		uint32_t len = (uint32_t)buf[off + 8] | (uint32_t)buf[off + 9] << 8 |
			       (uint32_t)buf[off + 10] << 16 | (uint32_t)buf[off + 11] << 24;

		if (sid == id && sin == inst)
			return (long)off;
		off += VN_STATE_SEC_HDR_LEN + len;
	}
	return -1;
}

/* Load @buf into @d and check the refusal names @want (and changes nothing). */
static void expect_refused(struct vn_t *t, struct vn_vdev *d, const uint8_t *buf, size_t n,
			   const char *want, const char *what)
{
	uint8_t before[1024], after[1024];
	const char *field = NULL;
	int nb = vn_state_save(d, before, sizeof(before));

	if (!VN_CHECK_EQ_INT(t, vn_state_load(d, buf, n, &field), -EINVAL)) {
		vn_t_diag("case %s", what);
		return;
	}
	if (!field || strcmp(field, want) != 0)
		vn_t_fail(t, __FILE__, __LINE__, "case %s: field %s, want %s", what,
			  field ? field : "(null)", want);
	VN_CHECK_EQ_INT(t, vn_state_save(d, after, sizeof(after)), nb);
	if (nb > 0 && memcmp(before, after, (size_t)nb) != 0)
		vn_t_fail(t, __FILE__, __LINE__, "case %s: device changed", what);
}

/* Insert a section header + @plen bytes of @fill at @at; returns the new length. */
static size_t insert_sec(uint8_t *buf, size_t n, size_t at, uint16_t id, uint16_t inst,
			 uint16_t ver, uint32_t plen, uint8_t fill)
{
	memmove(buf + at + VN_STATE_SEC_HDR_LEN + plen, buf + at, n - at);
	put_le(buf + at, 2, id);
	put_le(buf + at + 2, 2, inst);
	put_le(buf + at + 4, 2, ver);
	put_le(buf + at + 6, 2, 0);
	put_le(buf + at + 8, 4, plen);
	memset(buf + at + VN_STATE_SEC_HDR_LEN, fill, plen);
	return n + VN_STATE_SEC_HDR_LEN + plen;
}

/* A newer writer's sections (unknown id, or a queue this device lacks) are skipped. */
static void test_unknown_section_skipped(struct vn_t *t)
{
	struct vt v;
	struct vn_vdev *d;
	uint8_t buf[1024];
	long q0;
	size_t n;
	int r;

	if (make_source(t, &v) || make_dest(t, &v, &d))
		return;
	r = vn_state_save(v.vdev, buf, sizeof(buf));
	VN_REQUIRE(t, r > 0);
	n = (size_t)r;
	q0 = find_sec(buf, n, VN_STATE_SEC_QUEUE, 0);
	VN_REQUIRE(t, q0 > 0);
	n = insert_sec(buf, n, (size_t)q0, 99, 0, 7, 5, 0xee);         /* in the middle */
	n = insert_sec(buf, n, n, VN_STATE_SEC_QUEUE, 9, 1, 36, 0xff);  /* a queue we lack */
	n = insert_sec(buf, n, n, 77, 3, 1, 0, 0);                      /* empty, at the end */
	VN_CHECK_OK(t, vn_state_load(d, buf, n, NULL));
	VN_CHECK_EQ_U(t, vn_vq_last_avail(vn_vdev_queue(d, 0)), 3);
	vn_vdev_free(d);
	vt_fini(&v);
}

/* A known section that is truncated, oversized, of another version, repeated or missing. */
static void test_bad_section_refused(struct vn_t *t)
{
	struct vt v;
	struct vn_vdev *d;
	uint8_t good[1024], bad[1024];
	long q0, q1;
	size_t n;
	int r;

	if (make_source(t, &v) || make_dest(t, &v, &d))
		return;
	r = vn_state_save(v.vdev, good, sizeof(good));
	VN_REQUIRE(t, r > 0);
	n = (size_t)r;
	q0 = find_sec(good, n, VN_STATE_SEC_QUEUE, 0);
	q1 = find_sec(good, n, VN_STATE_SEC_QUEUE, 1);
	VN_REQUIRE(t, q0 > 0 && q1 > q0);

	/* truncated: the last section runs past the end of the stream */
	expect_refused(t, d, good, n - 1, "queue[1].length", "truncated");
	/* its length says more than the stream holds */
	memcpy(bad, good, n);
	put_le(bad + q1 + 8, 4, 37);
	expect_refused(t, d, bad, n, "queue[1].length", "length past the end");
	/* oversized: a queue section with a byte more than its version has */
	memcpy(bad, good, n);
	memmove(bad + q1 + 1, bad + q1, n - (size_t)q1);
	put_le(bad + q0 + 8, 4, 37);
	expect_refused(t, d, bad, n + 1, "queue[0].length", "oversized");
	/* and a short one */
	memcpy(bad, good, n);
	put_le(bad + q0 + 8, 4, 35);
	memmove(bad + q1 - 1, bad + q1, n - (size_t)q1);
	expect_refused(t, d, bad, n - 1, "queue[0].length", "short");
	/* a version this reader does not know */
	memcpy(bad, good, n);
	put_le(bad + q0 + 4, 2, 2);
	expect_refused(t, d, bad, n, "queue[0].version", "queue version");
	memcpy(bad, good, n);
	put_le(bad + VN_STATE_HDR_LEN + 4, 2, 9);
	expect_refused(t, d, bad, n, "core.version", "core version");
	/* the same queue twice */
	memcpy(bad, good, n);
	put_le(bad + q1 + 2, 2, 0);
	expect_refused(t, d, bad, n, "queue[0].repeated", "repeated");
	/* a queue missing: the stream ends after queue 0 */
	expect_refused(t, d, good, (size_t)q1, "queue[1]", "missing queue");
	VN_CHECK_OK(t, vn_state_load(d, good, n, NULL));
	vn_vdev_free(d);
	vt_fini(&v);
}

/* ---- a device type's section and a registered (transport) section ---- */

struct dt {
	uint32_t value;
	bool busy;
	int loads;
};

static struct dt *dt_of(struct vn_vdev *vdev)
{
	return vn_vdev_opaque(vdev);
}

static size_t dt_size(struct vn_vdev *vdev)
{
	return 4;
}

static int dt_save(struct vn_vdev *vdev, void *buf, size_t len)
{
	if (dt_of(vdev)->busy)
		return -EBUSY;
	put_le(buf, 4, dt_of(vdev)->value);
	return 0;
}

static int dt_check(struct vn_vdev *vdev, unsigned int version, const void *buf, size_t len,
		    const char **field)
{
	const uint8_t *p = buf;

	*field = "version";
	if (version != 1)
		return -EINVAL;
	*field = "length";
	if (len != 4)
		return -EINVAL;
	*field = "value";
	if (p[3] != 0)
		return -EINVAL; /* below 2^24 */
	return 0;
}

static void dt_load(struct vn_vdev *vdev, unsigned int version, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	dt_of(vdev)->value = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
	dt_of(vdev)->loads++;
}

static const struct vn_vdev_ops dt_ops = {
	.state_version = 1, .state_size = dt_size, .state_save = dt_save,
	.state_check = dt_check, .state_load = dt_load,
};

static int make_dt(struct vn_t *t, struct vn_gmem *m, struct dt *o, struct vn_vdev **out)
{
	struct vn_vdev_cfg cfg = {
		.name = "dt", .device_id = 7, .ops = &dt_ops, .opaque = o,
		.nr_queues = 1, .queue_size_max = 16, .config_len = 4, .nr_vectors = 1,
	};

	if (!VN_CHECK_OK(t, vn_vdev_new(&cfg, out)))
		return -1;
	return VN_CHECK_OK(t, vn_vdev_bind_mem(*out, m)) ? 0 : -1;
}

/* A transport-like section: 2 bytes that must be equal. */
static size_t fs_size(void *opaque)
{
	return 2;
}

static int fs_save(void *opaque, uint8_t *buf, size_t len)
{
	buf[0] = buf[1] = *(uint8_t *)opaque;
	return 0;
}

static int fs_check(void *opaque, unsigned int version, const uint8_t *buf, size_t len,
		    const char **field)
{
	*field = "length";
	if (version != 3 || len != 2)
		return -EINVAL;
	*field = "pair";
	return buf[0] == buf[1] ? 0 : -EINVAL;
}

static void fs_load(void *opaque, unsigned int version, const uint8_t *buf, size_t len)
{
	*(uint8_t *)opaque = buf[0];
}

static const struct vn_vdev_section fake_section = {
	.name = "fake-transport", .id = VN_STATE_SEC_TRANSPORT, .version = 3,
	.size = fs_size, .save = fs_save, .check = fs_check, .load = fs_load,
};

static void test_device_and_transport_sections(struct vn_t *t)
{
	struct vn_gmem m;
	struct dt so = { .value = 0x123456 }, dsto = { 0 };
	struct vn_vdev *src = NULL, *dst = NULL;
	uint8_t sx = 0x5a, dx = 0, buf[512], bad[512];
	long off;
	int n;

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	if (make_dt(t, &m, &so, &src) || make_dt(t, &m, &dsto, &dst))
		goto out;
	VN_REQUIRE_OK(t, vn_vdev_add_section(src, &fake_section, &sx));
	VN_REQUIRE_OK(t, vn_vdev_add_section(dst, &fake_section, &dx));
	VN_CHECK_EQ_INT(t, vn_vdev_add_section(dst, &fake_section, &dx), -EEXIST);
	n = vn_state_save(src, buf, sizeof(buf));
	VN_REQUIRE_EQ_INT(t, n, (int)vn_state_size(src));
	VN_REQUIRE(t, find_sec(buf, (size_t)n, VN_STATE_SEC_DEVICE, 0) > 0);
	VN_REQUIRE(t, find_sec(buf, (size_t)n, VN_STATE_SEC_TRANSPORT, 0) > 0);
	VN_REQUIRE_OK(t, vn_state_load(dst, buf, (size_t)n, NULL));
	VN_CHECK_EQ_U(t, dsto.value, 0x123456);
	VN_CHECK_EQ_U(t, dsto.loads, 1);
	VN_CHECK_EQ_U(t, dx, 0x5a);

	/* each owner's refusal carries its section's name */
	off = find_sec(buf, (size_t)n, VN_STATE_SEC_DEVICE, 0);
	memcpy(bad, buf, (size_t)n);
	bad[off + VN_STATE_SEC_HDR_LEN + 3] = 1;
	expect_refused(t, dst, bad, (size_t)n, "device.value", "device value");
	memcpy(bad, buf, (size_t)n);
	put_le(bad + off + 4, 2, 2);
	expect_refused(t, dst, bad, (size_t)n, "device.version", "device version");
	off = find_sec(buf, (size_t)n, VN_STATE_SEC_TRANSPORT, 0);
	memcpy(bad, buf, (size_t)n);
	bad[off + VN_STATE_SEC_HDR_LEN + 1] ^= 1;
	expect_refused(t, dst, bad, (size_t)n, "fake-transport.pair", "transport");
	VN_CHECK_EQ_U(t, dsto.loads, 1);
	/* a stream without the transport's section is incomplete */
	VN_CHECK_OK(t, vn_vdev_remove_section(src, &fake_section, &sx));
	n = vn_state_save(src, buf, sizeof(buf));
	VN_REQUIRE(t, n > 0);
	expect_refused(t, dst, buf, (size_t)n, "fake-transport", "missing transport");

	/* saving needs a quiesced device: an owner with work in flight refuses */
	so.busy = true;
	VN_CHECK_EQ_INT(t, vn_state_save(src, buf, sizeof(buf)), -EBUSY);
	so.busy = false;
	VN_CHECK(t, vn_state_save(src, buf, sizeof(buf)) > 0);
out:
	vn_vdev_free(src);
	vn_vdev_free(dst);
	vn_gmem_destroy(&m);
}

/* Saving holds every queue's run lock: a queue thread in the rings waits, and vice versa. */
struct saver {
	struct vn_vdev *vdev;
	uint8_t buf[1024];
	int r;
	int done;
};

static void *saver_fn(void *opaque)
{
	struct saver *s = opaque;

	vn_vdev_lock(s->vdev);
	s->r = vn_state_save(s->vdev, s->buf, sizeof(s->buf));
	vn_vdev_unlock(s->vdev);
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_save_waits_for_queue_thread(struct vn_t *t)
{
	struct vt v;
	struct saver s = { 0 };
	pthread_t th;

	if (vt_init(t, &v, RING_F))
		return;
	s.vdev = v.vdev;
	vn_vdev_queue_lock(v.vdev, 1); /* a queue thread is inside queue 1's ring */
	VN_REQUIRE(t, pthread_create(&th, NULL, saver_fn, &s) == 0);
	usleep(50 * 1000);
	VN_CHECK_EQ_INT(t, __atomic_load_n(&s.done, __ATOMIC_ACQUIRE), 0);
	vn_vdev_queue_unlock(v.vdev, 1);
	pthread_join(th, NULL);
	VN_CHECK(t, s.r > 0);
	vt_fini(&v);
}

VN_TESTS(VN_TEST(test_round_trip), VN_TEST(test_load_refuses), VN_TEST(test_loaded_hook),
	 VN_TEST(test_unknown_section_skipped), VN_TEST(test_bad_section_refused),
	 VN_TEST(test_device_and_transport_sections), VN_TEST(test_save_waits_for_queue_thread))
