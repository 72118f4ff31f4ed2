/* SPDX-License-Identifier: MIT */
#include <string.h>

#include <vnotify/error.h>

const char *vn_strerror(int err)
{
	if (err == 0)
		return "success";
	return strerror(err < 0 ? -err : err);
}
