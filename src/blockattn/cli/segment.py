"""`blockattn segment ...`: cut text into self-contained blocks; evaluate and train segmenters.

`blockattn segment FILE|-` cuts (the `cut` command is the default: a first argument that names no
subcommand is handed to it). Nothing heavy is imported at module level: this module loads with every
`blockattn` command, and the learned fast path must not pay for torch.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup


class _DefaultCutGroup(TyperGroup):
    """A group whose first argument, unless it names a subcommand (or asks for help), goes to `cut`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["cut", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_DefaultCutGroup, no_args_is_help=True,
                  help="Cut text into self-contained blocks (`blockattn segment FILE|-`), evaluate, train.")

_FORMATS = ("text", "json", "jsonl")
_ALL_METHODS = ["learned", "fixed", "sentence", "paragraph", "recursive", "texttiling", "semantic"]


def _names(methods: List[str]) -> List[str]:
    """Method names from repeated and/or comma-separated --methods values."""
    return [m for item in methods for m in item.split(",") if m]


@app.command("cut")
def cut(
    file: str = typer.Argument(..., help="UTF-8 text file, or - for stdin."),
    level: str = typer.Option("medium", help="Granularity: coarse | medium | fine."),
    target_tokens: Optional[int] = typer.Option(None, help="Mean block length in tokens (overrides --level)."),
    num_blocks: Optional[int] = typer.Option(None, help="Exactly this many blocks (overrides the others)."),
    min_tokens: int = typer.Option(0, help="Hard lower bound on a block's tokens."),
    max_tokens: Optional[int] = typer.Option(None, help="Hard upper bound on a block's tokens."),
    method: str = typer.Option("learned", help="learned | fixed | sentence | paragraph | recursive | "
                                                "texttiling | semantic."),
    fmt: str = typer.Option("text", "--format", help="text | json | jsonl."),
) -> None:
    """Cut FILE (default command: `blockattn segment FILE` is `blockattn segment cut FILE`)."""
    from blockattn.errors import UserError
    from blockattn.segment import Document, Request, segment_document
    from blockattn.textio import read_text_file

    if fmt not in _FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(_FORMATS)}")
    request = Request(level=level, target_tokens=target_tokens, num_blocks=num_blocks,
                      min_tokens=min_tokens, max_tokens=max_tokens)
    text = read_text_file(file)
    started = time.perf_counter()
    blocks = segment_document(Document(text), method, request)
    ms = (time.perf_counter() - started) * 1000
    out = sys.stdout
    if fmt == "json":
        json.dump({"blocks": [b.to_dict() for b in blocks], "method": method, "ms": round(ms, 3)}, out,
                  ensure_ascii=False)
        out.write("\n")
    elif fmt == "jsonl":
        for b in blocks:
            out.write(json.dumps(b.to_dict(), ensure_ascii=False) + "\n")
    else:
        for i, b in enumerate(blocks):
            out.write(f"──── block {i + 1}/{len(blocks)} · chars {b.start}–{b.end} · {b.n_tokens} tokens ────\n")
            out.write(b.text if b.text.endswith("\n") else b.text + "\n")


@app.command("eval")
def evaluate(
    data: Path = typer.Option(..., help="SemanticSeg folder (Parquet per split)."),
    split: str = typer.Option("test", help="train | validation | test."),
    methods: List[str] = typer.Option(_ALL_METHODS, help="Methods to compare (comma-separated, or repeat)."),
    per_category: Optional[int] = typer.Option(None, help="Evaluate at most this many documents per category "
                                                          "(a seeded sample; default all)."),
    out: Path = typer.Option(Path("reports/segmentation.json"), help="Report JSON; the plot goes beside it."),
    seed: int = typer.Option(0, help="Seed of the per-category sample."),
    reuse: Optional[Path] = typer.Option(None, help="An earlier report on the same documents: methods it "
                                                    "scored are taken from it, not run again."),
) -> None:
    """Compare methods at the gold number of blocks; print the per-category table, write JSON + plot."""
    from blockattn.segment.evaluate import run_evaluation

    names = _names(methods)
    command = (f"blockattn segment eval --data {data} --split {split} --methods {','.join(names)}"
               + (f" --per-category {per_category} --seed {seed}" if per_category else "") + f" --out {out}"
               + (f" --reuse {reuse}" if reuse else ""))
    run_evaluation(data, split, names, out, per_category=per_category, seed=seed, command=command, reuse=reuse)


@app.command("bench")
def bench(
    data: Path = typer.Option(..., help="SemanticSeg folder whose documents are timed."),
    split: str = typer.Option("test", help="train | validation | test."),
    methods: List[str] = typer.Option(_ALL_METHODS, help="Methods to time (comma-separated, or repeat)."),
    per_category: int = typer.Option(3, help="Documents per category for the fast methods."),
    slow_per_category: int = typer.Option(1, help="Documents per category for texttiling and semantic."),
    out: Path = typer.Option(Path("reports/segmentation_speed.json"), help="Report JSON."),
    seed: int = typer.Option(0, help="Seed of the document sample."),
) -> None:
    """Time every method (tokens/s) and the learned CLI end to end on a 32k-token document."""
    from blockattn.segment.bench import run_bench

    names = _names(methods)
    command = (f"blockattn segment bench --data {data} --split {split} --methods {','.join(names)} "
               f"--per-category {per_category} --slow-per-category {slow_per_category} --seed {seed} --out {out}")
    run_bench(data, split, names, out, per_category, slow_per_category, seed, command)


@app.command("calibrate")
def calibrate(
    data: Path = typer.Option(..., help="SemanticSeg folder: its train + validation splits are measured."),
    weights: Optional[Path] = typer.Option(None, help="Weights to start from (default: the shipped ones)."),
    out: Optional[Path] = typer.Option(None, help="Where to write them (default: over --weights)."),
) -> None:
    """Set what --level coarse|medium|fine mean (each level's mean block length) from SemanticSeg."""
    from blockattn.segment.assets import asset
    from blockattn.segment.learned.calibrate import calibrate_weights
    from blockattn.segment.learned.segmenter import WEIGHTS_ASSET

    weights = weights or asset(WEIGHTS_ASSET)
    measured = calibrate_weights(data, weights, out or weights)
    typer.echo("level mean block length (tokens): "
               + ", ".join(f"{lv} {t:.0f}" for lv, t in measured.items()) + f" → {out or weights}")


@app.command("ensemble")
def ensemble(
    weights: List[Path] = typer.Argument(..., help="Two or more weights files (single taggers or ensembles)."),
    out: Path = typer.Option(..., help="The ensemble's weights file (decoding settings: the first file's)."),
) -> None:
    """Average several trained taggers' boundary log-odds: one weights file holding all of them."""
    from blockattn.segment.learned.segmenter import combine_weights

    members = combine_weights(list(weights), out)
    typer.echo(f"{members} taggers → {out} ({out.stat().st_size / 1e6:.1f} MB)")


@app.command("train")
def train(
    data: Path = typer.Option(..., help="SemanticSeg folder (Parquet per split)."),
    out: Optional[Path] = typer.Option(None, help="Where to write the weights (default: the shipped ones)."),
    steps: int = typer.Option(3000, help="Optimizer steps."),
    batch_size: int = typer.Option(32, help="Crops per step."),
    eval_every: int = typer.Option(250, help="Validate (and checkpoint) every this many steps."),
    train_per_category: Optional[int] = typer.Option(None, help="Train on at most this many documents per "
                                                                "category (features are cached in memory)."),
    seed: int = typer.Option(0, help="Random seed."),
    work: Path = typer.Option(Path("runs/segmenter"), help="Cache of features and checkpoints (resumable)."),
    device: str = typer.Option("cpu", help="cpu | cuda."),
    heading_share: float = typer.Option(0.0, help="Also train on this share of the headingless prose rows "
                                                  "with synthetic headings (one markup style per row)."),
    cross_category: int = typer.Option(0, help="Also train on this many concatenations of blocks from "
                                               "documents of different categories."),
    embeddings_from: Optional[Path] = typer.Option(None, help="Take the static token embeddings from this "
                                                              "weights file instead of distilling MiniLM."),
    dim: int = typer.Option(128, help="The tagger's hidden width (a multiple of its 4 heads)."),
    layers: int = typer.Option(4, help="The tagger's transformer layers."),
    ffn: int = typer.Option(512, help="The tagger's feed-forward width."),
    lexical_windows: str = typer.Option("", help="Also give the tagger lexical cohesion features over these "
                                                 "windows of units, e.g. 4,8,16,32 (hashed bags of words)."),
) -> None:
    """Train the learned segmenter on the train split, select on validation, export numpy weights."""
    from blockattn.errors import UserError
    from blockattn.segment.learned.train import train as run_training

    command = (f"blockattn segment train --data {data} --steps {steps} --batch-size {batch_size} "
               f"--eval-every {eval_every}" + (f" --train-per-category {train_per_category}" if train_per_category else "")
               + f" --seed {seed} --work {work} --device {device}" + (f" --out {out}" if out else "")
               + (f" --heading-share {heading_share}" if heading_share else "")
               + (f" --cross-category {cross_category}" if cross_category else "")
               + (f" --embeddings-from {embeddings_from}" if embeddings_from else "")
               + ("" if (dim, layers, ffn) == (128, 4, 512) else f" --dim {dim} --layers {layers} --ffn {ffn}")
               + (f" --lexical-windows {lexical_windows}" if lexical_windows else ""))
    if min(dim, layers, ffn) < 1 or dim % 4:
        raise UserError("--dim must be a positive multiple of 4 (the tagger's heads); --layers and --ffn >= 1")
    try:
        windows = tuple(int(w) for w in lexical_windows.split(",") if w.strip())
    except ValueError:
        raise UserError(f"--lexical-windows: {lexical_windows!r} is not a comma-separated list of integers") from None
    if any(w < 1 for w in windows):
        raise UserError("--lexical-windows: every window must be at least 1 unit")
    run_training(data, out=out, steps=steps, batch_size=batch_size, eval_every=eval_every,
                 train_per_category=train_per_category, seed=seed, work=work, device=device, command=command,
                 heading_share=heading_share, cross_category=cross_category, embeddings_from=embeddings_from,
                 dim=dim, layers=layers, ffn=ffn, lexical_windows=windows)
