"""Train CLOSP on a corpus, embed the retrieval split, evaluate: prepare -> train -> embed -> evaluate.

Wiring only: every task body is one call into ``pipeline.corpus`` / ``pipeline.model``;
tasks pass folder paths through XCom. Params select the corpus, the run folder and the
model config (by name, from ``pipeline/model/configs``); heavy imports happen in tasks.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task


def _train_argv(params: dict) -> list[str]:
    argv = [
        params["corpus"],
        "--model-config", params["model_config"],
        "--sensors", params["sensors"],
        "--epochs", str(params["epochs"]),
        "--batch-size", str(params["batch_size"]),
        "--seed", str(params["seed"]),
    ]  # fmt: skip
    if params.get("run_dir"):
        argv += ["--run-dir", params["run_dir"]]
    return argv


@dag(
    dag_id="clm_train_closp",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["crisislandmark", "model"],
    params={
        "corpus": Param("demo-output/corpus", type="string", description="corpus directory"),
        "run_dir": Param(
            "", type="string", description="run folder (default CORPUS/../model/NAME)"
        ),
        "model_config": Param("closp-tiny-cnn", type="string", description="model config name"),
        "sensors": Param("s2,s1", type="string", description="sensors to train: s2,s1 | s1 | s2"),
        "epochs": Param(30, type="integer", minimum=1),
        "batch_size": Param(64, type="integer", minimum=1),
        "seed": Param(0, type="integer"),
    },
)
def clm_train_closp() -> None:
    @task
    def prepare(params: dict | None = None) -> str:
        from pathlib import Path

        from pipeline.corpus.queries import ensure_queries
        from pipeline.corpus.webdataset import ensure_webdataset

        corpus = Path((params or {})["corpus"])
        ensure_webdataset(corpus)
        ensure_queries(corpus)
        return str(corpus)

    @task
    def train(corpus: str, params: dict | None = None) -> str:
        from pipeline.model.train import parse_args
        from pipeline.model.train import train as run_training

        return str(run_training(parse_args(_train_argv({**(params or {}), "corpus": corpus}))))

    @task
    def embed(run_dir: str, corpus: str) -> str:
        from pathlib import Path

        from pipeline.model.embed import embed_corpus

        return str(embed_corpus(Path(run_dir), Path(corpus)))

    @task
    def evaluate(run_dir: str, index_dir: str) -> dict:
        from pathlib import Path

        from pipeline.model.evaluate import evaluate_run, format_report, headline

        report = evaluate_run(Path(run_dir))
        print(format_report(report))
        return headline(report)

    corpus = prepare()
    run_dir = train(corpus)
    evaluate(run_dir, embed(run_dir, corpus))


clm_train_closp()
