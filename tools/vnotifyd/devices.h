/* SPDX-License-Identifier: MIT */
#ifndef VND_DEVICES_H
#define VND_DEVICES_H

/*
 * vnotifyd's device types. Each type is a static const struct vn_device_type
 * listed in the table of devices.c (CONTRIBUTING.md "API shape"): its name is
 * its command-line option (--blk), its keys the option's key=value list.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "options.h"

struct vn_vhu_conn;

/**
 * struct vnd_dev - the part of every device the daemon sees; a type embeds
 * it in its own struct
 * @type: the device's type
 * @id: "blk0", from its options
 */
struct vnd_dev {
	const struct vn_device_type *type;
	char id[VND_ID_LEN];
};

/**
 * struct vn_device_type - what a device type provides
 * @name: the option that creates one (--@name) and the prefix of its ids
 * @summary: one line for --help
 * @keys: its key=value list
 * @nr_keys: entries in @keys (at most VND_MAX_KEYS)
 * @check: cross-key checks of a parsed list (every value alone is valid
 *         already); prints what is wrong to stderr. Return 0 or -EINVAL.
 * @create: build and start the device from @o; prints what is wrong (and
 *          how to fix it) to stderr. Once it returns 0 the device is
 *          listening. Return 0 or -errno.
 * @ready: print the device's ready line (to stdout)
 * @stats: print its per-queue stats
 * @destroy: stop accepting, finish the I/O in flight, flush, remove the
 *           socket and free. Return 0, or -errno if flushing failed (the
 *           device is freed all the same).
 */
struct vn_device_type {
	const char *name;
	const char *summary;
	const struct vnd_key *keys;
	unsigned int nr_keys;
	int (*check)(const struct vnd_dev_opts *o);
	int (*create)(const struct vnd_dev_opts *o, struct vnd_dev **out);
	void (*ready)(struct vnd_dev *d, FILE *f);
	void (*stats)(struct vnd_dev *d, FILE *f);
	int (*destroy)(struct vnd_dev *d);
};

extern const struct vn_device_type vn_blk_type;

/**
 * vnd_strerror() - strerror(-@err) starting in lower case, for messages
 * like "cannot open IMG: permission denied"
 * Return: @buf
 */
const char *vnd_strerror(int err, char *buf, size_t len);
#define VND_STRERROR(err) vnd_strerror((err), (char[64]){ 0 }, 64)

/** vnd_device_type() - the @i-th type of the table, NULL past the end */
const struct vn_device_type *vnd_device_type(unsigned int i);

/**
 * vnd_socket_check() - may a new listener take unix socket path @path?
 * @id: the device, for messages
 *
 * Nothing there, or a stale socket nobody listens on (a crashed vnotifyd
 * left it; connect() is refused): yes, the server replaces it. A socket
 * somebody listens on, or a file that is not a socket: no, with a message
 * naming the problem and the fix.
 *
 * Return: 0, or -EADDRINUSE / -errno after printing why.
 */
int vnd_socket_check(const char *id, const char *path);

/**
 * vnd_stats_vhu() - print the vhost-user endpoint line of a device
 * @f: where to
 * @id: the device
 * @conn: its endpoint
 */
void vnd_stats_vhu(FILE *f, const char *id, const struct vn_vhu_conn *conn);

/**
 * vnd_stats_notifier() - the state of queue @q's host notifier in words
 * Return: "kick-fd" (the frontend's kick eventfd is watched by the queue's
 * iothread), "polling" (started without a kick fd), "stopped", or "?".
 */
const char *vnd_stats_notifier(const struct vn_vhu_conn *conn, unsigned int q);

/**
 * vnd_stats_print() - SIGUSR1: the stats of every device, to stderr, in
 * one write so they do not interleave with log lines
 */
void vnd_stats_print(struct vnd_dev *const *devs, unsigned int n);

#endif
