"""GPU readiness check: train a CLOSP config with AMP for a fixed number of steps and report.

    python benchmarks/gpu_check.py CORPUS [--out gpu-check.json] [--steps 40] [--batch-size 64]
    python benchmarks/gpu_check.py CORPUS --tiny      # CPU, closp-tiny-cnn, 3 steps (test suite)
    make gpu-check                                    # the demo corpus, closp-resnet50, CUDA

Two phases on the corpus's train split, with the training loop's own pieces (streams,
AdamW + one-cycle, ``train_step`` under autocast with the loss scaler): ``frozen`` (the
reference's warm-up: pretrained backbones and text transformer frozen) and ``unfrozen``
(everything trains). Per phase: samples/s after ``--warmup-steps``, the median step time
and the loss per step; peak GPU memory (CUDA) or peak process RSS (CPU). Then the
mixed-precision agreement on one fixed batch in eval mode: image and text embeddings and
the loss under fp32 against bf16 and fp16 autocast (max |diff|, lowest row cosine, loss
difference). Everything goes into one JSON file; nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from pipeline.model.closp import CLOSP, ClospBatch, device_for, grad_scaler
from pipeline.model.fit import train_step
from pipeline.model.options import TrainOptions
from pipeline.model.train import (
    DistInfo,
    build_training_model,
    make_optimizer,
    sensor_streams,
    warm_text_cache,
)
from pipeline.storage import write_json_atomic

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("corpus", type=Path, help="corpus directory (its train split is used)")
    p.add_argument("--out", type=Path, default=Path("gpu-check.json"), help="JSON report path")
    p.add_argument("--model-config", default="closp-resnet50")
    p.add_argument("--steps", type=int, default=40, help="timed steps per phase")
    p.add_argument("--warmup-steps", type=int, default=5, help="untimed steps per phase")
    p.add_argument("--batch-size", type=int, default=64, help="per sensor")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="train in fp32")
    p.add_argument("--weights", action="append", default=[], help="SENSOR=PATH backbone weights")
    p.add_argument("--threads", type=int, help="torch CPU threads (tiny mode: 1)")
    p.add_argument("--tiny", action="store_true", help="CPU smoke mode: tiny CNN, 3 steps")
    args = p.parse_args(argv)
    if args.tiny:
        args.model_config, args.device, args.steps, args.warmup_steps = (
            "closp-tiny-cnn",
            "cpu",
            3,
            1,
        )
        args.batch_size = min(args.batch_size, 4)
        args.threads = args.threads or 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    report = run_check(args)
    write_json_atomic(args.out, report)
    for phase, numbers in report["phases"].items():
        print(
            f"{phase}: {numbers['samples_per_s']:.1f} samples/s, "
            f"loss {numbers['loss'][0]:.3f} -> {numbers['loss'][-1]:.3f}"
        )
    print(f"peak memory {report['peak_memory_mb']:.0f} MB ({report['peak_memory_kind']})")
    for name, agreement in report["amp_agreement"].items():
        print(f"{name} vs fp32: {agreement}")
    print(f"report: {args.out}")
    return 0


def run_check(args: argparse.Namespace) -> dict[str, Any]:
    device = device_for(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as run_dir:
        options = TrainOptions(
            corpus=args.corpus.resolve(), run_dir=Path(run_dir), model_config=args.model_config,
            batch_size=args.batch_size, device=str(device), amp="on" if args.amp else "off",
            mlflow_uri="none", weights=dict(w.split("=", 1) for w in args.weights),
        )  # fmt: skip
        dist = DistInfo(0, 1, device)
        torch.manual_seed(0)
        model = build_training_model(options).to(device)
        streams = sensor_streams(options, dist)
        warm_text_cache(model, streams, dist)
        fixed = ClospBatch(**{s: stream.next_batch() for s, stream in streams.items()})
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        total = 2 * (args.steps + args.warmup_steps)
        parts = make_optimizer(model, options, total, grad_scaler(device, args.amp))
        phases = {}
        for phase in ("frozen", "unfrozen"):
            if phase == "unfrozen":
                model.set_frozen(False)
                model.train()
                parts = make_optimizer(model, options, total, parts.scaler)
            phases[phase] = time_phase(model, parts, streams, device, args)
        for stream in streams.values():
            stream.close()
        agreement = amp_agreement(model, fixed, device)
    return {
        "model_config": args.model_config,
        "corpus": str(args.corpus),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "tiny": bool(args.tiny),
        "cpu_threads": torch.get_num_threads(),
        "amp": bool(args.amp),
        "batch_size_per_sensor": args.batch_size,
        "sensors": list(streams),
        "phases": phases,
        **peak_memory(device),
        "amp_agreement": agreement,
    }


def time_phase(
    model: CLOSP,
    parts: Any,
    streams: dict[str, Any],
    device: torch.device,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """``--warmup-steps`` untimed, then ``--steps`` timed training steps."""
    losses, seconds, samples = [], [], 0
    for step in range(args.warmup_steps + args.steps):
        batch = ClospBatch(**{s: stream.next_batch() for s, stream in streams.items()})
        _sync(device)
        started = time.perf_counter()
        terms = train_step(model, model, parts, batch, device, args.amp)
        _sync(device)
        losses.append(round(terms["loss"], 5))
        if step >= args.warmup_steps:
            seconds.append(time.perf_counter() - started)
            samples += sum(len(part.captions) for part in (batch.s2, batch.s1) if part is not None)
    return {
        "steps": args.steps,
        "samples_per_s": round(samples / sum(seconds), 2),
        "median_step_s": round(statistics.median(seconds), 5),
        "loss": losses,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


@torch.no_grad()
def amp_agreement(model: CLOSP, batch: ClospBatch, device: torch.device) -> dict[str, Any]:
    """Embeddings and loss of one fixed batch under each autocast dtype against fp32."""
    model.eval()
    reference = _outputs(model, batch, device, None)
    result: dict[str, Any] = {}
    for name, dtype in AMP_DTYPES.items():
        try:
            outputs = _outputs(model, batch, device, dtype)
        except (RuntimeError, TypeError) as exc:  # dtype not supported by this device
            result[name] = {"supported": False, "error": str(exc).splitlines()[0][:200]}
            continue
        result[name] = {"supported": True, **_difference(reference, outputs)}
    return result


def _outputs(
    model: CLOSP, batch: ClospBatch, device: torch.device, dtype: torch.dtype | None
) -> dict[str, torch.Tensor]:
    context = (
        torch.autocast(device.type, dtype=dtype)
        if dtype
        else torch.autocast(device.type, enabled=False)
    )
    with context:
        out = {k: v.float() for k, v in model(batch).items()}
        for sensor in ("s2", "s1"):
            part = batch.sensor(sensor)
            if part is not None:
                out[f"image_{sensor}"] = model.encode_image(part.images, sensor).float()
                out[f"text_{sensor}"] = model.encode_text(part.captions).float()
    return out


def _difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    embeddings = [k for k in a if k.startswith(("image_", "text_"))]
    cosines = [torch.nn.functional.cosine_similarity(a[k], b[k], dim=-1).min() for k in embeddings]
    return {
        "max_abs_embedding_diff": round(
            max(float((a[k] - b[k]).abs().max()) for k in embeddings), 6
        ),
        "min_row_cosine": round(float(min(cosines)), 6),
        "loss_fp32": round(float(a["loss"]), 6),
        "loss_abs_diff": round(float((a["loss"] - b["loss"]).abs()), 6),
    }


def peak_memory(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {
            "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_memory_kind": "cuda max_memory_allocated",
        }
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_memory_mb": rss_kb / 1024, "peak_memory_kind": "cpu process max RSS"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    sys.exit(main())
