/* SPDX-License-Identifier: MIT */
#ifndef VN_HW_MACHINE_H
#define VN_HW_MACHINE_H

/*
 * Machine internals for transports: guest memory, the PCI host bridge, and
 * the list of devices that follow the run state.
 */

#include <stdbool.h>

#include <vnotify/machine.h>

#include "base/compiler.h"
#include "mem/gmem.h"

struct vn_pci_host;

/**
 * struct vn_machine_dev_ops - what the machine tells a device
 * @set_running: the machine paused (false) or resumed (true).
 *               Context: machine lock held, device lock not.
 * @system_reset: vn_machine_reset(): back to the power-on state, keeping
 *                the configuration; returns when nothing of the device
 *                touches guest memory any more. Optional.
 *                Context: machine lock held, device lock not.
 */
struct vn_machine_dev_ops {
	void (*set_running)(void *opaque, bool running);
	void (*system_reset)(void *opaque);
};

/* One device following the run state; caller-owned storage. */
struct vn_machine_dev {
	const struct vn_machine_dev_ops *ops;
	void *opaque;
	struct vn_machine_dev *next;
};

/** vn_machine_gmem() - guest memory (RAM at guest physical 0) */
struct vn_gmem *vn_machine_gmem(struct vn_machine *m);

/** vn_machine_pci_host() - the PCI host bridge on PIO 0xcf8/0xcfc */
struct vn_pci_host *vn_machine_pci_host(struct vn_machine *m);

/**
 * vn_machine_add_dev() - follow the run state from now on; if the machine
 * is paused, @dev->ops->set_running(false) is called before this returns
 * Context: no device lock held.
 */
void vn_machine_add_dev(struct vn_machine *m, struct vn_machine_dev *dev);

/** vn_machine_del_dev() - stop following it. Context: no device lock held. */
void vn_machine_del_dev(struct vn_machine *m, struct vn_machine_dev *dev);

#endif
