"""`colearn-chain ipfs-node`: configure a participant's own Kubo node for a consortium, without starting it."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from pathlib import Path

from ..services.kubo import KuboNode, SwarmPeer
from ._options import fixed_port

log = logging.getLogger(__name__)

DESCRIPTION = """\
Make (or update) a Kubo repo whose node belongs to one consortium only, and print the multiaddr the other
members give as --peer (SWARM/p2p/PEER_ID). Then run the node yourself: IPFS_PATH=REPO ipfs daemon.

The node listens on --swarm only (your private or VPN address), keeps connections to every --peer (Kubo's
Peering.Peers), and may dial nothing outside the --allow networks (Swarm.AddrFilters block the rest, and
all of IPv6). It has no bootstrap peers, DHT, MDNS, AutoNAT, relays or hole punching, no gateway, and its
RPC API is on 127.0.0.1:--api-port, for your own agent only (`colearn-chain agent --store
http://127.0.0.1:PORT`). Run it twice: once to learn each member's address, then with the others' --peer.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ipfs-node", help="configure your own Kubo node for a consortium", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repo", required=True, type=Path, metavar="DIR", help="the Kubo repo (IPFS_PATH)")
    parser.add_argument("--swarm", required=True, metavar="MULTIADDR",
                        help="where the node listens for the other members, e.g. /ip4/10.77.0.2/tcp/4001")
    parser.add_argument("--allow", action="append", required=True, metavar="CIDR",
                        help="an IPv4 network the node may dial, e.g. 10.77.0.0/24 (repeatable)")
    parser.add_argument("--peer", action="append", default=[], metavar="MULTIADDR/p2p/ID",
                        help="another member's node, as its ipfs-node printed it (repeatable)")
    parser.add_argument("--api-port", type=fixed_port, default=5001, metavar="N",
                        help="the RPC API's port on 127.0.0.1 (default 5001)")
    parser.set_defaults(func=run)


def _peer(text: str) -> SwarmPeer:
    address, sep, peer_id = text.rpartition("/p2p/")
    if not sep or not address.startswith("/ip4/") or not peer_id.isalnum():
        raise ValueError(f"--peer wants /ip4/ADDRESS/tcp/PORT/p2p/PEER_ID, got {text!r}")
    return SwarmPeer(peer_id, address)


def run(args: argparse.Namespace) -> int:
    try:
        peers = [_peer(text) for text in args.peer]
        for network in args.allow:
            ipaddress.IPv4Network(network, strict=False)
        if not args.swarm.startswith("/ip4/") or "/tcp/" not in args.swarm:
            raise ValueError(f"--swarm wants /ip4/ADDRESS/tcp/PORT, got {args.swarm!r}")
        node = KuboNode(args.repo, swarm=args.swarm, peers=peers, allowed_networks=args.allow,
                        api_port=args.api_port)
        peer_id = node.configure()
    except (ValueError, RuntimeError, OSError) as error:
        log.error("%s", error)
        return 2
    print(f"{args.swarm}/p2p/{peer_id}")
    return 0
