"""Bring one GPU session's reports into reports/ (after `session.sh wait` brought back small.tgz, unpacked).

    python scripts/gpu/import_results.py RESULTS_DIR [--date 2026-12-02]
    python scripts/gpu/import_results.py --files A.json B.json ... [--date ...] [--how ...]

RESULTS_DIR is the unpacked `results/` folder: speed/ (speed.sh's files) and one folder per quality run. Each
speed JSON becomes reports/<name>_<gpu>.json (its PNG beside it; <gpu> is h200 or h100, from the report's own
env.gpu) with a "where" field naming the machine, the date, the commit and the software it ran with; each
quality_*.json (and its PNG) is copied as is (it names its own command, commit and machine). --files imports
the named benchmark JSONs the same way (any name: direct device calls write their own). Nothing is overwritten
silently: every file written is printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
from pathlib import Path

REPORTS = Path(__file__).resolve().parents[2] / "reports"
SPEED_FILES = ("bench_decode", "bench_decode_compiled", "bench_ttft", "bench_serve", "bench_serve_inproc",
               "bench_serve_compare", "profile_decode", "probe_query_attention", "probe_assemble", "profile_serve_prefill")


def _gpu(data: dict) -> str:
    """The GPU's name as the report recorded it (env.gpu, else its machine field); H200 for older reports that
    recorded neither (every GPU run before 2026-12-07 was on an H200)."""
    return str(data.get("env", {}).get("gpu") or data.get("machine") or "NVIDIA H200")


def gpu_tag(data: dict) -> str:
    name = _gpu(data).upper()
    for tag in ("H100", "H200"):
        if tag in name:
            return tag.lower()
    raise SystemExit(f"import_results: unknown GPU {_gpu(data)!r} in a report; name the file by hand")


def _where(data: dict, date: str, how: str) -> str:
    env = data.get("env", {})
    software = ", ".join(f"{k} {env[k]}" for k in ("torch", "transformers") if k in env)
    commit = str(data.get("commit", "unknown"))[:7]
    gpu = _gpu(data).removesuffix(" x1")
    return (f"lent {gpu} via the device tool, {date}, commit {commit}"
            + (f" ({software})" if software else "") + f", alone on the GPU ({how})")


def import_file(src: Path, args) -> None:
    data = json.loads(src.read_text())
    if not data.get("commit") and args.commit:
        data["commit"] = args.commit
    data["where"] = _where(data, args.date, args.how)
    dest = REPORTS / f"{src.stem}_{gpu_tag(data)}.json"
    dest.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {dest}")
    png = src.with_suffix(".png")
    if png.is_file():
        shutil.copy(png, dest.with_suffix(".png"))
        print(f"wrote {dest.with_suffix('.png')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="?")
    parser.add_argument("--files", type=Path, nargs="+", default=[], help="benchmark JSONs to import as they are")
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    parser.add_argument("--commit", help="the session's commit, for reports that do not name one")
    parser.add_argument("--how", default="speed phase of scripts/gpu/session.sh",
                        help="how the reports were run, for their \"where\" field (e.g. direct device calls)")
    args = parser.parse_args()
    if args.results is None and not args.files:
        parser.error("give RESULTS_DIR or --files")
    for src in args.files:
        import_file(src, args)
    if args.results is None:
        return
    speed = args.results / "speed"
    for name in SPEED_FILES:
        src = speed / f"{name}.json"
        if not src.is_file():
            print(f"missing: {src}")
            continue
        import_file(src, args)
    for report in sorted(args.results.glob("*/quality_*.json")) + sorted(args.results.glob("*/quality_*.png")):
        shutil.copy(report, REPORTS / report.name)
        print(f"wrote {REPORTS / report.name}")


if __name__ == "__main__":
    main()
