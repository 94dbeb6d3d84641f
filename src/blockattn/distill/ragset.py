"""RAG-shaped training rows: [instruction prefix, document 1, ..., document n, question + answer], one
request per row, the answer being the teacher's own (generated under full attention before training).

Stored as token blocks only (a BlockCorpus whose text j is request j) plus, per request, where the answer
starts in its final block; so distill/ needs neither the prompt builder nor the generator. The files are
written by `blockattn.experiments.teacher` and read by the trainer (config data.rag_path, data.rag_fraction).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from blockattn.distill.corpus import BlockCorpus
from blockattn.distill.rows import Row
from blockattn.errors import UserError

_TAG = 0x7A6  # separates the RAG draws from other streams seeded by (seed, row)


@dataclass(frozen=True)
class RagSet:
    corpus: BlockCorpus  # text j = request j's blocks; its last block = question + answer
    answer_start: np.ndarray  # (n,) offset of the answer's first token in request j's final block

    @staticmethod
    def from_requests(requests: Sequence[tuple[Sequence[Sequence[int]], Sequence[int]]]) -> "RagSet":
        """requests[j] = (blocks [prefix, docs..., question block], answer tokens)."""
        texts, starts = [], []
        for blocks, answer in requests:
            if not answer:
                continue  # an empty answer gives no target
            *context, question = [list(b) for b in blocks]
            texts.append([b for b in context if b] + [question + list(answer)])
            starts.append(len(question))
        return RagSet(BlockCorpus.from_texts(texts), np.array(starts, dtype=np.int64))

    @property
    def n(self) -> int:
        return self.corpus.n_texts

    def row(self, j: int) -> tuple[Row, int]:
        """(row of request j, first loss position in its final block: the token before the answer's first,
        whose next-token distribution is the answer's first token)."""
        return Row(tuple(self.corpus.text_spans(j))), int(self.answer_start[j]) - 1

    def fitting(self, capacity: int, sink_cost: int) -> "RagSet":
        """The requests whose row fits `capacity` tokens with sinks on every context block."""
        keep = [j for j in range(self.n)
                if self.row(j)[0].n_tokens + sink_cost * (len(self.corpus.text_spans(j)) - 1) <= capacity]
        if not keep:
            raise UserError(f"no RAG request fits a row of {capacity} tokens; raise data.seq_len")
        texts = [[self.corpus.tokens[s:e].tolist() for s, e in self.corpus.text_spans(j)] for j in keep]
        return RagSet(BlockCorpus.from_texts(texts), self.answer_start[keep])

    def save(self, path: str | Path) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp.npz")
        np.savez_compressed(tmp, **self.corpus.arrays("rag"), answer_start=self.answer_start)
        tmp.replace(out)
        return out


def load_ragset(path: str | Path) -> RagSet:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"RAG set {p}: no such file (the teacher pre-pass writes it)")
    with np.load(p, allow_pickle=False) as arrays:
        return RagSet(BlockCorpus.from_arrays(arrays, "rag"), np.asarray(arrays["answer_start"]).astype(np.int64))


def rag_choice(fraction: float, n: int, seed: int, row_index: int) -> int | None:
    """Which RAG request global row `row_index` holds, or None for a text-continuation row: a counter-based
    draw (like block dropout), so resumed runs and any world size see the same mix."""
    if n == 0 or fraction <= 0:
        return None
    rng = np.random.default_rng([seed, row_index, _TAG])
    return int(rng.integers(n)) if rng.random() < fraction else None
