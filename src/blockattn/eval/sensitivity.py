"""Block sensitivity (issue 12, F1): where in a real RAG prompt block attention changes the predictions.

For a few HotpotQA questions, the prompt `blockattn generate` sends (instruction prefix block, one block per
paragraph "title\\ntext", the question as the query block) is followed by the gold answer, teacher-forced
into the query block. Per-token KL(full ‖ block) is measured for every variant (`eval.blockkl`): over the
paragraphs (where each block lost the others) and over the answer (where the query block reads the blocks'
cached states). Evaluation only: nothing here trains or tunes on these questions.
"""

from __future__ import annotations

from pathlib import Path

from blockattn.engine.prompt import build_prompt
from blockattn.eval.blockkl import token_kl
from blockattn.data.hotpotqa import load_items
from blockattn.eval.variants import Variant


def read_questions(path: str | Path, limit: int) -> list[dict]:
    """The first `limit` questions that have a gold answer: {"qid", "question", "answer", "paragraphs",
    "supporting"} (the HotpotQA evaluation's loader, kept to the fields F1 needs)."""
    items = [it for it in load_items(path, None) if it.answers][:limit]
    return [{"qid": it.qid, "question": it.question, "answer": it.answers[0], "paragraphs": list(it.paragraphs),
             "supporting": list(it.supporting)} for it in items]


def example_blocks(tokenizer, item: dict) -> tuple[list[list[int]], int]:
    """(blocks [prefix, paragraphs..., question + answer], number of answer tokens at the end)."""
    prompt = build_prompt(tokenizer, item["paragraphs"], item["question"])
    answer = tokenizer.encode(item["answer"], add_special_tokens=False)
    return [prompt.prefix, *prompt.documents, prompt.query + answer], len(answer)


def sensitivity(variants: list[Variant], tokenizer, items: list[dict], backend: str = "auto") -> list[dict]:
    """Per example: block lengths, supporting flags and per variant the per-token KL (rounded), its mean per
    block, and the mean KL of the predictions *of* the answer tokens (made at the token before each)."""
    out = []
    for item in items:
        blocks, n_answer = example_blocks(tokenizer, item)
        n = sum(len(b) for b in blocks)
        record = {"qid": item["qid"], "question": item["question"], "answer": item["answer"],
                  "block_tokens": [len(b) for b in blocks], "answer_tokens": n_answer,
                  # block 0 is the instruction prefix, so paragraph i is block i + 1
                  "supporting_blocks": [i + 1 for i, s in enumerate(item["supporting"]) if s], "variants": {}}
        for v in variants:
            result = token_kl(v, blocks, backend=backend)
            per_block = [result.mean({b}) for b in range(len(blocks))]
            answer_kl = result.kl[n - n_answer - 1:n - 1]
            record["variants"][v.name] = {
                "kl_per_token": [round(k, 4) for k in result.kl],
                "kl_per_block": [round(k, 4) for k in per_block],
                "kl_text": round(result.mean(set(range(1, len(blocks) - 1))), 4),
                "kl_answer": round(sum(answer_kl) / max(1, len(answer_kl)), 4)}
        out.append(record)
    return out
