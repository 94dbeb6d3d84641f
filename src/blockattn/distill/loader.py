"""Batches for step after step, built ahead on a background thread.

Batch i of a run is a pure function of (corpus, config, global row offset, rank): rows
[first_row + i·B·world + rank·B, … + B) of the `RowStream`, block-dropout flags keyed by each row's global
index. Nothing else is carried, so a resumed run, or a run on another number of processes, sees the same
rows in the same order.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

import torch

from blockattn.distill.batch import Batch, collate
from blockattn.distill.corpus import BlockCorpus
from blockattn.distill.dropout import query_flags
from blockattn.distill.ragset import RagSet, rag_choice
from blockattn.distill.rows import RowStream, row_budget


class BatchLoader:
    def __init__(self, corpus: BlockCorpus, seq_len: int, batch_size: int, block_dropout: float,
                 sinks_per_block: int, shared_sink: int, pad_id: int, seed: int, rank: int = 0, world_size: int = 1,
                 rag: RagSet | None = None, rag_fraction: float = 0.0):
        self.corpus = corpus
        budget = row_budget(seq_len, sinks_per_block, shared_sink)
        self.stream = RowStream(corpus, *budget, seed)
        self.rag = rag.fitting(*budget) if rag is not None and rag_fraction > 0 else None
        self.rag_fraction = rag_fraction if self.rag is not None else 0.0
        self.seq_len, self.batch_size, self.block_dropout = seq_len, batch_size, block_dropout
        self.sinks_per_block, self.shared_sink, self.pad_id, self.seed = sinks_per_block, shared_sink, pad_id, seed
        self.rank, self.world_size = rank, world_size

    @property
    def rows_per_step(self) -> int:
        """Rows consumed by one step over all processes."""
        return self.batch_size * self.world_size

    def batch(self, first_row: int) -> Batch:
        """This process's batch of the step whose rows start at global row `first_row`."""
        start = first_row + self.rank * self.batch_size
        indices = range(start, start + self.batch_size)
        rows, flags, corpora, loss_from = [], [], [], []
        for i in indices:
            pick = rag_choice(self.rag_fraction, self.rag.n if self.rag else 0, self.seed, i)
            if pick is None:
                row = self.stream.row(i)
                rows.append(row)
                flags.append(query_flags(len(row.spans), self.block_dropout, self.seed, i))
                corpora.append(self.corpus)
                loss_from.append(None)
            else:
                row, first = self.rag.row(pick)
                rows.append(row)
                flags.append([False] * (len(row.spans) - 1) + [True])  # the documents stay context blocks
                corpora.append(self.rag.corpus)
                loss_from.append(first)
        return collate(corpora, rows, flags, self.sinks_per_block, self.shared_sink, self.seq_len, self.pad_id,
                       loss_from=loss_from if self.rag_fraction else None)

    def iterate(self, first_row: int, device: torch.device, prefetch: int = 3) -> Iterator[Batch]:
        """Batches of consecutive steps from `first_row` on, built `prefetch` steps ahead on a thread (CPU
        collation overlaps the device's work) and moved to `device`."""
        ready: queue.Queue = queue.Queue(maxsize=prefetch)
        stop = threading.Event()

        def produce():
            row = first_row
            while not stop.is_set():
                try:
                    item = self.batch(row)
                except Exception as exc:  # surfaced in the consumer, with its traceback
                    ready.put(exc)
                    return
                ready.put(item)
                row += self.rows_per_step

        worker = threading.Thread(target=produce, name="blockattn-batches", daemon=True)
        worker.start()
        try:
            while True:
                item = ready.get()
                if isinstance(item, Exception):
                    raise item
                yield item.to(device)
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    ready.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.05)
