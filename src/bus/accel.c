/* SPDX-License-Identifier: MIT */
#include "bus/accel.h"

#include <stddef.h>

void vn_accel_free(struct vn_accel *accel)
{
	if (accel)
		accel->ops->free(accel);
}

int vn_accel_assign(struct vn_accel *accel, const struct vn_ioev *ioev)
{
	return accel->ops->assign(accel, ioev);
}

int vn_accel_deassign(struct vn_accel *accel, const struct vn_ioev *ioev)
{
	return accel->ops->deassign(accel, ioev);
}

unsigned int vn_accel_max_ioeventfds(const struct vn_accel *accel)
{
	return accel->max_ioeventfds;
}

bool vn_accel_has_any_length(const struct vn_accel *accel)
{
	return accel->any_length;
}

const char *vn_accel_name(const struct vn_accel *accel)
{
	return accel->ops->name;
}
