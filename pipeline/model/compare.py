"""Several evaluated runs side by side (``clm compare RUN...``): mean and spread over seeds.

    read each run's ``retrieval`` report -> group runs by model (config name, sensors)
    -> per index (s1, s2, all), query group and method: mean, standard deviation, n
    -> text table | JSON | PNG chart (``write_comparison_png``)

Runs are grouped by their ``model-config.json`` name plus the trained sensors, so three
seeds of ``closp-tiny-cnn`` become one column with mean ± sample standard deviation. The
methods compared are the model's own (``closp``; on location groups ``closp+near`` for runs
with a location encoder and ``closp+radius``) and the random baseline, averaged over the
runs' reports.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.model.errors import ConfigError
from pipeline.model.evaluate import NEAR, RADIUS, saved_report
from pipeline.model.run import MODEL_CONFIG, TRAIN_CONFIG

COMPARED = ("closp", NEAR, RADIUS, "random")
SETS = ("s1", "s2", "all")


def model_label(run_dir: Path) -> str:
    """``<config name>`` (``+ -s1`` / ``-s2`` when only one sensor was trained)."""
    config = Path(run_dir) / MODEL_CONFIG
    if not config.is_file():
        raise ConfigError(f"{run_dir} has no {MODEL_CONFIG}; give training run folders")
    name = str(json.loads(config.read_text())["name"])
    saved = Path(run_dir) / TRAIN_CONFIG
    sensors = json.loads(saved.read_text())["options"]["sensors"] if saved.is_file() else []
    return name if len(sensors) != 1 else f"{name}-{sensors[0]}"


def compare_runs(run_dirs: Sequence[Path], metric: str = "ndcg@10") -> dict[str, Any]:
    """{"metric", "models": {label: [runs]}, "sets": {set: {group: {column: stats}}}}.

    A column is ``<model label> <method>``; stats are mean, std (0 for one run), n, values."""
    if not run_dirs:
        raise ConfigError("give at least one run folder to compare")
    models: dict[str, list[str]] = {}
    values: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in run_dirs:
        label = model_label(run)
        models.setdefault(label, []).append(str(run))
        report = saved_report(run)
        for name, table in report["sets"].items():
            for group, entry in table.items():
                cells = values.setdefault(name, {}).setdefault(group, {})
                for method in COMPARED:
                    if method in entry and metric in entry[method]:
                        column = f"{label} {method}"
                        cells.setdefault(column, []).append(float(entry[method][metric]))
    sets = {
        name: {
            group: {col: _stats(v) for col, v in cells.items()} for group, cells in table.items()
        }
        for name, table in values.items()
    }
    return {"metric": metric, "models": models, "sets": sets}


def _stats(values: Sequence[float]) -> dict[str, Any]:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return {
        "mean": round(statistics.fmean(values), 4),
        "std": round(spread, 4),
        "n": len(values),
        "values": [round(v, 4) for v in values],
    }


def columns(comparison: Mapping[str, Any]) -> list[str]:
    """Column names in a stable order: per model (as given), its methods, random last."""
    found = {c for table in comparison["sets"].values() for cells in table.values() for c in cells}
    ordered = [
        f"{label} {method}"
        for method in COMPARED[:3]
        for label in comparison["models"]
        if f"{label} {method}" in found
    ]
    randoms = [c for c in sorted(found) if c.endswith(" random")]
    return ordered + randoms[:1]


def format_comparison(comparison: Mapping[str, Any]) -> str:
    """A text table: index, query group, then mean ± std per column."""
    cols = columns(comparison)
    head = ["index", "queries", *(column_label(c) for c in cols)]
    rows = [head]
    for name in SETS:
        for group, cells in comparison["sets"].get(name, {}).items():
            row = [name, group]
            row += [_cell(cells[c], c) if c in cells else "" for c in cols]
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"{comparison['metric']}, mean ± std over runs ({_runs(comparison)})"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def format_markdown(comparison: Mapping[str, Any]) -> str:
    """The same table in Markdown (for docs/evaluation.md)."""
    cols = columns(comparison)
    lines = [
        "| index | queries | " + " | ".join(column_label(c) for c in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for name in SETS:
        for group, cells in comparison["sets"].get(name, {}).items():
            values = [_cell(cells[c], c) if c in cells else "" for c in cols]
            lines.append(f"| {name} | {group} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def column_label(column: str) -> str:
    return "random" if column.endswith(" random") else column


def _cell(stats: Mapping[str, Any], column: str = "") -> str:
    """``mean ± std``; the random baseline (the same seeds in every report) as its mean."""
    if stats["n"] < 2 or column.endswith(" random"):
        return f"{stats['mean']:.3f}"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def _runs(comparison: Mapping[str, Any]) -> str:
    return ", ".join(f"{label}: {len(runs)}" for label, runs in comparison["models"].items())
