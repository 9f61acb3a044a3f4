"""The S1 polarisation policy through whole builds: the tiny archive's four S1 scenes rewritten
into VV-only, VH-only, HH+HV and HH-only scenes (real GeoTIFFs, real stac-geoparquet)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import h5py
import pyarrow.parquet as pq
import pytest
import rasterio
import stac_geoparquet.arrow

from pipeline.build import build
from pipeline.config import load_config
from pipeline.sources.base import SearchQuery
from pipeline.sources.geoparquet import GeoParquetSource
from pipeline.sources.selection import SelectionRules, select_scenes

# scene index -> (polarisations, {new asset key: source asset key})
LAYOUTS = {
    0: ("vv-only", ["VV"], {"vv": "vv"}),
    1: ("vh-only", ["VH"], {"vh": "vh"}),
    2: ("hh-hv", ["HH", "HV"], {"hh": "vv", "hv": "vh"}),
    3: ("hh-only", ["HH"], {"hh": "vv"}),
}
LAYOUTS_NAMES = [name for name, _, _ in LAYOUTS.values()]


def _rewrite(archive: Path) -> dict[str, str]:
    """Rewrite the S1 items in place; item id -> layout name. HH/HV assets are new GeoTIFFs
    (the VV/VH pixels written again under the new names)."""
    items = list(
        stac_geoparquet.arrow.stac_table_to_items(pq.read_table(archive / "items.parquet"))
    )
    s1 = sorted((i for i in items if i["collection"] == "sentinel-1-grd"), key=lambda i: i["id"])
    layout_of = {}
    for index, item in enumerate(s1):
        name, pols, assets = LAYOUTS[index]
        old = item["assets"]
        item["assets"] = {key: _asset(archive, old[src], key) for key, src in assets.items()}
        item["properties"]["sar:polarizations"] = pols
        layout_of[item["id"]] = name
    table = stac_geoparquet.arrow.parse_stac_items_to_arrow(items)
    stac_geoparquet.arrow.to_parquet(table, archive / "items.parquet")
    return layout_of


def _asset(archive: Path, asset: dict, key: str) -> dict:
    src = archive / asset["href"]
    dst = src.with_name(f"{key}.tif")
    if dst != src:
        with rasterio.open(src) as ds:
            profile, data = ds.profile, ds.read()
        with rasterio.open(dst, "w", **profile) as out:
            out.write(data)
    href = str(Path(asset["href"]).with_name(dst.name))
    return {**asset, "href": href, "sar:polarizations": [key.upper()]}


@pytest.fixture(scope="module")
def mixed_archive(tiny_archive, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("mixed-pol") / "archive"
    shutil.copytree(tiny_archive, root)
    return root, _rewrite(root)


def _build(archive: Path, out: Path, run_config, selection: dict) -> dict:
    config = load_config(run_config(out.parent / "run.yaml", archive, out, selection=selection))
    build(config)
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    report = json.loads((out / "work" / "scenes.selection.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    return {"records": records, "report": report, "manifest": manifest}


def _by_layout(records: list[dict], layout_of: dict[str, str]) -> dict[str, set]:
    out: dict[str, set] = {}
    for r in records:
        if r["sensor"]["sensor"] == "s1":
            pols = tuple(r["sensor"].get("polarizations", ["VV", "VH"]))
            filled = tuple(r["sensor"].get("filled_bands", []))
            out.setdefault(layout_of[r["provenance"]["item_id"]], set()).add((pols, filled))
    return out


def test_fill_and_hh_hv_as_vv_vh_keep_every_scene_flagged(mixed_archive, tmp_path, run_config):
    archive, layout_of = mixed_archive
    selection = {"s1_polarizations": [], "s1_missing_polarization": "fill", "s1_hh_hv": "as_vv_vh"}
    got = _build(archive, tmp_path / "corpus", run_config, selection)
    assert _by_layout(got["records"], layout_of) == {
        "vv-only": {(("VV", None), ("VH",))},
        "vh-only": {((None, "VH"), ("VV",))},
        "hh-hv": {(("HH", "HV"), ())},
        "hh-only": {(("HH", None), ("VH",))},
    }
    s1 = got["manifest"]["s1_polarizations"]
    assert s1["policy"] == {"required": [], "missing_polarization": "fill", "hh_hv": "as_vv_vh"}
    assert set(s1["kept_chips"]) == {"VV,-", "-,VH", "HH,HV", "HH,-"}
    assert got["manifest"]["config"]["selection"]["s1_missing_polarization"] == "fill"
    vv_only = next(i for i, name in layout_of.items() if name == "vv-only")
    images = []  # the published shards (work pixels are released after a publish)
    for shard in sorted((tmp_path / "corpus" / "shards").glob("*.h5")):
        with h5py.File(shard) as h5:
            images += [h5[key]["image"][()] for key in h5 if vv_only in key]
    assert images
    for image in images:
        assert (image[1] == -50.0).all() and (image[0] > -50.0).mean() > 0.9  # VH filled


@pytest.mark.slow
def test_the_default_policy_rejects_them_at_selection_with_reasons(
    mixed_archive, tmp_path, run_config
):
    archive, layout_of = mixed_archive
    got = _build(archive, tmp_path / "corpus", run_config, {})
    assert not _by_layout(got["records"], layout_of)
    reasons = {r["item_id"]: r["reason"] for r in got["report"]["rejected"]}
    by_layout = {layout_of[i]: reason for i, reason in reasons.items() if i in layout_of}
    assert set(by_layout) == set(LAYOUTS_NAMES)
    assert "lack ['VH']" in by_layout["vv-only"] and "lack ['VV']" in by_layout["vh-only"]
    assert by_layout["hh-hv"].startswith("HH/HV scene") and "s1_hh_hv" in by_layout["hh-only"]
    assert got["manifest"]["s1_polarizations"]["kept_chips"] == {}


@pytest.mark.slow
def test_vv_required_with_fill_keeps_vv_only_and_rejects_the_rest(
    mixed_archive, tmp_path, run_config
):
    archive, layout_of = mixed_archive
    selection = {"s1_polarizations": ["VV"], "s1_missing_polarization": "fill"}
    got = _build(archive, tmp_path / "corpus", run_config, selection)
    assert _by_layout(got["records"], layout_of) == {"vv-only": {(("VV", None), ("VH",))}}
    reasons = {layout_of[r["item_id"]]: r["reason"] for r in got["report"]["rejected"]
               if r["item_id"] in layout_of}  # fmt: skip
    assert "lack ['VV']" in reasons["vh-only"]
    assert reasons["hh-hv"].startswith("HH/HV scene") and reasons["hh-only"].startswith("HH/HV")


def test_missing_channel_rejected_when_not_filled(mixed_archive, tmp_path):
    """Selection alone (no build): VV required, VH missing, policy reject -> a reason that
    names the switch."""
    archive, layout_of = mixed_archive
    start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    query = SearchQuery(("sentinel-1-grd",), start, end)
    scenes = list(GeoParquetSource(archive / "items.parquet").search(query))
    selection = select_scenes(scenes, SelectionRules(s1_polarizations=("VV",)), 100.0)
    reasons = {layout_of[r.item_id]: r.reason for r in selection.rejected}
    assert "set selection.s1_missing_polarization: fill" in reasons["vv-only"]
    assert not selection.kept
