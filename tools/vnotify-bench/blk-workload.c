/* SPDX-License-Identifier: MIT */
/*
 * vnotify-bench blk: one run. The shared test rig (src/guest/rig.h) builds
 * the soft machine, virtio-blk on virtio-pci and the guest driver; each vCPU
 * is a thread driving its own queue through the driver and the machine's
 * bus, so its doorbell write really is either a synchronous exit (the
 * device pops and submits under the device lock, on the vCPU) or an
 * eventfd signal (the iothread does that work). Between submissions a vCPU
 * spins for --guest-work-ns, standing in for guest code; how much of that
 * work it gets done per second is the point of the design.
 */
#include "blk.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <vnotify/iothread.h>
#include <vnotify/machine.h>
#include <vnotify/pci.h>

#include "base/log.h"
#include "bench.h"
#include "guest/rig.h"
#include "guest/vdrv-blk.h"
#include "guest/vdrv-pci.h"
#include "hw/machine.h"

#define LAT_SAMPLES_MAX (1u << 20)
#define SLOT 1

struct vcpu {
	const struct blk_opts *o;
	struct vn_vdrv_env *env;
	struct vn_vdrv_blkq *q;
	unsigned int idx;
	uint64_t capacity_bytes;
	uint64_t buf[BLK_MAX_DEPTH];
	uint64_t submit_ns[BLK_MAX_DEPTH];
	unsigned int free_slots[BLK_MAX_DEPTH], nfree;
	uint64_t seq_off;
	uint64_t rng;
	uint64_t *lat;
	size_t nlat;
	/* results */
	uint64_t reqs, bytes, errors, work_units, work_ns, notify_ns, notify_kicks;
	int err;
	int *stop;
	pthread_barrier_t *start;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Busy work standing in for guest code; returns the ns actually spun. */
static uint64_t guest_work(uint64_t ns)
{
	uint64_t start = vn_now_ns(), now;

	do {
		now = vn_now_ns();
	} while (now - start < ns);
	return now - start;
}

static bool is_write(struct vcpu *v)
{
	switch (v->o->rw) {
	case RW_RANDWRITE:
	case RW_WRITE:
		return true;
	case RW_RANDRW:
		return rnd(&v->rng) & 1;
	default:
		return false;
	}
}

static uint64_t next_offset(struct vcpu *v)
{
	uint64_t blocks = v->capacity_bytes / v->o->bs;

	if (v->o->rw == RW_READ || v->o->rw == RW_WRITE) {
		/* each vCPU streams through its own slice of the disk */
		uint64_t slice = blocks / v->o->vcpus;
		uint64_t b = v->idx * slice + (v->seq_off++ % (slice ? slice : 1));

		return b * v->o->bs;
	}
	return (rnd(&v->rng) % blocks) * v->o->bs;
}

static int submit_one(struct vcpu *v)
{
	unsigned int slot = v->free_slots[--v->nfree];
	struct vn_vdrv_buf seg = { .gpa = v->buf[slot], .len = (uint32_t)v->o->bs };
	struct vn_vdrv_blk_io io = {
		.type = is_write(v) ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
		.sector = next_offset(v) / 512,
		.segs = &seg,
		.nsegs = 1,
		.token = (void *)(uintptr_t)(slot + 1),
	};
	int r;

	v->submit_ns[slot] = vn_now_ns();
	r = vn_vdrv_blkq_submit(v->q, &io);
	if (r < 0)
		v->free_slots[v->nfree++] = slot;
	return r;
}

static int reap(struct vcpu *v, bool measuring)
{
	struct vn_vdrv_blk_done done[BLK_MAX_DEPTH];
	int n = vn_vdrv_blkq_reap(v->q, done, BLK_MAX_DEPTH);
	uint64_t now = vn_now_ns();

	for (int i = 0; i < n; i++) {
		unsigned int slot = (unsigned int)((uintptr_t)done[i].token - 1);

		v->free_slots[v->nfree++] = slot;
		if (!measuring)
			continue;
		v->reqs++;
		if (done[i].status != VIRTIO_BLK_S_OK)
			v->errors++;
		else
			v->bytes += v->o->bs;
		if (v->nlat < LAT_SAMPLES_MAX)
			v->lat[v->nlat++] = now - v->submit_ns[slot];
	}
	return n;
}

static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;
	const struct blk_opts *o = v->o;
	uint64_t gw = o->guest_work_ns;
	int r;

	pthread_barrier_wait(v->start);
	while (!__atomic_load_n(v->stop, __ATOMIC_ACQUIRE)) {
		int submitted = 0;

		if (gw) {
			v->work_ns += guest_work(gw);
			v->work_units++;
		}
		if (reap(v, true) < 0) {
			v->err = -EIO;
			break;
		}
		/* with guest work: one submission per unit of it; without: fill the queue */
		while (v->nfree > 0 && (!gw || submitted == 0)) {
			r = submit_one(v);
			if (r == -ENOSPC)
				break;
			if (r < 0) {
				v->err = r;
				goto out;
			}
			submitted++;
		}
		if (submitted) {
			uint64_t t0 = vn_now_ns();

			r = vn_vdrv_blkq_kick(v->q);
			if (r < 0) {
				v->err = r;
				break;
			}
			if (r == 1) {
				v->notify_ns += vn_now_ns() - t0;
				v->notify_kicks++;
			}
		} else if (!gw && v->nfree == 0) {
			/* nothing to do until a completion arrives: take the interrupt */
			r = vn_vdrv_blkq_wait(v->q, 200);
			if (r < 0) {
				v->err = r;
				break;
			}
		}
	}
out:
	/* Let the in-flight requests finish so teardown finds an idle queue. */
	for (int i = 0; i < 5000 && vn_vdrv_blkq_inflight(v->q) > 0; i++) {
		if (reap(v, false) == 0 && vn_vdrv_blkq_wait(v->q, 10) < 0)
			break;
	}
	return NULL;
}

/* The rig for @o: RAM for every buffer plus 64 MiB, rounded up to 1 MiB. */
static int rig_up(const struct blk_opts *o, struct vn_rig *g)
{
	struct vn_machine_cfg mc;
	struct vn_rig_cfg rc = {
		.machine = &mc,
		.nr_iothreads = o->iothreads,
		.iothread_name = "bench-io",
		.poll_max_ns = o->poll_max_ns,
		.blk = {
			.name = "bench-blk",
			.path = o->image,
			.direct = o->direct,
			.nr_queues = o->queues,
			.queue_size = 256,
			.backend = o->backend,
		},
		/* a second iothread, if there is one, takes the completions */
		.blk_iothread = o->iothreads > 1 ? 1 : 0,
	};
	struct vn_vdrv_blk_cfg dc = { .slot = SLOT, .nr_queues = o->queues,
				      .mode = o->legacy ? VN_VDRV_PCI_LEGACY : VN_VDRV_PCI_MODERN };
	uint64_t data = (uint64_t)o->vcpus * o->iodepth * o->bs;
	int r;

	vn_machine_cfg_init(&mc);
	mc.ram_size = ((data + (64ull << 20)) + 0xfffff) & ~0xfffffull;
	/* the driver may hand out every MSI data value the machine routes */
	rc.msi_data_max = mc.nr_irqs;
	vn_virtio_pci_cfg_init(&rc.pci, NULL, NULL, SLOT);
	rc.pci.ioeventfd = o->ioeventfd;
	if ((r = vn_rig_init(&rc, g)) < 0)
		return r;
	if ((r = vn_rig_scan(g)) < 0)
		return r;
	return vn_rig_driver_new(g, &dc);
}

int blk_run_once(const struct blk_opts *o, struct blk_result *res)
{
	struct vn_rig g = { 0 };
	struct vcpu *v = calloc(o->vcpus, sizeof(*v));
	pthread_t th[BLK_MAX_VCPUS];
	pthread_barrier_t start;
	int stop = 0, r;
	uint64_t t0, wall, cpu0, cpu1;
	double idle_frac = 0;

	if (!v)
		return -ENOMEM;
	r = rig_up(o, &g);
	if (r < 0) {
		fprintf(stderr, "blk: cannot set up the machine: %s\n", vn_strerror(r));
		goto out;
	}
	pthread_barrier_init(&start, NULL, o->vcpus + 1);
	for (unsigned int i = 0; i < o->vcpus; i++) {
		v[i] = (struct vcpu){ .o = o, .env = g.env, .idx = i, .stop = &stop, .start = &start,
				      .q = vn_vdrv_blk_queue(g.drv, i),
				      .capacity_bytes = vn_vdrv_blk_get_info(g.drv)->capacity * 512,
				      .rng = 0x9e3779b97f4a7c15ull * (i + 1) };
		v[i].lat = malloc(LAT_SAMPLES_MAX * sizeof(uint64_t));
		if (!v[i].q || !v[i].lat || vn_vdrv_blkq_depth(v[i].q) < o->iodepth) {
			fprintf(stderr, "blk: queue %u unusable (depth %u < iodepth %u?)\n", i,
				v[i].q ? vn_vdrv_blkq_depth(v[i].q) : 0, o->iodepth);
			r = -EINVAL;
			goto out_threads;
		}
		for (unsigned int s = 0; s < o->iodepth; s++) {
			r = vn_vdrv_env_alloc(g.env, o->bs, 4096, &v[i].buf[s]);
			if (r < 0)
				goto out_threads;
			v[i].free_slots[v[i].nfree++] = s;
		}
	}
	for (unsigned int i = 0; i < o->vcpus; i++)
		if (pthread_create(&th[i], NULL, vcpu_main, &v[i]) != 0) {
			fprintf(stderr, "blk: cannot start vCPU thread %u\n", i);
			abort();
		}
	pthread_barrier_wait(&start);
	t0 = vn_now_ns();
	cpu0 = vn_iothread_cpu_ns(g.io[0]);
	usleep((useconds_t)(o->runtime_ms * 1000));
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	wall = vn_now_ns() - t0;
	cpu1 = vn_iothread_cpu_ns(g.io[0]);
	for (unsigned int i = 0; i < o->vcpus; i++)
		pthread_join(th[i], NULL);
	if (o->idle_ms) {
		/* the queues stay assigned and polled: what does waiting cost? */
		uint64_t i0 = vn_now_ns(), c0 = vn_iothread_cpu_ns(g.io[0]);

		usleep((useconds_t)(o->idle_ms * 1000));
		idle_frac = (double)(vn_iothread_cpu_ns(g.io[0]) - c0) / (double)(vn_now_ns() - i0);
	}

	/* aggregate */
	memset(res, 0, sizeof(*res));
	res->backend = vn_blk_backend_name(g.blk);
	res->ioeventfd = o->ioeventfd;
	res->vcpus = o->vcpus;
	res->iodepth = o->iodepth;
	size_t nlat = 0;
	uint64_t bytes = 0, work_units = 0, work_ns = 0, notify_ns = 0, notify_kicks = 0;
	uint64_t kicks = 0, irqs = 0, exits = 0;
	for (unsigned int i = 0; i < o->vcpus; i++) {
		struct vn_vdrv_blkq_stats st;

		if (v[i].err)
			fprintf(stderr, "blk: vCPU %u stopped early: %s\n", i, vn_strerror(v[i].err));
		vn_vdrv_blkq_get_stats(v[i].q, &st);
		res->reqs += v[i].reqs;
		res->errors += v[i].errors;
		bytes += v[i].bytes;
		work_units += v[i].work_units;
		work_ns += v[i].work_ns;
		notify_ns += v[i].notify_ns;
		notify_kicks += v[i].notify_kicks;
		kicks += st.kicks;
		irqs += st.irqs;
		exits += st.kicks - st.kicks_ioeventfd;
		nlat += v[i].nlat;
	}
	uint64_t *all = malloc((nlat ? nlat : 1) * sizeof(*all));
	size_t k = 0;
	for (unsigned int i = 0; all && i < o->vcpus; i++) {
		memcpy(all + k, v[i].lat, v[i].nlat * sizeof(*all));
		k += v[i].nlat;
	}
	double secs = (double)wall / 1e9, reqs = res->reqs ? (double)res->reqs : 1.0;
	res->iops = (double)res->reqs / secs;
	res->mibps = (double)bytes / secs / (1024.0 * 1024.0);
	res->p50_us = all ? (double)bench_quantile(all, k, 0.50) / 1000.0 : 0;
	res->p99_us = all ? (double)bench_quantile(all, k, 0.99) / 1000.0 : 0;
	res->p999_us = all ? (double)bench_quantile(all, k, 0.999) / 1000.0 : 0;
	free(all);
	res->kicks_per_req = (double)kicks / reqs;
	res->irqs_per_req = (double)irqs / reqs;
	res->exits_per_req = (double)exits / reqs;
	res->notify_ns_per_kick = notify_kicks ? (double)notify_ns / (double)notify_kicks : 0;
	res->guest_work_per_s = (double)work_units / secs / o->vcpus;
	res->guest_work_frac = (double)work_ns / (double)wall / o->vcpus;
	res->io_cpu_frac = (double)(cpu1 - cpu0) / (double)wall;
	res->idle_cpu_frac = idle_frac;
	r = v[0].err;
	for (unsigned int i = 1; i < o->vcpus && r == 0; i++)
		r = v[i].err;

out_threads:
	for (unsigned int i = 0; i < o->vcpus; i++)
		free(v[i].lat);
	pthread_barrier_destroy(&start);
out:
	vn_rig_destroy(&g);
	free(v);
	return r;
}

