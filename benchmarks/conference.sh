#!/usr/bin/env bash
# Conference signaling under load, as docs/conference.md describes it, in two runs:
#   1. one `swiftvs conference signal` replica on one thread, loaded directly: ROOMS × PARTICIPANTS WebSockets
#      joining over RAMP, then a chat message per participant per second for DURATION;
#   2. the same load through the director (one thread, room affinity: mh on the room + persistence {key: hash})
#      over two signal replicas: how it scales, and the director's CPU per message it relays.
# Reported by `swiftvs bench conference` (join time and delivery p50/p99, errors, CPU and memory per process, memory
# per participant); this script adds the director's CPU microseconds per WebSocket frame it relays (each chat
# message in once, out to every participant of its room).
#
#   swift build -c release --product swiftvs
#   bash benchmarks/conference.sh                              # 1000 rooms × 4, 20 s ramp, 60 s hold: about 3 min
#   ROOMS=200 DURATION=20s bash benchmarks/conference.sh       # quicker
#
# Everything listens on 127.0.0.1; every process it starts is stopped by PID at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-$PWD/.build/release/swiftvs}
ROOMS=${ROOMS:-1000}
PARTICIPANTS=${PARTICIPANTS:-4}
RAMP=${RAMP:-20s}
DURATION=${DURATION:-60s}
PORT=${PORT:-19500}
OUT=${OUT:-$(mktemp -d /tmp/swiftvs-conference.XXXXXX)}
mkdir -p "$OUT"

[ -x "$BIN" ] || { echo "no $BIN: swift build -c release --product swiftvs" >&2; exit 1; }
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done; wait 2> /dev/null || true; }
trap cleanup EXIT
ready() { for _ in $(seq 1 100); do curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$1/healthz" && return 0; sleep 0.1; done; echo "127.0.0.1:$1 never answered" >&2; exit 1; }

S1=$((PORT + 1)) S2=$((PORT + 2))
"$BIN" conference signal --listen 127.0.0.1:$S1 --threads 1 --log-level error > "$OUT/signal-1.log" 2>&1 &
P1=$!; pids+=($P1)
ready $S1
echo "== 1. one signal replica, 1 thread: $ROOMS rooms × $PARTICIPANTS" >&2
"$BIN" bench conference ws://127.0.0.1:$S1 --rooms "$ROOMS" --participants "$PARTICIPANTS" --ramp "$RAMP" --room-prefix direct \
    -d "$DURATION" --watch $P1 --json "$OUT/direct.json" --html "$OUT/direct.html" --quiet | tee "$OUT/direct.txt" || true

"$BIN" conference signal --listen 127.0.0.1:$S2 --threads 1 --log-level error > "$OUT/signal-2.log" 2>&1 &
P2=$!; pids+=($P2)
ready $S2
cat > "$OUT/director.yaml" << YAML
threads: 1
admin: off
services:
  - name: signal
    listen: 127.0.0.1:$PORT
    protocol: http
    scheduler: mh
    scheduler_flags: [fallback]
    hash: {query: room}
    persistence: {key: hash, timeout: 60}
    servers: [127.0.0.1:$S1, 127.0.0.1:$S2]
YAML
"$BIN" director --config "$OUT/director.yaml" > "$OUT/director.log" 2>&1 &
PD=$!; pids+=($PD)
ready $PORT
echo "== 2. through the director over two signal replicas" >&2
"$BIN" bench conference ws://127.0.0.1:$PORT --rooms "$ROOMS" --participants "$PARTICIPANTS" --ramp "$RAMP" --room-prefix director \
    -d "$DURATION" --watch $P1 --watch $P2 --watch $PD --json "$OUT/director.json" --html "$OUT/director.html" \
    --quiet | tee "$OUT/director.txt" || true

python3 - "$OUT" "$PD" << 'PY'
import json, sys
out, director = sys.argv[1], sys.argv[2]
for name in ("direct", "director"):
    r = json.load(open(f"{out}/{name}.json"))
    line = (f"{name:9} joined {r['joined']}/{r['rooms'] * r['participants']}  join p50 {r['joinTime']['p50Ms']:.1f} "
            f"p99 {r['joinTime']['p99Ms']:.1f} ms  delivery p50 {r['delivery']['p50Ms']:.1f} p99 {r['delivery']['p99Ms']:.1f} ms  "
            f"{r['messagesPerSecond']:.0f} msg/s  errors {sum(r['errors'].values())}")
    for m in r["memory"]:
        if m["name"] != "bench" and m.get("perParticipantKiB") is not None:
            line += f"  {m['name']} {m['perParticipantKiB']:.1f} KiB/participant"
    print(line)
    for c in r["cpu"]:
        if c["name"].endswith(f"[{director}]"):
            busy = [p for p in c["samples"] if p["t"] > r["rampSeconds"]]
            cpu_seconds = sum(p["percent"] for p in busy) / 100  # one sample a second
            # each chat message crosses the director once in and once out to every participant (its sender's echo too)
            frames = r["sent"] * (1 + r["participants"]) * len(busy) / max(r["durationSeconds"], 1)
            if frames:
                print(f"director  {cpu_seconds / len(busy) * 100:.0f}% of a core during the hold; "
                      f"{cpu_seconds / frames * 1e6:.1f} µs CPU per WebSocket message relayed")
PY
echo "reports: $OUT/direct.html $OUT/director.html" >&2
