/* SPDX-License-Identifier: MIT */
/*
 * Moving a queue to another iothread at run time (a load balancer's move).
 * The move reuses the state machine's own edges, so it inherits their
 * guarantee that no kick is lost: the queue is stopped (ASSIGNED ->
 * DEASSIGNED: its ioeventfd unregistered, the watch posted off, the
 * drain-on-stop rule running it once for a kick that raced the stop), its
 * bottom half and timer are rebuilt on the new loop, and the assign policy
 * starts it again there (edge b, with its self-kick). While it moves, the
 * queue is DEASSIGNED: a doorbell exits and runs it synchronously on the
 * vCPU, as for any DEASSIGNED queue, and the policy leaves it alone.
 */
#include <errno.h>

#include "base/log.h"
#include "base/trace.h"
#include "virtio/hostnotif-priv.h"

int vn_hostnotif_move_queue(struct vn_hostnotif *hn, unsigned int idx, struct vn_iothread *to)
{
	struct vn_iothread *from;
	struct hn_queue *q;
	bool was;
	int r;

	if (idx >= hn->nr || !to)
		return -EINVAL;
	q = &hn->q[idx];
	from = q->it;
	if (!from)
		return -EINVAL; /* never had an iothread: nothing to move */
	if (from == to)
		return 0;
	vn_vdev_lock(hn->vdev);
	if (vn_hn_handed_in(q) || q->moving || q->state == VN_HOSTNOTIF_OFFLIMITS) {
		/* a handed-in source belongs to its caller; an external backend holds this one */
		vn_vdev_unlock(hn->vdev);
		return -EBUSY;
	}
	q->moving = true;
	was = q->state == VN_HOSTNOTIF_ASSIGNED;
	vn_hn_stop_queue(q); /* posts the detach to @from; nothing if DEASSIGNED */
	vn_vdev_unlock(hn->vdev);

	/* FIFO after the posted detach: the watch is gone when this runs. */
	vn_iothread_run_sync_void(from, vn_hn_teardown_on_iothread, q);
	__atomic_store_n(&q->it, to, __ATOMIC_RELEASE);
	r = vn_iothread_run_sync(to, vn_hn_setup_on_iothread, q);
	if (r < 0) {
		/* The old loop had them a moment ago; its allocation should not fail twice. */
		vn_iothread_run_sync_void(to, vn_hn_teardown_on_iothread, q);
		__atomic_store_n(&q->it, from, __ATOMIC_RELEASE);
		if (vn_iothread_run_sync(from, vn_hn_setup_on_iothread, q) < 0) {
			/* No loop to run on: the queue stays synchronous (moving stays set). */
			vn_log(VN_LOG_ERR, "hostnotif", "%s vq %u: no bottom half on any iothread "
			       "(%s): doorbells stay synchronous", hn->vdev->name, idx, vn_strerror(r));
			return r;
		}
	}
	vn_vdev_lock(hn->vdev);
	q->moving = false;
	/* The policy's start, on the new loop: edge b with a self-kick, if it may. */
	vn_hn_update(hn);
	vn_vdev_unlock(hn->vdev);
	vn_trace(hostnotif_move, "dev=%s vq=%u %s -> %s was=%s r=%d", hn->vdev->name, idx,
		 vn_iothread_name(from), vn_iothread_name(r < 0 ? from : to),
		 was ? "assigned" : "deassigned", r);
	return r;
}

struct vn_iothread *vn_hostnotif_queue_iothread(struct vn_hostnotif *hn, unsigned int idx)
{
	if (idx >= hn->nr)
		return NULL;
	return __atomic_load_n(&hn->q[idx].it, __ATOMIC_ACQUIRE);
}
