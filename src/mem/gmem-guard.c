/* SPDX-License-Identifier: MIT */
#include "mem/gmem-guard.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

/* Enough for several vhost-user frontends with 509 regions each. */
#define GUARD_SLOTS 2048

/*
 * Read by the signal handler without a lock, so every field is an atomic:
 * a writer clears start first (the slot is then invisible), changes the
 * rest, and publishes start last with a release store.
 */
struct guard_slot {
	uintptr_t start; /* 0: free */
	size_t len;
	int *faulted;
};

static struct guard_slot slots[GUARD_SLOTS];
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static bool installed;
static struct sigaction previous;

/* Async-signal-safe: atomics, mmap and sigaction only. */
static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;

	for (unsigned int i = 0; i < GUARD_SLOTS; i++) {
		uintptr_t start = __atomic_load_n(&slots[i].start, __ATOMIC_ACQUIRE);
		size_t len = __atomic_load_n(&slots[i].len, __ATOMIC_RELAXED);
		int *flag = __atomic_load_n(&slots[i].faulted, __ATOMIC_RELAXED);

		if (!start || a - start >= len)
			continue;
		/* The whole mapping: one truncated page means the peer is gone. */
		if (mmap((void *)start, len, PROT_READ | PROT_WRITE,
			 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
			break;
		__atomic_store_n(flag, 1, __ATOMIC_RELEASE);
		return; /* the access is retried and reads zeroes */
	}
	/* Not ours: what the process had before us. */
	if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
		previous.sa_sigaction(sig, si, uc);
		return;
	}
	if (!(previous.sa_flags & SA_SIGINFO) && previous.sa_handler != SIG_DFL &&
	    previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
		return;
	}
	/* Default action: returning re-runs the access, which faults again and kills. */
	signal(SIGBUS, SIG_DFL);
}

static int install_locked(void)
{
	struct sigaction sa;

	if (installed)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &previous) < 0)
		return -errno;
	installed = true;
	return 0;
}

int vn_gmem_guard_add(void *base, size_t len, int *faulted)
{
	int r;

	pthread_mutex_lock(&guard_lock);
	r = install_locked();
	if (r < 0)
		goto out;
	r = -ENOSPC;
	for (int i = 0; i < GUARD_SLOTS; i++) {
		if (__atomic_load_n(&slots[i].start, __ATOMIC_RELAXED))
			continue;
		__atomic_store_n(&slots[i].len, len, __ATOMIC_RELAXED);
		__atomic_store_n(&slots[i].faulted, faulted, __ATOMIC_RELAXED);
		/* Pairs with the acquire load in on_sigbus(). */
		__atomic_store_n(&slots[i].start, (uintptr_t)base, __ATOMIC_RELEASE);
		r = i;
		break;
	}
out:
	pthread_mutex_unlock(&guard_lock);
	return r;
}

static int orphan_flag;

void vn_gmem_guard_orphan(int slot)
{
	if (slot < 0 || slot >= GUARD_SLOTS)
		return;
	__atomic_store_n(&slots[slot].faulted, &orphan_flag, __ATOMIC_RELAXED);
}

void vn_gmem_guard_remove(int slot)
{
	if (slot < 0 || slot >= GUARD_SLOTS)
		return;
	pthread_mutex_lock(&guard_lock);
	__atomic_store_n(&slots[slot].start, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&guard_lock);
}
