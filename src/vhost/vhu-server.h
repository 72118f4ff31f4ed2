/* SPDX-License-Identifier: MIT */
#ifndef VN_VHOST_VHU_SERVER_H
#define VN_VHOST_VHU_SERVER_H

/*
 * The vhost-user backend protocol core (QEMU's docs/interop/vhost-user.rst).
 *
 * It consumes whole messages (header, payload, received fds) and produces the
 * replies; it owns neither the socket nor the control loop (CONTRIBUTING.md
 * "API shape"), so tests and the fuzzer drive it directly and vhu-conn.c is a
 * thin adapter around it.
 *
 * Threads. The core is driven from one control thread at a time (the
 * connection's iothread, or a test). Queue q runs on iothreads[q % n]: its
 * kick fd (the frontend's ioeventfd) is handed to the queue-notifier engine
 * (virtio/hostnotif.h) as that queue's source and watched there, and a ring
 * given without a kick fd is polled there by the engine's timer. The core
 * reaches a queue's thread only through vn_iothread_run_sync(), which runs
 * inline when the caller is that thread or nobody runs the loop.
 *
 * Rings follow the spec's three states: stopped (initially, and after
 * GET_VRING_BASE), started (SET_VRING_KICK with an fd or the "no fd" flag),
 * and enabled: at once without VHOST_USER_F_PROTOCOL_FEATURES, else only
 * after SET_VRING_ENABLE 1. A ring is processed only when started and
 * enabled.
 *
 * The device is driven through the vring-level interface (virtio/vdev.h):
 * activated with the acked features when the first ring starts, each queue
 * started from its ring state and stopped (quiesced, its state handed back)
 * by GET_VRING_BASE; the device's quiesce_queue op finishes its requests.
 * Queue q interrupts the frontend through vector q, whose eventfd is the call
 * fd (vn_vdev_set_guest_notifier_fd()); the device needs at least as many
 * vectors as queues, MSI-X style.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vnotify/iothread.h>
#include <vnotify/vdev.h>
#include <vnotify/vhost-user.h>

#include "base/compiler.h"
#include "vhost/vhu-msg.h"

struct vn_vhu_server;

/**
 * struct vn_vhu_server_cfg - a protocol core for one device
 * @name: for logs; NULL gives the device's name
 * @vdev: the device, with no guest memory bound: the server binds its own
 *        map, filled from SET_MEM_TABLE, for its lifetime. Must outlive the
 *        server.
 * @iothreads: queue q runs on @iothreads[q % @nr_iothreads]; at least one
 * @nr_iothreads: entries of @iothreads
 * @poll_ns: period of the avail-ring poll for rings without a kick fd
 *           (0: 100 us)
 * @drain_timeout_ns: how long GET_VRING_BASE, a memory table change or a
 *           disconnect wait for the device's requests in flight (0: 30 s),
 *           after the device's quiesce_queue op returned
 * @safety_net_ns: period of the missed-kick safety net of each running ring
 *           with a kick fd (hostnotif); 0: off
 * @no_inflight: leave VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD out of the
 *           offered protocol features (GET/SET_INFLIGHT_FD are then refused)
 */
struct vn_vhu_server_cfg {
	const char *name;
	struct vn_vdev *vdev;
	struct vn_iothread *const *iothreads;
	unsigned int nr_iothreads;
	uint64_t poll_ns;
	uint64_t drain_timeout_ns;
	uint64_t safety_net_ns;
	bool no_inflight;
};

/**
 * vn_vhu_server_new() - create a core in the disconnected state
 * Return: 0, -EINVAL (bad @cfg, or fewer vectors than queues), -EBUSY (the
 * device has another transport's memory bound), -ENOMEM, or -errno from
 * timer creation.
 * Context: a thread that may wait for the queues' iothreads
 * (vn_iothread_run_sync()): the control thread, or one of them.
 */
VN_MUST_CHECK int vn_vhu_server_new(const struct vn_vhu_server_cfg *cfg,
				    struct vn_vhu_server **out);

/**
 * vn_vhu_server_free() - disconnect (if connected) and free; NULL is fine
 * Context: the control thread; the queues' iothreads still exist.
 */
void vn_vhu_server_free(struct vn_vhu_server *srv);

/**
 * vn_vhu_server_process() - handle one message from the frontend
 * @msg: a whole message; its header must have passed vn_vhu_msg_check_hdr()
 *       (a header that does not is treated as a protocol error here too).
 *       Every fd it carries is consumed: kept by the server or closed.
 * @reply: filled with the reply, if any
 * @reply_len: bytes of @reply to send, header included; 0 for no reply
 *
 * Return: 0 to carry on (send the reply first), or -EPROTO: the peer broke
 * the protocol in a way it cannot be told about; the caller must send
 * nothing more, drop the connection and call vn_vhu_server_disconnect().
 * Context: the control thread.
 */
VN_MUST_CHECK int vn_vhu_server_process(struct vn_vhu_server *srv, struct vn_vhu_msg *msg,
					struct vn_vhu_msg *reply, size_t *reply_len);

/**
 * vn_vhu_server_connect() - a frontend connected (counts it, traces)
 * Context: the control thread.
 */
void vn_vhu_server_connect(struct vn_vhu_server *srv);

/**
 * vn_vhu_server_disconnect() - the frontend went away
 *
 * Stops every ring and waits for the requests in flight, resets the device,
 * closes every fd received from the frontend, unmaps its memory and forgets
 * the negotiated state, so the next frontend starts from scratch. Calling it
 * while disconnected does nothing but that.
 * Context: the control thread.
 */
void vn_vhu_server_disconnect(struct vn_vhu_server *srv);

/** vn_vhu_server_get_stats() - counters. Context: any thread. */
void vn_vhu_server_get_stats(const struct vn_vhu_server *srv, struct vn_vhu_stats *out);

/**
 * vn_vhu_server_get_queue_stats() - counters and state of queue @q
 * Return: 0 or -EINVAL for a bad @q. Context: any thread.
 */
VN_MUST_CHECK int vn_vhu_server_get_queue_stats(const struct vn_vhu_server *srv, unsigned int q,
						struct vn_vhu_queue_stats *out);

/** vn_vhu_server_nr_queues() - queues of the device */
unsigned int vn_vhu_server_nr_queues(const struct vn_vhu_server *srv);

/** vn_vhu_server_features() - what GET_FEATURES answers */
uint64_t vn_vhu_server_features(const struct vn_vhu_server *srv);

/** vn_vhu_server_protocol_features() - what GET_PROTOCOL_FEATURES answers */
uint64_t vn_vhu_server_protocol_features(const struct vn_vhu_server *srv);

#endif
