"""ΔPPL(block − full) on held-out text: what block attention costs where a query block reads earlier blocks.

Each evaluation row is one held-out text: its first blocks as context, then the next `query_tokens` tokens
as the final query block (`distill.rows.eval_rows`). Perplexity is measured on the query block's tokens
only: context-block tokens cannot see earlier blocks by construction, whatever the adapter, so they would
only dilute the number. The full-attention reference is always the *base* model (adapter disabled) on the
same tokens without sinks.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass

import torch

from blockattn.attention.forward import block_forward
from blockattn.distill.batch import IGNORE, collate
from blockattn.distill.corpus import BlockCorpus
from blockattn.distill.losses import linear_divergence
from blockattn.distill.rows import Row
from blockattn.distill.student import FrozenTeacher, decoder_of, output_weight
from blockattn.eval.variants import Variant


@dataclass
class PerplexityResult:
    variant: str
    ppl_block: float
    ppl_full: float
    delta_ppl: float  # ppl_block − ppl_full
    nll_block: float  # mean per-token negative log-likelihood (nats)
    nll_full: float
    tokens: int  # scored query tokens
    rows: int
    kl: float = float("nan")  # mean KL(full ‖ block) per query-block position (nats)

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def delta_perplexity(variant: Variant, corpus: BlockCorpus, rows: list[Row], width: int, pad_id: int,
                     batch_size: int = 8, precision: str = "fp32", backend: str = "auto",
                     chunk_tokens: int = 1024) -> PerplexityResult:
    """Query-block perplexity of `variant` in block mode and of its base in full attention (module docstring)."""
    if variant.mode != "block":
        raise ValueError("ΔPPL compares a block-mode variant with full attention")
    model = variant.model
    device = model.get_input_embeddings().weight.device
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    teacher = FrozenTeacher(model, backend)
    weight = output_weight(model)
    sums = torch.zeros(5, dtype=torch.float64)  # nll_block, nll_full, tokens, kl, kl positions
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        flags = [[False] * (len(row.spans) - 1) + [True] for row in chunk]
        batch = collate(corpus, chunk, flags, variant.sinks_per_block, variant.shared_sink, width, pad_id).to(device)
        with autocast:
            h_block = block_forward(decoder_of(model), batch.student_ids, batch.student_layout,
                                    sinks=variant.sinks, backend=backend).last_hidden_state
            h_full = teacher.hidden(batch.teacher_ids, batch.teacher_layout)
        h_block = h_block.flatten(0, 1)[batch.student_index]  # (M, H)
        h_full = h_full.flatten(0, 1)[batch.teacher_index]  # (M, H)
        # one pass: the block model's CE, the full model's CE (the "teacher" terms) and the KL between them
        terms = linear_divergence(h_block, weight, h_full, labels=batch.labels, chunk=chunk_tokens,
                                  compute_dtype=dtype)
        sums += torch.tensor([float(terms.ce.sum()), float(terms.ce_teacher.sum()),
                              float((batch.labels != IGNORE).sum()), float(terms.kl.sum()), float(terms.kl.numel())],
                             dtype=torch.float64)
    n = max(1.0, float(sums[2]))
    nll_b, nll_f = float(sums[0]) / n, float(sums[1]) / n
    return PerplexityResult(variant=variant.name, ppl_block=math.exp(nll_b), ppl_full=math.exp(nll_f),
                            delta_ppl=math.exp(nll_b) - math.exp(nll_f), nll_block=nll_b, nll_full=nll_f,
                            tokens=int(sums[2]), rows=len(rows), kl=float(sums[3]) / max(1.0, float(sums[4])))
