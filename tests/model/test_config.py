import json

import pytest

from pipeline.model.config import available_model_configs, load_model_config
from pipeline.model.errors import ConfigError


def test_shipped_configs_load():
    names = available_model_configs()
    assert {"closp-tiny-cnn", "closp-resnet50", "closp-vits16", "geoclosp-resnet50"} <= set(names)
    for name in names:
        config = load_model_config(name)
        assert config.s2.in_chans == 13 and config.s1.in_chans == 2 and config.embed_dim == 384


def test_vit_configs_resize_to_the_pretraining_size():
    config = load_model_config("closp-vits16")
    assert config.s2.input_size == config.s1.input_size == 224


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="closp-tiny-cnn"):
        load_model_config("closp-nope")


def write(tmp_path, **changes):
    raw = json.loads(json.dumps(_base()))
    for dotted, value in changes.items():
        section, _, key = dotted.partition("__")
        if key:
            raw[section][key] = value
        else:
            raw[section] = value
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(raw))
    return path


def _base():
    return {
        "s2": {"backbone": "tiny_cnn", "in_chans": 13, "weights": "w/s2.pth"},
        "s1": {"backbone": "tiny_cnn", "in_chans": 2},
    }


def test_path_config_resolves_weights_against_its_folder(tmp_path):
    config = load_model_config(write(tmp_path))
    assert config.name == "custom"
    assert config.s2.weights == tmp_path / "w" / "s2.pth"
    assert config.location is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"s2__in_chans": 12}, "set in_chans to 13"),
        ({"s1__backbone": "resnet18"}, "backbone 'resnet18' is unknown"),
        ({"s1__colour": "red"}, r"unknown key\(s\) \['colour'\]"),
        ({"text": {"pooling": "max"}}, "pooling 'max'"),
        ({"location": {"convention": "other"}}, "location.convention"),
    ],
)
def test_invalid_configs_name_the_key_and_the_fix(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        load_model_config(write(tmp_path, **changes))


def test_missing_sensor_block(tmp_path):
    path = tmp_path / "half.json"
    path.write_text(json.dumps({"s2": _base()["s2"]}))
    with pytest.raises(ConfigError, match="no 's1' encoder block"):
        load_model_config(path)
