#!/usr/bin/env bash
# The kvm tests on a real /dev/kvm: boots the nested level-1 guest
# (scripts/kvm/run-l1.sh: QEMU TCG, -cpu max, Debian's kvm_amd) and runs
# each given test binary inside it, printing its TAP. Fails if one fails;
# exits 77 (skip) only when QEMU or nested SVM is unavailable.
# With --vm VNOTIFY-VM, it then boots the level-2 Linux with vnotify-vm on
# a fresh image (scripts/kvm/vm-check.sh), with ioeventfd on and off: level
# 2 writes a pattern to /dev/vda, reads it back and verifies it, and level
# 1 checks the image. The 2-vCPU run reboots level 2 once (vnotify-vm
# resets the machine, the second boot reads the pattern back, SIGUSR1
# reports the notifier state); the others run with --no-reboot.
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
# Two level-1 boots, each in the TCG mode it was reliable in here: the kvm
# tests (thousands of KVM_IOEVENTFD calls) wedged level 1 in 5 of 7 runs
# with a host thread per vCPU and passed every run with one thread; level
# 2 Linux under vnotify-vm crashed in its exception entry in 2 of 5 runs
# with one thread and passed with a thread per vCPU (docs/kvm.md).
kadds=()
kcmds=()
for bin in "$@"; do
	kadds+=(--add "$bin")
	kcmds+=("./$(basename "$bin")")
done
vadds=()
vcmds=()
if [ -n "$vm" ]; then
	l2=$("$kvm/build-l2.sh" "$out") || exit $?
	"$kvm/build-l1.sh" "$out" >/dev/null || exit $?
	vadds+=(--add "$vm" --add "$l2/initramfs-l2.gz" --add "$l2/bzImage" --add "$kvm/vm-check.sh")
	vcmds+=("./vm-check.sh ioeventfd=on 1 '' clock" "./vm-check.sh ioeventfd=off 1" "./vm-check.sh ioeventfd=on 2 '' reboot"
		"./vm-check.sh ioeventfd=on 1 '' pause" "./vm-check.sh ioeventfd=on 1 '' promote"
		"./vm-check.sh ioeventfd=on 1 '' '' 6")
fi

# one attempt: both boots; the status of the first that failed
attempt() {
	local rc=0 r
	if [ ${#kcmds[@]} -gt 0 ]; then
		VN_L1_TCG=thread=single "$kvm/run-l1.sh" --timeout 840 --out "$out" "${kadds[@]}" -- "${kcmds[@]}"
		r=$?
		[ $r -ne 0 ] && rc=$r
	fi
	if [ ${#vcmds[@]} -gt 0 ] && [ $rc -ne 77 ]; then
		VN_L1_TCG=thread=multi "$kvm/run-l1.sh" --timeout 840 --out "$out" "${vadds[@]}" -- "${vcmds[@]}"
		r=$?
		[ $r -ne 0 ] && [ $rc -eq 0 ] && rc=$r
	fi
	return $rc
}

# Nested emulation is not fully reliable here even so: a failed attempt is
# run once more, and the first attempt's output is printed in full above
# the second: a real failure fails both times, and a one-off shows in the
# log rather than vanishing.
start=$(date +%s)
first=$(mktemp)
trap 'rm -f "$first"' EXIT
set +e
attempt >"$first" 2>&1
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
	sed 's/^/# first attempt: /' "$first"
	echo "# test-kvm-nested: first attempt failed (status $rc); booting level 1 once more"
	attempt
	rc=$?
else
	cat "$first"
fi
set -e
echo "# test-kvm-nested: $(( $(date +%s) - start ))s wall, status $rc"
exit $rc
