"""The compiled fast path of ``pipeline.schemas`` (jsonschema-rs) never calls valid what
jsonschema rejects: same verdict on real documents of every schema and on many mutations
of them (fields dropped, nulled, retyped, added, nested values changed)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pipeline.corpus.lock import LOCK_FILE
from pipeline.schemas import _fast_validator, load_schema, schema_errors, schemas_dir

PROJECT = Path(__file__).resolve().parents[2]
GOLDEN = PROJECT / "tests" / "captions" / "golden" / "tiny_records.json"


def documents(corpus: Path) -> dict[str, list[Any]]:
    records = json.loads(GOLDEN.read_text())[:40]
    return {
        "caption-record.v1.schema.json": records,
        "lock.v1.schema.json": [json.loads((corpus / LOCK_FILE).read_text())],
        "manifest.v1.schema.json": [json.loads((corpus / "manifest.json").read_text())],
        "run-config.v1.schema.json": [
            yaml.safe_load((PROJECT / "configs" / name).read_text())
            for name in ("demo.yaml", "deploy.yaml")
        ],
        "mappings/mapping.schema.json": [
            json.loads(p.read_text())
            for p in sorted((schemas_dir() / "mappings").glob("*.v1.json"))
        ],
    }


REPLACEMENTS: tuple[Any, ...] = (None, "x", -1, 1.5, True, [], {}, "2021-13-45T99:00:00Z", "")


def mutations(doc: Any, rng: random.Random, n: int) -> list[Any]:
    out = []
    for _ in range(n):
        mutated = copy.deepcopy(doc)
        parent, key = _random_slot(mutated, rng)
        if parent is None:
            continue
        move = rng.randrange(3)
        if move == 0 and isinstance(parent, dict):
            del parent[key]
        elif move == 1 and isinstance(parent, dict):
            parent[f"unexpected_{rng.randrange(99)}"] = rng.choice(REPLACEMENTS)
        else:
            parent[key] = rng.choice(REPLACEMENTS)
        out.append(mutated)
    return out


def _random_slot(doc: Any, rng: random.Random) -> tuple[Any, Any]:
    """A random (container, key) somewhere in ``doc``."""
    slots = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            slots.append((node, key))
            if isinstance(value, (dict, list)) and value:
                walk(value)

    if isinstance(doc, (dict, list)):
        walk(doc)
    return rng.choice(slots) if slots else (None, None)


def test_every_schema_compiles_for_the_fast_path():
    names = [p.name for p in schemas_dir().glob("*.schema.json")] + ["mappings/mapping.schema.json"]
    for name in names:
        assert _fast_validator(name).is_valid(load_schema(name)) in (True, False), name


@pytest.mark.parametrize("seed", [0, 1])
def test_the_fast_path_agrees_with_jsonschema(tiny_corpus, seed):
    rng = random.Random(seed)
    checked = rejected = 0
    for name, docs in documents(tiny_corpus).items():
        schema = load_schema(name)
        cls = jsonschema.validators.validator_for(schema)
        authority = cls(schema, format_checker=cls.FORMAT_CHECKER)
        assert docs, name
        for doc in docs:
            assert schema_errors(doc, name) == [], name
            for mutated in mutations(doc, rng, 60 if len(docs) < 5 else 6):
                valid = not list(authority.iter_errors(mutated))
                if _fast_validator(name).is_valid(mutated):
                    assert valid, f"{name}: the fast path accepted what jsonschema rejects"
                assert (schema_errors(mutated, name) == []) == valid
                checked += 1
                rejected += not valid
    assert checked > 400 and rejected > checked // 4  # the mutations do break documents


def test_the_stac_fast_path_agrees_with_pystac_validation(tiny_corpus):
    """Same for the STAC view's validator: the compiled fast path only ever accepts what
    pystac's jsonschema validation accepts, on the view's objects and mutations of them."""
    import pystac
    from pystac.validation import validate_dict

    from pipeline.corpus.stac_validate import CompiledOfflineValidator

    class JsonschemaOnly(CompiledOfflineValidator):
        def _fast(self, schema_uri: str, schema: dict[str, Any]) -> Any:
            return None

    def verdict(doc: Any, fast: bool) -> str:
        validator = CompiledOfflineValidator() if fast else JsonschemaOnly()
        try:
            validate_dict(copy.deepcopy(doc), validator=validator)
        except pystac.STACValidationError:
            return "invalid"
        except Exception as exc:  # pystac cannot identify the object: before any schema
            return f"error {type(exc).__name__}"
        return "valid"

    rng = random.Random(7)
    paths = sorted((tiny_corpus / "stac").rglob("*.json"))
    docs = [json.loads(p.read_text()) for p in paths if p.name != "validation.json"][:25]
    compiled = CompiledOfflineValidator()
    validate_dict(copy.deepcopy(docs[-1]), validator=compiled)
    assert any(v is not None for v in compiled.fast.values()), "the fast path compiles"
    checked = rejected = 0
    for doc in docs:
        assert verdict(doc, fast=True) == verdict(doc, fast=False) == "valid"
        for mutated in mutations(doc, rng, 8):
            expected = verdict(mutated, fast=False)
            assert verdict(mutated, fast=True) == expected
            checked += 1
            rejected += expected == "invalid"
    assert checked > 100 and rejected > 10
