/* SPDX-License-Identifier: MIT */
#include "bus/promoter.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <vnotify/iothread.h>
#include <vnotify/loop.h>

#include "base/log.h"
#include "base/notifier.h"
#include "base/trace.h"
#include "bus/addrspace.h"

/* One dynamic ioeventfd: a promoted (offset, size, value) write. */
struct promo_dyn {
	struct vn_promoter *p;
	struct vn_notifier n;
	struct vn_ioev ioev;
	uint64_t offset;
	uint64_t value;
	unsigned int size;
	bool attached;
	struct promo_dyn *next;
};

struct vn_promoter {
	struct vn_region *region;
	struct vn_promoter_cfg cfg; /* defaults filled in */

	pthread_mutex_t lock; /* never held while waiting for the iothread */
	/* the current run of identical watched writes */
	uint64_t last_offset;
	uint64_t last_value;
	unsigned int last_size;
	unsigned int run;
	bool counting;  /* false: off, past the limit, or a promotion failed */
	bool promoting; /* a promotion is under way outside the lock */
	bool warned;    /* the limit warning was logged since the last reset */
	unsigned int gen; /* bumped by reset, so a racing promotion undoes itself */
	unsigned int dynamic;
	struct promo_dyn *list;
	/*
	 * Dropped by vn_promoter_reset_nowait(): deassigned (no new signals)
	 * but still attached, so a write already in the eventfd is replayed by
	 * its handler; the next caller that may wait (observe, reset, free)
	 * detaches them with a final drain. Each eventfd read is one atomic
	 * test-and-clear, so a pending write is replayed exactly once.
	 */
	struct promo_dyn *retired;
	struct {
		uint64_t offset;
		uint64_t last;
	} exclude[VN_PROMOTER_MAX_EXCLUDE];
	unsigned int n_exclude;

	/* atomics */
	uint64_t replays;
	uint64_t promotions;
};

int vn_promoter_new(struct vn_region *region, const struct vn_promoter_cfg *cfg,
		    struct vn_promoter **out)
{
	struct vn_promoter *p;

	if (!cfg->accel || !cfg->iothread)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (pthread_mutex_init(&p->lock, NULL)) {
		free(p);
		return -ENOMEM;
	}
	p->region = region;
	p->cfg = *cfg;
	if (!p->cfg.hits)
		p->cfg.hits = VN_PROMOTER_HITS_DEFAULT;
	if (!p->cfg.max_dynamic)
		p->cfg.max_dynamic = VN_PROMOTER_MAX_DYNAMIC_DEFAULT;
	p->counting = !cfg->off;
	*out = p;
	return 0;
}

/* ---- on the iothread ---- */

static void replay(struct promo_dyn *d)
{
	struct vn_region *region = d->p->region;

	region->ops->write(region->opaque, d->offset, d->size, d->value);
	__atomic_fetch_add(&d->p->replays, 1, __ATOMIC_RELAXED);
	vn_trace(promoter_replay, "region=%s addr=0x%" PRIx64 " size=%u data=0x%" PRIx64,
		 region->name, d->ioev.addr, d->size, d->value);
}

static void replay_handler(void *opaque, uint32_t events)
{
	struct promo_dyn *d = opaque;

	/*
	 * Signals coalesce in the eventfd: replay once per wake-up, as QEMU's
	 * vfio quirk does. The promoted writes are idempotent by construction
	 * (the same value at the same offset again and again).
	 */
	if (vn_notifier_test_and_clear(&d->n) > 0)
		replay(d);
}

static int attach_fn(void *opaque)
{
	struct promo_dyn *d = opaque;
	struct vn_loop *loop = vn_iothread_loop(d->p->cfg.iothread);

	return vn_loop_add_fd(loop, vn_notifier_fd(&d->n), VN_LOOP_READ, replay_handler, NULL, d);
}

/* Detach, then drain: a write that landed in the eventfd is not lost. */
static void detach_drain_fn(void *opaque)
{
	struct promo_dyn *d = opaque;

	if (d->attached)
		vn_loop_del_fd(vn_iothread_loop(d->p->cfg.iothread), vn_notifier_fd(&d->n));
	if (vn_notifier_test_and_clear(&d->n) > 0)
		replay(d);
}

/* ---- on the caller, outside the lock ---- */

static void dyn_free(struct promo_dyn *d)
{
	vn_notifier_cleanup(&d->n);
	free(d);
}

/* No new signals: the first step of a drop. Never waits. */
static void dyn_deassign(struct promo_dyn *d)
{
	int r = vn_accel_deassign(d->p->cfg.accel, &d->ioev);

	if (r)
		vn_log(VN_LOG_ERR, "promoter", "%s: deassign of a dynamic ioeventfd failed: %s",
		       d->p->region->name, vn_strerror(r));
	vn_trace(promoter_drop, "region=%s addr=0x%" PRIx64 " size=%u data=0x%" PRIx64,
		 d->p->region->name, d->ioev.addr, d->size, d->value);
}

/* Then no reader, then a final drain. Waits for the iothread. */
static void dyn_detach_free(struct promo_dyn *d)
{
	vn_iothread_run_sync_void(d->p->cfg.iothread, detach_drain_fn, d);
	dyn_free(d);
}

static void dyn_drop(struct promo_dyn *d)
{
	dyn_deassign(d);
	dyn_detach_free(d);
}

static void free_list(struct promo_dyn *list)
{
	while (list) {
		struct promo_dyn *next = list->next;

		dyn_detach_free(list);
		list = next;
	}
}

static struct promo_dyn *take_retired(struct vn_promoter *p)
{
	struct promo_dyn *list;

	pthread_mutex_lock(&p->lock);
	list = p->retired;
	__atomic_store_n(&p->retired, NULL, __ATOMIC_RELAXED); /* observe peeks without the lock */
	pthread_mutex_unlock(&p->lock);
	return list;
}

static struct promo_dyn *dyn_create(struct vn_promoter *p, uint64_t offset, unsigned int size,
				    uint64_t value, int *err)
{
	struct vn_region *region = p->region;
	struct promo_dyn *d = calloc(1, sizeof(*d));
	int r;

	if (!d) {
		*err = -ENOMEM;
		return NULL;
	}
	d->p = p;
	d->n = (struct vn_notifier)VN_NOTIFIER_INIT;
	d->offset = offset;
	d->size = size;
	d->value = value;
	r = vn_notifier_init(&d->n);
	if (r)
		goto err_free;
	/* the handler listens before any write can land in the eventfd */
	r = vn_iothread_run_sync(p->cfg.iothread, attach_fn, d);
	if (r)
		goto err_free;
	d->attached = true;
	d->ioev = (struct vn_ioev){
		.space = region->space,
		.addr = region->base + offset,
		.len = size,
		.datamatch = true,
		.data = value,
		.fd = vn_notifier_fd(&d->n),
	};
	r = vn_accel_assign(p->cfg.accel, &d->ioev);
	if (r)
		goto err_detach;
	return d;

err_detach:
	vn_iothread_run_sync_void(p->cfg.iothread, detach_drain_fn, d);
err_free:
	dyn_free(d);
	*err = r;
	return NULL;
}

static bool is_excluded(const struct vn_promoter *p, uint64_t offset, unsigned int size)
{
	uint64_t last = offset + (size - 1); /* the bus checked it fits the region */

	for (unsigned int i = 0; i < p->n_exclude; i++)
		if (offset <= p->exclude[i].last && last >= p->exclude[i].offset)
			return true;
	return false;
}

void vn_promoter_observe(struct vn_promoter *p, uint64_t offset, unsigned int size,
			 uint64_t value)
{
	struct promo_dyn *d;
	unsigned int gen;
	int err = 0;

	if (p->cfg.off)
		return;
	/* the caller holds no lock: finish what a reset left behind */
	if (__atomic_load_n(&p->retired, __ATOMIC_RELAXED))
		free_list(take_retired(p));
	pthread_mutex_lock(&p->lock);
	if (!p->counting || p->promoting || offset < p->cfg.threshold ||
	    is_excluded(p, offset, size))
		goto out_unlock;
	if (p->run && offset == p->last_offset && size == p->last_size && value == p->last_value) {
		p->run++;
	} else {
		p->last_offset = offset;
		p->last_size = size;
		p->last_value = value;
		p->run = 1;
	}
	if (p->run < p->cfg.hits)
		goto out_unlock;
	p->run = 0;
	if (p->dynamic >= p->cfg.max_dynamic) {
		/* like QEMU's quirk: say it once, then stop counting */
		p->counting = false;
		if (!p->warned) {
			p->warned = true;
			vn_log(VN_LOG_WARN, "promoter",
			       "%s: dynamic ioeventfd limit %u reached, not promoting offset 0x%" PRIx64
			       " size %u value 0x%" PRIx64 "; counting stops",
			       p->region->name, p->cfg.max_dynamic, offset, size, value);
		}
		vn_trace(promoter_limit, "region=%s addr=0x%" PRIx64 " size=%u data=0x%" PRIx64
			 " max=%u", p->region->name, p->region->base + offset, size, value,
			 p->cfg.max_dynamic);
		goto out_unlock;
	}
	p->promoting = true;
	gen = p->gen;
	pthread_mutex_unlock(&p->lock);

	/* may wait for the iothread: no lock held */
	d = dyn_create(p, offset, size, value, &err);

	pthread_mutex_lock(&p->lock);
	p->promoting = false;
	if (d && gen != p->gen) {
		/* a reset ran meanwhile: this promotion belongs to the old driver */
		pthread_mutex_unlock(&p->lock);
		dyn_drop(d);
		return;
	}
	if (!d) {
		/* host resource or table limit: stay synchronous until reset */
		p->counting = false;
		pthread_mutex_unlock(&p->lock);
		vn_log(VN_LOG_WARN, "promoter", "%s: cannot promote offset 0x%" PRIx64 ": %s",
		       p->region->name, offset, vn_strerror(err));
		vn_trace(promoter_fail, "region=%s addr=0x%" PRIx64 " size=%u data=0x%" PRIx64 " r=%d",
			 p->region->name, p->region->base + offset, size, value, err);
		return;
	}
	d->next = p->list;
	p->list = d;
	p->dynamic++;
	__atomic_fetch_add(&p->promotions, 1, __ATOMIC_RELAXED);
	vn_trace(promoter_promote,
		 "region=%s addr=0x%" PRIx64 " size=%u data=0x%" PRIx64 " fd=%d dynamic=%u",
		 p->region->name, d->ioev.addr, size, value, d->ioev.fd, p->dynamic);
out_unlock:
	pthread_mutex_unlock(&p->lock);
}

static struct promo_dyn *take_all(struct vn_promoter *p, unsigned int *n)
{
	struct promo_dyn *list;

	pthread_mutex_lock(&p->lock);
	list = p->list;
	*n = p->dynamic;
	p->list = NULL;
	p->dynamic = 0;
	p->run = 0;
	p->counting = !p->cfg.off;
	p->warned = false;
	p->gen++;
	pthread_mutex_unlock(&p->lock);
	return list;
}

static void drop_list(struct promo_dyn *list)
{
	while (list) {
		struct promo_dyn *next = list->next;

		dyn_drop(list);
		list = next;
	}
}

void vn_promoter_reset(struct vn_promoter *p)
{
	unsigned int n;
	struct promo_dyn *list = take_all(p, &n);

	drop_list(list);
	free_list(take_retired(p));
}

void vn_promoter_reset_nowait(struct vn_promoter *p)
{
	unsigned int n;
	struct promo_dyn *list = take_all(p, &n), *last = NULL;

	for (struct promo_dyn *d = list; d; d = d->next) {
		dyn_deassign(d);
		last = d;
	}
	if (!list)
		return;
	pthread_mutex_lock(&p->lock);
	last->next = p->retired;
	__atomic_store_n(&p->retired, list, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->lock);
}

void vn_promoter_free(struct vn_promoter *p)
{
	unsigned int n;
	struct promo_dyn *list;

	if (!p)
		return;
	list = take_all(p, &n);
	drop_list(list);
	free_list(take_retired(p));
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int vn_promoter_exclude(struct vn_promoter *p, uint64_t offset, uint64_t size)
{
	int r = 0;

	pthread_mutex_lock(&p->lock);
	if (p->n_exclude == VN_PROMOTER_MAX_EXCLUDE) {
		r = -ENOSPC;
	} else {
		p->exclude[p->n_exclude].offset = offset;
		p->exclude[p->n_exclude].last = offset + (size - 1);
		p->n_exclude++;
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

void vn_promoter_get_stats(struct vn_promoter *p, struct vn_region_stats *out)
{
	out->replays = __atomic_load_n(&p->replays, __ATOMIC_RELAXED);
	out->promotions = __atomic_load_n(&p->promotions, __ATOMIC_RELAXED);
	pthread_mutex_lock(&p->lock);
	out->dynamic = p->dynamic;
	out->counting = p->counting;
	pthread_mutex_unlock(&p->lock);
}
