/* SPDX-License-Identifier: MIT */
#include "virtio/hostnotif.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/log.h"
#include "base/notifier.h"
#include "base/trace.h"
#include "virtio/hostnotif-priv.h"
#include "virtio/vdev.h"
#include "virtio/vq.h"

static const char *const state_names[] = {
	[VN_HOSTNOTIF_DEASSIGNED] = "deassigned",
	[VN_HOSTNOTIF_ASSIGNED] = "assigned",
	[VN_HOSTNOTIF_OFFLIMITS] = "offlimits",
};

const char *vn_hostnotif_state_name(enum vn_hostnotif_state s)
{
	return (unsigned int)s < VN_ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

static const char *const source_names[] = {
	[VN_HOSTNOTIF_SRC_DOORBELL] = "doorbell",
	[VN_HOSTNOTIF_SRC_IOEVENTFD] = "ioeventfd",
	[VN_HOSTNOTIF_SRC_KICK_FD] = "kick-fd",
	[VN_HOSTNOTIF_SRC_POLL] = "poll",
	[VN_HOSTNOTIF_SRC_EXTERNAL] = "external",
};

const char *vn_hostnotif_source_name(enum vn_hostnotif_source s)
{
	return (unsigned int)s < VN_ARRAY_SIZE(source_names) ? source_names[s] : "?";
}

static enum vn_hostnotif_source ext_of(const struct hn_queue *q)
{
	return __atomic_load_n(&q->ext, __ATOMIC_RELAXED);
}

static enum vn_hostnotif_source source_of(const struct hn_queue *q, enum vn_hostnotif_state s)
{
	enum vn_hostnotif_source e = ext_of(q);

	if (e != VN_HOSTNOTIF_SRC_DOORBELL)
		return e;
	if (s == VN_HOSTNOTIF_OFFLIMITS)
		return VN_HOSTNOTIF_SRC_EXTERNAL;
	return s == VN_HOSTNOTIF_ASSIGNED ? VN_HOSTNOTIF_SRC_IOEVENTFD : VN_HOSTNOTIF_SRC_DOORBELL;
}

/* A queue whose source its caller handed in: the assign policy leaves it alone. */
bool vn_hn_handed_in(const struct hn_queue *q)
{
	return ext_of(q) != VN_HOSTNOTIF_SRC_DOORBELL;
}

/*
 * Kicks on again after a ring poll. Return: 1 if entries raced the
 * enable, else 0. Caller holds the queue's run lock.
 */
static int end_ring_poll_locked(struct hn_queue *q)
{
	struct vn_vq *vq = vn_vdev_queue(q->hn->vdev, q->idx);

	if (!q->polling)
		return 0;
	q->polling = false;
	return vq && vn_vq_poll_end(vq) > 0;
}

/*
 * Edge letters as in docs/design.md (a-g); h and i are a handed-in source
 * attached and detached by its caller. Caller holds the device lock, or is
 * the caller of a handed-in source.
 */
void vn_hn_set_state(struct hn_queue *q, enum vn_hostnotif_state s, char edge)
{
	enum vn_hostnotif_state old = q->state;

	vn_vdev_queue_lock(q->hn->vdev, q->idx);
	/*
	 * Leaving ASSIGNED ends the iothread's ring poll here, under the run
	 * lock: the next owner (a vCPU, a vhost backend) must find kicks on,
	 * and the iothread's own poll end comes later and finds nothing to do.
	 * Entries that raced are the drain's (or the backend's) to take.
	 */
	if (old == VN_HOSTNOTIF_ASSIGNED && s != VN_HOSTNOTIF_ASSIGNED)
		end_ring_poll_locked(q);
	__atomic_store_n(&q->state, s, __ATOMIC_RELEASE);
	vn_vdev_queue_unlock(q->hn->vdev, q->idx);
	vn_trace(hostnotif_transition, "dev=%s vq=%u %s->%s edge=%c src=%s", q->hn->vdev->name,
		 q->idx, vn_hostnotif_state_name(old), vn_hostnotif_state_name(s), edge,
		 vn_hostnotif_source_name(source_of(q, s)));
}

/*
 * Runs the queue's handler once, counting the run in the device's @counter
 * and the queue's @qcounter (either may be NULL). Caller holds the queue's
 * run lock.
 */
static void run_queue_counted(struct hn_queue *q, uint64_t *counter, uint64_t *qcounter)
{
	struct vn_hostnotif *hn = q->hn;

	if (vn_vdev_queue_kick(hn->vdev, q->idx) <= 0)
		return;
	if (counter)
		__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
	if (qcounter)
		__atomic_add_fetch(qcounter, 1, __ATOMIC_RELAXED);
	QSTAT_INC(q, runs);
	/*
	 * The ring belongs to the vhost backend while OFFLIMITS: a run here
	 * is userspace consuming after the grab returned. Counted so that a
	 * test (and an operator) can see the rule break; the state is stable
	 * here, it changes under the run lock we hold.
	 */
	if (__atomic_load_n(&q->state, __ATOMIC_RELAXED) == VN_HOSTNOTIF_OFFLIMITS) {
		QSTAT_INC(q, offlimits_runs);
		STAT_INC(hn, offlimits_runs);
	}
	if (hn->ops && hn->ops->queue_ran)
		hn->ops->queue_ran(hn->opaque, q->idx,
				   vn_vq_is_broken(vn_vdev_queue(hn->vdev, q->idx)) != 0);
}

static void run_queue_locked(struct hn_queue *q, uint64_t *counter)
{
	run_queue_counted(q, counter, NULL);
}

/*
 * Empty a handed-in kick fd. Return: 1 if it held a kick, else 0; *@dead
 * when it hung up (a pipe whose writer went away, an error).
 */
static int read_kick_fd(int fd, bool *dead)
{
	uint64_t v;
	int got = 0;

	for (;;) {
		/*
		 * Never blocks: the frontend shares the file description and may
		 * have cleared O_NONBLOCK since the fd was checked.
		 */
		ssize_t n = vn_notifier_read_peer_fd(fd, &v);

		if (n > 0) {
			got = 1;
			continue; /* a pipe may hold more than one */
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || errno != EAGAIN)
			*dead = true;
		return got;
	}
}

/*
 * Take the kick pending in the queue's source, if any. Caller holds the
 * queue's run lock and has checked the state: one reader per kick.
 */
static int consume_locked(struct hn_queue *q, bool *dead)
{
	int r;

	switch (q->ext) {
	case VN_HOSTNOTIF_SRC_POLL:
		return 0;
	case VN_HOSTNOTIF_SRC_KICK_FD:
		r = q->kick_fd >= 0 ? read_kick_fd(q->kick_fd, dead) : 0;
		break;
	default:
		r = vn_notifier_is_valid(&q->n) && vn_notifier_test_and_clear(&q->n) == 1;
		break;
	}
	if (r > 0)
		QSTAT_INC(q, kicks);
	return r;
}

static struct vn_loop *queue_loop(const struct hn_queue *q)
{
	return vn_iothread_loop(q->it);
}

static uint64_t timer_period(const struct hn_queue *q)
{
	return q->ext == VN_HOSTNOTIF_SRC_POLL ? q->hn->poll_ns : q->hn->safety_ns;
}

/* Stop watching the source. Context: the queue's iothread. */
static void unwatch(struct hn_queue *q)
{
	if (!q->attached)
		return;
	/* The loop does not tell a removed handler that its poll ended. */
	vn_vdev_queue_lock(q->hn->vdev, q->idx);
	(void)end_ring_poll_locked(q);
	vn_vdev_queue_unlock(q->hn->vdev, q->idx);
	if (q->watched_fd >= 0)
		(void)vn_loop_del_fd(queue_loop(q), q->watched_fd);
	q->watched_fd = -1;
	if (q->timer)
		vn_timer_cancel(q->timer);
	q->attached = false;
}

/*
 * A handed-in kick fd hung up. Level-triggered, a dead fd would spin the
 * loop: stop watching it; the queue waits for a new one.
 * Context: the queue's iothread.
 */
static void kick_fd_died(struct hn_queue *q)
{
	if (__atomic_exchange_n(&q->kick_dead, true, __ATOMIC_RELAXED))
		return;
	STAT_INC(q->hn, hangups);
	vn_log(VN_LOG_WARN, "hostnotif", "%s vq %u: kick fd hung up; queue stalled until a new one",
	       q->hn->vdev->name, q->idx);
	unwatch(q);
}

/*
 * The iothread consumes the source only while the queue is ASSIGNED; in any
 * other state somebody else owns it and the signal is left for them.
 */
static bool iothread_consume(struct hn_queue *q)
{
	bool ran = false, dead = false;

	vn_vdev_queue_lock(q->hn->vdev, q->idx);
	if (q->state == VN_HOSTNOTIF_ASSIGNED && consume_locked(q, &dead) == 1) {
		run_queue_locked(q, &q->hn->stats.iothread_runs);
		ran = true;
	}
	vn_vdev_queue_unlock(q->hn->vdev, q->idx);
	if (dead)
		kick_fd_died(q);
	return ran;
}

static void on_kick(void *opaque, uint32_t events)
{
	struct hn_queue *q = opaque;

	if (!iothread_consume(q) && (events & (VN_LOOP_ERR | VN_LOOP_HUP)) &&
	    q->ext == VN_HOSTNOTIF_SRC_KICK_FD)
		kick_fd_died(q);
}

/*
 * The loop's busy poll looks at the ring, not at the source: one acquire
 * load of avail->idx (through gmem) while nothing is new. Only an ASSIGNED
 * queue is polled: in any other state its ring is somebody else's. On a hit
 * a kick that came anyway is taken too, so it does not wake the loop for
 * an empty run.
 */
static bool poll_ring(void *opaque)
{
	struct hn_queue *q = opaque;
	struct vn_vq *vq = vn_vdev_queue(q->hn->vdev, q->idx);
	bool ran = false, dead = false;

	vn_vdev_queue_lock(q->hn->vdev, q->idx);
	if (q->state == VN_HOSTNOTIF_ASSIGNED && vq && vn_vq_avail_count(vq) > 0) {
		(void)consume_locked(q, &dead);
		run_queue_counted(q, &q->hn->stats.ring_polls, &q->st.ring_polls);
		ran = true;
	}
	vn_vdev_queue_unlock(q->hn->vdev, q->idx);
	if (dead)
		kick_fd_died(q);
	return ran;
}

/*
 * The loop starts or stops busy polling (vn_poll_state_fn). While it polls,
 * the driver is asked not to kick (QEMU's virtqueue poll begin and end do
 * the same); before it blocks, kicks go back on and the loop polls once
 * more for an entry published before the driver saw them on.
 * Context: the queue's iothread.
 */
static void poll_state(void *opaque, bool started)
{
	struct hn_queue *q = opaque;
	struct vn_vq *vq = vn_vdev_queue(q->hn->vdev, q->idx);

	vn_vdev_queue_lock(q->hn->vdev, q->idx);
	if (!started) {
		(void)end_ring_poll_locked(q);
	} else if (q->state == VN_HOSTNOTIF_ASSIGNED && !q->polling && vq) {
		vn_vq_poll_begin(vq);
		q->polling = vn_vq_is_polled(vq);
	}
	vn_vdev_queue_unlock(q->hn->vdev, q->idx);
}

/*
 * The self-kick of a handed-in source at attach: run the queue once here,
 * taking any kick that landed while nobody listened. A POLL source needs it
 * too: chains resubmitted from a vhost-user inflight region are no avail
 * entries, so its poll would never run the queue for them.
 * Context: the queue's iothread.
 */
static void self_kick_here(struct hn_queue *q)
{
	bool dead = false;

	vn_vdev_queue_lock(q->hn->vdev, q->idx);
	if (q->state == VN_HOSTNOTIF_ASSIGNED) {
		(void)consume_locked(q, &dead);
		run_queue_counted(q, &q->hn->stats.self_kicks, &q->st.self_kicks);
	}
	vn_vdev_queue_unlock(q->hn->vdev, q->idx);
	if (dead)
		kick_fd_died(q);
}

/* Watch the source. Context: the queue's iothread. */
static int watch(struct hn_queue *q)
{
	int fd = q->ext == VN_HOSTNOTIF_SRC_KICK_FD ? q->kick_fd
		 : q->ext == VN_HOSTNOTIF_SRC_POLL  ? -1
						    : vn_notifier_fd(&q->n);
	int r;

	if (q->ext == VN_HOSTNOTIF_SRC_KICK_FD &&
	    (fd < 0 || __atomic_load_n(&q->kick_dead, __ATOMIC_RELAXED)))
		return 0; /* stays detached until a new fd */
	if (fd >= 0) {
		r = vn_loop_add_fd(queue_loop(q), fd, VN_LOOP_READ, on_kick, poll_ring, q);
		if (r == 0)
			VN_BUG_ON(vn_loop_set_poll_state(queue_loop(q), fd, poll_state) != 0);
		if (r < 0) {
			/* Without a watcher the kicks would wait for the safety net. */
			vn_log(VN_LOG_ERR, "hostnotif", "%s vq %u: cannot watch its %s: %s",
			       q->hn->vdev->name, q->idx,
			       vn_hostnotif_source_name(source_of(q, q->state)),
			       vn_strerror(r));
			return r;
		}
	}
	q->watched_fd = fd;
	q->attached = true;
	if (q->timer && timer_period(q))
		vn_timer_arm_in(q->timer, timer_period(q));
	/* A kick that landed before the watch is seen now, not at the next kick. */
	if (vn_hn_handed_in(q))
		self_kick_here(q);
	else
		iothread_consume(q);
	return 0;
}

/* Make the watch match want_attached. Context: the queue's iothread. */
static int reconcile(struct hn_queue *q)
{
	bool want = __atomic_load_n(&q->want_attached, __ATOMIC_ACQUIRE);

	if (want && !q->attached)
		return watch(q);
	if (!want)
		unwatch(q);
	return 0;
}

/* Bottom half of the assign policy's posted attach/detach, and a handed-in detach. */
static void reconcile_attach(void *opaque)
{
	(void)reconcile(opaque);
}

void vn_hn_post_attach(struct hn_queue *q, bool want)
{
	__atomic_store_n(&q->want_attached, want, __ATOMIC_RELEASE);
	vn_bh_schedule(q->bh);
}

int vn_hn_ensure_notifier(struct hn_queue *q)
{
	return vn_notifier_is_valid(&q->n) ? 0 : vn_notifier_init(&q->n);
}

/*
 * The drain-on-stop rule: a kick that raced the stop is in the source; run
 * the queue once for it (an idle queue is not run for nothing), then make
 * sure the driver is allowed to notify again, so the next owner is told.
 * The state is no longer ASSIGNED, so the iothread leaves the source alone:
 * the kick is found exactly once. Device lock held (policy), or the caller
 * of a handed-in source on the queue's iothread.
 */
void vn_hn_drain(struct hn_queue *q, bool force)
{
	struct vn_vq *vq = vn_vdev_queue(q->hn->vdev, q->idx);
	bool dead = false;
	int set;

	vn_vdev_queue_lock(q->hn->vdev, q->idx);
	set = consume_locked(q, &dead);
	if (set == 1 || force)
		run_queue_counted(q, force ? &q->hn->stats.self_kicks : &q->hn->stats.drain_runs,
				  force ? &q->st.self_kicks : &q->st.drain_runs);
	if (vq && vn_vq_is_ready(vq)) {
		for (int i = 0; i < 4 && vn_vq_enable_notify(vq) > 0; i++)
			run_queue_counted(q, &q->hn->stats.drain_runs, &q->st.drain_runs);
	}
	vn_vdev_queue_unlock(q->hn->vdev, q->idx);
	if (dead)
		__atomic_store_n(&q->kick_dead, true, __ATOMIC_RELAXED);
}

static void stop_handed_in_fn(void *opaque)
{
	struct hn_queue *q = opaque;

	unwatch(q);
	vn_hn_drain(q, false);
}

/*
 * vn_vdev_queue_stop(): nobody feeds the queue any more. A handed-in source
 * leaves the loop at once, on its iothread, and a kick that raced the stop
 * runs the queue there once (drain-on-stop). Context: device lock NOT held.
 */
void vn_hn_hook_queue_stop(void *opaque, struct vn_vdev *vdev, unsigned int idx)
{
	struct vn_hostnotif *hn = opaque;
	struct hn_queue *q;

	if (idx >= hn->nr)
		return;
	q = &hn->q[idx];
	if (!vn_hn_handed_in(q)) {
		vn_vdev_lock(vdev);
		vn_hn_stop_queue(q);
		vn_vdev_unlock(vdev);
		return;
	}
	if (vn_hostnotif_state(hn, idx) != VN_HOSTNOTIF_ASSIGNED)
		return;
	vn_hn_set_state(q, VN_HOSTNOTIF_DEASSIGNED, 's');
	__atomic_store_n(&q->want_attached, false, __ATOMIC_RELEASE);
	vn_iothread_run_sync_void(q->it, stop_handed_in_fn, q);
}

/*
 * The queue's timer on its iothread. For a POLL source it is the poll: avail
 * entries are the only news. For a queue fed by an fd it is the
 * missed-doorbell safety net: avail entries that nobody was told about are
 * a lost kick somewhere.
 */
static void queue_timer(void *opaque)
{
	struct hn_queue *q = opaque;
	struct vn_hostnotif *hn = q->hn;
	struct vn_vq *vq = vn_vdev_queue(hn->vdev, q->idx);
	bool dead = false;

	vn_vdev_queue_lock(hn->vdev, q->idx);
	if (q->state == VN_HOSTNOTIF_ASSIGNED && vq && vn_vq_is_ready(vq)) {
		if (q->ext == VN_HOSTNOTIF_SRC_POLL) {
			if (vn_vq_avail_count(vq) > 0)
				run_queue_counted(q, &hn->stats.polls, &q->st.polls);
		} else if (consume_locked(q, &dead) == 1) {
			/* an ordinary kick the handler had not reached yet */
			run_queue_locked(q, &hn->stats.iothread_runs);
		} else if (q->polling && vn_vq_avail_count(vq) > 0) {
			/* kicks are off while polled: news the poll had not reached yet */
			run_queue_counted(q, &hn->stats.ring_polls, &q->st.ring_polls);
		} else if (vn_vq_avail_count(vq) > 0) {
			vn_log(VN_LOG_WARN, "hostnotif",
			       "%s vq %u: avail work without a kick (missed doorbell)",
			       hn->vdev->name, q->idx);
			run_queue_counted(q, &hn->stats.missed, &q->st.missed);
		}
	}
	vn_vdev_queue_unlock(hn->vdev, q->idx);
	if (dead)
		kick_fd_died(q);
	if (q->attached && timer_period(q))
		vn_timer_arm_in(q->timer, timer_period(q));
}

int vn_hn_setup_on_iothread(void *opaque)
{
	struct hn_queue *q = opaque;
	int r;

	r = vn_bh_new(queue_loop(q), reconcile_attach, q, &q->bh);
	if (r == 0)
		r = vn_timer_new(queue_loop(q), queue_timer, q, &q->timer);
	return r;
}

/* Context: the queue's iothread (or nobody runs its loop). */
void vn_hn_teardown_on_iothread(void *opaque)
{
	struct hn_queue *q = opaque;

	unwatch(q);
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	q->kick_fd = -1;
	vn_bh_free(q->bh);
	q->bh = NULL;
	vn_timer_free(q->timer);
	q->timer = NULL;
}

static void noop(void *opaque)
{
}

void vn_hostnotif_sync(struct vn_hostnotif *hn)
{
	/* FIFO: this call runs after every bottom half posted before it. */
	for (unsigned int i = 0; i < hn->nr; i++) {
		struct vn_iothread *it = hn->q[i].it;
		bool seen = false;

		for (unsigned int j = 0; j < i && !seen; j++)
			seen = hn->q[j].it == it;
		if (it && !seen)
			vn_iothread_run_sync_void(it, noop, NULL);
	}
}

static void teardown_all(struct vn_hostnotif *hn)
{
	for (unsigned int i = 0; i < hn->nr; i++)
		if (hn->q[i].it)
			vn_iothread_run_sync_void(hn->q[i].it, vn_hn_teardown_on_iothread, &hn->q[i]);
}

static struct vn_iothread *iothread_for(const struct vn_hostnotif_cfg *cfg, unsigned int i)
{
	if (cfg->queue_iothreads && cfg->nr_queue_iothreads)
		return cfg->queue_iothreads[i % cfg->nr_queue_iothreads];
	return cfg->iothread;
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
		.safety_ns = cfg->safety_net_ns,
		.poll_ns = cfg->poll_ns ? cfg->poll_ns : DEFAULT_POLL_NS,
	};
	hn->nr = vn_vdev_nr_queues(cfg->vdev);
	hn->q = calloc(hn->nr, sizeof(*hn->q));
	if (!hn->q) {
		free(hn);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < hn->nr; i++) {
		struct hn_queue *q = &hn->q[i];

		*q = (struct hn_queue){ .hn = hn, .idx = i, .n = VN_NOTIFIER_INIT,
					.it = iothread_for(cfg, i), .kick_fd = -1,
					.watched_fd = -1 };
		vn_trace(hostnotif_transition, "dev=%s vq=%u start->deassigned edge=a src=doorbell",
			 hn->vdev->name, i);
		if (q->it) {
			r = vn_iothread_run_sync(q->it, vn_hn_setup_on_iothread, q);
			if (r < 0)
				goto err;
		}
	}
	vn_vdev_lock(hn->vdev);
	r = vn_vdev_add_hooks(hn->vdev, &vn_hn_hostnotif_hooks, hn);
	if (r == 0)
		vn_hn_update(hn);
	vn_vdev_unlock(hn->vdev);
	if (r < 0)
		goto err;
	*out = hn;
	return 0;

err:
	teardown_all(hn);
	free(hn->q);
	free(hn);
	return r;
}

void vn_hostnotif_free(struct vn_hostnotif *hn)
{
	if (!hn)
		return;
	vn_vdev_lock(hn->vdev);
	vn_hn_reset_all(hn);
	(void)vn_vdev_remove_hooks(hn->vdev, &vn_hn_hostnotif_hooks, hn);
	vn_vdev_unlock(hn->vdev);
	teardown_all(hn);
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
	out->polls = LOAD(hn->stats.polls);
	out->ring_polls = LOAD(hn->stats.ring_polls);
	out->hangups = LOAD(hn->stats.hangups);
	out->offlimits_runs = LOAD(hn->stats.offlimits_runs);
	out->fallback_err = LOAD(hn->stats.fallback_err);
	out->fallback_queue = LOAD(hn->stats.fallback_queue);
}

int vn_hostnotif_get_queue_stats(struct vn_hostnotif *hn, unsigned int idx,
				 struct vn_hostnotif_queue_stats *out)
{
	struct hn_queue *q;

	if (idx >= hn->nr)
		return -EINVAL;
	q = &hn->q[idx];
	*out = (struct vn_hostnotif_queue_stats){
		.state = vn_hostnotif_state(hn, idx),
		.source = vn_hostnotif_source(hn, idx),
		.kicks = LOAD(q->st.kicks),
		.runs = LOAD(q->st.runs),
		.polls = LOAD(q->st.polls),
		.ring_polls = LOAD(q->st.ring_polls),
		.self_kicks = LOAD(q->st.self_kicks),
		.drain_runs = LOAD(q->st.drain_runs),
		.missed = LOAD(q->st.missed),
		.offlimits_runs = LOAD(q->st.offlimits_runs),
	};
	return 0;
}

enum vn_hostnotif_source vn_hostnotif_source(struct vn_hostnotif *hn, unsigned int idx)
{
	if (idx >= hn->nr)
		return VN_HOSTNOTIF_SRC_DOORBELL;
	return source_of(&hn->q[idx], vn_hostnotif_state(hn, idx));
}

/* ------------------------------------------------------------------ */
/* Handed-in sources: the caller's fds and polls                       */

struct source_args {
	struct hn_queue *q;
	int fd;
	bool clear;
};

/* On the queue's iothread: replace the source; re-attach if it was wanted. */
static int set_source_fn(void *opaque)
{
	struct source_args *a = opaque;
	struct hn_queue *q = a->q;
	enum vn_hostnotif_source e = a->clear	? VN_HOSTNOTIF_SRC_DOORBELL
				     : a->fd >= 0 ? VN_HOSTNOTIF_SRC_KICK_FD
						  : VN_HOSTNOTIF_SRC_POLL;

	unwatch(q);
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	q->kick_fd = a->fd;
	__atomic_store_n(&q->ext, e, __ATOMIC_RELAXED);
	__atomic_store_n(&q->kick_dead, false, __ATOMIC_RELAXED);
	/* The new source's self-kick also covers a kick left in the old fd. */
	return reconcile(q);
}

/* A clear leaves the queue detached: nothing to fail. */
static void clear_source_fn(void *opaque)
{
	VN_BUG_ON(set_source_fn(opaque) != 0);
}

static int reconcile_fn(void *opaque)
{
	return reconcile(opaque);
}

/* The caller's side of a handed-in source; NULL for a bad or policy-owned queue. */
static struct hn_queue *caller_queue(struct vn_hostnotif *hn, unsigned int idx)
{
	struct hn_queue *q;

	if (idx >= hn->nr || !hn->q[idx].it)
		return NULL;
	q = &hn->q[idx];
	if (!vn_hn_handed_in(q) && vn_hostnotif_state(hn, idx) != VN_HOSTNOTIF_DEASSIGNED)
		return NULL; /* the assign policy or a vhost backend has it */
	return q;
}

static void detach_locked_out(struct hn_queue *q, char edge)
{
	if (vn_hostnotif_state(q->hn, q->idx) == VN_HOSTNOTIF_ASSIGNED)
		vn_hn_set_state(q, VN_HOSTNOTIF_DEASSIGNED, edge);
	__atomic_store_n(&q->want_attached, false, __ATOMIC_RELEASE);
}

int vn_hostnotif_set_kick_fd(struct vn_hostnotif *hn, unsigned int idx, int fd)
{
	struct hn_queue *q = caller_queue(hn, idx);
	struct source_args a = { .q = q, .fd = fd };
	int r;

	if (!q) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	r = vn_iothread_run_sync(q->it, set_source_fn, &a);
	if (r < 0) {
		/* The loop refused the fd: nothing watches the queue now. */
		detach_locked_out(q, 'i');
		vn_iothread_run_sync_void(q->it, reconcile_attach, q); /* a detach cannot fail */
	}
	vn_trace(hostnotif_source, "dev=%s vq=%u src=%s fd=%d r=%d", hn->vdev->name, idx,
		 vn_hostnotif_source_name(ext_of(q)), fd, r);
	return r;
}

void vn_hostnotif_clear_source(struct vn_hostnotif *hn, unsigned int idx)
{
	struct hn_queue *q = caller_queue(hn, idx);
	struct source_args a = { .q = q, .fd = -1, .clear = true };

	if (!q || !vn_hn_handed_in(q))
		return;
	detach_locked_out(q, 'i');
	vn_iothread_run_sync_void(q->it, clear_source_fn, &a);
	vn_trace(hostnotif_source, "dev=%s vq=%u src=doorbell fd=-1 r=0", hn->vdev->name, idx);
}

int vn_hostnotif_attach(struct vn_hostnotif *hn, unsigned int idx)
{
	struct hn_queue *q = caller_queue(hn, idx);
	int r;

	if (!q || !vn_hn_handed_in(q))
		return -EINVAL;
	if (vn_hostnotif_state(hn, idx) != VN_HOSTNOTIF_ASSIGNED)
		vn_hn_set_state(q, VN_HOSTNOTIF_ASSIGNED, 'h');
	__atomic_store_n(&q->want_attached, true, __ATOMIC_RELEASE);
	r = vn_iothread_run_sync(q->it, reconcile_fn, q);
	if (r < 0)
		detach_locked_out(q, 'i');
	return r;
}

void vn_hostnotif_detach(struct vn_hostnotif *hn, unsigned int idx)
{
	struct hn_queue *q = caller_queue(hn, idx);

	if (!q || !vn_hn_handed_in(q))
		return;
	detach_locked_out(q, 'i');
	vn_iothread_run_sync_void(q->it, reconcile_attach, q); /* a detach cannot fail */
}
