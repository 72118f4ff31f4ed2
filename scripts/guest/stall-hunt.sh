#!/usr/bin/env bash
# Runs the guest's queue-depth workload against a backend N times and
# tallies the verdicts, to tell how often a backend stalls. Every run keeps
# its console and the evidence under OUT/run-K; nothing is retried.
#   scripts/guest/stall-hunt.sh BACKEND RUNS OUT [e2e.sh options] [-- run-qemu.sh options]
# e.g. scripts/guest/stall-hunt.sh qsd 12 build/hunt-msix \
#        --guest-args "vn.rounds=4 vn.iodepth=16 vn.watchdog=60" -- --timeout 120
# While it runs, do not edit scripts/guest/*.sh: bash reads them as it goes.
# Prints one line per run and "VN-HUNT backend=B runs=N ok=N stall=N fail=N".
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
backend=$1 runs=$2 out=$3
shift 3
mkdir -p "$out"
ok=0 stall=0 fail=0
for k in $(seq "$runs"); do
	d=$out/run-$k
	"$here/e2e.sh" "$backend" --test qd --keep "$d" "$@" >"$d.out" 2>&1
	rc=$?
	case $rc in
	0) ok=$((ok + 1)); v=ok ;;
	3) stall=$((stall + 1)); v=STALL ;;
	77) echo "VN-HUNT skipped: $(tail -n 1 "$d.out")"; exit 77 ;;
	*) fail=$((fail + 1)); v=FAIL ;;
	esac
	tests=$(grep -cE '^VN-RESULT test=(qd|aio)' "$d.out")
	iops=$(grep -E '^VN-RESULT test=(qd|aio)read' "$d.out" | sed -n 's/.*iops=\([0-9]*\).*/\1/p' | tr '\n' ' ')
	echo "run $k: $v (depth tests finished: $tests, read iops: ${iops:-none}) $(date +%T)"
	[ $v = ok ] || grep -E '^VN-(STALL|EVIDENCE (inflight|irq)|RING|VERDICT)' "$d.out" | head -n 20
	# The image is not needed after the run; the console and evidence are.
	rm -f "$d/disk.img"
done
echo "VN-HUNT backend=$backend runs=$runs ok=$ok stall=$stall fail=$fail args=\"$*\""
