#!/usr/bin/env bash
# SwiftVS against HAProxy and nginx on this machine, in one interleaved run.
#
# Three nginx real servers on 127.0.0.1 serve /small (~100 B) and /1m (1 MiB). In front of them, one at a time on
# the same port: nothing (direct), HAProxy (nbthread 1), nginx (1 worker, upstream keep-alive) and the SwiftVS
# director (threads: 1), in http mode and then in tcp mode (HAProxy mode tcp, nginx stream). wrk (1 thread) loads
# each with keep-alive at 64 and 256 connections on /small and 64 on /1m. Every round runs every proxy once, in an
# order rotated by one each round (no proxy always follows the same one), so drift shows as spread rather than bias.
# Reported: req/s, MiB/s, p50/p99, proxy CPU µs per request (per MiB on /1m) from /proc, and ratios against HAProxy.
#
# MODES=https and h2 put TLS in front (ECDSA P-256, the same certificate for both; HAProxy and SwiftVS only, nginx is
# left out of these): https runs wrk keep-alive on /small (SMALL_CONNS), then new TLS connections one after another
# with openssl s_time (handshakes/s, a full handshake each (/hs-new) and resumed sessions (/hs-reuse)); h2 runs
# h2load with 64 streams over 4 connections (/small, conns 4). ACCESS_LOG=1 adds "swiftlog" in http mode: the
# director with its access log written to a file, to set against swiftvs without it.
#
# Needs: haproxy nginx libnginx-mod-stream wrk (apt-get install ...), for https/h2 also openssl and nghttp2-client
# (h2load), a release build (swift build -c release).
# Knobs (environment): DUR=10 seconds per load, WARM=2, ROUNDS=3, MODES="http tcp", SMALL_CONNS="64 256",
# BIG_CONNS=64, PORT=18080, BACKEND_BASE=19001, SWIFTVS=.build/release/swiftvs, KEEP=0 (keep the work dir),
# SUMMARY=results.csv (print the summary of an earlier run's results and exit; several files pool their rounds),
# BASELINE=/path/to/an/older/swiftvs (runs it too, as "baseline", in the same rotation: before/after in one run).
# Traffic stays on 127.0.0.1; every load is bounded by wrk's -d and a timeout; only processes it started are stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10}; WARM=${WARM:-2}; ROUNDS=${ROUNDS:-3}; MODES=${MODES:-http tcp}
SMALL_CONNS=${SMALL_CONNS-64 256}; BIG_CONNS=${BIG_CONNS-64}  # set empty to skip
PORT=${PORT:-18080}; BACKEND_BASE=${BACKEND_BASE:-19001}; SWIFTVS=${SWIFTVS:-.build/release/swiftvs}
HOST=127.0.0.1; HZ=$(getconf CLK_TCK)
BACKEND_PORTS="$BACKEND_BASE $((BACKEND_BASE + 1)) $((BACKEND_BASE + 2))"
FDLIM=$(ulimit -Hn); [ "$FDLIM" = unlimited ] && FDLIM=65536
MAXCONN=$(( (FDLIM - 200) / 2 )); [ "$MAXCONN" -gt 50000 ] && MAXCONN=50000

# ---- summary of a results.csv: medians over rounds, and SwiftVS / HAProxy ratios taken round by round (the two
# ran less than a minute apart, so drift of the VM cancels), as the median with the range over rounds. A single
# round hit by a stall of the VM moves a mean a lot and a median little. Given several results.csv files, it pools
# their rounds.
summarize() {
awk -F, '
function median(list,    v, n, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) { t = v[i] + 0; for (j = i - 1; j >= 1 && v[j] + 0 > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function range(list,    v, n, i, lo, hi) {
    n = split(list, v, " "); lo = hi = v[1] + 0
    for (i = 2; i <= n; i++) { if (v[i] + 0 < lo) lo = v[i] + 0; if (v[i] + 0 > hi) hi = v[i] + 0 }
    return sprintf("(%.2f-%.2f)", lo, hi)
}
function ratio(s, h) { return h > 0 ? s / h : 0 }
FNR == 1 { file++; next }
{
    $2 = file ":" $2
    k = $1 SUBSEP $3 SUBSEP $4 SUBSEP $5; keys[k] = 1
    rps[k] = rps[k] " " $6; mib[k] = mib[k] " " $7; p50[k] = p50[k] " " $8; p99[k] = p99[k] " " $9
    err[k] += $10; cpu[k] = cpu[k] " " $11; us[k] = us[k] " " $12
    r = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4 SUBSEP $5; R6[r] = $6; R7[r] = $7; R9[r] = $9; R12[r] = $12; rounds[$2] = 1
    if ($3 == "baseline") has_baseline = 1
    if ($3 == "swiftlog") has_log = 1
} END {
    printf "\nmedians over rounds\n"
    printf "%-5s %-8s %-7s %5s %10s %9s %8s %8s %6s %7s %9s\n", "mode", "proxy", "path", "conns", "req/s", "MiB/s", "p50 ms", "p99 ms", "errors", "cpu %", "us/unit"
    nm = split("http tcp https h2", modes, " "); nn = split("direct haproxy nginx swiftvs swiftlog baseline", names, " ")
    nl = split("/small:64 /small:256 /1m:64 /small:4 /hs-new:1 /hs-reuse:1", loads, " ")
    for (mi = 1; mi <= nm; mi++) for (li = 1; li <= nl; li++) for (ni = 1; ni <= nn; ni++) {
        split(loads[li], pc, ":"); k = modes[mi] SUBSEP names[ni] SUBSEP pc[1] SUBSEP pc[2]
        if (!(k in keys)) continue
        printf "%-5s %-8s %-7s %5s %10.0f %9.1f %8.3f %8.3f %6d %7.1f %9.1f\n", modes[mi], names[ni], pc[1], pc[2],
            median(rps[k]), median(mib[k]), median(p50[k]), median(p99[k]), err[k], median(cpu[k]), median(us[k])
    }
    versus("swiftvs", "haproxy", "SwiftVS / HAProxy")
    if (has_baseline) versus("swiftvs", "baseline", "SwiftVS / baseline (the BASELINE binary)")
    if (has_log) versus("swiftlog", "swiftvs", "SwiftVS with its access log / without")
}
function versus(a, b, title,    mi, li, pc, rd, s, h, found, behind, rounds_behind) {
    printf "\n%s, same round: median (range over rounds)\n", title
    printf "(req/s and MiB/s: higher is better; p99 and CPU per unit: lower is better)\n"
    printf "%-5s %-7s %5s %6s  %-17s  %-17s  %-17s  %s\n", "mode", "path", "conns", "rounds", "req/s", "MiB/s", "p99", "us/unit"
    for (mi = 1; mi <= nm; mi++) for (li = 1; li <= nl; li++) {
        split(loads[li], pc, ":")
        delete q6; delete q7; delete q9; delete q12; found = 0; behind = 0
        for (rd in rounds) {
            s = modes[mi] SUBSEP rd SUBSEP a SUBSEP pc[1] SUBSEP pc[2]
            h = modes[mi] SUBSEP rd SUBSEP b SUBSEP pc[1] SUBSEP pc[2]
            if (!(s in R6) || !(h in R6)) continue
            found++; if (R6[s] < R6[h]) behind++
            q6[1] = q6[1] " " ratio(R6[s], R6[h]); q7[1] = q7[1] " " ratio(R7[s], R7[h])
            q9[1] = q9[1] " " ratio(R9[s], R9[h]); q12[1] = q12[1] " " ratio(R12[s], R12[h])
        }
        if (!found) continue
        printf "%-5s %-7s %5s %6d  %5.2f %-11s  %5.2f %-11s  %5.2f %-11s  %5.2f %-11s\n", modes[mi], pc[1], pc[2],
            found, median(q6[1]), range(q6[1]), median(q7[1]), range(q7[1]), median(q9[1]), range(q9[1]), median(q12[1]), range(q12[1])
        if (behind) rounds_behind = rounds_behind sprintf("  %s %s c%s: %s behind %s in %d of %d rounds\n", modes[mi], pc[1], pc[2], a, b, behind, found)
    }
    if (rounds_behind != "") printf "req/s\n%s", rounds_behind
}' "$@"
}

# shellcheck disable=SC2086  # SUMMARY is a list of files
if [ -n "${SUMMARY:-}" ]; then summarize $SUMMARY; exit 0; fi

for tool in haproxy nginx wrk; do
    command -v "$tool" > /dev/null || { echo "needs $tool: apt-get install haproxy nginx libnginx-mod-stream wrk" >&2; exit 1; }
done
[ -x "$SWIFTVS" ] || { echo "needs $SWIFTVS: swift build -c release" >&2; exit 1; }
case " $MODES " in *" https "*|*" h2 "*)
    for tool in openssl h2load; do
        command -v "$tool" > /dev/null || { echo "MODES=https/h2 need $tool: apt-get install openssl nghttp2-client" >&2; exit 1; }
    done ;;
esac
[ -z "${BASELINE:-}" ] || [ -x "$BASELINE" ] || { echo "BASELINE=$BASELINE is not an executable" >&2; exit 1; }
STREAM_SO=$(nginx -V 2>&1 | sed -n 's/.*--modules-path=\([^ ]*\).*/\1/p')/ngx_stream_module.so

W=$(mktemp -d /tmp/swiftvs-bench.XXXXXX); chmod 755 "$W"
RES="$W/results.csv"
echo "mode,round,proxy,path,conns,rps,mibps,p50ms,p99ms,errors,proxy_cpu_pct,proxy_us_per_unit" > "$RES"
STARTED=(); BACKEND_PIDS=(); PROXY_PID=""

stop_pid() {
    local p=$1
    kill -TERM "$p" 2> /dev/null || return 0
    for _ in $(seq 50); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2> /dev/null || true
    wait "$p" 2> /dev/null || true
}
cleanup() {
    [ -n "$PROXY_PID" ] && stop_pid "$PROXY_PID"
    for p in "${STARTED[@]}"; do stop_pid "$p"; done
    [ "${KEEP:-0}" = 1 ] || find "$W" -mindepth 1 -maxdepth 1 ! -name '*.csv' ! -name '*.txt' -exec rm -rf {} +
    echo "results in $W" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {
    for _ in $(seq 100); do (exec 3<> "/dev/tcp/$HOST/$1") 2> /dev/null && return 0; sleep 0.05; done
    echo "port $1 did not open" >&2; return 1
}
port_free() {
    if (exec 3<> "/dev/tcp/$HOST/$1") 2> /dev/null; then echo "port $1 is in use (set PORT / BACKEND_BASE)" >&2; exit 1; fi
}
cpu_ticks() {  # utime+stime of the pids and their children (nginx workers)
    local t=0 p c v
    for p in "$@"; do
        for c in $p $(pgrep -P "$p" 2> /dev/null); do
            v=$(awk '{sub(/^.*\) /,""); print $12+$13}' "/proc/$c/stat" 2> /dev/null) || v=0
            t=$((t + ${v:-0}))
        done
    done
    echo "$t"
}
ngx_head() {
    printf 'worker_processes 1;\ndaemon off;\npid %s/%s.pid;\nerror_log %s/%s.err warn;\nworker_rlimit_nofile %s;\nevents { worker_connections %s; }\n' \
        "$W" "$1" "$W" "$1" "$FDLIM" "$MAXCONN"
}

# ---- real servers
mkdir -p "$W/www"
printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.0,\nseg0.ts\n#EXT-X-ENDLIST\n#pad0123456789\n' > "$W/www/small"
head -c 1048576 /dev/urandom > "$W/www/1m"; chmod 644 "$W/www/"*
for p in $BACKEND_PORTS $PORT; do port_free "$p"; done
for p in $BACKEND_PORTS; do
    { ngx_head "be$p"; cat << NGX
http {
  access_log off; sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000; keepalive_timeout 60s;
  client_body_temp_path $W/t$p-b; proxy_temp_path $W/t$p-p; fastcgi_temp_path $W/t$p-f; uwsgi_temp_path $W/t$p-u; scgi_temp_path $W/t$p-s;
  server { listen $HOST:$p backlog=4096; root $W/www; location / { } }
}
NGX
    } > "$W/be$p.conf"
    nginx -e "$W/be$p.start.err" -p "$W" -c "$W/be$p.conf" & STARTED+=($!); BACKEND_PIDS+=($!)
done
for p in $BACKEND_PORTS; do wait_port "$p"; done

# ---- one certificate for every TLS front (ECDSA P-256): PEM cert and key, and HAProxy's cert+key file
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/tls.key" -out "$W/tls.pem" -days 2 \
    -subj /CN=bench.test -addext subjectAltName=DNS:bench.test 2> /dev/null
cat "$W/tls.pem" "$W/tls.key" > "$W/haproxy.pem"

# ---- proxies: start_proxy MODE NAME; sets PROXY_PID and TARGET
start_proxy() {
    local mode=$1 name=$2 p
    PROXY_PID=""; TARGET=$PORT
    case $name in
    direct) TARGET=$BACKEND_BASE; return 0 ;;
    haproxy)
        local hmode=$mode bind=""
        case $mode in https|h2) hmode=http; bind=" ssl crt $W/haproxy.pem alpn h2,http/1.1" ;; esac
        { printf 'global\n  maxconn %s\n  nbthread 1\ndefaults\n  mode %s\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n' "$MAXCONN" "$hmode"
          printf 'frontend fe\n  bind %s:%s%s\n  default_backend be\nbackend be\n  balance roundrobin\n' "$HOST" "$PORT" "$bind"
          for p in $BACKEND_PORTS; do echo "  server s$p $HOST:$p"; done; } > "$W/haproxy.cfg"
        haproxy -db -f "$W/haproxy.cfg" >> "$W/haproxy.log" 2>&1 & ;;
    nginx)
        if [ "$mode" = http ]; then
            { ngx_head proxy; echo "http {"; echo "  access_log off; tcp_nodelay on; keepalive_requests 1000000;"
              echo "  client_body_temp_path $W/tp-b; proxy_temp_path $W/tp-p; fastcgi_temp_path $W/tp-f; uwsgi_temp_path $W/tp-u; scgi_temp_path $W/tp-s;"
              echo "  proxy_max_temp_file_size 0;"
              echo "  upstream be {"; for p in $BACKEND_PORTS; do echo "    server $HOST:$p;"; done
              echo "    keepalive 512; keepalive_requests 1000000; }"
              echo "  server { listen $HOST:$PORT backlog=4096; location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
              echo "}"; } > "$W/nginx.conf"
        else
            { echo "load_module $STREAM_SO;"; ngx_head proxy; echo "stream { upstream be {"
              for p in $BACKEND_PORTS; do echo "  server $HOST:$p;"; done
              echo "} server { listen $HOST:$PORT backlog=4096; proxy_pass be; } }"; } > "$W/nginx.conf"
        fi
        nginx -e "$W/nginx.start.err" -p "$W" -c "$W/nginx.conf" & ;;
    swiftvs|baseline|swiftlog)
        local smode=$mode
        case $mode in https|h2) smode=http ;; esac
        { echo "threads: 1"
          [ "$name" = swiftlog ] && echo "access_log: $W/access.log"
          echo "services:"; echo "  - name: bench"; echo "    listen: $HOST:$PORT"
          echo "    protocol: $smode"; echo "    scheduler: rr"
          case $mode in https|h2) echo "    tls: {certificates: [{cert: $W/tls.pem, key: $W/tls.key}]}" ;; esac
          echo "    servers:"
          for p in $BACKEND_PORTS; do echo "      - $HOST:$p"; done; } > "$W/swiftvs.yaml"
        local binary=$SWIFTVS; [ "$name" = baseline ] && binary=$BASELINE
        "$binary" director --config "$W/swiftvs.yaml" --log-level error >> "$W/$name.log" 2>&1 & ;;
    esac
    PROXY_PID=$!; STARTED+=("$PROXY_PID")
    wait_port "$PORT"
}
stop_proxy() {
    [ -n "$PROXY_PID" ] || return 0
    stop_pid "$PROXY_PID"; PROXY_PID=""; sleep 0.3
}

to_ms() { awk -v v="$1" 'BEGIN{ if (v ~ /us$/) printf "%.3f", v/1000; else if (v ~ /ms$/) printf "%.3f", v+0; else if (v ~ /s$/) printf "%.3f", v*1000; else print 0 }'; }
to_mib() { awk -v v="$1" 'BEGIN{ if (v ~ /GB$/) printf "%.1f", v*1024; else if (v ~ /MB$/) printf "%.1f", v+0; else if (v ~ /KB$/) printf "%.3f", v/1024; else printf "%.4f", v/1048576 }'; }

record() {  # MODE ROUND NAME PATH CONNS RPS P50MS P99MS ERRORS UNITS DT_TICKS W0 W1
    awk -v m="$1" -v r="$2" -v n="$3" -v p="$4" -v c="$5" -v rps="${6:-0}" -v p50="${7:-0}" -v p99="${8:-0}" \
        -v err="${9:-0}" -v units="${10:-0}" -v dt="${11:-0}" -v hz="$HZ" -v w0="${12}" -v w1="${13}" -v has="${PROXY_PID:+1}" 'BEGIN{
            cpu = has ? 100 * dt / hz / (w1 - w0) : 0
            per = (has && units > 0) ? 1e6 * dt / hz / units : 0
            printf "%s,%s,%s,%s,%s,%.0f,0,%s,%s,%s,%.1f,%.1f\n", m, r, n, p, c, rps, p50, p99, err, cpu, per }' >> "$RES"
    tail -n 1 "$RES" >&2
}

run_handshakes() {  # MODE ROUND NAME new|reuse: sequential TLS connections by openssl s_time, each fetching /small
    local mode=$1 round=$2 name=$3 kind=$4 out="$W/stime-$1-$2-$3-$4.txt" t0 t1 w0 w1 conns secs
    t0=$(cpu_ticks "$PROXY_PID"); w0=$(date +%s.%N)
    timeout -k 5 $((DUR + 30)) openssl s_time -connect "$HOST:$TARGET" -"$kind" -time "$DUR" -www /small > "$out" 2>&1 || true
    w1=$(date +%s.%N); t1=$(cpu_ticks "$PROXY_PID")
    read -r conns secs < <(awk '/connections in .* real seconds/{print $1, $4}' "$out" | tail -n 1)
    local rps; rps=$(awk -v n="${conns:-0}" -v s="${secs:-0}" 'BEGIN{ printf "%.0f", (s > 0 ? n / s : 0) }')
    record "$mode" "$round" "$name" "/hs-$kind" 1 "$rps" 0 0 0 "${conns:-0}" $((t1 - t0)) "$w0" "$w1"
}

run_h2() {  # MODE ROUND NAME: h2load, 64 streams over 4 connections on /small
    local mode=$1 round=$2 name=$3 out="$W/h2load-$1-$2-$3.txt" t0 t1 w0 w1
    t0=$(cpu_ticks "$PROXY_PID"); w0=$(date +%s.%N)
    timeout -k 5 $((DUR + 30)) h2load -c 4 -m 16 -t 1 -D "$DUR" "https://$HOST:$TARGET/small" > "$out" 2>&1 || true
    w1=$(date +%s.%N); t1=$(cpu_ticks "$PROXY_PID")
    local rps done_ failed mean
    rps=$(awk '/^finished in/{gsub(/,/,""); print $4}' "$out")
    done_=$(awk '/^requests:/{print $8}' "$out"); failed=$(awk '/^requests:/{print $10 + $12}' "$out")
    mean=$(awk '/^time for request:/{print $6}' "$out")
    record "$mode" "$round" "$name" /small 4 "${rps:-0}" "$(to_ms "${mean:-0}")" 0 "${failed:-0}" "${done_:-0}" \
        $((t1 - t0)) "$w0" "$w1"
}

run_load() {  # MODE ROUND NAME PATH CONNS
    local mode=$1 round=$2 name=$3 path=$4 c=$5 out="$W/wrk-$1-$2-$3-${4#/}-c$5.txt" t0 t1 w0 w1
    t0=$( [ -n "$PROXY_PID" ] && cpu_ticks "$PROXY_PID" || echo 0 ); w0=$(date +%s.%N)
    local scheme=http; [ "$mode" = https ] && scheme=https
    timeout -k 5 $((DUR + 30)) wrk -t1 -c"$c" -d"${DUR}s" --latency "$scheme://$HOST:$TARGET$path" > "$out" 2>&1 || true
    w1=$(date +%s.%N); t1=$( [ -n "$PROXY_PID" ] && cpu_ticks "$PROXY_PID" || echo 0 )
    local rps mib p50 p99 reqs err
    rps=$(awk '/^Requests\/sec/{print $2}' "$out"); reqs=$(awk '/requests in/{print $1}' "$out")
    mib=$(to_mib "$(awk '/^Transfer\/sec/{print $2}' "$out")")
    p50=$(to_ms "$(awk '$1=="50%"{print $2}' "$out")"); p99=$(to_ms "$(awk '$1=="99%"{print $2}' "$out")")
    err=$(awk '/Socket errors/{gsub(/,/,""); e+=$4+$6+$8+$10} /Non-2xx/{e+=$NF} END{print e+0}' "$out")
    awk -v m="$mode" -v r="$round" -v n="$name" -v p="$path" -v c="$c" -v rps="${rps:-0}" -v mib="$mib" -v p50="$p50" \
        -v p99="$p99" -v err="$err" -v dt=$((t1 - t0)) -v hz="$HZ" -v w0="$w0" -v w1="$w1" -v reqs="${reqs:-0}" \
        -v has="${PROXY_PID:+1}" 'BEGIN{
            cpu = has ? 100 * dt / hz / (w1 - w0) : 0
            units = (p == "/1m") ? mib * (w1 - w0) : reqs
            per = (has && units > 0) ? 1e6 * dt / hz / units : 0
            printf "%s,%s,%s,%s,%s,%.0f,%.1f,%s,%s,%s,%.1f,%.1f\n", m, r, n, p, c, rps, mib, p50, p99, err, cpu, per }' >> "$RES"
    tail -n 1 "$RES" >&2
}

{
    echo "date: $(date -u +%FT%TZ)  cpus: $(nproc)  kernel: $(uname -r)"
    echo "haproxy: $(haproxy -v 2>&1 | head -1)"; echo "nginx: $(nginx -v 2>&1)"; echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "swiftvs: $("$SWIFTVS" --version)  DUR=$DUR ROUNDS=$ROUNDS SMALL_CONNS='$SMALL_CONNS' BIG_CONNS='$BIG_CONNS'"
    if [ -n "${BASELINE:-}" ]; then echo "baseline: $BASELINE ($("$BASELINE" --version))"; fi
} | tee "$W/env.txt" >&2

for mode in $MODES; do
    for round in $(seq "$ROUNDS"); do
        case $mode in
        https|h2) order=(haproxy swiftvs ${BASELINE:+baseline}) ;;
        http) order=(direct haproxy nginx swiftvs ${BASELINE:+baseline} ${ACCESS_LOG:+swiftlog}) ;;
        *) order=(direct haproxy nginx swiftvs ${BASELINE:+baseline}) ;;
        esac
        shift_by=$(( (round - 1) % ${#order[@]} ))
        for name in "${order[@]:shift_by}" "${order[@]:0:shift_by}"; do
            [ "$mode" = tcp ] && [ "$name" = direct ] && continue
            echo "== $mode round $round: $name" >&2
            start_proxy "$mode" "$name"
            scheme=http; case $mode in https|h2) scheme=https ;; esac
            timeout -k 5 $((WARM + 10)) wrk -t1 -c64 -d"${WARM}s" "$scheme://$HOST:$TARGET/small" > /dev/null 2>&1 || true
            case $mode in
            https)
                for c in $SMALL_CONNS; do run_load "$mode" "$round" "$name" /small "$c"; done
                run_handshakes "$mode" "$round" "$name" new
                run_handshakes "$mode" "$round" "$name" reuse ;;
            h2) run_h2 "$mode" "$round" "$name" ;;
            *)
                for c in $SMALL_CONNS; do run_load "$mode" "$round" "$name" /small "$c"; done
                for c in $BIG_CONNS; do run_load "$mode" "$round" "$name" /1m "$c"; done ;;
            esac
            stop_proxy
        done
    done
done

summarize "$RES" | tee "$W/summary.txt"
