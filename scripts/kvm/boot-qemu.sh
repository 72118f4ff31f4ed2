#!/bin/sh
# Runs inside level 1 (busybox sh): boots the same level-2 kernel and
# initramfs as vm-check.sh, on QEMU -accel kvm with its built-in
# virtio-blk, and prints level 2's boot time to /dev/vda the way
# vm-check.sh does (level 2's uptime then, and level 1's wall time from
# the start of QEMU to that line): the peer for vnotify-vm's boot time.
#   boot-qemu.sh CPUS   (QEMU and its firmware added as ./qemu-system-x86_64, ./fw/)
cpus=${1:-1}
dir=$(cd "$(dirname "$0")" && pwd)
img=/tmp/qdisk-$$.img
log=/tmp/qemu-$$.log
fifo=/tmp/qemu-$$.fifo
up=/tmp/qemu-$$.up
dd if=/dev/zero of=$img bs=1M count=32 2>/dev/null
mkfifo $fifo
while IFS= read -r l; do
	case "$l" in
	VN-L2-UP*) cut -d' ' -f1 /proc/uptime >$up ;;
	esac
	printf '%s\n' "$l" >>$log
done <$fifo &
reader=$!
t0=$(cut -d' ' -f1 /proc/uptime)
# vnotify-vm's default command line (tools/vnotify-vm/main.c) plus quiet
"$dir/qemu-system-x86_64" -L "$dir/fw" -accel kvm -cpu host -m 256M -smp "$cpus" \
	-nodefaults -vga none -display none -no-reboot -serial stdio \
	-kernel "$dir/bzImage" -initrd "$dir/initramfs-l2.gz" \
	-append "console=ttyS0 pci=conf1 acpi=off reboot=t panic=-1 no_timer_check io_delay=none i8042.noaux=1 i8042.nokbd=1 i8042.nopnp=1 i8042.dumbkbd=1 quiet" \
	-drive "file=$img,if=none,id=d0,format=raw" -device virtio-blk-pci,drive=d0 >$fifo 2>&1 &
pid=$!
(sleep 400 && kill -TERM $pid 2>/dev/null) &
watchdog=$!
wait $pid
rc=$?
wait $reader
kill $watchdog 2>/dev/null
grep -E '^VN-L2' $log | tr -d '\r' | sed 's/^/# /'
u=$(sed -n 's/^VN-L2-UP \([0-9.]*\) .*/\1/p' $log | tr -d '\r')
[ -f $up ] && echo "# boot to /dev/vda: level 2 uptime ${u}s, level 1 wall $(awk "BEGIN { print $(cat $up) - $t0 }")s (qemu -accel kvm)"
status=1
grep -q '^VN-L2-RESULT ok' $log && status=0
echo "# qemu status $rc, level 2 check status $status"
rm -f $img $log $fifo $up
exit $status
