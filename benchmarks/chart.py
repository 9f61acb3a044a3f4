"""The benchmark chart (PNG), drawn with Pillow (already a dependency of the product):
the headline ratio on top, then chips/s, peak memory, bytes per chip and the build's stage
breakdown, each variant at each multiplier."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from pipeline.storage import atomic_path

W, H = 1600, 1180
PANEL_W, PANEL_H = 780, 470
SERIES = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75))
STAGE_COLOURS = (
    (31, 119, 180),
    (214, 39, 40),
    (255, 127, 14),
    (44, 160, 44),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
)
GREY, BLACK, RED, GREEN = (200, 200, 200), (20, 20, 20), (200, 30, 30), (30, 140, 50)


def _font(size: int) -> Any:
    return ImageFont.load_default(size=size)


def draw_chart(report: dict[str, Any], out: Path) -> Path:
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    _banner(d, report)
    rows = report["runs"]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    mults = sorted({r["multiplier"] for r in rows})
    value = _grid(rows, variants, mults)
    _bars(d, (10, 150), "chips/s (log scale)", variants, mults, value("chips_per_s"), log=True)
    _bars(d, (810, 150), "peak RSS of the process tree (MB)", variants, mults, value("peak_rss_mb"))
    ratio, requests = value("bytes_vs_file_size"), value("requests_per_chip")
    tags = [
        [
            None if r is None or q is None else f"{r:.2f}x\n{q:.2f}"
            for r, q in zip(rs, qs, strict=True)
        ]
        for rs, qs in zip(ratio, requests, strict=True)
    ]
    title = "MB fetched per chip (labels: bytes / file size, GET requests per chip)"
    _bars(d, (10, 690), title, variants, mults, value("bytes_per_chip", 1e-6), labels=tags)
    _stages(d, (810, 690), rows)
    with atomic_path(out) as tmp:
        img.save(tmp, format="PNG")
    return out


def _grid(
    rows: Sequence[dict[str, Any]], variants: Sequence[str], mults: Sequence[int]
) -> Callable[..., list[list[float | None]]]:
    def value(field: str, scale: float = 1.0) -> list[list[float | None]]:
        table = {(r["variant"], r["multiplier"]): r.get(field) for r in rows}
        return [
            [None if table.get((v, m)) is None else table[(v, m)] * scale for m in mults]
            for v in variants
        ]

    return value


def _banner(d: ImageDraw.ImageDraw, report: dict[str, Any]) -> None:
    head, settings = report["headline"], report["settings"]
    ratio = head["build_vs_reader_chips_per_s"]
    ok = head["meets_target"]
    text = (
        f"whole build / reader-only chips/s = {ratio:.3f}x at {head['at_multiplier']}x scenes "
        f"(target >= {head['target']}x)"
        if ratio is not None
        else "whole build / reader-only chips/s: not measured"
    )
    d.text((20, 14), text, fill=GREEN if ok else RED, font=_font(34))
    ordered = sorted(head["by_multiplier"].items(), key=lambda kv: int(kv[0][1:]))
    by_m = ", ".join(f"{k}: {v:.3f}" for k, v in ordered)
    identical = (
        "all arrays identical" if report["all_arrays_identical"] else "ARRAYS DIFFER (see JSON)"
    )
    growth = head.get("build_peak_rss_growth")
    sub = (
        f"by multiplier {by_m}  |  build peak RSS growth {growth}x (target <= "
        f"{head['memory_target']})  |  {identical}"
    )
    d.text((20, 62), sub, fill=BLACK, font=_font(20))
    info = (
        f"{settings['scale']} archive, {settings['base_scenes']} base scenes x "
        f"{settings['multipliers']}, {settings['workers']} worker processes, "
        f"{settings['machine']['cpus']} CPUs; served over a byte-counting loopback range server"
    )
    d.text((20, 95), info, fill=(90, 90, 90), font=_font(18))


def _bars(
    d: ImageDraw.ImageDraw,
    origin: tuple[int, int],
    title: str,
    variants: Sequence[str],
    mults: Sequence[int],
    values: list[list[float | None]],
    log: bool = False,
    labels: list[list[str | None]] | None = None,
) -> None:
    """Grouped bars: one group per variant, one bar per multiplier."""
    x0, y0 = origin
    d.text((x0 + 10, y0), title, fill=BLACK, font=_font(22))
    left, top, bottom = x0 + 70, y0 + 40, y0 + PANEL_H - 70
    right = x0 + PANEL_W - 10
    flat = [v for vs in values for v in vs if v]
    if not flat:
        return
    scale = _log_scale(flat, top, bottom) if log else _lin_scale(flat, top, bottom)
    _axis(d, (left, top, right, bottom), scale)
    to_y = scale[0]
    group_w = (right - left) / len(variants)
    bar_w = min(36, (group_w - 16) / len(mults))
    for i, variant in enumerate(variants):
        gx = left + i * group_w + (group_w - bar_w * len(mults)) / 2
        for j, v in enumerate(values[i]):
            if v is None:
                continue
            bx = gx + j * bar_w
            d.rectangle([bx, to_y(v), bx + bar_w - 3, bottom], fill=SERIES[j % len(SERIES)])
            tag = labels[i][j] if labels else _short(v)
            if tag is not None:
                lines = tag.count("\n") + 1
                d.multiline_text((bx, to_y(v) - 15 * lines), tag, fill=BLACK, font=_font(12))
        d.text(
            (left + i * group_w + 4, bottom + 8),
            variant.replace("_", " "),
            fill=BLACK,
            font=_font(15),
        )
    for j, m in enumerate(mults):
        lx = left + 10 + j * 120
        d.rectangle([lx, bottom + 36, lx + 14, bottom + 50], fill=SERIES[j % len(SERIES)])
        d.text((lx + 18, bottom + 34), f"{m}x scenes", fill=BLACK, font=_font(14))


Scale = tuple[Callable[[float], float], list[float]]  # value -> y, tick values


def _lin_scale(values: Sequence[float], top: int, bottom: int) -> Scale:
    hi = max(values) * 1.12
    raw = hi / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(k * mag for k in (1, 2, 5, 10) if k * mag >= raw)
    ticks = [step * k for k in range(1, int(hi / step) + 1)]
    return (lambda v: bottom - (bottom - top) * (v / hi)), ticks


def _log_scale(values: Sequence[float], top: int, bottom: int) -> Scale:
    lo_exp = math.floor(math.log10(min(values)))
    hi_exp = math.ceil(math.log10(max(values) * 1.5))
    span = hi_exp - lo_exp
    ticks = [10.0**k for k in range(lo_exp, hi_exp + 1)]
    return (
        lambda v: bottom - (bottom - top) * (math.log10(max(v, 10.0**lo_exp)) - lo_exp) / span
    ), ticks


def _axis(d: ImageDraw.ImageDraw, box: tuple[float, float, float, float], scale: Scale) -> None:
    left, top, right, bottom = box
    d.line([left, top, left, bottom, right, bottom], fill=BLACK, width=2)
    to_y, ticks = scale
    for t in ticks:
        y = to_y(t)
        d.line([left, y, right, y], fill=GREY)
        d.text((left - 62, y - 8), _short(t), fill=BLACK, font=_font(14))


def _short(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 1:
        return f"{v:.1f}"
    return f"{v:.3g}"


def _stages(
    d: ImageDraw.ImageDraw, origin: tuple[int, int], rows: Sequence[dict[str, Any]]
) -> None:
    """The build's wall time by stage, one stacked bar per multiplier."""
    x0, y0 = origin
    builds = sorted((r for r in rows if r["variant"] == "build"), key=lambda r: r["multiplier"])
    d.text((x0 + 10, y0), "whole build: share of wall time by stage", fill=BLACK, font=_font(22))
    if not builds:
        return
    stages = builds[-1]["stages"]["order"]
    left, right = x0 + 80, x0 + PANEL_W - 20
    for i, run in enumerate(builds):
        y = y0 + 50 + i * 60
        d.text((x0 + 10, y + 10), f"{run['multiplier']}x", fill=BLACK, font=_font(18))
        x = float(left)
        for k, stage in enumerate(stages):
            share = run["stages"]["share"].get(stage, 0.0)
            w = (right - left) * share
            d.rectangle([x, y, x + w, y + 40], fill=STAGE_COLOURS[k % len(STAGE_COLOURS)])
            if share >= 0.06:
                d.text((x + 4, y + 12), f"{share:.0%}", fill="white", font=_font(14))
            x += w
    ly = y0 + 60 + len(builds) * 60
    last = builds[-1]["stages"]["seconds"]
    for k, stage in enumerate(stages):
        lx, row_y = x0 + 20 + (k % 3) * 250, ly + (k // 3) * 26
        d.rectangle([lx, row_y, lx + 14, row_y + 14], fill=STAGE_COLOURS[k % len(STAGE_COLOURS)])
        d.text((lx + 20, row_y - 2), f"{stage} ({last[stage]:.1f} s)", fill=BLACK, font=_font(15))
    views = builds[-1]["stages"].get("views_seconds") or {}
    if views:
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in views.items())
        d.text(
            (x0 + 20, ly + 4 * 26),
            f"views at {builds[-1]['multiplier']}x: {parts}",
            fill=BLACK,
            font=_font(15),
        )
