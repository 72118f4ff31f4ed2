/* SPDX-License-Identifier: MIT */
/*
 * --blk: a virtio-blk disk on a vhost-user socket.
 *
 * Threads of one disk: the socket's iothread (the vhost-user protocol; it
 * also waits for a ring's requests in flight when the frontend stops it,
 * through the device's quiesce op, so it must not be a completion
 * iothread) and K queue iothreads (queue q on q mod K): each watches its
 * queues' kick eventfds and busy-polls their rings (poll-max-ns), pops and
 * submits, and reaps the completions and signals the call fd itself (the
 * device's completion iothreads are the same ones), so a request costs one
 * hand-off, the kick. The pool backend's workers are the only other
 * threads. The vhost-user server maps the frontend's memory and binds it
 * to the device itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vnotify/blk.h>
#include <vnotify/iothread.h>
#include <vnotify/log.h>
#include <vnotify/vhost-user.h>

#include "devices.h"

#define BLK_MAX_IOTHREADS 64

struct blk_dev {
	struct vnd_dev dev;
	const char *path; /* point into the options, which outlive the device */
	const char *sock;
	bool readonly;
	bool inflight; /* offer VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD */
	unsigned long delay_us; /* test-delay-us= */
	int fd; /* our own fd on the image: checks, the lock, the final flush */
	uint64_t size;
	unsigned int nr_queues;
	unsigned int nr_iothreads;
	uint64_t poll_max_ns;
	struct vn_blk *blk;
	struct vn_iothread *sock_it;
	struct vn_iothread *q_its[BLK_MAX_IOTHREADS];
	struct vn_vhu_conn *conn;
};

static const char *const backends[] = { "auto", "uring", "pool", NULL };

static const struct vnd_key blk_keys[] = {
	{ .name = "path",
	  .kind = VND_KEY_STR,
	  .metavar = "IMG",
	  .required = true,
	  .help = "the disk image: a regular file or block device" },
	{ .name = "socket",
	  .kind = VND_KEY_STR,
	  .metavar = "SOCK",
	  .required = true,
	  .unique = true,
	  .max = 107,
	  .help = "the vhost-user unix socket to listen on" },
	{ .name = "queues",
	  .kind = VND_KEY_UINT,
	  .metavar = "N",
	  .min = 1,
	  .max = 64,
	  .def = "1",
	  .help = "request queues; QEMU's num-queues may not be more" },
	{ .name = "iothreads",
	  .kind = VND_KEY_UINT,
	  .metavar = "K",
	  .min = 1,
	  .max = BLK_MAX_IOTHREADS,
	  .def = "1",
	  .help = "queue iothreads, K <= N; queue q runs on q mod K" },
	{ .name = "readonly",
	  .kind = VND_KEY_BOOL,
	  .metavar = "on|off",
	  .def = "off",
	  .help = "serve the disk read-only (VIRTIO_BLK_F_RO)" },
	{ .name = "direct",
	  .kind = VND_KEY_BOOL,
	  .metavar = "on|off",
	  .def = "off",
	  .help = "O_DIRECT: bypass the host page cache" },
	{ .name = "serial",
	  .kind = VND_KEY_STR,
	  .metavar = "ID",
	  .max = VN_BLK_SERIAL_LEN,
	  .help = "the disk's serial number (GET_ID), at most 20 bytes" },
	{ .name = "backend",
	  .kind = VND_KEY_ENUM,
	  .metavar = "B",
	  .choices = backends,
	  .def = "auto",
	  .help = "uring, pool (worker threads) or auto (uring, else pool)" },
	{ .name = "queue-size",
	  .kind = VND_KEY_UINT,
	  .metavar = "S",
	  .min = 4,
	  .max = 1024,
	  .def = "256",
	  .help = "largest ring a frontend may use, a power of 2" },
	{ .name = "poll-max-ns",
	  .kind = VND_KEY_UINT,
	  .metavar = "NS",
	  .max = 1000000000,
	  .def = "32768",
	  .help = "queue iothreads busy-poll their rings up to NS (adaptive); 0: never poll" },
	{ .name = "inflight",
	  .kind = VND_KEY_BOOL,
	  .metavar = "on|off",
	  .def = "on",
	  .help = "offer the inflight region, so requests in flight survive a kill -9 "
		  "(off: for frontends that mishandle it)" },
	{ .name = "test-delay-us",
	  .kind = VND_KEY_UINT,
	  .metavar = "US",
	  .min = 0,
	  .max = 1000000,
	  .def = "0",
	  .help = "test knob: hold each completion 0..US us at random (a slow disk "
		  "finishing out of order)" },
};

/* The default above is the loop's own, spelled out for --help. */
_Static_assert(VN_LOOP_POLL_MAX_NS_DEFAULT == 32768u, "poll-max-ns default");

static int blk_check(const struct vnd_dev_opts *o)
{
	unsigned long q = vnd_opt_uint(o, "queues", 1), k = vnd_opt_uint(o, "iothreads", 1);
	unsigned long qs = vnd_opt_uint(o, "queue-size", 256);

	if (k > q) {
		fprintf(stderr,
			"vnotifyd: %s: iothreads=%lu is more than queues=%lu; an iothread without "
			"a "
			"queue would idle: use iothreads=%lu at most\n",
			o->id, k, q, q);
		return -EINVAL;
	}
	if (qs & (qs - 1)) {
		fprintf(stderr,
			"vnotifyd: %s: queue-size=%lu is not a power of 2 (e.g. 128, 256)\n", o->id,
			qs);
		return -EINVAL;
	}
	return 0;
}

static struct blk_dev *to_blk(struct vnd_dev *d)
{
	return (struct blk_dev *)((char *)d - offsetof(struct blk_dev, dev));
}

/*
 * Take the image's lock, retrying for up to LOCK_WAIT_MS: a vnotifyd killed
 * with -9 a moment ago still holds it while the kernel tears down its
 * io_uring (the ring's file references go asynchronously, some 0.1 s), and
 * a restart must not be refused for that. Backoff from 5 ms, doubling,
 * at most 200 ms between tries.
 * Return: 0, or -errno of the last try.
 */
#define LOCK_WAIT_MS 2000

static int lock_image(int fd, struct flock *lk)
{
	unsigned int waited = 0, step = 5;

	for (;;) {
		struct timespec ts;

		if (fcntl(fd, F_OFD_SETLK, lk) == 0)
			return 0;
		if ((errno != EAGAIN && errno != EACCES) || waited >= LOCK_WAIT_MS)
			return -errno;
		ts = (struct timespec){.tv_sec = 0, .tv_nsec = (long)step * 1000000L};
		nanosleep(&ts, NULL);
		waited += step;
		step = step * 2 > 200 ? 200 : step * 2;
	}
}

/* Open the image ourselves first: the errors can then say what to do. */
static int open_image(struct blk_dev *b, bool direct)
{
	int fl = (b->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0);
	struct flock lk = { .l_type = b->readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET };
	const char *id = b->dev.id;
	struct stat st;
	int r;

	b->fd = open(b->path, fl);
	if (b->fd < 0) {
		r = -errno;
		fprintf(stderr, "vnotifyd: %s: cannot open %s: %s", id, b->path, VND_STRERROR(r));
		if (r == -ENOENT)
			fprintf(stderr, "; create it first (e.g. truncate -s 1G %s)\n", b->path);
		else if ((r == -EACCES || r == -EROFS || r == -EPERM) && !b->readonly)
			fprintf(stderr,
				"; give vnotifyd write access, or serve it with readonly=on\n");
		else if (r == -EACCES || r == -EPERM)
			fprintf(stderr, "; give vnotifyd read access to it\n");
		else if (r == -EISDIR)
			fprintf(stderr, "; path= must name a disk image\n");
		else if (r == -EINVAL && direct)
			fprintf(stderr, " (its file system refuses O_DIRECT); use direct=off\n");
		else
			fprintf(stderr, "\n");
		return r;
	}
	if (fstat(b->fd, &st) < 0) {
		r = -errno;
		fprintf(stderr, "vnotifyd: %s: cannot stat %s: %s\n", id, b->path, VND_STRERROR(r));
		return r;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		fprintf(stderr,
			"vnotifyd: %s: %s is not a regular file or a block device; path= must name "
			"a disk image\n",
			id, b->path);
		return -EINVAL;
	}
	/*
	 * Two writers on one image corrupt it. An open file description lock
	 * on the whole file keeps a second vnotifyd (or a QEMU block layer,
	 * which locks bytes of it) off while we serve it.
	 */
	r = lock_image(b->fd, &lk);
	if (r < 0) {
		if (r == -EAGAIN || r == -EACCES) {
			fprintf(stderr,
				"vnotifyd: %s: %s is in use by another process (it holds a lock on "
				"it, still after %u ms); stop that process, or serve a copy\n",
				id, b->path, LOCK_WAIT_MS);
			return -EBUSY;
		}
		/* file systems without locks: serve anyway */
		vn_log(VN_LOG_WARN, "vnotifyd", "%s: cannot lock %s: %s", id, b->path,
		       VND_STRERROR(r));
	}
	return 0;
}

static int start_threads(struct blk_dev *b)
{
	char name[VND_ID_LEN + 16];
	int r;

	snprintf(name, sizeof(name), "%s-vhu", b->dev.id);
	r = vn_iothread_new(&(struct vn_iothread_cfg){ .name = name }, &b->sock_it);
	if (r == 0)
		r = vn_iothread_start(b->sock_it);
	for (unsigned int i = 0; r == 0 && i < b->nr_iothreads; i++) {
		struct vn_iothread_cfg cfg = { .name = name, .poll_max_ns = b->poll_max_ns };

		snprintf(name, sizeof(name), "%s-io%u", b->dev.id, i);
		r = vn_iothread_new(&cfg, &b->q_its[i]);
		if (r == 0)
			r = vn_iothread_start(b->q_its[i]);
	}
	if (r < 0)
		fprintf(stderr, "vnotifyd: %s: cannot start an iothread: %s\n", b->dev.id,
			VND_STRERROR(r));
	return r;
}

static int new_device(struct blk_dev *b, const struct vnd_dev_opts *o)
{
	struct vn_blk_cfg cfg = {
		.name = b->dev.id,
		.fd = b->fd,
		.readonly = b->readonly,
		.direct = vnd_opt_bool(o, "direct", false),
		.nr_queues = b->nr_queues,
		.queue_size = (unsigned int)vnd_opt_uint(o, "queue-size", 256),
		.serial = vnd_opt_str(o, "serial", NULL),
		.backend = (enum vn_blk_backend)vnd_opt_enum(o, "backend", 0),
		/* each queue's iothread reaps and signals what it submitted */
		.queue_iothreads = b->q_its,
		.nr_queue_iothreads = b->nr_iothreads,
		/* what Linux uses and QEMU's vhost-user-blk passes through */
		.discard = true,
		.write_zeroes = true,
	};
	int r;

	r = vn_blk_new(&cfg, &b->blk);
	if (r == 0 && b->delay_us) {
		/* The fault hook's delay, jittered: many requests in flight, out of order. */
		struct vn_blk_fault f = { .jitter_ns = b->delay_us * 1000 };

		r = vn_blk_inject_fault(b->blk, &f);
		if (r < 0) {
			vn_blk_free(b->blk);
			b->blk = NULL;
		}
	}
	if (r < 0) {
		fprintf(stderr, "vnotifyd: %s: cannot create the virtio-blk device on %s: %s",
			b->dev.id, b->path, VND_STRERROR(r));
		if (cfg.backend == VN_BLK_BACKEND_URING)
			fprintf(stderr, "; io_uring may be unavailable here: use backend=auto or "
					"backend=pool\n");
		else
			fprintf(stderr, "\n");
	}
	return r;
}

static int listen_socket(struct blk_dev *b)
{
	struct vn_vhu_conn_cfg cfg = {
		.name = b->dev.id,
		.socket_path = b->sock,
		.vdev = vn_blk_vdev(b->blk),
		.iothread = b->sock_it,
		.queue_iothreads = b->q_its,
		.nr_queue_iothreads = b->nr_iothreads,
		.no_inflight = !b->inflight,
	};
	int r = vn_vhu_conn_new(&cfg, &b->conn);

	if (r == 0)
		return 0;
	fprintf(stderr, "vnotifyd: %s: cannot listen on %s: %s", b->dev.id, b->sock,
		VND_STRERROR(r));
	if (r == -ENOENT)
		fprintf(stderr, "; does its directory exist?\n");
	else if (r == -EACCES)
		fprintf(stderr, "; choose a directory vnotifyd may write to\n");
	else if (r == -EADDRINUSE)
		fprintf(stderr, "; something that is not a socket is there: remove it\n");
	else
		fprintf(stderr, "\n");
	return r;
}

static int blk_destroy(struct vnd_dev *d);

static int blk_create(const struct vnd_dev_opts *o, struct vnd_dev **out)
{
	struct blk_dev *b = calloc(1, sizeof(*b));
	bool direct = vnd_opt_bool(o, "direct", false);
	struct stat st;
	int r;

	if (!b)
		return -ENOMEM;
	b->dev.type = &vn_blk_type;
	memcpy(b->dev.id, o->id, sizeof(b->dev.id));
	b->fd = -1;
	b->path = vnd_opt_str(o, "path", NULL);
	b->sock = vnd_opt_str(o, "socket", NULL);
	b->readonly = vnd_opt_bool(o, "readonly", false);
	b->inflight = vnd_opt_bool(o, "inflight", true);
	b->delay_us = vnd_opt_uint(o, "test-delay-us", 0);
	b->nr_queues = (unsigned int)vnd_opt_uint(o, "queues", 1);
	b->nr_iothreads = (unsigned int)vnd_opt_uint(o, "iothreads", 1);
	b->poll_max_ns = vnd_opt_uint(o, "poll-max-ns", VN_LOOP_POLL_MAX_NS_DEFAULT);

	r = vnd_socket_check(b->dev.id, b->sock);
	if (r == 0)
		r = open_image(b, direct);
	/* the queue iothreads first: the device completes on them */
	if (r == 0)
		r = start_threads(b);
	if (r == 0)
		r = new_device(b, o);
	if (r < 0)
		goto err;
	b->size = vn_blk_capacity(b->blk) * 512;
	if (b->size == 0) {
		fprintf(stderr,
			"vnotifyd: %s: %s is smaller than one 512-byte sector; give it a size "
			"(e.g. truncate -s 1G %s)\n",
			b->dev.id, b->path, b->path);
		r = -EINVAL;
		goto err;
	}
	if (fstat(b->fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size != b->size)
		vn_log(VN_LOG_WARN, "vnotifyd",
		       "%s: %s: the last %llu bytes (less than a sector) "
		       "are not part of the disk",
		       b->dev.id, b->path, (unsigned long long)((uint64_t)st.st_size - b->size));
	r = listen_socket(b);
	if (r < 0)
		goto err;
	*out = &b->dev;
	return 0;

err:
	(void)blk_destroy(&b->dev);
	return r;
}

static void blk_ready(struct vnd_dev *d, FILE *f)
{
	struct blk_dev *b = to_blk(d);

	fprintf(f,
		"vnotifyd: %s ready: socket=%s image=%s size=%llu queues=%u iothreads=%u "
		"backend=%s%s%s",
		d->id, b->sock, b->path, (unsigned long long)b->size, b->nr_queues, b->nr_iothreads,
		vn_blk_backend_name(b->blk), b->readonly ? " readonly" : "",
		b->inflight ? "" : " inflight=off");
	if (b->delay_us)
		fprintf(f, " test-delay-us=%lu", b->delay_us);
	fprintf(f, "\n");
}

static void blk_stats(struct vnd_dev *d, FILE *f)
{
	struct blk_dev *b = to_blk(d);

	fprintf(f, "vnotifyd: %s disk: image=%s size=%llu backend=%s%s\n", d->id, b->path,
		(unsigned long long)b->size, vn_blk_backend_name(b->blk),
		b->readonly ? " readonly" : "");
	vnd_stats_vhu(f, d->id, b->conn);
	for (unsigned int q = 0; q < b->nr_queues; q++) {
		struct vn_vhu_queue_stats qs = { 0 };
		struct vn_blk_stats bs = { 0 };

		if (vn_vhu_conn_get_queue_stats(b->conn, q, &qs) < 0 ||
		    vn_blk_get_stats(b->blk, q, &bs) < 0)
			continue;
		fprintf(f,
			"vnotifyd: %s q%u: notifier=%s enabled=%s call=%s iothread=%s kicks=%llu "
			"runs=%llu polls=%llu ring_polls=%llu requests=%llu bytes_read=%llu bytes_written=%llu "
			"flushes=%llu errors=%llu in_flight=%llu held=%llu\n",
			d->id, q, vnd_stats_notifier(b->conn, q), qs.enabled ? "yes" : "no",
			qs.call_fd ? "yes" : "no", vn_iothread_name(b->q_its[q % b->nr_iothreads]),
			(unsigned long long)qs.kicks, (unsigned long long)qs.runs,
			(unsigned long long)qs.polls, (unsigned long long)qs.ring_polls,
			(unsigned long long)bs.requests,
			(unsigned long long)bs.bytes_read, (unsigned long long)bs.bytes_written,
			(unsigned long long)bs.flushes, (unsigned long long)bs.errors,
			(unsigned long long)bs.in_flight, (unsigned long long)bs.held);
	}
}

/*
 * Stop: the requests in flight complete to the guest (drain), the frontend
 * is dropped and the socket removed (the server resets the device, which
 * waits for anything that raced in), the image is flushed, then it all
 * goes. Safe on a half-created device.
 */
static int blk_destroy(struct vnd_dev *d)
{
	struct blk_dev *b = to_blk(d);
	int r = 0;

	if (b->conn)
		vn_blk_drain(b->blk);
	vn_vhu_conn_free(b->conn);
	b->conn = NULL;
	if (b->blk && !b->readonly && fdatasync(b->fd) < 0) {
		r = -errno;
		vn_log(VN_LOG_ERR, "vnotifyd",
		       "%s: flushing %s failed: %s; the image may miss "
		       "the last writes",
		       d->id, b->path, VND_STRERROR(r));
	}
	vn_blk_free(b->blk);
	for (unsigned int i = 0; i < BLK_MAX_IOTHREADS; i++)
		vn_iothread_free(b->q_its[i]);
	vn_iothread_free(b->sock_it);
	if (b->fd >= 0)
		close(b->fd);
	free(b);
	return r;
}

const struct vn_device_type vn_blk_type = {
	.name = "blk",
	.summary = "a virtio-blk disk on a vhost-user socket (QEMU: vhost-user-blk-pci)",
	.keys = blk_keys,
	.nr_keys = sizeof(blk_keys) / sizeof(blk_keys[0]),
	.check = blk_check,
	.create = blk_create,
	.ready = blk_ready,
	.stats = blk_stats,
	.destroy = blk_destroy,
};
