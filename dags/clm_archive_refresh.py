"""
### Refresh a CrisisLandMark corpus on a schedule

`check_config -> plan -> chips -> captions -> corpus -> datasheet`

Adds the scenes and crisis events that appeared since the last build of the corpus of the run
config `config` (default `configs/demo.yaml`, or `CLM_REFRESH_CONFIG`; relative paths resolve
against `CLM_HOME`, else the Airflow Variable `clm_home`, else the pipeline's source tree, never
against the worker's working directory). The schedule is `@daily` unless `CLM_REFRESH_SCHEDULE`
says otherwise (`none`: manual only); no catch-up, one active run.

* `plan` compares the source with the corpus lock; when nothing is new the run stops there
  (the rest is skipped) and the corpus is untouched.
* **Asset**: only a refresh that publishes a new version adds an event to the corpus Asset
  (`file://<corpus dir>`, through the alias `clm-corpus`), which schedules `clm_train_closp`.
* **Retries**: transient errors only, exponential backoff; bad params or config fail at once.
* **Pools**: `plan` and `chips` run in the pool `clm_sources`, or their provider's pool
  (`clm_source_<provider>`, routed by the deployment's cluster policy).
* **Failures**: a summary lands in `<corpus>/runs/clm_archive_refresh/<run_id>/<task>.json`.

Every task is one call into `pipeline.orchestration.corpus_tasks`; see docs/airflow.md.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetAlias, Param, dag, task

from pipeline.orchestration import corpus_tasks as body  # light: stages import inside
from pipeline.orchestration.assets import CORPUS_ALIAS
from pipeline.orchestration.dag_defaults import TAGS, default_args, timeout
from pipeline.orchestration.params import CONFIG_SCHEMA
from pipeline.orchestration.settings import SOURCE_POOL, refresh_config, refresh_schedule

DAG_ID = "clm_archive_refresh"


@dag(
    dag_id=DAG_ID,
    description="Add new scenes and crisis events to a corpus; publish a version if any",
    doc_md=__doc__,
    schedule=refresh_schedule(),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS, "scheduled"],
    default_args=default_args(),
    params={
        "config": Param(
            refresh_config(),
            **CONFIG_SCHEMA,
            description="YAML run config: absolute, or relative to CLM_HOME",
        ),
        "archive": Param("", type="string", description="archive directory (optional override)"),
        "out": Param("", type="string", description="corpus directory (optional override)"),
    },
)
def clm_archive_refresh() -> None:
    @task(execution_timeout=timeout("check_config"), doc_md="Resolve and validate the params.")
    def check_config(params: dict | None = None) -> dict:
        return body.check_config(params or {})

    @task.short_circuit(
        execution_timeout=timeout("plan"),
        pool=SOURCE_POOL,
        doc_md="Search the source, compare with `corpus.lock`; nothing new: skip the rest.",
    )
    def plan(run: dict) -> dict:
        return body.plan_refresh(run)

    @task(
        execution_timeout=timeout("chips"),
        pool=SOURCE_POOL,
        doc_md="Chips of the new scenes (existing per-scene work files are kept).",
    )
    def chips(run: dict, _plan: dict) -> str:
        return body.chips(run)

    @task(execution_timeout=timeout("captions"), doc_md="Labels and captions of every chip.")
    def captions(run: dict, chips_index: str) -> str:
        return body.captions(run, chips_index)

    @task(
        execution_timeout=timeout("corpus"),
        outlets=[AssetAlias(CORPUS_ALIAS)],
        doc_md="Write and publish the new version; emits the corpus asset event.",
    )
    def corpus(run: dict, chips_index: str, records: str, outlet_events=None) -> dict:  # type: ignore[no-untyped-def]
        return body.publish(run, chips_index, records, outlet_events, DAG_ID)

    @task(execution_timeout=timeout("datasheet"), doc_md="Rewrite the corpus datasheet.")
    def datasheet(published: dict) -> str:
        return body.datasheet(published)

    run = check_config()
    chip_index = chips(run, plan(run))
    datasheet(corpus(run, chip_index, captions(run, chip_index)))


clm_archive_refresh()
