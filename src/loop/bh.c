/* SPDX-License-Identifier: MIT */
/* Bottom halves: work any thread hands to the loop's thread. */
#include "loop/loop.h"

#include <errno.h>
#include <stdlib.h>

#include "base/compiler.h"

static struct vn_bh *bh_alloc(struct vn_loop *loop, vn_bh_fn *fn, void *opaque, bool oneshot)
{
	struct vn_bh *bh = calloc(1, sizeof(*bh));

	if (!bh)
		return NULL;
	*bh = (struct vn_bh){ .loop = loop, .fn = fn, .opaque = opaque, .oneshot = oneshot };
	return bh;
}

void vn_bh_init_embedded(struct vn_loop *loop, struct vn_bh *bh, vn_bh_fn *fn, void *opaque)
{
	*bh = (struct vn_bh){ .loop = loop, .fn = fn, .opaque = opaque, .embedded = true };
}

int vn_bh_new(struct vn_loop *loop, vn_bh_fn *fn, void *opaque, struct vn_bh **out)
{
	struct vn_bh *bh;

	if (!fn)
		return -EINVAL;
	bh = bh_alloc(loop, fn, opaque, false);
	if (!bh)
		return -ENOMEM;
	pthread_mutex_lock(&loop->bh_lock);
	loop->live_bhs++;
	pthread_mutex_unlock(&loop->bh_lock);
	*out = bh;
	return 0;
}

/* Appends @bh unless it is already queued. Returns true if it was queued now. */
static bool enqueue(struct vn_bh *bh)
{
	struct vn_loop *loop = bh->loop;
	bool queued = false;

	pthread_mutex_lock(&loop->bh_lock);
	if (!bh->scheduled) {
		bh->scheduled = true;
		bh->next = NULL;
		if (loop->bh_tail)
			loop->bh_tail->next = bh;
		else
			loop->bh_head = bh;
		loop->bh_tail = bh;
		loop->bh_count++;
		__atomic_store_n(&loop->bh_pending, 1, __ATOMIC_RELEASE);
		queued = true;
	}
	pthread_mutex_unlock(&loop->bh_lock);
	return queued;
}

void vn_bh_schedule(struct vn_bh *bh)
{
	if (enqueue(bh))
		vn_loop_wakeup(bh->loop);
}

int vn_loop_call(struct vn_loop *loop, vn_bh_fn *fn, void *opaque)
{
	struct vn_bh *bh = bh_alloc(loop, fn, opaque, true);

	if (!bh)
		return -ENOMEM;
	enqueue(bh);
	vn_loop_wakeup(loop);
	return 0;
}

static void unlink_locked(struct vn_loop *loop, struct vn_bh *bh)
{
	struct vn_bh **pp, *prev = NULL;

	for (pp = &loop->bh_head; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp == bh) {
			*pp = bh->next;
			if (loop->bh_tail == bh)
				loop->bh_tail = prev;
			loop->bh_count--;
			break;
		}
	}
	if (!loop->bh_head)
		__atomic_store_n(&loop->bh_pending, 0, __ATOMIC_RELEASE);
	bh->scheduled = false;
}

void vn_bh_free(struct vn_bh *bh)
{
	struct vn_loop *loop;

	if (!bh)
		return;
	loop = bh->loop;
	VN_BUG_ON(bh->embedded); /* its owner's storage, never counted in live_bhs */
	VN_BUG_ON(vn_loop_owned_elsewhere(loop));
	pthread_mutex_lock(&loop->bh_lock);
	if (bh->scheduled)
		unlink_locked(loop, bh);
	loop->live_bhs--;
	pthread_mutex_unlock(&loop->bh_lock);
	free(bh);
}

int vn_loop_run_bhs(struct vn_loop *loop)
{
	unsigned int budget;
	int ran = 0;

	if (!__atomic_load_n(&loop->bh_pending, __ATOMIC_ACQUIRE))
		return 0;
	/*
	 * Run at most as many as are queued now: a bottom half that schedules
	 * itself again goes to the tail and runs in the next iteration, so it
	 * cannot keep this call from returning. Each one is popped under the
	 * lock just before it runs, so a callback may vn_bh_free() any other
	 * bottom half of the batch safely.
	 */
	pthread_mutex_lock(&loop->bh_lock);
	budget = loop->bh_count;
	pthread_mutex_unlock(&loop->bh_lock);

	while (budget--) {
		struct vn_bh *bh;

		pthread_mutex_lock(&loop->bh_lock);
		bh = loop->bh_head;
		if (bh)
			unlink_locked(loop, bh);
		pthread_mutex_unlock(&loop->bh_lock);
		if (!bh)
			break;
		/*
		 * Read before the call: an embedded bottom half's storage may be
		 * gone as soon as its function has signalled its owner.
		 */
		bool oneshot = bh->oneshot;

		bh->fn(bh->opaque);
		ran++;
		if (oneshot)
			free(bh);
	}
	VN_LOOP_STAT_ADD(loop, bh_runs, (uint64_t)ran);
	return ran;
}
