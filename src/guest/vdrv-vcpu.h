/* SPDX-License-Identifier: MIT */
#ifndef VN_GUEST_VDRV_VCPU_H
#define VN_GUEST_VDRV_VCPU_H

/*
 * A "vCPU" of the guest driver: a thread running guest code (a function of
 * the test or benchmark) that drives its own queue through the bus, so its
 * doorbell writes are exits or ioeventfd signals exactly as a VM's vCPU's.
 * The thread is told to stop through a flag it polls between requests (a
 * vCPU is never cancelled in the middle of a register access).
 */

#include <pthread.h>
#include <stdbool.h>

#include "base/compiler.h"

struct vn_vdrv_vcpu;

/**
 * typedef vn_vdrv_vcpu_fn - the guest code of a vCPU
 * Return: 0 or -errno; vn_vdrv_vcpu_join() hands it back.
 */
typedef int vn_vdrv_vcpu_fn(struct vn_vdrv_vcpu *vcpu, void *arg);

/**
 * vn_vdrv_vcpu_start() - start a vCPU thread running @fn(@vcpu, @arg)
 * @index: the vCPU's number (vn_vdrv_vcpu_index()); also its thread name
 * Return: 0, -ENOMEM, or -errno from pthread_create.
 */
VN_MUST_CHECK int vn_vdrv_vcpu_start(unsigned int index, vn_vdrv_vcpu_fn *fn, void *arg,
				     struct vn_vdrv_vcpu **out);

/** vn_vdrv_vcpu_index() - the number given at start */
unsigned int vn_vdrv_vcpu_index(const struct vn_vdrv_vcpu *vcpu);

/** vn_vdrv_vcpu_should_stop() - has vn_vdrv_vcpu_stop() been called? Context: any thread. */
bool vn_vdrv_vcpu_should_stop(const struct vn_vdrv_vcpu *vcpu);

/** vn_vdrv_vcpu_stop() - ask the vCPU to return from its function. Context: any thread. */
void vn_vdrv_vcpu_stop(struct vn_vdrv_vcpu *vcpu);

/**
 * vn_vdrv_vcpu_join() - wait for the vCPU's function to return, free the vCPU
 * Return: what the function returned. NULL gives 0.
 */
int vn_vdrv_vcpu_join(struct vn_vdrv_vcpu *vcpu);

#endif
