"""Planted-fact retrieval accuracy: greedy answers over 4–16 real-text documents (one block each), in full
attention, zero-shot block attention, or block attention through an adapter.

Prompts are the engine's (`engine.prompt.build_prompt`: instruction prefix block, one block per document,
the question as the query block), so the numbers describe what `blockattn generate` would answer.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Sequence

import torch

from blockattn.engine.prompt import build_prompt, stop_token_ids
from blockattn.eval.generation import greedy_generate
from blockattn.data.needles import NeedleItem, is_correct
from blockattn.eval.variants import Variant


@torch.no_grad()
def needle_accuracy(variant: Variant, tokenizer, items: Sequence[NeedleItem], batch_size: int = 16,
                    max_new_tokens: int = 16, backend: str = "auto") -> dict:
    """{"by_docs": {n: {"accuracy", "items"}}, "accuracy", "items", "seconds", "examples"}."""
    model = variant.model
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = stop_token_ids(tokenizer, model.config)
    correct: dict[int, list[bool]] = defaultdict(list)
    examples = []
    start = time.perf_counter()
    # batches never mix document counts, so rows of a batch have similar lengths (little padding)
    groups: dict[int, list[NeedleItem]] = defaultdict(list)
    for item in items:
        groups[item.n_docs].append(item)
    chunks = [g[i:i + batch_size] for _, g in sorted(groups.items()) for i in range(0, len(g), batch_size)]
    for chunk in chunks:
        requests = [build_prompt(tokenizer, it.documents, it.question).all_blocks() for it in chunk]
        outputs = greedy_generate(model, requests, variant.mode, max_new_tokens, stops, pad, variant.sinks,
                                  variant.sinks_per_block, variant.shared_sink, backend)
        for item, tokens in zip(chunk, outputs):
            answer = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            correct[item.n_docs].append(is_correct(item, answer))
            if len(examples) < 4:
                examples.append({"n_docs": item.n_docs, "expected": item.answer, "answer": answer})
    flat = [c for group in correct.values() for c in group]
    return {
        "variant": variant.name,
        "by_docs": {str(n): {"accuracy": sum(c) / len(c), "items": len(c)} for n, c in sorted(correct.items())},
        "accuracy": sum(flat) / max(1, len(flat)), "items": len(flat),
        "seconds": round(time.perf_counter() - start, 2), "examples": examples,
    }
