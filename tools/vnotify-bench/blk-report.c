/* SPDX-License-Identifier: MIT */
/* vnotify-bench blk: medians over repeats, and the text, JSON and plot output. */
#include "blk.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <unistd.h>

const char *const blk_rw_names[BLK_RW_MODES] = {
	[RW_RANDREAD] = "randread", [RW_RANDWRITE] = "randwrite", [RW_READ] = "read",
	[RW_WRITE] = "write", [RW_RANDRW] = "randrw",
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

void blk_summarise(const struct blk_result *rs, unsigned int n, struct blk_summary *s)
{
	double iops[BLK_MAX_REPEAT + 1];

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

void blk_print_json(FILE *f, const struct blk_opts *o, const struct blk_summary *s, bool comma)
{
	const struct blk_result *r = &s->med;

	fprintf(f, "  {\"notify\": \"%s\", \"vcpus\": %u, \"queues\": %u, \"iodepth\": %u, "
	       "\"bs\": %" PRIu64 ", \"rw\": \"%s\", \"guest_work_ns\": %" PRIu64 ", "
	       "\"iops\": %.0f, \"iops_min\": %.0f, \"iops_max\": %.0f, \"mibps\": %.2f, "
	       "\"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, "
	       "\"kicks_per_req\": %.3f, \"exits_per_req\": %.3f, \"irqs_per_req\": %.3f, "
	       "\"notify_ns_per_kick\": %.0f, \"guest_work_per_s\": %.0f, "
	       "\"guest_work_frac\": %.3f, \"errors\": %" PRIu64 ", \"repeat\": %u, "
	       "\"backend\": \"%s\"}%s\n",
	       r->ioeventfd ? "ioeventfd" : "sync", r->vcpus, o->queues, r->iodepth, o->bs,
	       blk_rw_names[o->rw], o->guest_work_ns, r->iops, s->iops_min, s->iops_max, r->mibps,
	       r->p50_us, r->p99_us, r->p999_us, r->kicks_per_req, r->exits_per_req,
	       r->irqs_per_req, r->notify_ns_per_kick, r->guest_work_per_s, r->guest_work_frac,
	       r->errors, o->repeat, r->backend ? r->backend : "?", comma ? "," : "");
}

void blk_print_text(const struct blk_opts *o, const struct blk_summary *s)
{
	const struct blk_result *r = &s->med;

	printf("%-9s vcpus %u  %8.0f IOPS [%0.f..%0.f]  %7.1f MiB/s  lat p50 %6.1f p99 %7.1f "
	       "p99.9 %7.1f us\n",
	       r->ioeventfd ? "ioeventfd" : "sync", r->vcpus, r->iops, s->iops_min, s->iops_max,
	       r->mibps, r->p50_us, r->p99_us, r->p999_us);
	printf("          kicks/req %.3f  exits/req %.3f  irqs/req %.3f  notify %.0f ns/kick  "
	       "guest work %.0f units/s per vCPU (%.1f%% of its time)  backend %s%s\n",
	       r->kicks_per_req, r->exits_per_req, r->irqs_per_req, r->notify_ns_per_kick,
	       r->guest_work_per_s, 100.0 * r->guest_work_frac, r->backend ? r->backend : "?",
	       r->errors ? "  ERRORS" : "");
	printf("          iothread cpu %.1f%%", 100.0 * r->io_cpu_frac);
	if (o->idle_ms)
		printf("  idle %.2f%% over %" PRIu64 " ms", 100.0 * r->idle_cpu_frac, o->idle_ms);
	printf("\n");
}

void blk_print_ratios(struct blk_summary s[][2], const unsigned int *vc, unsigned int n)
{
	printf("\n%-6s %10s %10s %7s %12s %12s %7s %9s %9s\n", "vcpus", "sync IOPS",
	       "ioev IOPS", "ratio", "sync work/s", "ioev work/s", "ratio",
	       "sync p99", "ioev p99");
	for (unsigned int i = 0; i < n; i++) {
		const struct blk_result *a = &s[i][0].med, *b = &s[i][1].med;

		printf("%-6u %10.0f %10.0f %6.2fx %12.0f %12.0f %6.2fx %7.0fus %7.0fus\n",
		       vc[i], a->iops, b->iops, b->iops / a->iops,
		       a->guest_work_per_s, b->guest_work_per_s,
		       a->guest_work_per_s > 0 ? b->guest_work_per_s / a->guest_work_per_s : 0,
		       a->p99_us, b->p99_us);
	}
}

int blk_plot(const struct blk_opts *o, struct blk_summary s[][2], const unsigned int *vc,
	     unsigned int n)
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
		o->plot, blk_rw_names[o->rw], o->bs, o->iodepth, o->guest_work_ns, dat, dat);
	int r = pclose(gp);
	unlink(dat);
	return r == 0 ? 0 : -EIO;
}

