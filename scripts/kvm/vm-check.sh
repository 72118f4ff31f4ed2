#!/bin/sh
# Runs inside level 1 (busybox sh): vnotify-vm boots the level-2 Linux on a
# fresh image, which writes a pattern to /dev/vda, reads it back and
# verifies it; then the host side (here) checks the image too.
#   vm-check.sh ioeventfd=on|off CPUS [BENCH_MIB] [pause|promote|io_delay|clock|reboot|''] [MAX_IOEVENTFDS]
#               [VM_OPTIONS]
# Every mode but "reboot" runs vnotify-vm with --no-reboot: level 2's
# final reboot ends it, as before guest reboots reset the machine, and
# that is checked (status 0, "reboots: 0").
# With "reboot", level 2 (vn.reboot=1) reboots after its pattern check and
# vnotify-vm resets the machine; the second boot reads the pattern back
# and idles. Then SIGUSR1 must print the notifier state while it runs
# (assigned, no fallback, 1 reboot), and SIGTERM ends it; the second boot
# must see every vCPU again.
# With "pause", the VM is paused (SIGTSTP) and resumed (SIGCONT) every
# couple of seconds for its whole run: boot and I/O must survive the host
# notifiers being stopped, drained and restarted under them.
# With "promote", the guest runs with Linux's default io_delay=0x80 and
# writes the byte 0 to port 0x80 200 times through /dev/port (vn.port80;
# io_delay alone wrote port 0x80 only 3-7 times in a whole boot here, and
# with varying bytes), and vnotify-vm makes port 0x80 a promoter candidate
# (--promote pio:0x80): after ten exits the writes must be replayed from a
# dynamic ioeventfd instead of exiting, and the disk checks pass as ever.
# "io_delay" is the same guest without --promote, the baseline to compare
# the exit counts with.
# Every run checks that level 2 uses kvm-clock. With "clock", level 2
# stamps its uptime twice 15 s apart; level 1 stamps each line with its own
# uptime as it arrives, and the two intervals must agree within 0.5%.
# With MAX_IOEVENTFDS, vnotify-vm runs with --max-ioeventfds N; at N <= 6
# (the old kernels' budget) the queues must take no ioeventfd: the I/O
# still verifies, its doorbells exit to vnotify-vm, and no fallback is
# counted (the policy never tries).
# VM_OPTIONS are more vnotify-vm options (--memory-backend memfd, say).
# Every run checks that level 2 sees one blk-mq queue per vCPU (the
# default queues=), and prints its boot time to /dev/vda: level 2's uptime
# then, and level 1's wall time from the start of vnotify-vm to that line.
# Prints TAP-ish lines; exits 0 when every check passes.
ioev=${1:-ioeventfd=on}
cpus=${2:-1}
bench=${3:-}
pause=${4:-}
maxioev=${5:-}
vmopts=${6:-}
dir=$(cd "$(dirname "$0")" && pwd)
img=/tmp/disk-$$.img
log=/tmp/vm-$$.log
dd if=/dev/zero of=$img bs=1M count=32 2>/dev/null
append="quiet"
clk=/tmp/clk-$$
fifo=/tmp/vm-$$.fifo
extra=""
[ -n "$maxioev" ] && extra="--max-ioeventfds $maxioev"
[ -n "$bench" ] && append="$append vn.bench=$bench"
promote=""
if [ "$pause" = promote ] || [ "$pause" = io_delay ]; then
	append="$append io_delay=0x80 vn.port80=200"
fi
[ "$pause" = promote ] && promote="--promote pio:0x80"
[ "$pause" = clock ] && append="$append vn.clock=15"
noreboot=--no-reboot
if [ "$pause" = reboot ]; then
	append="$append vn.reboot=1"
	noreboot=""
fi
rm -f $clk $fifo
mkfifo $fifo
# the console through a reader that stamps the clock lines on arrival
while IFS= read -r l; do
	l=$(printf '%s' "$l" | tr -d '\r')
	case "$l" in
	VN-L2-CLOCK[01]*) echo "$l $(cut -d' ' -f1 /proc/uptime)" >>$clk ;;
	VN-L2-UP*) echo "$(cut -d' ' -f1 /proc/uptime)" >$clk.up ;;
	esac
	printf '%s\n' "$l" >>$log
done <$fifo &
reader=$!
t0=$(cut -d' ' -f1 /proc/uptime)
"$dir/vnotify-vm" --kernel "$dir/bzImage" --initrd "$dir/initramfs-l2.gz" \
	--memory 256M --cpus "$cpus" --console --append "$append" \
	--blk "path=$img,$ioev" $promote $extra $vmopts $noreboot >$fifo 2>&1 &
pid=$!
# our own timeout: the pause test signals vnotify-vm itself, not a wrapper
(sleep 400 && kill -TERM $pid 2>/dev/null) &
watchdog=$!
cycles=0
if [ "$pause" = pause ]; then
	while kill -0 $pid 2>/dev/null; do
		sleep 2
		kill -TSTP $pid 2>/dev/null || break
		sleep 1
		kill -CONT $pid 2>/dev/null || break
		cycles=$((cycles + 1))
	done
fi
if [ "$pause" = reboot ]; then
	# the second boot idles: ask for the notifier state, then stop it
	while kill -0 $pid 2>/dev/null && ! grep -q '^VN-L2-IDLE' $log; do sleep 1; done
	kill -USR1 $pid 2>/dev/null
	while kill -0 $pid 2>/dev/null && ! grep -q '^vnotify-vm: reboots: ' $log; do sleep 1; done
	kill -TERM $pid 2>/dev/null
fi
wait $pid
rc=$?
wait $reader
kill $watchdog 2>/dev/null
t1=$(cut -d' ' -f1 /proc/uptime)
grep -E '^(VN-L2|vnotify-vm)' $log | sed 's/^/# /'
echo "# $ioev cpus=$cpus: vnotify-vm status $rc after $(awk "BEGIN { print $t1 - $t0 }")s"
status=0
if [ $rc -eq 0 ] && grep -q '^VN-L2-RESULT ok' $log; then
	echo "ok - level 2 wrote, read back and verified /dev/vda ($ioev, $cpus vCPU)"
else
	echo "not ok - level 2 did not verify /dev/vda ($ioev, $cpus vCPU)"
	tail -n 30 $log | sed 's/^/# /'
	status=1
fi
awk 'BEGIN { for (i = 0; i < 40330; i++) printf "vnotify %09d pattern\n", i }' | head -c 1048576 >/tmp/pattern-$$
if dd if=$img bs=64k count=16 2>/dev/null | cmp - /tmp/pattern-$$ >/dev/null; then
	echo "ok - the host sees the pattern in the image ($ioev, $cpus vCPU)"
else
	echo "not ok - the image does not hold the pattern ($ioev, $cpus vCPU)"
	status=1
fi
# (after a reboot, the second boot's; it must see them again)
mq=$(sed -n 's/^VN-L2-MQ \([0-9]*\) queues.*/\1/p' $log | tail -n 1)
if [ "$mq" = "$cpus" ]; then
	echo "ok - level 2 sees $mq blk-mq queues, one per vCPU ($ioev, $cpus vCPU)"
else
	echo "not ok - level 2 sees '$mq' blk-mq queues for $cpus vCPUs"
	status=1
fi
up=$(sed -n 's/^VN-L2-UP \([0-9.]*\) .*/\1/p' $log | head -n 1)
[ -f $clk.up ] && echo "# boot to /dev/vda: level 2 uptime ${up}s, level 1 wall $(awk "BEGIN { print $(cat $clk.up) - $t0 }")s ($vmopts)"
if [ "$pause" = pause ]; then
	paused=$(grep -c '^vnotify-vm: paused' $log)
	resumed=$(grep -c '^vnotify-vm: resumed' $log)
	if [ "$paused" -ge 1 ] && [ "$paused" = "$resumed" ]; then
		echo "ok - paused and resumed $paused times during the run ($ioev, $cpus vCPU)"
	else
		echo "not ok - pause/resume: $cycles cycles sent, $paused paused, $resumed resumed"
		status=1
	fi
fi
# The notifier state: with ioeventfd on, no doorbell exited and no
# fallback (a silent fallback to synchronous notify would still pass the
# data checks); with it off, every doorbell exited.
# (the exit report's: the last of them, after a SIGUSR1 report)
exited=$(sed -n 's/^vnotify-vm: blk0: .*doorbells that exited: \([0-9]*\)$/\1/p' $log | tail -n 1)
fb=$(sed -n 's/^vnotify-vm: blk0 notifiers: ioeventfd \([a-z ]*\), fallbacks \([0-9]*\) .*/\1:\2/p' $log | tail -n 1)
if [ -n "$maxioev" ] && [ "$maxioev" -le 6 ]; then
	if grep -q "^vnotify-vm: ioeventfd budget: $maxioev per bus" $log &&
	   [ -n "$exited" ] && [ "$exited" -gt 0 ] && [ "$fb" = "in use:0" ]; then
		echo "ok - budget $maxioev: doorbells exited: $exited, no fallback ($ioev, $cpus vCPU)"
	else
		echo "not ok - budget $maxioev: doorbells exited '$exited', notifiers '$fb'"
		status=1
	fi
elif [ "$ioev" = ioeventfd=on ]; then
	if [ "$exited" = 0 ] && [ "$fb" = "in use:0" ]; then
		echo "ok - no doorbell exited and no fallback ($ioev, $cpus vCPU)"
	else
		echo "not ok - ioeventfd=on: doorbells exited '$exited', notifiers '$fb'"
		status=1
	fi
else
	if [ -n "$exited" ] && [ "$exited" -gt 0 ] && [ "$fb" = "not in use:0" ]; then
		echo "ok - every doorbell exited: $exited ($ioev, $cpus vCPU)"
	else
		echo "not ok - ioeventfd=off: doorbells exited '$exited', notifiers '$fb'"
		status=1
	fi
fi
if [ "$pause" = promote ]; then
	saved=$(sed -n 's/^vnotify-vm: promote pio:0x80: .* \([0-9]*\) replayed from .*/\1/p' $log)
	if [ -n "$saved" ] && [ "$saved" -gt 0 ]; then
		echo "ok - port 0x80 promoted: $saved replays, writes that did not exit ($ioev, $cpus vCPU)"
	else
		echo "not ok - port 0x80 was not promoted (replays: '${saved}')"
		status=1
	fi
fi
if [ "$pause" = reboot ]; then
	# the SIGUSR1 report: from its header to its "reboots:" line
	usr1=$(awk '/^vnotify-vm: notifier state \(SIGUSR1\)/ { on = 1 } on { print } on && /^vnotify-vm: reboots:/ { exit }' $log)
	ups=$(grep -c "^VN-L2-UP .* cpus=$cpus\$" $log)
	if [ $rc -eq 0 ] && grep -q '^vnotify-vm: reboot 1: the machine was reset' $log &&
	   grep -q '^VN-L2-REBOOTED ok' $log && [ "$ups" = 2 ] &&
	   grep -q '^vnotify-vm: the guest was stopped by a signal' $log; then
		echo "ok - vnotify-vm reset the machine at the reboot; the second boot ($cpus vCPU) read the first one's pattern ($ioev)"
	else
		echo "not ok - reboot: status $rc, boots with $cpus vCPUs: $ups, $(grep -c '^VN-L2-REBOOTED ok' $log) verified after it"
		status=1
	fi
	if printf '%s\n' "$usr1" | grep -q '^vnotify-vm: blk0 notifiers: ioeventfd in use, fallbacks 0 ' &&
	   printf '%s\n' "$usr1" | grep -q '^vnotify-vm: blk0 q0 notifier: assigned from ioeventfd' &&
	   printf '%s\n' "$usr1" | grep -q '^vnotify-vm: reboots: 1$'; then
		echo "ok - SIGUSR1 after the second boot: q0 assigned from ioeventfd, no fallback, 1 reboot ($ioev)"
	else
		echo "not ok - SIGUSR1 report after the reboot: $(printf '%s' "$usr1" | tr '\n' '|')"
		status=1
	fi
elif grep -q '^vnotify-vm: reboots: 0$' $log && grep -q '^vnotify-vm: the guest rebooted (--no-reboot' $log; then
	echo "ok - --no-reboot: level 2's reboot ended vnotify-vm ($ioev, $cpus vCPU)"
else
	echo "not ok - --no-reboot: vnotify-vm did not end at level 2's reboot"
	status=1
fi
if grep -q '^VN-L2-CLOCKSOURCE kvm-clock' $log && grep -q '^VN-L2-KVMCLOCK' $log; then
	echo "ok - level 2 runs on kvm-clock ($ioev, $cpus vCPU)"
else
	echo "not ok - level 2 does not use kvm-clock: $(grep '^VN-L2-CLOCKSOURCE' $log)"
	status=1
fi
if [ "$pause" = clock ]; then
	# lines "VN-L2-CLOCKn GUEST_UPTIME HOST_UPTIME"
	if awk '/^VN-L2-CLOCK0/ { g0 = $2; h0 = $3 } /^VN-L2-CLOCK1/ { g1 = $2; h1 = $3 }
		END { if (h1 <= h0) exit 1; d = (g1 - g0) / (h1 - h0) - 1;
		      printf "# clock: level 2 %.3fs, level 1 %.3fs, drift %+.3f%%\n", g1 - g0, h1 - h0, d * 100;
		      exit (d > 0.005 || d < -0.005) ? 1 : 0 }' $clk; then
		echo "ok - the level-2 clock keeps level 1's within 0.5% ($ioev, $cpus vCPU)"
	else
		echo "not ok - the level-2 clock drifts from level 1's by more than 0.5% ($(cat $clk 2>/dev/null | tr '\n' ' '))"
		status=1
	fi
fi
rm -f $img /tmp/pattern-$$ $log $clk $clk.up $fifo
exit $status
