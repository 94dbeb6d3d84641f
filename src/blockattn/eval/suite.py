"""`blockattn eval all`: the measured tables that need no training run, for one model and its block adapter.

    T3  segkl_<model>.json        KL(full ‖ block) per segmentation method on SemanticSeg test (+ .png)
    F1  sensitivity_<model>.json  per-token KL on a few HotpotQA examples, zero-shot vs adapter (+ .png)

Each JSON carries `reportio.provenance` (command, commit, machine, wall time, seed). The tables that need
training (T2, T4) come from `reports/quality_*.json` (the GPU run, `experiments.quality`); T1 and T5 from
the segmentation and speed reports; `python -m blockattn.reports` renders all of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from blockattn.errors import UserError
from blockattn.eval.plots import plot_segmentation_kl, plot_sensitivity
from blockattn.eval.segmentation_kl import (METHODS, load_documents, sample_documents, save_documents,
                                             segmentation_kl)
from blockattn.eval.sensitivity import read_questions, sensitivity
from blockattn.reportio import provenance, write_report


@dataclass
class SuiteConfig:
    model: str = "smollm2-135m-instruct"
    adapter: str = "default"  # block adapter: default (the shipped one) | none | DIR
    data: Path = Path("data/semanticseg")  # a SemanticSeg directory, or a sample file (save_sample) .jsonl.gz
    save_sample: Path | None = None  # T3: also write the sampled texts here (to score the same ones on the GPU)
    split: str = "test"
    documents: int = 24  # T3 sample
    max_tokens: int = 768  # T3: each text's first ~max_tokens tokens
    methods: tuple[str, ...] = METHODS
    hotpotqa: Path = Path("../shared/data/hotpotqa/dev500.jsonl.gz")
    examples: int = 3  # F1
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    tables: tuple[str, ...] = ("t3", "f1")


def variants_for(cfg: SuiteConfig):
    """(variants, tokenizer): zero-shot block attention and, unless adapter is none, block mode through the
    adapter (on a second copy of the base, since PEFT changes the model it wraps)."""
    from blockattn.engine.service import resolve_adapter, resolve_device
    from blockattn.eval.variants import with_adapter, zero_shot_block
    from blockattn.models import load

    device = resolve_device(cfg.device)
    base = load(cfg.model, dtype=cfg.dtype, device=device)
    variants = [zero_shot_block(base.model.eval())]
    path, name = resolve_adapter(cfg.adapter, cfg.model)
    if path is not None:
        variants.append(with_adapter(load(cfg.model, dtype=cfg.dtype, device=device).model.eval(), path,
                                     f"adapter {Path(name).name}"))
    return variants, base.tokenizer


def file_stem(model: str) -> str:
    return Path(model).name.lower().replace("/", "-")


def run_suite(cfg: SuiteConfig, out: Path, command: str | None = None) -> list[Path]:
    unknown = set(cfg.tables) - {"t3", "f1"}
    if unknown:
        raise UserError(f"unknown table(s) {sorted(unknown)}; choose from t3, f1")
    sample_file = cfg.data.is_file()
    if "t3" in cfg.tables and not sample_file and not (cfg.data / "data" / cfg.split).is_dir():
        raise UserError(f"SemanticSeg {cfg.data}: no {cfg.split} split (build it with `blockattn data build`)")
    if "f1" in cfg.tables and not cfg.hotpotqa.is_file():
        raise UserError(f"HotpotQA file {cfg.hotpotqa}: not found (pass --hotpotqa PATH)")
    import torch

    torch.manual_seed(cfg.seed)
    variants, tokenizer = variants_for(cfg)
    stem = file_stem(cfg.model)
    written = []
    if "t3" in cfg.tables:
        start = time.perf_counter()
        docs = (load_documents(cfg.data, cfg.documents) if sample_file
                else sample_documents(cfg.data, cfg.split, cfg.documents, cfg.max_tokens, cfg.seed))
        if cfg.save_sample is not None:
            save_documents(docs, cfg.save_sample)
        if not docs:
            raise UserError(f"SemanticSeg {cfg.data}: no {cfg.split} text with at least three gold blocks")
        table = segmentation_kl(variants, tokenizer, docs, cfg.methods)
        result = {**table, "model": cfg.model, "adapter": cfg.adapter, "split": cfg.split,
                  "data": cfg.data.name, "max_tokens": docs[0].get("max_tokens"),
                  "categories": sorted({d.get("category", "?") for d in docs}),
                  **provenance(cfg.seed, time.perf_counter() - start, command)}
        written.append(write_report(result, out / f"segkl_{stem}.json", plot_segmentation_kl))
    if "f1" in cfg.tables:
        start = time.perf_counter()
        items = read_questions(cfg.hotpotqa, cfg.examples)
        result = {"examples": sensitivity(variants, tokenizer, items), "model": cfg.model, "adapter": cfg.adapter,
                  "hotpotqa": cfg.hotpotqa.name, **provenance(cfg.seed, time.perf_counter() - start, command)}
        written.append(write_report(result, out / f"sensitivity_{stem}.json", plot_sensitivity))
    return written
