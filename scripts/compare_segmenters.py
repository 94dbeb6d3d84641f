"""Learned-segmenter weights side by side on the same documents: mean WindowDiff at the gold count.

    python scripts/compare_segmenters.py --weights shipped=A.safetensors --weights pair=A.safetensors+B.safetensors \
        --data val=/work/data/semanticseg-v3:validation:10 --data vignettes=/work/data/unseen-vignettes:test \
        --out reports/segmenter_ensemble.json

A `--weights` value joined with `+` is an ensemble of those files (their taggers' log-odds averaged, the first
file's decoding settings), as `blockattn segment ensemble` would write it. `--data NAME=DIR:SPLIT[:PER_CATEGORY]`
(a seeded sample of at most PER_CATEGORY documents per category, as `segment eval --per-category`). Every
document is scored as `segment eval` scores the learned method: each distinct gold level cut at its own
count, the mean over levels. Paired intervals are against the first `--weights`: 95 % bootstrap over
documents (5,000 resamples, seed 0).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from blockattn.errors import UserError
from blockattn.reportio import provenance
from blockattn.segment.document import Document
from blockattn.segment.evaluate import distinct_levels, load_rows, score_cuts
from blockattn.segment.learned.segmenter import LearnedSegmenter, load_weights
from blockattn.segment.learned.tagger import TaggerEnsemble
from blockattn.segment.request import Request


def segmenter(spec: str) -> LearnedSegmenter:
    parts = [load_weights(p) for p in spec.split("+")]
    emb, _, decoding = parts[0]
    if len(parts) == 1:
        return LearnedSegmenter(*parts[0])
    if any(not np.array_equal(p[0].codes, emb.codes) for p in parts):
        sys.exit(f"{spec}: the members' token embeddings differ")
    return LearnedSegmenter(emb, TaggerEnsemble([p[1] for p in parts]), decoding)


def paired(base: list[float], other: list[float], rng: np.random.Generator) -> dict:
    diffs = np.asarray(other) - np.asarray(base)
    means = np.sort(diffs[rng.integers(0, len(diffs), size=(5000, len(diffs)))].mean(axis=1))
    return {"mean": float(diffs.mean()), "ci95": [float(means[125]), float(means[4874])],
            "better": int((diffs < 0).sum()), "worse": int((diffs > 0).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", action="append", required=True, help="NAME=FILE[+FILE...]")
    parser.add_argument("--data", action="append", required=True, help="NAME=DIR:SPLIT[:PER_CATEGORY]")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if any("=" not in w for w in args.weights + args.data):
        parser.error("--weights and --data take NAME=VALUE")
    specs = dict(w.split("=", 1) for w in args.weights)
    datasets = [(name, where.split(":")) for name, where in (d.split("=", 1) for d in args.data)]
    if any(len(parts) not in (2, 3) or (len(parts) == 3 and not parts[2].isdigit()) for _, parts in datasets):
        parser.error("--data takes NAME=DIR:SPLIT[:PER_CATEGORY]")
    try:
        run(specs, datasets, args.out)
    except UserError as exc:  # a missing weights file or data folder
        sys.exit(f"error: {exc}")


def run(specs: dict[str, str], datasets: list[tuple[str, list[str]]], out: Path) -> None:
    segs = {name: segmenter(spec) for name, spec in specs.items()}
    started, sets = time.time(), {}
    for name, (data, split, *per) in datasets:
        rows = load_rows(Path(data), split, int(per[0]) if per else None, 0)
        per_doc = {k: [] for k in segs}
        with Progress(transient=True) as bar:
            task = bar.add_task(f"{name} ({len(rows)} documents)", total=len(rows))
            for row in rows:
                doc = Document(row["text"])
                levels = distinct_levels(row["boundaries"]).values()
                for key, seg in segs.items():
                    doc.memo.pop("learned", None)  # each weights file computes its own log-odds
                    per_doc[key].append(float(np.mean([score_cuts(doc, g, seg.cut(doc, Request(num_blocks=len(g) + 1)))
                                                       ["windowdiff"] for g in levels])))
                bar.advance(task)
        first = next(iter(segs))
        rng = np.random.default_rng(0)
        sets[name] = {"data": data, "split": split, "per_category": int(per[0]) if per else None,
                      "n_docs": len(rows), "ids": [r["id"] for r in rows],
                      "mean_windowdiff": {k: float(np.mean(v)) for k, v in per_doc.items()},
                      "paired_vs_first": {k: paired(per_doc[first], v, rng) for k, v in per_doc.items() if k != first},
                      "per_doc": per_doc}
        print(name, len(rows), {k: round(v, 4) for k, v in sets[name]["mean_windowdiff"].items()}, flush=True)
    report = {"benchmark": "segmenter_ensemble", "weights": specs, "sets": sets,
              **provenance(0, time.time() - started, "python " + " ".join(sys.argv))}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{out}.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out)  # never a half-written report


if __name__ == "__main__":
    main()
