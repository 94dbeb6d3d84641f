"""Token counting with the default model's tokenizer (SmolLM2-135M-Instruct), fast enough for bulk use.

Two ways, one answer:
- `count_tokens(texts)`: encode and count (the `tokenizers` library on tokenizer.json directly; transformers'
  AutoTokenizer costs seconds to import).
- `PieceCounts` + `instance_tokens`: count each document piece once, then add counts up. This is exact
  because the tokenizer's pre-tokenizer (GPT-2's byte-level regex) never lets a pre-token cross a run of
  whitespace except at the run's last character. Cut the text just before the last character of every
  whitespace run between two pieces:

      ...end of piece.\\n\\n    def next_piece      →   [...end of piece.] [\\n\\n   ] [ def next_piece ...]
                     └run─────┘                         piece i's core    run[:-1]   run[-1] + piece i+1

  and every pre-token lies inside one part, so count(text) = Σ parts. A piece whose edges hold other Unicode
  whitespace (which the regex may also treat as whitespace) is marked unsafe and its instances are counted
  whole. The builder re-counts a fixed sample of instances whole and stops on any difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from blockattn.models import DEFAULT_MODEL, resolve

_RUN_CHARS = " \t\n"


@lru_cache(maxsize=1)
def _tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(resolve(DEFAULT_MODEL)) / "tokenizer.json"))


def count_tokens(texts: list[str]) -> list[int]:
    """Exact token counts (no special tokens added), as the default model would see the texts."""
    if not texts:
        return []
    return [len(e.ids) for e in _tokenizer().encode_batch_fast(texts, add_special_tokens=False)]


def tokenizer_name() -> str:
    return DEFAULT_MODEL


def _split(rendered: str) -> tuple[str, str, str, bool]:
    """(leading run, core, trailing run, safe) of a rendered piece."""
    core = rendered.strip(_RUN_CHARS)
    lead = rendered[: len(rendered) - len(rendered.lstrip(_RUN_CHARS))]
    trail = rendered[len(lead) + len(core):]
    safe = bool(core) and not core[0].isspace() and not core[-1].isspace() and trail != "" \
        and set(trail) == {"\n"}
    return lead, core, trail, safe


@dataclass
class PieceCounts:
    """Per piece of one document, for markup kept (`_m`) and stripped (`_p`): tokens of the part that starts
    with the last character of the run before it (the piece's own last leading blank, else a newline), and
    the piece's leading and trailing runs."""

    count_p: np.ndarray
    count_m: np.ndarray
    lead_p: list[str]
    lead_m: list[str]
    trail: list[str]
    safe: np.ndarray


def piece_counts(documents) -> list[PieceCounts]:
    """Count every piece of every document once (both markup variants), batched."""
    parts, layout = [], []
    for doc in documents:
        rows = []
        for piece in doc.pieces:
            lead_p, core_p, trail, safe_p = _split(piece.text)
            lead_m, core_m, _, safe_m = _split(piece.heading + piece.text)
            parts.append((lead_p[-1:] or "\n") + core_p)
            parts.append((lead_m[-1:] or "\n") + core_m if piece.heading else None)
            rows.append((lead_p, lead_m, trail, safe_p and safe_m))
        layout.append(rows)
    texts = [p for p in parts if p is not None]
    counts = iter(count_tokens(texts))
    flat = [next(counts) if p is not None else None for p in parts]
    out, k = [], 0
    for rows in layout:
        n = len(rows)
        plain = np.array(flat[k:k + 2 * n:2], dtype=np.int32)
        marked = np.array([m if m is not None else p for p, m in zip(flat[k:k + 2 * n:2], flat[k + 1:k + 2 * n:2])],
                          dtype=np.int32)
        k += 2 * n
        out.append(PieceCounts(plain, marked, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                               np.array([r[3] for r in rows], dtype=bool)))
    return out


class RunCounter:
    """Token counts of whitespace runs (few distinct strings: memoised)."""

    def __init__(self):
        self.cache: dict[str, int] = {"": 0}

    def __call__(self, run: str) -> int:
        if run not in self.cache:
            self.cache[run] = count_tokens([run])[0]
        return self.cache[run]


def instance_tokens(parts: list[tuple[PieceCounts, int, bool]], runs: RunCounter) -> int | None:
    """Exact tokens of the instance text made of pieces (counts, piece index, heading shown), joined and
    ending with one newline — or None if a piece is unsafe (then count the text itself)."""
    total, prev_trail = 0, None
    for counts, i, shown in parts:
        if not counts.safe[i]:
            return None
        lead = counts.lead_m[i] if shown else counts.lead_p[i]
        count = int(counts.count_m[i] if shown else counts.count_p[i])
        run = lead if prev_trail is None else prev_trail + lead
        total += runs(run[:-1])
        total += count - 1 if prev_trail is None and not lead else count  # the first piece borrows no newline
        prev_trail = counts.trail[i]
    return total + 1  # the text's final newline
