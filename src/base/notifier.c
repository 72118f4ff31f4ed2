/* SPDX-License-Identifier: MIT */
#include "base/notifier.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

int vn_notifier_init(struct vn_notifier *n)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	n->fd = fd;
	return 0;
}

int vn_notifier_init_fd(struct vn_notifier *n, int fd)
{
	if (fd < 0)
		return -EBADF;
	n->fd = fd;
	return 0;
}

void vn_notifier_cleanup(struct vn_notifier *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}

int vn_notifier_set(struct vn_notifier *n)
{
	uint64_t one = 1;

	for (;;) {
		ssize_t r = write(n->fd, &one, sizeof(one));

		if (r == (ssize_t)sizeof(one))
			return 0;
		if (r < 0 && errno == EINTR)
			continue;
		/*
		 * EAGAIN means the counter is at its maximum: the notifier is
		 * already set, which is all a signal has to achieve.
		 */
		if (r < 0 && errno == EAGAIN)
			return 0;
		return r < 0 ? -errno : -EIO;
	}
}

int vn_notifier_test_and_clear(struct vn_notifier *n)
{
	uint64_t v;

	for (;;) {
		ssize_t r = read(n->fd, &v, sizeof(v));

		if (r == (ssize_t)sizeof(v))
			return 1;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return 0;
		return r < 0 ? -errno : -EIO;
	}
}
