"""Losses on final hidden states, never on full logits.

`linear_divergence` takes the hidden states at the M loss positions, the output (LM-head) weight and the
teacher's hidden states, and returns per-token KL(teacher ‖ student), student CE and teacher CE. It walks the
M positions in chunks of `chunk` tokens: at most chunk × V logits per model exist at any time, so the
[tokens × vocab] logits are never materialised (issue 6), not even once.

Its gradient is computed in the forward pass, chunk by chunk, and kept per token (M × H floats, far
smaller than M × V): every per-token term depends on its own hidden row only, so scaling those rows by the
incoming per-token gradient is the exact backward. That lets token weights (which need every token's KL
before any gradient is known) be applied outside, in plain autograd. The output weight's gradient (full
fine-tuning only) is recomputed chunk by chunk in backward.

The loss modules (`BlockDistillLoss`, `BlockFTLoss`) return their parts, so every term can be logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from blockattn.distill.batch import IGNORE

Reduce = Callable[[torch.Tensor], torch.Tensor]  # sum over processes (identity on one process)


def _chunk_terms(h: torch.Tensor, weight: torch.Tensor, h_teacher: torch.Tensor | None,
                 teacher_weight: torch.Tensor, labels: torch.Tensor | None, temperature: float,
                 dtype: torch.dtype, grads: bool):
    """Per-token terms of one chunk and (if `grads`) their gradients w.r.t. the student logits.

    h (c, H) → logits (c, V) in `dtype`, softmax math in fp32. Returns (kl, ce, ce_teacher, dz_kl, dz_ce),
    each of the first three (c,) or None, each dz (c, V) or None."""
    z = (h.to(dtype) @ weight.to(dtype).t()).float()  # (c, V)
    kl = ce = ce_teacher = dz_kl = dz_ce = None
    if h_teacher is not None:
        zt = (h_teacher.to(dtype) @ teacher_weight.to(dtype).t()).float()  # (c, V), a constant target
        logp_s = torch.log_softmax(z / temperature, dim=-1)
        logp_t = torch.log_softmax(zt / temperature, dim=-1)
        p_t = logp_t.exp()
        # scaled by T² so the gradient's size does not shrink with T (Hinton et al., 2015)
        kl = temperature**2 * (p_t * (logp_t - logp_s)).sum(-1)
        dz_kl = temperature * (logp_s.exp() - p_t) if grads else None
        if labels is not None:
            ce_teacher = _ce(torch.log_softmax(zt, dim=-1) if temperature != 1.0 else logp_t, labels)
    if labels is not None:
        logp = torch.log_softmax(z, dim=-1) if (h_teacher is None or temperature != 1.0) else logp_s
        ce = _ce(logp, labels)
        if grads:
            valid = labels != IGNORE
            dz_ce = logp.exp()
            dz_ce[valid, labels[valid]] -= 1.0
            dz_ce[~valid] = 0.0
    return kl, ce, ce_teacher, dz_kl, dz_ce


def _ce(logp: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(c,) −log p(label); 0 where the label is IGNORE."""
    valid = labels != IGNORE
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return torch.where(valid, -picked, torch.zeros_like(picked))


class _LinearDivergence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, h_teacher, teacher_weight, labels, temperature, chunk, dtype):
        m = h.shape[0]
        with_teacher, with_labels = h_teacher is not None, labels is not None
        zeros = h.new_zeros(m, dtype=torch.float32)
        kl, ce, ce_t = zeros.clone(), zeros.clone(), zeros.clone()
        want_h = ctx.needs_input_grad[0]
        g_kl = torch.zeros(m, h.shape[1], dtype=torch.float32, device=h.device) if want_h and with_teacher else None
        g_ce = torch.zeros(m, h.shape[1], dtype=torch.float32, device=h.device) if want_h and with_labels else None
        for a in range(0, m, chunk):
            b = min(a + chunk, m)
            terms = _chunk_terms(h[a:b], weight, h_teacher[a:b] if with_teacher else None, teacher_weight,
                                 labels[a:b] if with_labels else None, temperature, dtype, grads=want_h)
            k, c, ct, dz_kl, dz_ce = terms
            if with_teacher:
                kl[a:b] = k
            if with_labels:
                ce[a:b] = c
            if ct is not None:
                ce_t[a:b] = ct
            if g_kl is not None:
                g_kl[a:b] = (dz_kl.to(dtype) @ weight.to(dtype)).float()  # (c, H)
            if g_ce is not None:
                g_ce[a:b] = (dz_ce.to(dtype) @ weight.to(dtype)).float()
        ctx.save_for_backward(h, weight, h_teacher, teacher_weight, labels, g_kl, g_ce)
        ctx.settings = (temperature, chunk, dtype)
        ctx.mark_non_differentiable(ce_t)
        return kl, ce, ce_t

    @staticmethod
    def backward(ctx, grad_kl, grad_ce, _grad_ce_teacher):
        h, weight, h_teacher, teacher_weight, labels, g_kl, g_ce = ctx.saved_tensors
        temperature, chunk, dtype = ctx.settings
        grad_h = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_h = torch.zeros(h.shape, dtype=torch.float32, device=h.device)
            if g_kl is not None:
                grad_h += grad_kl.unsqueeze(-1) * g_kl
            if g_ce is not None:
                grad_h += grad_ce.unsqueeze(-1) * g_ce
            grad_h = grad_h.to(h.dtype)
        if ctx.needs_input_grad[1]:
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            for a in range(0, h.shape[0], chunk):
                b = min(a + chunk, h.shape[0])
                _, _, _, dz_kl, dz_ce = _chunk_terms(
                    h[a:b], weight, None if h_teacher is None else h_teacher[a:b], teacher_weight,
                    None if labels is None else labels[a:b], temperature, dtype, grads=True)
                dz = 0.0
                if dz_kl is not None:
                    dz = dz + grad_kl[a:b].unsqueeze(-1) * dz_kl
                if dz_ce is not None:
                    dz = dz + grad_ce[a:b].unsqueeze(-1) * dz_ce
                grad_w += (dz.to(dtype).t() @ h[a:b].to(dtype)).float()  # (V, H)
            grad_w = grad_w.to(weight.dtype)
        return grad_h, grad_w, None, None, None, None, None, None


@dataclass
class TokenTerms:
    kl: torch.Tensor  # (M,) KL(teacher ‖ student) at temperature T, scaled by T²; zeros without a teacher
    ce: torch.Tensor  # (M,) student −log p(next token); zeros without labels or where the label is IGNORE
    ce_teacher: torch.Tensor  # (M,) teacher −log p(next token) (no gradient); zeros without teacher or labels


def linear_divergence(h: torch.Tensor, weight: torch.Tensor, h_teacher: torch.Tensor | None = None,
                      labels: torch.Tensor | None = None, temperature: float = 1.0, chunk: int = 1024,
                      compute_dtype: torch.dtype | None = None,
                      teacher_weight: torch.Tensor | None = None) -> TokenTerms:
    """Per-token KL / CE terms from hidden states (module docstring).

    h (M, H) student hidden states; weight (V, H) the student's output weight (no bias); h_teacher (M, H)
    teacher hidden states and teacher_weight (V, H) its output weight (default: `weight`; a separate frozen
    copy under full fine-tuning), both treated as constants; labels (M,) next-token ids or IGNORE. Logits are
    formed in `compute_dtype` (default: h's dtype), softmax math in fp32. Differentiable in h and weight."""
    if h_teacher is None and labels is None:
        raise ValueError("give a teacher, labels, or both")
    if h_teacher is not None and h_teacher.shape != h.shape:
        raise ValueError(f"teacher hidden {tuple(h_teacher.shape)} != student hidden {tuple(h.shape)}")
    dtype = compute_dtype or h.dtype
    with torch.autocast(h.device.type, enabled=False):  # dtypes are explicit here
        kl, ce, ce_t = _LinearDivergence.apply(
            h, weight, None if h_teacher is None else h_teacher.detach(),
            (weight if teacher_weight is None else teacher_weight).detach(), labels, float(temperature),
            int(chunk), dtype)
    return TokenTerms(kl=kl, ce=ce, ce_teacher=ce_t)


class TokenWeighting(nn.Module):
    """Per-token loss weights, detached and normalised to mean 1 over the loss tokens of the whole batch
    (all processes), so weighting moves emphasis between tokens without changing the loss scale.

    none  every token 1.
    kl    the detached KL(full ‖ block) itself (GUIDE.md): tokens whose prediction block attention changes
          most get most weight -- the tokens that need cross-block context.
    gain  max(0, CE_block − CE_full) on the true next token: how much the teacher's full view of the same
          text *helps* predict the real continuation. Why another: KL also rewards matching the teacher
          where its extra context misleads it (the teacher is not better there, only different); gain keeps
          only the tokens where cross-block context demonstrably pays, the "long-short difference" that
          LongPPL (Fang et al., 2024) uses to find context-dependent tokens. Needs labels.
    """

    def __init__(self, mode: str = "none"):
        super().__init__()
        if mode not in ("none", "kl", "gain"):
            raise ValueError(f"unknown token weighting {mode!r}")
        self.mode = mode

    def forward(self, terms: TokenTerms, valid: torch.Tensor, reduce: Reduce) -> torch.Tensor:
        """(M,) weights; `valid` (M,) bool marks the tokens that count; invalid tokens get 0."""
        if self.mode == "none":
            return valid.float()
        raw = terms.kl if self.mode == "kl" else (terms.ce - terms.ce_teacher).clamp(min=0.0)
        raw = raw.detach().float() * valid
        totals = reduce(torch.stack([raw.sum(), valid.sum().float()]))
        mean = totals[0] / totals[1].clamp(min=1.0)
        # a batch where block and full attention agree everywhere falls back to uniform weights
        return torch.where(mean > 0, raw / mean.clamp(min=torch.finfo(torch.float32).tiny), valid.float())


@dataclass
class LossParts:
    """Each value is this process's share: summed over processes it gives the whole batch's value."""

    loss: torch.Tensor  # the objective (scalar): a mean over the loss tokens of the whole batch
    kl: torch.Tensor | None  # mean per-token KL (unweighted); None where not measured (block-FT off log steps)
    ce: torch.Tensor | None  # mean student CE over tokens with a label; None where not computed
    weight_max: torch.Tensor  # largest token weight (1 when unweighted)
    n_tokens: torch.Tensor  # loss tokens in the whole batch


def _global_mean(values: torch.Tensor, valid: torch.Tensor, reduce: Reduce) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_local values / N_global, N_global): summing the results over processes gives the global mean."""
    n = reduce(valid.sum().float().reshape(1))[0]
    return (values * valid).sum() / n.clamp(min=1.0), n


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


class BlockDistillLoss(nn.Module):
    """KL(teacher ‖ student) on the loss tokens, token-weighted, plus an optional CE mix:

        loss = Σ_t w_t · KL_t / N  +  ce_weight · Σ_t CE_t / N_labelled

    Means run over the loss tokens of all processes; each process returns its share, so the shares sum to
    the global mean (the trainer undoes DDP's gradient averaging, see recipe)."""

    def __init__(self, temperature: float = 1.0, ce_weight: float = 0.0, weighting: str = "none",
                 chunk_tokens: int = 1024):
        super().__init__()
        self.temperature, self.ce_weight, self.chunk = temperature, ce_weight, chunk_tokens
        self.weighting = TokenWeighting(weighting)

    def forward(self, h: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, h_teacher: torch.Tensor,
                teacher_weight: torch.Tensor | None = None, reduce: Reduce = _identity,
                compute_dtype: torch.dtype | None = None) -> LossParts:
        """h, h_teacher (M, H); weight, teacher_weight (V, H); labels (M,)."""
        need_labels = self.ce_weight > 0 or self.weighting.mode == "gain"
        terms = linear_divergence(h, weight, h_teacher, labels if need_labels else None, self.temperature,
                                  self.chunk, compute_dtype, teacher_weight)
        every = torch.ones_like(labels, dtype=torch.bool)
        labelled = labels != IGNORE
        w = self.weighting(terms, labelled if self.weighting.mode == "gain" else every, reduce)
        kl_loss, n = _global_mean(w * terms.kl, every, reduce)
        kl_mean, _ = _global_mean(terms.kl.detach(), every, reduce)
        ce_mean, _ = _global_mean(terms.ce, labelled, reduce)
        loss = kl_loss + self.ce_weight * ce_mean if self.ce_weight > 0 else kl_loss
        return LossParts(loss=loss, kl=kl_mean, ce=ce_mean.detach() if need_labels else None,
                         weight_max=w.max() if len(w) else w.sum(), n_tokens=n)


class BlockFTLoss(nn.Module):
    """Block fine-tuning (Block-Attention paper): next-token CE on the loss tokens, no teacher.

    With a teacher's hidden states given (the trainer does so on logging steps only), the KL to full
    attention is measured too, without gradient, so both methods' curves report the same quantity."""

    def __init__(self, chunk_tokens: int = 1024):
        super().__init__()
        self.chunk = chunk_tokens

    def forward(self, h: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                h_teacher: torch.Tensor | None = None, teacher_weight: torch.Tensor | None = None,
                reduce: Reduce = _identity, compute_dtype: torch.dtype | None = None) -> LossParts:
        """h (M, H); weight (V, H); labels (M,); h_teacher (M, H) or None."""
        terms = linear_divergence(h, weight, None, labels, chunk=self.chunk, compute_dtype=compute_dtype)
        labelled = labels != IGNORE
        ce_mean, n = _global_mean(terms.ce, labelled, reduce)
        kl_mean = None
        if h_teacher is not None:
            with torch.no_grad():
                probe = linear_divergence(h.detach(), weight.detach(), h_teacher, chunk=self.chunk,
                                          compute_dtype=compute_dtype, teacher_weight=teacher_weight)
            kl_mean, _ = _global_mean(probe.kl, torch.ones_like(labelled), reduce)
        return LossParts(loss=ce_mean, kl=kl_mean, ce=ce_mean.detach(), weight_max=torch.ones((), device=h.device),
                         n_tokens=n)
