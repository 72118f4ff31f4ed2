#!/usr/bin/env bash
# The kvm tests on a real /dev/kvm: boots the nested level-1 guest
# (scripts/kvm/run-l1.sh: QEMU TCG, -cpu max, Debian's kvm_amd) and runs
# each given test binary inside it, printing its TAP. Fails if one fails;
# exits 77 (skip) only when QEMU or nested SVM is unavailable.
# With --vm VNOTIFY-VM, it then boots the level-2 Linux with vnotify-vm on
# a fresh image (scripts/kvm/vm-check.sh), with ioeventfd on and off: level
# 2 writes a pattern to /dev/vda, reads it back and verifies it, and level
# 1 checks the image.
#   tests/e2e/test-kvm-nested.sh OUTDIR [--vm VNOTIFY-VM] TEST-BINARY...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kvm=$here/../../scripts/kvm
out=$1
shift
vm=""
if [ "${1:-}" = --vm ]; then
	vm=$2
	shift 2
fi
adds=()
cmds=()
for bin in "$@"; do
	adds+=(--add "$bin")
	cmds+=("./$(basename "$bin")")
done
if [ -n "$vm" ]; then
	l2=$("$kvm/build-l2.sh" "$out") || exit $?
	"$kvm/build-l1.sh" "$out" >/dev/null || exit $?
	adds+=(--add "$vm" --add "$l2/initramfs-l2.gz" --add "$l2/bzImage" --add "$kvm/vm-check.sh")
	cmds+=("./vm-check.sh ioeventfd=on 1" "./vm-check.sh ioeventfd=off 1" "./vm-check.sh ioeventfd=on 2"
		"./vm-check.sh ioeventfd=on 1 '' pause")
fi
# Nested emulation is not fully reliable here: level 2 with 2 vCPUs has
# crashed in its own exception entry (a stack overflow in exc_page_fault)
# on runs whose level 1 and vnotify-vm were the same as on passing runs.
# A failed boot is therefore run once more, and the first attempt's output
# is printed in full above the second: a real failure fails both times,
# and a one-off shows in the log rather than vanishing.
start=$(date +%s)
first=$(mktemp)
trap 'rm -f "$first"' EXIT
set +e
"$kvm/run-l1.sh" --timeout 840 --out "$out" "${adds[@]}" -- "${cmds[@]}" >"$first" 2>&1
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
	sed 's/^/# first attempt: /' "$first"
	echo "# test-kvm-nested: first attempt failed (status $rc); booting level 1 once more"
	"$kvm/run-l1.sh" --timeout 840 --out "$out" "${adds[@]}" -- "${cmds[@]}"
	rc=$?
else
	cat "$first"
fi
set -e
echo "# test-kvm-nested: $(( $(date +%s) - start ))s wall, status $rc"
exit $rc
