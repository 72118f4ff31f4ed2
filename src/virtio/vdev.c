/* SPDX-License-Identifier: MIT */
#include "virtio/vdev.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_config.h>

#include "base/lockorder.h"
#include "base/trace.h"
#include "virtio/vq-priv.h"

/*
 * The virtqueue is embedded, not pointed to: one allocation for all of a
 * device's queues, and vn_vdev_notify_queue() finds its queue from the vq
 * with container_of. That needs struct vn_vq's size, which is why this
 * struct lives here and not in vdev.h (outside the virtio core the vq is
 * opaque).
 */
struct vn_vdev_queue {
	struct vn_vq vq;
	vn_vdev_queue_handler_fn *handler;
	uint16_t vector;
	/* Held by whoever works on the queue's rings; see vn_vdev_queue_lock(). */
	pthread_mutex_t run_lock;
};

#define F(bit) (1ull << (bit))

static void vq_error(void *opaque, struct vn_vq *vq, int err)
{
	vn_vdev_set_needs_reset(opaque);
}

static void free_vectors(struct vn_vdev *vdev)
{
	if (!vdev->vectors)
		return;
	for (unsigned int i = 0; i < vdev->nr_vectors; i++)
		vn_notifier_cleanup(&vdev->vectors[i]);
	free(vdev->vectors);
	vdev->vectors = NULL;
	if (vdev->vector_locks) {
		for (unsigned int i = 0; i < vdev->nr_vectors; i++)
			pthread_mutex_destroy(&vdev->vector_locks[i]);
		free(vdev->vector_locks);
		vdev->vector_locks = NULL;
	}
}

static int check_cfg(const struct vn_vdev_cfg *cfg)
{
	unsigned int qs = cfg->queue_size_max;

	/* No packed ring format behind the vq seam yet (vq.c's format_ops()). */
	if (cfg->features & F(VIRTIO_F_RING_PACKED))
		return -EINVAL;
	if (!cfg->ops || cfg->nr_queues == 0 || cfg->nr_queues > VN_VDEV_MAX_QUEUES ||
	    qs == 0 || qs > VN_VQ_MAX_SIZE || (qs & (qs - 1)) ||
	    cfg->config_len > VN_VDEV_MAX_CONFIG || cfg->nr_vectors == 0 ||
	    cfg->nr_vectors > VN_VDEV_MAX_VECTORS)
		return -EINVAL;
	return 0;
}

int vn_vdev_new(const struct vn_vdev_cfg *cfg, struct vn_vdev **out)
{
	struct vn_vdev *vdev;
	int r = check_cfg(cfg);

	if (r < 0)
		return r;
	vdev = calloc(1, sizeof(*vdev));
	if (!vdev)
		return -ENOMEM;
	snprintf(vdev->name, sizeof(vdev->name), "%s", cfg->name ? cfg->name : "vdev");
	vdev->device_id = cfg->device_id;
	vdev->ops = cfg->ops;
	vdev->opaque = cfg->opaque;
	vdev->device_features = cfg->features | F(VIRTIO_F_VERSION_1);
	vdev->config_len = cfg->config_len;
	vdev->nr_queues = cfg->nr_queues;
	vdev->nr_vectors = cfg->nr_vectors;
	vdev->msix = true; /* VN_VDEV_IRQ_VECTORS until a transport binds another model */
	pthread_mutex_init(&vdev->lock, NULL);
	pthread_mutex_init(&vdev->config_lock, NULL);
	vn_ratelimit_init(&vdev->rl, 10);

	r = -ENOMEM;
	vdev->config = calloc(1, cfg->config_len ? cfg->config_len : 1);
	vdev->queues = calloc(cfg->nr_queues, sizeof(vdev->queues[0]));
	vdev->vectors = calloc(cfg->nr_vectors, sizeof(vdev->vectors[0]));
	vdev->vector_locks = calloc(cfg->nr_vectors, sizeof(vdev->vector_locks[0]));
	if (!vdev->config || !vdev->queues || !vdev->vectors || !vdev->vector_locks) {
		free(vdev->vector_locks);
		vdev->vector_locks = NULL;
		goto err_free;
	}
	for (unsigned int i = 0; i < cfg->nr_vectors; i++)
		pthread_mutex_init(&vdev->vector_locks[i], NULL);
	for (unsigned int i = 0; i < cfg->nr_queues; i++)
		pthread_mutex_init(&vdev->queues[i].run_lock, NULL);
	vdev->nr_run_locks = cfg->nr_queues;
	for (unsigned int i = 0; i < cfg->nr_vectors; i++)
		vdev->vectors[i].fd = -1;
	for (unsigned int i = 0; i < cfg->nr_vectors; i++) {
		r = vn_notifier_init(&vdev->vectors[i]);
		if (r < 0)
			goto err_free;
	}
	for (unsigned int i = 0; i < cfg->nr_queues; i++) {
		struct vn_vdev_queue *q = &vdev->queues[i];

		/* No memory until a transport binds it (vn_vdev_bind_mem()). */
		vn_vq_init(&q->vq, NULL, (uint16_t)i, (uint16_t)cfg->queue_size_max, &vdev->rl);
		vn_vq_set_error_handler(&q->vq, vq_error, vdev);
		q->vector = VN_VDEV_NO_VECTOR;
	}
	vdev->config_vector = VN_VDEV_NO_VECTOR;
	*out = vdev;
	return 0;

err_free:
	vn_vdev_free(vdev);
	return r;
}

static void set_mem(struct vn_vdev *vdev, struct vn_gmem *mem)
{
	vdev->mem = mem;
	for (unsigned int i = 0; i < vdev->nr_queues; i++)
		vn_vq_set_mem(&vdev->queues[i].vq, mem);
}

int vn_vdev_bind_mem(struct vn_vdev *vdev, struct vn_gmem *mem)
{
	int r = 0;

	if (!mem)
		return -EINVAL;
	vn_vdev_lock(vdev);
	if (vdev->mem)
		r = -EBUSY; /* a transport serves the device already */
	else
		set_mem(vdev, mem); /* no queue is ready: none can be without memory */
	vn_vdev_unlock(vdev);
	return r;
}

int vn_vdev_bind_irq(struct vn_vdev *vdev, enum vn_vdev_irq model)
{
	int r = 0;

	if (model != VN_VDEV_IRQ_VECTORS && model != VN_VDEV_IRQ_SHARED)
		return -EINVAL;
	vn_vdev_lock(vdev);
	/* raise_irq() reads the model without a lock: only while nothing can raise */
	if (vn_vdev_get_status(vdev) != 0)
		r = -EBUSY;
	else
		vdev->msix = model == VN_VDEV_IRQ_VECTORS;
	vn_vdev_unlock(vdev);
	return r;
}

struct vn_gmem *vn_vdev_mem(const struct vn_vdev *vdev)
{
	return vdev->mem;
}

void vn_vdev_unbind_mem(struct vn_vdev *vdev)
{
	vn_vdev_lock(vdev);
	/*
	 * The queues stop with the memory they used: a reset (which waits for
	 * the device type's I/O in flight) leaves none ready, so no thread
	 * translates through the old map once this returns.
	 */
	if (vdev->mem)
		vn_vdev_reset(vdev);
	set_mem(vdev, NULL);
	vn_vdev_unlock(vdev);
}

void vn_vdev_free(struct vn_vdev *vdev)
{
	if (!vdev)
		return;
	free_vectors(vdev);
	for (unsigned int i = 0; i < vdev->nr_run_locks; i++)
		pthread_mutex_destroy(&vdev->queues[i].run_lock);
	free(vdev->queues);
	free(vdev->config);
	vn_ratelimit_destroy(&vdev->rl);
	pthread_mutex_destroy(&vdev->config_lock);
	pthread_mutex_destroy(&vdev->lock);
	free(vdev);
}

void *vn_vdev_opaque(const struct vn_vdev *vdev)
{
	return vdev->opaque;
}

bool vn_vdev_ioeventfd_default(const struct vn_vdev *vdev)
{
	return vdev->ops->ioeventfd_default;
}

void vn_vdev_lock(struct vn_vdev *vdev)
{
	vn_lock_acquired(VN_LOCK_DEVICE, 0, "device lock");
	pthread_mutex_lock(&vdev->lock);
}

void vn_vdev_unlock(struct vn_vdev *vdev)
{
	pthread_mutex_unlock(&vdev->lock);
	vn_lock_released(VN_LOCK_DEVICE);
}

static void config_lock(const struct vn_vdev *vdev)
{
	vn_lock_acquired(VN_LOCK_CONFIG, 0, "config lock");
	pthread_mutex_lock((pthread_mutex_t *)&vdev->config_lock);
}

static void config_unlock(const struct vn_vdev *vdev)
{
	pthread_mutex_unlock((pthread_mutex_t *)&vdev->config_lock);
	vn_lock_released(VN_LOCK_CONFIG);
}

static void vector_lock(struct vn_vdev *vdev, unsigned int v)
{
	vn_lock_acquired(VN_LOCK_VECTOR, v, "vector lock");
	pthread_mutex_lock(&vdev->vector_locks[v]);
}

static void vector_unlock(struct vn_vdev *vdev, unsigned int v)
{
	pthread_mutex_unlock(&vdev->vector_locks[v]);
	vn_lock_released(VN_LOCK_VECTOR);
}

int vn_vdev_add_hooks(struct vn_vdev *vdev, const struct vn_vdev_hooks *h, void *opaque)
{
	for (unsigned int i = 0; i < vdev->nr_hooks; i++)
		if (vdev->hooks[i].h == h && vdev->hooks[i].opaque == opaque)
			return -EEXIST;
	if (vdev->nr_hooks == VN_VDEV_MAX_HOOKS)
		return -ENOSPC;
	vdev->hooks[vdev->nr_hooks].h = h;
	vdev->hooks[vdev->nr_hooks].opaque = opaque;
	vdev->nr_hooks++;
	return 0;
}

int vn_vdev_remove_hooks(struct vn_vdev *vdev, const struct vn_vdev_hooks *h, void *opaque)
{
	for (unsigned int i = 0; i < vdev->nr_hooks; i++) {
		if (vdev->hooks[i].h != h || vdev->hooks[i].opaque != opaque)
			continue;
		memmove(&vdev->hooks[i], &vdev->hooks[i + 1],
			(vdev->nr_hooks - i - 1) * sizeof(vdev->hooks[0]));
		vdev->nr_hooks--;
		return 0;
	}
	return -ENOENT;
}

int vn_vdev_add_section(struct vn_vdev *vdev, const struct vn_vdev_section *sec, void *opaque)
{
	for (unsigned int i = 0; i < vdev->nr_sections; i++)
		if (vdev->sections[i].s == sec && vdev->sections[i].opaque == opaque)
			return -EEXIST;
	if (vdev->nr_sections == VN_VDEV_MAX_SECTIONS)
		return -ENOSPC;
	vdev->sections[vdev->nr_sections].s = sec;
	vdev->sections[vdev->nr_sections].opaque = opaque;
	vdev->nr_sections++;
	return 0;
}

int vn_vdev_remove_section(struct vn_vdev *vdev, const struct vn_vdev_section *sec, void *opaque)
{
	for (unsigned int i = 0; i < vdev->nr_sections; i++) {
		if (vdev->sections[i].s != sec || vdev->sections[i].opaque != opaque)
			continue;
		memmove(&vdev->sections[i], &vdev->sections[i + 1],
			(vdev->nr_sections - i - 1) * sizeof(vdev->sections[0]));
		vdev->nr_sections--;
		return 0;
	}
	return -ENOENT;
}

/* _pre hooks in registration order, _post hooks in reverse, like a stack. */
#define HOOKS_PRE(vdev, name, ...)                                                   \
	do {                                                                         \
		for (unsigned int i_ = 0; i_ < (vdev)->nr_hooks; i_++)               \
			if ((vdev)->hooks[i_].h->name)                               \
				(vdev)->hooks[i_].h->name((vdev)->hooks[i_].opaque,  \
							  (vdev), ##__VA_ARGS__);    \
	} while (0)
#define HOOKS_POST(vdev, name, ...)                                                  \
	do {                                                                         \
		for (unsigned int i_ = (vdev)->nr_hooks; i_-- > 0;)                   \
			if ((vdev)->hooks[i_].h->name)                               \
				(vdev)->hooks[i_].h->name((vdev)->hooks[i_].opaque,  \
							  (vdev), ##__VA_ARGS__);    \
	} while (0)

uint64_t vn_vdev_device_features(const struct vn_vdev *vdev)
{
	return vdev->device_features;
}

uint64_t vn_vdev_driver_features(const struct vn_vdev *vdev)
{
	return vdev->driver_features;
}

bool vn_vdev_has_feature(const struct vn_vdev *vdev, unsigned int bit)
{
	return bit < 64 && (vdev->driver_features & vdev->device_features & F(bit));
}

bool vn_vdev_is_legacy(const struct vn_vdev *vdev)
{
	return !vn_vdev_has_feature(vdev, VIRTIO_F_VERSION_1);
}

static uint8_t status_raw(const struct vn_vdev *vdev)
{
	return __atomic_load_n(&vdev->status, __ATOMIC_ACQUIRE);
}

uint8_t vn_vdev_get_status(const struct vn_vdev *vdev)
{
	uint8_t s = status_raw(vdev);

	if (__atomic_load_n(&vdev->needs_reset, __ATOMIC_ACQUIRE))
		s |= VIRTIO_CONFIG_S_NEEDS_RESET;
	return s;
}

int vn_vdev_set_transport_features(struct vn_vdev *vdev, uint64_t bits)
{
	if (bits & ~F(VN_VIRTIO_F_NOTIFICATION_DATA))
		return -EINVAL;
	if (status_raw(vdev) != 0)
		return -EBUSY;
	vdev->device_features = (vdev->device_features & ~vdev->transport_features) | bits;
	vdev->transport_features = bits;
	return 0;
}

int vn_vdev_set_driver_features(struct vn_vdev *vdev, uint64_t features)
{
	if (status_raw(vdev) & (VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK)) {
		vn_log_limited(&vdev->rl, VN_LOG_WARN, "vdev",
			       "%s: driver features written after FEATURES_OK, ignored", vdev->name);
		return -EPERM;
	}
	vdev->driver_features = features;
	return 0;
}

/* Features are final: the queues learn the ring features. */
static void apply_ring_features(struct vn_vdev *vdev)
{
	uint64_t f = vdev->driver_features & vdev->device_features;

	for (unsigned int i = 0; i < vdev->nr_queues; i++)
		vn_vq_set_features(&vdev->queues[i].vq, f);
}

static int check_features(struct vn_vdev *vdev)
{
	uint64_t f = vdev->driver_features;

	if (f & ~vdev->device_features)
		return -EINVAL;
	if (!(f & F(VIRTIO_F_VERSION_1)))
		return -EINVAL; /* FEATURES_OK exists only for 1.x drivers */
	if (vdev->ops->validate_features)
		return vdev->ops->validate_features(vdev, f);
	return 0;
}

int vn_vdev_set_status(struct vn_vdev *vdev, uint8_t val)
{
	uint8_t old = status_raw(vdev);
	uint8_t s = val & (uint8_t)~VIRTIO_CONFIG_S_NEEDS_RESET;
	int r = 0;

	if (val == 0) {
		vn_vdev_reset(vdev);
		return 0;
	}
	if ((s & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK)) {
		r = check_features(vdev);
		if (r < 0) {
			vn_log_limited(&vdev->rl, VN_LOG_WARN, "vdev",
				       "%s: features 0x%llx refused (%s)", vdev->name,
				       (unsigned long long)vdev->driver_features, vn_strerror(r));
			s &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
			r = -EINVAL;
		}
	}
	if ((s & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK) &&
	    !vn_vdev_is_legacy(vdev) && !(s & VIRTIO_CONFIG_S_FEATURES_OK)) {
		vn_log_limited(&vdev->rl, VN_LOG_WARN, "vdev", "%s: DRIVER_OK without FEATURES_OK",
			       vdev->name);
		s &= (uint8_t)~VIRTIO_CONFIG_S_DRIVER_OK;
		r = -EINVAL;
	}
	vn_trace(vdev_status, "dev=%s 0x%02x->0x%02x (wrote 0x%02x)", vdev->name, old, s, val);
	HOOKS_PRE(vdev, status_pre, old, s);
	if (((s & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK)) ||
	    ((s & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK) &&
	     vn_vdev_is_legacy(vdev)))
		apply_ring_features(vdev);
	/* Release: pairs with the acquire in vn_vdev_get_status() on other threads. */
	__atomic_store_n(&vdev->status, s, __ATOMIC_RELEASE);
	if (vdev->ops->status_changed)
		vdev->ops->status_changed(vdev, old, s);
	HOOKS_POST(vdev, status_post, old, s);
	return r;
}

void vn_vdev_reset(struct vn_vdev *vdev)
{
	vn_trace(vdev_reset, "dev=%s", vdev->name);
	HOOKS_PRE(vdev, reset_pre);
	/* The device type first: it may still look at its queues to abort requests. */
	if (vdev->ops->reset)
		vdev->ops->reset(vdev);
	for (unsigned int i = 0; i < vdev->nr_queues; i++) {
		vn_vq_reset(&vdev->queues[i].vq);
		vdev->queues[i].vector = VN_VDEV_NO_VECTOR;
	}
	vdev->driver_features = 0;
	vdev->config_vector = VN_VDEV_NO_VECTOR;
	__atomic_store_n(&vdev->isr, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&vdev->needs_reset, false, __ATOMIC_RELEASE);
	__atomic_store_n(&vdev->status, 0, __ATOMIC_RELEASE);
	HOOKS_POST(vdev, reset_post);
}

/* Raise interrupt @vector with ISR bit @isr. Context: any thread. */
static void raise_irq(struct vn_vdev *vdev, uint16_t vector, uint8_t isr)
{
	int r;

	/* Release: the ISR bit is visible to whoever the interrupt wakes. */
	__atomic_fetch_or(&vdev->isr, isr, __ATOMIC_RELEASE);
	if (vdev->msix) {
		if (vector == VN_VDEV_NO_VECTOR || vector >= vdev->nr_vectors)
			return;
	} else {
		vector = 0;
	}
	vector_lock(vdev, vector);
	r = vn_notifier_set(&vdev->vectors[vector]);
	vector_unlock(vdev, vector);
	if (r < 0)
		vn_log_limited(&vdev->rl, VN_LOG_ERR, "vdev", "%s: interrupt vector %u: %s",
			       vdev->name, vector, vn_strerror(r));
}

void vn_vdev_set_needs_reset(struct vn_vdev *vdev)
{
	if (__atomic_exchange_n(&vdev->needs_reset, true, __ATOMIC_ACQ_REL))
		return;
	vn_log_limited(&vdev->rl, VN_LOG_WARN, "vdev", "%s: device needs reset", vdev->name);
	vn_trace(vdev_needs_reset, "dev=%s", vdev->name);
	/* virtio 1.2 §2.1.2: with DRIVER_OK, NEEDS_RESET comes with a config interrupt */
	if (status_raw(vdev) & VIRTIO_CONFIG_S_DRIVER_OK)
		raise_irq(vdev, __atomic_load_n(&vdev->config_vector, __ATOMIC_RELAXED),
			  VN_VDEV_ISR_CONFIG);
	HOOKS_PRE(vdev, needs_reset);
}

unsigned int vn_vdev_config_len(const struct vn_vdev *vdev)
{
	return vdev->config_len;
}

static int config_range(const struct vn_vdev *vdev, uint32_t off, uint32_t len)
{
	uint32_t end;

	if (vn_add_overflow(off, len, &end) || end > vdev->config_len)
		return -EINVAL;
	return 0;
}

int vn_vdev_config_read(struct vn_vdev *vdev, uint32_t off, void *buf, uint32_t len)
{
	int r = config_range(vdev, off, len);

	if (r < 0)
		return r;
	config_lock(vdev);
	memcpy(buf, vdev->config + off, len);
	config_unlock(vdev);
	return 0;
}

int vn_vdev_config_write(struct vn_vdev *vdev, uint32_t off, const void *buf, uint32_t len)
{
	int r = config_range(vdev, off, len);

	if (r < 0)
		return r;
	if (!vdev->ops->config_write)
		return -EPERM;
	return vdev->ops->config_write(vdev, off, buf, len);
}

int vn_vdev_config_update(struct vn_vdev *vdev, uint32_t off, const void *buf, uint32_t len)
{
	int r = config_range(vdev, off, len);

	if (r < 0)
		return r;
	config_lock(vdev);
	memcpy(vdev->config + off, buf, len);
	vdev->config_generation++;
	config_unlock(vdev);
	if (status_raw(vdev) & VIRTIO_CONFIG_S_DRIVER_OK)
		raise_irq(vdev, __atomic_load_n(&vdev->config_vector, __ATOMIC_RELAXED),
			  VN_VDEV_ISR_CONFIG);
	return 0;
}

uint32_t vn_vdev_config_generation(const struct vn_vdev *vdev)
{
	uint32_t g;

	config_lock(vdev);
	g = vdev->config_generation;
	config_unlock(vdev);
	return g;
}

unsigned int vn_vdev_nr_queues(const struct vn_vdev *vdev)
{
	return vdev->nr_queues;
}

struct vn_vq *vn_vdev_queue(struct vn_vdev *vdev, unsigned int q)
{
	return q < vdev->nr_queues ? &vdev->queues[q].vq : NULL;
}

int vn_vdev_set_queue_handler(struct vn_vdev *vdev, unsigned int q, vn_vdev_queue_handler_fn *fn)
{
	if (q >= vdev->nr_queues)
		return -EINVAL;
	vdev->queues[q].handler = fn;
	return 0;
}

int vn_vdev_queue_kick(struct vn_vdev *vdev, unsigned int q)
{
	struct vn_vdev_queue *vq;

	if (q >= vdev->nr_queues)
		return -EINVAL;
	vq = &vdev->queues[q];
	if (!vq->handler || !vn_vq_is_ready(&vq->vq))
		return 0;
	vq->handler(vdev, &vq->vq);
	return 1;
}

void vn_vdev_queue_lock(struct vn_vdev *vdev, unsigned int q)
{
	VN_BUG_ON(q >= vdev->nr_queues);
	vn_lock_acquired(VN_LOCK_QUEUE, q, "queue run lock");
	pthread_mutex_lock(&vdev->queues[q].run_lock);
}

void vn_vdev_queue_unlock(struct vn_vdev *vdev, unsigned int q)
{
	VN_BUG_ON(q >= vdev->nr_queues);
	pthread_mutex_unlock(&vdev->queues[q].run_lock);
	vn_lock_released(VN_LOCK_QUEUE);
}

int vn_vdev_queue_set_num(struct vn_vdev *vdev, unsigned int q, unsigned int num)
{
	if (q >= vdev->nr_queues)
		return -EINVAL;
	return vn_vq_set_num(&vdev->queues[q].vq, num);
}

int vn_vdev_queue_set_addr(struct vn_vdev *vdev, unsigned int q, uint64_t desc, uint64_t avail,
			   uint64_t used)
{
	if (q >= vdev->nr_queues)
		return -EINVAL;
	return vn_vq_set_addr(&vdev->queues[q].vq, desc, avail, used);
}

int vn_vdev_queue_enable(struct vn_vdev *vdev, unsigned int q)
{
	int r;

	if (q >= vdev->nr_queues)
		return -EINVAL;
	r = vn_vq_enable(&vdev->queues[q].vq);
	if (r < 0) {
		/*
		 * Rings outside guest memory or misaligned: the driver broke the
		 * device. No memory bound (-ENXIO): it cannot work either.
		 */
		vn_vdev_set_needs_reset(vdev);
		return r;
	}
	vn_trace(vq_enable, "dev=%s vq=%u", vdev->name, q);
	HOOKS_POST(vdev, queue_enabled, q);
	return 0;
}

/* Device lock held. @out: the state just before the reset, or NULL. */
static void queue_reset(struct vn_vdev *vdev, unsigned int q, struct vn_vq_state *out)
{
	/* The hooks may take the run lock (hostnotif's state changes): before it. */
	HOOKS_PRE(vdev, queue_reset_pre, q);
	vn_vdev_queue_lock(vdev, q);
	if (out)
		vn_vq_get_state(&vdev->queues[q].vq, out);
	vn_vq_reset(&vdev->queues[q].vq);
	vdev->queues[q].vector = VN_VDEV_NO_VECTOR;
	/* §2.6.1: the queue keeps the device's negotiated ring features. */
	if (status_raw(vdev) & VIRTIO_CONFIG_S_FEATURES_OK)
		vn_vq_set_features(&vdev->queues[q].vq,
				   vdev->driver_features & vdev->device_features);
	vn_vdev_queue_unlock(vdev, q);
}

int vn_vdev_queue_reset(struct vn_vdev *vdev, unsigned int q)
{
	if (q >= vdev->nr_queues)
		return -EINVAL;
	queue_reset(vdev, q, NULL);
	return 0;
}

static bool vector_ok(const struct vn_vdev *vdev, uint16_t vector)
{
	return vector == VN_VDEV_NO_VECTOR || vector < vdev->nr_vectors;
}

int vn_vdev_queue_set_vector(struct vn_vdev *vdev, unsigned int q, uint16_t vector)
{
	if (q >= vdev->nr_queues || !vector_ok(vdev, vector))
		return -EINVAL;
	__atomic_store_n(&vdev->queues[q].vector, vector, __ATOMIC_RELAXED);
	return 0;
}

int vn_vdev_set_config_vector(struct vn_vdev *vdev, uint16_t vector)
{
	if (!vector_ok(vdev, vector))
		return -EINVAL;
	__atomic_store_n(&vdev->config_vector, vector, __ATOMIC_RELAXED);
	return 0;
}

uint16_t vn_vdev_queue_vector(const struct vn_vdev *vdev, unsigned int q)
{
	if (q >= vdev->nr_queues)
		return VN_VDEV_NO_VECTOR;
	return __atomic_load_n(&vdev->queues[q].vector, __ATOMIC_RELAXED);
}

uint16_t vn_vdev_config_vector(const struct vn_vdev *vdev)
{
	return __atomic_load_n(&vdev->config_vector, __ATOMIC_RELAXED);
}

int vn_vdev_notify_queue(struct vn_vdev *vdev, struct vn_vq *vq)
{
	struct vn_vdev_queue *q = vn_container_of(vq, struct vn_vdev_queue, vq);
	int r = vn_vq_should_notify(vq);

	if (r <= 0)
		return r;
	raise_irq(vdev, __atomic_load_n(&q->vector, __ATOMIC_RELAXED), VN_VDEV_ISR_QUEUE);
	return 1;
}

uint8_t vn_vdev_isr_read_clear(struct vn_vdev *vdev)
{
	/* Acquire: pairs with the release fetch_or in raise_irq(). */
	return __atomic_exchange_n(&vdev->isr, 0, __ATOMIC_ACQUIRE);
}

int vn_vdev_guest_notifier_fd(const struct vn_vdev *vdev, unsigned int vector)
{
	if (vector >= vdev->nr_vectors)
		return -EINVAL;
	return vn_notifier_fd(&vdev->vectors[vector]);
}

static int set_notifier_fd(struct vn_vdev *vdev, unsigned int vector, int fd, bool peer)
{
	struct vn_notifier n = VN_NOTIFIER_INIT;
	int r;

	if (vector >= vdev->nr_vectors)
		return -EINVAL;
	r = peer ? vn_notifier_init_peer_fd(&n, fd) : vn_notifier_init_fd(&n, fd);
	if (r < 0)
		return r;
	vector_lock(vdev, vector);
	vn_notifier_cleanup(&vdev->vectors[vector]);
	vdev->vectors[vector] = n;
	vector_unlock(vdev, vector);
	return 0;
}

int vn_vdev_set_guest_notifier_fd(struct vn_vdev *vdev, unsigned int vector, int fd)
{
	return set_notifier_fd(vdev, vector, fd, false);
}

int vn_vdev_set_peer_notifier_fd(struct vn_vdev *vdev, unsigned int vector, int fd)
{
	return set_notifier_fd(vdev, vector, fd, true);
}

void vn_vdev_load_apply(struct vn_vdev *vdev, uint64_t driver_features, uint8_t status,
			bool needs_reset, uint8_t isr, uint16_t config_vector,
			uint32_t config_generation, const uint8_t *config)
{
	vdev->driver_features = driver_features;
	config_lock(vdev);
	memcpy(vdev->config, config, vdev->config_len);
	vdev->config_generation = config_generation;
	config_unlock(vdev);
	vdev->config_vector = config_vector;
	__atomic_store_n(&vdev->isr, isr, __ATOMIC_RELAXED);
	__atomic_store_n(&vdev->needs_reset, needs_reset, __ATOMIC_RELEASE);
	__atomic_store_n(&vdev->status, status, __ATOMIC_RELEASE);
	if ((status & VIRTIO_CONFIG_S_FEATURES_OK) ||
	    ((status & VIRTIO_CONFIG_S_DRIVER_OK) && vn_vdev_is_legacy(vdev)))
		apply_ring_features(vdev);
	else
		for (unsigned int i = 0; i < vdev->nr_queues; i++)
			vn_vq_set_features(&vdev->queues[i].vq, 0);
}

void vn_vdev_run_loaded_hooks(struct vn_vdev *vdev)
{
	HOOKS_POST(vdev, loaded);
}

/* ------------------------------------------------------------------ */
/* The vring-level interface                                           */

int vn_vdev_activate(struct vn_vdev *vdev, uint64_t features)
{
	uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	int r;

	vn_vdev_lock(vdev);
	vn_vdev_reset(vdev);
	/* The status path runs the checks and the hooks a driver's writes would. */
	(void)vn_vdev_set_status(vdev, s);
	r = vn_vdev_set_driver_features(vdev, features);
	if (r == 0 && (features & F(VIRTIO_F_VERSION_1))) {
		s |= VIRTIO_CONFIG_S_FEATURES_OK;
		(void)vn_vdev_set_status(vdev, s);
		if (!(status_raw(vdev) & VIRTIO_CONFIG_S_FEATURES_OK))
			r = -EINVAL; /* not offered, or the device type refused them */
	}
	if (r == 0)
		(void)vn_vdev_set_status(vdev, s | VIRTIO_CONFIG_S_DRIVER_OK);
	vn_vdev_unlock(vdev);
	return r < 0 ? -EINVAL : 0;
}

int vn_vdev_queue_start(struct vn_vdev *vdev, unsigned int q, const struct vn_vq_state *st,
			uint16_t vector, const char **field)
{
	const char *dummy;
	int r;

	if (q >= vdev->nr_queues)
		return -EINVAL;
	r = vn_vq_check_state(&vdev->queues[q].vq, st, field ? field : &dummy);
	if (r < 0)
		return r;
	vn_vdev_lock(vdev);
	r = vn_vdev_queue_set_vector(vdev, q, vector);
	if (r == 0) {
		vn_vdev_queue_lock(vdev, q);
		vn_vq_set_state(&vdev->queues[q].vq, st);
		vn_vdev_queue_unlock(vdev, q);
		vn_trace(vq_enable, "dev=%s vq=%u", vdev->name, q);
	} else if (field) {
		*field = "vector";
	}
	vn_vdev_unlock(vdev);
	return r;
}

void vn_vdev_queue_quiesce(struct vn_vdev *vdev, unsigned int q)
{
	if (q >= vdev->nr_queues)
		return;
	/* Hooks are registered before any queue runs: the list is stable here. */
	HOOKS_PRE(vdev, queue_stop, q);
	if (vdev->ops->quiesce_queue)
		vdev->ops->quiesce_queue(vdev, q);
}

void vn_vdev_quiesce(struct vn_vdev *vdev)
{
	for (unsigned int q = 0; q < vdev->nr_queues; q++)
		vn_vdev_queue_quiesce(vdev, q);
}

int vn_vdev_queue_stop(struct vn_vdev *vdev, unsigned int q, struct vn_vq_state *out)
{
	if (q >= vdev->nr_queues)
		return -EINVAL;
	vn_vdev_queue_quiesce(vdev, q);
	vn_vdev_lock(vdev);
	queue_reset(vdev, q, out);
	vn_vdev_unlock(vdev);
	return 0;
}

unsigned int vn_vdev_queue_inflight(struct vn_vdev *vdev, unsigned int q)
{
	unsigned int n;

	if (q >= vdev->nr_queues)
		return 0;
	vn_vdev_queue_lock(vdev, q);
	n = vn_vq_inflight(&vdev->queues[q].vq);
	vn_vdev_queue_unlock(vdev, q);
	return n;
}

const char *vn_vdev_name(const struct vn_vdev *vdev)
{
	return vdev->name;
}

unsigned int vn_vdev_nr_vectors(const struct vn_vdev *vdev)
{
	return vdev->nr_vectors;
}

bool vn_vdev_is_msix(const struct vn_vdev *vdev)
{
	return vdev->msix;
}
