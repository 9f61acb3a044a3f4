"""The run configuration: one YAML file, validated at the edge into frozen dataclasses.

Relative paths in a config file are resolved against the directory of that file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from pipeline.compression import DEFAULT_SHARD_COMPRESSION, checked_recipe
from pipeline.engine.settings import EngineConfig, parse_engine
from pipeline.errors import ConfigError, SchemaError, SourceError
from pipeline.schemas import validate
from pipeline.sources.band_values import parse_table
from pipeline.sources.base import BandValues, SearchQuery
from pipeline.sources.selection import SelectionRules, parse_selection
from pipeline.sources.settings import (
    ApiSettings,
    RetryPolicy,
    known_collections,
    parse_api_settings,
    parse_retry,
)

SUPPORTED_COLLECTIONS = ("sentinel-2-l2a", "sentinel-1-grd")
DEFAULT_WINDOW_DAYS = {"flood": 12, "wildfire": 365, "earthquake": 60}
CORPUS_VIEWS = ("clm-hdf5", "webdataset", "stac")
# The WebDataset view is a second full copy of the pixels (gzip members, ~1x the shards):
# written when training needs it (``ensure_webdataset``) or when `output.views` asks for it.
DEFAULT_VIEWS = ("clm-hdf5", "stac")
ON_UNVERIFIABLE = ("raise", "record")
SPLIT_METHODS = ("stratified", "geo-block")


@dataclass(frozen=True)
class SourceConfig:
    kind: str
    items: Path
    asset_base: str = "serve"
    # API sources (stac_api, sentinelhub): URL, provider profile, retries, concurrency.
    # For them ``items`` is only the base that relative asset hrefs resolve against.
    api: ApiSettings | None = None
    # remote asset reads and fingerprints (HEAD); API sources use it for their requests too
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # a remote asset that cannot be fingerprinted once retries run out: fail the build
    # ("raise") or record it as unverifiable in corpus.lock and manifest.json ("record")
    on_unverifiable: str = "raise"
    # the band contract declared by the run config (over the provider's): sensor or band ->
    # unit, scale, offset, nodata (``pipeline.sources.band_values``)
    bands: dict[str, BandValues] = field(default_factory=dict)


SearchConfig = SearchQuery  # the search section is validated straight into the query


@dataclass(frozen=True)
class ChipsConfig:
    max_nodata_fraction: float = 0.05
    max_cloud_fraction: float = 0.10
    on_error: str = "raise"  # a scene whose assets cannot be read: "raise" or "skip" (recorded)


@dataclass(frozen=True)
class RasterProduct:
    href: str
    value_type: str = "grid_code"
    label_band: int = 1
    probabilities: bool = False


@dataclass(frozen=True)
class GdacsFeedConfig:
    href: str
    radius_km: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class UserEventsConfig:
    path: str
    on_invalid: str = "error"


@dataclass(frozen=True)
class EmsProduct:
    """One EMS rapid-mapping product. Its event date comes from ``event_date`` (ISO date or
    datetime, UTC), else the activation ``metadata`` JSON, else the product's ``source_table``
    (the earliest post-event image it cites); resolved when the config is loaded."""

    observed_event: str
    metadata: str | None = None
    source_table: str | None = None
    event_date: str | None = None


@dataclass(frozen=True)
class LabelsConfig:
    corine: tuple[RasterProduct, ...] = ()
    dynamic_world: tuple[RasterProduct, ...] = ()
    worldcover: tuple[RasterProduct, ...] = ()
    dynamic_world_scenes: tuple[tuple[str, datetime], ...] = ()
    dynamic_world_window: tuple[datetime, datetime] | None = None
    min_fraction: float = 0.05
    ems: tuple[EmsProduct, ...] = ()
    gdacs: tuple[GdacsFeedConfig, ...] = ()
    user_events: tuple[UserEventsConfig, ...] = ()
    window_days: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WINDOW_DAYS))
    min_affected_fraction: float = 0.02


@dataclass(frozen=True)
class OutputConfig:
    dir: Path
    shard_size: int = 256
    train_fraction: float = 0.2
    split_seed: int = 0
    views: tuple[str, ...] = DEFAULT_VIEWS
    split_method: str = "stratified"
    geo_block_size: int = 4  # grid cells per block side (geo-block split)
    webdataset_shard_size: int = 512  # samples per WebDataset tar
    stac_chip_assets: str = "none"  # "cog": a COG per chip in the STAC view
    shard_compression: str = DEFAULT_SHARD_COMPRESSION  # a name of compression.CANDIDATES
    work_chips: str = "release"  # "keep": chip pixels stay in work/ after a publish


@dataclass(frozen=True)
class RunConfig:
    name: str
    source: SourceConfig
    search: SearchConfig
    chips: ChipsConfig
    labels: LabelsConfig
    output: OutputConfig
    archive: Path | None = None
    selection: SelectionRules = field(default_factory=SelectionRules)
    engine: EngineConfig = field(default_factory=EngineConfig)  # how it runs, not what it makes

    def to_dict(self) -> dict[str, Any]:
        """The recipe: everything but ``engine`` (the outputs do not depend on it)."""
        data = asdict(self)
        data.pop("engine")
        return dict(json.loads(json.dumps(data, default=str)))

    def digest(self) -> str:
        """A hash of everything that changes the corpus (the output directory excluded)."""
        data = self.to_dict()
        data.pop("output", None)
        data["split"] = {
            "train_fraction": self.output.train_fraction,
            "seed": self.output.split_seed,
        }
        if self.output.split_method != "stratified":
            data["split"]["method"] = self.output.split_method
            data["split"]["geo_block_size"] = self.output.geo_block_size
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def load_config(
    path: Path | str, *, archive: Path | None = None, out: Path | None = None
) -> RunConfig:
    """Read, validate and resolve a run config; ``archive``/``out`` override the file's values."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist; pass --config with a YAML run config"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    try:
        validate(raw, "run-config.v1.schema.json", f"config file {path}")
    except SchemaError as exc:
        raise ConfigError(str(exc)) from exc
    base = path.resolve().parent
    if archive is not None:
        raw["archive"] = str(Path(archive).resolve() / "archive.json")
    if out is not None:
        raw["output"]["dir"] = str(Path(out).resolve())
    return _build(raw, base, path)


def _resolve(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else (base / p).resolve()


def _build(raw: dict[str, Any], base: Path, path: Path) -> RunConfig:
    archive = _resolve(base, raw["archive"]) if raw.get("archive") else None
    archive_meta = _read_archive_manifest(archive) if archive else None
    source = _source(raw["source"], base, archive, path)
    known = known_collections(source.kind, source.api, SUPPORTED_COLLECTIONS)
    chips = dict(raw.get("chips", {}))
    engine = parse_engine(raw.get("engine", {}), chips, str(path))
    chips.pop("workers", None)  # deprecated: engine.n_workers
    config = RunConfig(
        name=raw["name"],
        source=source,
        search=_search(raw["search"], path, known),
        chips=ChipsConfig(**chips),
        labels=_labels(raw.get("labels", {}), base, archive, archive_meta),
        output=_output(raw["output"], base, str(path)),
        archive=archive,
        selection=parse_selection(raw.get("selection", {}), archive_meta, str(path)),
        engine=engine,
    )
    _check_files_exist(config, path)
    _check_ems_dates(config, path)
    _check_workers_reach_assets(config, path)
    return config


def _check_workers_reach_assets(config: RunConfig, path: Path) -> None:
    """``asset_base: serve`` serves the archive on this machine's loopback: workers of a
    scheduler elsewhere cannot read it."""
    address = config.engine.scheduler_address() if config.engine.kind == "dask" else None
    if address is None or config.source.asset_base != "serve" or _is_loopback(address):
        return
    raise ConfigError(
        f"{path}: source.asset_base: serve (the default for geoparquet sources) serves the "
        f"archive on this machine's loopback, which the workers of the Dask scheduler at "
        f"{address} cannot reach; set source.asset_base to a URL or to a directory every "
        "worker mounts at the same path"
    )


def _is_loopback(address: str) -> bool:
    host = urlparse(address if "://" in address else f"tcp://{address}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _read_archive_manifest(archive: Path) -> dict[str, Any]:
    if not archive.is_file():
        raise ConfigError(
            f"archive manifest {archive} does not exist; generate the demo archive with "
            "`clm archive simulate --out DIR` or point `archive:` at an archive.json"
        )
    return json.loads(archive.read_text())


def _source(raw: dict[str, Any], base: Path, archive: Path | None, path: Path) -> SourceConfig:
    if raw.get("items"):
        items = _resolve(base, raw["items"])
    elif archive is not None:
        items = archive.parent / "items.parquet"
    elif raw["kind"] != "geoparquet":
        items = base / "items.parquet"  # unused by API sources; relative hrefs resolve in base
    else:
        raise ConfigError(f"{path}: source.items is required when no `archive:` is given")
    api = parse_api_settings(raw, base, str(path)) if raw["kind"] != "geoparquet" else None
    asset_base = raw.get("asset_base", "serve" if raw["kind"] == "geoparquet" else str(base))
    if asset_base != "serve" and "://" not in asset_base:  # a directory: not the cwd's
        asset_base = str(_resolve(base, asset_base))
    return SourceConfig(
        kind=raw["kind"],
        items=items,
        asset_base=asset_base,
        api=api,
        retry=parse_retry(raw),
        on_unverifiable=str(raw.get("on_unverifiable", "raise")),
        bands=parse_table(raw.get("bands", {}), f"{path}: source.bands"),
    )


def _search(
    raw: dict[str, Any], path: Path, known: tuple[str, ...] = SUPPORTED_COLLECTIONS
) -> SearchConfig:
    unknown = [c for c in raw["collections"] if c not in known]
    if unknown:
        raise ConfigError(
            f"{path}: unknown collection(s) {unknown} in search.collections; "
            f"supported by this source: {list(known)}"
        )
    start, end = parse_datetime_range(raw["datetime"], where=f"{path}: search.datetime")
    bbox = tuple(raw["bbox"]) if raw.get("bbox") is not None else None
    if bbox is not None:
        _check_bbox(bbox, path)
    return SearchConfig(
        collections=tuple(raw["collections"]),
        start=start,
        end=end,
        bbox=bbox,
        max_cloud_cover=float(raw.get("max_cloud_cover", 100.0)),
    )


def _check_bbox(bbox: tuple[float, ...], path: Path) -> None:
    minx, miny, maxx, maxy = bbox
    if not (
        -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90
    ):
        raise ConfigError(f"{path}: search.bbox {list(bbox)} is not lon/lat degrees (EPSG:4326)")
    if maxx <= minx or maxy <= miny:
        raise ConfigError(
            f"{path}: search.bbox {list(bbox)} is empty; give [min_lon, min_lat, max_lon, max_lat] "
            "with min < max"
        )


def parse_datetime_range(text: str, *, where: str) -> tuple[datetime, datetime]:
    """Parse ``START/END`` (ISO dates or datetimes, UTC assumed); END as a date is inclusive."""
    parts = text.split("/")
    if len(parts) != 2:
        raise ConfigError(f"{where}: {text!r} is not START/END, e.g. 2021-06-01/2022-10-31")
    start = _parse_instant(parts[0], where, end=False)
    end = _parse_instant(parts[1], where, end=True)
    if end < start:
        raise ConfigError(f"{where}: the range {text!r} is reversed (end before start); swap them")
    return start, end


def _parse_instant(text: str, where: str, *, end: bool) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{where}: {text!r} is not an ISO date or datetime") from exc
    if len(text.strip()) == 10 and end:
        value = datetime.combine(value.date(), time.max)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _labels(
    raw: dict[str, Any], base: Path, archive: Path | None, meta: dict[str, Any] | None
) -> LabelsConfig:
    crisis = raw.get("crisis", {})
    corine = [RasterProduct(**r) for r in raw.get("corine", [])]
    dw = [RasterProduct(**{"value_type": "dw", **r}) for r in raw.get("dynamic_world", [])]
    ems = [EmsProduct(**e) for e in crisis.get("ems", [])]
    corine = [replace(r, href=_href(base, r.href)) for r in corine]
    dw = [replace(r, href=_href(base, r.href)) for r in dw]
    ems = [_resolve_ems(base, e) for e in ems]
    if archive is not None and meta is not None:
        corine += [
            RasterProduct(_href(archive.parent, a["corine"]), "grid_code") for a in meta["aois"]
        ]
        dw += [RasterProduct(_href(archive.parent, a["dynamic_world"]), "dw") for a in meta["aois"]]
        ems += [_ems_from_archive(archive.parent, ev) for ev in meta.get("events", [])]
    return LabelsConfig(
        corine=tuple(corine),
        dynamic_world=tuple(dw),
        worldcover=tuple(
            RasterProduct(_href(base, r["href"]), "worldcover") for r in raw.get("worldcover", [])
        ),
        dynamic_world_scenes=tuple(
            (
                _href(base, d["href"]),
                _parse_instant(d["datetime"], "labels.dynamic_world_scenes", end=False),
            )
            for d in raw.get("dynamic_world_scenes", [])
        ),
        dynamic_world_window=(
            parse_datetime_range(raw["dynamic_world_window"], where="labels.dynamic_world_window")
            if raw.get("dynamic_world_window")
            else None
        ),
        min_fraction=float(raw.get("min_fraction", 0.05)),
        ems=tuple(ems),
        gdacs=tuple(
            GdacsFeedConfig(str(_resolve(base, g["href"])), g.get("radius_km", {}))
            for g in crisis.get("gdacs", [])
        ),
        user_events=tuple(
            UserEventsConfig(str(_resolve(base, u["path"])), u.get("on_invalid", "error"))
            for u in crisis.get("user_events", [])
        ),
        window_days={**DEFAULT_WINDOW_DAYS, **crisis.get("window_days", {})},
        min_affected_fraction=float(crisis.get("min_affected_fraction", 0.02)),
    )


def _href(base: Path, href: str) -> str:
    return href if "://" in href else str(_resolve(base, href))


def _resolve_ems(base: Path, product: EmsProduct) -> EmsProduct:
    meta = str(_resolve(base, product.metadata)) if product.metadata else None
    table = str(_resolve(base, product.source_table)) if product.source_table else None
    when = str(product.event_date) if product.event_date is not None else None
    return EmsProduct(str(_resolve(base, product.observed_event)), meta, table, when)


def _ems_from_archive(root: Path, event: dict[str, Any]) -> EmsProduct:
    meta = str(root / event["metadata"]) if event.get("metadata") else None
    return EmsProduct(str(root / event["layers"]["observed_event"]), meta)


def _output(raw: dict[str, Any], base: Path, where: str) -> OutputConfig:
    return OutputConfig(
        dir=_resolve(base, raw["dir"]),
        shard_size=int(raw.get("shard_size", 256)),
        train_fraction=float(raw.get("train_fraction", 0.2)),
        split_seed=int(raw.get("split_seed", 0)),
        views=tuple(raw.get("views", DEFAULT_VIEWS)),
        split_method=str(raw.get("split_method", "stratified")),
        geo_block_size=int(raw.get("geo_block_size", 4)),
        webdataset_shard_size=int(raw.get("webdataset_shard_size", 512)),
        stac_chip_assets=str(raw.get("stac_chip_assets", "none")),
        shard_compression=checked_recipe(
            str(raw.get("shard_compression", OutputConfig.shard_compression)), f"config {where}"
        ),
        work_chips=str(raw.get("work_chips", OutputConfig.work_chips)),
    )


def _check_ems_dates(config: RunConfig, path: Path) -> None:
    """Every EMS product has a resolvable event date before any raster work starts."""
    from pipeline.labels.crisis_ems import ems_event_date

    for product in config.labels.ems:
        try:
            ems_event_date(product)
        except (SourceError, ConfigError) as exc:
            raise ConfigError(
                f"{path}: labels.crisis.ems product {Path(product.observed_event).name}: {exc}"
            ) from exc


def _check_files_exist(config: RunConfig, path: Path) -> None:
    missing = [str(config.source.items)] if not config.source.items.exists() else []
    if config.source.kind != "geoparquet":
        missing = []
    labels = config.labels
    local = [r.href for r in (*labels.corine, *labels.dynamic_world, *labels.worldcover)]
    local += [e.observed_event for e in config.labels.ems]
    local += [e.metadata for e in config.labels.ems if e.metadata]
    local += [e.source_table for e in config.labels.ems if e.source_table]
    missing += [h for h in local if "://" not in h and not Path(h).exists()]
    if missing:
        raise ConfigError(
            f"{path}: missing input file(s): {', '.join(missing)}; generate the archive first "
            "(`clm archive simulate`) or fix the paths (relative paths are resolved against the "
            "config file's directory)"
        )
