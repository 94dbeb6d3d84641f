"""Losses on hidden states: exact against a naive full-logits reference (values and gradients, any chunk
size), token weights normalised per batch, the loss modules' parts."""

import pytest
import torch

from blockattn.distill.batch import IGNORE
from blockattn.distill.losses import (BlockDistillLoss, BlockFTLoss, TokenTerms, TokenWeighting,
                                      linear_divergence)

M, H, V = 29, 12, 41


def inputs(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(M, H, generator=g, dtype=dtype, requires_grad=True)
    w = torch.randn(V, H, generator=g, dtype=dtype, requires_grad=True)
    ht = torch.randn(M, H, generator=g, dtype=dtype)
    wt = torch.randn(V, H, generator=g, dtype=dtype)
    labels = torch.randint(0, V, (M,), generator=g)
    labels[[3, M - 1]] = IGNORE
    return h, w, ht, wt, labels


def naive(h, w, ht, wt, labels, temperature):
    z, zt = h @ w.T, ht @ wt.T
    kl = temperature**2 * torch.nn.functional.kl_div(torch.log_softmax(z / temperature, -1),
                                                     torch.log_softmax(zt / temperature, -1),
                                                     log_target=True, reduction="none").sum(-1)
    ce = torch.nn.functional.cross_entropy(z, labels, reduction="none", ignore_index=IGNORE)
    ce_t = torch.nn.functional.cross_entropy(zt, labels, reduction="none", ignore_index=IGNORE)
    return kl, ce, ce_t


class TestLinearDivergence:
    @pytest.mark.parametrize("chunk", [1, 7, 29, 1000])
    @pytest.mark.parametrize("temperature", [1.0, 2.5])
    def test_values_and_gradients_match_full_logits(self, chunk, temperature):
        h, w, ht, wt, labels = inputs()
        g_kl, g_ce = torch.randn(M, dtype=torch.float64), torch.randn(M, dtype=torch.float64)
        terms = linear_divergence(h, w, ht, labels, temperature, chunk, teacher_weight=wt)
        ((terms.kl * g_kl).sum() + (terms.ce * g_ce).sum()).backward()
        got_h, got_w = h.grad.clone(), w.grad.clone()
        h.grad = w.grad = None
        kl, ce, ce_t = naive(h, w, ht, wt, labels, temperature)
        ((kl * g_kl).sum() + (ce * g_ce).sum()).backward()
        # softmax math runs in fp32 by design: fp32 tolerances
        for got, want in [(terms.kl, kl), (terms.ce, ce), (terms.ce_teacher, ce_t), (got_h, h.grad), (got_w, w.grad)]:
            assert torch.allclose(got.double(), want.detach(), atol=2e-5, rtol=1e-5)

    def test_teacher_defaults_to_the_student_weight_and_gets_no_gradient(self):
        h, w, ht, _, labels = inputs()
        ht.requires_grad_(True)
        linear_divergence(h, w, ht).kl.sum().backward()
        assert ht.grad is None and w.grad is not None

    def test_identical_student_and_teacher_give_zero_kl(self):
        h, w, _, _, _ = inputs()
        assert linear_divergence(h, w, h.detach()).kl.abs().max() < 1e-6

    def test_ce_only_and_bf16_logits(self):
        h, w, _, _, labels = inputs(dtype=torch.float32)
        terms = linear_divergence(h, w, labels=labels, compute_dtype=torch.bfloat16)
        _, ce, _ = naive(h, w, h, w, labels, 1.0)
        assert torch.allclose(terms.ce, ce.detach(), atol=0.1)
        assert torch.equal(terms.kl, torch.zeros(M))

    def test_needs_a_teacher_or_labels(self):
        h, w, *_ = inputs()
        with pytest.raises(ValueError):
            linear_divergence(h, w)


class TestTokenWeighting:
    def terms(self):
        g = torch.Generator().manual_seed(1)
        kl = torch.rand(50, generator=g)
        ce = torch.rand(50, generator=g) * 3
        return TokenTerms(kl=kl, ce=ce, ce_teacher=ce.flip(0))

    @pytest.mark.parametrize("mode", ["none", "kl", "gain"])
    def test_weights_have_mean_one_over_valid_tokens(self, mode):
        valid = torch.ones(50, dtype=torch.bool)
        valid[::7] = False
        w = TokenWeighting(mode)(self.terms(), valid, lambda t: t)
        assert torch.allclose(w[valid].mean(), torch.tensor(1.0))
        assert bool((w[~valid] == 0).all()) and bool((w >= 0).all())

    def test_kl_weights_follow_the_kl_and_are_detached(self):
        terms = self.terms()
        terms.kl.requires_grad_(True)
        w = TokenWeighting("kl")(terms, torch.ones(50, dtype=torch.bool), lambda t: t)
        assert not w.requires_grad
        assert torch.allclose(w, terms.kl.detach() / terms.kl.detach().mean())

    def test_gain_is_the_teachers_advantage_on_the_true_token(self):
        terms = self.terms()
        w = TokenWeighting("gain")(terms, torch.ones(50, dtype=torch.bool), lambda t: t)
        gain = (terms.ce - terms.ce_teacher).clamp(min=0)
        assert torch.allclose(w, gain / gain.mean())

    def test_normalisation_spans_all_processes(self):
        """Two halves normalised with a summing `reduce` equal the whole batch normalised at once."""
        terms = self.terms()
        whole = TokenWeighting("kl")(terms, torch.ones(50, dtype=torch.bool), lambda t: t)
        halves = [TokenTerms(terms.kl[s], terms.ce[s], terms.ce_teacher[s]) for s in (slice(0, 25), slice(25, 50))]
        total = torch.stack([torch.stack([t.kl.sum(), torch.tensor(25.0)]) for t in halves]).sum(0)
        parts = [TokenWeighting("kl")(t, torch.ones(25, dtype=torch.bool), lambda _: total.clone()) for t in halves]
        assert torch.allclose(torch.cat(parts), whole)

    def test_all_zero_divergence_falls_back_to_uniform(self):
        z = torch.zeros(5)
        w = TokenWeighting("kl")(TokenTerms(z, z, z), torch.ones(5, dtype=torch.bool), lambda t: t)
        assert torch.equal(w, torch.ones(5))


class TestLossModules:
    def test_distill_loss_unweighted_is_the_mean_kl_plus_ce_mix(self):
        h, w, ht, _, labels = inputs()
        parts = BlockDistillLoss(ce_weight=0.5)(h, w, labels, ht)
        kl, ce, _ = naive(h, w, ht, w, labels, 1.0)
        labelled = labels != IGNORE
        assert torch.allclose(parts.kl.double(), kl.mean(), atol=1e-5)
        assert torch.allclose(parts.ce.double(), ce[labelled].mean(), atol=1e-5)
        assert torch.allclose(parts.loss.double(), kl.mean() + 0.5 * ce[labelled].mean(), atol=1e-5)
        assert int(parts.n_tokens) == M

    def test_gradient_reaches_only_the_student(self):
        h, w, ht, _, labels = inputs()
        ht.requires_grad_(True)
        BlockDistillLoss(weighting="gain", ce_weight=0.1)(h, w, labels, ht).loss.backward()
        assert h.grad is not None and h.grad.abs().sum() > 0 and ht.grad is None

    def test_kl_weighted_loss_is_the_kl_weighted_mean(self):
        h, w, ht, _, labels = inputs()
        parts = BlockDistillLoss(weighting="kl")(h, w, labels, ht)
        kl, _, _ = naive(h, w, ht, w, labels, 1.0)
        kl = kl.detach()
        assert torch.allclose(parts.loss.double(), (kl / kl.mean() * kl).mean(), atol=1e-5)
        assert parts.loss >= parts.kl  # Σkl²/Σkl ≥ mean kl: weighting leans on the hard tokens

    def test_block_ft_is_ce_on_labelled_tokens_and_measures_kl_only_when_asked(self):
        h, w, ht, _, labels = inputs()
        ft = BlockFTLoss()
        parts = ft(h, w, labels)
        _, ce, _ = naive(h, w, ht, w, labels, 1.0)
        assert torch.allclose(parts.loss.double(), ce[labels != IGNORE].mean(), atol=1e-5)
        assert parts.kl is None
        probed = ft(h, w, labels, h_teacher=ht)
        assert probed.kl is not None and not probed.kl.requires_grad
        assert torch.equal(probed.loss, parts.loss)
