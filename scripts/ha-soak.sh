#!/usr/bin/env bash
# Runs the HA lab's "graceful failover under constant load" test RUNS times (default 30), optionally beside a CPU
# hog (HOG=1: one busy loop per core, each bounded by `timeout`), and counts the runs that fail. The failing runs'
# output (with both directors' logs, which the test prints) is kept in the work folder it names.
#
# Needs root (network namespaces) and a debug build with its tests (swift build --build-tests).
# Usage: sudo scripts/ha-soak.sh            RUNS=30 HOG=0
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}; HOG=${HOG:-0}
work=$(mktemp -d /tmp/swiftvs-ha-soak.XXXXXX)
hogs=()
stop_hogs() { for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done; hogs=(); }
trap stop_hogs EXIT
failed=0
for run in $(seq 1 "$RUNS"); do
    if [ "$HOG" = 1 ]; then
        for _ in $(seq 1 "$(nproc)"); do timeout 120 sh -c 'while :; do :; done' & hogs+=($!); done
    fi
    log="$work/run-$run.log"
    if timeout 300 swift test --skip-build --filter "failoverUnderLoad" > "$log" 2>&1; then
        loss=$(grep -o "lost [0-9.e-]*% of [0-9]*" "$log" | tail -1)
        echo "run $run: ok ($loss)"
        rm -f "$log"
    else
        failed=$((failed + 1))
        echo "run $run: FAILED ($(grep -o "lost [0-9.e-]*% of [0-9]*" "$log" | tail -1)); output in $log"
    fi
    stop_hogs
done
echo "ha-soak: $failed of $RUNS runs failed (HOG=$HOG); failing runs' output in $work"
[ "$failed" = 0 ]
