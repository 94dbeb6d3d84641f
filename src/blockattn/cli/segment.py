"""`blockattn segment ...`: Cut text into self-contained blocks."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Cut text into self-contained blocks.")
