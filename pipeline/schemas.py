"""Versioned JSON Schemas under ``schemas/``: locate, load and validate against them.

``jsonschema`` is the authority and writes the messages. Every caption record is validated
as it is made, so a valid instance is first recognised by ``jsonschema-rs`` (a compiled
validator, about 100x faster: 0.005 against 0.6 ms a record), which checks formats too and
is therefore at least as strict; only what it rejects goes to ``jsonschema``, whose verdict
and messages stand."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs

from pipeline.errors import SchemaError

SCHEMAS_ENV = "CLM_SCHEMAS_DIR"


def schemas_dir() -> Path:
    """The ``schemas/`` directory: ``$CLM_SCHEMAS_DIR`` or the one next to the package."""
    override = os.environ.get(SCHEMAS_ENV)
    path = Path(override) if override else Path(__file__).resolve().parents[1] / "schemas"
    if not path.is_dir():
        raise SchemaError(
            f"schemas directory {path} does not exist; set {SCHEMAS_ENV} to the project's "
            "schemas/ folder or reinstall the project from a source checkout"
        )
    return path


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    path = schemas_dir() / name
    if not path.exists():
        raise SchemaError(f"schema {name!r} not found at {path}; is CLM_SCHEMAS_DIR set correctly?")
    return json.loads(path.read_text())


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@functools.cache
def _fast_validator(name: str) -> Any:
    return jsonschema_rs.validator_for(load_schema(name), validate_formats=True)


def fast_accepts(validator: Any, instance: Any) -> bool:
    """Whether a compiled ``jsonschema-rs`` validator (or None) accepts ``instance``; False
    also when it cannot read it (not JSON data, e.g. a YAML date): ``jsonschema`` decides."""
    try:
        return validator is not None and bool(validator.is_valid(instance))
    except (ValueError, TypeError):
        return False


def schema_errors(instance: Any, name: str) -> list[str]:
    """Human-readable validation errors of ``instance`` against schema ``name`` (empty if valid)."""
    if fast_accepts(_fast_validator(name), instance):
        return []
    errors = sorted(_validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def validate(instance: Any, name: str, what: str) -> None:
    """Raise ``SchemaError`` naming ``what`` when ``instance`` does not match schema ``name``."""
    problems = schema_errors(instance, name)
    if problems:
        listed = "; ".join(problems[:5])
        raise SchemaError(f"{what} does not match {name}: {listed}")
