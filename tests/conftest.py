"""Shared fixtures: tiny random models (fast) and the real default model (slow tests)."""

from __future__ import annotations

import os

import pytest

# Before torch loads: on shared 2-core machines OpenMP's spin-waiting made small matmuls up to 30x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

# Tests must never reach a hub; everything they need is installed locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct in fp32 (converted once by `make setup`)."""
    from blockattn.models import load

    return load("smollm2-135m-instruct", dtype="float32")


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from blockattn.models import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")


@pytest.fixture
def strict_fp32():
    """fp32 matmuls without TF32 on CUDA, so GPU tolerances are about the kernels, not reduced precision."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    yield
    torch.backends.cuda.matmul.allow_tf32 = before[0]
    torch.set_float32_matmul_precision(before[1])


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from blockattn.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free loopback port, stopped after the test (the Makefile set-up installs it)."""
    import shutil

    from blockattn.bench.redisproc import RedisProcess

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not installed (make setup installs Debian's redis-server)")
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.stop()
