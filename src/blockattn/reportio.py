"""Writing a report: JSON (atomically: a killed run never leaves half a file) and its plot beside it; the
provenance every report carries (issue 12: each number traces to its command, commit, machine, wall time, seed);
plot helpers the benchmarks share. Below bench/ and eval/, so both use one copy."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Callable


def git_commit() -> str:
    """$BLOCKATTN_COMMIT when set (a copy without .git, e.g. on the GPU machine), else HEAD of the checkout this
    package runs from (+ "-dirty" with uncommitted changes), "unknown" outside git."""
    import os

    if os.environ.get("BLOCKATTN_COMMIT"):
        return os.environ["BLOCKATTN_COMMIT"]
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def machine() -> str:
    """The GPU's name when CUDA is present, else the CPU architecture and its core count."""
    import os

    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"CPU {platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


def provenance(seed: int, wall_seconds: float, command: str | None = None) -> dict:
    """{"command", "commit", "machine", "wall_seconds", "seed"}; the command defaults to this process's argv."""
    return {"command": command or "blockattn " + " ".join(sys.argv[1:]), "commit": git_commit(),
            "machine": machine(), "wall_seconds": round(wall_seconds, 1), "seed": seed}


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
