"""Area-weighted class fractions of a categorical raster over chip squares.

Two methods, chosen automatically (``pipeline.labels.raster_blocks`` does the counting, a
block of chips at a time):

* ``exact``: the raster is in the chip CRS and north-up (any resolution, any
  offset). Each source pixel gets the exact area of its overlap with the chip
  square, computed separably (x overlap times y overlap). No resampling error.
* ``warp``: anything else (e.g. CORINE at 100 m in EPSG:3035 vs a chip in UTM). Each
  chip is sampled (nearest product pixel) at the centres of a fine sub-grid
  (``subpixel_m``, 2 m -> 600 x 600 by default) and the sub-pixels are counted. The count
  converges to the true overlap area; the error is confined to a half sub-pixel strip
  along class edges (< 1 % of a chip for 100 m classes). Averaging resamplers (mode,
  average) would blur or vote classes away.

Fractions are sums of whole weights (chip-area m², or sub-pixel counts) divided once by
the total, so they are the same bits whatever the CPU (no per-pixel fractions summed), and
a chip's fractions do not depend on the other chips computed with it.

Pixels outside the raster, pixels equal to the dataset nodata or to
``nodata_values``, and (when ``value_map`` is given) raw values absent from
``value_map`` all count as nodata. Hrefs may be local paths or http(s) URLs
(GDAL reads those with range requests).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioIOError

from pipeline.chips.grid import ChipGeometry
from pipeline.errors import ChipReadError, ConfigError, SourceError
from pipeline.labels import warnings as label_warnings
from pipeline.labels.base import ClassFractions
from pipeline.labels.raster_blocks import Tallies, blocks_of, exact_block, sampled_block

_READDIR = "GDAL_DISABLE_READDIR_ON_OPEN"  # no directory listings / sidecar probes over HTTP
METHODS = ("auto", "exact", "warp")


@lru_cache(maxsize=64)
def open_dataset(href: str) -> rasterio.io.DatasetReader:
    """Open ``href`` once per process and keep it open (not thread-safe: one per worker)."""
    options = {} if _READDIR in os.environ else {_READDIR: "EMPTY_DIR"}
    try:
        with rasterio.Env(**options):
            return rasterio.open(href)
    except RasterioIOError as exc:
        raise ChipReadError(
            f"cannot open label raster {href!r}: {exc}; check the path or URL "
            "(http servers must support range requests)"
        ) from exc


@dataclass(frozen=True)
class ChipFractions:
    """Fractions of one chip, and the raw values found outside the taxonomy (if any)."""

    fractions: dict[int, float]
    nodata_fraction: float
    unknown: tuple[int, ...] = ()

    def warning(self, href: str) -> tuple[str, str] | None:
        """The counted warning (kind, detail) this chip's unknown values give, if any."""
        return (
            ("unknown class code", f"{href} values {list(self.unknown)}") if self.unknown else None
        )


def _is_north_up(ds: rasterio.io.DatasetReader) -> bool:
    t = ds.transform
    return t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0


def _use_exact(ds, chip: ChipGeometry, method: str) -> bool:
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not one of {METHODS}")
    same = ds.crs is not None and ds.crs == CRS.from_epsg(chip.epsg) and _is_north_up(ds)
    if method == "exact" and not same:
        raise ConfigError("method='exact' needs a north-up raster in the chip CRS; use 'auto'")
    return method == "exact" or (method == "auto" and same)


def tally(
    raws: np.ndarray,
    sums: np.ndarray,
    total: float,
    nodata: set[int],
    value_map: Mapping[int, int] | None,
) -> ChipFractions:
    """Weight per class summed first (raw values in sorted order), then divided once by
    ``total`` (the chip's weight)."""
    sums_by_key: dict[int, float] = {}
    unknown = []
    for raw, weight in zip(raws.tolist(), sums.tolist(), strict=True):
        if raw in nodata or weight <= 0:
            continue
        if value_map is not None and raw not in value_map:
            unknown.append(int(raw))
            continue
        key = value_map[raw] if value_map is not None else raw
        sums_by_key[key] = sums_by_key.get(key, 0.0) + weight
    fractions = {key: weight / total for key, weight in sorted(sums_by_key.items())}
    nodata_fraction = min(max((total - sum(sums_by_key.values())) / total, 0.0), 1.0)
    return ChipFractions(fractions, nodata_fraction, tuple(unknown))


def block_fractions(
    href: str,
    chips: Sequence[ChipGeometry],
    *,
    nodata_values: Iterable[int] = (),
    value_map: Mapping[int, int] | None = None,
    band: int = 1,
    subpixel_m: float = 2.0,
    method: str = "auto",
    on_unknown: str = "warn",
) -> list[ChipFractions]:
    """``ChipFractions`` of every chip (in order), a block of grid cells per read.

    Raw values missing from ``value_map`` are counted as nodata and returned in
    ``ChipFractions.unknown`` (``on_unknown="warn"``; the caller reports them) or raise a
    ``SourceError`` (``"error"``).
    """
    ds = open_dataset(str(href))
    if ds.crs is None:
        raise ChipReadError(f"label raster {href!r} has no CRS; assign one (gdal_edit.py -a_srs)")
    nodata = {int(v) for v in nodata_values}
    if ds.nodata is not None and not math.isnan(ds.nodata):
        nodata.add(int(ds.nodata))
    out: list[ChipFractions | None] = [None] * len(chips)
    for indices in blocks_of(chips):
        block = [chips[i] for i in indices]
        tallies = _tallies(ds, block, band, str(href), subpixel_m, method)
        for row, i in enumerate(indices):
            found = tally(tallies.raws, tallies.sums[row], tallies.total, nodata, value_map)
            out[i] = found
            if found.unknown and on_unknown == "error":
                raise SourceError(
                    f"{href} has values {list(found.unknown)} outside its taxonomy (chip "
                    f"{chips[i].cell_id}); check the product's value_type or its legend"
                )
    return [f for f in out if f is not None]


def _tallies(ds, block, band: int, href: str, subpixel_m: float, method: str) -> Tallies:
    if _use_exact(ds, block[0], method):
        return exact_block(ds, block, band, href)
    return sampled_block(ds, block, band, href, subpixel_m)


def fractions_from_raster(
    href: str,
    chip: ChipGeometry,
    *,
    nodata_values: Iterable[int] = (),
    value_map: Mapping[int, int] | None = None,
    band: int = 1,
    subpixel_m: float = 2.0,
    method: str = "auto",
    on_unknown: str = "warn",
) -> tuple[dict[int, float], float]:
    """(class value -> fraction of the chip area, nodata fraction) of one chip.

    ``value_map`` renames raw values (e.g. CORINE grid code 12 -> CLC code 211); raw
    values missing from it are counted as nodata and reported: a counted warning
    (``on_unknown="warn"``) or a ``SourceError`` (``"error"``). ``method`` is ``"auto"``,
    ``"exact"`` or ``"warp"``. Many chips: ``block_fractions``.
    """
    (result,) = block_fractions(
        href,
        [chip],
        nodata_values=nodata_values,
        value_map=value_map,
        band=band,
        subpixel_m=subpixel_m,
        method=method,
        on_unknown=on_unknown,
    )
    report(result.warning(str(href)))
    return result.fractions, result.nodata_fraction


def as_class_fractions(source: str, href: str, found: ChipFractions) -> ClassFractions:
    warning = found.warning(href)
    return ClassFractions(
        source, found.fractions, found.nodata_fraction, warnings=(warning,) if warning else ()
    )


def report(warning: tuple[str, str] | None) -> None:
    if warning is not None:
        label_warnings.warn(*warning)
