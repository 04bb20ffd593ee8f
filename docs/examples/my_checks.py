"""Assignment: two pods on two nodes talk across the host-only network, as the tutorial's step 4 shows.

Before you run this: `k8slab pod run httpd --node node-1` and `k8slab pod run busybox --node node-2`.
Run it: `pytest --k8slab-spec lab.yaml my_checks.py` (k8slab's pytest plugin gives the fixtures below).
"""

from k8slab.verify.traceroute import parse_traceroute


def test_every_node_routes_each_peers_pod_subnet_via_its_eth1(node_hosts, expected_routes):
    for node, routes in expected_routes.items():
        table = node_hosts[node].check_output("ip -4 route")
        for route in routes:
            if route.peer:  # flannel's route to another node's pods
                assert str(route.route) in table, f"{node}: missing {route.describe()}"  # as `ip route` prints it


def test_httpd_and_busybox_run_on_different_nodes(lab):
    pods = {p.name: p for p in lab.pods()}
    assert {"httpd", "busybox"} <= set(pods), "start the two pods first (see the top of this file)"
    assert pods["httpd"].node != pods["busybox"].node


def test_busybox_reaches_httpd_through_the_tutorials_hops(pod_hosts, expected_hops):
    want = expected_hops("busybox", "httpd")
    out = pod_hosts["busybox"].check_output(f"traceroute -n -q 1 -w 2 -m {len(want)} {want[-1]}")
    assert parse_traceroute(out).path == want
