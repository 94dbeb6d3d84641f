"""The `blockattn` command: a thin typer shell over the Python API.

Each command group lives in its own module here; logic lives in the packages below. Modules import heavy
libraries (torch, transformers) inside the commands, so `blockattn --help` and fast paths stay fast.
"""

from __future__ import annotations

import os
import sys

# Before torch loads anywhere below: OpenMP's spin-waiting made small matmuls up to 30x slower on shared
# 2-core machines (measured by the engine benchmarks); passive waiting costs nothing when the cores are free.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402

from blockattn.cli import bench, data, demo, distill, evaluate, generate, models, segment, serve
from blockattn.errors import UserError

app = typer.Typer(
    name="blockattn", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Block attention for LLMs: segment documents into blocks, cache block KV, distil block-ready models.",
)
app.command("generate")(generate.generate)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.command("distill")(distill.distill)
app.command("block-ft")(distill.block_ft)
app.add_typer(models.app, name="models")
app.add_typer(data.app, name="data")
app.add_typer(segment.app, name="segment")
app.add_typer(bench.app, name="bench")
app.add_typer(evaluate.app, name="eval")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        app()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
