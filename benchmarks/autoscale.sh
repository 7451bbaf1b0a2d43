#!/usr/bin/env bash
# How fast the autoscaler reacts to a load step, in one run: the director's autoscaler with its defaults, and the
# same HPA arithmetic run as Kubernetes runs it (a 15 s loop over metrics 20 s old, as kubelet + metrics-server
# deliver them; kubernetes#110317 measured 27.5 s from a metric change to a decision on average).
#
# Replicas are `swiftvs realserver --workers 4 --service-time 20ms`: 200 req/s each at most. The autoscaler follows
# requests_per_second with a target of 75 per replica, min 1, max 4. An open-loop load steps from LOW to HIGH req/s
# and holds for STEP + STEADY seconds. Reported per variant:
#   - seconds from the step to the first decision to scale, and to a new replica serving its first request;
#   - seconds until p99 is back under TARGET_P99_MS (and stays there for 5 s);
#   - requests failed, and requests answered in seconds whose p99 was over the target, during the step;
#   - scale events during the STEADY part (flapping).
# Each variant's `swiftvs bench` report (VARIANT.html in the output directory) charts the replicas over time beside
# throughput, response time and CPU, with each decision marked.
#
#   swift build -c release --product swiftvs
#   bash benchmarks/autoscale.sh                         # about 2 × (10 + 60 + 300) s
#   STEADY=60 bash benchmarks/autoscale.sh               # quicker
#   VARIANTS=swiftvs STEADY=30 bash benchmarks/autoscale.sh
#
# Everything listens on 127.0.0.1; every process it starts is stopped by PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-$PWD/.build/release/swiftvs}
LOW=${LOW:-30}
HIGH=${HIGH:-300}
WARM=${WARM:-10}
STEP=${STEP:-60}
STEADY=${STEADY:-300}
TARGET_P99_MS=${TARGET_P99_MS:-100}
VARIANTS=${VARIANTS:-"swiftvs hpa"}
PORT=${PORT:-19380}
ADMIN=${ADMIN:-19390}
REPLICA_PORTS=${REPLICA_PORTS:-19400-19409}
OUT=${OUT:-$(mktemp -d /tmp/swiftvs-autoscale.XXXXXX)}

[ -x "$BIN" ] || { echo "no $BIN: swift build -c release --product swiftvs" >&2; exit 1; }
command -v curl > /dev/null || { echo "needs curl" >&2; exit 1; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null || true; done
}
trap cleanup EXIT

config() { # variant
    local timing=""
    if [ "$1" = hpa ]; then timing="      sync_period: 15s
      metrics_delay: 20s"; fi
    cat << EOF
threads: 1
admin: {listen: 127.0.0.1:$ADMIN}
services:
  - name: api
    listen: 127.0.0.1:$PORT
    scheduler: wlc
    autoscale:
      min_replicas: 1
      max_replicas: 4
$timing
      metrics: [{type: requests_per_second, average: 75}]
      process:
        command: [$BIN, realserver, --listen, "{host}:{port}", --workers, "4", --service-time, 20ms]
        ports: $REPLICA_PORTS
        log: $OUT/replica-{port}.log
EOF
}

for variant in $VARIANTS; do
    echo "== $variant" >&2
    config "$variant" > "$OUT/$variant.yaml"
    "$BIN" director --config "$OUT/$variant.yaml" > "$OUT/$variant.director.log" 2>&1 &
    director=$!
    pids+=("$director")
    for _ in $(seq 1 150); do
        curl -sf "http://127.0.0.1:$ADMIN/api/scale/api" 2> /dev/null | grep -q '"ready":1' && break
        sleep 0.2
    done
    # The director's view every 200 ms: replicas and decisions, and each server's request count.
    total=$((WARM + STEP + STEADY + 5))
    (
        end=$(($(date +%s) + total))
        while [ "$(date +%s)" -lt "$end" ]; do
            printf '{"t":%s,"scale":%s,"service":%s}\n' "$(date +%s.%N)" \
                "$(curl -s -m 1 "http://127.0.0.1:$ADMIN/api/scale/api" | tr -d '\n' || true)" \
                "$(curl -s -m 1 "http://127.0.0.1:$ADMIN/api/services/api" | tr -d '\n' || true)"
            sleep 0.2
        done
    ) > "$OUT/$variant.poll" &
    poller=$!
    pids+=("$poller")
    "$BIN" bench http "http://127.0.0.1:$PORT/" --rate "$LOW" -d "${WARM}s" --quiet --json "$OUT/$variant.warm.json" \
        > /dev/null
    date +%s.%N > "$OUT/$variant.step"
    "$BIN" bench http "http://127.0.0.1:$PORT/" --rate "$HIGH" -d "$((STEP + STEADY))s" --interval 1s --timeout 5s \
        -c 2000 --quiet --json "$OUT/$variant.json" --html "$OUT/$variant.html" --replicas-from "127.0.0.1:$ADMIN" --watch "$director" \
        > "$OUT/$variant.txt"
    kill "$poller" 2> /dev/null || true
    wait "$poller" 2> /dev/null || true
    kill "$director"
    wait "$director" 2> /dev/null || true
done

python3 - "$OUT" "$TARGET_P99_MS" "$STEP" "$VARIANTS" << 'EOF'
import json, sys
out, target, step, variants = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4].split()
print(f"Load step {out}: results per variant (seconds from the step)\n")
rows = []
for v in variants:
    t0 = float(open(f"{out}/{v}.step").read())
    polls = []
    for line in open(f"{out}/{v}.poll"):
        try:
            polls.append(json.loads(line))
        except ValueError:
            pass
    first = None
    decision = serving = None
    desired = []
    for p in polls:
        scale, service = p.get("scale"), p.get("service")
        if not scale or not service:
            continue
        t = p["t"] - t0
        if first is None:
            first = {s["address"] for s in service["servers"]}
        if t >= 0:
            desired.append((t, scale["desired"]))
            if decision is None and scale["desired"] > 1:
                decision = t
            if serving is None and any(s["address"] not in first and s["total"] > 0 for s in service["servers"]):
                serving = t
    report = json.load(open(f"{out}/{v}.json"))["phases"][0]
    timeline = report["timeline"]
    recovered = None
    for i, bucket in enumerate(timeline):
        window = timeline[i:i + 5]
        if len(window) == 5 and all(b["p99Ms"] <= target and b["failed"] == 0 for b in window):
            if any(b["p99Ms"] > target for b in timeline[:i]):
                recovered = bucket["t"] - 1
            else:
                recovered = 0.0
            break
    over = sum(b["succeeded"] for b in timeline if b["p99Ms"] > target)
    counters = report["counters"]
    failed = counters["attempted"] - counters["succeeded"]
    steady = [d for t, d in desired if t >= step]
    events = sum(1 for a, b in zip(steady, steady[1:]) if a != b)
    peak = max((d for _, d in desired), default=1)
    rows.append((v, decision, serving, recovered, failed, over, events, peak, report["requestsPerSecond"]))
fmt = lambda x: "-" if x is None else f"{x:.1f}"
print(f"{'variant':9} {'decision':>9} {'serving':>9} {'p99 ok':>8} {'failed':>7} {'over p99':>9} {'steady events':>14} {'replicas':>9} {'req/s':>8}")
for v, d, s, r, f, o, e, peak, rps in rows:
    print(f"{v:9} {fmt(d):>9} {fmt(s):>9} {fmt(r):>8} {f:>7} {o:>9} {e:>14} {peak:>9} {rps:>8.1f}")
print(f"\np99 target {target:g} ms; 'over p99' counts the requests answered in 1-s buckets whose p99 was over it.")
print(f"Charts (replicas beside throughput, p99 and CPU): {' '.join(f'{out}/{v}.html' for v in variants)}")
EOF
