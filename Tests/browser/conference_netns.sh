#!/usr/bin/env bash
# Run inside a fresh network namespace that has only `lo` (unshare -n): the conference microservices behind the
# director, then three headless Chromium participants (conference_check.py). Every process started here is stopped
# here, by PID. Usage: conference_netns.sh SWIFTVS_BINARY OUT_DIR
set -u
swiftvs=$1
out=$2
here=$(cd "$(dirname "$0")" && pwd)
ip link set lo up
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null; done; wait 2> /dev/null; }
trap cleanup EXIT
start() { "$swiftvs" "$@" >> "$out/services.log" 2>&1 & pids+=($!); }
start conference web --listen 127.0.0.1:8601
start conference api --listen 127.0.0.1:8602 --secret netns-secret
start conference signal --listen 127.0.0.1:8603 --api http://127.0.0.1:8602 --secret netns-secret
start conference signal --listen 127.0.0.1:8604 --api http://127.0.0.1:8602 --secret netns-secret
start director --config "$here/../../examples/conference.yaml"
for _ in $(seq 1 150); do
    up=0
    for port in 8601 8602 8603 8604; do
        curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz" && up=$((up + 1))
    done
    [ "$up" = 4 ] && curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:8600/api/ice" && break
    sleep 0.1
done
python3 "$here/conference_check.py" "http://127.0.0.1:8600" "$out"
