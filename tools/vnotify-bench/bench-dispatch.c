/* SPDX-License-Identifier: MIT */
/*
 * vnotify-bench dispatch: ns per guest write through the bus dispatcher.
 *
 * N ioeventfds are registered at distinct MMIO addresses (len 0, as modern
 * virtio-pci notify registers are: the lookup's worst case of three hash
 * probes), all inside one region. The fast path writes those addresses
 * round-robin: each write matches and signals its eventfd. The sync path
 * writes the register next to each one: the table misses and a trivial
 * region callback runs. The goal: 1000 entries cost no more than
 * 1.5x one entry.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <vnotify/bus.h>

#include "bench.h"

#define BASE 0xfe000000ull
#define STRIDE 8u
#define MAX_FDS 256u /* eventfds are shared beyond this (KVM allows it too) */
#define BATCHES 21u

static uint64_t sink_writes;

static uint64_t region_read(void *opaque, uint64_t offset, unsigned int size)
{
	return 0;
}

static void region_write(void *opaque, uint64_t offset, unsigned int size, uint64_t value)
{
	sink_writes++;
}

static const struct vn_region_ops region_ops = { .read = region_read, .write = region_write };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vnotify-bench dispatch [--ioeventfds N] [--path fast|sync] [--writes W]\n"
		"                              [--json]\n"
		"  --ioeventfds N  ioeventfds registered at distinct addresses (1..1000, default 1)\n"
		"  --path P        fast: writes match an ioeventfd (default);\n"
		"                  sync: writes miss the table and run a trivial region callback\n"
		"  --writes W      guest writes to time (default 2M)\n"
		"  --json          one JSON object instead of text\n");
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void drain(const int *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		uint64_t v;

		if (read(fds[i], &v, sizeof(v)) < 0 && errno != EAGAIN)
			break;
	}
}

int bench_dispatch_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ioeventfds", required_argument, NULL, 'n' },
		{ "path", required_argument, NULL, 'p' },
		{ "writes", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t n = 1, writes = 2000000, samples[BATCHES];
	bool fast = true, json = false;
	int fds[MAX_FDS], nfds = 0, c, status = 1, r;
	struct vn_bus *bus = NULL;
	struct vn_accel *accel = NULL;
	struct vn_region *region;
	struct vn_region_cfg rc = { .name = "bench", .space = VN_SPACE_MMIO, .base = BASE,
				    .ops = &region_ops };
	uint64_t per_batch, target_base, expected;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (bench_parse_count(optarg, &n) != 0 || n < 1 || n > VN_IOEV_LIMIT_DEFAULT) {
				fprintf(stderr, "dispatch: --ioeventfds wants 1..%u, not '%s'\n",
					VN_IOEV_LIMIT_DEFAULT, optarg);
				return 2;
			}
			break;
		case 'p':
			if (strcmp(optarg, "fast") == 0) {
				fast = true;
			} else if (strcmp(optarg, "sync") == 0) {
				fast = false;
			} else {
				fprintf(stderr, "dispatch: --path must be fast or sync, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'w':
			if (bench_parse_count(optarg, &writes) != 0 || writes < BATCHES ||
			    writes > 1000000000ull) {
				fprintf(stderr, "dispatch: --writes wants %u..1G, not '%s'\n", BATCHES,
					optarg);
				return 2;
			}
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "dispatch: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	rc.size = n * STRIDE;
	r = vn_bus_new(NULL, &bus);
	if (r == 0)
		r = vn_accel_soft_new(bus, &accel);
	if (r == 0)
		r = vn_bus_add_region(bus, &rc, &region);
	if (r) {
		fprintf(stderr, "dispatch: setup failed: %s\n", vn_strerror(r));
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		struct vn_ioev e = { .space = VN_SPACE_MMIO, .addr = BASE + i * STRIDE, .len = 0 };

		if (i < MAX_FDS) {
			fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (fds[i] < 0) {
				fprintf(stderr, "dispatch: eventfd: %s\n", strerror(errno));
				goto out;
			}
			nfds++;
		}
		e.fd = fds[i % MAX_FDS];
		r = vn_accel_assign(accel, &e);
		if (r) {
			fprintf(stderr, "dispatch: assign %llu failed: %s\n", (unsigned long long)i,
				vn_strerror(r));
			goto out;
		}
	}

	/* fast: the doorbell itself; sync: the register next to it */
	target_base = fast ? BASE : BASE + 4;
	per_batch = writes / BATCHES;
	/* warm-up: fill caches and branch predictors, check the path taken */
	for (uint64_t i = 0; i < per_batch; i++) {
		r = vn_bus_write(bus, VN_SPACE_MMIO, target_base + (i % n) * STRIDE, 4, 1);
		expected = fast ? VN_BUS_IOEVENTFD : VN_BUS_REGION;
		if (r != (int)expected) {
			fprintf(stderr, "dispatch: write took the wrong path (%d)\n", r);
			goto out;
		}
	}
	drain(fds, (unsigned int)nfds);
	for (unsigned int b = 0; b < BATCHES; b++) {
		uint64_t t0 = now_ns(), idx = 0;

		for (uint64_t i = 0; i < per_batch; i++) {
			(void)vn_bus_write(bus, VN_SPACE_MMIO, target_base + idx * STRIDE, 4, 1);
			if (++idx == n)
				idx = 0;
		}
		samples[b] = now_ns() - t0;
		/* keep eventfd counters far from their limit; not timed */
		if (fast)
			drain(fds, (unsigned int)nfds);
	}

	{
		double p50 = (double)bench_quantile(samples, BATCHES, 0.5) / (double)per_batch;
		double best = (double)bench_quantile(samples, BATCHES, 0.0) / (double)per_batch;

		if (json) {
			printf("{\"ioeventfds\": %llu, \"path\": \"%s\", \"writes\": %llu, "
			       "\"ns_per_write\": %.1f, \"ns_per_write_min\": %.1f}\n",
			       (unsigned long long)n, fast ? "fast" : "sync",
			       (unsigned long long)(per_batch * BATCHES), p50, best);
		} else {
			bench_print_machine();
			printf("dispatch, path %s, %llu ioeventfds, %llu writes in %u batches\n",
			       fast ? "fast" : "sync", (unsigned long long)n,
			       (unsigned long long)(per_batch * BATCHES), BATCHES);
			printf("  %.1f ns per write (median batch), %.1f ns best batch\n", p50, best);
		}
	}
	status = 0;
out:
	if (bus) {
		struct vn_bus_stats st;

		vn_bus_get_stats(bus, &st);
		if (st.ioev_signal_errors)
			fprintf(stderr, "dispatch: %llu eventfd writes failed\n",
				(unsigned long long)st.ioev_signal_errors);
	}
	vn_accel_free(accel);
	vn_bus_free(bus);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return status;
}
