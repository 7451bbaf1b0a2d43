#!/usr/bin/env bash
# Kernel NAT against the proxy path and HAProxy, in the network-namespace lab (scripts/ha-lab.sh): the client on the
# front subnet, the director lb1 holding the virtual address, one nginx real server on the back subnet whose gateway
# is lb1. One interleaved run: each round runs every workload on every path, so drift hits them alike.
#
#   direct    client -> 10.201.1.11:8080, routed through lb1 without translation
#   nat       client -> VIP:80, SwiftVS forward: nat (the kernel rewrites the flow)
#   tcp       client -> VIP:81, SwiftVS protocol: tcp (user-space proxy)
#   http      client -> VIP:82, SwiftVS protocol: http
#   haproxy   client -> VIP:83, HAProxy mode http
#
# Workloads (wrk from the client namespace, --latency): `ka` 100-byte responses on CONNS keep-alive connections;
# `close` the same with one request per connection (Connection: close); `big` 1 MiB responses on 8 connections.
# Reported per path and workload: req/s, MiB/s, p99, the ratio to direct, and the director's CPU per request:
# all CPU time the machine spent (user, system, softirq: /proc/stat, every core) per request, minus what the direct
# path spent per request, so what the director's path adds, in the kernel or in a process alike. On 2 cores the
# client, the director and the real server share the machine: throughput is bounded by the sum of their costs.
#
# Needs root, iproute2, nftables, nginx, haproxy, wrk (Debian: apt-get install nftables nginx haproxy wrk).
# Usage: bash benchmarks/kernel-nat.sh        (DUR=5 ROUNDS=2 CONNS=32; ~3 minutes)
# Results: a table on stdout and $OUT (default /tmp/swiftvs-kernel-nat.csv). Only processes this script started
# are stopped, by PID; the lab (prefix svb-) is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-32}
OUT=${OUT:-/tmp/swiftvs-kernel-nat.csv}
export LAB_PREFIX=${LAB_PREFIX:-svb-}
VIP=10.201.0.100
REAL=10.201.1.11:8080
for tool in ip nft nginx haproxy wrk; do
    command -v "$tool" > /dev/null || { echo "kernel-nat.sh: $tool is not installed" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "kernel-nat.sh: needs root (network namespaces, nf_tables)" >&2; exit 2; }
BIN=${SWIFTVS:-.build/release/swiftvs}
[ -x "$BIN" ] || swift build -c release --product swiftvs
BIN=$(realpath "$BIN")

WORK=$(mktemp -d /tmp/swiftvs-kernel-nat.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2> /dev/null || true; done
    bash scripts/ha-lab.sh down > /dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
inns() { local node=$1; shift; ip netns exec "$LAB_PREFIX$node" "$@"; }

bash scripts/ha-lab.sh up > /dev/null
inns lb1 ip addr replace "$VIP/24" dev eth0
inns lb1 ip addr replace 10.201.1.1/24 dev eth1
# One request per connection leaves a flow in TIME_WAIT per request in lb1's conntrack and the client's sockets:
# short TIME_WAIT and port reuse keep a 5 s run from filling either.
inns lb1 sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=2
inns client sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="10000 65000"
# nginx closes first, so the real server keeps each connection in TIME_WAIT for 60 s; the client, reusing its ports,
# then meets those sockets on the next path (the direct and NAT paths share the real server's 4-tuples) and waits a
# SYN retransmission (1 s) each time. No TIME_WAIT on the real server keeps every path's run independent.
inns real1 sysctl -qw net.ipv4.tcp_max_tw_buckets=0

mkdir -p "$WORK/www" "$WORK/nginx"
chmod 755 "$WORK" "$WORK/www"  # nginx's workers run as www-data
head -c 100 /dev/zero | tr '\0' 'a' > "$WORK/www/small"
head -c 1048576 /dev/zero > "$WORK/www/1m"
cat > "$WORK/nginx.conf" << CONF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server { listen $REAL; root $WORK/www; }
}
CONF
ip netns exec "${LAB_PREFIX}real1" nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" -g "daemon off;" & PIDS+=($!)

cat > "$WORK/director.yaml" << CONF
admin: off
services:
  - {name: nat, listen: "$VIP:80", protocol: tcp, forward: nat, scheduler: rr, servers: ["$REAL"]}
  - {name: tcp, listen: "$VIP:81", protocol: tcp, scheduler: rr, servers: ["$REAL"]}
  - {name: http, listen: "$VIP:82", protocol: http, scheduler: rr, servers: ["$REAL"]}
CONF
ip netns exec "${LAB_PREFIX}lb1" "$BIN" director --config "$WORK/director.yaml" > "$WORK/director.log" 2>&1 & PIDS+=($!)
DIRECTOR=$!

cat > "$WORK/haproxy.cfg" << CONF
global
    maxconn 8000
defaults
    mode http
    timeout connect 3s
    timeout client 30s
    timeout server 30s
    http-reuse safe
frontend f
    bind $VIP:83
    default_backend b
backend b
    server s1 $REAL
CONF
ip netns exec "${LAB_PREFIX}lb1" haproxy -f "$WORK/haproxy.cfg" -db > "$WORK/haproxy.log" 2>&1 & PIDS+=($!)

# Wait until every path answers (bounded: 10 s).
for _ in $(seq 100); do
    ok=1
    for target in "$REAL" "$VIP:80" "$VIP:81" "$VIP:82" "$VIP:83"; do
        inns client curl -sf -o /dev/null -m 1 "http://$target/small" || ok=0
    done
    [ "$ok" = 1 ] && break
    sleep 0.1
done
if [ "$ok" != 1 ]; then
    for target in "$REAL" "$VIP:80" "$VIP:81" "$VIP:82" "$VIP:83"; do
        inns client curl -sSf -o /dev/null -m 1 "http://$target/small" || echo "kernel-nat.sh: $target does not answer" >&2
    done
    tail -n 5 "$WORK/director.log" "$WORK/haproxy.log" "$WORK/nginx/error.log" >&2
    exit 1
fi

busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
softirq() { awk '/^cpu /{print $8}' /proc/stat; }
process() { awk '{print $14+$15}' "/proc/$DIRECTOR/stat"; }  # the swiftvs director's own user+system ticks
HZ=$(getconf CLK_TCK)
target() {
    case $1 in
        direct) echo "$REAL" ;; nat) echo "$VIP:80" ;; tcp) echo "$VIP:81" ;; http) echo "$VIP:82" ;; haproxy) echo "$VIP:83" ;;
    esac
}
mib() {  # wrk's Transfer/sec (e.g. 12.34MB) in MiB/s
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; gsub(/[0-9.]/, "", u);
        f = (u == "GB") ? 1024 : (u == "MB") ? 1 : (u == "KB") ? 1 / 1024 : 1 / 1048576; printf "%.1f", n * f }'
}
ms() {  # wrk's latency (e.g. 1.23ms, 456.00us, 1.2s) in ms
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; gsub(/[0-9.]/, "", u);
        f = (u == "s") ? 1000 : (u == "ms") ? 1 : (u == "us") ? 0.001 : 1; printf "%.2f", n * f }'
}

echo "round,workload,path,requests,req_per_s,mib_per_s,p99_ms,cpu_us_per_req,softirq_us_per_req,swiftvs_us_per_req" > "$OUT"
for round in $(seq "$ROUNDS"); do
    for workload in ka close big; do
        for path in direct nat tcp http haproxy; do
            case $workload in
                ka) args=(-c "$CONNS" /small) ;;
                close) args=(-c "$CONNS" -H "Connection: close" /small) ;;
                big) args=(-c 8 /1m) ;;
            esac
            url="http://$(target "$path")${args[-1]}"
            unset 'args[-1]'
            before=$(busy); sbefore=$(softirq); pbefore=$(process)
            out=$(inns client wrk -t 1 -d "${DUR}s" --latency "${args[@]}" "$url" 2>&1)
            after=$(busy); safter=$(softirq); pafter=$(process)
            requests=$(echo "$out" | awk '/requests in/ {print $1}')
            rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
            mbs=$(mib "$(echo "$out" | awk '/^Transfer\/sec/ {print $2}')")
            p99=$(ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
            cpu=$(awk -v b="$before" -v a="$after" -v hz="$HZ" -v n="${requests:-0}" \
                'BEGIN { if (n > 0) printf "%.1f", (a - b) / hz * 1e6 / n; else print 0 }')
            per() { awk -v b="$1" -v a="$2" -v hz="$HZ" -v n="${requests:-0}" \
                'BEGIN { if (n > 0) printf "%.1f", (a - b) / hz * 1e6 / n; else print 0 }'; }
            soft=$(per "$sbefore" "$safter")
            proc=$(per "$pbefore" "$pafter")
            echo "$round,$workload,$path,${requests:-0},${rps:-0},$mbs,$p99,$cpu,$soft,$proc" >> "$OUT"
            [ -z "${VERBOSE:-}" ] || echo "$out" | grep -i "error\|timeout\|non-2xx" || true
            printf "round %s %-5s %-8s %10s req/s %8s MiB/s p99 %8s ms  %7s us CPU/req (softirq %s, swiftvs %s)\n" \
                "$round" "$workload" "$path" "${rps:-0}" "$mbs" "$p99" "$cpu" "$soft" "$proc"
        done
    done
done

echo
echo "Means over $ROUNDS rounds; ratio = req/s against direct; director CPU/req = machine CPU per request minus direct's"
awk -F, 'NR > 1 { k = $2 "," $3; rps[k] += $5; mib[k] += $6; p99[k] += $7; cpu[k] += $8; n[k]++ }
    END {
        printf "%-6s %-8s %10s %8s %9s %7s %16s\n", "load", "path", "req/s", "MiB/s", "p99 ms", "ratio", "director us/req"
        split("ka close big", loads, " "); split("direct nat tcp http haproxy", paths, " ")
        for (i = 1; i <= 3; i++) {
            d = loads[i] ",direct"
            for (j = 1; j <= 5; j++) {
                k = loads[i] "," paths[j]
                if (!n[k]) continue
                printf "%-6s %-8s %10.0f %8.1f %9.2f %7.2f %16.1f\n", loads[i], paths[j], rps[k] / n[k], mib[k] / n[k],
                    p99[k] / n[k], rps[k] / rps[d], cpu[k] / n[k] - cpu[d] / n[d]
            }
        }
    }' "$OUT"
