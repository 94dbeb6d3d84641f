"""`blockattn eval ...`: Evaluation tables and plots (reports/).

    blockattn eval ppl      ΔPPL(block − full) on a pack's held-out text, zero-shot or through an adapter
    blockattn eval needles  planted-fact retrieval over 4–16 documents: full, zero-shot block, or an adapter
    blockattn eval hotpotqa HotpotQA dev questions, one block per paragraph (cli/hotpotqa.py)
    blockattn eval all      the tables that need no training run (T3 segmentation KL, F1 block sensitivity)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from blockattn.errors import UserError

app = typer.Typer(no_args_is_help=True, help="Evaluation tables and plots (reports/).")

PACK_HELP = "Distillation pack (python -m blockattn.distill.pack) holding the held-out text and the items."
ADAPTER_HELP = "Block adapter directory; 'none' = zero-shot block attention."


def _variant(model: str, adapter: str, mode: str, device: str, dtype: str):
    """(variant, loaded model) for the options."""
    from blockattn.eval.variants import full_attention, with_adapter, zero_shot_block
    from blockattn.models import load

    if mode not in ("block", "full"):
        raise UserError(f"unknown mode {mode!r}; choose block or full")
    if mode == "full" and adapter != "none":
        raise UserError("--mode full measures the base model: leave --adapter at none")
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    loaded = load(model, dtype=dtype, device=device)
    if mode == "full":
        return full_attention(loaded.model), loaded
    if adapter == "none":
        return zero_shot_block(loaded.model), loaded
    if not Path(adapter).is_dir():
        raise UserError(f"adapter {adapter}: no such directory")
    return with_adapter(loaded.model, adapter, Path(adapter).name), loaded


def _emit(result: dict, out: Optional[Path]) -> None:
    text = json.dumps(result, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    typer.echo(text)


@app.command("ppl")
def ppl(
    pack: Path = typer.Option(..., help=PACK_HELP),
    adapter: str = typer.Option("none", help=ADAPTER_HELP),
    model: str = typer.Option("smollm2-135m-instruct", help="Base model name or directory."),
    rows: int = typer.Option(16, help="Held-out rows (one per text)."),
    width: int = typer.Option(2048, help="Tokens per row, sinks included."),
    query_tokens: int = typer.Option(256, help="Query-block tokens scored per row."),
    batch_size: int = typer.Option(4),
    device: str = typer.Option("auto", help="cuda, cpu, or auto."),
    dtype: str = typer.Option("float32", help="Weights dtype (bfloat16 on GPU)."),
    out: Optional[Path] = typer.Option(None, help="Also write the JSON here."),
) -> None:
    """ΔPPL(block − full) on query blocks of held-out text (full = the base model, adapter off)."""
    from blockattn.distill.pack import load_pack
    from blockattn.distill.rows import eval_rows, row_budget
    from blockattn.eval.perplexity import delta_perplexity

    variant, loaded = _variant(model, adapter, "block", device, dtype)
    held = load_pack(pack).heldout
    chosen = eval_rows(held, *row_budget(width, variant.sinks_per_block, variant.shared_sink), query_tokens, rows)
    if not chosen:
        raise UserError(f"no held-out text is long enough for {width}-token rows with a {query_tokens}-token query")
    tok = loaded.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    precision = "bf16" if dtype == "bfloat16" else "fp32"
    result = delta_perplexity(variant, held, chosen, width, pad, batch_size=batch_size, precision=precision)
    _emit({**result.to_dict(), **variant.to_dict()}, out)


@app.command("needles")
def needles(
    pack: Path = typer.Option(..., help=PACK_HELP),
    adapter: str = typer.Option("none", help=ADAPTER_HELP),
    mode: str = typer.Option("block", help="block or full (full: the base model in plain causal attention)."),
    model: str = typer.Option("smollm2-135m-instruct", help="Base model name or directory."),
    per_count: int = typer.Option(16, help="Items per document count (the pack holds 64 for 4, 8 and 16)."),
    docs: str = typer.Option("", help="Only these document counts, comma-separated (default: all)."),
    batch_size: int = typer.Option(8),
    device: str = typer.Option("auto", help="cuda, cpu, or auto."),
    dtype: str = typer.Option("float32", help="Weights dtype (bfloat16 on GPU)."),
    out: Optional[Path] = typer.Option(None, help="Also write the JSON here."),
) -> None:
    """Planted-fact retrieval accuracy (greedy; correct when the answer contains the code)."""
    from blockattn.distill.pack import load_pack
    from blockattn.data.needles import NeedleItem, first_per_count
    from blockattn.eval.retrieval import needle_accuracy

    variant, loaded = _variant(model, adapter, mode, device, dtype)
    wanted = {int(d) for d in docs.split(",") if d.strip()}
    items = [NeedleItem.from_dict(d) for d in load_pack(pack).needles]
    items = first_per_count([it for it in items if not wanted or it.n_docs in wanted], per_count)
    if not items:
        raise UserError(f"the pack holds no items with {docs} documents")
    _emit({**needle_accuracy(variant, loaded.tokenizer, items, batch_size=batch_size), **variant.to_dict()}, out)


@app.command("all")
def all_tables(
    out: Path = typer.Option(Path("reports"), help="Directory for the JSON + PNG of each table."),
    model: str = typer.Option("smollm2-135m-instruct", help="Base model name or directory."),
    adapter: str = typer.Option("default", help="Block adapter: default (the shipped one), none, or a directory."),
    data: Path = typer.Option(Path("data/semanticseg"),
                              help="T3: SemanticSeg directory (its test split), or a --save-sample file."),
    save_sample: Optional[Path] = typer.Option(None, help="T3: also write the sampled texts here (.jsonl.gz)."),
    documents: int = typer.Option(24, help="T3: SemanticSeg texts sampled."),
    max_tokens: int = typer.Option(768, help="T3: each text's first ~N tokens."),
    methods: str = typer.Option("gold,learned,fixed,paragraph,sentence", help="T3: segmentation methods."),
    hotpotqa: Path = typer.Option(Path("../shared/data/hotpotqa/dev500.jsonl.gz"), help="F1: HotpotQA file."),
    examples: int = typer.Option(3, help="F1: HotpotQA questions (the first N)."),
    tables: str = typer.Option("t3,f1", help="Which tables to compute."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="cuda, cpu, or auto."),
    dtype: str = typer.Option("float32", help="Weights dtype (bfloat16 on GPU)."),
) -> None:
    """T3 (KL per segmentation method) and F1 (per-token KL on HotpotQA), JSON + PNG each, under --out;
    then `python -m blockattn.reports` renders docs/results.md from everything under reports/."""
    from blockattn.eval.suite import SuiteConfig, run_suite

    if documents < 1 or examples < 1 or max_tokens < 16:
        raise UserError("--documents and --examples must be ≥ 1 and --max-tokens ≥ 16")
    cfg = SuiteConfig(model=model, adapter=adapter, data=data, save_sample=save_sample, documents=documents,
                      max_tokens=max_tokens,
                      methods=tuple(m.strip() for m in methods.split(",") if m.strip()), hotpotqa=hotpotqa,
                      examples=examples, seed=seed, device=device, dtype=dtype,
                      tables=tuple(t.strip().lower() for t in tables.split(",") if t.strip()))
    for path in run_suite(cfg, out):
        typer.echo(f"wrote {path} (+ .png)")


def _register() -> None:
    from blockattn.cli.hotpotqa import hotpotqa

    app.command("hotpotqa")(hotpotqa)


_register()
