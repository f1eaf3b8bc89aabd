#!/usr/bin/env bash
# Separate networks on one machine: the chain in one Linux network namespace, each participant in its own,
# joined by veth pairs to a bridge that lives in a namespace of its own (nothing on the host's own network
# changes). Needs root (CAP_NET_ADMIN) and iproute2.
#
#   tools/netns-demo.sh up   [--name NAME] [--participants N]   # build it and print the addresses
#   tools/netns-demo.sh down [--name NAME]                      # remove it; what still runs inside is killed
#
# Namespaces: NAME-sw (the bridge), NAME-chain (10.77.0.1), NAME-p0 .. NAME-p{N-1} (10.77.0.2 ...).
# Every namespace has its loopback and the 10.77.0.0/24 link, and no other route: a process inside can
# reach the other namespaces' addresses and nothing else. The integration test tests/integration/
# test_netns.py builds its topology with this script (under a unique NAME).
set -euo pipefail

SUBNET=10.77.0
NAME=colearn
PARTICIPANTS=3

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

command=${1:-}
[ -n "$command" ] || usage
shift
while [ $# -gt 0 ]; do
    case $1 in
        --name) NAME=$2; shift 2 ;;
        --participants) PARTICIPANTS=$2; shift 2 ;;
        *) usage ;;
    esac
done
case $NAME in *[!A-Za-z0-9_-]*|"") echo "netns-demo: --name takes letters, digits, - and _" >&2; exit 2 ;; esac
case $PARTICIPANTS in *[!0-9]*|"") echo "netns-demo: --participants takes a number" >&2; exit 2 ;; esac
if [ "$PARTICIPANTS" -lt 1 ] || [ "$PARTICIPANTS" -gt 200 ]; then
    echo "netns-demo: --participants must be 1 to 200" >&2; exit 2
fi

SW=$NAME-sw

# The namespaces this NAME uses, in order: the chain, then each participant.
members() {
    echo "$NAME-chain 1"
    local i
    for ((i = 0; i < PARTICIPANTS; i++)); do echo "$NAME-p$i $((i + 2))"; done
}

up() {
    if ! ip netns add "$SW" 2>/dev/null; then
        echo "netns-demo: cannot create network namespace $SW: it exists already (run down first), or this" \
             "needs root (CAP_NET_ADMIN) and iproute2's 'ip netns'" >&2
        exit 1
    fi
    ip -n "$SW" link set lo up
    ip -n "$SW" link add br0 type bridge
    ip -n "$SW" link set br0 up
    local ns host port=0
    while read -r ns host; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # No IPv6 at all: not even link-local router solicitations leave the namespace.
        ip netns exec "$ns" sh -c 'for f in all default; do echo 1 > /proc/sys/net/ipv6/conf/$f/disable_ipv6; done' \
            2>/dev/null || true
        # Made inside the bridge's namespace, each end moved straight to its own: no name on the host.
        ip -n "$SW" link add "v$port" type veth peer name eth0 netns "$ns"
        ip -n "$SW" link set "v$port" master br0 up
        ip -n "$ns" addr add "$SUBNET.$host/24" dev eth0
        ip -n "$ns" link set eth0 up
        echo "$ns $SUBNET.$host"
        port=$((port + 1))
    done < <(members)
}

down() {
    # Every namespace of this NAME, whatever --participants it was built with.
    local ns
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^$NAME-(chain|sw|p[0-9]+)\$" || true); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns"
        echo "removed $ns"
    done
}

case $command in
    up) up ;;
    down) down ;;
    *) usage ;;
esac
