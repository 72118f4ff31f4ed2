#!/usr/bin/env bash
# e2e: a real Linux guest under QEMU (TCG) on qemu-storage-daemon's
# vhost-user-blk export, two queues. Proves the guest machinery that the
# vnotifyd test reuses: the guest boots, the virtio modules load, the
# workload (sequential and queue-depth-16 direct I/O, a sector-tagged
# pattern written, flushed, re-read and compared) runs to VN-DONE, QSD
# stops cleanly and the image holds the pattern. A stall fails the test
# (watchdog inside, timeout outside); it is never retried.
#   test-qemu-qsd.sh BUILD_ROOT
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
if ! "$top/scripts/bootstrap.sh" e2e >"$build/e2e-bootstrap.log" 2>&1; then
	echo "SKIP: e2e packages (QEMU, kernel, busybox-static) missing and bootstrap could not install them:"
	cat "$build/e2e-bootstrap.log"
	exit 77
fi
exec "$top/scripts/guest/e2e.sh" qsd --guest "$build/guest" --keep "$build/e2e-qsd" \
	-- --timeout 240
