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


@app.callback()
def _logging(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress lines")] = False,
) -> None:
    """Progress lines (``pipeline.progress``) and warnings on stderr."""
    import logging

    logging.basicConfig(  # other libraries: warnings only (faiss, dask... talk at INFO)
        level=logging.WARNING,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("pipeline").setLevel(logging.WARNING if quiet else logging.INFO)


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
def scenes(
    config: ConfigOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="scene records to write (parquet)")],
    archive: ArchiveOpt = None,
) -> None:
    """Search and select scenes only: write what a build would use (and why not the rest)."""
    from pipeline.config import load_config
    from pipeline.sources.select import report_path, search_scenes

    try:
        path = search_scenes(load_config(config, archive=archive), out)
    except PipelineError as exc:
        _fail(exc)
    report = json.loads(report_path(path).read_text())
    typer.echo(
        f"{report['kept']} scene(s) written to {path} ({report['found']} found, "
        f"{len(report['rejected'])} rejected, {len(report['skipped'])} not normalizable); "
        f"report: {report_path(path)}"
    )


@archive_app.command("serve")
def archive_serve(
    archive: Annotated[Path, typer.Option(help="archive directory (items.parquet, stac/)")],
    port: Annotated[int, typer.Option(help="STAC API port (0: any free port)")] = 8081,
    host: Annotated[str, typer.Option(help="loopback address to bind")] = "127.0.0.1",
    items: Annotated[
        Path | None, typer.Option(help="other STAC items (.parquet, .ndjson, .json)")
    ] = None,
) -> None:
    """Serve an archive through a real STAC API (stac-fastapi-pgstac on PostgreSQL + PostGIS)."""
    import signal
    import threading

    from pipeline.archive.stac_server import serve_archive

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background
        signal.signal(sig, lambda *_: stop.set())
    try:
        with serve_archive(archive, host=host, port=port, items=items) as server:
            typer.echo(f"STAC API: {server.url}  (assets: {server.cog_url}, db {server.database})")
            typer.echo(
                f"run config: source: {{kind: stac_api, url: {server.url}, profile: clm-archive}}"
            )
            typer.echo("Ctrl-C (or SIGTERM) stops the server and drops its database.")
            stop.wait()
    except PipelineError as exc:
        _fail(exc)
    typer.echo("stopped; database dropped")


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
    epsg: Annotated[
        int | None,
        typer.Option(
            help="UTM zone (EPSG) whose grid lon/lat footprints were cut on "
            "(default: the first of their own zone, the zone west and the zone east that fits)"
        ),
    ] = None,
) -> None:
    """Annotate and caption chip footprints you supply with the configured label sources."""
    from pipeline.captions.footprints import annotate_footprints
    from pipeline.config import load_config

    try:
        annotate_footprints(load_config(config, archive=archive), chips, out, epsg)
    except PipelineError as exc:
        _fail(exc)
    typer.echo(f"caption records written to {out}")


CorpusDirOpt = Annotated[Path, typer.Option("--corpus", help="corpus directory")]


@app.command()
def export(
    corpus: CorpusDirOpt,
    view: Annotated[
        str, typer.Option("--format", "-f", help="clm-hdf5 | webdataset | stac | clm-release | hf")
    ],
    shard_size: Annotated[int, typer.Option(help="samples per WebDataset tar")] = 512,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="export directory (clm-release, hf)")
    ] = None,
) -> None:
    """Write one view of an existing corpus (HDF5 master + queries, WebDataset, STAC) and
    publish it as a new version, or export the corpus to a separate directory (CrisisLandMark
    release layout, Hugging Face Parquet)."""
    from pipeline.corpus.export import EXPORT_FORMATS, export_view, write_export
    from pipeline.errors import ConfigError

    try:
        if view in EXPORT_FORMATS:
            paths = write_export(corpus, view, out)
            typer.echo(f"{view}: {len(paths)} file(s) written under {out}")
            return
        if out is not None:
            raise ConfigError(
                f"--out applies to {' and '.join(EXPORT_FORMATS)}; {view} is "
                "written inside the corpus, drop --out"
            )
        version, paths = export_view(corpus, view, shard_size)
    except PipelineError as exc:
        _fail(exc)
    published = f"published as {version.name}" if version.published else "unchanged"
    typer.echo(f"{view}: {len(paths)} file(s) written under {corpus} ({published})")


@app.command()
def gc(corpus: Annotated[Path, typer.Argument(help="corpus directory")]) -> None:
    """Release the chip pixels in the corpus's work area that the published shards hold
    (resume and refresh then read them from the shards); a build does this itself unless
    output.work_chips is keep."""
    from pipeline.corpus.gc import gc_corpus

    try:
        released = gc_corpus(corpus)
    except PipelineError as exc:
        _fail(exc)
    typer.echo(
        f"released {released.files} chip work file(s) ({released.chips} chips, "
        f"{released.bytes / 1e6:.1f} MB); {released.kept} kept (not in the published corpus)"
    )


@app.command()
def rebuild(
    lock: Annotated[Path, typer.Option("--lock", help="corpus.lock of the corpus to regenerate")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="corpus directory (default: the lock's)")
    ] = None,
    allow_drift: Annotated[
        bool, typer.Option("--allow-drift", help="rebuild even when source inputs changed")
    ] = False,
) -> None:
    """Regenerate a corpus byte for byte from its lock; report any input or output drift."""
    from pipeline.build import rebuild as run_rebuild
    from pipeline.corpus.drift import format_drift

    try:
        report = run_rebuild(lock, out, allow_drift=allow_drift)
    except PipelineError as exc:
        _fail(exc)
    if report.input_drift:
        typer.echo(f"input drift (rebuilt anyway):\n{format_drift(report.input_drift)}")
    if report.output_drift:
        typer.echo(f"outputs differing from the lock:\n{format_drift(report.output_drift)}")
        raise typer.Exit(code=1)
    typer.echo(f"rebuilt {report.corpus}: every output matches {lock}")


@app.command()
def refresh(config: ConfigOpt, archive: ArchiveOpt = None, out: OutOpt = None) -> None:
    """Add the scenes and crisis events that appeared since the last build (new version)."""
    from pipeline.build import refresh as run_refresh
    from pipeline.config import load_config
    from pipeline.corpus.versions import format_diff

    try:
        report = run_refresh(load_config(config, archive=archive, out=out))
    except PipelineError as exc:
        _fail(exc)
    typer.echo(report.plan.describe())
    if report.version is not None:
        typer.echo(format_diff(report.version.diff))


@app.command()
def report(
    corpus: CorpusDirOpt,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="HTML file (default: CORPUS/datasheet.html)")
    ] = None,
) -> None:
    """Write the corpus datasheet: distributions, map, sample chips, provenance (HTML)."""
    from pipeline.corpus.report import write_report

    try:
        path = write_report(corpus, out)
    except PipelineError as exc:
        _fail(exc)
    typer.echo(f"datasheet written to {path}")


RunOpt = Annotated[Path, typer.Option("--run", "-r", help="training run directory")]
CorpusOpt = Annotated[
    Path | None, typer.Option("--corpus", help="corpus directory (default: the run's corpus)")
]


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def train(ctx: typer.Context) -> None:
    """Train CLOSP on a corpus's train split (`clm train --help` lists the options)."""
    from pipeline.model.train import main as train_main

    code = train_main(ctx.args)
    if code:
        raise typer.Exit(code=code)


@app.command()
def embed(
    run: RunOpt,
    corpus: CorpusOpt = None,
    split: Annotated[str, typer.Option(help="corpus split to embed")] = "corpus",
    batch_size: Annotated[int, typer.Option(help="chips per forward pass")] = 64,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | mps")] = "auto",
    index: Annotated[str, typer.Option(help="auto | flat | hnsw | ivf")] = "auto",
) -> None:
    """Embed a corpus split with a trained run and build its FAISS index (RUN/index)."""
    from pipeline.model.embed import embed_corpus
    from pipeline.model.run import run_corpus

    try:
        folder = embed_corpus(run, corpus or run_corpus(run), split, batch_size, device, index)
    except PipelineError as exc:
        _fail(exc)
    info = json.loads((folder / "index.json").read_text())
    typer.echo(
        f"index written to {folder}: {info['count']} chips {info['sensors']}, {info['kind']}"
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="what to look for, in words")],
    run: RunOpt,
    k: Annotated[int, typer.Option("-k", "--k", help="number of hits")] = 20,
    sensor: Annotated[str, typer.Option(help="any | s1 | s2")] = "any",
    near: Annotated[
        str | None,
        typer.Option(
            help="LON,LAT: a location prior through the run's location encoder (GeoCLOSP); "
            "runs without one keep only chips within --radius-km"
        ),
    ] = None,
    radius_km: Annotated[
        float | None,
        typer.Option(help="keep only chips this close to --near, km (default 50 without a prior)"),
    ] = None,
    near_weight: Annotated[
        float, typer.Option(help="weight of the location prior (GeoCLOSP runs)")
    ] = 1.0,
    sheet: Annotated[
        Path | None,
        typer.Option(help="also write a contact sheet of the hits to this PNG (none by default)"),
    ] = None,
    collapse_cells: Annotated[
        bool, typer.Option(help="keep only the best hit per grid cell (no same-place repeats)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Search the run's index by text; prints the hits (and writes a contact sheet with --sheet)."""
    from dataclasses import asdict

    from pipeline.model.search import format_hits, load_index, parse_near
    from pipeline.model.search import search as run_search
    from pipeline.model.sheet import query_grades, write_contact_sheet

    try:
        hits = run_search(
            run, query, k, sensor, parse_near(near), radius_km, near_weight, collapse_cells
        )
        if sheet is not None and hits:
            corpus = load_index(run).corpus
            matched = query_grades(corpus, query)
            title = f"{query.strip()}   ({sensor}, {len(hits)} hits"
            title += ", one per cell)" if collapse_cells else ")"
            title += f"   marked against corpus query {matched[0]}" if matched else ""
            write_contact_sheet(hits, corpus, sheet, title, matched[1] if matched else None)
    except PipelineError as exc:
        _fail(exc)
    written = str(sheet) if sheet is not None and hits else None
    if as_json:
        typer.echo(json.dumps({"hits": [asdict(h) for h in hits], "sheet": written}, indent=2))
        return
    typer.echo(format_hits(hits) if hits else "no chips match the filters")
    if written:
        typer.echo(f"contact sheet: {written}")


@app.command()
def evaluate(
    run: RunOpt,
    corpus: CorpusOpt = None,
    seeds: Annotated[int, typer.Option(help="random-baseline seeds to average")] = 5,
    full: Annotated[bool, typer.Option(help="every query group, not only 'all'")] = False,
    show: Annotated[bool, typer.Option(help="print the saved report, do not recompute")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """nDCG/mAP/Recall of text-to-image retrieval, next to random and oracle baselines."""
    from pipeline.model.evaluate import evaluate_run, format_report, saved_report

    try:
        report = saved_report(run) if show else evaluate_run(run, corpus, seeds)
    except PipelineError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(format_report(report, None if full else ["all"]))
    typer.echo(f"metrics: {run / 'metrics.json'}")


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="evaluated run folders (several seeds each)")],
    metric: Annotated[str, typer.Option(help="metric to compare, e.g. ndcg@10, ndcg@1000")] = (
        "ndcg@10"
    ),
    png: Annotated[Path | None, typer.Option(help="also draw the comparison into this PNG")] = None,
    markdown: Annotated[bool, typer.Option(help="print a Markdown table")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Runs side by side per index and query group: mean ± std over the runs of each model."""
    from pipeline.errors import ConfigError
    from pipeline.model.compare import compare_runs, format_comparison, format_markdown
    from pipeline.model.evaluate import METRICS

    try:
        if metric not in METRICS:
            raise ConfigError(f"--metric {metric!r} is unknown; use one of {', '.join(METRICS)}")
        comparison = compare_runs(runs, metric)
        if png is not None:
            from pipeline.model.compare_plot import write_comparison_png

            write_comparison_png(comparison, png)
    except PipelineError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(comparison, indent=2))
    else:
        typer.echo(format_markdown(comparison) if markdown else format_comparison(comparison))
    if png is not None:
        typer.echo(f"chart: {png}")


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())
