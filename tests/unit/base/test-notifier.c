/* SPDX-License-Identifier: MIT */
#include "base/notifier.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "harness.h"

static void test_set_then_test_and_clear(struct vn_t *t)
{
	struct vn_notifier n = VN_NOTIFIER_INIT;

	VN_REQUIRE_OK(t, vn_notifier_init(&n));
	VN_CHECK_EQ_INT(t, vn_notifier_test_and_clear(&n), 0);
	VN_CHECK_EQ_INT(t, vn_notifier_set(&n), 0);
	VN_CHECK_EQ_INT(t, vn_notifier_set(&n), 0);
	/* two signals before a read coalesce into one "was set" */
	VN_CHECK_EQ_INT(t, vn_notifier_test_and_clear(&n), 1);
	VN_CHECK_EQ_INT(t, vn_notifier_test_and_clear(&n), 0);
	vn_notifier_cleanup(&n);
}

static void test_cloexec_nonblock(struct vn_t *t)
{
	struct vn_notifier n = VN_NOTIFIER_INIT;

	VN_REQUIRE_OK(t, vn_notifier_init(&n));
	VN_CHECK(t, fcntl(vn_notifier_fd(&n), F_GETFD) & FD_CLOEXEC);
	VN_CHECK(t, fcntl(vn_notifier_fd(&n), F_GETFL) & O_NONBLOCK);
	vn_notifier_cleanup(&n);
}

static void test_cleanup_twice_and_fd_released(struct vn_t *t)
{
	struct vn_notifier n = VN_NOTIFIER_INIT;
	int before = vn_t_count_fds();

	VN_REQUIRE_OK(t, vn_notifier_init(&n));
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), before + 1);
	vn_notifier_cleanup(&n);
	VN_CHECK_EQ_INT(t, vn_notifier_fd(&n), -1);
	vn_notifier_cleanup(&n);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), before);
}

static void test_errors_are_negative_errno(struct vn_t *t)
{
	struct vn_notifier n = VN_NOTIFIER_INIT;
	int fds[2];

	VN_CHECK_EQ_INT(t, vn_notifier_init_fd(&n, -1), -EBADF);
	/* a pipe's read end refuses writes: set must report it, not hide it */
	VN_REQUIRE(t, pipe(fds) == 0);
	VN_REQUIRE_OK(t, vn_notifier_init_fd(&n, fds[0]));
	VN_CHECK_EQ_INT(t, vn_notifier_set(&n), -EBADF);
	vn_notifier_cleanup(&n);
	close(fds[1]);
}

static void test_adopted_fd_is_owned(struct vn_t *t)
{
	struct vn_notifier a = VN_NOTIFIER_INIT, b = VN_NOTIFIER_INIT;

	VN_REQUIRE_OK(t, vn_notifier_init(&a));
	VN_REQUIRE_OK(t, vn_notifier_init_fd(&b, dup(vn_notifier_fd(&a))));
	VN_CHECK_EQ_INT(t, vn_notifier_set(&a), 0);
	/* the same eventfd seen through both: exactly one reader gets it */
	VN_CHECK_EQ_INT(t, vn_notifier_test_and_clear(&b), 1);
	VN_CHECK_EQ_INT(t, vn_notifier_test_and_clear(&a), 0);
	vn_notifier_cleanup(&a);
	vn_notifier_cleanup(&b);
}

VN_TESTS(VN_TEST(test_set_then_test_and_clear), VN_TEST(test_cloexec_nonblock),
	 VN_TEST(test_cleanup_twice_and_fd_released), VN_TEST(test_errors_are_negative_errno),
	 VN_TEST(test_adopted_fd_is_owned))
