/* SPDX-License-Identifier: MIT */
#include "base/notifier.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
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

/* Only an eventfd from a peer, made non-blocking; set never blocks. */
static void test_peer_fd(struct vn_t *t)
{
	uint64_t max = 0xfffffffffffffffeull, v;
	struct vn_notifier n = VN_NOTIFIER_INIT;
	const char *why;
	int p[2], fd, sv[2];
	char path[] = "/tmp/vn-notifier-XXXXXX";

	VN_REQUIRE(t, pipe2(p, O_CLOEXEC) == 0);
	VN_CHECK_EQ_INT(t, vn_notifier_check_peer_fd(p[1], &why), -EINVAL);
	VN_CHECK(t, strcmp(why, "a pipe") == 0);
	close(p[0]);
	close(p[1]);
	VN_REQUIRE(t, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	VN_CHECK_EQ_INT(t, vn_notifier_check_peer_fd(sv[0], &why), -EINVAL);
	VN_CHECK(t, strcmp(why, "a socket") == 0);
	close(sv[0]);
	close(sv[1]);
	fd = mkostemp(path, O_CLOEXEC);
	VN_REQUIRE(t, fd >= 0);
	unlink(path);
	VN_CHECK_EQ_INT(t, vn_notifier_check_peer_fd(fd, &why), -EINVAL);
	VN_CHECK(t, strcmp(why, "a regular file") == 0);
	close(fd);
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	VN_REQUIRE(t, fd >= 0);
	VN_CHECK_EQ_INT(t, vn_notifier_check_peer_fd(fd, &why), -EINVAL);
	close(fd);
	VN_CHECK_EQ_INT(t, vn_notifier_check_peer_fd(-1, &why), -EBADF);

	/* A blocking eventfd at its maximum: accepted, made non-blocking. */
	fd = eventfd(0, EFD_CLOEXEC);
	VN_REQUIRE(t, fd >= 0 && write(fd, &max, 8) == 8);
	VN_CHECK_OK(t, vn_notifier_check_peer_fd(fd, &why));
	VN_CHECK(t, fcntl(fd, F_GETFL) & O_NONBLOCK);
	/* The peer makes it blocking again behind our back: set still returns. */
	VN_REQUIRE(t, fcntl(fd, F_SETFL, 0) == 0);
	VN_REQUIRE_OK(t, vn_notifier_init_peer_fd(&n, fd));
	VN_CHECK_EQ_INT(t, vn_notifier_set(&n), 0);
	VN_REQUIRE(t, read(fd, &v, 8) == 8);
	VN_CHECK_EQ_U(t, v, max);
	VN_CHECK_EQ_INT(t, vn_notifier_set(&n), 0); /* not full now: a real write */
	VN_REQUIRE(t, read(fd, &v, 8) == 8);
	VN_CHECK_EQ_U(t, v, 1);
	/*
	 * The peer left it blocking and empty (it read the count itself after
	 * our epoll said readable): reading returns at once.
	 */
	VN_CHECK(t, vn_notifier_read_peer_fd(fd, &v) < 0 && errno == EAGAIN);
	vn_notifier_cleanup(&n);
}

VN_TESTS(VN_TEST(test_set_then_test_and_clear), VN_TEST(test_cloexec_nonblock),
	 VN_TEST(test_cleanup_twice_and_fd_released), VN_TEST(test_errors_are_negative_errno),
	 VN_TEST(test_adopted_fd_is_owned), VN_TEST(test_peer_fd))
