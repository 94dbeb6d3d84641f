"""`blockattn models ...`: prepare and inspect models."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True, help="Prepare and inspect models.")


@app.command("prepare")
def prepare(name: str = typer.Argument("smollm2-135m-instruct", help="A known model (see `blockattn models list`)."),
            gguf: Optional[Path] = typer.Option(None, help="The model's GGUF file (instead of its PyPI package(s))."),
            force: bool = typer.Option(False, help="Convert again even if already prepared.")) -> None:
    """Convert a known model's GGUF to safetensors under $BLOCKATTN_HOME, once."""
    from blockattn.models import convert
    from blockattn.models.loader import ALIASES
    from blockattn.models.registry import find_gguf, known

    model = known(ALIASES.get(name, name))
    if convert.is_prepared(model.name) and not force:
        typer.echo(f"{model.name}: ready at {convert.model_dir(model.name)}")
        return
    source = find_gguf(model.name, gguf)
    typer.echo(f"{model.name}: converting {source.name} (once) ...")
    path = convert.prepare(model.name, gguf=source, force=force)
    typer.echo(f"{model.name}: ready at {path}")


@app.command("list")
def list_models() -> None:
    """Known models: prepared (converted), source available (package installed or GGUF env var set), or neither."""
    import os

    from blockattn.models import convert
    from blockattn.models.registry import KNOWN, packages_installed

    for model in KNOWN.values():
        if convert.is_prepared(model.name):
            state = f"prepared  {convert.model_dir(model.name)}"
        elif packages_installed(model) or os.environ.get(model.env_var):
            state = "available (run `blockattn models prepare " + model.name + "`)"
        else:
            state = f"missing   ({model.pip}, or set ${model.env_var})"
        typer.echo(f"{model.name:30s} {state}")
