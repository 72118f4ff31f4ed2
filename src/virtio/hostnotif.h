/* SPDX-License-Identifier: MIT */
#ifndef VN_VIRTIO_HOSTNOTIF_H
#define VN_VIRTIO_HOSTNOTIF_H

/*
 * The host notifier state machine (docs/design.md), one per device: for each
 * virtqueue, who receives the guest's kicks.
 *
 *   DEASSIGNED  kicks reach the transport's doorbell register and run the
 *               queue synchronously, on the vCPU, under the device lock
 *   ASSIGNED    the doorbell is an ioeventfd; the queue's iothread consumes
 *               the eventfd and runs the queue
 *   OFFLIMITS   a vhost backend owns the eventfd; userspace leaves the queue
 *
 * Ownership and locks. Each queue's run lock (vn_vdev_queue_lock()) is held by
 * whoever runs the queue's handler (iothread or vCPU), so no queue is ever
 * processed by two threads at once. The iothread's handler runs the queue only
 * while the state is ASSIGNED, checked under that lock. Attaching and
 * detaching the fd handler is posted to the iothread and never waited for:
 * lifecycle calls run under the device lock, and waiting there for an iothread
 * that may need the device lock (a promoted register write replayed on it,
 * say) is the deadlock of docs/design.md "Threads and locks". A handler still
 * attached for a moment after a stop sees the new state and leaves the eventfd
 * alone, so each eventfd has exactly one reader at a time.
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/bus.h>
#include <vnotify/iothread.h>

#include "base/compiler.h"

struct vn_vdev;
struct vn_hostnotif;

enum vn_hostnotif_state {
	VN_HOSTNOTIF_DEASSIGNED = 0,
	VN_HOSTNOTIF_ASSIGNED = 1,
	VN_HOSTNOTIF_OFFLIMITS = 2,
};

/**
 * struct vn_hostnotif_ops - what the transport tells the state machine
 * @ioev_for_queue: describe where queue @q's doorbell is (space, addr, len,
 *                  datamatch, data); the state machine fills in the fd.
 *                  Return 0, or -errno if the queue has no doorbell address.
 */
struct vn_hostnotif_ops {
	int (*ioev_for_queue)(void *opaque, unsigned int q, struct vn_ioev *out);
};

/**
 * struct vn_hostnotif_cfg - one device's host notifiers
 * @vdev: the device; its lifecycle hooks drive the state machine
 * @accel: where ioeventfds are registered; NULL: never ASSIGNED
 * @iothread: runs assigned queues; NULL: never ASSIGNED (kicks would starve)
 * @ioeventfd: the device option ioeventfd=on|off
 * @running: the machine is running at creation
 * @safety_net_ns: period of the missed-doorbell timer on the iothread; 0 off
 * @ops, @opaque: the transport
 */
struct vn_hostnotif_cfg {
	struct vn_vdev *vdev;
	struct vn_accel *accel;
	struct vn_iothread *iothread;
	bool ioeventfd;
	bool running;
	uint64_t safety_net_ns;
	const struct vn_hostnotif_ops *ops;
	void *opaque;
};

struct vn_hostnotif_stats {
	uint64_t iothread_runs;   /* queue handler runs on the iothread */
	uint64_t sync_runs;       /* runs on a vCPU doorbell (DEASSIGNED) */
	uint64_t drain_runs;      /* runs by the drain-on-stop rule */
	uint64_t forwarded;       /* doorbells that reached the device while not
				     DEASSIGNED and were turned into a signal */
	uint64_t self_kicks;      /* start, resume, give-back, load */
	uint64_t missed;          /* avail work found by the safety net */
	uint64_t fallbacks;       /* starts that failed and fell back to sync */
};

/**
 * vn_hostnotif_new() - attach a state machine to a device
 * Every queue starts DEASSIGNED (edge a).
 * Return: 0, -EINVAL, -ENOMEM, or -errno from the device's hook table.
 * Context: device lock NOT held; the driver has not started the device.
 */
VN_MUST_CHECK int vn_hostnotif_new(const struct vn_hostnotif_cfg *cfg, struct vn_hostnotif **out);

/**
 * vn_hostnotif_free() - device removal: stop every queue, detach, free; NULL ok
 * Context: device lock NOT held (it waits for the iothread).
 */
void vn_hostnotif_free(struct vn_hostnotif *hn);

/**
 * vn_hostnotif_doorbell() - the transport saw a doorbell write for queue @q
 *
 * DEASSIGNED: runs the queue here, on the vCPU. ASSIGNED or OFFLIMITS: the
 * ioeventfd was not matched (a config-window access, say); the eventfd is
 * signalled so the owner runs it. One owner, always.
 * Return: 0, or -EINVAL for a bad @q.
 * Context: device lock held (a synchronous exit).
 */
int vn_hostnotif_doorbell(struct vn_hostnotif *hn, unsigned int q);

/**
 * vn_hostnotif_set_running() - the machine pauses (false) or resumes (true)
 * Context: device lock held.
 */
void vn_hostnotif_set_running(struct vn_hostnotif *hn, bool running);

/**
 * vn_hostnotif_set_bus_master() - the PCI command register's bus-master bit
 * Context: device lock held.
 */
void vn_hostnotif_set_bus_master(struct vn_hostnotif *hn, bool on);

/**
 * vn_hostnotif_set_ioeventfd() - the device option ioeventfd=on|off, at run time
 * Context: device lock held.
 */
void vn_hostnotif_set_ioeventfd(struct vn_hostnotif *hn, bool on);

/**
 * vn_hostnotif_set_host_notifier() - a vhost backend takes (@assign) or gives
 * back queue @q's notifier
 *
 * Takes are counted: the first moves the queue to OFFLIMITS (edges c, d)
 * after userspace has stopped consuming the eventfd; the last give-back
 * moves it to ASSIGNED (e) or DEASSIGNED (f) with a self-kick.
 * Return: 0; -EINVAL for a bad @q; -EPERM for a give-back without a take;
 * -errno if the eventfd cannot be created.
 * Context: device lock held.
 */
VN_MUST_CHECK int vn_hostnotif_set_host_notifier(struct vn_hostnotif *hn, unsigned int q,
						 bool assign);

/**
 * vn_hostnotif_fd() - queue @q's eventfd, for a vhost backend that took it
 * Return: the fd (the state machine keeps ownership), or -ENOENT.
 */
int vn_hostnotif_fd(struct vn_hostnotif *hn, unsigned int q);

/** vn_hostnotif_state() - queue @q's state (DEASSIGNED for a bad @q) */
enum vn_hostnotif_state vn_hostnotif_state(struct vn_hostnotif *hn, unsigned int q);

/** vn_hostnotif_state_name() - "deassigned", "assigned" or "offlimits" */
const char *vn_hostnotif_state_name(enum vn_hostnotif_state s);

/** vn_hostnotif_ioeventfd_on() - false after a start failed and fell back */
bool vn_hostnotif_ioeventfd_on(struct vn_hostnotif *hn);

/** vn_hostnotif_get_stats() - copy the counters. Context: any thread. */
void vn_hostnotif_get_stats(struct vn_hostnotif *hn, struct vn_hostnotif_stats *out);

/**
 * vn_hostnotif_sync() - wait until the iothread has applied every posted
 * attach/detach (for tests and orderly teardown)
 * Context: device lock NOT held.
 */
void vn_hostnotif_sync(struct vn_hostnotif *hn);

#endif
