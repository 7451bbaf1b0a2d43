#!/usr/bin/env bash
# swiftvs iptv against nginx, in one interleaved run on this machine:
#  1. segment serving: the same 1-2 MB TS segments from nginx (sendfile) and from swiftvs iptv, both as VOD files
#     (sendfile) and as live segments (swiftvs from memory; nginx from the same bytes saved to disk), closed loop
#     at 64 and 512 connections; MB/s, p99, the server's CPU per MB, ratios to nginx;
#  2. viewers: VIEWERS simulated viewers (swiftvs bench hls), each on its own connection fetching the live playlist and
#     then the newest segment every 2 s, against swiftvs iptv; response times, cycle times, late cycles, errors.
#
# Fair set-up: each server has one thread (nginx worker_processes 1, sendfile on, access_log off; swiftvs iptv
# threads: 1), the load generator (swiftvs bench, 1 thread) the other core. Everything on 127.0.0.1; every load run
# is bounded in time; only the processes this script starts are stopped.
#
# Needs: ffmpeg nginx python3 (apt-get install ffmpeg nginx), a release build (swift build -c release).
# Knobs: DUR=10 (s per run), ROUNDS=2, CONNS="64 512", VIEWERS=1000, VIEWER_DUR=30, BITRATE=6M (segment size =
#        BITRATE x 2 s), SWIFTVS=.build/release/swiftvs, KEEP=0 (1 keeps the work folder).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-10}; ROUNDS=${ROUNDS:-2}; CONNS=${CONNS:-"64 512"}; VIEWERS=${VIEWERS:-1000}; VIEWER_DUR=${VIEWER_DUR:-30}
BITRATE=${BITRATE:-6M}; SWIFTVS=${SWIFTVS:-.build/release/swiftvs}; KEEP=${KEEP:-0}
HOST=127.0.0.1; NGX_PORT=${NGX_PORT:-18091}; SV_PORT=${SV_PORT:-18092}
for tool in ffmpeg nginx python3; do
    command -v "$tool" > /dev/null || { echo "needs $tool: apt-get install ffmpeg nginx" >&2; exit 1; }
done
[ -x "$SWIFTVS" ] || { echo "needs $SWIFTVS: swift build -c release" >&2; exit 1; }

W=$(mktemp -d /tmp/swiftvs-iptv-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2> /dev/null || true; done
    [ "$KEEP" = 1 ] || rm -rf "$W/www" "$W/hd.ts"
    echo "work folder: $W" >&2
}
trap cleanup EXIT

echo "making 1-2 MB segments (720p, $BITRATE CBR, 2 s GOP)..." >&2
mkdir -p "$W/www/vod/hd" "$W/www/live/hd"
ffmpeg -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 40 \
    -c:v libx264 -preset ultrafast -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 \
    -b:v "$BITRATE" -minrate "$BITRATE" -maxrate "$BITRATE" -bufsize "$BITRATE" -x264-params nal-hrd=cbr \
    -c:a aac -b:a 128k -f mpegts "$W/hd.ts"
ffmpeg -v error -y -i "$W/hd.ts" -c copy -f hls -hls_time 2 -hls_playlist_type vod \
    -hls_segment_filename "$W/www/vod/hd/seg_%03d.ts" "$W/www/vod/hd/index.m3u8"

chmod -R a+rX "$W"      # nginx's worker runs as an unprivileged user

cat > "$W/nginx.conf" << CONF
worker_processes 1;
daemon off;
pid $W/nginx.pid;
error_log $W/nginx.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on; tcp_nopush on; tcp_nodelay on;
    keepalive_requests 1000000; keepalive_timeout 60s;
    types { video/mp2t ts; application/vnd.apple.mpegurl m3u8; }
    server { listen $HOST:$NGX_PORT backlog=4096; root $W/www; }
}
CONF
nginx -c "$W/nginx.conf" -p "$W" > "$W/nginx.out" 2>&1 &
PIDS+=($!); NGX_PID=$!

cat > "$W/iptv.yaml" << CONF
listen: $HOST:$SV_PORT
threads: 1
window: 6
memory_segments: 400
vod: $W/www/vod
channels:
  - {id: hd, source: "file:$W/hd.ts"}
CONF
"$SWIFTVS" iptv --config "$W/iptv.yaml" --log-level warning > "$W/iptv.out" 2>&1 &
PIDS+=($!); SV_PID=$!
for _ in $(seq 100); do
    curl -sf "http://$HOST:$SV_PORT/healthz" > /dev/null 2>&1 && curl -sf "http://$HOST:$NGX_PORT/vod/hd/index.m3u8" > /dev/null 2>&1 && break
    sleep 0.2
done

# Live segments: the ones in swiftvs's playlist now (kept in memory for memory_segments), saved for nginx as well.
LIVE=$(curl -sf "http://$HOST:$SV_PORT/live/hd/index.m3u8" | grep -v '^#')
for s in $LIVE; do curl -sf -o "$W/www/live/hd/$s" "http://$HOST:$SV_PORT/live/hd/$s"; done
chmod -R a+rX "$W/www"
VOD=$(grep -v '^#' "$W/www/vod/hd/index.m3u8")
SEG_MB=$(du -cb "$W"/www/vod/hd/*.ts | tail -1 | awk -v n="$(echo "$VOD" | wc -w)" '{printf "%.2f", $1 / n / 1048576}')
LIVE_MB=$(du -cb "$W"/www/live/hd/*.ts | tail -1 | awk -v n="$(echo "$LIVE" | wc -w)" '{printf "%.2f", $1 / n / 1048576}')
echo "segments: $(echo "$VOD" | wc -w) VOD files of $SEG_MB MiB on average, $(echo "$LIVE" | wc -w) live segments of $LIVE_MB MiB" >&2

RES="$W/results.tsv"; : > "$RES"
ROUND=0
run() {  # run SERVER KIND CONNS PID URL...
    local server=$1 kind=$2 conns=$3 pid=$4; shift 4
    timeout $((DUR + 60)) "$SWIFTVS" bench http "$@" -t 1 -c "$conns" -d "${DUR}s" --timeout 10s --quiet \
        --watch "$pid" --json "$W/run.json" > /dev/null
    python3 - "$W/run.json" "$server" "$kind" "$conns" "$ROUND" >> "$RES" << 'PY'
import json, sys
p = json.load(open(sys.argv[1]))['phases'][0]
cpu = p['cpu'][0]['samples'] if p['cpu'] else []
mean = sum(s['percent'] for s in cpu) / len(cpu) if cpu else 0
mb = p['megabytesPerSecond']
print("\t".join(map(str, [sys.argv[2], sys.argv[3], sys.argv[4], mb, p['latency']['p99Ms'], p['lossPercent'], mean, mean / max(mb, 1e-9), sys.argv[5]])))
PY
    tail -1 "$RES" | awk -F'\t' '{printf "  %-7s %-5s c=%-4s %8.1f MB/s  p99 %7.1f ms  loss %.2f%%  server CPU %5.1f%%\n", $1, $2, $3, $4, $5, $6, $7}' >&2
}

for round in $(seq "$ROUNDS"); do
    ROUND=$round
    echo "round $round/$ROUNDS" >&2
    for c in $CONNS; do
        run nginx vod "$c" "$NGX_PID" $(for s in $VOD; do echo "http://$HOST:$NGX_PORT/vod/hd/$s"; done)
        run swiftvs vod "$c" "$SV_PID" $(for s in $VOD; do echo "http://$HOST:$SV_PORT/vod/hd/$s"; done)
        run nginx live "$c" "$NGX_PID" $(for s in $LIVE; do echo "http://$HOST:$NGX_PORT/live/hd/$s"; done)
        run swiftvs live "$c" "$SV_PID" $(for s in $LIVE; do echo "http://$HOST:$SV_PORT/live/hd/$s"; done)
    done
done

echo "viewers: $VIEWERS simulated viewers on swiftvs iptv (1 thread) for ${VIEWER_DUR}s..." >&2
timeout $((VIEWER_DUR + 60)) "$SWIFTVS" bench hls "http://$HOST:$SV_PORT/live/hd/index.m3u8" --viewers "$VIEWERS" \
    -d "${VIEWER_DUR}s" -t 1 --quiet --watch "$SV_PID" --json "$W/viewers.json" | tee "$W/viewers.txt" >&2

python3 - "$RES" "$W/viewers.json" "$VIEWERS" << 'PY' | tee "$W/summary.txt"
import json, sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
def pick(server, kind, c, i): return [float(r[i]) for r in rows if r[0] == server and r[1] == kind and r[2] == c]
print("segment serving (closed loop, keep-alive). MB/s, p99 and CPU per MB are medians over rounds; the ratio is")
print("swiftvs / nginx per round (each round runs both back to back), as its median and its range:")
print(f"{'kind':6} {'conns':>5} {'nginx MB/s':>11} {'swiftvs MB/s':>13} {'ratio':>6} {'(min-max)':>11} {'p99 ng/sv ms':>14} {'CPU/MB ng/sv %':>16}")
for kind in ["vod", "live"]:
    for c in sorted({r[2] for r in rows}, key=int):
        n, s = pick("nginx", kind, c, 3), pick("swiftvs", kind, c, 3)
        if not n or not s: continue
        ratios = [b / a for a, b in zip(n, s)]
        print(f"{kind:6} {c:>5} {statistics.median(n):11.1f} {statistics.median(s):13.1f} {statistics.median(ratios):6.2f} "
              f"{min(ratios):5.2f}-{max(ratios):<5.2f} {statistics.median(pick('nginx', kind, c, 4)):6.1f}/{statistics.median(pick('swiftvs', kind, c, 4)):<7.1f}"
              f" {statistics.median(pick('nginx', kind, c, 7)):7.3f}/{statistics.median(pick('swiftvs', kind, c, 7)):.3f}")
v = json.load(open(sys.argv[2]))
cpu = [x for x in v['cpu'] if x['name'] != 'bench']
server = sum(p['percent'] for p in cpu[0]['samples']) / max(len(cpu[0]['samples']), 1) if cpu else 0
seg, cyc = v['segmentLatency'], v['cycleTime']
ok = seg['p99Ms'] < 200 and cyc['p99Ms'] < 200 and not v['errors'] and v['lateCycles'] == 0
print(f"viewers: {v['viewers']} (each the playlist and the newest segment every {v['periodSeconds']:.0f} s, own connection): "
      f"{(v['playlists'] + v['segments']) / v['durationSeconds']:.0f} req/s, {v['megabytesPerSecond']:.1f} MB/s; "
      f"playlist p99 {v['playlistLatency']['p99Ms']:.2f} ms, segment p50 {seg['p50Ms']:.2f} / p99 {seg['p99Ms']:.2f} ms, "
      f"cycle p99 {cyc['p99Ms']:.2f} ms; late cycles {v['lateCycles']}, stale {v['stalePlaylists']}, errors {v['errors'] or 'none'}; "
      f"server CPU {server:.0f}%  -> p99 < 200 ms: {'yes' if ok else 'NO'}")
PY
