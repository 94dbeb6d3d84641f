"""The dataset card (DIR/README.md), the category × length plot, and the count tables `stats` prints.

Everything here is computed from per-instance stats rows (split, category, kind, markup, n_tokens,
n_coarse, n_medium, n_fine), so the card and `blockattn data stats` always agree with the Parquet files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from blockattn.data.splits import SPLITS

# Length buckets: half-octaves from 2k to 32k tokens (the range is log-uniform, so buckets fill evenly).
EDGES = [int(round(2048 * 2 ** (k / 2))) for k in range(9)]
EDGES[-1] = 32769  # the top bucket includes exactly 32768


def bucket_labels() -> list[str]:
    return [f"{lo / 1024:.1f}k–{hi / 1024:.1f}k".replace(".0k", "k") for lo, hi in zip(EDGES, EDGES[1:])]


def length_histogram(rows: list[dict]) -> dict[str, list[int]]:
    """category → instance counts per length bucket (plus "all")."""
    hist: dict[str, list[int]] = {}
    for row in rows:
        k = int(np.searchsorted(EDGES, row["n_tokens"], side="right")) - 1
        for key in (row["category"], "all"):
            hist.setdefault(key, [0] * (len(EDGES) - 1))[min(max(k, 0), len(EDGES) - 2)] += 1
    return dict(sorted(hist.items(), key=lambda kv: (kv[0] == "all", kv[0])))


def count_table(rows: list[dict]) -> list[dict]:
    """One row per category (and a total): instances per split, kinds, markup share, tokens, boundaries."""
    out = []
    categories = sorted({r["category"] for r in rows})
    for cat in categories + ["all"]:
        sel = [r for r in rows if cat == "all" or r["category"] == cat]
        splits = Counter(r["split"] for r in sel)
        out.append({
            "category": cat, **{s: splits.get(s, 0) for s in SPLITS}, "total": len(sel),
            "natural": sum(r["kind"] == "natural" for r in sel),
            "markup": sum(bool(r["markup"]) for r in sel),
            "median_tokens": int(np.median([r["n_tokens"] for r in sel])) if sel else 0,
            "mtokens": round(sum(r["n_tokens"] for r in sel) / 1e6, 1),
            **{f"mean_{lv}": round(float(np.mean([r[f"n_{lv}"] for r in sel])), 1) if sel else 0.0
               for lv in ("coarse", "medium", "fine")},
        })
    return out


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Heatmap: categories × length buckets, instance counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = {k: v for k, v in length_histogram(rows).items() if k != "all"}
    cats, grid = list(hist), np.array(list(hist.values()))
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(cats) + 1.8))
    ax.imshow(grid, aspect="auto", cmap="Blues")
    ax.set_xticks(range(len(EDGES) - 1), bucket_labels(), rotation=30, ha="right")
    ax.set_yticks(range(len(cats)), cats)
    for (i, j), n in np.ndenumerate(grid):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=8,
                color="white" if n > grid.max() * 0.6 else "black")
    ax.set_xlabel("instance length (tokens, default model's tokenizer)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no version stamp: reproducible bytes
    plt.close(fig)


def write_card(path: Path, *, name: str, description: str, command: str, info: dict, sources: list[dict],
               rows: list[dict], notes: list[str]) -> None:
    """DIR/README.md with a `datasets` config header, sources and licences, counts and the length table."""
    counts = count_table(rows)
    hist = length_histogram(rows)
    yaml = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in SPLITS:
        if any(r["split"] == split for r in rows):
            yaml += [f"  - split: {split}", f"    path: data/{split}/*.parquet"]
    yaml += ["---", ""]
    parts = [
        f"# {name}", "", description, "",
        "Rebuild it byte for byte (fetched packages are pinned; same seed → same files):", "",
        f"```bash\n{command}\n```", "",
        "## Build", "", markdown_table(["setting", "value"], [[k, f"`{v}`"] for k, v in info.items()]), "",
        "## Columns", "",
        "`id`, `category`, `source` (the adapter), `kind` (`natural`: one document cut at its own structure; "
        "`concat`: independent units of one source, unmarked topic shifts), `text`, `n_tokens`, `boundaries` "
        "(`coarse` ⊆ `medium` ⊆ `fine`: character offsets where a new block starts, sorted, never 0, strictly "
        "inside the text), `markup` (the text shows its "
        "source's headings/separators), `documents` (source document ids).", "",
        "## Sources", "",
        markdown_table(["source", "category", "packages", "documents", "tokens", "licence", "what"],
                       [[s["name"], s["category"], s["packages"], s["documents"], s["tokens"], s["license"],
                         s["description"]] for s in sources]), "",
        "## Counts", "",
        markdown_table(list(counts[0]), [list(c.values()) for c in counts]), "",
        "`natural`: instances cut from one document; `markup`: instances whose text keeps headings; "
        "`mean_*`: boundaries per instance.", "",
        "## Length histogram (instances per length bucket, tokens)", "",
        markdown_table(["category", *bucket_labels()], [[k, *v] for k, v in hist.items()]), "",
        "![category × length](lengths.png)", "",
    ]
    if notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    path.write_text("\n".join(yaml + parts))
