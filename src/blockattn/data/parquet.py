"""SemanticSeg on disk: Parquet files whose paths name their split, and reading them back.

Layout: DIR/data/<split>/<category>.parquet. The same rows always give the same bytes (pyarrow writes
no timestamps), so a rebuild with the same seed is byte-identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from blockattn.data.splits import SPLITS
from blockattn.errors import UserError

_OFFSETS = pa.list_(pa.int32())
SCHEMA = pa.schema([
    ("id", pa.string()),
    ("category", pa.string()),
    ("source", pa.string()),          # the adapter the text comes from (concatenations use one source)
    ("kind", pa.string()),            # "natural" | "concat"
    ("text", pa.string()),
    ("n_tokens", pa.int32()),         # default model's tokenizer, no special tokens
    ("boundaries", pa.struct([("coarse", _OFFSETS), ("medium", _OFFSETS), ("fine", _OFFSETS)])),
    ("markup", pa.bool_()),           # the text shows its source's headings/separators
    ("documents", pa.list_(pa.string())),  # ids of the source documents drawn from
])


def split_file(root: Path, split: str, category: str) -> Path:
    return root / "data" / split / f"{category}.parquet"


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    pq.write_table(table, path, compression="zstd", row_group_size=256)


def split_files(root: Path, split: str) -> list[Path]:
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    files = sorted((Path(root) / "data" / split).glob("*.parquet"))
    if not files:
        raise UserError(f"{root}: no {split} split here (expected {root}/data/{split}/*.parquet)")
    return files


def load_split(root: str | Path, split: str):
    """The split as a Hugging Face `datasets.Dataset` (memory-mapped Arrow, cached by `datasets`)."""
    import datasets

    files = split_files(Path(root), split)
    return datasets.load_dataset("parquet", data_files={split: [str(f) for f in files]}, split=split)


def iter_split(root: str | Path, split: str, columns: list[str] | None = None) -> Iterator[dict]:
    """The split's rows as dicts, streamed file by file (no `datasets` cache written)."""
    for path in split_files(Path(root), split):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=64, columns=columns):
            yield from batch.to_pylist()


def read_columns(root: str | Path, columns: list[str]) -> list[dict]:
    """Small columns of every split (for stats), each row tagged with its `split`."""
    rows = []
    for split in SPLITS:
        for path in sorted((Path(root) / "data" / split).glob("*.parquet")):
            for row in pq.read_table(path, columns=columns).to_pylist():
                row["split"] = split
                rows.append(row)
    return rows
