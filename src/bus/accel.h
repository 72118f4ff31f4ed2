/* SPDX-License-Identifier: MIT */
#ifndef VN_BUS_ACCEL_H
#define VN_BUS_ACCEL_H

#include <stdbool.h>

#include <vnotify/bus.h>

/*
 * An accelerator: where ioeventfds are matched (docs/design.md "Words").
 * Implementations: accel-soft.c (the bus's own table) and accel-kvm.c
 * (KVM_IOEVENTFD). Ops tables are static const.
 */
struct vn_accel_ops {
	const char *name;
	int (*assign)(struct vn_accel *accel, const struct vn_ioev *ioev);
	int (*deassign)(struct vn_accel *accel, const struct vn_ioev *ioev);
	void (*free)(struct vn_accel *accel);
};

struct vn_accel {
	const struct vn_accel_ops *ops;
	unsigned int max_ioeventfds;
	bool any_length;
};

#endif
