# A fresh machine needs only Python 3.10+: `make demo` or `make test` installs everything first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TINY := --model tiny --size 128x128 --iterations 100 --quiet

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: this takes the CPU wheel on a machine without CUDA and the
	# default (CUDA) build on a GPU workstation; an unpinned torch would pull a newer CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/adcli style-transfer samples/content/astronaut.jpg --style samples/style/hubble.jpg $(TINY) -o outputs/
	$(BIN)/adcli appearance samples/content/coffee.jpg --appearance samples/style/gravel.jpg $(TINY) -o outputs/
	$(BIN)/adcli texture --reference samples/style/brick.jpg $(TINY) -o outputs/
	@echo "demo images are in outputs/ (tiny random models draw noise: real results need the SD weights)"

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) outputs .pytest_cache
