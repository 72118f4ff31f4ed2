/* SPDX-License-Identifier: MIT */
/*
 * Every trace point of vnotify, in one list (CONTRIBUTING.md "Logging and
 * trace points"). Each line is VN_TRACE(name, "what it records"); the format
 * string lives at the call site (vn_trace(name, fmt, ...)) so the compiler
 * checks it against the arguments. Add new points at the end of your folder's
 * block.
 *
 * No include guard: this file is an X-macro list, included with VN_TRACE
 * defined differently each time.
 */

/* base / loop */
VN_TRACE(loop_fd_add, "an fd handler was attached to a loop")
VN_TRACE(loop_fd_del, "an fd handler was detached from a loop")
VN_TRACE(loop_poll_window, "the adaptive poll window changed")
VN_TRACE(iothread_start, "an iothread started")
VN_TRACE(iothread_stop, "an iothread stopped")

/* bus */
VN_TRACE(ioev_assign, "an ioeventfd was assigned")
VN_TRACE(ioev_deassign, "an ioeventfd was deassigned")
VN_TRACE(bus_unassigned, "a guest access hit no region")
VN_TRACE(promoter_promote, "the promoter registered a dynamic ioeventfd")
VN_TRACE(promoter_replay, "a promoted write was replayed into its region")
VN_TRACE(promoter_drop, "the promoter dropped dynamic ioeventfds")
VN_TRACE(promoter_limit, "a region reached its dynamic ioeventfd limit")
VN_TRACE(promoter_fail, "the promoter could not register a dynamic ioeventfd")

/* virtio */
VN_TRACE(vq_needs_reset, "a guest error put the device into NEEDS_RESET")
VN_TRACE(hostnotif_transition, "a host notifier changed state (edges a-g)")
VN_TRACE(hostnotif_source, "a queue's kick source was handed in or cleared (kick fd or poll)")
VN_TRACE(hostnotif_fallback, "ioeventfd start failed and the device fell back to sync")
VN_TRACE(vdev_status, "the driver wrote the device status register")
VN_TRACE(vdev_reset, "a device was reset")
VN_TRACE(vdev_needs_reset, "a device entered NEEDS_RESET")
VN_TRACE(vq_enable, "the driver enabled a virtqueue")
VN_TRACE(vdev_load, "device state was loaded")
VN_TRACE(hostnotif_move, "a queue's notifier moved to another iothread")

/* transport: vhost-user */
VN_TRACE(vhu_dispatch, "a vhost-user message was checked and handled (r = outcome)")
VN_TRACE(vhu_connect, "a vhost-user frontend connected")
VN_TRACE(vhu_disconnect, "a vhost-user frontend went away or was dropped; the device was reset")
VN_TRACE(vhu_ring, "a vhost-user ring started, stopped or was enabled/disabled")
VN_TRACE(vhu_mem_table, "a vhost-user memory table was mapped")
VN_TRACE(vhuc_request, "the vhost-user client sent a request to its backend")
VN_TRACE(vhuc_lost, "the vhost-user client's backend session ended (err = why)")
VN_TRACE(vhuc_session, "the vhost-user client connected, replayed or reset its session")

/* transport: pci */
VN_TRACE(machine_msi_route, "an MSI message was routed to an eventfd")
VN_TRACE(machine_run_state, "the machine paused or resumed")
VN_TRACE(machine_reset, "a system reset put every device back to its power-on state")
VN_TRACE(pci_config_read, "a PCI configuration read cycle")
VN_TRACE(pci_config_write, "a PCI configuration write cycle")
VN_TRACE(pci_bar_map, "a BAR was put on the bus")
VN_TRACE(pci_bar_unmap, "a BAR left the bus")
VN_TRACE(pci_plug, "a PCI function was plugged into a slot")
VN_TRACE(pci_unplug, "a PCI function was unplugged")
VN_TRACE(pci_reset, "a PCI function went back to its power-on header (system reset)")
VN_TRACE(msix_bind, "an MSI-X vector was bound to a route or to its pending eventfd")
VN_TRACE(msix_pending, "a masked MSI-X vector was delivered on unmask")
VN_TRACE(virtio_pci_gate, "virtio-pci host notifier gate (bus master and notify BAR decode)")
VN_TRACE(virtio_pci_rebind, "virtio-pci re-registered host notifiers after a BAR or mode change")
VN_TRACE(virtio_pci_bus_master_bug, "virtio-pci BUS_MASTER_BUG workaround on (DRIVER_OK without bus master) or off (system reset)")
VN_TRACE(virtio_pci_bad, "virtio-pci refused a guest register access")
VN_TRACE(virtio_pci_reset, "a legacy QUEUE_PFN write of 0 reset the device")

/* devices: blk */
VN_TRACE(blk_backend, "a virtio-blk device chose its I/O backend")
VN_TRACE(blk_req, "a virtio-blk request was validated and started")
VN_TRACE(blk_complete, "a virtio-blk request completed to the guest")
VN_TRACE(blk_bad_req, "a malformed virtio-blk request put the device into NEEDS_RESET")
VN_TRACE(blk_fault, "an injected host error or delay hit a virtio-blk request")
VN_TRACE(blk_drain, "a virtio-blk reset or drain waited for requests in flight")
VN_TRACE(blk_move, "a virtio-blk queue's completions moved to another iothread")
