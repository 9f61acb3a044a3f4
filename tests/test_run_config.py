"""Run configs: a valid one loads into typed values; bad ones fail fast naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import load_config
from pipeline.errors import ConfigError


def _write(tmp_path: Path, **changes) -> Path:
    (tmp_path / "items.parquet").write_bytes(b"")
    raw = {
        "version": 1,
        "name": "t",
        "source": {"kind": "geoparquet", "items": "items.parquet", "asset_base": "serve"},
        "search": {"collections": ["sentinel-2-l2a"], "datetime": "2021-01-01/2021-12-31"},
        "output": {"dir": "out"},
    }
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_valid_config_resolves_paths_against_the_file(tmp_path):
    config = load_config(_write(tmp_path, search__bbox=[11.0, 45.0, 12.0, 46.0]))
    assert config.source.items == tmp_path / "items.parquet"
    assert config.output.dir == tmp_path / "out"
    assert config.search.start.year == 2021 and config.search.end.day == 31
    assert config.search.end.hour == 23  # an end date is inclusive
    assert config.search.bbox == (11.0, 45.0, 12.0, 46.0)
    assert len(config.digest()) == 16


def test_digest_ignores_output_dir_but_not_the_recipe(tmp_path):
    a = load_config(_write(tmp_path), out=tmp_path / "elsewhere")
    b = load_config(_write(tmp_path))
    c = load_config(_write(tmp_path, search__max_cloud_cover=10))
    assert a.digest() == b.digest() != c.digest()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"search__collections": ["sentinel-3-olci"]}, "unknown collection"),
        ({"search__bbox": [12.0, 45.0, 12.0, 46.0]}, "empty"),
        ({"search__bbox": [200.0, 45.0, 210.0, 46.0]}, "lon/lat"),
        ({"search__datetime": "2022-12-31/2021-01-01"}, "reversed"),
        ({"search__datetime": "2022-12-31"}, "START/END"),
        ({"search__datetime": "2021-13-01/2022-01-01"}, "not an ISO date"),
        ({"source__items": "missing.parquet"}, "missing.parquet"),
        ({"archive": "nowhere/archive.json"}, "clm archive simulate"),
        ({"labels__corine": [{"href": "clc.tif"}]}, "clc.tif"),
        ({"chips__max_cloud_fraction": 2}, "max_cloud_fraction"),
        ({"search__colections": ["sentinel-2-l2a"]}, "colections"),
        ({"version": 2}, "version"),
        ({"output__shard_compression": "lzf"}, "same bytes twice"),
        ({"output__shard_compression": "shuffle-lzf"}, "blosc-zstd-1-bit"),
    ],
)
def test_bad_configs_fail_fast_naming_the_problem(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, **changes))


def test_missing_config_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def _ems_product(tmp_path: Path) -> tuple[Path, Path]:
    """A generated EMS observed-event layer citing source 3, and its product's source table."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    layer = tmp_path / "EMSR9002_AOI02_DEL_PRODUCT_observedEventA_r1_v1.shp"
    gpd.GeoDataFrame(
        {"event_type": ["5-Flood"], "obj_desc": ["Riverine flood"], "dmg_src_id": [3]},
        geometry=[shapely.box(11.80, 45.40, 11.81, 45.41)],
        crs=4326,
    ).to_file(layer)
    table = tmp_path / "EMSR9002_AOI02_DEL_PRODUCT_source_r1_v1.dbf"
    rows = pd.DataFrame({
        "src_date": ["01/11/2021", "18/11/2021", "19/11/2021"],
        "source_tm": ["T10:00:00Z", "T05:17:00Z", "T09:30:00Z"],
        "eventphase": ["Pre-event", "Post-event", "Post-event"],
        "src_id": [1, 2, 3],
    })  # fmt: skip
    gpd.GeoDataFrame(rows).to_file(table, driver="ESRI Shapefile")
    return layer, table


def test_ems_event_date_from_the_configured_source_table(tmp_path):
    from datetime import UTC, datetime

    from pipeline.labels.annotate import crisis_events

    layer, table = _ems_product(tmp_path)
    ems = [{"observed_event": layer.name, "source_table": table.name}]
    config = load_config(_write(tmp_path, labels__crisis__ems=ems))
    assert config.labels.ems[0].source_table == str(table)
    (event,) = crisis_events(config.labels)
    assert event.event_date == datetime(2021, 11, 19, 9, 30, tzinfo=UTC)  # the cited source 3
    assert event.properties["event_date_source"] == "source_table:post-event image"
    explicit = [{**ems[0], "event_date": "2021-11-17"}]
    (event,) = crisis_events(load_config(_write(tmp_path, labels__crisis__ems=explicit)).labels)
    assert event.event_date == datetime(2021, 11, 17, tzinfo=UTC)


def test_ems_product_without_a_resolvable_date_fails_at_load(tmp_path):
    layer, _ = _ems_product(tmp_path)
    path = _write(tmp_path, labels__crisis__ems=[{"observed_event": layer.name}])
    with pytest.raises(ConfigError, match=f"{layer.name}.*event_date.*source_table"):
        load_config(path)
    bad = [{"observed_event": layer.name, "event_date": "18 November"}]
    with pytest.raises(ConfigError, match="not an ISO date"):
        load_config(_write(tmp_path, labels__crisis__ems=bad))
