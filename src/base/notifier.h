/* SPDX-License-Identifier: MIT */
#ifndef VN_BASE_NOTIFIER_H
#define VN_BASE_NOTIFIER_H

#include <stdbool.h>

#include "base/compiler.h"

/*
 * An eventfd used as a doorbell: the host notifier of a virtqueue (the
 * guest's kick lands here) or a guest notifier (the device interrupts the
 * guest through it). Non-blocking, so test_and_clear never sleeps.
 */
struct vn_notifier {
	int fd;
};

#define VN_NOTIFIER_INIT { .fd = -1 }

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
