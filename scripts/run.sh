#!/usr/bin/env bash
# The main job (README's first command): vnotifyd serves a disk to a real
# Linux guest under QEMU.
#
#   1. installs what is missing (scripts/bootstrap.sh build e2e) and builds;
#   2. starts vnotifyd on a freshly generated image (two queues);
#   3. boots a tiny Debian guest (its kernel, busybox, the virtio modules)
#      in QEMU with vhost-user-blk-pci on vnotifyd's socket; inside, the
#      guest writes a pattern across the disk, syncs, drops its caches,
#      reads it back and verifies it, then runs a short throughput test and
#      powers off (a watchdog inside, a timeout outside);
#   4. asks vnotifyd for its per-queue stats (SIGUSR1), stops it with
#      SIGTERM (it must exit 0 and remove its socket), and checks from the
#      host that the image holds the pattern.
#
# Options go to scripts/guest/e2e.sh (--mb N, --test all|pattern|throughput,
# --keep DIR ...). Exit status 0 only if every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh build e2e
if [ ! -f build/build.ninja ]; then
	meson setup build --buildtype=debugoptimized >/dev/null
fi
ninja -C build >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
scripts/guest/e2e.sh vnotifyd --mb 64 "$@" | tee "$out"
rc=${PIPESTATUS[0]}
set -e

echo
echo "=== vnotify main job: summary"
grep -E '^VN-RESULT' "$out" | sed 's/^VN-RESULT /guest: /' || true
grep -E '^VN-HOST (vnotifyd: .*(queue|q[0-9]|kicks|requests)|pattern|backend=)' "$out" |
	sed 's/^VN-HOST /host: /' || true
grep -E '^VN-E2E' "$out" | sed 's/^VN-E2E /verdict: /' || true
exit "$rc"
