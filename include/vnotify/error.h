/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_ERROR_H
#define VN_VNOTIFY_ERROR_H

/*
 * Error conventions of the whole vnotify API.
 *
 * Every fallible function returns an int: 0 (or a non-negative count) on
 * success, a negative errno value on failure. Constructors take an out
 * parameter that is written only on success. Nothing in the library calls
 * exit() or prints to stdout. Codes with a fixed meaning:
 *
 *   -EINVAL   a malformed argument or guest/peer value
 *   -EEXIST   ioeventfd assign collides with an existing entry (KVM's rule)
 *   -ENOENT   ioeventfd deassign names no existing entry exactly
 *   -ENOSPC   the ioeventfd table (or another bounded table) is full
 *   -EFAULT   a guest address outside guest memory
 *   -ELOOP    a descriptor chain longer than its queue (a loop)
 *   -EPROTO   a vhost-user message out of protocol order
 *   -ESHUTDOWN the target thread or loop has stopped
 */

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
