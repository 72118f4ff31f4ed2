// SPDX-License-Identifier: MIT
/*
 * vn-aio: queue-depth I/O for the e2e guest, Linux native AIO (what fio's
 * libaio engine uses) without libaio: io_setup/io_submit/io_getevents by
 * syscall, O_DIRECT, random aligned offsets. Built static on the host by
 * build-guest.sh; busybox has nothing that keeps N requests in flight from
 * one thread, and fio drags in ceph, gluster and rdma libraries.
 *
 *   vn-aio DEV randread|randwrite BS IODEPTH OPS [SPAN_BYTES]
 *
 * Keeps IODEPTH requests in flight: submits IODEPTH at once, then resubmits
 * every batch of completions in one io_submit. Prints one line:
 *   ops=N bytes=N ms=N iops=N mbps=N lat_max_us=N
 * Exit 0, or 1 with a message naming the failing call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#define MAX_DEPTH 256

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int die(const char *what)
{
	fprintf(stderr, "vn-aio: %s: %s\n", what, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	static struct iocb cbs[MAX_DEPTH];
	static uint64_t start[MAX_DEPTH];
	struct iocb *ptrs[MAX_DEPTH];
	struct io_event ev[MAX_DEPTH];
	aio_context_t ctx = 0;
	uint64_t span, seed = 0x9e3779b97f4a7c15ull, done = 0, issued = 0;
	uint64_t t0, lat_max = 0, ms;
	long bs, depth, ops;
	int fd, write, i, n;
	char *buf;

	if (argc < 6) {
		fprintf(stderr, "usage: vn-aio DEV randread|randwrite BS IODEPTH OPS [SPAN_BYTES]\n");
		return 2;
	}
	write = !strcmp(argv[2], "randwrite");
	bs = atol(argv[3]);
	depth = atol(argv[4]);
	ops = atol(argv[5]);
	if (bs < 512 || bs % 512 || depth < 1 || depth > MAX_DEPTH || ops < depth) {
		fprintf(stderr, "vn-aio: need BS a multiple of 512, 1 <= IODEPTH <= %d, OPS >= IODEPTH\n",
			MAX_DEPTH);
		return 2;
	}
	fd = open(argv[1], (write ? O_RDWR : O_RDONLY) | O_DIRECT);
	if (fd < 0)
		return die(argv[1]);
	if (argc > 6) {
		span = strtoull(argv[6], NULL, 0);
	} else if (ioctl(fd, BLKGETSIZE64, &span) < 0) {
		struct stat st;

		if (fstat(fd, &st) < 0)
			return die("fstat");
		span = (uint64_t)st.st_size;
	}
	if (span < (uint64_t)bs)
		return die("span smaller than BS");
	if (posix_memalign((void **)&buf, 4096, (size_t)bs * depth))
		return die("posix_memalign");
	memset(buf, 0x5a, (size_t)bs * depth);
	if (syscall(SYS_io_setup, depth, &ctx) < 0)
		return die("io_setup");

	t0 = now_us();
	for (i = 0; i < depth; i++) {
		memset(&cbs[i], 0, sizeof(cbs[i]));
		cbs[i].aio_fildes = fd;
		cbs[i].aio_lio_opcode = write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
		cbs[i].aio_buf = (uint64_t)(uintptr_t)(buf + (size_t)bs * i);
		cbs[i].aio_nbytes = bs;
		cbs[i].aio_data = i;
	}
	n = 0;
	for (i = 0; i < depth; i++) {
		cbs[i].aio_offset = (int64_t)(rnd(&seed) % (span / bs)) * bs;
		start[i] = now_us();
		ptrs[n++] = &cbs[i];
	}
	while (done < (uint64_t)ops) {
		if (n) {
			long r = syscall(SYS_io_submit, ctx, n, ptrs);

			if (r != n)
				return die("io_submit");
			issued += n;
			n = 0;
		}
		long got = syscall(SYS_io_getevents, ctx, 1, depth, ev, NULL);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			return die("io_getevents");
		}
		for (i = 0; i < got; i++) {
			unsigned int k = (unsigned int)ev[i].data;
			uint64_t lat = now_us() - start[k];

			if (ev[i].res != bs) {
				errno = ev[i].res < 0 ? (int)-ev[i].res : EIO;
				return die(write ? "write" : "read");
			}
			if (lat > lat_max)
				lat_max = lat;
			done++;
			if (issued + n < (uint64_t)ops) {
				cbs[k].aio_offset = (int64_t)(rnd(&seed) % (span / bs)) * bs;
				start[k] = now_us();
				ptrs[n++] = &cbs[k];
			}
		}
	}
	ms = (now_us() - t0) / 1000;
	if (!ms)
		ms = 1;
	printf("ops=%llu bytes=%llu ms=%llu iops=%llu mbps=%.1f lat_max_us=%llu\n",
	       (unsigned long long)done, (unsigned long long)done * bs, (unsigned long long)ms,
	       (unsigned long long)(done * 1000 / ms), (double)done * bs / ms / 1000,
	       (unsigned long long)lat_max);
	syscall(SYS_io_destroy, ctx);
	close(fd);
	return 0;
}
