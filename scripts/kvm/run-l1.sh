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
# available (the reason on stderr); 1 when the guest did not finish.
# VN_L1_CPU overrides the CPU model ("max,-svm" checks the skip).
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

start=$(date +%s.%N)
set +e
timeout -k 10 "$timeout_s" qemu-system-x86_64 -accel tcg -cpu "${VN_L1_CPU:-max}" -m 2G -smp 2 \
	-nographic -no-reboot -nodefaults -serial stdio \
	-kernel "$out/bzImage" -initrd "$root.initrd" \
	-append "console=ttyS0 quiet panic=-1 mitigations=off" </dev/null >"$log" 2>&1
qrc=$?
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
	if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
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
