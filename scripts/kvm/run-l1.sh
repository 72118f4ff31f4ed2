#!/usr/bin/env bash
# Boots the level-1 guest (QEMU TCG, -cpu max: AMD SVM with nested paging)
# and runs commands inside it, where /dev/kvm works.
#   scripts/kvm/run-l1.sh [--timeout SEC] [--out DIR] [--log FILE]
#                         [--add SRC[=DEST]]... -- 'CMD'...
# --add copies SRC into the guest (default DEST: /opt/vn/<basename>; a
# dynamic ELF brings its shared libraries along). Each CMD is one shell
# command line, run in /opt/vn in order; all run even if one fails.
# The guest's output of the commands goes to stdout; the whole console to
# --log (default OUT/l1-console.log). Exit status: that of the first
# failing command (0 if all passed); 77 when QEMU or nested SVM is not
# available (the reason on stderr); 1 when the guest did not finish (a
# boot that stalls is retried once: see boot_l1).
# VN_L1_CPU overrides the CPU model ("max,-svm" checks the skip), VN_L1_SMP
# the vCPU count (2), VN_L1_TCG the TCG options (thread=single; see below).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
timeout_s=600
out=$here/../../build/kvm
log=""
adds=()
while [ $# -gt 0 ]; do
	case "$1" in
	--timeout) timeout_s=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--add) adds+=("$2"); shift 2 ;;
	--) shift; break ;;
	*) echo "run-l1: unknown option $1" >&2; exit 2 ;;
	esac
done
[ $# -gt 0 ] || { echo "run-l1: no command given" >&2; exit 2; }

if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "run-l1: SKIP: qemu-system-x86_64 is not installed (scripts/bootstrap.sh kvm)" >&2
	exit 77
fi
out=$("$here/build-l1.sh" "$out") || exit $?
log=${log:-$out/l1-console.log}

# The per-run archive: /run.sh and the added files. The kernel unpacks
# concatenated archives in order, so it lands on top of the base one.
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
initramfs_bootstrap=kvm
# shellcheck source=scripts/lib/initramfs.sh
. "$here/../lib/initramfs.sh"
for a in "${adds[@]}"; do
	src=${a%%=*}
	dest=/opt/vn/$(basename "$src")
	[ "$a" != "$src" ] && dest=${a#*=}
	[ -e "$src" ] || { echo "run-l1: $src does not exist" >&2; exit 2; }
	initramfs_add_file "$root" "$src" "$dest"
done
{
	echo 'first=0'
	for c in "$@"; do
		q=$(printf '%s' "$c" | sed "s/'/'\\\\''/g")
		echo "echo 'VN-L1-CMD $q'"
		echo "( $c ); rc=\$?"
		echo 'echo "VN-L1-RC $rc"'
		echo '[ $rc -ne 0 ] && [ $first -eq 0 ] && first=$rc'
	done
	echo 'exit $first'
} >"$root/run.sh"
initramfs_pack "$root" "$root.cpio.gz" 1
cat "$out/initramfs-l1.gz" "$root.cpio.gz" >"$root.initrd"
rm -f "$root.cpio.gz"
trap 'rm -rf "$root" "$root.initrd"' EXIT

# boot_l1: one boot of level 1; its status is QEMU's, or 125 when it
# stalled. Level 1 under TCG sometimes wedges for good (a vCPU stuck in its
# kernel: "soft lockup" lines and nothing else, or silence) while running
# KVM ioctls, more often on a loaded host; no vnotify code runs then, and
# the test inside would only time out. A console with no new line (the
# kernel's soft-lockup reports aside) for VN_L1_STALL_S seconds is such a
# stall: stop that boot, and the caller boots once more.
#
# VN_L1_TCG picks the TCG threading, and neither mode is reliable for all
# of it here. With a host thread per level-1 vCPU (thread=multi) level 1
# wedged in 5 of 7 runs of the kvm tests (test_kvm_limit,
# test_model_random_*: thousands of KVM_IOEVENTFD calls, each an SRCU grace
# period across both vCPUs), which passed every run with both vCPUs on one
# thread (thread=single, the default); but with one thread, level-2 Linux
# under vnotify-vm crashed in its exception entry in 2 of 5 runs. So
# tests/e2e/test-kvm-nested.sh runs the kvm tests single-threaded and the
# level-2 boots multi-threaded, and bench-vm.sh uses thread=multi.
stall_s=${VN_L1_STALL_S:-300}
boot_l1() {
	timeout -k 10 "$timeout_s" qemu-system-x86_64 -accel "tcg,${VN_L1_TCG:-thread=single}" -cpu "${VN_L1_CPU:-max}" -m 2G -smp "${VN_L1_SMP:-2}" \
		-nographic -no-reboot -nodefaults -serial stdio \
		-kernel "$out/bzImage" -initrd "$root.initrd" \
		-append "console=ttyS0 quiet panic=-1 mitigations=off" </dev/null >"$log" 2>&1 &
	local pid=$! lines=-1 n quiet=0
	while kill -0 "$pid" 2>/dev/null; do
		sleep 5
		n=$(grep -vc 'soft lockup' "$log" 2>/dev/null || true)
		if [ "$n" = "$lines" ]; then
			quiet=$((quiet + 5))
		else
			lines=$n
			quiet=0
		fi
		if [ "$quiet" -ge "$stall_s" ]; then
			kill "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			return 125
		fi
	done
	wait "$pid"
}

start=$(date +%s.%N)
set +e
for attempt in 1 2; do
	boot_l1
	qrc=$?
	[ $qrc -eq 125 ] || break
	echo "run-l1: level 1 stalled (no console output for ${stall_s}s, boot $attempt of 2); last lines:" >&2
	grep -v 'soft lockup' "$log" | tail -n 3 | tr -d '\r' | sed 's/^/run-l1:   /' >&2
	cp "$log" "$log.stalled-$attempt"
done
set -e
end=$(date +%s.%N)
tr -d '\r' <"$log" >"$log.tmp" && mv "$log.tmp" "$log"

secs=$(awk "BEGIN { printf \"%.1f\", $end - $start }")
if grep -q '^VN-L1-NOKVM' "$log"; then
	echo "run-l1: SKIP: $(grep '^VN-L1-NOKVM' "$log" | head -n1 | cut -d' ' -f2-)" >&2
	exit 77
fi
awk '/^VN-L1-BEGIN/ { on = 1; next } /^VN-L1-EXIT/ { on = 0 } on' "$log"
grep '^VN-L1-NOTE' "$log" >&2 || true
if ! grep -q '^VN-L1-EXIT' "$log"; then
	if [ $qrc -eq 125 ]; then
		echo "run-l1: the level-1 guest stalled twice (consoles: $log.stalled-*)" >&2
	elif [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
		echo "run-l1: the level-1 guest did not finish within ${timeout_s}s (console: $log)" >&2
	else
		echo "run-l1: the level-1 guest stopped without an exit status, qemu status $qrc (console: $log)" >&2
		tail -n 20 "$log" >&2
	fi
	exit 1
fi
read -r _ rc guest_up < <(grep '^VN-L1-EXIT' "$log" | tail -n1)
kvm_at=$(grep '^VN-L1-KVM' "$log" | cut -d' ' -f2)
echo "run-l1: level 1 up with /dev/kvm at ${kvm_at}s guest time, commands done at ${guest_up}s, ${secs}s wall in all" >&2
exit "$rc"
