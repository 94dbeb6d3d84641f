"""`blockattn segment eval`: every method against SemanticSeg gold, at the gold number of blocks.

For each document and each gold level it has, every method is asked for exactly as many blocks as the gold
segmentation has (so no method gains from guessing the count). Scores: Pk and WindowDiff on the character
grid (k = half the mean gold block length), boundary F1 on the candidate grid (exact, and within one
candidate). A document's score is the mean over its levels; tables average documents (per category, and
overall as the mean of the category means, so that every category weighs the same). For the learned
segmenter it also checks that --level coarse/medium/fine give strictly rising block counts, and how far
each free level's block count is from that level's gold count (median ratio, issue 14).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from blockattn.segment.document import Document
from blockattn.segment.labels import snap
from blockattn.segment.methods import get_segmenter
from blockattn.segment.metrics import boundary_f1, pk, windowdiff
from blockattn.segment.request import LEVELS, Request

METRICS = ("pk", "windowdiff", "f1", "f1_tol1")
_LOWER_IS_BETTER = {"pk": True, "windowdiff": True, "f1": False, "f1_tol1": False}


def gold_levels(boundaries: dict) -> dict[str, list[int]]:
    """The levels a row has gold for (medium is optional), each with at least one boundary."""
    return {lv: list(boundaries[lv]) for lv in LEVELS if boundaries.get(lv)}


def distinct_levels(boundaries: dict) -> dict[str, list[int]]:
    """gold_levels without a level identical to a coarser one (many documents have a single real
    level), so that no document counts the same segmentation twice."""
    out: dict[str, list[int]] = {}
    for level, gold in gold_levels(boundaries).items():
        if gold not in out.values():
            out[level] = gold
    return out


def load_rows(data: Path, split: str, per_category: int | None, seed: int) -> list[dict]:
    """The split's rows; with `per_category`, a seeded sample of at most that many per category."""
    import pyarrow.parquet as pq

    from blockattn.data import iter_split
    from blockattn.data.parquet import split_files

    columns = ["id", "category", "text", "boundaries"]
    if all("markup" in pq.read_schema(f).names for f in split_files(data, split)):
        columns.append("markup")  # whether the text shows its source's headings: scored apart (by_markup)
    rows = list(iter_split(data, split, columns=columns))
    if per_category is None:
        return rows
    rng = np.random.default_rng(seed)
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_cat[row["category"]].append(row)
    picked = []
    for cat in sorted(by_cat):
        group = by_cat[cat]
        take = rng.choice(len(group), size=min(per_category, len(group)), replace=False)
        picked.extend(group[i] for i in sorted(take))
    return picked


def score_cuts(doc: Document, gold: list[int], cuts: np.ndarray) -> dict[str, float]:
    """Pk, WindowDiff (characters) and boundary F1 (candidate indices) of `cuts` against `gold`."""
    n = len(doc.text)
    gold_idx, _ = snap(doc, gold)
    hyp_idx, _ = snap(doc, cuts)
    return {"pk": pk(gold, cuts, n), "windowdiff": windowdiff(gold, cuts, n),
            "f1": boundary_f1(gold_idx, hyp_idx).f1, "f1_tol1": boundary_f1(gold_idx, hyp_idx, tolerance=1).f1}


def evaluate_rows(rows: list[dict], methods: list[str], progress=None, reuse: dict | None = None) -> dict:
    """Per-document scores of every method, plus diagnostics. Returns the raw material of the report.

    reuse: scores from an earlier report ({"per_doc": {id: {method: scores}}, "seconds": {method: s}}):
    a baseline it scored on every one of these documents is taken from it instead of run again."""
    per_doc = []  # {"id", "category", "scores": {method: {metric: value}}}
    reuse = reuse or {"per_doc": {}, "seconds": {}}
    # The learned segmenter is always run again: its weights or decoding may have changed since.
    reused = [m for m in methods if m != "learned" and rows
              and all(m in reuse["per_doc"].get(r["id"], {}) for r in rows)]
    seconds = defaultdict(float, {m: reuse["seconds"][m] for m in reused})
    tokens = 0
    monotonic, snapped, exact = [], 0, 0
    segmenters = {m: get_segmenter(m) for m in methods if m not in reused}
    for row in rows:
        doc = Document(row["text"])
        levels = distinct_levels(row["boundaries"])
        tokens += doc.total_tokens
        for gold in levels.values():
            _, ok = snap(doc, gold)
            snapped, exact = snapped + len(ok), exact + int(ok.sum())
        if reused and reuse.get("tokens", {}).get(row["id"]) not in (None, doc.total_tokens):
            from blockattn.errors import UserError

            raise UserError(f"--reuse: document {row['id']} has {doc.total_tokens} tokens here but "
                            f"{reuse['tokens'][row['id']]} in the reused report: not the same data")
        scores = {m: reuse["per_doc"][row["id"]][m] for m in reused}
        for name, seg in segmenters.items():
            started = time.perf_counter()
            level_scores = [score_cuts(doc, gold, seg.cut(doc, Request(num_blocks=len(gold) + 1)))
                            for gold in levels.values()]
            seconds[name] += time.perf_counter() - started
            scores[name] = {m: float(np.mean([s[m] for s in level_scores])) for m in METRICS}
        free = {}
        if "learned" in segmenters:
            counts = [len(segmenters["learned"].cut(doc, Request(level=lv))) + 1 for lv in LEVELS]
            monotonic.append(bool(counts[0] < counts[1] < counts[2]))
            # Free --level decoding against every level's gold count (issue 14), identical levels included.
            free = {"level_counts": dict(zip(LEVELS, counts)),
                    "gold_counts": {lv: len(g) + 1 for lv, g in gold_levels(row["boundaries"]).items()}}
        markup = {"markup": bool(row["markup"])} if row.get("markup") is not None else {}
        per_doc.append({"id": row["id"], "category": row["category"], "tokens": doc.total_tokens, **markup,
                        "levels": {lv: len(g) + 1 for lv, g in levels.items()}, "scores": scores, **free})
        if progress:
            progress()
    return {"per_doc": per_doc, "seconds": dict(seconds), "tokens": tokens, "monotonic": monotonic,
            "gold_on_candidates": exact / snapped if snapped else math.nan, "reused": reused}


def load_reuse(path: Path, data: Path, split: str) -> dict:
    """Per-document scores of an earlier report on the same data and split, for `evaluate_rows`."""
    from blockattn.errors import UserError

    try:
        old = json.loads(Path(path).read_text())
        per_doc, seconds, old_split = old["per_doc"], old["eval_seconds"], old["split"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"--reuse {path}: not a readable segmentation report ({exc})") from None
    if old_split != split:
        raise UserError(f"--reuse {path}: scores of the {old_split} split, not of {split}")
    # Documents are matched by id wherever the dataset lives; each one's token count is checked when scored
    # (evaluate_rows), so a different build of the data is an error, never silently reused.
    return {"per_doc": {d["id"]: d["scores"] for d in per_doc},
            "tokens": {d["id"]: d.get("tokens") for d in per_doc}, "seconds": seconds}


def summarise(raw: dict, methods: list[str]) -> dict:
    """Per-category and overall means, and where the learned segmenter beats every baseline."""
    by_cat: dict[str, list[dict]] = defaultdict(list)
    for d in raw["per_doc"]:
        by_cat[d["category"]].append(d)
    per_category = {cat: {m: {k: float(np.mean([d["scores"][m][k] for d in docs])) for k in METRICS}
                          for m in methods} | {"n_docs": len(docs)}
                    for cat, docs in sorted(by_cat.items())}
    overall = {m: {k: float(np.mean([per_category[c][m][k] for c in per_category])) for k in METRICS}
               for m in methods}
    summary = {"overall": overall, "per_category": per_category}
    baselines = [m for m in methods if m != "learned"]
    if "learned" in methods and baselines:
        def beats(table: dict, metric: str) -> bool:
            best = min(table[b][metric] for b in baselines)
            return table["learned"][metric] < best
        wins = {metric: [c for c in per_category if beats(per_category[c], metric)] for metric in ("pk", "windowdiff")}
        summary["learned_beats_all_baselines"] = {
            "overall": {metric: beats(overall, metric) for metric in ("pk", "windowdiff")},
            "categories": {metric: len(cats) for metric, cats in wins.items()},
            "categories_both": len(set(wins["pk"]) & set(wins["windowdiff"])),
            "n_categories": len(per_category),
        }
    markup = by_markup(raw["per_doc"], methods)
    if markup:
        summary["by_markup"] = markup
    ratios = level_count_ratios(raw["per_doc"])
    if ratios:
        summary["free_level_count_ratio"] = ratios
    if raw["monotonic"]:
        summary["levels_rise_on_every_document"] = all(raw["monotonic"])
        summary["levels_rise_fraction"] = float(np.mean(raw["monotonic"]))
    return summary


def by_markup(per_doc: list[dict], methods: list[str]) -> dict[str, dict]:
    """Mean scores of the documents whose text shows its headings/separators and of those that do not (plain
    means over documents, not category-balanced): a segmenter that leans on headings shows it here. Empty when
    the data does not say (no `markup` column)."""
    out = {}
    for label, flag in (("with markup", True), ("without markup", False)):
        docs = [d for d in per_doc if d.get("markup") is flag]
        if docs:
            out[label] = {m: {k: float(np.mean([d["scores"][m][k] for d in docs])) for k in METRICS}
                          for m in methods} | {"n_docs": len(docs)}
    return out


def level_count_ratios(per_doc: list[dict]) -> dict[str, dict[str, float]]:
    """Per level: median (and quartiles) over documents of the learned segmenter's free `--level` block
    count divided by that level's gold count; documents without gold for a level are left out of it.
    With token counts, also `gold_block_tokens`: the median of a document's mean gold block length at that
    level, i.e. what the level means in this data (to compare with the length `--level` asks for)."""
    out = {}
    for level in LEVELS:
        docs = [d for d in per_doc if level in d.get("gold_counts", {})]
        if docs:
            r = [d["level_counts"][level] / d["gold_counts"][level] for d in docs]
            q1, med, q3 = np.percentile(r, [25, 50, 75])
            out[level] = {"median": float(med), "q1": float(q1), "q3": float(q3), "n_docs": len(r)}
            if all("tokens" in d for d in docs):
                out[level]["gold_block_tokens"] = float(np.median([d["tokens"] / d["gold_counts"][level]
                                                                   for d in docs]))
    return out


def print_table(summary: dict, methods: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    for metric in ("windowdiff", "pk"):
        table = Table(title=f"{metric} at the gold number of blocks (lower is better)")
        table.add_column("category")
        table.add_column("docs", justify="right")
        for m in methods:
            table.add_column(m, justify="right")
        rows = list(summary["per_category"].items()) + [("overall", {**summary["overall"], "n_docs": ""})]
        for cat, entry in rows:
            values = [entry[m][metric] for m in methods]
            best = min(values)
            table.add_row(cat, str(entry["n_docs"]),
                          *[f"[bold]{v:.3f}[/bold]" if v == best else f"{v:.3f}" for v in values])
        Console().print(table)
    ratios = summary.get("free_level_count_ratio", {})
    if ratios:
        Console().print("free --level block count / gold count (median): "
                        + ", ".join(f"{lv} {r['median']:.2f}" for lv, r in ratios.items()))


def plot(summary: dict, methods: list[str], path: Path) -> None:
    """WindowDiff per category and method, grouped bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = list(summary["per_category"]) + ["overall"]
    values = {m: [summary["per_category"][c][m]["windowdiff"] for c in cats[:-1]] + [summary["overall"][m]["windowdiff"]]
              for m in methods}
    fig, ax = plt.subplots(figsize=(max(8, len(cats) * 0.9), 4.5))
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        ax.bar(np.arange(len(cats)) + i * width - 0.4 + width / 2, values[m], width, label=m)
    ax.set_xticks(np.arange(len(cats)), cats, rotation=45, ha="right")
    ax.set_ylabel("WindowDiff (lower is better)")
    ax.set_title("Segmentation at the gold number of blocks")
    ax.legend(ncol=min(4, len(methods)), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_evaluation(data: Path, split: str, methods: list[str], out: Path, per_category: int | None = None,
                   seed: int = 0, command: str = "", reuse: Path | None = None) -> dict:
    """Evaluate, print the tables, write `out` (JSON) and the plot beside it (same name, .png)."""
    from rich.progress import Progress

    for m in methods:
        get_segmenter(m)  # unknown names fail before any work
    rows = load_rows(data, split, per_category, seed)
    with Progress(transient=True) as bar:
        task = bar.add_task(f"segmenting {len(rows)} {split} documents", total=len(rows))
        raw = evaluate_rows(rows, methods, progress=lambda: bar.advance(task),
                            reuse=load_reuse(reuse, data, split) if reuse else None)
    summary = summarise(raw, methods)
    report = {
        "command": command, "data": str(data), "split": split, "n_docs": len(rows), "seed": seed,
        "per_category_limit": per_category, "methods": methods, "tokens": raw["tokens"],
        "eval_seconds": raw["seconds"], "reused_from": {m: str(reuse) for m in raw["reused"]},
        "gold_boundaries_on_candidates": raw["gold_on_candidates"],
        **summary, "per_doc": raw["per_doc"],
    }
    if "learned" in methods:  # what --level asks for (calibrated on SemanticSeg), beside gold_block_tokens
        report["level_mean_tokens"] = dict(get_segmenter("learned").decoding.level_mean_tokens)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    plot(summary, methods, out.with_suffix(".png"))
    print_table(summary, methods)
    return report
