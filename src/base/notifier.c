/* SPDX-License-Identifier: MIT */
#include "base/notifier.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

int vn_notifier_init(struct vn_notifier *n)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	n->fd = fd;
	n->peer = false;
	return 0;
}

int vn_notifier_init_fd(struct vn_notifier *n, int fd)
{
	if (fd < 0)
		return -EBADF;
	n->fd = fd;
	n->peer = false;
	return 0;
}

static const char *fd_kind(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFIFO:
		return "a pipe";
	case S_IFSOCK:
		return "a socket";
	case S_IFREG:
		return "a regular file";
	case S_IFDIR:
		return "a directory";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	default:
		return "not an eventfd";
	}
}

int vn_notifier_check_peer_fd(int fd, const char **why)
{
	char path[64], link[64];
	struct stat st;
	ssize_t n;
	int fl;

	*why = "not an eventfd";
	if (fd < 0 || fstat(fd, &st) < 0) {
		*why = "not an open fd";
		return -EBADF;
	}
	/* An eventfd is an anonymous inode: no file type bits. */
	if ((st.st_mode & S_IFMT) != 0) {
		*why = fd_kind(st.st_mode);
		return -EINVAL;
	}
	/* Other anonymous inodes (timerfd, epoll, signalfd) look the same to fstat. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n >= 0) {
		link[n] = 0;
		if (strcmp(link, "anon_inode:[eventfd]") != 0) {
			*why = "an anonymous inode that is not an eventfd";
			return -EINVAL;
		}
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || ((fl & O_ACCMODE) != O_RDWR)) {
		*why = "not open for reading and writing";
		return fl < 0 ? -errno : -EINVAL;
	}
	if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		*why = "cannot be made non-blocking";
		return -errno;
	}
	return 0;
}

ssize_t vn_notifier_read_peer_fd(int fd, uint64_t *v)
{
	struct iovec iov = {.iov_base = v, .iov_len = sizeof(*v)};
	ssize_t n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);

	/* Kernels whose eventfd has no read_iter refuse the flag. */
	if (n < 0 && errno == EOPNOTSUPP)
		n = read(fd, v, sizeof(*v));
	return n;
}

int vn_notifier_init_peer_fd(struct vn_notifier *n, int fd)
{
	if (fd < 0)
		return -EBADF;
	n->fd = fd;
	n->peer = true;
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

	if (n->peer) {
		struct pollfd p = {.fd = n->fd, .events = POLLOUT};

		/*
		 * The peer shares the file description and may have cleared
		 * O_NONBLOCK since we set it: with a full counter the write
		 * would sleep, holding whatever lock our caller holds. Not
		 * writable means a signal is pending: nothing to add.
		 */
		if (poll(&p, 1, 0) == 0)
			return 0;
	}
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
