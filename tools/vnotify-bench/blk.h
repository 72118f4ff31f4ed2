/* SPDX-License-Identifier: MIT */
#ifndef VN_TOOLS_BENCH_BLK_H
#define VN_TOOLS_BENCH_BLK_H

/*
 * vnotify-bench blk, in three parts: bench-blk.c (options, the image,
 * repeats and the matrix), blk-workload.c (the rig and the per-vCPU I/O
 * loop, one run) and blk-report.c (medians, text, JSON and the plot).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <vnotify/blk.h>

#define BLK_MAX_VCPUS 16
#define BLK_MAX_DEPTH 128
#define BLK_MAX_REPEAT 31

enum blk_rw_mode { RW_RANDREAD, RW_RANDWRITE, RW_READ, RW_WRITE, RW_RANDRW };
/* The --rw names, indexed by enum blk_rw_mode (BLK_RW_MODES of them). */
#define BLK_RW_MODES 5
extern const char *const blk_rw_names[BLK_RW_MODES];

struct blk_opts {
	bool ioeventfd;
	unsigned int vcpus, queues, iodepth, iothreads, repeat;
	uint64_t bs, runtime_ms, size, guest_work_ns, poll_max_ns;
	uint64_t idle_ms;	/* after the run: iothread CPU while idle this long */
	enum blk_rw_mode rw;
	const char *image;
	bool direct, json, matrix, legacy;
	const char *plot;
	const char *json_file;
	enum vn_blk_backend backend;
};

/* One run of one notify mode. */
struct blk_result {
	const char *backend; /* what the device chose: io_uring or the pool */
	bool ioeventfd;
	unsigned int vcpus, iodepth;
	double iops, mibps, p50_us, p99_us, p999_us;
	double kicks_per_req, irqs_per_req, exits_per_req, notify_ns_per_kick;
	double guest_work_per_s, guest_work_frac;
	double io_cpu_frac;	/* the first iothread's CPU time / wall time, in the run */
	double idle_cpu_frac;	/* the same while idle (--idle-ms) */
	uint64_t reqs, errors;
};

/* Median over repeats (by IOPS), with the min and max IOPS and guest work. */
struct blk_summary {
	struct blk_result med;
	double iops_min, iops_max, gw_min, gw_max;
};

/* blk-workload.c: build the rig, run @o's workload once, tear down. Return: 0 or -errno. */
int blk_run_once(const struct blk_opts *o, struct blk_result *res);

/* blk-report.c */
/* Summarises @n runs of one point: the run with the median IOPS, min/max. */
void blk_summarise(const struct blk_result *rs, unsigned int n, struct blk_summary *s);
void blk_print_json(FILE *f, const struct blk_opts *o, const struct blk_summary *s, bool comma);
void blk_print_text(const struct blk_opts *o, const struct blk_summary *s);
/* The matrix's closing table: sync against ioeventfd per vCPU count, with ratios. */
void blk_print_ratios(struct blk_summary s[][2], const unsigned int *vc, unsigned int n);
/* Draws the matrix into @o->plot with gnuplot. Return: 0 or -errno. */
int blk_plot(const struct blk_opts *o, struct blk_summary s[][2], const unsigned int *vc,
	     unsigned int n);

#endif
