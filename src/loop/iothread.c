/* SPDX-License-Identifier: MIT */
#include <vnotify/iothread.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/compiler.h"
#include "base/log.h"
#include "base/trace.h"
#include "loop/loop.h"

struct vn_iothread {
	char name[16];
	struct vn_loop *loop;
	pthread_t thread;
	pthread_mutex_t lock;
	bool started;   /* a thread exists and has not been joined */
	bool accepting; /* the thread will still run queued calls */
	int loop_err;
};

/*
 * One synchronous call. It lives in the caller's stack frame, bottom half
 * included, so queueing it allocates nothing and cannot fail: teardown
 * paths rely on that.
 */
struct sync_call {
	struct vn_bh bh;
	vn_iothread_fn *fn;   /* exactly one of fn and vfn is set */
	vn_bh_fn *vfn;
	void *opaque;
	int ret;
	bool done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

int vn_iothread_new(const struct vn_iothread_cfg *cfg, struct vn_iothread **out)
{
	struct vn_iothread *it = calloc(1, sizeof(*it));
	struct vn_loop_cfg lcfg;
	int r;

	if (!it)
		return -ENOMEM;
	snprintf(it->name, sizeof(it->name), "%s", cfg && cfg->name ? cfg->name : "iothread");
	lcfg = (struct vn_loop_cfg){ .name = it->name, .poll_max_ns = cfg ? cfg->poll_max_ns : 0 };
	r = vn_loop_new(&lcfg, &it->loop);
	if (r < 0) {
		free(it);
		return r;
	}
	pthread_mutex_init(&it->lock, NULL);
	*out = it;
	return 0;
}

static void *iothread_main(void *arg)
{
	struct vn_iothread *it = arg;

	pthread_setname_np(pthread_self(), it->name);
	vn_trace(iothread_start, "%s", it->name);
	it->loop_err = vn_loop_run(it->loop);
	if (it->loop_err < 0)
		vn_log(VN_LOG_ERR, "iothread", "%s: loop failed: %s", it->name,
		       vn_strerror(it->loop_err));

	pthread_mutex_lock(&it->lock);
	it->accepting = false;
	pthread_mutex_unlock(&it->lock);
	/*
	 * Calls queued before accepting went false still expect to run here,
	 * and their callers are waiting: drain them.
	 */
	while (vn_loop_run_bhs(it->loop) > 0)
		;
	vn_trace(iothread_stop, "%s", it->name);
	return NULL;
}

int vn_iothread_start(struct vn_iothread *it)
{
	int r;

	pthread_mutex_lock(&it->lock);
	if (it->started) {
		pthread_mutex_unlock(&it->lock);
		return -EALREADY;
	}
	it->accepting = true;
	r = -pthread_create(&it->thread, NULL, iothread_main, it);
	if (r < 0)
		it->accepting = false;
	else
		it->started = true;
	pthread_mutex_unlock(&it->lock);
	return r;
}

static int call_fn(struct sync_call *c)
{
	if (c->fn)
		return c->fn(c->opaque);
	c->vfn(c->opaque);
	return 0;
}

static void sync_trampoline(void *opaque)
{
	struct sync_call *c = opaque;
	int ret = call_fn(c);

	pthread_mutex_lock(&c->lock);
	c->ret = ret;
	c->done = true;
	/* c may be gone once the lock is dropped: its caller is waiting for this */
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static int run_sync(struct vn_iothread *it, struct sync_call *c)
{
	if (vn_loop_in_thread(it->loop))
		return call_fn(c);

	pthread_mutex_lock(&it->lock);
	if (!it->accepting) {
		pthread_mutex_unlock(&it->lock);
		/* Nobody runs the loop: the caller may act on it directly. */
		return call_fn(c);
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	vn_bh_init_embedded(it->loop, &c->bh, sync_trampoline, c);
	/*
	 * Scheduled under it->lock, so the thread's final drain (which starts
	 * after accepting went false under the same lock) cannot miss it. The
	 * bottom half queues behind every one posted before it: callers use
	 * that order (a no-op call as a barrier).
	 */
	vn_bh_schedule(&c->bh);
	pthread_mutex_unlock(&it->lock);

	pthread_mutex_lock(&c->lock);
	while (!c->done)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	return c->ret;
}

int vn_iothread_run_sync(struct vn_iothread *it, vn_iothread_fn *fn, void *opaque)
{
	struct sync_call c = { .fn = fn, .opaque = opaque };

	return run_sync(it, &c);
}

void vn_iothread_run_sync_void(struct vn_iothread *it, vn_bh_fn *fn, void *opaque)
{
	struct sync_call c = { .vfn = fn, .opaque = opaque };

	run_sync(it, &c); /* its result is 0: there is no function result */
}

void vn_iothread_stop(struct vn_iothread *it)
{
	pthread_mutex_lock(&it->lock);
	bool started = it->started;
	it->started = false;
	pthread_mutex_unlock(&it->lock);
	if (!started)
		return;
	VN_BUG_ON(pthread_equal(it->thread, pthread_self()));
	vn_loop_stop(it->loop);
	pthread_join(it->thread, NULL);
}

void vn_iothread_free(struct vn_iothread *it)
{
	if (!it)
		return;
	vn_iothread_stop(it);
	vn_loop_free(it->loop);
	pthread_mutex_destroy(&it->lock);
	free(it);
}

struct vn_loop *vn_iothread_loop(struct vn_iothread *it)
{
	return it->loop;
}

const char *vn_iothread_name(const struct vn_iothread *it)
{
	return it->name;
}

uint64_t vn_iothread_cpu_ns(const struct vn_iothread *it)
{
	struct vn_iothread *mut = (struct vn_iothread *)it;
	clockid_t cid;
	struct timespec ts;
	uint64_t ns = 0;

	pthread_mutex_lock(&mut->lock);
	if (mut->started && pthread_getcpuclockid(mut->thread, &cid) == 0 &&
	    clock_gettime(cid, &ts) == 0)
		ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	pthread_mutex_unlock(&mut->lock);
	return ns;
}
