"""The torchrun path on CPU: 2 gloo processes with batch B each follow the same loss curve as one process
with batch 2B (losses are means over the whole batch; DDP's gradient averaging is undone)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from blockattn.distill.metrics import read_metrics

from .conftest import TINY

pytestmark = pytest.mark.slow


def blockattn_cli() -> str:
    found = Path(sys.executable).with_name("blockattn")
    return str(found) if found.exists() else shutil.which("blockattn")


def test_two_gloo_processes_match_one_process_with_the_double_batch(tmp_path):
    common = TINY + ["train.steps=6", "train.log_every=1", "loss.weighting=kl"]
    sets = lambda extra: [a for o in common + extra for a in ("--set", o)]  # noqa: E731
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    config = tmp_path / "empty.yaml"  # everything comes from the overrides
    config.write_text("{}\n")
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--no-python",
                          blockattn_cli(), "distill", "--config", str(config), "--out", str(tmp_path / "two"),
                          "--no-progress", *sets(["data.batch_size=2"])], env=env, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([blockattn_cli(), "distill", "--config", str(config), "--out", str(tmp_path / "one"),
                          "--no-progress", *sets(["data.batch_size=4"])], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = read_metrics(tmp_path / "two" / "metrics.jsonl"), read_metrics(tmp_path / "one" / "metrics.jsonl")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(1, 7))
    for ra, rb in zip(a, b):
        for key in ("loss", "kl", "grad_norm", "tokens"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-6), (ra["step"], key)
    assert (tmp_path / "two" / "adapter" / "blockattn_adapter.json").is_file()
