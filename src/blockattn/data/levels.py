"""`blockattn data levels DIR`: how distinct the three gold levels of a build are (issue 14).

Per category: the share of instances whose coarse and fine boundaries differ, the share with three
distinct levels, and each level's block lengths in tokens of the dataset tokenizer (median and
quartiles over blocks, on a seeded sample of instances per category: tokenizing all 30k texts would
take longer than the build). Printed, and written as JSON.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from blockattn.data.documents import LEVEL_NAMES
from blockattn.data.parquet import read_columns
from blockattn.data.splits import SPLITS
from blockattn.errors import UserError


def _quartiles(lengths: list[np.ndarray]) -> dict[str, float] | None:
    if not lengths:
        return None
    q1, median, q3 = np.percentile(np.concatenate(lengths), [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3)}


def level_report(root: Path, per_category: int = 100, seed: int = 0) -> dict:
    """The figures described in the module docstring, per category and for all instances."""
    from blockattn.data import iter_split
    from blockattn.segment.tokens import tokenize

    if not Path(root).is_dir():
        raise UserError(f"{root}: no such folder")
    rows = read_columns(root, ["id", "category", "boundaries"])
    if not rows:
        raise UserError(f"{root}: no SemanticSeg Parquet files (expected {root}/data/<split>/*.parquet)")
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_cat[row["category"]].append(row)
    rng = np.random.default_rng(seed)
    sampled = {r["id"] for rs in by_cat.values()
               for r in (rs if len(rs) <= per_category else [rs[i] for i in rng.choice(len(rs), per_category, False)])}
    lengths: dict[str, dict[str, list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
    for split in SPLITS:
        for row in iter_split(root, split, columns=["id", "category", "text", "boundaries"]):
            if row["id"] not in sampled:
                continue
            tokens = tokenize(row["text"])
            for level in LEVEL_NAMES:
                bounds = np.concatenate([[0], tokens.before(np.asarray(row["boundaries"][level], dtype=np.int64)),
                                         [len(tokens)]])
                lengths[row["category"]][level].append(np.diff(bounds))
                lengths["all"][level].append(np.diff(bounds))
    report = {"data": str(root), "sampled_per_category": per_category, "seed": seed, "categories": {}}
    for cat in sorted(by_cat) + ["all"]:
        cat_rows = rows if cat == "all" else by_cat[cat]
        b = [r["boundaries"] for r in cat_rows]
        report["categories"][cat] = {
            "instances": len(cat_rows),
            "coarse_ne_fine": float(np.mean([x["coarse"] != x["fine"] for x in b])),
            "three_distinct": float(np.mean([x["coarse"] != x["medium"] != x["fine"] for x in b])),
            "block_tokens": {lv: _quartiles(lengths[cat][lv]) for lv in LEVEL_NAMES},
        }
    return report


def print_levels(root: Path, out: Path | None, per_category: int, seed: int, command: str = "") -> None:
    from rich.console import Console
    from rich.table import Table

    report = {"command": command, **level_report(root, per_category, seed)}
    table = Table(title=f"{root}: gold levels (block tokens: median [q1–q3] on {per_category} instances/category)")
    for col in ("category", "instances", "coarse≠fine", "3 distinct", *LEVEL_NAMES):
        table.add_column(col, justify="left" if col == "category" else "right")
    for cat, c in report["categories"].items():
        cells = [f"{q['median']:.0f} [{q['q1']:.0f}–{q['q3']:.0f}]" if q else "–" for q in c["block_tokens"].values()]
        table.add_row(cat, str(c["instances"]), f"{c['coarse_ne_fine']:.1%}", f"{c['three_distinct']:.1%}", *cells)
    Console(width=200).print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
