/* SPDX-License-Identifier: MIT */
/*
 * vnotify-bench: measurements for vnotify's claims. Each subcommand measures
 * one thing and can print JSON; see vnotify-bench --help.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vnotify/log.h>

#include "bench.h"

static const struct bench_cmd cmds[] = {
	{ .name = "kick", .summary = "eventfd kick round trip through an iothread (event vs poll)",
	  .main = bench_kick_main },
	{ .name = "blk", .summary = "virtio-blk IOPS and guest work: sync notify vs ioeventfd",
	  .main = bench_blk_main },
	{ .name = "dispatch", .summary = "ns per guest write through the bus dispatcher",
	  .main = bench_dispatch_main },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vnotify-bench COMMAND [OPTIONS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f, "\nvnotify-bench COMMAND --help shows the options of a command.\n"
		   "VNOTIFY_TRACE=name,prefix_* turns trace points on (they go to stderr).\n");
}

int main(int argc, char **argv)
{
	const char *trace = getenv("VNOTIFY_TRACE");

	/* VNOTIFY_TRACE=hostnotif_*,ioev_* (CONTRIBUTING.md "Logging and trace points") */
	if (trace && *trace && vn_trace_enable(trace) < 0) {
		fprintf(stderr, "vnotify-bench: VNOTIFY_TRACE='%s' names no trace point "
			"(see src/base/trace-events.h)\n", trace);
		return 2;
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].main(argc - 1, argv + 1);
	fprintf(stderr, "vnotify-bench: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
