"""Writing a benchmark's result: JSON (atomically: a killed run never leaves half a file) and its plot beside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable


def write_report(result: dict, out: Path, plot: Callable[[dict, Path], None] | None = None) -> Path:
    """`out` (.json) and, when `plot` is given, `out` with the suffix .png."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.rename(out)
    if plot is not None:
        plot(result, out.with_suffix(".png"))
    return out
