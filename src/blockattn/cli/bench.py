"""`blockattn bench ...`: Speed benchmarks (write JSON + a plot to reports/)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Speed benchmarks (write JSON + a plot to reports/).")
