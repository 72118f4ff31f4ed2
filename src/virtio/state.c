/* SPDX-License-Identifier: MIT */
/*
 * The sectioned state stream (format in state.h): the stream and section
 * framing, the core's and the queues' sections, and the calls into the
 * sections other owners registered (a transport) and the device type's.
 */
#include "virtio/state.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_config.h>

#include "base/trace.h"

#define CORE_FIXED 36u  /* core payload before the config bytes */
#define QUEUE_LEN 36u
#define CORE_VERSION 1
#define QUEUE_VERSION 1

#define KNOWN_STATUS                                                                       \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK | \
	 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_FAILED)

static bool has_device_section(const struct vn_vdev *vdev)
{
	const struct vn_vdev_ops *o = vdev->ops;

	return o->state_size && o->state_save && o->state_check && o->state_load;
}

size_t vn_state_size(const struct vn_vdev *vdev)
{
	size_t n = VN_STATE_HDR_LEN + VN_STATE_SEC_HDR_LEN + CORE_FIXED + vdev->config_len +
		   (size_t)(VN_STATE_SEC_HDR_LEN + QUEUE_LEN) * vdev->nr_queues;

	for (unsigned int i = 0; i < vdev->nr_sections; i++)
		n += VN_STATE_SEC_HDR_LEN + vdev->sections[i].s->size(vdev->sections[i].opaque);
	if (has_device_section(vdev))
		n += VN_STATE_SEC_HDR_LEN + vdev->ops->state_size((struct vn_vdev *)vdev);
	return n;
}

/* ---- writing ---- */

struct cur {
	uint8_t *p;
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

static void put_sec(struct cur *c, uint16_t id, uint16_t instance, uint16_t version, size_t len)
{
	put16(c, id);
	put16(c, instance);
	put16(c, version);
	put16(c, 0);
	put32(c, (uint32_t)len);
}

static void save_core(struct vn_vdev *vdev, struct cur *c)
{
	put_sec(c, VN_STATE_SEC_CORE, 0, CORE_VERSION, CORE_FIXED + vdev->config_len);
	put32(c, vdev->device_id);
	put16(c, (uint16_t)vdev->nr_queues);
	put16(c, vn_vdev_config_vector(vdev));
	put64(c, vdev->device_features);
	put64(c, vdev->driver_features);
	put8(c, __atomic_load_n(&vdev->status, __ATOMIC_ACQUIRE));
	put8(c, __atomic_load_n(&vdev->needs_reset, __ATOMIC_ACQUIRE));
	put8(c, __atomic_load_n(&vdev->isr, __ATOMIC_ACQUIRE));
	put8(c, 0);
	pthread_mutex_lock(&vdev->config_lock);
	put32(c, vdev->config_generation);
	put32(c, vdev->config_len);
	put(c, vdev->config, vdev->config_len);
	pthread_mutex_unlock(&vdev->config_lock);
}

static void save_queue(struct vn_vdev *vdev, unsigned int i, struct cur *c)
{
	struct vn_vq_state st;

	vn_vq_get_state(vn_vdev_queue(vdev, i), &st);
	put_sec(c, VN_STATE_SEC_QUEUE, (uint16_t)i, QUEUE_VERSION, QUEUE_LEN);
	put8(c, st.format);
	put8(c, st.ready);
	put16(c, st.num);
	put16(c, vn_vdev_queue_vector(vdev, i));
	put16(c, st.used_idx);
	put32(c, vn_vq_vring_base(&st));
	put64(c, st.desc);
	put64(c, st.avail);
	put64(c, st.used);
}

/* Everything after the queues: the registered sections, then the device type's. */
static int save_others(struct vn_vdev *vdev, struct cur *c)
{
	int r;

	for (unsigned int i = 0; i < vdev->nr_sections; i++) {
		const struct vn_vdev_section *s = vdev->sections[i].s;
		void *o = vdev->sections[i].opaque;
		size_t n = s->size(o);

		put_sec(c, s->id, (uint16_t)i, s->version, n);
		r = s->save(o, c->p, n);
		if (r < 0)
			return r;
		c->p += n;
	}
	if (has_device_section(vdev)) {
		size_t n = vdev->ops->state_size(vdev);

		put_sec(c, VN_STATE_SEC_DEVICE, 0, vdev->ops->state_version, n);
		r = vdev->ops->state_save(vdev, c->p, n);
		if (r < 0)
			return r;
		c->p += n;
	}
	return 0;
}

int vn_state_save(struct vn_vdev *vdev, void *buf, size_t cap)
{
	size_t need = vn_state_size(vdev);
	struct cur c = { .p = buf };
	int r;

	if (cap < need || need > INT32_MAX)
		return -ENOSPC;
	/*
	 * Quiesce the rings for the snapshot: with every run lock held (in
	 * queue order, as virtio-pci's MSI-X rebind takes them) no queue
	 * thread is inside a ring, so indices and in-flight counts agree.
	 */
	for (unsigned int i = 0; i < vdev->nr_queues; i++)
		vn_vdev_queue_lock(vdev, i);
	put32(&c, VN_STATE_MAGIC);
	put16(&c, VN_STATE_VERSION);
	put16(&c, 0);
	save_core(vdev, &c);
	for (unsigned int i = 0; i < vdev->nr_queues; i++)
		save_queue(vdev, i, &c);
	r = save_others(vdev, &c);
	for (unsigned int i = vdev->nr_queues; i-- > 0;)
		vn_vdev_queue_unlock(vdev, i);
	if (r < 0) {
		vn_log(VN_LOG_WARN, "state", "%s: save refused: %s (not quiesced?)", vdev->name,
		       vn_strerror(r));
		return r;
	}
	VN_BUG_ON((size_t)(c.p - (uint8_t *)buf) != need);
	return (int)need;
}

/* ---- reading ---- */

/* A bounded reader; each parser checks the length before it reads. */
struct rd {
	const uint8_t *p;
};

static uint8_t get8(struct rd *c)
{
	return *c->p++;
}

static uint16_t get16(struct rd *c)
{
	uint16_t v;

	memcpy(&v, c->p, 2);
	c->p += 2;
	return le16toh(v);
}

static uint32_t get32(struct rd *c)
{
	uint32_t v;

	memcpy(&v, c->p, 4);
	c->p += 4;
	return le32toh(v);
}

static uint64_t get64(struct rd *c)
{
	uint64_t v;

	memcpy(&v, c->p, 8);
	c->p += 8;
	return le64toh(v);
}

/* What a load would apply, collected while checking. */
struct loaded {
	bool core_seen, dev_seen;
	bool *q_seen;
	bool sec_seen[VN_VDEV_MAX_SECTIONS];
	uint64_t device_features, driver_features;
	uint8_t status, needs_reset, isr;
	uint16_t config_vector;
	uint32_t config_generation;
	const uint8_t *config;
	struct vn_vq_state *q;
	uint16_t *vectors;
	/* payloads handed to the registered sections and the device type */
	struct {
		unsigned int version;
		const uint8_t *p;
		size_t len;
	} sec[VN_VDEV_MAX_SECTIONS], dev;
	/* the name of the refused field, when it is built ("queue[1].num") */
	char field[64];
};

static bool vector_ok(const struct vn_vdev *vdev, uint16_t v)
{
	return v == VN_VDEV_NO_VECTOR || v < vdev->nr_vectors;
}

/* *field names what was wrong; the core's fields keep their bare names. */
static int parse_core(struct vn_vdev *vdev, const uint8_t *p, size_t len, struct loaded *l,
		      const char **field)
{
	struct rd c = { .p = p };
	const uint64_t ver1 = 1ull << VIRTIO_F_VERSION_1;
	uint32_t config_len;

	*field = "core.length";
	if (len < CORE_FIXED)
		return -EINVAL;
	*field = "device_id";
	if (get32(&c) != vdev->device_id)
		return -EINVAL;
	*field = "nr_queues";
	if (get16(&c) != vdev->nr_queues)
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
	*field = "core.length";
	if (len != CORE_FIXED + config_len)
		return -EINVAL;
	l->config = c.p;
	return 0;
}

static int parse_queue(struct vn_vdev *vdev, unsigned int i, const uint8_t *p, size_t len,
		       struct loaded *l, const char **field)
{
	struct vn_vq_state *st = &l->q[i];
	struct rd c = { .p = p };
	const char *qf = "length";
	uint8_t ready;
	uint32_t base;
	int r = -EINVAL;

	memset(st, 0, sizeof(*st));
	if (len != QUEUE_LEN)
		goto bad;
	st->format = get8(&c);
	ready = get8(&c);
	st->ready = ready;
	st->num = get16(&c);
	l->vectors[i] = get16(&c);
	st->used_idx = get16(&c);
	base = get32(&c);
	st->desc = get64(&c);
	st->avail = get64(&c);
	st->used = get64(&c);
	qf = "ready";
	if (ready > 1)
		goto bad;
	qf = "vector";
	if (!vector_ok(vdev, l->vectors[i]))
		goto bad;
	/* An unknown format is vn_vq_check_state()'s to name ("format"). */
	qf = "vring_base";
	if (vn_vq_set_vring_base(st, base) < 0 &&
	    (st->format == VN_VQ_FORMAT_SPLIT || st->format == VN_VQ_FORMAT_PACKED))
		goto bad;
	r = vn_vq_check_state(vn_vdev_queue(vdev, i), st, &qf);
	if (r == 0)
		return 0;
bad:
	snprintf(l->field, sizeof(l->field), "queue[%u].%s", i, qf);
	*field = l->field;
	return -EINVAL;
}

/* The section's name, for refusals of its framing ("queue[1]", "virtio-pci"). */
static const char *sec_name(const struct vn_vdev *vdev, uint16_t id, uint16_t inst,
			    struct loaded *l, char *buf, size_t n)
{
	switch (id) {
	case VN_STATE_SEC_CORE:
		return "core";
	case VN_STATE_SEC_QUEUE:
		snprintf(buf, n, "queue[%u]", inst);
		return buf;
	case VN_STATE_SEC_DEVICE:
		return "device";
	default:
		for (unsigned int i = 0; i < vdev->nr_sections; i++)
			if (vdev->sections[i].s->id == id && i == inst)
				return vdev->sections[i].s->name;
		snprintf(buf, n, "section %u.%u", id, inst);
		return buf;
	}
}

/* "<name>.<what>" into l->field. */
static int refuse(struct loaded *l, const char *name, const char *what, const char **field)
{
	char tmp[48];

	snprintf(tmp, sizeof(tmp), "%s", name); /* name may point into l->field */
	snprintf(l->field, sizeof(l->field), "%s.%s", tmp, what);
	*field = l->field;
	return -EINVAL;
}

/* A registered section's own check; its field gets the section's name in front. */
static int parse_registered(struct vn_vdev *vdev, unsigned int i, unsigned int version,
			    const uint8_t *p, size_t len, struct loaded *l, const char **field)
{
	const struct vn_vdev_section *s = vdev->sections[i].s;
	const char *f = "payload";

	if (s->check(vdev->sections[i].opaque, version, p, len, &f) < 0)
		return refuse(l, s->name, f, field);
	l->sec[i].version = version;
	l->sec[i].p = p;
	l->sec[i].len = len;
	return 0;
}

static int parse_device(struct vn_vdev *vdev, unsigned int version, const uint8_t *p, size_t len,
			struct loaded *l, const char **field)
{
	const char *f = "payload";

	if (!has_device_section(vdev))
		return 0; /* this device type keeps no state: skip, like an unknown section */
	if (vdev->ops->state_check(vdev, version, p, len, &f) < 0)
		return refuse(l, "device", f, field);
	l->dev_seen = true;
	l->dev.version = version;
	l->dev.p = p;
	l->dev.len = len;
	return 0;
}

/*
 * One section. Known (id, instance) pairs are checked by their owner;
 * anything else is skipped, so a newer writer's additions do not stop an
 * older reader.
 */
static int parse_section(struct vn_vdev *vdev, uint16_t id, uint16_t inst, uint16_t ver,
			 const uint8_t *p, size_t len, struct loaded *l, const char **field)
{
	char nb[32];
	const char *name = sec_name(vdev, id, inst, l, nb, sizeof(nb));
	bool *seen = NULL;
	unsigned int want = 0;

	switch (id) {
	case VN_STATE_SEC_CORE:
		if (inst != 0)
			return 0;
		seen = &l->core_seen;
		want = CORE_VERSION;
		break;
	case VN_STATE_SEC_QUEUE:
		if (inst >= vdev->nr_queues)
			return 0;
		seen = &l->q_seen[inst];
		want = QUEUE_VERSION;
		break;
	case VN_STATE_SEC_DEVICE:
		if (inst != 0)
			return 0;
		if (l->dev_seen)
			return refuse(l, name, "repeated", field);
		return parse_device(vdev, ver, p, len, l, field);
	default:
		if (inst >= vdev->nr_sections || vdev->sections[inst].s->id != id)
			return 0;
		if (l->sec_seen[inst])
			return refuse(l, name, "repeated", field);
		l->sec_seen[inst] = true;
		return parse_registered(vdev, inst, ver, p, len, l, field);
	}
	if (*seen)
		return refuse(l, name, "repeated", field);
	*seen = true;
	if (ver != want)
		return refuse(l, name, "version", field);
	if (id == VN_STATE_SEC_CORE)
		return parse_core(vdev, p, len, l, field);
	if (!l->core_seen) {
		*field = "core";        /* queues are checked against the core's counts */
		return -EINVAL;
	}
	return parse_queue(vdev, inst, p, len, l, field);
}

/* Parses and checks the whole stream; touches nothing in @vdev. */
static int parse(struct vn_vdev *vdev, const uint8_t *buf, size_t len, struct loaded *l,
		 const char **field)
{
	struct rd c = { .p = buf };
	size_t left;
	int r;

	*field = "length";
	if (len < VN_STATE_HDR_LEN + VN_STATE_SEC_HDR_LEN)
		return -EINVAL;
	*field = "magic";
	if (get32(&c) != VN_STATE_MAGIC)
		return -EINVAL;
	*field = "version";
	if (get16(&c) != VN_STATE_VERSION || get16(&c) != 0)
		return -EINVAL;
	left = len - VN_STATE_HDR_LEN;
	while (left) {
		uint16_t id, inst, ver;
		uint32_t slen;
		char nb[32];

		*field = "length";
		if (left < VN_STATE_SEC_HDR_LEN)
			return -EINVAL;
		id = get16(&c);
		inst = get16(&c);
		ver = get16(&c);
		(void)get16(&c);
		slen = get32(&c);
		left -= VN_STATE_SEC_HDR_LEN;
		if (slen > left)
			return refuse(l, sec_name(vdev, id, inst, l, nb, sizeof(nb)), "length",
				      field);
		r = parse_section(vdev, id, inst, ver, c.p, slen, l, field);
		if (r < 0)
			return r;
		c.p += slen;
		left -= slen;
	}
	/* Every known owner must have had its say. */
	*field = "core";
	if (!l->core_seen)
		return -EINVAL;
	for (unsigned int i = 0; i < vdev->nr_queues; i++)
		if (!l->q_seen[i]) {
			snprintf(l->field, sizeof(l->field), "queue[%u]", i);
			*field = l->field;
			return -EINVAL;
		}
	for (unsigned int i = 0; i < vdev->nr_sections; i++)
		if (!l->sec_seen[i]) {
			*field = vdev->sections[i].s->name;
			return -EINVAL;
		}
	*field = "device";
	if (has_device_section(vdev) && !l->dev_seen)
		return -EINVAL;
	return 0;
}

static void apply(struct vn_vdev *vdev, const struct loaded *l)
{
	vn_vdev_load_apply(vdev, l->driver_features, l->status, l->needs_reset, l->isr,
			   l->config_vector, l->config_generation, l->config);
	for (unsigned int i = 0; i < vdev->nr_queues; i++) {
		vn_vq_set_state(vn_vdev_queue(vdev, i), &l->q[i]);
		VN_BUG_ON(vn_vdev_queue_set_vector(vdev, i, l->vectors[i]) < 0); /* checked */
	}
	for (unsigned int i = 0; i < vdev->nr_sections; i++)
		vdev->sections[i].s->load(vdev->sections[i].opaque, l->sec[i].version, l->sec[i].p,
					  l->sec[i].len);
	if (l->dev_seen)
		vdev->ops->state_load(vdev, l->dev.version, l->dev.p, l->dev.len);
}

int vn_state_load(struct vn_vdev *vdev, const void *buf, size_t len, const char **bad_field)
{
	static __thread char field_copy[64];
	struct loaded *l = calloc(1, sizeof(*l));
	const char *field = "";
	int r = -ENOMEM;

	if (!l)
		return r;
	l->q = calloc(vdev->nr_queues, sizeof(l->q[0]));
	l->vectors = calloc(vdev->nr_queues, sizeof(l->vectors[0]));
	l->q_seen = calloc(vdev->nr_queues, sizeof(l->q_seen[0]));
	if (!l->q || !l->vectors || !l->q_seen)
		goto out;
	r = parse(vdev, buf, len, l, &field);
	if (r < 0) {
		/* The caller keeps the name after l is gone. */
		snprintf(field_copy, sizeof(field_copy), "%s", field);
		vn_log(VN_LOG_ERR, "state", "%s: load refused: field %s is invalid", vdev->name,
		       field_copy);
		if (bad_field)
			*bad_field = field_copy;
		goto out;
	}
	apply(vdev, l);
	vn_trace(vdev_load, "dev=%s status=0x%02x", vdev->name, l->status);
	vn_vdev_run_loaded_hooks(vdev);
out:
	free(l->q);
	free(l->vectors);
	free(l->q_seen);
	free(l);
	return r;
}
