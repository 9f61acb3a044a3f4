"""Build a CrisisLandMark corpus: search -> chips -> captions -> corpus -> summary.

Wiring only: every task body is one call into ``pipeline.build``; tasks pass file
paths through XCom, never arrays. Params select a run config; the config holds the recipe.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task


def _config(params: dict):  # type: ignore[no-untyped-def]
    from pipeline.config import config_from_params

    return config_from_params(params)


@dag(
    dag_id="clm_build_corpus",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["crisislandmark"],
    params={
        "config": Param("configs/demo.yaml", type="string", description="YAML run config"),
        "archive": Param("", type="string", description="archive directory (optional override)"),
        "out": Param("", type="string", description="corpus directory (optional override)"),
    },
)
def clm_build_corpus() -> None:
    @task
    def search(params: dict | None = None) -> str:
        from pipeline.build import stage_search

        return str(stage_search(_config(params or {})))

    @task
    def chips(scenes: str, params: dict | None = None) -> str:
        from pathlib import Path

        from pipeline.build import stage_chips

        return str(stage_chips(_config(params or {}), Path(scenes)))

    @task
    def captions(chips_index: str, params: dict | None = None) -> str:
        from pathlib import Path

        from pipeline.build import stage_captions

        return str(stage_captions(_config(params or {}), Path(chips_index)))

    @task
    def corpus(chips_index: str, records: str, params: dict | None = None) -> str:
        from pathlib import Path

        from pipeline.build import stage_corpus

        return str(stage_corpus(_config(params or {}), Path(chips_index), Path(records)))

    @task
    def summary(corpus_dir: str) -> dict:
        from pathlib import Path

        from pipeline.corpus.inspect import format_summary, summarize

        result = summarize(Path(corpus_dir))
        print(format_summary(result))
        return result

    chip_index = chips(search())
    summary(corpus(chip_index, captions(chip_index)))


clm_build_corpus()
