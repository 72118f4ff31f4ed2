/* SPDX-License-Identifier: MIT */
#ifndef VN_GUEST_RIG_H
#define VN_GUEST_RIG_H

/*
 * The test rig: a soft machine with iothreads, virtio-blk on virtio-pci,
 * and this driver on the other side, built the one way the integration
 * tests and vnotify-bench both need. Every register access and doorbell
 * goes through the machine's bus, so a kick takes the ioeventfd (iothread)
 * or the synchronous exit (device lock) exactly as a VM's would, and the
 * driver's interrupts are the machine's MSI eventfds.
 *
 * Three steps, so a test can check each one: vn_rig_init() (the host side:
 * machine, iothreads, device, transport), vn_rig_scan() (the driver's
 * environment and the firmware's PCI scan), vn_rig_driver_new() (the
 * virtio-blk driver on one function). vn_rig_destroy() undoes whatever
 * was done, in reverse.
 */

#include <stdbool.h>
#include <stdint.h>

#include <vnotify/blk.h>
#include <vnotify/iothread.h>
#include <vnotify/machine.h>
#include <vnotify/pci.h>

#include "guest/vdrv-blk.h"
#include "guest/vdrv-env.h"
#include "mem/gmem.h"

#define VN_RIG_MAX_IOTHREADS 4
/* Where the driver lays out its rings and buffers: RAM above 1 MiB. */
#define VN_RIG_DRV_RAM_BASE (1ull << 20)

/**
 * struct vn_rig_cfg - what to build
 * @machine: the machine's configuration; NULL for the defaults
 * @nr_iothreads: started iothreads, 0..VN_RIG_MAX_IOTHREADS
 * @iothread_name: their name; with more than one, the index is appended
 * @poll_max_ns: the iothreads' busy-poll cap
 * @blk: the device; the rig sets @blk.iothread (see @blk_iothread); the
 *       transport binds it to the machine's memory
 * @blk_iothread: index of the iothread that takes the device's
 *                completions, or -1 for none
 * @pci: the transport, from vn_virtio_pci_cfg_init(); the rig sets
 *       @pci.vdev and @pci.iothread (the first iothread, if any)
 * @spread_queues: queue q's notifier and completions on iothread
 *                 q % @nr_iothreads (one hand-off per request on each)
 * @drv_own_mapping: the driver sees RAM through its own mapping of the
 *                   machine's memfd (other host addresses than the
 *                   device's, as a real guest has); else the machine's
 * @msi_data_max: passed to the driver's environment (0: its default)
 */
struct vn_rig_cfg {
	const struct vn_machine_cfg *machine;
	unsigned int nr_iothreads;
	const char *iothread_name;
	uint64_t poll_max_ns;
	struct vn_blk_cfg blk;
	int blk_iothread;
	struct vn_virtio_pci_cfg pci;
	bool spread_queues;
	bool drv_own_mapping;
	unsigned int msi_data_max;
};

/* The rig's parts, for the caller to drive; NULL where not built (yet). */
struct vn_rig {
	struct vn_machine *m;
	struct vn_iothread *io[VN_RIG_MAX_IOTHREADS];
	unsigned int nio;
	struct vn_blk *blk;
	struct vn_virtio_pci *vp;
	struct vn_gmem drv_mem;
	bool drv_mem_init;
	bool drv_own_mapping;
	unsigned int msi_data_max;
	struct vn_vdrv_env *env;
	struct vn_vdrv_blk *drv;
};

/**
 * vn_rig_init() - build the host side: machine, iothreads, device, transport
 * @cfg: what to build
 * @g: caller's storage; on failure what was built is torn down again
 *
 * Return: 0, or the -errno of the step that failed.
 */
VN_MUST_CHECK int vn_rig_init(const struct vn_rig_cfg *cfg, struct vn_rig *g);

/**
 * vn_rig_scan() - the driver's environment, and the firmware's PCI scan
 * Return: how many functions the scan found (host bridge included), or
 * -errno.
 */
VN_MUST_CHECK int vn_rig_scan(struct vn_rig *g);

/**
 * vn_rig_driver_new() - bring up the virtio-blk driver on @dc->slot
 * Return: 0 (then @g->drv is set), or -errno.
 */
VN_MUST_CHECK int vn_rig_driver_new(struct vn_rig *g, const struct vn_vdrv_blk_cfg *dc);

/**
 * vn_rig_destroy() - tear down whatever was built, driver first
 *
 * Safe on a rig that failed half-way, and on a zeroed one.
 */
void vn_rig_destroy(struct vn_rig *g);

#endif
