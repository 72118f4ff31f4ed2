/* SPDX-License-Identifier: MIT */
#include "bus/addrspace.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/trace.h"
#include "bus/promoter.h"

static const char *const space_names[VN_SPACE_COUNT] = {
	[VN_SPACE_PIO] = "pio",
	[VN_SPACE_MMIO] = "mmio",
};

static const char *space_name(enum vn_space space)
{
	return (unsigned int)space < VN_SPACE_COUNT ? space_names[space] : "?";
}

int vn_bus_new(const struct vn_bus_cfg *cfg, struct vn_bus **out)
{
	struct vn_bus *bus;
	int r;

	/* aligned: the per-CPU slots must not share cache lines */
	r = posix_memalign((void **)&bus, 64, sizeof(*bus));
	if (r)
		return -r;
	memset(bus, 0, sizeof(*bus));
	r = pthread_mutex_init(&bus->lock, NULL);
	if (r) {
		free(bus);
		return -r;
	}
	vn_grace_init(&bus->grace);
	vn_ioev_table_init(&bus->ioev, cfg ? cfg->max_ioeventfds : 0);
	vn_ratelimit_init(&bus->guest_rl, 10);
	*out = bus;
	return 0;
}

void vn_bus_free(struct vn_bus *bus)
{
	if (!bus)
		return;
	for (int s = 0; s < VN_SPACE_COUNT; s++)
		while (bus->map[s] && bus->map[s]->n)
			vn_bus_del_region(bus, bus->map[s]->e[0].region);
	for (int s = 0; s < VN_SPACE_COUNT; s++)
		free(bus->map[s]);
	vn_ioev_table_destroy(&bus->ioev);
	vn_ratelimit_destroy(&bus->guest_rl);
	pthread_mutex_destroy(&bus->lock);
	free(bus);
}

/* ---- the region map ---- */

static const struct vn_region_map_ent *map_find(const struct vn_region_map *m, uint64_t addr)
{
	size_t lo = 0, hi;

	if (!m)
		return NULL;
	hi = m->n;
	/* the last entry with base <= addr */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->e[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	return addr <= m->e[lo - 1].last ? &m->e[lo - 1] : NULL;
}

static struct vn_region_map *map_alloc(size_t n)
{
	struct vn_region_map *m = calloc(1, sizeof(*m) + n * sizeof(m->e[0]));

	if (m)
		m->n = n;
	return m;
}

/* Publish @m for @space; free the old map once no reader can see it. */
static void map_publish_locked(struct vn_bus *bus, enum vn_space space, struct vn_region_map *m)
{
	struct vn_region_map *old = bus->map[space];

	/* seq_cst: pairs with vn_grace_read_lock() (see grace.c) */
	__atomic_store_n(&bus->map[space], m, __ATOMIC_SEQ_CST);
	vn_grace_wait(&bus->grace);
	free(old);
}

static bool region_cfg_is_valid(const struct vn_region_cfg *cfg)
{
	uint64_t last;

	if ((unsigned int)cfg->space >= VN_SPACE_COUNT || cfg->size == 0)
		return false;
	if (!cfg->ops || !cfg->ops->read || !cfg->ops->write)
		return false;
	if (vn_add_overflow(cfg->base, cfg->size - 1, &last))
		return false;
	if (cfg->space == VN_SPACE_PIO && last >= VN_PIO_SPACE_SIZE)
		return false;
	return true;
}

int vn_bus_add_region(struct vn_bus *bus, const struct vn_region_cfg *cfg,
		      struct vn_region **out)
{
	struct vn_region_map *old, *m;
	struct vn_region *region;
	uint64_t last;
	size_t n, pos = 0;
	int r;

	if (!region_cfg_is_valid(cfg))
		return -EINVAL;
	last = cfg->base + (cfg->size - 1);
	region = calloc(1, sizeof(*region));
	if (!region)
		return -ENOMEM;
	region->bus = bus;
	snprintf(region->name, sizeof(region->name), "%s", cfg->name ? cfg->name : "region");
	region->space = cfg->space;
	region->base = cfg->base;
	region->size = cfg->size;
	region->ops = cfg->ops;
	region->opaque = cfg->opaque;
	if (cfg->promoter) {
		r = vn_promoter_new(region, cfg->promoter, &region->promoter);
		if (r)
			goto err_free_region;
	}

	pthread_mutex_lock(&bus->lock);
	old = bus->map[cfg->space];
	n = old ? old->n : 0;
	while (pos < n && old->e[pos].base < cfg->base)
		pos++;
	/* sorted and disjoint: only the neighbours can overlap */
	if ((pos > 0 && old->e[pos - 1].last >= cfg->base) ||
	    (pos < n && old->e[pos].base <= last)) {
		r = -EEXIST;
		goto err_unlock;
	}
	m = map_alloc(n + 1);
	if (!m) {
		r = -ENOMEM;
		goto err_unlock;
	}
	if (pos)
		memcpy(m->e, old->e, pos * sizeof(m->e[0]));
	m->e[pos] = (struct vn_region_map_ent){ .base = cfg->base, .last = last, .region = region };
	if (n > pos)
		memcpy(&m->e[pos + 1], &old->e[pos], (n - pos) * sizeof(m->e[0]));
	map_publish_locked(bus, cfg->space, m);
	pthread_mutex_unlock(&bus->lock);
	*out = region;
	return 0;

err_unlock:
	pthread_mutex_unlock(&bus->lock);
	vn_promoter_free(region->promoter);
err_free_region:
	free(region);
	return r;
}

void vn_bus_del_region(struct vn_bus *bus, struct vn_region *region)
{
	struct vn_region_map *old, *m;
	size_t pos, k = 0;

	if (!region)
		return;
	pthread_mutex_lock(&bus->lock);
	old = bus->map[region->space];
	VN_BUG_ON(!old);
	for (pos = 0; pos < old->n && old->e[pos].region != region; pos++)
		;
	VN_BUG_ON(pos == old->n);
	m = map_alloc(old->n - 1);
	/*
	 * Without memory we cannot build a smaller map; removing must not
	 * fail, so retry (the sizes involved are tiny).
	 */
	while (!m) {
		usleep(1000);
		m = map_alloc(old->n - 1);
	}
	for (size_t i = 0; i < old->n; i++)
		if (i != pos)
			m->e[k++] = old->e[i];
	/* after this, every dispatch that found the region has counted itself */
	map_publish_locked(bus, region->space, m);
	pthread_mutex_unlock(&bus->lock);

	/* acquire: pairs with the release in dispatch_done() */
	while (__atomic_load_n(&region->inflight, __ATOMIC_ACQUIRE) != 0)
		usleep(100);
	vn_promoter_free(region->promoter);
	free(region);
}

/* ---- dispatch ---- */

static bool size_is_valid(unsigned int size)
{
	return size == 1 || size == 2 || size == 4 || size == 8;
}

static uint64_t size_mask(unsigned int size)
{
	return size == 8 ? UINT64_MAX : (1ull << (size * 8)) - 1;
}

static int access_check(struct vn_bus *bus, enum vn_space space, uint64_t addr,
			unsigned int size, const char *what)
{
	uint64_t end;

	if ((unsigned int)space < VN_SPACE_COUNT && size_is_valid(size) &&
	    !vn_add_overflow(addr, (uint64_t)size, &end))
		return 0;
	__atomic_fetch_add(&bus->invalid, 1, __ATOMIC_RELAXED);
	vn_trace(bus_unassigned, "%s invalid space=%d addr=0x%" PRIx64 " size=%u", what,
		 (int)space, addr, size);
	vn_log_limited(&bus->guest_rl, VN_LOG_WARN, "bus",
		       "guest %s refused: space %d addr 0x%" PRIx64 " size %u", what, (int)space,
		       addr, size);
	return -EINVAL;
}

/*
 * Look up the region holding [addr, addr + size) and count the caller in
 * region->inflight; to be called inside a read section.
 */
static struct vn_region *region_get(struct vn_bus *bus, enum vn_space space, uint64_t addr,
				    unsigned int size)
{
	const struct vn_region_map *m = __atomic_load_n(&bus->map[space], __ATOMIC_SEQ_CST);
	const struct vn_region_map_ent *e = map_find(m, addr);

	/* an access straddling the region's end is not the region's */
	if (!e || addr + (size - 1) > e->last)
		return NULL;
	/*
	 * Inside the read section, so vn_bus_del_region() sees this count
	 * once its grace period has ended.
	 */
	__atomic_fetch_add(&e->region->inflight, 1, __ATOMIC_RELAXED);
	return e->region;
}

static void region_put(struct vn_region *region)
{
	/* release: the callback's accesses happen before the region is freed */
	__atomic_fetch_sub(&region->inflight, 1, __ATOMIC_RELEASE);
}

static void signal_entry(struct vn_bus *bus, const struct vn_ioev_entry *e, unsigned int token)
{
	uint64_t one = 1;

	/* KVM's eventfd_signal() cannot fail; ours only on a caller's bug */
	if (VN_UNLIKELY(write(e->desc.fd, &one, sizeof(one)) != sizeof(one)))
		__atomic_fetch_add(&bus->ioev_signal_errors, 1, __ATOMIC_RELAXED);
	/* the entry is shared, but only writes of the same doorbell touch it */
	__atomic_fetch_add((uint64_t *)&e->signals, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&bus->pcpu[token >> 1].ioev_signals, 1, __ATOMIC_RELAXED);
}

int vn_bus_write(struct vn_bus *bus, enum vn_space space, uint64_t addr, unsigned int size,
		 uint64_t value)
{
	const struct vn_ioev_snap *snap;
	const struct vn_ioev_entry *e;
	struct vn_region *region;
	unsigned int token;
	uint64_t offset;
	int r;

	r = access_check(bus, space, addr, size, "write");
	if (r)
		return r;
	value &= size_mask(size);

	token = vn_grace_read_lock(&bus->grace);
	snap = __atomic_load_n(&bus->ioev.snap, __ATOMIC_SEQ_CST);
	e = snap ? vn_ioev_snap_match(snap, space, addr, size, value) : NULL;
	if (e) {
		/*
		 * Signalled inside the read section: once a deassign returns,
		 * no write is still on its way to the fd.
		 */
		signal_entry(bus, e, token);
		vn_grace_read_unlock(&bus->grace, token);
		return VN_BUS_IOEVENTFD;
	}
	region = region_get(bus, space, addr, size);
	/* region callbacks may change the bus: never call them in a read section */
	vn_grace_read_unlock(&bus->grace, token);

	if (!region) {
		__atomic_fetch_add(&bus->unassigned_writes, 1, __ATOMIC_RELAXED);
		vn_trace(bus_unassigned, "write %s addr=0x%" PRIx64 " size=%u value=0x%" PRIx64,
			 space_name(space), addr, size, value);
		return VN_BUS_UNASSIGNED;
	}
	offset = addr - region->base;
	region->ops->write(region->opaque, offset, size, value);
	__atomic_fetch_add(&region->sync_writes, 1, __ATOMIC_RELAXED);
	if (region->promoter)
		vn_promoter_observe(region->promoter, offset, size, value);
	region_put(region);
	return VN_BUS_REGION;
}

int vn_bus_read(struct vn_bus *bus, enum vn_space space, uint64_t addr, unsigned int size,
		uint64_t *value)
{
	struct vn_region *region;
	unsigned int token;
	int r;

	r = access_check(bus, space, addr, size, "read");
	if (r) {
		*value = UINT64_MAX;
		return r;
	}
	token = vn_grace_read_lock(&bus->grace);
	region = region_get(bus, space, addr, size);
	vn_grace_read_unlock(&bus->grace, token);
	if (!region) {
		/* what a bus with nothing on it returns: all ones */
		*value = size_mask(size);
		__atomic_fetch_add(&bus->unassigned_reads, 1, __ATOMIC_RELAXED);
		vn_trace(bus_unassigned, "read %s addr=0x%" PRIx64 " size=%u", space_name(space),
			 addr, size);
		return VN_BUS_UNASSIGNED;
	}
	*value = region->ops->read(region->opaque, addr - region->base, size) & size_mask(size);
	__atomic_fetch_add(&region->reads, 1, __ATOMIC_RELAXED);
	region_put(region);
	return VN_BUS_REGION;
}

void vn_bus_get_stats(const struct vn_bus *bus, struct vn_bus_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->unassigned_reads = __atomic_load_n(&bus->unassigned_reads, __ATOMIC_RELAXED);
	out->unassigned_writes = __atomic_load_n(&bus->unassigned_writes, __ATOMIC_RELAXED);
	out->invalid = __atomic_load_n(&bus->invalid, __ATOMIC_RELAXED);
	out->ioev_signal_errors = __atomic_load_n(&bus->ioev_signal_errors, __ATOMIC_RELAXED);
	for (int i = 0; i < VN_GRACE_SLOTS; i++)
		out->ioev_signals += __atomic_load_n(&bus->pcpu[i].ioev_signals, __ATOMIC_RELAXED);
}

void vn_region_get_stats(struct vn_region *region, struct vn_region_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->reads = __atomic_load_n(&region->reads, __ATOMIC_RELAXED);
	out->sync_writes = __atomic_load_n(&region->sync_writes, __ATOMIC_RELAXED);
	if (region->promoter)
		vn_promoter_get_stats(region->promoter, out);
}

const char *vn_region_name(const struct vn_region *region)
{
	return region->name;
}

int vn_region_promoter_exclude(struct vn_region *region, uint64_t offset, uint64_t size)
{
	uint64_t last;

	if (!region->promoter || size == 0 || vn_add_overflow(offset, size - 1, &last) ||
	    last >= region->size)
		return -EINVAL;
	return vn_promoter_exclude(region->promoter, offset, size);
}

void vn_region_promoter_reset(struct vn_region *region)
{
	if (region->promoter)
		vn_promoter_reset(region->promoter);
}

void vn_region_promoter_reset_nowait(struct vn_region *region)
{
	if (region->promoter)
		vn_promoter_reset_nowait(region->promoter);
}

/* ---- the soft ioeventfd table, behind the accelerator ---- */

static void trace_ioev(bool assign, const struct vn_ioev *d, int r)
{
	if (assign)
		vn_trace(ioev_assign,
			 "%s addr=0x%" PRIx64 " len=%u datamatch=%d data=0x%" PRIx64 " fd=%d r=%d",
			 space_name(d->space), d->addr, d->len, d->datamatch, d->data, d->fd, r);
	else
		vn_trace(ioev_deassign,
			 "%s addr=0x%" PRIx64 " len=%u datamatch=%d data=0x%" PRIx64 " fd=%d r=%d",
			 space_name(d->space), d->addr, d->len, d->datamatch, d->data, d->fd, r);
}

int vn_bus_ioev_assign(struct vn_bus *bus, const struct vn_ioev *ioev)
{
	struct vn_ioev_snap *old = NULL;
	int r;

	pthread_mutex_lock(&bus->lock);
	r = vn_ioev_assign_locked(&bus->ioev, ioev, &old);
	if (r == 0) {
		vn_grace_wait(&bus->grace);
		free(old);
	}
	pthread_mutex_unlock(&bus->lock);
	trace_ioev(true, ioev, r);
	return r;
}

int vn_bus_ioev_deassign(struct vn_bus *bus, const struct vn_ioev *ioev)
{
	struct vn_ioev_snap *old = NULL;
	struct vn_ioev_entry *entry = NULL;
	int r;

	pthread_mutex_lock(&bus->lock);
	r = vn_ioev_deassign_locked(&bus->ioev, ioev, &old, &entry);
	if (r == 0) {
		/* no dispatch that could still signal @ioev->fd is left after this */
		vn_grace_wait(&bus->grace);
		free(old);
		free(entry);
	}
	pthread_mutex_unlock(&bus->lock);
	trace_ioev(false, ioev, r);
	return r;
}

unsigned int vn_bus_ioev_limit(const struct vn_bus *bus)
{
	return bus->ioev.limit;
}

int vn_bus_ioev_signals(struct vn_bus *bus, const struct vn_ioev *ioev, uint64_t *out)
{
	struct vn_ioev_entry *e;
	int r = -ENOENT;

	pthread_mutex_lock(&bus->lock);
	e = vn_ioev_find_locked(&bus->ioev, ioev);
	if (e) {
		*out = __atomic_load_n(&e->signals, __ATOMIC_RELAXED);
		r = 0;
	}
	pthread_mutex_unlock(&bus->lock);
	return r;
}
