"""`blockattn bench serve-compare`: several `bench serve` runs of one machine, side by side.

Why a report of its own: a server setting (`--engine-process`, `--admit-per-step`) is judged by runs made one
after another on the same warm GPU, and each run's JSON holds one setting. This joins them: per client count and
mode, requests/s, tokens/s and TTFT of every run, and each run's figures over the first run's (the baseline).
The runs must share model, machine, corpus, context size and request plan, or the ratios would compare unlike
work; a mismatch is a clear error, not a table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from blockattn.errors import UserError
from blockattn.reportio import provenance, save_figure, write_report

# what the runs must share, for their figures to be comparable
SAME = ("model", "device", "context_tokens", "new_tokens", "zipf", "seed", "adapter", "max_batch")
METRICS = {
    "requests_per_s": lambda s: s["requests_per_s"],
    "tokens_per_s_total": lambda s: s["tokens_per_s_total"],
    "ttft_p50_ms": lambda s: s["ttft_ms"]["p50"],
    "ttft_p99_ms": lambda s: s["ttft_ms"]["p99"],
}


def label_of(config: dict) -> str:
    """A run's server setting in words, from its config."""
    where = "engine process" if config.get("engine_process") else "in-process"
    # runs from before --group-prefill existed had none
    grouped = ", grouped prefill" if config.get("group_prefill", False) else ""
    procs = config.get("client_processes", 1)  # runs from before the option had one load-generator process
    clients = "" if procs == 1 else ", auto client processes" if procs == 0 else f", {procs} client processes"
    return f"{where}, admit {config.get('admit_per_step', 4)}{grouped}{clients}"


def load_runs(paths: list[Path]) -> list[dict]:
    """The runs' JSON, checked to be `bench serve` reports of comparable work."""
    if len(paths) < 2:
        raise UserError("serve-compare needs at least two `bench serve` reports")
    runs = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: not a readable JSON report ({e})") from None
        if data.get("benchmark") != "serve" or "phases" not in data:
            raise UserError(f"{path}: not a `blockattn bench serve` report")
        runs.append({"file": str(path), **data})
    first = runs[0]
    for run in runs[1:]:
        for key in SAME:
            if run["config"].get(key) != first["config"].get(key):
                raise UserError(f"{run['file']} differs from {first['file']} in {key} "
                                f"({run['config'].get(key)!r} vs {first['config'].get(key)!r}): not comparable")
        if run.get("machine") != first.get("machine"):
            raise UserError(f"{run['file']} ran on {run.get('machine')!r}, {first['file']} on {first.get('machine')!r}"
                            ": compare runs of one machine only")
    return runs


def compare(runs: list[dict]) -> list[dict]:
    """One row per (clients, mode, run): the metrics, and over the baseline run's (the first) where it has that
    phase."""
    base = {(p["clients"], p["mode"]): p["summary"] for p in runs[0]["phases"]}
    rows = []
    for index, run in enumerate(runs):
        label = label_of(run["config"])
        for phase in run["phases"]:
            s = phase["summary"]
            row = {"run": index, "setting": label, "clients": phase["clients"], "mode": phase["mode"],
                   "requests": s["requests"], "errors": s["errors"], "cut_short": phase["cut_short"]}
            b = base.get((phase["clients"], phase["mode"]))
            for key, get in METRICS.items():
                value = get(s)
                row[key] = value
                reference = get(b) if b is not None else None
                row[f"{key}_over_baseline"] = round(value / reference, 3) if value is not None and reference else None
            rows.append(row)
    rows.sort(key=lambda r: (r["clients"], r["mode"], r["run"]))
    return rows


def block_over_full(runs: list[dict]) -> list[dict]:
    """Each run's own block / full TTFT p50 per client count (the issue's serving goal, ≤ 0.25)."""
    out = []
    for index, run in enumerate(runs):
        for r in run.get("ratios", []):
            out.append({"run": index, "setting": label_of(run["config"]), "clients": r["clients"],
                        "ttft_p50_block_over_full": r.get("ttft_p50_block_over_full"),
                        "requests_per_s_block_over_full": r.get("requests_per_s_block_over_full")})
    return out


def build(paths: list[Path], command: str) -> dict:
    started = time.perf_counter()
    runs = load_runs(paths)
    return {"benchmark": "serve_compare", "title": "Serving settings side by side",
            "config": {k: runs[0]["config"].get(k) for k in SAME},
            "runs": [{"run": i, "setting": label_of(r["config"]), "file": Path(r["file"]).name,
                      "command": r.get("command"), "commit": r.get("commit"), "partial": r.get("partial", False),
                      "wall_seconds": r.get("wall_seconds")} for i, r in enumerate(runs)],
            "rows": compare(runs), "block_over_full": block_over_full(runs),
            "env": runs[0].get("env", {}), "where": runs[0].get("where"),
            **provenance(runs[0].get("seed", 0), time.perf_counter() - started, command),
            "machine": runs[0].get("machine")}


def plot(result: dict, path: Path) -> None:
    """Block mode: requests/s (left) and TTFT p50 (right) per client count, one bar per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["mode"] == "block"]
    clients = sorted({r["clients"] for r in rows})
    settings = [run["setting"] for run in result["runs"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / len(settings)
    for ax, key, title in ((axes[0], "requests_per_s", "block mode: requests/s"),
                           (axes[1], "ttft_p50_ms", "block mode: TTFT p50 (ms)")):
        for i, setting in enumerate(settings):
            values = [next((r[key] for r in rows if r["clients"] == c and r["run"] == i), 0) or 0 for c in clients]
            ax.bar([k + i * width for k in range(len(clients))], values, width, label=setting, color=f"C{i}")
        ax.set_xticks([k + width * (len(settings) - 1) / 2 for k in range(len(clients))],
                      [f"{c} client{'' if c == 1 else 's'}" for c in clients])
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"bench serve on {result.get('machine')}: {result['config']['model']}, "
                 f"~{result['config']['context_tokens']} context tokens", fontsize=10)
    save_figure(fig, path)


def run(paths: list[Path], out: Path, command: str) -> dict:
    result = build(paths, command)
    write_report(result, out, plot)
    return result
