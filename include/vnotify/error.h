/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_ERROR_H
#define VN_VNOTIFY_ERROR_H

/*
 * Error conventions of the whole vnotify API. They are stable: a code keeps
 * the meaning listed here across releases.
 *
 * Every fallible function returns an int: 0 (or a non-negative count, as
 * its documentation says) on success, a negative errno value on failure;
 * never a bool for success, never errno set on the side. Fallible functions
 * are VN_MUST_CHECK. Constructors (vn_*_new()) take an out parameter that is
 * written only on success, and a failed constructor leaves nothing to free.
 * Destructors (vn_*_free()) accept NULL and cannot fail. Nothing in the
 * library calls exit() or abort() on a guest's or peer's value, or prints
 * to stdout (log lines go to the sink of <vnotify/log.h>). This header
 * includes <errno.h>, so the codes can be compared as they are.
 *
 * Codes with a fixed meaning:
 *
 *   -EINVAL    a malformed argument or guest/peer value
 *   -ENOMEM    out of memory; nothing was changed
 *   -EBADF     a negative or unusable file descriptor was passed
 *   -EEXIST    ioeventfd assign collides with an existing entry (KVM's
 *              rule); a guest memory region overlaps another
 *   -ENOENT    ioeventfd deassign names no existing entry exactly; no
 *              guest memory region starts at that address
 *   -ENOSPC    the ioeventfd table (or another bounded table) is full
 *   -EBUSY     the resource is taken (a PCI slot; a device that another
 *              transport has bound)
 *   -EPERM     the device's state forbids it now (driver features written
 *              after FEATURES_OK, a read-only config space)
 *   -EFAULT    a guest address outside guest memory
 *   -ELOOP     a descriptor chain longer than its queue (a loop)
 *   -E2BIG     a descriptor chain needs more iovecs than the caller gave
 *   -EIO       the queue is broken (its device needs a reset) or not ready
 *   -ENXIO     the device has no guest memory bound, so its queues cannot
 *              start (see vn_vdev_bind_mem())
 *   -EPROTO    a vhost-user message out of protocol order
 *   -ESHUTDOWN the target thread or loop has stopped
 *   -ENOSYS, -EOPNOTSUPP   the host (kernel, KVM, io_uring) lacks a feature
 *
 * Any other negative errno comes from the system call named in the
 * function's documentation, unchanged.
 */

#include <errno.h>

#ifdef __GNUC__
#define VN_MUST_CHECK __attribute__((warn_unused_result))
#else
#define VN_MUST_CHECK
#endif

/**
 * vn_strerror() - describe a vnotify return code
 * @err: a negative errno as returned by a vnotify function (or 0)
 *
 * Return: a static string; never NULL.
 */
const char *vn_strerror(int err);

#endif
