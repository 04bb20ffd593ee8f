#!/usr/bin/env bash
# Installs what the make targets need, once, and only what the chosen path uses:
#   scripts/setup.sh lab    `make lab` and the other lab targets: Python >= 3.11 and the .venv; then either
#                           nothing more (Vagrant + VirtualBox are there: the VirtualBox lab, Linux or macOS;
#                           k8slab checks their versions) or the emulated lab's Debian/Ubuntu packages.
#   scripts/setup.sh test   `make test` (CI: a fresh Debian 12 root machine): the emulated lab's and the tests'
#                           Debian packages, Debian's vagrant for `vagrant validate`, and the .venv.
# Debian packages are only ever looked up with dpkg on Debian/Ubuntu; elsewhere the script says what to do.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-test}"

# The emulated lab runs these in its namespaces (CNI plugins, routing, traceroute/tcpdump/ping, busybox images,
# dnsmasq for the cluster DNS pod, bird2 for Calico's BGP).
EMULATED_PACKAGES=(containernetworking-plugins iproute2 iptables util-linux traceroute tcpdump iputils-ping procps
                   busybox dnsmasq-base bird2)
# Only the tests use these (chroot role test, diagram rendering, HTML report screenshots, the SSH lab tests).
TEST_PACKAGES=(debootstrap graphviz chromium openssh-server netcat-openbsd)
# vagrant without its ~780 MB of recommends is enough for `vagrant validate --ignore-provider`.
TEST_NO_RECOMMENDS=(vagrant)

say() { echo "setup: $*" >&2; }

# The first python3.x >= 3.11 on PATH (macOS and older Ubuntu often have an older python3 first).
find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

is_debian_like() { command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; }

# Installs the Debian packages in "$@" that are missing (names after a literal -- go without recommends).
apt_install() {
  local pkg missing=() plain=() bare=() no_rec=0
  for pkg in "$@"; do
    if [ "$pkg" = "--" ]; then no_rec=1; continue; fi
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" && continue
    missing+=("$pkg")
    if [ $no_rec -eq 1 ]; then bare+=("$pkg"); else plain+=("$pkg"); fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "missing Debian packages: ${missing[*]}"
    say "install them with: sudo apt-get install ${missing[*]}   (or run this as root: sudo make ...)"
    exit 1
  fi
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=120 update -qq
  [ ${#plain[@]} -eq 0 ] || apt-get -o DPkg::Lock::Timeout=120 install -y -qq "${plain[@]}" >/dev/null
  [ ${#bare[@]} -eq 0 ] || apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${bare[@]}" >/dev/null
  # Debian's bird2 enables a system-wide BIRD in the host's own namespace; the lab runs its own BIRD inside each
  # node namespace and must leave the host as it was, so the one the package started is stopped and disabled.
  if [[ " ${missing[*]} " == *" bird2 "* ]] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now bird.service >/dev/null 2>&1 || true
  fi
}

has_virtualbox_lab() {
  command -v vagrant >/dev/null && { command -v VBoxManage >/dev/null || command -v virsh >/dev/null; }
}

case "$mode" in
  lab)
    if has_virtualbox_lab; then
      command -v ssh >/dev/null || { say "Ansible reaches the VMs with ssh, which is not installed (OpenSSH client)"; exit 1; }
    elif [ "$(uname -s)" != "Linux" ]; then
      say "the lab needs Vagrant (2.4.9 or later) and VirtualBox 7.1 or 7.2 on $(uname -s):"
      say "  https://developer.hashicorp.com/vagrant/install and https://www.virtualbox.org/wiki/Downloads"
      say "(the emulated lab, the other choice, runs on Linux only)"
      exit 1
    elif is_debian_like; then
      apt_install "${EMULATED_PACKAGES[@]}"
    else
      say "no Vagrant + VirtualBox here, and the emulated lab needs Debian/Ubuntu packages: ${EMULATED_PACKAGES[*]}"
      say "install Vagrant and VirtualBox for the VirtualBox lab, or use Debian/Ubuntu for the emulated lab"
      exit 1
    fi
    ;;
  test)
    if ! is_debian_like; then
      say "make test builds emulated labs and a Debian chroot: it runs on Debian/Ubuntu as root (sudo make test)"
      exit 1
    fi
    apt_install "${EMULATED_PACKAGES[@]}" "${TEST_PACKAGES[@]}" python3-venv -- "${TEST_NO_RECOMMENDS[@]}"
    ;;
  *)
    say "usage: scripts/setup.sh lab|test"
    exit 2
    ;;
esac

if ! python=$(find_python); then
  say "k8slab needs Python 3.11 or later; found: $(python3 --version 2>&1 || echo 'no python3')."
  say "  Debian 12/13 and Ubuntu 24.04 have it (apt install python3 python3-venv); Ubuntu 22.04: apt install"
  say "  python3.11 python3.11-venv; macOS: brew install python@3.12 (or python.org's installer)"
  exit 1
fi
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  say "$python cannot make a virtualenv (no ensurepip); on Debian/Ubuntu: apt install python3-venv"
  say "  (or python$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv)"
  exit 1
fi

# Reinstall the Python side only when pyproject.toml changed since the last setup.
stamp=.venv/.k8slab-setup
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || ! cmp -s pyproject.toml "$stamp"; then
  echo "==> installing k8slab and its Python dependencies into .venv ($("$python" --version))"
  "$python" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  cp pyproject.toml "$stamp"
fi
