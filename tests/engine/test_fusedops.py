"""The fused layer ops (`engine.fusedops`), wired on the CPU: with an identity in place of torch.compile and "cpu"
among the fused devices, a model's forward runs through the fused functions and gives HF's logits."""

import copy

import pytest
import torch

from blockattn.engine import fusedops
from blockattn.engine.engine import BlockEngine, EngineConfig
from blockattn.models.tiny import ARCHITECTURES, tiny_model
from tests.engine.test_exactness import make_adapter, random_blocks


@pytest.fixture
def cpu_fused(monkeypatch):
    """Fuse on the CPU, each fused function counted: {function name: calls}."""
    calls: dict[str, int] = {}

    def counting(fn):
        def run(*args):
            calls[fn.__name__] = calls.get(fn.__name__, 0) + 1
            return fn(*args)
        return run

    monkeypatch.setattr(fusedops, "DEVICES", ("cpu",))
    monkeypatch.setattr(fusedops, "COMPILE", counting)
    monkeypatch.setattr(fusedops, "FAILED", None)
    monkeypatch.setattr(fusedops, "_fused", {})
    return calls


def _logits(model, ids, fused=True):
    """As inside a graph capture (where the engine fuses at any size)."""
    with torch.no_grad(), fusedops.enabled(fused), fusedops.capturing():
        return model(ids).logits


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_fused_model_gives_hf_logits_through_the_fused_functions(arch, cpu_fused):
    model = tiny_model(arch)
    ids = torch.randint(0, 512, (2, 19), generator=torch.Generator().manual_seed(0))
    expected = _logits(model, ids)
    layers = model.config.num_hidden_layers
    assert fusedops.install(model) == 3 * layers + 1  # two norms and an MLP a layer, the final norm
    assert fusedops.install(model) == 0  # idempotent
    assert torch.allclose(_logits(model, ids, fused=False), expected) and cpu_fused == {}  # outside enabled()
    got = _logits(model, ids)
    assert torch.allclose(got, expected, atol=1e-5)
    assert cpu_fused == {"rms_norm": 2 * layers + 1, "silu_mul": layers, "rotary": layers}


def test_eager_forwards_fuse_only_when_long(cpu_fused, monkeypatch):
    """Outside a capture a fused call's host time would dominate a short forward: only forwards of
    EAGER_MIN_TOKENS tokens or more fuse."""
    monkeypatch.setattr(fusedops, "EAGER_MIN_TOKENS", 10)
    model = tiny_model()
    fusedops.install(model)
    with torch.no_grad(), fusedops.enabled():
        model(torch.tensor([[5, 9, 2, 7]]))
        assert cpu_fused == {}
        model(torch.arange(3, 13).view(1, 10))
    assert cpu_fused["rms_norm"] == 2 * model.config.num_hidden_layers + 1


def test_with_gradients_enabled_the_fused_model_runs_hf_code(cpu_fused):
    model = tiny_model()
    fusedops.install(model)
    with fusedops.enabled(), fusedops.capturing():
        model(torch.tensor([[3, 4, 5]])).logits.sum().backward()  # training: HF's forwards, gradients flow
    assert cpu_fused == {}
    assert model.lm_head.weight.grad is not None


def test_a_failing_fused_call_falls_back_to_hf_for_good(monkeypatch, cpu_fused):
    model = tiny_model()
    ids = torch.tensor([[5, 9, 2, 7]])
    expected = _logits(model, ids)
    fusedops.install(model)

    def broken(fn):
        def run(*args):
            raise RuntimeError("no Triton here")
        return run

    monkeypatch.setattr(fusedops, "COMPILE", broken)
    assert torch.allclose(_logits(model, ids), expected, atol=1e-5)
    assert "no Triton here" in fusedops.FAILED
    assert fusedops.info()["error"] == fusedops.FAILED


def test_a_copy_of_a_fused_model_computes_with_its_own_weights(cpu_fused):
    """The fused forward reads the module it is called on (a class swap, not a closure over the original):
    the engine's merged block-mode copy must not compute with the base model's norms."""
    model = tiny_model()
    fusedops.install(model)
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for module in clone.modules():
            if type(module).__name__ in fusedops.NORMS:
                module.weight.mul_(3.0)
    ids = torch.tensor([[5, 9, 2, 7]])
    assert not torch.allclose(_logits(clone, ids), _logits(model, ids), atol=1e-3)
    plain = copy.deepcopy(clone)
    for module in plain.modules():  # back to HF's classes: the reference for the scaled weights
        if getattr(type(module), "_blockattn_fused", False):
            module.__class__ = type(module).__mro__[2]
    assert torch.allclose(_logits(clone, ids), _logits(plain, ids), atol=1e-5)


def test_the_engine_fuses_where_asked_and_prefills_the_same(cpu_fused, tmp_path, monkeypatch):
    monkeypatch.setattr(fusedops, "EAGER_MIN_TOKENS", 1)  # no graphs on the CPU: fuse its eager forwards
    adapter = make_adapter(tmp_path, "llama")
    *blocks, query = random_blocks([12, 30, 5], seed=1)
    model = tiny_model()
    fused = BlockEngine(model, "tiny", None, EngineConfig(fused_ops=True))
    plain = BlockEngine(model, "tiny", None, EngineConfig(fused_ops=False))  # the same (installed) model
    expected = plain.prefill(blocks, query, keep_logits=3).logits
    assert plain.info()["fused_ops"] is None and cpu_fused == {}  # an engine that did not ask never fuses
    got = fused.prefill(blocks, query, keep_logits=3).logits
    assert cpu_fused["rms_norm"] > 0 and fused.info()["fused_ops"] == {"devices": ["cpu"], "error": None}
    assert torch.allclose(got, expected, atol=1e-5)
    with_adapter = BlockEngine(adapter.model.get_base_model(), "tiny", adapter,
                               EngineConfig(fused_ops=True, merge_adapter=True))
    same = make_adapter(tmp_path / "again", "llama")  # the same seeded weights, never fused
    reference = BlockEngine(same.model.get_base_model(), "tiny", same,
                            EngineConfig(fused_ops=False, merge_adapter=True))
    for mode in ("block", "full"):
        a = with_adapter.prefill(blocks, query, mode=mode, keep_logits=2).logits
        b = reference.prefill(blocks, query, mode=mode, keep_logits=2).logits
        assert torch.allclose(a, b, atol=1e-5), mode
