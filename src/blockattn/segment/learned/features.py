"""Features of the units between candidates, for the learned segmenter (numpy only).

Unit u is the text from candidate u−1 (or the start) to candidate u (or the end): it starts with the
whitespace that separates it from unit u−1. The model predicts, at every unit u ≥ 1, whether a block
starts there, i.e. whether candidate u−1 is a boundary. Each unit is described by

    content (3·D): direction of its tokens' summed static embeddings; its first and last visible tokens
    scalars (N_SCALARS): the separator before it (candidate kind, newlines, indentation), its size,
        character classes, how its first and last visible characters look, and how similar the text
        just before and just after its start is (cosine of summed embeddings over 1..32 units each side)
    lexical (optional, one per window of `lexical_windows`): the same cosine over hashed bags of words, each
        token weighted by its embedding's norm (its rarity weight): the repetition of exact terms that
        TextTiling measures, which the static embeddings blur. On the unmarked texts of the two unseen sets,
        as a boundary score alone, it ranked gold boundaries a little better than the embedding cosine
        (average precision 0.136 against 0.116 over 16 units, 69 documents; analysis of 2026-12-07). A tagger
        trained with them was no better on either unseen set (reports/segmentation_train.json, not shipped)

Features of units [lo, hi) depend only on the text within SIM_WINDOWS[-1] units around them, so long
documents are featurised in chunks with bounded memory.
"""

from __future__ import annotations

import numpy as np

from blockattn.segment.document import Document
from blockattn.segment.learned.embeddings import StaticEmbeddings

SIM_WINDOWS = (1, 2, 4, 8, 16, 32)
LEXICAL_BUCKETS = 512  # hashed vocabulary of the lexical cohesion features
_N_KINDS = 5  # no separator (first unit), sentence, line, paragraph, word
_FIRST_CLASSES = 6  # upper, lower, digit, markup, opening bracket/quote, other
_LAST_CLASSES = 6  # terminator, colon, comma/semicolon, closing bracket/quote, alphanumeric, other
N_SCALARS = _N_KINDS + 4 + 1 + 1 + 1 + 4 + _FIRST_CLASSES + _LAST_CLASSES + len(SIM_WINDOWS)


def _ascii_table(groups: list[str], default: int) -> np.ndarray:
    table = np.full(128, default, dtype=np.int64)
    for cls, chars in enumerate(groups):
        table[[ord(c) for c in chars]] = cls
    return table


_UPPER, _LOWER, _DIGIT = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "0123456789"
_FIRST_TABLE = _ascii_table([_UPPER, _LOWER, _DIGIT, "#=*-+>|`~_%@$", "([{\"'<"], default=5)
_LAST_TABLE = _ascii_table([".!?", ":", ",;", ")]}\"'>", _UPPER + _LOWER + _DIGIT], default=5)
_PUNCT = frozenset(range(33, 127)) - {ord(c) for c in _UPPER + _LOWER + _DIGIT}
_CJK_TERMINATORS = {ord(c) for c in "。！？…"}


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)


def _first_class(cp: np.ndarray) -> np.ndarray:
    ascii_cls = _FIRST_TABLE[np.minimum(cp, 127)]
    return np.where(cp < 128, ascii_cls, 1)  # other scripts start like a lower-case word


def _last_class(cp: np.ndarray) -> np.ndarray:
    ascii_cls = _LAST_TABLE[np.minimum(cp, 127)]
    return np.where(cp < 128, ascii_cls, np.where(np.isin(cp, list(_CJK_TERMINATORS)), 0, 4))


def _one_hot(index: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((len(index), n), dtype=np.float32)
    out[np.arange(len(index)), index] = 1.0
    return out


def _unit_vectors(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-9)


def unit_count(doc: Document) -> int:
    return len(doc.candidates) + 1


def feature_count(embedding_dim: int, lexical_windows: tuple[int, ...] = ()) -> int:
    return 3 * embedding_dim + N_SCALARS + len(lexical_windows)


def unit_features(doc: Document, emb: StaticEmbeddings, lo: int = 0, hi: int | None = None,
                  lexical_windows: tuple[int, ...] = ()) -> np.ndarray:
    """(hi − lo, feature_count(D, lexical_windows)) float32 features of units [lo, hi) (default: all units)."""
    n_units = unit_count(doc)
    hi = n_units if hi is None else hi
    margin = max((SIM_WINDOWS[-1], *lexical_windows))
    a, b = max(0, lo - margin), min(n_units, hi + margin)  # units whose embeddings the similarities need
    bounds = np.concatenate([[0], doc.candidates.offsets, [len(doc.text)]])[a:b + 1]  # (b−a+1,) chars
    kinds = np.concatenate([[-1], doc.candidates.kinds])[a:b].astype(np.int64) + 1  # separator before unit
    tok = doc.tokens.before(bounds)  # (b−a+1,) token bounds
    ids = doc.tokens.ids[tok[0]:tok[-1]]
    tok = tok - tok[0]
    content, sums = _content(ids, tok, emb)
    sims = _similarities(sums)  # (b−a, len(SIM_WINDOWS))
    scalars = _scalars(doc.text[bounds[0]:bounds[-1]], bounds - bounds[0], kinds, np.diff(tok))
    keep = slice(lo - a, hi - a)
    parts = [content[keep], scalars[keep], sims[keep]]
    if lexical_windows:
        parts.append(_lexical(ids, tok, emb, lexical_windows)[keep])
    return np.concatenate(parts, axis=1)


def _lexical(ids: np.ndarray, tok: np.ndarray, emb: StaticEmbeddings, windows: tuple[int, ...]) -> np.ndarray:
    """(U, len(windows)) cosine of the hashed, rarity-weighted bags of words of the w units before unit u and
    the w units from u on (0 at u=0)."""
    n_units = len(tok) - 1
    weight = np.linalg.norm(emb.lookup(ids), axis=1) if len(ids) else np.zeros(0)  # 0 for blank tokens
    unit = np.repeat(np.arange(n_units), np.diff(tok))
    bucket = (ids.astype(np.int64) * 2654435761) % LEXICAL_BUCKETS  # Knuth's multiplicative hash
    bags = np.bincount(unit * LEXICAL_BUCKETS + bucket, weights=weight, minlength=n_units * LEXICAL_BUCKETS)
    return _similarities(bags.reshape(n_units, LEXICAL_BUCKETS).astype(np.float32), windows)


def _content(ids: np.ndarray, tok: np.ndarray, emb: StaticEmbeddings) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: [direction of summed embeddings | first visible token | last visible token] (U, 3D), and
    the summed embeddings themselves (U, D)."""
    n_units = len(tok) - 1
    rows = emb.lookup(ids)  # (T, D)
    sums = np.add.reduceat(rows, tok[:-1], axis=0) if len(ids) else np.zeros((n_units, emb.dim), np.float32)
    visible = ~emb.blank[ids]
    t = np.arange(len(ids))
    next_visible = np.minimum.accumulate(np.where(visible, t, len(ids))[::-1])[::-1]
    prev_visible = np.maximum.accumulate(np.where(visible, t, -1))
    first = np.append(next_visible, len(ids))[tok[:-1]]
    last = prev_visible[tok[1:] - 1]
    has_first, has_last = first < tok[1:], last >= tok[:-1]
    first_ids = ids[np.where(has_first, first, 0)] if len(ids) else np.zeros(n_units, np.int64)
    last_ids = ids[np.where(has_last, last, 0)] if len(ids) else np.zeros(n_units, np.int64)
    first_rows = np.where(has_first[:, None], _unit_vectors(emb.lookup(first_ids)), 0.0)
    last_rows = np.where(has_last[:, None], _unit_vectors(emb.lookup(last_ids)), 0.0)
    content = np.concatenate([_unit_vectors(sums), first_rows, last_rows], axis=1).astype(np.float32)
    return content, sums


def _similarities(sums: np.ndarray, windows: tuple[int, ...] = SIM_WINDOWS) -> np.ndarray:
    """(U, len(windows)) cosine between the w units before unit u and the w units from u on (0 at u=0)."""
    n = len(sums)
    cum = np.concatenate([np.zeros((1, sums.shape[1]), np.float32), np.cumsum(sums, axis=0)])  # (U+1, D)
    u = np.arange(n)
    out = np.zeros((n, len(windows)), dtype=np.float32)
    for j, w in enumerate(windows):
        left = cum[u] - cum[np.maximum(u - w, 0)]
        right = cum[np.minimum(u + w, n)] - cum[u]
        out[:, j] = np.sum(_unit_vectors(left) * _unit_vectors(right), axis=1)
    out[0] = 0.0
    return out


def _scalars(text: str, bounds: np.ndarray, kinds: np.ndarray, n_tokens: np.ndarray) -> np.ndarray:
    """(U, N_SCALARS − len(SIM_WINDOWS)) separator, size and character features of each unit of `text`."""
    cp = _code_points(text)
    n = len(cp)
    space = np.isin(cp, (9, 10, 11, 12, 13, 32, 0xA0, 0x3000))
    newline = cp == 10
    idx = np.arange(n)
    next_ns = np.append(np.minimum.accumulate(np.where(~space, idx, n)[::-1])[::-1], n)
    prev_nl = np.maximum.accumulate(np.where(newline, idx, -1))
    nl_cum = np.concatenate([[0], np.cumsum(newline)])
    start, end = bounds[:-1], bounds[1:]
    lead_end = np.minimum(next_ns[start], end)  # end of the leading whitespace (the separator)
    newlines = nl_cum[lead_end] - nl_cum[start]
    last_nl = np.where(lead_end > 0, prev_nl[np.maximum(lead_end - 1, 0)], -1)
    indent = np.where((newlines > 0) & (last_nl >= start), lead_end - last_nl - 1, 0)
    inner_lines = nl_cum[end] - nl_cum[lead_end]
    length = np.maximum(end - lead_end, 1)

    def frac(mask: np.ndarray) -> np.ndarray:
        cum = np.concatenate([[0], np.cumsum(mask)])
        return (cum[end] - cum[lead_end]) / length

    upper = (cp >= 65) & (cp <= 90)
    digit = (cp >= 48) & (cp <= 57)
    punct = np.isin(cp, list(_PUNCT))
    has_text = lead_end < end
    first_cls = np.where(has_text, _first_class(cp[np.minimum(lead_end, n - 1)]), 5)
    last_idx = np.maximum(end - 1, 0)
    prev_ns = np.maximum.accumulate(np.where(~space, idx, -1))
    last_cls = np.where(has_text, _last_class(cp[np.maximum(prev_ns[last_idx], 0)]), 5)
    return np.concatenate([
        _one_hot(kinds, _N_KINDS),
        _one_hot(np.minimum(newlines, 3), 4),
        (np.log1p(indent) / 3.0)[:, None],
        (np.log1p(n_tokens) / 5.0)[:, None],
        (np.log1p(inner_lines) / 3.0)[:, None],
        np.stack([frac(upper), frac(digit), frac(punct), frac(space)], axis=1),
        _one_hot(first_cls, _FIRST_CLASSES),
        _one_hot(last_cls, _LAST_CLASSES),
    ], axis=1).astype(np.float32)
