/* SPDX-License-Identifier: MIT */
#ifndef VN_TOOLS_VNOTIFY_VM_H
#define VN_TOOLS_VNOTIFY_VM_H

/*
 * vnotify-vm: a small KVM virtual machine monitor on vnotify's machine
 * (x86-64 only). One KVM VM, in-kernel irqchip and PIT, one thread per
 * vCPU, an 8250 UART on 0x3f8 (serial.c), Linux's boot protocol and an MP
 * table (boot.c), and vnotify's virtio-pci devices behind the machine's
 * PCI host bridge. Every PIO/MMIO exit that is not the UART goes to
 * vn_bus_read()/vn_bus_write(); ioeventfds are KVM's and never exit.
 */

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define VM_MAX_CPUS 8
#define VM_MAX_BLK 8
#define VM_MAX_IOTHREADS 8

struct vn_machine;
struct vn_kvm_irq;
struct vm;
struct vcpu_power_on;
struct irqchip_power_on;

/*
 * Kicks a vCPU thread out of KVM_RUN (an empty handler, no SA_RESTART:
 * KVM_RUN returns EINTR). A real-time signal, so SIGUSR1 stays free for the
 * notifier report; real-time signals queue, so a repeated kick can cost a
 * later spurious EINTR exit, which is harmless.
 */
#define VM_SIG_KICK (SIGRTMIN + 1)

/* exit counters, per type: what the guest cost in trips to userspace */
enum vm_exit {
	VM_EXIT_PIO_SERIAL,
	VM_EXIT_PIO_PCI_CONF,
	VM_EXIT_PIO_BUS,   /* virtio legacy BARs and other bus regions */
	VM_EXIT_PIO_OTHER, /* nothing there (unassigned), or the CMOS stub */
	VM_EXIT_MMIO_BUS,
	VM_EXIT_MMIO_OTHER,
	VM_EXIT_INTR,
	VM_EXIT_OTHER,
	VM_EXIT_COUNT,
};

struct serial {
	pthread_mutex_t lock;
	struct vm *vm;
	int out_fd; /* -1: output dropped */
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thr_pending; /* a THR-empty interrupt is pending */
	bool irq_level;
};

struct vm_vcpu {
	struct vm *vm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	struct vcpu_power_on *power_on; /* its state after KVM_CREATE_VCPU (reset.c) */
};

struct vm {
	int kvm_fd, vm_fd;
	size_t run_size;
	struct vn_machine *m;
	struct vn_kvm_irq *irq;
	uint8_t *ram;
	uint64_t ram_size;
	unsigned int ncpus;
	struct vm_vcpu cpu[VM_MAX_CPUS];
	struct serial serial;
	atomic_bool stop;
	/*
	 * Pause: vCPUs park outside KVM_RUN while @paused is set; @nparked
	 * counts them (under pause_lock) so the pauser knows when no vCPU can
	 * touch the devices any more.
	 */
	atomic_bool paused;
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	unsigned int nparked;
	/*
	 * A guest reboot: set by the vCPU that saw it; every vCPU parks while
	 * it is set, and main resets the machine and clears it (reset.c).
	 */
	atomic_bool reset_pending;
	bool no_reboot;	      /* --no-reboot: a guest reboot ends the VM */
	unsigned int reboots; /* resets done (main only) */
	const char *kernel, *initrd, *cmdline; /* what a reset loads again */
	struct irqchip_power_on *irqchip_power_on;
	/* 0 running, 1 reboot with --no-reboot, 2 signal, 3 error, 4 poweroff */
	atomic_int end_reason;
	pthread_t main_thread;
	atomic_ullong exits[VM_EXIT_COUNT];
	atomic_uint unassigned_port[0x10000]; /* which ports cost exits for nothing */
	uint8_t cmos_index;
};

/* boot.c */
int vm_load_linux(struct vm *vm, const char *kernel, const char *initrd, const char *cmdline,
		  uint64_t *entry, uint64_t *boot_params);
int vm_write_mptable(struct vm *vm);
int vm_assign_bars(struct vm *vm);

/* serial.c */
void serial_init(struct serial *s, struct vm *vm, int out_fd);
void serial_reset(struct serial *s);
void serial_io(struct serial *s, uint16_t port, bool write, uint8_t *data, unsigned int size);

/* promote.c */
struct vn_iothread;
int vm_promote_parse(const char *arg);
int vm_promote_setup(struct vn_machine *m, struct vn_iothread *it);
void vm_promote_report(void);
void vm_promote_free(struct vn_machine *m);
void vm_promote_reset(void);

/* reset.c */
int vm_vcpu_save_power_on(struct vm_vcpu *c);
int vm_irqchip_save_power_on(struct vm *vm);
int vm_reset(struct vm *vm);
void vm_reset_free(struct vm *vm);

/* balance.c: the run-time queue balancer */
struct vn_blk;
struct vn_virtio_pci;
struct vm_balancer;
struct vm_balance_qcfg {
	struct vn_blk *blk;
	struct vn_virtio_pci *vp;
	unsigned int disk, q, thread;
	bool pinned; /* iothread=ID: the user placed it */
};
struct vm_balance_cfg {
	struct vn_iothread *const *io; /* the iothreads, nio of them */
	unsigned int nio;
	unsigned int nq; /* entries of @q: every queue of every disk */
	const struct vm_balance_qcfg *q;
};
int vm_balance_new(const struct vm_balance_cfg *cfg, struct vm_balancer **out);
void vm_balance_free(struct vm_balancer *vb);
/* One interval: measure, decide, move. Context: main thread, no device lock. */
void vm_balance_tick(struct vm_balancer *vb);
void vm_balance_report(const struct vm_balancer *vb, bool on);

/* vcpu.c */
int vm_vcpu_init(struct vm *vm, unsigned int id, uint64_t entry, uint64_t boot_params);
int vm_vcpu_boot_regs(struct vm_vcpu *c, uint64_t entry, uint64_t boot_params);
int vm_vcpu_start(struct vm_vcpu *c);
void vm_request_reset(struct vm *vm);
void vm_vcpus_stop(struct vm *vm);
void vm_vcpus_pause(struct vm *vm);
void vm_vcpus_resume(struct vm *vm);
void vm_request_end(struct vm *vm, int reason);
const char *vm_exit_name(enum vm_exit e);

#endif
