"""HotpotQA (distractor setting) under full or block attention: each paragraph (title + text) one block in the
given order, the question with a short-answer instruction in the query block (`engine.prompt.build_prompt`,
the prompt `blockattn generate` sends), batched greedy answers.

Scores: `contains` = the normalised gold answer occurs in the normalised output; `em` = they are equal
(normalised: lower-case, punctuation and the articles a/an/the dropped, whitespace collapsed). Evaluation only:
never train or tune on these questions or paragraphs.
"""

from __future__ import annotations

import re
import string
import time
from typing import Sequence

import torch

from blockattn.data.hotpotqa import HotpotItem
from blockattn.engine.prompt import build_prompt, stop_token_ids
from blockattn.eval.generation import greedy_generate
from blockattn.eval.variants import Variant

INSTRUCTION = "Answer with a short phrase only, no explanation."
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def score(output: str, answers: Sequence[str]) -> tuple[bool, bool]:
    """(contains, exact match) against any of the gold answers."""
    out = normalize(output)
    golds = [normalize(a) for a in answers if normalize(a)]
    return any(g in out for g in golds), any(g == out for g in golds)


def question_text(item: HotpotItem) -> str:
    return f"{item.question}\n{INSTRUCTION}"


@torch.no_grad()
def evaluate(variant: Variant, tokenizer, items: Sequence[HotpotItem], batch_size: int = 16,
             max_new_tokens: int = 24, backend: str = "auto") -> dict:
    """{"variant", "contains", "em", "n", "per_item": {qid: [contains, em]}, "outputs": {qid: text}, "seconds"}."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = stop_token_ids(tokenizer, variant.model.config)
    prompts = [build_prompt(tokenizer, list(it.paragraphs), question_text(it)).all_blocks() for it in items]
    # longest first, batches of similar lengths: little padding, and an out-of-memory shows up at once
    order = sorted(range(len(items)), key=lambda i: -sum(len(b) for b in prompts[i]))
    per_item, outputs = {}, {}
    start = time.perf_counter()
    for at in range(0, len(order), batch_size):
        chunk = order[at:at + batch_size]
        generated = greedy_generate(variant.model, [prompts[i] for i in chunk], variant.mode, max_new_tokens,
                                    stops, pad, variant.sinks, variant.sinks_per_block, variant.shared_sink, backend)
        for i, tokens in zip(chunk, generated):
            text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            outputs[items[i].qid] = text
            per_item[items[i].qid] = list(score(text, items[i].answers))
    n = len(items)
    return {"variant": variant.name, "n": n,
            "contains": sum(c for c, _ in per_item.values()) / max(1, n),
            "em": sum(e for _, e in per_item.values()) / max(1, n),
            "per_item": per_item, "outputs": outputs, "seconds": round(time.perf_counter() - start, 2)}


def on_subset(result: dict, qids: Sequence[str]) -> float | None:
    """`contains` over the questions `qids` (e.g. those full attention gets right); None if there are none."""
    hits = [result["per_item"][q][0] for q in qids if q in result["per_item"]]
    return sum(hits) / len(hits) if hits else None
