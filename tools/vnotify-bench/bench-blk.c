/* SPDX-License-Identifier: MIT */
/*
 * vnotify-bench blk: virtio-blk throughput, synchronous notify against
 * ioeventfd + iothread, on the soft machine.
 *
 * Each vCPU is a thread driving its own queue through vnotify's guest driver
 * and the machine's bus, so its doorbell write really is either a
 * synchronous exit (the device pops and submits under the device lock, on
 * the vCPU) or an eventfd signal (the iothread does that work). Between
 * submissions a vCPU spins for --guest-work-ns, standing in for guest code;
 * how much of that work it gets done per second is the point of the design.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/virtio_blk.h>
#include <vnotify/blk.h>
#include <vnotify/iothread.h>
#include <vnotify/machine.h>
#include <vnotify/pci.h>

#include "base/log.h"
#include "bench.h"
#include "guest/vdrv-blk.h"
#include "guest/vdrv-pci.h"
#include "hw/machine.h"

#define MAX_VCPUS 16
#define MAX_DEPTH 128
#define LAT_SAMPLES_MAX (1u << 20)
#define SLOT 1

enum rw_mode { RW_RANDREAD, RW_RANDWRITE, RW_READ, RW_WRITE, RW_RANDRW };
static const char *const rw_names[] = {
	[RW_RANDREAD] = "randread", [RW_RANDWRITE] = "randwrite", [RW_READ] = "read",
	[RW_WRITE] = "write", [RW_RANDRW] = "randrw",
};

struct opts {
	bool ioeventfd;
	unsigned int vcpus, queues, iodepth, iothreads, repeat;
	uint64_t bs, runtime_ms, size, guest_work_ns, poll_max_ns;
	enum rw_mode rw;
	const char *image;
	bool direct, json, matrix, legacy;
	const char *plot;
	const char *json_file;
	enum vn_blk_backend backend;
};

struct result {
	const char *backend; /* what the device chose: io_uring or the pool */
	bool ioeventfd;
	unsigned int vcpus, iodepth;
	double iops, mibps, p50_us, p99_us, p999_us;
	double kicks_per_req, irqs_per_req, exits_per_req, notify_ns_per_kick;
	double guest_work_per_s, guest_work_frac;
	uint64_t reqs, errors;
};

struct vcpu {
	const struct opts *o;
	struct vn_vdrv_env *env;
	struct vn_vdrv_blkq *q;
	unsigned int idx;
	uint64_t capacity_bytes;
	uint64_t buf[MAX_DEPTH];
	uint64_t submit_ns[MAX_DEPTH];
	unsigned int free_slots[MAX_DEPTH], nfree;
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
	struct vn_vdrv_blk_done done[MAX_DEPTH];
	int n = vn_vdrv_blkq_reap(v->q, done, MAX_DEPTH);
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
	const struct opts *o = v->o;
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

static int irq_fd(void *opaque, unsigned int data)
{
	return vn_machine_irq_fd(opaque, data);
}

struct rig {
	struct vn_machine *m;
	struct vn_iothread *io[4];
	unsigned int nio;
	struct vn_blk *blk;
	struct vn_virtio_pci *vp;
	struct vn_vdrv_env *env;
	struct vn_vdrv_blk *drv;
};

static void rig_free(struct rig *g)
{
	vn_vdrv_blk_free(g->drv);
	vn_vdrv_env_free(g->env);
	vn_virtio_pci_remove(g->vp);
	vn_blk_free(g->blk);
	for (unsigned int i = 0; i < g->nio; i++)
		vn_iothread_free(g->io[i]);
	vn_machine_free(g->m);
	memset(g, 0, sizeof(*g));
}

static int rig_new(const struct opts *o, struct rig *g)
{
	struct vn_machine_cfg mc;
	struct vn_blk_cfg bc;
	struct vn_virtio_pci_cfg pc;
	struct vn_vdrv_env_cfg ec;
	struct vn_vdrv_blk_cfg dc = { .slot = SLOT, .nr_queues = o->queues,
				      .mode = o->legacy ? VN_VDRV_PCI_LEGACY : VN_VDRV_PCI_MODERN };
	uint64_t data = (uint64_t)o->vcpus * o->iodepth * o->bs;
	int r;

	memset(g, 0, sizeof(*g));
	vn_machine_cfg_init(&mc);
	mc.ram_size = ((data + (64ull << 20)) + 0xfffff) & ~0xfffffull;
	if ((r = vn_machine_new(&mc, &g->m)) < 0)
		return r;
	g->nio = o->iothreads;
	for (unsigned int i = 0; i < g->nio; i++) {
		char name[16];
		struct vn_iothread_cfg ic = { .name = name, .poll_max_ns = o->poll_max_ns };

		snprintf(name, sizeof(name), "bench-io%u", i);
		if ((r = vn_iothread_new(&ic, &g->io[i])) < 0 || (r = vn_iothread_start(g->io[i])) < 0)
			return r;
	}
	memset(&bc, 0, sizeof(bc));
	bc.name = "bench-blk";
	bc.path = o->image;
	bc.direct = o->direct;
	bc.nr_queues = o->queues;
	bc.queue_size = 256;
	bc.backend = o->backend;
	/* a second iothread, if there is one, takes the completions */
	bc.iothread = g->io[g->nio > 1 ? 1 : 0];
	if ((r = vn_blk_new(&bc, &g->blk)) < 0)
		return r;
	vn_virtio_pci_cfg_init(&pc, vn_blk_vdev(g->blk), g->io[0], SLOT);
	pc.ioeventfd = o->ioeventfd;
	if ((r = vn_machine_add_virtio_pci(g->m, &pc, &g->vp)) < 0)
		return r;
	ec = (struct vn_vdrv_env_cfg){
		.bus = vn_machine_bus(g->m), .mem = vn_machine_gmem(g->m),
		.ram_base = 1ull << 20, .ram_size = mc.ram_size - (1ull << 20),
		.irq_fd = irq_fd, .irq_opaque = g->m,
		.msi_data_max = vn_machine_nr_irqs(g->m),
	};
	if ((r = vn_vdrv_env_new(&ec, &g->env)) < 0)
		return r;
	if ((r = vn_vdrv_pci_scan(g->env)) < 0)
		return r;
	return vn_vdrv_blk_new(g->env, &dc, &g->drv);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int run_once(const struct opts *o, struct result *res)
{
	struct rig g;
	struct vcpu *v = calloc(o->vcpus, sizeof(*v));
	pthread_t th[MAX_VCPUS];
	pthread_barrier_t start;
	int stop = 0, r;
	uint64_t t0, wall;

	if (!v)
		return -ENOMEM;
	r = rig_new(o, &g);
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
	usleep((useconds_t)(o->runtime_ms * 1000));
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	wall = vn_now_ns() - t0;
	for (unsigned int i = 0; i < o->vcpus; i++)
		pthread_join(th[i], NULL);

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
	r = v[0].err;
	for (unsigned int i = 1; i < o->vcpus && r == 0; i++)
		r = v[i].err;

out_threads:
	for (unsigned int i = 0; i < o->vcpus; i++)
		free(v[i].lat);
	pthread_barrier_destroy(&start);
out:
	rig_free(&g);
	free(v);
	return r;
}

/* Median over repeats (by IOPS), with the min and max IOPS and guest work. */
struct summary {
	struct result med;
	double iops_min, iops_max, gw_min, gw_max;
};

/* Summarises @n runs of one point: the run with the median IOPS, min/max. */
static void summarise(const struct result *rs, unsigned int n, struct summary *s)
{
	double iops[32];

	for (unsigned int i = 0; i < n; i++)
		iops[i] = rs[i].iops;
	qsort(iops, n, sizeof(iops[0]), cmp_double);
	s->iops_min = iops[0];
	s->iops_max = iops[n - 1];
	s->gw_min = s->gw_max = rs[0].guest_work_per_s;
	for (unsigned int i = 0; i < n; i++) {
		if (rs[i].iops == iops[n / 2])
			s->med = rs[i];
		if (rs[i].guest_work_per_s < s->gw_min)
			s->gw_min = rs[i].guest_work_per_s;
		if (rs[i].guest_work_per_s > s->gw_max)
			s->gw_max = rs[i].guest_work_per_s;
	}
}

/*
 * Runs both notify modes (or just @o's) @o->repeat times, alternating them
 * run by run, so the machine's noise lands on both alike.
 */
static int run_point(struct opts *o, bool both, struct summary *sync_s, struct summary *ioev_s)
{
	struct result rs[2][32];
	bool want = o->ioeventfd;
	int r;

	memset(rs, 0, sizeof(rs));
	for (unsigned int i = 0; i < o->repeat; i++) {
		for (int mode = 0; mode < 2; mode++) {
			if (!both && mode != (int)want)
				continue;
			o->ioeventfd = mode == 1;
			r = run_once(o, &rs[mode][i]);
			if (r < 0)
				return r;
		}
	}
	o->ioeventfd = want;
	if (both || !want)
		summarise(rs[0], o->repeat, sync_s);
	if (both || want)
		summarise(rs[1], o->repeat, ioev_s);
	return 0;
}

static void print_json(FILE *f, const struct opts *o, const struct summary *s, bool comma)
{
	const struct result *r = &s->med;

	fprintf(f, "  {\"notify\": \"%s\", \"vcpus\": %u, \"queues\": %u, \"iodepth\": %u, "
	       "\"bs\": %" PRIu64 ", \"rw\": \"%s\", \"guest_work_ns\": %" PRIu64 ", "
	       "\"iops\": %.0f, \"iops_min\": %.0f, \"iops_max\": %.0f, \"mibps\": %.2f, "
	       "\"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, "
	       "\"kicks_per_req\": %.3f, \"exits_per_req\": %.3f, \"irqs_per_req\": %.3f, "
	       "\"notify_ns_per_kick\": %.0f, \"guest_work_per_s\": %.0f, "
	       "\"guest_work_frac\": %.3f, \"errors\": %" PRIu64 ", \"repeat\": %u, "
	       "\"backend\": \"%s\"}%s\n",
	       r->ioeventfd ? "ioeventfd" : "sync", r->vcpus, o->queues, r->iodepth, o->bs,
	       rw_names[o->rw], o->guest_work_ns, r->iops, s->iops_min, s->iops_max, r->mibps,
	       r->p50_us, r->p99_us, r->p999_us, r->kicks_per_req, r->exits_per_req,
	       r->irqs_per_req, r->notify_ns_per_kick, r->guest_work_per_s, r->guest_work_frac,
	       r->errors, o->repeat, r->backend ? r->backend : "?", comma ? "," : "");
}

static void print_text(const struct opts *o, const struct summary *s)
{
	const struct result *r = &s->med;

	printf("%-9s vcpus %u  %8.0f IOPS [%0.f..%0.f]  %7.1f MiB/s  lat p50 %6.1f p99 %7.1f "
	       "p99.9 %7.1f us\n",
	       r->ioeventfd ? "ioeventfd" : "sync", r->vcpus, r->iops, s->iops_min, s->iops_max,
	       r->mibps, r->p50_us, r->p99_us, r->p999_us);
	printf("          kicks/req %.3f  exits/req %.3f  irqs/req %.3f  notify %.0f ns/kick  "
	       "guest work %.0f units/s per vCPU (%.1f%% of its time)  backend %s%s\n",
	       r->kicks_per_req, r->exits_per_req, r->irqs_per_req, r->notify_ns_per_kick,
	       r->guest_work_per_s, 100.0 * r->guest_work_frac, r->backend ? r->backend : "?",
	       r->errors ? "  ERRORS" : "");
}

static int make_image(struct opts *o, char *path, size_t cap)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	char *chunk;
	int fd;

	snprintf(path, cap, "%s/vnotify-bench-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		fprintf(stderr, "blk: cannot create a temporary image in %s: %s (set TMPDIR)\n", dir,
			strerror(errno));
		return -errno;
	}
	/* Written, not sparse, then read back: a warm image whose reads hit the page cache. */
	chunk = malloc(1 << 20);
	if (!chunk) {
		close(fd);
		return -ENOMEM;
	}
	for (uint64_t off = 0; off < o->size; off += 1 << 20) {
		memset(chunk, (int)(off >> 20), 1 << 20);
		if (pwrite(fd, chunk, 1 << 20, (off_t)off) != 1 << 20) {
			int r = -errno;

			fprintf(stderr, "blk: cannot write the temporary image %s: %s\n", path,
				strerror(errno));
			free(chunk);
			close(fd);
			unlink(path);
			return r;
		}
	}
	for (uint64_t off = 0; off < o->size; off += 1 << 20)
		if (pread(fd, chunk, 1 << 20, (off_t)off) < 0)
			break;
	free(chunk);
	close(fd);
	o->image = path;
	return 0;
}

static int plot(const struct opts *o, struct summary s[3][2], const unsigned int *vc, unsigned int n)
{
	char dat[] = "/tmp/vnotify-plot-XXXXXX";
	int fd = mkstemp(dat);
	FILE *f, *gp;
	char cmd[4096];

	if (fd < 0 || !(f = fdopen(fd, "w")))
		return -errno;
	fprintf(f, "# vcpus sync_iops ioev_iops sync_gw ioev_gw\n");
	for (unsigned int i = 0; i < n; i++)
		fprintf(f, "%u %.0f %.0f %.0f %.0f\n", vc[i], s[i][0].med.iops, s[i][1].med.iops,
			s[i][0].med.guest_work_per_s, s[i][1].med.guest_work_per_s);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "gnuplot");
	gp = popen(cmd, "w");
	if (!gp) {
		unlink(dat);
		return -errno;
	}
	fprintf(gp,
		"set terminal pngcairo size 1100,450 font 'sans,10'\n"
		"set output '%s'\n"
		"set multiplot layout 1,2 title 'virtio-blk %s bs %" PRIu64 " iodepth %u, guest work %" PRIu64
		" ns: sync notify vs ioeventfd + iothread'\n"
		"set style data histograms\nset style histogram clustered gap 1\n"
		"set style fill solid 0.8 border -1\nset boxwidth 0.9\nset grid ytics\n"
		"set xlabel 'vCPUs'\nset key top left\nset yrange [0:*]\n"
		"set title 'IOPS'\n"
		"plot '%s' using 2:xtic(1) title 'sync', '' using 3 title 'ioeventfd'\n"
		"set title 'guest work units per second per vCPU'\n"
		"plot '%s' using 4:xtic(1) title 'sync', '' using 5 title 'ioeventfd'\n"
		"unset multiplot\n",
		o->plot, rw_names[o->rw], o->bs, o->iodepth, o->guest_work_ns, dat, dat);
	int r = pclose(gp);
	unlink(dat);
	return r == 0 ? 0 : -EIO;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vnotify-bench blk [options]\n"
		"\n"
		"virtio-blk on the soft machine: each vCPU thread drives its own queue through\n"
		"vnotify's guest driver; a doorbell is a synchronous exit or an ioeventfd.\n"
		"\n"
		"  --notify sync|ioeventfd  how kicks reach the device (default ioeventfd)\n"
		"  --vcpus N                vCPU threads, each with its own queue (default 1, max %d)\n"
		"  --queues Q               device queues (default: --vcpus; at least --vcpus)\n"
		"  --iodepth D              requests in flight per vCPU (default 16, max %d)\n"
		"  --bs SIZE                request size (default 4k; multiple of 512)\n"
		"  --rw MODE                randread|randwrite|read|write|randrw (default randread)\n"
		"  --runtime SECONDS        per run (default 5; fractions allowed)\n"
		"  --image PATH | --size SIZE  an existing image, or a temporary one of SIZE\n"
		"                           (default 256M, written and read back: warm) in $TMPDIR\n"
		"                           or /var/tmp\n"
		"  --direct                 O_DIRECT on the image\n"
		"  --iothreads K            1: one iothread runs queues and completions (default);\n"
		"                           2: a second one takes the completions\n"
		"  --poll-max-ns NS         iothread busy-poll window cap (default 0: off)\n"
		"  --guest-work-ns NS       guest code each vCPU spins between submissions (default 0)\n"
		"  --backend auto|uring|pool  the image backend (default auto)\n"
		"  --legacy                 drive the legacy virtio-pci interface\n"
		"  --repeat R               runs per point; median with min/max (default 1, max 31)\n"
		"  --matrix                 sync vs ioeventfd at 1, 2, 4 vCPUs, with ratios\n"
		"  --plot FILE.png          draw the matrix (needs gnuplot)\n"
		"  --json                   JSON (an array with --matrix) instead of text\n"
		"  --json-file FILE         also write the JSON to FILE, from the same runs\n",
		MAX_VCPUS, MAX_DEPTH);
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "notify", required_argument, NULL, 'n' }, { "vcpus", required_argument, NULL, 'v' },
		{ "queues", required_argument, NULL, 'q' }, { "iodepth", required_argument, NULL, 'd' },
		{ "bs", required_argument, NULL, 'b' }, { "rw", required_argument, NULL, 'w' },
		{ "runtime", required_argument, NULL, 't' }, { "image", required_argument, NULL, 'i' },
		{ "size", required_argument, NULL, 's' }, { "direct", no_argument, NULL, 'D' },
		{ "iothreads", required_argument, NULL, 'k' },
		{ "poll-max-ns", required_argument, NULL, 'P' },
		{ "guest-work-ns", required_argument, NULL, 'g' },
		{ "backend", required_argument, NULL, 'B' }, { "legacy", no_argument, NULL, 'L' },
		{ "repeat", required_argument, NULL, 'r' }, { "matrix", no_argument, NULL, 'm' },
		{ "plot", required_argument, NULL, 'p' }, { "json", no_argument, NULL, 'j' },
		{ "json-file", required_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' }, { 0 },
	};
	uint64_t x;
	int c;

	*o = (struct opts){ .ioeventfd = true, .vcpus = 1, .iodepth = 16, .iothreads = 1,
			    .repeat = 1, .bs = 4096, .runtime_ms = 5000, .size = 256ull << 20,
			    .rw = RW_RANDREAD };
#define BAD(what) do { fprintf(stderr, "blk: %s: '%s'\n", what, optarg); return 2; } while (0)
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (strcmp(optarg, "sync") && strcmp(optarg, "ioeventfd"))
				BAD("--notify must be sync or ioeventfd");
			o->ioeventfd = strcmp(optarg, "ioeventfd") == 0;
			break;
		case 'v':
			if (bench_parse_count(optarg, &x) < 0 || x < 1 || x > MAX_VCPUS)
				BAD("--vcpus wants 1..16");
			o->vcpus = (unsigned int)x;
			break;
		case 'q':
			if (bench_parse_count(optarg, &x) < 0 || x < 1 || x > 64)
				BAD("--queues wants 1..64");
			o->queues = (unsigned int)x;
			break;
		case 'd':
			if (bench_parse_count(optarg, &x) < 0 || x < 1 || x > MAX_DEPTH)
				BAD("--iodepth wants 1..128");
			o->iodepth = (unsigned int)x;
			break;
		case 'b':
			if (bench_parse_size(optarg, &o->bs) < 0 || o->bs < 512 || o->bs % 512 ||
			    o->bs > (1u << 20))
				BAD("--bs wants a multiple of 512 up to 1M");
			break;
		case 'w': {
			bool ok = false;

			for (unsigned int i = 0; i < VN_ARRAY_SIZE(rw_names); i++)
				if (strcmp(optarg, rw_names[i]) == 0) {
					o->rw = i;
					ok = true;
				}
			if (!ok)
				BAD("--rw wants randread, randwrite, read, write or randrw");
			break;
		}
		case 't': {
			char *end;
			double s = strtod(optarg, &end);

			if (*end || s < 0.1 || s > 3600)
				BAD("--runtime wants seconds between 0.1 and 3600");
			o->runtime_ms = (uint64_t)(s * 1000);
			break;
		}
		case 'i':
			o->image = optarg;
			break;
		case 's':
			if (bench_parse_size(optarg, &o->size) < 0 || o->size < (1u << 20))
				BAD("--size wants at least 1M");
			o->size &= ~((1ull << 20) - 1);
			break;
		case 'D':
			o->direct = true;
			break;
		case 'k':
			if (bench_parse_count(optarg, &x) < 0 || x < 1 || x > 2)
				BAD("--iothreads wants 1 or 2");
			o->iothreads = (unsigned int)x;
			break;
		case 'P':
			if (bench_parse_count(optarg, &o->poll_max_ns) < 0)
				BAD("--poll-max-ns wants a number of ns");
			break;
		case 'g':
			if (bench_parse_count(optarg, &o->guest_work_ns) < 0 ||
			    o->guest_work_ns > 10000000)
				BAD("--guest-work-ns wants 0..10M");
			break;
		case 'B':
			if (!strcmp(optarg, "auto"))
				o->backend = VN_BLK_BACKEND_AUTO;
			else if (!strcmp(optarg, "uring"))
				o->backend = VN_BLK_BACKEND_URING;
			else if (!strcmp(optarg, "pool"))
				o->backend = VN_BLK_BACKEND_POOL;
			else
				BAD("--backend wants auto, uring or pool");
			break;
		case 'L':
			o->legacy = true;
			break;
		case 'r':
			if (bench_parse_count(optarg, &x) < 0 || x < 1 || x > 31)
				BAD("--repeat wants 1..31");
			o->repeat = (unsigned int)x;
			break;
		case 'm':
			o->matrix = true;
			break;
		case 'p':
			o->plot = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 'J':
			o->json_file = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
#undef BAD
	if (optind != argc) {
		fprintf(stderr, "blk: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (o->plot && !o->matrix) {
		fprintf(stderr, "blk: --plot draws the matrix; add --matrix\n");
		return 2;
	}
	if (o->queues && o->queues < o->vcpus) {
		fprintf(stderr, "blk: each vCPU needs its own queue: --queues %u < --vcpus %u\n",
			o->queues, o->vcpus);
		return 2;
	}
	if (o->image && o->direct) {
		struct stat st;

		if (stat(o->image, &st) != 0) {
			fprintf(stderr, "blk: cannot open %s: %s\n", o->image, strerror(errno));
			return 2;
		}
	}
	return 0;
}

int bench_blk_main(int argc, char **argv)
{
	static const unsigned int matrix_vcpus[] = { 1, 2, 4 };
	struct opts o;
	char tmp[4096] = "";
	int r = parse(argc, argv, &o);

	if (r)
		return r;
	FILE *jf = NULL;

	if (o.json_file && !(jf = fopen(o.json_file, "w"))) {
		fprintf(stderr, "blk: cannot write %s: %s\n", o.json_file, strerror(errno));
		return 2;
	}
	if (!o.image && (r = make_image(&o, tmp, sizeof(tmp))) < 0)
		return 1;
	vn_log_set_level(VN_LOG_WARN);
	if (!o.json) {
		bench_print_machine();
		printf("workload: %s bs %" PRIu64 " iodepth %u, %.1f s per run, %u run(s) per point, "
		       "guest work %" PRIu64 " ns, image %s%s, %s transport, iothreads %u, "
		       "poll_max_ns %" PRIu64 "\n",
		       rw_names[o.rw], o.bs, o.iodepth, (double)o.runtime_ms / 1000, o.repeat,
		       o.guest_work_ns, o.image, o.direct ? " (O_DIRECT)" : " (page cache)",
		       o.legacy ? "legacy" : "modern", o.iothreads, o.poll_max_ns);
	}
	if (!o.matrix) {
		struct summary s_sync, s_ioev, *sp = o.ioeventfd ? &s_ioev : &s_sync;
		struct summary s;

		if (!o.queues)
			o.queues = o.vcpus;
		r = run_point(&o, false, &s_sync, &s_ioev);
		s = *sp;
		if (r == 0) {
			if (o.json)
				print_json(stdout, &o, &s, false);
			else
				print_text(&o, &s);
			if (jf)
				print_json(jf, &o, &s, false);
		}
	} else {
		struct summary s[3][2];
		unsigned int n = VN_ARRAY_SIZE(matrix_vcpus);
		unsigned int user_queues = o.queues;

		if (o.json)
			printf("[\n");
		if (jf)
			fprintf(jf, "[\n");
		for (unsigned int i = 0; i < n && r == 0; i++) {
			o.vcpus = matrix_vcpus[i];
			o.queues = user_queues > o.vcpus ? user_queues : o.vcpus;
			r = run_point(&o, true, &s[i][0], &s[i][1]);
			for (int mode = 0; mode < 2 && r == 0; mode++) {
				bool comma = !(i == n - 1 && mode == 1);

				if (o.json)
					print_json(stdout, &o, &s[i][mode], comma);
				else
					print_text(&o, &s[i][mode]);
				if (jf)
					print_json(jf, &o, &s[i][mode], comma);
			}
		}
		if (o.json)
			printf("]\n");
		if (jf)
			fprintf(jf, "]\n");
		if (r == 0 && !o.json) {
			printf("\n%-6s %10s %10s %7s %12s %12s %7s %9s %9s\n", "vcpus", "sync IOPS",
			       "ioev IOPS", "ratio", "sync work/s", "ioev work/s", "ratio",
			       "sync p99", "ioev p99");
			for (unsigned int i = 0; i < n; i++) {
				const struct result *a = &s[i][0].med, *b = &s[i][1].med;

				printf("%-6u %10.0f %10.0f %6.2fx %12.0f %12.0f %6.2fx %7.0fus %7.0fus\n",
				       matrix_vcpus[i], a->iops, b->iops, b->iops / a->iops,
				       a->guest_work_per_s, b->guest_work_per_s,
				       a->guest_work_per_s > 0 ? b->guest_work_per_s / a->guest_work_per_s : 0,
				       a->p99_us, b->p99_us);
			}
		}
		if (r == 0 && o.plot) {
			if (plot(&o, s, matrix_vcpus, n) < 0)
				fprintf(stderr, "blk: gnuplot failed to draw %s (is gnuplot installed? "
					"scripts/bootstrap.sh bench)\n", o.plot);
			else if (!o.json)
				printf("plot: %s\n", o.plot);
		}
	}
	if (tmp[0])
		unlink(tmp);
	if (jf)
		fclose(jf);
	if (r < 0) {
		fprintf(stderr, "blk: run failed: %s\n", vn_strerror(r));
		return 1;
	}
	return 0;
}
