"""Experiment tracking (MLflow, local SQLite file by default) and console progress.

MLflow 3 keeps its plain-directory store in maintenance mode (it refuses to open one
unless ``MLFLOW_ALLOW_FILE_STORE`` is set), so the default store is a local SQLite file
beside the runs: ``sqlite:///<runs folder>/mlflow.db``; ``--mlflow-uri file:///DIR``
still works and opts in. ``--mlflow-uri none`` disables tracking. Browse with
``mlflow ui --backend-store-uri sqlite:///.../mlflow.db`` (needs the full ``mlflow`` package).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from pipeline.model.errors import ConfigError
from pipeline.model.run import MLFLOW_FILE
from pipeline.storage import write_json_atomic

EXPERIMENT = "crisislandmark-closp"


class Tracker(Protocol):
    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def close(self) -> None: ...


class NullTracker:
    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def close(self) -> None:
        pass


class MlflowTracker:
    """One MLflow run per run directory; a resumed or evaluated run logs to the same one."""

    def __init__(self, uri: str, run_dir: Path, experiment: str = EXPERIMENT) -> None:
        try:
            import mlflow
        except ImportError as exc:
            raise ConfigError(
                "MLflow tracking needs mlflow-skinny (pip install mlflow-skinny); "
                "or pass --mlflow-uri none"
            ) from exc
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.mlflow = mlflow
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        self.run_id = self._run_id(uri, Path(run_dir), experiment)

    def _run_id(self, uri: str, run_dir: Path, experiment: str) -> str:
        saved = run_dir / MLFLOW_FILE
        if saved.is_file():
            info = json.loads(saved.read_text())
            if info.get("tracking_uri") == uri:
                return str(info["run_id"])
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        run = self.client.create_run(experiment_id, run_name=run_dir.name)
        write_json_atomic(saved, {"tracking_uri": uri, "run_id": run.info.run_id})
        return str(run.info.run_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        known = self.client.get_run(self.run_id).data.params
        for key, value in params.items():
            if key not in known:
                self.client.log_param(self.run_id, key, str(value)[:500])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        entities = self.mlflow.entities
        batch = [entities.Metric(k, float(v), now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def default_tracking_uri(run_dir: Path) -> str:
    return f"sqlite:///{Path(run_dir).resolve().parent / 'mlflow.db'}"


def open_tracker(uri: str | None, run_dir: Path, enabled: bool = True) -> Tracker:
    """An MLflow tracker for ``uri`` (default: SQLite beside the run), or a no-op one."""
    if not enabled or (uri or "").lower() == "none":
        return NullTracker()
    return MlflowTracker(uri or default_tracking_uri(run_dir), run_dir)


def tracker_for_run(run_dir: Path) -> Tracker:
    """The tracker a finished training run used (for evaluation metrics), if any."""
    saved = Path(run_dir) / MLFLOW_FILE
    if not saved.is_file():
        return NullTracker()
    return MlflowTracker(json.loads(saved.read_text())["tracking_uri"], run_dir)


class Progress:
    """One line per ``every`` steps: step, epoch, samples, rate, loss, lr, ETA (stderr)."""

    def __init__(self, total_steps: int, steps_per_epoch: int, every: int, enabled: bool) -> None:
        self.total, self.per_epoch, self.every, self.enabled = (
            total_steps,
            steps_per_epoch,
            max(1, every),
            enabled,
        )
        self.start = self.window_start = time.perf_counter()
        self.window_samples = 0
        self.start_step: int | None = None

    def update(self, step: int, samples: int, terms: Mapping[str, float], lr: float) -> None:
        if self.start_step is None:
            self.start_step = step - 1
        self.window_samples += samples
        if not self.enabled or (step % self.every and step != self.total):
            return
        now = time.perf_counter()
        rate = self.window_samples / max(now - self.window_start, 1e-9)
        done = step - self.start_step
        eta = (self.total - step) * (now - self.start) / max(done, 1)
        loss = " ".join(f"{k} {v:.3f}" for k, v in terms.items())
        epoch = (step - 1) // self.per_epoch + 1
        print(
            f"step {step}/{self.total} epoch {epoch}/{self.total // self.per_epoch} | "
            f"{rate:.1f} samples/s | {loss} | lr {lr:.2e} | ETA {format_seconds(eta)}",
            file=sys.stderr,
            flush=True,
        )
        self.window_start, self.window_samples = now, 0


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
