"""Sampling: greedy is argmax, seeds reproduce, top-p keeps only the nucleus."""

import pytest
import torch

from blockattn.engine.sampling import Sampler, SamplingParams
from blockattn.errors import UserError


def test_temperature_zero_is_deterministic_argmax():
    logits = torch.randn(100)
    sampler = Sampler(SamplingParams(temperature=0.0))
    assert all(sampler(logits) == int(logits.argmax()) for _ in range(5))


def test_same_seed_same_tokens():
    logits = torch.randn(1000)
    a = Sampler(SamplingParams(1.0, seed=7))
    b = Sampler(SamplingParams(1.0, seed=7))
    assert [a(logits) for _ in range(20)] == [b(logits) for _ in range(20)]


def test_top_p_samples_only_from_the_nucleus():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    sampler = Sampler(SamplingParams(temperature=1.0, top_p=0.75, seed=0))
    seen = {sampler(logits) for _ in range(300)}
    assert seen == {0, 1}  # 0.5 < 0.75 ≤ 0.5 + 0.3: the nucleus is the two most likely tokens


def test_tiny_top_p_is_greedy():
    logits = torch.randn(50)
    sampler = Sampler(SamplingParams(temperature=1.5, top_p=1e-6, seed=3))
    assert {sampler(logits) for _ in range(20)} == {int(logits.argmax())}


@pytest.mark.parametrize("kwargs", [{"temperature": -1.0}, {"temperature": 2.5}, {"top_p": 0.0}, {"top_p": 1.2}])
def test_out_of_range_parameters_are_user_errors(kwargs):
    with pytest.raises(UserError):
        SamplingParams(**kwargs)


def test_a_vanishing_temperature_samples_the_argmax_instead_of_failing():
    logits = torch.tensor([1.0, 3.0, -2.0, 2.5])
    assert Sampler(SamplingParams(temperature=5e-324, seed=0))(logits) == 1
