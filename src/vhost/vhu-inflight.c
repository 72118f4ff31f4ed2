/* SPDX-License-Identifier: MIT */
/*
 * The inflight region: creating it, taking it back from the frontend, and
 * reading what the previous backend left in it (see vhu-inflight.h).
 */
#include "vhost/vhu-inflight.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ALIGN 64u

uint64_t vn_vhu_inflight_queue_bytes(uint16_t queue_size)
{
	uint64_t b = sizeof(struct vn_vq_inflight_hdr) +
		     (uint64_t)queue_size * sizeof(struct vn_vq_inflight_desc);

	return (b + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
}

int vn_vhu_inflight_create(struct vn_vhu_inflight *in, uint16_t num_queues, uint16_t queue_size)
{
	uint64_t size = num_queues * vn_vhu_inflight_queue_bytes(queue_size);
	int fd, r;
	void *p;

	fd = memfd_create("vnotify-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	/* Sealed: the frontend cannot shrink it under our mapping (nor can we). */
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	*in = (struct vn_vhu_inflight){.fd = fd,
				       .map = p,
				       .size = size,
				       .num_queues = num_queues,
				       .queue_size = queue_size};
	return 0;
}

int vn_vhu_inflight_adopt(struct vn_vhu_inflight *in, const struct vn_vhu_inflight_msg *m, int fd,
			  const char **why)
{
	long page = sysconf(_SC_PAGESIZE);
	struct stat st;
	int seals;
	void *p;

	*why = "";
	if (m->num_queues == 0 || m->queue_size == 0 ||
	    (m->queue_size & (m->queue_size - 1))) {
		*why = "num_queues/queue_size";
		goto err;
	}
	if (m->mmap_size != m->num_queues * vn_vhu_inflight_queue_bytes(m->queue_size)) {
		*why = "mmap_size";
		goto err;
	}
	if (m->mmap_offset % (uint64_t)page || m->mmap_offset > UINT64_MAX - m->mmap_size) {
		*why = "mmap_offset";
		goto err;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < m->mmap_offset + m->mmap_size) {
		*why = "fd size";
		goto err;
	}
	/* A file the frontend may still shrink would fault us at the next pop. */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
		*why = "fd seals (no F_SEAL_SHRINK)";
		goto err;
	}
	p = mmap(NULL, m->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)m->mmap_offset);
	if (p == MAP_FAILED) {
		*why = "mmap";
		goto err;
	}
	*in = (struct vn_vhu_inflight){.fd = fd,
				       .map = p,
				       .size = m->mmap_size,
				       .num_queues = m->num_queues,
				       .queue_size = m->queue_size};
	return 0;

err:
	close(fd);
	return -EINVAL;
}

void vn_vhu_inflight_release(struct vn_vhu_inflight *in)
{
	if (in->map)
		munmap(in->map, in->size);
	if (in->fd >= 0)
		close(in->fd);
	*in = (struct vn_vhu_inflight){.fd = -1};
}

struct vn_vq_inflight_hdr *vn_vhu_inflight_queue(const struct vn_vhu_inflight *in,
						 unsigned int q)
{
	if (!in->map || q >= in->num_queues)
		return NULL;
	return (struct vn_vq_inflight_hdr *)((uint8_t *)in->map +
					     q * vn_vhu_inflight_queue_bytes(in->queue_size));
}

struct pending {
	uint64_t counter;
	uint16_t head;
};

static int by_counter(const void *a, const void *b)
{
	const struct pending *x = a, *y = b;

	if (x->counter != y->counter)
		return x->counter < y->counter ? -1 : 1;
	return (int)x->head - (int)y->head;
}

int vn_vhu_inflight_recover(struct vn_vq_inflight_hdr *r, uint16_t queue_size, uint16_t num,
			    uint16_t used_idx, struct vn_vhu_inflight_plan *plan, const char **why)
{
	size_t bytes = sizeof(*r) + (size_t)queue_size * sizeof(r->desc[0]);
	struct vn_vq_inflight_hdr *snap;
	struct pending *p = NULL;
	uint64_t counter = 0;
	unsigned int n = 0;
	int ret = -EINVAL;

	*plan = (struct vn_vhu_inflight_plan){0};
	*why = "";
	if (num == 0 || num > queue_size) {
		*why = "queue_size (smaller than the ring)";
		return -EINVAL;
	}
	/* Fresh: nothing to redo; from now on it is ours to keep. */
	if (__atomic_load_n(&r->version, __ATOMIC_ACQUIRE) == 0) {
		memset(r, 0, bytes);
		r->desc_num = queue_size;
		r->used_idx = used_idx;
		__atomic_store_n(&r->version, VN_VQ_INFLIGHT_VERSION, __ATOMIC_RELEASE);
		return 0;
	}
	/* One read of the frontend's memory; every decision below is on our copy. */
	snap = malloc(bytes);
	if (!snap)
		return -ENOMEM;
	memcpy(snap, r, bytes);
	if (snap->version != VN_VQ_INFLIGHT_VERSION) {
		*why = "version";
		goto out;
	}
	if (snap->desc_num != queue_size) {
		*why = "desc_num";
		goto out;
	}
	/*
	 * used_idx behind the guest's: the previous backend died after the
	 * push of last_batch_head reached the used ring, before clearing its
	 * flag. Only that one head; a bogus index is refused.
	 */
	if (snap->used_idx != used_idx) {
		if (snap->last_batch_head >= num) {
			*why = "last_batch_head";
			goto out;
		}
		snap->desc[snap->last_batch_head].inflight = 0;
	}
	p = malloc((size_t)num * sizeof(*p));
	if (!p) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned int i = 0; i < queue_size; i++) {
		const struct vn_vq_inflight_desc *d = &snap->desc[i];

		if (d->inflight > 1) {
			*why = "desc inflight flag";
			goto out;
		}
		if (!d->inflight)
			continue;
		/* Heads past the ring were never offered on it. */
		if (i >= num) {
			*why = "desc index";
			goto out;
		}
		p[n++] = (struct pending){.counter = d->counter, .head = (uint16_t)i};
		if (d->counter >= counter)
			counter = d->counter + 1;
	}
	qsort(p, n, sizeof(*p), by_counter);
	plan->resubmit = malloc((n ? n : 1) * sizeof(uint16_t));
	if (!plan->resubmit) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned int i = 0; i < n; i++)
		plan->resubmit[i] = p[i].head;
	plan->n = n;
	plan->counter = counter;
	/* Our copy is the truth now: the stale flag goes, used_idx catches up. */
	if (snap->used_idx != used_idx) {
		__atomic_store_n(&r->desc[snap->last_batch_head].inflight, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&r->used_idx, used_idx, __ATOMIC_RELEASE);
	}
	ret = 0;
out:
	free(p);
	free(snap);
	return ret;
}
