"""The pipeline's error hierarchy. Every message names the input at fault and the fix."""

from __future__ import annotations

from typing import Any


class PipelineError(Exception):
    """Base class for every error the pipeline raises on purpose."""


class ConfigError(PipelineError):
    """A run configuration (or a CLI option) is invalid."""


class SourceError(PipelineError):
    """A scene, label or crisis source could not be searched or read."""


class ChipReadError(SourceError):
    """A raster asset could not be read for a chip window."""


class SchemaError(PipelineError):
    """A record that crosses a storage boundary does not match its JSON Schema."""


class CorpusError(PipelineError):
    """A corpus directory is missing, incomplete or inconsistent."""


class CorpusBusyError(CorpusError):
    """Another process is writing the corpus directory; ``holder`` says who."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


class StorageError(PipelineError):
    """The output cannot be written: disk full, read-only or unwritable, or not a directory."""


class EngineError(PipelineError):
    """The build's Dask cluster cannot be reached or cannot run the build's work."""
