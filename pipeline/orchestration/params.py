"""DAG params -> run config. Every message names the DAG param or the setting to change.

The corpus DAGs take ``config`` (a YAML run config: absolute, or relative to the base of
``settings.find_base``), and optional ``archive`` / ``out`` overrides resolved the same way.
The JSON schemas below are what Airflow checks when a run is triggered; ``run_config`` checks
the rest (files exist, the config validates) in the DAG's first task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError
from pipeline.orchestration.settings import HOME_ENV, HOME_VARIABLE, Base, resolve

if TYPE_CHECKING:
    from pipeline.config import RunConfig

CONFIG_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": r"\.ya?ml$"}
PATH_OR_EMPTY_SCHEMA: dict[str, Any] = {"type": "string"}
HOW_TO_SET_BASE = (
    f"give an absolute path, or set the environment variable {HOME_ENV} (or the Airflow "
    f"Variable {HOME_VARIABLE}) on the workers to the directory relative paths start from"
)


@dataclass(frozen=True)
class RunPaths:
    """The param values resolved to paths (``archive``/``out`` None: the config's own)."""

    config: Path
    archive: Path | None
    out: Path | None


def resolve_params(params: dict[str, Any], base: Base) -> RunPaths:
    """Resolve ``config``/``archive``/``out``; ConfigError naming the param when impossible."""
    config = _resolve_param(params, "config", base)
    if config is None:
        raise ConfigError("DAG param `config` is empty: set it to a YAML run config")
    if not config.is_file():
        raise ConfigError(
            f"DAG param `config` = {params['config']!r} resolves to {config} "
            f"(relative to {base.path}, from {base.origin}), which does not exist; "
            f"set the param to an existing run config, or {HOW_TO_SET_BASE}"
        )
    return RunPaths(
        config, _resolve_param(params, "archive", base), _resolve_param(params, "out", base)
    )


def _resolve_param(params: dict[str, Any], name: str, base: Base) -> Path | None:
    value = str(params.get(name) or "").strip()
    if not value:
        return None
    path = resolve(value, base)
    if path is None:
        raise ConfigError(
            f"DAG param `{name}` = {value!r} is a relative path and no base directory is "
            f"configured; {HOW_TO_SET_BASE}"
        )
    return path


def load_run_config(paths: RunPaths) -> RunConfig:
    """The validated run config; its own errors are prefixed with the param that chose it."""
    from pipeline.config import load_config

    try:
        return load_config(paths.config, archive=paths.archive, out=paths.out)
    except ConfigError as exc:
        raise ConfigError(
            f"the run config of DAG param `config` ({paths.config}) is invalid: {exc} "
            "(the DAG params `archive` and `out` override the config's archive and output)"
        ) from exc
