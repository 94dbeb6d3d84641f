"""Turning documents into SemanticSeg instances: a text with nested gold boundaries.

Two kinds, mixed (issue 3):

    natural  one document, a window of consecutive pieces starting at one of its boundaries:
             gold boundaries are the document's own (chapter, section, definition, ...)
    concat   units (coarse spans) of documents of one source, one after another, unmarked topic shifts
             as in Wiki-727k. Where the source has sections (`blockattn.data.hierarchy.section_of`: a
             book, a file, a fortune file, a president, ...), runs of units of one section follow each
             other (issue 14): a new section is a coarse boundary, a new unit medium, a unit's own
             boundaries fine. Elsewhere every unit start is coarse and the units' inner structure gives
             the medium and fine ones. Units may be cut short, at a piece border

Guarantees of `render` (and so of every instance): boundaries are character offsets where a block starts,
sorted, unique, strictly inside the text (never 0), coarse ⊆ medium ⊆ fine, no block is empty or blank;
with markup off no piece heading appears in the text.

Lengths are planned with exact per-piece token counts; `Planner` promises a candidate as close to its
target as piece borders allow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blockattn.data.documents import COARSE, FINE, MEDIUM, NONE, Document, Piece
from blockattn.data.hierarchy import section_of
from blockattn.data.tokens import PieceCounts, RunCounter, instance_tokens


@dataclass
class Candidate:
    text: str
    boundaries: dict[str, list[int]]   # "coarse" / "medium" / "fine" → sorted offsets
    markup: bool                       # the text shows its source's headings/separators
    kind: str                          # "natural" | "concat"
    documents: list[str]               # ids of the documents it draws from
    source: str                        # the adapter they come from
    n_tokens: int | None               # exact tokens, or None: count the text


def render(parts: list[tuple[Piece, int]], markup: bool) -> tuple[str, dict[str, list[int]], bool]:
    """(piece, boundary level before it) pairs → text, nested boundaries, and whether any markup shows."""
    chunks, offsets = [], {"coarse": [], "medium": [], "fine": []}
    pos, shown = 0, False
    for i, (piece, level) in enumerate(parts):
        if i > 0 and level <= FINE:
            offsets["fine"].append(pos)
            if level <= 1:
                offsets["medium"].append(pos)
            if level == COARSE:
                offsets["coarse"].append(pos)
        chunk = piece.render(markup)
        shown |= markup and bool(piece.heading)
        chunks.append(chunk)
        pos += len(chunk)
    # Every piece ends with a blank line; the text ends with one newline.
    return "".join(chunks).rstrip("\n") + "\n", offsets, shown


class Planner:
    """Draws candidates for one category and split from its documents.

    `counts` (parallel to `documents`) holds each piece's exact tokens; a candidate's `n_tokens` is exact
    (see `blockattn.data.tokens`), or None where a piece is unsafe to add up and the text must be counted.
    """

    def __init__(self, documents: list[Document], counts: list[PieceCounts]):
        self.documents, self.counts = documents, counts
        self.runs = RunCounter()
        self.tokens = [c.count_p.astype(float) for c in counts]
        self.heading_tokens = [(c.count_m - c.count_p).astype(float) for c in counts]
        # Cumulative sizes, for "how much text lies after this piece".
        self.cum = [np.concatenate([[0.0], np.cumsum(t + h)]) for t, h in zip(self.tokens, self.heading_tokens)]
        self.sizes = np.array([c[-1] for c in self.cum])
        # Units: coarse spans (doc index, first piece, end piece).
        # Units per source: concatenations draw from one source, since a change of source (style,
        # translation, format) would give the topic shift away.
        self.units: dict[str, list[tuple[int, int, int]]] = {}
        docs_per_source: dict[str, int] = {}
        for d, doc in enumerate(documents):
            starts = [i for i, p in enumerate(doc.pieces) if p.level == COARSE or i == 0]
            self.units.setdefault(doc.source, []).extend(
                (d, a, b) for a, b in zip(starts, starts[1:] + [len(doc.pieces)]))
            docs_per_source[doc.source] = docs_per_source.get(doc.source, 0) + 1
        self.concat_sources = sorted(s for s, n in docs_per_source.items() if n >= 2)
        # Units per source and section, for sources that have sections (at least two of them).
        self.sections: dict[str, dict[str, list[tuple[int, int, int]]]] = {}
        for source, units in self.units.items():
            by_key: dict[str, list[tuple[int, int, int]]] = {}
            for unit in units:
                key = section_of(documents[unit[0]])
                if key is not None:
                    by_key.setdefault(key, []).append(unit)
            if len(by_key) >= 2:
                self.sections[source] = by_key
        source_size = np.array([sum(self.sizes[d] for d, doc in enumerate(documents) if doc.source == s)
                                for s in self.concat_sources])
        self.concat_weights = source_size / source_size.sum() if len(source_size) else source_size
        # Natural windows need a document with boundaries of its own.
        self.natural = np.array([sum(p.level <= FINE for p in doc.pieces[1:]) > 0 for doc in documents])

    def _piece_size(self, d: int, i: int, markup: bool) -> float:
        return self.tokens[d][i] + (self.heading_tokens[d][i] if markup else 0.0)

    def natural_candidate(self, target: float, markup: bool, rng: np.random.Generator) -> Candidate | None:
        fits = np.flatnonzero(self.natural & (self.sizes >= target))
        if len(fits) == 0:
            return None
        weights = self.sizes[fits] / self.sizes[fits].sum()
        d = int(fits[rng.choice(len(fits), p=weights)])
        doc, cum = self.documents[d], self.cum[d]
        # Start at a boundary of the document with enough text after it: coarse if possible.
        room = cum[-1] - cum[:-1] >= target * 0.98
        for max_level in (COARSE, FINE, NONE):
            starts = [i for i, p in enumerate(doc.pieces) if (p.level <= max_level or i == 0) and room[i]]
            if starts and (max_level == NONE or rng.random() < 0.8):
                break
        if not starts:
            return None
        start = starts[rng.integers(len(starts))]
        parts, size = [], 0.0
        for i in range(start, len(doc.pieces)):
            step = self._piece_size(d, i, markup)
            if parts and _overshoots(size, step, target):
                break
            parts.append((d, i, doc.pieces[i].level))
            size += step
        if not any(level <= FINE for _, _, level in parts[1:]):
            return None  # a window inside one block teaches nothing about boundaries
        return self._candidate(parts, markup, "natural")

    def concat_candidate(self, target: float, markup: bool, rng: np.random.Generator) -> Candidate | None:
        if not self.concat_sources:
            return None
        source = self.concat_sources[rng.choice(len(self.concat_sources), p=self.concat_weights)]
        if source in self.sections:
            return self._sectioned_candidate(self.sections[source], target, markup, rng)
        units = self.units[source]
        parts: list[tuple[int, int, int]] = []
        used_docs: list[int] = []
        used, size, misses = set(), 0.0, 0
        while size < target * 0.98 and misses < 30:  # 30 draws in a row that fit nowhere: full enough
            d, a, b = units[rng.integers(len(units))]
            if d in used:
                misses += 1
                continue
            # The first unit takes at most part of the budget, so every instance holds at least two units.
            budget = (target * rng.uniform(0.25, 0.75) if not parts else target - size)
            taken, taken_size = [], 0.0
            for i in range(a, b):
                step = self._piece_size(d, i, markup)
                if _overshoots(taken_size, step, budget):
                    break
                taken.append(i)
                taken_size += step
            if not taken:
                misses += 1
                continue
            doc = self.documents[d]
            parts += [(d, i, COARSE if i == taken[0] else doc.pieces[i].level) for i in taken]
            used_docs.append(d)
            used.add(d)
            size += taken_size
            misses = 0
            if len(used_docs) > 1 and taken[-1] + 1 < b:  # a later unit cut short ends the instance
                break
        if len(used_docs) < 2:
            return None
        return self._candidate(parts, markup, "concat")

    def _sectioned_candidate(self, sections: dict[str, list[tuple[int, int, int]]], target: float, markup: bool,
                             rng: np.random.Generator) -> Candidate | None:
        """Runs of units of one section after another (2 to 6 sections, each about an equal share of the
        target); within a run, units keep their order in the source (chapters of a book, definitions of a
        file, entries of a letter)."""
        keys = sorted(sections)
        weights = np.array([len(sections[k]) for k in keys], dtype=float)
        weights /= weights.sum()
        share = target / int(rng.integers(2, 7))
        parts: list[tuple[int, int, int]] = []
        used: set[tuple[int, int]] = set()
        size, last, runs, misses = 0.0, None, 0, 0
        while size < target * 0.98 and misses < 30:  # 30 draws in a row that fit nowhere: full enough
            key = keys[rng.choice(len(keys), p=weights)]
            if key == last:
                misses += 1
                continue
            pool = sections[key]
            budget = min(share, target - size)
            run: list[tuple[int, list[int]]] = []
            run_size = 0.0
            for j in rng.permutation(len(pool))[:64]:  # a bounded look into big sections
                d, a, b = pool[j]
                if (d, a) in used:
                    continue
                # One unit takes at most 40 % of the target, so long units (a speech, a chapter) leave room
                # for a second unit of the section.
                unit_budget = min(budget - run_size, target * rng.uniform(0.1, 0.4))
                taken, taken_size = [], 0.0
                for i in range(a, b):
                    step = self._piece_size(d, i, markup)
                    if _overshoots(taken_size, step, unit_budget):
                        break
                    taken.append(i)
                    taken_size += step
                if taken:
                    run.append((d, taken))
                    used.add((d, a))
                    run_size += taken_size
                if run_size >= budget * 0.98:
                    break
            if not run:
                misses += 1
                continue
            for u, (d, taken) in enumerate(sorted(run)):
                pieces = self.documents[d].pieces
                parts += [(d, i, (COARSE if u == 0 else MEDIUM) if i == taken[0]
                           else (FINE if pieces[i].level <= FINE else NONE)) for i in taken]
            size += run_size
            last, runs, misses = key, runs + 1, 0
        if runs < 2:
            return None
        return self._candidate(parts, markup, "concat")

    def _candidate(self, parts: list[tuple[int, int, int]], markup: bool, kind: str) -> Candidate:
        """(doc index, piece index, boundary level) triples → the rendered candidate with its exact size."""
        pieces = [(self.documents[d].pieces[i], level) for d, i, level in parts]
        text, bounds, shown = render(pieces, markup)
        n_tokens = instance_tokens([(self.counts[d], i, markup and bool(self.documents[d].pieces[i].heading))
                                    for d, i, _ in parts], self.runs)
        doc_ids = list(dict.fromkeys(self.documents[d].id for d, _, _ in parts))
        return Candidate(text, bounds, shown, kind, doc_ids, self.documents[parts[0][0]].source, n_tokens)

    def natural_possible(self, target: float) -> bool:
        return bool(np.any(self.natural & (self.sizes >= target)))


def _overshoots(size: float, step: float, target: float) -> bool:
    """Whether adding a piece of `step` tokens lands further from `target` than stopping: windows end as
    close to their target as pieces allow, above or below, so lengths near the range's ends are not biased."""
    return size + step - target > target - size


def log_uniform(rng: np.random.Generator, low: int, high: int) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))
