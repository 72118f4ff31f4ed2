/* SPDX-License-Identifier: MIT */
#include "virtio/hostnotif.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <pthread.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/notifier.h"
#include "base/trace.h"
#include "virtio/vdev.h"
#include "virtio/vq.h"

struct hn_queue {
	struct vn_hostnotif *hn;
	unsigned int idx;
	/* Written under the device lock and the queue's run lock; read under either. */
	enum vn_hostnotif_state state;
	struct vn_notifier n;      /* created on first use, kept until free */
	bool registered;           /* an ioeventfd for @n is in the accelerator */
	bool starting;             /* registered by the start in progress */
	struct vn_ioev ioev;       /* what was registered */
	unsigned int grabs;        /* vhost takes not yet given back */
	/* Iothread side: the fd handler follows want_attached (atomic). */
	int want_attached;
	bool attached;             /* iothread only */
	struct vn_bh *bh;
};

struct vn_hostnotif {
	struct vn_vdev *vdev;
	struct vn_accel *accel;
	struct vn_iothread *iothread;
	const struct vn_hostnotif_ops *ops;
	void *opaque;
	bool ioeventfd_on;
	bool running;
	bool bus_master;
	uint64_t safety_ns;
	struct vn_timer *safety;   /* iothread only */
	unsigned int nr;
	struct hn_queue *q;
	struct vn_hostnotif_stats stats; /* atomic adds */
};

#define STAT_INC(hn, field) __atomic_add_fetch(&(hn)->stats.field, 1, __ATOMIC_RELAXED)

static const char *const state_names[] = {
	[VN_HOSTNOTIF_DEASSIGNED] = "deassigned",
	[VN_HOSTNOTIF_ASSIGNED] = "assigned",
	[VN_HOSTNOTIF_OFFLIMITS] = "offlimits",
};

const char *vn_hostnotif_state_name(enum vn_hostnotif_state s)
{
	return (unsigned int)s < VN_ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

/* Caller holds the device lock. Edge letters as in docs/design.md. */
static void set_state(struct hn_queue *q, enum vn_hostnotif_state s, char edge)
{
	enum vn_hostnotif_state old = q->state;

	vn_vdev_queue_lock(q->hn->vdev, q->idx);
	__atomic_store_n(&q->state, s, __ATOMIC_RELEASE);
	vn_vdev_queue_unlock(q->hn->vdev, q->idx);
	vn_trace(hostnotif_transition, "dev=%s vq=%u %s->%s edge=%c", q->hn->vdev->name, q->idx,
		 vn_hostnotif_state_name(old), vn_hostnotif_state_name(s), edge);
}

/* Runs the queue's handler once. Caller holds the queue's run lock. */
static void run_queue_locked(struct hn_queue *q, uint64_t *counter)
{
	if (vn_vdev_queue_kick(q->hn->vdev, q->idx) > 0)
		__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

/*
 * The iothread consumes the eventfd only while the queue is ASSIGNED; in any
 * other state somebody else owns it and the signal is left for them.
 */
static bool iothread_consume(struct hn_queue *q)
{
	bool ran = false;

	vn_vdev_queue_lock(q->hn->vdev, q->idx);
	if (q->state == VN_HOSTNOTIF_ASSIGNED && vn_notifier_test_and_clear(&q->n) == 1) {
		run_queue_locked(q, &q->hn->stats.iothread_runs);
		ran = true;
	}
	vn_vdev_queue_unlock(q->hn->vdev, q->idx);
	return ran;
}

static void on_kick(void *opaque, uint32_t events)
{
	iothread_consume(opaque);
}

static bool poll_kick(void *opaque)
{
	return iothread_consume(opaque);
}

/* Bottom half on the iothread: make the fd handler match want_attached. */
static void reconcile_attach(void *opaque)
{
	struct hn_queue *q = opaque;
	struct vn_loop *loop = vn_iothread_loop(q->hn->iothread);
	bool want = __atomic_load_n(&q->want_attached, __ATOMIC_ACQUIRE);
	int r;

	if (want && !q->attached) {
		r = vn_loop_add_fd(loop, vn_notifier_fd(&q->n), VN_LOOP_READ, on_kick, poll_kick, q);
		if (r < 0) {
			/* Without a watcher the kicks would wait for the safety net. */
			vn_log(VN_LOG_ERR, "hostnotif", "%s vq %u: cannot watch host notifier: %s",
			       q->hn->vdev->name, q->idx, vn_strerror(r));
			return;
		}
		q->attached = true;
		/* A kick that landed before the watch is seen now, not at the next kick. */
		iothread_consume(q);
	} else if (!want && q->attached) {
		(void)vn_loop_del_fd(loop, vn_notifier_fd(&q->n));
		q->attached = false;
	}
}

static void post_attach(struct hn_queue *q, bool want)
{
	__atomic_store_n(&q->want_attached, want, __ATOMIC_RELEASE);
	vn_bh_schedule(q->bh);
}

static int ensure_notifier(struct hn_queue *q)
{
	return vn_notifier_is_valid(&q->n) ? 0 : vn_notifier_init(&q->n);
}

/* Registers queue @q's ioeventfd. Device lock held. */
static int register_ioev(struct hn_queue *q)
{
	struct vn_hostnotif *hn = q->hn;
	struct vn_ioev d = { 0 };
	int r;

	if (q->registered)
		return 0;
	if (!hn->accel || !hn->ops || !hn->ops->ioev_for_queue)
		return -EOPNOTSUPP;
	r = ensure_notifier(q);
	if (r < 0)
		return r;
	r = hn->ops->ioev_for_queue(hn->opaque, q->idx, &d);
	if (r < 0)
		return r;
	d.fd = vn_notifier_fd(&q->n);
	r = vn_accel_assign(hn->accel, &d);
	if (r < 0)
		return r;
	q->ioev = d;
	q->registered = true;
	return 0;
}

static void unregister_ioev(struct hn_queue *q)
{
	int r;

	if (!q->registered)
		return;
	r = vn_accel_deassign(q->hn->accel, &q->ioev);
	if (r < 0)
		vn_log(VN_LOG_ERR, "hostnotif", "%s vq %u: ioeventfd deassign failed: %s",
		       q->hn->vdev->name, q->idx, vn_strerror(r));
	q->registered = false;
}

/*
 * The drain-on-stop rule: a kick that raced the stop is in the eventfd; run
 * the queue once for it (an idle queue is not run for nothing), then make
 * sure the driver is allowed to notify again, so the next owner is told.
 * Device lock held.
 */
static void drain(struct hn_queue *q, bool force)
{
	struct vn_vq *vq = vn_vdev_queue(q->hn->vdev, q->idx);
	bool set = vn_notifier_is_valid(&q->n) && vn_notifier_test_and_clear(&q->n) == 1;

	vn_vdev_queue_lock(q->hn->vdev, q->idx);
	if (set || force)
		run_queue_locked(q, force ? &q->hn->stats.self_kicks : &q->hn->stats.drain_runs);
	if (vq && vn_vq_is_ready(vq)) {
		for (int i = 0; i < 4 && vn_vq_enable_notify(vq) > 0; i++)
			run_queue_locked(q, &q->hn->stats.drain_runs);
	}
	vn_vdev_queue_unlock(q->hn->vdev, q->idx);
}

static bool can_assign(struct vn_hostnotif *hn)
{
	return hn->ioeventfd_on && hn->running && hn->bus_master && hn->iothread && hn->accel &&
	       hn->ops && (vn_vdev_get_status(hn->vdev) & VIRTIO_CONFIG_S_DRIVER_OK);
}

static bool queue_active(struct vn_hostnotif *hn, unsigned int i)
{
	struct vn_vq *vq = vn_vdev_queue(hn->vdev, i);

	return vq && vn_vq_is_ready(vq);
}

/* ASSIGNED -> DEASSIGNED for one queue. Device lock held. */
static void stop_queue(struct hn_queue *q)
{
	if (q->state != VN_HOSTNOTIF_ASSIGNED)
		return;
	set_state(q, VN_HOSTNOTIF_DEASSIGNED, 's');
	unregister_ioev(q);
	post_attach(q, false);
	drain(q, false);
}

static void stop_all(struct vn_hostnotif *hn)
{
	for (unsigned int i = 0; i < hn->nr; i++)
		stop_queue(&hn->q[i]);
}

static void fall_back(struct vn_hostnotif *hn, unsigned int failed_q, int err)
{
	hn->ioeventfd_on = false;
	STAT_INC(hn, fallbacks);
	vn_trace(hostnotif_fallback, "dev=%s vq=%u err=%d", hn->vdev->name, failed_q, err);
	vn_log(VN_LOG_WARN, "hostnotif",
	       "%s: ioeventfd for vq %u failed (%s); falling back to synchronous notify",
	       hn->vdev->name, failed_q, vn_strerror(err));
}

/*
 * Edge b for every active DEASSIGNED queue, all or nothing: register every
 * ioeventfd first; if one fails, undo the others (running each once for a
 * kick that may have hit its eventfd meanwhile) and carry on synchronously.
 * Only then do the queues change hands, each with a self-kick. Device lock held.
 */
static void start_all(struct vn_hostnotif *hn)
{
	unsigned int i;
	int r = 0;

	if (!can_assign(hn))
		return;
	for (i = 0; i < hn->nr; i++) {
		struct hn_queue *q = &hn->q[i];

		if (q->state != VN_HOSTNOTIF_DEASSIGNED || !queue_active(hn, i))
			continue;
		r = register_ioev(q);
		if (r < 0)
			break;
		q->starting = true;
	}
	if (r < 0) {
		for (unsigned int j = 0; j < hn->nr; j++) {
			struct hn_queue *q = &hn->q[j];

			if (!q->starting)
				continue;
			q->starting = false;
			unregister_ioev(q);
			drain(q, false);
		}
		fall_back(hn, i, r);
		return;
	}
	for (i = 0; i < hn->nr; i++) {
		struct hn_queue *q = &hn->q[i];

		if (!q->starting)
			continue;
		q->starting = false;
		set_state(q, VN_HOSTNOTIF_ASSIGNED, 'b');
		post_attach(q, true);
		/* Self-kick: whatever landed while nobody listened, and a stale avail_event. */
		if (vn_notifier_set(&q->n) == 0)
			STAT_INC(hn, self_kicks);
	}
}

/* Re-evaluate after any condition changed. Device lock held. */
static void update(struct vn_hostnotif *hn)
{
	if (can_assign(hn))
		start_all(hn);
	else
		stop_all(hn);
}

/* Edge g: reset takes every queue back, vhost's included. Device lock held. */
static void reset_all(struct vn_hostnotif *hn)
{
	for (unsigned int i = 0; i < hn->nr; i++) {
		struct hn_queue *q = &hn->q[i];

		if (q->state == VN_HOSTNOTIF_OFFLIMITS) {
			vn_log(VN_LOG_INFO, "hostnotif", "%s vq %u: reset while a vhost backend held "
			       "the notifier", hn->vdev->name, i);
			q->grabs = 0;
			set_state(q, VN_HOSTNOTIF_DEASSIGNED, 'g');
			unregister_ioev(q);
			if (vn_notifier_is_valid(&q->n) && vn_notifier_test_and_clear(&q->n) < 0)
				vn_log(VN_LOG_ERR, "hostnotif", "%s vq %u: eventfd read failed",
				       hn->vdev->name, i);
		} else if (q->state == VN_HOSTNOTIF_ASSIGNED) {
			set_state(q, VN_HOSTNOTIF_DEASSIGNED, 'g');
			unregister_ioev(q);
			post_attach(q, false);
			drain(q, false);
		}
	}
}

static void hook_status_pre(void *opaque, struct vn_vdev *vdev, uint8_t old, uint8_t status)
{
	if ((old & VIRTIO_CONFIG_S_DRIVER_OK) && !(status & VIRTIO_CONFIG_S_DRIVER_OK))
		stop_all(opaque);
}

/*
 * The self-kick of a start that stays synchronous: run each active
 * DEASSIGNED queue once. Never while the machine is paused: a paused
 * machine's queues must not move (migration copies them).
 */
static void self_kick_sync(struct vn_hostnotif *hn)
{
	if (!hn->running || !(vn_vdev_get_status(hn->vdev) & VIRTIO_CONFIG_S_DRIVER_OK))
		return;
	for (unsigned int i = 0; i < hn->nr; i++)
		if (hn->q[i].state == VN_HOSTNOTIF_DEASSIGNED && queue_active(hn, i))
			drain(&hn->q[i], true);
}

static void hook_status_post(void *opaque, struct vn_vdev *vdev, uint8_t old, uint8_t status)
{
	struct vn_hostnotif *hn = opaque;

	if (!(status & VIRTIO_CONFIG_S_DRIVER_OK))
		return;
	if (can_assign(hn))
		start_all(hn);
	else if (!(old & VIRTIO_CONFIG_S_DRIVER_OK))
		self_kick_sync(hn);
}

static void hook_reset_pre(void *opaque, struct vn_vdev *vdev)
{
	reset_all(opaque);
}

static void hook_queue_reset_pre(void *opaque, struct vn_vdev *vdev, unsigned int q)
{
	struct vn_hostnotif *hn = opaque;

	if (q < hn->nr)
		stop_queue(&hn->q[q]);
}

static void hook_queue_enabled(void *opaque, struct vn_vdev *vdev, unsigned int q)
{
	start_all(opaque);
}

static void hook_loaded(void *opaque, struct vn_vdev *vdev)
{
	struct vn_hostnotif *hn = opaque;

	/*
	 * A migrated device with DRIVER_OK starts by itself, with a self-kick.
	 * One that stays synchronous is run once here instead: the guest may
	 * have kicked on the source after its last run, and a stale avail_event
	 * may keep it from kicking again.
	 */
	if (can_assign(hn))
		start_all(hn);
	else
		self_kick_sync(hn);
}

static const struct vn_vdev_hooks hostnotif_hooks = {
	.status_pre = hook_status_pre,
	.status_post = hook_status_post,
	.reset_pre = hook_reset_pre,
	.queue_reset_pre = hook_queue_reset_pre,
	.queue_enabled = hook_queue_enabled,
	.loaded = hook_loaded,
};

/*
 * The missed-doorbell safety net, on the iothread: avail entries in an
 * ASSIGNED queue that nobody was told about are a lost kick somewhere.
 */
static void safety_tick(void *opaque)
{
	struct vn_hostnotif *hn = opaque;

	for (unsigned int i = 0; i < hn->nr; i++) {
		struct hn_queue *q = &hn->q[i];
		struct vn_vq *vq = vn_vdev_queue(hn->vdev, i);

		vn_vdev_queue_lock(q->hn->vdev, q->idx);
		if (q->state == VN_HOSTNOTIF_ASSIGNED && vq && vn_vq_is_ready(vq)) {
			if (vn_notifier_test_and_clear(&q->n) == 1) {
				/* an ordinary kick the handler had not reached yet */
				run_queue_locked(q, &hn->stats.iothread_runs);
			} else if (vn_vq_avail_count(vq) > 0) {
				vn_log(VN_LOG_WARN, "hostnotif",
				       "%s vq %u: avail work without a kick (missed doorbell)",
				       hn->vdev->name, i);
				run_queue_locked(q, &hn->stats.missed);
			}
		}
		vn_vdev_queue_unlock(q->hn->vdev, q->idx);
	}
	vn_timer_arm_in(hn->safety, hn->safety_ns);
}

static int setup_on_iothread(void *opaque)
{
	struct vn_hostnotif *hn = opaque;
	int r;

	r = vn_timer_new(vn_iothread_loop(hn->iothread), safety_tick, hn, &hn->safety);
	if (r < 0)
		return r;
	vn_timer_arm_in(hn->safety, hn->safety_ns);
	return 0;
}

static void teardown_on_iothread(void *opaque)
{
	struct vn_hostnotif *hn = opaque;

	for (unsigned int i = 0; i < hn->nr; i++) {
		struct hn_queue *q = &hn->q[i];

		if (q->attached)
			(void)vn_loop_del_fd(vn_iothread_loop(hn->iothread), vn_notifier_fd(&q->n));
		q->attached = false;
		vn_bh_free(q->bh);
		q->bh = NULL;
	}
	vn_timer_free(hn->safety);
	hn->safety = NULL;
}

static void noop(void *opaque)
{
}

void vn_hostnotif_sync(struct vn_hostnotif *hn)
{
	/* FIFO: this call runs after every bottom half posted before it. */
	if (hn->iothread)
		vn_iothread_run_sync_void(hn->iothread, noop, NULL);
}

int vn_hostnotif_new(const struct vn_hostnotif_cfg *cfg, struct vn_hostnotif **out)
{
	struct vn_hostnotif *hn;
	int r;

	if (!cfg || !cfg->vdev)
		return -EINVAL;
	hn = calloc(1, sizeof(*hn));
	if (!hn)
		return -ENOMEM;
	*hn = (struct vn_hostnotif){
		.vdev = cfg->vdev, .accel = cfg->accel, .iothread = cfg->iothread,
		.ops = cfg->ops, .opaque = cfg->opaque, .ioeventfd_on = cfg->ioeventfd,
		.running = cfg->running, .bus_master = true,
		.safety_ns = cfg->iothread ? cfg->safety_net_ns : 0,
	};
	hn->nr = vn_vdev_nr_queues(cfg->vdev);
	hn->q = calloc(hn->nr, sizeof(*hn->q));
	if (!hn->q) {
		free(hn);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < hn->nr; i++) {
		struct hn_queue *q = &hn->q[i];

		*q = (struct hn_queue){ .hn = hn, .idx = i, .n = VN_NOTIFIER_INIT };
		vn_trace(hostnotif_transition, "dev=%s vq=%u start->deassigned edge=a",
			 hn->vdev->name, i);
		if (hn->iothread) {
			r = vn_bh_new(vn_iothread_loop(hn->iothread), reconcile_attach, q, &q->bh);
			if (r < 0)
				goto err;
		}
	}
	if (hn->safety_ns) {
		r = vn_iothread_run_sync(hn->iothread, setup_on_iothread, hn);
		if (r < 0)
			goto err;
	}
	vn_vdev_lock(hn->vdev);
	r = vn_vdev_add_hooks(hn->vdev, &hostnotif_hooks, hn);
	if (r == 0)
		update(hn);
	vn_vdev_unlock(hn->vdev);
	if (r < 0)
		goto err;
	*out = hn;
	return 0;

err:
	if (hn->iothread)
		vn_iothread_run_sync_void(hn->iothread, teardown_on_iothread, hn);
	free(hn->q);
	free(hn);
	return r;
}

void vn_hostnotif_free(struct vn_hostnotif *hn)
{
	if (!hn)
		return;
	vn_vdev_lock(hn->vdev);
	reset_all(hn);
	(void)vn_vdev_remove_hooks(hn->vdev, &hostnotif_hooks, hn);
	vn_vdev_unlock(hn->vdev);
	if (hn->iothread)
		vn_iothread_run_sync_void(hn->iothread, teardown_on_iothread, hn);
	for (unsigned int i = 0; i < hn->nr; i++) {
		vn_notifier_cleanup(&hn->q[i].n);
	}
	free(hn->q);
	free(hn);
}

int vn_hostnotif_doorbell(struct vn_hostnotif *hn, unsigned int idx)
{
	struct hn_queue *q;

	if (idx >= hn->nr)
		return -EINVAL;
	q = &hn->q[idx];
	if (q->state != VN_HOSTNOTIF_DEASSIGNED && vn_notifier_is_valid(&q->n)) {
		STAT_INC(hn, forwarded);
		return vn_notifier_set(&q->n) < 0 ? -EIO : 0;
	}
	vn_vdev_queue_lock(q->hn->vdev, q->idx);
	run_queue_locked(q, &hn->stats.sync_runs);
	vn_vdev_queue_unlock(q->hn->vdev, q->idx);
	return 0;
}

void vn_hostnotif_set_running(struct vn_hostnotif *hn, bool running)
{
	bool resumed = running && !hn->running;

	hn->running = running;
	if (resumed && !can_assign(hn))
		self_kick_sync(hn);
	else
		update(hn);
}

void vn_hostnotif_set_bus_master(struct vn_hostnotif *hn, bool on)
{
	hn->bus_master = on;
	update(hn);
}

void vn_hostnotif_set_ioeventfd(struct vn_hostnotif *hn, bool on)
{
	hn->ioeventfd_on = on;
	update(hn);
}

int vn_hostnotif_set_host_notifier(struct vn_hostnotif *hn, unsigned int idx, bool assign)
{
	struct hn_queue *q;
	int r;

	if (idx >= hn->nr)
		return -EINVAL;
	q = &hn->q[idx];
	if (assign) {
		if (q->grabs++ > 0)
			return 0;
		r = ensure_notifier(q);
		if (r < 0) {
			q->grabs--;
			return r;
		}
		if (q->state == VN_HOSTNOTIF_ASSIGNED) {
			/* Edge c: the ioeventfd stays; only userspace lets go. */
			set_state(q, VN_HOSTNOTIF_OFFLIMITS, 'c');
			post_attach(q, false);
		} else {
			/*
			 * Edge d: register the doorbell if we can. If we cannot,
			 * doorbells still reach vhost through the forwarding in
			 * vn_hostnotif_doorbell().
			 */
			(void)register_ioev(q);
			set_state(q, VN_HOSTNOTIF_OFFLIMITS, 'd');
		}
		return 0;
	}

	if (q->grabs == 0)
		return -EPERM;
	if (--q->grabs > 0 || q->state != VN_HOSTNOTIF_OFFLIMITS)
		return 0;
	if (can_assign(hn) && queue_active(hn, idx) && register_ioev(q) == 0) {
		/* Edge e, with a self-kick for what vhost left behind. */
		set_state(q, VN_HOSTNOTIF_ASSIGNED, 'e');
		post_attach(q, true);
		if (vn_notifier_set(&q->n) == 0)
			STAT_INC(hn, self_kicks);
	} else {
		/* Edge f: userspace runs it synchronously from now, once right away. */
		set_state(q, VN_HOSTNOTIF_DEASSIGNED, 'f');
		unregister_ioev(q);
		drain(q, queue_active(hn, idx));
	}
	return 0;
}

int vn_hostnotif_fd(struct vn_hostnotif *hn, unsigned int q)
{
	if (q >= hn->nr || !vn_notifier_is_valid(&hn->q[q].n))
		return -ENOENT;
	return vn_notifier_fd(&hn->q[q].n);
}

enum vn_hostnotif_state vn_hostnotif_state(struct vn_hostnotif *hn, unsigned int q)
{
	if (q >= hn->nr)
		return VN_HOSTNOTIF_DEASSIGNED;
	return __atomic_load_n(&hn->q[q].state, __ATOMIC_ACQUIRE);
}

bool vn_hostnotif_ioeventfd_on(struct vn_hostnotif *hn)
{
	return hn->ioeventfd_on;
}

void vn_hostnotif_get_stats(struct vn_hostnotif *hn, struct vn_hostnotif_stats *out)
{
	out->iothread_runs = __atomic_load_n(&hn->stats.iothread_runs, __ATOMIC_RELAXED);
	out->sync_runs = __atomic_load_n(&hn->stats.sync_runs, __ATOMIC_RELAXED);
	out->drain_runs = __atomic_load_n(&hn->stats.drain_runs, __ATOMIC_RELAXED);
	out->forwarded = __atomic_load_n(&hn->stats.forwarded, __ATOMIC_RELAXED);
	out->self_kicks = __atomic_load_n(&hn->stats.self_kicks, __ATOMIC_RELAXED);
	out->missed = __atomic_load_n(&hn->stats.missed, __ATOMIC_RELAXED);
	out->fallbacks = __atomic_load_n(&hn->stats.fallbacks, __ATOMIC_RELAXED);
}
