# The two commands of README.md, and a few more for developers.
# Each sets up what it needs: .venv, pip packages, Debian packages for tests.

VENV        ?= .venv
HOST        ?= 127.0.0.1
HTTP_PORT   ?= 8080
GRPC_PORT   ?= 8081
MODEL_STORE ?= model-store
PYTEST_ARGS ?=

.PHONY: serve test setup test-setup lint model-store bench help

help:
	@echo "make serve   serve the bundled models on $(HOST):$(HTTP_PORT) (HTTP) and :$(GRPC_PORT) (gRPC)"
	@echo "make test    set up and run the whole test suite (what CI runs)"
	@echo "make lint    ruff check, format check and mypy"
	@echo "make bench   modelplane bench on the bundled models (README, Benchmark)"
	@echo "make model-store   retrain and re-export the bundled models"

setup:
	scripts/setup-dev

serve: setup
	$(VENV)/bin/modelplane serve --model-store $(MODEL_STORE) --host $(HOST) \
		--http_port $(HTTP_PORT) --grpc_port $(GRPC_PORT)

# Debian packages and side venvs the tests drive for real: Prometheus and
# promtool, shellcheck, Docker and debootstrap, checkov, Java for TorchServe.
test-setup: setup
	scripts/test-setup/prometheus.sh
	scripts/test-setup/docker.sh install
	scripts/test-setup/checkov.sh
	scripts/test-setup/java.sh
	scripts/test-setup/perf_analyzer.sh

test: test-setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check predictors tests
	$(VENV)/bin/mypy

BENCH_ARGS ?=
bench: setup
	$(VENV)/bin/modelplane bench --model-store $(MODEL_STORE) $(BENCH_ARGS)

model-store: setup
	$(VENV)/bin/modelplane store build --store $(MODEL_STORE)
