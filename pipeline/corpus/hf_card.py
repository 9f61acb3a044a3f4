"""The dataset card (``README.md``) of the Hugging Face export, generated from the manifest.

The YAML header is what the Hub and ``datasets.load_dataset(<folder>)`` read: one config per
sensor with its ``data_files`` per split, ``dataset_info`` (features, split sizes) and the
licence; the body lists the upstream sources' licences and the attributions they require.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import yaml

from pipeline.corpus.webdataset import CAPTION_KEYS

SENSOR_BANDS = {"s2": 12, "s1": 2}
SENSOR_NAMES = {"s2": "Sentinel-2 L2A, 12 bands", "s1": "Sentinel-1 GRD, VV and VH in dB"}
YAML_DTYPES = {
    pa.string(): "string",
    pa.int64(): "int64",
    pa.float32(): "float32",
    pa.float64(): "float64",
}
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"))


def dataset_card(
    manifest: Mapping[str, Any],
    counts: Mapping[str, Mapping[str, int]],
    schema: pa.Schema,
    split_bytes: Mapping[str, Mapping[str, int]],
) -> str:
    """The card text: YAML header, then description, columns, licences and attributions."""
    header = {
        "license": "other",
        "license_name": "copernicus-and-upstream-terms",
        "license_link": "https://sentinels.copernicus.eu/documents/247904/690755/Sentinel_Data_Legal_Notice",
        "pretty_name": f"CrisisLandMark corpus {manifest.get('name', '')}".strip(),
        "task_categories": ["zero-shot-image-classification", "image-to-text"],
        "tags": ["remote-sensing", "sentinel-1", "sentinel-2", "crisis", "retrieval"],
        "size_categories": [_size_category(sum(sum(c.values()) for c in counts.values()))],
        "configs": [_config(sensor, counts[sensor], i == 0) for i, sensor in enumerate(counts)],
        "dataset_info": [
            _info(sensor, counts[sensor], split_bytes[sensor], schema) for sensor in counts
        ],
    }
    front = yaml.safe_dump(header, sort_keys=False, width=1000)
    return f"---\n{front}---\n\n{_body(manifest, counts)}"


def _size_category(total: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if total < limit), "100K<n<1M")


def _config(sensor: str, splits: Mapping[str, int], default: bool) -> dict[str, Any]:
    files = [{"split": s, "path": f"data/{sensor}/{s}-*.parquet"} for s in sorted(splits)]
    config: dict[str, Any] = {"config_name": sensor, "data_files": files}
    if default:
        config["default"] = True
    return config


def _info(
    sensor: str, splits: Mapping[str, int], sizes: Mapping[str, int], schema: pa.Schema
) -> dict[str, Any]:
    return {
        "config_name": sensor,
        "features": [{"name": f.name, **_yaml_type(f.type)} for f in schema],
        "splits": [
            {"name": s, "num_bytes": int(sizes[s]), "num_examples": int(n)}
            for s, n in sorted(splits.items())
        ],
    }


def _yaml_type(arrow: pa.DataType) -> dict[str, Any]:
    """A feature type as the card's YAML spells it (``sequence`` for lists, nested)."""
    if pa.types.is_list(arrow):
        inner = _yaml_type(arrow.value_type)
        return {"sequence": inner.get("dtype", inner)}
    return {"dtype": YAML_DTYPES[arrow]}


def _body(manifest: Mapping[str, Any], counts: Mapping[str, Mapping[str, int]]) -> str:
    rows = "\n".join(
        f"| `{s}` | {SENSOR_NAMES[s]} | {c.get('train', 0)} | {c.get('test', 0)} |"
        for s, c in counts.items()
    )
    captions = ", ".join(f"`caption_{k}`" for k in CAPTION_KEYS)
    software = manifest.get("software", {})
    return f"""# CrisisLandMark corpus

Sentinel-1 and Sentinel-2 chips (120 x 120 pixels at 10 m) paired with structured text
annotations of land cover, land use and crisis events, built by the CrisisLandMark builder
({software.get("package", "crisislandmark")} {software.get("version", "")}, config digest
`{manifest.get("config_digest", "")}`). Optical and SAR chips are unpaired: one config per sensor.

| config | sensor | train | test (retrieval corpus) |
|---|---|---|---|
{rows}

## Columns
- `image`: float32 `(bands, 120, 120)`: S2 L2A B01-B09, B8A, B11, B12 reflectance x 10000
  (divide by 10000 for model input); S1 VV, VH backscatter in dB.
- captions: {captions} (`""` when a chip has no such variant; `caption_reference` is the
  labels joined by ". ", as in the CrisisLandMark release).
- `labels` (reference label space: 9 Dynamic World classes plus flooded area, earthquake
  damage, burned area), `labels_land_cover`, `labels_land_use` (CORINE level-3 codes),
  `labels_crisis`.
- `key`, `sensor`, `split`, `datetime` (acquisition, ISO 8601 UTC), `lon`, `lat` (chip
  centre), `bbox` (lon/lat), `epsg` (chip UTM zone), `place`, `country`, `item_id`,
  `collection`.

```python
import datasets
ds = datasets.load_dataset("parquet", data_files={{"train": "data/s2/train-*.parquet"}})
image = ds.with_format("numpy")["train"][0]["image"]  # (12, 120, 120) float32
```

## Licences and attributions
{_attributions(manifest)}
"""


def _attributions(manifest: Mapping[str, Any]) -> str:
    """One line per upstream source the manifest's recipe used."""
    config = manifest.get("config", {})
    search, labels = config.get("search", {}), config.get("labels", {})
    years = "-".join(sorted({str(search.get(k, ""))[:4] for k in ("start", "end")} - {""}))
    lines = []
    if any("sentinel" in c for c in search.get("collections", [])):
        lines.append(
            f"- Contains modified Copernicus Sentinel data {years} (Copernicus Sentinel Data "
            "Terms: free use, with this attribution)."
        )
    if labels.get("corine"):
        lines.append(
            "- CORINE Land Cover 2018: (c) European Union, Copernicus Land Monitoring Service, "
            "European Environment Agency (full, free and open access)."
        )
    if labels.get("dynamic_world") or labels.get("dynamic_world_scenes"):
        lines.append("- Dynamic World: Google and World Resources Institute, CC-BY-4.0.")
    if labels.get("worldcover"):
        lines.append("- ESA WorldCover: (c) ESA WorldCover project, CC-BY-4.0.")
    if labels.get("ems"):
        lines.append(
            "- Copernicus Emergency Management Service rapid mapping products: "
            "(c) European Union (Copernicus EMS data policy, attribution required)."
        )
    if labels.get("gdacs"):
        lines.append("- GDACS alerts: European Commission JRC and UN OCHA (GDACS terms of use).")
    lines.append(
        "- The corpus as a whole is released under the terms above (`license: other`): keep "
        "every attribution when you redistribute it or a derivative."
    )
    return "\n".join(lines)
