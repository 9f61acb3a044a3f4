"""Errors raised by the model library, children of the pipeline's hierarchy."""

from __future__ import annotations

from pipeline.errors import ConfigError, PipelineError

__all__ = ["ConfigError", "ModelInputError", "WeightsError"]


class ModelInputError(PipelineError):
    """A tensor, caption list or coordinate batch handed to the model has the wrong form."""


class WeightsError(PipelineError):
    """A pretrained weight file is missing, unreadable or does not fit the configured backbone."""
