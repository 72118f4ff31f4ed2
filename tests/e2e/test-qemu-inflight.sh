#!/usr/bin/env bash
# e2e: vnotifyd killed with SIGKILL while the guest writes, with many
# requests in flight that complete out of order; QEMU reconnects
# (reconnect=1) and keeps the inflight region
# (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) across the backends, and each new
# vnotifyd redoes what the killed one had taken and not finished.
#
# The guest zeroes its disk, writes a sector-tagged pattern with 32 streams
# of 4 KiB O_DIRECT writes and reads it back, once per pass. vnotifyd runs
# with test-delay-us (its completions held 0..20 ms at random, a slow disk
# that reorders): under TCG the guest is slower than the host's page cache,
# and without the delay 0-2 requests are in flight at any time, in order,
# which QEMU's own recovery (the ring resumed at the used index) survives.
# Each kill waits until vnotifyd's stats (SIGUSR1) show at least $min_inflight
# requests in flight or held, and at least one of the new vnotifyds must say
# it redid some (the stats are a few ms old when the kill lands).
#
# Two runs:
#   inflight=on   five kills, one per write pass: no guest I/O error, no
#                 stall, the pattern read back in every pass and found in
#                 the image at the end.
#   inflight=off  the control: the same kills with the feature masked
#                 (vnotifyd's inflight=off). It must fail (a stall, an I/O
#                 error or a wrong pattern) within its kills: a test that
#                 passes without the feature would prove nothing.
# A stall is seen from the host: the guest's pass unfinished while vnotifyd
# completes no request for $idle_s s (the guest waits for one nobody has).
#   test-qemu-inflight.sh BUILD_ROOT
#   VN_INFLIGHT_KILLS=N (5)  VN_INFLIGHT_RUNS="on off" (both; "off": the
#   control alone, to measure it)
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top/build}
vnd=$build/tools/vnotifyd/vnotifyd
guest=$build/guest
kills=${VN_INFLIGHT_KILLS:-5}
runs=${VN_INFLIGHT_RUNS:-on off}
delay_us=20000 min_inflight=8 idle_s=10 iodepth=32
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

root=$build/e2e-inflight
rm -rf "$root"
mkdir -p "$root"
seed=5151 mb=32
pids=() runners=()
# run-qemu.sh gets SIGTERM: its own cleanup kills its QEMU.
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	for p in "${runners[@]}"; do kill -TERM "$p" 2>/dev/null; done
}
trap cleanup EXIT

# start_vnotifyd SUFFIX: vnotifyd on $img and $sock, inflight=$inflight.
start_vnotifyd() {
	"$vnd" --blk "path=$img,socket=$sock,queues=2,inflight=$inflight,test-delay-us=$delay_us" \
		>"$work/ready.$1" 2>"$work/vnotifyd.$1" &
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

# connected SUFFIX: QEMU is connected to vnotifyd SUFFIX.
connected() {
	for _ in $(seq 300); do
		grep -q 'frontend connected' "$work/vnotifyd.$1" 2>/dev/null && return 0
		kill -0 "$qpid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# stats SUFFIX: "INFLIGHT REQUESTS" of vnotifyd SUFFIX (both queues; in
# flight counts the held completions: the guest has not seen them either).
stats() {
	local log=$work/vnotifyd.$1 n
	n=$(grep -c ' q1: ' "$log")
	kill -USR1 "$vpid" 2>/dev/null || return 1
	for _ in $(seq 50); do
		[ "$(grep -c ' q1: ' "$log")" -gt "$n" ] && break
		sleep 0.02
	done
	grep -E ' q[01]: ' "$log" | tail -n 2 | sed 's/.*requests=\([0-9]*\).*in_flight=\([0-9]*\) held=\([0-9]*\).*/\1 \2 \3/' |
		awk '{ r += $1; f += $2 + $3 } END { print f + 0, r + 0 }'
}

# finished I: the guest read pass I back correctly (or ended).
finished() {
	grep -qE "^VN-RESULT test=pass pass=$1 ok=1|^VN-DONE" "$work/console.log" 2>/dev/null
}

# watch_pass I SUFFIX: until pass I is finished. Return 1 on a stall: the
# pass unfinished while vnotifyd SUFFIX completed no request for $idle_s s.
watch_pass() {
	local last="" same=0 s
	while ! finished "$1"; do
		kill -0 "$qpid" 2>/dev/null || return 0
		s=$(stats "$2" | cut -d' ' -f2)
		if [ "$s" = "$last" ]; then
			same=$((same + 1))
			[ $same -ge $((idle_s * 2)) ] && return 1
		else
			same=0 last=$s
		fi
		sleep 0.5
	done
	return 0
}

# run NAME INFLIGHT: boot a guest, kill vnotifyd once in each write pass.
# Sets: mid (kills that came mid-write with >= $min_inflight in flight),
# stalled (the pass that stalled, or ""), qrc (run-qemu.sh's status).
run() {
	name=$1 inflight=$2
	work=$root/$name img=$root/$name/disk.img sock=$root/$name/vhost.sock
	mkdir -p "$work"
	truncate -s "${mb}M" "$img"
	mid=0 redone=0 stalled="" qrc=""
	start_vnotifyd 0 || return 1
	"$top/scripts/guest/run-qemu.sh" --socket "$sock" --guest "$guest" --reconnect 1 \
		--timeout 300 --mem 256 --log "$work/console.log" \
		--append "vn.test=passes vn.passes=$kills vn.seed=$seed vn.mb=$mb vn.iodepth=$iodepth vn.watchdog=240" \
		>"$work/run.log" 2>&1 &
	qpid=$!
	runners+=("$qpid")
	for i in $(seq "$kills"); do
		for _ in $(seq 1500); do
			grep -q "^VN-PHASE write pass=$i\b" "$work/console.log" 2>/dev/null && break
			kill -0 "$qpid" 2>/dev/null || break
			sleep 0.1
		done
		if ! grep -q "^VN-PHASE write pass=$i\b" "$work/console.log" 2>/dev/null; then
			echo "# $name: the guest never started writing pass $i"
			break
		fi
		# Kill when many requests are in flight, not at a fixed time.
		got=0
		for _ in $(seq 200); do
			read -r got _ < <(stats $((i - 1)))
			[ "${got:-0}" -ge $min_inflight ] && break
			grep -q "^VN-PHASE written pass=$i\b" "$work/console.log" && break
		done
		kill -9 "$vpid"
		wait "$vpid" 2>/dev/null
		if grep -q "^VN-PHASE written pass=$i\b" "$work/console.log"; then
			echo "# $name kill $i came after pass $i's writes ended"
		elif [ "${got:-0}" -ge $min_inflight ]; then
			mid=$((mid + 1))
		fi
		start_vnotifyd "$i" || return 1
		if ! connected "$i"; then
			echo "# $name: QEMU did not reconnect to vnotifyd $i"
			break
		fi
		if ! watch_pass "$i" "$i"; then
			stalled=$i
			echo "# $name kill $i: $got requests in flight; pass $i stalled: vnotifyd $i completed nothing for ${idle_s}s"
			grep -E '^VN-PHASE' "$work/console.log" | tail -n 2 | sed 's/^/#   /'
			kill -TERM "$qpid" 2>/dev/null
			break
		fi
		grep -q 'resubmitting' "$work/vnotifyd.$i" && redone=$((redone + 1))
		echo "# $name kill $i: $got requests in flight; vnotifyd $i: $(grep -h 'resubmitting' "$work/vnotifyd.$i" | sed 's/.*: vq/vq/' | tr '\n' ' ')"
		grep -q '^VN-DONE' "$work/console.log" && break
	done
	wait "$qpid"
	qrc=$?
	return 0
}

# guest_ok: the run's guest finished every pass without an error.
guest_ok() {
	[ "$qrc" = 0 ] && [ -z "$stalled" ] && grep -q '^VN-RESULT test=passes ok=1' "$work/run.log" &&
		! grep -qiE 'blk_update_request|I/O error|buffer i/o' "$work/console.log"
}

# check_on: the verdicts of the run with the inflight region.
check_on() {
if [ "$mid" = "$kills" ]; then
	echo "ok - vnotifyd killed with SIGKILL in each of the guest's $kills write passes, each time with >= $min_inflight requests in flight"
else
	echo "not ok - only $mid of $kills kills came mid-write with >= $min_inflight requests in flight"
	rc=1
fi
if [ "$redone" -ge 1 ]; then
	echo "ok - after $redone of $kills kills the new vnotifyd redid requests from the inflight region"
else
	echo "not ok - no vnotifyd redid a request: the kills found nothing in flight"
	rc=1
fi
grep -E '^(VN-RESULT|VN-VERDICT|VN-STALL|VN-DONE)' "$work/run.log" | sed 's/^/# /'
if guest_ok; then
	echo "ok - the guest wrote and read back its pattern $kills times with no error"
else
	echo "not ok - the guest's run failed (status $qrc, 3 = stall; stalled pass: ${stalled:-none})"
	grep -iE 'error|blk_update|I/O' "$work/console.log" | head -n 10 | sed 's/^/# /'
	tail -n 20 "$work/run.log" | sed 's/^/# /'
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
}

if [[ " $runs " == *" on "* ]]; then
	run on on || exit 1
	check_on
fi

if [[ " $runs " == *" off "* ]]; then
	run off off || exit 1
	kill -9 "$vpid" 2>/dev/null
	wait "$vpid" 2>/dev/null
	grep -E '^(VN-RESULT|VN-VERDICT|VN-DONE)' "$work/run.log" | sed 's/^/# off: /'
	if grep -q 'resubmitting' "$work"/vnotifyd.*; then
		echo "not ok - the control run redid requests: inflight=off did not mask the feature"
		rc=1
	elif guest_ok; then
		echo "not ok - the control run (inflight=off) survived $mid kills mid-write: this test cannot tell the inflight region from QEMU's own recovery"
		rc=1
	else
		echo "ok - without the inflight region (inflight=off) the guest fails: status $qrc, stalled pass ${stalled:-none}"
	fi
fi
exit $rc
