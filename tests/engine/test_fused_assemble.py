"""The fused (Triton) block placement == the torch path: run through Triton's interpreter on the CPU when
Triton is installed (the compiled kernel is tested on CUDA in test_gpu.py), and the self-check that switches a
failing or wrong kernel off."""

import importlib
import os

import pytest
import torch

from blockattn.attention.rope import RopeSpec
from blockattn.engine import fused_assemble
from blockattn.engine.assemble import BlockPlacer
from blockattn.engine.engine import BlockEngine, EngineConfig
from blockattn.engine.kvbuffer import SequenceKV
from blockattn.models.tiny import tiny_model
from tests.engine.test_exactness import random_blocks, reference_logits


def _rope(rot=16):
    return RopeSpec(inv_freq=1.0 / (10000 ** (torch.arange(0, rot, 2).float() / rot)), rotary_dim=rot)


def _parts(dtype, dim=16, seed=0):
    """Three blocks prefilled at native start 2 (after a shared sink), placed at 0, 13, 50."""
    g = torch.Generator().manual_seed(seed)
    lengths = [13, 37, 5]
    entries = [torch.randn(2, 2, 3, n, dim, generator=g).to(dtype) for n in lengths]  # (layers, 2, H_kv, T, D)
    offsets = [0, 13, 50]
    return [(e, 2, o) for e, o in zip(entries, offsets)], sum(lengths)


def _place(placer, parts, n, dtype, dim=16):
    kv = SequenceKV(2, 3, dim, n + 7, dtype, "cpu")
    placer.place(kv, parts)
    return kv.buffer[:, :, :, :n].float()


@pytest.fixture
def interpreted(monkeypatch):
    """fused_assemble through Triton's CPU interpreter."""
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    importlib.reload(fused_assemble)
    monkeypatch.setattr(fused_assemble, "fused_available", lambda device: True)
    yield
    monkeypatch.undo()
    os.environ.pop("TRITON_INTERPRET", None)
    importlib.reload(fused_assemble)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rot", [16, 8])  # full and partial rotary
def test_the_kernel_equals_the_torch_path(interpreted, dtype, rot):
    parts, n = _parts(dtype)
    fused = BlockPlacer(_rope(rot), compiled=False, fused=True)
    got = _place(fused, parts, n, dtype)
    expected = _place(BlockPlacer(_rope(rot), compiled=False), parts, n, dtype)
    assert fused.fused and fused.fused_error is None
    tol = 1e-5 if dtype == torch.float32 else 2e-2  # bf16: both round one fp32 result, an ulp apart at most
    assert (got - expected).abs().max() <= tol


def test_the_engine_with_the_kernel_equals_the_uncached_reference(interpreted):
    model = tiny_model()
    *blocks, query = random_blocks([20, 9, 33, 4], seed=9)
    engine = BlockEngine(model, "tiny", config=EngineConfig(fused_assemble=True))
    engine.prefill(blocks, query)
    out = engine.prefill(blocks[::-1], query, keep_logits=len(query)).logits  # cached, every block moved
    assert engine.placer.fused and engine.placer.fused_error is None
    assert (out - reference_logits(model, blocks[::-1], query)).abs().max() <= 1e-4


@pytest.mark.parametrize("broken", ["raises", "wrong"])
def test_a_failing_or_wrong_kernel_is_switched_off_and_the_result_stays_right(monkeypatch, broken):
    def bad_kernel(buffer, entries, offsets, cos, sin):
        if broken == "raises":
            raise RuntimeError("no compiler")
        buffer[:, :, :, offsets[-1]:offsets[-1] + entries[-1].shape[3]] = 0  # a kernel bug: the wrong numbers

    monkeypatch.setattr(fused_assemble, "fused_available", lambda device: True)
    monkeypatch.setattr(fused_assemble, "place_blocks", bad_kernel)
    parts, n = _parts(torch.float32)
    placer = BlockPlacer(_rope(), compiled=False, fused=True)
    got = _place(placer, parts, n, torch.float32)
    assert not placer.fused and placer.fused_error
    assert (got - _place(BlockPlacer(_rope(), compiled=False), parts, n, torch.float32)).abs().max() == 0


def test_without_cuda_the_torch_path_places_blocks():
    assert not fused_assemble.fused_available(torch.device("cpu"))
