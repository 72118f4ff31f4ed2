/* SPDX-License-Identifier: MIT */
/* The queue-to-iothread balancer's decision (src/loop/balance.h). */
#include "loop/balance.h"

#include "harness.h"

/* 4 queues on 2 threads, placed round-robin: q0,q2 on 0, q1,q3 on 1. */
static const unsigned int rr[4] = { 0, 1, 0, 1 };

static int init4(struct vn_t *t, struct vn_balance *b, unsigned int stable)
{
	struct vn_balance_cfg c = { .nr_queues = 4, .nr_threads = 2, .min_load = 100,
				    .ratio_pct = 150, .stable = stable };

	return VN_CHECK_OK(t, vn_balance_init(b, &c, rr)) ? 0 : -1;
}

/* Both busy queues on thread 0, thread 1 idle: after `stable` intervals one moves. */
static void test_moves_after_stable_intervals(struct vn_t *t)
{
	const uint64_t load[4] = { 1000, 0, 900, 10 };
	struct vn_balance b;
	struct vn_balance_move m = { 0 };

	if (init4(t, &b, 3))
		return;
	VN_CHECK_EQ_INT(t, vn_balance_step(&b, load, &m), 0);
	VN_CHECK_EQ_INT(t, vn_balance_step(&b, load, &m), 0);
	VN_REQUIRE_EQ_INT(t, vn_balance_step(&b, load, &m), 1);
	/* q2 (900) evens 1900/10 best: 1000 vs 910 (q0 would give 900 vs 1010) */
	VN_CHECK_EQ_U(t, m.queue, 2);
	VN_CHECK_EQ_U(t, m.from, 0);
	VN_CHECK_EQ_U(t, m.to, 1);
	VN_CHECK_EQ_U(t, vn_balance_owner(&b, 2), 1);
	VN_CHECK_EQ_U(t, vn_balance_moves(&b), 1);
	/* balanced now: 1000 vs 910 stays put, however long */
	for (int i = 0; i < 10; i++)
		VN_CHECK_EQ_INT(t, vn_balance_step(&b, load, &m), 0);
	vn_balance_destroy(&b);
}

/* A burst that does not last is not a trend. */
static void test_burst_resets_streak(struct vn_t *t)
{
	const uint64_t hot[4] = { 1000, 0, 900, 10 }, calm[4] = { 500, 450, 500, 450 };
	struct vn_balance b;
	struct vn_balance_move m = { 0 };

	if (init4(t, &b, 3))
		return;
	for (int i = 0; i < 6; i++) {
		VN_CHECK_EQ_INT(t, vn_balance_step(&b, hot, &m), 0);
		VN_CHECK_EQ_INT(t, vn_balance_step(&b, hot, &m), 0);
		VN_CHECK_EQ_INT(t, vn_balance_step(&b, calm, &m), 0);
	}
	VN_CHECK_EQ_U(t, vn_balance_moves(&b), 0);
	vn_balance_destroy(&b);
}

/* Under the threshold ratio, or under the minimum load, nothing moves. */
static void test_thresholds(struct vn_t *t)
{
	const uint64_t mild[4] = { 700, 500, 700, 500 }; /* 1400 vs 1000: 140% < 150% */
	const uint64_t idle[4] = { 60, 0, 30, 0 };	 /* 90 < min_load 100 */
	struct vn_balance b;
	struct vn_balance_move m = { 0 };

	if (init4(t, &b, 1))
		return;
	VN_CHECK_EQ_INT(t, vn_balance_step(&b, mild, &m), 0);
	VN_CHECK_EQ_INT(t, vn_balance_step(&b, idle, &m), 0);
	VN_CHECK_EQ_U(t, vn_balance_moves(&b), 0);
	vn_balance_destroy(&b);
}

/*
 * One hot queue alone on a thread cannot be split: moving it would only
 * swap the roles, and then swap them back (ping-pong). It stays.
 */
static void test_single_hot_queue_stays(struct vn_t *t)
{
	const unsigned int own[2] = { 0, 1 };
	const uint64_t load[2] = { 5000, 0 };
	struct vn_balance_cfg c = { .nr_queues = 2, .nr_threads = 2, .stable = 1 };
	struct vn_balance b;
	struct vn_balance_move m = { 0 };

	VN_REQUIRE_OK(t, vn_balance_init(&b, &c, own));
	for (int i = 0; i < 5; i++)
		VN_CHECK_EQ_INT(t, vn_balance_step(&b, load, &m), 0);
	vn_balance_destroy(&b);
}

/* A pinned queue is never the one moved; an undone move puts it back. */
static void test_pin_and_undo(struct vn_t *t)
{
	/* 1600 vs 100: q2 would even it best (1000 vs 700), but it is pinned */
	const uint64_t load[4] = { 1000, 100, 600, 0 };
	struct vn_balance b;
	struct vn_balance_move m = { 0 };

	if (init4(t, &b, 1))
		return;
	vn_balance_pin(&b, 2);
	VN_REQUIRE_EQ_INT(t, vn_balance_step(&b, load, &m), 1);
	VN_CHECK_EQ_U(t, m.queue, 0);
	vn_balance_undo(&b, &m);
	VN_CHECK_EQ_U(t, vn_balance_owner(&b, 0), 0);
	VN_CHECK_EQ_U(t, vn_balance_moves(&b), 0);
	vn_balance_destroy(&b);
}

/* Of three threads, the busiest and the idlest pair; a changing pair restarts the count. */
static void test_three_threads_pair(struct vn_t *t)
{
	const unsigned int own[4] = { 0, 0, 1, 2 };
	const uint64_t l1[4] = { 600, 500, 400, 0 }, l2[4] = { 600, 500, 0, 400 };
	struct vn_balance_cfg c = { .nr_queues = 4, .nr_threads = 3, .stable = 2 };
	struct vn_balance b;
	struct vn_balance_move m = { 0 };

	VN_REQUIRE_OK(t, vn_balance_init(&b, &c, own));
	VN_CHECK_EQ_INT(t, vn_balance_step(&b, l1, &m), 0); /* pair 0 -> 2, first interval */
	VN_CHECK_EQ_INT(t, vn_balance_step(&b, l2, &m), 0); /* pair 0 -> 1: count restarts */
	VN_REQUIRE_EQ_INT(t, vn_balance_step(&b, l2, &m), 1);
	VN_CHECK_EQ_U(t, m.from, 0);
	VN_CHECK_EQ_U(t, m.to, 1);
	VN_CHECK_EQ_U(t, m.queue, 0); /* q0 and q1 even the pair equally: the first */
	vn_balance_destroy(&b);
}

static void test_bad_cfg(struct vn_t *t)
{
	const unsigned int own[2] = { 0, 2 };
	struct vn_balance_cfg c = { .nr_queues = 2, .nr_threads = 2 };
	struct vn_balance b;

	VN_CHECK_EQ_INT(t, vn_balance_init(&b, &c, own), -EINVAL);
	c.ratio_pct = 100;
	VN_CHECK_EQ_INT(t, vn_balance_init(&b, &c, rr), -EINVAL);
	c.ratio_pct = 0;
	c.nr_threads = 0;
	VN_CHECK_EQ_INT(t, vn_balance_init(&b, &c, rr), -EINVAL);
}

VN_TESTS(VN_TEST(test_moves_after_stable_intervals), VN_TEST(test_burst_resets_streak),
	 VN_TEST(test_thresholds), VN_TEST(test_single_hot_queue_stays), VN_TEST(test_pin_and_undo),
	 VN_TEST(test_three_threads_pair), VN_TEST(test_bad_cfg));
