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

WINDOW = 8  # batches sorted by length together


def teacher_answers(model, tokenizer, requests: Sequence[dict], max_new_tokens: int, batch_size: int,
                    deadline: float | None = None, backend: str = "dense") -> tuple[RagSet, list[dict], dict]:
    """(RAG set of the answered requests, a few examples, answered requests per kind). Greedy; an answer that
    stopped keeps its stop token (the student learns where to stop), a capped one ends at the cap. Stops early at
    `deadline` (time.perf_counter() value), keeping what is answered."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = stop_token_ids(tokenizer, model.config)
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else min(stops)
    prompts = [build_prompt(tokenizer, list(r["documents"]), r["question"]).all_blocks() for r in requests]
    # in the requests' own order, a window of WINDOW batches at a time sorted by length (little padding): a
    # deadline then keeps a prefix of the requests, whose kinds follow the mix (ragdata.SCHEDULE), instead of
    # the longest requests of every kind
    window = WINDOW * batch_size
    size = lambda i: sum(len(b) for b in prompts[i])  # noqa: E731
    order = [i for at in range(0, len(prompts), window)
             for i in sorted(range(at, min(at + window, len(prompts))), key=lambda i: -size(i))]
    answered, examples, kinds = [], [], {}
    for at in range(0, len(order), batch_size):
        if deadline is not None and time.perf_counter() > deadline:
            break
        chunk = order[at:at + batch_size]
        outputs = greedy_generate(model, [prompts[i] for i in chunk], "full", max_new_tokens, stops, pad,
                                  backend=backend)
        for i, tokens in zip(chunk, outputs):
            answer = list(tokens) + ([eos] if len(tokens) < max_new_tokens else [])
            answered.append((prompts[i], answer))
            kinds[requests[i]["kind"]] = kinds.get(requests[i]["kind"], 0) + 1
            if len(examples) < 10:
                examples.append({"kind": requests[i]["kind"], "question": requests[i]["question"],
                                 "answer": tokenizer.decode(tokens, skip_special_tokens=True)})
    return RagSet.from_requests(answered), examples, kinds
