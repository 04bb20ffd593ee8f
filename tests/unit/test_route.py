"""Route's text is the line `ip route` prints for it (iproute2's order: dst, via, dev, proto, scope, src, flags)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from k8slab.spec.route import Route

NET, GW = IPv4Network("10.244.1.0/24"), IPv4Address("192.168.56.11")


@pytest.mark.parametrize("route, line", [
    (Route(NET, "eth1", GW), "10.244.1.0/24 via 192.168.56.11 dev eth1"),
    (Route(NET, "flannel.1", IPv4Address("10.244.1.0"), onlink=True),
     "10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink"),
    (Route(IPv4Network("0.0.0.0/0"), "eth0", IPv4Address("10.0.2.2")), "default via 10.0.2.2 dev eth0"),
    (Route(IPv4Network("10.0.2.0/24"), "eth0", src=IPv4Address("10.0.2.15")), "10.0.2.0/24 dev eth0 src 10.0.2.15"),
    (Route(IPv4Network("10.244.0.64/26"), "", blackhole=True, proto=80), "blackhole 10.244.0.64/26 proto 80"),
    (Route(IPv4Network("10.244.0.128/26"), "eth1", GW, onlink=True, proto=80),
     "10.244.0.128/26 via 192.168.56.11 dev eth1 proto 80 onlink"),
    (Route(IPv4Network("10.244.0.66/32"), "cali1234567890a", scope="link"),
     "10.244.0.66/32 dev cali1234567890a scope link"),
    (Route(NET, "eth1", GW, proto=12), "10.244.1.0/24 via 192.168.56.11 dev eth1 proto bird"),
])
def test_route_text_is_ip_routes_line(route, line):
    assert str(route) == line
