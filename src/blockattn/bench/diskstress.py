"""Several processes × threads on one budgeted cache directory (`DiskTier(max_bytes=...)`): every read is
checked against the exact tensor its key stands for, and an outside observer samples the directory's entry
bytes to find the peak. The guarantees measured: no corrupt or wrong read, the budget held, no errors.

    python -m blockattn.bench.diskstress --dir /tmp/d --processes 2 --threads 16 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

ENTRY_SHAPE = (2, 2, 2, 16, 16)  # (layers, k/v, kv_heads, tokens, head_dim): 8 KiB of fp32 per entry


def key_of(i: int) -> str:
    return f"{i:064x}"


def tensor_of(i: int) -> torch.Tensor:
    """The one tensor key i stands for (content-addressed: same key, same bytes, in every process)."""
    return torch.randn(ENTRY_SHAPE, generator=torch.Generator().manual_seed(i))


def entry_bytes(root: Path) -> tuple[int, int]:
    """(entries, bytes) of the finished entries in `root` right now."""
    n = total = 0
    for path in root.glob("*/*.safetensors"):
        try:
            total += path.stat().st_size
            n += 1
        except FileNotFoundError:
            continue
    return n, total


def worker(root: str, budget: int, threads: int, seconds: float, keys: int, seed: int) -> dict:
    """One process: `threads` threads, each looking a random key up and writing it when missing."""
    from blockattn.engine.disk import DiskTier

    tier = DiskTier(root, max_bytes=budget)
    counts = {"reads": 0, "hits": 0, "writes": 0, "wrong": 0, "errors": 0, "error_samples": []}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        while time.monotonic() < deadline:
            i = rng.randrange(keys)
            try:
                got = tier.read(key_of(i))
                wrong = got is not None and not torch.equal(got, tensor_of(i))
                if got is None:
                    tier.write(key_of(i), tensor_of(i))
                with lock:
                    counts["reads"] += 1
                    counts["hits"] += got is not None
                    counts["writes"] += got is None
                    counts["wrong"] += wrong
            except Exception as exc:  # noqa: BLE001 - every failure is counted: the goal is 0
                with lock:
                    counts["errors"] += 1
                    if len(counts["error_samples"]) < 3:
                        counts["error_samples"].append(repr(exc))

    pool = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    stats = tier.snapshot()
    return {**counts, "corrupt": stats["corrupt"], "write_errors": stats["write_errors"],
            "evictions": stats["evictions"]}


def run(root: Path, budget_entries: int = 8, processes: int = 2, threads: int = 16, seconds: float = 10.0,
        keys: int = 40) -> dict:
    """Start the processes, sample the directory until they finish; the summary."""
    from blockattn.engine.disk import DiskTier

    root.mkdir(parents=True, exist_ok=True)
    probe = root / "probe"
    DiskTier(probe).write(key_of(0), tensor_of(0))
    one = entry_bytes(probe)[1]  # every entry has the same size: one header, one tensor shape
    budget = budget_entries * one
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    procs = [subprocess.Popen([sys.executable, "-m", "blockattn.bench.diskstress", "--worker", "--dir",
                               str(root / "cache"), "--budget", str(budget), "--threads", str(threads),
                               "--seconds", str(seconds), "--keys", str(keys), "--seed", str(p)],
                              stdout=subprocess.PIPE, text=True, env=env) for p in range(processes)]
    (root / "cache").mkdir(exist_ok=True)
    peak = samples = 0
    while any(p.poll() is None for p in procs):
        peak = max(peak, entry_bytes(root / "cache")[1])
        samples += 1
        time.sleep(0.005)
    results = [json.loads(p.stdout.read().strip().splitlines()[-1]) for p in procs]
    total = {name: sum(r[name] for r in results) for name in
             ("reads", "hits", "writes", "wrong", "errors", "corrupt", "write_errors", "evictions")}
    return {"processes": processes, "threads_per_process": threads, "seconds": seconds, "keys": keys,
            "entry_bytes": one, "budget_bytes": budget, "budget_entries": budget_entries,
            "peak_bytes": peak, "peak_over_budget_entries": max(0, peak - budget) / one, "samples": samples,
            "final_entries_bytes": entry_bytes(root / "cache"), **total,
            "hit_rate": total["hits"] / max(1, total["reads"]),
            "error_samples": [s for r in results for s in r["error_samples"]][:3]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--budget", type=int, default=0)
    parser.add_argument("--budget-entries", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keys", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.worker:
        print(json.dumps(worker(str(args.dir), args.budget, args.threads, args.seconds, args.keys, args.seed)))
    else:
        print(json.dumps(run(args.dir, args.budget_entries, args.processes, args.threads, args.seconds,
                             args.keys), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
