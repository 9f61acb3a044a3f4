"""Task bodies of ``clm_train_closp``: select the corpus, prepare, train, embed (rebuild the
search index), evaluate, publish the model. One pipeline call each.

The corpus comes from the triggering corpus asset event when the run was scheduled by one,
else from the ``corpus`` param (a manual trigger). Unless the ``run_dir`` param names one, the
run folder is keyed by the corpus version (``CORPUS/../model/NAME-vNNN``): a new corpus version
trains a new run, and re-running the DAG on the same version resumes or finds that run done.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.orchestration.assets import CORPUS_ALIAS, MODEL_ALIAS, corpus_from_events, model_event
from pipeline.orchestration.corpus_tasks import emit
from pipeline.orchestration.settings import airflow_variable, find_base, resolve

log = logging.getLogger(__name__)


def select_corpus(params: dict[str, Any], triggering_asset_events: Any) -> dict[str, str]:
    """The corpus (and run folder) of this run: the triggering event's, else the params'."""
    from airflow.sdk import AssetAlias
    from airflow.sdk.exceptions import AirflowFailException

    events = _alias_events(triggering_asset_events, AssetAlias(CORPUS_ALIAS))
    try:
        corpus = corpus_from_events(events) or _param_path(params, "corpus")
        if corpus is None:
            raise ConfigError(
                "this run has no triggering corpus asset event and the DAG param `corpus` is "
                "empty; set `corpus` to a corpus directory when triggering by hand"
            )
        selected = _selection(corpus, params)
    except ConfigError as exc:
        raise AirflowFailException(str(exc)) from exc
    origin = "asset event" if events else "param `corpus`"
    log.info(
        "training on %s (%s, from the %s) in %s",
        corpus,
        selected["version"],
        origin,
        selected["run_dir"],
    )
    return selected


def _alias_events(accessor: Any, alias: Any) -> list[Any]:
    try:
        return list(accessor[alias]) if accessor else []
    except KeyError:  # triggered by hand, or by another asset
        return []


def _param_path(params: dict[str, Any], name: str) -> Path | None:
    value = str(params.get(name) or "").strip()
    if not value:
        return None
    path = resolve(value, find_base(variable=airflow_variable))
    if path is None:
        raise ConfigError(
            f"DAG param `{name}` = {value!r} is relative and no base directory is configured; "
            "give an absolute path or set CLM_HOME on the workers"
        )
    return path


def _selection(corpus: Path, params: dict[str, Any]) -> dict[str, str]:
    from pipeline.corpus.publish import current_version

    if not (corpus / "manifest.json").is_file():
        raise ConfigError(
            f"{corpus} is not a built corpus (no manifest.json); set the DAG param `corpus` to "
            "the output directory of a clm_build_corpus run"
        )
    current = current_version(corpus)
    version = current.name if current is not None else "unversioned"
    run_dir = _param_path(params, "run_dir") or (
        corpus.resolve().parent / "model" / f"{params['model_config']}-{version}"
    )
    return {"corpus": str(corpus.resolve()), "version": version, "run_dir": str(run_dir)}


def prepare(selected: dict[str, str]) -> None:
    from pipeline.corpus.queries import ensure_queries
    from pipeline.corpus.webdataset import ensure_webdataset

    ensure_webdataset(Path(selected["corpus"]))
    ensure_queries(Path(selected["corpus"]))


def train_argv(selected: dict[str, str], params: dict[str, Any]) -> list[str]:
    """The ``clm train`` options of this run (the params never duplicate the model config)."""
    return [
        selected["corpus"],
        "--run-dir", selected["run_dir"],
        "--model-config", str(params["model_config"]),
        "--sensors", str(params["sensors"]),
        "--epochs", str(params["epochs"]),
        "--batch-size", str(params["batch_size"]),
        "--seed", str(params["seed"]),
    ]  # fmt: skip


def train(selected: dict[str, str], params: dict[str, Any]) -> str:
    from pipeline.model.train import parse_args
    from pipeline.model.train import train as run_training

    return str(run_training(parse_args(train_argv(selected, params))))


def embed(selected: dict[str, str]) -> str:
    from pipeline.model.embed import embed_corpus

    return str(embed_corpus(Path(selected["run_dir"]), Path(selected["corpus"])))


def evaluate(selected: dict[str, str]) -> dict[str, float]:
    from pipeline.model.evaluate import evaluate_run, format_report, headline

    report = evaluate_run(Path(selected["run_dir"]))
    log.info("%s", format_report(report))
    return headline(report)


def publish_model(selected: dict[str, str], metrics: dict[str, float], outlet_events: Any) -> str:
    """Announce the trained, indexed and evaluated run as a model asset event."""
    event = model_event(Path(selected["run_dir"]), Path(selected["corpus"]), metrics)
    emit(outlet_events, MODEL_ALIAS, event)
    log.info("model %s published: asset event %s", selected["run_dir"], event.uri)
    return event.uri
