/* SPDX-License-Identifier: MIT */
/*
 * vnotify-vm's run-time queue balancer. Every interval it reads each
 * queue's completed requests (the load of that interval), asks the
 * library's decision (src/loop/balance.h) whether a queue should leave
 * the busiest iothread for the idlest, and moves it: the transport's
 * notifier first (stop, drain, restart on the new loop with a self-kick,
 * so no kick is lost), then the device's completions, so one thread again
 * does both. Queues of a disk given iothread=ID are pinned.
 */
#include "vm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vnotify/blk.h>
#include <vnotify/iothread.h>
#include <vnotify/pci.h>

#include "loop/balance.h"

/* Fewer requests than this per interval on the busiest iothread: not worth a move. */
#define BALANCE_MIN_LOAD 64u

struct vm_balance_queue {
	struct vn_blk *blk;
	struct vn_virtio_pci *vp;
	unsigned int disk, q;
	uint64_t last;
};

struct vm_balancer {
	struct vn_balance b;
	struct vn_iothread *const *io;
	unsigned int nq;
	struct vm_balance_queue *queues;
	uint64_t *load;
	unsigned int *owner;
	uint64_t failed;
	char last[96];
};

int vm_balance_new(const struct vm_balance_cfg *cfg, struct vm_balancer **out)
{
	struct vm_balancer *vb = calloc(1, sizeof(*vb));
	struct vn_balance_cfg bc = { .nr_queues = cfg->nq, .nr_threads = cfg->nio,
				     .min_load = BALANCE_MIN_LOAD };
	int r = -ENOMEM;

	if (!vb)
		return -ENOMEM;
	vb->io = cfg->io;
	vb->nq = cfg->nq;
	vb->queues = calloc(cfg->nq, sizeof(*vb->queues));
	vb->load = calloc(cfg->nq, sizeof(*vb->load));
	vb->owner = calloc(cfg->nq, sizeof(*vb->owner));
	if (!vb->queues || !vb->load || !vb->owner)
		goto err;
	for (unsigned int i = 0; i < cfg->nq; i++) {
		vb->queues[i] = (struct vm_balance_queue){ .blk = cfg->q[i].blk, .vp = cfg->q[i].vp,
							   .disk = cfg->q[i].disk, .q = cfg->q[i].q };
		vb->owner[i] = cfg->q[i].thread;
	}
	r = vn_balance_init(&vb->b, &bc, vb->owner);
	if (r < 0)
		goto err;
	for (unsigned int i = 0; i < cfg->nq; i++)
		if (cfg->q[i].pinned)
			vn_balance_pin(&vb->b, i);
	*out = vb;
	return 0;

err:
	vm_balance_free(vb);
	return r;
}

void vm_balance_free(struct vm_balancer *vb)
{
	if (!vb)
		return;
	vn_balance_destroy(&vb->b);
	free(vb->queues);
	free(vb->load);
	free(vb->owner);
	free(vb);
}

/* Both halves of a move; the notifier goes back if the completions cannot follow. */
static int apply(struct vm_balancer *vb, const struct vn_balance_move *m)
{
	struct vm_balance_queue *bq = &vb->queues[m->queue];
	int r = vn_virtio_pci_move_queue(bq->vp, bq->q, vb->io[m->to]);

	if (r < 0)
		return r;
	r = vn_blk_move_queue(bq->blk, bq->q, vb->io[m->to]);
	/* Back where it was, notifier too; if even that fails, both halves still work apart. */
	if (r < 0 && vn_virtio_pci_move_queue(bq->vp, bq->q, vb->io[m->from]) < 0)
		fprintf(stderr, "vnotify-vm: rebalance: blk%u q%u: notifier and completions now "
			"on different iothreads\n", bq->disk, bq->q);
	return r;
}

void vm_balance_tick(struct vm_balancer *vb)
{
	struct vn_balance_move m = { 0 };
	int r;

	for (unsigned int i = 0; i < vb->nq; i++) {
		struct vn_blk_stats st;
		struct vm_balance_queue *bq = &vb->queues[i];

		if (vn_blk_get_stats(bq->blk, bq->q, &st))
			st.requests = bq->last;
		vb->load[i] = st.requests - bq->last;
		bq->last = st.requests;
	}
	if (!vn_balance_step(&vb->b, vb->load, &m))
		return;
	r = apply(vb, &m);
	if (r < 0) {
		vn_balance_undo(&vb->b, &m);
		vb->failed++;
		fprintf(stderr, "vnotify-vm: rebalance: blk%u q%u to iothread%u failed: %s\n",
			vb->queues[m.queue].disk, vb->queues[m.queue].q, m.to, strerror(-r));
		return;
	}
	snprintf(vb->last, sizeof(vb->last), "blk%u q%u iothread%u -> iothread%u (%llu requests)",
		 vb->queues[m.queue].disk, vb->queues[m.queue].q, m.from, m.to,
		 (unsigned long long)vb->load[m.queue]);
	fprintf(stderr, "vnotify-vm: rebalance: %s\n", vb->last);
}

void vm_balance_report(const struct vm_balancer *vb, bool on)
{
	if (!vb)
		return;
	fprintf(stderr, "vnotify-vm: rebalancer: %s, %llu moves, %llu failed%s%s\n",
		on ? "on" : "off", (unsigned long long)vn_balance_moves(&vb->b),
		(unsigned long long)vb->failed, vb->last[0] ? ", last: " : "", vb->last);
}
