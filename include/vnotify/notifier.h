/* SPDX-License-Identifier: MIT */
#ifndef VNOTIFY_NOTIFIER_H
#define VNOTIFY_NOTIFIER_H

/**
 * DOC: observable host notifier state of a virtio-pci device
 *
 * What the host notifier state machine (docs/design.md "The host notifier
 * state machine") did for a device and each of its queues: whether kicks
 * arrive through an ioeventfd, whether the device fell back to synchronous
 * notify and why, and the counters of the rules that keep a kick from being
 * lost. A silent fallback shows here as fallbacks > 0 with its reason.
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/error.h>

struct vn_virtio_pci;

/**
 * struct vn_notifier_info - one device's notifier summary
 * @ioeventfd: ioeventfds are in use now (the option is on and no fallback)
 * @fallbacks: starts that failed and fell back to synchronous notify
 * @fallback_err: the last fallback's reason (-errno), 0 if none
 * @fallback_queue: the queue whose ioeventfd failed then
 * @self_kicks: queues run or signalled on start, resume, give-back, load
 * @drain_runs: queue runs by the drain-on-stop rule (a kick found in the
 *              eventfd, or work found when notifications were re-enabled)
 * @missed: avail work found by the safety-net timer
 * @doorbells_exited: doorbell writes that reached the register (an exit,
 *                    not an ioeventfd)
 * @iothread_runs: queue runs on the iothread
 * @sync_runs: queue runs on a vCPU doorbell
 * @offlimits_runs: queue runs while a vhost backend held the queue
 *                  (OFFLIMITS); 0 unless the handover rule is broken
 * @nr_queues: queues of the device
 */
struct vn_notifier_info {
	bool ioeventfd;
	uint64_t fallbacks;
	int fallback_err;
	unsigned int fallback_queue;
	uint64_t self_kicks;
	uint64_t drain_runs;
	uint64_t missed;
	uint64_t doorbells_exited;
	uint64_t iothread_runs;
	uint64_t sync_runs;
	uint64_t offlimits_runs;
	unsigned int nr_queues;
};

/**
 * struct vn_notifier_queue_info - one queue's notifier state
 * @state: "deassigned", "assigned" or "offlimits" (static strings)
 * @source: where its kicks come from: "doorbell", "ioeventfd", "kick-fd",
 *          "poll" or "external" (static strings, see docs/design.md)
 * @kicks: kicks consumed from its fd
 * @runs: handler runs, on any path
 * @self_kicks, @drain_runs, @missed, @offlimits_runs: as in struct
 *   vn_notifier_info
 */
struct vn_notifier_queue_info {
	const char *state;
	const char *source;
	uint64_t kicks;
	uint64_t runs;
	uint64_t self_kicks;
	uint64_t drain_runs;
	uint64_t missed;
	uint64_t offlimits_runs;
};

/**
 * vn_virtio_pci_notifier_info() - copy a device's notifier summary
 * Context: any thread but one holding the device lock; each value exact,
 * the set not one snapshot.
 */
void vn_virtio_pci_notifier_info(struct vn_virtio_pci *vp, struct vn_notifier_info *out);

/**
 * vn_virtio_pci_queue_notifier_info() - copy queue @q's notifier state
 * Return: 0, or -EINVAL for a queue the device does not have.
 * Context: any thread.
 */
VN_MUST_CHECK int vn_virtio_pci_queue_notifier_info(struct vn_virtio_pci *vp, unsigned int q,
						    struct vn_notifier_queue_info *out);

#endif
