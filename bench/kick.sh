#!/usr/bin/env bash
# Kick round trip, event vs poll, interleaved R times (default 3) so that the
# machine's noise hits both modes alike; prints each run and the medians.
#   bench/kick.sh [REPEATS] [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/tools/vnotify-bench/vnotify-bench
[ -x "$bin" ] || { echo "kick.sh: build first (meson setup build && ninja -C build)" >&2; exit 1; }
reps=${1:-3}
iters=${2:-20000}
"$bin" kick --mode event --iterations 1000 --idle-ms 0 --json >/dev/null # warm-up
out=$(mktemp)
for i in $(seq "$reps"); do
	for mode in event poll; do
		"$bin" kick --mode "$mode" --iterations "$iters" --idle-ms 500 --json | tee -a "$out"
	done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = {}
for mode in ("event", "poll"):
    r = [x for x in rows if x["mode"] == mode]
    med[mode] = {k: statistics.median(x[k] for x in r) for k in ("p50_ns", "p99_ns", "idle_cpu_pct", "run_cpu_pct")}
print()
print(f"{'mode':6} {'p50 ns':>9} {'p99 ns':>9} {'CPU kicked':>11} {'CPU idle':>9}   (medians of {len(rows)//2} runs each)")
for mode, m in med.items():
    print(f"{mode:6} {m['p50_ns']:9.0f} {m['p99_ns']:9.0f} {m['run_cpu_pct']:10.1f}% {m['idle_cpu_pct']:8.2f}%")
print(f"poll/event p50 ratio: {med['poll']['p50_ns'] / med['event']['p50_ns']:.2f}")
PY
rm -f "$out"
