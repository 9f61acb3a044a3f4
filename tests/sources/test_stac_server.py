"""The demo build through a real STAC API (stac-fastapi-pgstac on PostgreSQL + PostGIS,
loaded by ``clm archive serve``'s code) gives exactly the corpus of the embedded source."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import requests

from pipeline.archive.stac_server import serve_archive
from pipeline.build import build
from pipeline.config import load_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgis() -> None:
    """PostGIS through the project's own setup command (installs it when missing)."""
    done = subprocess.run(
        ["make", "-s", "-C", str(PROJECT_ROOT), "stac-server-setup"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def stac_api(postgis, tiny_archive):
    with serve_archive(tiny_archive) as server:
        yield server
    assert not _database_exists(server.database)


def _database_exists(name: str) -> bool:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn:
        return bool(
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchall()
        )


def _corpus(config_path):
    out = build(load_config(config_path))
    assert out
    return load_config(config_path).output.dir


def test_the_api_serves_absolute_loopback_hrefs(stac_api):
    page = requests.post(f"{stac_api.url}/search", json={"limit": 1}, timeout=10).json()
    (item,) = page["features"]
    assert all(a["href"].startswith(stac_api.cog_url) for a in item["assets"].values())
    assert any(link["rel"] == "next" for link in page["links"])


def test_stac_api_build_equals_the_embedded_build(stac_api, tiny_archive, tmp_path, run_config):
    embedded = run_config(tmp_path / "a.yaml", tiny_archive, tmp_path / "a")
    via_api = run_config(
        tmp_path / "b.yaml",
        tiny_archive,
        tmp_path / "b",
        source={"kind": "stac_api", "url": stac_api.url, "profile": "clm-archive", "page_size": 3},
    )
    a, b = _corpus(embedded), _corpus(via_api)
    meta_a = pd.read_parquet(a / "metadata.parquet").sort_values("key")
    meta_b = pd.read_parquet(b / "metadata.parquet").sort_values("key")
    assert len(meta_a) > 0
    assert meta_a["key"].tolist() == meta_b["key"].tolist()
    assert meta_a["pixel_sha256"].tolist() == meta_b["pixel_sha256"].tolist()
    scenes_b = pd.read_parquet(b / "work" / "scenes.parquet")
    assert all(
        h.startswith("http://127.0.0.1")
        for h in scenes_b["assets"].str.extract(r'"href": "([^"]+)"')[0]
    )
