"""Rows: which blocks go into one training (or evaluation) sequence.

A row is a list of token spans, one per block, that fills `capacity` tokens once every block but the last
gets its sink tokens (`sink_cost` = per-block sinks + the shared sink's local copy). The last block is the
row's final query block; it needs no sinks, so a row's student sequence never exceeds `capacity`
(`row_budget` turns a sequence width and sink counts into these two numbers).

Training rows come from an endless, deterministic stream: epoch e visits every text once, in an order drawn
from (seed, e); a block that does not fit is cut, its head ends the row as the query block and its tail
starts the next row. Row i of the stream is the same whatever the batch size, world size or resume point:
a checkpoint only needs the number of rows consumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blockattn.distill.corpus import BlockCorpus

Span = tuple[int, int]  # [start, end) into BlockCorpus.tokens


def row_budget(width: int, sinks_per_block: int, shared_sink: int) -> tuple[int, int]:
    """(capacity, sink_cost) of rows that must fit `width` tokens: the shared sink prefix S sits once at the
    start of the sequence; each context block carries its k sinks and its local copy S'."""
    return width - shared_sink, sinks_per_block + shared_sink


@dataclass(frozen=True)
class Row:
    spans: tuple[Span, ...]  # one per block, in order; the last is the final query block

    @property
    def n_tokens(self) -> int:
        return sum(end - start for start, end in self.spans)


def fill_rows(spans: list[Span], capacity: int, sink_cost: int) -> list[Row]:
    """Cut a stream of block spans into rows (see the module docstring). The stream's last partial row is
    kept only if it is at least half full (a short tail would be a mostly-padding row)."""
    rows, current, used = [], [], 0
    queue = list(reversed(spans))
    while queue:
        start, end = queue.pop()
        room = capacity - used
        if end - start + sink_cost <= room:  # fits as a context block with its sinks
            current.append((start, end))
            used += end - start + sink_cost
            continue
        if room == 0:  # the row is exactly full: its last block becomes the query block (freeing its sinks)
            rows.append(Row(tuple(current)))
            current, used = [], 0
            queue.append((start, end))
            continue
        # it does not fit: its head becomes the final query block (no sinks), its tail opens the next row
        head = min(room, end - start)
        current.append((start, start + head))
        rows.append(Row(tuple(current)))
        current, used = [], 0
        if start + head < end:
            queue.append((start + head, end))
    if current and used >= capacity // 2:
        rows.append(Row(tuple(current)))
    return rows


def eval_rows(corpus: BlockCorpus, capacity: int, sink_cost: int, query_tokens: int, max_rows: int) -> list[Row]:
    """One row per text (in corpus order, up to `max_rows`): its first blocks as context, then the next
    `query_tokens` tokens as the query block. Texts too short for one context block and a full query are
    skipped, so every row measures the query on exactly `query_tokens` tokens."""
    rows = []
    for j in range(corpus.n_texts):
        if len(rows) == max_rows:
            break
        context, used = [], 0
        spans = corpus.text_spans(j)
        for start, end in spans:
            if used + end - start + sink_cost > capacity - query_tokens:
                break
            context.append((start, end))
            used += end - start + sink_cost
        if not context:
            continue
        tail_start = context[-1][1]
        text_end = spans[-1][1]
        if text_end - tail_start >= query_tokens:
            rows.append(Row((*context, (tail_start, tail_start + query_tokens))))
    return rows


class RowStream:
    """The endless deterministic sequence of training rows over `corpus` (module docstring)."""

    def __init__(self, corpus: BlockCorpus, capacity: int, sink_cost: int, seed: int):
        self.corpus, self.capacity, self.sink_cost, self.seed = corpus, capacity, sink_cost, seed
        self._epochs: list[list[Row]] = []
        self._starts = [0]  # global index of each epoch's first row

    def _epoch(self, e: int) -> list[Row]:
        while len(self._epochs) <= e:
            order = np.random.default_rng([self.seed, len(self._epochs)]).permutation(self.corpus.n_texts)
            spans = [span for j in order for span in self.corpus.text_spans(int(j))]
            rows = fill_rows(spans, self.capacity, self.sink_cost)
            if not rows:
                raise ValueError(f"the corpus ({self.corpus.n_tokens} tokens) does not fill one row of "
                                 f"{self.capacity} tokens")
            self._epochs.append(rows)
            self._starts.append(self._starts[-1] + len(rows))
        return self._epochs[e]

    def locate(self, index: int) -> tuple[int, int]:
        """(epoch, position in that epoch) of global row `index`."""
        e = 0
        while True:
            self._epoch(e)
            if index < self._starts[e + 1]:
                return e, index - self._starts[e]
            e += 1

    def row(self, index: int) -> Row:
        e, i = self.locate(index)
        return self._epochs[e][i]
