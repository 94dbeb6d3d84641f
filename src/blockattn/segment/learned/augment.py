"""Training-time variants of SemanticSeg rows for the learned segmenter (issue 14: a segmenter that holds
on text it never saw). Two cheap ones, both exact about where the gold boundaries go:

    cross_category_concat   runs of blocks from documents of 2–4 different categories, joined:
                            every seam is a boundary at all three levels (a change of kind of text is a
                            topic shift), each run keeps its own inner boundaries. SemanticSeg's own
                            concatenations only ever join units of one category.
    with_headings           a prose row whose headings were stripped gets synthetic ones, in one markup
                            style per document (Markdown `#`, underlined as in reST/setext, numbered,
                            capitals, bold): coarse blocks get a depth-1 heading, medium blocks depth 2,
                            some fine blocks depth 3. The heading text is the block's own first words, so
                            it says nothing the block does not. SemanticSeg shows each source's own
                            heading style only (~30 % of instances), and the segmenter had learned those,
                            not headings as such.

Rows are plain dicts with "id", "category", "text", "boundaries" ({level: sorted char offsets, each
the start of a block's content}); boundaries nest (coarse ⊆ medium ⊆ fine) before and after.
"""

from __future__ import annotations

import re

import numpy as np

from blockattn.segment.request import LEVELS

# Code comments look like Markdown headings and code has its own structure: no synthetic headings there.
NO_HEADING_CATEGORIES = ("python-code", "go-code", "c-code")
HEADING_STYLES = ("atx", "underline", "numbered", "caps", "bold")
_FINE_HEADING_SHARE = 0.25  # fine-only blocks that get a heading (a heading over every paragraph is rare)
_LINE_SEAM_SHARE = 0.25  # seams that are a line break, not a blank line
_TITLE_WORDS = re.compile(r"[^\W_][\w'’-]*", re.UNICODE)


def _all_levels(boundaries: dict) -> bool:
    return all(boundaries.get(lv) for lv in LEVELS)


def cross_category_concat(rows: list[dict], n: int, rng: np.random.Generator, max_chars: int = 24000,
                          parts: tuple[int, int] = (2, 4)) -> list[dict]:
    """`n` new rows, each runs of blocks from `parts` documents of as many different categories (only
    documents with gold at every level; each run at most ~max_chars / its part count, see _block_run)."""
    by_cat: dict[str, list[dict]] = {}
    for row in rows:
        if _all_levels(row["boundaries"]):
            by_cat.setdefault(row["category"], []).append(row)
    cats = sorted(by_cat)
    if len(cats) < 2:
        return []
    out = []
    for i in range(n):
        k = min(int(rng.integers(parts[0], parts[1] + 1)), len(cats))
        chosen = [cats[j] for j in rng.choice(len(cats), size=k, replace=False)]
        text, bounds, sources = "", {lv: [] for lv in LEVELS}, []
        for cat in chosen:
            row = by_cat[cat][int(rng.integers(len(by_cat[cat])))]
            piece, inner = _block_run(row, rng, max_chars // k)
            if text:
                text = text.rstrip() + ("\n" if rng.random() < _LINE_SEAM_SHARE else "\n\n")
                for lv in LEVELS:  # the seam: a boundary at every level
                    bounds[lv].append(len(text))
            for lv in LEVELS:
                bounds[lv].extend(len(text) + o for o in inner[lv])
            text += piece
            sources.append(row["id"])
        out.append({"id": f"cross-{i:05d}", "category": "cross-category", "text": text, "boundaries": bounds,
                    "documents": sources})
    return out


def _block_run(row: dict, rng: np.random.Generator, max_chars: int) -> tuple[str, dict[str, list[int]]]:
    """A random run of whole blocks of `row` of the coarsest level whose block fits in max_chars (a
    fine block however long when none does), extended up to max_chars; and the run's inner boundaries
    relative to its start."""
    text, b = row["text"], row["boundaries"]
    for level in LEVELS:
        starts = [0] + list(b[level])
        ends = list(b[level]) + [len(text)]
        first = int(rng.integers(len(starts)))
        if ends[first] - starts[first] <= max_chars:
            break
    last = first
    while last + 1 < len(starts) and ends[last + 1] - starts[first] <= max_chars:
        last += 1
    lo, hi = starts[first], ends[last]
    inner = {lv: [o - lo for o in b[lv] if lo < o < hi] for lv in LEVELS}
    return text[lo:hi], inner


def _title(block: str, rng: np.random.Generator) -> str:
    """2–6 of the block's first words (its first line), first letter upper-case; "" if it has none."""
    words = _TITLE_WORDS.findall(block.strip().split("\n", 1)[0])[:int(rng.integers(2, 7))]
    title = " ".join(words)
    return title[:1].upper() + title[1:]


def _heading(style: str, depth: int, title: str, numbers: list[int]) -> str:
    if style == "atx":
        return f"{'#' * depth} {title}\n\n"
    if style == "underline":
        return f"{title}\n{'=-~'[depth - 1] * len(title)}\n\n"
    if style == "numbered":
        return f"{'.'.join(map(str, numbers[:depth]))}{'.' if depth == 1 else ''} {title}\n\n"
    if style == "caps":
        return f"{title.upper()}\n\n"
    return f"**{title}**\n\n"  # bold


def with_headings(row: dict, rng: np.random.Generator, style: str | None = None) -> dict:
    """`row` with a synthetic heading at the start of its coarse and medium blocks (and a share of its
    fine blocks), in one style; boundaries move with the text and still mark the block starts (now the
    headings' first characters)."""
    style = style or HEADING_STYLES[int(rng.integers(len(HEADING_STYLES)))]
    text, b = row["text"], row["boundaries"]
    sets = {lv: set(b.get(lv) or ()) for lv in LEVELS}
    offsets = sorted(set().union(*sets.values()))
    pieces, shift, last, moved = [], 0, 0, {}
    numbers = [0, 0, 0]
    for o in offsets:
        depth = 1 if o in sets["coarse"] else 2 if o in sets["medium"] else 3
        title = _title(text[o:o + 200], rng)
        if title and (depth < 3 or rng.random() < _FINE_HEADING_SHARE):
            numbers[depth - 1] += 1
            numbers[depth:] = [0] * (3 - depth)
            heading = _heading(style, depth, title, [max(x, 1) for x in numbers])
            pieces += [text[last:o], heading]
            last = o
            moved[o] = o + shift
            shift += len(heading)
        else:
            moved[o] = o + shift
    pieces.append(text[last:])
    bounds = {lv: [moved[o] for o in (b.get(lv) or ())] for lv in LEVELS}
    return {**row, "id": f"{row['id']}+{style}", "text": "".join(pieces), "boundaries": bounds}


def heading_variants(rows: list[dict], share: float, rng: np.random.Generator) -> list[dict]:
    """with_headings for about `share` of the rows that show no markup and are not code."""
    eligible = [r for r in rows if not r.get("markup") and r["category"] not in NO_HEADING_CATEGORIES]
    return [with_headings(r, rng) for r in eligible if rng.random() < share]
