"""A budgeted cache directory under real processes: 2 × 16 clients hold the budget with no corrupt read and no
error; a writer SIGKILLed mid-run leaves only whole entries (and its temporaries are cleaned up)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from blockattn.bench.diskstress import entry_bytes, key_of, run, tensor_of
from blockattn.engine.disk import DiskTier


@pytest.mark.slow
def test_two_processes_of_16_clients_hold_a_tiny_budget(tmp_path):
    result = run(tmp_path, budget_entries=6, processes=2, threads=16, seconds=3, keys=30)
    assert result["errors"] == 0, result["error_samples"]
    assert result["wrong"] == 0 and result["corrupt"] == 0 and result["write_errors"] == 0
    assert result["reads"] > 100 and result["evictions"] > 0  # the budget was really under pressure
    assert result["peak_bytes"] <= result["budget_bytes"] + result["entry_bytes"]


def test_a_writer_killed_mid_run_leaves_only_whole_entries(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    writer = subprocess.Popen([sys.executable, "-m", "blockattn.bench.diskstress", "--worker", "--dir", str(cache),
                               "--budget", str(1 << 30), "--threads", "8", "--seconds", "120", "--keys", "100000"],
                              stdout=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while entry_bytes(cache)[0] < 20:  # killed while its 8 threads are writing
        assert writer.poll() is None and time.monotonic() < deadline, "the writer did not start writing"
        time.sleep(0.05)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    reopened = DiskTier(cache)
    assert not list(cache.glob("*/.*.tmp"))  # the dead writer's temporaries are gone
    entries = sorted(cache.glob("*/*.safetensors"))
    assert len(entries) >= 20 and reopened.stats.entries == len(entries)
    for path in entries:
        key = path.name.removesuffix(".safetensors")
        assert torch.equal(reopened.read(key), tensor_of(int(key, 16)))
    assert reopened.stats.corrupt == 0


def test_lru_keeps_the_recently_read_entry(tmp_path):
    probe = DiskTier(tmp_path / "probe")
    probe.write(key_of(0), tensor_of(0))
    one = entry_bytes(tmp_path / "probe")[1]
    tier = DiskTier(tmp_path / "cache", max_bytes=2 * one)
    tier.write(key_of(1), tensor_of(1))
    time.sleep(0.02)  # distinct mtimes
    tier.write(key_of(2), tensor_of(2))
    time.sleep(0.02)
    assert tier.read(key_of(1)) is not None  # 1 is now the most recently used
    time.sleep(0.02)
    tier.write(key_of(3), tensor_of(3))
    assert tier.read(key_of(2)) is None and tier.read(key_of(1)) is not None
    assert tier.stats.evictions == 1 and entry_bytes(tmp_path / "cache") == (2, 2 * one)
    big = DiskTier(tmp_path / "small", max_bytes=one - 1)  # an entry over the whole budget is not stored
    big.write(key_of(4), tensor_of(4))
    assert entry_bytes(tmp_path / "small") == (0, 0) and big.read(key_of(4)) is None
