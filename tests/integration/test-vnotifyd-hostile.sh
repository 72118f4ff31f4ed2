#!/bin/bash
# SPDX-License-Identifier: MIT
# vnotifyd against hostile frontends, no QEMU. For each case vhu-hostile
# plays (a malformed request followed by the message that must not wait
# for it, a call or error fd that would block, guest memory truncated
# under the daemon, seg_max on a small ring, refused headers, a hang-up
# mid-message, fds on every request, bad memory tables, kicks before the
# ring address), four things must hold afterwards:
#   - the daemon is still running;
#   - a correct frontend (vhu-probe io: handshake, a write then a read of
#     a known pattern, checked against the image) is served within 20 s,
#     less than the 30 s drain timeout a stalled request would cost;
#   - the daemon's fd count (/proc/PID/fd) is back at its baseline;
#   - the image outside the first 128 KiB (where the cases and the probe
#     write) is byte for byte the random content it started with.
# TAP output.
#
#   test-vnotifyd-hostile.sh VNOTIFYD VHU_PROBE VHU_HOSTILE
set -u
vnd=$1 probe=$2 hostile=$3
dir=$(mktemp -d /tmp/test-vnotifyd-hostile.XXXXXX)
img=$dir/disk.img sock=$dir/vblk.sock
zone=131072 # bytes the cases may write; vhu-hostile's HOSTILE_ZONE
vpid=""
n=0 failed=0

cleanup() {
	[ -n "$vpid" ] && kill -9 "$vpid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

ok() { n=$((n + 1)); echo "ok $n - $1"; }
bad() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	for f in "$@"; do [ -f "$f" ] && tail -n 30 "$f" | sed 's/^/# /'; done
}
wait_for() {
	for _ in $(seq "${3:-50}"); do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
fds() { ls "/proc/$vpid/fd" 2>/dev/null | wc -l; }
fd_list() { ls -l "/proc/$vpid/fd" 2>/dev/null | awk 'NR > 1 { print $(NF-2), $NF }'; }
# the fd count back at the baseline, within 5 s (the daemon closes a
# connection's fds on its own thread, after the peer has gone)
fds_back() {
	for _ in $(seq 50); do
		[ "$(fds)" = "$base" ] && return 0
		sleep 0.1
	done
	return 1
}

head -c 8M /dev/urandom >"$img"
cp "$img" "$dir/saved.img"
"$vnd" --blk "path=$img,socket=$sock" >"$dir/vnd.out" 2>"$dir/vnd.err" &
vpid=$!
if ! wait_for "$dir/vnd.out" ready; then
	bad "vnotifyd not ready within 5 s" "$dir/vnd.err"
	echo "1..$n"
	exit 1
fi
# the baseline after one correct frontend: what a connection allocates
# once for good (the io backend) is counted in it
if timeout 20 "$probe" io "$sock" "$img" 1 </dev/null >"$dir/p.out" 2>&1; then
	ok "a correct frontend before any hostile one"
else
	bad "a correct frontend before any hostile one" "$dir/p.out" "$dir/vnd.err"
fi
sleep 0.5
base=$(fds)
fd_list >"$dir/base.fds"
ok "baseline: $base fds"

# expected log line (ERE) of the cases whose refusal must say why
declare -A says=(
	[hdr-big]="SET_FEATURES \(request 2\): payload size 5000 > 4096"
	[hdr-version]="GET_FEATURES \(request 1\): version 2 in flags 0x2, want 1"
	[hdr-reply]="SET_OWNER \(request 3\): REPLY flag set in flags 0x5"
	[hdr-fds]="more than 8 fds \(fd count\)"
	[hdr-fd-unwanted]="SET_OWNER \(request 3, size 0, flags 0x1\) refused: fd count 1, want 0\.\.0"
	[truncate]="truncated its guest memory"
	[mem-no-regions]="SET_MEM_TABLE \(request 5, size 40, flags 0x9\) refused: nregions 0 \(with 1 fds\), want 1\.\.8"
	# the second reason, after a burst of the first past the rate limit
	[mem-burst]="SET_MEM_TABLE \(request 5, size 72, flags 0x9\) refused: fd count 1, want 2 \(one per region\)"
)

for c in $("$hostile" list) ${VN_HOSTILE_EXTRA:-}; do
	: >"$dir/vnd.err.mark"
	lines=$(wc -l <"$dir/vnd.err")
	if timeout 30 "$hostile" "$c" "$sock" >"$dir/h.out" 2>&1; then
		why=""
	else
		why="the hostile frontend's own check failed (exit $?)"
	fi
	if [ -n "${says[$c]:-}" ] &&
		! { sleep 0.2; tail -n +$((lines + 1)) "$dir/vnd.err" | grep -Eq -- "${says[$c]}"; }; then
		why="${why:+$why; }no log line /${says[$c]}/"
	fi
	if ! kill -0 "$vpid" 2>/dev/null; then
		bad "$c: vnotifyd died" "$dir/h.out" "$dir/vnd.err"
		break
	fi
	if ! timeout 20 "$probe" io "$sock" "$img" 1 </dev/null >"$dir/p.out" 2>&1; then
		why="${why:+$why; }the next correct frontend was not served"
	fi
	if ! fds_back; then
		fd_list >"$dir/now.fds"
		diff "$dir/base.fds" "$dir/now.fds" >"$dir/fds.diff"
		why="${why:+$why; }$(fds) fds, baseline $base"
		# report each case that leaks, not every one after it
		base=$(fds)
		fd_list >"$dir/base.fds"
	fi
	if ! cmp -s -i "$zone" "$img" "$dir/saved.img"; then
		why="${why:+$why; }the image changed outside the first $zone bytes"
		cp "$img" "$dir/saved.img" # report each case that writes, not all after
	fi
	if [ -z "$why" ]; then
		ok "$c: daemon up, next frontend served, fds at $base, image intact"
	else
		bad "$c: $why" "$dir/h.out" "$dir/p.out" "$dir/fds.diff" "$dir/vnd.err"
	fi
	rm -f "$dir/fds.diff"
done

kill -TERM "$vpid"
for _ in $(seq 50); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$vpid" 2>/dev/null; then
	bad "vnotifyd still running 5 s after SIGTERM" "$dir/vnd.err"
else
	wait "$vpid"
	rc=$?
	[ $rc = 0 ] && ok "SIGTERM after every hostile frontend: exit 0" ||
		bad "SIGTERM: exit $rc" "$dir/vnd.err"
fi
vpid=""
echo "1..$n"
[ $failed = 0 ]
