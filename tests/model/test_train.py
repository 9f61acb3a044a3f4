"""Training: in-process smoke run, bit-identical resume, settings checks, MLflow, DDP."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from pipeline.model.run import METRICS, MODEL_FILE, TRAIN_CONFIG
from pipeline.model.train import main, parse_args


def weights(run_dir):
    return torch.load(run_dir / MODEL_FILE, weights_only=True)["model"]


def test_main_trains_in_process(tiny_run, capsys):
    metrics = json.loads((tiny_run / METRICS).read_text())["train"]
    assert metrics["steps"] == 2 and metrics["sensors"] == ["s2", "s1"]
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert {"loss", "loss_s2", "loss_s1"} <= set(metrics["final"])
    assert (tiny_run / "checkpoints" / "last.pt").is_file()
    assert json.loads((tiny_run / "model-config.json").read_text())["name"] == "closp-tiny-cnn"
    state = weights(tiny_run)
    assert not any(k.startswith("text_encoder.transformer.") for k in state)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_corpus, tmp_path, train_argv):
    # batches of 2: 3 steps per epoch (S1 has 7 chips, S2 4 and cycles); stop mid-epoch
    extra = ("--epochs", "2", "--seed", "3", "--batch-size", "2")
    assert main(train_argv(tiny_corpus, tmp_path / "full", *extra)) == 0
    assert main(train_argv(tiny_corpus, tmp_path / "cut", *extra, "--stop-after", "2")) == 0
    assert not (tmp_path / "cut" / MODEL_FILE).exists()
    assert main(train_argv(tiny_corpus, tmp_path / "cut", *extra)) == 0
    full, resumed = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    history = json.loads((tmp_path / "cut" / METRICS).read_text())["train"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_a_finished_run_is_not_trained_again(tiny_run, tiny_corpus, capsys, train_argv):
    before = (tiny_run / MODEL_FILE).stat().st_mtime_ns
    assert main(train_argv(tiny_corpus, tiny_run)) == 0
    assert (tiny_run / MODEL_FILE).stat().st_mtime_ns == before


def test_changed_settings_do_not_resume_silently(tiny_run, tiny_corpus, capsys, train_argv):
    assert main(train_argv(tiny_corpus, tiny_run, "--lr", "0.5")) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "--resume never" in err


def test_s1_only_training_leaves_the_s2_encoder_untouched(tiny_corpus, tmp_path, train_argv):
    run = tmp_path / "s1"
    assert main(train_argv(tiny_corpus, run, "--sensors", "s1", "--epochs", "1")) == 0
    metrics = json.loads((run / METRICS).read_text())["train"]
    assert metrics["sensors"] == ["s1"] and "loss_s2" not in metrics["final"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sensors", "s3"], "--sensors"),
        (["--epochs", "0"], "--epochs"),
        (["--weights", "s2"], "--weights"),
    ],
)
def test_bad_options_are_clear_errors(tiny_corpus, tmp_path, capsys, argv, message):
    assert main([str(tiny_corpus), "--run-dir", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_default_run_dir_is_beside_the_corpus(tmp_path):
    options = parse_args([str(tmp_path / "corpus"), "--sensors", "s1"])
    assert options.run_dir == (tmp_path / "model" / "closp-tiny-cnn-s1-seed0").resolve()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # MLflow's SQLAlchemy store
def test_metrics_go_to_mlflow(tiny_corpus, tmp_path, train_argv):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = tmp_path / "tracked"
    argv = [*train_argv(tiny_corpus, run, "--epochs", "1")]
    argv[argv.index("--mlflow-uri") + 1] = uri
    assert main(argv) == 0
    saved = json.loads((run / "mlflow.json").read_text())
    data = mlflow.MlflowClient(tracking_uri=uri).get_run(saved["run_id"]).data
    assert "loss" in data.metrics and data.params["model_config"] == "closp-tiny-cnn"


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tiny_corpus, tmp_path, train_argv):
    """torchrun, gloo backend, two processes, one epoch (each rank reads half the samples)."""
    run = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--standalone", "--nproc-per-node", "2", "-m", "pipeline.model.train",
        *train_argv(tiny_corpus, run, "--epochs", "1", "--batch-size", "2", "--threads", "1"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / METRICS).read_text())["train"]
    assert metrics["world_size"] == 2
    assert json.loads((run / TRAIN_CONFIG).read_text())["fingerprint"]["world_size"] == 2


def test_geoclosp_trains_with_chip_locations(tiny_corpus, tmp_path, train_argv):
    run = tmp_path / "geo"
    argv = train_argv(tiny_corpus, run, "--model-config", "geoclosp-tiny-cnn", "--epochs", "1")
    assert main(argv) == 0
    final = json.loads((run / METRICS).read_text())["train"]["final"]
    assert final["loss_geo"] > 0
