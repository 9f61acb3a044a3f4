"""``--near`` at query time: a location prior for GeoCLOSP runs, a radius filter for CLOSP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.model.run import load_trained_model
from pipeline.model.search import load_index, search

PORTUGAL = (-8.18, 39.93)  # the tiny archive's wildfire AOI
EVERYWHERE_KM = 20_000.0


def keys(hits):
    return [hit.key for hit in hits]


def test_near_reranks_through_the_location_encoder_of_a_geoclosp_run(tiny_geo_run):
    index = load_index(tiny_geo_run)
    n = len(index.table)
    plain = search(tiny_geo_run, "crops", k=n)
    near = search(tiny_geo_run, "crops", k=n, near=PORTUGAL)
    assert len(near) == n  # a prior, not a filter: every chip is still ranked
    assert keys(near) != keys(plain)
    model = load_trained_model(tiny_geo_run)
    with torch.no_grad():
        text = model.encode_text(["crops"]).numpy()[0]
        place = model.encode_location(torch.tensor([PORTUGAL])).numpy()[0]
    expected = np.asarray(index.vectors) @ text + np.asarray(index.vectors) @ place
    by_key = dict(zip(index.table["key"], expected, strict=True))
    assert [hit.score for hit in near] == pytest.approx([by_key[k] for k in keys(near)], abs=1e-5)
    assert keys(search(tiny_geo_run, "crops", k=n, near=PORTUGAL, near_weight=0.0,
                       radius_km=EVERYWHERE_KM)) == keys(plain)  # fmt: skip


def test_near_only_filters_for_a_closp_run(tiny_run):
    n = len(load_index(tiny_run).table)
    plain = search(tiny_run, "crops", k=n)
    near = search(tiny_run, "crops", k=n, near=PORTUGAL, radius_km=EVERYWHERE_KM)
    assert keys(near) == keys(plain)
    assert [h.score for h in near] == pytest.approx([h.score for h in plain], abs=1e-6)
    close = search(tiny_run, "crops", k=n, near=PORTUGAL)  # default radius: 50 km
    assert 0 < len(close) < n and all(hit.distance_km <= 50 for hit in close)
    assert keys(close) == [k for k in keys(plain) if k in set(keys(close))]  # text order kept
