/* SPDX-License-Identifier: MIT */
#include "vhost/vhu-server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/virtio_config.h>

#include <vnotify/loop.h>

#include "base/log.h"
#include "base/notifier.h"
#include "base/trace.h"
#include "mem/gmem.h"
#include "virtio/vdev.h"
#include "virtio/vq.h"

#define F(bit) (1ull << (bit))

#define DEFAULT_POLL_NS 100000ull
#define DEFAULT_DRAIN_TIMEOUT_NS 30000000000ull

/*
 * Transport features we cannot honour over vhost-user: no IOTLB (so no
 * ACCESS_PLATFORM), split rings only, no in-order promise, no notification
 * data in a kick eventfd, no per-queue reset message. Bit 26 is vhost's
 * LOG_ALL (no dirty logging: QEMU then refuses to migrate, rather than
 * migrating a corrupt disk) and bit 30 is ours to set.
 */
#define MASKED_FEATURES                                                                            \
	(F(VIRTIO_F_ACCESS_PLATFORM) | F(VIRTIO_F_RING_PACKED) | F(VIRTIO_F_IN_ORDER) |            \
	 F(38) /* NOTIFICATION_DATA */ | F(VIRTIO_F_RING_RESET) | F(VN_VHU_F_LOG_ALL) |            \
	 F(VN_VHU_F_PROTOCOL_FEATURES))

#define OFFERED_PROTOCOL                                                                           \
	(F(VN_VHU_PROTOCOL_F_MQ) | F(VN_VHU_PROTOCOL_F_REPLY_ACK) | F(VN_VHU_PROTOCOL_F_CONFIG) |  \
	 F(VN_VHU_PROTOCOL_F_RESET_DEVICE))

struct vhu_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uva;
};

struct vhu_queue {
	struct vn_vhu_server *srv;
	unsigned int index;
	struct vn_iothread *it;
	struct vn_loop *loop;
	struct vn_timer *timer; /* the avail poll of a ring without a kick fd */

	/* Set by the frontend; the control thread's. */
	uint32_t num; /* 0: not set (the device's maximum) */
	bool addr_set;
	uint64_t desc_uva, used_uva, avail_uva;
	uint16_t base;	  /* SET_VRING_BASE, or where the ring stopped */
	bool enable_flag; /* SET_VRING_ENABLE */
	bool started;	  /* kick given; the device's queue is configured */
	bool call_set;
	uint16_t orphans; /* chains in flight before we started: never used */

	/*
	 * The queue thread's while attached; the control thread changes them
	 * only through vn_iothread_run_sync() (which orders the accesses) or
	 * while detached.
	 */
	int kick_fd; /* -1: polling */
	int err_fd;
	bool attached;	/* atomic: the kick handler may clear it */
	bool kick_dead; /* atomic: the kick fd hung up; wait for a new one */
	bool err_signalled;

	/* statistics, relaxed atomics; st_* mirror the control state for readers */
	uint64_t kicks, runs, polls;
	bool st_started, st_enabled, st_polling, st_call;
};

struct vn_vhu_server {
	char name[32];
	struct vn_vdev *vdev;
	struct vn_gmem *mem; /* &map: what the device is bound to */
	struct vn_gmem map;  /* the frontend's memory table, mapped */
	bool mem_bound;
	unsigned int nr_queues;
	uint64_t poll_ns;
	uint64_t drain_timeout_ns;
	void (*drain)(void *opaque);
	void *drain_opaque;
	struct vn_ratelimit rl;

	uint64_t features; /* offered */
	uint64_t acked_features;
	uint64_t acked_protocol;
	bool owner;

	struct vhu_region regions[VN_VHU_MAX_REGIONS];
	unsigned int nregions;

	struct vhu_queue *queues;

	/* statistics, relaxed atomics */
	uint64_t connections, disconnects, messages, refused, protocol_errors;
	bool connected;
	bool fault_seen; /* atomic: memory_lost() said so for this connection */
	bool drain_stuck; /* a drain timed out: requests may still use the map */
	unsigned int mem_regions;
	uint64_t mem_bytes;
};

#define STAT_INC(p) __atomic_fetch_add(&(p), 1, __ATOMIC_RELAXED)
#define STAT_SET(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELAXED)
#define STAT_GET(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)

#define peer_log(srv, fmt, ...)                                                                    \
	vn_log_limited(&(srv)->rl, VN_LOG_WARN, "vhu", "%s: " fmt, (srv)->name, ##__VA_ARGS__)

/* ------------------------------------------------------------------ */
/* The queue's thread: kicks, polls, runs                              */

static struct vn_vq *queue_vq(struct vhu_queue *q)
{
	return vn_vdev_queue(q->srv->vdev, q->index);
}

static void signal_err(struct vhu_queue *q)
{
	/* Checked at SET_VRING_ERR: an eventfd this write cannot block on. */
	struct vn_notifier n = {.fd = q->err_fd, .peer = true};
	int r;

	if (q->err_fd < 0 || q->err_signalled)
		return;
	q->err_signalled = true;
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

/* Context: the queue's thread (or the control thread while detached). */
static void run_queue(struct vhu_queue *q)
{
	struct vn_vhu_server *srv = q->srv;
	int r, broken;

	vn_vdev_queue_lock(srv->vdev, q->index);
	r = vn_vdev_queue_kick(srv->vdev, q->index);
	/*
	 * A broken ring, or a device-level error (a malformed request puts
	 * virtio-blk into NEEDS_RESET with the ring intact): without a backend
	 * channel for a config-change message, the error fd is how the
	 * frontend learns that the device stopped, and why its queue did.
	 */
	broken = vn_vq_is_broken(queue_vq(q)) ||
		 (vn_vdev_get_status(srv->vdev) & VIRTIO_CONFIG_S_NEEDS_RESET);
	vn_vdev_queue_unlock(srv->vdev, q->index);
	if (r > 0)
		STAT_INC(q->runs);
	if (memory_lost(q) || broken)
		signal_err(q);
}

static int queue_avail(struct vhu_queue *q)
{
	int n;

	vn_vdev_queue_lock(q->srv->vdev, q->index);
	n = vn_vq_avail_count(queue_vq(q));
	vn_vdev_queue_unlock(q->srv->vdev, q->index);
	return n;
}

static void kick_handler(void *opaque, uint32_t events)
{
	struct vhu_queue *q = opaque;
	uint64_t v;
	ssize_t n = read(q->kick_fd, &v, sizeof(v));

	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		events |= VN_LOOP_ERR;
	} else if (n == 0) {
		events |= VN_LOOP_HUP; /* a pipe whose writer went away */
	}
	if (events & (VN_LOOP_ERR | VN_LOOP_HUP)) {
		/* Level-triggered: a dead fd would spin the loop. Wait for a new one. */
		peer_log(q->srv, "vq %u: kick fd hung up; ring stalled until a new SET_VRING_KICK",
			 q->index);
		vn_loop_del_fd(q->loop, q->kick_fd);
		__atomic_store_n(&q->attached, false, __ATOMIC_RELAXED);
		__atomic_store_n(&q->kick_dead, true, __ATOMIC_RELAXED);
		return;
	}
	STAT_INC(q->kicks);
	run_queue(q);
}

/* Busy-poll callback of the kick fd: look at the avail ring itself. */
static bool kick_poll(void *opaque)
{
	struct vhu_queue *q = opaque;

	if (queue_avail(q) <= 0)
		return false;
	run_queue(q);
	return true;
}

static void poll_timer(void *opaque)
{
	struct vhu_queue *q = opaque;

	if (!__atomic_load_n(&q->attached, __ATOMIC_RELAXED))
		return;
	if (queue_avail(q) > 0) {
		STAT_INC(q->polls);
		run_queue(q);
	}
	vn_timer_arm_in(q->timer, q->srv->poll_ns);
}

static int attach_fn(void *opaque)
{
	struct vhu_queue *q = opaque;
	int r;

	if (__atomic_load_n(&q->attached, __ATOMIC_RELAXED))
		return 0;
	if (q->kick_fd >= 0) {
		r = vn_loop_add_fd(q->loop, q->kick_fd, VN_LOOP_READ, kick_handler, kick_poll, q);
		if (r < 0)
			return r;
	} else {
		vn_timer_arm_in(q->timer, q->srv->poll_ns);
	}
	__atomic_store_n(&q->attached, true, __ATOMIC_RELAXED);
	/*
	 * Self-kick: a kick may have landed while nobody listened
	 * (docs/design.md "The host notifier state machine").
	 */
	run_queue(q);
	return 0;
}

static void detach_fn(void *opaque)
{
	struct vhu_queue *q = opaque;

	if (!__atomic_load_n(&q->attached, __ATOMIC_RELAXED))
		return;
	if (q->kick_fd >= 0)
		vn_loop_del_fd(q->loop, q->kick_fd);
	vn_timer_cancel(q->timer);
	__atomic_store_n(&q->attached, false, __ATOMIC_RELAXED);
}

static int inflight_fn(void *opaque)
{
	struct vhu_queue *q = opaque;
	int n;

	vn_vdev_queue_lock(q->srv->vdev, q->index);
	n = (int)vn_vq_inflight(queue_vq(q));
	vn_vdev_queue_unlock(q->srv->vdev, q->index);
	return n;
}

/* ------------------------------------------------------------------ */
/* The control thread: ring lifecycle                                  */

static bool ring_enabled(const struct vhu_queue *q)
{
	/* vhost-user.rst "Ring states": without protocol features, enabled at once. */
	return q->enable_flag || !(q->srv->acked_features & F(VN_VHU_F_PROTOCOL_FEATURES));
}

static void ring_detach(struct vhu_queue *q)
{
	vn_iothread_run_sync_void(q->it, detach_fn, q);
}

/* Attach or detach the ring's notifier to match its state. */
static int ring_update(struct vhu_queue *q)
{
	bool want =
		q->started && ring_enabled(q) && !__atomic_load_n(&q->kick_dead, __ATOMIC_RELAXED);

	if (want)
		return vn_iothread_run_sync(q->it, attach_fn, q);
	ring_detach(q);
	return 0;
}

/*
 * Wait until the device has finished the chains it took from @q (the ones
 * that were in flight before we started do not count: nobody will finish
 * them). The ring is detached, so nothing new is taken.
 */
static int ring_drain(struct vhu_queue *q)
{
	struct vn_vhu_server *srv = q->srv;
	uint64_t deadline = vn_now_ns() + srv->drain_timeout_ns;

	for (;;) {
		int n = vn_iothread_run_sync(q->it, inflight_fn, q);

		if (n <= q->orphans)
			return 0;
		if (vn_now_ns() > deadline) {
			vn_log(VN_LOG_ERR, "vhu",
			       "%s: vq %u: %d requests still in flight after %llu ms", srv->name,
			       q->index, n - q->orphans,
			       (unsigned long long)(srv->drain_timeout_ns / 1000000));
			/* Their buffers must stay mapped: see unmap_all(). */
			srv->drain_stuck = true;
			return -ETIMEDOUT;
		}
		/* Completions may need our own loop (a device completing on it). */
		if (vn_loop_in_thread(q->loop))
			(void)vn_loop_run_once(q->loop, 1000000);
		else
			poll(NULL, 0, 1);
	}
}

static void drain_device(struct vn_vhu_server *srv)
{
	if (srv->drain)
		srv->drain(srv->drain_opaque);
}

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

static unsigned int ring_num(const struct vhu_queue *q)
{
	return q->num ? q->num : vn_vq_num_max(queue_vq((struct vhu_queue *)q));
}

/* Translate the ring's user addresses into guest-physical ones. */
static int ring_gpas(const struct vhu_queue *q, uint64_t *desc, uint64_t *avail, uint64_t *used)
{
	uint64_t dsz, asz, usz;

	vn_vq_ring_sizes(ring_num(q), &dsz, &asz, &usz);
	if (uva_to_gpa(q->srv, q->desc_uva, dsz, desc) < 0 ||
	    uva_to_gpa(q->srv, q->avail_uva, asz, avail) < 0 ||
	    uva_to_gpa(q->srv, q->used_uva, usz, used) < 0)
		return -EFAULT;
	return 0;
}

static bool any_started(const struct vn_vhu_server *srv)
{
	for (unsigned int i = 0; i < srv->nr_queues; i++)
		if (srv->queues[i].started)
			return true;
	return false;
}

/*
 * The first ring to start makes the device live: a fresh reset, then the
 * acked features through the status register, as a virtio driver would.
 */
static int device_start(struct vn_vhu_server *srv)
{
	uint64_t f = srv->acked_features & ~F(VN_VHU_F_PROTOCOL_FEATURES);
	uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
	int r = 0;

	vn_vdev_lock(srv->vdev);
	vn_vdev_reset(srv->vdev);
	(void)vn_vdev_set_status(srv->vdev, s);
	r = vn_vdev_set_driver_features(srv->vdev, f);
	if (r < 0)
		goto out;
	if (f & F(VIRTIO_F_VERSION_1)) {
		s |= VIRTIO_CONFIG_S_FEATURES_OK;
		(void)vn_vdev_set_status(srv->vdev, s);
		if (!(vn_vdev_get_status(srv->vdev) & VIRTIO_CONFIG_S_FEATURES_OK)) {
			r = -EINVAL; /* the device type refused them */
			goto out;
		}
	}
	(void)vn_vdev_set_status(srv->vdev, s | VIRTIO_CONFIG_S_DRIVER_OK);
out:
	vn_vdev_unlock(srv->vdev);
	return r;
}

struct load_args {
	struct vhu_queue *q;
	struct vn_vq_state st;
};

static int load_fn(void *opaque)
{
	struct load_args *a = opaque;
	struct vn_vhu_server *srv = a->q->srv;
	int r;

	vn_vdev_lock(srv->vdev);
	r = vn_vdev_queue_set_vector(srv->vdev, a->q->index, (uint16_t)a->q->index);
	vn_vdev_queue_lock(srv->vdev, a->q->index);
	if (r == 0)
		vn_vq_set_state(queue_vq(a->q), &a->st);
	vn_vdev_queue_unlock(srv->vdev, a->q->index);
	vn_vdev_unlock(srv->vdev);
	return r;
}

/*
 * Configure the device's queue from the frontend's ring: translate, check
 * (aligned, inside guest memory, indices consistent with the guest's), load.
 * @last_avail: where to resume taking chains.
 */
static int ring_load(struct vhu_queue *q, uint16_t last_avail)
{
	struct vn_vhu_server *srv = q->srv;
	struct load_args a = {.q = q};
	const char *field = "rings";
	int r;

	if (!q->addr_set) {
		peer_log(srv, "vq %u: started before SET_VRING_ADDR", q->index);
		return -EPROTO;
	}
	a.st.num = (uint16_t)ring_num(q);
	a.st.ready = true;
	a.st.last_avail_idx = last_avail;
	r = ring_gpas(q, &a.st.desc, &a.st.avail, &a.st.used);
	if (r == 0)
		r = vn_gmem_load_le16_acquire(srv->mem, a.st.used + 2, &a.st.used_idx);
	if (r == 0)
		r = vn_vq_check_state(queue_vq(q), &a.st, &field);
	if (r < 0) {
		peer_log(srv, "vq %u: bad ring (%s): %s", q->index, field, vn_strerror(r));
		return r;
	}
	r = vn_iothread_run_sync(q->it, load_fn, &a);
	if (r < 0)
		return r;
	q->orphans = (uint16_t)(a.st.last_avail_idx - a.st.used_idx);
	q->err_signalled = false;
	return 0;
}

struct stop_args {
	struct vhu_queue *q;
	uint16_t last_avail;
};

static void stop_fn(void *opaque)
{
	struct stop_args *a = opaque;
	struct vn_vhu_server *srv = a->q->srv;

	vn_vdev_lock(srv->vdev);
	vn_vdev_queue_lock(srv->vdev, a->q->index);
	a->last_avail = vn_vq_last_avail(queue_vq(a->q));
	VN_BUG_ON(vn_vdev_queue_reset(srv->vdev, a->q->index) < 0); /* index checked */
	vn_vdev_queue_unlock(srv->vdev, a->q->index);
	vn_vdev_unlock(srv->vdev);
}

static void close_kick(struct vhu_queue *q)
{
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	q->kick_fd = -1;
	__atomic_store_n(&q->kick_dead, false, __ATOMIC_RELAXED);
}

/*
 * GET_VRING_BASE's "stop the ring": no more kicks, the requests in flight
 * finished, the device's queue reset; remember where it stopped.
 * Return: the avail index to resume from.
 */
static uint16_t ring_stop(struct vhu_queue *q)
{
	struct stop_args a = {.q = q};

	if (!q->started)
		return q->base;
	ring_detach(q);
	drain_device(q->srv);
	(void)ring_drain(q);
	vn_iothread_run_sync_void(q->it, stop_fn, &a);
	close_kick(q);
	q->started = false;
	q->base = a.last_avail;
	vn_trace(vhu_ring, "dev=%s vq=%u stop base=%u", q->srv->name, q->index, q->base);
	return q->base;
}

static int ring_start(struct vhu_queue *q)
{
	int r;

	if (!any_started(q->srv)) {
		r = device_start(q->srv);
		if (r < 0) {
			peer_log(q->srv, "device refused features 0x%llx",
				 (unsigned long long)q->srv->acked_features);
			return r;
		}
	}
	r = ring_load(q, q->base);
	if (r < 0)
		return r;
	q->started = true;
	vn_trace(vhu_ring, "dev=%s vq=%u start num=%u base=%u kick=%d", q->srv->name, q->index,
		 ring_num(q), q->base, q->kick_fd);
	return 0;
}

struct fd_args {
	struct vhu_queue *q;
	int fd;
};

static int set_call_fn(void *opaque)
{
	struct fd_args *a = opaque;
	struct vn_vhu_server *srv = a->q->srv;
	int r;

	vn_vdev_lock(srv->vdev);
	vn_vdev_queue_lock(srv->vdev, a->q->index);
	r = vn_vdev_set_peer_notifier_fd(srv->vdev, a->q->index, a->fd);
	vn_vdev_queue_unlock(srv->vdev, a->q->index);
	vn_vdev_unlock(srv->vdev);
	return r;
}

static void set_err_fn(void *opaque)
{
	struct fd_args *a = opaque;
	int old = a->q->err_fd;

	a->q->err_fd = a->fd;
	a->q->err_signalled = false;
	a->fd = old; /* the caller closes the old one */
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

static void set_err_fd(struct vhu_queue *q, int fd)
{
	struct fd_args a = {.q = q, .fd = fd};

	vn_iothread_run_sync_void(q->it, set_err_fn, &a);
	if (a.fd >= 0)
		close(a.fd);
}

/* Forget what the frontend set up for @q (the ring must be stopped). */
static void ring_forget(struct vhu_queue *q)
{
	q->num = 0;
	q->addr_set = false;
	q->desc_uva = q->used_uva = q->avail_uva = 0;
	q->base = 0;
	q->enable_flag = false;
	q->orphans = 0;
	release_call_fd(q);
	set_err_fd(q, -1);
}

static void unmap_all(struct vn_vhu_server *srv)
{
	bool stuck = srv->drain_stuck;

	/*
	 * A drain that timed out left requests in flight whose buffers point
	 * into these regions: never unmap under them. The
	 * regions leave the map but stay mapped, leaked on purpose.
	 */
	if (stuck && srv->nregions)
		vn_log(VN_LOG_ERR, "vhu",
		       "%s: requests still in flight after a drain timeout: leaving %u guest "
		       "memory regions mapped (leaked) rather than unmapping them under I/O",
		       srv->name, srv->nregions);
	for (unsigned int i = 0; i < srv->nregions; i++) {
		uint64_t gpa = srv->regions[i].gpa;
		int r = stuck ? vn_gmem_remove_keep_mapped(srv->mem, gpa)
			      : vn_gmem_remove(srv->mem, gpa);

		if (r < 0)
			vn_log(VN_LOG_ERR, "vhu", "%s: region 0x%llx was not mapped", srv->name,
			       (unsigned long long)gpa);
	}
	srv->nregions = 0;
	srv->drain_stuck = false;
	/* Every region the frontend gave is gone, the truncated ones too. */
	vn_gmem_clear_faulted(srv->mem);
	__atomic_store_n(&srv->fault_seen, false, __ATOMIC_RELEASE);
	STAT_SET(srv->mem_regions, 0);
	STAT_SET(srv->mem_bytes, 0);
	/*
	 * Every caller has quiesced the queues (nothing translates now): free
	 * the old snapshots, or a daemon whose frontends reconnect all day
	 * keeps every memory table it ever saw. Not after a timed-out drain:
	 * its stuck requests' thread may still hold an old snapshot.
	 */
	if (!stuck)
		(void)vn_gmem_reclaim(srv->mem);
}

/* Stop every ring, reset the device and forget the rings' setup. */
static void reset_device(struct vn_vhu_server *srv)
{
	for (unsigned int i = 0; i < srv->nr_queues; i++)
		ring_stop(&srv->queues[i]);
	vn_vdev_lock(srv->vdev);
	vn_vdev_reset(srv->vdev);
	vn_vdev_unlock(srv->vdev);
	for (unsigned int i = 0; i < srv->nr_queues; i++)
		ring_forget(&srv->queues[i]);
	srv->acked_features = 0;
}

/* ------------------------------------------------------------------ */
/* Message handlers                                                    */

static int reply_u64(struct vn_vhu_msg *reply, uint64_t v)
{
	reply->p.u64 = v;
	reply->hdr.size = sizeof(uint64_t);
	return VN_VHU_REPLY;
}

static int h_get_features(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;

	return reply_u64(reply, srv->features);
}

static int h_set_features(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	uint64_t f = msg->p.u64;
	uint64_t devbits = ~F(VN_VHU_F_PROTOCOL_FEATURES);

	if (f & ~srv->features) {
		peer_log(srv, "SET_FEATURES 0x%llx: not offered: 0x%llx", (unsigned long long)f,
			 (unsigned long long)(f & ~srv->features));
		return -EINVAL;
	}
	/* Rings that run have their features; they change only across a stop. */
	if (any_started(srv) && (f & devbits) != (srv->acked_features & devbits))
		return -EBUSY;
	srv->acked_features = f;
	for (unsigned int i = 0; i < srv->nr_queues; i++)
		(void)ring_update(&srv->queues[i]);
	return VN_VHU_OK;
}

static int h_get_protocol_features(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	return reply_u64(reply, OFFERED_PROTOCOL);
}

static int h_set_protocol_features(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;

	if (msg->p.u64 & ~OFFERED_PROTOCOL)
		return -EINVAL;
	srv->acked_protocol = msg->p.u64;
	return VN_VHU_OK;
}

static int h_set_owner(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;

	srv->owner = true;
	return VN_VHU_OK;
}

/* Deprecated; vhost-user.rst recommends "disable all rings": we stop them. */
static int h_reset_owner(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;

	for (unsigned int i = 0; i < srv->nr_queues; i++)
		ring_stop(&srv->queues[i]);
	return VN_VHU_OK;
}

static int h_reset_device(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	reset_device(ctx);
	return VN_VHU_OK;
}

static int h_get_queue_num(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;

	return reply_u64(reply, srv->nr_queues);
}

/* Each region's fd must hold offset + size bytes: a short file would SIGBUS us. */
static int check_region_fds(struct vn_vhu_server *srv, const struct vn_vhu_msg *msg)
{
	for (uint32_t i = 0; i < msg->p.mem.nregions; i++) {
		const struct vn_vhu_mem_region *r = &msg->p.mem.r[i];
		struct stat st;

		if (fstat(msg->fds[i], &st) < 0)
			return -errno;
		if (!S_ISREG(st.st_mode)) {
			peer_log(srv, "memory region %u: fd is not a file", i);
			return -EINVAL;
		}
		if ((uint64_t)st.st_size < r->mmap_offset + r->size) {
			peer_log(srv,
				 "memory region %u: offset 0x%llx + size 0x%llx past the file "
				 "(0x%llx)",
				 i, (unsigned long long)r->mmap_offset, (unsigned long long)r->size,
				 (unsigned long long)st.st_size);
			return -EINVAL;
		}
	}
	return 0;
}

static int map_table(struct vn_vhu_server *srv, struct vn_vhu_msg *msg)
{
	uint64_t bytes = 0;

	for (uint32_t i = 0; i < msg->p.mem.nregions; i++) {
		const struct vn_vhu_mem_region *r = &msg->p.mem.r[i];
		int fd = vn_vhu_msg_claim_fd(msg, i);
		int ret = vn_gmem_add_fd(srv->mem, r->gpa, r->size, fd, r->mmap_offset);

		if (ret < 0) {
			close(fd);
			peer_log(srv, "memory region %u: cannot map: %s", i, vn_strerror(ret));
			return ret;
		}
		srv->regions[i] =
			(struct vhu_region){.gpa = r->gpa, .size = r->size, .uva = r->uva};
		srv->nregions = i + 1;
		bytes += r->size;
	}
	STAT_SET(srv->mem_regions, srv->nregions);
	STAT_SET(srv->mem_bytes, bytes);
	vn_trace(vhu_mem_table, "dev=%s regions=%u bytes=%llu", srv->name, srv->nregions,
		 (unsigned long long)bytes);
	return 0;
}

/* A ring that no longer fits the memory map: stop it and tell the frontend. */
static void ring_kill(struct vhu_queue *q)
{
	struct stop_args a = {.q = q};

	vn_iothread_run_sync_void(q->it, stop_fn, &a);
	close_kick(q);
	q->started = false;
	q->base = a.last_avail; /* where a restart resumes */
	vn_trace(vhu_ring, "dev=%s vq=%u killed base=%u", q->srv->name, q->index, q->base);
	signal_err(q);
}

static int h_set_mem_table(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	uint16_t resume[VN_VHU_VRING_IDX_MASK + 1];
	int r;

	r = check_region_fds(srv, msg);
	if (r < 0)
		return r;
	/* Quiesce before unmapping what the rings point into (CONTRIBUTING.md "Ownership"). */
	for (unsigned int i = 0; i < srv->nr_queues; i++)
		if (srv->queues[i].started)
			ring_detach(&srv->queues[i]);
	drain_device(srv);
	for (unsigned int i = 0; i < srv->nr_queues; i++) {
		struct vhu_queue *q = &srv->queues[i];

		if (!q->started)
			continue;
		(void)ring_drain(q);
		resume[i] = vn_vq_last_avail(queue_vq(q)); /* detached and drained: ours */
	}
	unmap_all(srv);
	r = map_table(srv, msg);
	if (r < 0)
		unmap_all(srv);
	for (unsigned int i = 0; i < srv->nr_queues; i++) {
		struct vhu_queue *q = &srv->queues[i];

		if (!q->started)
			continue;
		if (r < 0 || ring_load(q, resume[i]) < 0)
			ring_kill(q);
		else
			(void)ring_update(q);
	}
	return r < 0 ? r : VN_VHU_OK;
}

static struct vhu_queue *msg_queue(struct vn_vhu_server *srv, const struct vn_vhu_msg *msg)
{
	/* The dispatcher checked the index against nr_queues. */
	return &srv->queues[msg->p.state.index];
}

static int h_set_vring_num(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = msg_queue(srv, msg);
	uint32_t num = msg->p.state.num;

	if (q->started)
		return -EBUSY;
	if (num == 0 || num > vn_vq_num_max(queue_vq(q)) || (num & (num - 1)))
		return -EINVAL;
	q->num = num;
	return VN_VHU_OK;
}

static int h_set_vring_addr(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	const struct vn_vhu_vring_addr *a = &msg->p.addr;
	struct vhu_queue *q = msg_queue(srv, msg);
	struct vhu_queue saved = *q;
	uint64_t d, av, u;
	uint16_t resume;
	int r;

	if (a->flags & ~VN_VHU_VRING_F_LOG)
		return -EINVAL;
	q->desc_uva = a->desc;
	q->avail_uva = a->avail;
	q->used_uva = a->used;
	q->addr_set = true;
	r = ring_gpas(q, &d, &av, &u);
	if (r < 0) {
		peer_log(srv, "vq %u: ring addresses outside the memory table", q->index);
		goto err_restore;
	}
	if (!q->started)
		return VN_VHU_OK;
	/* A started ring moves: quiesce, reload at the same indices, resume. */
	ring_detach(q);
	drain_device(srv);
	(void)ring_drain(q);
	resume = vn_vq_last_avail(queue_vq(q));
	r = ring_load(q, resume);
	if (r < 0) {
		ring_kill(q);
		return r;
	}
	(void)ring_update(q);
	return VN_VHU_OK;

err_restore:
	q->desc_uva = saved.desc_uva;
	q->avail_uva = saved.avail_uva;
	q->used_uva = saved.used_uva;
	q->addr_set = saved.addr_set;
	return r;
}

static int h_set_vring_base(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = msg_queue(srv, msg);
	/* Split rings only (MASKED_FEATURES hides RING_PACKED). */
	struct vn_vq_state st = {.format = VN_VQ_FORMAT_SPLIT};

	if (q->started)
		return -EBUSY;
	if (vn_vq_set_vring_base(&st, msg->p.state.num) < 0)
		return -EINVAL;
	q->base = st.last_avail_idx;
	return VN_VHU_OK;
}

static int h_get_vring_base(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = msg_queue(srv, msg);
	struct vn_vq_state st = {.format = VN_VQ_FORMAT_SPLIT};

	st.last_avail_idx = ring_stop(q);
	reply->p.state.index = q->index;
	reply->p.state.num = vn_vq_vring_base(&st);
	reply->hdr.size = sizeof(reply->p.state);
	return VN_VHU_REPLY;
}

/*
 * Every fd a frontend gives for a ring must be an eventfd, made
 * non-blocking: a blocking or full fd written by a queue
 * thread would wedge it with the queue's locks held.
 */
static int check_ring_fd(struct vn_vhu_server *srv, const struct vn_vhu_msg *msg)
{
	const char *why;
	int r = vn_notifier_check_peer_fd(msg->fds[0], &why);

	if (r < 0)
		peer_log(srv, "%s vq %llu: fd %d refused: %s, an eventfd is expected (%s)",
			 vn_vhu_msg_request_name(msg->hdr.request),
			 (unsigned long long)(msg->p.u64 & VN_VHU_VRING_IDX_MASK), msg->fds[0], why,
			 vn_strerror(r));
	return r;
}

static int h_set_vring_kick(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = &srv->queues[msg->p.u64 & VN_VHU_VRING_IDX_MASK];
	int fd = -1, r;

	if (msg->nfds) {
		r = check_ring_fd(srv, msg);
		if (r < 0)
			return r;
		fd = vn_vhu_msg_claim_fd(msg, 0);
	}
	if (q->started) {
		/* A new notifier for a running ring: swap it while detached. */
		ring_detach(q);
		close_kick(q);
		q->kick_fd = fd;
	} else {
		close_kick(q);
		q->kick_fd = fd;
		r = ring_start(q);
		if (r < 0) {
			close_kick(q);
			return r;
		}
	}
	r = ring_update(q);
	if (r < 0) {
		/* epoll refused the fd: the ring cannot be kicked; stop it. */
		peer_log(srv, "vq %u: cannot watch the kick fd: %s", q->index, vn_strerror(r));
		ring_stop(q);
		return r;
	}
	return VN_VHU_OK;
}

static int h_set_vring_call(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = &srv->queues[msg->p.u64 & VN_VHU_VRING_IDX_MASK];
	int r;

	if (!msg->nfds) {
		release_call_fd(q); /* the frontend polls the used ring */
		return VN_VHU_OK;
	}
	r = check_ring_fd(srv, msg);
	if (r < 0)
		return r;
	r = install_call_fd(q, vn_vhu_msg_claim_fd(msg, 0));
	if (r < 0)
		return r;
	q->call_set = true;
	return VN_VHU_OK;
}

static int h_set_vring_err(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = &srv->queues[msg->p.u64 & VN_VHU_VRING_IDX_MASK];

	if (msg->nfds && check_ring_fd(srv, msg) < 0)
		return -EINVAL;
	set_err_fd(q, msg->nfds ? vn_vhu_msg_claim_fd(msg, 0) : -1);
	return VN_VHU_OK;
}

static int h_set_vring_enable(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	struct vhu_queue *q = msg_queue(srv, msg);

	if (msg->p.state.num > 1)
		return -EINVAL;
	q->enable_flag = msg->p.state.num;
	vn_trace(vhu_ring, "dev=%s vq=%u enable=%u", srv->name, q->index, msg->p.state.num);
	return ring_update(q) < 0 ? -EIO : VN_VHU_OK;
}

static int h_get_config(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	const struct vn_vhu_config *c = &msg->p.config;
	struct vn_vhu_config *rc = &reply->p.config;
	uint32_t len = vn_vdev_config_len(srv->vdev);

	/* A zero-length payload is how GET_CONFIG reports an error. */
	reply->hdr.size = 0;
	if (c->offset > VN_VHU_MAX_CONFIG || c->size > VN_VHU_MAX_CONFIG - c->offset) {
		peer_log(srv, "GET_CONFIG offset %u size %u out of range", c->offset, c->size);
		return VN_VHU_REPLY;
	}
	rc->offset = c->offset;
	rc->size = c->size;
	rc->flags = c->flags;
	memset(rc->payload, 0, c->size);
	/* Bytes past the device's config space read as zero, as on PCI. */
	if (c->offset < len) {
		uint32_t n = len - c->offset < c->size ? len - c->offset : c->size;

		if (vn_vdev_config_read(srv->vdev, c->offset, rc->payload, n) < 0)
			return VN_VHU_REPLY;
	}
	reply->hdr.size = VN_VHU_CONFIG_HDR_SIZE + c->size;
	return VN_VHU_REPLY;
}

static int h_set_config(void *ctx, struct vn_vhu_msg *msg, struct vn_vhu_msg *reply)
{
	struct vn_vhu_server *srv = ctx;
	const struct vn_vhu_config *c = &msg->p.config;
	int r;

	if (c->flags > 1) /* 0: a driver write; 1: live migration */
		return -EINVAL;
	vn_vdev_lock(srv->vdev);
	r = vn_vdev_config_write(srv->vdev, c->offset, c->payload, c->size);
	vn_vdev_unlock(srv->vdev);
	return r < 0 ? r : VN_VHU_OK;
}

#define ROW(req, fn, fmin, fmax, smin, smax, ...)                                                  \
	[VN_VHU_##req] = {.name = #req,                                                            \
			  .handler = fn,                                                           \
			  .min_fds = fmin,                                                         \
			  .max_fds = fmax,                                                         \
			  .min_size = smin,                                                        \
			  .max_size = smax,                                                        \
			  __VA_ARGS__}

#define U64 sizeof(uint64_t)
#define STATE sizeof(struct vn_vhu_vring_state)

static const struct vn_vhu_req table[] = {
	ROW(GET_FEATURES, h_get_features, 0, 0, 0, 0, .replies = true),
	ROW(SET_FEATURES, h_set_features, 0, 0, U64, U64),
	ROW(SET_OWNER, h_set_owner, 0, 0, 0, 0),
	ROW(RESET_OWNER, h_reset_owner, 0, 0, 0, 0),
	ROW(SET_MEM_TABLE, h_set_mem_table, 1, VN_VHU_MAX_FDS,
	    VN_VHU_MEM_HDR_SIZE + sizeof(struct vn_vhu_mem_region), sizeof(struct vn_vhu_mem),
	    .check = vn_vhu_msg_check_mem_table),
	ROW(SET_VRING_NUM, h_set_vring_num, 0, 0, STATE, STATE, .idx = VN_VHU_IDX_U32),
	ROW(SET_VRING_ADDR, h_set_vring_addr, 0, 0, sizeof(struct vn_vhu_vring_addr),
	    sizeof(struct vn_vhu_vring_addr), .idx = VN_VHU_IDX_U32),
	ROW(SET_VRING_BASE, h_set_vring_base, 0, 0, STATE, STATE, .idx = VN_VHU_IDX_U32),
	ROW(GET_VRING_BASE, h_get_vring_base, 0, 0, STATE, STATE, .idx = VN_VHU_IDX_U32,
	    .replies = true),
	ROW(SET_VRING_KICK, h_set_vring_kick, 0, 1, U64, U64, .idx = VN_VHU_IDX_VRING_FD),
	ROW(SET_VRING_CALL, h_set_vring_call, 0, 1, U64, U64, .idx = VN_VHU_IDX_VRING_FD),
	ROW(SET_VRING_ERR, h_set_vring_err, 0, 1, U64, U64, .idx = VN_VHU_IDX_VRING_FD),
	ROW(GET_PROTOCOL_FEATURES, h_get_protocol_features, 0, 0, 0, 0, .replies = true),
	ROW(SET_PROTOCOL_FEATURES, h_set_protocol_features, 0, 0, U64, U64),
	ROW(GET_QUEUE_NUM, h_get_queue_num, 0, 0, 0, 0, .replies = true),
	ROW(SET_VRING_ENABLE, h_set_vring_enable, 0, 0, STATE, STATE, .idx = VN_VHU_IDX_U32),
	ROW(GET_CONFIG, h_get_config, 0, 0, VN_VHU_CONFIG_HDR_SIZE, sizeof(struct vn_vhu_config),
	    .replies = true, .check = vn_vhu_msg_check_config),
	ROW(SET_CONFIG, h_set_config, 0, 0, VN_VHU_CONFIG_HDR_SIZE, sizeof(struct vn_vhu_config),
	    .check = vn_vhu_msg_check_config),
	ROW(RESET_DEVICE, h_reset_device, 0, 0, 0, 0),
};

/* ------------------------------------------------------------------ */
/* API                                                                 */

/* Mirror the control thread's ring state for readers on other threads. */
static void publish(struct vn_vhu_server *srv)
{
	for (unsigned int i = 0; i < srv->nr_queues; i++) {
		struct vhu_queue *q = &srv->queues[i];

		STAT_SET(q->st_started, q->started);
		STAT_SET(q->st_enabled, ring_enabled(q));
		STAT_SET(q->st_polling, q->started && q->kick_fd < 0);
		STAT_SET(q->st_call, q->call_set);
	}
}

int vn_vhu_server_process(struct vn_vhu_server *srv, struct vn_vhu_msg *msg,
			  struct vn_vhu_msg *reply, size_t *reply_len)
{
	struct vn_vhu_dispatch d = {
		.table = table,
		.nr_rows = VN_ARRAY_SIZE(table),
		.nr_queues = srv->nr_queues,
		.reply_ack = srv->acked_protocol & F(VN_VHU_PROTOCOL_F_REPLY_ACK),
		.ctx = srv,
	};
	char why[160] = "";
	int r, err = 0;

	d.why = why;
	d.why_len = sizeof(why);

	*reply_len = 0;
	STAT_INC(srv->messages);
	if (vn_gmem_is_faulted(srv->mem)) {
		vn_vhu_msg_close_fds(msg);
		peer_log(srv, "%s: guest memory was truncated by the frontend: dropping it",
			 vn_vhu_msg_request_name(msg->hdr.request));
		STAT_INC(srv->protocol_errors);
		return -EFAULT;
	}
	if (vn_vhu_msg_check_hdr(&msg->hdr) < 0 || msg->nfds > VN_VHU_MAX_FDS) {
		/* Every refusal names the request, the field and the value. */
		if (vn_vhu_msg_check_hdr(&msg->hdr) < 0)
			peer_log(srv, "refusing %s",
				 vn_vhu_msg_describe_hdr(&msg->hdr, why, sizeof(why)));
		else
			peer_log(srv, "refusing %s (request %u): %u fds (fd count) > %u",
				 vn_vhu_msg_request_name(msg->hdr.request), msg->hdr.request,
				 msg->nfds, VN_VHU_MAX_FDS);
		if (msg->nfds > VN_VHU_MAX_FDS)
			msg->nfds = VN_VHU_MAX_FDS;
		vn_vhu_msg_close_fds(msg);
		STAT_INC(srv->refused);
		STAT_INC(srv->protocol_errors);
		return -EPROTO;
	}
	r = vn_vhu_msg_dispatch(&d, msg, reply, reply_len, &err);
	if (err < 0) {
		STAT_INC(srv->refused);
		peer_log(srv, "%s (request %u, size %u, flags 0x%x) refused: %s%s%s",
			 vn_vhu_msg_request_name(msg->hdr.request), msg->hdr.request, msg->hdr.size,
			 msg->hdr.flags, why, why[0] ? ": " : "", vn_strerror(err));
	}
	if (r < 0)
		STAT_INC(srv->protocol_errors);
	publish(srv);
	return r;
}

void vn_vhu_server_connect(struct vn_vhu_server *srv)
{
	STAT_INC(srv->connections);
	STAT_SET(srv->connected, true);
	vn_trace(vhu_connect, "dev=%s", srv->name);
}

void vn_vhu_server_disconnect(struct vn_vhu_server *srv)
{
	reset_device(srv);
	unmap_all(srv);
	srv->acked_protocol = 0;
	srv->owner = false;
	if (STAT_GET(srv->connected)) {
		STAT_INC(srv->disconnects);
		STAT_SET(srv->connected, false);
	}
	publish(srv);
	vn_trace(vhu_disconnect, "dev=%s", srv->name);
}

static int timer_new_fn(void *opaque)
{
	struct vhu_queue *q = opaque;

	return vn_timer_new(q->loop, poll_timer, q, &q->timer);
}

static void timer_free_fn(void *opaque)
{
	struct vhu_queue *q = opaque;

	vn_timer_free(q->timer);
	q->timer = NULL;
}

int vn_vhu_server_new(const struct vn_vhu_server_cfg *cfg, struct vn_vhu_server **out)
{
	struct vn_vhu_server *srv;
	unsigned int nq;
	int r;

	if (!cfg || !cfg->vdev || !cfg->iothreads || cfg->nr_iothreads == 0)
		return -EINVAL;
	for (unsigned int i = 0; i < cfg->nr_iothreads; i++)
		if (!cfg->iothreads[i])
			return -EINVAL;
	nq = vn_vdev_nr_queues(cfg->vdev);
	/* Queue i uses vector i; the u64 of SET_VRING_KICK has 8 bits of index. */
	if (nq > VN_VHU_VRING_IDX_MASK + 1 || cfg->vdev->nr_vectors < nq)
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	r = vn_gmem_init(&srv->map);
	if (r < 0) {
		free(srv);
		return r;
	}
	srv->mem = &srv->map;
	/* The front door binds the memory it builds; -EBUSY: another transport has the device. */
	r = vn_vdev_bind_mem(cfg->vdev, srv->mem);
	if (r < 0) {
		vn_gmem_destroy(&srv->map);
		free(srv);
		return r;
	}
	/* Each ring's call fd is its own vector (queue i uses vector i). */
	r = vn_vdev_bind_irq(cfg->vdev, VN_VDEV_IRQ_VECTORS);
	srv->queues = r == 0 ? calloc(nq, sizeof(srv->queues[0])) : NULL;
	if (!srv->queues) {
		vn_vdev_unbind_mem(cfg->vdev);
		vn_gmem_destroy(&srv->map);
		free(srv);
		return r < 0 ? r : -ENOMEM;
	}
	srv->mem_bound = true;
	snprintf(srv->name, sizeof(srv->name), "%s", cfg->name ? cfg->name : cfg->vdev->name);
	srv->vdev = cfg->vdev;
	srv->nr_queues = nq;
	srv->poll_ns = cfg->poll_ns ? cfg->poll_ns : DEFAULT_POLL_NS;
	srv->drain_timeout_ns =
		cfg->drain_timeout_ns ? cfg->drain_timeout_ns : DEFAULT_DRAIN_TIMEOUT_NS;
	srv->drain = cfg->drain;
	srv->drain_opaque = cfg->drain_opaque;
	srv->features = (vn_vdev_device_features(cfg->vdev) & ~MASKED_FEATURES) |
			F(VN_VHU_F_PROTOCOL_FEATURES);
	vn_ratelimit_init(&srv->rl, 10);
	for (unsigned int i = 0; i < nq; i++) {
		struct vhu_queue *q = &srv->queues[i];

		q->srv = srv;
		q->index = i;
		q->kick_fd = -1;
		q->err_fd = -1;
		q->it = cfg->iothreads[i % cfg->nr_iothreads];
		q->loop = vn_iothread_loop(q->it);
		r = vn_iothread_run_sync(q->it, timer_new_fn, q);
		if (r < 0)
			goto err_free;
	}
	*out = srv;
	return 0;

err_free:
	vn_vhu_server_free(srv);
	return r;
}

void vn_vhu_server_free(struct vn_vhu_server *srv)
{
	if (!srv)
		return;
	vn_vhu_server_disconnect(srv);
	for (unsigned int i = 0; i < srv->nr_queues; i++) {
		struct vhu_queue *q = &srv->queues[i];

		if (q->timer)
			vn_iothread_run_sync_void(q->it, timer_free_fn, q);
	}
	/* The disconnect reset the device and unmapped the regions; now the map goes. */
	if (srv->mem_bound)
		vn_vdev_unbind_mem(srv->vdev);
	vn_gmem_destroy(&srv->map);
	vn_ratelimit_destroy(&srv->rl);
	free(srv->queues);
	free(srv);
}

void vn_vhu_server_get_stats(const struct vn_vhu_server *srv, struct vn_vhu_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->connections = STAT_GET(srv->connections);
	out->disconnects = STAT_GET(srv->disconnects);
	out->messages = STAT_GET(srv->messages);
	out->refused = STAT_GET(srv->refused);
	out->protocol_errors = STAT_GET(srv->protocol_errors);
	out->connected = STAT_GET(srv->connected);
	out->mem_regions = STAT_GET(srv->mem_regions);
	out->mem_bytes = STAT_GET(srv->mem_bytes);
}

int vn_vhu_server_get_queue_stats(const struct vn_vhu_server *srv, unsigned int q,
				  struct vn_vhu_queue_stats *out)
{
	const struct vhu_queue *vq;

	if (q >= srv->nr_queues)
		return -EINVAL;
	vq = &srv->queues[q];
	memset(out, 0, sizeof(*out));
	out->kicks = STAT_GET(vq->kicks);
	out->runs = STAT_GET(vq->runs);
	out->polls = STAT_GET(vq->polls);
	out->started = STAT_GET(vq->st_started);
	out->enabled = STAT_GET(vq->st_enabled);
	out->polling = STAT_GET(vq->st_polling);
	out->call_fd = STAT_GET(vq->st_call);
	return 0;
}

unsigned int vn_vhu_server_nr_queues(const struct vn_vhu_server *srv)
{
	return srv->nr_queues;
}

uint64_t vn_vhu_server_features(const struct vn_vhu_server *srv)
{
	return srv->features;
}

uint64_t vn_vhu_server_protocol_features(const struct vn_vhu_server *srv)
{
	return OFFERED_PROTOCOL;
}
