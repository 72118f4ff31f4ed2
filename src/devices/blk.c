/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk (virtio 1.2 §5.2): the device object, its config space and
 * features, its lifecycle (reset, drain, free) and the completion side on
 * the iothread. Requests are in blk-req.c, host I/O in the backends.
 */
#include "devices/blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <vnotify/iothread.h>
#include <vnotify/loop.h>
#include <vnotify/vdev.h>

#include "base/trace.h"
#include "devices/blk-backend.h"
#include "virtio/vdev.h"

#define F(bit) (1ull << (bit))

#define BLK_QUEUES_MAX 64u
#define BLK_QUEUE_SIZE_DEFAULT 256u
#define BLK_QUEUE_SIZE_MAX 1024u
#define BLK_SEG_MAX_DEFAULT 126u
#define BLK_SEG_MAX_MAX 1000u /* keeps every iovec array under IOV_MAX */
#define BLK_IOV_SLACK 16u     /* extra iovecs for buffers split across regions */
#define BLK_POOL_THREADS_DEFAULT 4u
#define BLK_POOL_THREADS_MAX 64u
/* Per discard or write-zeroes segment: 1 GiB, a multiple of every block size. */
#define BLK_DISCARD_SECTORS_MAX (1u << 21)

/* The config space up to and including write_zeroes_may_unmap and its padding. */
#define BLK_CONFIG_LEN offsetof(struct virtio_blk_config, max_secure_erase_sectors)

static void drain_queues(struct vn_blk *blk);
static unsigned int drain_queue(struct vn_blk *blk, unsigned int q);

/* Features are final for a 1.x driver at FEATURES_OK. Context: device lock. */
static int blk_validate_features(struct vn_vdev *vdev, uint64_t features)
{
	struct vn_blk *blk = vn_vdev_opaque(vdev);

	/* Release: pairs with the acquire in vn_blk_has_feature() on queue threads. */
	__atomic_store_n(&blk->features, features, __ATOMIC_RELEASE);
	return 0;
}

/* A legacy driver has no FEATURES_OK: its features are final at DRIVER_OK. */
static void blk_status_changed(struct vn_vdev *vdev, uint8_t old, uint8_t status)
{
	struct vn_blk *blk = vn_vdev_opaque(vdev);

	if ((status & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK))
		__atomic_store_n(&blk->features,
				 vn_vdev_driver_features(vdev) & vn_vdev_device_features(vdev),
				 __ATOMIC_RELEASE);
}

/*
 * §5.2.4: every field is read-only for the driver; `wce` would be writable
 * with VIRTIO_BLK_F_CONFIG_WCE, which we do not offer.
 */
static int blk_config_write(struct vn_vdev *vdev, uint32_t off, const void *buf, uint32_t len)
{
	return -EPERM;
}

/*
 * The driver reset the device. Wait for the requests in flight (their
 * completions are dropped: the driver has given up its rings), so nothing
 * touches guest memory once the reset returns.
 * Context: device lock held. Completions never take it, so waiting is safe.
 */
static void blk_reset(struct vn_vdev *vdev)
{
	struct vn_blk *blk = vn_vdev_opaque(vdev);

	__atomic_store_n(&blk->resetting, 1, __ATOMIC_RELEASE);
	drain_queues(blk);
	__atomic_store_n(&blk->features, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&blk->resetting, 0, __ATOMIC_RELEASE);
}

/*
 * A front door stops feeding queue @q (vhost-user GET_VRING_BASE, a memory
 * table change): its requests in flight complete to the guest first, as
 * vn_blk_drain() does for every queue.
 * Context: device lock NOT held; any thread (completions take only the
 * queue's run lock).
 */
static void blk_quiesce_queue(struct vn_vdev *vdev, unsigned int q)
{
	struct vn_blk *blk = vn_vdev_opaque(vdev);
	unsigned int waited;

	if (q >= blk->nr_queues)
		return;
	__atomic_fetch_add(&blk->draining, 1, __ATOMIC_ACQ_REL);
	waited = drain_queue(blk, q);
	__atomic_fetch_sub(&blk->draining, 1, __ATOMIC_ACQ_REL);
	vn_trace(blk_drain, "dev=%s vq=%u waited for %u requests (quiesce)", blk->name, q, waited);
}

static const struct vn_vdev_ops blk_vdev_ops = {
	/*
	 * Block tolerates asynchronous doorbells: the Linux, Windows and
	 * firmware drivers never expect a request done when the doorbell
	 * write returns.
	 */
	.ioeventfd_default = true,
	.validate_features = blk_validate_features,
	.config_write = blk_config_write,
	.status_changed = blk_status_changed,
	.reset = blk_reset,
	.state_version = 1,
	.state_size = vn_blk_state_size,
	.state_save = vn_blk_state_save,
	.state_check = vn_blk_state_check,
	.state_load = vn_blk_state_load,
	.quiesce_queue = blk_quiesce_queue,
};

/* Wait until no request of queue @q is in flight or held. Return: how many were. */
static unsigned int drain_queue(struct vn_blk *blk, unsigned int q)
{
	struct blk_queue *bq = &blk->queues[q];
	unsigned int waited;

	vn_vdev_queue_lock(blk->vdev, q);
	(void)vn_blk_release_held_locked(bq, UINT64_MAX);
	waited = bq->in_flight;
	while (bq->in_flight)
		vn_blk_reap_locked(bq, true);
	vn_vdev_queue_unlock(blk->vdev, q);
	return waited;
}

/* Wait until no request of any queue is in flight or held. */
static void drain_queues(struct vn_blk *blk)
{
	unsigned int waited = 0;

	__atomic_fetch_add(&blk->draining, 1, __ATOMIC_ACQ_REL);
	for (unsigned int q = 0; q < blk->nr_queues; q++)
		waited += drain_queue(blk, q);
	__atomic_fetch_sub(&blk->draining, 1, __ATOMIC_ACQ_REL);
	vn_trace(blk_drain, "dev=%s waited for %u requests (reset=%d)", blk->name, waited,
		 __atomic_load_n(&blk->resetting, __ATOMIC_RELAXED));
}

void vn_blk_drain(struct vn_blk *blk)
{
	drain_queues(blk);
}

/* The backend of a queue has completions. Context: the iothread. */
static void queue_event(void *opaque, uint32_t events)
{
	struct blk_queue *bq = opaque;

	vn_vdev_queue_lock(bq->blk->vdev, bq->index);
	vn_blk_reap_locked(bq, false);
	vn_vdev_queue_unlock(bq->blk->vdev, bq->index);
}

/*
 * The loop's busy poll (ring polling keeps it polling while requests come):
 * reap completions that are there without waiting for their eventfd.
 * Context: the queue's iothread.
 */
static bool queue_poll(void *opaque)
{
	struct blk_queue *bq = opaque;
	bool ready;

	vn_vdev_queue_lock(bq->blk->vdev, bq->index);
	ready = bq->in_flight && bq->blk->be_ops->has_done(bq);
	if (ready)
		vn_blk_reap_locked(bq, false);
	vn_vdev_queue_unlock(bq->blk->vdev, bq->index);
	return ready;
}

/* Fault delay: give the queue's held completions to the guest when due. Context: its iothread. */
static void delay_fire(void *opaque)
{
	struct blk_queue *bq = opaque;
	uint64_t next;

	vn_vdev_queue_lock(bq->blk->vdev, bq->index);
	next = vn_blk_release_held_locked(bq, vn_clock_ns());
	vn_vdev_queue_unlock(bq->blk->vdev, bq->index);
	if (next != UINT64_MAX)
		vn_timer_arm(bq->delay_timer, next);
}

/* Context: the queue's completion iothread (or nobody runs its loop). */
static int attach_fn(void *opaque)
{
	struct blk_queue *bq = opaque;
	struct vn_loop *loop = vn_iothread_loop(bq->it);
	uint64_t next;
	int r;

	r = vn_timer_new(loop, delay_fire, bq, &bq->delay_timer);
	if (r < 0)
		return r;
	r = vn_loop_add_fd(loop, bq->event_fd, VN_LOOP_READ, queue_event,
			   bq->blk->be_ops->has_done ? queue_poll : NULL, bq);
	if (r < 0)
		return r;
	/* Level-triggered: completions that came while nobody watched (a move) fire at once. */
	bq->watched = true;
	/* Completions held when the queue arrived (a move) come due on this loop. */
	vn_vdev_queue_lock(bq->blk->vdev, bq->index);
	next = vn_blk_release_held_locked(bq, vn_clock_ns());
	vn_vdev_queue_unlock(bq->blk->vdev, bq->index);
	if (next != UINT64_MAX)
		vn_timer_arm(bq->delay_timer, next);
	return 0;
}

static void detach_fn(void *opaque)
{
	struct blk_queue *bq = opaque;

	if (bq->watched)
		(void)vn_loop_del_fd(vn_iothread_loop(bq->it), bq->event_fd);
	bq->watched = false;
	vn_timer_free(bq->delay_timer);
	bq->delay_timer = NULL;
}

static struct vn_iothread *queue_it(const struct blk_queue *bq)
{
	/* Acquire: pairs with the release in vn_blk_move_queue(). */
	return __atomic_load_n(&bq->it, __ATOMIC_ACQUIRE);
}

/* Under the run lock: the submit path asks it whether to reap at once. */
static void set_queue_it(struct blk_queue *bq, struct vn_iothread *it)
{
	vn_vdev_queue_lock(bq->blk->vdev, bq->index);
	__atomic_store_n(&bq->it, it, __ATOMIC_RELEASE);
	vn_vdev_queue_unlock(bq->blk->vdev, bq->index);
}

int vn_blk_move_queue(struct vn_blk *blk, unsigned int q, struct vn_iothread *to)
{
	struct blk_queue *bq;
	struct vn_iothread *from;
	int r;

	if (q >= blk->nr_queues || !to)
		return -EINVAL;
	bq = &blk->queues[q];
	from = queue_it(bq);
	if (from == to)
		return 0;
	/* The eventfd and the delay timer leave the old loop, then join the new one. */
	vn_iothread_run_sync_void(from, detach_fn, bq);
	set_queue_it(bq, to);
	r = vn_iothread_run_sync(to, attach_fn, bq);
	if (r < 0) {
		vn_iothread_run_sync_void(to, detach_fn, bq);
		set_queue_it(bq, from);
		if (vn_iothread_run_sync(from, attach_fn, bq) < 0)
			vn_log(VN_LOG_ERR, "blk", "%s q%u: completions watched nowhere (%s); "
			       "only a drain reaps them", blk->name, q, vn_strerror(r));
	}
	vn_trace(blk_move, "dev=%s vq=%u %s -> %s r=%d", blk->name, q, vn_iothread_name(from),
		 vn_iothread_name(r < 0 ? from : to), r);
	return r;
}

struct vn_iothread *vn_blk_queue_iothread(const struct vn_blk *blk, unsigned int q)
{
	return q < blk->nr_queues ? queue_it(&blk->queues[q]) : NULL;
}

static int check_cfg(const struct vn_blk_cfg *cfg)
{
	unsigned int qs = cfg->queue_size ? cfg->queue_size : BLK_QUEUE_SIZE_DEFAULT;
	unsigned int bs = cfg->blk_size ? cfg->blk_size : 512;

	if (!cfg->path && cfg->fd < 0)
		return -EINVAL;
	if (cfg->nr_queues > BLK_QUEUES_MAX || qs > BLK_QUEUE_SIZE_MAX || (qs & (qs - 1)))
		return -EINVAL;
	if (bs < 512 || bs > 65536 || (bs & (bs - 1)))
		return -EINVAL;
	if (cfg->seg_max > BLK_SEG_MAX_MAX || (cfg->seg_max && cfg->seg_max + 2 > qs))
		return -EINVAL;
	if (cfg->pool_threads > BLK_POOL_THREADS_MAX)
		return -EINVAL;
	if (!cfg->queue_iothreads != !cfg->nr_queue_iothreads)
		return -EINVAL;
	for (unsigned int i = 0; cfg->queue_iothreads && i < cfg->nr_queue_iothreads; i++)
		if (!cfg->queue_iothreads[i])
			return -EINVAL;
	if (cfg->backend != VN_BLK_BACKEND_AUTO && cfg->backend != VN_BLK_BACKEND_URING &&
	    cfg->backend != VN_BLK_BACKEND_POOL)
		return -EINVAL;
	return 0;
}

static int open_image(struct vn_blk *blk, const struct vn_blk_cfg *cfg)
{
	struct stat st;
	uint64_t size;
	int fd, fl;

	if (cfg->path) {
		fl = (cfg->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (cfg->direct ? O_DIRECT : 0);
		fd = open(cfg->path, fl);
		if (fd < 0)
			return -errno;
	} else {
		fd = fcntl(cfg->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		fl = fcntl(fd, F_GETFL);
		if (cfg->direct && (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) < 0))
			goto err_errno;
	}
	if (fstat(fd, &st) < 0)
		goto err_errno;
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0)
			goto err_errno;
	} else {
		close(fd);
		return -EINVAL;
	}
	blk->fd = fd;
	blk->size = size & ~511ull;
	return 0;

err_errno:
	fl = -errno;
	close(fd);
	return fl;
}

static void fill_config(struct vn_blk *blk)
{
	struct virtio_blk_config c;
	uint32_t align = blk->blk_size / 512;

	memset(&c, 0, sizeof(c));
	/* Modern config is little-endian; a legacy x86 guest reads it the same. */
	c.capacity = htole64(blk->size / 512);
	c.seg_max = htole32(blk->seg_max);
	c.blk_size = htole32(blk->blk_size);
	c.num_queues = htole16((uint16_t)blk->nr_queues);
	c.max_discard_sectors = htole32(blk->max_discard_sectors);
	c.max_discard_seg = htole32(1);
	c.discard_sector_alignment = htole32(align);
	c.max_write_zeroes_sectors = htole32(blk->max_discard_sectors);
	c.max_write_zeroes_seg = htole32(1);
	c.write_zeroes_may_unmap = 1;
	VN_BUG_ON(vn_vdev_config_update(blk->vdev, 0, &c, BLK_CONFIG_LEN) != 0);
}

static uint64_t offered_features(const struct vn_blk_cfg *cfg, unsigned int nr_queues)
{
	uint64_t f = F(VIRTIO_BLK_F_SEG_MAX) | F(VIRTIO_BLK_F_BLK_SIZE) | F(VIRTIO_BLK_F_FLUSH) |
		     F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_EVENT_IDX) |
		     F(VIRTIO_RING_F_INDIRECT_DESC);

	if (nr_queues > 1)
		f |= F(VIRTIO_BLK_F_MQ);
	if (cfg->readonly)
		f |= F(VIRTIO_BLK_F_RO);
	if (cfg->discard && !cfg->readonly)
		f |= F(VIRTIO_BLK_F_DISCARD);
	if (cfg->write_zeroes && !cfg->readonly)
		f |= F(VIRTIO_BLK_F_WRITE_ZEROES);
	return f;
}

static int alloc_queues(struct vn_blk *blk)
{
	size_t req_size = sizeof(struct blk_req) + blk->iov_cap * sizeof(struct iovec);

	blk->queues = calloc(blk->nr_queues, sizeof(*blk->queues));
	if (!blk->queues)
		return -ENOMEM;
	for (unsigned int q = 0; q < blk->nr_queues; q++) {
		struct blk_queue *bq = &blk->queues[q];

		bq->blk = blk;
		bq->index = q;
		bq->event_fd = -1;
		bq->reqs = calloc(blk->queue_size, sizeof(*bq->reqs));
		if (!bq->reqs)
			return -ENOMEM;
		for (unsigned int i = 0; i < blk->queue_size; i++) {
			struct blk_req *req = calloc(1, req_size);

			if (!req)
				return -ENOMEM;
			req->bq = bq;
			bq->reqs[i] = req;
			req->next = bq->free;
			bq->free = req;
		}
	}
	return 0;
}

static void free_queues(struct vn_blk *blk)
{
	if (!blk->queues)
		return;
	for (unsigned int q = 0; q < blk->nr_queues; q++) {
		struct blk_queue *bq = &blk->queues[q];

		for (unsigned int i = 0; bq->reqs && i < blk->queue_size; i++)
			free(bq->reqs[i]);
		free(bq->reqs);
	}
	free(blk->queues);
	blk->queues = NULL;
}

static int new_vdev(struct vn_blk *blk, const struct vn_blk_cfg *cfg)
{
	struct vn_vdev_cfg vcfg = {
		.name = blk->name,
		.device_id = VIRTIO_ID_BLOCK,
		.ops = &blk_vdev_ops,
		.opaque = blk,
		.features = offered_features(cfg, blk->nr_queues),
		.nr_queues = blk->nr_queues,
		.queue_size_max = blk->queue_size,
		.config_len = BLK_CONFIG_LEN,
		/* one per queue plus config; the transport binds their delivery */
		.nr_vectors = blk->nr_queues + 1,
	};
	int r = vn_vdev_new(&vcfg, &blk->vdev);

	for (unsigned int q = 0; r == 0 && q < blk->nr_queues; q++)
		r = vn_vdev_set_queue_handler(blk->vdev, q, vn_blk_handle_queue);
	return r;
}

/*
 * Where each queue's completions are processed: the iothreads that run the
 * queues when given (one thread pops, submits, reaps and signals), else
 * @cfg->iothread, else one the device owns.
 */
static int start_iothreads(struct vn_blk *blk, const struct vn_blk_cfg *cfg)
{
	struct vn_iothread_cfg icfg = {.name = "blk-io"};
	int r;

	if (cfg->queue_iothreads && cfg->nr_queue_iothreads) {
		for (unsigned int q = 0; q < blk->nr_queues; q++)
			blk->queues[q].it = cfg->queue_iothreads[q % cfg->nr_queue_iothreads];
	} else {
		if (cfg->iothread) {
			blk->it = cfg->iothread;
		} else {
			r = vn_iothread_new(&icfg, &blk->it);
			if (r < 0)
				return r;
			blk->own_it = true;
			r = vn_iothread_start(blk->it);
			if (r < 0)
				return r;
		}
		for (unsigned int q = 0; q < blk->nr_queues; q++)
			blk->queues[q].it = blk->it;
	}
	for (unsigned int q = 0; q < blk->nr_queues; q++) {
		r = vn_iothread_run_sync(blk->queues[q].it, attach_fn, &blk->queues[q]);
		if (r < 0)
			return r;
	}
	return 0;
}

static void set_params(struct vn_blk *blk, const struct vn_blk_cfg *cfg)
{
	snprintf(blk->name, sizeof(blk->name), "%s", cfg->name ? cfg->name : "blk");
	blk->fd = -1;
	blk->readonly = cfg->readonly;
	blk->direct = cfg->direct;
	blk->nr_queues = cfg->nr_queues ? cfg->nr_queues : 1;
	blk->queue_size = cfg->queue_size ? cfg->queue_size : BLK_QUEUE_SIZE_DEFAULT;
	blk->seg_max = cfg->seg_max;
	if (!blk->seg_max) {
		blk->seg_max = blk->queue_size > 2 ? blk->queue_size - 2 : 1;
		if (blk->seg_max > BLK_SEG_MAX_DEFAULT)
			blk->seg_max = BLK_SEG_MAX_DEFAULT;
	}
	blk->iov_cap = blk->seg_max + 2 + BLK_IOV_SLACK;
	blk->blk_size = cfg->blk_size ? cfg->blk_size : 512;
	blk->max_discard_sectors = BLK_DISCARD_SECTORS_MAX;
	blk->pool_threads = cfg->pool_threads ? cfg->pool_threads : BLK_POOL_THREADS_DEFAULT;
	if (cfg->serial)
		memcpy(blk->serial, cfg->serial, strnlen(cfg->serial, sizeof(blk->serial)));
	pthread_mutex_init(&blk->fault_lock, NULL);
	vn_ratelimit_init(&blk->rl, 10);
}

int vn_blk_new(const struct vn_blk_cfg *cfg, struct vn_blk **out)
{
	struct vn_blk *blk;
	int r = check_cfg(cfg);

	if (r < 0)
		return r;
	blk = calloc(1, sizeof(*blk));
	if (!blk)
		return -ENOMEM;
	set_params(blk, cfg);
	r = open_image(blk, cfg);
	if (r < 0)
		goto err;
	r = alloc_queues(blk);
	if (r < 0)
		goto err;
	r = new_vdev(blk, cfg);
	if (r < 0)
		goto err;
	fill_config(blk);
	r = vn_blk_backend_open(blk, cfg->backend);
	if (r < 0)
		goto err;
	r = start_iothreads(blk, cfg);
	if (r < 0)
		goto err;
	*out = blk;
	return 0;

err:
	vn_blk_free(blk);
	return r;
}

void vn_blk_free(struct vn_blk *blk)
{
	if (!blk)
		return;
	if (blk->vdev && blk->be_ops) {
		__atomic_store_n(&blk->resetting, 1, __ATOMIC_RELEASE);
		drain_queues(blk);
	}
	for (unsigned int q = 0; blk->queues && q < blk->nr_queues; q++)
		if (blk->queues[q].it)
			vn_iothread_run_sync_void(blk->queues[q].it, detach_fn, &blk->queues[q]);
	if (blk->own_it)
		vn_iothread_free(blk->it);
	vn_blk_backend_close(blk);
	vn_vdev_free(blk->vdev);
	free_queues(blk);
	if (blk->fd >= 0)
		close(blk->fd);
	vn_ratelimit_destroy(&blk->rl);
	pthread_mutex_destroy(&blk->fault_lock);
	free(blk);
}

struct vn_vdev *vn_blk_vdev(struct vn_blk *blk)
{
	return blk->vdev;
}

uint64_t vn_blk_capacity(const struct vn_blk *blk)
{
	return blk->size / 512;
}

const char *vn_blk_backend_name(const struct vn_blk *blk)
{
	return blk->be_ops ? blk->be_ops->name : "none";
}

int vn_blk_get_stats(const struct vn_blk *blk, unsigned int q, struct vn_blk_stats *out)
{
	const struct vn_blk_stats *s;

	if (q >= blk->nr_queues)
		return -EINVAL;
	s = &blk->queues[q].stats;
	out->requests = __atomic_load_n(&s->requests, __ATOMIC_RELAXED);
	out->bytes_read = __atomic_load_n(&s->bytes_read, __ATOMIC_RELAXED);
	out->bytes_written = __atomic_load_n(&s->bytes_written, __ATOMIC_RELAXED);
	out->errors = __atomic_load_n(&s->errors, __ATOMIC_RELAXED);
	out->in_flight = __atomic_load_n(&s->in_flight, __ATOMIC_RELAXED);
	out->flushes = __atomic_load_n(&s->flushes, __ATOMIC_RELAXED);
	out->held = __atomic_load_n(&s->held, __ATOMIC_RELAXED);
	return 0;
}

int vn_blk_inject_fault(struct vn_blk *blk, const struct vn_blk_fault *fault)
{
	if (fault->count && (fault->error >= 0 || fault->error < -4095))
		return -EINVAL;
	pthread_mutex_lock(&blk->fault_lock);
	blk->fault = *fault;
	__atomic_store_n(&blk->fault_active, fault->count || fault->delay_ns || fault->jitter_ns,
			 __ATOMIC_RELEASE);
	pthread_mutex_unlock(&blk->fault_lock);
	return 0;
}

unsigned int vn_blk_fault_pending(struct vn_blk *blk)
{
	unsigned int n;

	pthread_mutex_lock(&blk->fault_lock);
	n = blk->fault.count;
	pthread_mutex_unlock(&blk->fault_lock);
	return n;
}
