"""The label-examples figure of the docs (``docs/images/label-examples.png``).

Six chips of a corpus with their full natural-language captions: the first three datasheet
samples of each sensor (crisis labels first, then the rarest labels; ``report.pick_samples``),
S2 on the top row, S1 below. Regenerate it from the demo corpus with::

    python -c "from pipeline.corpus.examples import write_label_examples; \\
        write_label_examples('demo-output/corpus', 'docs/images/label-examples.png')"
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import pandas as pd

from pipeline.corpus.preview import chip_rgb, contact_sheet
from pipeline.corpus.report import pick_samples
from pipeline.errors import CorpusError
from pipeline.storage import atomic_path

PER_SENSOR = 3


def example_keys(meta: pd.DataFrame) -> list[str]:
    return [k for sensor in ("s2", "s1") for k in pick_samples(meta, sensor)[:PER_SENSOR]]


def write_label_examples(
    corpus: Path | str, path: Path | str, keys: Sequence[str] | None = None
) -> list[list[str]]:
    """Write the figure to ``path`` (PNG); returns the caption lines drawn under each chip."""
    corpus = Path(corpus)
    meta_path = corpus / "metadata.parquet"
    if not meta_path.is_file():
        raise CorpusError(f"{corpus} has no metadata.parquet; build the corpus first")
    meta = pd.read_parquet(meta_path).set_index("key", drop=False)
    chosen = list(keys) if keys is not None else example_keys(meta)
    tiles = []
    for key in chosen:
        row = meta.loc[key]
        with h5py.File(corpus / "shards" / row["shard"], "r") as h5:
            tiles.append((chip_rgb(h5[key]["image"][()], row["sensor"]), str(row["caption"])))
    sheet, lines = contact_sheet(tiles, columns=PER_SENSOR)
    with atomic_path(Path(path)) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)
    return lines
