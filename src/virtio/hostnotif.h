/* SPDX-License-Identifier: MIT */
#ifndef VN_VIRTIO_HOSTNOTIF_H
#define VN_VIRTIO_HOSTNOTIF_H

/*
 * The queue-notifier engine: for each virtqueue of a device, who consumes
 * the guest's kicks, and from which *source* they arrive. There is one
 * implementation of attach, detach, self-kick, drain-on-stop, the safety net
 * and counted grabs, used by every front door; the front doors keep their
 * policies (virtio-pci decides when to assign, the vhost-user server hands
 * in its frontend's fds).
 *
 * States (the state machine of docs/design.md), who consumes the kicks:
 *   DEASSIGNED  nobody on an iothread: a doorbell register runs the queue
 *               synchronously, on the vCPU, under the device lock (or, for
 *               a handed-in source, the queue is stopped or disabled)
 *   ASSIGNED    the queue's iothread consumes the source and runs the queue
 *   OFFLIMITS   an external (vhost) backend owns the eventfd
 *
 * Sources, where the kicks come from (vn_hostnotif_source()):
 *   DOORBELL    the transport's doorbell register (DEASSIGNED)
 *   IOEVENTFD   our own eventfd, registered through the accelerator
 *               (ASSIGNED by the assign policy below, edges b and e)
 *   KICK_FD     an external kick fd handed in (a vhost-user frontend's)
 *   POLL        none: a timer on the iothread polls the avail ring
 *   EXTERNAL    OFFLIMITS (edges c and d)
 * The assign policy (ioeventfd on, running, bus master, DRIVER_OK; the
 * device hooks) moves only queues without a handed-in source; a queue with
 * one is attached and detached by its caller (vn_hostnotif_attach()).
 *
 * Ownership and locks. Each queue's run lock (vn_vdev_queue_lock()) is held
 * by whoever runs the queue's handler (iothread or vCPU), so no queue is ever
 * processed by two threads at once. The iothread's handler consumes the
 * source and runs the queue only while the state is ASSIGNED, checked under
 * that lock, so each kick is consumed by exactly one reader. The policy's
 * attach and detach are posted to the iothread and never waited for: they
 * run under the device lock, and waiting there for an iothread that may need
 * the device lock (a promoted register write replayed on it, say) is the
 * deadlock of docs/design.md "Threads and locks". The handed-in sources are attached and
 * detached synchronously (vn_iothread_run_sync()), from a thread that holds
 * no device lock: the caller learns whether the loop took the fd, and an fd
 * is closed only after the iothread stopped watching it. The engine owns
 * every handed-in fd and closes it on its queue's iothread.
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/bus.h>
#include <vnotify/iothread.h>

#include "base/compiler.h"

struct vn_vdev;
struct vn_hostnotif;

enum vn_hostnotif_source {
	VN_HOSTNOTIF_SRC_DOORBELL = 0,
	VN_HOSTNOTIF_SRC_IOEVENTFD = 1,
	VN_HOSTNOTIF_SRC_KICK_FD = 2,
	VN_HOSTNOTIF_SRC_POLL = 3,
	VN_HOSTNOTIF_SRC_EXTERNAL = 4,
};

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
 *                  Optional for a caller that only hands in sources.
 * @queue_ran: optional: queue @q's handler ran; @broken: it left the queue
 *             broken (a guest error). For vhost-user's error fd. Called with
 *             the queue's run lock held, on the thread that ran it; takes no
 *             lock.
 */
struct vn_hostnotif_ops {
	int (*ioev_for_queue)(void *opaque, unsigned int q, struct vn_ioev *out);
	void (*queue_ran)(void *opaque, unsigned int q, bool broken);
};

/**
 * struct vn_hostnotif_cfg - one device's host notifiers
 * @vdev: the device; its lifecycle hooks drive the state machine
 * @accel: where ioeventfds are registered; NULL: never ASSIGNED
 * @iothread: runs assigned queues; NULL: never ASSIGNED (kicks would starve)
 * @queue_iothreads: optional: queue q runs on @queue_iothreads[q % n]
 *                   instead of @iothread (a vhost-user server's queues)
 * @nr_queue_iothreads: n, entries of @queue_iothreads
 * @ioeventfd: the device option ioeventfd=on|off
 * @running: the machine is running at creation
 * @safety_net_ns: period of the missed-doorbell timer of each ASSIGNED queue
 *                 fed by an fd (ours or handed in), on its iothread; 0 off
 * @poll_ns: period of the avail-ring poll of a POLL source (0: 100 us)
 * @ops, @opaque: the transport or front door
 */
struct vn_hostnotif_cfg {
	struct vn_vdev *vdev;
	struct vn_accel *accel;
	struct vn_iothread *iothread;
	struct vn_iothread *const *queue_iothreads;
	unsigned int nr_queue_iothreads;
	bool ioeventfd;
	bool running;
	uint64_t safety_net_ns;
	uint64_t poll_ns;
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
	uint64_t polls;           /* runs of a POLL source that found work */
	uint64_t ring_polls;      /* runs found by the iothread's busy poll of the ring */
	uint64_t hangups;         /* handed-in kick fds that hung up */
	uint64_t offlimits_runs;  /* handler runs while OFFLIMITS: always 0 (a bug otherwise) */
	int fallback_err;         /* the last fallback's reason (-errno), or 0 */
	unsigned int fallback_queue; /* the queue whose ioeventfd failed then */
};

/* One queue's counters and where its kicks come from. */
struct vn_hostnotif_queue_stats {
	enum vn_hostnotif_source source;
	enum vn_hostnotif_state state;
	uint64_t kicks;           /* kicks consumed from its fd (eventfd or kick fd) */
	uint64_t runs;            /* handler runs, on any path */
	uint64_t polls;           /* POLL runs that found work */
	uint64_t ring_polls;      /* runs found by the iothread's busy poll of the ring */
	uint64_t self_kicks;      /* runs and signals at attach, start, give-back */
	uint64_t drain_runs;      /* runs by the drain-on-stop rule */
	uint64_t missed;          /* avail work found by the safety net */
	uint64_t offlimits_runs;  /* handler runs while OFFLIMITS: always 0 (a bug otherwise) */
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

/** vn_hostnotif_source() - where queue @q's kicks come from now (DOORBELL for a bad @q) */
enum vn_hostnotif_source vn_hostnotif_source(struct vn_hostnotif *hn, unsigned int q);

/** vn_hostnotif_source_name() - "doorbell", "ioeventfd", "kick-fd", "poll", "external" */
const char *vn_hostnotif_source_name(enum vn_hostnotif_source s);

/**
 * vn_hostnotif_set_kick_fd() - hand in queue @q's source
 * @fd: an external kick fd (non-blocking, pollable); the engine owns it from
 *      now, on error too. Negative: no fd, the POLL source.
 *
 * If the queue is attached, the swap happens at once on its iothread: the
 * old fd leaves the loop, a kick pending in it runs the queue once (drain),
 * it is closed, and the new source is attached with a self-kick.
 * Return: 0; -EINVAL for a bad @q; -errno if the loop refused the new fd
 * (the queue is then detached, with the new fd kept as its source).
 * Context: device lock NOT held; waits for the queue's iothread.
 */
VN_MUST_CHECK int vn_hostnotif_set_kick_fd(struct vn_hostnotif *hn, unsigned int q, int fd);

/**
 * vn_hostnotif_clear_source() - forget queue @q's handed-in source: detach
 * it (without running the queue) and close its fd. Back to DOORBELL.
 * Context: as vn_hostnotif_set_kick_fd().
 */
void vn_hostnotif_clear_source(struct vn_hostnotif *hn, unsigned int q);

/**
 * vn_hostnotif_attach() - the caller's queue @q may run: ASSIGNED, its
 * handed-in source watched on its iothread, with a self-kick (the queue runs
 * once there: a kick may have landed while nobody listened)
 *
 * A kick fd that hung up stays detached until a new one is handed in.
 * Return: 0 (also when already attached or hung up); -EINVAL for a bad @q or
 * a queue without a handed-in source; -errno if the loop refused the fd.
 * Context: as vn_hostnotif_set_kick_fd().
 */
VN_MUST_CHECK int vn_hostnotif_attach(struct vn_hostnotif *hn, unsigned int q);

/**
 * vn_hostnotif_detach() - the caller's queue @q must not run (disabled):
 * DEASSIGNED, its source no longer watched. A kick in it stays there.
 * Context: as vn_hostnotif_set_kick_fd().
 */
void vn_hostnotif_detach(struct vn_hostnotif *hn, unsigned int q);

/**
 * vn_hostnotif_move_queue() - queue @q runs on iothread @to from now
 *
 * An ASSIGNED queue is stopped (drain-on-stop), its bottom half and timer
 * rebuilt on @to's loop, and started again by the assign policy there, with
 * a self-kick: no kick is lost, and while it moves its doorbells run it
 * synchronously. A DEASSIGNED queue only changes loops. @to must be started
 * and outlive the state machine.
 * Return: 0 (also when it is there already); -EINVAL for a bad @q, a NULL
 * @to or a queue without an iothread; -EBUSY for a handed-in source, a
 * queue a vhost backend holds, or one being moved; -errno if @to's loop
 * refused the bottom half or timer (the queue then stays where it was).
 * Context: device lock NOT held (it waits for both iothreads); not on an
 * iothread; moves of one device serialised by the caller.
 */
VN_MUST_CHECK int vn_hostnotif_move_queue(struct vn_hostnotif *hn, unsigned int q,
					  struct vn_iothread *to);

/** vn_hostnotif_queue_iothread() - where queue @q runs when ASSIGNED (NULL: none or bad @q) */
struct vn_iothread *vn_hostnotif_queue_iothread(struct vn_hostnotif *hn, unsigned int q);

/**
 * vn_hostnotif_get_queue_stats() - queue @q's counters and source
 * Return: 0 or -EINVAL for a bad @q. Context: any thread.
 */
VN_MUST_CHECK int vn_hostnotif_get_queue_stats(struct vn_hostnotif *hn, unsigned int q,
					       struct vn_hostnotif_queue_stats *out);

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
