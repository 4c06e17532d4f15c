# tiedae — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TF_EXTRA ?= cpu
EXTRAS ?= dev,ray
SWEEP ?=
EXPERIMENT ?= sweep
METHOD ?= ladder_tied
ARGS ?=
PORT ?= 5000
FASHION_DIR := /usr/share/datasets/fashion-mnist
STAMP := $(VENV)/.installed
DB ?= sqlite:///$(CURDIR)/server/mlflow.db
ARTIFACTS ?= $(CURDIR)/server/artifacts
HOST ?= 127.0.0.1

.PHONY: help setup data browser run sweep table test test-all lint bench profile ui screenshot server clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(TF_EXTRA),$(EXTRAS)]'
	touch $@

setup: $(STAMP) data browser  ## create .venv with everything, fetch Fashion-MNIST, install chromium

data:  ## install Fashion-MNIST from Debian's dataset-fashion-mnist (as root), if missing
	@if [ -f $(FASHION_DIR)/t10k-labels-idx1-ubyte.gz ]; then echo "Fashion-MNIST: $(FASHION_DIR)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null \
	  && echo "Fashion-MNIST: installed to $(FASHION_DIR)"; \
	else echo "Fashion-MNIST: not installed here; Keras will download it on first use (or set data.dir=...)"; fi

browser:  ## install Debian's chromium (as root), if missing: tests/test_ui.py and make screenshot use it
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; then \
	  echo "chromium: $$(command -v chromium chromium-browser google-chrome | head -1)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	  && echo "chromium: installed to $$(command -v chromium)"; \
	else echo "chromium: not installed here (not root, or no apt-get); tests/test_ui.py's browser checks will skip"; fi

run: setup  ## one run with the default config; add overrides with ARGS="model=untied labels.count=100"
	$(BIN)/tiedae $(ARGS)

sweep: setup  ## the default study (experiment=sweep; EXPERIMENT=benchmark for issue 4's), then the table
	$(BIN)/tiedae experiment=$(EXPERIMENT) $(ARGS)
	$(BIN)/python -m tiedae.report experiment=$(EXPERIMENT) $(ARGS)

table: $(STAMP)  ## table + plot of the latest sweep (or SWEEP=name; ARGS=tracking=server) into experiments/<sweep>/
	$(BIN)/python -m tiedae.report $(if $(SWEEP),--sweep $(SWEEP)) $(ARGS)

plan: $(STAMP)  ## what a resumable sweep has done and has left, and the hours the rest takes (EXPERIMENT=, ARGS=)
	$(BIN)/python -m tiedae.plan experiment=$(EXPERIMENT) $(ARGS)

test: setup  ## the test suite, less the four end-to-end runs of outside systems (under 10 min on 2 cores)
	$(BIN)/python -m pytest -q -m "not integration" $(ARGS)

test-all: setup  ## every test, the integration ones too (Ray cluster, tracking server, chromium, bench)
	$(BIN)/python -m pytest -q $(ARGS)

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check tiedae tests hydra_plugins && $(BIN)/ruff format --check tiedae tests hydra_plugins

bench: setup  ## speed benchmark against the seed's plain fit, written to experiments/bench/
	$(BIN)/python -m tiedae.bench $(ARGS)

profile: setup  ## where a semi-supervised objective's step spends its time (METHOD=ladder_tied)
	$(BIN)/python -m tiedae.profiling method=$(METHOD) $(ARGS)

ui: $(STAMP)  ## the MLflow UI on the embedded store; prints the URL of the runs table
	@echo "runs table: $$($(BIN)/python -m tiedae.ui --uri sqlite:///$(CURDIR)/mlflow.db $(if $(SWEEP),--sweep $(SWEEP)) url --base http://127.0.0.1:$(PORT))"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(PORT) --workers 1

screenshot: $(STAMP)  ## docs/mlflow-ui-runs.png: the UI comparing the smoke sweep's runs (needs chromium)
	$(BIN)/python scripts/screenshot_ui.py $(ARGS)

server: $(STAMP)  ## a shared tracking server (README, Team setup); DB=postgresql://... HOST= PORT=
	mkdir -p $(CURDIR)/server $(ARTIFACTS)
	$(BIN)/mlflow server --backend-store-uri $(DB) --artifacts-destination $(ARTIFACTS) \
	  --serve-artifacts --host $(HOST) --port $(PORT)

clean:  ## remove Hydra outputs (keeps mlflow.db and mlartifacts/)
	rm -rf outputs multirun .pytest_cache
