/* SPDX-License-Identifier: MIT */
/*
 * vnotify-bench blk: virtio-blk throughput, synchronous notify against
 * ioeventfd + iothread, on the soft machine. This file: the options, the
 * temporary image, repeats and the matrix; one run is blk-workload.c, the
 * output blk-report.c.
 */
#include "blk.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vnotify/log.h>

#include "base/compiler.h"
#include "base/log.h"
#include "bench.h"

static int make_image(struct blk_opts *o, char *path, size_t cap)
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

/*
 * Runs both notify modes (or just @o's) @o->repeat times, alternating them
 * run by run, so the machine's noise lands on both alike.
 */
static int run_point(struct blk_opts *o, bool both, struct blk_summary *sync_s, struct blk_summary *ioev_s)
{
	struct blk_result rs[2][BLK_MAX_REPEAT + 1];
	bool want = o->ioeventfd;
	int r;

	memset(rs, 0, sizeof(rs));
	for (unsigned int i = 0; i < o->repeat; i++) {
		for (int mode = 0; mode < 2; mode++) {
			if (!both && mode != (int)want)
				continue;
			o->ioeventfd = mode == 1;
			r = blk_run_once(o, &rs[mode][i]);
			if (r < 0)
				return r;
		}
	}
	o->ioeventfd = want;
	if (both || !want)
		blk_summarise(rs[0], o->repeat, sync_s);
	if (both || want)
		blk_summarise(rs[1], o->repeat, ioev_s);
	return 0;
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
		"  --idle-ms MS             after each run, the iothread's CPU while idle MS ms\n"
		"  --guest-work-ns NS       guest code each vCPU spins between submissions (default 0)\n"
		"  --backend auto|uring|pool  the image backend (default auto)\n"
		"  --legacy                 drive the legacy virtio-pci interface\n"
		"  --repeat R               runs per point; median with min/max (default 1, max 31)\n"
		"  --matrix                 sync vs ioeventfd at 1, 2, 4 vCPUs, with ratios\n"
		"  --plot FILE.png          draw the matrix (needs gnuplot)\n"
		"  --json                   JSON (an array with --matrix) instead of text\n"
		"  --json-file FILE         also write the JSON to FILE, from the same runs\n",
		BLK_MAX_VCPUS, BLK_MAX_DEPTH);
}

static int parse(int argc, char **argv, struct blk_opts *o)
{
	static const struct option lo[] = {
		{ "notify", required_argument, NULL, 'n' }, { "vcpus", required_argument, NULL, 'v' },
		{ "queues", required_argument, NULL, 'q' }, { "iodepth", required_argument, NULL, 'd' },
		{ "bs", required_argument, NULL, 'b' }, { "rw", required_argument, NULL, 'w' },
		{ "runtime", required_argument, NULL, 't' }, { "image", required_argument, NULL, 'i' },
		{ "size", required_argument, NULL, 's' }, { "direct", no_argument, NULL, 'D' },
		{ "iothreads", required_argument, NULL, 'k' },
		{ "poll-max-ns", required_argument, NULL, 'P' },
		{ "idle-ms", required_argument, NULL, 'I' },
		{ "guest-work-ns", required_argument, NULL, 'g' },
		{ "backend", required_argument, NULL, 'B' }, { "legacy", no_argument, NULL, 'L' },
		{ "repeat", required_argument, NULL, 'r' }, { "matrix", no_argument, NULL, 'm' },
		{ "plot", required_argument, NULL, 'p' }, { "json", no_argument, NULL, 'j' },
		{ "json-file", required_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' }, { 0 },
	};
	uint64_t x;
	int c;

	*o = (struct blk_opts){ .ioeventfd = true, .vcpus = 1, .iodepth = 16, .iothreads = 1,
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
			if (bench_parse_count(optarg, &x) < 0 || x < 1 || x > BLK_MAX_VCPUS)
				BAD("--vcpus wants 1..16");
			o->vcpus = (unsigned int)x;
			break;
		case 'q':
			if (bench_parse_count(optarg, &x) < 0 || x < 1 || x > 64)
				BAD("--queues wants 1..64");
			o->queues = (unsigned int)x;
			break;
		case 'd':
			if (bench_parse_count(optarg, &x) < 0 || x < 1 || x > BLK_MAX_DEPTH)
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

			for (unsigned int i = 0; i < BLK_RW_MODES; i++)
				if (strcmp(optarg, blk_rw_names[i]) == 0) {
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
		case 'I':
			if (bench_parse_count(optarg, &o->idle_ms) < 0 || o->idle_ms > 600000)
				BAD("--idle-ms wants 0..600000");
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
			if (bench_parse_count(optarg, &x) < 0 || x < 1 || x > BLK_MAX_REPEAT)
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
	struct blk_opts o;
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
		       blk_rw_names[o.rw], o.bs, o.iodepth, (double)o.runtime_ms / 1000, o.repeat,
		       o.guest_work_ns, o.image, o.direct ? " (O_DIRECT)" : " (page cache)",
		       o.legacy ? "legacy" : "modern", o.iothreads, o.poll_max_ns);
	}
	if (!o.matrix) {
		struct blk_summary s_sync, s_ioev, *sp = o.ioeventfd ? &s_ioev : &s_sync;
		struct blk_summary s;

		if (!o.queues)
			o.queues = o.vcpus;
		r = run_point(&o, false, &s_sync, &s_ioev);
		s = *sp;
		if (r == 0) {
			if (o.json)
				blk_print_json(stdout, &o, &s, false);
			else
				blk_print_text(&o, &s);
			if (jf)
				blk_print_json(jf, &o, &s, false);
		}
	} else {
		struct blk_summary s[3][2];
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
					blk_print_json(stdout, &o, &s[i][mode], comma);
				else
					blk_print_text(&o, &s[i][mode]);
				if (jf)
					blk_print_json(jf, &o, &s[i][mode], comma);
			}
		}
		if (o.json)
			printf("]\n");
		if (jf)
			fprintf(jf, "]\n");
		if (r == 0 && !o.json)
			blk_print_ratios(s, matrix_vcpus, n);
		if (r == 0 && o.plot) {
			if (blk_plot(&o, s, matrix_vcpus, n) < 0)
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
