"""traceroute output parsing: the shapes Debian's and busybox's traceroute print."""

from __future__ import annotations

from ipaddress import IPv4Address as A

import pytest

from k8slab.verify.traceroute import TracerouteParseError, parse_traceroute

DEBIAN_N = """\
traceroute to 10.244.1.3 (10.244.1.3), 30 hops max, 60 byte packets
 1  10.244.2.1  0.052 ms  0.012 ms  0.010 ms
 2  192.168.56.11  0.030 ms  0.020 ms  0.019 ms
 3  10.244.1.3  0.040 ms  0.025 ms  0.023 ms
"""

DEBIAN_NAMES = """\
traceroute to httpd (10.244.1.3), 30 hops max, 60 byte packets
 1  cni0.node-2 (10.244.2.1)  0.052 ms  0.012 ms  0.010 ms
 2  node-1 (192.168.56.11)  0.030 ms  0.020 ms  0.019 ms
 3  10.244.1.3 (10.244.1.3)  0.040 ms  0.025 ms  0.023 ms
"""

BUSYBOX = """\
traceroute to 10.244.1.3 (10.244.1.3), 30 hops max, 46 byte packets
 1  10.244.2.1 (10.244.2.1)  0.010 ms  0.007 ms  0.006 ms
 2  192.168.56.11 (192.168.56.11)  0.011 ms  0.008 ms  0.007 ms
 3  10.244.1.3 (10.244.1.3)  0.009 ms  0.007 ms  0.007 ms
"""

TIMEOUTS = """\
traceroute to 10.244.1.3 (10.244.1.3), 5 hops max, 60 byte packets
 1  10.244.2.1  0.052 ms
 2  *
 3  * * *
 4  10.244.1.3  1.2 ms *  0.9 ms
"""

BALANCED = """\
traceroute to 10.9.9.9 (10.9.9.9), 30 hops max, 60 byte packets
 1  10.0.0.1  0.1 ms 10.0.0.2  0.2 ms  0.3 ms
 2  10.9.9.9  0.5 ms !H  0.4 ms !H  0.4 ms !H
"""


@pytest.mark.parametrize("text", [DEBIAN_N, DEBIAN_NAMES, BUSYBOX])
def test_three_hop_cross_node_shapes(text):
    trace = parse_traceroute(text)
    assert trace.target == A("10.244.1.3")
    assert trace.path == [A("10.244.2.1"), A("192.168.56.11"), A("10.244.1.3")]
    assert trace.reached
    assert all(len(h.probes) == 3 for h in trace.hops)


def test_names_are_kept_apart_from_addresses():
    trace = parse_traceroute(DEBIAN_NAMES)
    assert trace.hops[0].names == ("cni0.node-2",)
    assert trace.hops[2].names == ()


def test_timeouts_and_partial_answers():
    trace = parse_traceroute(TIMEOUTS)
    assert trace.path == [A("10.244.2.1"), None, None, A("10.244.1.3")]
    assert trace.hops[1].silent and trace.hops[1].probes == (None,)
    assert trace.hops[2].probes == (None, None, None)
    assert trace.hops[3].probes == (A("10.244.1.3"), None, A("10.244.1.3"))
    assert trace.reached


def test_several_responders_per_ttl_and_notes():
    trace = parse_traceroute(BALANCED)
    assert trace.hops[0].addresses == (A("10.0.0.1"), A("10.0.0.2"))
    assert trace.hops[0].probes == (A("10.0.0.1"), A("10.0.0.2"), A("10.0.0.2"))
    assert trace.hops[1].notes == ("!H", "!H", "!H")


def test_not_reached_when_last_hop_is_someone_else():
    trace = parse_traceroute(TIMEOUTS.replace(" 4  10.244.1.3  1.2 ms *  0.9 ms", " 4  * * *"))
    assert not trace.reached


def test_warning_lines_before_header_are_ignored():
    text = "traceroute: warning: 10.244.1.3 has multiple addresses; using 10.244.1.3\n" + DEBIAN_N
    assert len(parse_traceroute(text).hops) == 3


@pytest.mark.parametrize("text", ["", "ping: unknown host\n", DEBIAN_N + "garbage here\n",
                                  DEBIAN_N.replace("0.052 ms", "fast")])
def test_garbage_is_an_error_not_an_empty_trace(text):
    with pytest.raises(TracerouteParseError):
        parse_traceroute(text)
