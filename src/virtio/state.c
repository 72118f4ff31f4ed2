/* SPDX-License-Identifier: MIT */
#include "virtio/state.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>

#include "base/trace.h"

#define HDR_LEN 44
#define QUEUE_LEN 36

#define KNOWN_STATUS                                                                       \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK | \
	 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_FAILED)

size_t vn_state_size(const struct vn_vdev *vdev)
{
	return HDR_LEN + vdev->config_len + (size_t)QUEUE_LEN * vdev->nr_queues;
}

/* Byte writers and readers over a bounded buffer. */
struct cur {
	uint8_t *p;
	const uint8_t *rp;
	size_t left;
};

static void put(struct cur *c, const void *v, size_t n)
{
	memcpy(c->p, v, n);
	c->p += n;
}

static void put8(struct cur *c, uint8_t v)
{
	put(c, &v, 1);
}

static void put16(struct cur *c, uint16_t v)
{
	v = htole16(v);
	put(c, &v, 2);
}

static void put32(struct cur *c, uint32_t v)
{
	v = htole32(v);
	put(c, &v, 4);
}

static void put64(struct cur *c, uint64_t v)
{
	v = htole64(v);
	put(c, &v, 8);
}

int vn_state_save(struct vn_vdev *vdev, void *buf, size_t cap)
{
	size_t need = vn_state_size(vdev);
	struct cur c = { .p = buf };

	if (cap < need || need > INT32_MAX)
		return -ENOSPC;
	put32(&c, VN_STATE_MAGIC);
	put16(&c, VN_STATE_VERSION);
	put16(&c, 0);
	put32(&c, vdev->device_id);
	put16(&c, (uint16_t)vdev->nr_queues);
	put16(&c, vn_vdev_config_vector(vdev));
	put64(&c, vdev->device_features);
	put64(&c, vdev->driver_features);
	put8(&c, __atomic_load_n(&vdev->status, __ATOMIC_ACQUIRE));
	put8(&c, __atomic_load_n(&vdev->needs_reset, __ATOMIC_ACQUIRE));
	put8(&c, __atomic_load_n(&vdev->isr, __ATOMIC_ACQUIRE));
	put8(&c, 0);
	pthread_mutex_lock(&vdev->config_lock);
	put32(&c, vdev->config_generation);
	put32(&c, vdev->config_len);
	put(&c, vdev->config, vdev->config_len);
	pthread_mutex_unlock(&vdev->config_lock);
	for (unsigned int i = 0; i < vdev->nr_queues; i++) {
		struct vn_vq_state st;

		vn_vq_get_state(vn_vdev_queue(vdev, i), &st);
		put16(&c, st.num);
		put8(&c, st.ready);
		put8(&c, 0);
		put16(&c, vn_vdev_queue_vector(vdev, i));
		put16(&c, st.last_avail_idx);
		put16(&c, st.used_idx);
		put16(&c, 0);
		put64(&c, st.desc);
		put64(&c, st.avail);
		put64(&c, st.used);
	}
	VN_BUG_ON((size_t)(c.p - (uint8_t *)buf) != need);
	return (int)need;
}

static const uint8_t *take(struct cur *c, size_t n)
{
	const uint8_t *p = c->rp;

	if (c->left < n)
		return NULL;
	c->rp += n;
	c->left -= n;
	return p;
}

/* The caller checked the length up front, so these never run short. */
static uint8_t get8(struct cur *c)
{
	return *take(c, 1);
}

static uint16_t get16(struct cur *c)
{
	uint16_t v;

	memcpy(&v, take(c, 2), 2);
	return le16toh(v);
}

static uint32_t get32(struct cur *c)
{
	uint32_t v;

	memcpy(&v, take(c, 4), 4);
	return le32toh(v);
}

static uint64_t get64(struct cur *c)
{
	uint64_t v;

	memcpy(&v, take(c, 8), 8);
	return le64toh(v);
}

struct loaded {
	uint64_t device_features, driver_features;
	uint8_t status, needs_reset, isr;
	uint16_t config_vector;
	uint32_t config_generation;
	const uint8_t *config;
	struct vn_vq_state *q;
	uint16_t *vectors;
};

static bool vector_ok(const struct vn_vdev *vdev, uint16_t v)
{
	return v == VN_VDEV_NO_VECTOR || v < vdev->nr_vectors;
}

/* Parses and checks; touches nothing in @vdev. *field names what was wrong. */
static int parse(struct vn_vdev *vdev, const void *buf, size_t len, struct loaded *l,
		 const char **field, char *qfield, size_t qfield_len)
{
	struct cur c = { .rp = buf, .left = len };
	const uint64_t ver1 = 1ull << VIRTIO_F_VERSION_1;
	uint32_t config_len;
	uint16_t nq;
	int r;

	*field = "length";
	if (len < HDR_LEN)
		return -EINVAL;
	*field = "magic";
	if (get32(&c) != VN_STATE_MAGIC)
		return -EINVAL;
	*field = "version";
	if (get16(&c) != VN_STATE_VERSION || get16(&c) != 0)
		return -EINVAL;
	*field = "device_id";
	if (get32(&c) != vdev->device_id)
		return -EINVAL;
	*field = "nr_queues";
	nq = get16(&c);
	if (nq != vdev->nr_queues)
		return -EINVAL;
	*field = "config_vector";
	l->config_vector = get16(&c);
	if (!vector_ok(vdev, l->config_vector))
		return -EINVAL;
	*field = "device_features";
	l->device_features = get64(&c);
	if (l->device_features & ~vdev->device_features)
		return -EINVAL;
	*field = "driver_features";
	l->driver_features = get64(&c);
	if (l->driver_features & ~l->device_features)
		return -EINVAL;
	*field = "status";
	l->status = get8(&c);
	if (l->status & ~KNOWN_STATUS)
		return -EINVAL;
	if ((l->status & VIRTIO_CONFIG_S_FEATURES_OK) && !(l->driver_features & ver1))
		return -EINVAL;
	if ((l->status & VIRTIO_CONFIG_S_DRIVER_OK) && (l->driver_features & ver1) &&
	    !(l->status & VIRTIO_CONFIG_S_FEATURES_OK))
		return -EINVAL;
	*field = "needs_reset";
	l->needs_reset = get8(&c);
	if (l->needs_reset > 1)
		return -EINVAL;
	*field = "isr";
	l->isr = get8(&c);
	if (l->isr & ~(VN_VDEV_ISR_QUEUE | VN_VDEV_ISR_CONFIG) || get8(&c) != 0)
		return -EINVAL;
	l->config_generation = get32(&c);
	*field = "config_len";
	config_len = get32(&c);
	if (config_len != vdev->config_len)
		return -EINVAL;
	*field = "length";
	if (len != vn_state_size(vdev))
		return -EINVAL;
	l->config = take(&c, config_len);
	for (unsigned int i = 0; i < nq; i++) {
		struct vn_vq_state *st = &l->q[i];
		const char *qf;
		uint8_t ready;

		st->num = get16(&c);
		ready = get8(&c);
		st->ready = ready;
		(void)get8(&c);
		l->vectors[i] = get16(&c);
		st->last_avail_idx = get16(&c);
		st->used_idx = get16(&c);
		(void)get16(&c);
		st->desc = get64(&c);
		st->avail = get64(&c);
		st->used = get64(&c);
		*field = qfield;
		snprintf(qfield, qfield_len, "queue[%u].ready", i);
		if (ready > 1)
			return -EINVAL;
		snprintf(qfield, qfield_len, "queue[%u].vector", i);
		if (!vector_ok(vdev, l->vectors[i]))
			return -EINVAL;
		r = vn_vq_check_state(vn_vdev_queue(vdev, i), st, &qf);
		if (r < 0) {
			snprintf(qfield, qfield_len, "queue[%u].%s", i, qf);
			return -EINVAL;
		}
	}
	return 0;
}

int vn_state_load(struct vn_vdev *vdev, const void *buf, size_t len, const char **bad_field)
{
	static __thread char qfield[48];
	struct loaded l = { 0 };
	const char *field = "";
	int r = -ENOMEM;

	l.q = calloc(vdev->nr_queues, sizeof(l.q[0]));
	l.vectors = calloc(vdev->nr_queues, sizeof(l.vectors[0]));
	if (!l.q || !l.vectors)
		goto out;
	r = parse(vdev, buf, len, &l, &field, qfield, sizeof(qfield));
	if (r < 0) {
		vn_log(VN_LOG_ERR, "state", "%s: load refused: field %s is invalid", vdev->name,
		       field);
		if (bad_field)
			*bad_field = field;
		goto out;
	}
	vn_vdev_load_apply(vdev, l.driver_features, l.status, l.needs_reset, l.isr,
			   l.config_vector, l.config_generation, l.config);
	for (unsigned int i = 0; i < vdev->nr_queues; i++) {
		vn_vq_set_state(vn_vdev_queue(vdev, i), &l.q[i]);
		VN_BUG_ON(vn_vdev_queue_set_vector(vdev, i, l.vectors[i]) < 0); /* checked */
	}
	vn_trace(vdev_load, "dev=%s status=0x%02x", vdev->name, l.status);
	vn_vdev_run_loaded_hooks(vdev);
out:
	free(l.q);
	free(l.vectors);
	return r;
}
