/* SPDX-License-Identifier: MIT */
/*
 * The queue-notifier engine's own ioeventfds: registering them through the
 * accelerator, virtio-pci's policy of when queues are ASSIGNED (ioeventfd
 * on, running, bus master, DRIVER_OK, driven by the device hooks, all or
 * nothing with a fallback to synchronous doorbells), reset, and the counted
 * grabs of an external (vhost) backend. The per-queue machinery they move
 * queues with is in hostnotif.c.
 */
#include <errno.h>
#include <linux/virtio_config.h>

#include "base/log.h"
#include "base/trace.h"
#include "virtio/hostnotif-priv.h"
#include "virtio/vq.h"

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
	r = vn_hn_ensure_notifier(q);
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
 * The old-kernel policy: on a bus with room for only VN_IOEV_LIMIT_OLD_KERNEL
 * ioeventfds (Linux before 3.0 had 6 per bus), userspace queues never take
 * one, so the few slots stay for vhost backends that cannot work without
 * them; a queue given back by vhost goes synchronous (edge f) and frees its
 * slot. Device lock held.
 */
static bool few_ioeventfds(struct vn_hostnotif *hn)
{
	return vn_accel_max_ioeventfds(hn->accel) <= VN_IOEV_LIMIT_OLD_KERNEL;
}

bool vn_hn_can_assign(struct vn_hostnotif *hn)
{
	return hn->ioeventfd_on && hn->running && hn->bus_master && hn->iothread && hn->accel &&
	       hn->ops && !few_ioeventfds(hn) &&
	       (vn_vdev_get_status(hn->vdev) & VIRTIO_CONFIG_S_DRIVER_OK);
}

bool vn_hn_queue_active(struct vn_hostnotif *hn, unsigned int i)
{
	struct vn_vq *vq = vn_vdev_queue(hn->vdev, i);

	return vq && vn_vq_is_ready(vq);
}

/* ASSIGNED -> DEASSIGNED for one queue. Device lock held. */
void vn_hn_stop_queue(struct hn_queue *q)
{
	if (q->state != VN_HOSTNOTIF_ASSIGNED)
		return;
	vn_hn_set_state(q, VN_HOSTNOTIF_DEASSIGNED, 's');
	unregister_ioev(q);
	vn_hn_post_attach(q, false);
	vn_hn_drain(q, false);
}

/* The assign policy's stop: a handed-in source is its caller's to stop. */
static void stop_all(struct vn_hostnotif *hn)
{
	for (unsigned int i = 0; i < hn->nr; i++)
		if (!vn_hn_handed_in(&hn->q[i]))
			vn_hn_stop_queue(&hn->q[i]);
}

static void fall_back(struct vn_hostnotif *hn, unsigned int failed_q, int err)
{
	hn->ioeventfd_on = false;
	__atomic_store_n(&hn->stats.fallback_err, err, __ATOMIC_RELAXED);
	__atomic_store_n(&hn->stats.fallback_queue, failed_q, __ATOMIC_RELAXED);
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

	if (!vn_hn_can_assign(hn))
		return;
	for (i = 0; i < hn->nr; i++) {
		struct hn_queue *q = &hn->q[i];

		if (q->state != VN_HOSTNOTIF_DEASSIGNED || vn_hn_handed_in(q) || q->moving ||
		    !vn_hn_queue_active(hn, i))
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
			vn_hn_drain(q, false);
		}
		fall_back(hn, i, r);
		return;
	}
	for (i = 0; i < hn->nr; i++) {
		struct hn_queue *q = &hn->q[i];

		if (!q->starting)
			continue;
		q->starting = false;
		vn_hn_set_state(q, VN_HOSTNOTIF_ASSIGNED, 'b');
		vn_hn_post_attach(q, true);
		/* Self-kick: whatever landed while nobody listened, and a stale avail_event. */
		if (vn_notifier_set(&q->n) == 0)
			STAT_INC(hn, self_kicks);
	}
}

/* Re-evaluate after any condition changed. Device lock held. */
void vn_hn_update(struct vn_hostnotif *hn)
{
	if (vn_hn_can_assign(hn))
		start_all(hn);
	else
		stop_all(hn);
}

/* Edge g: reset takes every queue back, vhost's included. Device lock held. */
void vn_hn_reset_all(struct vn_hostnotif *hn)
{
	for (unsigned int i = 0; i < hn->nr; i++) {
		struct hn_queue *q = &hn->q[i];

		if (q->state == VN_HOSTNOTIF_OFFLIMITS) {
			vn_log(VN_LOG_INFO, "hostnotif", "%s vq %u: reset while a vhost backend held "
			       "the notifier", hn->vdev->name, i);
			q->grabs = 0;
			vn_hn_set_state(q, VN_HOSTNOTIF_DEASSIGNED, 'g');
			unregister_ioev(q);
			if (vn_notifier_is_valid(&q->n) && vn_notifier_test_and_clear(&q->n) < 0)
				vn_log(VN_LOG_ERR, "hostnotif", "%s vq %u: eventfd read failed",
				       hn->vdev->name, i);
		} else if (q->state == VN_HOSTNOTIF_ASSIGNED) {
			vn_hn_set_state(q, VN_HOSTNOTIF_DEASSIGNED, 'g');
			unregister_ioev(q);
			vn_hn_post_attach(q, false);
			vn_hn_drain(q, false);
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
		if (hn->q[i].state == VN_HOSTNOTIF_DEASSIGNED && !vn_hn_handed_in(&hn->q[i]) &&
		    vn_hn_queue_active(hn, i))
			vn_hn_drain(&hn->q[i], true);
}

static void hook_status_post(void *opaque, struct vn_vdev *vdev, uint8_t old, uint8_t status)
{
	struct vn_hostnotif *hn = opaque;

	if (!(status & VIRTIO_CONFIG_S_DRIVER_OK))
		return;
	if (vn_hn_can_assign(hn))
		start_all(hn);
	else if (!(old & VIRTIO_CONFIG_S_DRIVER_OK))
		self_kick_sync(hn);
}

static void hook_reset_pre(void *opaque, struct vn_vdev *vdev)
{
	vn_hn_reset_all(opaque);
}

static void hook_queue_reset_pre(void *opaque, struct vn_vdev *vdev, unsigned int q)
{
	struct vn_hostnotif *hn = opaque;

	if (q < hn->nr)
		vn_hn_stop_queue(&hn->q[q]);
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
	if (vn_hn_can_assign(hn))
		start_all(hn);
	else
		self_kick_sync(hn);
}

const struct vn_vdev_hooks vn_hn_hostnotif_hooks = {
	.status_pre = hook_status_pre,
	.status_post = hook_status_post,
	.reset_pre = hook_reset_pre,
	.queue_reset_pre = hook_queue_reset_pre,
	.queue_enabled = hook_queue_enabled,
	.queue_stop = vn_hn_hook_queue_stop,
	.loaded = hook_loaded,
};

void vn_hostnotif_set_running(struct vn_hostnotif *hn, bool running)
{
	bool resumed = running && !hn->running;

	hn->running = running;
	if (resumed && !vn_hn_can_assign(hn))
		self_kick_sync(hn);
	else
		vn_hn_update(hn);
}

/*
 * The gate also moves the doorbells of queues a vhost backend holds: their
 * ioeventfds follow the notifier address (a BAR move closes and reopens the
 * gate), else the backend's kicks stay at the old address and the give-back
 * would leave the queue ASSIGNED there. The eventfd is the backend's to read:
 * nothing to drain. While the gate is shut, doorbells do not reach the
 * device at all. Device lock held.
 */
static void rebind_offlimits(struct vn_hostnotif *hn, bool on)
{
	for (unsigned int i = 0; i < hn->nr; i++) {
		struct hn_queue *q = &hn->q[i];

		if (q->state != VN_HOSTNOTIF_OFFLIMITS || vn_hn_handed_in(q))
			continue;
		if (!on)
			unregister_ioev(q);
		else
			(void)register_ioev(q); /* else doorbells are forwarded */
	}
}

void vn_hostnotif_set_bus_master(struct vn_hostnotif *hn, bool on)
{
	hn->bus_master = on;
	rebind_offlimits(hn, on);
	vn_hn_update(hn);
}

void vn_hostnotif_set_ioeventfd(struct vn_hostnotif *hn, bool on)
{
	hn->ioeventfd_on = on;
	vn_hn_update(hn);
}

int vn_hostnotif_set_host_notifier(struct vn_hostnotif *hn, unsigned int idx, bool assign)
{
	struct hn_queue *q;
	int r;

	if (idx >= hn->nr)
		return -EINVAL;
	q = &hn->q[idx];
	if (vn_hn_handed_in(q))
		return -EBUSY; /* its kicks come from the caller's fd, not an eventfd of ours */
	if (q->moving)
		return -EBUSY; /* its iothread is changing (vn_hostnotif_move_queue()) */
	if (assign) {
		if (q->grabs++ > 0)
			return 0;
		r = vn_hn_ensure_notifier(q);
		if (r < 0) {
			q->grabs--;
			return r;
		}
		if (q->state == VN_HOSTNOTIF_ASSIGNED) {
			/* Edge c: the ioeventfd stays; only userspace lets go. */
			vn_hn_set_state(q, VN_HOSTNOTIF_OFFLIMITS, 'c');
			vn_hn_post_attach(q, false);
		} else {
			/*
			 * Edge d: register the doorbell if we can. If we cannot,
			 * doorbells still reach vhost through the forwarding in
			 * vn_hostnotif_doorbell().
			 */
			(void)register_ioev(q);
			vn_hn_set_state(q, VN_HOSTNOTIF_OFFLIMITS, 'd');
		}
		return 0;
	}

	if (q->grabs == 0)
		return -EPERM;
	if (--q->grabs > 0 || q->state != VN_HOSTNOTIF_OFFLIMITS)
		return 0;
	if (vn_hn_can_assign(hn) && vn_hn_queue_active(hn, idx) && register_ioev(q) == 0) {
		/* Edge e, with a self-kick for what vhost left behind. */
		vn_hn_set_state(q, VN_HOSTNOTIF_ASSIGNED, 'e');
		vn_hn_post_attach(q, true);
		if (vn_notifier_set(&q->n) == 0)
			STAT_INC(hn, self_kicks);
	} else {
		/* Edge f: userspace runs it synchronously from now, once right away. */
		vn_hn_set_state(q, VN_HOSTNOTIF_DEASSIGNED, 'f');
		unregister_ioev(q);
		vn_hn_drain(q, vn_hn_queue_active(hn, idx));
	}
	return 0;
}
