/* SPDX-License-Identifier: MIT */
#ifndef VN_TOOLS_BENCH_H
#define VN_TOOLS_BENCH_H

#include <stddef.h>
#include <stdint.h>

/*
 * One subcommand of vnotify-bench. Each lives in bench-<name>.c and is listed
 * in main.c's table. argv[0] is the subcommand's name. Returns the process
 * exit status (0 ok, 1 failure, 2 usage error).
 */
struct bench_cmd {
	const char *name;
	const char *summary;
	int (*main)(int argc, char **argv);
};

int bench_kick_main(int argc, char **argv);
int bench_dispatch_main(int argc, char **argv);
int bench_blk_main(int argc, char **argv);

/* Shared helpers (stats.c). */
int bench_cmp_u64(const void *a, const void *b);
/* Sorts @v in place and returns its q-quantile (0 <= q <= 1); 0 if n is 0. */
uint64_t bench_quantile(uint64_t *v, size_t n, double q);
/* Parses "4k", "1M", "512" (powers of 1024) into *out; -EINVAL if malformed. */
int bench_parse_size(const char *s, uint64_t *out);
/* Parses a non-negative integer with optional k/M/G (powers of 1000); -EINVAL if malformed. */
int bench_parse_count(const char *s, uint64_t *out);
/* Prints the machine line: cores, kernel. */
void bench_print_machine(void);

#endif
