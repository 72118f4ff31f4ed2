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
	/*
	 * One rig for the process: each input gets a new table and model
	 * (ioev_rig_reset()), the eventfds are kept and emptied. Creating them
	 * per input was a third of the run.
	 */
	static struct ioev_rig rig;
	static bool ready;
	struct vn_fz_in in = vn_fz_in(data, size);
	const uint8_t *op;
	char why[300];
	unsigned int limit;

	if (!in.left)
		return 0;
	limit = 1u + vn_fz_u8(&in) % 12u;
	if (!ready ? ioev_rig_init(&rig, limit) != 0 : ioev_rig_reset(&rig, limit) != 0) {
		ready = false;
		return 0; /* out of fds: not the table's fault */
	}
	ready = true;
	while ((op = vn_fz_take(&in, IOEV_RIG_OP_SIZE))) {
		if (!ioev_rig_step(&rig, op, why, sizeof(why))) {
			fprintf(stderr, "fuzz-ioev: table and model disagree: %s\n", why);
			abort();
		}
	}
	return 0;
}
