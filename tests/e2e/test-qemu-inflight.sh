#!/usr/bin/env bash
# e2e: vnotifyd killed with SIGKILL five times while the guest writes.
# QEMU's vhost-user chardev has reconnect=1 and keeps the inflight region
# (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) across the backends; each new
# vnotifyd resubmits what the killed one had taken and not finished. The
# guest zeroes its disk, writes a sector-tagged pattern with dd (through the
# page cache: many requests in flight, finished out of order) and reads it
# back, five times, one kill in each write: an
# I/O error, a stall (the watchdog) or a lost or misplaced write fails it.
# Without the inflight region the requests in flight when vnotifyd dies
# are never completed (or completed twice) and the guest hangs or errors.
#   test-qemu-inflight.sh BUILD_ROOT
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
vnd=$build/tools/vnotifyd/vnotifyd
guest=$build/guest
kills=${VN_INFLIGHT_KILLS:-5}
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

work=$build/e2e-inflight
rm -rf "$work"
mkdir -p "$work"
img=$work/disk.img sock=$work/vhost.sock seed=5151 mb=32
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

# Wait until QEMU is connected to vnotifyd $1 and has started its rings.
connected() {
	for _ in $(seq 300); do
		grep -q 'frontend connected' "$work/vnotifyd.$1" 2>/dev/null && return 0
		kill -0 "$qpid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

start_vnotifyd 0 || exit 1
"$top/scripts/guest/run-qemu.sh" --socket "$sock" --guest "$guest" --reconnect 1 \
	--timeout 300 --mem 256 --log "$work/console.log" \
	--append "vn.test=passes vn.passes=$kills vn.seed=$seed vn.mb=$mb vn.watchdog=240" >"$work/run.log" 2>&1 &
qpid=$!
pids+=("$qpid")

# Pass i of the guest: zero the disk, write the pattern, compare. Kill i
# comes while pass i writes: after its VN-PHASE write line, before written.
mid=0
for i in $(seq "$kills"); do
	for _ in $(seq 1500); do
		grep -q "^VN-PHASE write pass=$i\b" "$work/console.log" 2>/dev/null && break
		kill -0 "$qpid" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q "^VN-PHASE write pass=$i\b" "$work/console.log" 2>/dev/null; then
		echo "not ok - the guest never started writing pass $i"
		rc=1
		break
	fi
	sleep 0.3
	kill -9 "$vpid"
	wait "$vpid" 2>/dev/null
	if grep -q "^VN-PHASE written pass=$i\b" "$work/console.log"; then
		echo "# kill $i came after pass $i's writes ended"
	else
		mid=$((mid + 1))
	fi
	start_vnotifyd "$i" || exit 1
	if ! connected "$i"; then
		echo "not ok - QEMU did not reconnect to vnotifyd $i"
		rc=1
		break
	fi
	echo "# kill $i: vnotifyd $i connected; $(grep -h 'resubmitting' "$work/vnotifyd.$i" | sed 's/.*: vq/vq/' | tr '\n' ' ')"
done
if [ "$mid" = "$kills" ]; then
	echo "ok - vnotifyd killed with SIGKILL in each of the guest's $kills write passes"
else
	echo "not ok - only $mid of $kills kills came while the guest was writing"
	rc=1
fi

wait "$qpid"
qrc=$?
grep -E '^(VN-RESULT|VN-PHASE|VN-VERDICT|VN-STALL|VN-DONE)' "$work/run.log" | sed 's/^/# /'
if [ $qrc = 0 ] && grep -q '^VN-RESULT test=passes ok=1' "$work/run.log"; then
	echo "ok - the guest wrote and read back its pattern with no error"
else
	echo "not ok - the guest's run ended with status $qrc (3 = stall)"
	grep -iE 'error|blk_update|I/O' "$work/console.log" | head -n 10 | sed 's/^/# /'
	tail -n 20 "$work/run.log" | sed 's/^/# /'
	rc=1
fi
if grep -qiE 'blk_update_request|I/O error|buffer i/o' "$work/console.log"; then
	echo "not ok - the guest logged I/O errors"
	rc=1
fi
kill -TERM "$vpid"
wait "$vpid"
if busybox awk -v s="$seed" -v n=$((mb * 2048)) -f "$top/scripts/guest/pattern.awk" | cmp - "$img" >/dev/null; then
	echo "ok - the image holds every acknowledged write of the pattern"
else
	echo "not ok - the image does not hold the guest's pattern"
	rc=1
fi
exit $rc
