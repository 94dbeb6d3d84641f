"""Candidate cut points: the only places a segmenter may start a new block.

A candidate is a character offset `c` with `0 < c < len(text)`, right after a unit's last visible character
and right before the whitespace that follows it (that whitespace goes to the next block; see tokens.py for
why this keeps token counts exact). Units end at:

- paragraph ends: the whitespace holds two or more newlines;
- line ends: exactly one newline, unless the line is hard-wrapped prose (the sentence goes on below);
- sentence ends inside a line: . ! ? … (and CJK 。！？) not after a known abbreviation or an initial,
  followed by what can start a sentence.

Code and markup therefore get every line end; wrapped prose only gets its sentence ends, so a block never
splits a sentence. `add_word_candidates` is the one exception: it adds word boundaries inside a unit that
alone exceeds a hard `max_tokens`, because the limit is the stronger promise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

SENTENCE, LINE, PARAGRAPH, WORD = 0, 1, 2, 3
KIND_NAMES = ("sentence", "line", "paragraph", "word")

# Runs of whitespace that hold a newline, each found once from its first character (the lookbehind keeps
# finditer from retrying every position inside a long run).
_NEWLINE_RUN = re.compile(r"(?<!\s)[^\S\n]*+\n\s*+")
# A sentence terminator with its closing quotes/brackets, followed by spaces within the line.
_SENTENCE_END = re.compile(r"(?:[.!?]+|…)[\"'”’)\]]*+(?=[^\S\n]+(\S))")
_CJK_END = re.compile(r"[。！？]+[」』）\"”]*+(?=[^\s。！？])")
_WORD_BEFORE = re.compile(r"(\w+)\W*$")
_SENTENCE_OPENERS = "\"'“‘([¿¡"
# Words that end with a period without ending a sentence (English, which dominates the corpus).
_ABBREVIATIONS = frozenset("""
mr mrs ms dr prof sr jr st vs etc eg ie cf al fig figs no nos vol vols pp ch sec art ed eds approx
inc ltd co corp dept est jan feb mar apr jun jul aug sep sept oct nov dec mt ft op viz resp gen col capt
lt sgt rev hon gov pres e.g i.e
""".split())
# Hard-wrapped prose: a line at least this fraction of the text's typical full line, made of prose characters.
_WRAP_FRACTION = 0.6
_MIN_WRAP_WIDTH = 40
_CODE_CHARS = frozenset("=_{}<>|\\#$@;`")


@dataclass(frozen=True)
class Candidates:
    """Candidate offsets of one text, strictly increasing, each with its kind (SENTENCE/LINE/PARAGRAPH/WORD)."""

    offsets: np.ndarray  # (n,) int64
    kinds: np.ndarray  # (n,) int8

    def __len__(self) -> int:
        return len(self.offsets)

    def of_kind(self, *kinds: int) -> np.ndarray:
        """Offsets of the candidates of the given kinds."""
        return self.offsets[np.isin(self.kinds, kinds)]


def _typical_line_width(text: str) -> int:
    """95th percentile of line lengths: the wrap width of hard-wrapped text."""
    lengths = np.fromiter((len(line) for line in text.split("\n") if line.strip()), dtype=np.int64)
    return int(np.percentile(lengths, 95)) if len(lengths) else 0


def _is_wrapped_prose(line: str, next_char: str, wrap_width: int) -> bool:
    """True when `line` is cut by hard wrapping in the middle of a sentence, so its end is no candidate."""
    body = line.strip()
    if wrap_width < _MIN_WRAP_WIDTH or len(line) < _WRAP_FRACTION * wrap_width or not next_char.isalpha():
        return False
    last = body.rstrip("\"'”’)]")[-1:]
    if last in ".!?:…" or not (last.isalnum() or last in ",-;"):
        return False
    return not any(ch in _CODE_CHARS for ch in body)


def _ends_sentence(text: str, end: int, next_char: str) -> bool:
    """Whether the terminator ending at `end` closes a sentence that `next_char` opens."""
    if not (next_char.isupper() or next_char.isdigit() or next_char in _SENTENCE_OPENERS
            or (next_char.isalpha() and not next_char.islower())):  # scripts without case
        return False
    stem = text[max(0, end - 24):end].rstrip("\"'”’)]")
    if not stem.endswith("."):
        return True
    word = _WORD_BEFORE.search(stem[:-1] + " ")
    if word is None:
        return True
    token = word.group(1)
    return not (token.lower() in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()))


def find_candidates(text: str) -> Candidates:
    """All candidates of `text` (see the module docstring for the rules)."""
    found: dict[int, int] = {}
    width = _typical_line_width(text)
    for run in _NEWLINE_RUN.finditer(text):
        start, end = run.span()
        if start == 0 or end >= len(text):
            continue  # leading or trailing whitespace: nothing to cut between
        if run.group().count("\n") >= 2:
            found[start] = PARAGRAPH
            continue
        line = text[text.rfind("\n", 0, start) + 1:start]
        if not _is_wrapped_prose(line, text[end], width):
            found[start] = LINE
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if end not in found and _ends_sentence(text, end, match.group(1)):
            found[end] = SENTENCE
    for match in _CJK_END.finditer(text):
        found.setdefault(match.end(), SENTENCE)
    offsets = np.fromiter(sorted(found), dtype=np.int64, count=len(found))
    kinds = np.fromiter((found[o] for o in offsets.tolist()), dtype=np.int8, count=len(found))
    return Candidates(offsets, kinds)


def add_word_candidates(text: str, cands: Candidates, token_starts: np.ndarray, max_tokens: int) -> Candidates:
    """Add WORD candidates inside every unit longer than `max_tokens` tokens, so that a hard maximum can hold.

    Word candidates sit before a whitespace run inside the unit (token-exact, like the others), or at a token
    start where a unit has no whitespace at all (a minified line): then every piece is at most `max_tokens`.
    """
    bounds = np.concatenate([[0], cands.offsets, [len(text)]])
    tok = np.searchsorted(token_starts, bounds, side="left")
    long_units = np.flatnonzero(np.diff(tok) > max_tokens)
    if len(long_units) == 0:
        return cands
    extra: list[int] = []
    for u in long_units.tolist():
        a, b = int(bounds[u]), int(bounds[u + 1])
        spaces = [m.start() for m in re.finditer(r"(?<!\s)\s", text[a:b]) if m.start() > 0]
        points = np.asarray(spaces, dtype=np.int64) + a
        inner = token_starts[tok[u] + 1:tok[u + 1]]
        # Word starts where they exist; token starts fill any stretch longer than max_tokens between them.
        extra.extend(points.tolist())
        extra.extend(_fill_gaps(np.concatenate([[a], points, [b]]), inner, max_tokens))
    offsets = np.concatenate([cands.offsets, np.asarray(extra, dtype=np.int64)])
    kinds = np.concatenate([cands.kinds, np.full(len(extra), WORD, dtype=np.int8)])
    offsets, first = np.unique(offsets, return_index=True)
    keep = (offsets > 0) & (offsets < len(text))
    return Candidates(offsets[keep], kinds[first][keep])


def _fill_gaps(points: np.ndarray, token_starts: np.ndarray, max_tokens: int) -> list[int]:
    """Token starts that break every stretch between consecutive `points` into runs of ≤ max_tokens tokens."""
    out: list[int] = []
    for a, b in zip(points[:-1].tolist(), points[1:].tolist()):
        inside = token_starts[(token_starts > a) & (token_starts < b)]
        out.extend(np.unique(inside)[max_tokens - 1::max_tokens].tolist())
    return out
