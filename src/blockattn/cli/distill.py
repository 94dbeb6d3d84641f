"""`blockattn distill` and `blockattn block-ft` (distillation issue)."""

from __future__ import annotations

import typer


def distill() -> None:
    """Block distillation."""
    raise typer.Exit(code=2)


def block_ft() -> None:
    """Block fine-tuning baseline."""
    raise typer.Exit(code=2)
