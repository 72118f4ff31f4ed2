/* SPDX-License-Identifier: MIT */
/* The vCPUs' CPUID table (cpuid.h). */
#include "cpuid.h"

#include <errno.h>
#include <string.h>

/* KVM_FEATURE_CLOCKSOURCE (0) and CLOCKSOURCE2 (3): in every KVM since 2.6.35. */
#define KVM_FEAT_CLOCKS ((1u << 0) | (1u << 3))

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid_entry2 *e, unsigned int n, uint32_t fn)
{
	for (unsigned int i = 0; i < n; i++)
		if (e[i].function == fn)
			return &e[i];
	return NULL;
}

static struct kvm_cpuid_entry2 *add(struct kvm_cpuid_entry2 *e, unsigned int *n, unsigned int max,
				    uint32_t fn)
{
	struct kvm_cpuid_entry2 *x;

	if (*n >= max)
		return NULL;
	x = &e[(*n)++];
	memset(x, 0, sizeof(*x));
	x->function = fn;
	return x;
}

int vm_cpuid_edit(struct kvm_cpuid_entry2 *e, unsigned int nent, unsigned int max, unsigned int id)
{
	/* "KVMKVMKVM\0\0\0" in ebx, ecx, edx: what Linux's kvm_cpuid_base() looks for */
	static const char sig[12] = "KVMKVMKVM\0\0";
	struct kvm_cpuid_entry2 *base, *feat;
	unsigned int n = nent;

	for (unsigned int i = 0; i < n; i++) {
		/* the initial APIC ID is the vCPU's, as the MP table says */
		if (e[i].function == 1) {
			e[i].ebx = (e[i].ebx & 0x00ffffffu) | (id << 24);
			/* Linux looks at 0x4000xxxx only with this bit set */
			e[i].ecx |= VM_CPUID_HYPERVISOR;
		}
		if (e[i].function == 0xb || e[i].function == 0x1f)
			e[i].edx = id;
	}
	base = find(e, n, VM_CPUID_KVM_BASE);
	if (!base && !(base = add(e, &n, max, VM_CPUID_KVM_BASE)))
		return -ENOSPC;
	memcpy(&base->ebx, sig, 4);
	memcpy(&base->ecx, sig + 4, 4);
	memcpy(&base->edx, sig + 8, 4);
	base->eax = VM_CPUID_KVM_FEAT;
	feat = find(e, n, VM_CPUID_KVM_FEAT);
	if (!feat) {
		feat = add(e, &n, max, VM_CPUID_KVM_FEAT);
		if (!feat)
			return -ENOSPC;
		feat->eax = KVM_FEAT_CLOCKS;
	}
	return (int)n;
}
