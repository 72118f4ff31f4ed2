/* SPDX-License-Identifier: MIT */
#include "bus/ioev.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/kcmp.h>

void vn_ioev_table_init(struct vn_ioev_table *t, unsigned int limit)
{
	memset(t, 0, sizeof(*t));
	t->limit = limit ? limit : VN_IOEV_LIMIT_DEFAULT;
}

void vn_ioev_table_destroy(struct vn_ioev_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->entries[i]);
	free(t->entries);
	free(t->snap);
	memset(t, 0, sizeof(*t));
}

static bool len_is_valid(uint32_t len)
{
	return len == 0 || len == 1 || len == 2 || len == 4 || len == 8;
}

int vn_ioev_check_args(const struct vn_ioev *d)
{
	uint64_t end;

	if ((unsigned int)d->space >= VN_SPACE_COUNT)
		return -EINVAL;
	/* KVM: "must be natural-word sized, or 0 to ignore length" */
	if (!len_is_valid(d->len))
		return -EINVAL;
	/* KVM: "check for range overflow" (addr + len must not wrap) */
	if (vn_add_overflow(d->addr, (uint64_t)d->len, &end))
		return -EINVAL;
	/* KVM: "ioeventfd with no length can't be combined with DATAMATCH" */
	if (d->len == 0 && d->datamatch)
		return -EINVAL;
	return 0;
}

int vn_ioev_check_fd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	if (fd < 0 || fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	/* KVM: eventfd_ctx_fdget() refuses any other file with -EINVAL */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0; /* no /proc: trust the caller rather than refuse */
	link[n] = '\0';
	return strcmp(link, "anon_inode:[eventfd]") == 0 ? 0 : -EINVAL;
}

/*
 * KVM compares the eventfd objects, not fd numbers: a dup() of the assigned
 * fd names the same entry. kcmp(2) tells us; without it (seccomp, no
 * CONFIG_KCMP) only the same number matches.
 */
static bool same_eventfd(int a, int b)
{
	pid_t pid;

	if (a == b)
		return true;
	pid = getpid();
	return syscall(SYS_kcmp, pid, pid, KCMP_FILE, (unsigned long)a, (unsigned long)b) == 0;
}

/* KVM's ioeventfd_check_collision() */
static bool collides(const struct vn_ioev *a, const struct vn_ioev *b)
{
	return a->space == b->space && a->addr == b->addr &&
	       (a->len == 0 || b->len == 0 ||
		(a->len == b->len && (!a->datamatch || !b->datamatch || a->data == b->data)));
}

/* KVM's kvm_deassign_ioeventfd_idx() match, fd aside */
static bool same_entry(const struct vn_ioev *e, const struct vn_ioev *d)
{
	if (e->space != d->space || e->addr != d->addr || e->len != d->len ||
	    e->datamatch != d->datamatch)
		return false;
	return !e->datamatch || e->data == d->data;
}

/*
 * Hash keys. A write (addr, len, value) can only match one of three keys:
 * a datamatch entry (addr, len, value), a wildcard (addr, len), or an
 * any-length entry (addr, 0). So a lookup is three probes.
 */
static uint32_t key(enum vn_space space, uint32_t len, bool datamatch)
{
	return 1u | (uint32_t)space << 1 | len << 2 | (uint32_t)datamatch << 6;
}

static uint32_t hash(uint64_t addr, uint64_t data, uint32_t k)
{
	uint64_t h = addr * 0x9e3779b97f4a7c15ull ^ (data + k) * 0xc2b2ae3d27d4eb4full;

	h ^= h >> 31;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (uint32_t)h;
}

static void snap_insert(struct vn_ioev_snap *s, struct vn_ioev_entry *e)
{
	const struct vn_ioev *d = &e->desc;
	uint64_t data = d->datamatch ? d->data : 0;
	uint32_t k = key(d->space, d->len, d->datamatch);
	uint32_t i = hash(d->addr, data, k) & s->mask;

	while (s->slot[i].key)
		i = (i + 1) & s->mask;
	s->slot[i] = (struct vn_ioev_slot){ .addr = d->addr, .data = data, .key = k, .entry = e };
}

static int snap_build(const struct vn_ioev_table *t, struct vn_ioev_snap **out)
{
	size_t slots = 16;
	struct vn_ioev_snap *s;

	if (t->n == 0) {
		*out = NULL; /* the dispatcher skips an empty table with one load */
		return 0;
	}
	while (slots < 2 * t->n)
		slots *= 2;
	s = calloc(1, sizeof(*s) + slots * sizeof(s->slot[0]));
	if (!s)
		return -ENOMEM;
	s->mask = (uint32_t)(slots - 1);
	for (size_t i = 0; i < t->n; i++)
		snap_insert(s, t->entries[i]);
	*out = s;
	return 0;
}

static const struct vn_ioev_entry *probe(const struct vn_ioev_snap *s, uint64_t addr,
					 uint64_t data, uint32_t k)
{
	uint32_t i = hash(addr, data, k) & s->mask;

	for (;;) {
		const struct vn_ioev_slot *sl = &s->slot[i];

		if (!sl->key)
			return NULL;
		if (sl->key == k && sl->addr == addr && sl->data == data)
			return sl->entry;
		i = (i + 1) & s->mask;
	}
}

const struct vn_ioev_entry *vn_ioev_snap_match(const struct vn_ioev_snap *s,
					       enum vn_space space, uint64_t addr,
					       unsigned int len, uint64_t value)
{
	const struct vn_ioev_entry *e;

	e = probe(s, addr, value, key(space, len, true));
	if (e)
		return e;
	e = probe(s, addr, 0, key(space, len, false));
	if (e)
		return e;
	return probe(s, addr, 0, key(space, 0, false));
}

static void publish(struct vn_ioev_table *t, struct vn_ioev_snap *s, struct vn_ioev_snap **old)
{
	*old = t->snap;
	/* seq_cst: pairs with vn_grace_read_lock() (see grace.c) */
	__atomic_store_n(&t->snap, s, __ATOMIC_SEQ_CST);
}

int vn_ioev_assign_locked(struct vn_ioev_table *t, const struct vn_ioev *d,
			  struct vn_ioev_snap **old_snap)
{
	struct vn_ioev_entry *e;
	struct vn_ioev_snap *s;
	int r;

	/* KVM's order: arguments, then the fd, then collision, then room */
	r = vn_ioev_check_args(d);
	if (r)
		return r;
	r = vn_ioev_check_fd(d->fd);
	if (r)
		return r;
	for (size_t i = 0; i < t->n; i++)
		if (collides(&t->entries[i]->desc, d))
			return -EEXIST;
	if (t->count[d->space] >= t->limit)
		return -ENOSPC;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct vn_ioev_entry **n = reallocarray(t->entries, cap, sizeof(*n));

		if (!n)
			return -ENOMEM;
		t->entries = n;
		t->cap = cap;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->desc = *d;
	if (!e->desc.datamatch)
		e->desc.data = 0;
	t->entries[t->n++] = e;
	r = snap_build(t, &s);
	if (r) {
		t->n--;
		free(e);
		return r;
	}
	t->count[d->space]++;
	publish(t, s, old_snap);
	return 0;
}

static ssize_t find_index(struct vn_ioev_table *t, const struct vn_ioev *d)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct vn_ioev *e = &t->entries[i]->desc;

		if (same_entry(e, d) && same_eventfd(e->fd, d->fd))
			return (ssize_t)i;
	}
	return -1;
}

struct vn_ioev_entry *vn_ioev_find_locked(struct vn_ioev_table *t, const struct vn_ioev *d)
{
	ssize_t i = find_index(t, d);

	return i < 0 ? NULL : t->entries[i];
}

int vn_ioev_deassign_locked(struct vn_ioev_table *t, const struct vn_ioev *d,
			    struct vn_ioev_snap **old_snap, struct vn_ioev_entry **old_entry)
{
	struct vn_ioev_entry *e;
	struct vn_ioev_snap *s;
	ssize_t i;
	int r;

	/* KVM: eventfd_ctx_fdget() first, then the search; no argument checks */
	r = vn_ioev_check_fd(d->fd);
	if (r)
		return r;
	if ((unsigned int)d->space >= VN_SPACE_COUNT)
		return -ENOENT;
	i = find_index(t, d);
	if (i < 0)
		return -ENOENT;
	e = t->entries[i];
	t->entries[i] = t->entries[--t->n];
	r = snap_build(t, &s);
	if (r) {
		t->entries[t->n++] = t->entries[i];
		t->entries[i] = e;
		return r;
	}
	t->count[e->desc.space]--;
	publish(t, s, old_snap);
	*old_entry = e;
	return 0;
}
