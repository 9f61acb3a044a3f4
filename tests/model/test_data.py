"""Sensor streams over WebDataset shards: deterministic, resumable, split across ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.model.channels import S1_NAN_FILL_DB, s1_to_model
from pipeline.model.data import (
    PrefetchingStream,
    SensorStream,
    caption_variants,
    iter_pass,
    mask_filled_bands,
    stream_specs,
)
from pipeline.model.errors import ConfigError


def keys_of(spec, pass_index=0):
    return [sample.key for sample in iter_pass(spec, pass_index)]


def test_a_pass_visits_every_sample_once_in_a_seeded_order(tiny_corpus):
    spec = stream_specs(tiny_corpus, ["s1"], shuffle_buffer=3)["s1"]
    first, again, other = keys_of(spec), keys_of(spec), keys_of(spec, pass_index=1)
    assert len(first) == spec.count == len(set(first))
    assert first == again
    assert sorted(first) == sorted(other) and first != other


def test_ranks_get_disjoint_equal_shares(tiny_corpus):
    shares = [
        keys_of(stream_specs(tiny_corpus, ["s1"], rank=r, world_size=2)["s1"]) for r in (0, 1)
    ]
    assert len(shares[0]) == len(shares[1]) == 7 // 2
    assert not set(shares[0]) & set(shares[1])


def test_restored_stream_continues_exactly(tiny_corpus):
    spec = stream_specs(tiny_corpus, ["s1"], seed=5, shuffle_buffer=4)["s1"]
    straight = SensorStream(spec, batch_size=3)
    batches = [straight.next_batch() for _ in range(5)]
    resumed = SensorStream(spec, batch_size=3)
    cut = SensorStream(spec, batch_size=3)
    cut.next_batch(), cut.next_batch()
    resumed.restore(cut.state())
    for expected in batches[2:]:
        got = resumed.next_batch()
        assert torch.equal(got.images, expected.images)
        assert list(got.captions) == list(expected.captions)
        assert torch.equal(got.lonlat, expected.lonlat)
    assert straight.state()["pass"] == 2  # 7 chips, batches of 3: two per pass


def test_batches_hold_corpus_chips_and_caption_variants(tiny_corpus):
    spec = stream_specs(tiny_corpus, ["s2"], shuffle_buffer=2)["s2"]
    batch = SensorStream(spec, batch_size=64).next_batch()
    assert batch.images.shape == (spec.count, 12, 120, 120)
    assert batch.images.dtype == torch.float32
    assert batch.lonlat.shape == (spec.count, 2)
    assert all(isinstance(c, str) and c for c in batch.captions)


def test_caption_variants_are_distinct_and_ordered():
    record = {"captions": {"sentence": "A field.", "reference": "crops", "x": "crops"}}
    assert caption_variants(record) == ["crops", "A field."]
    assert caption_variants({"captions": {}, "labels": ["water", "built"]}) == ["built. water"]


def test_a_sensor_without_training_chips_is_an_error(tiny_corpus):
    with pytest.raises(ConfigError, match="no s1 chips in the 'nope' split"):
        stream_specs(tiny_corpus, ["s1"], split="nope")


def test_prefetching_gives_the_same_batches_and_positions(tiny_corpus):
    spec = stream_specs(tiny_corpus, ["s1"], seed=2, shuffle_buffer=4)["s1"]
    plain = SensorStream(spec, batch_size=3)
    ahead = PrefetchingStream(SensorStream(spec, batch_size=3), depth=2)
    for _ in range(3):
        expected, got = plain.next_batch(), ahead.next_batch()
        assert torch.equal(expected.images, got.images)
        assert ahead.state() == plain.state()
    saved = ahead.state()
    following = ahead.next_batch()
    ahead.restore(saved)
    assert torch.equal(ahead.next_batch().images, following.images)
    ahead.close()
    assert ahead.state() == {"pass": 1, "offset": 6}


def test_a_filled_s1_band_reaches_the_model_as_missing_not_as_dark_backscatter():
    """The polarisation policy fills a missing channel with -50 dB (the corpus nodata) and
    flags it; the loader turns it to NaN, which the model input treats as missing."""
    image = np.stack([np.full((4, 4), -12.0), np.full((4, 4), -50.0)]).astype(np.float32)
    record = {"sensor": {"bands": ["VV", "VH"], "filled_bands": ["VH"]}}
    masked = mask_filled_bands(image, record)
    assert np.isnan(masked[1]).all() and (masked[0] == -12.0).all()
    assert (image[1] == -50.0).all()  # the stored chip is untouched
    x = s1_to_model(torch.from_numpy(masked[None]))
    assert torch.all(x[0, 1] == S1_NAN_FILL_DB) and torch.all(x[0, 0] == -12.0)
    plain = {"sensor": {"bands": ["VV", "VH"]}}
    assert mask_filled_bands(image, plain) is image
