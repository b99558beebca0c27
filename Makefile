# Pix2Pitch-JAX: every entry point a user needs. `make demo` and `make test` do all set-up.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock
DEMO ?= synesthesia
# squiggles (the CycleGAN demo) writes beside the paired demos, not over them.
DEMO_DIR ?= $(if $(filter squiggles,$(DEMO)),runs/squiggles,runs/demo)
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/.cache/jax
export PYTHONUNBUFFERED := 1

.PHONY: setup system-packages test lint lock demo bench clean-demo

# System packages: FluidSynth renders MIDI to audio; Chromium renders the gallery in tests;
# python3-venv is what Debian splits out of Python for `-m venv`. `make demo DEMO=eras` also
# installs fluid-soundfont-gm (a 120 MB download), the full General MIDI soundfont its orchestras
# need; everything else works with the small soundfont inside pretty_midi. Skipped when already
# present, so a second run is quick and needs no network.
system-packages:
	@missing=""; \
	command -v fluidsynth >/dev/null || missing="$$missing fluidsynth"; \
	[ "$(DEMO)" != eras ] || [ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || missing="$$missing fluid-soundfont-gm"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "[setup] installing$$missing (apt-get)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	else echo "[setup] system packages present"; fi

# The stamp depends on the lock and pyproject.toml (package metadata, console scripts), so editing
# either reinstalls; otherwise this is a no-op. Every package comes from the lock, checked against its
# hashes; the project itself is installed editable without dependencies on top. --no-deps: the lock
# is already the whole resolved set, and pip must not chase the requirement uv left out on purpose
# (basic-pitch's TensorFlow; [tool.uv] in pyproject.toml).
$(STAMP): $(LOCK) pyproject.toml
	@echo "[setup] creating $(VENV) and installing $(LOCK)"
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q --no-deps --require-hashes -r $(LOCK)
	@$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

setup: system-packages $(STAMP)

test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup --durations=15 tests

# Lint, format, types, import contracts (configured in pyproject.toml). Needs no system packages.
# Every check runs, so one run shows every finding; the target fails if any of them failed.
LINTERS := "ruff check ." "ruff format --check ." "mypy" "lint-imports"
lint: $(STAMP)
	@failed=""; \
	for linter in $(LINTERS); do \
	  echo "[lint] $$linter"; \
	  $(VENV)/bin/$$linter || failed="$$failed, $$linter"; \
	done; \
	if [ -n "$$failed" ]; then echo "[lint] failed: $${failed#, }"; exit 1; fi

# Resolve the ranges in pyproject.toml into $(LOCK): every package pinned with its hashes, for
# Python 3.11 on Linux x86-64, with the dev, tensorboard and ear extras. Pins already in the lock are
# kept while pyproject.toml still allows them; `make lock UPGRADE=1` moves every pin to the newest
# allowed release. Commit the result; the next make target reinstalls from it.
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --extra tensorboard --extra ear \
	  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --generate-hashes \
	  $(if $(UPGRADE),--upgrade) --custom-compile-command "make lock" --quiet -o $(LOCK)

demo: setup
	$(PY) -m pix2pitch_jax.demo --demo=$(DEMO) --workdir=$(DEMO_DIR)

bench: setup
	$(PY) bench/data_prep.py
	$(PY) bench/griffin_lim.py
	$(PY) bench/train_step.py
	$(PY) bench/independent_ear.py
	$(PY) bench/visualise.py

clean-demo:
	rm -rf $(DEMO_DIR)
