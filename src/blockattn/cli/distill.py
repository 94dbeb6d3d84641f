"""`blockattn distill` and `blockattn block-ft`: block distillation and its baseline, block fine-tuning.

Both take the same YAML config (configs/*.yaml) and `--set section.field=value` overrides, and write a run
directory (metrics.jsonl, curves.png, checkpoint.pt, adapter/, summary.json). Under torchrun each process
trains on its share: `torchrun --nproc_per_node N --no-python blockattn distill --config C --out DIR`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

import typer

CONFIG_HELP = "YAML run config (configs/smoke-cpu.yaml, configs/smollm2-h200.yaml, ...)."
OUT_HELP = "Run directory; a checkpoint of the same run there is resumed."
SET_HELP = "Override a config value: --set loss.weighting=kl (repeatable)."


def _train(objective: str, config: Path, out: Path, overrides: list[str], progress: bool) -> None:
    from blockattn.distill.config import load_config
    from blockattn.distill.distributed import shutdown
    from blockattn.distill.recipe import run

    summary = run(load_config(config, overrides), objective, out, progress=progress)
    shutdown()
    if int(os.environ.get("RANK", 0)) == 0:  # under torchrun, one summary
        typer.echo(json.dumps(summary, indent=2))


def distill(
    config: Path = typer.Option(..., "--config", "-c", help=CONFIG_HELP),
    out: Path = typer.Option(..., "--out", "-o", help=OUT_HELP),
    overrides: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Block distillation: the block-attention student (LoRA + block sinks) learns to match its own frozen
    full-attention self."""
    _train("distill", config, out, overrides or [], progress)


def block_ft(
    config: Path = typer.Option(..., "--config", "-c", help=CONFIG_HELP),
    out: Path = typer.Option(..., "--out", "-o", help=OUT_HELP),
    overrides: Optional[List[str]] = typer.Option(None, "--set", help=SET_HELP),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Block fine-tuning baseline: the same student, mask and data, next-token loss on the query blocks,
    no teacher."""
    _train("block_ft", config, out, overrides or [], progress)
