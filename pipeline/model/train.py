"""Train CLOSP on a corpus: ``clm train``, ``python -m pipeline.model.train``, or under torchrun.

    prepare_run -> build_training_model -> sensor_streams -> warm_text_cache
    -> make_optimizer -> resume -> loop of train_step (one S2 + one S1 batch per step;
    the text warm-up switch; checkpoints, progress, MLflow) -> finish (model.pt, metrics.json)

Text warm-up (``text.unfreeze_after_steps`` / ``_epochs`` in the model config): the text
transformer stays frozen (cached features) until that global step, then trains with its
own parameter groups (peak learning rate ``text.lr``, default ``--lr``) on the same
one-cycle schedule. The phase follows from the step, so a resumed run is in the right one.

Each step takes one batch from every trained sensor's stream (the reference interleaves
one loader per sensor); an epoch is one pass of the largest sensor, smaller ones cycle.
DistributedDataParallel runs when started by torchrun (``WORLD_SIZE`` > 1): gloo on CPU,
NCCL on CUDA; every rank reads its own share of the samples.

    torchrun --nproc-per-node 2 -m pipeline.model.train CORPUS --run-dir RUN
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist

from pipeline.corpus.webdataset import ensure_webdataset, read_webdataset_index
from pipeline.errors import PipelineError
from pipeline.model.channels import SENSORS
from pipeline.model.checkpoint import TrainingParts, last_checkpoint, load_checkpoint
from pipeline.model.checkpoint import save_checkpoint as write_checkpoint
from pipeline.model.closp import CLOSP, ClospBatch, device_for, grad_scaler
from pipeline.model.config import text_unfreeze_step
from pipeline.model.data import PrefetchingStream, SensorStream, spec_captions, stream_specs
from pipeline.model.errors import ConfigError
from pipeline.model.fit import EpochLog, train_step
from pipeline.model.options import TrainOptions, parse_args
from pipeline.model.run import (
    INDEX_DIR,
    METRICS,
    MLFLOW_FILE,
    MODEL_FILE,
    TRAIN_CONFIG,
    save_model,
    update_metrics,
    write_model_config,
)
from pipeline.model.tracking import Progress, open_tracker
from pipeline.storage import write_json_atomic

FINGERPRINT = (
    "model_config", "sensors", "epochs", "batch_size", "lr", "weight_decay", "pct_start",
    "seed", "shuffle_buffer", "flips", "weights", "world_size", "data",
)  # fmt: skip


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for a pipeline error)."""
    try:
        train(parse_args(argv))
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def train(options: TrainOptions) -> Path:
    """Train (or resume, or find finished) the run in ``options.run_dir``; returns that folder."""
    dist = start_distributed(options)
    try:
        return _train(options, dist)
    finally:
        if dist.world_size > 1:
            torch_dist.destroy_process_group()


def _train(options: TrainOptions, dist: DistInfo) -> Path:
    if dist.main:
        ensure_webdataset(options.corpus)
    barrier(dist)
    fingerprint = prepare_run(options, dist)
    torch.manual_seed(options.seed)
    model = build_training_model(options).to(dist.device)
    streams = sensor_streams(options, dist)
    steps_per_epoch = max(stream.batches_per_pass for stream in streams.values())
    unfreeze_at = text_unfreeze_step(model.config.text, steps_per_epoch)
    if unfreeze_at != 0:
        warm_text_cache(model, streams, dist)
    total = steps_per_epoch * options.epochs
    amp = use_amp(options.amp, dist.device)
    parts = make_optimizer(model, options, total, grad_scaler(dist.device, amp))
    step, data = resume(options, parts, streams)
    log = EpochLog.from_state(data.get("log"), steps_per_epoch)
    tracker = open_tracker(options.mlflow_uri, options.run_dir, enabled=dist.main)
    tracker.log_params({**fingerprint, "total_steps": total, "device": str(dist.device)})
    net: torch.nn.Module = model
    if dist.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    progress = Progress(total, steps_per_epoch, options.log_every, enabled=dist.main)
    started, start_step = time.perf_counter(), step
    while step < total and (options.stop_after is None or step < options.stop_after):
        if unfreeze_at is not None and step >= unfreeze_at and model.text_encoder.frozen:
            net = unfreeze_text(model, dist, step)
        batch = ClospBatch(**{s: stream.next_batch() for s, stream in streams.items()})
        lr = parts.optimizer.param_groups[0]["lr"]
        terms = train_step(net, model, parts, batch, dist.device, amp)
        step += 1
        samples = sum(len(part.captions) for part in streams_batch(batch)) * dist.world_size
        metrics = log.add(step, terms, samples)
        progress.update(step, samples, terms, lr)
        if dist.main and (step % options.log_every == 0 or step == total or metrics):
            tracker.log_metrics({**terms, "lr": lr, **metrics}, step)
        if dist.main and checkpoint_due(step, steps_per_epoch, total, options):
            data = {"streams": {s: st.state() for s, st in streams.items()}, "log": log.state()}
            write_checkpoint(options.run_dir, parts, step, data, options.keep_checkpoints)
    for stream in streams.values():
        stream.close()
    barrier(dist)
    if dist.main and step >= total and (step > start_step or not has_model(options.run_dir)):
        seconds = time.perf_counter() - started
        finish(options, model, log, step, seconds, step - start_step, dist, unfreeze_at)
    tracker.close()
    return options.run_dir


def unfreeze_text(model: CLOSP, dist: DistInfo, step: int) -> torch.nn.Module:
    """End the text warm-up: the transformer trains from here on (a new DDP wrapper, since
    DistributedDataParallel registers only the parameters trainable when it is built)."""
    model.text_encoder.set_frozen(False)
    model.text_encoder.train(model.training)
    if dist.main:
        print(f"step {step}: text encoder unfrozen", file=sys.stderr)
    if dist.world_size > 1:
        return torch.nn.parallel.DistributedDataParallel(model)
    return model


def start_distributed(options: TrainOptions) -> DistInfo:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (gloo on CPU, NCCL on CUDA)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = device_for(options.device)
    if options.threads:
        torch.set_num_threads(options.threads)
    if world_size == 1:
        return DistInfo(0, 1, device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(torch_dist.get_rank(), world_size, device)


def barrier(dist: DistInfo) -> None:
    if dist.world_size > 1:
        torch_dist.barrier()


def prepare_run(options: TrainOptions, dist: DistInfo) -> dict[str, Any]:
    """Check a resumable run has the same settings, then write the config copies."""
    fingerprint = run_fingerprint(options, dist)
    saved = options.run_dir / TRAIN_CONFIG
    if dist.main and options.resume == "never":
        clear_run(options.run_dir)
    elif options.resume == "auto" and saved.is_file() and last_checkpoint(options.run_dir):
        previous = json.loads(saved.read_text()).get("fingerprint", {})
        changed = {k: (previous.get(k), v) for k, v in fingerprint.items() if previous.get(k) != v}
        if changed:
            raise ConfigError(
                f"{options.run_dir} holds a run with other settings {changed} (old, new); "
                "use another --run-dir, or --resume never to start it over"
            )
    barrier(dist)
    if dist.main:
        write_model_config(options.run_dir, options.model_config)
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()}
        write_json_atomic(saved, {"options": settings, "fingerprint": fingerprint})
    barrier(dist)
    return fingerprint


def run_fingerprint(options: TrainOptions, dist: DistInfo) -> dict[str, Any]:
    shards = read_webdataset_index(options.corpus)
    data = [s["sha256"] for s in shards if s["split"] == "train" and s["sensor"] in options.sensors]
    values = {**asdict(options), "world_size": dist.world_size, "data": data}
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if k in FINGERPRINT
    }


def clear_run(run_dir: Path) -> None:
    """Remove a previous run's outputs (``--resume never``)."""
    for name in ("checkpoints", INDEX_DIR):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for name in (MODEL_FILE, METRICS, MLFLOW_FILE):
        (run_dir / name).unlink(missing_ok=True)


def build_training_model(options: TrainOptions) -> CLOSP:
    """The model of ``options.model_config``; encoders of untrained sensors stay fixed."""
    from pipeline.model.closp import build_model

    model = build_model(options.model_config, weights=options.weights or None)
    for sensor in SENSORS:
        if sensor not in options.sensors:
            model.image_encoder(sensor).requires_grad_(False)
    return model.train()


def sensor_streams(options: TrainOptions, dist: DistInfo) -> dict[str, PrefetchingStream]:
    specs = stream_specs(
        options.corpus, options.sensors, "train", seed=options.seed, rank=dist.rank,
        world_size=dist.world_size, shuffle_buffer=options.shuffle_buffer, flips=options.flips,
    )  # fmt: skip
    return {
        s: PrefetchingStream(SensorStream(spec, options.batch_size), options.prefetch)
        for s, spec in specs.items()
    }


def warm_text_cache(model: CLOSP, streams: dict[str, PrefetchingStream], dist: DistInfo) -> None:
    """Encode every training caption once, up front, while the text transformer is frozen."""
    captions = [c for stream in streams.values() for c in spec_captions(stream.spec)]
    started = time.perf_counter()
    count = model.text_encoder.warm_cache(captions)
    if count and dist.main:
        print(
            f"encoded {count} distinct training captions in {time.perf_counter() - started:.0f}s",
            file=sys.stderr,
        )


def use_amp(setting: str, device: torch.device) -> bool:
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def make_optimizer(
    model: CLOSP, options: TrainOptions, total_steps: int, scaler: torch.amp.GradScaler
) -> TrainingParts:
    """AdamW (no weight decay on biases, norms and the logit scale) with a one-cycle schedule.

    A text transformer that trains at some point (not frozen, or after a warm-up) gets its
    own two groups with peak ``text.lr``; frozen, its parameters have no gradients and
    AdamW leaves them alone."""
    text = model.config.text
    transformer = list(model.text_encoder.transformer.parameters())
    in_text = {id(p) for p in transformer}
    text_trains = (
        not text.freeze
        or text_unfreeze_step(text, 1) is not None
        or any(p.requires_grad for p in transformer)
    )
    main = [p for p in model.parameters() if p.requires_grad and id(p) not in in_text]
    groups = _decay_groups(main, options.weight_decay, options.lr)
    if text_trains:
        groups += _decay_groups(transformer, options.weight_decay, text.lr or options.lr)
    optimizer = torch.optim.AdamW(groups, lr=options.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=[group["lr"] for group in groups],
        total_steps=max(total_steps, 4),  # one-cycle needs >= 2 warm-up steps
        pct_start=min(max(options.pct_start, 2 / max(total_steps, 4)), 0.5),
    )
    return TrainingParts(model, optimizer, scheduler, scaler)


def _decay_groups(
    params: list[torch.nn.Parameter], weight_decay: float, lr: float
) -> list[dict[str, Any]]:
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay, "lr": lr},
        {"params": [p for p in params if p.ndim < 2], "lr": lr},
    ]


def resume(
    options: TrainOptions, parts: TrainingParts, streams: dict[str, PrefetchingStream]
) -> tuple[int, dict[str, Any]]:
    """(global step, saved extras) from the checkpoint ``--resume`` names, or (0, {})."""
    if options.resume == "never":
        return 0, {}
    path = last_checkpoint(options.run_dir) if options.resume == "auto" else Path(options.resume)
    if path is None:
        return 0, {}
    step, data = load_checkpoint(path, parts)
    for sensor, stream in streams.items():
        stream.restore(data["streams"][sensor])
    print(f"resumed from {path} at step {step}", file=sys.stderr)
    return step, data


def checkpoint_due(step: int, steps_per_epoch: int, total: int, options: TrainOptions) -> bool:
    every = options.checkpoint_every
    return (
        step == total
        or step % steps_per_epoch == 0
        or (every > 0 and step % every == 0)
        or step == options.stop_after
    )


def has_model(run_dir: Path) -> bool:
    return (run_dir / MODEL_FILE).is_file()


def streams_batch(batch: ClospBatch) -> list[Any]:
    return [part for part in (batch.s2, batch.s1) if part is not None]


def finish(
    options: TrainOptions,
    model: CLOSP,
    log: EpochLog,
    step: int,
    seconds: float,
    steps_run: int,
    dist: DistInfo,
    unfreeze_at: int | None = None,
) -> None:
    """Write ``model.pt`` and the ``train`` section of ``metrics.json``."""
    save_model(options.run_dir, model, step)
    summary = {
        **log.summary(),
        "steps": step,
        "epochs": options.epochs,
        "sensors": list(options.sensors),
        "world_size": dist.world_size,
        "device": str(dist.device),
        "seconds_this_session": round(seconds, 2),
        "steps_this_session": steps_run,
        "logit_scale": float(model.logit_scale().detach()),
        "text_unfrozen_at_step": unfreeze_at,
    }
    update_metrics(options.run_dir, "train", summary)
    print(f"trained {options.run_dir}: {step} steps, final loss {log.last_loss():.4f}")


if __name__ == "__main__":
    sys.exit(main())
