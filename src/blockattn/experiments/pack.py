"""The quality run's pack: the distillation pack (`distill.pack`) plus distractor-fact and multi-hop evaluation
items (from SemanticSeg TEST texts, held-out templates) and RAG-shaped training requests (from TRAIN texts, train
templates; never evaluation data). One file per model tokenizer, small enough to carry (≤ 20 MB).

    python -m blockattn.experiments.pack --data /work/data/semanticseg --model qwen2.5-coder-0.5b-instruct \\
        --out .gpu/pack-qwen05.npz
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from blockattn.distill.pack import DistillPack, build_pack, semanticseg_rows
from blockattn.data.facts import distractor_items, multihop_items
from blockattn.data.needles import passages
from blockattn.experiments.ragdata import HOTPOT_DOCS, HOTPOT_KINDS, HOTPOT_WORDS, MIX, rag_requests, short_passages

FACT_COUNTS = (4, 8, 16)


def add_quality_items(pack: DistillPack, root: str | Path, tokenizer, facts_per_count: int, rag_items: int,
                      doc_tokens: int, rag_doc_tokens: int, seed: int, rag_context_tokens: int = 1750) -> DistillPack:
    """`pack` with `facts` and `multihop` (test texts, eval templates) and `rag` (train texts, train templates)
    filled in. `rag_context_tokens`: the most document tokens of a HotpotQA-shaped request (rows are
    data.seq_len = 2048 with sinks, question and answer)."""
    count = lambda s: len(tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    test = [r["text"] for r in semanticseg_rows(root, "test", 200 * doc_tokens, seed + 1)]
    test_pool = passages(test, count, max_tokens=doc_tokens, min_tokens=doc_tokens // 2)
    pack.facts = [it.to_dict() for it in distractor_items(test_pool, FACT_COUNTS, facts_per_count, seed)]
    pack.multihop = [it.to_dict() for it in multihop_items(test_pool, FACT_COUNTS, facts_per_count, seed)]
    # ~6.5 documents per request on average; draw passages from enough train texts for variety
    train = [r["text"] for r in semanticseg_rows(root, "train", 8 * rag_items * rag_doc_tokens, seed + 2)]
    train_pool = passages(train, count, max_tokens=rag_doc_tokens, min_tokens=rag_doc_tokens // 3)
    hotpot_pool = short_passages(train, seed)
    pack.rag = rag_requests(train_pool, rag_items, seed, hotpot_pool=hotpot_pool, count_tokens=count,
                            max_context_tokens=rag_context_tokens)
    kinds = {k: sum(r["kind"] == k for r in pack.rag) for k in MIX}
    pack.meta.update(facts_items=len(pack.facts), multihop_items=len(pack.multihop), facts_doc_tokens=doc_tokens,
                     facts_pool=len(test_pool), rag_items=len(pack.rag), rag_doc_tokens=rag_doc_tokens,
                     rag_pool=len(train_pool), rag_hotpot_pool=len(hotpot_pool), rag_kinds=kinds,
                     rag_mix={"shares": MIX, "hotpot_shaped": list(HOTPOT_KINDS), "hotpot_docs": list(HOTPOT_DOCS),
                              "hotpot_words": list(HOTPOT_WORDS), "hotpot_context_tokens": rag_context_tokens,
                              "other_docs": "3-10 passages of <= rag_doc_tokens tokens, no title"})
    return pack


def main(data: Path = typer.Option(..., help="SemanticSeg directory (holds data/<split>/*.parquet)."),
         out: Path = typer.Option(..., help="Pack file to write."),
         model: str = typer.Option("smollm2-135m-instruct", help="Whose tokenizer to use."),
         train_tokens: int = typer.Option(4_000_000, help="SemanticSeg train tokens (continuation rows)."),
         heldout_tokens: int = typer.Option(300_000, help="Held-out (validation) tokens (ΔPPL, KL)."),
         facts_per_count: int = typer.Option(100, help="Distractor-fact items per document count (4, 8, 16)."),
         rag_items: int = typer.Option(3000, help="RAG-shaped training requests (the teacher answers them)."),
         doc_tokens: int = typer.Option(250, help="Most tokens of one fact document."),
         rag_doc_tokens: int = typer.Option(200, help="Most tokens of one RAG training document."),
         rag_context_tokens: int = typer.Option(1750, help="Most document tokens of a HotpotQA-shaped request."),
         seed: int = typer.Option(0)) -> None:
    """Build the quality run's pack (text continuation + facts + RAG requests) for one model's tokenizer."""
    from blockattn.models import load_tokenizer

    tokenizer = load_tokenizer(model)
    pack = build_pack(data, tokenizer, "fixed", 256, 16, train_tokens, heldout_tokens, needles_per_count=16,
                      doc_tokens=doc_tokens, seed=seed)
    pack = add_quality_items(pack, data, tokenizer, facts_per_count, rag_items, doc_tokens, rag_doc_tokens, seed,
                             rag_context_tokens)
    pack.meta["model"] = model
    path = pack.save(out)
    typer.echo(json.dumps({"pack": str(path), "bytes": path.stat().st_size, **pack.meta}, indent=2))


if __name__ == "__main__":
    typer.run(main)
