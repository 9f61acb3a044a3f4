"""``clm train`` options: parsed and validated once, at the edge, into ``TrainOptions``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.model.errors import ConfigError

SENSOR_CHOICES = ("s2", "s1")


@dataclass(frozen=True)
class TrainOptions:
    corpus: Path
    run_dir: Path
    model_config: str = "closp-tiny-cnn"
    sensors: tuple[str, ...] = SENSOR_CHOICES
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.01
    pct_start: float = 0.1
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    shuffle_buffer: int = 512
    prefetch: int = 2
    flips: bool = True
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    resume: str = "auto"
    stop_after: int | None = None
    mlflow_uri: str | None = None
    log_every: int = 10
    threads: int | None = None
    weights: dict[str, str] = field(default_factory=dict)


def parse_args(argv: Sequence[str] | None = None) -> TrainOptions:
    """Command-line options, validated into ``TrainOptions``."""
    p = argparse.ArgumentParser(prog="clm train", description="Train CLOSP on a corpus.")
    p.add_argument("corpus", type=Path, help="corpus directory (train split is used)")
    p.add_argument("--run-dir", type=Path, help="run folder (default: CORPUS/../model/NAME)")
    p.add_argument("--name", help="run name (default: CONFIG-SENSORS-seedN)")
    p.add_argument("--model-config", default="closp-tiny-cnn", help="config name or JSON path")
    p.add_argument("--sensors", default="s2,s1", help="sensors to train: s2,s1 | s1 | s2")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64, help="per sensor and process")
    p.add_argument("--lr", type=float, default=2e-3, help="one-cycle peak learning rate")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--pct-start", type=float, default=0.1, help="one-cycle warm-up fraction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--amp", default="auto", choices=("auto", "on", "off"), help="auto: on CUDA")
    p.add_argument("--shuffle-buffer", type=int, default=512)
    p.add_argument("--prefetch", type=int, default=2, help="batches read ahead per sensor (>= 1)")
    p.add_argument("--no-flips", dest="flips", action="store_false", help="no random flips")
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps (0: each epoch)")
    p.add_argument("--keep-checkpoints", type=int, default=2)
    p.add_argument("--resume", default="auto", help="auto | never | PATH to a checkpoint")
    p.add_argument("--stop-after", type=int, help="stop after this global step (resumable)")
    p.add_argument("--mlflow-uri", help="tracking URI (default SQLite beside the run; none)")
    p.add_argument("--log-every", type=int, default=10, help="steps between progress lines")
    p.add_argument("--threads", type=int, help="torch CPU threads per process")
    p.add_argument("--weights", action="append", default=[], help="SENSOR=PATH backbone weights")
    args = p.parse_args(argv)
    return options_from_args(args)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    sensors = tuple(s.strip() for s in args.sensors.split(",") if s.strip())
    if (
        not sensors
        or any(s not in SENSOR_CHOICES for s in sensors)
        or len(set(sensors)) < len(sensors)
    ):
        raise ConfigError(f"--sensors {args.sensors!r}: use s2,s1 or s1 or s2")
    for name in ("epochs", "batch_size", "log_every", "shuffle_buffer"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    weights = dict(w.split("=", 1) for w in args.weights if "=" in w)
    if len(weights) != len(args.weights) or set(weights) - {"s2", "s1", "location"}:
        raise ConfigError("--weights takes SENSOR=PATH with SENSOR s2, s1 or location")
    sensors = tuple(s for s in SENSOR_CHOICES if s in sensors)
    name = args.name or f"{Path(args.model_config).stem}-{'-'.join(sensors)}-seed{args.seed}"
    run_dir = args.run_dir or args.corpus.resolve().parent / "model" / name
    return TrainOptions(
        corpus=args.corpus.resolve(), run_dir=run_dir.resolve(), model_config=args.model_config, sensors=sensors,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, pct_start=args.pct_start, seed=args.seed,
        device=args.device, amp=args.amp, shuffle_buffer=args.shuffle_buffer, prefetch=args.prefetch, flips=args.flips,
        checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
        resume=args.resume, stop_after=args.stop_after, mlflow_uri=args.mlflow_uri,
        log_every=args.log_every, threads=args.threads, weights=weights,
    )  # fmt: skip
