"""How k8slab reaches the nodes over SSH: parsed from `vagrant ssh-config` or from a user's Ansible
inventory, and written back out as the Ansible inventory (inventory/hosts.yml) and an ssh_config
that paramiko and testinfra read. Everything here is pure except the two functions that write files.
"""

from __future__ import annotations

import getpass
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from k8slab.errors import CommandFailedError, LabStateError
from k8slab.paths import PROJECT_ROOT
from k8slab.spec.model import LabSpec

# The checkout holds the Vagrantfile, ansible/ and inventory/ beside src/; k8slab runs from it.
INVENTORY_TEMPLATE = PROJECT_ROOT / "inventory" / "hosts.yml.j2"
INVENTORY_FILE = PROJECT_ROOT / "inventory" / "hosts.yml"

# The lab's VMs are rebuilt often and get new host keys each time: remembering them only breaks reconnects.
THROWAWAY_HOST_OPTIONS = ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "IdentitiesOnly=yes")
# ssh_config(5): "Key value" or "Key=value".
_KEY_VALUE = re.compile(r"^(\w+)(?:\s*=\s*|\s+)(.*)$")


@dataclass(frozen=True)
class SshEndpoint:
    """Where one node's sshd is and how to log in to it."""

    name: str
    hostname: str
    port: int = 22
    user: str = ""
    identity_file: str | None = None
    proxy_command: str | None = None

    def expanded_proxy_command(self) -> str | None:
        """ProxyCommand with ssh's %h, %p, %r tokens filled in (paramiko.ProxyCommand does not expand them)."""
        if not self.proxy_command:
            return None
        tokens = {"%%": "%", "%h": self.hostname, "%p": str(self.port), "%r": self.user, "%n": self.name}
        return re.sub(r"%[%hprn]", lambda m: tokens[m[0]], self.proxy_command)

    @property
    def ssh_args(self) -> str:
        """The extra ssh options Ansible needs (ansible_ssh_common_args)."""
        options = list(THROWAWAY_HOST_OPTIONS)
        if self.proxy_command:
            options.append(f"ProxyCommand={self.proxy_command}")
        return " ".join(f"-o {shlex.quote(o)}" for o in options)


def parse_ssh_config(text: str) -> dict[str, SshEndpoint]:
    """The Host blocks of `vagrant ssh-config` output (or any plain ssh_config), by host name."""
    blocks: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _KEY_VALUE.match(line)
        if not match:
            raise CommandFailedError(f"ssh config line {lineno} ({line!r}) is not 'Key value'")
        key, value = match[1].lower(), _unquote(match[2].strip())
        if key == "host":
            current = blocks.setdefault(value, {})
        elif current is None:
            raise CommandFailedError(f"ssh config line {lineno} ({line!r}) comes before any 'Host' line")
        else:
            current.setdefault(key, value)  # ssh takes the first value of a key, so does this
    return {name: _endpoint(name, opts) for name, opts in blocks.items()}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _endpoint(name: str, opts: Mapping[str, str]) -> SshEndpoint:
    port = opts.get("port", "22")
    if not port.isdigit():
        raise CommandFailedError(f"ssh config for {name}: Port {port!r} is not a number")
    return SshEndpoint(name=name, hostname=opts.get("hostname", name), port=int(port),
                       user=opts.get("user", ""), identity_file=opts.get("identityfile"),
                       proxy_command=opts.get("proxycommand"))


def endpoints_from_inventory(data: Mapping[str, Any]) -> dict[str, SshEndpoint]:
    """The connection of every host in `ansible-inventory --list` JSON (any inventory format Ansible reads)."""
    hostvars = data.get("_meta", {}).get("hostvars", {})
    hosts: set[str] = set(hostvars)
    for group in data.values():
        if isinstance(group, dict):
            hosts.update(group.get("hosts", []))
    endpoints = {}
    for name in sorted(hosts):
        hv = hostvars.get(name, {})
        proxy = None
        for word in shlex.split(str(hv.get("ansible_ssh_common_args", ""))):
            if word.lower().startswith("proxycommand="):
                proxy = word.split("=", 1)[1]
        endpoints[name] = SshEndpoint(
            name=name, hostname=str(hv.get("ansible_host", name)), port=int(hv.get("ansible_port", 22)),
            user=str(hv.get("ansible_user", "")), identity_file=hv.get("ansible_ssh_private_key_file"),
            proxy_command=proxy)
    return endpoints


def endpoints_for(spec: LabSpec, endpoints: Mapping[str, SshEndpoint], where: str) -> list[SshEndpoint]:
    """The endpoints of the spec's nodes in node order; LabStateError if a node has none."""
    missing = [n.name for n in spec.nodes if n.name not in endpoints]
    if missing:
        known = ", ".join(sorted(endpoints)) or "none"
        raise LabStateError(f"{where} has no SSH details for node(s) {', '.join(missing)} of lab {spec.name!r} "
                            f"(it has: {known}); its host names must be the node names of {spec.source}")
    return [endpoints[n.name] for n in spec.nodes]


def render_inventory(spec: LabSpec, endpoints: Mapping[str, SshEndpoint], where: str = "vagrant ssh-config") -> str:
    """inventory/hosts.yml for the spec: groups control_plane and workers under k8s_nodes."""
    ordered = endpoints_for(spec, endpoints, where)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(INVENTORY_TEMPLATE.parent), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    by_name = {e.name: e for e in ordered}
    return env.get_template(INVENTORY_TEMPLATE.name).render(
        lab=spec.name, source=spec.source,
        control_plane=[by_name[spec.control_plane.name]],
        workers=[by_name[n.name] for n in spec.workers],
    )


def ssh_config_text(endpoints: Mapping[str, SshEndpoint]) -> str:
    """An ssh_config for paramiko and testinfra's paramiko backend (they read the same keys)."""
    blocks = []
    for e in endpoints.values():
        lines = [f"Host {e.name}", f"  HostName {e.hostname}", f"  Port {e.port}",
                 f"  User {e.user or getpass.getuser()}"]
        if e.identity_file:
            lines.append(f'  IdentityFile "{e.identity_file}"')
        if e.proxy_command:
            lines.append(f"  ProxyCommand {e.proxy_command}")
        lines += [f"  {o.replace('=', ' ')}" for o in THROWAWAY_HOST_OPTIONS]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def write_inventory(spec: LabSpec, endpoints: Mapping[str, SshEndpoint], path: Path = INVENTORY_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_inventory(spec, endpoints))
    return path
