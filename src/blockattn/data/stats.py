"""`blockattn data stats DIR`: the count table and length histogram of a built folder, read from its
Parquet files (not from the card), so it also checks what is actually on disk."""

from __future__ import annotations

from pathlib import Path

from blockattn.data import card
from blockattn.data.parquet import read_columns
from blockattn.errors import UserError

_COLUMNS = ["category", "kind", "markup", "n_tokens", "boundaries"]


def stats_rows(root: Path) -> list[dict]:
    """Per-instance stats rows (the card's input) from the Parquet files under `root`."""
    if not Path(root).is_dir():
        raise UserError(f"{root}: no such folder")
    rows = read_columns(root, _COLUMNS)
    if not rows:
        raise UserError(f"{root}: no SemanticSeg Parquet files (expected {root}/data/<split>/*.parquet)")
    for row in rows:
        bounds = row.pop("boundaries")
        row.update({f"n_{lv}": len(bounds[lv]) for lv in ("coarse", "medium", "fine")})
    return rows


def print_stats(root: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = stats_rows(root)
    console = Console()
    if not console.is_terminal:  # piped or captured: print whole tables, not ones cut to 80 columns
        console = Console(width=200)
    counts = card.count_table(rows)
    table = Table(title=f"{root}: {len(rows)} instances")
    for col in counts[0]:
        table.add_column(col, justify="left" if col == "category" else "right")
    for c in counts:
        table.add_row(*(str(v) for v in c.values()), end_section=c["category"] == counts[-2]["category"])
    console.print(table)
    hist = Table(title="length histogram (instances per token bucket)")
    hist.add_column("category")
    for label in card.bucket_labels():
        hist.add_column(label, justify="right")
    for cat, values in card.length_histogram(rows).items():
        hist.add_row(cat, *(str(v) for v in values))
    console.print(hist)
