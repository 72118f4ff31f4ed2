/* SPDX-License-Identifier: MIT */
/*
 * vnotify-vm --kernel BZIMAGE [--initrd FILE] [--append CMDLINE]
 *            [--memory 512M] [--cpus N] [--iothreads K] [--poll-max-ns NS] [--console]
 *            [--max-ioeventfds N] [--rebalance MS|off] [--no-reboot]
 *            [--memory-backend anon|memfd|hugetlbfs[:PATH]]
 *            [--blk path=IMG[,ioeventfd=on|off][,iothread=ID][,queues=N]]...
 *
 * Boots Linux on KVM with vnotify's virtio-blk on virtio-pci (MSI-X through
 * irqfds, kicks through KVM ioeventfds), a request queue per vCPU by
 * default, the queues spread over the iothreads and rebalanced by load. A
 * guest reboot (a triple fault: reboot=t, the default command line; or
 * reboot=k) resets the machine and boots the kernel again (reset.c), or
 * with --no-reboot ends the VM. A poweroff system event, Ctrl-C or SIGTERM
 * end it; it then prints the exit counts per type and per block request
 * and the notifier state on stderr. SIGUSR1 prints the notifier state
 * while it runs.
 */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include <vnotify/blk.h>
#include <vnotify/bus.h>
#include <vnotify/iothread.h>
#include <vnotify/loop.h>
#include <vnotify/kvm.h>
#include <vnotify/log.h>
#include <vnotify/machine.h>
#include <vnotify/notifier.h>
#include <vnotify/pci.h>

#include "hw/machine.h"
#include "mem/gmem.h"

#define DEFAULT_CMDLINE                                                                            \
	"console=ttyS0 pci=conf1 acpi=off reboot=t panic=-1 no_timer_check io_delay=none "         \
	"i8042.noaux=1 i8042.nokbd=1 i8042.nopnp=1 i8042.dumbkbd=1"

#define BLK_MAX_QUEUES 64u
#define REBALANCE_MS_DEFAULT 1000u

struct blk_opt {
	const char *path;
	int ioeventfd;	     /* -1: the device type's default */
	int iothread;	     /* -1: its queues spread over every iothread */
	unsigned int queues; /* 0: one per vCPU */
	struct vn_iothread *qio[BLK_MAX_QUEUES]; /* where each queue starts */
	unsigned int qthread[BLK_MAX_QUEUES];
	struct vn_blk *blk;
	struct vn_virtio_pci *vp;
};

struct opts {
	const char *kernel, *initrd, *append;
	uint64_t memory;
	unsigned int cpus;
	int iothreads; /* -1: min(queues, host CPUs the vCPUs leave), at least 1 */
	unsigned int rebalance_ms; /* 0: off */
	unsigned int poll_max_ns; /* iothreads' busy-poll cap; 0: off */
	bool console;
	unsigned int max_ioeventfds; /* 0: the accelerator's default */
	enum vn_machine_ram ram;
	const char *ram_path;
	bool no_reboot;
	struct blk_opt blk[VM_MAX_BLK];
	unsigned int nblk;
};

static void usage(void)
{
	fprintf(stderr, "usage: vnotify-vm --kernel BZIMAGE [--initrd FILE] [--append CMDLINE]\n"
			"                  [--memory 512M] [--cpus N] [--iothreads K] [--console]\n"
			"                  [--poll-max-ns NS]  (iothread busy-poll cap, default 32768; 0: off)\n"
			"                  [--max-ioeventfds N] [--rebalance MS|off] [--no-reboot]\n"
			"                  [--memory-backend anon|memfd|hugetlbfs[:PATH]]\n"
			"                  [--blk "
			"path=IMG[,ioeventfd=on|off][,iothread=ID][,queues=N]]...\n"
			"                  [--promote pio:ADDR]...  (a promoter candidate sink)\n"
			"\n"
			"Queues: queues=N request queues per disk (default: one per vCPU; more\n"
			"than one offers VIRTIO_BLK_F_MQ). Queue q of the whole VM starts on\n"
			"iothread q mod K; iothread=ID pins every queue of that disk there.\n"
			"--iothreads K: default min(queues, host CPUs - vCPUs), at least 1; 0 runs\n"
			"every doorbell on its vCPU. --rebalance MS (default 1000): every MS ms\n"
			"a queue moves from the busiest iothread to the idlest when its requests\n"
			"per interval stay over 150%% of the idlest's for 3 intervals (the move\n"
			"stops, drains and restarts its notifier: no kick is lost); off: never.\n"
			"\n"
			"--memory-backend: guest RAM as private anonymous memory (anon, the\n"
			"default: nothing outside vnotify-vm maps it; MADV_HUGEPAGE, so it gets\n"
			"transparent huge pages unless THP is 'never'), a shared memfd (memfd:\n"
			"MADV_HUGEPAGE too, but shmem gets huge pages only if\n"
			"/sys/kernel/mm/transparent_hugepage/shmem_enabled allows), or hugetlbfs\n"
			"pages (a MFD_HUGETLB memfd, or a file in the hugetlbfs mount PATH),\n"
			"reserved at start: too few in /proc/sys/vm/nr_hugepages is refused.\n"
			"\n"
			"--max-ioeventfds N: ioeventfds per bus (PIO, MMIO) this VM may register;\n"
			"with N <= 6 (the old kernels' budget) the device's queues take none and\n"
			"their doorbells exit to vnotify-vm, keeping the slots for vhost backends.\n"
			"\n"
			"A guest reboot (triple fault, or reboot=k's keyboard controller reset)\n"
			"resets the machine and boots the kernel again: vCPUs parked, devices reset\n"
			"(notifiers stopped and drained, block I/O in flight finished, the ioeventfd\n"
			"option kept), kernel and initramfs loaded again. --no-reboot: a guest\n"
			"reboot ends vnotify-vm instead. The reboots are counted in the exit report.\n"
			"\n"
			"signals: SIGINT/SIGTERM end the VM; SIGTSTP pauses it (vCPUs parked, host\n"
			"notifiers stopped and drained); SIGCONT resumes it (notifiers restarted, each\n"
			"queue self-kicked); SIGUSR1 prints each device's and queue's notifier state\n"
			"on stderr (also printed at exit).\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (*end == 'k' || *end == 'K')
		v <<= 10;
	else if (*end == 'g' || *end == 'G')
		v <<= 30;
	else if (*end == 'm' || *end == 'M' || *end == '\0')
		v <<= 20; /* no suffix: MiB */
	else
		return -EINVAL;
	if (*end)
		end++;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_uint(const char *s, unsigned int max, unsigned int *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);

	if (!*s || *end || v > max)
		return -EINVAL;
	*out = (unsigned int)v;
	return 0;
}

static int parse_blk(char *arg, struct blk_opt *b)
{
	char *save = NULL;

	*b = (struct blk_opt){ .ioeventfd = -1, .iothread = -1 };
	for (char *kv = strtok_r(arg, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');

		if (!v)
			return -EINVAL;
		*v++ = '\0';
		if (!strcmp(kv, "path"))
			b->path = v;
		else if (!strcmp(kv, "ioeventfd") && (!strcmp(v, "on") || !strcmp(v, "off")))
			b->ioeventfd = !strcmp(v, "on");
		else if (!strcmp(kv, "iothread")) {
			unsigned int id;

			if (parse_uint(v, VM_MAX_IOTHREADS - 1, &id))
				return -EINVAL;
			b->iothread = (int)id;
		} else if (!strcmp(kv, "queues")) {
			if (parse_uint(v, BLK_MAX_QUEUES, &b->queues) || !b->queues)
				return -EINVAL;
		} else
			return -EINVAL;
	}
	return b->path ? 0 : -EINVAL;
}

/*
 * A queue per vCPU (as QEMU's virtio-blk num-queues=auto), and enough
 * iothreads for the queues but no more than the host CPUs the vCPUs leave
 * free: more threads than CPUs only adds wake-ups. Queue q of the VM (all
 * disks in order) starts on iothread q mod K, unless its disk is pinned.
 */
static int place_queues(struct opts *o)
{
	long host = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int total = 0, g = 0, spare;

	for (unsigned int i = 0; i < o->nblk; i++) {
		if (!o->blk[i].queues)
			o->blk[i].queues = o->cpus;
		total += o->blk[i].queues;
	}
	if (o->iothreads < 0) {
		spare = host > (long)o->cpus ? (unsigned int)(host - o->cpus) : 1;
		o->iothreads = (int)(total < spare ? total : spare);
		if (o->iothreads < 1)
			o->iothreads = 1;
		if (o->iothreads > VM_MAX_IOTHREADS)
			o->iothreads = VM_MAX_IOTHREADS;
	}
	for (unsigned int i = 0; i < o->nblk; i++) {
		struct blk_opt *b = &o->blk[i];

		if (o->iothreads && b->iothread >= o->iothreads) {
			fprintf(stderr, "vnotify-vm: --blk iothread=%d: only %d iothreads\n",
				b->iothread, o->iothreads);
			return -EINVAL;
		}
		for (unsigned int q = 0; q < b->queues; q++, g++)
			b->qthread[q] = !o->iothreads	 ? 0
					: b->iothread >= 0 ? (unsigned int)b->iothread
							   : g % (unsigned int)o->iothreads;
	}
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "append", required_argument, NULL, 'a' },
		{ "memory", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'c' },
		{ "blk", required_argument, NULL, 'b' },
		{ "iothreads", required_argument, NULL, 't' },
		{ "poll-max-ns", required_argument, NULL, 'N' },
		{ "console", no_argument, NULL, 'C' },
		{ "promote", required_argument, NULL, 'P' },
		{ "max-ioeventfds", required_argument, NULL, 'E' },
		{ "no-reboot", no_argument, NULL, 'n' },
		{ "rebalance", required_argument, NULL, 'R' },
		{ "memory-backend", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct opts){ .memory = 512ull << 20, .cpus = 1, .iothreads = -1, .append = "",
			    .poll_max_ns = VN_LOOP_POLL_MAX_NS_DEFAULT,
			    .rebalance_ms = REBALANCE_MS_DEFAULT,
			    /* no vhost-user backend shares guest RAM here: private, huge */
			    .ram = VN_MACHINE_RAM_ANON };
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'k':
			o->kernel = optarg;
			break;
		case 'i':
			o->initrd = optarg;
			break;
		case 'a':
			o->append = optarg;
			break;
		case 'C':
			o->console = true;
			break;
		case 'n':
			o->no_reboot = true;
			break;
		case 'P':
			if (vm_promote_parse(optarg)) {
				fprintf(stderr, "vnotify-vm: bad --promote (pio:ADDR, at most 4)\n");
				return -EINVAL;
			}
			break;
		case 'm':
			if (parse_size(optarg, &o->memory) || o->memory < (64ull << 20) ||
			    o->memory > (3ull << 30) || (o->memory & 0xfff)) {
				fprintf(stderr, "vnotify-vm: --memory: 64M..3G, in pages\n");
				return -EINVAL;
			}
			break;
		case 'c':
			if (parse_uint(optarg, VM_MAX_CPUS, &o->cpus) || !o->cpus) {
				fprintf(stderr, "vnotify-vm: --cpus: 1..%d\n", VM_MAX_CPUS);
				return -EINVAL;
			}
			break;
		case 't': {
			unsigned int k;

			if (parse_uint(optarg, VM_MAX_IOTHREADS, &k)) {
				fprintf(stderr, "vnotify-vm: --iothreads: 0..%d\n",
					VM_MAX_IOTHREADS);
				return -EINVAL;
			}
			o->iothreads = (int)k;
			break;
		}
		case 'M':
			if (!strcmp(optarg, "anon")) {
				o->ram = VN_MACHINE_RAM_ANON;
			} else if (!strcmp(optarg, "memfd")) {
				o->ram = VN_MACHINE_RAM_MEMFD;
			} else if (!strncmp(optarg, "hugetlbfs", 9) &&
				   (optarg[9] == '\0' || (optarg[9] == ':' && optarg[10]))) {
				o->ram = VN_MACHINE_RAM_HUGETLB;
				o->ram_path = optarg[9] ? optarg + 10 : NULL;
			} else {
				fprintf(stderr, "vnotify-vm: --memory-backend: anon, memfd or "
						"hugetlbfs[:PATH]\n");
				return -EINVAL;
			}
			break;
		case 'R':
			/* 10 ms..60 s: shorter measures noise, longer never reacts */
			if (!strcmp(optarg, "off"))
				o->rebalance_ms = 0;
			else if (parse_uint(optarg, 60000, &o->rebalance_ms) ||
				 o->rebalance_ms < 10) {
				fprintf(stderr, "vnotify-vm: --rebalance: 10..60000 (ms) or off\n");
				return -EINVAL;
			}
			break;
		case 'N':
			/* up to 10 ms: longer only burns a core for nothing */
			if (parse_uint(optarg, 10000000, &o->poll_max_ns)) {
				fprintf(stderr, "vnotify-vm: --poll-max-ns: 0..10000000\n");
				return -EINVAL;
			}
			break;
		case 'E':
			if (parse_uint(optarg, VN_IOEV_LIMIT_DEFAULT, &o->max_ioeventfds) ||
			    !o->max_ioeventfds) {
				fprintf(stderr, "vnotify-vm: --max-ioeventfds: 1..%u\n",
					VN_IOEV_LIMIT_DEFAULT);
				return -EINVAL;
			}
			break;
		case 'b':
			if (o->nblk == VM_MAX_BLK || parse_blk(optarg, &o->blk[o->nblk])) {
				fprintf(stderr, "vnotify-vm: bad --blk (at most %d)\n", VM_MAX_BLK);
				return -EINVAL;
			}
			o->nblk++;
			break;
		default:
			usage();
			return -EINVAL;
		}
	}
	if (!o->kernel || optind != argc) {
		usage();
		return -EINVAL;
	}
	return place_queues(o);
}

/* struct vn_msi_ops for KVM: MSI-X vectors become irqfds on GSI routes */
static int kvm_msi_route(void *opaque, uint64_t addr, uint32_t data, struct vn_msi_route *out)
{
	struct vm *vm = opaque;
	uint32_t gsi;
	int fd, r;

	/* x86: an MSI goes to the local APICs' window; anything else nowhere */
	if ((addr & 0xfff00000ull) != 0xfee00000ull)
		return -EINVAL;
	r = vn_kvm_irq_msi_route(vm->irq, addr, data, &fd, &gsi);
	if (r)
		return r;
	out->fd = fd;
	out->cookie = gsi;
	return 0;
}

static void kvm_msi_unroute(void *opaque, const struct vn_msi_route *route)
{
	struct vm *vm = opaque;

	vn_kvm_irq_msi_unroute(vm->irq, (uint32_t)route->cookie);
}

static const struct vn_msi_ops kvm_msi_ops = {
	.route = kvm_msi_route,
	.unroute = kvm_msi_unroute,
};

static int kvm_vm_create(struct vm *vm)
{
	struct kvm_pit_config pit = { .flags = 0 };
	int r;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		fprintf(stderr, "vnotify-vm: /dev/kvm: %s\n", strerror(errno));
		return -errno;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return -errno;
	r = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (r < 0)
		return -errno;
	vm->run_size = (size_t)r;
	/* Intel needs a TSS and an identity map page below 4 GiB; AMD ignores them */
	(void)ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		fprintf(stderr, "vnotify-vm: in-kernel irqchip/PIT: %s\n", strerror(errno));
		return -errno;
	}
	/* their power-on state, for a guest reboot (reset.c) */
	r = vm_irqchip_save_power_on(vm);
	if (r)
		fprintf(stderr, "vnotify-vm: irqchip/PIT state: %s\n", strerror(-r));
	return r;
}

static int add_ram(struct vm *vm)
{
	struct kvm_userspace_memory_region slot = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = vm->ram_size,
	};

	vm->ram = vn_gmem_ptr(vn_machine_gmem(vm->m), 0, vm->ram_size);
	if (!vm->ram)
		return -EFAULT;
	slot.userspace_addr = (uint64_t)(uintptr_t)vm->ram;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return -errno;
	return 0;
}

static const char *ram_name(enum vn_machine_ram ram)
{
	return ram == VN_MACHINE_RAM_ANON ? "anon" : ram == VN_MACHINE_RAM_MEMFD ? "memfd" : "hugetlbfs";
}

/* A meminfo-style "Key: N kB" line of @path, or -1. */
static long long kb_field(const char *path, const char *key)
{
	FILE *f = fopen(path, "r");
	char line[256];
	size_t n = strlen(key);
	long long v = -1;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':' && sscanf(line + n + 1, "%lld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

static void machine_error(const struct opts *o, int r)
{
	if (o->ram == VN_MACHINE_RAM_HUGETLB && r == -ENOMEM)
		fprintf(stderr,
			"vnotify-vm: guest RAM: --memory-backend hugetlbfs needs %llu MiB of free "
			"huge pages; the host has %lld free of %lld kB each (HugePages_Free in "
			"/proc/meminfo; reserve them in /proc/sys/vm/nr_hugepages)\n",
			(unsigned long long)(o->memory >> 20), kb_field("/proc/meminfo", "HugePages_Free"),
			kb_field("/proc/meminfo", "Hugepagesize"));
	else if (o->ram == VN_MACHINE_RAM_HUGETLB && r == -ENOTTY)
		fprintf(stderr, "vnotify-vm: guest RAM: %s is not a hugetlbfs mount\n", o->ram_path);
	else
		fprintf(stderr, "vnotify-vm: machine (guest RAM %s): %s\n", ram_name(o->ram),
			strerror(-r));
}

/* How much of this process is in huge pages now: guest RAM is nearly all of it. */
static void report_ram(const struct opts *o)
{
	const char *sm = "/proc/self/smaps_rollup";

	fprintf(stderr,
		"vnotify-vm: guest RAM %s: %llu MiB; in huge pages: anon THP %lld kB, shmem THP "
		"%lld kB, hugetlb %lld kB\n",
		ram_name(o->ram), (unsigned long long)(o->memory >> 20), kb_field(sm, "AnonHugePages"),
		kb_field(sm, "ShmemPmdMapped"),
		kb_field(sm, "Private_Hugetlb") + kb_field(sm, "Shared_Hugetlb"));
}

/* The host notifier state (<vnotify/notifier.h>): a silent fallback shows. */
static void vm_print_notifiers(struct vn_virtio_pci *vp, unsigned int i)
{
	struct vn_notifier_info ni;

	vn_virtio_pci_notifier_info(vp, &ni);
	fprintf(stderr,
		"vnotify-vm: blk%u notifiers: ioeventfd %s, fallbacks %llu (last: vq %u, %s), "
		"self-kicks %llu, drains that ran %llu, safety-net catches %llu\n",
		i, ni.ioeventfd ? "in use" : "not in use", (unsigned long long)ni.fallbacks,
		ni.fallback_queue, ni.fallback_err ? strerror(-ni.fallback_err) : "none",
		(unsigned long long)ni.self_kicks, (unsigned long long)ni.drain_runs,
		(unsigned long long)ni.missed);
	for (unsigned int q = 0; q < ni.nr_queues; q++) {
		struct vn_notifier_queue_info qi;

		if (vn_virtio_pci_queue_notifier_info(vp, q, &qi))
			continue;
		struct vn_iothread *it = vn_virtio_pci_queue_iothread(vp, q);

		fprintf(stderr,
			"vnotify-vm: blk%u q%u notifier: %s from %s on %s, %llu kicks, %llu runs\n",
			i, q, qi.state, qi.source, it ? vn_iothread_name(it) : "no iothread",
			(unsigned long long)qi.kicks, (unsigned long long)qi.runs);
	}
}

/* Every device's notifier state: at exit, and on SIGUSR1 (from main's sigwait, not a handler). */
static void print_notifiers(struct vm *vm, struct opts *o)
{
	for (unsigned int i = 0; i < o->nblk; i++) {
		struct vn_virtio_pci_stats ps;

		vn_virtio_pci_get_stats(o->blk[i].vp, &ps);
		fprintf(stderr, "vnotify-vm: blk%u: ioeventfd=%s, doorbells that exited: %llu\n", i,
			o->blk[i].ioeventfd ? "on" : "off", (unsigned long long)ps.doorbells);
		vm_print_notifiers(o->blk[i].vp, i);
	}
	fprintf(stderr, "vnotify-vm: reboots: %u\n", vm->reboots);
}

static void report(struct vm *vm, struct opts *o, double secs, const struct vm_balancer *balancer)
{
	uint64_t total = 0, dev_exits, reqs = 0;

	for (int e = 0; e < VM_EXIT_COUNT; e++)
		total += vm->exits[e];
	fprintf(stderr, "vnotify-vm: %.2f s, %u vCPU(s), exits to userspace: %llu\n", secs,
		vm->ncpus, (unsigned long long)total);
	for (int e = 0; e < VM_EXIT_COUNT; e++)
		if (vm->exits[e])
			fprintf(stderr, "vnotify-vm:   %-16s %llu\n", vm_exit_name((enum vm_exit)e),
				(unsigned long long)vm->exits[e]);
	for (int k = 0; k < 4; k++) {
		unsigned int best = 0, port = 0;

		for (unsigned int p = 0; p < 0x10000; p++) {
			if (vm->unassigned_port[p] > best) {
				best = vm->unassigned_port[p];
				port = p;
			}
		}
		if (!best)
			break;
		fprintf(stderr, "vnotify-vm:   unassigned port 0x%x: %u\n", port, best);
		vm->unassigned_port[port] = 0;
	}
	for (unsigned int i = 0; i < o->nblk; i++) {
		for (unsigned int q = 0; q < o->blk[i].queues; q++) {
			struct vn_blk_stats st;

			if (vn_blk_get_stats(o->blk[i].blk, q, &st))
				continue;
			reqs += st.requests;
			fprintf(stderr,
				"vnotify-vm: blk%u q%u: %llu requests, %llu bytes read, %llu "
				"written, "
				"%llu errors\n",
				i, q, (unsigned long long)st.requests,
				(unsigned long long)st.bytes_read,
				(unsigned long long)st.bytes_written,
				(unsigned long long)st.errors);
		}
	}
	print_notifiers(vm, o);
	vm_promote_report();
	report_ram(o);
	vm_balance_report(balancer, balancer != NULL);
	fprintf(stderr, "vnotify-vm: ioeventfd budget: %u per bus%s\n",
		vn_accel_max_ioeventfds(vn_machine_accel(vm->m)),
		vn_accel_max_ioeventfds(vn_machine_accel(vm->m)) <= VN_IOEV_LIMIT_OLD_KERNEL
			? " (old-kernel policy: device queues take none)"
			: "");
	dev_exits = vm->exits[VM_EXIT_PIO_BUS] + vm->exits[VM_EXIT_MMIO_BUS];
	if (reqs)
		fprintf(stderr, "vnotify-vm: device exits (pio-bus + mmio-bus) per request: %.2f\n",
			(double)dev_exits / (double)reqs);
}

/*
 * The main thread waits for signals, and between them runs the balancer
 * every @ms (0: never). Return: the signal, 0 when a tick is due, -1 on
 * an interrupted wait.
 */
static int wait_signal(const sigset_t *set, unsigned int ms, struct timespec *next)
{
	struct timespec now, left;
	int sig;

	if (!ms)
		return sigwait(set, &sig) ? -1 : sig;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec > next->tv_sec || (now.tv_sec == next->tv_sec && now.tv_nsec >= next->tv_nsec)) {
		next->tv_nsec += (long)(ms % 1000) * 1000000;
		next->tv_sec += ms / 1000 + next->tv_nsec / 1000000000;
		next->tv_nsec %= 1000000000;
		return 0;
	}
	left.tv_sec = next->tv_sec - now.tv_sec;
	left.tv_nsec = next->tv_nsec - now.tv_nsec;
	if (left.tv_nsec < 0) {
		left.tv_sec--;
		left.tv_nsec += 1000000000;
	}
	sig = sigtimedwait(set, NULL, &left);
	if (sig < 0)
		return errno == EAGAIN ? 0 : -1;
	return sig;
}

/* The balancer, when it has something to balance: two iothreads and a queue to move. */
static int setup_balancer(struct opts *o, struct vn_iothread **io, struct vm_balancer **out)
{
	struct vm_balance_qcfg *qc;
	struct vm_balance_cfg cfg = { .io = io, .nio = (unsigned int)o->iothreads };
	unsigned int movable = 0;
	int r;

	if (!o->rebalance_ms || o->iothreads < 2)
		return 0;
	for (unsigned int i = 0; i < o->nblk; i++) {
		cfg.nq += o->blk[i].queues;
		if (o->blk[i].iothread < 0)
			movable += o->blk[i].queues;
	}
	if (movable == 0)
		return 0;
	qc = calloc(cfg.nq, sizeof(*qc));
	if (!qc)
		return -ENOMEM;
	cfg.nq = 0;
	for (unsigned int i = 0; i < o->nblk; i++)
		for (unsigned int q = 0; q < o->blk[i].queues; q++)
			qc[cfg.nq++] = (struct vm_balance_qcfg){
				.blk = o->blk[i].blk, .vp = o->blk[i].vp, .disk = i, .q = q,
				.thread = o->blk[i].qthread[q], .pinned = o->blk[i].iothread >= 0 };
	cfg.q = qc;
	r = vm_balance_new(&cfg, out);
	free(qc);
	if (r < 0)
		fprintf(stderr, "vnotify-vm: rebalancer: %s\n", strerror(-r));
	return r;
}

static void on_kick(int sig)
{
}

/*
 * A guest reboot, in main: park every vCPU and pause the machine (as
 * SIGTSTP does, unless it is paused already), reset and reload it
 * (reset.c), then let it run again. Return: 0, or -errno (the VM ends).
 */
static int reboot_vm(struct vm *vm)
{
	bool was_paused = atomic_load(&vm->paused);
	int r;

	if (!was_paused) {
		vm_vcpus_pause(vm);
		vn_machine_pause(vm->m);
	}
	r = vm_reset(vm);
	if (r)
		return r;
	vm->reboots++;
	fprintf(stderr, "vnotify-vm: reboot %u: the machine was reset, booting again\n",
		vm->reboots);
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->reset_pending, false);
	pthread_mutex_unlock(&vm->pause_lock);
	if (!was_paused) {
		vn_machine_resume(vm->m);
		vm_vcpus_resume(vm);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct vm vm;
	struct opts o;
	struct vn_machine_cfg mcfg;
	struct vn_iothread *io[VM_MAX_IOTHREADS] = { NULL };
	struct sigaction sa;
	sigset_t set;
	char *cmdline;
	uint64_t entry = 0, bp = 0;
	struct timespec t0, t1, next_tick;
	struct vm_balancer *balancer = NULL;
	int r, sig, rc = 1;

	if (parse_opts(argc, argv, &o))
		return 2;
	vm.kvm_fd = vm.vm_fd = -1;
	vm.ncpus = o.cpus;
	vm.ram_size = o.memory;
	vm.main_thread = pthread_self();
	vm.no_reboot = o.no_reboot;
	vm.kernel = o.kernel;
	vm.initrd = o.initrd;

	/* Before any thread: SIGINT/TERM/USR1/USR2/TSTP/CONT are waited for by main only. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGTSTP);
	sigaddset(&set, SIGCONT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_mutex_init(&vm.pause_lock, NULL);
	pthread_cond_init(&vm.pause_cond, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_kick; /* no SA_RESTART: KVM_RUN returns EINTR */
	sigaction(VM_SIG_KICK, &sa, NULL);

	if (kvm_vm_create(&vm))
		goto out;
	r = vn_kvm_irq_new(&(struct vn_kvm_irq_cfg){ .vm_fd = vm.vm_fd, .irqchip = true }, &vm.irq);
	if (r) {
		fprintf(stderr, "vnotify-vm: irq routing: %s\n", strerror(-r));
		goto out;
	}
	vn_machine_cfg_init(&mcfg);
	mcfg.ram_size = vm.ram_size;
	mcfg.kvm_vm_fd = vm.vm_fd;
	mcfg.max_ioeventfds = o.max_ioeventfds;
	mcfg.msi_ops = &kvm_msi_ops;
	mcfg.msi_opaque = &vm;
	mcfg.ram = o.ram;
	mcfg.ram_path = o.ram_path;
	r = vn_machine_new(&mcfg, &vm.m);
	if (r) {
		machine_error(&o, r);
		goto out;
	}
	r = add_ram(&vm);
	if (r) {
		fprintf(stderr, "vnotify-vm: guest RAM: %s\n", strerror(-r));
		goto out;
	}
	for (unsigned int i = 0; i < (unsigned int)o.iothreads; i++) {
		char name[16];
		/* busy-poll before blocking (--poll-max-ns): a kick soon after a completion skips the wake-up */
		struct vn_iothread_cfg ic = { .name = name, .poll_max_ns = o.poll_max_ns };

		snprintf(name, sizeof(name), "iothread%u", i);
		if (vn_iothread_new(&ic, &io[i]) || vn_iothread_start(io[i])) {
			fprintf(stderr, "vnotify-vm: iothread %u failed\n", i);
			goto out;
		}
	}
	if (vm_promote_setup(vm.m, o.iothreads ? io[0] : NULL))
		goto out;
	for (unsigned int i = 0; i < o.nblk; i++) {
		struct blk_opt *b = &o.blk[i];
		struct vn_blk_cfg bc;
		struct vn_virtio_pci_cfg pc;
		char name[16];

		memset(&bc, 0, sizeof(bc));
		snprintf(name, sizeof(name), "blk%u", i);
		bc.name = name;
		bc.path = b->path;
		bc.fd = -1;
		bc.nr_queues = b->queues;
		bc.serial = name;
		for (unsigned int q = 0; q < b->queues; q++)
			b->qio[q] = o.iothreads ? io[b->qthread[q]] : NULL;
		/* completions on the queue's iothread: one hand-off per request (blk-uring.c) */
		bc.iothread = b->qio[0];
		bc.queue_iothreads = o.iothreads ? b->qio : NULL;
		bc.nr_queue_iothreads = o.iothreads ? b->queues : 0;
		r = vn_blk_new(&bc, &b->blk);
		if (r) {
			fprintf(stderr, "vnotify-vm: %s: %s\n", b->path, strerror(-r));
			goto out;
		}
		vn_virtio_pci_cfg_init(&pc, vn_blk_vdev(b->blk), b->qio[0], 1 + i);
		pc.queue_iothreads = bc.queue_iothreads;
		pc.nr_queue_iothreads = bc.nr_queue_iothreads;
		if (b->ioeventfd >= 0)
			pc.ioeventfd = b->ioeventfd;
		b->ioeventfd = pc.ioeventfd; /* for the report */
		r = vn_machine_add_virtio_pci(vm.m, &pc, &b->vp);
		if (r) {
			fprintf(stderr, "vnotify-vm: virtio-pci for %s: %s\n", b->path,
				strerror(-r));
			goto out;
		}
	}
	if (setup_balancer(&o, io, &balancer))
		goto out;
	r = vm_assign_bars(&vm);
	if (r) {
		fprintf(stderr, "vnotify-vm: PCI BARs do not fit the windows\n");
		goto out;
	}
	if (asprintf(&cmdline, "%s %s", DEFAULT_CMDLINE, o.append) < 0)
		goto out;
	vm.cmdline = cmdline; /* a reboot loads it again; freed at the end */
	r = vm_load_linux(&vm, o.kernel, o.initrd, cmdline, &entry, &bp);
	if (r || vm_write_mptable(&vm))
		goto out;
	serial_init(&vm.serial, &vm, o.console ? STDOUT_FILENO : -1);
	for (unsigned int i = 0; i < vm.ncpus; i++) {
		r = vm_vcpu_init(&vm, i, entry, bp);
		if (r) {
			fprintf(stderr, "vnotify-vm: vcpu%u: %s\n", i, strerror(-r));
			goto out;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned int i = 0; i < vm.ncpus; i++) {
		if (vm_vcpu_start(&vm.cpu[i])) {
			vm_request_end(&vm, 3);
			break;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &next_tick);
	while (!atomic_load(&vm.stop)) {
		sig = wait_signal(&set, balancer ? o.rebalance_ms : 0, &next_tick);
		if (sig == 0) {
			/* a paused machine's queues must not move (docs/design.md) */
			if (!atomic_load(&vm.paused))
				vm_balance_tick(balancer);
			continue;
		}
		if (atomic_load(&vm.reset_pending) && !atomic_load(&vm.stop) && reboot_vm(&vm)) {
			vm_request_end(&vm, 3);
			break;
		}
		if (sig < 0)
			continue;
		if (sig == SIGUSR1) {
			fprintf(stderr, "vnotify-vm: notifier state (SIGUSR1)\n");
			print_notifiers(&vm, &o);
		} else if (sig == SIGTSTP && !atomic_load(&vm.paused)) {
			/* vCPUs first: then no doorbell races the notifiers' stop */
			vm_vcpus_pause(&vm);
			vn_machine_pause(vm.m);
			fprintf(stderr, "vnotify-vm: paused\n");
		} else if (sig == SIGCONT && atomic_load(&vm.paused)) {
			vn_machine_resume(vm.m);
			vm_vcpus_resume(&vm);
			fprintf(stderr, "vnotify-vm: resumed\n");
		} else if (sig == SIGINT || sig == SIGTERM) {
			vm_request_end(&vm, 2);
		}
	}
	vm_vcpus_stop(&vm);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	report(&vm, &o, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	       balancer);
	rc = atomic_load(&vm.end_reason) == 3 ? 1 : 0;
	fprintf(stderr, "vnotify-vm: the guest %s\n",
		atomic_load(&vm.end_reason) == 1   ? "rebooted (--no-reboot: vnotify-vm ends)"
		: atomic_load(&vm.end_reason) == 4 ? "powered off"
		: atomic_load(&vm.end_reason) == 2 ? "was stopped by a signal"
						   : "failed");
out:
	vm_vcpus_stop(&vm);
	vm_balance_free(balancer);
	vm_promote_free(vm.m);
	for (unsigned int i = 0; i < o.nblk; i++) {
		vn_virtio_pci_remove(o.blk[i].vp);
		vn_blk_free(o.blk[i].blk);
	}
	for (unsigned int i = 0; i < VM_MAX_IOTHREADS; i++) {
		if (io[i]) {
			vn_iothread_stop(io[i]);
			vn_iothread_free(io[i]);
		}
	}
	vn_machine_free(vm.m);
	vn_kvm_irq_free(vm.irq);
	for (unsigned int i = 0; i < vm.ncpus; i++) {
		if (vm.cpu[i].run)
			munmap(vm.cpu[i].run, vm.run_size);
		if (vm.cpu[i].fd > 0)
			close(vm.cpu[i].fd);
	}
	if (vm.vm_fd >= 0)
		close(vm.vm_fd);
	if (vm.kvm_fd >= 0)
		close(vm.kvm_fd);
	vm_reset_free(&vm);
	free((char *)vm.cmdline);
	return rc;
}
