"""The teacher pre-pass: the base model answers the pack's RAG requests under FULL attention, in exactly the
prompt shape `blockattn generate` uses (`engine.prompt.build_prompt`); the answers become the targets of the
RAG-shaped training rows (`distill.ragset`), whose loss is the KL on those answer tokens under block attention.
"""

from __future__ import annotations

import time
from typing import Sequence

from blockattn.distill.ragset import RagSet
from blockattn.engine.prompt import build_prompt, stop_token_ids
from blockattn.eval.generation import greedy_generate


def teacher_answers(model, tokenizer, requests: Sequence[dict], max_new_tokens: int, batch_size: int,
                    deadline: float | None = None, backend: str = "dense") -> tuple[RagSet, list[dict]]:
    """(RAG set of the answered requests, a few examples). Greedy; an answer that stopped keeps its stop token
    (the student learns where to stop), a capped one ends at the cap. Stops early at `deadline`
    (time.perf_counter() value), keeping what is answered."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = stop_token_ids(tokenizer, model.config)
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else min(stops)
    prompts = [build_prompt(tokenizer, list(r["documents"]), r["question"]).all_blocks() for r in requests]
    order = sorted(range(len(prompts)), key=lambda i: -sum(len(b) for b in prompts[i]))
    answered, examples = [], []
    for at in range(0, len(order), batch_size):
        if deadline is not None and time.perf_counter() > deadline:
            break
        chunk = order[at:at + batch_size]
        outputs = greedy_generate(model, [prompts[i] for i in chunk], "full", max_new_tokens, stops, pad,
                                  backend=backend)
        for i, tokens in zip(chunk, outputs):
            answer = list(tokens) + ([eos] if len(tokens) < max_new_tokens else [])
            answered.append((prompts[i], answer))
            if len(examples) < 6:
                examples.append({"kind": requests[i]["kind"], "question": requests[i]["question"],
                                 "answer": tokenizer.decode(tokens, skip_special_tokens=True)})
    return RagSet.from_requests(answered), examples
