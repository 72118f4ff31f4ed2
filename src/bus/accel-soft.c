/* SPDX-License-Identifier: MIT */
#include "bus/accel.h"

#include <errno.h>
#include <stdlib.h>

#include "base/compiler.h"
#include "bus/addrspace.h"

/* The soft accelerator: vn_bus_write() consults the bus's table. */
struct accel_soft {
	struct vn_accel accel;
	struct vn_bus *bus;
};

static struct accel_soft *to_soft(struct vn_accel *accel)
{
	return vn_container_of(accel, struct accel_soft, accel);
}

static int soft_assign(struct vn_accel *accel, const struct vn_ioev *ioev)
{
	return vn_bus_ioev_assign(to_soft(accel)->bus, ioev);
}

static int soft_deassign(struct vn_accel *accel, const struct vn_ioev *ioev)
{
	return vn_bus_ioev_deassign(to_soft(accel)->bus, ioev);
}

static void soft_free(struct vn_accel *accel)
{
	free(to_soft(accel));
}

static const struct vn_accel_ops soft_ops = {
	.name = "soft",
	.assign = soft_assign,
	.deassign = soft_deassign,
	.free = soft_free,
};

int vn_accel_soft_new(struct vn_bus *bus, struct vn_accel **out)
{
	struct accel_soft *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->accel.ops = &soft_ops;
	s->accel.max_ioeventfds = vn_bus_ioev_limit(bus);
	s->accel.any_length = true; /* len 0 is matched in both spaces */
	s->bus = bus;
	*out = &s->accel;
	return 0;
}
