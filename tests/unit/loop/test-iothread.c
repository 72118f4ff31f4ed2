/* SPDX-License-Identifier: MIT */
#include <vnotify/iothread.h>

#include <pthread.h>
#include <unistd.h>

#include "base/notifier.h"
#include "harness.h"
#include "loop/loop.h"

struct where {
	struct vn_iothread *it;
	pthread_t thread;
	char name[16];
	bool in_loop_thread;
};

static int record_thread(void *opaque)
{
	struct where *w = opaque;

	w->thread = pthread_self();
	pthread_getname_np(pthread_self(), w->name, sizeof(w->name));
	w->in_loop_thread = vn_loop_in_thread(vn_iothread_loop(w->it));
	return 42;
}

static void test_run_sync_on_named_thread(struct vn_t *t)
{
	struct vn_iothread_cfg cfg = { .name = "vn-io0" };
	struct vn_iothread *it;
	struct where w = { 0 };

	VN_REQUIRE_OK(t, vn_iothread_new(&cfg, &it));
	w.it = it;
	VN_CHECK(t, strcmp(vn_iothread_name(it), "vn-io0") == 0);
	VN_REQUIRE_OK(t, vn_iothread_start(it));
	VN_CHECK_EQ_INT(t, vn_iothread_start(it), -EALREADY);
	VN_CHECK_EQ_INT(t, vn_iothread_run_sync(it, record_thread, &w), 42);
	VN_CHECK(t, !pthread_equal(w.thread, pthread_self()));
	VN_CHECK(t, strcmp(w.name, "vn-io0") == 0);
	VN_CHECK(t, w.in_loop_thread);
	vn_iothread_stop(it);
	vn_iothread_stop(it);
	/* stopped: the call runs in the caller, which now owns the loop */
	VN_CHECK_EQ_INT(t, vn_iothread_run_sync(it, record_thread, &w), 42);
	VN_CHECK(t, pthread_equal(w.thread, pthread_self()));
	vn_iothread_free(it);
}

struct nested {
	struct vn_iothread *it;
	int depth;
};

static int call_self(void *opaque)
{
	struct nested *n = opaque;

	/* from the iothread itself, run_sync must call directly, not deadlock */
	if (n->depth++ < 3)
		return vn_iothread_run_sync(n->it, call_self, n) + 1;
	return 0;
}

static void test_run_sync_from_iothread(struct vn_t *t)
{
	struct vn_iothread *it;
	struct nested n = { 0 };

	VN_REQUIRE_OK(t, vn_iothread_new(NULL, &it));
	n.it = it;
	VN_REQUIRE_OK(t, vn_iothread_start(it));
	VN_CHECK_EQ_INT(t, vn_iothread_run_sync(it, call_self, &n), 3);
	vn_iothread_free(it);
}

struct kick_ctx {
	struct vn_notifier n;
	int handled;
};

static void on_kick(void *opaque, uint32_t events)
{
	struct kick_ctx *k = opaque;

	if (vn_notifier_test_and_clear(&k->n) == 1)
		__atomic_add_fetch(&k->handled, 1, __ATOMIC_RELAXED);
}

struct attach {
	struct vn_loop *loop;
	struct kick_ctx *k;
	bool detach;
};

static int attach_fn(void *opaque)
{
	struct attach *a = opaque;

	if (a->detach)
		return vn_loop_del_fd(a->loop, vn_notifier_fd(&a->k->n));
	return vn_loop_add_fd(a->loop, vn_notifier_fd(&a->k->n), VN_LOOP_READ, on_kick, NULL, a->k);
}

/*
 * The pattern of docs/design.md "Threads and locks": attach a host notifier
 * on the iothread, kick it, detach there.
 */
static void test_kick_handled_on_iothread(struct vn_t *t)
{
	struct vn_iothread *it;
	struct kick_ctx k = { 0 };
	struct attach a;

	VN_REQUIRE_OK(t, vn_iothread_new(NULL, &it));
	VN_REQUIRE_OK(t, vn_notifier_init(&k.n));
	a = (struct attach){ .loop = vn_iothread_loop(it), .k = &k };
	VN_REQUIRE_OK(t, vn_iothread_start(it));
	VN_CHECK_OK(t, vn_iothread_run_sync(it, attach_fn, &a));
	for (int i = 0; i < 10; i++) {
		int want = i + 1;

		VN_CHECK_OK(t, vn_notifier_set(&k.n));
		VN_CHECK(t, VN_WAIT_FOR(__atomic_load_n(&k.handled, __ATOMIC_RELAXED) == want, 5000));
	}
	a.detach = true;
	VN_CHECK_OK(t, vn_iothread_run_sync(it, attach_fn, &a));
	vn_iothread_free(it);
	vn_notifier_cleanup(&k.n);
}

struct caller {
	struct vn_iothread *it;
	int calls;
	int sum;
};

static int ret_one(void *opaque)
{
	return 1;
}

static void *call_many(void *arg)
{
	struct caller *c = arg;

	for (int i = 0; i < c->calls; i++)
		c->sum += vn_iothread_run_sync(c->it, ret_one, NULL);
	return NULL;
}

/*
 * Callers keep calling while the iothread stops: every call returns its
 * result (run on the iothread before the stop, or in the caller after), none
 * hangs, and no fd or memory is left behind.
 */
static void test_stop_while_calls_in_flight(struct vn_t *t)
{
	int fds_before = vn_t_count_fds();

	for (int round = 0; round < 5; round++) {
		struct vn_iothread *it;
		struct caller c[3];
		pthread_t th[3];

		VN_REQUIRE_OK(t, vn_iothread_new(NULL, &it));
		VN_REQUIRE_OK(t, vn_iothread_start(it));
		for (int i = 0; i < 3; i++) {
			c[i] = (struct caller){ .it = it, .calls = 300 };
			VN_REQUIRE(t, pthread_create(&th[i], NULL, call_many, &c[i]) == 0);
		}
		usleep(500);
		vn_iothread_stop(it);
		for (int i = 0; i < 3; i++) {
			pthread_join(th[i], NULL);
			VN_CHECK_EQ_INT(t, c[i].sum, 300);
		}
		vn_iothread_free(it);
	}
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds_before);
}

/* Counts its runs and where the last one ran. */
struct once {
	int runs;
	pthread_t thread;
};

static void count_run(void *opaque)
{
	struct once *o = opaque;

	__atomic_add_fetch(&o->runs, 1, __ATOMIC_RELAXED);
	o->thread = pthread_self();
}

/*
 * Holds the iothread inside a bottom half until released. The bottom half is
 * posted from an fd handler, so it runs in the loop iteration's last round
 * of bottom halves: a call queued while it holds is left for the iothread's
 * final drain once a stop has been requested.
 */
struct gate {
	struct vn_notifier n;
	struct vn_loop *loop;
	int posted;
	int entered;
	int release;
};

static void hold(void *opaque)
{
	struct gate *g = opaque;

	__atomic_store_n(&g->entered, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&g->release, __ATOMIC_ACQUIRE))
		poll(NULL, 0, 1);
}

static void on_gate(void *opaque, uint32_t events)
{
	struct gate *g = opaque;

	if (vn_notifier_test_and_clear(&g->n) == 1)
		g->posted = vn_loop_call(g->loop, hold, g);
}

static int gate_attach(void *opaque)
{
	struct gate *g = opaque;

	return vn_loop_add_fd(g->loop, vn_notifier_fd(&g->n), VN_LOOP_READ, on_gate, NULL, g);
}

struct teardown_caller {
	struct vn_iothread *it;
	struct once o;
	pthread_t self;
	int done;
};

static void *stopper(void *arg)
{
	vn_iothread_stop(arg);
	return NULL;
}

static void *call_once(void *arg)
{
	struct teardown_caller *c = arg;

	c->self = pthread_self();
	vn_iothread_run_sync_void(c->it, count_run, &c->o);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Teardown paths: a call made while the iothread is stopping (the stop is
 * requested, the thread is still busy) runs exactly once, on the iothread,
 * in its final drain; a call after the stop runs exactly once in the caller.
 * Neither can fail, so callers need not check a result.
 */
static void test_call_while_stopping_runs_once(struct vn_t *t)
{
	struct vn_iothread *it;
	struct vn_loop *loop;
	struct gate g = { 0 };
	struct teardown_caller c = { 0 };
	struct teardown_caller after = { 0 };
	pthread_t st, ct;

	VN_REQUIRE_OK(t, vn_iothread_new(NULL, &it));
	loop = vn_iothread_loop(it);
	c.it = it;
	g.loop = loop;
	VN_REQUIRE_OK(t, vn_notifier_init(&g.n));
	VN_REQUIRE_OK(t, vn_iothread_start(it));
	VN_REQUIRE_OK(t, vn_iothread_run_sync(it, gate_attach, &g));
	VN_REQUIRE_OK(t, vn_notifier_set(&g.n));
	VN_REQUIRE(t, VN_WAIT_FOR(__atomic_load_n(&g.entered, __ATOMIC_ACQUIRE), 5000));
	VN_REQUIRE(t, pthread_create(&st, NULL, stopper, it) == 0);
	VN_REQUIRE(t, VN_WAIT_FOR(__atomic_load_n(&loop->stop, __ATOMIC_ACQUIRE), 5000));
	VN_REQUIRE(t, pthread_create(&ct, NULL, call_once, &c) == 0);
	/* the call is queued behind hold() (which left the queue when it began) */
	VN_REQUIRE(t, VN_WAIT_FOR(__atomic_load_n(&loop->bh_pending, __ATOMIC_ACQUIRE), 5000));
	VN_CHECK_EQ_INT(t, __atomic_load_n(&c.o.runs, __ATOMIC_RELAXED), 0);
	__atomic_store_n(&g.release, 1, __ATOMIC_RELEASE);
	VN_REQUIRE(t, VN_WAIT_FOR(__atomic_load_n(&c.done, __ATOMIC_ACQUIRE), 5000));
	pthread_join(ct, NULL);
	pthread_join(st, NULL);
	VN_CHECK_EQ_INT(t, c.o.runs, 1);
	VN_CHECK(t, !pthread_equal(c.o.thread, c.self));
	VN_CHECK(t, !pthread_equal(c.o.thread, pthread_self()));

	/* after the stop: a caller's thread of its own, so a lost call fails, not hangs */
	after.it = it;
	VN_REQUIRE(t, pthread_create(&ct, NULL, call_once, &after) == 0);
	VN_REQUIRE(t, VN_WAIT_FOR(__atomic_load_n(&after.done, __ATOMIC_ACQUIRE), 5000));
	pthread_join(ct, NULL);
	VN_CHECK_EQ_INT(t, after.o.runs, 1);
	VN_CHECK(t, pthread_equal(after.o.thread, after.self));
	VN_CHECK_EQ_INT(t, g.posted, 0);
	VN_CHECK_OK(t, vn_loop_del_fd(loop, vn_notifier_fd(&g.n)));
	vn_iothread_free(it);
	vn_notifier_cleanup(&g.n);
}

/* Never started: the call runs once, in the caller, and cannot fail. */
static void test_call_never_started_runs_once(struct vn_t *t)
{
	struct teardown_caller c = { 0 };
	pthread_t ct;

	VN_REQUIRE_OK(t, vn_iothread_new(NULL, &c.it));
	VN_REQUIRE(t, pthread_create(&ct, NULL, call_once, &c) == 0);
	VN_REQUIRE(t, VN_WAIT_FOR(__atomic_load_n(&c.done, __ATOMIC_ACQUIRE), 5000));
	pthread_join(ct, NULL);
	VN_CHECK_EQ_INT(t, c.o.runs, 1);
	VN_CHECK(t, pthread_equal(c.o.thread, c.self));
	vn_iothread_free(c.it);
}

static int busy(void *opaque)
{
	volatile uint64_t x = 0;

	for (int i = 0; i < 2000000; i++)
		x += (uint64_t)i;
	return x == 0 ? -1 : 0;
}

static void test_cpu_time(struct vn_t *t)
{
	struct vn_iothread *it;

	VN_REQUIRE_OK(t, vn_iothread_new(NULL, &it));
	VN_CHECK_EQ_U(t, vn_iothread_cpu_ns(it), 0);
	VN_REQUIRE_OK(t, vn_iothread_start(it));
	uint64_t a = vn_iothread_cpu_ns(it);
	VN_CHECK_OK(t, vn_iothread_run_sync(it, busy, NULL));
	VN_CHECK(t, vn_iothread_cpu_ns(it) > a);
	vn_iothread_free(it);
}

VN_TESTS(VN_TEST(test_run_sync_on_named_thread), VN_TEST(test_run_sync_from_iothread),
	 VN_TEST(test_kick_handled_on_iothread), VN_TEST(test_stop_while_calls_in_flight),
	 VN_TEST(test_call_while_stopping_runs_once), VN_TEST(test_call_never_started_runs_once),
	 VN_TEST(test_cpu_time))
