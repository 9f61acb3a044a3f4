"""
### Train CLOSP on a corpus, embed it, rebuild the search index, evaluate, publish the model

`select_corpus -> prepare -> train -> embed -> evaluate -> publish_model`

**Scheduled on the corpus asset alias `clm-corpus`**: every new corpus version published by
`clm_build_corpus` or `clm_archive_refresh` triggers a run, which trains on the corpus of the
triggering asset event. Triggered by hand it trains on the param `corpus` (absolute, or relative
to `CLM_HOME`). The run folder is the param `run_dir`, or `<corpus>/../model/<model_config>-<vNNN>`
(one run per corpus version; a re-run resumes it or finds it done). `model_config` names a model
config (`pipeline/model/configs`): training from scratch or fine-tuning pretrained backbones is
that config's choice, never the DAG's.

* `train` and `embed` run on the Celery queue named by `CLM_GPU_QUEUE` when it is set (GPU
  workers listen on it), on the default queue (CPU) otherwise; `train` runs in the pool
  `clm_training` (create it: `airflow pools set clm_training 1 "model training"`).
* **Asset**: `publish_model` adds an event to the Asset `file://<run folder>` through the alias
  `clm-model`, with the headline nDCG@1000 in its extra.
* **Retries**: transient errors only (exponential backoff); bad params fail at once.
* **Failures**: a summary lands in `<corpus>/runs/clm_train_closp/<run_id>/<task>.json`.

Every task is one call into `pipeline.orchestration.model_tasks`; see docs/airflow.md.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import AssetAlias, Param, dag, task

from pipeline.orchestration import model_tasks as body  # light: torch imports inside
from pipeline.orchestration.assets import CORPUS_ALIAS, MODEL_ALIAS
from pipeline.orchestration.dag_defaults import TAGS, default_args, timeout
from pipeline.orchestration.settings import TRAIN_POOL, gpu_queue

GPU = {"queue": gpu_queue()} if gpu_queue() else {}


@dag(
    dag_id="clm_train_closp",
    description="Train CLOSP on a new corpus version; embed, index, evaluate, publish the model",
    doc_md=__doc__,
    schedule=AssetAlias(CORPUS_ALIAS),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS, "model"],
    default_args=default_args(),
    params={
        "corpus": Param(
            "", type="string", description="corpus directory (manual runs; else the asset event's)"
        ),
        "run_dir": Param(
            "", type="string", description="run folder (default CORPUS/../model/CONFIG-vNNN)"
        ),
        "model_config": Param("closp-tiny-cnn", type="string", minLength=1),
        "sensors": Param("s2,s1", type="string", enum=["s2,s1", "s1", "s2"]),
        "epochs": Param(30, type="integer", minimum=1),
        "batch_size": Param(64, type="integer", minimum=1),
        "seed": Param(0, type="integer"),
    },
)
def clm_train_closp() -> None:
    @task(execution_timeout=timeout("select_corpus"), doc_md="The corpus: asset event or param.")
    def select_corpus(params: dict | None = None, triggering_asset_events=None) -> dict:  # type: ignore[no-untyped-def]
        return body.select_corpus(params or {}, triggering_asset_events)

    @task(execution_timeout=timeout("prepare"), doc_md="WebDataset view and evaluation queries.")
    def prepare(selected: dict) -> dict:
        body.prepare(selected)
        return selected

    @task(
        execution_timeout=timeout("train"),
        pool=TRAIN_POOL,
        doc_md="Train (or resume) the run; checkpoints in the run folder.",
        **GPU,
    )
    def train(selected: dict, params: dict | None = None) -> str:
        return body.train(selected, params or {})

    @task(
        execution_timeout=timeout("embed"),
        doc_md="Embed the corpus split, rebuild the index.",
        **GPU,
    )
    def embed(selected: dict, _run_dir: str) -> str:
        return body.embed(selected)

    @task(
        execution_timeout=timeout("evaluate"),
        doc_md="nDCG and the baselines on the corpus queries.",
    )
    def evaluate(selected: dict, _index: str) -> dict:
        return body.evaluate(selected)

    @task(
        execution_timeout=timeout("publish_model"),
        outlets=[AssetAlias(MODEL_ALIAS)],
        doc_md="Emit the model asset event (run folder, corpus, headline metrics).",
    )
    def publish_model(selected: dict, metrics: dict, outlet_events=None) -> str:  # type: ignore[no-untyped-def]
        return body.publish_model(selected, metrics, outlet_events)

    selected = prepare(select_corpus())
    metrics = evaluate(selected, embed(selected, train(selected)))
    publish_model(selected, metrics)


clm_train_closp()
