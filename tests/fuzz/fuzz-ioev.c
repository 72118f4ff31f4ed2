/* SPDX-License-Identifier: MIT */
/*
 * fuzz-ioev: assign/deassign/write sequences on the soft ioeventfd table,
 * each step compared with the list model of KVM's rules
 * (tests/unit/bus/ioev-model.c). The first byte picks the table limit
 * (small, to reach -ENOSPC); then every 8 bytes are one operation.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/fuzz-input.h"
#include "unit/bus/ioev-model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vn_fz_in in = vn_fz_in(data, size);
	struct ioev_rig rig;
	const uint8_t *op;
	char why[300];

	if (!in.left)
		return 0;
	if (ioev_rig_init(&rig, 1u + vn_fz_u8(&in) % 12u) != 0)
		return 0; /* out of fds: not the table's fault */
	while ((op = vn_fz_take(&in, IOEV_RIG_OP_SIZE))) {
		if (!ioev_rig_step(&rig, op, why, sizeof(why))) {
			fprintf(stderr, "fuzz-ioev: table and model disagree: %s\n", why);
			abort();
		}
	}
	ioev_rig_destroy(&rig);
	return 0;
}
