/* SPDX-License-Identifier: MIT */
/*
 * An embedder's program, built against the installed headers and library
 * through pkg-config (scripts/check-install.sh): proves the public API is
 * usable from outside the tree.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <vnotify/vnotify.h>

static int answer(void *opaque)
{
	return *(int *)opaque + 1;
}

static const struct vn_vdev_ops no_ops = { 0 };

/* An embedder that drives a device itself binds the memory it built. */
static int bind_to_device(struct vn_gmem *m)
{
	struct vn_vdev_cfg cfg = { .name = "consumer", .device_id = 42, .ops = &no_ops,
				   .nr_queues = 1, .queue_size_max = 8, .nr_vectors = 2 };
	struct vn_vdev *vdev;
	int r = vn_vdev_new(&cfg, &vdev);

	if (r < 0)
		return r;
	r = vn_vdev_bind_mem(vdev, m);
	/* one transport at a time */
	if (r == 0 && vn_vdev_bind_mem(vdev, m) != -EBUSY)
		r = -EIO;
	vn_vdev_unbind_mem(vdev);
	vn_vdev_free(vdev);
	return r;
}

/*
 * Guest memory built by an embedder: a memfd region, and a second view of
 * the same pages at another guest address through vn_gmem_add_fd(), as a
 * VMM that hands its RAM fd over would do.
 */
static int guest_memory(void)
{
	static const char msg[] = "through the second view";
	struct vn_gmem *m;
	char buf[sizeof(msg)] = { 0 };
	int fd = -1, r;

	r = vn_gmem_new(&m);
	if (r < 0)
		return r;
	r = vn_gmem_add_memfd(m, 0, 1 << 20, &fd);
	if (r == 0) {
		r = vn_gmem_add_fd(m, 1ull << 32, 1 << 20, fd, 0);
		if (r < 0)
			close(fd);
	}
	if (r == 0)
		r = vn_gmem_write(m, (1ull << 32) + 4096, msg, sizeof(msg));
	if (r == 0)
		r = vn_gmem_read(m, 4096, buf, sizeof(buf));
	if (r == 0 && (memcmp(buf, msg, sizeof(msg)) || vn_gmem_nr_regions(m) != 2))
		r = -EIO;
	/* past the end of the first region: refused, not a crash */
	if (r == 0 && vn_gmem_read(m, (1 << 20) - 1, buf, 2) != -EFAULT)
		r = -EIO;
	if (r == 0)
		r = bind_to_device(m);
	vn_gmem_free(m);
	return r;
}

int main(void)
{
	struct vn_iothread_cfg cfg = { .name = "consumer" };
	struct vn_iothread *it;
	int v = 41, r;

	r = vn_iothread_new(&cfg, &it);
	if (r < 0 || (r = vn_iothread_start(it)) < 0) {
		fprintf(stderr, "consumer: %s\n", vn_strerror(r));
		return 1;
	}
	r = vn_iothread_run_sync(it, answer, &v);
	vn_iothread_free(it);
	if (r != 42) {
		fprintf(stderr, "consumer: got %d, want 42\n", r);
		return 1;
	}
	r = guest_memory();
	if (r < 0) {
		fprintf(stderr, "consumer: guest memory: %s\n", vn_strerror(r));
		return 1;
	}
	printf("consumer: ok\n");
	return 0;
}
