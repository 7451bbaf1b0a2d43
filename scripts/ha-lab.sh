#!/usr/bin/env bash
# A network-namespace lab for high availability, LVS-NAT style: a client on a front subnet, two directors with a leg
# on each subnet, two real servers on a back subnet whose default gateway is the back VIP. Nothing is created in the
# root namespace: the bridges live in a namespace of their own, and every veth goes straight into its node.
#
#   ns PREFIXlan: br-front (10.201.0.0/24), br-back (10.201.1.0/24)
#   PREFIXclient  eth0 10.201.0.10                           (default via the front VIP 10.201.0.100)
#   PREFIXlb1     eth0 10.201.0.2   eth1 10.201.1.2          ip_forward=1, ip_nonlocal_bind=1
#   PREFIXlb2     eth0 10.201.0.3   eth1 10.201.1.3
#   PREFIXreal1                     eth0 10.201.1.11         (default via the back VIP 10.201.1.1)
#   PREFIXreal2                     eth0 10.201.1.12
#   PREFIXreal3                     eth0 10.201.1.13         (the kernel NAT tests' third real server)
#
# usage: scripts/ha-lab.sh up|down|status|exec NODE CMD...|vip NODE|keepalived-conf ROUTER_ID PRIORITY
# LAB_PREFIX (default svs-) names the namespaces, so labs with different prefixes can run side by side.
# Needs root and iproute2. Used by the HA tests (Tests/SwiftVSDirectorTests/HALabTests.swift) and by hand.
set -euo pipefail
P=${LAB_PREFIX:-svs-}
NODES="client lb1 lb2 real1 real2 real3"

ns() { echo "$P$1"; }

up() {
    down quiet
    ip netns add "$(ns lan)"
    for n in $NODES; do ip netns add "$(ns "$n")"; done
    local lan; lan=$(ns lan)
    for br in br-front br-back; do
        ip -n "$lan" link add "$br" type bridge stp_state 0 forward_delay 0 mcast_snooping 0
        ip -n "$lan" link set "$br" up
    done
    ip -n "$lan" link set lo up
    # node interface bridge address
    attach() {
        local node=$1 ifname=$2 br=$3 addr=$4 peer="$1-$2"
        ip -n "$lan" link add "$peer" type veth peer name "$ifname" netns "$(ns "$node")"
        ip -n "$lan" link set "$peer" master "$br" up
        ip -n "$(ns "$node")" link set "$ifname" up
        ip -n "$(ns "$node")" addr replace "$addr" dev "$ifname"
    }
    for n in $NODES; do
        ip -n "$(ns "$n")" link set lo up
        ip netns exec "$(ns "$n")" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    done
    attach client eth0 br-front 10.201.0.10/24
    attach lb1 eth0 br-front 10.201.0.2/24
    attach lb1 eth1 br-back 10.201.1.2/24
    attach lb2 eth0 br-front 10.201.0.3/24
    attach lb2 eth1 br-back 10.201.1.3/24
    attach real1 eth0 br-back 10.201.1.11/24
    attach real2 eth0 br-back 10.201.1.12/24
    attach real3 eth0 br-back 10.201.1.13/24
    for lb in lb1 lb2; do
        ip netns exec "$(ns "$lb")" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.ip_nonlocal_bind=1
    done
    ip -n "$(ns client)" route replace default via 10.201.0.100 dev eth0 onlink
    ip -n "$(ns real1)" route replace default via 10.201.1.1 dev eth0 onlink
    ip -n "$(ns real2)" route replace default via 10.201.1.1 dev eth0 onlink
    ip -n "$(ns real3)" route replace default via 10.201.1.1 dev eth0 onlink
}

down() {
    local pids=""
    for n in lan $NODES; do
        ip netns list 2> /dev/null | grep -q "^$(ns "$n")\b" || continue
        pids="$pids $(ip netns pids "$(ns "$n")" 2> /dev/null | tr '\n' ' ')"
    done
    # Only processes inside the lab's own namespaces: TERM, then KILL after 5 s.
    for p in $pids; do kill -TERM "$p" 2> /dev/null || true; done
    for _ in $(seq 50); do
        local alive=0
        for p in $pids; do kill -0 "$p" 2> /dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in $pids; do kill -KILL "$p" 2> /dev/null || true; done
    for n in $NODES lan; do ip netns del "$(ns "$n")" 2> /dev/null || true; done
    [ "${1:-}" = quiet ] || echo "lab $P down"
}

# keepalived's config for one director of the lab: the front and back VIPs in a sync group, VRRPv3, 0.1 s adverts,
# the VRIDs SwiftVS's lab configs use (51, 52). Shared by the interop test and benchmarks/ha-failover.sh.
keepalived_conf() {  # $1 = router id, $2 = priority
    cat << CONF
global_defs {
    router_id $1
    vrrp_version 3
    vrrp_garp_master_delay 0
    vrrp_garp_master_repeat 3
    vrrp_garp_master_refresh 0
    enable_script_security
    script_user root
}
vrrp_sync_group G1 {
    group {
        FRONT
        BACK
    }
}
vrrp_instance FRONT {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority $2
    advert_int 0.1
    virtual_ipaddress {
        10.201.0.100/24 dev eth0
    }
}
vrrp_instance BACK {
    state BACKUP
    interface eth1
    virtual_router_id 52
    priority $2
    advert_int 0.1
    virtual_ipaddress {
        10.201.1.1/24 dev eth1
    }
}
CONF
}

case "${1:-}" in
    up) up; echo "lab $P up" ;;
    down) down ;;
    status) ip netns list | grep "^$P" || true; for lb in lb1 lb2; do echo "$lb: $(ip -n "$(ns "$lb")" -br addr show 2> /dev/null | tr -s ' ' | tr '\n' ';')"; done ;;
    exec) shift; node=$1; shift; exec ip netns exec "$(ns "$node")" "$@" ;;
    vip) ip -n "$(ns "$2")" -br addr show dev eth0 | grep -q "10.201.0.100" && echo yes || echo no ;;
    keepalived-conf) keepalived_conf "$2" "$3" ;;
    *) echo "usage: $0 up|down|status|exec NODE CMD...|vip NODE|keepalived-conf ROUTER_ID PRIORITY" >&2; exit 2 ;;
esac
