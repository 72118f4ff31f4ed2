/* SPDX-License-Identifier: MIT */
#include <vnotify/loop.h>

#include <pthread.h>
#include <unistd.h>

#include "base/notifier.h"
#include "harness.h"

struct fd_ctx {
	struct vn_loop *loop;
	struct vn_notifier n;
	int calls;
	uint32_t last_events;
	bool delete_self;
	int delete_other_fd;
};

static void fd_handler(void *opaque, uint32_t events)
{
	struct fd_ctx *c = opaque;

	c->calls++;
	c->last_events = events;
	if (vn_notifier_test_and_clear(&c->n) < 0)
		c->calls = -1000;
	if (c->delete_self)
		(void)vn_loop_del_fd(c->loop, vn_notifier_fd(&c->n));
	if (c->delete_other_fd >= 0)
		(void)vn_loop_del_fd(c->loop, c->delete_other_fd);
}

static void test_fd_dispatch(struct vn_t *t)
{
	struct vn_loop *loop;
	struct fd_ctx c = { .delete_other_fd = -1 };

	VN_REQUIRE_OK(t, vn_loop_new(NULL, &loop));
	c.loop = loop;
	VN_REQUIRE_OK(t, vn_notifier_init(&c.n));
	VN_CHECK_OK(t, vn_loop_add_fd(loop, vn_notifier_fd(&c.n), VN_LOOP_READ, fd_handler, NULL, &c));
	VN_CHECK_EQ_INT(t, vn_loop_add_fd(loop, vn_notifier_fd(&c.n), VN_LOOP_READ, fd_handler,
					  NULL, &c), -EEXIST);
	VN_CHECK_EQ_INT(t, vn_loop_run_once(loop, 0), 0);
	VN_CHECK_EQ_INT(t, c.calls, 0);
	VN_CHECK_OK(t, vn_notifier_set(&c.n));
	VN_CHECK_EQ_INT(t, vn_loop_run_once(loop, 1000000000ull), 1);
	VN_CHECK_EQ_INT(t, c.calls, 1);
	VN_CHECK(t, c.last_events & VN_LOOP_READ);
	/* level-triggered and consumed: nothing more */
	VN_CHECK_EQ_INT(t, vn_loop_run_once(loop, 0), 0);
	VN_CHECK_EQ_INT(t, vn_loop_mod_fd(loop, 12345, VN_LOOP_READ), -ENOENT);
	VN_CHECK_EQ_INT(t, vn_loop_del_fd(loop, vn_notifier_fd(&c.n)), 0);
	VN_CHECK_EQ_INT(t, vn_loop_del_fd(loop, vn_notifier_fd(&c.n)), -ENOENT);
	VN_CHECK_OK(t, vn_notifier_set(&c.n));
	VN_CHECK_EQ_INT(t, vn_loop_run_once(loop, 0), 0);
	VN_CHECK_EQ_INT(t, c.calls, 1);
	vn_notifier_cleanup(&c.n);
	vn_loop_free(loop);
}

static void test_write_events_and_mod(struct vn_t *t)
{
	struct vn_loop *loop;
	struct fd_ctx c = { .delete_other_fd = -1 };

	VN_REQUIRE_OK(t, vn_loop_new(NULL, &loop));
	c.loop = loop;
	VN_REQUIRE_OK(t, vn_notifier_init(&c.n));
	/* an eventfd is always writable */
	VN_CHECK_OK(t, vn_loop_add_fd(loop, vn_notifier_fd(&c.n), VN_LOOP_WRITE, fd_handler, NULL, &c));
	VN_CHECK_EQ_INT(t, vn_loop_run_once(loop, 0), 1);
	VN_CHECK(t, c.last_events & VN_LOOP_WRITE);
	VN_CHECK_OK(t, vn_loop_mod_fd(loop, vn_notifier_fd(&c.n), VN_LOOP_READ));
	VN_CHECK_EQ_INT(t, vn_loop_run_once(loop, 0), 0);
	VN_CHECK_EQ_INT(t, vn_loop_add_fd(loop, -1, VN_LOOP_READ, fd_handler, NULL, &c), -EINVAL);
	VN_CHECK_OK(t, vn_loop_del_fd(loop, vn_notifier_fd(&c.n)));
	vn_notifier_cleanup(&c.n);
	vn_loop_free(loop);
}

/*
 * Two handlers ready in the same epoll batch; each deletes itself and the
 * other. Whichever runs first must keep the second from running (its events
 * are already collected), and nothing is used after free (ASan).
 */
static void test_delete_from_callback(struct vn_t *t)
{
	struct vn_loop *loop;
	struct fd_ctx a = { .delete_self = true }, b = { .delete_self = true };

	VN_REQUIRE_OK(t, vn_loop_new(NULL, &loop));
	a.loop = b.loop = loop;
	VN_REQUIRE_OK(t, vn_notifier_init(&a.n));
	VN_REQUIRE_OK(t, vn_notifier_init(&b.n));
	a.delete_other_fd = vn_notifier_fd(&b.n);
	b.delete_other_fd = vn_notifier_fd(&a.n);
	VN_CHECK_OK(t, vn_loop_add_fd(loop, vn_notifier_fd(&a.n), VN_LOOP_READ, fd_handler, NULL, &a));
	VN_CHECK_OK(t, vn_loop_add_fd(loop, vn_notifier_fd(&b.n), VN_LOOP_READ, fd_handler, NULL, &b));
	VN_CHECK_OK(t, vn_notifier_set(&a.n));
	VN_CHECK_OK(t, vn_notifier_set(&b.n));
	VN_CHECK_EQ_INT(t, vn_loop_run_once(loop, 1000000000ull), 1);
	VN_CHECK_EQ_INT(t, a.calls + b.calls, 1);
	VN_CHECK_OK(t, vn_notifier_set(&a.n));
	VN_CHECK_OK(t, vn_notifier_set(&b.n));
	VN_CHECK_EQ_INT(t, vn_loop_run_once(loop, 0), 0);
	VN_CHECK_EQ_INT(t, a.calls + b.calls, 1);
	vn_notifier_cleanup(&a.n);
	vn_notifier_cleanup(&b.n);
	vn_loop_free(loop);
}

struct bh_ctx {
	struct vn_loop *loop;
	struct vn_bh *bh;
	int runs;
	pthread_t ran_on;
};

static void bh_count(void *opaque)
{
	struct bh_ctx *c = opaque;

	__atomic_add_fetch(&c->runs, 1, __ATOMIC_RELAXED);
	c->ran_on = pthread_self();
}

#define BH_THREADS 4
#define BHS_PER_THREAD 200

struct bh_thread {
	struct bh_ctx *ctx;
	int start_gate;
};

static void *bh_scheduler(void *arg)
{
	struct bh_ctx *ctxs = arg;

	for (int i = 0; i < BHS_PER_THREAD; i++)
		vn_bh_schedule(ctxs[i].bh);
	return NULL;
}

static int total_runs(struct bh_ctx *c, int n)
{
	int sum = 0;

	for (int i = 0; i < n; i++)
		sum += __atomic_load_n(&c[i].runs, __ATOMIC_RELAXED);
	return sum;
}

/* Four threads schedule their own bottom halves at once; each runs exactly once. */
static void test_bh_from_four_threads(struct vn_t *t)
{
	static struct bh_ctx ctx[BH_THREADS][BHS_PER_THREAD];
	struct vn_loop *loop;
	pthread_t th[BH_THREADS];

	memset(ctx, 0, sizeof(ctx));
	VN_REQUIRE_OK(t, vn_loop_new(NULL, &loop));
	for (int i = 0; i < BH_THREADS; i++)
		for (int j = 0; j < BHS_PER_THREAD; j++)
			VN_REQUIRE_OK(t, vn_bh_new(loop, bh_count, &ctx[i][j], &ctx[i][j].bh));
	for (int i = 0; i < BH_THREADS; i++)
		VN_REQUIRE(t, pthread_create(&th[i], NULL, bh_scheduler, ctx[i]) == 0);
	int done = 0;
	for (int spins = 0; spins < 100000 && done < BH_THREADS * BHS_PER_THREAD; spins++) {
		VN_REQUIRE(t, vn_loop_run_once(loop, 100000000ull) >= 0);
		done = total_runs(&ctx[0][0], BH_THREADS * BHS_PER_THREAD);
	}
	for (int i = 0; i < BH_THREADS; i++)
		pthread_join(th[i], NULL);
	while (vn_loop_run_once(loop, 0) > 0)
		;
	for (int i = 0; i < BH_THREADS; i++) {
		for (int j = 0; j < BHS_PER_THREAD; j++) {
			if (!VN_CHECK_EQ_INT(t, ctx[i][j].runs, 1))
				goto out;
			VN_CHECK(t, pthread_equal(ctx[i][j].ran_on, pthread_self()));
		}
	}
out:
	for (int i = 0; i < BH_THREADS; i++)
		for (int j = 0; j < BHS_PER_THREAD; j++)
			vn_bh_free(ctx[i][j].bh);
	vn_loop_free(loop);
}

static void bh_reschedule_self(void *opaque)
{
	struct bh_ctx *c = opaque;

	if (++c->runs < 3)
		vn_bh_schedule(c->bh);
}

static void test_bh_coalesce_and_self_reschedule(struct vn_t *t)
{
	struct vn_loop *loop;
	struct bh_ctx c = { 0 }, d = { 0 };

	VN_REQUIRE_OK(t, vn_loop_new(NULL, &loop));
	VN_REQUIRE_OK(t, vn_bh_new(loop, bh_count, &c, &c.bh));
	VN_REQUIRE_OK(t, vn_bh_new(loop, bh_reschedule_self, &d, &d.bh));
	vn_bh_schedule(c.bh);
	vn_bh_schedule(c.bh);
	vn_bh_schedule(d.bh);
	/*
	 * Two schedules before a run: one run. A bottom half that reschedules
	 * itself runs at most once per pass over the queue (an iteration makes
	 * two passes, before and after waiting), so it cannot livelock the loop.
	 */
	VN_CHECK(t, vn_loop_run_once(loop, 0) <= 3);
	VN_CHECK_EQ_INT(t, c.runs, 1);
	VN_CHECK(t, d.runs >= 1 && d.runs <= 2);
	for (int i = 0; i < 10 && vn_loop_run_once(loop, 0) > 0; i++)
		;
	VN_CHECK_EQ_INT(t, d.runs, 3);
	VN_CHECK_EQ_INT(t, c.runs, 1);
	/* a freed bottom half that was scheduled never runs */
	vn_bh_schedule(c.bh);
	vn_bh_free(c.bh);
	VN_CHECK_EQ_INT(t, vn_loop_run_once(loop, 0), 0);
	vn_bh_free(d.bh);
	vn_loop_free(loop);
}

struct tm_ctx {
	struct vn_loop *loop;
	uint64_t deadline;
	uint64_t fired_at;
	int order;
	int *next_order;
};

static void timer_cb(void *opaque)
{
	struct tm_ctx *c = opaque;

	c->fired_at = vn_clock_ns();
	c->order = (*c->next_order)++;
}

/* Armed out of order; they fire in deadline order, each at or after its deadline. */
static void test_timers_order_never_early(struct vn_t *t)
{
	static const uint64_t delays_ms[] = { 30, 5, 20, 1, 10, 10 };
	enum { N = sizeof(delays_ms) / sizeof(delays_ms[0]) };
	struct vn_loop *loop;
	struct vn_timer *tm[N];
	struct tm_ctx c[N];
	int next = 0;
	uint64_t base = vn_clock_ns();

	VN_REQUIRE_OK(t, vn_loop_new(NULL, &loop));
	for (int i = 0; i < N; i++) {
		c[i] = (struct tm_ctx){ .loop = loop, .order = -1, .next_order = &next,
					.deadline = base + delays_ms[i] * 1000000ull };
		VN_REQUIRE_OK(t, vn_timer_new(loop, timer_cb, &c[i], &tm[i]));
		vn_timer_arm(tm[i], c[i].deadline);
	}
	while (next < N) {
		uint64_t before = vn_clock_ns();

		VN_REQUIRE(t, vn_loop_run_once(loop, 1000000000ull) >= 0);
		VN_REQUIRE(t, vn_clock_ns() - before < 2000000000ull);
	}
	for (int i = 0; i < N; i++) {
		VN_CHECK(t, c[i].fired_at >= c[i].deadline);
		VN_CHECK(t, !vn_timer_is_armed(tm[i]));
		for (int j = 0; j < N; j++)
			if (c[i].deadline < c[j].deadline)
				VN_CHECK(t, c[i].order < c[j].order);
	}
	/* equal deadlines keep arming order */
	VN_CHECK(t, c[4].order < c[5].order);
	for (int i = 0; i < N; i++)
		vn_timer_free(tm[i]);
	vn_loop_free(loop);
}

static void test_timer_cancel_and_rearm(struct vn_t *t)
{
	struct vn_loop *loop;
	struct vn_timer *a, *b;
	int next = 0;
	struct tm_ctx ca = { .order = -1, .next_order = &next }, cb = { .order = -1, .next_order = &next };

	VN_REQUIRE_OK(t, vn_loop_new(NULL, &loop));
	VN_REQUIRE_OK(t, vn_timer_new(loop, timer_cb, &ca, &a));
	VN_REQUIRE_OK(t, vn_timer_new(loop, timer_cb, &cb, &b));
	vn_timer_arm_in(a, 1000000);
	vn_timer_arm_in(b, 60ull * 1000000000ull);
	vn_timer_cancel(a);
	VN_CHECK(t, !vn_timer_is_armed(a));
	/* moving b earlier must reprogram the timerfd */
	vn_timer_arm_in(b, 2000000);
	uint64_t start = vn_clock_ns();
	while (cb.order < 0 && vn_clock_ns() - start < 5000000000ull)
		VN_REQUIRE(t, vn_loop_run_once(loop, 1000000000ull) >= 0);
	VN_CHECK_EQ_INT(t, cb.order, 0);
	VN_CHECK_EQ_INT(t, ca.order, -1);
	vn_timer_free(a);
	vn_timer_free(b);
	vn_loop_free(loop);
}

struct waker {
	struct vn_loop *loop;
	int go;
};

static void *wake_later(void *arg)
{
	struct waker *w = arg;

	while (!__atomic_load_n(&w->go, __ATOMIC_ACQUIRE))
		usleep(1000);
	vn_loop_wakeup(w->loop);
	return NULL;
}

/* A loop blocked without a timeout returns when another thread wakes it. */
static void test_wakeup_from_other_thread(struct vn_t *t)
{
	struct vn_loop *loop;
	struct waker w;
	pthread_t th;

	VN_REQUIRE_OK(t, vn_loop_new(NULL, &loop));
	w = (struct waker){ .loop = loop };
	VN_REQUIRE(t, pthread_create(&th, NULL, wake_later, &w) == 0);
	__atomic_store_n(&w.go, 1, __ATOMIC_RELEASE);
	/* UINT64_MAX: without the wake-up this would never return */
	VN_CHECK(t, vn_loop_run_once(loop, UINT64_MAX) >= 0);
	pthread_join(th, NULL);
	struct vn_loop_stats st;
	vn_loop_get_stats(loop, &st);
	VN_CHECK_EQ_U(t, st.epoll_waits, 1);
	vn_loop_free(loop);
}

static void *stop_later(void *arg)
{
	struct waker *w = arg;

	usleep(2000);
	vn_loop_stop(w->loop);
	return NULL;
}

static void test_run_until_stop(struct vn_t *t)
{
	struct vn_loop *loop;
	struct waker w;
	pthread_t th;

	VN_REQUIRE_OK(t, vn_loop_new(NULL, &loop));
	w = (struct waker){ .loop = loop };
	VN_REQUIRE(t, pthread_create(&th, NULL, stop_later, &w) == 0);
	VN_CHECK_EQ_INT(t, vn_loop_run(loop), 0);
	pthread_join(th, NULL);
	VN_CHECK(t, !vn_loop_in_thread(loop));
	vn_loop_free(loop);
}

struct poll_ctx {
	struct vn_notifier n;
	int handled_by_poll;
	int handled_by_fd;
};

static bool kick_poll(void *opaque)
{
	struct poll_ctx *c = opaque;

	if (vn_notifier_test_and_clear(&c->n) == 1) {
		c->handled_by_poll++;
		return true;
	}
	return false;
}

static void kick_fd(void *opaque, uint32_t events)
{
	struct poll_ctx *c = opaque;

	if (vn_notifier_test_and_clear(&c->n) == 1)
		c->handled_by_fd++;
}

struct kicker {
	struct poll_ctx *pc;
	int kicks;
	int stop;
};

static void *kick_loop(void *arg)
{
	struct kicker *k = arg;

	while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE)) {
		if (vn_notifier_set(&k->pc->n) == 0)
			__atomic_add_fetch(&k->kicks, 1, __ATOMIC_RELAXED);
		usleep(50);
	}
	return NULL;
}

/*
 * With polling on and kicks arriving faster than the poll window, the loop
 * handles them in its poll callback without blocking in epoll_wait; with
 * polling off, every kick costs an epoll_wait.
 */
static void test_polling_avoids_epoll_wait(struct vn_t *t)
{
	for (int mode = 0; mode < 2; mode++) {
		struct vn_loop_cfg cfg = { .name = "poll", .poll_max_ns = mode ? 1000000000ull : 0 };
		struct vn_loop *loop;
		struct poll_ctx pc = { 0 };
		struct kicker k = { .pc = &pc };
		struct vn_loop_stats before, after;
		pthread_t th;

		VN_REQUIRE_OK(t, vn_loop_new(&cfg, &loop));
		VN_REQUIRE_OK(t, vn_notifier_init(&pc.n));
		VN_REQUIRE_OK(t, vn_loop_add_fd(loop, vn_notifier_fd(&pc.n), VN_LOOP_READ, kick_fd,
						kick_poll, &pc));
		VN_REQUIRE(t, pthread_create(&th, NULL, kick_loop, &k) == 0);
		/* warm up: the window grows from 0 once waits turn out short */
		for (int i = 0; i < 50; i++)
			VN_REQUIRE(t, vn_loop_run_once(loop, 1000000000ull) >= 0);
		vn_loop_get_stats(loop, &before);
		int handled0 = pc.handled_by_poll + pc.handled_by_fd;
		for (int i = 0; i < 200; i++)
			VN_REQUIRE(t, vn_loop_run_once(loop, 1000000000ull) >= 0);
		vn_loop_get_stats(loop, &after);
		__atomic_store_n(&k.stop, 1, __ATOMIC_RELEASE);
		pthread_join(th, NULL);
		int handled = pc.handled_by_poll + pc.handled_by_fd - handled0;
		uint64_t waits = after.epoll_waits - before.epoll_waits;

		vn_t_diag("poll_max_ns=%llu: handled %d kicks (poll %d, fd %d) with %llu epoll_waits",
			  (unsigned long long)cfg.poll_max_ns, handled, pc.handled_by_poll,
			  pc.handled_by_fd, (unsigned long long)waits);
		VN_CHECK(t, handled >= 100);
		if (mode) {
			/* a window of up to 1 s outlasts a 50 us kick interval */
			VN_CHECK(t, after.poll_ns > 0);
			VN_CHECK(t, pc.handled_by_poll > 0);
			VN_CHECK_EQ_U(t, waits, 0);
		} else {
			VN_CHECK_EQ_INT(t, pc.handled_by_poll, 0);
			VN_CHECK(t, waits >= (uint64_t)handled);
		}
		VN_CHECK_OK(t, vn_loop_del_fd(loop, vn_notifier_fd(&pc.n)));
		vn_notifier_cleanup(&pc.n);
		vn_loop_free(loop);
	}
}

/* An idle loop shrinks its poll window back to 0, so idle costs no CPU. */
static void test_poll_window_shrinks_when_idle(struct vn_t *t)
{
	struct vn_loop_cfg cfg = { .poll_max_ns = 100000 };
	struct vn_loop *loop;
	struct poll_ctx pc = { 0 };
	struct vn_loop_stats st;

	VN_REQUIRE_OK(t, vn_loop_new(&cfg, &loop));
	VN_REQUIRE_OK(t, vn_notifier_init(&pc.n));
	VN_REQUIRE_OK(t, vn_loop_add_fd(loop, vn_notifier_fd(&pc.n), VN_LOOP_READ, kick_fd,
					kick_poll, &pc));
	/* short waits that end with work grow the window */
	for (int i = 0; i < 6; i++) {
		VN_CHECK_OK(t, vn_notifier_set(&pc.n));
		VN_CHECK(t, vn_loop_run_once(loop, 1000000000ull) >= 1);
	}
	vn_loop_get_stats(loop, &st);
	VN_CHECK(t, st.poll_ns > 0);
	VN_CHECK(t, st.poll_ns <= cfg.poll_max_ns);
	/* long fruitless waits (1 ms > poll_max) shrink it to nothing */
	for (int i = 0; i < 20; i++)
		VN_CHECK(t, vn_loop_run_once(loop, 1000000ull) >= 0);
	vn_loop_get_stats(loop, &st);
	VN_CHECK_EQ_U(t, st.poll_ns, 0);
	VN_CHECK_OK(t, vn_loop_del_fd(loop, vn_notifier_fd(&pc.n)));
	vn_notifier_cleanup(&pc.n);
	vn_loop_free(loop);
}


struct pstate_ctx {
	struct vn_notifier n;
	int begins, ends, handled;
	bool started;
	bool work;             /* work the poll finds, with no signal on the fd */
	bool publish_on_end;   /* work arrives just as polling stops */
};

static bool pstate_poll(void *opaque)
{
	struct pstate_ctx *c = opaque;

	if (!c->work)
		return false;
	c->work = false;
	c->handled++;
	return true;
}

static void pstate_fd(void *opaque, uint32_t events)
{
	struct pstate_ctx *c = opaque;

	if (vn_notifier_test_and_clear(&c->n) < 0)
		c->handled = -1000;
}

static void pstate_cb(void *opaque, bool started)
{
	struct pstate_ctx *c = opaque;

	if (started)
		c->begins++;
	else
		c->ends++;
	c->started = started;
	if (!started && c->publish_on_end)
		c->work = true;
}

/*
 * A polled handler is told when a poll window starts and, before the loop
 * blocks, that it stopped; then it is polled once more, so work that came
 * after its last poll and before its source signals again (here: never) is
 * done without blocking. A loop that never polls never tells.
 */
static void test_poll_state_and_final_check(struct vn_t *t)
{
	for (int mode = 0; mode < 2; mode++) {
		struct vn_loop_cfg cfg = { .poll_max_ns = mode ? 1000000000ull : 0 };
		struct pstate_ctx c = { .publish_on_end = true };
		struct vn_loop_stats before, after;
		struct vn_loop *loop;
		int ran;

		VN_REQUIRE_OK(t, vn_loop_new(&cfg, &loop));
		VN_REQUIRE_OK(t, vn_notifier_init(&c.n));
		VN_REQUIRE_OK(t, vn_loop_add_fd(loop, vn_notifier_fd(&c.n), VN_LOOP_READ, pstate_fd,
						pstate_poll, &c));
		VN_CHECK_OK(t, vn_loop_set_poll_state(loop, vn_notifier_fd(&c.n), pstate_cb));
		/* a short wait with work opens the window (no window yet: nothing told) */
		VN_CHECK_OK(t, vn_notifier_set(&c.n));
		VN_CHECK(t, vn_loop_run_once(loop, 1000000000ull) >= 1);
		VN_CHECK_EQ_INT(t, c.begins + c.ends, 0);
		vn_loop_get_stats(loop, &before);
		/* bounded: without the final check this waits 200 ms and finds nothing */
		ran = vn_loop_run_once(loop, 200000000ull);
		vn_loop_get_stats(loop, &after);
		if (mode) {
			VN_CHECK_EQ_INT(t, c.begins, 1);
			VN_CHECK_EQ_INT(t, c.ends, 1);
			VN_CHECK(t, !c.started);
			VN_CHECK_EQ_INT(t, c.handled, 1);
			VN_CHECK(t, ran >= 1);
			VN_CHECK_EQ_U(t, after.epoll_waits, before.epoll_waits);
		} else {
			VN_CHECK_EQ_INT(t, c.begins + c.ends + c.handled, 0);
		}
		VN_CHECK_OK(t, vn_loop_del_fd(loop, vn_notifier_fd(&c.n)));
		vn_notifier_cleanup(&c.n);
		vn_loop_free(loop);
	}
}

static void noop_bh(void *opaque)
{
	(*(int *)opaque)++;
}

/* A loop freed with events pending and calls queued leaks no fd (ASan checks memory). */
static void test_free_with_pending_leaks_nothing(struct vn_t *t)
{
	int before = vn_t_count_fds();

	for (int round = 0; round < 3; round++) {
		struct vn_loop *loop;
		struct fd_ctx c = { .delete_other_fd = -1 };
		struct vn_timer *tm;
		int ran = 0;

		VN_REQUIRE_OK(t, vn_loop_new(NULL, &loop));
		c.loop = loop;
		VN_REQUIRE_OK(t, vn_notifier_init(&c.n));
		VN_REQUIRE_OK(t, vn_loop_add_fd(loop, vn_notifier_fd(&c.n), VN_LOOP_READ, fd_handler,
						NULL, &c));
		VN_CHECK_OK(t, vn_notifier_set(&c.n));
		VN_CHECK_OK(t, vn_loop_call(loop, noop_bh, &ran));
		VN_CHECK_OK(t, vn_loop_call(loop, noop_bh, &ran));
		VN_REQUIRE_OK(t, vn_timer_new(loop, noop_bh, &ran, &tm));
		vn_timer_arm_in(tm, 1000000000ull);
		vn_loop_wakeup(loop);
		vn_timer_free(tm);
		vn_loop_free(loop);
		VN_CHECK_EQ_INT(t, ran, 0);
		vn_notifier_cleanup(&c.n);
	}
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), before);
}

VN_TESTS(VN_TEST(test_fd_dispatch), VN_TEST(test_write_events_and_mod),
	 VN_TEST(test_delete_from_callback), VN_TEST(test_bh_from_four_threads),
	 VN_TEST(test_bh_coalesce_and_self_reschedule), VN_TEST(test_timers_order_never_early),
	 VN_TEST(test_timer_cancel_and_rearm), VN_TEST(test_wakeup_from_other_thread),
	 VN_TEST(test_run_until_stop), VN_TEST(test_polling_avoids_epoll_wait),
	 VN_TEST(test_poll_window_shrinks_when_idle), VN_TEST(test_poll_state_and_final_check),
	 VN_TEST(test_free_with_pending_leaks_nothing))
