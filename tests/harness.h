/* SPDX-License-Identifier: MIT */
/*
 * vnotify's TAP test harness (CONTRIBUTING.md "Tests"). One header, no fork,
 * so ASan, TSan and gdb see the real process.
 *
 *   static void test_thing(struct vn_t *t) { VN_CHECK_EQ_INT(t, f(), 0); }
 *   VN_TESTS(VN_TEST(test_thing));
 *
 * Checks do not abort: they print file:line and both values and mark the
 * case failed. VN_REQUIRE* returns from the case. A case may skip itself
 * with a reason. Exit status: 0 all passed, 1 something failed, 77 all
 * skipped. Run one case with `./test-x NAME`.
 */
#ifndef VN_TESTS_HARNESS_H
#define VN_TESTS_HARNESS_H

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>

struct vn_t {
	const char *name;
	int failed;
	bool skipped;
	char skip_reason[200];
};

struct vn_test_case {
	const char *name;
	void (*fn)(struct vn_t *t);
};

#define VN_TEST(f) { .name = #f, .fn = f }

static inline void vn_t_fail(struct vn_t *t, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline void vn_t_fail(struct vn_t *t, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("# %s:%d: %s: ", file, line, t->name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	t->failed++;
}

static inline void vn_t_skip(struct vn_t *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline void vn_t_skip(struct vn_t *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->skip_reason, sizeof(t->skip_reason), fmt, ap);
	va_end(ap);
	t->skipped = true;
}

static inline void vn_t_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void vn_t_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

#define VN_CHECK(t, cond)                                                       \
	((cond) ? true : (vn_t_fail(t, __FILE__, __LINE__, "check failed: %s", #cond), false))

#define VN_CHECK_EQ_INT(t, got, want)                                           \
	({                                                                      \
		long long g_ = (long long)(got), w_ = (long long)(want);        \
		bool ok_ = g_ == w_;                                            \
		if (!ok_)                                                       \
			vn_t_fail(t, __FILE__, __LINE__, "%s == %lld, want %s == %lld", \
				  #got, g_, #want, w_);                         \
		ok_;                                                            \
	})

#define VN_CHECK_EQ_U(t, got, want)                                             \
	({                                                                      \
		unsigned long long g_ = (unsigned long long)(got),              \
				   w_ = (unsigned long long)(want);             \
		bool ok_ = g_ == w_;                                            \
		if (!ok_)                                                       \
			vn_t_fail(t, __FILE__, __LINE__, "%s == %llu (0x%llx), want %s == %llu (0x%llx)", \
				  #got, g_, g_, #want, w_, w_);                 \
		ok_;                                                            \
	})

#define VN_CHECK_OK(t, expr)                                                    \
	({                                                                      \
		long long r_ = (long long)(expr);                               \
		bool ok_ = r_ >= 0;                                             \
		if (!ok_)                                                       \
			vn_t_fail(t, __FILE__, __LINE__, "%s failed: %lld (%s)", #expr, r_, \
				  strerror((int)-r_));                          \
		ok_;                                                            \
	})

#define VN_REQUIRE(t, cond) do { if (!VN_CHECK(t, cond)) return; } while (0)
#define VN_REQUIRE_OK(t, expr) do { if (!VN_CHECK_OK(t, expr)) return; } while (0)
#define VN_REQUIRE_EQ_INT(t, got, want) do { if (!VN_CHECK_EQ_INT(t, got, want)) return; } while (0)

/* Open fds of this process, for leak checks around a test body. */
static inline int vn_t_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3; /* ".", ".." and the DIR's own fd */
}

/*
 * Bounded wait for a condition another thread makes true (CONTRIBUTING.md
 * "Tests": never sleep and hope). Returns true if it became true within
 * timeout_ms.
 */
#define VN_WAIT_FOR(cond, timeout_ms)                                            \
	({                                                                       \
		struct timespec s_;                                              \
		clock_gettime(CLOCK_MONOTONIC, &s_);                             \
		bool ok_ = false;                                                \
		for (;;) {                                                       \
			if (cond) { ok_ = true; break; }                         \
			struct timespec n_;                                      \
			clock_gettime(CLOCK_MONOTONIC, &n_);                     \
			if ((n_.tv_sec - s_.tv_sec) * 1000 +                     \
			    (n_.tv_nsec - s_.tv_nsec) / 1000000 > (timeout_ms))  \
				break;                                           \
			poll(NULL, 0, 1);                                        \
		}                                                                \
		ok_;                                                             \
	})

static inline int vn_t_main(int argc, char **argv, const struct vn_test_case *cases, size_t n)
{
	int failed = 0, skipped = 0, run = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n");
	size_t planned = 0;
	for (size_t i = 0; i < n; i++)
		if (argc < 2 || strcmp(argv[1], cases[i].name) == 0)
			planned++;
	printf("1..%zu\n", planned);
	for (size_t i = 0; i < n; i++) {
		if (argc >= 2 && strcmp(argv[1], cases[i].name) != 0)
			continue;
		struct vn_t t = { .name = cases[i].name };
		run++;
		cases[i].fn(&t);
		if (t.failed) {
			printf("not ok %d - %s\n", run, t.name);
			failed++;
		} else if (t.skipped) {
			printf("ok %d - %s # SKIP %s\n", run, t.name, t.skip_reason);
			skipped++;
		} else {
			printf("ok %d - %s\n", run, t.name);
		}
	}
	if (failed)
		return 1;
	if (run > 0 && skipped == run)
		return 77;
	return run > 0 ? 0 : 1;
}

#define VN_TESTS(...)                                                         \
	int main(int argc, char **argv)                                       \
	{                                                                     \
		static const struct vn_test_case cases_[] = { __VA_ARGS__ };  \
		return vn_t_main(argc, argv, cases_,                          \
				 sizeof(cases_) / sizeof(cases_[0]));         \
	}

#endif
