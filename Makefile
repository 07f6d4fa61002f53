# Two commands a person needs: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# independent MCP clients for tests/mcp: their own virtualenv (langchain-mcp-adapters needs mcp<2)
CLIENTS := .venv-clients
CLIENTS_STAMP := $(CLIENTS)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,diffusers,vlm,judge,sae,sweep,imagenet]"
	touch $(STAMP)

$(CLIENTS_STAMP): tests/mcp/clients/requirements.txt constraints.txt Makefile
	test -x $(CLIENTS)/bin/python || $(PYTHON) -m venv $(CLIENTS)
	$(CLIENTS)/bin/pip install -q -c constraints.txt -r tests/mcp/clients/requirements.txt
	touch $(CLIENTS_STAMP)

demo: $(STAMP)
	$(BIN)/aim demo

test: $(STAMP) $(CLIENTS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/aim bench exemplars
	$(BIN)/aim bench world
	$(BIN)/aim bench mcp

clean:
	rm -rf $(VENV) $(CLIENTS) build *.egg-info runs .aim_cache
