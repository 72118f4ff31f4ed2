/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_VHOST_USER_H
#define VN_VNOTIFY_VHOST_USER_H

/*
 * vhost-user backend: serve a struct vn_vdev to a vhost-user frontend (QEMU's
 * vhost-user-blk-pci, say) over a unix socket.
 *
 * vn_vhu_conn_new() listens on a socket path and accepts one frontend at a
 * time on an iothread. The frontend's kick eventfds become the queues'
 * host notifiers on the queue iothreads; its call eventfds become the
 * device's interrupt vectors (queue i uses vector i). When the frontend
 * goes away (or breaks the protocol) the device is reset, every fd and
 * mapping it gave is released, and the socket listens again, so a QEMU
 * started with `reconnect=N` finds its way back.
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/error.h>

struct vn_vdev;
struct vn_iothread;
struct vn_vhu_conn;

/**
 * struct vn_vhu_conn_cfg - one device on one socket
 * @name: for logs; NULL gives the device's name
 * @socket_path: where to listen; a stale socket there is replaced
 * @vdev: the device; at least as many interrupt vectors as queues (the
 *        server binds VN_VDEV_IRQ_VECTORS: queue i's call fd is vector i);
 *        no guest memory bound (the server binds its map of the
 *        frontend's memory while it serves the device). Must outlive the conn.
 * @iothread: runs the socket and the protocol; started, outlives the conn
 * @queue_iothreads: queue q runs on @queue_iothreads[q % n]; NULL: all on
 *                   @iothread
 * @nr_queue_iothreads: n
 * @poll_ns: poll period of rings the frontend gives no kick fd (0: 100 us)
 * @no_inflight: do not offer VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD. Without
 *               it a frontend keeps no inflight region, so the requests in
 *               flight when the backend dies are not redone by the next one
 *               (QEMU resumes the ring at its used index). For frontends
 *               that mishandle the feature, and as a test's control case.
 *
 * The device finishes its requests in flight through its own quiesce_queue
 * op when the frontend stops a ring: nothing to wire here.
 */
struct vn_vhu_conn_cfg {
	const char *name;
	const char *socket_path;
	struct vn_vdev *vdev;
	struct vn_iothread *iothread;
	struct vn_iothread *const *queue_iothreads;
	unsigned int nr_queue_iothreads;
	uint64_t poll_ns;
	bool no_inflight;
};

/**
 * struct vn_vhu_stats - counters of a vhost-user endpoint
 * @connections: frontends accepted
 * @disconnects: connections that ended (peer closed, or dropped by us)
 * @messages: messages handled
 * @refused: messages refused (answered with an error, or the peer dropped)
 * @protocol_errors: connections dropped for a protocol error
 * @connected: a frontend is connected now
 * @mem_regions: memory regions mapped now
 * @mem_bytes: bytes of guest memory mapped now
 */
struct vn_vhu_stats {
	uint64_t connections;
	uint64_t disconnects;
	uint64_t messages;
	uint64_t refused;
	uint64_t protocol_errors;
	bool connected;
	unsigned int mem_regions;
	uint64_t mem_bytes;
};

/**
 * struct vn_vhu_queue_stats - one queue
 * @kicks: kick eventfd wake-ups
 * @runs: times the device's queue handler ran
 * @polls: poll timer ticks that found work (rings without a kick fd)
 * @ring_polls: runs found by the iothread's busy poll of the ring, kick-free
 * @started: the ring is started (SET_VRING_KICK, until GET_VRING_BASE)
 * @enabled: the ring is enabled
 * @polling: started without a kick fd
 * @call_fd: the frontend gave a call fd
 */
struct vn_vhu_queue_stats {
	uint64_t kicks;
	uint64_t runs;
	uint64_t polls;
	uint64_t ring_polls;
	bool started;
	bool enabled;
	bool polling;
	bool call_fd;
};

/**
 * vn_vhu_conn_new() - listen for a frontend of @cfg->vdev
 * Return: 0; -EINVAL for a bad @cfg or a path too long for a unix socket;
 * -EADDRINUSE if something that is not a socket is at the path; -EBUSY if
 * the device has another transport's guest memory bound; -ENOMEM;
 * -errno from socket/bind/listen.
 * Context: not on @cfg->iothread.
 */
VN_MUST_CHECK int vn_vhu_conn_new(const struct vn_vhu_conn_cfg *cfg, struct vn_vhu_conn **out);

/**
 * vn_vhu_conn_free() - drop the frontend (the device is reset), stop
 * listening, remove the socket file and free; NULL is fine
 * Context: not on the conn's iothread; the iothreads still exist.
 */
void vn_vhu_conn_free(struct vn_vhu_conn *c);

/** vn_vhu_conn_get_stats() - endpoint counters. Context: any thread. */
void vn_vhu_conn_get_stats(const struct vn_vhu_conn *c, struct vn_vhu_stats *out);

/**
 * vn_vhu_conn_get_queue_stats() - counters and state of queue @q
 * Return: 0 or -EINVAL for a bad @q. Context: any thread.
 */
VN_MUST_CHECK int vn_vhu_conn_get_queue_stats(const struct vn_vhu_conn *c, unsigned int q,
					      struct vn_vhu_queue_stats *out);

/** vn_vhu_conn_socket_path() - the path it listens on */
const char *vn_vhu_conn_socket_path(const struct vn_vhu_conn *c);

#endif
