/* SPDX-License-Identifier: MIT */
/*
 * vnotify-bench kick: the cost of one host-notifier round trip. A client
 * thread (the vCPU) signals eventfd A; a handler on an iothread consumes A
 * and signals eventfd B; the client waits for B. In event mode the iothread
 * blocks in epoll_wait between kicks; in poll mode it busy-polls A for an
 * adaptive window first. After the run the iothread sits idle and we measure
 * the CPU it burns doing nothing: the price of polling.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vnotify/iothread.h>

#include "base/log.h"
#include "base/notifier.h"
#include "bench.h"

struct kick_ctx {
	struct vn_notifier req;
	struct vn_notifier resp;
	uint64_t answered;
};

static void answer(struct kick_ctx *k)
{
	if (vn_notifier_set(&k->resp) == 0)
		k->answered++;
}

static void on_req(void *opaque, uint32_t events)
{
	struct kick_ctx *k = opaque;

	if (vn_notifier_test_and_clear(&k->req) == 1)
		answer(k);
}

static bool poll_req(void *opaque)
{
	struct kick_ctx *k = opaque;

	if (vn_notifier_test_and_clear(&k->req) != 1)
		return false;
	answer(k);
	return true;
}

struct attach_args {
	struct vn_loop *loop;
	struct kick_ctx *k;
	bool poll;
	bool detach;
};

static int attach(void *opaque)
{
	struct attach_args *a = opaque;

	if (a->detach)
		return vn_loop_del_fd(a->loop, vn_notifier_fd(&a->k->req));
	return vn_loop_add_fd(a->loop, vn_notifier_fd(&a->k->req), VN_LOOP_READ, on_req,
			      a->poll ? poll_req : NULL, a->k);
}

/* Waits for the response eventfd: blocking in poll(2), or spinning on read. */
static int wait_resp(struct kick_ctx *k, bool spin)
{
	for (;;) {
		int r = vn_notifier_test_and_clear(&k->resp);

		if (r != 0)
			return r < 0 ? r : 0;
		if (spin)
			continue;
		struct pollfd p = { .fd = vn_notifier_fd(&k->resp), .events = POLLIN };
		if (poll(&p, 1, 5000) == 0)
			return -ETIMEDOUT;
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vnotify-bench kick [--mode event|poll] [--iterations N] [--poll-max-ns NS]\n"
		"                          [--idle-ms MS] [--client block|spin] [--json]\n"
		"\n"
		"Round trip of an eventfd kick answered by an iothread handler.\n"
		"  --mode event|poll   iothread blocks in epoll_wait, or busy-polls first (default event)\n"
		"  --iterations N      measured round trips (default 20000; k/M suffixes)\n"
		"  --poll-max-ns NS    poll window cap in poll mode (default %u)\n"
		"  --idle-ms MS        how long to measure the idle iothread's CPU (default 1000)\n"
		"  --client block|spin the client waits in poll(2) or spins on the eventfd (default block)\n"
		"  --json              one JSON object instead of text\n",
		VN_LOOP_POLL_MAX_NS_DEFAULT);
}

int bench_kick_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "iterations", required_argument, NULL, 'n' },
		{ "poll-max-ns", required_argument, NULL, 'p' },
		{ "idle-ms", required_argument, NULL, 'i' },
		{ "client", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool poll_mode = false, json = false, spin = false;
	uint64_t iters = 20000, poll_max = VN_LOOP_POLL_MAX_NS_DEFAULT, idle_ms = 1000;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (strcmp(optarg, "poll") && strcmp(optarg, "event")) {
				fprintf(stderr, "kick: --mode must be event or poll, not '%s'\n", optarg);
				return 2;
			}
			poll_mode = strcmp(optarg, "poll") == 0;
			break;
		case 'n':
			if (bench_parse_count(optarg, &iters) < 0 || iters == 0 || iters > 100000000) {
				fprintf(stderr, "kick: --iterations wants 1..100M, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'p':
			if (bench_parse_count(optarg, &poll_max) < 0) {
				fprintf(stderr, "kick: --poll-max-ns wants a number of ns, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'i':
			if (bench_parse_count(optarg, &idle_ms) < 0 || idle_ms > 600000) {
				fprintf(stderr, "kick: --idle-ms wants 0..600000, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'c':
			if (strcmp(optarg, "block") && strcmp(optarg, "spin")) {
				fprintf(stderr, "kick: --client must be block or spin, not '%s'\n", optarg);
				return 2;
			}
			spin = strcmp(optarg, "spin") == 0;
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
	if (optind != argc) {
		fprintf(stderr, "kick: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	struct vn_iothread_cfg cfg = { .name = "bench-io", .poll_max_ns = poll_mode ? poll_max : 0 };
	struct vn_iothread *it = NULL;
	struct kick_ctx k = { .req = VN_NOTIFIER_INIT, .resp = VN_NOTIFIER_INIT };
	struct attach_args a;
	uint64_t warm = iters / 10 + 100;
	uint64_t *lat = calloc(iters, sizeof(*lat));
	int ret = 1;

	if (!lat) {
		fprintf(stderr, "kick: out of memory for %llu samples\n", (unsigned long long)iters);
		return 1;
	}
	if ((r = vn_notifier_init(&k.req)) < 0 || (r = vn_notifier_init(&k.resp)) < 0 ||
	    (r = vn_iothread_new(&cfg, &it)) < 0 || (r = vn_iothread_start(it)) < 0) {
		fprintf(stderr, "kick: setup failed: %s\n", vn_strerror(r));
		goto out;
	}
	a = (struct attach_args){ .loop = vn_iothread_loop(it), .k = &k, .poll = poll_mode };
	r = vn_iothread_run_sync(it, attach, &a);
	if (r < 0) {
		fprintf(stderr, "kick: cannot attach handler: %s\n", vn_strerror(r));
		goto out;
	}

	struct vn_loop_stats s0, s1;
	uint64_t cpu0 = 0, t0 = 0;
	for (uint64_t i = 0; i < warm + iters; i++) {
		if (i == warm) {
			vn_loop_get_stats(vn_iothread_loop(it), &s0);
			cpu0 = vn_iothread_cpu_ns(it);
			t0 = vn_now_ns();
		}
		uint64_t start = vn_now_ns();
		if ((r = vn_notifier_set(&k.req)) < 0 || (r = wait_resp(&k, spin)) < 0) {
			fprintf(stderr, "kick: round trip %llu failed: %s\n", (unsigned long long)i,
				vn_strerror(r));
			goto out;
		}
		if (i >= warm)
			lat[i - warm] = vn_now_ns() - start;
	}
	uint64_t run_wall = vn_now_ns() - t0, run_cpu = vn_iothread_cpu_ns(it) - cpu0;
	vn_loop_get_stats(vn_iothread_loop(it), &s1);

	/* Idle: no kicks at all; what does the iothread cost now? */
	uint64_t i_cpu0 = vn_iothread_cpu_ns(it), i_t0 = vn_now_ns();
	if (idle_ms)
		poll(NULL, 0, (int)idle_ms);
	uint64_t idle_wall = vn_now_ns() - i_t0, idle_cpu = vn_iothread_cpu_ns(it) - i_cpu0;
	double idle_pct = idle_ms ? 100.0 * (double)idle_cpu / (double)idle_wall : 0.0;
	double run_pct = 100.0 * (double)run_cpu / (double)run_wall;

	uint64_t p50 = bench_quantile(lat, iters, 0.50), p99 = bench_quantile(lat, iters, 0.99);
	uint64_t p999 = bench_quantile(lat, iters, 0.999), pmin = lat[0], pmax = lat[iters - 1];
	uint64_t waits = s1.epoll_waits - s0.epoll_waits, hits = s1.poll_hits - s0.poll_hits;
	const char *mode = poll_mode ? "poll" : "event";

	if (json) {
		printf("{\"mode\": \"%s\", \"iterations\": %llu, \"client\": \"%s\", "
		       "\"poll_max_ns\": %llu, \"p50_ns\": %llu, \"p99_ns\": %llu, "
		       "\"p999_ns\": %llu, \"min_ns\": %llu, \"max_ns\": %llu, "
		       "\"idle_cpu_pct\": %.2f, \"run_cpu_pct\": %.1f, "
		       "\"epoll_waits_per_kick\": %.3f, \"poll_hits_per_kick\": %.3f, "
		       "\"cpus\": %ld}\n",
		       mode, (unsigned long long)iters, spin ? "spin" : "block",
		       (unsigned long long)cfg.poll_max_ns, (unsigned long long)p50,
		       (unsigned long long)p99, (unsigned long long)p999, (unsigned long long)pmin,
		       (unsigned long long)pmax, idle_pct, run_pct,
		       (double)waits / (double)iters, (double)hits / (double)iters,
		       sysconf(_SC_NPROCESSORS_ONLN));
	} else {
		bench_print_machine();
		printf("kick round trip, mode %s (poll_max_ns %llu), client %s, %llu iterations\n",
		       mode, (unsigned long long)cfg.poll_max_ns, spin ? "spins" : "blocks",
		       (unsigned long long)iters);
		printf("  p50 %8llu ns   p99 %8llu ns   p99.9 %8llu ns   min %llu   max %llu\n",
		       (unsigned long long)p50, (unsigned long long)p99, (unsigned long long)p999,
		       (unsigned long long)pmin, (unsigned long long)pmax);
		printf("  iothread: %.1f%% CPU while kicked, %.2f%% CPU idle (%llu ms)\n", run_pct,
		       idle_pct, (unsigned long long)idle_ms);
		printf("  per kick: %.3f epoll_waits, %.3f poll hits\n",
		       (double)waits / (double)iters, (double)hits / (double)iters);
	}
	ret = 0;
	a.detach = true;
	if (vn_iothread_run_sync(it, attach, &a) < 0)
		ret = 1;
out:
	vn_iothread_free(it);
	vn_notifier_cleanup(&k.req);
	vn_notifier_cleanup(&k.resp);
	free(lat);
	return ret;
}
