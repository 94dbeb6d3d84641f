"""Run configuration for block distillation and block fine-tuning: YAML file + `section.field=value` overrides.

One config serves both commands (`blockattn distill` and `blockattn block-ft`): the command picks the
objective, the config everything else, so the baseline runs on exactly the same model, data, mask and
token budget. Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from blockattn.errors import UserError

OBJECTIVES = ("distill", "block_ft")
WEIGHTINGS = ("none", "kl", "gain")
SEGMENTERS = ("fixed", "learned", "coarse", "medium", "fine")
SOURCES = ("synthetic", "pack", "semanticseg")
PRECISIONS = ("fp32", "bf16")
SCHEDULES = ("constant", "cosine")


@dataclass
class ModelSection:
    name: str = "smollm2-135m-instruct"  # model name or HF directory; "tiny" = random tiny Llama (tests, smoke)
    dtype: str = "float32"  # dtype the (frozen) base weights are loaded in; bf16 halves memory traffic on GPU
    tiny_vocab: int = 512  # vocabulary of the "tiny" model (synthetic data draws from it)
    # weight init std of the "tiny" model: HF's 0.02 gives near-uniform predictions (KL ~1e-4 between any
    # two attention patterns); 0.2 gives a teacher with opinions, so a smoke run shows the KL falling
    tiny_init_std: float = 0.02
    tokenizer: str = ""  # "tiny" only: a tokenizer to pair with it (smollm2-135m-instruct; tiny_vocab ≥ its size)


@dataclass
class AdapterSection:
    lora_rank: int = 16  # 0 = full fine-tuning (then a frozen copy of the base is the teacher)
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: [
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    sinks_per_block: int = 4  # k trainable sink tokens in front of every context block (0 = off)
    shared_sink: int = 0  # s tokens of one shared sink prefix (APE / Star-Attention variant; 0 = off)
    # "random": small noise; "bos": the BOS token's embedding. Measured on SmolLM2 (held-out query blocks,
    # before training): 4 per-block sinks raise the KL to full attention from 0.0036 (no sinks) to 0.0049
    # with random init but to 0.026 with BOS init (a BOS mid-sequence reads as "a new document starts")
    sink_init: str = "random"
    # a block adapter directory of an earlier run to start from (its LoRA and sinks, same rank and sink counts):
    # training continues across sessions; its tokens and seconds are carried into this run's counts
    init_from: str = ""


@dataclass
class DataSection:
    source: str = "synthetic"  # synthetic | pack (a `distill.pack` file) | semanticseg (a dataset directory)
    path: str = ""  # the pack file or the SemanticSeg directory
    # source semanticseg only (a pack carries its blocks): fixed (block_tokens each) | learned
    # (blockattn.segment) | coarse | medium | fine (gold SemanticSeg boundaries)
    segmenter: str = "fixed"
    block_tokens: int = 256  # fixed-size block length, and the most tokens any block keeps (longer ones split)
    min_block_tokens: int = 16  # gold blocks shorter than this merge into the next one
    seq_len: int = 1024  # tokens per training row (sinks included); every batch has exactly this width
    batch_size: int = 4  # rows per process per step
    block_dropout: float = 0.25  # probability that a non-final block is a query block (0 = final block only)
    # RAG-shaped rows (documents, question, the teacher's full-attention answer; `distill.ragset`): the file
    # the teacher pre-pass wrote, and the share of rows drawn from it (the rest: SemanticSeg continuation)
    rag_path: str = ""
    rag_fraction: float = 0.0
    synthetic_texts: int = 64  # synthetic source: number of texts
    synthetic_tokens: int = 600  # synthetic source: tokens per text

    def __post_init__(self):
        if self.block_tokens < 1 or self.min_block_tokens < 1:
            raise UserError("data.block_tokens and data.min_block_tokens must be >= 1")


@dataclass
class LossSection:
    temperature: float = 1.0  # KL temperature (the KL is scaled by T², so gradients keep their size)
    ce_weight: float = 0.0  # distill only: loss = KL + ce_weight · CE(next token)
    weighting: str = "none"  # token weights for the KL: none | kl (detached KL) | gain (teacher's log-prob gain)
    chunk_tokens: int = 1024  # tokens per logits chunk: at most chunk_tokens × vocab logits per model alive


@dataclass
class OptimSection:
    lr: float = 2e-4  # LoRA (or full) weights
    sink_lr: float = 1e-3  # sink embeddings: few parameters, far from their optimum at init
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 10
    schedule: str = "cosine"  # constant | cosine (to min_lr_ratio · lr)
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0  # max global grad norm (0 = off)


@dataclass
class TrainSection:
    steps: int = 100
    seed: int = 0
    device: str = "auto"  # auto (cuda:LOCAL_RANK when present) | cpu | cuda
    cpu_threads: int = 0  # torch intra-op threads (0 = torch's default); tiny CPU models run fastest on 1
    precision: str = "fp32"  # fp32 | bf16 (autocast; CUDA)
    attention_backend: str = "auto"  # auto (Flex on CUDA) | dense | flex
    compile: bool = False  # torch.compile every decoder layer (falls back to eager if compiling fails)
    activation_checkpointing: bool = False
    log_every: int = 10
    checkpoint_every: int = 50  # 0 = only at the end
    max_minutes: float = 0.0  # stop (and save) once this much training time has passed; 0 = no limit
    snapshot_every: int = 0  # also save the adapter as snapshots/step<N>/ every N steps (efficiency curves)


@dataclass
class RunConfig:
    model: ModelSection = field(default_factory=ModelSection)
    adapter: AdapterSection = field(default_factory=AdapterSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)

    def __post_init__(self):
        checks = [
            (self.loss.weighting in WEIGHTINGS, f"loss.weighting must be one of {WEIGHTINGS}"),
            (self.data.segmenter in SEGMENTERS, f"data.segmenter must be one of {SEGMENTERS}"),
            (self.data.source in SOURCES, f"data.source must be one of {SOURCES}"),
            (self.train.precision in PRECISIONS, f"train.precision must be one of {PRECISIONS}"),
            (self.optim.schedule in SCHEDULES, f"optim.schedule must be one of {SCHEDULES}"),
            (0.0 <= self.data.block_dropout < 1.0, "data.block_dropout must be in [0, 1)"),
            (0.0 <= self.data.rag_fraction <= 1.0, "data.rag_fraction must be in [0, 1]"),
            (self.data.rag_fraction == 0 or self.data.rag_path, "data.rag_fraction > 0 needs data.rag_path"),
            (self.loss.temperature > 0, "loss.temperature must be > 0"),
            (self.adapter.sink_init in ("bos", "random"), "adapter.sink_init must be bos or random"),
            (self.adapter.sinks_per_block >= 0 and self.adapter.shared_sink >= 0, "sink counts must be >= 0"),
            ("lm_head" not in self.adapter.target_modules,
             "adapter.target_modules must not include lm_head (the loss reads the output weights directly)"),
            (self.data.source == "synthetic" or self.data.path, f"data.source {self.data.source} needs data.path"),
            (self.train.steps >= 1 and self.data.batch_size >= 1, "train.steps and data.batch_size must be >= 1"),
            (self.data.seq_len > self.data.block_tokens + self.adapter.sinks_per_block + self.adapter.shared_sink,
             "data.seq_len must exceed one block with its sinks"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Hash of everything that shapes the training trajectory (a resumed run must match it)."""
        d = self.to_dict()
        # stopping rules and logging cadence do not change the curve up to the step where a run stops
        for key in ("steps", "max_minutes", "log_every", "checkpoint_every", "cpu_threads", "snapshot_every"):
            d["train"].pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    @staticmethod
    def from_dict(raw: dict) -> "RunConfig":
        sections = {}
        for f in dataclasses.fields(RunConfig):
            values = dict(raw.get(f.name) or {})
            known = {g.name for g in dataclasses.fields(f.default_factory())}
            unknown = sorted(set(values) - known)
            if unknown:
                raise UserError(f"config section {f.name!r}: unknown key(s) {', '.join(unknown)}")
            default = f.default_factory()
            for key, value in values.items():
                # YAML reads "1e-3" as a string (its floats need a dot): coerce what a float field receives
                if isinstance(getattr(default, key), float) and isinstance(value, (int, str)) \
                        and not isinstance(value, bool):
                    try:
                        values[key] = float(value)
                    except ValueError:
                        raise UserError(f"{f.name}.{key}: expected a number, got {value!r}") from None
            sections[f.name] = type(default)(**values)
        unknown = sorted(set(raw) - set(sections))
        if unknown:
            raise UserError(f"config: unknown section(s) {', '.join(unknown)}")
        return RunConfig(**sections)


def apply_override(raw: dict, override: str) -> None:
    """Apply one `section.field=value` override in place; the value is parsed as YAML (numbers, lists, bools)."""
    key, sep, value = override.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise UserError(f"override {override!r}: expected section.field=value")
    raw.setdefault(parts[0], {})
    if not isinstance(raw[parts[0]], dict):
        raise UserError(f"override {override!r}: {parts[0]} is not a section")
    raw[parts[0]][parts[1]] = yaml.safe_load(value)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML run config (None: defaults), apply overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config {p}: no such file")
        raw = yaml.safe_load(p.read_text()) or {}
        if not isinstance(raw, dict):
            raise UserError(f"config {p}: expected a mapping of sections")
    for override in overrides:
        apply_override(raw, override)
    try:
        return RunConfig.from_dict(raw)
    except TypeError as exc:  # a section given as a scalar, or similar
        raise UserError(f"config: {exc}") from None
