#!/usr/bin/env bash
# Cross-check of `swiftvs bench http` against wrk and httperf on the same nginx target, in one interleaved run.
#
# One nginx (1 worker, sendfile, access_log off) on 127.0.0.1 serves /small (~100 B). Closed loop: wrk and
# swiftvs bench, both with 2 threads and keep-alive, at each CONNS; their req/s ratio says whether the bench is as
# efficient a load generator as wrk (the nginx worker saturates one core, the client has the other). Open loop:
# httperf and swiftvs bench at fixed rates, one request per connection (httperf --num-calls 1, as the IPTV study ran
# it); both should report the offered rate, no errors and similar reply times. Every round runs every tool once, so
# drift shows as spread rather than bias. Also reported: each client's CPU (from /proc, µs per request).
#
# Needs: nginx wrk httperf (apt-get install nginx wrk httperf), a release build (swift build -c release).
# Knobs: DUR=10 seconds per load, ROUNDS=3, CONNS="64 256", RATES="1000 3000", PORT=18090,
#        SWIFTVS=.build/release/swiftvs, KEEP=0.
# Traffic stays on 127.0.0.1; every load is bounded in time (and httperf also in count); only processes it started are
# stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10}; ROUNDS=${ROUNDS:-3}; CONNS=${CONNS-64 256}; RATES=${RATES-1000 3000}
PORT=${PORT:-18090}; SWIFTVS=${SWIFTVS:-.build/release/swiftvs}; HOST=127.0.0.1; HZ=$(getconf CLK_TCK)
FDLIM=$(ulimit -Hn); [ "$FDLIM" = unlimited ] && FDLIM=65536
ulimit -n "$FDLIM"

for tool in nginx wrk httperf; do
    command -v "$tool" > /dev/null || { echo "needs $tool: apt-get install nginx wrk httperf" >&2; exit 1; }
done
[ -x "$SWIFTVS" ] || { echo "needs $SWIFTVS: swift build -c release" >&2; exit 1; }

W=$(mktemp -d /tmp/swiftvs-bench-vs-wrk.XXXXXX); chmod 755 "$W"
RES="$W/results.csv"
echo "model,round,tool,conns_or_rate,rps,p50ms,p99ms,errors,client_cpu_pct,client_us_per_req" > "$RES"
NGINX_PID=""
cleanup() {
    if [ -n "$NGINX_PID" ]; then
        kill -TERM "$NGINX_PID" 2> /dev/null || true
        for _ in $(seq 50); do kill -0 "$NGINX_PID" 2> /dev/null || break; sleep 0.1; done
        kill -KILL "$NGINX_PID" 2> /dev/null || true
    fi
    [ "${KEEP:-0}" = 1 ] || find "$W" -mindepth 1 -maxdepth 1 ! -name '*.csv' ! -name '*.txt' -exec rm -rf {} +
    echo "results in $W" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if (exec 3<> "/dev/tcp/$HOST/$PORT") 2> /dev/null; then echo "port $PORT is in use (set PORT)" >&2; exit 1; fi
mkdir -p "$W/www"
printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.0,\nseg0.ts\n#EXT-X-ENDLIST\n#pad0123456789\n' > "$W/www/small"
chmod 644 "$W/www/small"
cat > "$W/nginx.conf" << CONF
worker_processes 1;
daemon off;
pid $W/nginx.pid;
error_log $W/nginx.err warn;
worker_rlimit_nofile $FDLIM;
events { worker_connections $(( (FDLIM - 200) )); }
http {
    access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000; keepalive_timeout 65;
    server { listen $HOST:$PORT backlog=4096; root $W/www; location / { } }
}
CONF
nginx -c "$W/nginx.conf" -p "$W" > "$W/nginx.out" 2>&1 &
NGINX_PID=$!
for _ in $(seq 100); do (exec 3<> "/dev/tcp/$HOST/$PORT") 2> /dev/null && break; sleep 0.05; done
URL="http://$HOST:$PORT/small"

ticks() {  # utime+stime of a process and its children (the client runs under `timeout`)
    local t=0 c v
    for c in $1 $(pgrep -P "$1" 2> /dev/null); do
        v=$(awk '{sub(/^.*\) /,""); print $12+$13}' "/proc/$c/stat" 2> /dev/null) || v=0
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
# Runs a client command in the background, samples its CPU (all threads) just before it exits.
measure() {  # $1 = output file, rest = command
    local out=$1; shift
    local t0 t1 start end pid last=0
    start=$(date +%s.%N)
    "$@" > "$out" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2> /dev/null; do
        # Keep the highest reading: the client may exit a moment before `timeout` does.
        t1=$(ticks "$pid"); [ "$t1" -gt "$last" ] && last=$t1
        sleep 0.05
    done
    wait "$pid" || true
    end=$(date +%s.%N)
    echo "$last $(echo "$end - $start" | bc)"
}

for round in $(seq "$ROUNDS"); do
    for c in $CONNS; do
        # wrk: -t2 like the bench's 2 event loops.
        read -r t secs < <(measure "$W/wrk.txt" timeout $((DUR + 30)) wrk -t2 -c"$c" -d"${DUR}s" --latency "$URL")
        rps=$(awk '/Requests\/sec/ {print $2}' "$W/wrk.txt")
        p50=$(awk '$1=="50%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$W/wrk.txt")
        p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$W/wrk.txt")
        err=$(awk '/Socket errors|Non-2xx/ {for (i=1;i<=NF;i++) if ($i ~ /^[0-9]+,?$/) s+=$i} END {print s+0}' "$W/wrk.txt")
        cpu=$(echo "scale=1; $t * 100 / $HZ / $secs" | bc); us=$(echo "scale=2; $t * 1000000 / $HZ / ($rps * $DUR)" | bc)
        echo "closed,$round,wrk,$c,$rps,$p50,$p99,$err,$cpu,$us" >> "$RES"
        sleep 1
        read -r t secs < <(measure "$W/sv.txt" timeout $((DUR + 30)) "$SWIFTVS" bench http "$URL" -t 2 -c "$c" -d "${DUR}s" --quiet --json "$W/sv.json")
        read -r rps p50 p99 err < <(python3 -c "import json,sys; p=json.load(open('$W/sv.json'))['phases'][0]; print(p['requestsPerSecond'], p['latency']['p50Ms'], p['latency']['p99Ms'], p['counters']['attempted']-p['counters']['succeeded'])")
        cpu=$(echo "scale=1; $t * 100 / $HZ / $secs" | bc); us=$(echo "scale=2; $t * 1000000 / $HZ / ($rps * $DUR)" | bc)
        echo "closed,$round,swiftvs,$c,$rps,$p50,$p99,$err,$cpu,$us" >> "$RES"
        sleep 1
    done
    for r in $RATES; do
        n=$((r * DUR))
        read -r t secs < <(measure "$W/hp.txt" timeout $((DUR + 60)) httperf --hog --server "$HOST" --port "$PORT" --uri /small --rate "$r" --num-conns "$n" --num-calls 1 --timeout 5)
        rps=$(awk '/^Total: connections/ {print $7 / $9}' "$W/hp.txt")  # replies / test-duration
        rt=$(awk '/^Reply time/ {print $5}' "$W/hp.txt")
        err=$(awk '/^Errors: total/ {print $3}' "$W/hp.txt")
        cpu=$(echo "scale=1; $t * 100 / $HZ / $secs" | bc); us=$(echo "scale=2; $t * 1000000 / $HZ / $n" | bc)
        echo "open,$round,httperf,$r,$rps,$rt,,$err,$cpu,$us" >> "$RES"
        sleep 1
        read -r t secs < <(measure "$W/sv.txt" timeout $((DUR + 30)) "$SWIFTVS" bench http "$URL" -t 2 --rate "$r" --close -d "${DUR}s" --quiet --json "$W/sv.json")
        read -r rps p50 p99 err < <(python3 -c "import json,sys; p=json.load(open('$W/sv.json'))['phases'][0]; print(p['requestsPerSecond'], p['latency']['meanMs'], p['latency']['p99Ms'], p['counters']['attempted']-p['counters']['succeeded'])")
        cpu=$(echo "scale=1; $t * 100 / $HZ / $secs" | bc); us=$(echo "scale=2; $t * 1000000 / $HZ / $n" | bc)
        echo "open,$round,swiftvs,$r,$rps,$p50,$p99,$err,$cpu,$us" >> "$RES"
        sleep 1
    done
done

python3 - "$RES" << 'PY' | tee "$W/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def mean(tool, model, key, x):
    v = [float(r[key]) for r in rows if r['tool'] == tool and r['model'] == model and r['conns_or_rate'] == x and r[key]]
    return (statistics.mean(v), (max(v) - min(v)) / statistics.mean(v) if v and statistics.mean(v) else 0) if v else (0, 0)
print("closed loop (keep-alive, 2 threads), nginx /small:")
print(f"{'conns':>6} {'wrk req/s':>10} {'bench req/s':>12} {'bench/wrk':>10} {'wrk µs/req':>11} {'bench µs/req':>13} {'wrk p99':>8} {'bench p99':>10}")
for c in sorted({r['conns_or_rate'] for r in rows if r['model'] == 'closed'}, key=int):
    w, ws = mean('wrk', 'closed', 'rps', c); s, ss = mean('swiftvs', 'closed', 'rps', c)
    print(f"{c:>6} {w:>10.0f} {s:>12.0f} {s / w if w else 0:>10.3f} {mean('wrk','closed','client_us_per_req',c)[0]:>11.2f} "
          f"{mean('swiftvs','closed','client_us_per_req',c)[0]:>13.2f} {mean('wrk','closed','p99ms',c)[0]:>8.2f} {mean('swiftvs','closed','p99ms',c)[0]:>10.2f}"
          f"   (spread wrk {ws:.0%}, bench {ss:.0%})")
print("open loop (one request per connection), nginx /small:")
print(f"{'rate':>6} {'httperf req/s':>14} {'bench req/s':>12} {'bench/httperf':>14} {'httperf errors':>15} {'bench errors':>13} {'httperf ms':>11} {'bench mean ms':>14}")
for r in sorted({r['conns_or_rate'] for r in rows if r['model'] == 'open'}, key=int):
    h, _ = mean('httperf', 'open', 'rps', r); s, _ = mean('swiftvs', 'open', 'rps', r)
    print(f"{r:>6} {h:>14.0f} {s:>12.0f} {s / h if h else 0:>14.3f} {mean('httperf','open','errors',r)[0]:>15.0f} "
          f"{mean('swiftvs','open','errors',r)[0]:>13.0f} {mean('httperf','open','p50ms',r)[0]:>11.2f} {mean('swiftvs','open','p50ms',r)[0]:>14.2f}")
PY
