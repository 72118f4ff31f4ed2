/* SPDX-License-Identifier: MIT */
/* The device core: features, status rules, config space, interrupts, reset, hooks. */
#include <pthread.h>
#include <sys/eventfd.h>

#include "vtest.h"

#define S_ACK VIRTIO_CONFIG_S_ACKNOWLEDGE
#define S_DRV VIRTIO_CONFIG_S_DRIVER
#define S_FOK VIRTIO_CONFIG_S_FEATURES_OK
#define S_DOK VIRTIO_CONFIG_S_DRIVER_OK

struct dev_state {
	int resets;
	int refuse_features;
	uint8_t last_old, last_new;
	int config_writes;
};

static int dt_validate(struct vn_vdev *vdev, uint64_t f)
{
	struct dev_state *s = vn_vdev_opaque(vdev);

	return s->refuse_features ? -ENOTSUP : 0;
}

static int dt_config_write(struct vn_vdev *vdev, uint32_t off, const void *buf, uint32_t len)
{
	struct dev_state *s = vn_vdev_opaque(vdev);

	s->config_writes++;
	return vn_vdev_config_update(vdev, off, buf, len);
}

static void dt_status(struct vn_vdev *vdev, uint8_t old, uint8_t st)
{
	struct dev_state *s = vn_vdev_opaque(vdev);

	s->last_old = old;
	s->last_new = st;
}

static void dt_reset(struct vn_vdev *vdev)
{
	struct dev_state *s = vn_vdev_opaque(vdev);

	s->resets++;
}

static const struct vn_vdev_ops dt_ops = {
	.validate_features = dt_validate,
	.config_write = dt_config_write,
	.status_changed = dt_status,
	.reset = dt_reset,
};

static int mkdev(struct vn_t *t, struct vn_gmem *m, struct dev_state *s, struct vn_vdev **out,
		 bool msix)
{
	struct vn_vdev_cfg cfg = {
		.name = "dt", .device_id = 2, .ops = &dt_ops, .opaque = s,
		.features = F(VIRTIO_RING_F_EVENT_IDX) | F(5),
		.nr_queues = 3, .queue_size_max = 128, .config_len = 16,
		.nr_vectors = 4,
	};

	memset(s, 0, sizeof(*s));
	if (!VN_CHECK_OK(t, vn_gmem_init(m)))
		return -1;
	if (!VN_CHECK_OK(t, vn_gmem_add_memfd(m, VT_GPA, VT_SIZE, NULL)))
		return -1;
	if (!VN_CHECK_OK(t, vn_vdev_new(&cfg, out)))
		return -1;
	/* the test plays the transport: it binds the memory and the interrupt model */
	if (!msix && !VN_CHECK_OK(t, vn_vdev_bind_irq(*out, VN_VDEV_IRQ_SHARED)))
		return -1;
	return VN_CHECK_OK(t, vn_vdev_bind_mem(*out, m)) ? 0 : -1;
}

static void test_bad_cfg(struct vn_t *t)
{
	struct vn_vdev *d = NULL;
	struct vn_vdev_cfg cfg = {
		.ops = &dt_ops, .nr_queues = 1, .queue_size_max = 100,
		.nr_vectors = 1,
	};

	VN_CHECK_EQ_INT(t, vn_vdev_new(&cfg, &d), -EINVAL); /* size not a power of 2 */
	cfg.queue_size_max = 64;
	cfg.nr_vectors = 0;
	VN_CHECK_EQ_INT(t, vn_vdev_new(&cfg, &d), -EINVAL);
	VN_CHECK(t, d == NULL);
}

static void test_features_negotiation(struct vn_t *t)
{
	struct vn_gmem m;
	struct dev_state s;
	struct vn_vdev *d;

	if (mkdev(t, &m, &s, &d, true))
		return;
	VN_CHECK(t, vn_vdev_device_features(d) & F(VIRTIO_F_VERSION_1));
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK | S_DRV));
	/* a bit the device never offered: FEATURES_OK stays clear */
	VN_CHECK_OK(t, vn_vdev_set_driver_features(d, F(VIRTIO_F_VERSION_1) | F(7)));
	VN_CHECK_EQ_INT(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK), -EINVAL);
	VN_CHECK_EQ_U(t, vn_vdev_get_status(d), S_ACK | S_DRV);
	/* no VERSION_1: no FEATURES_OK either */
	VN_CHECK_OK(t, vn_vdev_set_driver_features(d, F(5)));
	VN_CHECK_EQ_INT(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK), -EINVAL);
	/* the device type refuses */
	s.refuse_features = 1;
	VN_CHECK_OK(t, vn_vdev_set_driver_features(d, F(VIRTIO_F_VERSION_1)));
	VN_CHECK_EQ_INT(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK), -EINVAL);
	s.refuse_features = 0;
	/* DRIVER_OK without FEATURES_OK for a 1.x driver: refused */
	VN_CHECK_EQ_INT(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_DOK), -EINVAL);
	VN_CHECK_EQ_U(t, vn_vdev_get_status(d), S_ACK | S_DRV);
	/* accepted; then features are final */
	VN_CHECK_OK(t, vn_vdev_set_driver_features(
			       d, F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_EVENT_IDX)));
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK));
	VN_CHECK_EQ_U(t, vn_vdev_get_status(d), S_ACK | S_DRV | S_FOK);
	VN_CHECK_EQ_INT(t, vn_vdev_set_driver_features(d, F(VIRTIO_F_VERSION_1)), -EPERM);
	VN_CHECK(t, vn_vdev_has_feature(d, VIRTIO_RING_F_EVENT_IDX));
	VN_CHECK(t, !vn_vdev_has_feature(d, 5));
	VN_CHECK(t, vn_vdev_queue(d, 2)->event_idx);
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK | S_DOK));
	VN_CHECK_EQ_U(t, s.last_old, S_ACK | S_DRV | S_FOK);
	VN_CHECK_EQ_U(t, s.last_new, S_ACK | S_DRV | S_FOK | S_DOK);
	/* the driver cannot set NEEDS_RESET */
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK | S_DOK |
						     VIRTIO_CONFIG_S_NEEDS_RESET));
	VN_CHECK_EQ_U(t, vn_vdev_get_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
	vn_vdev_free(d);
	vn_gmem_destroy(&m);
}

/* A legacy driver (no VERSION_1) goes straight to DRIVER_OK; features apply there. */
static void test_legacy_driver_ok(struct vn_t *t)
{
	struct vn_gmem m;
	struct dev_state s;
	struct vn_vdev *d;

	if (mkdev(t, &m, &s, &d, false))
		return;
	VN_CHECK_OK(t, vn_vdev_set_driver_features(d, F(VIRTIO_RING_F_EVENT_IDX)));
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_DOK));
	VN_CHECK(t, vn_vdev_is_legacy(d));
	VN_CHECK(t, vn_vdev_queue(d, 0)->event_idx);
	vn_vdev_free(d);
	vn_gmem_destroy(&m);
}

/* A transport with one interrupt line: every interrupt raises vector 0. */
static void test_shared_line(struct vn_t *t)
{
	struct vn_gmem m;
	struct dev_state s;
	struct vn_vdev *d;
	uint8_t b[2] = { 7, 8 };

	if (mkdev(t, &m, &s, &d, false))
		return;
	VN_CHECK_OK(t, vn_vdev_set_config_vector(d, 3));
	VN_CHECK_OK(t, vn_vdev_set_driver_features(d, F(VIRTIO_F_VERSION_1)));
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK | S_DOK));
	VN_CHECK_OK(t, vn_vdev_config_update(d, 0, b, 2));
	VN_CHECK(t, vt_fd_fired(vn_vdev_guest_notifier_fd(d, 0)));
	VN_CHECK(t, !vt_fd_fired(vn_vdev_guest_notifier_fd(d, 3)));
	VN_CHECK_EQ_U(t, vn_vdev_isr_read_clear(d), VN_VDEV_ISR_CONFIG);
	vn_vdev_free(d);
	vn_gmem_destroy(&m);
}

static void test_config_space(struct vn_t *t)
{
	struct vn_gmem m;
	struct dev_state s;
	struct vn_vdev *d;
	uint8_t b[16] = { 1, 2, 3, 4 }, r[16];
	uint32_t gen;

	if (mkdev(t, &m, &s, &d, true))
		return;
	VN_CHECK_OK(t, vn_vdev_set_config_vector(d, 3));
	gen = vn_vdev_config_generation(d);
	VN_CHECK_OK(t, vn_vdev_config_update(d, 4, b, 4));
	VN_CHECK(t, vn_vdev_config_generation(d) != gen);
	/* no DRIVER_OK yet: no config interrupt */
	VN_CHECK(t, !vt_fd_fired(vn_vdev_guest_notifier_fd(d, 3)));
	VN_CHECK_OK(t, vn_vdev_config_read(d, 0, r, 16));
	VN_CHECK(t, memcmp(r + 4, b, 4) == 0);
	VN_CHECK_EQ_INT(t, vn_vdev_config_read(d, 12, r, 5), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_vdev_config_read(d, UINT32_MAX, r, 2), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_vdev_config_write(d, 16, b, 1), -EINVAL);
	VN_CHECK_OK(t, vn_vdev_set_driver_features(d, F(VIRTIO_F_VERSION_1)));
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK | S_DOK));
	gen = vn_vdev_config_generation(d);
	VN_CHECK_OK(t, vn_vdev_config_write(d, 0, b, 2));
	VN_CHECK_EQ_INT(t, s.config_writes, 1);
	VN_CHECK(t, vn_vdev_config_generation(d) != gen);
	VN_CHECK(t, vt_fd_fired(vn_vdev_guest_notifier_fd(d, 3)));
	VN_CHECK_EQ_U(t, vn_vdev_isr_read_clear(d), VN_VDEV_ISR_CONFIG);
	VN_CHECK_EQ_U(t, vn_vdev_isr_read_clear(d), 0);
	vn_vdev_free(d);
	vn_gmem_destroy(&m);
}

static void test_vectors(struct vn_t *t)
{
	struct vn_gmem m;
	struct dev_state s;
	struct vn_vdev *d;
	int fds = vn_t_count_fds(), efd;

	if (mkdev(t, &m, &s, &d, true))
		return;
	VN_CHECK_EQ_INT(t, vn_vdev_queue_set_vector(d, 0, 4), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_vdev_queue_set_vector(d, 3, 0), -EINVAL);
	VN_CHECK_OK(t, vn_vdev_queue_set_vector(d, 0, VN_VDEV_NO_VECTOR));
	VN_CHECK_EQ_INT(t, vn_vdev_guest_notifier_fd(d, 4), -EINVAL);
	efd = dup(vn_vdev_guest_notifier_fd(d, 1));
	VN_CHECK_EQ_INT(t, vn_vdev_set_guest_notifier_fd(d, 9, efd), -EINVAL);
	VN_CHECK_OK(t, vn_vdev_set_guest_notifier_fd(d, 2, efd)); /* takes ownership */
	VN_CHECK_EQ_INT(t, vn_vdev_guest_notifier_fd(d, 2), efd);
	vn_vdev_free(d);
	vn_gmem_destroy(&m);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds);
}

/* Hooks: order and what they see. */
struct hook_log {
	char ev[32][24];
	int n;
};

static void hlog(struct hook_log *l, const char *s)
{
	if (l->n < 32)
		snprintf(l->ev[l->n++], sizeof(l->ev[0]), "%s", s);
}

static void h_status_pre(void *o, struct vn_vdev *d, uint8_t old, uint8_t st)
{
	char b[24];

	snprintf(b, sizeof(b), "pre %x>%x", old, st);
	hlog(o, b);
}

static void h_status_post(void *o, struct vn_vdev *d, uint8_t old, uint8_t st)
{
	char b[24];

	/* post sees the new status already in place */
	snprintf(b, sizeof(b), "post %x>%x=%x", old, st, vn_vdev_get_status(d));
	hlog(o, b);
}

static void h_reset_pre(void *o, struct vn_vdev *d)
{
	/* queues still configured here */
	hlog(o, vn_vq_is_ready(vn_vdev_queue(d, 0)) ? "reset_pre ready" : "reset_pre idle");
}

static void h_reset_post(void *o, struct vn_vdev *d)
{
	hlog(o, vn_vq_is_ready(vn_vdev_queue(d, 0)) ? "reset_post ready" : "reset_post idle");
}

static void h_qreset(void *o, struct vn_vdev *d, unsigned int q)
{
	hlog(o, "qreset");
}

static void h_qenabled(void *o, struct vn_vdev *d, unsigned int q)
{
	hlog(o, "qenabled");
}

static void h_needs_reset(void *o, struct vn_vdev *d)
{
	hlog(o, "needs_reset");
}

static const struct vn_vdev_hooks hooks = {
	.status_pre = h_status_pre,
	.status_post = h_status_post,
	.reset_pre = h_reset_pre,
	.reset_post = h_reset_post,
	.queue_reset_pre = h_qreset,
	.queue_enabled = h_qenabled,
	.needs_reset = h_needs_reset,
};

static void test_hooks(struct vn_t *t)
{
	struct vn_gmem m;
	struct dev_state s;
	struct vn_vdev *d;
	struct hook_log l = { 0 };

	if (mkdev(t, &m, &s, &d, true))
		return;
	VN_CHECK_OK(t, vn_vdev_add_hooks(d, &hooks, &l));
	VN_CHECK_EQ_INT(t, vn_vdev_add_hooks(d, &hooks, &l), -EEXIST);
	VN_CHECK_OK(t, vn_vdev_set_driver_features(d, F(VIRTIO_F_VERSION_1)));
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK));
	VN_CHECK_OK(t, vn_vdev_queue_set_addr(d, 0, VT_DESC, VT_AVAIL, VT_USED));
	VN_CHECK_OK(t, vn_vdev_queue_enable(d, 0));
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK | S_DOK));
	vn_vdev_set_needs_reset(d);
	vn_vdev_set_needs_reset(d); /* once */
	VN_CHECK_OK(t, vn_vdev_queue_reset(d, 1));
	VN_CHECK_OK(t, vn_vdev_set_status(d, 0));
	VN_CHECK_OK(t, vn_vdev_remove_hooks(d, &hooks, &l));
	VN_CHECK_EQ_INT(t, vn_vdev_remove_hooks(d, &hooks, &l), -ENOENT);
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK));

	static const char *const want[] = {
		"pre 0>b", "post 0>b=b", "qenabled", "pre b>f", "post b>f=f", "needs_reset",
		"qreset", "reset_pre ready", "reset_post idle",
	};
	VN_CHECK_EQ_INT(t, l.n, (int)VN_ARRAY_SIZE(want));
	for (int i = 0; i < l.n && i < (int)VN_ARRAY_SIZE(want); i++)
		if (strcmp(l.ev[i], want[i]) != 0)
			vn_t_fail(t, __FILE__, __LINE__, "hook %d: got '%s' want '%s'", i, l.ev[i],
				  want[i]);
	VN_CHECK_EQ_INT(t, s.resets, 1);
	vn_vdev_free(d);
	vn_gmem_destroy(&m);
}

static void handler(struct vn_vdev *vdev, struct vn_vq *vq)
{
	int *n = vn_vdev_opaque(vdev);

	(*n)++;
}

static void test_queue_kick(struct vn_t *t)
{
	struct vt v;
	int runs = 0;

	if (vt_init(t, &v, 0))
		return;
	v.vdev->opaque = &runs;
	VN_CHECK_EQ_INT(t, vn_vdev_queue_kick(v.vdev, 0), 0); /* no handler */
	VN_CHECK_OK(t, vn_vdev_set_queue_handler(v.vdev, 0, handler));
	VN_CHECK_OK(t, vn_vdev_set_queue_handler(v.vdev, 1, handler));
	VN_CHECK_EQ_INT(t, vn_vdev_set_queue_handler(v.vdev, 2, handler), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_vdev_queue_kick(v.vdev, 0), 1);
	VN_CHECK_EQ_INT(t, vn_vdev_queue_kick(v.vdev, 1), 0); /* not enabled */
	VN_CHECK_EQ_INT(t, vn_vdev_queue_kick(v.vdev, 9), -EINVAL);
	VN_CHECK_EQ_INT(t, runs, 1);
	vt_fini(&v);
}

/* NEEDS_RESET from another thread while the lock holder reads status. */
static void *needs_reset_thread(void *arg)
{
	vn_vdev_set_needs_reset(arg);
	return NULL;
}

static void test_needs_reset_from_other_thread(struct vn_t *t)
{
	struct vt v;
	pthread_t th;

	if (vt_init(t, &v, 0))
		return;
	pthread_create(&th, NULL, needs_reset_thread, v.vdev);
	VN_CHECK(t, VN_WAIT_FOR(vn_vdev_get_status(v.vdev) & VIRTIO_CONFIG_S_NEEDS_RESET, 10000));
	pthread_join(th, NULL);
	VN_CHECK(t, vt_fd_fired(vn_vdev_guest_notifier_fd(v.vdev, 1)));
	VN_CHECK_EQ_U(t, vn_vdev_isr_read_clear(v.vdev), VN_VDEV_ISR_CONFIG);
	vt_fini(&v);
}

struct irq_storm {
	struct vn_vdev *vdev;
	int stop;
	unsigned long raised;
};

static void *raise_config_irqs(void *arg)
{
	struct irq_storm *s = arg;
	uint8_t b = 0;

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		if (vn_vdev_config_update(s->vdev, 0, &b, 1) == 0)
			__atomic_add_fetch(&s->raised, 1, __ATOMIC_RELAXED);
		b++;
	}
	return NULL;
}

/*
 * A transport rebinds a vector's eventfd (MSI-X reprogramming) while another
 * thread raises interrupts on it. The old fd must never be written after it
 * was closed: its number may already belong to something else. TSan reports
 * the race if the swap is not excluded from the raise.
 */
static void test_rebind_vector_while_raising(struct vn_t *t)
{
	struct vt v;
	struct irq_storm s = { 0 };
	pthread_t th;
	int fds_before;

	if (vt_init(t, &v, 0) < 0)
		return;
	fds_before = vn_t_count_fds();
	s.vdev = v.vdev;
	VN_REQUIRE(t, pthread_create(&th, NULL, raise_config_irqs, &s) == 0);
	/*
	 * Rebind only once the raiser is raising: on a loaded machine the
	 * thread may not have run at all by the time 2000 rebinds are done.
	 */
	VN_CHECK(t, VN_WAIT_FOR(__atomic_load_n(&s.raised, __ATOMIC_RELAXED) > 0, 10000));
	for (int i = 0; i < 2000; i++) {
		int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

		VN_REQUIRE(t, fd >= 0);
		if (!VN_CHECK_OK(t, vn_vdev_set_guest_notifier_fd(v.vdev, 1, fd))) {
			close(fd);
			break;
		}
	}
	__atomic_store_n(&s.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	VN_CHECK(t, s.raised > 0);
	/* the last bound eventfd is the one interrupts reach now */
	VN_CHECK_OK(t, vn_vdev_config_update(v.vdev, 0, &s.stop, 1));
	VN_CHECK(t, vt_fd_fired(vn_vdev_guest_notifier_fd(v.vdev, 1)));
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds_before);
	vt_fini(&v);
}

/*
 * Guest memory comes from the transport (vn_vdev_bind_mem()): without it no
 * queue starts; a second transport's memory is refused; unbinding resets
 * the device, so no queue keeps using the memory that goes away.
 */
static void test_mem_binding(struct vn_t *t)
{
	struct vn_gmem m, other;
	struct dev_state s = { 0 };
	struct vn_vdev *d;
	struct vn_vdev_cfg cfg = {
		.name = "dt", .device_id = 2, .ops = &dt_ops, .opaque = &s,
		.nr_queues = 1, .queue_size_max = 128, .nr_vectors = 2,
	};

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	VN_REQUIRE_OK(t, vn_gmem_init(&other));
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, VT_GPA, VT_SIZE, NULL));
	VN_REQUIRE_OK(t, vn_vdev_new(&cfg, &d));
	VN_CHECK_OK(t, vn_vdev_set_driver_features(d, F(VIRTIO_F_VERSION_1)));
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK));
	VN_CHECK_OK(t, vn_vdev_queue_set_addr(d, 0, VT_DESC, VT_AVAIL, VT_USED));
	/* nothing bound: the queue refuses to start, the device needs a reset */
	VN_CHECK_EQ_INT(t, vn_vdev_queue_enable(d, 0), -ENXIO);
	VN_CHECK(t, !vn_vq_is_ready(vn_vdev_queue(d, 0)));
	VN_CHECK(t, vn_vdev_get_status(d) & VIRTIO_CONFIG_S_NEEDS_RESET);
	VN_CHECK_EQ_INT(t, vn_vdev_bind_mem(d, NULL), -EINVAL);

	vn_vdev_reset(d);
	VN_CHECK_OK(t, vn_vdev_bind_mem(d, &m));
	/* one transport at a time, even a second one on the same memory */
	VN_CHECK_EQ_INT(t, vn_vdev_bind_mem(d, &m), -EBUSY);
	VN_CHECK_EQ_INT(t, vn_vdev_bind_mem(d, &other), -EBUSY);
	VN_CHECK(t, vn_vdev_mem(d) == &m);
	VN_CHECK_OK(t, vn_vdev_set_driver_features(d, F(VIRTIO_F_VERSION_1)));
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK));
	VN_CHECK_OK(t, vn_vdev_queue_set_addr(d, 0, VT_DESC, VT_AVAIL, VT_USED));
	VN_CHECK_OK(t, vn_vdev_queue_enable(d, 0));
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK | S_DRV | S_FOK | S_DOK));

	/* unbinding resets: the queue stops with the memory */
	s.resets = 0;
	vn_vdev_unbind_mem(d);
	VN_CHECK_EQ_INT(t, s.resets, 1);
	VN_CHECK(t, !vn_vq_is_ready(vn_vdev_queue(d, 0)));
	VN_CHECK_EQ_U(t, vn_vdev_get_status(d), 0);
	VN_CHECK(t, vn_vdev_mem(d) == NULL);
	vn_vdev_unbind_mem(d); /* nothing bound: fine */
	VN_CHECK_OK(t, vn_vdev_bind_mem(d, &other)); /* free for another transport */

	/* the interrupt model: only in the reset state, only a known one */
	VN_CHECK_EQ_INT(t, vn_vdev_bind_irq(d, (enum vn_vdev_irq)7), -EINVAL);
	VN_CHECK_OK(t, vn_vdev_set_status(d, S_ACK));
	VN_CHECK_EQ_INT(t, vn_vdev_bind_irq(d, VN_VDEV_IRQ_SHARED), -EBUSY);
	vn_vdev_reset(d);
	VN_CHECK_OK(t, vn_vdev_bind_irq(d, VN_VDEV_IRQ_SHARED));
	VN_CHECK_OK(t, vn_vdev_bind_irq(d, VN_VDEV_IRQ_VECTORS));
	vn_vdev_free(d);
	vn_gmem_destroy(&other);
	vn_gmem_destroy(&m);
}

VN_TESTS(VN_TEST(test_bad_cfg), VN_TEST(test_mem_binding), VN_TEST(test_shared_line), VN_TEST(test_features_negotiation), VN_TEST(test_legacy_driver_ok),
	 VN_TEST(test_config_space), VN_TEST(test_vectors), VN_TEST(test_hooks),
	 VN_TEST(test_queue_kick), VN_TEST(test_needs_reset_from_other_thread),
	 VN_TEST(test_rebind_vector_while_raising))
