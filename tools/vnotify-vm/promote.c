/* SPDX-License-Identifier: MIT */
/*
 * --promote pio:ADDR: a write-only sink region at port ADDR, made a
 * candidate of the hot-write promoter (docs/design.md "The promoter").
 *
 * The pattern it is for: Linux's io_delay=0x80 (its default; vnotify-vm's
 * command line says io_delay=none unless --append overrides it) writes the
 * same byte to port 0x80 again and again for timing delays. With nothing
 * there, each write is an exit to userspace that goes nowhere; with the
 * sink, the tenth identical write promotes a datamatch ioeventfd and KVM
 * completes the later ones without an exit (the promoter replays them into
 * the sink on the iothread, where they are dropped as before). Reads return
 * all ones, as an empty port does.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vnotify/bus.h>
#include <vnotify/machine.h>

#include "vm.h"

#define MAX_PROMOTE 4

static struct {
	uint16_t port;
	struct vn_region *region;
} sinks[MAX_PROMOTE];
static unsigned int nsinks;

int vm_promote_parse(const char *arg)
{
	char *end;
	unsigned long v;

	if (strncmp(arg, "pio:", 4) || nsinks == MAX_PROMOTE)
		return -EINVAL;
	v = strtoul(arg + 4, &end, 0);
	if (end == arg + 4 || *end || v > 0xffff)
		return -EINVAL;
	/* the UART and the PCI config ports are not the bus's */
	if ((v >= 0x3f8 && v < 0x400) || (v >= 0xcf8 && v < 0xd00) || v == 0x70 || v == 0x71)
		return -EINVAL;
	sinks[nsinks++].port = (uint16_t)v;
	return 0;
}

static uint64_t sink_read(void *opaque, uint64_t off, unsigned int size)
{
	return UINT64_MAX;
}

/* Dropped, as at an empty port; the region's counters say how they came. */
static void sink_write(void *opaque, uint64_t off, unsigned int size, uint64_t val)
{
}

static const struct vn_region_ops sink_ops = { .read = sink_read, .write = sink_write };

int vm_promote_setup(struct vn_machine *m, struct vn_iothread *it)
{
	struct vn_promoter_cfg pro = { .accel = vn_machine_accel(m), .iothread = it };

	if (nsinks && !it) {
		fprintf(stderr, "vnotify-vm: --promote needs an iothread (--iothreads 1+)\n");
		return -EINVAL;
	}
	for (unsigned int i = 0; i < nsinks; i++) {
		char name[32];
		struct vn_region_cfg rc = {
			.name = name, .space = VN_SPACE_PIO, .base = sinks[i].port, .size = 1,
			.ops = &sink_ops, .opaque = NULL, .promoter = &pro,
		};
		int r;

		snprintf(name, sizeof(name), "promote-pio-0x%x", sinks[i].port);
		r = vn_bus_add_region(vn_machine_bus(m), &rc, &sinks[i].region);
		if (r) {
			fprintf(stderr, "vnotify-vm: --promote pio:0x%x: %s\n", sinks[i].port,
				strerror(-r));
			return r;
		}
	}
	return 0;
}

void vm_promote_report(void)
{
	for (unsigned int i = 0; i < nsinks && sinks[i].region; i++) {
		struct vn_region_stats s;

		vn_region_get_stats(sinks[i].region, &s);
		fprintf(stderr,
			"vnotify-vm: promote pio:0x%x: %llu synchronous writes (exits), %llu "
			"replayed from an ioeventfd (exits saved), %llu promotions, %u dynamic "
			"ioeventfds\n",
			sinks[i].port, (unsigned long long)s.sync_writes,
			(unsigned long long)s.replays, (unsigned long long)s.promotions,
			(unsigned int)s.dynamic);
	}
}

void vm_promote_free(struct vn_machine *m)
{
	for (unsigned int i = 0; i < nsinks && m; i++) {
		vn_bus_del_region(vn_machine_bus(m), sinks[i].region);
		sinks[i].region = NULL;
	}
}

/*
 * A system reset: the candidates stay (they are configuration), their
 * dynamic ioeventfds go and counting restarts, as for a device reset: the
 * next guest may write elsewhere. No lock is held and the vCPUs are parked,
 * so this may wait for the iothread.
 */
void vm_promote_reset(void)
{
	for (unsigned int i = 0; i < nsinks && sinks[i].region; i++)
		vn_region_promoter_reset(sinks[i].region);
}
