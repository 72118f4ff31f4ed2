/* SPDX-License-Identifier: MIT */
#ifndef VN_VIRTIO_HOSTNOTIF_PRIV_H
#define VN_VIRTIO_HOSTNOTIF_PRIV_H

/*
 * Shared by the two halves of the queue-notifier engine, and nobody else:
 * hostnotif.c (the per-queue machinery: sources, attach/detach on the
 * iothread, consume, self-kick, drain-on-stop, the safety net and poll
 * timer, handed-in sources) and hostnotif-assign.c (our own ioeventfds:
 * virtio-pci's policy of when to assign them, through the device hooks, and
 * the counted grabs of an external backend).
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/bus.h>
#include <vnotify/iothread.h>
#include <vnotify/loop.h>

#include "base/notifier.h"
#include "virtio/hostnotif.h"
#include "virtio/vdev.h"

#define DEFAULT_POLL_NS 100000ull

struct hn_qstats {
	uint64_t kicks, runs, polls, ring_polls, self_kicks, drain_runs, missed, offlimits_runs;
};

struct hn_queue {
	struct vn_hostnotif *hn;
	unsigned int idx;
	struct vn_iothread *it;    /* where it runs when ASSIGNED; NULL: never */
	/*
	 * Written under the device lock (policy) or by the caller of a
	 * handed-in source, always under the queue's run lock; atomic loads.
	 */
	enum vn_hostnotif_state state;
	/*
	 * The handed-in source (DOORBELL: none, the assign policy decides) and
	 * its fd. Written only on the queue's iothread (inside run_sync), read
	 * there or by the thread that waits for it.
	 */
	enum vn_hostnotif_source ext;
	int kick_fd;
	bool kick_dead;            /* atomic: the kick fd hung up */
	struct vn_notifier n;      /* created on first use, kept until free */
	bool registered;           /* an ioeventfd for @n is in the accelerator */
	bool starting;             /* registered by the start in progress */
	struct vn_ioev ioev;       /* what was registered */
	unsigned int grabs;        /* vhost takes not yet given back */
	/*
	 * Device lock: vn_hostnotif_move_queue() is changing @it; the assign
	 * policy leaves the queue DEASSIGNED until the move restarts it.
	 */
	bool moving;
	/* Iothread side: the fd handler follows want_attached (atomic). */
	int want_attached;
	bool attached;             /* iothread only */
	/*
	 * The iothread busy-polls the ring and asked the driver not to kick
	 * (vn_vq_poll_begin()). Only while ASSIGNED; guarded by the run lock.
	 */
	bool polling;
	int watched_fd;            /* iothread only: the fd in the loop, or -1 */
	struct vn_bh *bh;
	struct vn_timer *timer;    /* iothread only: the safety net or the poll */
	struct hn_qstats st;       /* relaxed atomics */
};

struct vn_hostnotif {
	struct vn_vdev *vdev;
	struct vn_accel *accel;
	struct vn_iothread *iothread;
	const struct vn_hostnotif_ops *ops;
	void *opaque;
	bool ioeventfd_on;
	bool running;
	bool bus_master;
	uint64_t safety_ns;
	uint64_t poll_ns;
	unsigned int nr;
	struct hn_queue *q;
	struct vn_hostnotif_stats stats; /* atomic adds */
};

#define STAT_INC(hn, field) __atomic_add_fetch(&(hn)->stats.field, 1, __ATOMIC_RELAXED)
#define QSTAT_INC(q, field) __atomic_add_fetch(&(q)->st.field, 1, __ATOMIC_RELAXED)
#define LOAD(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)

/* hostnotif.c */
bool vn_hn_handed_in(const struct hn_queue *q);
void vn_hn_set_state(struct hn_queue *q, enum vn_hostnotif_state s, char edge);
void vn_hn_post_attach(struct hn_queue *q, bool want);
VN_MUST_CHECK int vn_hn_ensure_notifier(struct hn_queue *q);
void vn_hn_drain(struct hn_queue *q, bool force);
void vn_hn_hook_queue_stop(void *opaque, struct vn_vdev *vdev, unsigned int idx);
/* The queue's bottom half and timer on q->it's loop. Context: that iothread. */
VN_MUST_CHECK int vn_hn_setup_on_iothread(void *opaque);
void vn_hn_teardown_on_iothread(void *opaque);

/* hostnotif-assign.c */
extern const struct vn_vdev_hooks vn_hn_hostnotif_hooks;
bool vn_hn_can_assign(struct vn_hostnotif *hn);
bool vn_hn_queue_active(struct vn_hostnotif *hn, unsigned int i);
void vn_hn_stop_queue(struct hn_queue *q);
void vn_hn_update(struct vn_hostnotif *hn);
void vn_hn_reset_all(struct vn_hostnotif *hn);

#endif
