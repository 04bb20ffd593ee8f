"""The playbook parses (ansible-playbook --syntax-check, with the real extravars) and ansible-lint
finds nothing, offline, with the project's own tools from .venv/bin (`make setup` installs both)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from k8slab.provision.ansible_vars import ansible_vars
from k8slab.spec.load import load_spec

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
PLAYBOOK = ROOT / "ansible" / "site.yml"


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{path} is not installed; run `make setup` (it installs the dev extras)")
    return path


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1",
           "NO_COLOR": "1", "ANSIBLE_CONFIG": str(ROOT / "ansible" / "ansible.cfg")}
    return subprocess.run(argv, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_playbook_syntax_with_the_specs_extravars(tmp_path):
    spec = load_spec(ROOT / "lab.yaml")
    extravars = tmp_path / "extravars.json"
    extravars.write_text(json.dumps(ansible_vars(spec)))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"k8s_nodes": {"children": {
        "control_plane": {"hosts": {spec.control_plane.name: {}}},
        "workers": {"hosts": {n.name: {} for n in spec.workers}}}}}}}))
    # Run from elsewhere: the roles must be found through the playbook's folder, not the cwd.
    result = run([str(tool("ansible-playbook")), "--syntax-check", "-i", str(inventory),
                  "-e", f"@{extravars}", str(PLAYBOOK)], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "playbook: " in result.stdout


def test_ansible_lint_is_clean():
    result = run([str(tool("ansible-lint")), "--offline", "--nocolor", str(PLAYBOOK.relative_to(ROOT))], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failure(s), 0 warning(s)" in result.stdout + result.stderr
