#!/usr/bin/env bash
# Boots the e2e guest under QEMU (TCG) on a vhost-user-blk socket and judges
# the run. Prints the guest's VN-RESULT lines, the evidence of a stall if
# there was one, and a last line
#   VN-VERDICT ok|fail|stall ...
# Exit: 0 ok, 1 the workload failed (or QEMU did), 3 stall, 77 no QEMU.
#
#   scripts/guest/run-qemu.sh --socket SOCK [options]
#     --guest DIR      the built guest (default build/guest; built if missing)
#     --append ARGS    vn.* workload arguments for the guest's /init
#     --timeout SECS   kill QEMU after this long: a stall seen from outside (150)
#     --vectors N      vhost-user-blk-pci vectors= (default: QEMU's, MSI-X;
#                      0 = INTx)
#     --queues N       num-queues (2)    --smp N  vCPUs (2)   --mem MB (256)
#     --machine M      pc (QEMU's default) or q35
#     --log FILE       keep the whole serial console there
#     --peer PID       the backend's pid: its eventfds go into the evidence
#     --reconnect SECS vhost-user reconnect delay on the chardev (off)
#
# Why the outside timeout and the guest's watchdog: with QSD behind it,
# QEMU 7.2 under TCG was seen to stall with requests in flight and both
# processes idle. The guest prints its block layer state (VN-EVIDENCE), and
# on VN-STALL or the timeout this script reads the rings from guest memory
# and every eventfd counter (VN-RING, scripts/guest/ring-state.py) before
# QEMU goes. Nothing is retried.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

sock="" guest="$top/build/guest" append="" timeout=150 vectors="" queues=2
smp=2 mem=256 machine=pc log="" peers=() reconnect=""
while [ $# -gt 0 ]; do
	case "$1" in
	--socket) sock=$2; shift 2 ;;
	--guest) guest=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--vectors) vectors=$2; shift 2 ;;
	--queues) queues=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--machine) machine=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--peer) peers+=("$2"); shift 2 ;;
	--reconnect) reconnect=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "run-qemu: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
[ -n "$sock" ] || { echo "run-qemu: --socket SOCK is required" >&2; exit 2; }
[ -S "$sock" ] || { echo "run-qemu: $sock is not a listening socket (start the backend first)" >&2; exit 1; }
qemu=$(command -v qemu-system-x86_64 || true)
[ -n "$qemu" ] || { echo "run-qemu: qemu-system-x86_64 is not installed (scripts/bootstrap.sh e2e)" >&2; exit 77; }
if ! [ -f "$guest/kernel" ] || ! [ -f "$guest/initramfs.gz" ]; then
	"$here/build-guest.sh" "$guest" >/dev/null
fi

work=$(mktemp -d)
qpid=""
cleanup() {
	[ -n "$qpid" ] && kill -9 "$qpid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
serial=${log:-$work/serial.log}
: >"$serial"
qmp=$work/qmp.sock

dev="vhost-user-blk-pci,chardev=vhu0,num-queues=$queues"
[ -n "$vectors" ] && dev="$dev,vectors=$vectors"
chr="socket,id=vhu0,path=$sock"
[ -n "$reconnect" ] && chr="$chr,reconnect=$reconnect"

start=$(date +%s%N)
"$qemu" -machine "$machine,accel=tcg" -cpu max -smp "$smp" -m "${mem}M" \
	-object "memory-backend-memfd,id=mem,size=${mem}M,share=on" -numa node,memdev=mem \
	-nodefaults -display none -no-reboot \
	-kernel "$guest/kernel" -initrd "$guest/initramfs.gz" \
	-append "console=ttyS0 quiet panic=-1 mitigations=off $append" \
	-chardev "$chr" -device "$dev" \
	-serial "file:$serial" -monitor none -qmp "unix:$qmp,server=on,wait=off" \
	>"$work/qemu.out" 2>&1 &
qpid=$!

elapsed() { echo $((($(date +%s%N) - start) / 1000000)); }

# evidence WHY: the host's view of a stall, while QEMU still runs.
evidence() {
	echo "VN-RING why=\"$1\" qemu_pid=$qpid peers=\"${peers[*]}\""
	python3 "$here/ring-state.py" "$qmp" "$qpid" "${peers[@]}" 2>&1 || true
}

outcome="" ring=""
while :; do
	if ! kill -0 "$qpid" 2>/dev/null; then
		outcome=exited
		break
	fi
	if [ -z "$ring" ] && grep -q '^VN-STALL' "$serial"; then
		ring=$(evidence "guest watchdog")
	fi
	if [ "$(elapsed)" -gt $((timeout * 1000)) ]; then
		outcome=timeout
		[ -n "$ring" ] || ring=$(evidence "host timeout after ${timeout}s")
		kill "$qpid" 2>/dev/null
		sleep 1
		kill -9 "$qpid" 2>/dev/null || true
		break
	fi
	sleep 0.2
done
rc=0
wait "$qpid" || rc=$?
qpid=""
ms=$(elapsed)

tr -d '\r' <"$serial" | grep -aE '^VN-(RESULT|STALL|EVIDENCE|DONE)' || true
[ -n "$ring" ] && echo "$ring"
done_line=$(tr -d '\r' <"$serial" | grep -a '^VN-DONE' | tail -n 1 || true)
tail_log() {
	echo "--- last console lines:"
	tr -d '\r' <"$serial" | grep -av '^VN-' | tail -n 15
	echo "--- qemu:"
	tail -n 10 "$work/qemu.out"
}
case "$outcome:$done_line" in
timeout:*)
	echo "VN-VERDICT stall host-timeout=${timeout}s wall_ms=$ms (no VN-DONE: QEMU killed)"
	tail_log
	exit 3
	;;
*"status=ok"*)
	echo "VN-VERDICT ok wall_ms=$ms qemu_rc=$rc"
	exit 0
	;;
*"status=stall"*)
	echo "VN-VERDICT stall guest-watchdog wall_ms=$ms"
	exit 3
	;;
*"status=fail"*)
	echo "VN-VERDICT fail guest wall_ms=$ms"
	tail_log
	exit 1
	;;
*)
	echo "VN-VERDICT fail qemu exited rc=$rc without VN-DONE wall_ms=$ms"
	tail_log
	exit 1
	;;
esac
