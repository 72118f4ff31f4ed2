#!/usr/bin/env bash
# vnotify-vm in the nested guest: a short dd (4 KiB direct I/O, MIB MiB
# written then read) in level 2 with ioeventfd on vs off, 1 and 2 vCPUs,
# and vnotify-vm's exit counts. Nested emulation (TCG -> KVM): the numbers
# are only ratios between the rows, never absolute figures.
#   scripts/kvm/bench-vm.sh BUILDDIR [MIB]      (BUILDDIR has vnotify-vm)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1
mib=${2:-4}
out=$build/kvm
l2=$("$here/build-l2.sh" "$out")
"$here/build-l1.sh" "$out" >/dev/null
log=$out/bench-vm.log
cmds=()
for cpus in 1 2; do
	for ioev in on off; do
		cmds+=("./vm-check.sh ioeventfd=$ioev $cpus; ./vm-check.sh ioeventfd=$ioev $cpus $mib")
	done
done
VN_L1_TCG=${VN_L1_TCG:-thread=multi} "$here/run-l1.sh" --timeout 1500 --out "$out" --add "$build/tools/vnotify-vm/vnotify-vm" \
	--add "$l2/initramfs-l2.gz" --add "$l2/bzImage" --add "$here/vm-check.sh" \
	-- "${cmds[@]}" >"$log"
# One block per vm-check run; a run with VN-L2-BENCH lines follows its baseline.
awk -v mib="$mib" '
/^# VN-L2-UP/ { cpus = $NF; sub(/cpus=/, "", cpus) }
/^# VN-L2-BENCH/ { t[$3] = $(NF) - $(NF - 1) }
/^# vnotify-vm:   (pio-bus|mmio-bus) / { dev += $NF }
/^# vnotify-vm:   / && $3 ~ /^(pio|mmio|intr|other)/ { all += $NF }
/^# vnotify-vm: blk0 q0:/ { req = $5 }
/^# ioeventfd=/ {
	split($2, a, "="); ioev = $2
	if (("w" in t) == 0 && ("write" in t) == 0) { bdev = dev; ball = all; breq = req }
	else {
		n = req - breq
		printf "%-14s %5s %10.2f %10.2f %12.2f %12.2f\n", ioev, cpus,
			mib / t["write"], mib / t["read"], (dev - bdev) / n, (all - ball) / n
	}
	delete t; dev = 0; all = 0; req = 0
}
BEGIN { printf "%-14s %5s %10s %10s %12s %12s\n", "ioeventfd", "vCPUs", "write MiB/s", "read MiB/s", "dev exits/req", "all exits/req" }
' "$log"
echo "(nested emulation: compare rows, not absolute values; log: $log)"
