# shoprec — the two commands a newcomer needs are `make run` and `make test`; each sets itself up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_ROOT ?= $(abspath ../shared/data)
ARTIFACTS ?= artifacts/scientific
PORT ?= 8000
export SHOPREC_DATA_ROOT ?= $(DATA_ROOT)

.PHONY: venv browser run test lint unit integration e2e bench bench-api bench-load bench-epochs bench-subsamples bench-scale bench-compression eval-beauty eval-scientific validate-template clean

# The venv is rebuilt only when pyproject.toml changes; torch comes from the pinned CPU wheel.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,cli,dev,aws]'
	@touch $(STAMP)

venv: $(STAMP)

# The storefront's browser test (tests/e2e/test_storefront.py) drives Debian's chromium through Playwright,
# whose own browser download is not used; installed once, when missing.
CHROMIUM ?= /usr/bin/chromium
export SHOPREC_CHROMIUM ?= $(CHROMIUM)
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

browser: $(CHROMIUM)

$(ARTIFACTS)/manifest.json: | $(STAMP)
	$(VENV)/bin/shoprec train --dataset amazon-scientific --out $(ARTIFACTS)

# The dataset's users are imported into the local state store (idempotent), so their ids work in the API.
run: $(STAMP) $(ARTIFACTS)/manifest.json
	$(VENV)/bin/shoprec state import --dataset amazon-scientific --artifacts $(ARTIFACTS)
	$(VENV)/bin/shoprec serve --artifacts $(ARTIFACTS) --port $(PORT)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests sagemaker functions bench
	$(VENV)/bin/ruff format --check src tests sagemaker functions bench
	$(VENV)/bin/mypy

test: $(STAMP) browser lint
	$(VENV)/bin/pytest -q --timeout=900 tests

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

integration: $(STAMP)
	$(VENV)/bin/pytest -q tests/integration

e2e: $(STAMP) browser
	$(VENV)/bin/pytest -q tests/e2e

# The deploy stack, offline: cfn-lint, sam validate (+ --lint), checkov, sam build (python3.12), layer
# sizes and handler imports; creates .venv-sam on first use. `make test` runs it too (tests/integration/test_template.py).
validate-template: $(STAMP)
	scripts/validate_template.sh

# Full default training on the Amazon Beauty benchmark, then the served pipeline under both protocols of the
# published table (the run must be alone on the machine: other jobs slow its epochs).
eval-beauty: $(STAMP)
	$(VENV)/bin/shoprec train --dataset amazon-beauty/sequences.txt --out bench-results/beauty
	$(VENV)/bin/shoprec evaluate bench-results/beauty --dataset amazon-beauty/sequences.txt --model pipeline --protocol full --json
	$(VENV)/bin/shoprec evaluate bench-results/beauty --dataset amazon-beauty/sequences.txt --model pipeline --protocol sampled --json

# The same on the Scientific catalogue, with the bundle's item-CF alone for comparison.
eval-scientific: $(STAMP)
	$(VENV)/bin/shoprec train --dataset amazon-scientific --out bench-results/scientific
	$(VENV)/bin/shoprec evaluate bench-results/scientific --dataset amazon-scientific --model pipeline --protocol full --json
	$(VENV)/bin/shoprec evaluate bench-results/scientific --dataset amazon-scientific --model item-cf --protocol full --json

# Training-epoch time of full vs sampled softmax on the real catalogues and synthetic 18k / 100k-item ones.
bench-epochs: $(STAMP)
	$(PY) bench/bench_epochs.py --max-batches 40

# The defaults on half of the users (two seeds, Scientific and Beauty): served list vs item-CF alone.
bench-subsamples: $(STAMP)
	$(PY) bench/bench_subsamples.py --fraction 0.5 --seeds 1 2

# Catalogue scale on synthetic bundles (docs/scale.md): size, build, cold start, warm latency, memory, ANN
# recall and speed-up per size, one JSON each, and the curves. Not part of `make test` (1M items: see the doc).
SCALE_ITEMS ?= 10000 100000 1000000
bench-scale: $(STAMP)
	@mkdir -p bench-results/scale
	for n in $(SCALE_ITEMS); do nice -n 10 $(PY) bench/bench_scale.py --items $$n --json > bench-results/scale/$$n.json || exit 1; done
	$(PY) bench/scale/plot_scale.py $(foreach n,$(SCALE_ITEMS),bench-results/scale/$(n).json) --out bench-results/scale/scale.png

# Serving latency through the ASGI app (in-process ONNX ranking) and the Lambda handler's cold start.
# One BLAS thread, as `shoprec serve` and the stack's functions run numpy.
bench-api: $(STAMP) $(ARTIFACTS)/manifest.json
	OPENBLAS_NUM_THREADS=1 $(PY) bench/bench_api.py --artifacts $(ARTIFACTS)

# Load test (docs/benchmarks.md): one locust scenario against `shoprec serve --workers 2` and the naive
# PyTorch baseline (bench/load/naive_service.py), loopback only; steps the user count, 25 s a step.
LOAD_USERS ?= 1 2 4 8 16 32
bench-load: $(STAMP) $(ARTIFACTS)/manifest.json
	$(PY) bench/load/run_load.py --artifacts $(ARTIFACTS) --users $(LOAD_USERS)

# Compression study of the Beauty ranker (docs/compression.md): fp16, int8 dynamic and static, pruning,
# distillation; size, 1-thread latency and NDCG@10 of each. Needs the bundle of `make eval-beauty`.
COMPRESSION_DEFAULT ?= int8
bench-compression: $(STAMP) bench-results/beauty/manifest.json
	OPENBLAS_NUM_THREADS=1 $(PY) bench/compression.py --artifacts bench-results/beauty \
		--dataset amazon-beauty/sequences.txt --out bench-results/compression \
		--bundle-out bench-results/compression/bundle --default $(COMPRESSION_DEFAULT)

bench: bench-api eval-beauty eval-scientific bench-epochs bench-subsamples

clean:
	rm -rf $(VENV) .venv-sam .aws-sam artifacts bench-results .pytest_cache .mypy_cache .ruff_cache
