# k8slab: `make lab` brings the lab up, `make test` runs every test. `make help` lists the rest.
SPEC ?= lab.yaml
K8SLAB := .venv/bin/k8slab --spec $(SPEC)

.DEFAULT_GOAL := help
.PHONY: help setup setup-lab lab provision halt test verify destroy recreate status lint

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## install what `make test` needs (Debian/Ubuntu packages as root, the Python venv .venv)
	@scripts/setup.sh test

setup-lab: ## install what the lab needs: Python >= 3.11 and .venv; the emulated lab's packages only without VirtualBox
	@scripts/setup.sh lab

lab: setup-lab ## bring the lab up (or back up): VirtualBox VMs where Vagrant+VirtualBox exist, else the emulated lab
	$(K8SLAB) up

provision: setup-lab ## run the Ansible roles again on the running VirtualBox lab
	$(K8SLAB) provision

halt: setup-lab ## stop the VirtualBox lab's VMs; `make lab` boots them again
	$(K8SLAB) halt

test: setup ## run all tests (unit, rendering, linting, and the acceptance suite on a lab)
	.venv/bin/pytest tests/ --junitxml=build/junit.xml

verify: setup-lab ## check the running lab against the tutorial and print a table of results
	$(K8SLAB) verify

status: setup-lab ## show the nodes of the running lab
	$(K8SLAB) status

destroy: setup-lab ## remove the lab and everything it made
	$(K8SLAB) destroy --yes

recreate: setup-lab ## destroy the lab and bring it up again
	$(K8SLAB) recreate --yes

lint: setup ## ruff on the Python code, ansible-lint on the roles
	.venv/bin/ruff check src tests bench
	.venv/bin/ansible-lint --offline ansible/site.yml
