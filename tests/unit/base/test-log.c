/* SPDX-License-Identifier: MIT */
#include "base/log.h"

#include <errno.h>
#include <string.h>

#include "base/trace.h"
#include "harness.h"

struct capture {
	int lines;
	char last_tag[32];
	char last[512];
};

static void sink(void *opaque, enum vn_log_level level, const char *tag, const char *msg)
{
	struct capture *c = opaque;

	c->lines++;
	snprintf(c->last_tag, sizeof(c->last_tag), "%s", tag);
	snprintf(c->last, sizeof(c->last), "%s", msg);
}

static void test_level_filter(struct vn_t *t)
{
	struct capture c = { 0 };

	vn_log_set_sink(sink, &c);
	vn_log_set_level(VN_LOG_WARN);
	vn_log(VN_LOG_INFO, "x", "dropped %d", 1);
	VN_CHECK_EQ_INT(t, c.lines, 0);
	vn_log(VN_LOG_ERR, "x", "kept %d", 2);
	VN_CHECK_EQ_INT(t, c.lines, 1);
	VN_CHECK(t, strcmp(c.last, "kept 2") == 0);
	vn_log_set_level(VN_LOG_INFO);
	vn_log_set_sink(NULL, NULL);
}

static void test_level_parse(struct vn_t *t)
{
	VN_CHECK_EQ_INT(t, vn_log_level_parse("debug"), VN_LOG_DEBUG);
	VN_CHECK_EQ_INT(t, vn_log_level_parse("WARN"), VN_LOG_WARN);
	VN_CHECK_EQ_INT(t, vn_log_level_parse("loud"), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_log_level_parse(NULL), -EINVAL);
}

static void test_ratelimit(struct vn_t *t)
{
	struct capture c = { 0 };
	struct vn_ratelimit rl;

	vn_log_set_sink(sink, &c);
	vn_ratelimit_init(&rl, 3);
	for (int i = 0; i < 100; i++)
		vn_log_limited(&rl, VN_LOG_WARN, "guest", "bad descriptor %d", i);
	VN_CHECK_EQ_INT(t, c.lines, 3);
	VN_CHECK_EQ_U(t, rl.suppressed, 97);
	/* a new window reports how many were dropped before the next line */
	rl.window_start_ns -= 2000000000ull;
	vn_log_limited(&rl, VN_LOG_WARN, "guest", "again");
	VN_CHECK_EQ_INT(t, c.lines, 5);
	VN_CHECK(t, strcmp(c.last, "again") == 0);
	vn_ratelimit_destroy(&rl);
	vn_log_set_sink(NULL, NULL);
}

/*
 * Per reason: a burst of one reason past the limit does not hide another
 * reason, each new reason once a window, at most VN_RATELIMIT_KEYS of them.
 */
static void test_ratelimit_per_reason(struct vn_t *t)
{
	struct capture c = { 0 };
	struct vn_ratelimit rl;
	char text[64];

	vn_log_set_sink(sink, &c);
	vn_ratelimit_init(&rl, 3);
	for (int i = 0; i < 50; i++)
		vn_log_limited_key(&rl, 1, VN_LOG_WARN, "vhu", "nregions %d", i);
	VN_CHECK_EQ_INT(t, c.lines, 3);
	vn_log_limited_key(&rl, 2, VN_LOG_WARN, "vhu", "fd count");
	VN_CHECK_EQ_INT(t, c.lines, 4);
	VN_CHECK(t, strcmp(c.last, "fd count") == 0);
	vn_log_limited_key(&rl, 2, VN_LOG_WARN, "vhu", "fd count again");
	VN_CHECK_EQ_INT(t, c.lines, 4); /* seen in this window */
	/* a flood of distinct reasons is bounded */
	for (int i = 0; i < 100; i++)
		vn_log_limited_key(&rl, 100 + (uint64_t)i, VN_LOG_WARN, "vhu", "reason %d", i);
	VN_CHECK_EQ_INT(t, c.lines, 4 + VN_RATELIMIT_KEYS - 2);
	/* the next window forgets the reasons */
	rl.window_start_ns -= 2000000000ull;
	vn_log_limited_key(&rl, 2, VN_LOG_WARN, "vhu", "fd count");
	VN_CHECK(t, strcmp(c.last, "fd count") == 0);
	vn_ratelimit_destroy(&rl);
	vn_log_set_sink(NULL, NULL);

	/* the reason key ignores the values */
	snprintf(text, sizeof(text), "region %u: size 0x%x", 3u, 0x1000u);
	VN_CHECK_EQ_U(t, vn_log_reason_key(5, text), vn_log_reason_key(5, "region 7: size 0xabc0"));
	VN_CHECK(t, vn_log_reason_key(5, text) != vn_log_reason_key(6, text));
	VN_CHECK(t, vn_log_reason_key(5, "fd count 1, want 2") !=
			    vn_log_reason_key(5, "nregions 0 (with 1 fds), want 1..8"));
}

static void test_trace_patterns(struct vn_t *t)
{
	struct capture c = { 0 };

	vn_log_set_sink(sink, &c);
	VN_CHECK_EQ_INT(t, vn_trace_enable("no_such_point"), -EINVAL);
	VN_CHECK(t, vn_trace_enable("ioev_*") >= 2);
	VN_CHECK(t, vn_trace_is_on(ioev_assign));
	VN_CHECK(t, !vn_trace_is_on(loop_fd_add));
	vn_trace(loop_fd_add, "fd=%d", 3);
	VN_CHECK_EQ_INT(t, c.lines, 0);
	/* trace lines bypass the log level: they were asked for by name */
	vn_log_set_level(VN_LOG_ERR);
	vn_trace(ioev_assign, "addr=0x%x", 0x10);
	VN_CHECK_EQ_INT(t, c.lines, 1);
	VN_CHECK(t, strcmp(c.last_tag, "trace") == 0);
	VN_CHECK(t, strcmp(c.last, "ioev_assign addr=0x10") == 0);
	VN_CHECK_EQ_INT(t, vn_trace_enable(""), 0);
	VN_CHECK(t, !vn_trace_is_on(ioev_assign));
	vn_log_set_level(VN_LOG_INFO);
	vn_log_set_sink(NULL, NULL);
}

VN_TESTS(VN_TEST(test_level_filter), VN_TEST(test_level_parse), VN_TEST(test_ratelimit), VN_TEST(test_ratelimit_per_reason),
	 VN_TEST(test_trace_patterns))
