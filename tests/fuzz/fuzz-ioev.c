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

#include "unit/bus/ioev-model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ioev_rig rig;
	char why[300];

	if (size < 1)
		return 0;
	if (ioev_rig_init(&rig, 1u + data[0] % 12u) != 0)
		return 0; /* out of fds: not the table's fault */
	data++;
	size--;
	for (; size >= IOEV_RIG_OP_SIZE; data += IOEV_RIG_OP_SIZE, size -= IOEV_RIG_OP_SIZE) {
		if (!ioev_rig_step(&rig, data, why, sizeof(why))) {
			fprintf(stderr, "fuzz-ioev: table and model disagree: %s\n", why);
			abort();
		}
	}
	ioev_rig_destroy(&rig);
	return 0;
}
