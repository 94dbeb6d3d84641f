"""`blockattn generate`: answer a question over documents on the block KV-cache engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from blockattn.errors import UserError


def generate(
    doc: List[Path] = typer.Option(..., "--doc", help="A document (UTF-8 text file); repeat for several."),
    question: str = typer.Option(..., "--question", "-q", help="The question to answer."),
    mode: str = typer.Option("block", help="block: documents cannot see each other; full: plain causal attention."),
    model: str = typer.Option("smollm2-135m-instruct", help="Model name or local HF model directory."),
    adapter: str = typer.Option("default", help="default: the block adapter shipped for the "
                                                "model (if any); none: the base model alone; or a directory."),
    cache_dir: Optional[Path] = typer.Option(None, help="Persist block KV here: later runs reuse it."),
    kv_store: Optional[str] = typer.Option(None, help="redis://HOST:PORT/DB: block KV shared by every process "
                                                      "on that store and model (a dead Redis means recompute)."),
    kv_store_gb: float = typer.Option(4.0, help="Our byte budget in --kv-store (GB; LRU across processes)."),
    cache_dir_max_gb: Optional[float] = typer.Option(None, help="Budget of --cache-dir (GB; LRU across the "
                                                              "processes sharing it). Default: unbounded."),
    max_new_tokens: int = typer.Option(64, help="Most tokens to generate."),
    temperature: float = typer.Option(0.0, help="0: greedy (deterministic); > 0: sample."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling mass (with --temperature > 0)."),
    seed: Optional[int] = typer.Option(None, help="Sampling seed (same seed, same answer)."),
    stop: List[str] = typer.Option([], "--stop", help="Stop at this string; repeat for several."),
    segment: str = typer.Option("none", help="none: each --doc is one block; auto: cut documents with the segmenter."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the answer."),
) -> None:
    """Answer QUESTION from the given documents (greedy and deterministic unless --temperature > 0)."""
    from blockattn.engine.segmenting import SEGMENT_MODES
    from blockattn.textio import read_text_file

    if mode not in ("block", "full"):
        raise UserError(f"unknown mode {mode!r}; choose block or full")
    if segment not in SEGMENT_MODES:
        raise UserError(f"unknown --segment {segment!r}; choose one of {', '.join(SEGMENT_MODES)}")
    if not question.strip():
        raise UserError("the question is empty")
    if max_new_tokens < 1:
        raise UserError("--max-new-tokens must be at least 1")
    documents = [read_text_file(p) for p in doc]

    from blockattn.engine.sampling import SamplingParams
    from blockattn.engine.service import Service

    sampling = SamplingParams(temperature=temperature, top_p=top_p, seed=seed)
    service = Service.load(model, adapter=adapter, cache_dir=cache_dir, cache_dir_max_gb=cache_dir_max_gb,
                           kv_store=kv_store, kv_store_gb=kv_store_gb, device=device)
    prompt = service.rag_prompt(documents, question, mode=mode, segment=segment)
    generation = service.generate(prompt, sampling, max_new_tokens, stop)
    answer = generation.text().strip()
    if not as_json:
        typer.echo(answer)
        return
    usage = generation.usage
    typer.echo(json.dumps({
        "answer": answer, "mode": mode, "n_blocks": prompt.n_documents,
        "context_tokens": prompt.context_tokens, "query_tokens": len(prompt.query),
        "new_tokens": usage.completion_tokens, "ttft_ms": usage.ttft_ms, "total_ms": usage.total_ms,
        "model": service.model_name, "adapter": service.adapter_name if mode == "block" else None,
        "cached_blocks": usage.cached_blocks, "computed_blocks": usage.computed_blocks,
        "finish_reason": generation.finish_reason,
    }))
