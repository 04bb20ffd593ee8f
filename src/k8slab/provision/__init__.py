"""Provisioning the VirtualBox lab or existing machines: inventory, Ansible variables, ansible-runner."""
