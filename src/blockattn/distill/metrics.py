"""Training metrics: one JSON object per logged step in RUN_DIR/metrics.jsonl, and a plot of the curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


class MetricsLog:
    """Appends records to RUN_DIR/metrics.jsonl. Opened at `resume_step`, it first drops the records logged
    after that step (a killed run logged steps its checkpoint does not hold; the resumed run logs them again),
    so the file always reads as one uninterrupted run."""

    def __init__(self, run_dir: Path, resume_step: int = 0):
        self.path = Path(run_dir) / METRICS_FILE
        kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step] if resume_step else []
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(path: Path) -> list[dict]:
    """Records of a metrics file (a torn last line, from a killed writer, is skipped)."""
    if not Path(path).is_file():
        return []
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_curves(records: list[dict], out: Path, title: str) -> Path:
    """Loss, KL to full attention and CE against the step, one panel each (missing values skipped)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("loss", "kl", "ce") if any(_finite(r.get(k)) for r in records)]
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4.2 * max(1, len(keys)), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        points = [(r["step"], r[key]) for r in records if _finite(r.get(key))]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="." if len(points) < 40 else None)
        ax.set_xlabel("step")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
