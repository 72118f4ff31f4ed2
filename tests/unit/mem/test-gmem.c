/* SPDX-License-Identifier: MIT */
/* Guest memory: translation, bounds, splitting, copies, index accessors, threads. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "mem/gmem.h"

static void test_add_overlap_and_remove(struct vn_t *t)
{
	struct vn_gmem m;
	int fds = vn_t_count_fds();

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	VN_CHECK_EQ_U(t, vn_gmem_generation(&m), 0);
	VN_CHECK_OK(t, vn_gmem_add_memfd(&m, 0x10000, 0x10000, NULL));
	VN_CHECK_OK(t, vn_gmem_add_memfd(&m, 0x0, 0x1000, NULL));
	VN_CHECK_EQ_INT(t, vn_gmem_add_memfd(&m, 0x1f000, 0x2000, NULL), -EEXIST);
	VN_CHECK_EQ_INT(t, vn_gmem_add_memfd(&m, 0x8000, 0x8001, NULL), -EEXIST);
	VN_CHECK_EQ_INT(t, vn_gmem_add_memfd(&m, 0x30000, 0, NULL), -EINVAL);
	VN_CHECK_EQ_INT(t, vn_gmem_add_memfd(&m, UINT64_MAX - 0xfff, 0x2000, NULL), -EINVAL);
	VN_CHECK_EQ_U(t, vn_gmem_nr_regions(&m), 2);
	VN_CHECK_EQ_U(t, vn_gmem_generation(&m), 2);
	VN_CHECK(t, vn_gmem_ptr(&m, 0x10000, 0x10000) != NULL);
	VN_CHECK_EQ_INT(t, vn_gmem_remove(&m, 0x10001), -ENOENT);
	VN_CHECK_OK(t, vn_gmem_remove(&m, 0x10000));
	VN_CHECK(t, vn_gmem_ptr(&m, 0x10000, 1) == NULL);
	VN_CHECK_EQ_U(t, vn_gmem_generation(&m), 3);
	vn_gmem_destroy(&m);
	vn_gmem_destroy(&m); /* twice is fine */
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds);
}

static void test_map_splits_and_bounds(struct vn_t *t)
{
	struct vn_gmem m;
	struct iovec iov[4];

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	/* three adjacent regions and a hole after them */
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0x1000, 0x1000, NULL));
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0x2000, 0x10, NULL));
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0x2010, 0x1000, NULL));
	VN_CHECK_EQ_INT(t, vn_gmem_map(&m, 0x1ff0, 0x30, iov, 4), 3);
	VN_CHECK_EQ_U(t, iov[0].iov_len, 0x10);
	VN_CHECK_EQ_U(t, iov[1].iov_len, 0x10);
	VN_CHECK_EQ_U(t, iov[2].iov_len, 0x10);
	VN_CHECK(t, iov[1].iov_base == vn_gmem_ptr(&m, 0x2000, 0x10));
	VN_CHECK_EQ_INT(t, vn_gmem_map(&m, 0x1ff0, 0x30, iov, 2), -E2BIG);
	VN_CHECK_EQ_INT(t, vn_gmem_map(&m, 0x1000, 0x2011, iov, 4), -EFAULT);  /* 1 byte into the hole */
	VN_CHECK_EQ_INT(t, vn_gmem_map(&m, 0xfff, 2, iov, 4), -EFAULT);        /* starts before */
	VN_CHECK_EQ_INT(t, vn_gmem_map(&m, UINT64_MAX, 2, iov, 4), -EFAULT);   /* wraps */
	VN_CHECK_EQ_INT(t, vn_gmem_map(&m, 0x1000, UINT64_MAX, iov, 4), -EFAULT);
	VN_CHECK_EQ_INT(t, vn_gmem_map(&m, 0xdead0000, 0, iov, 4), 0);         /* empty */
	VN_CHECK(t, vn_gmem_ptr(&m, 0x1ff0, 0x20) == NULL);                    /* crosses */
	VN_CHECK_EQ_INT(t, vn_gmem_check(&m, 0x1000, 0x2010), 0);
	VN_CHECK_EQ_INT(t, vn_gmem_check(&m, 0x1000, 0x2011), -EFAULT);
	vn_gmem_destroy(&m);
}

static void test_copy_across_regions(struct vn_t *t)
{
	struct vn_gmem m;
	uint8_t in[64], out[64], guard[8];

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	for (unsigned int i = 0; i < 8; i++)
		VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0x1000 + 8 * i, 8, NULL));
	for (unsigned int i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 1);
	VN_CHECK_OK(t, vn_gmem_write(&m, 0x1000, in, sizeof(in)));
	memset(out, 0, sizeof(out));
	VN_CHECK_OK(t, vn_gmem_read(&m, 0x1000, out, sizeof(out)));
	VN_CHECK(t, memcmp(in, out, sizeof(in)) == 0);
	/* a write that runs off the end fails without writing anything */
	memset(guard, 0xee, sizeof(guard));
	VN_CHECK_EQ_INT(t, vn_gmem_write(&m, 0x1038, guard, 9), -EFAULT);
	VN_CHECK_OK(t, vn_gmem_read(&m, 0x1038, out, 8));
	VN_CHECK(t, memcmp(out, in + 56, 8) == 0);
	VN_CHECK_EQ_INT(t, vn_gmem_read(&m, 0xfff, out, 2), -EFAULT);
	VN_CHECK_EQ_INT(t, vn_gmem_read(&m, UINT64_MAX - 1, out, 4), -EFAULT);
	vn_gmem_destroy(&m);
}

static void test_le16_accessors(struct vn_t *t)
{
	struct vn_gmem m;
	uint16_t v = 0;
	uint8_t raw[2];

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0x1000, 0x11, NULL));
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0x1011, 0x10, NULL));
	VN_CHECK_OK(t, vn_gmem_store_le16_release(&m, 0x1002, 0x1234));
	VN_CHECK_OK(t, vn_gmem_read(&m, 0x1002, raw, 2));
	VN_CHECK_EQ_U(t, raw[0], 0x34); /* little-endian in guest memory */
	VN_CHECK_EQ_U(t, raw[1], 0x12);
	VN_CHECK_OK(t, vn_gmem_load_le16_acquire(&m, 0x1002, &v));
	VN_CHECK_EQ_U(t, v, 0x1234);
	VN_CHECK_OK(t, vn_gmem_store_le16_seqcst(&m, 0x1004, 7));
	VN_CHECK_OK(t, vn_gmem_load_le16_seqcst(&m, 0x1004, &v));
	VN_CHECK_EQ_U(t, v, 7);
	VN_CHECK_EQ_INT(t, vn_gmem_load_le16_acquire(&m, 0x1003, &v), -EFAULT); /* unaligned */
	VN_CHECK_EQ_INT(t, vn_gmem_load_le16_acquire(&m, 0x1010, &v), -EFAULT); /* crosses */
	VN_CHECK_EQ_INT(t, vn_gmem_store_le16_release(&m, 0x2000, 1), -EFAULT); /* unmapped */
	vn_gmem_destroy(&m);
}

/* Two views of one memfd at different host addresses see the same bytes. */
static void test_adopt_fd_second_view(struct vn_t *t)
{
	struct vn_gmem a, b;
	int fd = -1, fds = vn_t_count_fds();
	uint32_t x = 0xabcdef01, y = 0;

	VN_REQUIRE_OK(t, vn_gmem_init(&a));
	VN_REQUIRE_OK(t, vn_gmem_init(&b));
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&a, 0x100000, 0x20000, &fd));
	/* the second half of the memfd, at another guest address as well */
	VN_CHECK_EQ_INT(t, vn_gmem_add_fd(&b, 0x5000000, 0x20000, fd, 0x10000), -EINVAL);
	VN_REQUIRE_OK(t, vn_gmem_add_fd(&b, 0x5000000, 0x10000, fd, 0x10000));
	VN_CHECK(t, vn_gmem_ptr(&a, 0x110000, 4) != vn_gmem_ptr(&b, 0x5000000, 4));
	VN_CHECK_OK(t, vn_gmem_write(&a, 0x110010, &x, 4));
	VN_CHECK_OK(t, vn_gmem_read(&b, 0x5000010, &y, 4));
	VN_CHECK_EQ_U(t, y, x);
	VN_CHECK_EQ_INT(t, vn_gmem_add_fd(&b, 0, 0x1000, -1, 0), -EBADF);
	vn_gmem_destroy(&b); /* closes fd: it took ownership */
	vn_gmem_destroy(&a);
	VN_CHECK_EQ_INT(t, vn_t_count_fds(), fds);
}

struct reader {
	struct vn_gmem *m;
	int stop;
	unsigned long hits;
	int bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint32_t v;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		/* region 0 never goes away; the others come and go */
		if (vn_gmem_read(r->m, 0x1000, &v, 4) != 0 || v != 0x5a5a5a5a)
			r->bad++;
		for (uint64_t g = 0x100000; g < 0x100000 + 16 * 0x1000; g += 0x1000)
			if (vn_gmem_check(r->m, g, 4) == 0)
				__atomic_fetch_add(&r->hits, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/*
 * Readers translate while a writer adds regions: snapshots keep the table
 * they read intact (TSan checks the publication).
 */
static void test_concurrent_readers_and_writer(struct vn_t *t)
{
	struct vn_gmem m;
	struct reader rd[2];
	pthread_t th[2];
	uint32_t v = 0x5a5a5a5a;

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0x1000, 0x1000, NULL));
	VN_REQUIRE_OK(t, vn_gmem_write(&m, 0x1000, &v, 4));
	for (int i = 0; i < 2; i++) {
		rd[i] = (struct reader){ .m = &m };
		pthread_create(&th[i], NULL, reader_main, &rd[i]);
	}
	for (int i = 0; i < 16; i++)
		VN_CHECK_OK(t, vn_gmem_add_memfd(&m, 0x100000 + 0x1000ull * i, 0x1000, NULL));
	VN_CHECK(t, VN_WAIT_FOR(__atomic_load_n(&rd[0].hits, __ATOMIC_RELAXED) > 0, 10000));
	for (int i = 0; i < 2; i++) {
		__atomic_store_n(&rd[i].stop, 1, __ATOMIC_RELEASE);
		pthread_join(th[i], NULL);
		VN_CHECK_EQ_INT(t, rd[i].bad, 0);
	}
	VN_CHECK_EQ_U(t, vn_gmem_nr_regions(&m), 17);
	vn_gmem_destroy(&m);
}

/* Replaced snapshots are freed by reclaim, and the current map still works. */
static void test_reclaim_retired_snapshots(struct vn_t *t)
{
	struct vn_gmem m;
	uint32_t v = 0x12345678, got = 0;

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0x10000, 0x1000, NULL));
	for (int i = 0; i < 50; i++) {
		VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0x100000, 0x1000, NULL));
		VN_REQUIRE_OK(t, vn_gmem_remove(&m, 0x100000));
	}
	/* the empty start, one add, then 50 adds and 50 removes: 101 replaced */
	VN_CHECK_EQ_U(t, vn_gmem_reclaim(&m), 101);
	VN_CHECK_EQ_U(t, vn_gmem_reclaim(&m), 0);
	VN_CHECK_OK(t, vn_gmem_write(&m, 0x10000, &v, sizeof(v)));
	VN_CHECK_OK(t, vn_gmem_read(&m, 0x10000, &got, sizeof(got)));
	VN_CHECK_EQ_U(t, got, v);
	vn_gmem_destroy(&m);
}

/*
 * A peer truncates an unsealed memfd under the map. The
 * access that would SIGBUS reads zeroes and the map says it faulted; a
 * sealed memfd (ours) cannot shrink; a SIGBUS outside guest memory still
 * kills, as it did before the handler.
 */
static void test_truncated_region_contained(struct vn_t *t)
{
	uint8_t buf[64] = {1}, zero[64] = {0};
	struct vn_gmem m;
	int fd, peer, status;
	pid_t pid;

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	fd = memfd_create("peer", MFD_CLOEXEC);
	VN_REQUIRE(t, fd >= 0 && ftruncate(fd, 0x4000) == 0);
	peer = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	VN_REQUIRE_OK(t, vn_gmem_add_fd(&m, 0x100000, 0x4000, fd, 0));
	VN_CHECK_OK(t, vn_gmem_write(&m, 0x102000, buf, sizeof(buf)));
	VN_CHECK(t, !vn_gmem_is_faulted(&m));
	VN_REQUIRE(t, ftruncate(peer, 0) == 0);
	VN_CHECK_OK(t, vn_gmem_read(&m, 0x102000, buf, sizeof(buf)));
	VN_CHECK(t, memcmp(buf, zero, sizeof(buf)) == 0);
	VN_CHECK(t, vn_gmem_is_faulted(&m));
	VN_CHECK_OK(t, vn_gmem_remove(&m, 0x100000));
	vn_gmem_clear_faulted(&m);
	close(peer);

	/* Our own memfds are sealed against shrinking. */
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0x0, 0x1000, &peer));
	VN_CHECK(t, ftruncate(peer, 0) < 0 && errno == EPERM);
	close(peer);

	/* Not guest memory: the SIGBUS is not swallowed. */
	pid = fork();
	VN_REQUIRE(t, pid >= 0);
	if (pid == 0) {
		int f = memfd_create("other", MFD_CLOEXEC);
		volatile uint8_t *p;

		if (f < 0 || ftruncate(f, 0x1000) < 0)
			_exit(2);
		p = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
		if (p == MAP_FAILED || ftruncate(f, 0) < 0)
			_exit(2);
		(void)p[0];
		_exit(0);
	}
	VN_REQUIRE(t, waitpid(pid, &status, 0) == pid);
	/*
	 * Killed by SIGBUS; under a sanitizer, its own handler (ours chains to
	 * it) reports and aborts or exits non-zero. Never the child's own exit
	 * (0 after the access, 2 for a failed setup).
	 */
	if (WIFSIGNALED(status))
		VN_CHECK(t, WTERMSIG(status) == SIGBUS || WTERMSIG(status) == SIGABRT);
	else
		VN_CHECK(t, WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
				    WEXITSTATUS(status) != 2);
	vn_gmem_destroy(&m);
}

/* ---- dirty log ---- */

/* The dirty pages of the region at @gpa, as a string of page offsets ("0 3 4"). */
static void dirty_str(struct vn_t *t, struct vn_gmem *m, uint64_t gpa, char *out, size_t cap)
{
	uint64_t bits[64];
	uint64_t n = vn_gmem_log_pages(m, gpa);
	long got;
	size_t at = 0;

	out[0] = 0;
	VN_REQUIRE(t, n > 0 && n <= 64 * 64);
	got = vn_gmem_log_get_clear(m, gpa, bits, 64 * 64);
	VN_REQUIRE(t, got >= 0);
	for (uint64_t i = 0; i < n; i++)
		if (bits[i / 64] & (1ull << (i % 64)))
			at += (size_t)snprintf(out + at, cap - at, "%s%llu", at ? " " : "",
					       (unsigned long long)i);
}

#define CHECK_DIRTY(t, m, gpa, want)                                                    \
	do {                                                                            \
		char got_[256];                                                         \
		dirty_str(t, m, gpa, got_, sizeof(got_));                               \
		if (strcmp(got_, want) != 0)                                            \
			vn_t_fail(t, __FILE__, __LINE__, "dirty pages \"%s\", want \"%s\"", \
				  got_, want);                                          \
	} while (0)

static void test_dirty_log(struct vn_t *t)
{
	struct vn_gmem m;
	uint8_t buf[0x3000] = { 1 };
	uint64_t bits[4];

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0x10000, 0x10000, NULL));
	/* a region that starts inside a page: bit 0 is the page holding its first byte */
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0x20800, 0x2000, NULL));
	VN_CHECK_EQ_U(t, vn_gmem_log_pages(&m, 0x10000), 16);
	VN_CHECK_EQ_U(t, vn_gmem_log_pages(&m, 0x20800), 3);
	VN_CHECK(t, !vn_gmem_log_is_enabled(&m));

	/* off: nothing is recorded */
	VN_CHECK_OK(t, vn_gmem_write(&m, 0x10000, buf, 16));
	VN_CHECK_OK(t, vn_gmem_store_le16_release(&m, 0x12000, 1));
	CHECK_DIRTY(t, &m, 0x10000, "");

	vn_gmem_log_enable(&m, true);
	VN_CHECK(t, vn_gmem_log_is_enabled(&m));
	VN_CHECK_OK(t, vn_gmem_write(&m, 0x10ff0, buf, 0x20));        /* pages 0, 1 */
	VN_CHECK_OK(t, vn_gmem_store_le16_seqcst(&m, 0x15ffe, 7));      /* page 5 */
	VN_CHECK_OK(t, vn_gmem_store_le16_relaxed(&m, 0x17000, 7));     /* page 7 */
	VN_CHECK_OK(t, vn_gmem_write(&m, 0x1f000, buf, 0x1000));       /* page 15, exactly */
	/* reads and failed writes record nothing */
	VN_CHECK_OK(t, vn_gmem_read(&m, 0x1a000, buf, 16));
	VN_CHECK_EQ_INT(t, vn_gmem_write(&m, 0x1fff0, buf, 0x20), -EFAULT);
	CHECK_DIRTY(t, &m, 0x10000, "0 1 5 7 15");
	CHECK_DIRTY(t, &m, 0x10000, "");        /* taken and cleared */
	/* a write across two regions marks both; mark() is the iovec path's hook */
	vn_gmem_log_mark(&m, 0x1fffe, 0x900);
	CHECK_DIRTY(t, &m, 0x10000, "15");
	CHECK_DIRTY(t, &m, 0x20800, "0");
	VN_CHECK_OK(t, vn_gmem_write(&m, 0x227ff, buf, 1));             /* its last byte */
	CHECK_DIRTY(t, &m, 0x20800, "2");

	VN_CHECK_EQ_INT(t, vn_gmem_log_get_clear(&m, 0x10001, bits, 256), -ENOENT);
	VN_CHECK_EQ_INT(t, vn_gmem_log_get_clear(&m, 0x10000, bits, 8), -ENOSPC);

	/* off again: nothing more; on again: what was left from before is gone */
	VN_CHECK_OK(t, vn_gmem_write(&m, 0x13000, buf, 1));
	vn_gmem_log_enable(&m, false);
	VN_CHECK_OK(t, vn_gmem_write(&m, 0x14000, buf, 1));
	VN_CHECK_OK(t, vn_gmem_store_le16_release(&m, 0x14000, 1));
	vn_gmem_log_enable(&m, true);
	CHECK_DIRTY(t, &m, 0x10000, "");
	vn_gmem_destroy(&m);
}

/* Does the mapping holding @p carry MADV_HUGEPAGE ("hg" in its smaps VmFlags)? */
static int has_hugepage_advice(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	int found = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			found = strstr(line, " hg") != NULL;
			break;
		}
	}
	fclose(f);
	return found;
}

/* Anonymous RAM: no fd, 2 MiB aligned, advised huge, and it reads and writes. */
static void test_anon_region(struct vn_t *t)
{
	struct vn_gmem m;
	uint8_t *p;
	uint32_t v = 0x12345678, back = 0;

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	VN_CHECK_EQ_INT(t, vn_gmem_add_anon(&m, 0, 4097), -EINVAL);
	VN_REQUIRE_OK(t, vn_gmem_add_anon(&m, 0, 8u << 20));
	VN_CHECK_EQ_INT(t, vn_gmem_add_anon(&m, 4u << 20, 4096), -EEXIST);
	p = vn_gmem_ptr(&m, 0, 8u << 20);
	VN_REQUIRE(t, p != NULL);
	VN_CHECK_EQ_U(t, (uintptr_t)p % VN_GMEM_HUGE_ALIGN, 0);
	VN_CHECK_EQ_INT(t, has_hugepage_advice(p), 1);
	VN_CHECK_EQ_INT(t, has_hugepage_advice(p + (8u << 20) - 1), 1);
	VN_CHECK_OK(t, vn_gmem_write(&m, (8u << 20) - 4, &v, 4));
	VN_CHECK_OK(t, vn_gmem_read(&m, (8u << 20) - 4, &back, 4));
	VN_CHECK_EQ_U(t, back, v);
	VN_CHECK_EQ_INT(t, vn_gmem_check(&m, (8u << 20) - 4, 5), -EFAULT);
	VN_CHECK_OK(t, vn_gmem_remove(&m, 0));
	vn_gmem_destroy(&m);
}

/* A memfd is advised too (effective where shmem THP allows advice). */
static void test_memfd_advised_huge(struct vn_t *t)
{
	struct vn_gmem m;

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	VN_REQUIRE_OK(t, vn_gmem_add_memfd(&m, 0, 4u << 20, NULL));
	VN_CHECK_EQ_INT(t, has_hugepage_advice(vn_gmem_ptr(&m, 0, 1)), 1);
	vn_gmem_destroy(&m);
}

static uint64_t free_huge_pages(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	unsigned long long n = 0;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "HugePages_Free: %llu", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

/*
 * hugetlbfs: a directory that is not a hugetlbfs mount is refused, and
 * with no free huge pages (this machine has none reserved) the region is
 * refused at creation with -ENOMEM, not a SIGBUS at the guest's first touch.
 */
static void test_hugetlb_refusals(struct vn_t *t)
{
	struct vn_gmem m;
	int fd = 7;

	VN_REQUIRE_OK(t, vn_gmem_init(&m));
	VN_CHECK_EQ_INT(t, vn_gmem_add_hugetlb(&m, 0, 4u << 20, "/tmp", NULL), -ENOTTY);
	VN_CHECK_EQ_INT(t, vn_gmem_add_hugetlb(&m, 0, 4u << 20, "/nonexistent-vn", NULL), -ENOENT);
	if (free_huge_pages() >= 2) {
		vn_t_skip(t, "the host has free huge pages: the refusal cannot be seen");
	} else {
		VN_CHECK_EQ_INT(t, vn_gmem_add_hugetlb(&m, 0, 4u << 20, NULL, &fd), -ENOMEM);
		VN_CHECK_EQ_INT(t, fd, -1);
		VN_CHECK_EQ_U(t, vn_gmem_nr_regions(&m), 0);
	}
	vn_gmem_destroy(&m);
}

VN_TESTS(VN_TEST(test_add_overlap_and_remove), VN_TEST(test_map_splits_and_bounds),
	 VN_TEST(test_copy_across_regions), VN_TEST(test_le16_accessors),
	 VN_TEST(test_adopt_fd_second_view), VN_TEST(test_concurrent_readers_and_writer),
	 VN_TEST(test_reclaim_retired_snapshots), VN_TEST(test_truncated_region_contained),
	 VN_TEST(test_dirty_log), VN_TEST(test_anon_region), VN_TEST(test_memfd_advised_huge),
	 VN_TEST(test_hugetlb_refusals))
