"""`blockattn eval ...`: Evaluation tables and plots (reports/)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Evaluation tables and plots (reports/).")
