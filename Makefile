# ovr-tele — the two commands that matter:
#   make demo   a demo fleet (GX simulator, edge, cloud) in local systemd containers
#   make test   lint, unit tests and every Molecule scenario (what CI runs)
# Both install what they need on a fresh machine (Debian packages, a venv, the test image,
# a Telegraf binary).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV      ?= .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.requirements.sha
REQ_SHA   := $(shell sha256sum requirements.txt | cut -c1-16)
SCENARIOS ?= $(sort $(filter-out shared,$(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))))
STAGE     := scripts/stage.sh
WEB       := files/web
WEB_STAMP := $(WEB)/node_modules/.ovr-lock.sha
WEB_SHA   := $(shell sha256sum $(WEB)/package-lock.json | cut -c1-16)
# make test runs these tracks at the same time (stages joined by + run in order within a track).
# The fleet scenario spends most of its time waiting out a 10-minute WAN cut, so it gets a track
# of its own; on 2 cores three tracks keep both busy (the stage table in the CI log shows it).
TRACKS    ?= molecule-fleet molecule-edge unit+molecule-cloud+molecule-common+molecule-gxsim
UNTRACKED := $(filter-out $(subst +, ,$(TRACKS)),unit $(addprefix molecule-,$(SCENARIOS)))
export PATH := $(CURDIR)/$(BIN):$(PATH)
export NO_COLOR := 1
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0
export OVR_STAGE_LOG := $(CURDIR)/.stage-times

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

# ---- setup -----------------------------------------------------------------------------
$(STAMP): requirements.txt
	@py=$$(scripts/find-python.sh) && echo "venv: $$py" && \
	  { [ -x $(BIN)/python ] || $$py -m venv $(VENV); } && \
	  $(BIN)/pip install -q --disable-pip-version-check -r requirements.txt && \
	  echo $(REQ_SHA) > $(STAMP)

.PHONY: venv
venv: $(STAMP) ## Python venv with the pinned tools

.PHONY: host
host: ## Debian packages and podman config this machine needs (root)
	@scripts/setup-host.sh

.PHONY: image
image: host ## the Debian 13 systemd test image (rebuilt only when its recipe changes)
	@scripts/build-image.sh >/dev/null

.PHONY: telegraf
telegraf: ## slim Telegraf from the Go module proxy, cached by version+tags
	@scripts/build-telegraf.sh

# npm ci from the committed lockfile, skipped while node_modules matches the lockfile's hash.
# A test tool never downloads a browser: Playwright drives Debian's chromium (setup-host.sh).
$(WEB_STAMP): $(WEB)/package-lock.json
	@cd $(WEB) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error && echo $(WEB_SHA) > $(CURDIR)/$(WEB_STAMP)

.PHONY: web-deps
web-deps: ## npm modules of the web apps (npm ci, cached by the lockfile's hash)
	@[ "$$(cat $(WEB_STAMP) 2>/dev/null)" = "$(WEB_SHA)" ] || { rm -f $(WEB_STAMP); $(MAKE) --no-print-directory $(WEB_STAMP); }

.PHONY: web
web: web-deps ## build the web apps on the controller (vite build into build/web; the hosts never need Node)
	@cd $(WEB) && npm run --silent build --workspace edge

.PHONY: web-test
web-test: web-deps ## unit tests of the web apps' data layers (vitest)
	@cd $(WEB) && npx vitest run

.PHONY: deps
deps: venv host image telegraf web-deps

# ---- tests -----------------------------------------------------------------------------
.PHONY: test
test: ## everything CI runs: lint, unit tests, every Molecule scenario
	@$(if $(UNTRACKED),echo "TRACKS in the Makefile leaves out: $(UNTRACKED)" >&2; exit 1,:)
	@rm -f $(OVR_STAGE_LOG) $(OVR_STAGE_LOG).span
	@$(STAGE) setup $(MAKE) --no-print-directory deps
	@$(STAGE) lint $(MAKE) --no-print-directory lint
	@rc=0; scripts/tracks.sh $(foreach t,$(TRACKS),"$(subst +, ,$(t))") || rc=$$?; $(STAGE) --summary && exit $$rc

.PHONY: lint
lint: venv ## yamllint, ansible-lint (production profile), ruff, argument-spec parity
	yamllint -s .
	ansible-lint -q
	ruff check .
	$(BIN)/python scripts/check-argument-specs.py

.PHONY: unit
unit: venv web-test ## unit tests (tests/unit, the web apps' vitest) and a smoke run of the benchmark tool (tests/bench)
	@export TELEGRAF_BIN=$$(scripts/build-telegraf.sh) && pytest -q --durations=15 tests/unit tests/bench

.PHONY: molecule
molecule: ## every Molecule scenario
	@for s in $(SCENARIOS); do $(MAKE) --no-print-directory molecule-$$s; done

# One run of a scenario at a time on this machine: its containers have fixed names, so a second
# checkout's run of the same scenario waits here instead of destroying the first one's hosts.
molecule-%: venv image telegraf web ## one scenario, e.g. make molecule-common
	@export TELEGRAF_BIN=$$(scripts/build-telegraf.sh) && flock /tmp/ovr-molecule-$*.lock molecule test -s $*

# ---- benchmarks (figures, not pass/fail) ------------------------------------------------
.PHONY: bench-edge
bench-edge: deps ## GX msgs/s through the edge pipeline vs raw Telegraf, CPU per 1k msgs/s and at ~700 msgs/s
	@export TELEGRAF_BIN=$$(scripts/build-telegraf.sh) && $(BIN)/python bench/edge.py

.PHONY: bench-cloud
bench-cloud: deps ## remote-write ingest via Caddy+auth vs direct (N nodes, ratio), bytes/day per node to the cloud
	@export TELEGRAF_BIN=$$(scripts/build-telegraf.sh) && $(BIN)/python bench/cloud.py

.PHONY: bench-events
bench-events: venv ## events service: /api/realtime p50/p99 with 10 GX, control write -> confirmed p95
	@$(BIN)/python bench/events.py

.PHONY: bench-converge
bench-converge: deps ## no-op converge of a demo edge and the cloud: wall time via podman and SSH, changed=0 asserted
	@export TELEGRAF_BIN=$$(scripts/build-telegraf.sh) && $(BIN)/python bench/converge.py

# ---- demo ------------------------------------------------------------------------------
.PHONY: demo
demo: deps web ## start the demo fleet in local containers and print where to look
	@scripts/demo.sh up

.PHONY: demo-down
demo-down: ## remove the demo containers
	@scripts/demo.sh down

.PHONY: bench-fleet
bench-fleet: venv ## fleet service: MQTT fleet-state ingestion (msgs/s) and GET /api/nodes latency with 1,000 nodes
	@$(BIN)/python bench/fleet.py
