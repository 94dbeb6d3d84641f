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
from blockattn.distill.rows import RowStream, row_budget


class BatchLoader:
    def __init__(self, corpus: BlockCorpus, seq_len: int, batch_size: int, block_dropout: float,
                 sinks_per_block: int, shared_sink: int, pad_id: int, seed: int, rank: int = 0, world_size: int = 1):
        self.corpus = corpus
        self.stream = RowStream(corpus, *row_budget(seq_len, sinks_per_block, shared_sink), seed)
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
        rows = [self.stream.row(i) for i in indices]
        flags = [query_flags(len(row.spans), self.block_dropout, self.seed, i) for row, i in zip(rows, indices)]
        return collate(self.corpus, rows, flags, self.sinks_per_block, self.shared_sink, self.seq_len, self.pad_id)

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
