"""The distillation pack: everything a training and evaluation run reads, in one compressed file small enough
to carry to the GPU machine (≤ ~15 MB), so that run needs neither the dataset nor the data package.

    train     SemanticSeg train texts, cut into blocks, tokenized (a BlockCorpus)
    heldout   SemanticSeg validation texts, the same way (ΔPPL)
    needles   planted-fact retrieval items built from SemanticSeg test texts (JSON)
    facts     the same with distractor facts in every document (JSON; `blockattn.experiments.pack` adds it)
    multihop  two-hop chains with distractor chains, held-out template (JSON; `blockattn.experiments.pack`)
    rag       RAG-shaped training requests from train texts, documents + question, no answer yet (JSON;
              `blockattn.experiments.pack` adds them, the teacher answers them on the GPU)
    meta      how it was built (source, segmenter, tokenizer, sizes)

Build it with `python -m blockattn.distill.pack --data DIR --out .gpu/pack.npz` (see `--help`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blockattn.distill.corpus import BlockCorpus
from blockattn.distill.segmenters import segment_text
from blockattn.errors import UserError

SPLITS = ("train", "heldout")


@dataclass
class DistillPack:
    train: BlockCorpus
    heldout: BlockCorpus
    needles: list[dict] = field(default_factory=list)  # NeedleItem.to_dict() records
    meta: dict = field(default_factory=dict)
    facts: list[dict] = field(default_factory=list)  # NeedleItem.to_dict() records, distractor facts
    rag: list[dict] = field(default_factory=list)  # {"kind", "documents", "question"}
    multihop: list[dict] = field(default_factory=list)  # NeedleItem.to_dict() records, two-hop chains

    def corpus(self, split: str) -> BlockCorpus:
        if split not in SPLITS:
            raise ValueError(f"unknown pack split {split!r}; choose one of {SPLITS}")
        return self.train if split == "train" else self.heldout

    def save(self, path: str | Path) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        text = {"needles": json.dumps(self.needles), "meta": json.dumps(self.meta),
                "facts": json.dumps(self.facts), "rag": json.dumps(self.rag), "multihop": json.dumps(self.multihop)}
        arrays = {**self.train.arrays("train"), **self.heldout.arrays("heldout"),
                  **{k: np.frombuffer(v.encode(), dtype=np.uint8) for k, v in text.items()}}
        tmp = out.with_name(out.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        tmp.replace(out)
        return out


def load_pack(path: str | Path) -> DistillPack:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"pack {p}: no such file (build one with `python -m blockattn.distill.pack`)")
    with np.load(p, allow_pickle=False) as arrays:
        return DistillPack(
            train=BlockCorpus.from_arrays(arrays, "train"), heldout=BlockCorpus.from_arrays(arrays, "heldout"),
            needles=json.loads(arrays["needles"].tobytes().decode()),
            meta=json.loads(arrays["meta"].tobytes().decode()),
            # packs written before distractor facts, RAG requests or multi-hop items existed lack them
            **{k: json.loads(arrays[k].tobytes().decode()) for k in ("facts", "rag", "multihop")
               if k in arrays.files})


def _encoder(tokenizer):
    return lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]


def semanticseg_rows(root: str | Path, split: str, max_tokens: int | None, seed: int) -> list[dict]:
    """Rows (text, boundaries, n_tokens) of a SemanticSeg split in a seeded random order, up to `max_tokens`."""
    from blockattn.data.parquet import iter_split

    rows = list(iter_split(root, split, columns=["text", "boundaries", "n_tokens"]))
    order = np.random.default_rng([seed, len(rows)]).permutation(len(rows))
    picked, total = [], 0
    for i in order:
        if max_tokens is not None and total >= max_tokens:
            break
        picked.append(rows[int(i)])
        total += int(rows[int(i)]["n_tokens"])
    return picked


def semanticseg_corpus(root: str | Path, split: str, tokenizer, segmenter: str, block_tokens: int,
                       min_block_tokens: int, max_tokens: int | None, seed: int) -> BlockCorpus:
    """A SemanticSeg split cut into blocks by `segmenter` (see `segmenters.segment_text`)."""
    encode = _encoder(tokenizer)
    texts = [segment_text(r["text"], r["boundaries"], encode, segmenter, block_tokens, min_block_tokens)
             for r in semanticseg_rows(root, split, max_tokens, seed)]
    return BlockCorpus.from_texts(texts)


def build_pack(root: str | Path, tokenizer, segmenter: str = "fixed", block_tokens: int = 256,
               min_block_tokens: int = 16, train_tokens: int = 8_000_000, heldout_tokens: int = 400_000,
               needle_counts: tuple[int, ...] = (4, 8, 16), needles_per_count: int = 64,
               doc_tokens: int = 400, seed: int = 0) -> DistillPack:
    from blockattn.data.needles import make_items, passages

    encode = _encoder(tokenizer)
    train = semanticseg_corpus(root, "train", tokenizer, segmenter, block_tokens, min_block_tokens, train_tokens, seed)
    heldout = semanticseg_corpus(root, "validation", tokenizer, segmenter, block_tokens, min_block_tokens,
                                 heldout_tokens, seed)
    # enough test texts for the passage pool: each item of 16 documents draws 16 distinct passages
    test_texts = [r["text"] for r in semanticseg_rows(root, "test", 200 * doc_tokens, seed)]
    pool = passages(test_texts, lambda s: len(encode(s)), max_tokens=doc_tokens, min_tokens=doc_tokens // 2)
    items = make_items(pool, needle_counts, needles_per_count, seed)
    meta = {"source": str(root), "segmenter": segmenter, "block_tokens": block_tokens,
            "min_block_tokens": min_block_tokens, "tokenizer": getattr(tokenizer, "name_or_path", ""),
            "train_tokens": train.n_tokens, "train_texts": train.n_texts, "heldout_tokens": heldout.n_tokens,
            "heldout_texts": heldout.n_texts, "needle_items": len(items), "needle_doc_tokens": doc_tokens,
            "passage_pool": len(pool), "seed": seed}
    return DistillPack(train=train, heldout=heldout, needles=[it.to_dict() for it in items], meta=meta)


def main() -> None:
    import typer

    def build(data: Path = typer.Option(..., help="SemanticSeg directory (holds data/<split>/*.parquet)."),
              out: Path = typer.Option(Path(".gpu/pack.npz"), help="Pack file to write."),
              model: str = typer.Option("smollm2-135m-instruct", help="Whose tokenizer to use."),
              segmenter: str = typer.Option("fixed", help="fixed | learned | coarse | medium | fine"),
              block_tokens: int = typer.Option(256, help="Fixed block size, and the most tokens a block keeps."),
              min_block_tokens: int = typer.Option(16, help="Gold blocks shorter than this merge forward."),
              train_tokens: int = typer.Option(8_000_000, help="Train tokens to take (whole texts)."),
              heldout_tokens: int = typer.Option(400_000, help="Held-out (validation) tokens to take."),
              needles_per_count: int = typer.Option(64, help="Retrieval items per document count (4, 8, 16)."),
              doc_tokens: int = typer.Option(400, help="Most tokens of one retrieval document."),
              seed: int = typer.Option(0)) -> None:
        """Build the distillation pack from SemanticSeg."""
        from blockattn.models import load_tokenizer

        built = build_pack(data, load_tokenizer(model), segmenter, block_tokens, min_block_tokens, train_tokens,
                           heldout_tokens, needles_per_count=needles_per_count, doc_tokens=doc_tokens, seed=seed)
        path = built.save(out)
        print(json.dumps({"pack": str(path), "bytes": path.stat().st_size, **built.meta}, indent=2))

    typer.run(build)


if __name__ == "__main__":
    main()
