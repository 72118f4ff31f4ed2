/* SPDX-License-Identifier: MIT */
#include "mem/gmem.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "base/lockorder.h"
#include "mem/gmem-guard.h"

/* The writer lock, in the lock-order table of virtio/vdev.h (a leaf). */
static void map_lock(struct vn_gmem *m)
{
	vn_lock_acquired(VN_LOCK_GMEM, 0, "gmem lock");
	pthread_mutex_lock(&m->lock);
}

static void map_unlock(struct vn_gmem *m)
{
	pthread_mutex_unlock(&m->lock);
	vn_lock_released(VN_LOCK_GMEM);
}

static struct vn_gmem_table *table_alloc(unsigned int nr)
{
	struct vn_gmem_table *t;
	size_t sz;

	if (vn_mul_overflow((size_t)nr, sizeof(t->r[0]), &sz) ||
	    vn_add_overflow(sz, sizeof(*t), &sz))
		return NULL;
	t = calloc(1, sz);
	if (t)
		t->nr = nr;
	return t;
}

/* Pairs with the release store in publish(): the table's contents are visible. */
static const struct vn_gmem_table *snapshot(const struct vn_gmem *m)
{
	return __atomic_load_n(&m->table, __ATOMIC_ACQUIRE);
}

int vn_gmem_init(struct vn_gmem *m)
{
	memset(m, 0, sizeof(*m));
	m->table = table_alloc(0);
	if (!m->table)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	return 0;
}

static void region_release(struct vn_gmem_region *r)
{
	vn_gmem_guard_remove(r->guard);
	r->guard = -1;
	if (r->map_base)
		munmap(r->map_base, r->map_len);
	r->map_base = NULL;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	free(r->dirty);
	r->dirty = NULL;
}

void vn_gmem_destroy(struct vn_gmem *m)
{
	struct vn_gmem_table *t = m->table, *next;

	if (!t)
		return;
	for (unsigned int i = 0; i < t->nr; i++)
		region_release(&t->r[i]);
	free(t);
	for (t = m->retired; t; t = next) {
		next = t->retired_next;
		free(t);
	}
	m->table = NULL;
	m->retired = NULL;
	pthread_mutex_destroy(&m->lock);
}

int vn_gmem_new(struct vn_gmem **out)
{
	struct vn_gmem *m = malloc(sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	r = vn_gmem_init(m);
	if (r < 0) {
		free(m);
		return r;
	}
	*out = m;
	return 0;
}

void vn_gmem_free(struct vn_gmem *m)
{
	if (!m)
		return;
	vn_gmem_destroy(m);
	free(m);
}

unsigned int vn_gmem_reclaim(struct vn_gmem *m)
{
	struct vn_gmem_table *t, *next;
	unsigned int n = 0;

	map_lock(m);
	t = m->retired;
	m->retired = NULL;
	map_unlock(m);
	for (; t; t = next) {
		next = t->retired_next;
		free(t);
		n++;
	}
	return n;
}

/* Called with m->lock held. @t replaces the current table, which is retired. */
static void publish(struct vn_gmem *m, struct vn_gmem_table *t)
{
	struct vn_gmem_table *old = m->table;

	t->generation = old->generation + 1;
	/* Pairs with the acquire load in snapshot(). */
	__atomic_store_n(&m->table, t, __ATOMIC_RELEASE);
	old->retired_next = m->retired;
	m->retired = old;
}

static int insert_region(struct vn_gmem *m, const struct vn_gmem_region *nr)
{
	struct vn_gmem_table *old, *t;
	unsigned int pos = 0;
	int r = 0;

	map_lock(m);
	old = m->table;
	if (old->nr >= VN_GMEM_MAX_REGIONS) {
		r = -ENOSPC;
		goto out;
	}
	for (unsigned int i = 0; i < old->nr; i++) {
		const struct vn_gmem_region *o = &old->r[i];

		/* both ranges are known not to wrap */
		if (nr->gpa < o->gpa + o->size && o->gpa < nr->gpa + nr->size) {
			r = -EEXIST;
			goto out;
		}
		if (o->gpa < nr->gpa)
			pos = i + 1;
	}
	t = table_alloc(old->nr + 1);
	if (!t) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(t->r, old->r, pos * sizeof(t->r[0]));
	t->r[pos] = *nr;
	memcpy(&t->r[pos + 1], &old->r[pos], (old->nr - pos) * sizeof(t->r[0]));
	publish(m, t);
out:
	map_unlock(m);
	return r;
}

static int map_region(int fd, uint64_t offset, uint64_t size, struct vn_gmem_region *out)
{
	long pg = sysconf(_SC_PAGESIZE);
	uint64_t delta = offset % (uint64_t)pg, len;
	void *p;

	if (vn_add_overflow(size, delta, &len) || len > SIZE_MAX || offset - delta > INT64_MAX)
		return -EINVAL;
	p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)(offset - delta));
	if (p == MAP_FAILED)
		return -errno;
	out->map_base = p;
	out->map_len = (size_t)len;
	out->hva = (uint8_t *)p + delta;
	return 0;
}

static int check_range(uint64_t gpa, uint64_t size)
{
	uint64_t end;

	if (size == 0 || vn_add_overflow(gpa, size - 1, &end))
		return -EINVAL;
	return 0;
}

int vn_gmem_add_fd(struct vn_gmem *m, uint64_t gpa, uint64_t size, int fd, uint64_t offset)
{
	struct vn_gmem_region reg = {
		.gpa = gpa, .size = size, .fd = -1, .fd_offset = offset, .guard = -1};
	struct stat st;
	uint64_t end;
	int r, seals;

	if (fd < 0)
		return -EBADF;
	r = check_range(gpa, size);
	if (r < 0)
		return r;
	if (vn_add_overflow(offset, size, &end))
		return -EINVAL;
	/* Pages past the end of a file would SIGBUS on the first guest access. */
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < end)
		return -EINVAL;
	r = map_region(fd, offset, size, &reg);
	if (r < 0)
		return r;
	/*
	 * Sealed against shrinking (QEMU's memfd backend does it by default):
	 * no page can vanish. Anything else can be truncated by its owner at
	 * any time; contain the SIGBUS that would follow (gmem-guard.h).
	 */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
		r = vn_gmem_guard_add(reg.map_base, reg.map_len, &m->faulted);
		if (r < 0) {
			region_release(&reg);
			return r;
		}
		reg.guard = r;
	}
	/* Pages the region touches, from the one holding gpa to the one holding its last byte. */
	reg.dirty_bits = (gpa + size - 1) / VN_GMEM_LOG_PAGE - gpa / VN_GMEM_LOG_PAGE + 1;
	reg.dirty = calloc((size_t)((reg.dirty_bits + 63) / 64), sizeof(uint64_t));
	if (!reg.dirty) {
		region_release(&reg);
		return -ENOMEM;
	}
	reg.fd = fd;
	r = insert_region(m, &reg);
	if (r < 0) {
		reg.fd = -1; /* the caller keeps it on error */
		region_release(&reg);
	}
	return r;
}

/* Transparent huge pages where the kernel allows them; only a hint, never an error. */
static void advise_huge(void *p, size_t len)
{
	(void)madvise(p, len, MADV_HUGEPAGE);
}

int vn_gmem_add_memfd(struct vn_gmem *m, uint64_t gpa, uint64_t size, int *fd_out)
{
	int fd, dupfd = -1, r;

	r = check_range(gpa, size);
	if (r < 0)
		return r;
	if (size > INT64_MAX)
		return -EINVAL;
	fd = memfd_create("vnotify-guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	/* Sealed: whoever gets a dup (a frontend) cannot pull pages from under us. */
	if (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
		r = -errno;
		goto err_close;
	}
	if (fd_out) {
		dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (dupfd < 0) {
			r = -errno;
			goto err_close;
		}
	}
	r = vn_gmem_add_fd(m, gpa, size, fd, 0);
	if (r < 0)
		goto err_close_dup;
	/* Effective where shmem THP allows advice (shmem_enabled "advise" or more). */
	advise_huge(vn_gmem_ptr(m, gpa, size), (size_t)size);
	if (fd_out)
		*fd_out = dupfd;
	return 0;

err_close_dup:
	if (dupfd >= 0)
		close(dupfd);
err_close:
	close(fd);
	return r;
}

/* The dirty log and the table entry, for a region mapped by the caller. */
static int insert_mapped(struct vn_gmem *m, struct vn_gmem_region *reg)
{
	uint64_t gpa = reg->gpa, size = reg->size;
	int r;

	reg->dirty_bits = (gpa + size - 1) / VN_GMEM_LOG_PAGE - gpa / VN_GMEM_LOG_PAGE + 1;
	reg->dirty = calloc((size_t)((reg->dirty_bits + 63) / 64), sizeof(uint64_t));
	if (!reg->dirty) {
		region_release(reg);
		return -ENOMEM;
	}
	r = insert_region(m, reg);
	if (r < 0)
		region_release(reg);
	return r;
}

int vn_gmem_add_anon(struct vn_gmem *m, uint64_t gpa, uint64_t size)
{
	struct vn_gmem_region reg = { .gpa = gpa, .size = size, .fd = -1, .guard = -1 };
	uint8_t *p, *aligned;
	size_t len, head, tail;
	int r;

	r = check_range(gpa, size);
	if (r < 0)
		return r;
	if (size > SIZE_MAX - VN_GMEM_HUGE_ALIGN || (size & 4095))
		return -EINVAL;
	/*
	 * Reserve a huge page more and trim, so the region starts on a 2 MiB
	 * boundary: a THP can only back an aligned 2 MiB of both the guest
	 * (gpa) and the host mapping, and kernels before 6.7 do not align
	 * anonymous mappings themselves. NORESERVE: RAM is touched on demand.
	 */
	len = (size_t)size + VN_GMEM_HUGE_ALIGN;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	aligned = (uint8_t *)(((uintptr_t)p + VN_GMEM_HUGE_ALIGN - 1) &
			      ~(uintptr_t)(VN_GMEM_HUGE_ALIGN - 1));
	head = (size_t)(aligned - p);
	tail = len - head - (size_t)size;
	if (head)
		munmap(p, head);
	if (tail)
		munmap(aligned + size, tail);
	reg.map_base = aligned;
	reg.map_len = (size_t)size;
	reg.hva = aligned;
	advise_huge(aligned, (size_t)size);
	/* No fd: nobody can truncate it, so no SIGBUS guard either. */
	return insert_mapped(m, &reg);
}

int vn_gmem_add_hugetlb(struct vn_gmem *m, uint64_t gpa, uint64_t size, const char *dir,
			int *fd_out)
{
	char path[4096];
	struct statfs sfs;
	int fd, r;

	if (fd_out)
		*fd_out = -1;
	r = check_range(gpa, size);
	if (r < 0)
		return r;
	if (size > INT64_MAX)
		return -EINVAL;
	if (dir) {
		if (statfs(dir, &sfs) < 0)
			return -errno;
		if (sfs.f_type != HUGETLBFS_MAGIC)
			return -ENOTTY; /* not a hugetlbfs mount */
		if (sfs.f_bsize <= 0 || size % (uint64_t)sfs.f_bsize)
			return -EINVAL;
		if (snprintf(path, sizeof(path), "%s/vnotify-guest-XXXXXX", dir) >= (int)sizeof(path))
			return -ENAMETOOLONG;
		fd = mkostemp(path, O_CLOEXEC);
		if (fd < 0)
			return -errno;
		unlink(path); /* the file lives as long as the mapping and fds */
	} else {
		fd = memfd_create("vnotify-guest", MFD_CLOEXEC | MFD_HUGETLB);
		if (fd < 0)
			return -errno;
	}
	/* hugetlbfs reserves the pages at mmap (no MAP_NORESERVE): too few is ENOMEM here, not a SIGBUS later */
	if (ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	r = 0;
	if (fd_out) {
		*fd_out = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (*fd_out < 0)
			r = -errno;
	}
	if (r == 0)
		r = vn_gmem_add_fd(m, gpa, size, fd, 0);
	if (r < 0) {
		if (fd_out && *fd_out >= 0)
			close(*fd_out);
		if (fd_out)
			*fd_out = -1;
		close(fd);
	}
	return r;
}

static int remove_region(struct vn_gmem *m, uint64_t gpa, bool keep_mapped);

int vn_gmem_remove(struct vn_gmem *m, uint64_t gpa)
{
	return remove_region(m, gpa, false);
}

int vn_gmem_remove_keep_mapped(struct vn_gmem *m, uint64_t gpa)
{
	return remove_region(m, gpa, true);
}

static int remove_region(struct vn_gmem *m, uint64_t gpa, bool keep_mapped)
{
	struct vn_gmem_table *old, *t;
	struct vn_gmem_region victim;
	unsigned int i;
	int r = -ENOENT;

	map_lock(m);
	old = m->table;
	for (i = 0; i < old->nr; i++)
		if (old->r[i].gpa == gpa)
			break;
	if (i == old->nr)
		goto out;
	t = table_alloc(old->nr - 1);
	if (!t) {
		r = -ENOMEM;
		goto out;
	}
	victim = old->r[i];
	memcpy(t->r, old->r, i * sizeof(t->r[0]));
	memcpy(&t->r[i], &old->r[i + 1], (old->nr - i - 1) * sizeof(t->r[0]));
	publish(m, t);
	if (keep_mapped) {
		/* Leaked: a truncation of its file is still contained. */
		vn_gmem_guard_orphan(victim.guard);
		victim.guard = -1;
		victim.map_base = NULL;
	}
	region_release(&victim);
	r = 0;
out:
	map_unlock(m);
	return r;
}

bool vn_gmem_is_faulted(const struct vn_gmem *m)
{
	/* Pairs with the release store of the SIGBUS handler. */
	return __atomic_load_n(&m->faulted, __ATOMIC_ACQUIRE);
}

void vn_gmem_clear_faulted(struct vn_gmem *m)
{
	__atomic_store_n(&m->faulted, 0, __ATOMIC_RELEASE);
}

uint64_t vn_gmem_generation(const struct vn_gmem *m)
{
	return snapshot(m)->generation;
}

unsigned int vn_gmem_nr_regions(const struct vn_gmem *m)
{
	return snapshot(m)->nr;
}

/* The region holding @gpa, or NULL. Binary search: regions are sorted. */
static const struct vn_gmem_region *lookup(const struct vn_gmem_table *t, uint64_t gpa)
{
	unsigned int lo = 0, hi = t->nr;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;
		const struct vn_gmem_region *r = &t->r[mid];

		if (gpa < r->gpa)
			hi = mid;
		else if (gpa - r->gpa >= r->size)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

int vn_gmem_map(const struct vn_gmem *m, uint64_t gpa, uint64_t len, struct iovec *iov,
		unsigned int max_iov)
{
	const struct vn_gmem_table *t = snapshot(m);
	unsigned int n = 0;
	uint64_t end;

	if (len == 0)
		return 0;
	if (vn_add_overflow(gpa, len - 1, &end))
		return -EFAULT;
	while (len > 0) {
		const struct vn_gmem_region *r = lookup(t, gpa);
		uint64_t off, chunk;

		if (!r)
			return -EFAULT;
		if (n == max_iov)
			return -E2BIG;
		off = gpa - r->gpa;
		chunk = r->size - off;
		if (chunk > len)
			chunk = len;
		iov[n].iov_base = r->hva + off;
		iov[n].iov_len = (size_t)chunk;
		n++;
		gpa += chunk; /* cannot wrap: gpa + len - 1 did not */
		len -= chunk;
	}
	return (int)n;
}

/* Walks region by region; a range may span any number of adjacent regions. */
static int check(const struct vn_gmem_table *t, uint64_t gpa, uint64_t len)
{
	uint64_t end;

	if (len == 0)
		return 0;
	if (vn_add_overflow(gpa, len - 1, &end))
		return -EFAULT;
	for (;;) {
		const struct vn_gmem_region *r = lookup(t, gpa);
		uint64_t chunk;

		if (!r)
			return -EFAULT;
		chunk = r->size - (gpa - r->gpa);
		if (chunk >= len)
			return 0;
		gpa += chunk;
		len -= chunk;
	}
}

int vn_gmem_check(const struct vn_gmem *m, uint64_t gpa, uint64_t len)
{
	return check(snapshot(m), gpa, len);
}

void *vn_gmem_ptr(const struct vn_gmem *m, uint64_t gpa, uint64_t len)
{
	const struct vn_gmem_region *r = lookup(snapshot(m), gpa);
	uint64_t off;

	if (!r)
		return NULL;
	off = gpa - r->gpa;
	if (len > r->size - off)
		return NULL;
	return r->hva + off;
}

/*
 * Checks the whole range first, then copies region by region, so a failed
 * write leaves guest memory untouched.
 */
static int copy(const struct vn_gmem *m, uint64_t gpa, void *buf, size_t len, bool to_guest)
{
	const struct vn_gmem_table *t = snapshot(m);
	uint64_t a, left;
	uint8_t *b = buf;
	int r;

	/* Fast path: the whole range in one region (descriptors, used elems). */
	const struct vn_gmem_region *one = lookup(t, gpa);

	if (one && len <= one->size - (gpa - one->gpa)) {
		uint8_t *h = one->hva + (gpa - one->gpa);

		if (to_guest)
			memcpy(h, b, len);
		else
			memcpy(b, h, len);
		return 0;
	}
	r = check(t, gpa, len);
	if (r < 0)
		return r;
	for (a = gpa, left = len; left > 0;) {
		const struct vn_gmem_region *g = lookup(t, a);
		uint64_t off = a - g->gpa, chunk = g->size - off;

		if (chunk > left)
			chunk = left;
		if (to_guest)
			memcpy(g->hva + off, b, (size_t)chunk);
		else
			memcpy(b, g->hva + off, (size_t)chunk);
		b += chunk;
		a += chunk;
		left -= chunk;
	}
	return 0;
}

int vn_gmem_read(const struct vn_gmem *m, uint64_t gpa, void *buf, size_t len)
{
	return copy(m, gpa, buf, len, false);
}

int vn_gmem_write(const struct vn_gmem *m, uint64_t gpa, const void *buf, size_t len)
{
	int r = copy(m, gpa, (void *)buf, len, true);

	if (r == 0)
		vn_gmem_log_write(m, gpa, len);
	return r;
}

static uint16_t *le16_ptr(const struct vn_gmem *m, uint64_t gpa)
{
	if (gpa & 1)
		return NULL;
	return vn_gmem_ptr(m, gpa, 2);
}

#define LE16_LOAD(name, order)                                                  \
	int name(const struct vn_gmem *m, uint64_t gpa, uint16_t *v)            \
	{                                                                       \
		uint16_t *p = le16_ptr(m, gpa);                                 \
                                                                                \
		if (!p)                                                         \
			return -EFAULT;                                         \
		*v = le16toh(__atomic_load_n(p, order));                        \
		return 0;                                                       \
	}

#define LE16_STORE(name, order)                                                 \
	int name(const struct vn_gmem *m, uint64_t gpa, uint16_t v)             \
	{                                                                       \
		uint16_t *p = le16_ptr(m, gpa);                                 \
                                                                                \
		if (!p)                                                         \
			return -EFAULT;                                         \
		__atomic_store_n(p, htole16(v), order);                         \
		vn_gmem_log_write(m, gpa, 2);                                   \
		return 0;                                                       \
	}

LE16_LOAD(vn_gmem_load_le16_acquire, __ATOMIC_ACQUIRE)
LE16_LOAD(vn_gmem_load_le16_seqcst, __ATOMIC_SEQ_CST)
LE16_LOAD(vn_gmem_load_le16_relaxed, __ATOMIC_RELAXED)
LE16_STORE(vn_gmem_store_le16_release, __ATOMIC_RELEASE)
LE16_STORE(vn_gmem_store_le16_seqcst, __ATOMIC_SEQ_CST)
LE16_STORE(vn_gmem_store_le16_relaxed, __ATOMIC_RELAXED)

/* ---- dirty log ---- */

void vn_gmem_log_enable(struct vn_gmem *m, bool on)
{
	map_lock(m);
	if (on && !m->log) {
		const struct vn_gmem_table *t = m->table;

		for (unsigned int i = 0; i < t->nr; i++)
			for (uint64_t w = 0; w < (t->r[i].dirty_bits + 63) / 64; w++)
				__atomic_store_n(&t->r[i].dirty[w], 0, __ATOMIC_RELAXED);
	}
	/* seq_cst: the cleared bitmaps are visible before the first new mark. */
	__atomic_store_n(&m->log, on, __ATOMIC_SEQ_CST);
	map_unlock(m);
}

static void mark_region(const struct vn_gmem_region *g, uint64_t first, uint64_t last)
{
	uint64_t base = g->gpa / VN_GMEM_LOG_PAGE;

	for (uint64_t p = first; p <= last; p++) {
		uint64_t bit = p - base;

		/* Release: the data written before the mark is visible to whoever takes it. */
		__atomic_fetch_or(&g->dirty[bit / 64], 1ull << (bit % 64), __ATOMIC_RELEASE);
	}
}

void vn_gmem_log_mark(const struct vn_gmem *m, uint64_t gpa, uint64_t len)
{
	const struct vn_gmem_table *t = snapshot(m);
	uint64_t end;

	if (len == 0)
		return;
	if (vn_add_overflow(gpa, len - 1, &end))
		end = UINT64_MAX;
	/* Regions are sorted and few: walk those that overlap [gpa, end]. */
	for (unsigned int i = 0; i < t->nr; i++) {
		const struct vn_gmem_region *g = &t->r[i];
		uint64_t glast = g->gpa + g->size - 1, lo, hi;

		if (g->gpa > end)
			break;
		if (glast < gpa)
			continue;
		lo = gpa > g->gpa ? gpa : g->gpa;
		hi = end < glast ? end : glast;
		mark_region(g, lo / VN_GMEM_LOG_PAGE, hi / VN_GMEM_LOG_PAGE);
	}
}

static const struct vn_gmem_region *region_at(const struct vn_gmem_table *t, uint64_t gpa)
{
	for (unsigned int i = 0; i < t->nr; i++)
		if (t->r[i].gpa == gpa)
			return &t->r[i];
	return NULL;
}

uint64_t vn_gmem_log_pages(const struct vn_gmem *m, uint64_t gpa)
{
	const struct vn_gmem_region *g = region_at(snapshot(m), gpa);

	return g ? g->dirty_bits : 0;
}

long vn_gmem_log_get_clear(struct vn_gmem *m, uint64_t gpa, uint64_t *bits, uint64_t nbits)
{
	const struct vn_gmem_region *g;
	long n = -ENOENT;

	/* The lock keeps the region (and its bitmap) from going away meanwhile. */
	map_lock(m);
	g = region_at(m->table, gpa);
	if (!g)
		goto out;
	n = -ENOSPC;
	if (nbits < g->dirty_bits)
		goto out;
	memset(bits, 0, (size_t)((nbits + 63) / 64) * sizeof(uint64_t));
	n = 0;
	for (uint64_t w = 0; w < (g->dirty_bits + 63) / 64; w++) {
		/* Acquire: pairs with the release mark; the page's data is visible. */
		bits[w] = __atomic_exchange_n(&g->dirty[w], 0, __ATOMIC_ACQUIRE);
		n += __builtin_popcountll(bits[w]);
	}
out:
	map_unlock(m);
	return n;
}
