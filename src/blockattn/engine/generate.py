"""Answering a question over documents, in block or full mode (uncached reference path).

Block mode prefills [prefix, doc blocks, query] in one block-attention forward (every block's KV computed
without reuse); the engine (`blockattn.engine.engine`) adds the content-addressed block cache on top and must
give the same tokens.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from blockattn.attention import block_forward, pack_sequence
from blockattn.engine.prompt import PromptBlocks, build_prompt, stop_token_ids
from blockattn.errors import UserError

MODES = ("block", "full")


@dataclass
class GenerationResult:
    answer: str
    mode: str
    n_blocks: int  # document blocks (the instruction prefix and the query block not counted)
    context_tokens: int
    query_tokens: int
    new_tokens: int
    ttft_ms: float
    total_ms: float

    def to_dict(self) -> dict:
        return asdict(self)


def check_fits(prompt: PromptBlocks, model_config, max_new_tokens: int) -> None:
    limit = getattr(model_config, "max_position_embeddings", None)
    if limit is not None and prompt.total_tokens + max_new_tokens > limit:
        raise UserError(
            f"context too long: {prompt.total_tokens} prompt tokens + {max_new_tokens} new tokens exceed the "
            f"model's {limit}-token window")


@torch.no_grad()
def greedy_decode(model, past, first_logits: torch.Tensor, start_pos: int, max_new_tokens: int,
                  stop_ids: set[int]) -> list[int]:
    """Greedy decoding from a prefilled cache; `first_logits` (V,) are the prompt's last-position logits."""
    device = first_logits.device
    tokens: list[int] = []
    logits = first_logits
    for step in range(max_new_tokens):
        token = int(torch.argmax(logits))
        if token in stop_ids:
            break
        tokens.append(token)
        if step == max_new_tokens - 1:
            break
        out = model(input_ids=torch.tensor([[token]], device=device),
                    position_ids=torch.tensor([[start_pos + step]], device=device),
                    past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[0, -1]
    return tokens


@torch.no_grad()
def prefill(model, prompt: PromptBlocks, mode: str):
    """Prefill the whole prompt; returns (last-position logits (V,), KV cache)."""
    device = model.get_input_embeddings().weight.device
    if mode == "full":
        ids = torch.tensor([sum(prompt.all_blocks(), [])], device=device)
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    else:
        ids, layout = pack_sequence(prompt.all_blocks())
        out = block_forward(model, ids.to(device), layout, use_cache=True, logits_to_keep=1)
    return out.logits[0, -1], out.past_key_values


def answer(loaded, documents: list[str], question: str, mode: str = "block",
           max_new_tokens: int = 64) -> GenerationResult:
    """Answer `question` from `documents` (each one block). Greedy, deterministic."""
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if not question or not question.strip():
        raise UserError("the question is empty")
    if not documents:
        raise UserError("no documents given")
    if max_new_tokens < 1:
        raise UserError("max-new-tokens must be at least 1")
    tokenizer, model = loaded.tokenizer, loaded.model
    prompt = build_prompt(tokenizer, documents, question.strip())
    check_fits(prompt, model.config, max_new_tokens)
    start = time.perf_counter()
    first_logits, past = prefill(model, prompt, mode)
    int(torch.argmax(first_logits))  # the first token is decided (and the device synced): TTFT ends here
    ttft = time.perf_counter() - start
    tokens = greedy_decode(model, past, first_logits, prompt.total_tokens, max_new_tokens,
                           stop_token_ids(tokenizer, model.config))
    total = time.perf_counter() - start
    return GenerationResult(
        answer=tokenizer.decode(tokens, skip_special_tokens=True).strip(), mode=mode,
        n_blocks=len(prompt.documents), context_tokens=prompt.context_tokens, query_tokens=len(prompt.query),
        new_tokens=len(tokens), ttft_ms=ttft * 1e3, total_ms=total * 1e3)
