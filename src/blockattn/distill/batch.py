"""Rows → tensors: the student's and the teacher's inputs, and where the loss is taken.

The student sees the row in block attention *with* sink tokens; the teacher sees the same text *without*
them, in full attention over what the student may see (`BlockLayout.as_teacher`). Content tokens appear in
both in the same order, so the k-th content token of a student row is the k-th of the teacher row
(`BlockLayout.content_mask`). Both are padded to the same fixed width, so shapes never change.

Loss positions are the content tokens of query blocks: there the student sees the same text as the teacher
(block-encoded), so matching the teacher is possible. A context-block token cannot see earlier blocks, while
its teacher can: its target would ask the student to guess unseen text, so it carries no loss.
A RAG-shaped row (documents, then question + the teacher's answer as the query block) takes its loss on the
answer only: `loss_from` skips the question's positions of its final block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from blockattn.attention.layout import QUERY, BlockLayout, pack_batch, pack_sequence
from blockattn.distill.corpus import BlockCorpus
from blockattn.distill.rows import Row

IGNORE = -100  # label of a position without a next content token


@dataclass
class Batch:
    student_ids: torch.Tensor  # (B, W) sink positions hold the pad id (BlockSinks.fill replaces them)
    student_layout: BlockLayout
    teacher_ids: torch.Tensor  # (B, W) content tokens only
    teacher_layout: BlockLayout  # teacher=True: full attention over the visible text
    student_index: torch.Tensor  # (M,) loss positions, flat into (B·W) of the student
    teacher_index: torch.Tensor  # (M,) the same positions, flat into (B·W) of the teacher
    labels: torch.Tensor  # (M,) the next content token of each loss position, IGNORE at a row's end
    n_content: int  # content tokens in the batch (what tokens/s counts)

    @property
    def n_loss(self) -> int:
        return int(self.student_index.numel())

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(self.student_ids.to(device), self.student_layout.to(device), self.teacher_ids.to(device),
                     self.teacher_layout.to(device), self.student_index.to(device),
                     self.teacher_index.to(device), self.labels.to(device), self.n_content)


def loss_positions(student_layout: BlockLayout, teacher_ids: torch.Tensor, teacher_layout: BlockLayout,
                   excluded: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(student_index, teacher_index, labels) of every query-block content token (module docstring), less
    the teacher positions marked in `excluded` (B, W)."""
    width_s, width_t = student_layout.seq_len, teacher_layout.seq_len
    s_rows, s_cols = student_layout.content_mask().nonzero(as_tuple=True)  # row-major: row by row, in order
    t_rows, t_cols = teacher_layout.content_mask().nonzero(as_tuple=True)
    if not torch.equal(s_rows, t_rows):
        raise ValueError("student and teacher rows hold different numbers of content tokens")
    content = teacher_ids[t_rows, t_cols]  # (C,)
    last_of_row = torch.ones_like(t_rows, dtype=torch.bool)
    last_of_row[:-1] = t_rows[1:] != t_rows[:-1]
    labels = torch.where(last_of_row, torch.full_like(content, IGNORE), content.roll(-1))
    query = teacher_layout.kinds[t_rows, t_cols] == QUERY
    if excluded is not None:
        query &= ~excluded[t_rows, t_cols]
    return s_rows[query] * width_s + s_cols[query], t_rows[query] * width_t + t_cols[query], labels[query]


def collate(corpus: BlockCorpus | Sequence[BlockCorpus], rows: Sequence[Row], flags: Sequence[Sequence[bool]], sinks_per_block: int,
            shared_sink: int, width: int, pad_id: int, loss_from: Sequence[int | None] | None = None) -> Batch:
    """Tensors for `rows` (cut from `corpus`, or from corpus[i] per row); flags[i][b] says whether block b of row i is a query block; loss_from[i], when not
    None, is the first position of row i's final block that carries a loss (earlier ones carry none)."""
    students, teachers = [], []
    excluded = torch.zeros(len(rows), width, dtype=torch.bool)
    corpora = [corpus] * len(rows) if isinstance(corpus, BlockCorpus) else list(corpus)
    for i, (row, is_query) in enumerate(zip(rows, flags)):
        if loss_from is not None and loss_from[i] is not None:
            final_start = sum(end - start for start, end in row.spans[:-1])  # teacher rows hold no sinks
            excluded[i, :final_start + loss_from[i]] = True
        blocks = [corpora[i].tokens[start:end].tolist() for start, end in row.spans]
        students.append(pack_sequence(blocks, is_query, sinks_per_block, shared_sink, placeholder_id=pad_id))
        teachers.append(pack_sequence(blocks, is_query, placeholder_id=pad_id))
    student_ids, student_layout = pack_batch(students, pad_id=pad_id, width=width)
    teacher_ids, teacher_layout = pack_batch(teachers, pad_id=pad_id, width=width)
    teacher_layout = teacher_layout.as_teacher()
    s_index, t_index, labels = loss_positions(student_layout, teacher_ids, teacher_layout,
                                              excluded if loss_from is not None else None)
    return Batch(student_ids, student_layout, teacher_ids, teacher_layout, s_index, t_index, labels,
                 n_content=sum(row.n_tokens for row in rows))
