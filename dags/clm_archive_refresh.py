"""Refresh a CrisisLandMark corpus on a schedule: add new scenes and crisis events.

Wiring only: every task body is one call into ``pipeline.build`` (or the datasheet);
tasks pass file paths and small summaries through XCom. ``plan`` compares the source
with the corpus lock of the last build; when nothing is new the run stops there
(short-circuit) and the corpus is left untouched. Otherwise the chip stage extracts
only the new scenes (existing per-scene work files are kept), captions and the corpus
are rewritten, and a new version with its diff summary is published.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task


def _config(params: dict):  # type: ignore[no-untyped-def]
    from pipeline.config import config_from_params

    return config_from_params(params)


@dag(
    dag_id="clm_archive_refresh",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["crisislandmark"],
    params={
        "config": Param("configs/demo.yaml", type="string", description="YAML run config"),
        "archive": Param("", type="string", description="archive directory (optional override)"),
        "out": Param("", type="string", description="corpus directory (optional override)"),
    },
)
def clm_archive_refresh() -> None:
    @task.short_circuit
    def plan(params: dict | None = None) -> dict:
        from pipeline.build import stage_refresh_scenes

        result = stage_refresh_scenes(_config(params or {}))
        print(result.describe())
        return result.to_dict() if not result.is_empty else {}

    @task
    def chips(_plan: dict, params: dict | None = None) -> str:
        from pipeline.build import BuildPaths, stage_chips

        config = _config(params or {})
        return str(stage_chips(config, BuildPaths(config.output.dir).scenes))

    @task
    def captions(chips_index: str, params: dict | None = None) -> str:
        from pathlib import Path

        from pipeline.build import stage_captions

        return str(stage_captions(_config(params or {}), Path(chips_index)))

    @task
    def corpus(chips_index: str, records: str, params: dict | None = None) -> dict:
        from pathlib import Path

        from pipeline.build import publish_corpus

        version = publish_corpus(_config(params or {}), Path(chips_index), Path(records))
        return dict(version.diff)

    @task
    def datasheet(diff: dict, params: dict | None = None) -> str:
        from pipeline.corpus.report import write_report

        return str(write_report(_config(params or {}).output.dir))

    chip_index = chips(plan())
    datasheet(corpus(chip_index, captions(chip_index)))


clm_archive_refresh()
