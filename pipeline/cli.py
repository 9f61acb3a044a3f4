"""The ``clm`` command line: thin wrappers over the same stage functions the DAGs call."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.errors import PipelineError

app = typer.Typer(
    help="Build CrisisLandMark-style Sentinel-1/2 text-image corpora.", no_args_is_help=True
)
archive_app = typer.Typer(help="The embedded demo archive.", no_args_is_help=True)
app.add_typer(archive_app, name="archive")

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML run config")]
ArchiveOpt = Annotated[Path | None, typer.Option(help="archive directory (overrides `archive:`)")]
OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="corpus directory (overrides output.dir)")
]


def _fail(exc: PipelineError) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@archive_app.command("simulate")
def archive_simulate(
    out: Annotated[Path, typer.Option("--out", "-o", help="archive directory to create")],
    seed: Annotated[int, typer.Option(help="random seed; same seed, same archive")] = 0,
    scale: Annotated[str, typer.Option(help="demo (3 AOIs) or tiny (tests)")] = "demo",
) -> None:
    """Generate the deterministic demo archive (COGs, STAC items, labels, EMS events)."""
    from pipeline.archive.simulate import simulate_archive

    try:
        manifest = simulate_archive(
            out, seed=seed, scale=scale, progress=lambda m: typer.echo(m, err=True)
        )
    except PipelineError as exc:
        _fail(exc)
    typer.echo(
        f"archive written to {out}: "
        + ", ".join(f"{k} {v}" for k, v in manifest["collections"].items())
    )


@app.command()
def build(config: ConfigOpt, archive: ArchiveOpt = None, out: OutOpt = None) -> None:
    """Search scenes, cut chips, annotate and caption them, and write the corpus."""
    from pipeline.build import build as run_build
    from pipeline.config import load_config
    from pipeline.corpus.inspect import format_summary

    try:
        summary = run_build(load_config(config, archive=archive, out=out))
    except PipelineError as exc:
        _fail(exc)
    typer.echo(format_summary(summary))


@app.command()
def inspect(
    corpus: Annotated[Path, typer.Argument(help="corpus directory")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Summarize a corpus: chips per sensor and split, label distribution, rejections."""
    from pipeline.corpus.inspect import format_summary, summarize

    try:
        summary = summarize(corpus)
    except PipelineError as exc:
        _fail(exc)
    typer.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@app.command()
def annotate(
    chips: Annotated[
        Path, typer.Option(help="vector file of square chip footprints (datetime, sensor)")
    ],
    config: ConfigOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="records.jsonl to write")],
    archive: ArchiveOpt = None,
) -> None:
    """Annotate and caption chip footprints you supply with the configured label sources."""
    from pipeline.captions.footprints import annotate_footprints
    from pipeline.config import load_config

    try:
        annotate_footprints(load_config(config, archive=archive), chips, out)
    except PipelineError as exc:
        _fail(exc)
    typer.echo(f"caption records written to {out}")


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
