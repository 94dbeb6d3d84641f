"""The pointwise parts of a Llama-family decoder layer, fused into a few kernels on CUDA (issue 10).

Why: a graph-replayed SmolLM2 decode step launched 1433 kernels for 30 layers (H200, 2026-12-03,
scripts/gpu/profile_decode.py), and most of them are tiny elementwise ones that cost ~1.3 µs each however
little they do. HF's layer spends them on

    RMSNorm        to fp32, pow, mean, add eps, rsqrt, mul, cast back, mul weight     ~7 kernels, twice a layer
    rotary (q, k)  q·cos, two slices, neg, cat, ·sin, add, the same for k               ~10 kernels
    SwiGLU         silu(gate), · up                                                    2 kernels

Each of these is one pure function here, compiled once by torch.compile (dynamic shapes: one compilation
serves every token count: a decode token, a batch of them, a query block) into one or two Triton kernels.
`install` points a model's norm and MLP modules (their class becomes a subclass whose forward calls the fused
function: copies of the model stay fused) and its modeling module's rotary function at them: a graph-captured
step then replays about half the kernels, and long eager forwards (a prefill) get the same fusion.
Whole-step compilation (`EngineConfig.compile_decode`) fuses more, but compiles per buffer shape; these
functions compile once per process, so they are on by default on CUDA.

The math is HF's, in HF's order (fp32 norm, cast, then the weight), so the results agree to bf16 rounding.
Fusing costs host time per call, so it runs in graph-captured steps and in long eager forwards only
(`EAGER_MIN_TOKENS`). It serves inference only, and only inside `enabled()` (the engine's forwards): with gradients
enabled (training), off CUDA (`DEVICES`), outside `enabled()`, or once a fused call failed (`FAILED`), every
patched forward runs HF's own code. Only the architectures whose layers are known to be these exact functions are touched
(`NORMS`, `MLPS`, `ROTARY_MODULES`); anything else keeps its forward.
"""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)

NORMS = {"LlamaRMSNorm", "Qwen2RMSNorm", "MistralRMSNorm", "Qwen3RMSNorm"}  # weight · x / rms(x), HF's order
MLPS = {"LlamaMLP", "Qwen2MLP", "MistralMLP", "Qwen3MLP"}  # down(act(gate(x)) · up(x))
ROTARY_MODULES = {"llama", "qwen2", "mistral", "qwen3"}  # transformers.models.<name>.modeling_<name>
_MARK = "_blockattn_fused"


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
           unsqueeze_dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return nn.functional.silu(gate) * up


def inductor(fn: Callable) -> Callable:
    """fn compiled with dynamic shapes (no cudagraphs of its own: the engine captures whole steps). Each function
    meets a few guard sets (dtypes, a token count of 1 specialised, strided views): room for them, so that none
    silently runs uncompiled past Dynamo's default limit of 8."""
    import torch._dynamo

    config = torch._dynamo.config
    config.cache_size_limit = max(config.cache_size_limit, 64)
    return torch.compile(fn, dynamic=True)


DEVICES: tuple[str, ...] = ("cuda",)  # device types the fused path runs on (tests add "cpu")
COMPILE: Callable[[Callable], Callable] = inductor  # how a function is fused (tests: an identity)
FAILED: str | None = None  # the first error of a fused call: HF's code serves from then on
_fused: dict[Callable, Callable] = {}  # function -> its compiled form, built on first use


# Where fusing pays: a compiled function's call costs host time (Python, its guards), ~0.2 ms per layer of
# the Llama-8B shape on the H200, which made the eager cached path at 2k slower than full prefill (60 ms vs
# 55, 2026-12-04). Inside a captured step that host time is spent once, at capture; an eager forward pays it
# every time, and only long ones (a prefill) win it back on the GPU. So: captured steps always, eager
# forwards from EAGER_MIN_TOKENS tokens on.
EAGER_MIN_TOKENS = 1024
_ALLOWED: ContextVar[bool] = ContextVar("blockattn_fused_ops", default=False)
_CAPTURING: ContextVar[bool] = ContextVar("blockattn_fused_capture", default=False)


@contextmanager
def _set(var: ContextVar, on: bool):
    token = var.set(on)
    try:
        yield
    finally:
        var.reset(token)


def enabled(on: bool = True):
    """Allow fusing inside this block (the engine enters it around its forwards, so an installed model fuses
    only for an engine that asked: two engines may share one model, one fused and one not)."""
    return _set(_ALLOWED, on)


def capturing():
    """A CUDA graph's warm-up and capture run inside this block (`cudagraph.GraphCache`): fuse at any size."""
    return _set(_CAPTURING, True)


def capturing_now() -> bool:
    return _CAPTURING.get()


def applies(x: torch.Tensor, tokens: int) -> bool:
    """Whether a fused call on `x`, a forward of `tokens` tokens, pays (see EAGER_MIN_TOKENS)."""
    if torch.compiler.is_compiling():  # a whole-step compilation (compile_decode) traces HF's code and fuses it
        return False
    return (_ALLOWED.get() and FAILED is None and x.device.type in DEVICES and not torch.is_grad_enabled()
            and (tokens >= EAGER_MIN_TOKENS or _CAPTURING.get()))


def _tokens(x: torch.Tensor) -> int:
    return x.numel() // max(1, x.shape[-1])


def call(fn: Callable, original: Callable, *args):
    """fn's compiled form on args (the caller checked `applies`); should it fail, original(*args), now and
    from then on."""
    global FAILED
    try:
        compiled = _fused.get(fn)
        if compiled is None:
            compiled = _fused[fn] = COMPILE(fn)
        return compiled(*args)
    except Exception as exc:  # noqa: BLE001 - fusion is an optimisation, never a failed request
        FAILED = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("fused layer ops failed (%s); HF's forwards serve from now on", FAILED)
    return original(*args)


class _FusedNorm:
    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        original = super().forward
        if not applies(hidden_states, _tokens(hidden_states)):
            return original(hidden_states)
        return call(rms_norm, lambda x, *_: original(x), hidden_states, self.weight, self.variance_epsilon)


class _FusedMLP:
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not applies(x, _tokens(x)):
            return super().forward(x)
        return self.down_proj(call(silu_mul, silu_mul, self.gate_proj(x), self.up_proj(x)))


_subclasses: dict[type, type] = {}


def _fused_class(cls: type, mixin: type) -> type:
    sub = _subclasses.get(cls)
    if sub is None:
        sub = _subclasses[cls] = type(cls.__name__, (mixin, cls), {"__module__": cls.__module__, _MARK: True})
    return sub


def install(model: nn.Module) -> int:
    """Point `model`'s known norm and MLP modules and its modeling modules' rotary function at the fused
    functions; idempotent. Returns how many modules it changed."""
    count = 0
    for module in model.modules():
        cls = type(module)
        if getattr(cls, _MARK, False):
            continue
        if cls.__name__ in NORMS and hasattr(module, "variance_epsilon"):
            module.__class__ = _fused_class(cls, _FusedNorm)
        elif cls.__name__ in MLPS and getattr(getattr(module, "config", None), "hidden_act", None) == "silu":
            module.__class__ = _fused_class(cls, _FusedMLP)
        else:
            if cls.__name__.endswith("Attention"):
                _patch_rotary(cls.__module__)
            continue
        count += 1
    return count


def _patch_rotary(module_name: str) -> None:
    """Replace a modeling module's `apply_rotary_pos_emb` (looked up by name at every call) with one that
    fuses where `applies`: it serves every model of that architecture in the process."""
    modeling = sys.modules.get(module_name)
    short = module_name.rsplit(".", 1)[-1].removeprefix("modeling_")
    original = getattr(modeling, "apply_rotary_pos_emb", None)
    if original is None or short not in ROTARY_MODULES or getattr(original, _MARK, False):
        return

    def apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1):
        if applies(q, q.shape[0] * q.shape[-2]):  # q (B, H, T, D)
            return call(rotary, original, q, k, cos, sin, unsqueeze_dim)
        return original(q, k, cos, sin, unsqueeze_dim)

    apply_rotary_pos_emb.original = original
    setattr(apply_rotary_pos_emb, _MARK, True)
    modeling.apply_rotary_pos_emb = apply_rotary_pos_emb


def info() -> dict:
    return {"devices": list(DEVICES), "error": FAILED}
