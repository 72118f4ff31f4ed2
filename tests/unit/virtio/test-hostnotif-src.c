/* SPDX-License-Identifier: MIT */
/*
 * The queue-notifier engine's handed-in sources (hostnotif.h): an external
 * kick fd and the poll timer, attached and detached by their caller, with
 * the engine's one drain-on-stop rule, driven through the device's
 * vring-level interface (vn_vdev_activate(), vn_vdev_queue_start() and
 * _stop()) as the vhost-user server drives them.
 *
 * With @started false the iothread never runs: vn_iothread_run_sync() runs
 * inline and the test runs the loop by hand, so a kick can be left pending
 * for a stop to find.
 */
#include "virtio/hostnotif.h"

#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <vnotify/iothread.h>
#include <vnotify/loop.h>

#include "harness.h"
#include "mem/gmem.h"
#include "virtio/vdev.h"
#include "virtio/vq.h"

#define NQ 2
#define NUM 16
#define GPA 0x100000ull
#define MEMSZ 0x40000ull
#define QBASE(q) (GPA + 0x8000ull * (q))
#define QDESC(q) (QBASE(q))
#define QAVAIL(q) (QBASE(q) + 0x1000)
#define QUSED(q) (QBASE(q) + 0x2000)
#define BUF (GPA + 0x20000)

struct fx {
	struct vn_gmem mem;
	struct vn_vdev *vdev;
	struct vn_iothread *it;
	struct vn_hostnotif *hn;
	uint16_t avail_idx[NQ];
	uint64_t processed[NQ];	 /* atomic */
	int ran_on_iothread[NQ]; /* atomic: where the last run was */
};

static const struct vn_vdev_ops fx_ops = {0};

static void fx_handler(struct vn_vdev *vdev, struct vn_vq *vq)
{
	struct fx *f = vn_vdev_opaque(vdev);
	unsigned int q = vn_vq_index(vq);
	struct iovec iov[4];
	struct vn_vq_elem e = {.iov = iov, .iov_cap = 4};
	int r;

	__atomic_store_n(&f->ran_on_iothread[q], vn_loop_in_thread(vn_iothread_loop(f->it)),
			 __ATOMIC_RELAXED);
	do {
		vn_vq_disable_notify(vq);
		while ((r = vn_vq_pop(vq, &e)) > 0) {
			if (vn_vq_push(vq, e.head, 0) < 0)
				return;
			__atomic_fetch_add(&f->processed[q], 1, __ATOMIC_RELAXED);
		}
	} while (r == 0 && vn_vq_enable_notify(vq) > 0);
}

static uint64_t processed(struct fx *f, unsigned int q)
{
	return __atomic_load_n(&f->processed[q], __ATOMIC_RELAXED);
}

/* One chain on queue @q, published; no kick. */
static void fx_add(struct fx *f, unsigned int q)
{
	uint16_t slot = f->avail_idx[q] % NUM;
	struct vring_desc d = {.addr = BUF + 16ull * slot, .len = 16};

	VN_BUG_ON(vn_gmem_write(&f->mem, QDESC(q) + 16ull * slot, &d, sizeof(d)) != 0);
	VN_BUG_ON(vn_gmem_write(&f->mem, QAVAIL(q) + 4 + 2ull * slot, &slot, 2) != 0);
	f->avail_idx[q]++;
	VN_BUG_ON(vn_gmem_store_le16_release(&f->mem, QAVAIL(q) + 2, f->avail_idx[q]) != 0);
}

static void kick(int fd)
{
	uint64_t one = 1;

	VN_BUG_ON(write(fd, &one, sizeof(one)) != sizeof(one));
}

/* Run the never-started iothread's loop by hand, @n rounds. */
static void spin(struct fx *f, int n)
{
	while (n-- > 0)
		(void)vn_loop_run_once(vn_iothread_loop(f->it), 1000000);
}

static int fx_init(struct fx *f, bool started, uint64_t safety_ns)
{
	struct vn_iothread_cfg icfg = {.name = "hn-src"};
	struct vn_vdev_cfg dcfg = {
		.name = "src", .device_id = 42, .ops = &fx_ops, .opaque = f,
		.nr_queues = NQ, .queue_size_max = NUM, .nr_vectors = NQ,
	};
	struct vn_hostnotif_cfg hcfg = {
		.queue_iothreads = &f->it, .nr_queue_iothreads = 1, .running = true,
		.safety_net_ns = safety_ns, .poll_ns = 1000000,
	};
	int r;

	memset(f, 0, sizeof(*f));
	r = vn_gmem_init(&f->mem);
	if (r == 0)
		r = vn_gmem_add_memfd(&f->mem, GPA, MEMSZ, NULL);
	if (r == 0)
		r = vn_vdev_new(&dcfg, &f->vdev);
	if (r == 0)
		r = vn_vdev_bind_mem(f->vdev, &f->mem);
	if (r == 0)
		r = vn_vdev_bind_irq(f->vdev, VN_VDEV_IRQ_VECTORS);
	for (unsigned int q = 0; r == 0 && q < NQ; q++)
		r = vn_vdev_set_queue_handler(f->vdev, q, fx_handler);
	if (r == 0)
		r = vn_iothread_new(&icfg, &f->it);
	if (r == 0 && started)
		r = vn_iothread_start(f->it);
	hcfg.vdev = f->vdev;
	if (r == 0)
		r = vn_hostnotif_new(&hcfg, &f->hn);
	if (r == 0)
		r = vn_vdev_activate(f->vdev, 1ull << VIRTIO_F_VERSION_1);
	for (unsigned int q = 0; r == 0 && q < NQ; q++) {
		struct vn_vq_state st = {.num = NUM, .ready = true, .desc = QDESC(q),
					 .avail = QAVAIL(q), .used = QUSED(q)};

		r = vn_vdev_queue_start(f->vdev, q, &st, (uint16_t)q, NULL);
	}
	return r;
}

static void fx_fini(struct fx *f)
{
	vn_hostnotif_free(f->hn);
	vn_iothread_free(f->it);
	vn_vdev_unbind_mem(f->vdev);
	vn_vdev_free(f->vdev);
	vn_gmem_destroy(&f->mem);
}

static int new_eventfd(void)
{
	return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

/* A frontend's kick fd: the engine gets a dup, the test keeps the writer. */
static void test_kick_fd_runs_on_iothread(struct vn_t *t)
{
	struct fx f;
	struct vn_hostnotif_queue_stats qs;
	int efd = new_eventfd();

	VN_REQUIRE_OK(t, fx_init(&f, true, 0));
	VN_REQUIRE_OK(t, vn_hostnotif_set_kick_fd(f.hn, 0, dup(efd)));
	VN_CHECK_EQ_INT(t, vn_hostnotif_source(f.hn, 0), VN_HOSTNOTIF_SRC_KICK_FD);
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(f.hn, 0), VN_HOSTNOTIF_DEASSIGNED);
	VN_REQUIRE_OK(t, vn_hostnotif_attach(f.hn, 0));
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(f.hn, 0), VN_HOSTNOTIF_ASSIGNED);
	fx_add(&f, 0);
	/* nothing runs it without the kick (no safety net, no poll) */
	VN_CHECK(t, !VN_WAIT_FOR(processed(&f, 0) == 1, 50));
	kick(efd);
	VN_CHECK(t, VN_WAIT_FOR(processed(&f, 0) == 1, 5000));
	VN_CHECK_EQ_INT(t, __atomic_load_n(&f.ran_on_iothread[0], __ATOMIC_RELAXED), 1);
	VN_CHECK_OK(t, vn_hostnotif_get_queue_stats(f.hn, 0, &qs));
	VN_CHECK(t, qs.kicks >= 1 && qs.source == VN_HOSTNOTIF_SRC_KICK_FD);
	/* detached (a disabled ring): a kick stays in the fd */
	vn_hostnotif_detach(f.hn, 0);
	fx_add(&f, 0);
	kick(efd);
	VN_CHECK(t, !VN_WAIT_FOR(processed(&f, 0) == 2, 50));
	/* attached again: the self-kick finds it */
	VN_REQUIRE_OK(t, vn_hostnotif_attach(f.hn, 0));
	VN_CHECK(t, VN_WAIT_FOR(processed(&f, 0) == 2, 5000));
	fx_fini(&f);
	close(efd);
}

/* SET_VRING_KICK on a running ring: the old fd leaves the loop and is closed. */
static void test_kick_fd_replaced_while_running(struct vn_t *t)
{
	struct fx f;
	int a = new_eventfd(), b = new_eventfd(), a_dup;

	VN_REQUIRE_OK(t, fx_init(&f, true, 0));
	a_dup = dup(a);
	VN_REQUIRE_OK(t, vn_hostnotif_set_kick_fd(f.hn, 0, a_dup));
	VN_REQUIRE_OK(t, vn_hostnotif_attach(f.hn, 0));
	fx_add(&f, 0);
	kick(a);
	VN_CHECK(t, VN_WAIT_FOR(processed(&f, 0) == 1, 5000));
	VN_REQUIRE_OK(t, vn_hostnotif_set_kick_fd(f.hn, 0, dup(b)));
	VN_CHECK(t, fcntl(a_dup, F_GETFD) < 0); /* the engine closed its copy */
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(f.hn, 0), VN_HOSTNOTIF_ASSIGNED);
	fx_add(&f, 0);
	kick(b); /* the new fd is watched */
	VN_CHECK(t, VN_WAIT_FOR(processed(&f, 0) == 2, 5000));
	fx_add(&f, 0);
	kick(a); /* the old fd: nobody listens */
	VN_CHECK(t, !VN_WAIT_FOR(processed(&f, 0) == 3, 100));
	kick(b);
	VN_CHECK(t, VN_WAIT_FOR(processed(&f, 0) == 3, 5000));
	fx_fini(&f);
	close(a);
	close(b);
}

/* A ring given with no kick fd: the engine's poll finds the chain. */
static void test_poll_source_runs_without_kick(struct vn_t *t)
{
	struct fx f;
	struct vn_hostnotif_queue_stats qs;

	VN_REQUIRE_OK(t, fx_init(&f, true, 0));
	VN_REQUIRE_OK(t, vn_hostnotif_set_kick_fd(f.hn, 1, -1));
	VN_CHECK_EQ_INT(t, vn_hostnotif_source(f.hn, 1), VN_HOSTNOTIF_SRC_POLL);
	VN_REQUIRE_OK(t, vn_hostnotif_attach(f.hn, 1));
	fx_add(&f, 1);
	VN_CHECK(t, VN_WAIT_FOR(processed(&f, 1) == 1, 5000));
	VN_CHECK_OK(t, vn_hostnotif_get_queue_stats(f.hn, 1, &qs));
	VN_CHECK(t, qs.polls >= 1);
	/* detached, the poll stops */
	vn_hostnotif_detach(f.hn, 1);
	fx_add(&f, 1);
	VN_CHECK(t, !VN_WAIT_FOR(processed(&f, 1) == 2, 50));
	fx_fini(&f);
}

/* The safety net covers a kick fd that never fires. */
static void test_safety_net_on_kick_fd(struct vn_t *t)
{
	for (int on = 0; on < 2; on++) {
		struct fx f;
		struct vn_hostnotif_queue_stats qs;
		int efd = new_eventfd();

		VN_REQUIRE_OK(t, fx_init(&f, true, on ? 10000000ull : 0));
		VN_REQUIRE_OK(t, vn_hostnotif_set_kick_fd(f.hn, 0, dup(efd)));
		VN_REQUIRE_OK(t, vn_hostnotif_attach(f.hn, 0));
		fx_add(&f, 0);
		if (on) {
			VN_CHECK(t, VN_WAIT_FOR(processed(&f, 0) == 1, 5000));
			VN_CHECK_OK(t, vn_hostnotif_get_queue_stats(f.hn, 0, &qs));
			VN_CHECK_EQ_U(t, qs.missed, 1);
		} else {
			VN_CHECK(t, !VN_WAIT_FOR(processed(&f, 0) == 1, 100));
		}
		fx_fini(&f);
		close(efd);
	}
}

/*
 * A kick that raced the stop is in the fd: the stop runs the queue for it,
 * once, and consumes it, so neither the handler nor a later start runs it
 * again.
 */
static void test_drain_on_stop_once(struct vn_t *t)
{
	struct fx f;
	struct vn_hostnotif_queue_stats qs;
	struct vn_vq_state st;
	uint64_t v, runs;
	int efd = new_eventfd();

	VN_REQUIRE_OK(t, fx_init(&f, false, 0));
	VN_REQUIRE_OK(t, vn_hostnotif_set_kick_fd(f.hn, 0, dup(efd)));
	VN_REQUIRE_OK(t, vn_hostnotif_attach(f.hn, 0)); /* its self-kick ran inline */
	fx_add(&f, 0);
	kick(efd); /* and nobody ran the loop since */
	VN_CHECK_EQ_U(t, processed(&f, 0), 0);
	VN_REQUIRE_OK(t, vn_vdev_queue_stop(f.vdev, 0, &st));
	VN_CHECK_EQ_U(t, processed(&f, 0), 1);
	VN_CHECK_EQ_U(t, st.last_avail_idx, 1);
	VN_CHECK_EQ_INT(t, vn_hostnotif_state(f.hn, 0), VN_HOSTNOTIF_DEASSIGNED);
	VN_CHECK_OK(t, vn_hostnotif_get_queue_stats(f.hn, 0, &qs));
	VN_CHECK_EQ_U(t, qs.drain_runs, 1);
	runs = qs.runs;
	VN_CHECK(t, read(efd, &v, sizeof(v)) < 0); /* consumed */
	spin(&f, 5);
	VN_CHECK_OK(t, vn_hostnotif_get_queue_stats(f.hn, 0, &qs));
	VN_CHECK_EQ_U(t, qs.runs, runs);
	VN_CHECK_EQ_U(t, qs.drain_runs, 1);
	/* a stop of a stopped queue finds nothing */
	VN_REQUIRE_OK(t, vn_vdev_queue_stop(f.vdev, 0, &st));
	VN_CHECK_OK(t, vn_hostnotif_get_queue_stats(f.hn, 0, &qs));
	VN_CHECK_EQ_U(t, qs.drain_runs, 1);
	fx_fini(&f);
	close(efd);
}

VN_TESTS(VN_TEST(test_kick_fd_runs_on_iothread), VN_TEST(test_kick_fd_replaced_while_running),
	 VN_TEST(test_poll_source_runs_without_kick), VN_TEST(test_safety_net_on_kick_fd),
	 VN_TEST(test_drain_on_stop_once));
