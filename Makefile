# k8slab: `make lab` brings the lab up, `make test` runs every test. `make help` lists the rest.
SPEC ?= lab.yaml
K8SLAB := .venv/bin/k8slab --spec $(SPEC)

.DEFAULT_GOAL := help
.PHONY: help setup lab test verify destroy recreate status lint

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## install Debian packages and the Python venv (.venv) that the other targets use
	@scripts/setup.sh

lab: setup ## bring the lab up: VirtualBox VMs where Vagrant+VirtualBox exist, else the emulated lab
	$(K8SLAB) up

test: setup ## run all tests (unit, rendering, linting, and the acceptance suite on a lab)
	.venv/bin/pytest tests/ --junitxml=build/junit.xml

verify: setup ## check the running lab against the tutorial and print a table of results
	$(K8SLAB) verify

status: setup ## show the nodes of the running lab
	$(K8SLAB) status

destroy: setup ## remove the lab and everything it made
	$(K8SLAB) destroy --yes

recreate: setup ## destroy the lab and bring it up again
	$(K8SLAB) recreate --yes

lint: setup ## ruff on the Python code, ansible-lint on the roles
	.venv/bin/ruff check src tests bench
	.venv/bin/ansible-lint --offline ansible/site.yml
