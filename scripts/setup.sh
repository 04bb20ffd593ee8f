#!/usr/bin/env bash
# Installs what `make lab` and `make test` need on a fresh Debian/Ubuntu machine, once:
# the Debian packages (as root), then a virtualenv in .venv with k8slab and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# The emulated lab and the tests use these; vagrant without its ~780 MB of recommends is enough
# for `vagrant validate --ignore-provider`.
APT_PACKAGES=(containernetworking-plugins iproute2 iptables util-linux traceroute tcpdump iputils-ping procps
              debootstrap graphviz chromium openssh-server netcat-openbsd python3-venv busybox bird2)
APT_NO_RECOMMENDS=(vagrant)

missing=()
for pkg in "${APT_PACKAGES[@]}" "${APT_NO_RECOMMENDS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  recommends=() no_recommends=()
  for pkg in "${missing[@]}"; do
    if [[ " ${APT_NO_RECOMMENDS[*]} " == *" $pkg "* ]]; then no_recommends+=("$pkg"); else recommends+=("$pkg"); fi
  done
  [ ${#recommends[@]} -eq 0 ] || apt-get install -y -qq "${recommends[@]}" >/dev/null
  [ ${#no_recommends[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${no_recommends[@]}" >/dev/null
fi

# Reinstall the Python side only when pyproject.toml changed since the last setup.
stamp=.venv/.k8slab-setup
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || ! cmp -s pyproject.toml "$stamp"; then
  echo "==> installing k8slab and its Python dependencies into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  cp pyproject.toml "$stamp"
fi
