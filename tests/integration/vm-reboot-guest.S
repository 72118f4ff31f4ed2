/* SPDX-License-Identifier: MIT */
/*
 * A bzImage-shaped guest for vnotify-vm's reboot test (test-vm-reboot.sh):
 * Linux's boot header, so vnotify-vm loads it, and 32-bit code that
 * vnotify-vm enters at 0x100000 (flat protected mode, esi = boot_params).
 * A boot counter in RAM (not reloaded; RAM survives a reset) picks what
 * each boot does; each boot prints "B<n>" on the UART:
 *   1: dirty the state a reset must undo (ebx, DF, CR4.OSFXSR, kvm-clock
 *      armed at 0x301000), then reboot=k's reset: 0xfe to port 0x64;
 *   2: check the reset state ("X" on a mismatch, "K" once the kvm-clock
 *      MSR reads 0 again), dirty it again and reset the same way;
 *   3: check again, print "D" and a newline, and halt.
 * (reboot=t's triple fault is the nested test's: Linux reboots that way
 * there. This host's software KVM, kvm_pvm, fails to emulate the
 * delivery of an exception through an empty IDT instead of shutting down.)
 * Built with the C compiler (.code32 in a 64-bit object) and objcopy.
 */
	.code32
	.text
	.globl _start
_start:
	.org 0x1f1
	.byte 1			/* setup_sects: the 32-bit code is at 2 * 512 */
	.org 0x200
	.byte 0xeb, 0x66	/* jmp: the header ends at 0x268 */
	.ascii "HdrS"
	.short 0x020f		/* boot protocol 2.15 */
	.org 0x211
	.byte 0x01		/* loadflags: LOADED_HIGH */
	.org 0x214
	.long 0			/* code32_start: the default, 0x100000 */
	.org 0x22c
	.long 0x37ffffff	/* initrd_addr_max */
	.org 0x238
	.long 0x7ff		/* cmdline_size */

	.org 0x400		/* loaded at 0x100000 */
entry:
	mov $0x2ff000, %esp	/* a stack, below the counter's page */
	mov $0x3f8, %dx
	incl 0x300000
	mov $'B', %al
	out %al, %dx
	mov 0x300000, %al
	add $'0', %al
	out %al, %dx
	cmpl $1, 0x300000
	je dirty		/* the first boot checks nothing */

	/* the state a reset must restore: what vnotify-vm set at first boot */
	test %ebx, %ebx
	jnz bad
	cmp $0x7000, %esi
	jne bad
	pushf
	pop %eax
	test $0x400, %eax	/* DF */
	jnz bad
	mov %cr4, %eax
	test %eax, %eax
	jnz bad
	call has_kvmclock
	jz 1f
	mov $0x4b564d01, %ecx	/* MSR_KVM_SYSTEM_TIME_NEW: off at power-on */
	rdmsr
	or %edx, %eax
	jnz bad
	mov $0x3f8, %dx
	mov $'K', %al
	out %al, %dx
1:
	cmpl $3, 0x300000
	jb dirty
	mov $'D', %al
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
halt:
	cli
	hlt
	jmp halt
bad:
	mov $'X', %al
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
	jmp halt

dirty:
	call has_kvmclock
	jz 1f
	mov $0x4b564d01, %ecx
	mov $0x301001, %eax	/* kvm-clock at 0x301000, enabled */
	xor %edx, %edx
	wrmsr
	mov $0x3f8, %dx
1:
	mov %cr4, %eax
	or $0x200, %eax		/* OSFXSR */
	mov %eax, %cr4
	mov $0x1234, %ebx
	std
	mov $0xfe, %al
	out %al, $0x64
	jmp halt

/* ZF clear if KVM's CPUID leaf offers kvm-clock (KVM_FEATURE_CLOCKSOURCE2) */
has_kvmclock:
	push %edx
	mov $0x40000000, %eax
	cpuid
	cmp $0x4b4d564b, %ebx	/* "KVMK" */
	jne 2f
	mov $0x40000001, %eax
	cpuid
	test $0x8, %eax
	pop %edx
	ret
2:
	xor %eax, %eax		/* ZF set */
	pop %edx
	ret

	.org 0x1000
