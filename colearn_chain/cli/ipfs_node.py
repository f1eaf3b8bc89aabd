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


def swarm_address(text: str, option: str = "--swarm") -> str:
    """``text`` as the canonical ``/ip4/ADDRESS/tcp/PORT`` one node listens on; ValueError naming ``option``.

    Why so strict: Kubo takes an unspecified address (0.0.0.0) as "listen on every interface", which would
    open the node beyond the consortium's network, and a mistyped address would only fail once it is used.
    """
    wanted = f"{option} wants /ip4/ADDRESS/tcp/PORT (one IPv4 address of this machine, e.g. /ip4/10.77.0.2/tcp/4001)"
    parts = text.split("/")
    if len(parts) != 5 or parts[0] or parts[1] != "ip4" or parts[3] != "tcp":
        raise ValueError(f"{wanted}, got {text!r}")
    try:
        address = ipaddress.IPv4Address(parts[2])
    except ValueError:
        raise ValueError(f"{wanted}: {parts[2]!r} is not an IPv4 address") from None
    if address.is_unspecified or address.is_multicast or address == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError(f"{wanted}: {address} is not one machine's address (0.0.0.0 would mean every interface); "
                         "give the private or VPN address the other members reach")
    if not (parts[4].isascii() and parts[4].isdigit()) or not 1 <= int(parts[4]) <= 65535:
        raise ValueError(f"{wanted}: {parts[4]!r} is not a TCP port (1 to 65535)")
    return f"/ip4/{address}/tcp/{int(parts[4])}"


def _peer(text: str) -> SwarmPeer:
    address, sep, peer_id = text.rpartition("/p2p/")
    if not sep or not address.startswith("/ip4/") or not peer_id.isalnum():
        raise ValueError(f"--peer wants /ip4/ADDRESS/tcp/PORT/p2p/PEER_ID, got {text!r}")
    return SwarmPeer(peer_id, swarm_address(address, "--peer"))


def run(args: argparse.Namespace) -> int:
    try:
        peers = [_peer(text) for text in args.peer]
        for network in args.allow:
            ipaddress.IPv4Network(network, strict=False)
        swarm = swarm_address(args.swarm)
        node = KuboNode(args.repo, swarm=swarm, peers=peers, allowed_networks=args.allow,
                        api_port=args.api_port)
        peer_id = node.configure()
    except (ValueError, RuntimeError, OSError) as error:
        log.error("%s", error)
        return 2
    print(f"{swarm}/p2p/{peer_id}")
    return 0
