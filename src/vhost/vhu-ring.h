/* SPDX-License-Identifier: MIT */
#ifndef VN_VHOST_VHU_RING_H
#define VN_VHOST_VHU_RING_H

/*
 * The vhost-user server's per-queue ring state and its binding to the
 * device (the vring-level interface of virtio/vdev.h) and to the
 * queue-notifier engine (virtio/hostnotif.h). vhu-server.c has the request
 * table and handlers; they change ring state only through these functions.
 *
 * A ring is stopped (initially and after GET_VRING_BASE), started (its
 * kick source handed in and the device's queue loaded) and enabled. The
 * engine runs it only while started and enabled; the frontend's kick fd is
 * the queue's source (KICK_FD), a ring without one is polled (POLL).
 * Context of everything here: the server's control thread, no lock held.
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/iothread.h>

#include "base/compiler.h"
#include "base/log.h"
#include "mem/gmem.h"
#include "vhost/vhu-inflight.h"
#include "vhost/vhu-msg.h"
#include "virtio/hostnotif.h"

#define VN_VHU_F(bit) (1ull << (bit))

struct vhu_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uva;
};

struct vhu_queue {
	struct vn_vhu_server *srv;
	unsigned int index;
	struct vn_iothread *it;

	/* Set by the frontend; the control thread's. */
	uint32_t num; /* 0: not set (the device's maximum) */
	bool addr_set;
	uint64_t desc_uva, used_uva, avail_uva;
	uint16_t base;	  /* SET_VRING_BASE, or where the ring stopped */
	bool enable_flag; /* SET_VRING_ENABLE */
	bool started;	  /* source handed in; the device's queue is loaded */
	bool has_kick;	  /* the source is a kick fd, not the poll */
	bool call_set;
	uint16_t orphans; /* chains in flight before we started: never used */
	bool resubmit_kick; /* started with chains to redo: run it once attached */

	/* The queue thread's; the control thread changes it through run_sync. */
	int err_fd;
	bool err_signalled; /* atomic */

	/* the control state mirrored for readers on other threads */
	bool st_started, st_enabled, st_polling, st_call;
};

struct vn_vhu_server {
	char name[32];
	struct vn_vdev *vdev;
	struct vn_gmem *mem; /* &map: what the device is bound to */
	struct vn_gmem map;  /* the frontend's memory table, mapped */
	bool mem_bound;
	struct vn_hostnotif *hn; /* every queue's kicks: the one engine */
	unsigned int nr_queues;
	uint64_t drain_timeout_ns;
	struct vn_ratelimit rl;

	uint64_t features; /* offered */
	uint64_t protocol; /* protocol features offered */
	uint64_t acked_features;
	uint64_t acked_protocol;
	bool owner;

	struct vhu_region regions[VN_VHU_MAX_REGIONS];
	unsigned int nregions;

	struct vhu_queue *queues;
	/* GET/SET_INFLIGHT_FD; rings started from it redo what it lists */
	struct vn_vhu_inflight inflight;

	/* statistics, relaxed atomics */
	uint64_t connections, disconnects, messages, refused, protocol_errors;
	bool connected;
	bool fault_seen; /* atomic: memory_lost() said so for this connection */
	bool drain_stuck; /* a drain timed out: requests may still use the map */
	bool disconnecting; /* inside vn_vhu_server_disconnect(): see there */
	unsigned int mem_regions;
	uint64_t mem_bytes;
};

/*
 * A peer's refusal, rate-limited per reason (the call site's format), so a
 * burst of one refusal cannot hide a different one.
 */
#define peer_log(srv, fmt, ...)                                                                    \
	vn_log_limited_key(&(srv)->rl, (uint64_t)(uintptr_t)(fmt), VN_LOG_WARN, "vhu",            \
			   "%s: " fmt, (srv)->name, ##__VA_ARGS__)

/*
 * The engine's callbacks for the server's queues: after a run, a broken ring
 * or guest memory the frontend truncated signals the ring's err fd.
 */
extern const struct vn_hostnotif_ops vn_vhu_ring_hn_ops;

/** vn_vhu_ring_init() - queue @i of @srv in its stopped state, running on @it */
void vn_vhu_ring_init(struct vhu_queue *q, struct vn_vhu_server *srv, unsigned int i,
		      struct vn_iothread *it);

/** vn_vhu_ring_any_started() - is any ring of @srv started? */
bool vn_vhu_ring_any_started(const struct vn_vhu_server *srv);

/** vn_vhu_ring_enabled() - processed when started (spec "Ring states") */
bool vn_vhu_ring_enabled(const struct vhu_queue *q);

/** vn_vhu_ring_max() - the largest ring size the device takes */
unsigned int vn_vhu_ring_max(const struct vhu_queue *q);

/**
 * vn_vhu_ring_gpas() - the ring's user addresses translated through the
 * memory table. Return: 0 or -EFAULT.
 */
VN_MUST_CHECK int vn_vhu_ring_gpas(const struct vhu_queue *q, uint64_t *desc, uint64_t *avail,
				   uint64_t *used);

/**
 * vn_vhu_ring_set_kick() - SET_VRING_KICK: @fd (owned from now; -1: poll)
 * becomes the ring's source; a stopped ring starts (the first one activates
 * the device with the acked features). Return: 0 or -errno (the ring is
 * then stopped).
 */
VN_MUST_CHECK int vn_vhu_ring_set_kick(struct vhu_queue *q, int fd);

/**
 * vn_vhu_ring_update() - attach or detach the ring's source to match
 * started && enabled. Not VN_MUST_CHECK: a refused fd is logged by the
 * engine and leaves the ring stalled, which is all most callers can do.
 * Return: 0 or -errno if the loop refused the fd.
 */
int vn_vhu_ring_update(struct vhu_queue *q);

/**
 * vn_vhu_ring_quiesce() - a started ring stops taking chains and its
 * requests in flight finish (bounded by the drain timeout); it stays
 * started. Return: the avail index to resume from.
 */
uint16_t vn_vhu_ring_quiesce(struct vhu_queue *q);

/**
 * vn_vhu_ring_reload() - a quiesced ring carries on from @resume (after its
 * memory or addresses changed); if it no longer fits, it is stopped with
 * its err fd signalled. Return: 0 or -errno.
 */
int vn_vhu_ring_reload(struct vhu_queue *q, uint16_t resume);

/**
 * vn_vhu_ring_stop() - GET_VRING_BASE: stop the ring, the requests in
 * flight finished, the device's queue reset. Return: where to resume.
 */
uint16_t vn_vhu_ring_stop(struct vhu_queue *q);

/** vn_vhu_ring_set_call() - SET_VRING_CALL: @fd (owned; -1: none, the frontend polls) */
VN_MUST_CHECK int vn_vhu_ring_set_call(struct vhu_queue *q, int fd);

/** vn_vhu_ring_set_err() - SET_VRING_ERR: @fd (owned; -1: none) */
void vn_vhu_ring_set_err(struct vhu_queue *q, int fd);

/** vn_vhu_ring_forget() - forget what the frontend set up (the ring is stopped) */
void vn_vhu_ring_forget(struct vhu_queue *q);

/** vn_vhu_ring_publish() - mirror the control state for vn_vhu_server_get_queue_stats() */
void vn_vhu_ring_publish(struct vhu_queue *q);

#endif
