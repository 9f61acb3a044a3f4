"""pipeline.orchestration: params resolve against CLM_HOME (never the working directory),
transient errors retry and bad input does not, asset events name the corpus, failures leave
a summary."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, CorpusError, SchemaError, SourceError, StorageError
from pipeline.orchestration.assets import (
    CORPUS_ALIAS,
    asset_uri,
    corpus_event,
    corpus_from_events,
    path_of,
)
from pipeline.orchestration.params import resolve_params
from pipeline.orchestration.settings import Base, find_base, refresh_schedule, resolve

# ---- params and the base directory -----------------------------------------------------------


def test_base_is_clm_home_then_the_variable_then_the_source_tree(tmp_path):
    assert find_base({"CLM_HOME": str(tmp_path)}, lambda name: "/elsewhere") == Base(
        tmp_path, "env CLM_HOME"
    )
    via_variable = find_base({}, {"clm_home": str(tmp_path)}.get)
    assert via_variable == Base(tmp_path, "Airflow Variable clm_home")
    tree = find_base({}, lambda name: None)
    assert tree.path is not None and (tree.path / "configs" / "demo.yaml").is_file()


def test_relative_params_never_resolve_against_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "demo.yaml").write_text("version: 1\n")
    monkeypatch.chdir(tmp_path)  # a cwd that holds the file must not matter
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    with pytest.raises(ConfigError) as err:
        resolve_params({"config": "configs/demo.yaml"}, Base(elsewhere, "env CLM_HOME"))
    message = str(err.value)
    assert "DAG param `config`" in message and "CLM_HOME" in message
    assert str(elsewhere / "configs" / "demo.yaml") in message and "--config" not in message
    paths = resolve_params(
        {"config": "configs/demo.yaml", "out": "corpora/a", "archive": "/abs/archive"},
        Base(tmp_path, "env CLM_HOME"),
    )
    assert paths.config == tmp_path / "configs" / "demo.yaml"
    assert paths.out == tmp_path / "corpora" / "a" and paths.archive == Path("/abs/archive")


def test_relative_param_without_any_base_names_the_settings():
    with pytest.raises(ConfigError, match=r"CLM_HOME.*clm_home"):
        resolve_params({"config": "configs/demo.yaml"}, Base(None, "nothing"))
    assert resolve("/abs.yaml", Base(None, "nothing")) == Path("/abs.yaml")


def test_refresh_schedule_setting():
    assert refresh_schedule({}) == "@daily"
    assert refresh_schedule({"CLM_REFRESH_SCHEDULE": "0 3 * * 1"}) == "0 3 * * 1"
    assert refresh_schedule({"CLM_REFRESH_SCHEDULE": "none"}) is None


# ---- retries -----------------------------------------------------------------------------------


class _Unavailable(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def unavailable_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/search"
    server.shutdown()


def test_a_source_answering_503_fails_the_task_with_a_retryable_error(unavailable_server):
    import requests
    from airflow.sdk import RetryAction

    from pipeline.orchestration.retry import retry_policy
    from pipeline.sources.retry import call_with_retries, send_checked
    from pipeline.sources.settings import RetryPolicy

    http_policy = RetryPolicy(max_attempts=2, backoff_s=0.0, jitter_s=0.0, timeout_s=5.0)
    request = requests.Request("GET", unavailable_server).prepare()
    with requests.Session() as session, pytest.raises(SourceError) as err:
        call_with_retries(
            http_policy, "search", lambda: send_checked(session, request, http_policy)
        )
    assert "503" in str(err.value)
    decision = retry_policy().evaluate(err.value, try_number=1, max_tries=3)
    assert decision.action == RetryAction.RETRY


@pytest.mark.parametrize(
    "error",
    [ConfigError("bad config"), SchemaError("bad record"), CorpusError("no corpus"),
     StorageError("disk full"), KeyError("a bug")],
)  # fmt: skip
def test_bad_input_and_bugs_fail_at_once(error):
    from airflow.sdk import RetryAction

    from pipeline.orchestration.retry import retry_policy

    assert retry_policy().evaluate(error, try_number=1, max_tries=3).action == RetryAction.FAIL


def test_a_busy_corpus_directory_and_timeouts_are_transient(tmp_path):
    from airflow.sdk import RetryAction
    from airflow.sdk.exceptions import AirflowTaskTimeout

    from pipeline.corpus.dirlock import CorpusBusyError
    from pipeline.orchestration.retry import retry_policy

    for error in (CorpusBusyError("busy", {}), AirflowTaskTimeout(), ConnectionResetError()):
        assert retry_policy().evaluate(error, 1, 3).action == RetryAction.RETRY


# ---- assets ------------------------------------------------------------------------------------


def _event(corpus: Path, version: str, minutes: int):
    """A triggering event as Airflow hands it to a task (the Task SDK's own model)."""
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult

    event = corpus_event(
        corpus, version, {"previous": None, "items_added": ["a"]}, "clm_archive_refresh"
    )
    return AssetEventDagRunReferenceResult(
        asset={"name": event.name, "uri": event.uri, "extra": {}},
        extra=event.extra,
        source_task_id="corpus", source_dag_id="clm_archive_refresh",
        source_run_id="scheduled__1", source_map_index=-1,
        source_aliases=[{"name": CORPUS_ALIAS}],
        timestamp=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
    )  # fmt: skip


def test_train_reads_the_corpus_of_the_latest_triggering_event(tmp_path):
    from airflow.sdk import AssetAlias
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    from pipeline.orchestration.model_tasks import _alias_events

    a, b = tmp_path / "corpus a", tmp_path / "b"
    accessor = TriggeringAssetEventsAccessor.build([_event(a, "v002", 5), _event(b, "v001", 1)])
    events = _alias_events(accessor, AssetAlias(CORPUS_ALIAS))
    assert len(events) == 2 and corpus_from_events(events) == a.resolve()
    assert _alias_events(TriggeringAssetEventsAccessor.build([]), AssetAlias(CORPUS_ALIAS)) == []
    assert corpus_from_events([]) is None
    assert path_of(asset_uri(a)) == a.resolve() and asset_uri(a).startswith("file:///")


# ---- failure summaries ---------------------------------------------------------------------------


class _TaskInstance:
    dag_id, run_id, task_id, try_number, max_tries = (
        "clm_build_corpus",
        "manual__x:1",
        "chips",
        2,
        3,
    )
    log_url = "http://localhost:8080/dags/clm_build_corpus/runs/manual__x:1/tasks/chips"


def test_failure_summary_says_what_failed_and_where_to_look(tmp_path):
    from pipeline.orchestration.failures import summarize_failure, write_summary

    corpus = tmp_path / "corpus"
    (corpus / "work").mkdir(parents=True)
    error = SourceError("https://user:pw@example.com/x.tif?sig=SECRET failed: HTTP 503")
    summary = summarize_failure(
        _TaskInstance(), error, corpus, tmp_path / "logs", _TaskInstance.log_url
    )
    path = write_summary(summary)
    assert path == corpus / "runs" / "clm_build_corpus" / "manual__x_1" / "chips.json"
    saved = json.loads(path.read_text())
    assert saved["task_id"] == "chips" and saved["try_number"] == 2 and saved["retryable"]
    assert saved["log_file"].endswith("task_id=chips/attempt=2.log")
    assert saved["partial_outputs"] == [str(corpus / "work")]
    assert "SECRET" not in path.read_text() and "pw@" not in path.read_text()


def test_failure_summary_without_a_corpus_is_only_logged(tmp_path, caplog):
    from pipeline.orchestration.failures import summarize_failure, write_summary

    summary = summarize_failure(_TaskInstance(), ConfigError("bad"), None, tmp_path, "")
    with caplog.at_level("ERROR", logger="pipeline.orchestration.failures"):
        assert write_summary(summary) is None
    assert "clm_build_corpus/chips failed" in caplog.text and "ConfigError: bad" in caplog.text
