/* SPDX-License-Identifier: MIT */
#include "guest/rig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "guest/vdrv-pci.h"
#include "hw/machine.h"

static int start_iothreads(const struct vn_rig_cfg *cfg, struct vn_rig *g)
{
	const char *base = cfg->iothread_name ? cfg->iothread_name : "rig-io";
	int r;

	if (cfg->nr_iothreads > VN_RIG_MAX_IOTHREADS)
		return -EINVAL;
	for (unsigned int i = 0; i < cfg->nr_iothreads; i++) {
		char name[16];
		struct vn_iothread_cfg ic = { .name = name, .poll_max_ns = cfg->poll_max_ns };

		if (cfg->nr_iothreads == 1)
			snprintf(name, sizeof(name), "%s", base);
		else
			snprintf(name, sizeof(name), "%s%u", base, i);
		r = vn_iothread_new(&ic, &g->io[i]);
		if (r < 0)
			return r;
		g->nio++;
		r = vn_iothread_start(g->io[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The driver's own mapping of RAM: the same memfd at other host addresses. */
static int map_driver_ram(struct vn_rig *g)
{
	int r, fd;

	r = vn_gmem_init(&g->drv_mem);
	if (r < 0)
		return r;
	g->drv_mem_init = true;
	/* Anonymous RAM has no fd to map a second time: refused (-ENOENT). */
	fd = vn_machine_ram_fd(g->m);
	if (fd < 0)
		return fd;
	fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = vn_gmem_add_fd(&g->drv_mem, 0, vn_machine_ram_size(g->m), fd, 0);
	if (r < 0)
		close(fd); /* on success the memory owns it */
	return r;
}

static int build(const struct vn_rig_cfg *cfg, struct vn_rig *g)
{
	struct vn_blk_cfg bc = cfg->blk;
	struct vn_virtio_pci_cfg pc = cfg->pci;
	int r;

	if (cfg->blk_iothread >= (int)cfg->nr_iothreads)
		return -EINVAL;
	r = vn_machine_new(cfg->machine, &g->m);
	if (r < 0)
		return r;
	r = start_iothreads(cfg, g);
	if (r < 0)
		return r;
	bc.iothread = cfg->blk_iothread >= 0 ? g->io[cfg->blk_iothread] : NULL;
	if (cfg->spread_queues && g->nio) {
		bc.queue_iothreads = g->io;
		bc.nr_queue_iothreads = g->nio;
		pc.queue_iothreads = g->io;
		pc.nr_queue_iothreads = g->nio;
	}
	r = vn_blk_new(&bc, &g->blk);
	if (r < 0)
		return r;
	pc.vdev = vn_blk_vdev(g->blk);
	pc.iothread = g->nio ? g->io[0] : NULL;
	r = vn_machine_add_virtio_pci(g->m, &pc, &g->vp);
	if (r < 0)
		return r;
	if (cfg->drv_own_mapping)
		return map_driver_ram(g);
	return 0;
}

int vn_rig_init(const struct vn_rig_cfg *cfg, struct vn_rig *g)
{
	int r;

	memset(g, 0, sizeof(*g));
	g->drv_own_mapping = cfg->drv_own_mapping;
	g->msi_data_max = cfg->msi_data_max;
	r = build(cfg, g);
	if (r < 0)
		vn_rig_destroy(g);
	return r;
}

static int irq_fd(void *opaque, unsigned int data)
{
	return vn_machine_irq_fd(opaque, data);
}

int vn_rig_scan(struct vn_rig *g)
{
	struct vn_vdrv_env_cfg ec = {
		.bus = vn_machine_bus(g->m),
		.mem = g->drv_own_mapping ? &g->drv_mem : vn_machine_gmem(g->m),
		.ram_base = VN_RIG_DRV_RAM_BASE,
		.ram_size = vn_machine_ram_size(g->m) - VN_RIG_DRV_RAM_BASE,
		.irq_fd = irq_fd,
		.irq_opaque = g->m,
		.msi_data_max = g->msi_data_max,
	};
	int r;

	if (g->env)
		return -EALREADY;
	r = vn_vdrv_env_new(&ec, &g->env);
	if (r < 0)
		return r;
	return vn_vdrv_pci_scan(g->env);
}

int vn_rig_driver_new(struct vn_rig *g, const struct vn_vdrv_blk_cfg *dc)
{
	if (!g->env)
		return -EINVAL;
	if (g->drv)
		return -EALREADY;
	return vn_vdrv_blk_new(g->env, dc, &g->drv);
}

void vn_rig_destroy(struct vn_rig *g)
{
	vn_vdrv_blk_free(g->drv);
	vn_vdrv_env_free(g->env);
	vn_virtio_pci_remove(g->vp);
	vn_blk_free(g->blk);
	for (unsigned int i = 0; i < g->nio; i++)
		vn_iothread_free(g->io[i]);
	if (g->drv_mem_init)
		vn_gmem_destroy(&g->drv_mem);
	vn_machine_free(g->m);
	memset(g, 0, sizeof(*g));
}
