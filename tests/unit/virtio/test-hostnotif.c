/* SPDX-License-Identifier: MIT */
/*
 * The host notifier state machine (docs/design.md): every edge and trigger,
 * the stop race, self-kicks, the safety net, start rollback, and a randomized
 * lifecycle run with a concurrent guest.
 *
 * The fixture is a device with NQ queues whose doorbells live in an MMIO
 * region of a soft bus: a guest write there either matches the queue's
 * ioeventfd (ASSIGNED) or reaches the region, which takes the device lock
 * and rings vn_hostnotif_doorbell() (a synchronous exit).
 */
#include "virtio/hostnotif.h"

#include <endian.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <vnotify/bus.h>
#include <vnotify/iothread.h>

#include "base/log.h"
#include "base/trace.h"
#include "harness.h"
#include "mem/gmem.h"
#include "virtio/state.h"
#include "virtio/vdev.h"
#include "virtio/vq.h"

#define NQ 2
#define NUM 64
#define GPA 0x100000ull
#define MEMSZ 0x100000ull
#define QBASE(q) (GPA + 0x8000ull * (q))
#define QDESC(q) (QBASE(q))
#define QAVAIL(q) (QBASE(q) + 0x2000)
#define QUSED(q) (QBASE(q) + 0x3000)
#define BUF (GPA + 0x40000)
#define NOTIFY_BASE 0xfe000000ull

#define S_PRE (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK)
#define S_RUN (S_PRE | VIRTIO_CONFIG_S_DRIVER_OK)

struct fx {
	struct vn_gmem mem;
	struct vn_vdev *vdev;
	struct vn_bus *bus;
	struct vn_accel *accel;
	struct vn_iothread *it;
	struct vn_hostnotif *hn;
	struct vn_region *region;
	/* the guest: read-held while adding a request, write-held to change the rings */
	pthread_rwlock_t guest;
	uint16_t avail_idx[NQ];
	/* device side */
	int busy[NQ];
	int overlaps;
	uint64_t processed[NQ];
	int ran_on_iothread[NQ]; /* where the last run happened: 1 iothread, 0 elsewhere */
};

static const struct vn_vdev_ops fx_ops = { 0 };

/* The device's queue handler: drain the ring, checking single ownership. */
static void fx_handler(struct vn_vdev *vdev, struct vn_vq *vq)
{
	struct fx *f = vn_vdev_opaque(vdev);
	unsigned int q = vn_vq_index(vq);
	struct iovec iov[4];
	struct vn_vq_elem e = { .iov = iov, .iov_cap = 4 };
	int r;

	if (__atomic_fetch_add(&f->busy[q], 1, __ATOMIC_ACQ_REL) != 0)
		__atomic_fetch_add(&f->overlaps, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&f->ran_on_iothread[q], vn_loop_in_thread(vn_iothread_loop(f->it)),
			 __ATOMIC_RELAXED);
	do {
		vn_vq_disable_notify(vq);
		while ((r = vn_vq_pop(vq, &e)) > 0) {
			if (vn_vq_push(vq, e.head, 0) < 0)
				break;
			__atomic_fetch_add(&f->processed[q], 1, __ATOMIC_RELAXED);
		}
		if (r < 0)
			break;
	} while (vn_vq_enable_notify(vq) > 0);
	__atomic_fetch_sub(&f->busy[q], 1, __ATOMIC_ACQ_REL);
}

static int fx_ioev_for_queue(void *opaque, unsigned int q, struct vn_ioev *out)
{
	*out = (struct vn_ioev){ .space = VN_SPACE_MMIO, .addr = NOTIFY_BASE + 4ull * q, .len = 0 };
	return 0;
}

static const struct vn_hostnotif_ops fx_hn_ops = { .ioev_for_queue = fx_ioev_for_queue };

static uint64_t fx_region_read(void *opaque, uint64_t off, unsigned int size)
{
	return 0;
}

/* The synchronous exit: the device lock, then the doorbell. */
static void fx_region_write(void *opaque, uint64_t off, unsigned int size, uint64_t value)
{
	struct fx *f = opaque;

	vn_vdev_lock(f->vdev);
	if (f->hn)
		(void)vn_hostnotif_doorbell(f->hn, (unsigned int)(off / 4));
	vn_vdev_unlock(f->vdev);
}

static const struct vn_region_ops fx_region_ops = {
	.read = fx_region_read, .write = fx_region_write,
};

/* Driver-side setup of every queue, up to (and with @driver_ok) DRIVER_OK. */
static int fx_driver_init(struct fx *f, bool driver_ok)
{
	int r = 0;

	vn_vdev_lock(f->vdev);
	r |= vn_vdev_set_status(f->vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	r |= vn_vdev_set_driver_features(f->vdev, vn_vdev_device_features(f->vdev));
	r |= vn_vdev_set_status(f->vdev, S_PRE);
	for (unsigned int q = 0; q < NQ; q++) {
		r |= vn_vdev_queue_set_num(f->vdev, q, NUM);
		r |= vn_vdev_queue_set_addr(f->vdev, q, QDESC(q), QAVAIL(q), QUSED(q));
		r |= vn_vdev_queue_set_vector(f->vdev, q, 0);
		r |= vn_vdev_queue_enable(f->vdev, q);
		f->avail_idx[q] = 0;
	}
	if (driver_ok)
		r |= vn_vdev_set_status(f->vdev, S_RUN);
	vn_vdev_unlock(f->vdev);
	return r;
}

static void fx_zero_rings(struct fx *f)
{
	static const uint8_t zero[0x4000];

	for (unsigned int q = 0; q < NQ; q++)
		VN_BUG_ON(vn_gmem_write(&f->mem, QBASE(q), zero, sizeof(zero)) != 0);
}

static int fx_new_device(struct fx *f, bool event_idx)
{
	struct vn_vdev_cfg cfg = {
		.name = "hn", .device_id = 42, .ops = &fx_ops, .opaque = f,
		.features = event_idx ? 1ull << VIRTIO_RING_F_EVENT_IDX : 0, .nr_queues = NQ,
		.queue_size_max = 256, .config_len = 8, .nr_vectors = 2,
	};
	int r = vn_vdev_new(&cfg, &f->vdev);

	if (r == 0)
		r = vn_vdev_bind_mem(f->vdev, &f->mem);
	for (unsigned int q = 0; r == 0 && q < NQ; q++)
		r = vn_vdev_set_queue_handler(f->vdev, q, fx_handler);
	return r;
}

struct fx_opts {
	unsigned int max_ioeventfds;
	bool no_iothread;
	bool ioeventfd_off;
	uint64_t safety_net_ns;
	bool driver_ok;
	/*
	 * The iothread is not started: the test runs its loop by hand
	 * (vn_loop_run_once()), which busy-polls up to 1 s per window.
	 */
	bool manual;
	bool no_event_idx;
	uint64_t poll_max_ns;	/* the started iothread's busy-poll cap (ring polling) */
};

static int fx_hn_new(struct fx *f, const struct fx_opts *o)
{
	struct vn_hostnotif_cfg cfg = {
		.vdev = f->vdev, .accel = f->accel, .iothread = o->no_iothread ? NULL : f->it,
		.ioeventfd = !o->ioeventfd_off, .running = true, .safety_net_ns = o->safety_net_ns,
		.ops = &fx_hn_ops, .opaque = f,
	};

	return vn_hostnotif_new(&cfg, &f->hn);
}

static int fx_init(struct vn_t *t, struct fx *f, const struct fx_opts *o)
{
	struct vn_bus_cfg bcfg = { .max_ioeventfds = o->max_ioeventfds };
	struct vn_region_cfg rcfg = {
		.name = "notify", .space = VN_SPACE_MMIO, .base = NOTIFY_BASE, .size = 0x1000,
		.ops = &fx_region_ops, .opaque = f,
	};
	struct vn_iothread_cfg icfg = { .name = "hn-io",
					.poll_max_ns = o->manual ? 1000000000ull : o->poll_max_ns };

	memset(f, 0, sizeof(*f));
	pthread_rwlock_init(&f->guest, NULL);
	if (!VN_CHECK_OK(t, vn_gmem_init(&f->mem)) ||
	    !VN_CHECK_OK(t, vn_gmem_add_memfd(&f->mem, GPA, MEMSZ, NULL)) ||
	    !VN_CHECK_OK(t, vn_bus_new(&bcfg, &f->bus)) ||
	    !VN_CHECK_OK(t, vn_accel_soft_new(f->bus, &f->accel)) ||
	    !VN_CHECK_OK(t, vn_bus_add_region(f->bus, &rcfg, &f->region)) ||
	    !VN_CHECK_OK(t, vn_iothread_new(&icfg, &f->it)) ||
	    (!o->manual && !VN_CHECK_OK(t, vn_iothread_start(f->it))) ||
	    !VN_CHECK_OK(t, fx_new_device(f, !o->no_event_idx)) ||
	    !VN_CHECK_EQ_INT(t, fx_driver_init(f, o->driver_ok), 0) ||
	    !VN_CHECK_OK(t, fx_hn_new(f, o)))
		return -1;
	return 0;
}

static void fx_fini(struct fx *f)
{
	vn_hostnotif_free(f->hn);
	f->hn = NULL;
	vn_iothread_free(f->it);
	vn_vdev_free(f->vdev);
	vn_bus_del_region(f->bus, f->region);
	vn_accel_free(f->accel);
	vn_bus_free(f->bus);
	vn_gmem_destroy(&f->mem);
	pthread_rwlock_destroy(&f->guest);
}

static uint16_t fx_used_idx(struct fx *f, unsigned int q)
{
	uint16_t v = 0;

	VN_BUG_ON(vn_gmem_load_le16_acquire(&f->mem, QUSED(q) + 2, &v) != 0);
	return v;
}

/* Puts one request on queue @q; returns false if the ring is full. No kick. */
static bool fx_add(struct fx *f, unsigned int q)
{
	uint16_t slot = f->avail_idx[q] % NUM;
	struct vring_desc d = { .addr = htole64(BUF + 16ull * slot), .len = htole32(16) };
	uint16_t head = htole16(slot);

	if ((uint16_t)(f->avail_idx[q] - fx_used_idx(f, q)) >= NUM)
		return false;
	VN_BUG_ON(vn_gmem_write(&f->mem, QDESC(q) + 16ull * slot, &d, sizeof(d)) != 0);
	VN_BUG_ON(vn_gmem_write(&f->mem, QAVAIL(q) + 4 + 2ull * slot, &head, 2) != 0);
	f->avail_idx[q]++;
	/* Release: the descriptor and ring entry before the index the device reads. */
	VN_BUG_ON(vn_gmem_store_le16_release(&f->mem, QAVAIL(q) + 2, f->avail_idx[q]) != 0);
	return true;
}

/* The guest's doorbell write, as a vCPU exit delivers it. */
static int fx_kick(struct fx *f, unsigned int q)
{
	return vn_bus_write(f->bus, VN_SPACE_MMIO, NOTIFY_BASE + 4ull * q, 2, q);
}

static bool fx_all_done(struct fx *f, unsigned int q)
{
	return fx_used_idx(f, q) == f->avail_idx[q];
}

static enum vn_hostnotif_state st(struct fx *f, unsigned int q)
{
	return vn_hostnotif_state(f->hn, q);
}

/* Locked lifecycle helpers: what the transport or machine would do. */
static void set_status(struct fx *f, uint8_t s)
{
	vn_vdev_lock(f->vdev);
	(void)vn_vdev_set_status(f->vdev, s);
	vn_vdev_unlock(f->vdev);
}

static void set_running(struct fx *f, bool on)
{
	vn_vdev_lock(f->vdev);
	vn_hostnotif_set_running(f->hn, on);
	vn_vdev_unlock(f->vdev);
}

static void set_bus_master(struct fx *f, bool on)
{
	vn_vdev_lock(f->vdev);
	vn_hostnotif_set_bus_master(f->hn, on);
	vn_vdev_unlock(f->vdev);
}

static int vhost(struct fx *f, unsigned int q, bool take)
{
	int r;

	vn_vdev_lock(f->vdev);
	r = vn_hostnotif_set_host_notifier(f->hn, q, take);
	vn_vdev_unlock(f->vdev);
	return r;
}

/* Trace capture: the edge letters of hostnotif_transition, in order. */
static char edges[256];
static unsigned int nedges;
static pthread_mutex_t edges_lock = PTHREAD_MUTEX_INITIALIZER;

static void edge_sink(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
	const char *e;

	if (strcmp(tag, "trace") || strncmp(msg, "hostnotif_transition", 20))
		return;
	e = strstr(msg, "edge=");
	pthread_mutex_lock(&edges_lock);
	if (e && nedges + 1 < sizeof(edges))
		edges[nedges++] = e[5];
	edges[nedges] = 0;
	pthread_mutex_unlock(&edges_lock);
}

static void edges_reset(void)
{
	pthread_mutex_lock(&edges_lock);
	nedges = 0;
	edges[0] = 0;
	pthread_mutex_unlock(&edges_lock);
}

/* Adds a request on @q, kicks, waits; returns 1 iothread, 0 elsewhere, -1 timeout. */
static int request_and_where(struct fx *f, unsigned int q)
{
	if (!fx_add(f, q) || fx_kick(f, q) < 0)
		return -1;
	if (!VN_WAIT_FOR(fx_all_done(f, q), 5000))
		return -1;
	return __atomic_load_n(&f->ran_on_iothread[q], __ATOMIC_RELAXED);
}

#define CHECK_BOTH(t, f, want)                                  \
	do {                                                    \
		VN_CHECK_EQ_INT(t, st(f, 0), want);             \
		VN_CHECK_EQ_INT(t, st(f, 1), want);             \
	} while (0)

#define CHECK_EDGES(t, want)                                                \
	do {                                                                \
		pthread_mutex_lock(&edges_lock);                            \
		if (strcmp(edges, want) != 0)                               \
			vn_t_fail(t, __FILE__, __LINE__, "edges '%s', want '%s'", edges, want); \
		pthread_mutex_unlock(&edges_lock);                          \
		edges_reset();                                              \
	} while (0)

/* Every edge a-g and every stop/start trigger, with where the kick is served. */
static void test_edges_and_triggers(struct vn_t *t)
{
	struct fx f;
	struct fx_opts o = { .driver_ok = false };
	static uint8_t state[4096];
	int len;

	vn_log_set_sink(edge_sink, NULL);
	VN_REQUIRE(t, vn_trace_enable("hostnotif_transition") == 1);
	edges_reset();
	if (fx_init(t, &f, &o) < 0)
		goto out;
	CHECK_EDGES(t, "aa");
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_DEASSIGNED);
	VN_CHECK_EQ_INT(t, request_and_where(&f, 0), 0);

	/* b: DRIVER_OK */
	set_status(&f, S_RUN);
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_ASSIGNED);
	CHECK_EDGES(t, "bb");
	VN_CHECK_EQ_INT(t, request_and_where(&f, 0), 1);
	VN_CHECK_EQ_INT(t, request_and_where(&f, 1), 1);

	/* stop on a status without DRIVER_OK; start again */
	set_status(&f, S_PRE);
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_DEASSIGNED);
	CHECK_EDGES(t, "ss");
	VN_CHECK_EQ_INT(t, request_and_where(&f, 0), 0);
	set_status(&f, S_RUN);
	CHECK_EDGES(t, "bb");

	/* bus master cleared and set */
	set_bus_master(&f, false);
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_DEASSIGNED);
	VN_CHECK_EQ_INT(t, request_and_where(&f, 1), 0);
	set_bus_master(&f, true);
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_ASSIGNED);
	CHECK_EDGES(t, "ssbb");

	/* machine pause and resume; starting or stopping twice is a no-op */
	set_running(&f, false);
	set_running(&f, false);
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_DEASSIGNED);
	set_running(&f, true);
	set_running(&f, true);
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_ASSIGNED);
	CHECK_EDGES(t, "ssbb");
	VN_CHECK_EQ_INT(t, request_and_where(&f, 0), 1);

	/* c then e: vhost takes an ASSIGNED queue (counted) and gives it back */
	VN_CHECK_OK(t, vhost(&f, 0, true));
	VN_CHECK_OK(t, vhost(&f, 0, true));
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_OFFLIMITS);
	VN_CHECK_OK(t, vhost(&f, 0, false));
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_OFFLIMITS);
	VN_CHECK_OK(t, vhost(&f, 0, false));
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_ASSIGNED);
	VN_CHECK_EQ_INT(t, vhost(&f, 0, false), -EPERM);
	CHECK_EDGES(t, "ce");

	/* d then f: with ioeventfd off, vhost takes a DEASSIGNED queue and gives it back */
	vn_vdev_lock(f.vdev);
	vn_hostnotif_set_ioeventfd(f.hn, false);
	vn_vdev_unlock(f.vdev);
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_DEASSIGNED);
	VN_CHECK_OK(t, vhost(&f, 1, true));
	VN_CHECK_EQ_INT(t, st(&f, 1), VN_HOSTNOTIF_OFFLIMITS);
	VN_CHECK(t, vn_hostnotif_fd(f.hn, 1) >= 0);
	VN_CHECK_OK(t, vhost(&f, 1, false));
	VN_CHECK_EQ_INT(t, st(&f, 1), VN_HOSTNOTIF_DEASSIGNED);
	CHECK_EDGES(t, "ssdf");
	vn_vdev_lock(f.vdev);
	vn_hostnotif_set_ioeventfd(f.hn, true);
	vn_vdev_unlock(f.vdev);
	CHECK_EDGES(t, "bb");

	/* g: reset, from ASSIGNED and from OFFLIMITS */
	VN_CHECK_OK(t, vhost(&f, 1, true));
	CHECK_EDGES(t, "c");
	set_status(&f, 0);
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_DEASSIGNED);
	CHECK_EDGES(t, "gg");
	VN_CHECK_EQ_INT(t, vhost(&f, 1, false), -EPERM); /* the reset ended the take */

	/* load after migration: save a running device, reset, load: it starts by itself */
	fx_zero_rings(&f);
	VN_CHECK_EQ_INT(t, fx_driver_init(&f, true), 0);
	CHECK_EDGES(t, "bb");
	vn_vdev_lock(f.vdev);
	len = vn_state_save(f.vdev, state, sizeof(state));
	vn_vdev_unlock(f.vdev);
	VN_CHECK(t, len > 0);
	set_status(&f, 0);
	CHECK_EDGES(t, "gg");
	vn_vdev_lock(f.vdev);
	VN_CHECK_OK(t, vn_state_load(f.vdev, state, (size_t)len, NULL));
	vn_vdev_unlock(f.vdev);
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_ASSIGNED);
	CHECK_EDGES(t, "bb");
	VN_CHECK_EQ_INT(t, request_and_where(&f, 1), 1);

	/* removal: every ioeventfd is gone, so a doorbell reaches the region */
	vn_hostnotif_free(f.hn);
	f.hn = NULL;
	CHECK_EDGES(t, "gg");
	VN_CHECK_EQ_INT(t, fx_kick(&f, 0), VN_BUS_REGION);
	VN_CHECK_EQ_INT(t, fx_kick(&f, 1), VN_BUS_REGION);
	VN_CHECK_EQ_INT(t, f.overlaps, 0);
	fx_fini(&f);
out:
	(void)vn_trace_enable("");
	vn_log_set_sink(NULL, NULL);
}

static void test_no_iothread_or_option_off_stays_sync(struct vn_t *t)
{
	for (int variant = 0; variant < 2; variant++) {
		struct fx f;
		struct fx_opts o = { .driver_ok = true, .no_iothread = variant == 0,
				     .ioeventfd_off = variant == 1 };

		if (fx_init(t, &f, &o) < 0)
			return;
		CHECK_BOTH(t, &f, VN_HOSTNOTIF_DEASSIGNED);
		VN_CHECK_EQ_INT(t, request_and_where(&f, 0), 0);
		VN_CHECK_EQ_INT(t, request_and_where(&f, 1), 0);
		fx_fini(&f);
	}
}

/* Blocks the iothread until released, so a kick can sit in the eventfd. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool entered, open;
};

static void gate_fn(void *opaque)
{
	struct gate *g = opaque;

	pthread_mutex_lock(&g->lock);
	g->entered = true;
	pthread_cond_broadcast(&g->cond);
	while (!g->open)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void gate_close(struct fx *f, struct gate *g)
{
	*g = (struct gate){ 0 };
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	VN_BUG_ON(vn_loop_call(vn_iothread_loop(f->it), gate_fn, g) != 0);
	pthread_mutex_lock(&g->lock);
	while (!g->entered)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
}

static void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/*
 * The race: the kick is in the eventfd (the iothread has not read it) when
 * the queue stops. The drain runs it exactly once, on the stopping thread,
 * and the iothread, freed afterwards, leaves it alone.
 */
static void test_kick_just_before_stop_runs_once(struct vn_t *t)
{
	for (int round = 0; round < 20; round++) {
		struct fx f;
		struct fx_opts o = { .driver_ok = true };
		struct vn_hostnotif_stats s;
		struct gate g;

		if (fx_init(t, &f, &o) < 0)
			return;
		VN_REQUIRE_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_ASSIGNED);
		vn_hostnotif_sync(f.hn);
		gate_close(&f, &g);
		VN_CHECK(t, fx_add(&f, 0));
		VN_CHECK_EQ_INT(t, fx_kick(&f, 0), VN_BUS_IOEVENTFD);
		VN_CHECK_EQ_U(t, f.processed[0], 0);
		set_status(&f, S_PRE);
		VN_CHECK_EQ_U(t, __atomic_load_n(&f.processed[0], __ATOMIC_RELAXED), 1);
		VN_CHECK_EQ_INT(t, f.ran_on_iothread[0], 0);
		gate_open(&g);
		vn_hostnotif_sync(f.hn);
		vn_hostnotif_get_stats(f.hn, &s);
		VN_CHECK_EQ_U(t, s.drain_runs, 1);
		VN_CHECK_EQ_U(t, __atomic_load_n(&f.processed[0], __ATOMIC_RELAXED), 1);
		/* an idle queue is not run for nothing: queue 1 had no kick */
		VN_CHECK_EQ_U(t, f.processed[1], 0);
		fx_fini(&f);
		pthread_mutex_destroy(&g.lock);
		pthread_cond_destroy(&g.cond);
	}
}

/*
 * Self-kick: work that arrived while a queue was between owners is processed
 * when the new owner starts, without another kick from the guest.
 */
static void test_self_kick_between_owners(struct vn_t *t)
{
	struct fx f;
	struct fx_opts o = { .driver_ok = true };
	static uint8_t state[4096];
	int len;

	if (fx_init(t, &f, &o) < 0)
		return;
	/* resume: requests queued while paused, never kicked */
	set_running(&f, false);
	VN_CHECK(t, fx_add(&f, 0));
	VN_CHECK(t, fx_add(&f, 1));
	set_running(&f, true);
	VN_CHECK(t, VN_WAIT_FOR(fx_all_done(&f, 0) && fx_all_done(&f, 1), 5000));

	/* vhost give-back: the guest kicked while vhost held it, and vhost did not look */
	VN_CHECK_OK(t, vhost(&f, 0, true));
	VN_CHECK(t, fx_add(&f, 0));
	VN_CHECK_EQ_INT(t, fx_kick(&f, 0), VN_BUS_IOEVENTFD);
	VN_CHECK(t, !fx_all_done(&f, 0));
	VN_CHECK_OK(t, vhost(&f, 0, false));
	VN_CHECK(t, VN_WAIT_FOR(fx_all_done(&f, 0), 5000));

	/* give-back to DEASSIGNED (edge f) also runs the queue once */
	set_bus_master(&f, false);
	VN_CHECK_OK(t, vhost(&f, 1, true));
	VN_CHECK(t, fx_add(&f, 1));
	VN_CHECK_OK(t, vhost(&f, 1, false));
	VN_CHECK(t, fx_all_done(&f, 1));
	set_bus_master(&f, true);

	/* load: requests the guest queued before the migration finished */
	vn_vdev_lock(f.vdev);
	len = vn_state_save(f.vdev, state, sizeof(state));
	vn_vdev_unlock(f.vdev);
	VN_REQUIRE(t, len > 0);
	set_running(&f, false);
	set_status(&f, 0);
	VN_CHECK(t, fx_add(&f, 1));
	VN_CHECK(t, fx_add(&f, 1));
	vn_vdev_lock(f.vdev);
	VN_CHECK_OK(t, vn_state_load(f.vdev, state, (size_t)len, NULL));
	vn_vdev_unlock(f.vdev);
	VN_CHECK(t, !fx_all_done(&f, 1));
	set_running(&f, true);
	VN_CHECK(t, VN_WAIT_FOR(fx_all_done(&f, 1), 5000));
	VN_CHECK_EQ_INT(t, f.overlaps, 0);
	fx_fini(&f);
}

/*
 * Takes all but one slot of a bus one bigger than the old kernels' (a
 * smaller one is the few-ioeventfds policy's, where queues never try).
 */
static int fill_all_but_one(struct vn_t *t, struct fx *f)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	if (!VN_CHECK(t, fd >= 0))
		return -1;
	for (unsigned int i = 0; i < VN_IOEV_LIMIT_OLD_KERNEL; i++) {
		struct vn_ioev e = { .space = VN_SPACE_MMIO, .addr = 0x9000 + 4 * i, .len = 4,
				     .fd = fd };

		if (!VN_CHECK_OK(t, vn_accel_assign(f->accel, &e)))
			return -1;
	}
	return fd;
}

static void unfill(struct fx *f, int fd)
{
	for (unsigned int i = 0; i < VN_IOEV_LIMIT_OLD_KERNEL; i++) {
		struct vn_ioev e = { .space = VN_SPACE_MMIO, .addr = 0x9000 + 4 * i, .len = 4,
				     .fd = fd };

		VN_BUG_ON(vn_accel_deassign(f->accel, &e) < 0);
	}
	close(fd);
}

/* The avail_event the device last published (EVENT_IDX is negotiated). */
static uint16_t fx_avail_event(struct fx *f, unsigned int q)
{
	uint16_t v = 0;

	VN_BUG_ON(vn_gmem_load_le16_acquire(&f->mem, QUSED(q) + 4 + 8ull * NUM, &v) != 0);
	return v;
}

static void fx_set_avail_event(struct fx *f, unsigned int q, uint16_t v)
{
	VN_BUG_ON(vn_gmem_store_le16_release(&f->mem, QUSED(q) + 4 + 8ull * NUM, v) != 0);
}

/* An eventfd's counter is non-zero: a kick sits in it. */
static bool fd_pending(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/*
 * The final drain leaves the ring open for the next owner: an avail_event
 * the last handler run left behind (kicks suppressed) is brought up to the
 * ring, on a status stop and on a machine pause alike.
 */
static void test_drain_reenables_notify(struct vn_t *t)
{
	for (int how = 0; how < 2; how++) {
		struct fx f;
		struct fx_opts o = { .driver_ok = true };

		if (fx_init(t, &f, &o) < 0)
			return;
		VN_REQUIRE_EQ_INT(t, request_and_where(&f, 0), 1);
		vn_hostnotif_sync(f.hn);
		VN_REQUIRE_EQ_INT(t, fx_avail_event(&f, 0), f.avail_idx[0]);
		/* suppressed: the driver's next add would not pass avail_event */
		fx_set_avail_event(&f, 0, (uint16_t)(f.avail_idx[0] - 1));
		if (how == 0)
			set_status(&f, S_PRE);
		else
			set_running(&f, false);
		VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_DEASSIGNED);
		VN_CHECK_EQ_INT(t, fx_avail_event(&f, 0), f.avail_idx[0]);
		fx_fini(&f);
	}
}

/*
 * The give-back's self-kick is a kick of its own, not the guest's kick left
 * in the eventfd: work made available while OFFLIMITS is served after the
 * give-back with no kick at all, and when the backend read the guest's kick
 * (the eventfd is empty) without serving it.
 */
static void test_give_back_self_kick_empty_eventfd(struct vn_t *t)
{
	struct fx f;
	struct fx_opts o = { .driver_ok = true };
	uint64_t v;

	if (fx_init(t, &f, &o) < 0)
		return;
	vn_hostnotif_sync(f.hn);
	/* no kick at all */
	VN_CHECK_OK(t, vhost(&f, 0, true));
	VN_CHECK(t, fx_add(&f, 0));
	VN_CHECK(t, !fd_pending(vn_hostnotif_fd(f.hn, 0)));
	VN_CHECK_OK(t, vhost(&f, 0, false));
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_ASSIGNED);
	VN_CHECK(t, VN_WAIT_FOR(fx_all_done(&f, 0), 5000));
	vn_hostnotif_sync(f.hn);

	/* the backend read the kick and left the request */
	VN_CHECK_OK(t, vhost(&f, 0, true));
	VN_CHECK(t, fx_add(&f, 0));
	VN_CHECK_EQ_INT(t, fx_kick(&f, 0), VN_BUS_IOEVENTFD);
	VN_CHECK_EQ_INT(t, read(vn_hostnotif_fd(f.hn, 0), &v, sizeof(v)), (int)sizeof(v));
	VN_CHECK(t, !fd_pending(vn_hostnotif_fd(f.hn, 0)));
	VN_CHECK(t, !fx_all_done(&f, 0));
	VN_CHECK_OK(t, vhost(&f, 0, false));
	VN_CHECK(t, VN_WAIT_FOR(fx_all_done(&f, 0), 5000));
	VN_CHECK_EQ_INT(t, f.overlaps, 0);
	fx_fini(&f);
}

/* Start fails at queue 1 (one slot left): roll back, fall back, keep serving. */
static void test_start_failure_rolls_back(struct vn_t *t)
{
	struct fx f;
	struct fx_opts o = { .driver_ok = false, .max_ioeventfds = VN_IOEV_LIMIT_OLD_KERNEL + 1 };
	struct vn_hostnotif_stats s;
	struct vn_ioev q0 = { .space = VN_SPACE_MMIO, .addr = NOTIFY_BASE, .len = 0 };
	uint64_t n;
	int fill;

	if (fx_init(t, &f, &o) < 0)
		return;
	fill = fill_all_but_one(t, &f);
	VN_REQUIRE(t, fill >= 0);
	set_status(&f, S_RUN);
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_DEASSIGNED);
	VN_CHECK(t, !vn_hostnotif_ioeventfd_on(f.hn));
	vn_hostnotif_get_stats(f.hn, &s);
	VN_CHECK_EQ_U(t, s.fallbacks, 1);
	q0.fd = vn_hostnotif_fd(f.hn, 0);
	VN_CHECK_EQ_INT(t, vn_bus_ioev_signals(f.bus, &q0, &n), -ENOENT);
	for (int i = 0; i < 5; i++) {
		VN_CHECK_EQ_INT(t, request_and_where(&f, 0), 0);
		VN_CHECK_EQ_INT(t, request_and_where(&f, 1), 0);
	}
	/* the fallback sticks across DRIVER_OK cycles until the option is set again */
	set_status(&f, S_PRE);
	set_status(&f, S_RUN);
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_DEASSIGNED);
	unfill(&f, fill);
	fx_fini(&f);
}

/*
 * The old-kernel policy: on a 6-entry bus userspace queues never take an
 * ioeventfd (no attempt, so no fallback), a vhost backend still gets its
 * slot (edge d registers it), and giving it back goes synchronous (edge f)
 * and frees the slot for the next backend.
 */
static void test_few_ioeventfds_policy(struct vn_t *t)
{
	struct fx f;
	struct fx_opts o = { .driver_ok = true, .max_ioeventfds = VN_IOEV_LIMIT_OLD_KERNEL };
	struct vn_hostnotif_stats s;
	struct vn_ioev q1 = { .space = VN_SPACE_MMIO, .addr = NOTIFY_BASE + 4, .len = 0 };
	uint64_t n;

	if (fx_init(t, &f, &o) < 0)
		return;
	CHECK_BOTH(t, &f, VN_HOSTNOTIF_DEASSIGNED);
	VN_CHECK(t, vn_hostnotif_ioeventfd_on(f.hn)); /* the option is intact */
	vn_hostnotif_get_stats(f.hn, &s);
	VN_CHECK_EQ_U(t, s.fallbacks, 0);
	VN_CHECK_EQ_INT(t, request_and_where(&f, 0), 0);
	VN_CHECK_OK(t, vhost(&f, 1, true));
	VN_CHECK_EQ_INT(t, st(&f, 1), VN_HOSTNOTIF_OFFLIMITS);
	q1.fd = vn_hostnotif_fd(f.hn, 1);
	VN_CHECK_OK(t, vn_bus_ioev_signals(f.bus, &q1, &n));
	VN_CHECK_OK(t, vhost(&f, 1, false));
	VN_CHECK_EQ_INT(t, st(&f, 1), VN_HOSTNOTIF_DEASSIGNED);
	VN_CHECK_EQ_INT(t, vn_bus_ioev_signals(f.bus, &q1, &n), -ENOENT);
	VN_CHECK_EQ_INT(t, request_and_where(&f, 1), 0);
	fx_fini(&f);
}

static void test_safety_net(struct vn_t *t)
{
	for (int on = 0; on < 2; on++) {
		struct fx f;
		struct fx_opts o = { .driver_ok = true, .safety_net_ns = on ? 20000000ull : 0 };
		struct vn_hostnotif_stats s;

		if (fx_init(t, &f, &o) < 0)
			return;
		/* let the start's self-kick pass, then write the ring and skip the doorbell */
		vn_hostnotif_sync(f.hn);
		VN_CHECK(t, VN_WAIT_FOR(vn_hostnotif_fd(f.hn, 0) >= 0, 1000));
		vn_hostnotif_sync(f.hn);
		VN_CHECK(t, fx_add(&f, 0));
		if (on) {
			VN_CHECK(t, VN_WAIT_FOR(fx_all_done(&f, 0), 5000));
			vn_hostnotif_get_stats(f.hn, &s);
			VN_CHECK_EQ_U(t, s.missed, 1);
		} else {
			/* nobody looks without a kick (a bounded look, not a timing claim) */
			VN_CHECK(t, !VN_WAIT_FOR(fx_all_done(&f, 0), 100));
			VN_CHECK_EQ_INT(t, fx_kick(&f, 0), VN_BUS_IOEVENTFD);
			VN_CHECK(t, VN_WAIT_FOR(fx_all_done(&f, 0), 5000));
			vn_hostnotif_get_stats(f.hn, &s);
			VN_CHECK_EQ_U(t, s.missed, 0);
		}
		fx_fini(&f);
	}
}

/* A doorbell that reaches the device while ASSIGNED is forwarded, not run on the vCPU. */
static void test_unmatched_doorbell_is_forwarded(struct vn_t *t)
{
	struct fx f;
	struct fx_opts o = { .driver_ok = true };
	struct vn_hostnotif_stats s;

	if (fx_init(t, &f, &o) < 0)
		return;
	VN_CHECK(t, fx_add(&f, 0));
	vn_vdev_lock(f.vdev);
	VN_CHECK_OK(t, vn_hostnotif_doorbell(f.hn, 0));
	VN_CHECK_EQ_INT(t, vn_hostnotif_doorbell(f.hn, NQ), -EINVAL);
	vn_vdev_unlock(f.vdev);
	VN_CHECK(t, VN_WAIT_FOR(fx_all_done(&f, 0), 5000));
	VN_CHECK_EQ_INT(t, f.ran_on_iothread[0], 1);
	vn_hostnotif_get_stats(f.hn, &s);
	VN_CHECK_EQ_U(t, s.forwarded, 1);
	fx_fini(&f);
}

/* ---- randomized lifecycle with a concurrent guest ---- */

struct rnd {
	struct fx *f;
	int stop;
	int paused;     /* the machine is paused: vCPUs do not run */
	uint64_t kicks;
	int kick_errors;
};

static void *guest_vcpu(void *arg)
{
	struct rnd *r = arg;
	unsigned int seed = 12345, q;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		pthread_rwlock_rdlock(&r->f->guest);
		if (!__atomic_load_n(&r->paused, __ATOMIC_ACQUIRE)) {
			q = (unsigned int)rand_r(&seed) % NQ;
			if (fx_add(r->f, q)) {
				if (fx_kick(r->f, q) < 0)
					r->kick_errors++;
				/* relaxed: the soak's progress line reads it meanwhile */
				__atomic_add_fetch(&r->kicks, 1, __ATOMIC_RELAXED);
			}
		}
		pthread_rwlock_unlock(&r->f->guest);
		if (rand_r(&seed) % 4 == 0)
			sched_yield();
	}
	return NULL;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * 10,000 lifecycle steps per seed against a guest kicking from another
 * thread. After every step: one state per queue that matches the
 * conditions, no two threads ever in a queue at once, and, whenever the
 * guest can be served, every kicked request processed.
 */
/* Set by --steps/--seed (the soak, see CONTRIBUTING.md "Fuzzing"). */
static long long soak_steps = -1;
static uint64_t soak_seed;
static bool soak_seed_set;

/* Runs @steps steps from @seed; returns the steps done (all, unless a check failed). */
static long long lifecycle_run(struct vn_t *t, uint64_t seed, long long steps, bool progress)
{
	long long ndone = 0;
	const uint64_t si = seed;
	{
		struct fx f;
		/* seeds with bit 3 set poll the ring: its suppression races every edge too */
		struct fx_opts o = { .driver_ok = true,
				     .poll_max_ns = (seed & 8) ? VN_LOOP_POLL_MAX_NS_DEFAULT : 0 };
		struct rnd r = { .f = &f };
		uint64_t s = seed ? seed : 1; /* xorshift never leaves 0 */
		bool running = true, bm = true, dok = true;
		unsigned int grabs[NQ] = { 0 };
		pthread_t th;
		static uint8_t state[4096];

		if (fx_init(t, &f, &o) < 0)
			return 0;
		if (!VN_CHECK(t, pthread_create(&th, NULL, guest_vcpu, &r) == 0)) {
			fx_fini(&f);
			return 0;
		}
		char hist[64] = { 0 };

		for (long long step = 0; step < steps; step++) {
			unsigned int q = (unsigned int)(xorshift(&s) % NQ);
			unsigned int op = (unsigned int)(xorshift(&s) % 7);

			memmove(hist, hist + 1, sizeof(hist) - 2);
			hist[sizeof(hist) - 2] = (char)('0' + op);
			switch (op) {
			case 0: /* status with DRIVER_OK dropped or restored */
				dok = !dok;
				set_status(&f, dok ? S_RUN : S_PRE);
				break;
			case 1: /* reset and re-initialise, with the guest held off */
				pthread_rwlock_wrlock(&f.guest);
				set_status(&f, 0);
				fx_zero_rings(&f);
				VN_CHECK_EQ_INT(t, fx_driver_init(&f, true), 0);
				pthread_rwlock_unlock(&f.guest);
				dok = true;
				grabs[0] = grabs[1] = 0;
				break;
			case 2:
				bm = !bm;
				set_bus_master(&f, bm);
				break;
			case 3:
				running = !running;
				pthread_rwlock_wrlock(&f.guest);
				__atomic_store_n(&r.paused, !running, __ATOMIC_RELEASE);
				set_running(&f, running);
				pthread_rwlock_unlock(&f.guest);
				break;
			case 4: /* vhost takes or gives back */
				if (grabs[q] && xorshift(&s) % 2) {
					VN_CHECK_OK(t, vhost(&f, q, false));
					grabs[q]--;
				} else if (grabs[q] < 2) {
					VN_CHECK_OK(t, vhost(&f, q, true));
					grabs[q]++;
				}
				break;
			case 5: { /* save, then load into a fresh device */
				int len;

				pthread_rwlock_wrlock(&f.guest);
				vn_hostnotif_free(f.hn);
				f.hn = NULL;
				vn_vdev_lock(f.vdev);
				len = vn_state_save(f.vdev, state, sizeof(state));
				vn_vdev_unlock(f.vdev);
				vn_vdev_free(f.vdev);
				f.vdev = NULL;
				VN_CHECK(t, len > 0);
				VN_CHECK_OK(t, fx_new_device(&f, true));
				VN_CHECK_OK(t, fx_hn_new(&f, &o));
				vn_vdev_lock(f.vdev);
				vn_hostnotif_set_running(f.hn, running);
				vn_hostnotif_set_bus_master(f.hn, bm);
				VN_CHECK_OK(t, vn_state_load(f.vdev, state, (size_t)len, NULL));
				vn_vdev_unlock(f.vdev);
				grabs[0] = grabs[1] = 0;
				pthread_rwlock_unlock(&f.guest);
				break;
			}
			default: /* let the guest run a little */
				sched_yield();
				break;
			}

			bool serving = running && dok;
			for (unsigned int i = 0; i < NQ; i++) {
				enum vn_hostnotif_state want = VN_HOSTNOTIF_DEASSIGNED;

				if (grabs[i])
					want = VN_HOSTNOTIF_OFFLIMITS;
				else if (serving && bm)
					want = VN_HOSTNOTIF_ASSIGNED;
				if (!VN_CHECK_EQ_INT(t, st(&f, i), want))
					goto stop;
				if (serving && !grabs[i]) {
					pthread_rwlock_rdlock(&f.guest);
					bool done = VN_WAIT_FOR(fx_all_done(&f, i), 10000);
					pthread_rwlock_unlock(&f.guest);
					if (!VN_CHECK(t, done)) {
						vn_t_diag("seed 0x%llx step %lld: queue %u stuck; "
							  "ops (0 status 1 reset 2 bus master "
							  "3 run 4 vhost 5 migrate 6 yield), "
							  "newest last: %s; running %d bm %d "
							  "dok %d grabs %u/%u", (unsigned long long)si,
							  step, i, hist,
							  running, bm, dok, grabs[0], grabs[1]);
						goto stop;
					}
				}
			}
			if (!VN_CHECK_EQ_INT(t, __atomic_load_n(&f.overlaps, __ATOMIC_RELAXED), 0))
				goto stop;
			ndone = step + 1;
			if (progress && ndone % 10000 == 0)
				vn_t_diag("seed 0x%llx: %lld/%lld steps, %llu guest kicks",
					  (unsigned long long)seed, ndone, steps,
					  (unsigned long long)__atomic_load_n(&r.kicks, __ATOMIC_RELAXED));
		}
stop:
		__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
		pthread_join(th, NULL);
		VN_CHECK_EQ_INT(t, r.kick_errors, 0);
		{
			struct vn_hostnotif_stats hs;

			/* Grabs came and went under a kicking guest: userspace never ran a held queue. */
			vn_hostnotif_get_stats(f.hn, &hs);
			VN_CHECK_EQ_U(t, hs.offlimits_runs, 0);
		}
		vn_t_diag("seed 0x%llx: %llu guest kicks", (unsigned long long)si,
			  (unsigned long long)r.kicks);
		fx_fini(&f);
	}
	return ndone;
}

static void test_randomized_lifecycle(struct vn_t *t)
{
	static const uint64_t seeds[] = { 0x9e3779b97f4a7c15ull, 0xdeadbeefcafef00dull };
	long long steps = getenv("VN_HOSTNOTIF_STEPS") ? atoll(getenv("VN_HOSTNOTIF_STEPS")) : 10000;
	int fds_before = vn_t_count_fds();

	/* thousands of resets under a vhost take each log a line at info */
	vn_log_set_level(VN_LOG_WARN);
	if (soak_steps >= 0) {
		uint64_t seed = soak_seed_set ? soak_seed : seeds[0];
		long long done = lifecycle_run(t, seed, soak_steps, true);

		/* the line a soak report quotes: steps done and the seed */
		printf("# soak: %lld/%lld steps done, seed 0x%llx%s\n", done, soak_steps,
		       (unsigned long long)seed, t->failed ? ", FAILED" : "");
	} else {
		for (size_t si = 0; si < VN_ARRAY_SIZE(seeds) && !t->failed; si++)
			lifecycle_run(t, seeds[si], steps, false);
	}
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds_before);
	vn_log_set_level(VN_LOG_INFO);
}


/* ------------------------------------------------------------------ */
/* Ring polling: the manual fixture runs the iothread's loop here.     */

#define SHORT_NS 10000000ull    /* a wait that ends without work: 10 ms */
#define LONG_NS 1000000000ull   /* a bound for a wait that must end with work */

static struct vn_loop *fx_loop(struct fx *f)
{
	return vn_iothread_loop(f->it);
}

static struct vn_hostnotif_queue_stats fx_qstats(struct fx *f, unsigned int q)
{
	struct vn_hostnotif_queue_stats qs = { 0 };

	VN_BUG_ON(vn_hostnotif_get_queue_stats(f->hn, q, &qs) != 0);
	return qs;
}

/* Would the driver kick for its next entry on queue @q? (virtio 1.2 §2.7.10) */
static bool fx_driver_would_kick(struct fx *f, unsigned int q, bool event_idx)
{
	uint16_t flags = 0, idx = f->avail_idx[q];

	if (event_idx)
		return vring_need_event(fx_avail_event(f, q), (uint16_t)(idx + 1), idx);
	VN_BUG_ON(vn_gmem_load_le16_acquire(&f->mem, QUSED(q), &flags) != 0);
	return !(flags & VRING_USED_F_NO_NOTIFY);
}

/*
 * Queue 0 attached and served once by a kick, and the loop's poll window
 * open: a wait that ended with work at once makes it grow from 0.
 */
static bool fx_warm_up(struct vn_t *t, struct fx *f)
{
	struct vn_loop_stats ls;

	(void)vn_loop_run_once(fx_loop(f), 0); /* the attach bottom half, the self-kick */
	if (!VN_CHECK_EQ_INT(t, st(f, 0), VN_HOSTNOTIF_ASSIGNED) || !VN_CHECK(t, fx_add(f, 0)) ||
	    !VN_CHECK_EQ_INT(t, fx_kick(f, 0), VN_BUS_IOEVENTFD))
		return false;
	(void)vn_loop_run_once(fx_loop(f), LONG_NS);
	vn_loop_get_stats(fx_loop(f), &ls);
	return VN_CHECK(t, fx_all_done(f, 0)) && VN_CHECK(t, ls.poll_ns > 0);
}

/*
 * A handler beside the queue's, polled first in each round of the window
 * (the loop polls the newest handler first): it sees the ring as the
 * driver does in the middle of the window, and may act there once.
 */
struct probe {
	struct fx *f;
	int fd;
	bool event_idx;
	unsigned int calls, kicks_on;
	bool kicks_on_after_once;
	void (*once)(struct probe *p);
};

static bool probe_poll(void *opaque)
{
	struct probe *p = opaque;

	if (p->calls++ == 0 && p->once)
		p->once(p);
	if (fx_driver_would_kick(p->f, 0, p->event_idx))
		p->kicks_on++;
	return false;
}

static void probe_read(void *opaque, uint32_t events)
{
}

static bool probe_add(struct vn_t *t, struct fx *f, struct probe *p)
{
	p->f = f;
	p->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return VN_CHECK(t, p->fd >= 0) &&
	       VN_CHECK_OK(t, vn_loop_add_fd(fx_loop(f), p->fd, VN_LOOP_READ, probe_read,
					     probe_poll, p));
}

static void probe_del(struct fx *f, struct probe *p)
{
	(void)vn_loop_del_fd(fx_loop(f), p->fd);
	close(p->fd);
}

/*
 * A request made available without a kick is served by the busy poll of
 * the ring; kicks stay off while the loop polls (the handler's own enable
 * at the end of its drain does not turn them on) and are on again once the
 * loop has blocked.
 */
static void test_ring_poll_serves_without_kick(struct vn_t *t)
{
	struct fx f;
	struct fx_opts o = { .driver_ok = true, .manual = true, .no_event_idx = true };
	uint64_t kicks;

	if (fx_init(t, &f, &o) < 0 || !fx_warm_up(t, &f))
		goto out;
	kicks = fx_qstats(&f, 0).kicks;
	VN_CHECK(t, fx_add(&f, 0));
	VN_CHECK(t, vn_loop_run_once(fx_loop(&f), LONG_NS) > 0);
	VN_CHECK(t, fx_all_done(&f, 0));
	VN_CHECK_EQ_U(t, fx_qstats(&f, 0).ring_polls, 1);
	VN_CHECK_EQ_U(t, fx_qstats(&f, 0).kicks, kicks);
	VN_CHECK(t, !fd_pending(vn_hostnotif_fd(f.hn, 0)));
	/* the loop has not blocked since: still polling, kicks off */
	VN_CHECK(t, !fx_driver_would_kick(&f, 0, false));
	/* a window without work, then the wait: kicks on before it */
	VN_CHECK_EQ_INT(t, vn_loop_run_once(fx_loop(&f), SHORT_NS), 0);
	VN_CHECK(t, fx_driver_would_kick(&f, 0, false));
out:
	fx_fini(&f);
}

/* With EVENT_IDX: mid-window the driver would not kick even for its next entry. */
static void test_ring_poll_suppresses_in_window(struct vn_t *t)
{
	struct fx f;
	struct fx_opts o = { .driver_ok = true, .manual = true };
	struct probe p = { .event_idx = true };

	if (fx_init(t, &f, &o) < 0 || !fx_warm_up(t, &f) || !probe_add(t, &f, &p))
		goto out;
	VN_CHECK(t, fx_driver_would_kick(&f, 0, true));
	VN_CHECK_EQ_INT(t, vn_loop_run_once(fx_loop(&f), SHORT_NS), 0);
	VN_CHECK(t, p.calls > 0);
	VN_CHECK_EQ_INT(t, p.kicks_on, 0);
	VN_CHECK(t, fx_driver_would_kick(&f, 0, true));
	probe_del(&f, &p);
out:
	fx_fini(&f);
}

/*
 * Mid-window, a vhost backend takes the queue and the guest adds a request
 * (as the take posts work to the loop, this is the window's last round:
 * the queue's poll after the probe's is the one that must not serve it).
 */
static void take_and_add(struct probe *p)
{
	VN_BUG_ON(vhost(p->f, 0, true) != 0);
	p->kicks_on_after_once = fx_driver_would_kick(p->f, 0, p->event_idx);
	VN_BUG_ON(!fx_add(p->f, 0));
}

/*
 * A queue taken OFFLIMITS during a poll window is not polled for the rest
 * of it (the iothread's bottom half that stops watching it has not run
 * yet), and the take turns kicks back on for the backend at once.
 */
static void test_ring_poll_never_offlimits(struct vn_t *t)
{
	struct fx f;
	struct fx_opts o = { .driver_ok = true, .manual = true };
	struct probe p = { .event_idx = true, .once = take_and_add };

	if (fx_init(t, &f, &o) < 0 || !fx_warm_up(t, &f) || !probe_add(t, &f, &p))
		goto out;
	(void)vn_loop_run_once(fx_loop(&f), SHORT_NS);
	VN_CHECK_EQ_INT(t, st(&f, 0), VN_HOSTNOTIF_OFFLIMITS);
	VN_CHECK(t, p.calls > 0);
	VN_CHECK(t, !fx_all_done(&f, 0));
	VN_CHECK_EQ_U(t, fx_qstats(&f, 0).ring_polls, 0);
	/* right after the take the driver kicks: the backend is told */
	VN_CHECK(t, p.kicks_on_after_once);
	/* the give-back's self-kick serves it here */
	VN_CHECK_OK(t, vhost(&f, 0, false));
	for (int i = 0; i < 4 && !fx_all_done(&f, 0); i++)
		(void)vn_loop_run_once(fx_loop(&f), SHORT_NS);
	VN_CHECK(t, fx_all_done(&f, 0));
	probe_del(&f, &p);
out:
	fx_fini(&f);
}

static const struct vn_test_case cases[] = {
	VN_TEST(test_edges_and_triggers), VN_TEST(test_no_iothread_or_option_off_stays_sync),
	VN_TEST(test_kick_just_before_stop_runs_once), VN_TEST(test_self_kick_between_owners),
	VN_TEST(test_drain_reenables_notify), VN_TEST(test_give_back_self_kick_empty_eventfd),
	VN_TEST(test_start_failure_rolls_back), VN_TEST(test_few_ioeventfds_policy),
	VN_TEST(test_safety_net),
	VN_TEST(test_unmatched_doorbell_is_forwarded), VN_TEST(test_ring_poll_serves_without_kick),
	VN_TEST(test_ring_poll_suppresses_in_window), VN_TEST(test_ring_poll_never_offlimits),
	VN_TEST(test_randomized_lifecycle),
};

/*
 * test-hostnotif [TEST] runs the suite; test-hostnotif --steps N [--seed S]
 * is the soak: only the randomized lifecycle, N steps from seed S (any
 * strtoull base, default the first fixed seed), progress every 10,000 steps.
 */
int main(int argc, char **argv)
{
	char *sel[] = { argv[0], (char *)"test_randomized_lifecycle", NULL };
	char *end;

	if (argc < 2 || strncmp(argv[1], "--", 2) != 0)
		return vn_t_main(argc, argv, cases, VN_ARRAY_SIZE(cases));
	for (int i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--steps") == 0) {
			soak_steps = strtoll(argv[++i], &end, 0);
			if (*end || soak_steps < 0)
				goto usage;
		} else if (i + 1 < argc && strcmp(argv[i], "--seed") == 0) {
			soak_seed = strtoull(argv[++i], &end, 0);
			if (*end)
				goto usage;
			soak_seed_set = true;
		} else {
			goto usage;
		}
	}
	if (soak_steps < 0)
		goto usage;
	return vn_t_main(2, sel, cases, VN_ARRAY_SIZE(cases));
usage:
	fprintf(stderr, "usage: %s [TEST] | --steps N [--seed S]\n", argv[0]);
	return 2;
}
