# Front door. `make demo` and `make test` work on a fresh clone with Python 3.11 and the
# package registries only.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := $(CURDIR)/demo-output
AIRFLOW_ENV := AIRFLOW_HOME=$(DEMO)/airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__UNIT_TEST_MODE=False \
	AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$(DEMO)/airflow/airflow.db

.PHONY: demo test test-slow lint setup lock clean stac-server-setup gpu-check bench

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	@mkdir -p $(DEMO)/airflow
	@test -f $(DEMO)/archive/archive.json || $(BIN)/clm archive simulate --out $(DEMO)/archive --seed 0
	@echo "== running the clm_build_corpus DAG through Airflow (log: demo-output/airflow/dag-test.log)"
	@$(AIRFLOW_ENV) $(BIN)/airflow db migrate > $(DEMO)/airflow/db-migrate.log 2>&1
	@$(AIRFLOW_ENV) $(BIN)/airflow dags test clm_build_corpus \
		-c '{"config": "$(CURDIR)/configs/demo.yaml", "archive": "$(DEMO)/archive", "out": "$(DEMO)/corpus"}' \
		> $(DEMO)/airflow/dag-test.log 2>&1 \
		|| (tail -n 60 $(DEMO)/airflow/dag-test.log; exit 1)
	@grep -q "state=success" $(DEMO)/airflow/dag-test.log || (tail -n 60 $(DEMO)/airflow/dag-test.log; exit 1)
	@echo "== DAG run succeeded"
	@$(BIN)/clm inspect $(DEMO)/corpus
	@echo "Outputs: $(DEMO)/archive (scenes, STAC, labels, events), $(DEMO)/corpus (shards/, metadata.parquet, records.jsonl, manifest.json)"
	@echo "== training CLOSP (closp-tiny-cnn, CPU, a few minutes) through the clm_train_closp DAG (log: demo-output/airflow/train-dag.log)"
	@$(AIRFLOW_ENV) $(BIN)/airflow dags test clm_train_closp \
		-c '{"corpus": "$(DEMO)/corpus", "run_dir": "$(DEMO)/model/closp-tiny-cnn"}' \
		> $(DEMO)/airflow/train-dag.log 2>&1 \
		|| (tail -n 60 $(DEMO)/airflow/train-dag.log; exit 1)
	@grep -q "state=success" $(DEMO)/airflow/train-dag.log || (tail -n 60 $(DEMO)/airflow/train-dag.log; exit 1)
	@$(BIN)/clm evaluate --run $(DEMO)/model/closp-tiny-cnn --show
	@echo "== example search"
	@$(BIN)/clm search "flooded farmland near a river" --run $(DEMO)/model/closp-tiny-cnn -k 10 \
		--collapse-cells --sheet $(DEMO)/model/search-example.png

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

# On a CUDA machine: closp-resnet50 with AMP on the demo corpus, a fixed number of steps;
# samples/s, peak GPU memory, loss curve, bf16/fp16 vs fp32 -> demo-output/gpu-check.json.
gpu-check: $(STAMP)
	@test -f $(DEMO)/archive/archive.json || $(BIN)/clm archive simulate --out $(DEMO)/archive --seed 0
	@test -f $(DEMO)/corpus/manifest.json || \
		$(BIN)/clm build --config configs/demo.yaml --archive $(DEMO)/archive --out $(DEMO)/corpus
	$(BIN)/python benchmarks/gpu_check.py $(DEMO)/corpus --model-config closp-resnet50 \
		--out $(DEMO)/gpu-check.json

# The build benchmark (docs/performance.md): this project's reader and whole build against a
# naive per-chip rasterio reader and odc-stac, over a byte-counting loopback range server, at
# 1x/4x/16x the scenes -> demo-output/bench/bench.json + bench.png (BENCH_ARGS to change, e.g.
# BENCH_ARGS="--scale tiny --multipliers 1,2").
BENCH_ARGS ?= --scale demo --multipliers 1,4,16
bench: $(STAMP)
	$(BIN)/python -m benchmarks.build_bench $(BENCH_ARGS) --out $(DEMO)/bench

# PostGIS for `clm archive serve` (stac-fastapi-pgstac on the local PostgreSQL); idempotent.
PG_MAJOR ?= 15
SUDO := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo)
stac-server-setup: $(STAMP)
	@test -f /usr/share/postgresql/$(PG_MAJOR)/extension/postgis.control || \
		($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		$(SUDO) apt-get install -y -qq postgresql-$(PG_MAJOR)-postgis-3 >/dev/null)
	@test -f /usr/share/postgresql/$(PG_MAJOR)/extension/postgis.control

test-slow: $(STAMP) stac-server-setup
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check pipeline dags tests benchmarks
	$(BIN)/ruff format --check pipeline dags tests benchmarks
	$(BIN)/mypy

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v "^-e " | sed 's/ @ .*//' > requirements.lock

clean:
	rm -rf demo-output
