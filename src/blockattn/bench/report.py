"""Writing a benchmark's result: JSON (atomically: a killed run never leaves half a file) and its plot beside it;
plot helpers the benchmarks share."""

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


def token_axis(ax, sizes: list[int]) -> None:
    """A base-2 log x axis of token counts, ticked at `sizes` as "2k", "4k", ..., with a light grid."""
    import matplotlib

    ax.set_xscale("log", base=2)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(sizes, [f"{s // 1024}k" for s in sizes])
    ax.grid(alpha=0.3)


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
