"""The lab's kubeconfig for kubectl on the host: kubeadm's admin.conf with every cluster's server on the
control plane's host-only (eth1) address, the one address of the cluster the host can reach."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from k8slab.errors import CommandFailedError
from k8slab.provision.ansible_vars import group_var
from k8slab.spec.model import LabSpec


def api_server_url(spec: LabSpec) -> str:
    """Where kubeadm's API server listens: the control plane's eth1 address, the roles' port."""
    return f"https://{spec.control_plane.ip}:{group_var('k8slab_apiserver_port')}"


def host_kubeconfig(admin_conf: str, spec: LabSpec) -> str:
    """admin.conf with the server of every cluster set to the control plane's eth1 address."""
    try:
        config = yaml.safe_load(admin_conf)
        clusters = config["clusters"]
        for entry in clusters:
            entry["cluster"]["server"] = api_server_url(spec)
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise CommandFailedError(f"the control plane's admin.conf is not a kubeconfig ({exc})") from None
    if not clusters:
        raise CommandFailedError("the control plane's admin.conf names no cluster")
    return yaml.safe_dump(config, sort_keys=False)


def write_private(path: Path, text: str) -> Path:
    """Write text to path readable by its owner only (it holds the cluster admin's key), via a temp file
    renamed into place so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
