#!/usr/bin/env bash
# The same guest and workload on qemu-storage-daemon's vhost-user-blk export
# and on vnotifyd, interleaved R times (default 5; the order flips every
# repetition) so this noisy machine's drift hits both alike. Prints each
# run, then the medians per backend and the vnotifyd/qsd ratio.
#   bench/vs-qsd.sh [REPEATS] [e2e.sh options, e.g. --mb 64]
# Workload (scripts/guest/init, vn.test=throughput): sequential 1 MiB
# O_DIRECT write and read (MB/s), then 16 parallel 4 KiB O_DIRECT dd streams
# writing and reading (qd*: IOPS at queue depth 16), then vn-aio keeping 16
# random 4 KiB requests in flight from one process (aio*: IOPS, the pattern
# of fio's libaio engine). QEMU runs under TCG: the
# guest's own CPU cost dominates, so ratios near 1 are expected unless a
# backend adds latency. Until tools/vnotifyd is built, QSD runs alone.
# A stalled or failed run is printed and counted, and left out of the
# medians; it is never retried.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
top=$(pwd)
reps=${1:-5}
[ $# -gt 0 ] && shift
# VN_BUILD: the meson build directory (default build) holding vnotifyd; the
# guest is built into its guest/ subdirectory.
build=${VN_BUILD:-build}
case "$build" in /*) ;; *) build=$top/$build ;; esac
vnd=$build/tools/vnotifyd/vnotifyd
backends="qsd vnotifyd"
if ! [ -x "$vnd" ]; then
	echo "vs-qsd: vnotifyd not built ($vnd): running QSD only"
	backends=qsd
fi
scripts/bootstrap.sh e2e || exit 1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for i in $(seq "$reps"); do
	order=$backends
	[ $((i % 2)) = 0 ] && order=$(echo "$backends" | tr ' ' '\n' | tac | tr '\n' ' ')
	for b in $order; do
		log=$(mktemp)
		scripts/guest/e2e.sh "$b" --guest "$build/guest" --vnotifyd "$vnd" --test throughput "$@" >"$log" 2>&1
		rc=$?
		[ $rc = 77 ] && { cat "$log"; exit 77; }
		line="rep=$i backend=$b rc=$rc"
		for t in seqwrite seqread qdwrite qdread aiowrite aioread; do
			r=$(grep "^VN-RESULT test=$t " "$log")
			case $t in
			seq*) line="$line $t=$(echo "$r" | sed -n 's/.* mbps=\([0-9.]*\).*/\1/p')" ;;
			*) line="$line $t=$(echo "$r" | sed -n 's/.* iops=\([0-9]*\).*/\1/p')" ;;
			esac
		done
		line="$line wall_ms=$(sed -n 's/^VN-VERDICT .*wall_ms=\([0-9]*\).*/\1/p' "$log")"
		echo "$line" | tee -a "$out"
		[ $rc = 0 ] || grep -E '^VN-(STALL|VERDICT|E2E)' "$log"
		rm -f "$log"
	done
done
python3 - "$out" <<'PY'
import statistics, sys
rows = []
for l in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in l.split())
    rows.append(kv)
keys = [("seqwrite", "MB/s"), ("seqread", "MB/s"), ("qdwrite", "IOPS"), ("qdread", "IOPS"),
        ("aiowrite", "IOPS"), ("aioread", "IOPS"), ("wall_ms", "ms")]
med = {}
print()
print(f"{'backend':9} {'runs':>4} {'bad':>3} " + " ".join(f"{k + ' ' + u:>14}" for k, u in keys))
for b in ("qsd", "vnotifyd"):
    good = [r for r in rows if r["backend"] == b and r["rc"] == "0"]
    bad = sum(1 for r in rows if r["backend"] == b and r["rc"] != "0")
    if not good and not bad:
        continue
    m = {}
    for k, _ in keys:
        vals = [float(r[k]) for r in good if r.get(k)]
        m[k] = statistics.median(vals) if vals else float("nan")
    med[b] = m
    print(f"{b:9} {len(good) + bad:4} {bad:3} " + " ".join(f"{m[k]:14.1f}" for k, _ in keys))
if len(med) == 2:
    print("vnotifyd/qsd " + " ".join(f"{k}={med['vnotifyd'][k] / med['qsd'][k]:.2f}" for k, _ in keys if med['qsd'][k]))
PY
