"""`blockattn serve`: the OpenAI-compatible server (engine issue)."""

from __future__ import annotations

import typer


def serve() -> None:
    """Serve the engine over an OpenAI-compatible HTTP API."""
    raise typer.Exit(code=2)
