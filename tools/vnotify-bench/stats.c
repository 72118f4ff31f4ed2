/* SPDX-License-Identifier: MIT */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t bench_quantile(uint64_t *v, size_t n, double q)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), bench_cmp_u64);
	i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static int parse_scaled(const char *s, uint64_t base, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		mul = base;
		end++;
		break;
	case 'm': case 'M':
		mul = base * base;
		end++;
		break;
	case 'g': case 'G':
		mul = base * base * base;
		end++;
		break;
	default:
		return -EINVAL;
	}
	if (*end == 'i' || *end == 'B' || *end == 'b')
		end++;
	if (*end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	if (__builtin_mul_overflow((uint64_t)v, mul, out))
		return -EINVAL;
	return 0;
}

int bench_parse_size(const char *s, uint64_t *out)
{
	return parse_scaled(s, 1024, out);
}

int bench_parse_count(const char *s, uint64_t *out)
{
	return parse_scaled(s, 1000, out);
}

void bench_print_machine(void)
{
	struct utsname u;

	if (uname(&u) != 0)
		memset(&u, 0, sizeof(u));
	printf("machine: %ld cpus online, %s %s %s\n", sysconf(_SC_NPROCESSORS_ONLN), u.sysname,
	       u.release, u.machine);
}
