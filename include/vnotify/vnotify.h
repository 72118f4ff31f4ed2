/* SPDX-License-Identifier: MIT */
#ifndef VN_VNOTIFY_VNOTIFY_H
#define VN_VNOTIFY_VNOTIFY_H

/*
 * vnotify: a userspace virtio device host whose virtqueue doorbells are
 * ioeventfds serviced by iothreads. The umbrella header: include this, link
 * with `pkg-config --libs vnotify`. Error conventions: <vnotify/error.h>.
 */

#include <vnotify/error.h>
#include <vnotify/log.h>
#include <vnotify/loop.h>
#include <vnotify/iothread.h>
#include <vnotify/bus.h>
#include <vnotify/gmem.h>
#include <vnotify/vq.h>
#include <vnotify/vdev.h>
#include <vnotify/machine.h>
#include <vnotify/pci.h>
#include <vnotify/notifier.h>
#include <vnotify/blk.h>
#include <vnotify/vhost-user.h>
#include <vnotify/vhost-user-client.h>
#include <vnotify/kvm.h>

#endif
