#!/usr/bin/env bash
# One e2e run: a vhost-user-blk backend on a fresh image, the guest booted
# on it (scripts/guest/run-qemu.sh), then the image checked from the host.
#   scripts/guest/e2e.sh qsd|vnotifyd [options] [-- run-qemu.sh options]
#     --guest DIR     built guest (default build/guest, built when stale)
#     --mb N          image size in MiB (32)
#     --seed N        pattern seed (default: from the clock)
#     --test NAME     guest workload: all|pattern|throughput|qd|boot (all)
#     --guest-args A  more vn.* arguments for the guest (see scripts/guest/init)
#     --vnotifyd BIN  the daemon (default build/tools/vnotifyd/vnotifyd)
#     --blk-args KV   more vnotifyd --blk keys, e.g. iothreads=2,direct=on
#     --keep DIR      keep image, logs and the console there
# qsd: qemu-storage-daemon --blockdev file + --export vhost-user-blk,
#      num-queues=2, writable=on (QEMU's own backend: the peer).
# vnotifyd: vnotifyd --blk path=IMG,socket=SOCK,queues=2; stopped with
#      SIGTERM, which must exit 0 and remove the socket.
# Prints run-qemu.sh's lines, then VN-HOST lines and a final
#   VN-E2E backend=B verdict=ok|fail|stall ...
# Exit: 0 ok, 1 fail, 3 stall, 77 QEMU, the kernel or the backend missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

backend=${1:-}
case "$backend" in
qsd | vnotifyd) shift ;;
*) echo "usage: $0 qsd|vnotifyd [options] [-- run-qemu.sh options]" >&2; exit 2 ;;
esac
guest=$top/build/guest mb=32 seed=$(($(date +%s) % 100000)) test=all keep="" gargs="" blkargs=""
vnotifyd=$top/build/tools/vnotifyd/vnotifyd
while [ $# -gt 0 ]; do
	case "$1" in
	--guest) guest=$2; shift 2 ;;
	--mb) mb=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--test) test=$2; shift 2 ;;
	--guest-args) gargs=$2; shift 2 ;;
	--vnotifyd) vnotifyd=$2; shift 2 ;;
	--blk-args) blkargs=,$2; shift 2 ;;
	--keep) keep=$2; shift 2 ;;
	--) shift; break ;;
	*) echo "e2e: unknown option $1" >&2; exit 2 ;;
	esac
done

command -v qemu-system-x86_64 >/dev/null || { echo "e2e: SKIP qemu-system-x86_64 not installed (scripts/bootstrap.sh e2e)"; exit 77; }
rc=0
"$here/build-guest.sh" "$guest" >/dev/null || rc=$?
[ $rc = 0 ] || { [ $rc = 77 ] && echo "e2e: SKIP no guest kernel or busybox-static (scripts/bootstrap.sh e2e)"; exit $rc; }
case "$backend" in
qsd) bin=$(command -v qemu-storage-daemon || true)
	[ -n "$bin" ] || { echo "e2e: SKIP qemu-storage-daemon not installed (qemu-system-common)"; exit 77; } ;;
vnotifyd) bin=$vnotifyd
	[ -x "$bin" ] || { echo "e2e: SKIP $bin not built"; exit 77; } ;;
esac

if [ -n "$keep" ]; then
	mkdir -p "$keep"
	work=$(cd "$keep" && pwd)
else
	work=$(mktemp -d)
fi
img=$work/disk.img sock=$work/vhost.sock blog=$work/$backend.log
rm -f "$img" "$sock"
truncate -s "${mb}M" "$img"
bpid=""
cleanup() {
	[ -n "$bpid" ] && kill -9 "$bpid" 2>/dev/null
	[ -n "$keep" ] || rm -rf "$work"
}
trap cleanup EXIT

case "$backend" in
qsd)
	"$bin" --blockdev "driver=file,node-name=disk0,filename=$img" \
		--export "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=$sock,num-queues=2,writable=on" \
		>"$blog" 2>&1 &
	;;
vnotifyd)
	# stdout carries the ready line (one per device, once listening).
	"$bin" --blk "path=$img,socket=$sock,queues=2$blkargs" >"$blog.ready" 2>"$blog" &
	;;
esac
bpid=$!
ready() {
	[ -S "$sock" ] || return 1
	[ "$backend" = qsd ] || [ -s "$blog.ready" ]
}
for _ in $(seq 100); do
	ready && break
	kill -0 "$bpid" 2>/dev/null || break
	sleep 0.1
done
if ! ready; then
	echo "VN-E2E backend=$backend verdict=fail: not listening on $sock after 10 s (or no ready line)"
	cat "$blog" "$blog.ready" 2>/dev/null
	exit 1
fi
if [ "$backend" = vnotifyd ]; then
	echo "VN-HOST vnotifyd-ready $(head -n 1 "$blog.ready")"
fi

runlog=$work/console.log
rrc=0
"$here/run-qemu.sh" --socket "$sock" --guest "$guest" --peer "$bpid" --log "$runlog" \
	--append "vn.test=$test vn.seed=$seed vn.mb=$mb $gargs" "$@" || rrc=$?

# vnotifyd prints its per-queue stats on SIGUSR1.
if [ "$backend" = vnotifyd ] && kill -USR1 "$bpid" 2>/dev/null; then
	sleep 0.5
fi
# Stop the backend: SIGTERM must end it cleanly.
kill -TERM "$bpid" 2>/dev/null || true
brc=0
for _ in $(seq 100); do
	kill -0 "$bpid" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$bpid" 2>/dev/null; then
	echo "VN-HOST backend-stop=hung (no exit 10 s after SIGTERM)"
	kill -9 "$bpid"
	brc=hung
fi
wait "$bpid" || brc=$?
bpid=""
echo "VN-HOST backend=$backend exit=$brc socket_left=$([ -e "$sock" ] && echo yes || echo no)"
if [ "$backend" = vnotifyd ]; then
	cat "$blog.ready" "$blog" 2>/dev/null | sed 's/^/VN-HOST vnotifyd: /' | tail -n 40
fi

host=skip
if [ $rrc = 0 ] && { [ "$test" = all ] || [ "$test" = pattern ]; }; then
	if busybox awk -v s="$seed" -v n=$((mb * 2048)) -f "$here/pattern.awk" | cmp - "$img" >"$work/cmp.out" 2>&1; then
		host=ok
	else
		host=bad
	fi
	echo "VN-HOST pattern=$host seed=$seed image=${mb}MiB $(cat "$work/cmp.out")"
fi

verdict=ok
erc=0
if [ $rrc = 3 ]; then
	verdict=stall erc=3
elif [ $rrc != 0 ] || [ "$host" = bad ]; then
	verdict=fail erc=1
fi
if [ "$backend" = vnotifyd ] && { [ "$brc" != 0 ] || [ -e "$sock" ]; }; then
	[ $erc = 0 ] && erc=1
	verdict="$verdict+bad-shutdown"
fi
echo "VN-E2E backend=$backend verdict=$verdict guest_rc=$rrc host_pattern=$host backend_exit=$brc"
exit $erc
