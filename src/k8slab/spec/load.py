"""lab.yaml: load it once, validate it with errors that name the field and the fix, collecting every problem."""

from __future__ import annotations

import ipaddress
import os
import stat
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import yaml

from k8slab.errors import LabSpecError
from k8slab.spec import calico as calico_facts
from k8slab.spec.calico import CalicoConfig
from k8slab.spec.facts import (
    CNI_BACKENDS,
    CNI_PLUGINS,
    CONTROL_PLANE_MIN_CPUS,
    CONTROL_PLANE_MIN_MEMORY_MB,
    DNS_LABEL,
    HOST_ONLY_IF,
    KUBERNETES_MINOR,
    LAB_NAME,
    MAX_CPUS,
    MAX_MEMORY_MB,
    MIN_MEMORY_MB,
    NAT_IF,
    NAT_NETWORK,
    NETNS_HOSTONLY,
    NETNS_NAT_PREFIX,
    NETNS_POD_PREFIX,
    NODE_CIDR_PREFIX,
    ROLES,
)
from k8slab.spec.model import LabSpec, Node

MAX_SPEC_BYTES = 256 * 1024  # lab.yaml is a few hundred bytes; a bigger file is not a lab spec
MAX_DEPTH = 20                # lab.yaml nests 4 deep; deeper nesting is refused before it recurses
MAX_PROBLEMS = 50             # a hostile spec with a million mistakes gets the first ones, not all
MAX_PROBLEM_CHARS = 300       # one problem quoting a huge value is cut


def load_spec(path: str | Path = "lab.yaml") -> LabSpec:
    """Read and validate lab.yaml. The file must be a regular file (a FIFO would block, /dev/zero never
    end) of at most MAX_SPEC_BYTES, in UTF-8; every refusal is a LabSpecError, never a traceback."""
    path = Path(path)
    return parse_spec(_read(path), source=str(path))


def _read(path: Path) -> str:
    def refuse(problem: str) -> LabSpecError:
        return LabSpecError(str(path), [problem])

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked on the open file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise refuse("file not found; pass --spec FILE or run from the project folder") from None
    except OSError as exc:
        raise refuse(f"cannot read it: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SPEC_BYTES:
        os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refuse(f"it is {_file_kind(st.st_mode)}, not a regular file; pass the path of a lab.yaml")
        raise refuse(f"it is {st.st_size} bytes; a lab spec is at most {MAX_SPEC_BYTES} bytes")
    with os.fdopen(fd, "rb") as f:
        try:
            raw = f.read(MAX_SPEC_BYTES + 1)
        except OSError as exc:
            raise refuse(f"cannot read it: {exc.strerror}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise refuse(f"it is over {MAX_SPEC_BYTES} bytes; a lab spec is at most {MAX_SPEC_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise refuse(f"it is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line} (offset {exc.start}); "
                     "save it as UTF-8") from None


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((what for test, what in kinds if test(mode)), "not a regular file")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses what lab.yaml never needs and an attacker would use: anchors and aliases (a
    "billion laughs" expands them into gigabytes), duplicate keys (YAML says last wins: `name: mine ... name:
    tutorial` would aim destroy at another lab) and nesting deeper than MAX_DEPTH (the composer recurses)."""

    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, "anchors and aliases (&name, *name) are not allowed in "
                                              "a lab spec; write each value out", event.start_mark)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep; a lab spec "
                                                  "nests 4", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:
                continue  # an unhashable key: the base class says so
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {_cut(repr(key), 80)} (first at line {first.line + 1}); YAML would "
                    "keep the last one silently, so each key may appear once", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def parse_spec(text: str, source: str = "lab.yaml") -> LabSpec:
    if len(text) > MAX_SPEC_BYTES:
        raise LabSpecError(source, [f"it is over {MAX_SPEC_BYTES} characters; a lab spec is at most that"])
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise LabSpecError(source, [_cut(f"YAML does not parse{where}: {problem}", MAX_PROBLEM_CHARS)]) from None
    except RecursionError:  # a parser step the depth cap does not cover: still a clear refusal
        raise LabSpecError(source, [f"nested too deeply; a lab spec nests 4 levels (at most {MAX_DEPTH})"]) from None
    return _Validator(source).validate(data)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


ABSENT = object()  # a section lab.yaml does not have (None is one written empty)


class _Validator:
    """Collects every problem so a user fixes lab.yaml in one go, not one error per run."""

    def __init__(self, source: str):
        self.source = source
        self.problems: list[str] = []

    def fail(self, field: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(_cut(f"{field}: {message}", MAX_PROBLEM_CHARS))
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("... and more problems; fix these first")

    def mapping(self, data: Any, field: str, required: set[str], optional: set[str]) -> dict[str, Any]:
        if data is ABSENT:
            return {}  # its parent said it is missing; its keys are not missing on top of that
        if not isinstance(data, dict):
            self.fail(field, f"must be a mapping, got {_kind(data)}")
            return {}
        for key in sorted(set(data) - required - optional, key=str):
            allowed = ", ".join(sorted(required | optional))
            self.fail(f"{field}.{key}" if field else str(key), f"unknown key; allowed here: {allowed}")
        for key in sorted(required - set(data)):
            self.fail(f"{field}.{key}" if field else key, "missing (required)")
        return data

    def typed(self, data: dict[str, Any], key: str, field: str, kind: type, default: Any = None) -> Any:
        if key not in data:
            return default
        value = data[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            wanted = kind.__name__ if kind is not str else "a string"
            self.fail(field, f"must be {wanted}, got {_kind(value)} {_cut(repr(value), 60)}")
            return None
        return value

    def network(self, data: dict[str, Any], key: str, field: str) -> IPv4Network | None:
        value = self.typed(data, key, field, str)
        if value is None:
            return None
        try:
            return IPv4Network(value, strict=True)
        except ValueError as exc:
            self.fail(field, f"{value!r} is not an IPv4 network in CIDR form like 10.244.0.0/16 ({exc})")
            return None

    def validate(self, data: Any) -> LabSpec:
        sections = {"nodes", "network", "kubernetes", "cni", "box"}
        if not isinstance(data, dict):  # nothing else can be checked
            keys = ", ".join(["name", *sorted(sections)])
            raise LabSpecError(self.source, [f"the file must be a mapping with the keys {keys}; got {_kind(data)}"])
        top = self.mapping(data, "", sections, {"name"})
        name = self.typed(top, "name", "name", str, "k8slab")
        if name is not None and not LAB_NAME.fullmatch(name):
            self.fail("name", f"{name!r} must be 1-20 lowercase letters, digits or '-' (it names the lab's namespaces)")

        box = self.mapping(top.get("box", ABSENT), "box", {"name", "version"}, set())
        box_name = self.typed(box, "name", "box.name", str)
        box_version = self.typed(box, "version", "box.version", str)

        net = self.mapping(top.get("network", ABSENT), "network", {"host_only"}, set())
        host_only = self.network(net, "host_only", "network.host_only")
        # VirtualBox's host-only range binds the VirtualBox lab only: VagrantLab.up refuses it there
        # (labs/vagrant_host.host_only_refusal); the emulated lab takes the articles' own networks.

        k8s = self.mapping(top.get("kubernetes", ABSENT), "kubernetes", {"version", "pod_cidr", "service_cidr"}, set())
        version = self.typed(k8s, "version", "kubernetes.version", str)
        if version is not None and not KUBERNETES_MINOR.fullmatch(version):
            self.fail("kubernetes.version", f"{version!r} must be a minor release like \"1.31\" (quoted)")
        pod_cidr = self.network(k8s, "pod_cidr", "kubernetes.pod_cidr")
        service_cidr = self.network(k8s, "service_cidr", "kubernetes.service_cidr")

        cni = self.mapping(top.get("cni", ABSENT), "cni", {"plugin"},
                           {"backend", "interface", "encapsulation", "block_size"})
        plugin = self.typed(cni, "plugin", "cni.plugin", str)
        if plugin is not None and plugin not in CNI_PLUGINS:
            self.fail("cni.plugin", f"unknown CNI plugin {plugin!r}; supported: {', '.join(CNI_PLUGINS)}")
        backend, calico = self.dataplane(cni, plugin)
        iface = self.typed(cni, "interface", "cni.interface", str, HOST_ONLY_IF)
        if iface is not None and iface != HOST_ONLY_IF:
            self.fail(
                "cni.interface",
                f"must be {HOST_ONLY_IF} (the host-only NIC); {NAT_IF} is VirtualBox NAT with the same address "
                "on every node, so flannel bound to it cannot route between nodes",
            )

        self.check_overlaps(host_only, pod_cidr, service_cidr)
        nodes = self.nodes(top.get("nodes"), host_only, pod_cidr, calico, present="nodes" in top)

        if self.problems:
            raise LabSpecError(self.source, self.problems)
        assert host_only and pod_cidr and service_cidr and name and box_name and box_version and version
        assert plugin and backend is not None and iface
        return LabSpec(
            name=name, box_name=box_name, box_version=box_version, host_only=host_only, k8s_version=version,
            pod_cidr=pod_cidr, service_cidr=service_cidr, cni_plugin=plugin, cni_backend=backend,
            cni_interface=iface, nodes=tuple(nodes), source=self.source, calico=calico,
        )

    def dataplane(self, cni: dict[str, Any], plugin: str | None) -> tuple[str | None, CalicoConfig | None]:
        """flannel's backend, or Calico's pool settings; each plugin refuses the other's keys."""
        if plugin == "calico":
            if "backend" in cni:
                self.fail("cni.backend", "is flannel's; Calico's pool says `encapsulation: "
                          f"{' | '.join(calico_facts.ENCAPSULATIONS)}` instead")
            encap = self.typed(cni, "encapsulation", "cni.encapsulation", str, calico_facts.DEFAULT_ENCAPSULATION)
            if encap is not None and encap not in calico_facts.ENCAPSULATIONS:
                self.fail("cni.encapsulation", f"unknown Calico encapsulation {encap!r}; Calico's IPPool modes: "
                          f"{', '.join(calico_facts.ENCAPSULATIONS)} (spelled as Calico spells them)")
                encap = None
            size = self.typed(cni, "block_size", "cni.block_size", int, calico_facts.DEFAULT_BLOCK_SIZE)
            lo, hi = calico_facts.MIN_BLOCK_SIZE, calico_facts.MAX_BLOCK_SIZE
            if size is not None and not lo <= size <= hi:
                self.fail("cni.block_size", f"{size} is outside {lo}..{hi}, the IPv4 block sizes Calico's IPPool "
                          "accepts (default 26: 64 addresses per node)")
                size = None  # no blocks of it can be computed (ipaddress would raise)
            if None in (encap, size):
                return "", None
            return "", CalicoConfig(encap, size)
        for key in ("encapsulation", "block_size"):
            if key in cni:
                self.fail(f"cni.{key}", f"is Calico's; flannel's mode is `backend: {' | '.join(CNI_BACKENDS)}`")
        if "backend" not in cni:
            self.fail("cni.backend", f"missing (required for flannel): one of {', '.join(CNI_BACKENDS)}")
            return None, None
        backend = self.typed(cni, "backend", "cni.backend", str)
        if backend is not None and backend not in CNI_BACKENDS:
            self.fail("cni.backend", f"unknown flannel backend {backend!r}; supported: {', '.join(CNI_BACKENDS)}")
        return backend, None

    def check_overlaps(self, host_only: IPv4Network | None, pod: IPv4Network | None, svc: IPv4Network | None) -> None:
        for field, net in (("kubernetes.pod_cidr", pod), ("kubernetes.service_cidr", svc)):
            special = _special_range(net) if net is not None else None
            if special:
                self.fail(field, f"{net} overlaps {special}, which no pod or service address may use; pick a "
                          "private range such as 10.244.0.0/16 (pods) or 10.96.0.0/12 (services)")
        if svc is not None and svc.overlaps(NAT_NETWORK):
            self.fail("kubernetes.service_cidr", f"{svc} overlaps VirtualBox's NAT network {NAT_NETWORK} (every "
                      "node's eth0); pick a service CIDR apart from it")
        if pod is None:
            return
        others = [("network.host_only", host_only), ("VirtualBox's NAT network", NAT_NETWORK),
                  ("kubernetes.service_cidr", svc)]
        for label, other in others:
            if other is not None and pod.overlaps(other):
                self.fail("kubernetes.pod_cidr", f"{pod} overlaps {label} {other}; pick a pod CIDR apart from it")
        if svc is not None and host_only is not None and svc.overlaps(host_only):
            self.fail("kubernetes.service_cidr", f"{svc} overlaps network.host_only {host_only}")

    def nodes(self, raw: Any, host_only: IPv4Network | None, pod_cidr: IPv4Network | None,
              calico: CalicoConfig | None = None, present: bool = True) -> list[Node]:
        if raw is None:
            if present:  # `nodes:` with nothing under it (a missing key is reported by mapping())
                self.fail("nodes", "is empty; list at least the control-plane node")
            return []
        if not isinstance(raw, list) or not raw:
            self.fail("nodes", f"must be a non-empty list of nodes, got {'an empty list' if raw == [] else _kind(raw)}")
            return []
        subnets: list[IPv4Network] = []
        if pod_cidr is not None and calico is not None:
            subnets = self.calico_blocks(pod_cidr, calico, len(raw))
        elif pod_cidr is not None:
            if pod_cidr.prefixlen > NODE_CIDR_PREFIX:
                self.fail("kubernetes.pod_cidr", f"{pod_cidr} is smaller than one /{NODE_CIDR_PREFIX}; "
                          "each node needs its own /24 (use a /16 like 10.244.0.0/16)")
            elif 2 ** (NODE_CIDR_PREFIX - pod_cidr.prefixlen) < len(raw):
                self.fail("kubernetes.pod_cidr", f"{pod_cidr} holds {2 ** (NODE_CIDR_PREFIX - pod_cidr.prefixlen)} "
                          f"/24 subnets but the lab has {len(raw)} nodes; use a larger pod CIDR")
            else:
                subnets = list(_first_subnets(pod_cidr, len(raw)))

        nodes: list[Node] = []
        seen_names: dict[str, int] = {}
        seen_ips: dict[IPv4Address, int] = {}
        for i, item in enumerate(raw):
            field = f"nodes[{i}]"
            entry = self.mapping(item, field, {"name", "role", "ip"}, {"cpus", "memory"})
            name = self.typed(entry, "name", f"{field}.name", str)
            if name is not None:
                field = f"nodes[{i}] ({name if DNS_LABEL.fullmatch(name) else _cut(repr(name), 40)})"
                if not DNS_LABEL.fullmatch(name):
                    self.fail(f"{field}.name", f"{_cut(repr(name), 60)} is not a valid hostname: lowercase letters, "
                              "digits and '-', "
                              "starting and ending with a letter or digit, at most 63 characters")
                reserved = reserved_node_name_problem(name)
                if reserved:
                    self.fail(f"{field}.name", reserved)
                if name in seen_names:
                    self.fail(f"{field}.name", f"duplicate: nodes[{seen_names[name]}] is also called {name!r}")
                seen_names.setdefault(name, i)
            role = self.typed(entry, "role", f"{field}.role", str)
            if role is not None and role not in ROLES:
                self.fail(f"{field}.role", f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
            cpus = self.typed(entry, "cpus", f"{field}.cpus", int, 1)
            memory = self.typed(entry, "memory", f"{field}.memory", int, 1024)
            if cpus is not None and not 1 <= cpus <= MAX_CPUS:
                self.fail(f"{field}.cpus", f"must be 1 to {MAX_CPUS} (what VirtualBox gives a VM), got {cpus}")
            if memory is not None and not MIN_MEMORY_MB <= memory <= MAX_MEMORY_MB:
                self.fail(f"{field}.memory", f"must be {MIN_MEMORY_MB} to {MAX_MEMORY_MB} (MB; VirtualBox's limit), "
                          f"got {memory}")
            if role == "control-plane":
                if cpus is not None and cpus < CONTROL_PLANE_MIN_CPUS:
                    self.fail(f"{field}.cpus", f"kubeadm init refuses a control plane with fewer than "
                              f"{CONTROL_PLANE_MIN_CPUS} CPUs; set cpus: {CONTROL_PLANE_MIN_CPUS}")
                if memory is not None and memory < CONTROL_PLANE_MIN_MEMORY_MB:
                    self.fail(f"{field}.memory", f"kubeadm init refuses a control plane with less than "
                              f"{CONTROL_PLANE_MIN_MEMORY_MB} MB; set memory: 2048")
            ip = self.node_ip(entry, field, host_only, seen_ips, i)
            if None in (name, role, cpus, memory, ip) or not subnets:
                continue
            subnet = subnets[i]
            # Calico's pods route via 169.254.1.1 (proxy ARP on their veth); flannel's via cni0, the subnet's first.
            gateway = calico_facts.POD_GATEWAY if calico is not None else subnet.network_address + 1
            nodes.append(Node(name=name, role=role, ip=ip, cpus=cpus, memory=memory, index=i,
                              pod_subnet=subnet, pod_gateway=gateway))

        roles = [item.get("role") for item in raw if isinstance(item, dict)]
        count = roles.count("control-plane")
        if count == 0:
            self.fail("nodes", "no node has role: control-plane; exactly one must (it runs kubeadm init)")
        elif count > 1:
            self.fail("nodes", f"{count} nodes have role: control-plane; this lab supports exactly one")
        elif roles and roles[0] != "control-plane":
            self.fail("nodes", "the control-plane node must come first: pod subnets are handed out in "
                      "registration order, and it registers first")
        return nodes

    def calico_blocks(self, pod_cidr: IPv4Network, calico: CalicoConfig, count: int) -> list[IPv4Network]:
        """One block per node (the emulated lab's order), if the pool holds that many."""
        size = calico.block_size
        if size < pod_cidr.prefixlen:
            self.fail("cni.block_size", f"/{size} blocks are larger than the pool {pod_cidr}; use a block size of "
                      f"at least {pod_cidr.prefixlen}")
            return []
        room = 2 ** (size - pod_cidr.prefixlen)
        if room < count:
            self.fail("cni.block_size", f"{pod_cidr} holds {room} /{size} blocks but the lab has {count} nodes; "
                      "use smaller blocks (a larger block_size) or a larger pod CIDR")
            return []
        return calico_facts.blocks(pod_cidr, size, count)

    def node_ip(self, entry: dict[str, Any], field: str, host_only: IPv4Network | None,
                seen: dict[IPv4Address, int], i: int) -> IPv4Address | None:
        value = self.typed(entry, "ip", f"{field}.ip", str)
        if value is None:
            return None
        try:
            ip = IPv4Address(value)
        except ipaddress.AddressValueError:
            self.fail(f"{field}.ip", f"{value!r} is not an IPv4 address")
            return None
        if host_only is not None:
            if ip not in host_only:
                self.fail(f"{field}.ip", f"{ip} is outside the host-only network {host_only}; "
                          "pick an address inside it or change network.host_only")
            elif ip == host_only.network_address:
                self.fail(f"{field}.ip", f"{ip} is the network address of {host_only}; pick another")
            elif ip == host_only.broadcast_address:
                self.fail(f"{field}.ip", f"{ip} is the broadcast address of {host_only}; pick another")
            elif ip == host_only.network_address + 1:
                self.fail(f"{field}.ip", f"{ip} is the VirtualBox host's own address on {host_only}; pick another")
        if ip in seen:
            self.fail(f"{field}.ip", f"duplicate: nodes[{seen[ip]}] also has {ip}")
        seen.setdefault(ip, i)
        return ip


# Ranges no pod or service may take (RFC 6890): a route to them would capture the node's own traffic or never
# leave it. 255.0.0.0/8 lies within 240.0.0.0/4, the limited broadcast address too.
SPECIAL_RANGES = (
    (IPv4Network("0.0.0.0/8"), '0.0.0.0/8 ("this network")'),
    (IPv4Network("127.0.0.0/8"), "127.0.0.0/8 (loopback)"),
    (IPv4Network("169.254.0.0/16"), "169.254.0.0/16 (link-local)"),
    (IPv4Network("224.0.0.0/4"), "224.0.0.0/4 (multicast)"),
    (IPv4Network("240.0.0.0/4"), "240.0.0.0/4 (reserved, and 255.255.255.255 broadcast)"),
)


def _special_range(net: IPv4Network) -> str | None:
    return next((label for special, label in SPECIAL_RANGES if net.overlaps(special)), None)


def reserved_node_name_problem(name: str) -> str | None:
    """Why a node name would collide with the emulated lab's own namespaces, or None."""
    if name == NETNS_HOSTONLY:
        return f"{name!r} is the emulated lab's host-only switch namespace; rename the node"
    for prefix in (NETNS_POD_PREFIX, NETNS_NAT_PREFIX):
        if name.startswith(prefix):
            return (f"{name!r} starts with {prefix!r}, which the emulated lab uses for its own namespaces; "
                    "rename the node")
    return None


def _first_subnets(cidr: IPv4Network, count: int):
    for i, subnet in enumerate(cidr.subnets(new_prefix=NODE_CIDR_PREFIX)):
        if i == count:
            return
        yield subnet


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number",
             bool: "true/false", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)
