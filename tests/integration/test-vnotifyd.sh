#!/bin/bash
# SPDX-License-Identifier: MIT
# vnotifyd from the outside, no QEMU: its command line (--help, every
# refusal names the problem), the ready line, a stale socket from a crashed
# vnotifyd replaced, a live one refused, a vhost-user frontend (vhu-probe)
# doing the handshake and I/O through the daemon, a frontend sending
# garbage dropped while the daemon keeps serving, SIGUSR1 stats, and
# SIGTERM/SIGINT: exit 0, socket removed. TAP output.
#
#   test-vnotifyd.sh VNOTIFYD VHU_PROBE
set -u
vnd=$1 probe=$2
dir=$(mktemp -d /tmp/test-vnotifyd.XXXXXX)
chmod 755 "$dir"
img=$dir/disk.img sock=$dir/vblk.sock
truncate -s 8M "$img"
pids=()
as=()   # a command prefix for refused(): run vnotifyd as another user
live="" # refused(): a daemon serves $sock, leave it alone
n=0 failed=0

cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$dir"
}
trap cleanup EXIT
# a write to the probe's fifo after it died must fail, not kill the test
trap '' PIPE

ok() { n=$((n + 1)); echo "ok $n - $1"; }
bad() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	for f in "$@"; do [ -f "$f" ] && sed 's/^/# /' "$f"; done
}
# wait_for FILE REGEX [TENTHS]: until FILE has a line matching REGEX
wait_for() {
	for _ in $(seq "${3:-50}"); do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
# exited PID [TENTHS]: wait for PID to end; its status in $rc
exited() {
	for _ in $(seq "${2:-50}"); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$1" 2>/dev/null && return 1
	wait "$1"
	rc=$?
	return 0
}

# --- the command line ------------------------------------------------------
out=$dir/help.txt
if "$vnd" --help >"$out" 2>&1; then
	missing=""
	for w in --blk --log-level --trace --help --version path= socket= queues= iothreads= \
		readonly= direct= serial= backend= queue-size= SIGTERM SIGUSR1 \
		"-chardev socket,id=c0,path=" "vhost-user-blk-pci,chardev=c0,num-queues=2" \
		"memory-backend-memfd,id=mem,size=" "share=on" "-numa node,memdev=mem"; do
		grep -qF -- "$w" "$out" || missing="$missing $w"
	done
	[ -z "$missing" ] && ok "--help exits 0 and mentions every option" ||
		bad "--help does not mention:$missing" "$out"
else
	bad "--help exits non-zero" "$out"
fi
"$vnd" --version >"$out" 2>&1 && grep -q '^vnotifyd (vnotify) [0-9]' "$out" &&
	ok "--version" || bad "--version" "$out"

# refused CASE REGEX ARGS...: exits non-zero, stderr matches REGEX, no socket
refused() {
	local what=$1 re=$2
	shift 2
	[ -n "$live" ] || rm -f "$sock"
	timeout 5 "${as[@]}" "$vnd" "$@" >"$dir/r.out" 2>"$dir/r.err"
	local rc=$?
	if [ $rc = 0 ] || [ $rc = 124 ]; then
		bad "$what: exit $rc, expected a refusal" "$dir/r.out" "$dir/r.err"
	elif ! grep -Eq -- "$re" "$dir/r.err"; then
		bad "$what: the message does not say /$re/" "$dir/r.err"
	elif { [ -z "$live" ] && [ -e "$sock" ]; } || [ -s "$dir/r.out" ]; then
		bad "$what: refused but left a socket or printed a ready line" "$dir/r.out"
	else
		ok "$what refused (exit $rc): $(head -n 1 "$dir/r.err")"
	fi
}
B="path=$img,socket=$sock"
refused "no device" "no device to serve.*--blk path=IMG,socket=SOCK"
refused "missing path" "blk0: missing path=IMG" --blk "socket=$sock"
refused "missing socket" "blk0: missing socket=SOCK" --blk "path=$img"
refused "bad number" "queues=two is not a number.*1\.\.64" --blk "$B,queues=two"
refused "number out of range" "queues=65 is out of range; use 1\.\.64" --blk "$B,queues=65"
refused "unknown key" "unknown key 'colour'.*path, socket, queues" --blk "$B,colour=red"
refused "key without a value" "queues= has no value" --blk "$B,queues="
refused "key twice" "key 'queues' is given twice" --blk "$B,queues=1,queues=2"
refused "bad on/off" "readonly=maybe: write readonly=on or readonly=off" --blk "$B,readonly=maybe"
refused "bad backend" "backend=spdk is not known; use one of: auto uring pool" --blk "$B,backend=spdk"
refused "iothreads > queues" "iothreads=3 is more than queues=2" --blk "$B,queues=2,iothreads=3"
refused "serial too long" "serial=.* is 21 bytes long; at most 20" --blk "$B,serial=abcdefghijklmnopqrstu"
refused "duplicate socket" "blk1: socket=.* is also given to blk0" \
	--blk "$B" --blk "path=$dir/other.img,socket=$sock"
refused "unknown option" "unknown option --frobnicate" --frobnicate --blk "$B"
refused "option without value" "--blk needs a value" --blk
refused "stray argument" "unexpected argument 'disk.img'" --blk "$B" disk.img
refused "bad log level" "--log-level loud: use err, warn, info or debug" --log-level loud --blk "$B"
refused "unknown trace point" "--trace 'no_such_point' names no trace point" --trace no_such_point --blk "$B"
as=(env VNOTIFY_TRACE=no_such_point)
refused "unknown trace point in the environment" "VNOTIFY_TRACE 'no_such_point' names no trace point" --blk "$B"
as=()
refused "missing image" "cannot open $dir/none.img: no such file or directory; create it" \
	--blk "path=$dir/none.img,socket=$sock"
: >"$dir/empty.img"
refused "empty image" "smaller than one 512-byte sector" --blk "path=$dir/empty.img,socket=$sock"
refused "image is a directory" "cannot open $dir: is a directory" --blk "path=$dir,socket=$sock"
refused "socket directory missing" "cannot listen on $dir/no/s.sock: no such file or directory" \
	--blk "path=$img,socket=$dir/no/s.sock"
: >"$dir/plain"
refused "socket path is a file" "$dir/plain exists and is not a socket" \
	--blk "path=$img,socket=$dir/plain"
# An unreadable image; root reads anything, so root runs vnotifyd as nobody.
cp "$img" "$dir/locked.img"
as=()
if [ "$(id -u)" = 0 ]; then
	chmod 600 "$dir/locked.img"
	as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	"${as[@]}" true 2>/dev/null || as=(skip)
else
	chmod 000 "$dir/locked.img"
fi
if [ "${as[*]}" = skip ]; then
	n=$((n + 1))
	echo "ok $n - unreadable image # SKIP root without a working setpriv"
else
	refused "unreadable image" "cannot open $dir/locked.img: permission denied; .*readonly=on" \
		--blk "path=$dir/locked.img,socket=$sock"
fi
as=()

# --- a running daemon -------------------------------------------------------
# start NAME ARGS...: vnotifyd in the background; $vpid, $NAME.out/.err
start() {
	local name=$1
	shift
	"$vnd" "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
	vpid=$!
	pids+=("$vpid")
}

# A crashed vnotifyd leaves its socket file behind: the next one replaces it.
start crash --blk "$B"
if wait_for "$dir/crash.out" "ready"; then
	kill -9 "$vpid"
	wait "$vpid" 2>/dev/null
	[ -S "$sock" ] && ok "a killed vnotifyd leaves a stale socket" ||
		bad "no stale socket after kill -9 (the replace case is not tested)"
else
	bad "first vnotifyd never became ready" "$dir/crash.err"
fi

start main --blk "$B,queues=2,iothreads=2,serial=probe"
main=$vpid
if wait_for "$dir/main.out" "ready"; then
	re="^vnotifyd: blk0 ready: socket=$sock image=$img size=8388608 queues=2 iothreads=2 backend=(uring|pool)$"
	grep -Eq "$re" "$dir/main.out" && [ "$(wc -l <"$dir/main.out")" = 1 ] &&
		ok "one ready line, stale socket replaced: $(cat "$dir/main.out")" ||
		bad "ready line does not match /$re/" "$dir/main.out"
else
	bad "vnotifyd not ready within 5 s on a stale socket" "$dir/main.out" "$dir/main.err"
fi

# the socket is live now: a second daemon must not steal it
live=1
refused "socket in use" "socket path $sock is in use by another process" \
	--blk "path=$dir/locked.img,socket=$sock"
[ -S "$sock" ] && kill -0 "$main" 2>/dev/null && ok "the first daemon keeps its socket" ||
	bad "the refused daemon removed the live socket"
# ... nor a second writer take the image
refused "image in use" "$img is in use by another process" --blk "path=$img,socket=$dir/s2.sock"

# A frontend: handshake, I/O on queue 1, then hold the connection for stats.
mkfifo "$dir/hold"
"$probe" io "$sock" "$img" 2 <"$dir/hold" >"$dir/p1.out" 2>&1 &
ppid=$!
exec 3>"$dir/hold"
if wait_for "$dir/p1.out" "ring up|vhu-probe:" 100 && grep -q "ring up" "$dir/p1.out"; then
	ok "frontend: features, queues, config capacity, write+read on queue 1"
	kill -USR1 "$main"
	if wait_for "$dir/main.err" "blk0 q1:"; then
		st=$dir/main.err
		grep -Eq "blk0 vhost-user: socket=$sock frontend=connected connections=[1-9]" "$st" &&
			grep -Eq "blk0 q1: notifier=kick-fd enabled=yes call=yes iothread=blk0-io1 kicks=[1-9]" "$st" &&
			grep -Eq "blk0 q1: .* requests=2 bytes_read=512 bytes_written=512 flushes=0 errors=0 in_flight=0" "$st" &&
			grep -Eq "blk0 q0: notifier=stopped enabled=no .*iothread=blk0-io0 .*requests=0" "$st" &&
			ok "SIGUSR1: connection, per-queue notifier state and counters" ||
			bad "SIGUSR1 stats do not show the frontend's work" "$st"
	else
		bad "SIGUSR1 printed no stats" "$dir/main.err"
	fi
else
	bad "frontend failed" "$dir/p1.out" "$dir/main.err"
fi
echo go >&3
exec 3>&-
if exited "$ppid" 100 && [ $rc = 0 ]; then
	ok "frontend stopped the ring (GET_VRING_BASE) and left"
else
	bad "frontend after stats: exit ${rc:-hung}" "$dir/p1.out"
fi

# Garbage: dropped, and the daemon serves the next frontend.
"$probe" garbage "$sock" >"$dir/p2.out" 2>&1 && ok "a frontend sending garbage is dropped" ||
	bad "garbage frontend" "$dir/p2.out"
kill -0 "$main" 2>/dev/null && ok "vnotifyd survives the garbage" || bad "vnotifyd died on garbage" "$dir/main.err"
if timeout 20 "$probe" io "$sock" "$img" 2 </dev/null >"$dir/p3.out" 2>&1; then
	ok "the next frontend is served: $(tail -n 1 "$dir/p3.out")"
else
	bad "no service after the garbage" "$dir/p3.out" "$dir/main.err"
fi
kill -USR1 "$main"
# (the in-use check above connected too: 4 in all)
if wait_for "$dir/main.err" "frontend=none connections=4 disconnects=4 "; then
	ok "stats: no frontend now, 4 connections, 4 disconnects"
else
	bad "stats after garbage" "$dir/main.err"
fi

kill -TERM "$main"
if exited "$main"; then
	[ $rc = 0 ] && [ ! -e "$sock" ] && ok "SIGTERM: exit 0, socket removed" ||
		bad "SIGTERM: exit $rc, socket $([ -e "$sock" ] && echo left || echo removed)" "$dir/main.err"
else
	bad "vnotifyd still running 5 s after SIGTERM" "$dir/main.err"
fi

# A restart while the old daemon still holds the image's lock (after a
# kill -9 the kernel releases it only when the old io_uring is torn down,
# some 0.1 s later): the new daemon waits for the lock, up to 2 s.
start old --blk "path=$img,socket=$dir/old.sock"
old=$vpid
if wait_for "$dir/old.out" "ready"; then
	start new --blk "path=$img,socket=$dir/new.sock"
	new=$vpid
	sleep 0.3
	if grep -q ready "$dir/new.out"; then
		bad "the new daemon got the image while the old one held it" "$dir/new.out"
	else
		kill -TERM "$old"
		exited "$old"
		wait_for "$dir/new.out" "ready" 30 &&
			ok "a lock released 0.3 s after the restart is taken: $(cat "$dir/new.out")" ||
			bad "the new daemon did not wait for the lock" "$dir/new.out" "$dir/new.err"
	fi
	kill -TERM "$new"
	exited "$new"
else
	bad "lock handover: first daemon never ready" "$dir/old.err"
fi

# Read-only, backend=pool; --trace (it replaces VNOTIFY_TRACE, which would
# be refused here); SIGINT while a frontend is connected with a ring up.
VNOTIFY_TRACE=no_such_point start ro --trace vhu_connect,blk_backend \
	--blk "path=$img,socket=$sock,readonly=on,backend=pool"
ro=$vpid
wait_for "$dir/ro.out" "ready"
rm -f "$dir/hold"
mkfifo "$dir/hold"
"$probe" io "$sock" "$img" 1 ro <"$dir/hold" >"$dir/p4.out" 2>&1 &
ppid=$!
exec 3>"$dir/hold"
if grep -Eq "backend=pool readonly$" "$dir/ro.out" &&
	wait_for "$dir/p4.out" "ring up|vhu-probe:" 100 && grep -q "ring up" "$dir/p4.out"; then
	ok "readonly=on: F_RO offered, writes fail, reads work (pool backend)"
	grep -q "trace: vhu_connect" "$dir/ro.err" && grep -q "trace: blk_backend" "$dir/ro.err" &&
		ok "--trace turns trace points on" || bad "--trace: no trace lines" "$dir/ro.err"
else
	bad "readonly=on" "$dir/ro.out" "$dir/p4.out" "$dir/ro.err"
fi
kill -INT "$ro"
if exited "$ro" && [ $rc = 0 ] && [ ! -e "$sock" ]; then
	ok "SIGINT with a frontend connected: exit 0, socket removed"
else
	bad "SIGINT with a frontend connected: exit ${rc:-hung}" "$dir/ro.err"
fi
echo go >&3
exec 3>&-
if exited "$ppid" 100 && [ $rc != 0 ] && grep -Eq "closed the connection|Broken pipe|reset by peer" "$dir/p4.out"; then
	ok "the frontend saw the connection close"
else
	bad "the frontend after the stop: exit ${rc:-hung}" "$dir/p4.out"
fi

echo "1..$n"
[ $failed = 0 ]
