#!/usr/bin/env bash
# e2e: vnotifyd restarted while QEMU keeps running. QEMU's
# vhost-user chardev has reconnect=1; in the middle of the guest's workload
# vnotifyd is stopped with SIGTERM (it finishes the I/O in flight first) and
# a new vnotifyd starts on the same socket and image. QEMU reconnects, and
# the guest's I/O must carry on: the workload finishes, the sector-tagged
# pattern verifies in the guest and in the image. A stall fails the test.
#   test-qemu-reconnect.sh BUILD_ROOT
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
vnd=$build/tools/vnotifyd/vnotifyd
guest=$build/guest
if ! [ -x "$vnd" ]; then
	echo "SKIP: $vnd is not built"
	exit 77
fi
if ! "$top/scripts/bootstrap.sh" e2e >"$build/e2e-bootstrap.log" 2>&1; then
	echo "SKIP: e2e packages missing and bootstrap could not install them"
	exit 77
fi
rc=0
"$top/scripts/guest/build-guest.sh" "$guest" >/dev/null || rc=$?
[ $rc = 0 ] || { echo "SKIP: the guest could not be built (status $rc)"; exit 77; }

work=$build/e2e-reconnect
rm -rf "$work"
mkdir -p "$work"
img=$work/disk.img sock=$work/vhost.sock seed=4242 mb=32
truncate -s "${mb}M" "$img"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT

start_vnotifyd() { # $1: log suffix
	"$vnd" --blk "path=$img,socket=$sock,queues=2" >"$work/ready.$1" 2>"$work/vnotifyd.$1" &
	vpid=$!
	pids+=("$vpid")
	for _ in $(seq 100); do
		[ -s "$work/ready.$1" ] && return 0
		sleep 0.1
	done
	echo "not ok - vnotifyd ($1) printed no ready line"
	cat "$work/vnotifyd.$1"
	return 1
}

start_vnotifyd 1 || exit 1
echo "# vnotifyd 1: $(cat "$work/ready.1")"
"$top/scripts/guest/run-qemu.sh" --socket "$sock" --guest "$guest" --reconnect 1 \
	--timeout 300 --log "$work/console.log" \
	--append "vn.test=all vn.seed=$seed vn.mb=$mb" >"$work/run.log" 2>&1 &
qpid=$!
pids+=("$qpid")

# Restart vnotifyd once the guest has started its I/O (its first result).
for _ in $(seq 600); do
	grep -q '^VN-RESULT test=seq' "$work/console.log" 2>/dev/null && break
	kill -0 "$qpid" 2>/dev/null || break
	sleep 0.2
done
if ! grep -q '^VN-RESULT test=seq' "$work/console.log" 2>/dev/null; then
	echo "not ok - the guest never reached its I/O"
	tail -n 30 "$work/run.log"
	exit 1
fi
kill -TERM "$vpid"
wait "$vpid"
vrc=$?
echo "# vnotifyd 1 stopped mid-run with status $vrc"
[ $vrc = 0 ] || { echo "not ok - vnotifyd 1 did not exit 0 on SIGTERM"; rc=1; }
start_vnotifyd 2 || exit 1
echo "# vnotifyd 2: $(cat "$work/ready.2")"

wait "$qpid"
qrc=$?
grep -E '^(VN-RESULT|VN-VERDICT|VN-STALL)' "$work/run.log" | sed 's/^/# /'
if [ $qrc = 0 ]; then
	echo "ok - the guest's workload finished across the restart"
else
	echo "not ok - the guest's run ended with status $qrc (3 = stall)"
	tail -n 40 "$work/run.log" | sed 's/^/# /'
	rc=1
fi
if grep -q 'frontend connected' "$work/vnotifyd.2"; then
	echo "ok - QEMU reconnected to the new vnotifyd"
else
	echo "not ok - QEMU never connected to the new vnotifyd"
	rc=1
fi
kill -TERM "$vpid"
wait "$vpid"
if busybox awk -v s="$seed" -v n=$((mb * 2048)) -f "$top/scripts/guest/pattern.awk" | cmp - "$img" >/dev/null; then
	echo "ok - the image holds the guest's pattern"
else
	echo "not ok - the image does not hold the guest's pattern"
	rc=1
fi
exit $rc
