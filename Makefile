# Flow Operator: `make run` to try it, `make test` to check it. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLUSTER_DIR ?= .cluster
export KUBECONFIG ?= $(CURDIR)/$(CLUSTER_DIR)/kubeconfig

.PHONY: help venv lock crds lint unit e2e test test-deps chart cluster-build cluster-up cluster-down operator run kind-up clean bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml requirements.lock requirements.runtime.lock
	@echo "==> Python virtualenv in $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# every file pip fetches is checked against the lock's sha256 (pip and setuptools too)
	@$(PY) -m pip install -q --require-hashes -r requirements.lock
	@$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

venv: $(VENV)/.installed  ## create the virtualenv with pinned dependencies

lock: venv  ## re-resolve both locks from pyproject.toml with hashes (keeps locked versions; uv --upgrade-package X to move one)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra build --generate-hashes \
	  --universal --python-version 3.11 --custom-compile-command "make lock" -q -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra build --generate-hashes \
	  --universal --python-version 3.11 --custom-compile-command "make lock" -q \
	  -c requirements.lock -o requirements.runtime.lock

crds: venv  ## regenerate crds/ (and the Helm chart's copy) from the models, the chart's RBAC from rbac.py
	$(PY) -m flow_operator.crds crds
	$(PY) -m flow_operator.crds charts/flow-operator/crds
	$(PY) -m flow_operator.rbac charts/flow-operator/templates/_rbac_rules.tpl
	$(PY) -m flow_operator.rbac --user-roles cluster/flow-roles.yaml

lint: venv  ## ruff, mypy --strict, import contracts, CRD and RBAC drift, Dockerfile (hadolint)
	$(VENV)/bin/ruff check operator tests bench cluster
	$(VENV)/bin/ruff format --check operator tests bench cluster
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m flow_operator.crds --check crds
	$(PY) -m flow_operator.crds --check charts/flow-operator/crds
	$(PY) -m flow_operator.rbac --check charts/flow-operator/templates/_rbac_rules.tpl
	$(PY) -m flow_operator.rbac --check --user-roles cluster/flow-roles.yaml
	$(VENV)/bin/hadolint Dockerfile

unit: venv  ## fast tests: pure core, golden files, handlers on fakes
	$(PY) -m pytest tests/unit -q

chart: venv  ## the Helm chart offline: helm lint, schemas, RBAC, CRDs, image, Argo CD health
	@bash cluster/build.sh helm
	$(PY) -m pytest -q tests/unit/test_chart.py tests/unit/test_argocd_health.py

cluster-build:  ## build and cache etcd, kube-*, kwok from Go modules (once)
	@bash cluster/build.sh cluster

cluster-up: cluster-build  ## start the local control plane, kubeconfig in .cluster/kubeconfig
	@$(PYTHON) cluster/localcluster.py up --dir $(CLUSTER_DIR)

cluster-down:  ## stop the local control plane, no process left behind
	@$(PYTHON) cluster/localcluster.py down --dir $(CLUSTER_DIR)

e2e: venv cluster-build  ## end-to-end tests on a real local control plane
	$(PY) -m pytest tests/e2e -q

test-deps:  ## what the tests need beyond the venv, when absent: Debian's chromium (browser tests), PostgreSQL (run store)
	@bash tests/e2e/browser_deps.sh
	@bash tests/unit/history/postgres_deps.sh

test: lint cluster-build test-deps  ## everything CI runs: lint, unit, e2e on the local control plane
	$(PY) -m pytest tests -q

operator: venv  ## run the operator alone, in the foreground, against $$KUBECONFIG
	$(PY) -m flow_operator run --all-namespaces

run: venv  ## local cluster (or $$KUBECONFIG's), CRDs, examples, operator in the foreground
	@bash cluster/run.sh

kind-up:  ## with Docker and kind: a kind cluster whose kubeconfig is .cluster/kubeconfig
	@command -v kind >/dev/null || { echo "kind not found (it needs Docker); see docs/local-cluster.md" >&2; exit 1; }
	@mkdir -p $(CLUSTER_DIR)
	kind create cluster --name flow-operator --kubeconfig $(CLUSTER_DIR)/kubeconfig

clean: cluster-down  ## stop the cluster and remove local state (keeps the build cache)
	rm -rf $(CLUSTER_DIR) $(VENV)

bench: venv cluster-build  ## benchmarks S1 then S2 (BENCH_SIZE Workflows, default 100; BENCH_RUNS FlowRuns, default 50), then bench-history
	$(PY) bench/run.py --scenario all
	$(MAKE) bench-history

.PHONY: bench-history
bench-history: venv  ## the run store at scale: HISTORY_RUNS archived runs (default 1,000,000) on SQLite and PostgreSQL; bench/results/history-<stamp>.json
	@bash tests/unit/history/postgres_deps.sh
	$(PY) bench/history.py --runs $${HISTORY_RUNS:-1000000} --backend $${HISTORY_BACKEND:-all}

.PHONY: chaos
chaos: venv cluster-build  ## long reliability runs (50 kill -9 cycles, a 45 s API outage, HA, bad input, security); figures to bench/results/reliability-<stamp>.json
	FLOW_CHAOS_N=$${FLOW_CHAOS_N:-50} FLOW_OUTAGE_SECONDS=$${FLOW_OUTAGE_SECONDS:-45} \
	FLOW_RESULTS_FILE=$${FLOW_RESULTS_FILE:-bench/results/reliability-$$(date -u +%Y%m%d-%H%M%S).json} \
	  $(PY) -m pytest tests/e2e/test_reliability.py tests/e2e/test_ha.py \
	    tests/e2e/test_bad_input.py tests/e2e/test_security.py -q -s -p no:cacheprovider
