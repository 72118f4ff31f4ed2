/* SPDX-License-Identifier: MIT */
/*
 * The vhost-user server's rings: their state as the frontend set it up,
 * and the binding of each to the device (vn_vdev_activate(),
 * vn_vdev_queue_start(), _quiesce(), _stop()) and to the one queue-notifier
 * engine (the frontend's kick fd handed in as the queue's source, or the
 * poll). Nothing here watches an fd or runs a queue by itself.
 */
#include "vhost/vhu-ring.h"

#include <errno.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/virtio_config.h>

#include <vnotify/loop.h>

#include "base/notifier.h"
#include "base/trace.h"
#include "mem/gmem.h"
#include "virtio/vdev.h"
#include "virtio/vq.h"

#define STAT_SET(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELAXED)

void vn_vhu_ring_init(struct vhu_queue *q, struct vn_vhu_server *srv, unsigned int i,
		      struct vn_iothread *it)
{
	memset(q, 0, sizeof(*q));
	q->srv = srv;
	q->index = i;
	q->it = it;
	q->err_fd = -1;
}

/* ------------------------------------------------------------------ */
/* The error fd: told when the guest broke the ring                    */

static void signal_err(struct vhu_queue *q)
{
	/* Checked at SET_VRING_ERR: an eventfd this write cannot block on. */
	struct vn_notifier n = {.fd = q->err_fd, .peer = true};
	int r;

	if (q->err_fd < 0 || __atomic_exchange_n(&q->err_signalled, true, __ATOMIC_RELAXED))
		return;
	r = vn_notifier_set(&n);
	if (r < 0)
		peer_log(q->srv, "vq %u: error fd: %s", q->index, vn_strerror(r));
}

/*
 * The frontend shrank a memory file it had not sealed: the SIGBUS was
 * contained (the region reads as zeroes now, mem/gmem-guard.h), but that
 * guest memory is gone. The device needs a reset; the next message drops
 * the frontend (vn_vhu_server_process()).
 */
static bool memory_lost(struct vhu_queue *q)
{
	struct vn_vhu_server *srv = q->srv;

	if (!vn_gmem_is_faulted(srv->mem))
		return false;
	if (!__atomic_exchange_n(&srv->fault_seen, true, __ATOMIC_ACQ_REL)) {
		vn_log(VN_LOG_ERR, "vhu",
		       "%s: vq %u: the frontend truncated its guest memory (SIGBUS contained); "
		       "device needs reset, dropping the frontend",
		       srv->name, q->index);
		vn_vdev_set_needs_reset(srv->vdev);
	}
	return true;
}

/* The engine ran the queue. Context: the queue's thread, its run lock held. */
static void hn_queue_ran(void *opaque, unsigned int idx, bool broken)
{
	struct vn_vhu_server *srv = opaque;
	struct vhu_queue *q = &srv->queues[idx];

	/*
	 * A broken ring, or a device-level error (a malformed request puts
	 * virtio-blk into NEEDS_RESET with the ring intact): without a backend
	 * channel for a config-change message, the error fd is how the
	 * frontend learns that the device stopped, and why its queue did.
	 */
	broken = broken || (vn_vdev_get_status(srv->vdev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	if (memory_lost(q) || broken)
		signal_err(q);
}

const struct vn_hostnotif_ops vn_vhu_ring_hn_ops = {
	.queue_ran = hn_queue_ran,
};

struct fd_args {
	struct vhu_queue *q;
	int fd;
};

static void set_err_fn(void *opaque)
{
	struct fd_args *a = opaque;
	int old = a->q->err_fd;

	a->q->err_fd = a->fd;
	__atomic_store_n(&a->q->err_signalled, false, __ATOMIC_RELAXED);
	a->fd = old; /* the caller closes the old one */
}

void vn_vhu_ring_set_err(struct vhu_queue *q, int fd)
{
	struct fd_args a = {.q = q, .fd = fd};

	vn_iothread_run_sync_void(q->it, set_err_fn, &a);
	if (a.fd >= 0)
		close(a.fd);
}

/* ------------------------------------------------------------------ */
/* The call fd: the queue's interrupt vector                           */

static int set_call_fn(void *opaque)
{
	struct fd_args *a = opaque;
	struct vn_vdev *vdev = a->q->srv->vdev;
	int r;

	vn_vdev_lock(vdev);
	vn_vdev_queue_lock(vdev, a->q->index);
	r = vn_vdev_set_peer_notifier_fd(vdev, a->q->index, a->fd);
	vn_vdev_queue_unlock(vdev, a->q->index);
	vn_vdev_unlock(vdev);
	return r;
}

/* Queue @q interrupts through @fd from now on (takes ownership either way). */
static int install_call_fd(struct vhu_queue *q, int fd)
{
	struct fd_args a = {.q = q, .fd = fd};
	int r = vn_iothread_run_sync(q->it, set_call_fn, &a);

	if (r < 0)
		close(fd);
	return r;
}

/* Give the frontend's call fd back: the vector gets a private eventfd. */
static void release_call_fd(struct vhu_queue *q)
{
	int fd;

	if (!q->call_set)
		return;
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0 || install_call_fd(q, fd) < 0)
		vn_log(VN_LOG_ERR, "vhu", "%s: vq %u: cannot release the call fd", q->srv->name,
		       q->index);
	q->call_set = false;
}

int vn_vhu_ring_set_call(struct vhu_queue *q, int fd)
{
	int r;

	if (fd < 0) {
		release_call_fd(q); /* the frontend polls the used ring */
		return 0;
	}
	r = install_call_fd(q, fd);
	if (r == 0)
		q->call_set = true;
	return r;
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */

static int uva_to_gpa(const struct vn_vhu_server *srv, uint64_t uva, uint64_t len, uint64_t *gpa)
{
	for (unsigned int i = 0; i < srv->nregions; i++) {
		const struct vhu_region *r = &srv->regions[i];

		if (uva >= r->uva && uva - r->uva < r->size && len <= r->size - (uva - r->uva)) {
			*gpa = r->gpa + (uva - r->uva);
			return 0;
		}
	}
	return -EFAULT;
}

unsigned int vn_vhu_ring_max(const struct vhu_queue *q)
{
	return vn_vq_num_max(vn_vdev_queue(q->srv->vdev, q->index));
}

static unsigned int ring_num(const struct vhu_queue *q)
{
	return q->num ? q->num : vn_vhu_ring_max(q);
}

int vn_vhu_ring_gpas(const struct vhu_queue *q, uint64_t *desc, uint64_t *avail, uint64_t *used)
{
	uint64_t dsz, asz, usz;

	vn_vq_ring_sizes(ring_num(q), &dsz, &asz, &usz);
	if (uva_to_gpa(q->srv, q->desc_uva, dsz, desc) < 0 ||
	    uva_to_gpa(q->srv, q->avail_uva, asz, avail) < 0 ||
	    uva_to_gpa(q->srv, q->used_uva, usz, used) < 0)
		return -EFAULT;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                           */

bool vn_vhu_ring_any_started(const struct vn_vhu_server *srv)
{
	for (unsigned int i = 0; i < srv->nr_queues; i++)
		if (srv->queues[i].started)
			return true;
	return false;
}

bool vn_vhu_ring_enabled(const struct vhu_queue *q)
{
	/* vhost-user.rst "Ring states": without protocol features, enabled at once. */
	return q->enable_flag || !(q->srv->acked_features & VN_VHU_F(VN_VHU_F_PROTOCOL_FEATURES));
}

int vn_vhu_ring_update(struct vhu_queue *q)
{
	if (q->started && vn_vhu_ring_enabled(q)) {
		int r = vn_hostnotif_attach(q->srv->hn, q->index);
		int fd = vn_hostnotif_fd(q->srv->hn, q->index);

		/*
		 * The chains to redo are not new avail entries: nobody kicks for
		 * them, and a polled ring's poll looks only for avail entries.
		 * The attach runs the queue once on its thread whatever the source
		 * (hostnotif's self-kick at watch); that run is what takes them on
		 * a polled ring (test_inflight_recovery_polled). A kick fd also
		 * gets a kick of its own (the frontend's eventfd, which only we
		 * read), for an attach that found the queue attached already.
		 */
		if (r == 0 && q->resubmit_kick) {
			q->resubmit_kick = false;
			if (fd >= 0)
				(void)eventfd_write(fd, 1);
		}
		return r;
	}
	vn_hostnotif_detach(q->srv->hn, q->index);
	return 0;
}

/*
 * Wait until the device has finished the chains it took from @q (the ones
 * that were in flight before we started do not count: nobody will finish
 * them). The ring is quiesced, so nothing new is taken.
 */
static int ring_drain(struct vhu_queue *q)
{
	struct vn_vhu_server *srv = q->srv;
	struct vn_loop *loop = vn_iothread_loop(q->it);
	uint64_t deadline = vn_now_ns() + srv->drain_timeout_ns;

	for (;;) {
		unsigned int n = vn_vdev_queue_inflight(srv->vdev, q->index);

		if (n <= q->orphans)
			return 0;
		if (vn_now_ns() > deadline) {
			vn_log(VN_LOG_ERR, "vhu",
			       "%s: vq %u: %u requests still in flight after %llu ms", srv->name,
			       q->index, n - q->orphans,
			       (unsigned long long)(srv->drain_timeout_ns / 1000000));
			/* Their buffers must stay mapped: see unmap_all(). */
			srv->drain_stuck = true;
			return -ETIMEDOUT;
		}
		/* Completions may need our own loop (a device completing on it). */
		if (vn_loop_in_thread(loop))
			(void)vn_loop_run_once(loop, 1000000);
		else
			poll(NULL, 0, 1);
	}
}

static uint16_t last_avail(struct vhu_queue *q)
{
	struct vn_vdev *vdev = q->srv->vdev;
	uint16_t r;

	vn_vdev_queue_lock(vdev, q->index);
	r = vn_vq_last_avail(vn_vdev_queue(vdev, q->index));
	vn_vdev_queue_unlock(vdev, q->index);
	return r;
}

uint16_t vn_vhu_ring_quiesce(struct vhu_queue *q)
{
	vn_vdev_queue_quiesce(q->srv->vdev, q->index);
	(void)ring_drain(q);
	return last_avail(q);
}

/*
 * Load the device's queue from the frontend's ring: translate, check
 * (aligned, inside guest memory, indices consistent with the guest's), start.
 * @resume: where to resume taking chains.
 */
static int ring_load(struct vhu_queue *q, uint16_t resume)
{
	struct vn_vhu_server *srv = q->srv;
	struct vn_vq_state st = {0};
	struct vn_vhu_inflight_plan plan = {0};
	struct vn_vq_inflight_hdr *ilog = vn_vhu_inflight_queue(&srv->inflight, q->index);
	bool fresh = ilog && __atomic_load_n(&ilog->version, __ATOMIC_ACQUIRE) == 0;
	const char *field = "rings";
	int r;

	if (!q->addr_set) {
		peer_log(srv, "vq %u: started before SET_VRING_ADDR", q->index);
		return -EPROTO;
	}
	st.num = (uint16_t)ring_num(q);
	st.ready = true;
	st.last_avail_idx = resume;
	r = vn_vhu_ring_gpas(q, &st.desc, &st.avail, &st.used);
	if (r == 0)
		r = vn_gmem_load_le16_acquire(srv->mem, st.used + 2, &st.used_idx);
	if (r == 0 && ilog) {
		r = vn_vhu_inflight_recover(ilog, srv->inflight.queue_size, st.num, st.used_idx,
					    &plan, &field);
		/*
		 * What the region lists was taken from the avail ring and never
		 * finished: resume past it (the frontend's base, set from the
		 * used index after our crash, would retake finished chains).
		 */
		if (r == 0 && !fresh)
			st.last_avail_idx = (uint16_t)(st.used_idx + plan.n);
	}
	/* Queue i interrupts through vector i (its call fd). */
	if (r == 0)
		r = vn_vdev_queue_start(srv->vdev, q->index, &st, (uint16_t)q->index, &field);
	if (r == 0 && ilog) {
		struct vn_vdev *vdev = srv->vdev;

		vn_vdev_queue_lock(vdev, q->index);
		r = vn_vq_set_inflight(vn_vdev_queue(vdev, q->index), ilog, plan.resubmit, plan.n,
				       plan.counter);
		vn_vdev_queue_unlock(vdev, q->index);
		if (r < 0) {
			struct vn_vq_state dummy;

			field = "inflight resubmit list";
			VN_BUG_ON(vn_vdev_queue_stop(vdev, q->index, &dummy) < 0); /* index checked */
		} else if (plan.n) {
			q->resubmit_kick = true;
			vn_log(VN_LOG_INFO, "vhu", "%s: vq %u: resubmitting %u requests in flight",
			       srv->name, q->index, plan.n);
		}
	}
	free(plan.resubmit);
	if (r < 0) {
		peer_log(srv, "vq %u: bad ring (%s): %s", q->index, field, vn_strerror(r));
		return r;
	}
	/*
	 * In flight now and never to be finished by us: what the frontend's
	 * base says was taken, less what the region has us redo (those count
	 * again as the device pops them). With a fresh region that is the same
	 * as without one: a base past the used index is not ours to wait for.
	 */
	q->orphans = (uint16_t)(st.last_avail_idx - st.used_idx - plan.n);
	__atomic_store_n(&q->err_signalled, false, __ATOMIC_RELAXED);
	return 0;
}

/* Stop the ring: the device's queue quiesced and reset, the source closed. */
static void ring_halt(struct vhu_queue *q)
{
	struct vn_vq_state st = {0};

	VN_BUG_ON(vn_vdev_queue_stop(q->srv->vdev, q->index, &st) < 0); /* index checked */
	vn_hostnotif_clear_source(q->srv->hn, q->index);
	q->started = false;
	q->has_kick = false;
	q->base = st.last_avail_idx;
}

/* A ring that no longer fits the memory map: stop it and tell the frontend. */
static void ring_kill(struct vhu_queue *q)
{
	ring_halt(q);
	vn_trace(vhu_ring, "dev=%s vq=%u killed base=%u", q->srv->name, q->index, q->base);
	signal_err(q);
}

int vn_vhu_ring_reload(struct vhu_queue *q, uint16_t resume)
{
	int r = ring_load(q, resume);

	if (r < 0) {
		ring_kill(q);
		return r;
	}
	(void)vn_vhu_ring_update(q);
	return 0;
}

uint16_t vn_vhu_ring_stop(struct vhu_queue *q)
{
	struct vn_vq_inflight_hdr *ilog;
	bool drained;

	if (!q->started)
		return q->base;
	/* Detached, a raced kick drained, the device's requests finished... */
	vn_vdev_queue_quiesce(q->srv->vdev, q->index);
	drained = ring_drain(q) == 0;
	/*
	 * The region is looked up after the drain, which ran the loop: what
	 * ran there must not release it (vn_vhu_server_disconnect()), but a
	 * pointer taken before would not see it if it did.
	 */
	ilog = vn_vhu_inflight_queue(&q->srv->inflight, q->index);
	/*
	 * A clean stop hands the frontend a base with nothing in flight: the
	 * region's part starts afresh (a chain abandoned on a broken ring must
	 * not be redone on the guest's next rings). Not while resubmitted chains
	 * wait to be popped (the base counts them), nor after a stuck drain.
	 */
	if (drained && ilog) {
		struct vn_vdev *vdev = q->srv->vdev;
		unsigned int pending;

		vn_vdev_queue_lock(vdev, q->index);
		pending = vn_vq_resubmit_pending(vn_vdev_queue(vdev, q->index));
		vn_vdev_queue_unlock(vdev, q->index);
		if (!pending)
			__atomic_store_n(&ilog->version, 0, __ATOMIC_RELEASE);
	}
	/* ...then the state handed back and the queue reset. */
	ring_halt(q);
	vn_trace(vhu_ring, "dev=%s vq=%u stop base=%u", q->srv->name, q->index, q->base);
	return q->base;
}

/* The first ring to start makes the device live, with the acked features. */
static int ring_start(struct vhu_queue *q)
{
	struct vn_vhu_server *srv = q->srv;
	int r;

	if (!vn_vhu_ring_any_started(srv)) {
		r = vn_vdev_activate(srv->vdev,
				     srv->acked_features & ~VN_VHU_F(VN_VHU_F_PROTOCOL_FEATURES));
		if (r < 0) {
			peer_log(srv, "device refused features 0x%llx",
				 (unsigned long long)srv->acked_features);
			return r;
		}
	}
	r = ring_load(q, q->base);
	if (r < 0)
		return r;
	q->started = true;
	vn_trace(vhu_ring, "dev=%s vq=%u start num=%u base=%u kick=%d", srv->name, q->index,
		 ring_num(q), q->base, q->has_kick);
	return 0;
}

int vn_vhu_ring_set_kick(struct vhu_queue *q, int fd)
{
	struct vn_vhu_server *srv = q->srv;
	int r;

	/* A running ring swaps its source on its thread; a stopped one starts. */
	r = vn_hostnotif_set_kick_fd(srv->hn, q->index, fd);
	q->has_kick = fd >= 0;
	if (r == 0 && !q->started) {
		r = ring_start(q);
		if (r < 0) {
			vn_hostnotif_clear_source(srv->hn, q->index);
			q->has_kick = false;
			return r;
		}
	}
	if (r == 0)
		r = vn_vhu_ring_update(q);
	if (r < 0) {
		/* The loop refused the fd: the ring cannot be kicked; stop it. */
		peer_log(srv, "vq %u: cannot watch the kick fd: %s", q->index, vn_strerror(r));
		(void)vn_vhu_ring_stop(q);
		vn_hostnotif_clear_source(srv->hn, q->index);
	}
	return r;
}

void vn_vhu_ring_forget(struct vhu_queue *q)
{
	q->num = 0;
	q->addr_set = false;
	q->desc_uva = q->used_uva = q->avail_uva = 0;
	q->base = 0;
	q->enable_flag = false;
	q->orphans = 0;
	q->resubmit_kick = false;
	release_call_fd(q);
	vn_vhu_ring_set_err(q, -1);
}

void vn_vhu_ring_publish(struct vhu_queue *q)
{
	STAT_SET(q->st_started, q->started);
	STAT_SET(q->st_enabled, vn_vhu_ring_enabled(q));
	STAT_SET(q->st_polling, q->started && !q->has_kick);
	STAT_SET(q->st_call, q->call_set);
}
