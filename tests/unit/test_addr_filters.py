"""`Swarm.AddrFilters` for a consortium node: everything outside the allowed networks is blocked."""

from __future__ import annotations

import ipaddress

import pytest

from colearn_chain.services.kubo import addr_filters


def _blocked(filters: list[str]) -> list[ipaddress.IPv4Network]:
    nets = []
    for entry in filters:
        parts = entry.strip("/").split("/")  # ip4, address, ipcidr, bits
        if parts[0] == "ip4":
            nets.append(ipaddress.IPv4Network(f"{parts[1]}/{parts[3]}"))
    return nets


@pytest.mark.parametrize(
    ("allowed", "inside", "outside"),
    [
        (["127.0.0.0/8"], ["127.0.0.1", "127.255.255.254"], ["10.77.0.2", "8.8.8.8", "192.168.1.1", "0.0.0.0"]),
        (["10.77.3.0/24"], ["10.77.3.1", "10.77.3.254"], ["10.77.4.1", "127.0.0.1", "1.1.1.1", "255.255.255.255"]),
        (["10.77.0.0/24", "127.0.0.0/8"], ["10.77.0.9", "127.0.0.1"], ["10.77.1.9", "172.16.0.1"]),
    ],
)
def test_filters_block_exactly_the_complement_of_the_allowed_networks(
    allowed: list[str], inside: list[str], outside: list[str]
) -> None:
    # Execute
    filters = addr_filters(allowed)
    blocked = _blocked(filters)
    # Assert
    assert "/ip6/::/ipcidr/0" in filters
    for address in inside:
        assert not any(ipaddress.IPv4Address(address) in net for net in blocked), address
    for address in outside:
        assert any(ipaddress.IPv4Address(address) in net for net in blocked), address
    allowed_size = sum(ipaddress.IPv4Network(a).num_addresses for a in allowed)
    assert sum(net.num_addresses for net in blocked) == 2**32 - allowed_size
