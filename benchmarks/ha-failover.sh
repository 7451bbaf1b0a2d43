#!/usr/bin/env bash
# Failover times of SwiftVS and keepalived with the same timers, side by side in the project's network-namespace lab
# (scripts/ha-lab.sh): VRRPv3, 0.1 s adverts, priorities 150 (lb1) and 100 (lb2), front and back VIPs in one sync
# group. For each pair and each round: SIGTERM the master (graceful: priority 0) and SIGKILL it (a crash), and time
# from the signal until the front VIP is on lb2 and until the client gets an answer through it. Rounds interleave the
# two pairs, so drift shows as spread rather than bias.
#
# Needs root, iproute2, keepalived, curl and a release build (swift build -c release).
# Knobs: ROUNDS=5, SWIFTVS=.build/release/swiftvs, LAB_PREFIX=svb- (namespaces; the lab is torn down on exit).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}; SWIFTVS=$(realpath "${SWIFTVS:-.build/release/swiftvs}")
export LAB_PREFIX=${LAB_PREFIX:-svb-}
P=$LAB_PREFIX; VIP=10.201.0.100; LAB="bash scripts/ha-lab.sh"
for tool in keepalived ip curl; do command -v "$tool" > /dev/null || { echo "needs $tool" >&2; exit 1; }; done
[ -x "$SWIFTVS" ] || { echo "needs $SWIFTVS: swift build -c release" >&2; exit 1; }
W=$(mktemp -d /tmp/swiftvs-ha-bench.XXXXXX)
trap '$LAB down > /dev/null 2>&1 || true; echo "results in $W" >&2' EXIT
trap 'exit 130' INT TERM
$LAB up > /dev/null
for r in 1 2; do $LAB exec real$r "$SWIFTVS" realserver --listen 10.201.1.1$r:8080 --name real$r > "$W/real$r.log" 2>&1 & done

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
has_vip() { ip -n "$P$1" -br addr show dev eth0 | grep -q "$VIP/"; }
wait_for() {  # $1 = limit in ms, rest = condition; prints ms taken (or -1)
    local limit=$1 start; shift; start=$(now_ms)
    while true; do
        if "$@"; then echo $(( $(now_ms) - start )); return; fi
        [ $(( $(now_ms) - start )) -gt "$limit" ] && { echo -1; return; }
    done
}
answered() { ip netns exec "${P}client" curl -s -m 0.3 "http://$VIP/" > /dev/null; }
on_lb2() { has_vip lb2; }

swiftvs_config() {  # $1 = priority
    cat << CONF
admin: off
services:
  - {name: web, listen: "$VIP:80", protocol: http, servers: [{address: "10.201.1.11:8080"}, {address: "10.201.1.12:8080"}]}
ha:
  instances:
    - {name: front, interface: eth0, vrid: 51, priority: $1, advert_interval: 100ms, virtual_ips: [$VIP/24]}
    - {name: back, interface: eth1, vrid: 52, priority: $1, advert_interval: 100ms, virtual_ips: [10.201.1.1/24]}
CONF
}
# Directors that serve on the VIPs: with SwiftVS the same process; with keepalived a SwiftVS director without `ha`.
start_pair() {  # $1 = swiftvs|keepalived
    for lb in lb1 lb2; do
        local prio=100; [ $lb = lb1 ] && prio=150
        if [ "$1" = swiftvs ]; then
            swiftvs_config $prio > "$W/$lb.yaml"
            $LAB exec $lb "$SWIFTVS" director --config "$W/$lb.yaml" > "$W/$lb-swiftvs.log" 2>&1 &
            eval "PID_$lb=$!"
        else
            $LAB keepalived-conf $lb $prio > "$W/$lb.conf"
            $LAB exec $lb keepalived -f "$W/$lb.conf" -n -l -D -P -p "$W/$lb.pid" -r "$W/$lb-vrrp.pid" -i $lb \
                > "$W/$lb-keepalived.log" 2>&1 &
            eval "PID_$lb=$!"
            printf 'admin: off\nservices:\n  - {name: web, listen: "%s:80", protocol: http, servers: [{address: "10.201.1.11:8080"}, {address: "10.201.1.12:8080"}]}\n' "$VIP" > "$W/$lb-plain.yaml"
            $LAB exec $lb "$SWIFTVS" director --config "$W/$lb-plain.yaml" > "$W/$lb-plain.log" 2>&1 &
            eval "SRV_$lb=$!"
        fi
    done
    [ "$(wait_for 8000 has_vip lb1)" -ge 0 ] || { echo "$1: lb1 never became master" >&2; exit 1; }
    sleep 1
}
stop_all() {
    for v in PID_lb1 PID_lb2 SRV_lb1 SRV_lb2; do
        local p=${!v:-}; [ -n "$p" ] || continue
        kill -TERM "$p" 2> /dev/null || true
        for _ in $(seq 50); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2> /dev/null || true
        eval "$v="
    done
    for lb in lb1 lb2; do
        ip -n "$P$lb" addr del $VIP/24 dev eth0 2> /dev/null || true
        ip -n "$P$lb" addr del 10.201.1.1/24 dev eth1 2> /dev/null || true
    done
    sleep 0.5
}
kill_master() {  # $1 = pair, $2 = signal
    if [ "$1" = keepalived ] && [ "$2" = KILL ] && [ -f "$W/lb1-vrrp.pid" ]; then
        # A crash takes keepalived's VRRP child too, and first: killed after its parent, it would get the parent's
        # death signal (SIGTERM) and resign gracefully, which is not a crash.
        kill -KILL "$(cat "$W/lb1-vrrp.pid")" 2> /dev/null || true
    fi
    kill -"$2" "$PID_lb1"
}

echo "pair,round,signal,vip_ms,client_ms" > "$W/results.csv"
for round in $(seq "$ROUNDS"); do
    for pair in swiftvs keepalived; do
        for sig in TERM KILL; do
            start_pair $pair
            t0=$(now_ms)
            kill_master $pair $sig
            vip=$(wait_for 4000 on_lb2)
            answer=$(wait_for 4000 answered)
            client=$(( answer < 0 || vip < 0 ? -1 : $(now_ms) - t0 ))
            echo "$pair,$round,$sig,$vip,$client" >> "$W/results.csv"
            stop_all
        done
    done
done

python3 - "$W/results.csv" << 'PY' | tee "$W/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def values(pair, sig, key):
    return [int(r[key]) for r in rows if r['pair'] == pair and r['signal'] == sig and int(r[key]) >= 0]
print(f"{'signal':<8}{'measure':<22}{'SwiftVS ms (mean, min-max)':<30}{'keepalived ms':<26}{'ratio':>6}")
for sig in ("TERM", "KILL"):
    for key, label in (("vip_ms", "VIP on the backup"), ("client_ms", "client answered")):
        s, k = values("swiftvs", sig, key), values("keepalived", sig, key)
        if not s or not k:
            print(sig, label, "missing samples"); continue
        ms, mk = statistics.mean(s), statistics.mean(k)
        print(f"{sig:<8}{label:<22}{f'{ms:.0f} ({min(s)}-{max(s)})':<30}{f'{mk:.0f} ({min(k)}-{max(k)})':<26}{ms / mk:>6.2f}")
PY
