#!/usr/bin/env bash
# e2e: a real Linux guest under QEMU (TCG) on vnotifyd's vhost-user-blk
# socket, two queues: vnotifyd --blk path=IMG,socket=SOCK,queues=2 on a
# fresh image; in the guest sequential and queue-depth-16 O_DIRECT I/O and
# a sector-tagged pattern written, flushed, re-read and compared; from the
# host the image must hold the pattern, and SIGTERM must stop vnotifyd with
# exit 0 and its socket removed. A stall fails the test (watchdog inside,
# timeout outside, evidence printed); it is never retried.
#   test-qemu-vnotifyd.sh BUILD_ROOT
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
vnd=$build/tools/vnotifyd/vnotifyd
if ! [ -x "$vnd" ]; then
	echo "SKIP: $vnd is not built yet"
	exit 77
fi
if ! "$top/scripts/bootstrap.sh" e2e >"$build/e2e-bootstrap.log" 2>&1; then
	echo "SKIP: e2e packages (QEMU, kernel, busybox-static) missing and bootstrap could not install them:"
	cat "$build/e2e-bootstrap.log"
	exit 77
fi
exec "$top/scripts/guest/e2e.sh" vnotifyd --vnotifyd "$vnd" --guest "$build/guest" \
	--keep "$build/e2e-vnotifyd" -- --timeout 240
