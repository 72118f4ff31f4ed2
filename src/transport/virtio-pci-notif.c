/* SPDX-License-Identifier: MIT */
/* <vnotify/notifier.h>: the host notifier state of a virtio-pci device. */
#include <errno.h>

#include <vnotify/notifier.h>

#include "transport/virtio-pci.h"

void vn_virtio_pci_notifier_info(struct vn_virtio_pci *vp, struct vn_notifier_info *out)
{
	struct vn_hostnotif_stats s;

	bool on;

	vn_hostnotif_get_stats(vp->hn, &s);
	vn_vdev_lock(vp->vdev); /* the option and a fallback change it under the lock */
	on = vn_hostnotif_ioeventfd_on(vp->hn);
	vn_vdev_unlock(vp->vdev);
	*out = (struct vn_notifier_info){
		.ioeventfd = on,
		.fallbacks = s.fallbacks,
		.fallback_err = s.fallback_err,
		.fallback_queue = s.fallback_queue,
		.self_kicks = s.self_kicks,
		.drain_runs = s.drain_runs,
		.missed = s.missed,
		.doorbells_exited = __atomic_load_n(&vp->stats.doorbells, __ATOMIC_RELAXED),
		.iothread_runs = s.iothread_runs,
		.sync_runs = s.sync_runs,
		.offlimits_runs = s.offlimits_runs,
		.nr_queues = vp->nr_queues,
	};
}

int vn_virtio_pci_queue_notifier_info(struct vn_virtio_pci *vp, unsigned int q,
				      struct vn_notifier_queue_info *out)
{
	struct vn_hostnotif_queue_stats s;
	int r;

	if (q >= vp->nr_queues)
		return -EINVAL;
	r = vn_hostnotif_get_queue_stats(vp->hn, q, &s);
	if (r < 0)
		return r;
	*out = (struct vn_notifier_queue_info){
		.state = vn_hostnotif_state_name(s.state),
		.source = vn_hostnotif_source_name(s.source),
		.kicks = s.kicks,
		.runs = s.runs,
		.self_kicks = s.self_kicks,
		.drain_runs = s.drain_runs,
		.missed = s.missed,
		.offlimits_runs = s.offlimits_runs,
	};
	return 0;
}
