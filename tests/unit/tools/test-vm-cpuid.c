/* SPDX-License-Identifier: MIT */
/* vnotify-vm's CPUID edits (tools/vnotify-vm/cpuid.c): Linux must find KVM. */
#include "harness.h"

#include "../../../tools/vnotify-vm/cpuid.h"

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid_entry2 *e, int n, uint32_t fn)
{
	for (int i = 0; i < n; i++)
		if (e[i].function == fn)
			return &e[i];
	return NULL;
}

/* What Linux's kvm_cpuid_base() checks: the hypervisor bit, then the signature. */
static void check_kvm_visible(struct vn_t *t, struct kvm_cpuid_entry2 *e, int n)
{
	struct kvm_cpuid_entry2 *l1 = find(e, n, 1), *b = find(e, n, VM_CPUID_KVM_BASE);
	char sig[13] = {0};

	VN_REQUIRE(t, l1 && b);
	VN_CHECK(t, l1->ecx & VM_CPUID_HYPERVISOR);
	memcpy(sig, &b->ebx, 4);
	memcpy(sig + 4, &b->ecx, 4);
	memcpy(sig + 8, &b->edx, 4);
	VN_CHECK(t, memcmp(sig, "KVMKVMKVM\0\0\0", 12) == 0);
	VN_CHECK_EQ_U(t, b->eax, VM_CPUID_KVM_FEAT);
}

/* KVM listed its leaves: its features are kept, the APIC ID is the vCPU's. */
static void test_kvm_leaves_kept(struct vn_t *t)
{
	struct kvm_cpuid_entry2 e[8] = {
		{.function = 0, .eax = 0xd},
		{.function = 1, .ebx = 0x00aabbccu, .ecx = 0x1},
		{.function = 0xb, .edx = 0},
		{.function = VM_CPUID_KVM_BASE, .eax = 0x40000001},
		{.function = VM_CPUID_KVM_FEAT, .eax = 0x01007afb},
	};
	int n = vm_cpuid_edit(e, 5, 8, 3);

	VN_REQUIRE_EQ_INT(t, n, 5);
	check_kvm_visible(t, e, n);
	VN_CHECK_EQ_U(t, find(e, n, VM_CPUID_KVM_FEAT)->eax, 0x01007afbu);
	VN_CHECK_EQ_U(t, find(e, n, 1)->ebx, 0x03aabbccu);
	VN_CHECK_EQ_U(t, find(e, n, 1)->ecx & 1, 1);
	VN_CHECK_EQ_U(t, find(e, n, 0xb)->edx, 3);
}

/* KVM did not list them: they are added, with kvm-clock. */
static void test_kvm_leaves_added(struct vn_t *t)
{
	struct kvm_cpuid_entry2 e[4] = {{.function = 0}, {.function = 1}};
	int n = vm_cpuid_edit(e, 2, 4, 0);

	VN_REQUIRE_EQ_INT(t, n, 4);
	check_kvm_visible(t, e, n);
	/* KVM_FEATURE_CLOCKSOURCE2: the MSR Linux's kvm-clock uses */
	VN_CHECK(t, find(e, n, VM_CPUID_KVM_FEAT)->eax & (1u << 3));
	VN_CHECK_EQ_INT(t, vm_cpuid_edit(e, 2, 3, 0), -ENOSPC);
}

VN_TESTS(VN_TEST(test_kvm_leaves_kept), VN_TEST(test_kvm_leaves_added));
