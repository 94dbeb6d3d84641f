"""What `--level` means in tokens: each level's mean block length, measured on SemanticSeg train +
validation (issue 14), and written into a weights file's decoding settings.

Free decoding used to threshold the model's boundary probabilities; on text unlike SemanticSeg the
log-odds run lower and `--level medium` gave a median 0.33x the gold count. A level now asks for
round(N / M) blocks, M being the level's typical mean block length: M is the median, over documents, of
N / (gold block count), so that on data like the calibration data the median ratio of asked to gold count
is 1. Every document with gold at a level is measured for it, the same documents the evaluation scores
the free count on. An earlier version measured only documents with coarse ≠ fine; those are the long
chapter/section documents, so coarse asked for too few blocks even in-domain (SemanticSeg validation,
10 per category: median ratio of free to gold count coarse 0.71, medium 0.96, fine 1.14; measured on all
documents 1.00 / 1.05 / 0.98). Every category weighs the same (each of its documents 1 / its document
count), so a category with many instances cannot set the levels alone. The model still chooses where the
cuts go.

What a level means is the calibration data's: SemanticSeg's fine level is mostly paragraphs (~110 tokens).
A corpus whose finest gold is its third heading level (the unseen sets: `###` titles and deeper, or the level above
where a document has none; ~270-350 tokens a block) gets more fine blocks than gold, by design: that
is a different definition of "fine", not a count to tune to.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from blockattn.segment.request import LEVELS

CALIBRATION_SPLITS = ("train", "validation")  # never test, never an unseen set


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The smallest value whose cumulative weight reaches half the total."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, cum[-1] / 2)])


def level_mean_tokens(rows: list[dict]) -> dict[str, float]:
    """Per level, the category-balanced median of a document's mean gold block length (tokens), over the
    documents with gold at that level.
    rows: {"category", "n_tokens", "boundaries"}; a level a row has no boundary at is skipped for it."""
    per_cat = Counter(r["category"] for r in rows)
    values, weights = defaultdict(list), defaultdict(list)
    for row in rows:
        for level in LEVELS:
            gold = row["boundaries"].get(level)
            if gold:
                values[level].append(row["n_tokens"] / (len(gold) + 1))
                weights[level].append(1.0 / per_cat[row["category"]])
    return {lv: weighted_median(np.asarray(values[lv]), np.asarray(weights[lv])) for lv in LEVELS if values[lv]}


def calibration_rows(data: Path) -> list[dict]:
    from blockattn.data import iter_split

    return [row for split in CALIBRATION_SPLITS
            for row in iter_split(data, split, columns=["category", "n_tokens", "boundaries"])]


def calibrate_weights(data: Path, weights: Path, out: Path) -> dict[str, float]:
    """Copy `weights` to `out` with `level_mean_tokens` measured on `data`; returns the new values."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from blockattn.errors import UserError

    measured = level_mean_tokens(calibration_rows(data))
    if set(measured) != set(LEVELS):
        raise UserError(f"{data}: no gold boundaries for level(s) {', '.join(sorted(set(LEVELS) - set(measured)))}")
    with safe_open(str(weights), framework="numpy") as f:
        metadata = dict(f.metadata())
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    decode = json.loads(metadata["decode"])
    decode["level_mean_tokens"] = measured
    metadata["decode"] = json.dumps(decode)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{out}.tmp")
    save_file(arrays, str(tmp), metadata=metadata)
    tmp.replace(out)  # never a half-written weights file (out may be the input)
    return measured
