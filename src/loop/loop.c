/* SPDX-License-Identifier: MIT */
#include "loop/loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/compiler.h"
#include "base/log.h"
#include "base/trace.h"

/*
 * epoll data.ptr values for the loop's own fds; handlers are heap objects,
 * so these small integers can never collide with one.
 */
#define WAKE_TAG ((void *)1)
#define TIMER_TAG ((void *)2)

#define MAX_EVENTS 64

/* The first window when polling is switched on by a short wait. */
#define POLL_START_NS 4096u
/*
 * After this many iterations in a row whose poll found work, look at the
 * non-pollable fds once without blocking, so a busy queue cannot starve them.
 */
#define POLL_STREAK_EPOLL_CHECK 16u

uint64_t vn_clock_ns(void)
{
	return vn_now_ns();
}

static uint32_t to_epoll(uint32_t ev)
{
	return (ev & VN_LOOP_READ ? EPOLLIN : 0) | (ev & VN_LOOP_WRITE ? EPOLLOUT : 0);
}

static uint32_t from_epoll(uint32_t ev)
{
	return (ev & EPOLLIN ? VN_LOOP_READ : 0) | (ev & EPOLLOUT ? VN_LOOP_WRITE : 0) |
	       (ev & EPOLLERR ? VN_LOOP_ERR : 0) | (ev & (EPOLLHUP | EPOLLRDHUP) ? VN_LOOP_HUP : 0);
}

static int epoll_add_tag(int epfd, int fd, void *tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int vn_loop_new(const struct vn_loop_cfg *cfg, struct vn_loop **out)
{
	struct vn_loop *loop = calloc(1, sizeof(*loop));
	int r;

	if (!loop)
		return -ENOMEM;
	loop->epfd = -1;
	loop->tfd = -1;
	loop->wake.fd = -1;
	snprintf(loop->name, sizeof(loop->name), "%s", cfg && cfg->name ? cfg->name : "loop");
	loop->poll_max_ns = cfg ? cfg->poll_max_ns : 0;
	pthread_mutex_init(&loop->bh_lock, NULL);

	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		r = -errno;
		goto err_free;
	}
	loop->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (loop->tfd < 0) {
		r = -errno;
		goto err_free;
	}
	r = vn_notifier_init(&loop->wake);
	if (r < 0)
		goto err_free;
	r = epoll_add_tag(loop->epfd, vn_notifier_fd(&loop->wake), WAKE_TAG);
	if (r < 0)
		goto err_free;
	r = epoll_add_tag(loop->epfd, loop->tfd, TIMER_TAG);
	if (r < 0)
		goto err_free;
	*out = loop;
	return 0;

err_free:
	vn_loop_free(loop);
	return r;
}

static void free_handler_list(struct vn_fd_handler *h)
{
	while (h) {
		struct vn_fd_handler *next = h->next;

		free(h);
		h = next;
	}
}

void vn_loop_free(struct vn_loop *loop)
{
	if (!loop)
		return;
	VN_BUG_ON(vn_loop_owned_elsewhere(loop));
	free_handler_list(loop->handlers);
	free_handler_list(loop->dead);

	/* Pending one-shot calls die with the loop; owned bottom halves must be gone. */
	struct vn_bh *bh = loop->bh_head;
	while (bh) {
		struct vn_bh *next = bh->next;

		bh->scheduled = false;
		if (bh->oneshot)
			free(bh);
		bh = next;
	}
	VN_BUG_ON(loop->live_bhs != 0);
	VN_BUG_ON(loop->live_timers != 0);

	vn_notifier_cleanup(&loop->wake);
	if (loop->tfd >= 0)
		close(loop->tfd);
	if (loop->epfd >= 0)
		close(loop->epfd);
	pthread_mutex_destroy(&loop->bh_lock);
	free(loop);
}

bool vn_loop_in_thread(const struct vn_loop *loop)
{
	return __atomic_load_n(&loop->thread_set, __ATOMIC_ACQUIRE) &&
	       pthread_equal(loop->thread, pthread_self());
}

bool vn_loop_owned_elsewhere(const struct vn_loop *loop)
{
	return __atomic_load_n(&loop->thread_set, __ATOMIC_ACQUIRE) &&
	       !pthread_equal(loop->thread, pthread_self());
}

static struct vn_fd_handler *find_handler(struct vn_loop *loop, int fd)
{
	for (struct vn_fd_handler *h = loop->handlers; h; h = h->next)
		if (h->fd == fd)
			return h;
	return NULL;
}

int vn_loop_add_fd(struct vn_loop *loop, int fd, uint32_t events, vn_fd_handler_fn *handler,
		   vn_poll_fn *poll, void *opaque)
{
	struct vn_fd_handler *h;
	struct epoll_event ev;

	VN_BUG_ON(vn_loop_owned_elsewhere(loop));
	if (fd < 0 || !handler || (events & ~(VN_LOOP_READ | VN_LOOP_WRITE)))
		return -EINVAL;
	if (find_handler(loop, fd))
		return -EEXIST;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	*h = (struct vn_fd_handler){
		.fd = fd, .events = events, .handler = handler, .poll = poll, .opaque = opaque,
	};
	ev = (struct epoll_event){ .events = to_epoll(events), .data.ptr = h };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;

		free(h);
		return r;
	}
	h->next = loop->handlers;
	loop->handlers = h;
	if (poll)
		loop->npoll++;
	vn_trace(loop_fd_add, "loop=%s fd=%d events=0x%x poll=%d", loop->name, fd, events,
		 poll != NULL);
	return 0;
}

int vn_loop_mod_fd(struct vn_loop *loop, int fd, uint32_t events)
{
	struct vn_fd_handler *h;
	struct epoll_event ev;

	VN_BUG_ON(vn_loop_owned_elsewhere(loop));
	if (events & ~(VN_LOOP_READ | VN_LOOP_WRITE))
		return -EINVAL;
	h = find_handler(loop, fd);
	if (!h)
		return -ENOENT;
	ev = (struct epoll_event){ .events = to_epoll(events), .data.ptr = h };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	h->events = events;
	return 0;
}

int vn_loop_set_poll_state(struct vn_loop *loop, int fd, vn_poll_state_fn *fn)
{
	struct vn_fd_handler *h;

	VN_BUG_ON(vn_loop_owned_elsewhere(loop));
	h = find_handler(loop, fd);
	if (!h)
		return -ENOENT;
	h->poll_state = fn;
	/* A new function is told from the next window; a removed one is not told again. */
	h->poll_started = false;
	return 0;
}

int vn_loop_del_fd(struct vn_loop *loop, int fd)
{
	struct vn_fd_handler **pp, *h;

	VN_BUG_ON(vn_loop_owned_elsewhere(loop));
	for (pp = &loop->handlers; *pp; pp = &(*pp)->next)
		if ((*pp)->fd == fd)
			break;
	h = *pp;
	if (!h)
		return -ENOENT;
	*pp = h->next;
	/*
	 * The fd may already be closed by a careless caller; epoll then has
	 * dropped it itself, so a failure here changes nothing.
	 */
	(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	if (h->poll)
		loop->npoll--;
	h->deleted = true;
	vn_trace(loop_fd_del, "loop=%s fd=%d", loop->name, fd);
	/*
	 * Events for @h may sit in the current epoll batch: keep the memory
	 * until the batch is done, and let the deleted flag skip them.
	 */
	if (loop->dispatching) {
		h->next = loop->dead;
		loop->dead = h;
	} else {
		free(h);
	}
	return 0;
}

void vn_loop_wakeup(struct vn_loop *loop)
{
	/*
	 * Only the first waker since the loop last looked writes the eventfd.
	 * The seq_cst exchange orders the caller's earlier work (a queued
	 * bottom half) before the flag, pairing with the exchange in
	 * consume_wakeup(), which comes before the loop looks for work.
	 */
	if (__atomic_exchange_n(&loop->wake_pending, 1, __ATOMIC_SEQ_CST) == 0) {
		if (vn_notifier_set(&loop->wake) < 0)
			vn_log(VN_LOG_ERR, "loop", "%s: cannot signal wake-up eventfd", loop->name);
	}
}

static void consume_wakeup(struct vn_loop *loop)
{
	__atomic_exchange_n(&loop->wake_pending, 0, __ATOMIC_SEQ_CST);
}

void vn_loop_stop(struct vn_loop *loop)
{
	__atomic_store_n(&loop->stop, 1, __ATOMIC_SEQ_CST);
	vn_loop_wakeup(loop);
}

void vn_loop_get_stats(const struct vn_loop *loop, struct vn_loop_stats *out)
{
	out->iterations = __atomic_load_n(&loop->stats.iterations, __ATOMIC_RELAXED);
	out->epoll_waits = __atomic_load_n(&loop->stats.epoll_waits, __ATOMIC_RELAXED);
	out->fd_dispatches = __atomic_load_n(&loop->stats.fd_dispatches, __ATOMIC_RELAXED);
	out->poll_hits = __atomic_load_n(&loop->stats.poll_hits, __ATOMIC_RELAXED);
	out->poll_misses = __atomic_load_n(&loop->stats.poll_misses, __ATOMIC_RELAXED);
	out->bh_runs = __atomic_load_n(&loop->stats.bh_runs, __ATOMIC_RELAXED);
	out->timer_fires = __atomic_load_n(&loop->stats.timer_fires, __ATOMIC_RELAXED);
	out->poll_ns = __atomic_load_n(&loop->stats.poll_ns, __ATOMIC_RELAXED);
}

static void set_poll_ns(struct vn_loop *loop, uint64_t ns)
{
	if (ns > loop->poll_max_ns)
		ns = loop->poll_max_ns;
	if (ns == loop->poll_ns)
		return;
	vn_trace(loop_poll_window, "loop=%s %llu->%llu ns", loop->name,
		 (unsigned long long)loop->poll_ns, (unsigned long long)ns);
	loop->poll_ns = ns;
	__atomic_store_n(&loop->stats.poll_ns, ns, __ATOMIC_RELAXED);
}

static void grow_poll(struct vn_loop *loop)
{
	set_poll_ns(loop, loop->poll_ns ? loop->poll_ns * 2 : POLL_START_NS);
}

static void shrink_poll(struct vn_loop *loop)
{
	/* Below the start value polling is not worth its CPU: switch it off. */
	uint64_t ns = loop->poll_ns / 2;

	set_poll_ns(loop, ns < POLL_START_NS ? 0 : ns);
}

static bool work_arrived(struct vn_loop *loop)
{
	return __atomic_load_n(&loop->wake_pending, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&loop->bh_pending, __ATOMIC_ACQUIRE);
}

static void free_dead(struct vn_loop *loop)
{
	if (loop->dispatching)
		return;
	free_handler_list(loop->dead);
	loop->dead = NULL;
}

/* Tell every polled handler not told yet that a poll window starts. */
static void begin_poll(struct vn_loop *loop)
{
	loop->dispatching++;
	for (struct vn_fd_handler *h = loop->handlers; h; h = h->next) {
		if (!h->poll || !h->poll_state || h->poll_started || h->deleted)
			continue;
		h->poll_started = true;
		loop->poll_started = true;
		h->poll_state(h->opaque, true);
	}
	loop->dispatching--;
}

/*
 * Before the loop blocks: tell each started handler that polling stopped,
 * then poll it once more, for work that arrived after its last poll but
 * before its source signals again (that signal may never come). Returns the
 * number of hits.
 */
static int end_poll(struct vn_loop *loop)
{
	int hits = 0;

	if (!loop->poll_started)
		return 0;
	loop->poll_started = false;
	loop->dispatching++;
	for (struct vn_fd_handler *h = loop->handlers; h; h = h->next) {
		if (!h->poll_started || h->deleted)
			continue;
		h->poll_started = false;
		h->poll_state(h->opaque, false);
		if (!h->deleted && h->poll(h->opaque))
			hits++;
	}
	loop->dispatching--;
	free_dead(loop);
	return hits;
}

/*
 * Busy-poll every poll callback until one finds work, other work arrives,
 * a timer is due or the window closes. Returns the number of hits.
 */
static int poll_window(struct vn_loop *loop, uint64_t window_ns)
{
	uint64_t start = vn_now_ns(), now = start;
	uint64_t next_timer = vn_loop_next_deadline(loop);
	int hits = 0;

	loop->dispatching++;
	do {
		for (struct vn_fd_handler *h = loop->handlers; h; h = h->next)
			if (h->poll && !h->deleted && h->poll(h->opaque))
				hits++;
		if (hits || work_arrived(loop))
			break;
		now = vn_now_ns();
	} while (now - start < window_ns && now < next_timer);
	loop->dispatching--;
	return hits;
}

static int do_epoll(struct vn_loop *loop, uint64_t timeout_ns)
{
	struct epoll_event evs[MAX_EVENTS];
	struct timespec ts, *tsp = NULL;
	int n, ran = 0;

	if (timeout_ns != UINT64_MAX) {
		ts.tv_sec = (time_t)(timeout_ns / 1000000000u);
		ts.tv_nsec = (long)(timeout_ns % 1000000000u);
		tsp = &ts;
	}
	n = epoll_pwait2(loop->epfd, evs, MAX_EVENTS, tsp, NULL);
	if (n < 0 && errno == ENOSYS) {
		/* kernels before 5.11: millisecond timeouts, rounded up */
		int ms = timeout_ns == UINT64_MAX ? -1 : (int)((timeout_ns + 999999u) / 1000000u);

		n = epoll_wait(loop->epfd, evs, MAX_EVENTS, ms);
	}
	if (n < 0)
		return errno == EINTR ? 0 : -errno;

	loop->dispatching++;
	for (int i = 0; i < n; i++) {
		void *p = evs[i].data.ptr;

		if (p == WAKE_TAG) {
			consume_wakeup(loop);
			if (vn_notifier_test_and_clear(&loop->wake) < 0)
				vn_log(VN_LOG_ERR, "loop", "%s: wake-up eventfd read failed", loop->name);
		} else if (p == TIMER_TAG) {
			vn_loop_timerfd_read(loop);
		} else {
			struct vn_fd_handler *h = p;

			if (h->deleted)
				continue;
			h->handler(h->opaque, from_epoll(evs[i].events));
			VN_LOOP_STAT_ADD(loop, fd_dispatches, 1);
			ran++;
		}
	}
	loop->dispatching--;
	free_dead(loop);
	return ran;
}

/* Runs bottom halves and due timers; returns how many ran. */
static int run_deferred(struct vn_loop *loop)
{
	int ran;

	consume_wakeup(loop);
	ran = vn_loop_run_bhs(loop);
	ran += vn_loop_run_timers(loop, vn_now_ns());
	return ran;
}

static int run_once_locked(struct vn_loop *loop, uint64_t timeout_ns)
{
	int ran, r;
	bool polling = loop->poll_max_ns && loop->npoll;

	ran = run_deferred(loop);
	if (ran || __atomic_load_n(&loop->stop, __ATOMIC_ACQUIRE))
		timeout_ns = 0;

	if (polling && timeout_ns && loop->poll_ns) {
		int hits;

		begin_poll(loop);
		hits = poll_window(loop, loop->poll_ns);

		if (hits) {
			VN_LOOP_STAT_ADD(loop, poll_hits, 1);
			grow_poll(loop);
			ran += hits;
			ran += run_deferred(loop);
			if (++loop->poll_hit_streak < POLL_STREAK_EPOLL_CHECK) {
				VN_LOOP_STAT_ADD(loop, iterations, 1);
				return ran;
			}
			loop->poll_hit_streak = 0;
			timeout_ns = 0;
		} else {
			VN_LOOP_STAT_ADD(loop, poll_misses, 1);
			if (work_arrived(loop))
				timeout_ns = 0;
		}
	}

	/* Do not sleep past the first timer, nor at all if work is queued. */
	uint64_t next = vn_loop_next_deadline(loop);
	if (timeout_ns && work_arrived(loop))
		timeout_ns = 0;
	if (timeout_ns && next != UINT64_MAX) {
		uint64_t now = vn_now_ns();
		uint64_t until = next > now ? next - now : 0;

		if (until < timeout_ns)
			timeout_ns = until;
	}

	/* Polled sources signal again before we sleep, or on the way out. */
	if (timeout_ns || __atomic_load_n(&loop->stop, __ATOMIC_ACQUIRE)) {
		int hits = end_poll(loop);

		if (hits) {
			ran += hits;
			timeout_ns = 0;
		}
	}

	uint64_t block_start = timeout_ns ? vn_now_ns() : 0;
	if (timeout_ns)
		VN_LOOP_STAT_ADD(loop, epoll_waits, 1);
	r = do_epoll(loop, timeout_ns);
	if (r < 0)
		return r;
	ran += r;
	if (polling && timeout_ns) {
		uint64_t blocked = vn_now_ns() - block_start;

		/*
		 * A wait that ended with work sooner than poll_max_ns would have
		 * been caught by a longer poll: grow. A long or fruitless wait
		 * means polling only burns CPU here: shrink.
		 */
		if (r > 0 && blocked <= loop->poll_max_ns)
			grow_poll(loop);
		else if (blocked > loop->poll_max_ns)
			shrink_poll(loop);
	}
	loop->poll_hit_streak = 0;
	ran += run_deferred(loop);
	if (ran || timeout_ns)
		VN_LOOP_STAT_ADD(loop, iterations, 1);
	return ran;
}

int vn_loop_run_once(struct vn_loop *loop, uint64_t timeout_ns)
{
	bool outer = !vn_loop_in_thread(loop);
	int r;

	VN_BUG_ON(vn_loop_owned_elsewhere(loop));
	if (outer) {
		loop->thread = pthread_self();
		__atomic_store_n(&loop->thread_set, 1, __ATOMIC_RELEASE);
	}
	r = run_once_locked(loop, timeout_ns);
	if (outer)
		__atomic_store_n(&loop->thread_set, 0, __ATOMIC_RELEASE);
	return r;
}

int vn_loop_run(struct vn_loop *loop)
{
	int r = 0;

	VN_BUG_ON(vn_loop_owned_elsewhere(loop));
	loop->thread = pthread_self();
	__atomic_store_n(&loop->thread_set, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&loop->stop, __ATOMIC_ACQUIRE)) {
		r = run_once_locked(loop, UINT64_MAX);
		if (r < 0)
			break;
		r = 0;
	}
	/* An iteration that failed may have left handlers told "started". */
	(void)end_poll(loop);
	__atomic_store_n(&loop->stop, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&loop->thread_set, 0, __ATOMIC_RELEASE);
	return r;
}
