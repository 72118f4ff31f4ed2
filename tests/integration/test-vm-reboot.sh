#!/usr/bin/env bash
# vnotify-vm's guest reboot on this machine's /dev/kvm, with a guest of a
# few instructions (vm-reboot-guest.S) that reboots twice through the
# keyboard controller and checks, after each reset, the registers, CR4 and
# the kvm-clock MSR it had dirtied (it prints B1, B2, B3, K per check of
# kvm-clock, X on a mismatch, D when done).
#   tests/integration/test-vm-reboot.sh VNOTIFY-VM GUEST-IMAGE
set -uo pipefail
vm=$1
guest=$2
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "1..0 # SKIP no usable /dev/kvm"
	exit 77
fi
dir=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -KILL $pid 2>/dev/null; rm -rf "$dir"' EXIT
dd if=/dev/zero of="$dir/disk.img" bs=1M count=1 2>/dev/null
echo "1..6"
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; sed 's/^/# /' "$dir/out" "$dir/err"; fail=1; }
fail=0
# wait_for FILE PATTERN: up to 20 s for a line (grep -E) to appear
wait_for() {
	local i
	for i in $(seq 200); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		kill -0 $pid 2>/dev/null || { grep -qE "$2" "$1" 2>/dev/null; return; }
		sleep 0.1
	done
	return 1
}

"$vm" --kernel "$guest" --memory 64M --console --iothreads 1 \
	--blk "path=$dir/disk.img" >"$dir/out" 2>"$dir/err" &
pid=$!
if wait_for "$dir/out" 'D'; then
	ok "the guest booted three times and saw the power-on state after each reset"
else
	notok "the guest did not finish its three boots"
fi
if grep -q 'X' "$dir/out" || ! grep -q '^B1B2KB3KD$' "$dir/out"; then
	notok "console '$(tr -d '\n' <"$dir/out")', want B1B2KB3KD (X: a state the reset missed)"
else
	ok "registers, DF, CR4 and the kvm-clock MSR were back at power-on (B1B2KB3KD)"
fi
kill -USR1 $pid
if wait_for "$dir/err" '^vnotify-vm: reboots: 2$' &&
	grep -q '^vnotify-vm: notifier state (SIGUSR1)$' "$dir/err" &&
	grep -q '^vnotify-vm: blk0 q0 notifier: deassigned from doorbell' "$dir/err" &&
	kill -0 $pid 2>/dev/null; then
	ok "SIGUSR1 printed the notifier state and 2 reboots while running"
else
	notok "SIGUSR1: no notifier report while running"
fi
kill -TERM $pid
wait $pid
rc=$?
pid=""
if [ $rc -eq 0 ] && [ "$(grep -c '^vnotify-vm: reboots: 2$' "$dir/err")" = 2 ] &&
	grep -q '^vnotify-vm: the guest was stopped by a signal$' "$dir/err" &&
	[ "$(grep -c '^vnotify-vm: reboot [12]: the machine was reset' "$dir/err")" = 2 ]; then
	ok "SIGTERM ended it with status 0; the exit report counts 2 reboots"
else
	notok "exit after SIGTERM: status $rc"
fi

# --no-reboot: the first reboot ends vnotify-vm, as before
"$vm" --kernel "$guest" --memory 64M --console --no-reboot >"$dir/out" 2>"$dir/err" &
pid=$!
# it must end by itself: the guest halts for good after a reset
for i in $(seq 200); do
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
pid=""
if [ $rc -eq 0 ] && [ "$(tr -d '\n' <"$dir/out")" = B1 ]; then
	ok "--no-reboot: vnotify-vm ended at the guest's first reboot"
else
	notok "--no-reboot: status $rc, console '$(tr -d '\n' <"$dir/out")'"
fi
if grep -q '^vnotify-vm: reboots: 0$' "$dir/err" &&
	grep -q '^vnotify-vm: the guest rebooted (--no-reboot' "$dir/err"; then
	ok "--no-reboot: the report says so, 0 reboots"
else
	notok "--no-reboot: the report"
fi
exit $fail
