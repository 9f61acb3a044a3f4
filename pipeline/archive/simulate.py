"""The embedded demo archive: a deterministic stand-in for a real Sentinel-1/2 archive.

``simulate_archive(root, seed, scale)`` writes, per AOI, a 10 m ground truth, the
CORINE-like and Dynamic-World-like label rasters, EMS-style crisis products and
Sentinel-2 L2A / Sentinel-1 GRD scenes as COGs, then a static STAC catalog and a
stac-geoparquet index, and finally ``archive.json`` (written last: its presence
means the archive is complete). Same seed and scale give byte-identical files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pystac
from rasterio.warp import transform_bounds

from pipeline import __version__
from pipeline.archive.aoi import AoiState, prepare_aoi
from pipeline.archive.cog import write_cog
from pipeline.archive.events import write_ems_product
from pipeline.archive.label_products import (
    CORINE_NODATA,
    DW_NODATA,
    corine_raster,
    dynamic_world_raster,
)
from pipeline.archive.landscape import Landscape
from pipeline.archive.layout import S1_COLLECTION, S2_COLLECTION, ArchiveLayout
from pipeline.archive.optical import render_s2, write_s2
from pipeline.archive.radar import render_s1, write_s1
from pipeline.archive.scenes import SceneSpec, plan_scenes
from pipeline.archive.sites import AoiSpec, sites_for
from pipeline.archive.stac_catalog import (
    OfflineValidator,
    parquet_records,
    validate_items,
    write_catalog,
    write_items_parquet,
)
from pipeline.archive.stac_items import footprint, s1_item, s2_item
from pipeline.storage import write_json_atomic

Progress = Callable[[str], None]


def simulate_archive(
    root: Path, seed: int = 0, scale: str = "demo", progress: Progress | None = None
) -> dict:
    """Generate the demo archive under ``root``; return the manifest written to archive.json."""
    layout = ArchiveLayout(Path(root))
    say = progress or (lambda _message: None)
    sites = sites_for(scale)
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.manifest.unlink(missing_ok=True)
    aois, events, items = [], [], []
    for site in sites:
        aoi_entry, aoi_events, aoi_items = simulate_aoi(layout, site, seed, say)
        aois.append(aoi_entry)
        events.extend(aoi_events)
        items.extend(aoi_items)
    say(f"STAC: {len(items)} items")
    publish_stac(layout, items)
    manifest = build_manifest(layout, seed, scale, aois, events, items)
    write_json_atomic(layout.manifest, manifest)
    layout.manifest.chmod(0o644)
    say(f"archive complete: {layout.manifest}")
    return manifest


def simulate_aoi(
    layout: ArchiveLayout, site: AoiSpec, seed: int, say: Progress
) -> tuple[dict, list[dict], list[pystac.Item]]:
    """Truth, labels, events and scenes of one AOI."""
    say(f"{site.name}: landscape and labels")
    state, full = prepare_aoi(site, seed)
    aoi_entry = write_labels(layout, state, full)
    scenes = plan_scenes(site)
    events = write_events(layout, state, scenes)
    items = []
    for scene in scenes:
        say(f"{site.name}: {scene.item_id}")
        items.append(render_scene(layout, state, scene))
    return aoi_entry, events, items


def write_labels(layout: ArchiveLayout, state: AoiState, full: Landscape) -> dict:
    """The 10 m truth, the CORINE-like and the Dynamic-World-like rasters of one AOI."""
    site = state.site
    write_cog(layout.truth(site.name), state.land.clc, state.grid, 0, "CLC level-3 code")
    corine, corine_grid = corine_raster(full, site.bounds)
    write_cog(layout.corine(site.name), corine, corine_grid, CORINE_NODATA, "CLC grid code")
    dw = dynamic_world_raster(state.land, state.seed, site.name)
    write_cog(layout.dynamic_world(site.name), dw, state.grid, DW_NODATA, "label")
    return {
        "name": site.name,
        "epsg": site.epsg,
        "bounds": list(site.bounds),
        "bbox_wgs84": [
            round(v, 6) for v in transform_bounds(f"EPSG:{site.epsg}", "EPSG:4326", *site.bounds)
        ],
        "place": site.place,
        "country": site.country,
        "truth": layout.relative(layout.truth(site.name)),
        "corine": layout.relative(layout.corine(site.name)),
        "dynamic_world": layout.relative(layout.dynamic_world(site.name)),
    }


def write_events(layout: ArchiveLayout, state: AoiState, scenes: list[SceneSpec]) -> list[dict]:
    """EMS-style products of the AOI's events, citing the archive scenes used as sources."""
    entries = []
    for event in state.events:
        when = event.spec.event_time
        optical = [s for s in scenes if s.sensor == "s2"]
        pre = max((s for s in optical if s.when < when), key=lambda s: s.when)
        post_pool = [
            s
            for s in scenes
            if s.when > when and s.sensor == ("s1" if event.spec.hazard == "flood" else "s2")
        ]
        post = min(post_pool, key=lambda s: s.when)
        sources = (_source_name(pre), pre.when), (_source_name(post), post.when)
        entries.append(write_ems_product(layout.root, state.site, event, *sources))
    return entries


def _source_name(scene: SceneSpec) -> str:
    return "Sentinel-2" if scene.sensor == "s2" else "Sentinel-1"


def render_scene(layout: ArchiveLayout, state: AoiState, scene: SceneSpec) -> pystac.Item:
    """Render and write one scene; return its STAC item (absolute asset paths)."""
    scene_dir = layout.scene_dir(scene.collection, scene.item_id)
    if scene.sensor == "s2":
        render = render_s2(state, scene)
        assets = write_s2(scene_dir, state, render)
        return s2_item(scene, state.site, assets, render.stats, footprint(render.valid, state.grid))
    radar = render_s1(state, scene)
    assets = write_s1(scene_dir, state, radar)
    return s1_item(scene, state.site, assets, footprint(radar.valid, state.grid))


def publish_stac(layout: ArchiveLayout, items: list[pystac.Item]) -> None:
    """Validate the items offline, then write the static catalog and the geoparquet index."""
    records = parquet_records(layout, items)
    validate_items(records, OfflineValidator())
    write_catalog(layout, items)
    write_items_parquet(layout, records)


def build_manifest(
    layout: ArchiveLayout,
    seed: int,
    scale: str,
    aois: list[dict],
    events: list[dict],
    items: list[pystac.Item],
) -> dict:
    counts = Counter(item.collection_id for item in items)
    return {
        "version": 1,
        "seed": seed,
        "scale": scale,
        "generator": f"crisislandmark {__version__}",
        "created_from": {
            "function": "pipeline.archive.simulate.simulate_archive",
            "seed": seed,
            "scale": scale,
        },
        "aois": aois,
        "collections": {name: counts.get(name, 0) for name in (S2_COLLECTION, S1_COLLECTION)},
        "items_parquet": layout.relative(layout.items_parquet),
        "catalog": layout.relative(layout.catalog),
        "events": events,
        "time_range": _time_range(items),
    }


def _time_range(items: list[pystac.Item]) -> list[str]:
    times = sorted(item.datetime for item in items if isinstance(item.datetime, datetime))
    return (
        [times[0].strftime("%Y-%m-%dT%H:%M:%SZ"), times[-1].strftime("%Y-%m-%dT%H:%M:%SZ")]
        if times
        else []
    )
