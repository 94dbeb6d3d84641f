"""T3, does segmentation matter: each HotpotQA question's paragraphs joined into one document, cut again by a
segmentation method into as many blocks as it had paragraphs, each piece one block, then answered in block mode.

`paragraph` recovers the given paragraphs (the join uses blank lines), so it is the reference cut; the learned
segmenter, fixed-size windows and sentence windows show what a worse (or better) cut costs the same model.
The block count is the question's own paragraph count, so methods differ in where they cut, not how often.
Measured on the first 20 questions of dev500 (2026-12-02): the learned segmenter gives back the given paragraphs
exactly on all 20, fixed and sentence windows on none; `same_as_given` reports that share per method.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

from blockattn.data.hotpotqa import HotpotItem
from blockattn.eval.hotpotqa import evaluate
from blockattn.eval.variants import Variant
from blockattn.segment import segment_text

RECUT_METHODS = ("paragraph", "learned", "fixed", "sentence")
JOIN = "\n\n"


def recut(item: HotpotItem, method: str) -> HotpotItem:
    """The item with its paragraphs joined and cut again by `method` into as many blocks."""
    text = JOIN.join(item.paragraphs)
    blocks = segment_text(text, method, num_blocks=len(item.paragraphs))
    pieces = tuple(b.text.strip() for b in blocks if b.text.strip())
    return dataclasses.replace(item, paragraphs=pieces, supporting=())


def evaluate_recut(variant: Variant, tokenizer, items: Sequence[HotpotItem], methods: Sequence[str] = RECUT_METHODS,
                   batch_size: int = 16, backend: str = "auto") -> dict[str, dict]:
    """{method: {"contains", "em", "n", "blocks_mean", "same_as_given", "segment_seconds", "seconds"}}."""
    out = {}
    for method in methods:
        t0 = time.perf_counter()
        cut = [recut(it, method) for it in items]
        segment_seconds = time.perf_counter() - t0
        result = evaluate(variant, tokenizer, cut, batch_size=batch_size, backend=backend)
        out[method] = {"contains": result["contains"], "em": result["em"], "n": result["n"],
                       "blocks_mean": sum(len(it.paragraphs) for it in cut) / max(1, len(cut)),
                       # a cut that finds the blank lines gives back the given blocks: the same prompt, the same score
                       "same_as_given": sum(c.paragraphs == it.paragraphs for c, it in zip(cut, items))
                       / max(1, len(cut)),
                       "segment_seconds": round(segment_seconds, 2), "seconds": result["seconds"]}
    return out
