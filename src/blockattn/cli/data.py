"""`blockattn data ...`: Build and inspect the SemanticSeg dataset (logic in `blockattn.data`)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Build and inspect the SemanticSeg dataset.")


def _command_line() -> str:
    return "blockattn " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@app.command("build")
def build(
    out: Path = typer.Option(..., "--out", help="Folder to write (replaced atomically if it holds an earlier build)."),
    instances: int = typer.Option(30000, help="Instances to make (the paper's scale is 30k)."),
    categories: str = typer.Option("", help="Comma-separated categories (default: all; see `data categories`)."),
    seed: int = typer.Option(0, help="Seed: the same seed gives byte-identical files."),
    workers: int = typer.Option(1, help="Processes for parsing and instance making."),
) -> None:
    """Fetch the source packages (cached), cut them into instances, write Parquet + a dataset card."""
    from blockattn.data.build import build as run_build

    selected = [c.strip() for c in categories.split(",") if c.strip()] or None
    result = run_build(out, instances, selected, seed, workers, command=_command_line())
    typer.echo(f"{len(result.stats)} instances in {result.seconds:.0f} s → {out} (card: {out}/README.md)")


@app.command("build-unseen")
def build_unseen(
    out: Path = typer.Option(..., "--out", help="Folder to write (replaced atomically if it holds an earlier build)."),
    instances: int = typer.Option(300, help="Instances wanted (fewer if the set's texts hold too little text)."),
    set_name: str = typer.Option("r-vignettes", "--set", help="Which held-out set: r-vignettes | debian-policy."),
    seed: int = typer.Option(0, help="Seed: the same seed gives byte-identical files."),
    workers: int = typer.Option(1, help="Processes for parsing and instance making."),
) -> None:
    """Build a held-out set (R package vignettes, or the Debian policy manuals; both kept out of SemanticSeg):
    same schema, split `test`."""
    from blockattn.data.build import build as run_build

    result = run_build(out, instances, None, seed, workers, command=_command_line(), unseen=set_name)
    typer.echo(f"{len(result.stats)} instances in {result.seconds:.0f} s → {out} (card: {out}/README.md)")


@app.command("stats")
def stats(root: Path = typer.Argument(..., help="A folder made by `blockattn data build`.")) -> None:
    """Print counts per category and split, and the length histogram."""
    from blockattn.data.stats import print_stats

    print_stats(root)


@app.command("levels")
def levels(
    root: Path = typer.Argument(..., help="A folder made by `blockattn data build`."),
    out: Path = typer.Option(None, "--out", help="Also write the figures as JSON here."),
    per_category: int = typer.Option(100, help="Instances per category whose block lengths are measured."),
    seed: int = typer.Option(0, help="Seed of that sample."),
) -> None:
    """How distinct the gold levels are: coarse≠fine share and block lengths per level and category."""
    from blockattn.data.levels import print_levels

    if per_category < 1:
        raise typer.BadParameter("--per-category must be at least 1")
    print_levels(root, out, per_category, seed, command=_command_line())


@app.command("categories")
def categories() -> None:
    """List the categories and their sources."""
    from blockattn.data.sources import CATEGORIES, sources_for

    for cat in CATEGORIES:
        typer.echo(f"{cat:<18} {', '.join(s.name for s in sources_for([cat]))}")
