"""``corpus.lock``: the exact inputs and outputs of a corpus, for byte-identical regeneration.

The lock records the recipe (the run config without its output directory), every source
item (its normalized record digest and, per band asset, the sha256 of the asset bytes, or
the ETag and size for remote assets), the label products and crisis event files, and the
sha256 of every corpus output file. ``clm rebuild --lock`` checks the inputs against it
first and reports drift item by item, then compares the outputs it regenerated
(``pipeline.corpus.drift``).

Inputs are fingerprinted before the corpus files are written (``fingerprint_inputs``), so
the manifest can say which remote inputs could not be: with ``source.on_unverifiable:
record`` they are locked as ``{"unverifiable": reason}`` and listed in
``work/unverifiable_inputs.json`` (read by the manifest); by default the build fails
naming the first one. A rebuild reports every unverifiable locked input as drift.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pipeline
from pipeline.chips.stage import failed_scenes_path, taken_fingerprints_path
from pipeline.config import RunConfig
from pipeline.corpus.manifest import UNVERIFIABLE_FILE, view_outputs
from pipeline.errors import CorpusError
from pipeline.schemas import validate
from pipeline.sources.access import fingerprint_href, redact
from pipeline.sources.assets import asset_location
from pipeline.sources.base import Scene
from pipeline.sources.fingerprint import UnverifiableAssetError, fingerprint
from pipeline.sources.select import read_scenes
from pipeline.sources.settings import RetryPolicy
from pipeline.storage import files_under, write_json_atomic

LOCK_FILE = "corpus.lock"
SCHEMA = "lock.v1.schema.json"
BASE_OUTPUTS = ("manifest.json", "metadata.parquet", "records.jsonl", "sources.parquet", "shards/")
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")


# ---- writing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockedInputs:
    """The fingerprinted inputs of a build: item, label and event entries of the lock."""

    items: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    events: list[dict[str, Any]]

    def unverifiable(self) -> list[dict[str, str]]:
        """Every input recorded as unverifiable: which (kind, subject, detail, href)."""
        found = [
            _listed("asset", item["id"], band, a["href"])
            for item in self.items
            for band, a in item["assets"].items()
            if "unverifiable" in a
        ]
        found += [
            _listed("label", p["href"], p["value_type"], p["href"])
            for p in self.labels
            if "unverifiable" in p
        ]
        found += [
            _listed("event", e["href"], name, name)
            for e in self.events
            for name, fp in e["files"].items()
            if "unverifiable" in fp
        ]
        return found


def _listed(kind: str, subject: str, detail: str, href: str) -> dict[str, str]:
    return {
        "kind": kind,
        "subject": redact(subject),
        "detail": redact(detail),
        "href": redact(href),
    }


@dataclass(frozen=True)
class Fingerprinter:
    """``fingerprint`` under the source's retry policy; an input that cannot be fingerprinted
    fails the build (``on_unverifiable == "raise"``) or is recorded as unverifiable."""

    retry: RetryPolicy
    on_unverifiable: str = "raise"

    @classmethod
    def of(cls, config: RunConfig) -> Fingerprinter:
        return cls(config.source.retry, config.source.on_unverifiable)

    def __call__(self, location: str, what: str) -> dict[str, Any]:
        try:
            return fingerprint(location, self.retry)
        except UnverifiableAssetError as exc:
            if self.on_unverifiable != "record":
                raise UnverifiableAssetError(f"{what} at {exc.location}", exc.reason) from None
            return {"unverifiable": exc.reason}


def fingerprint_inputs(config: RunConfig, scenes_path: Path, work: Path) -> LockedInputs:
    """Fingerprint every input of the scenes in ``scenes_path`` (the build's
    ``work/scenes.parquet``); list the unverifiable ones in ``work/unverifiable_inputs.json``.
    Scenes the chip stage skipped as unreadable (``chips.on_error: skip``) never fail here:
    the manifest already says they are missing, their assets are recorded as they are."""
    recipe = recipe_of(config)
    take = Fingerprinter.of(config)
    failed = failed_scenes_path(work)
    skipped = json.loads(failed.read_text()) if failed.is_file() else {}
    lenient = dataclasses.replace(take, on_unverifiable="record")
    taken_path = taken_fingerprints_path(work)
    taken = json.loads(taken_path.read_text()) if taken_path.is_file() else {}
    scenes = read_scenes(scenes_path)
    inputs = LockedInputs(
        items=[
            _item_entry(scene, recipe, lenient if scene.item_id in skipped else take, taken)
            for scene in scenes
        ],
        labels=label_entries(config, take),
        events=event_entries(config, take),
    )
    write_json_atomic(work / UNVERIFIABLE_FILE, inputs.unverifiable())
    return inputs


def write_lock(
    config: RunConfig, corpus: Path, inputs: LockedInputs, pool: cf.Executor | None = None
) -> Path:
    """Write ``corpus.lock``: the recipe, the fingerprinted ``inputs`` (of the scenes in
    ``corpus/sources.parquet``) and the checksums of the corpus outputs (hashed as tasks on
    ``pool`` when given)."""
    scenes = read_scenes(corpus / "sources.parquet")
    used = {s.item_id for s in scenes}
    lock = {
        "lock_version": 1,
        "name": config.name,
        "software": {"package": "crisislandmark", "version": pipeline.__version__},
        "config_digest": config.digest(),
        "recipe": recipe_of(config),
        "watermark": watermark(scenes),
        "items": [item for item in inputs.items if item["id"] in used],
        "labels": inputs.labels,
        "events": inputs.events,
        "outputs": output_checksums(corpus, config.output.views, pool),
    }
    validate(lock, SCHEMA, "corpus lock")
    path = corpus / LOCK_FILE
    write_json_atomic(path, lock)
    return path


def recipe_of(config: RunConfig) -> dict[str, Any]:
    recipe = config.to_dict()
    recipe["output"].pop("dir", None)
    return recipe


def scene_stamp(scene: Scene) -> str:
    """The latest of an item's updated / created / datetime (ISO 8601, UTC offsets kept)."""
    stamps = [scene.datetime] + [
        _parse_time(v) for k in ("updated", "created") if (v := scene.extra.get(k))
    ]
    return max(stamps).isoformat()


def watermark(scenes: Iterable[Scene]) -> str | None:
    stamps = [scene_stamp(s) for s in scenes]
    return max(stamps, key=_parse_time) if stamps else None


def _parse_time(text: Any) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def record_digest(scene: Scene) -> str:
    return _sha256_text(json.dumps(scene.to_record(), sort_keys=True, default=str))


def _item_entry(
    scene: Scene,
    recipe: Mapping[str, Any],
    take: Fingerprinter,
    taken: Mapping[str, Mapping[str, dict[str, Any]]],
) -> dict[str, Any]:
    """A scene's lock entry; an asset's fingerprint is the one the chip stage cut the scene
    from (``taken``: item id -> band -> fingerprint), else it is taken now."""
    cut_from = taken.get(scene.item_id, {})

    def print_of(band: str, href: str) -> dict[str, Any]:
        if band in cut_from:
            return dict(cut_from[band])
        location = fingerprint_href(scene, source_location(href, recipe))
        return take(location, f"scene {scene.item_id} band {band}")

    return {
        "id": scene.item_id,
        "collection": scene.collection,
        "datetime": scene.datetime.isoformat(),
        "stamp": scene_stamp(scene),
        "record_sha256": record_digest(scene),
        "assets": {
            band: {"href": a.href, **print_of(band, a.href)}
            for band, a in sorted(scene.assets.items())
        },
    }


def label_entries(config: RunConfig, take: Fingerprinter | None = None) -> list[dict[str, Any]]:
    """Every label product: CORINE, Dynamic World (mosaics and per-scene), WorldCover."""
    take = take or Fingerprinter.of(config)
    labels = config.labels
    products = [(p.href, p.value_type) for p in (*labels.corine, *labels.dynamic_world)]
    products += [(p.href, p.value_type) for p in labels.worldcover]
    products += [(href, "dw-scene") for href, _ in labels.dynamic_world_scenes]
    return [
        {"href": h, "value_type": kind, **take(h, f"label product ({kind})")}
        for h, kind in products
    ]


def event_entries(config: RunConfig, take: Fingerprinter | None = None) -> list[dict[str, Any]]:
    """Every crisis event source (EMS products, GDACS feeds, user event files) and its files;
    a refresh treats a new source, or one whose files changed, as new events."""
    take = take or Fingerprinter.of(config)
    sources = [("ems", e.observed_event, e.metadata, e.source_table) for e in config.labels.ems]
    sources += [("gdacs", g.href, None, None) for g in config.labels.gdacs]
    sources += [("user", u.path, None, None) for u in config.labels.user_events]
    return [_event_entry(kind, href, meta, table, take) for kind, href, meta, table in sources]


def _event_entry(
    kind: str, href: str, metadata: str | None, source_table: str | None, take: Fingerprinter
) -> dict[str, Any]:
    files = shapefile_parts(href) + ([metadata] if metadata else [])
    files += shapefile_parts(source_table) if source_table else []
    return {
        "kind": kind,
        "href": href,
        "metadata": metadata,
        "files": {f: take(f, f"{kind} event file") for f in files},
    }


def shapefile_parts(href: str) -> list[str]:
    """A shapefile's component files (the format defines them); other vectors are one file."""
    if "://" in href or not href.lower().endswith(".shp"):
        return [href]
    stem = Path(href).with_suffix("")
    return [str(stem.with_suffix(s)) for s in SHAPEFILE_PARTS if stem.with_suffix(s).exists()]


def source_location(href: str, recipe: Mapping[str, Any]) -> str:
    """Where an asset href of the source is read from: a URL or an absolute local path."""
    source = recipe["source"]
    return asset_location(href, str(source["asset_base"]), Path(source["items"]).parent)


def output_files(corpus: Path, views: Sequence[str]) -> Iterator[Path]:
    """Every file of the corpus proper (not work/, versions/, the lock or the datasheet)."""
    for entry in (*BASE_OUTPUTS, *view_outputs(tuple(views))):
        path = corpus / entry.rstrip("/")
        if entry.endswith("/"):
            if path.is_dir():
                yield from (p for p in files_under(path) if not p.name.startswith("."))
        elif path.is_file():
            yield path


HASH_TASK_BYTES = 256 * 2**20  # files hashed per task: up to this many bytes ...
HASH_TASK_FILES = 2048  # ... or this many files (STAC items are small and many)


def output_checksums(
    corpus: Path, views: Sequence[str], pool: cf.Executor | None = None
) -> dict[str, str]:
    """Relative path -> sha256 of every output file; on ``pool`` in tasks of a few hundred
    MB or a few thousand files (the same digests: the build process would otherwise read
    every byte of the corpus alone, the part of a build that does not scale with workers)."""
    paths = list(output_files(corpus, views))
    if pool is None:
        digests = file_digests(paths)
    else:
        tasks = [pool.submit(file_digests, group) for group in _hash_groups(paths)]
        digests = [d for task in tasks for d in task.result()]
    return {p.relative_to(corpus).as_posix(): d for p, d in zip(paths, digests, strict=True)}


def file_digests(paths: Sequence[Path]) -> list[str]:
    """sha256 of each file (one task)."""
    return [fingerprint(str(p))["sha256"] for p in paths]


def _hash_groups(paths: Sequence[Path]) -> Iterator[list[Path]]:
    group: list[Path] = []
    size = 0
    for path in paths:
        group.append(path)
        size += path.stat().st_size
        if size >= HASH_TASK_BYTES or len(group) >= HASH_TASK_FILES:
            yield group
            group, size = [], 0
    if group:
        yield group


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---- reading -------------------------------------------------------------------------------


def read_lock(path: Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / LOCK_FILE
    if not path.is_file():
        raise CorpusError(
            f"lock file {path} does not exist; a corpus built by `clm build` has corpus.lock "
            "at its top level"
        )
    try:
        lock = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path} is not JSON ({exc}); pass the corpus.lock of a corpus") from exc
    validate(lock, SCHEMA, f"lock file {path}")
    return dict(lock)


def config_from_lock(lock: Mapping[str, Any], out: Path) -> RunConfig:
    """The run config recorded in ``lock``, writing to ``out``; checked against its digest."""
    recipe = dict(lock["recipe"])
    recipe["output"] = {**recipe["output"], "dir": str(Path(out).resolve())}
    config: RunConfig = from_plain(RunConfig, recipe)
    if config.digest() != lock["config_digest"]:
        raise CorpusError(
            f"the recipe in the lock does not reproduce its config digest {lock['config_digest']} "
            f"(got {config.digest()}); the lock was written by crisislandmark "
            f"{lock['software']['version']}: rebuild with that version"
        )
    return config


def from_plain(kind: Any, value: Any) -> Any:
    """Rebuild a typed value (dataclasses, tuples, datetimes, paths) from its JSON form,
    the inverse of ``RunConfig.to_dict`` guided by the type hints."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if value is None or kind is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return from_plain(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = typing.get_type_hints(kind)
        names = [f.name for f in dataclasses.fields(kind) if f.name in value]
        return kind(**{name: from_plain(hints[name], value[name]) for name in names})
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_plain(args[0], v) for v in value)
        return tuple(from_plain(a, v) for a, v in zip(args, value, strict=True))
    if origin is dict:
        return {k: from_plain(args[1], v) for k, v in value.items()}
    if origin is list:
        return [from_plain(args[0], v) for v in value]
    if kind is datetime:
        return _parse_time(value)
    return Path(value) if kind is Path else value
