/* SPDX-License-Identifier: MIT */
/*
 * The CPUID table vnotify-vm gives each vCPU, edited from
 * KVM_GET_SUPPORTED_CPUID: the vCPU's APIC ID, the hypervisor bit and
 * KVM's paravirtual leaves, so that Linux finds KVM and uses kvm-clock
 * (without them it calibrates the TSC by itself and its clock drifts).
 * Pure: tested without /dev/kvm.
 */
#ifndef VNOTIFY_VM_CPUID_H
#define VNOTIFY_VM_CPUID_H

#include <stdint.h>
#include <linux/kvm.h>

#define VM_CPUID_KVM_BASE 0x40000000u  /* KVM_CPUID_SIGNATURE */
#define VM_CPUID_KVM_FEAT 0x40000001u  /* KVM_CPUID_FEATURES */
#define VM_CPUID_HYPERVISOR (1u << 31) /* leaf 1 ecx */

/*
 * Edits the nent entries at e (room for max) for vCPU id. KVM's own leaves
 * are kept as KVM reports them (the features it supports) but with the
 * signature and the leaf range forced; when KVM did not list them they are
 * added with the clock features only. Returns the new entry count, or
 * -ENOSPC when there is no room for a missing leaf.
 */
int vm_cpuid_edit(struct kvm_cpuid_entry2 *e, unsigned int nent, unsigned int max, unsigned int id);

#endif
