"""
### Build a CrisisLandMark corpus

`check_config -> search -> chips -> captions -> corpus -> summary`

Builds (or resumes) the corpus of one **run config**, selected by the param `config`: an
absolute path, or one relative to `CLM_HOME` (environment of the workers; else the Airflow
Variable `clm_home`; else the pipeline's source tree). `archive` and `out` override the
config's archive and output directory. Wrong params fail the run in `check_config`, at once and
without retries, with a message naming the param to fix.

* **Asset**: when `corpus` publishes a new corpus version it adds an event to the Asset
  `file://<corpus dir>` through the alias `clm-corpus` (`clm_train_closp` is scheduled on it).
  A build that reproduces the latest version publishes nothing and emits no event.
* **Retries**: 3, exponential backoff from 2 min, for transient errors only (a source still
  failing after its own HTTP retries, a busy corpus directory, a hung connection); bad input
  (`ConfigError` and the other pipeline errors) fails at once.
* **Pools**: `search` and `chips` talk to the imagery provider and run in the pool
  `clm_sources` (create it: `airflow pools set clm_sources 4 "imagery providers"`), or in
  `clm_source_<provider>` when the deployment's cluster policy routes them (docs/airflow.md).
* **Concurrency**: one active run (`max_active_runs=1`); the corpus directory's writer lock
  refuses a second writer from anywhere else.
* **Failures**: a summary (task, try, error, log file, partial outputs) lands in
  `<corpus>/runs/clm_build_corpus/<run_id>/<task>.json` and in the task log.

Every task is one call into `pipeline.orchestration.corpus_tasks`; see docs/airflow.md.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetAlias, Param, dag, task

from pipeline.orchestration import corpus_tasks as body  # light: stages import inside
from pipeline.orchestration.assets import CORPUS_ALIAS
from pipeline.orchestration.dag_defaults import TAGS, default_args, timeout
from pipeline.orchestration.params import CONFIG_SCHEMA
from pipeline.orchestration.settings import DEFAULT_CONFIG, SOURCE_POOL

DAG_ID = "clm_build_corpus"


@dag(
    dag_id=DAG_ID,
    description="Build a CrisisLandMark corpus from a run config (search, chips, captions, corpus)",
    doc_md=__doc__,
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=TAGS,
    default_args=default_args(),
    params={
        "config": Param(
            DEFAULT_CONFIG,
            **CONFIG_SCHEMA,
            description="YAML run config: absolute, or relative to CLM_HOME",
        ),
        "archive": Param("", type="string", description="archive directory (optional override)"),
        "out": Param("", type="string", description="corpus directory (optional override)"),
    },
)
def clm_build_corpus() -> None:
    @task(execution_timeout=timeout("check_config"), doc_md="Resolve and validate the params.")
    def check_config(params: dict | None = None) -> dict:
        return body.check_config(params or {})

    @task(
        execution_timeout=timeout("search"),
        pool=SOURCE_POOL,
        doc_md="Search the source for the config's scenes -> `work/scenes.parquet`.",
    )
    def search(run: dict) -> str:
        return body.search(run)

    @task(
        execution_timeout=timeout("chips"),
        pool=SOURCE_POOL,
        doc_md="Read the chip windows of every scene (resumes per scene) -> `work/chips.parquet`.",
    )
    def chips(run: dict, scenes: str) -> str:
        return body.chips(run, scenes)

    @task(
        execution_timeout=timeout("captions"), doc_md="Labels and captions -> `work/records.jsonl`."
    )
    def captions(run: dict, chips_index: str) -> str:
        return body.captions(run, chips_index)

    @task(
        execution_timeout=timeout("corpus"),
        outlets=[AssetAlias(CORPUS_ALIAS)],
        doc_md="Write and publish a corpus version; a new version emits the corpus asset event.",
    )
    def corpus(run: dict, chips_index: str, records: str, outlet_events=None) -> dict:  # type: ignore[no-untyped-def]
        return body.publish(run, chips_index, records, outlet_events, DAG_ID)

    @task(execution_timeout=timeout("summary"), doc_md="Log the corpus counts (`clm inspect`).")
    def summary(published: dict) -> dict:
        return body.summary(published)

    run = check_config()
    chip_index = chips(run, search(run))
    summary(corpus(run, chip_index, captions(run, chip_index)))


clm_build_corpus()
