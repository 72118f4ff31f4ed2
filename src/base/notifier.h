/* SPDX-License-Identifier: MIT */
#ifndef VN_BASE_NOTIFIER_H
#define VN_BASE_NOTIFIER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/compiler.h"

/*
 * An eventfd used as a doorbell: the host notifier of a virtqueue (the
 * guest's kick lands here) or a guest notifier (the device interrupts the
 * guest through it). Non-blocking, so test_and_clear never sleeps.
 */
struct vn_notifier {
	int fd;
	bool peer; /* a peer's eventfd (vn_notifier_init_peer_fd()) */
};

#define VN_NOTIFIER_INIT { .fd = -1, .peer = false }

/**
 * vn_notifier_init() - create the eventfd
 * Return: 0, or -errno from eventfd(2).
 */
VN_MUST_CHECK int vn_notifier_init(struct vn_notifier *n);

/**
 * vn_notifier_init_fd() - adopt an existing eventfd (a vhost-user kick fd)
 * @fd: the eventfd; ownership moves to @n on success, stays with the caller
 *      on error
 * Return: 0, or -EBADF for a negative fd.
 */
VN_MUST_CHECK int vn_notifier_init_fd(struct vn_notifier *n, int fd);

/**
 * vn_notifier_check_peer_fd() - may a peer's fd become a notifier?
 * @fd: an fd received from a peer (a vhost-user frontend's kick, call or
 *      error fd); still the caller's either way
 * @why: on refusal, what the fd is instead ("a pipe", "a regular file"...)
 *
 * Only an eventfd is accepted: a write to a pipe, a file or a socket can
 * block or mean something else entirely. The fd is made non-blocking (the
 * flag lives in the file description the peer shares: an eventfd written
 * without it blocks when its counter is full).
 * Return: 0, -EINVAL if it is not an eventfd, or -errno from fcntl(2).
 */
VN_MUST_CHECK int vn_notifier_check_peer_fd(int fd, const char **why);

/**
 * vn_notifier_init_peer_fd() - adopt a peer's eventfd, checked by
 * vn_notifier_check_peer_fd()
 * @fd: ownership moves to @n on success, stays with the caller on error
 *
 * vn_notifier_set() on it never blocks, even if the peer clears O_NONBLOCK
 * on its side later: a full counter (checked with poll(2) first) means a
 * signal is pending already, and the signal is dropped.
 * Return: 0, or -EBADF for a negative fd.
 */
VN_MUST_CHECK int vn_notifier_init_peer_fd(struct vn_notifier *n, int fd);

/**
 * vn_notifier_read_peer_fd() - read (consume) a peer's eventfd without ever
 * blocking, even if the peer cleared O_NONBLOCK on the file description it
 * shares with us and emptied the counter after epoll said it was readable
 * @v: receives the counter
 *
 * preadv2(RWF_NOWAIT) where the kernel supports it for eventfds (Linux
 * 5.12+); else read(2), which the O_NONBLOCK set at
 * vn_notifier_check_peer_fd() time keeps from blocking unless the peer
 * took it away again.
 * Return: as read(2): 8, 0, or -1 with errno set (EAGAIN: empty).
 */
ssize_t vn_notifier_read_peer_fd(int fd, uint64_t *v);

/**
 * vn_notifier_cleanup() - close the eventfd; safe on a cleaned-up notifier
 */
void vn_notifier_cleanup(struct vn_notifier *n);

/**
 * vn_notifier_set() - signal (add 1 to the counter)
 * Context: any thread.
 * Return: 0, or -errno.
 */
VN_MUST_CHECK int vn_notifier_set(struct vn_notifier *n);

/**
 * vn_notifier_test_and_clear() - consume pending signals
 *
 * Return: 1 if the notifier was set (the counter is now 0), 0 if it was
 * not, -errno on failure.
 */
VN_MUST_CHECK int vn_notifier_test_and_clear(struct vn_notifier *n);

/** vn_notifier_fd() - the eventfd, for epoll or to hand to a hypervisor */
static inline int vn_notifier_fd(const struct vn_notifier *n)
{
	return n->fd;
}

static inline bool vn_notifier_is_valid(const struct vn_notifier *n)
{
	return n->fd >= 0;
}

#endif
