/* SPDX-License-Identifier: MIT */
/*
 * Timers on the loop's timerfd (CLOCK_MONOTONIC, absolute). Never signals:
 * a signal-driven timer interrupts whatever the thread is doing and starves
 * event loops that sit in long system calls.
 */
#include "loop/loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/compiler.h"
#include "base/log.h"

int vn_timer_new(struct vn_loop *loop, vn_bh_fn *fn, void *opaque, struct vn_timer **out)
{
	struct vn_timer *t;

	if (!fn)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	*t = (struct vn_timer){ .loop = loop, .fn = fn, .opaque = opaque };
	loop->live_timers++;
	*out = t;
	return 0;
}

uint64_t vn_loop_next_deadline(const struct vn_loop *loop)
{
	return loop->timers ? loop->timers->deadline_ns : UINT64_MAX;
}

/* Keep the timerfd set to the earliest deadline (or disarmed). */
static void program_timerfd(struct vn_loop *loop)
{
	uint64_t want = loop->timers ? loop->timers->deadline_ns : 0;
	struct itimerspec its = { 0 };

	if (want == loop->tfd_deadline)
		return;
	/* A zero it_value disarms; deadline 0 is in the past anyway, use 1 ns. */
	if (loop->timers) {
		uint64_t d = want ? want : 1;

		its.it_value.tv_sec = (time_t)(d / 1000000000u);
		its.it_value.tv_nsec = (long)(d % 1000000000u);
	}
	if (timerfd_settime(loop->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		vn_log(VN_LOG_ERR, "loop", "%s: timerfd_settime failed (errno %d)", loop->name, errno);
		return;
	}
	loop->tfd_deadline = want;
}

static void unlink_timer(struct vn_timer *t)
{
	struct vn_timer **pp;

	for (pp = &t->loop->timers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	t->next = NULL;
	t->armed = false;
}

void vn_timer_arm(struct vn_timer *t, uint64_t deadline_ns)
{
	struct vn_loop *loop = t->loop;
	struct vn_timer **pp;

	VN_BUG_ON(vn_loop_owned_elsewhere(loop));
	if (t->armed)
		unlink_timer(t);
	/* Equal deadlines keep arming order: insert after the last equal one. */
	for (pp = &loop->timers; *pp && (*pp)->deadline_ns <= deadline_ns; pp = &(*pp)->next)
		;
	t->deadline_ns = deadline_ns;
	t->next = *pp;
	*pp = t;
	t->armed = true;
	program_timerfd(loop);
}

void vn_timer_arm_in(struct vn_timer *t, uint64_t delay_ns)
{
	uint64_t now = vn_now_ns(), d;

	if (vn_add_overflow(now, delay_ns, &d))
		d = UINT64_MAX - 1;
	vn_timer_arm(t, d);
}

void vn_timer_cancel(struct vn_timer *t)
{
	VN_BUG_ON(vn_loop_owned_elsewhere(t->loop));
	if (!t->armed)
		return;
	unlink_timer(t);
	program_timerfd(t->loop);
}

bool vn_timer_is_armed(const struct vn_timer *t)
{
	return t->armed;
}

void vn_timer_free(struct vn_timer *t)
{
	if (!t)
		return;
	vn_timer_cancel(t);
	t->loop->live_timers--;
	free(t);
}

void vn_loop_timerfd_read(struct vn_loop *loop)
{
	uint64_t expirations;

	/* EAGAIN: a re-arm already reset it; the timers list is the truth. */
	if (read(loop->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		vn_log(VN_LOG_ERR, "loop", "%s: timerfd read failed (errno %d)", loop->name, errno);
	/* Force a re-program: the kernel disarmed it when it fired. */
	loop->tfd_deadline = 0;
	program_timerfd(loop);
}

int vn_loop_run_timers(struct vn_loop *loop, uint64_t now)
{
	int ran = 0;

	/*
	 * Only timers due at @now run, one at a time from the head, so a
	 * callback that arms another timer (or frees one) is safe, and timers
	 * due together run in deadline order.
	 */
	while (loop->timers && loop->timers->deadline_ns <= now) {
		struct vn_timer *t = loop->timers;

		unlink_timer(t);
		t->fn(t->opaque);
		ran++;
	}
	if (ran) {
		program_timerfd(loop);
		VN_LOOP_STAT_ADD(loop, timer_fires, (uint64_t)ran);
	}
	return ran;
}
