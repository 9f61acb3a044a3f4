"""The DAGs run by Airflow itself (``airflow dags test``, SQLite metadata DB, own AIRFLOW_HOME),
started from a working directory that is not the repository.

- ``clm_archive_refresh`` with its default params finds its config through ``CLM_HOME``,
  publishes v001 and one corpus asset event; a second run finds nothing new, skips the rest and
  emits no event.
- Without a usable ``CLM_HOME`` it fails in ``check_config``, at once (no retry), naming the
  param and the setting.
- A task failing on a non-transient error fails without retries and leaves its summary in
  ``runs/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from airflow_procs import ROOT, airflow_env, dags_test, migrate, query, task_states

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    migrate(airflow_env(home))
    return home


@pytest.fixture(scope="module")
def clm_home(tmp_path_factory, tiny_archive):
    """A CLM_HOME laid out like the repository: configs/demo.yaml, demo-output/archive."""
    home = tmp_path_factory.mktemp("clm-home")
    shutil.copytree(ROOT / "configs", home / "configs")
    shutil.copytree(tiny_archive, home / "demo-output" / "archive")
    return home


def _corpus_events(airflow_home: Path) -> list[tuple[str, str]]:
    return query(
        airflow_home,
        "SELECT asset.uri, asset_event.extra FROM asset_event JOIN asset ON asset.id = asset_event.asset_id",
    )


def test_refresh_with_defaults_from_another_directory(airflow_home, clm_home, tmp_path):
    env = airflow_env(airflow_home, CLM_HOME=str(clm_home))
    first = dags_test("clm_archive_refresh", env, cwd=tmp_path)
    assert first.returncode == 0 and "state=success" in first.stdout + first.stderr, first.stdout[
        -3000:
    ]
    corpus = clm_home / "demo-output" / "corpus"
    assert (corpus / "versions" / "v001").is_dir()
    events = _corpus_events(airflow_home)
    assert [uri for uri, _ in events] == [corpus.resolve().as_uri()]
    assert json.loads(events[0][1])["version"] == "v001"

    again = dags_test("clm_archive_refresh", env, cwd=tmp_path)
    assert again.returncode == 0 and "state=success" in again.stdout + again.stderr
    states = task_states(airflow_home, "clm_archive_refresh")
    assert states["plan"][0] == "success" and states["corpus"][0] == "skipped"
    assert len(_corpus_events(airflow_home)) == 1  # nothing new: no asset event
    assert not (corpus / "versions" / "v002").exists()


def test_refresh_without_a_usable_clm_home_fails_at_once_naming_the_setting(airflow_home, tmp_path):
    env = airflow_env(airflow_home, CLM_HOME=str(tmp_path / "empty"))
    run = dags_test("clm_archive_refresh", env, cwd=tmp_path)
    output = run.stdout + run.stderr
    assert "state=failed" in output
    assert "DAG param `config`" in output and "CLM_HOME" in output and "--config" not in output
    states = task_states(airflow_home, "clm_archive_refresh")
    assert states["check_config"][:2] == ("failed", 1)  # one try of the 4 allowed
    assert states["plan"][0] == "upstream_failed"


def test_a_non_transient_error_fails_without_retry_and_leaves_a_summary(
    airflow_home, tiny_archive, tmp_path, run_config
):
    """``versions`` is a file in the corpus directory: the corpus task cannot publish
    (StorageError, not transient) after search, chips and captions left their work files."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "versions").write_text("in the way")
    config = run_config(tmp_path / "run.yaml", tiny_archive, corpus)
    conf = {"config": str(config)}
    run = dags_test("clm_build_corpus", airflow_env(airflow_home), cwd=tmp_path, conf=conf)
    assert "state=failed" in run.stdout + run.stderr
    states = task_states(airflow_home, "clm_build_corpus")
    assert states["corpus"] == ("failed", 1, 3) and states["captions"][0] == "success"
    summaries = list((corpus / "runs" / "clm_build_corpus").glob("*/corpus.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["error_type"] == "StorageError" and not summary["retryable"]
    assert summary["try_number"] == 1 and summary["partial_outputs"] == [str(corpus / "work")]
    assert summary["log_file"].startswith(str(airflow_home)) and summary["log_file"].endswith(
        "task_id=corpus/attempt=1.log"
    )
