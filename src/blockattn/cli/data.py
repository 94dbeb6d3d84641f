"""`blockattn data ...`: Build and inspect the SemanticSeg dataset."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Build and inspect the SemanticSeg dataset.")
