"""`blockattn eval hotpotqa`: HotpotQA dev questions under full, zero-shot block, or adapter block attention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def hotpotqa(
    model: str = typer.Option("smollm2-135m-instruct", help="Base model name or directory."),
    adapter: str = typer.Option("none", help="Block adapter directory, 'default' (the model's shipped one) or "
                                             "'none' (zero-shot block attention)."),
    mode: str = typer.Option("block", help="block or full (full: the base model in plain causal attention)."),
    limit: int = typer.Option(50, help="First N questions (the file holds 500)."),
    data: Optional[Path] = typer.Option(None, "--hotpotqa", help="dev500.jsonl.gz (default: $BLOCKATTN_HOTPOTQA "
                                                                  "or ../shared/data/hotpotqa/ beside the repo)."),
    batch_size: int = typer.Option(8),
    max_new_tokens: int = typer.Option(24),
    device: str = typer.Option("auto", help="cuda, cpu, or auto."),
    dtype: str = typer.Option("float32", help="Weights dtype (bfloat16 on GPU)."),
    out: Optional[Path] = typer.Option(None, help="Also write the JSON (with every output) here."),
) -> None:
    """Score = normalised gold answer contained in the normalised output; exact match beside it."""
    from blockattn.cli.evaluate import _variant
    from blockattn.engine.service import resolve_adapter
    from blockattn.errors import UserError
    from blockattn.data.hotpotqa import load_items
    from blockattn.eval.hotpotqa import evaluate

    if limit < 1:
        raise UserError("--limit must be >= 1")
    items = load_items(data, limit)
    path, _ = resolve_adapter(adapter, model) if mode == "block" else (None, None)
    variant, loaded = _variant(model, str(path) if path else "none", mode, device, dtype)
    result = evaluate(variant, loaded.tokenizer, items, batch_size=batch_size, max_new_tokens=max_new_tokens)
    result.update(variant.to_dict(), model=model)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
    summary = {k: result[k] for k in ("variant", "model", "n", "contains", "em", "seconds")}
    summary["examples"] = [{"question": it.question, "gold": it.answers, "output": result["outputs"][it.qid]}
                           for it in items[:3]]
    typer.echo(json.dumps(summary, indent=2))
