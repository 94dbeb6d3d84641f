"""The training recipe for block distillation and its baseline, block fine-tuning: setup / train /
save_checkpoint / save_adapter (after torchtune's KD recipe; our own code).

    distill   student (block attention, LoRA + sinks) matches the frozen teacher (the same base, adapter off,
              full attention over the same visible text): token-weighted KL on the query-block tokens
    block_ft  the same student, mask and data; next-token CE on the query-block tokens, no teacher

One process, one GPU or N processes under torchrun (DDP): batch size is per process; losses are means over
the whole (all-process) batch, so N processes with batch B follow the same trajectory as one with N·B.

Run directory:
    checkpoint.pt   resume state (written every `checkpoint_every` steps and at the end; a run restarted with
                    the same --out continues from it and reproduces the uninterrupted loss curve)
    metrics.jsonl   one record per logged step: step, loss, kl, ce, weight_max, grad_norm, lr, tokens,
                    tokens_per_s, elapsed_s
    curves.png      the curves
    adapter/        the block adapter (`blockattn.adapter` format) -- what the engine loads
    summary.json    steps, tokens, wall time, throughput, final metrics
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from blockattn.distill.batch import Batch
from blockattn.distill.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from blockattn.distill.config import OBJECTIVES, RunConfig
from blockattn.distill.distributed import (World, all_gather_objects, all_reduce_max, all_reduce_sum, barrier,
                                           init_world)
from blockattn.distill.loader import BatchLoader
from blockattn.distill.losses import BlockDistillLoss, BlockFTLoss, LossParts, linear_divergence
from blockattn.distill.metrics import CURVES_FILE, MetricsLog, plot_curves, read_metrics
from blockattn.distill.sources import load_corpus
from blockattn.distill.student import (BlockStudent, FrozenTeacher, attach_lora, base_of, decoder_of, make_sinks,
                                       output_weight)
from blockattn.errors import UserError

SUMMARY_FILE = "summary.json"
# held-out batches on which the KL to the teacher is measured before and after training: one noisy training
# batch cannot show whether the KL fell, the same held-out batches can
PROBE_BATCHES = 2
ADAPTER_DIR = "adapter"
SNAPSHOT_DIR = "snapshots"  # snapshots/step<N>/: the adapter after N steps (train.snapshot_every)


@dataclass
class LoadedBase:
    model: torch.nn.Module
    name: str  # what the adapter records as its base
    pad_id: int
    tokenizer: object | None


def load_base(cfg: RunConfig, device: torch.device) -> LoadedBase:
    """The base model named by the config, in eval mode, block attention available."""
    if cfg.model.name == "tiny":
        from blockattn.models.tiny import tiny_model

        model = tiny_model(seed=cfg.train.seed, dtype=cfg.model.dtype, vocab_size=cfg.model.tiny_vocab,
                           initializer_range=cfg.model.tiny_init_std).to(device)
        tok = None
        if cfg.model.tokenizer:
            from blockattn.models import load_tokenizer

            tok = load_tokenizer(cfg.model.tokenizer)
        return LoadedBase(model, "tiny", pad_id=_pad_id(tok) if tok else int(model.config.pad_token_id or 0),
                          tokenizer=tok)
    from blockattn.models import load, resolve

    if dist.is_available() and dist.is_initialized():
        # the default model is converted once per machine: rank 0 first, the others read its result
        if int(os.environ.get("RANK", 0)) == 0:
            resolve(cfg.model.name)
        barrier()

    loaded = load(cfg.model.name, dtype=cfg.model.dtype, device=str(device))
    return LoadedBase(loaded.model, loaded.identity, pad_id=_pad_id(loaded.tokenizer), tokenizer=loaded.tokenizer)


def _pad_id(tokenizer) -> int:
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)


def lr_factor(step: int, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """LR multiplier at `step` (0-based): linear warmup, then constant or cosine down to `min_ratio`."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class BlockTrainingRecipe:
    """Block distillation (objective "distill") or block fine-tuning ("block_ft") from one config."""

    def __init__(self, cfg: RunConfig, objective: str, out_dir: str | Path, progress: bool = True):
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}")
        self.cfg, self.objective, self.out = cfg, objective, Path(out_dir)
        self.show_progress = progress
        self.step = 0  # optimizer steps taken
        self.rows_consumed = 0  # global data position (rows of the RowStream)
        self.tokens_seen = 0  # content tokens trained on, all processes
        self.train_seconds = 0.0  # training wall time, summed over (resumed) sessions
        self.warm_start: dict | None = None  # what `adapter.init_from` carried in (steps, tokens, seconds)

    # ------------------------------------------------------------------ setup
    def setup(self) -> "BlockTrainingRecipe":
        cfg = self.cfg
        if cfg.train.cpu_threads:
            torch.set_num_threads(cfg.train.cpu_threads)
        self.world: World = init_world(cfg.train.device)
        if self.world.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        barrier()
        torch.manual_seed(cfg.train.seed)  # the same on every process: LoRA init must agree (DDP checks it)
        base = load_base(cfg, self.world.device)
        self.base_name, self.tokenizer = base.name, base.tokenizer
        model = attach_lora(base.model, cfg.adapter)
        sinks = make_sinks(model, cfg.adapter)
        backend = cfg.train.attention_backend
        self.teacher = FrozenTeacher.for_student(model, backend)  # before training moves any weight
        self.student = BlockStudent(model, sinks, backend).to(self.world.device)
        if cfg.train.activation_checkpointing:
            base_of(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.train.compile:
            self._compile_layers()
        self.student.train()
        self.trained = self.student
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.world.device.index] if self.world.device.type == "cuda" else None
            self.trained = DistributedDataParallel(self.student, device_ids=ids)
        if cfg.adapter.init_from and load_checkpoint(self.out) is None:  # a checkpoint of this run wins
            self._warm_start(Path(cfg.adapter.init_from))
        self.optimizer = self._optimizer()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(
            s, cfg.optim.warmup_steps, cfg.train.steps, cfg.optim.schedule, cfg.optim.min_lr_ratio))
        self.loss_fn = (BlockDistillLoss(cfg.loss.temperature, cfg.loss.ce_weight, cfg.loss.weighting,
                                         cfg.loss.chunk_tokens) if self.objective == "distill"
                        else BlockFTLoss(cfg.loss.chunk_tokens))
        corpus = load_corpus(cfg.data, "train", base.model.config.vocab_size, cfg.train.seed, base.tokenizer)
        rag = None
        if cfg.data.rag_fraction > 0:
            from blockattn.distill.ragset import load_ragset

            rag = load_ragset(cfg.data.rag_path)
        self.loader = BatchLoader(corpus, cfg.data.seq_len, cfg.data.batch_size, cfg.data.block_dropout,
                                  cfg.adapter.sinks_per_block, cfg.adapter.shared_sink, base.pad_id,
                                  cfg.train.seed, self.world.rank, self.world.size, rag=rag,
                                  rag_fraction=cfg.data.rag_fraction)
        heldout = load_corpus(cfg.data, "heldout", base.model.config.vocab_size, cfg.train.seed, base.tokenizer)
        probe = BatchLoader(heldout, cfg.data.seq_len, cfg.data.batch_size, cfg.data.block_dropout,
                            cfg.adapter.sinks_per_block, cfg.adapter.shared_sink, base.pad_id, cfg.train.seed,
                            self.world.rank, self.world.size)
        self.probe_batches = [probe.batch(i * probe.rows_per_step).to(self.world.device) for i in range(PROBE_BATCHES)]
        self.probe_kl_start: float | None = None
        self._resume()
        self.metrics = MetricsLog(self.out, self.step) if self.world.is_main else None
        return self

    def _compile_layers(self) -> None:
        """torch.compile each decoder layer (shapes are static: every batch is seq_len wide). A layer that
        fails to compile runs eagerly instead of ending a paid GPU run."""
        import torch._dynamo

        torch._dynamo.config.suppress_errors = True
        for layer in decoder_of(self.student.model).layers:
            layer.compile(dynamic=False)

    def _optimizer(self) -> torch.optim.Optimizer:
        o = self.cfg.optim
        sink_params = [p for p in self.student.sinks.parameters() if p.requires_grad]
        sink_ids = {id(p) for p in sink_params}
        weights = [p for p in self.student.parameters() if p.requires_grad and id(p) not in sink_ids]
        groups = [{"params": weights, "lr": o.lr, "weight_decay": o.weight_decay}]
        if sink_params:
            groups.append({"params": sink_params, "lr": o.sink_lr, "weight_decay": 0.0})
        fused = self.world.device.type == "cuda"
        return torch.optim.AdamW(groups, betas=tuple(o.betas), fused=fused)

    def _warm_start(self, path: Path) -> None:
        """Start from the block adapter at `path` (an earlier session's run): its LoRA and sink weights. Its
        tokens and training seconds are carried on, so rows and curves count everything the adapter was trained
        on; this run's step count, schedule and `max_minutes` budget start afresh."""
        from peft import set_peft_model_state_dict
        from peft.utils import load_peft_weights
        from safetensors.torch import load_file

        from blockattn.adapter import META_FILE, SINKS_FILE

        if not (path / META_FILE).is_file():
            raise UserError(f"adapter.init_from={path}: not a blockattn adapter directory (no {META_FILE})")
        meta = json.loads((path / META_FILE).read_text())
        theirs, mine = meta.get("recipe", {}).get("adapter", {}), self.cfg.adapter
        for key in ("lora_rank", "sinks_per_block", "shared_sink", "target_modules"):
            if key in theirs and theirs[key] != getattr(mine, key):
                raise UserError(f"adapter.init_from={path}: its {key} is {theirs[key]}, this run's "
                                f"{getattr(mine, key)}; set adapter.{key} to match")
        if not mine.lora_rank:
            raise UserError("adapter.init_from continues a LoRA adapter; under full fine-tuning (lora_rank=0) "
                            "start from the saved model directory instead")
        if meta.get("base") and meta["base"] != self.base_name:
            raise UserError(f"adapter.init_from={path} was trained on {meta['base']}, not {self.base_name}")
        result = set_peft_model_state_dict(self.student.model, load_peft_weights(str(path), device="cpu"))
        if result.unexpected_keys:
            raise UserError(f"adapter.init_from={path}: {len(result.unexpected_keys)} LoRA tensors match "
                            f"nothing in this model (e.g. {result.unexpected_keys[0]})")
        state = load_file(str(path / SINKS_FILE)) if (path / SINKS_FILE).is_file() else {}
        with torch.no_grad():
            for name in ("per_block", "shared"):
                if name in state and state[name].numel():
                    getattr(self.student.sinks, name).copy_(state[name])
        self.tokens_seen, self.train_seconds = int(meta.get("tokens", 0)), float(meta.get("train_seconds", 0.0))
        self.warm_start = {"from": str(path), "steps": int(meta.get("steps", 0)), "tokens": self.tokens_seen,
                           "train_seconds": self.train_seconds}

    def _resume(self) -> None:
        state = load_checkpoint(self.out)
        if state is None:
            return
        if state["objective"] != self.objective or state["config_digest"] != self.cfg.digest():
            raise UserError(f"{self.out} holds a checkpoint of another run ({state['objective']}, config "
                            f"{state['config_digest']}); use a fresh --out")
        self.student.load_trainable_state(state["trainable"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.rows_consumed = state["step"], state["rows_consumed"]
        self.tokens_seen, self.train_seconds = state["tokens_seen"], state["train_seconds"]
        self.probe_kl_start = state["probe_kl_start"]
        self.warm_start = state.get("warm_start")
        if len(state["rng"]) == self.world.size:  # another world size continues with fresh RNG streams
            restore_rng(state["rng"][self.world.rank])

    # ------------------------------------------------------------------ one step
    def _autocast(self):
        if self.cfg.train.precision == "bf16":
            return torch.autocast(self.world.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def compute_dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.cfg.train.precision == "bf16" else torch.float32

    def train_step(self, batch: Batch, measure_kl: bool = False) -> tuple[LossParts, torch.Tensor]:
        """One optimizer step: (loss parts, gradient norm before clipping). Block-FT measures the KL to the
        teacher only when `measure_kl` (log steps)."""
        with self._autocast():
            teacher_h = None
            if self.objective == "distill" or measure_kl:
                teacher_h = self.teacher.hidden(batch.teacher_ids, batch.teacher_layout)  # (B, W, H)
                teacher_h = teacher_h.flatten(0, 1)[batch.teacher_index]  # (M, H)
            student_h = self.trained(batch.student_ids, batch.student_layout)  # (B, W, H)
            student_h = student_h.flatten(0, 1)[batch.student_index]  # (M, H)
        parts = self.loss_fn(student_h, output_weight(self.student.model), batch.labels, h_teacher=teacher_h,
                             teacher_weight=self.teacher.output_weight(), reduce=all_reduce_sum,
                             compute_dtype=self.compute_dtype)
        # each process's loss is its share of the global mean; DDP *averages* gradients over processes,
        # so scale by the world size to get the gradient of the sum of shares (= of the global mean)
        (parts.loss * self.world.size).backward()
        params = [p for p in self.student.parameters() if p.requires_grad]
        grad_norm = (torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
                     if self.cfg.optim.grad_clip > 0 else torch.zeros((), device=self.world.device))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return parts, grad_norm.detach()

    # ------------------------------------------------------------------ loop
    def train(self) -> dict:
        cfg = self.cfg
        total = cfg.train.steps
        log_every = max(1, cfg.train.log_every)
        intervals: list[float] = []  # tokens/s of each log interval
        if self.probe_kl_start is None:
            self.probe_kl_start = self.probe_kl()
        batches = self.loader.iterate(self.rows_consumed, self.world.device)
        progress = self._progress(total)
        with progress:
            task = progress.add_task(self.objective, total=total, completed=self.step, stats="")
            mark_time, mark_tokens, local_tokens = time.perf_counter(), self.tokens_seen, 0
            while self.step < total:
                batch = next(batches)
                # the first step is logged too: its KL is the zero-shot starting point of the curve
                log_now = self.step == 0 or (self.step + 1) % log_every == 0 or self.step + 1 == total
                parts, grad_norm = self.train_step(batch, measure_kl=log_now)
                self.step += 1
                self.rows_consumed += self.loader.rows_per_step
                local_tokens += batch.n_content
                progress.update(task, advance=1)
                if log_now:
                    record = self._log_record(parts, grad_norm, local_tokens)  # synchronises the device
                    now = time.perf_counter()
                    self.tokens_seen = mark_tokens + record["tokens_step_interval"]
                    self.train_seconds += now - mark_time
                    rate = record.pop("tokens_step_interval") / max(now - mark_time, 1e-9)
                    record.update(tokens=self.tokens_seen, tokens_per_s=rate, elapsed_s=self.train_seconds)
                    intervals.append(rate)
                    if self.metrics is not None:
                        self.metrics.write(record)
                    progress.update(task, stats=self._stats_text(record))
                    mark_time, mark_tokens, local_tokens = now, self.tokens_seen, 0
                    carried = self.warm_start["train_seconds"] if self.warm_start else 0.0
                    if cfg.train.max_minutes and self.train_seconds - carried > 60 * cfg.train.max_minutes:
                        break  # every process takes this branch: train_seconds is rank 0's, broadcast below
                if cfg.train.checkpoint_every and self.step % cfg.train.checkpoint_every == 0:
                    self.save_checkpoint()
                if cfg.train.snapshot_every and self.step % cfg.train.snapshot_every == 0 and self.step < total:
                    self.save_adapter(where=f"{SNAPSHOT_DIR}/step{self.step}")
        batches.close()
        self.save_checkpoint()
        return self._finish(intervals)

    def _progress(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[stats]}"), TimeElapsedColumn(),
                        disable=not (self.show_progress and self.world.is_main))

    @staticmethod
    def _stats_text(record: dict) -> str:
        kl = "-" if record["kl"] is None else f"{record['kl']:.4f}"
        return f"loss {record['loss']:.4f}  kl {kl}  {record['tokens_per_s']:,.0f} tok/s"

    def _log_record(self, parts: LossParts, grad_norm: torch.Tensor, local_tokens: int) -> dict:
        """Global values of this step's parts (shares summed over processes) plus the interval's tokens.
        Also agrees on elapsed time (rank 0's), so every process stops at the same step."""
        nan = torch.full((), float("nan"), device=self.world.device)  # "not measured this step"
        kl = parts.kl if parts.kl is not None else nan
        ce = parts.ce if parts.ce is not None else nan
        shares = torch.stack([parts.loss.detach().float(), kl.float(), ce.float(),
                              torch.tensor(float(local_tokens), device=self.world.device)])
        shares = all_reduce_sum(shares)
        maxima = all_reduce_max(torch.stack([parts.weight_max.float(), grad_norm.float()]))
        seconds = torch.tensor([self.train_seconds if self.world.is_main else 0.0], device=self.world.device)
        all_reduce_sum(seconds)
        self.train_seconds = float(seconds[0])
        loss, kl_value, ce, tokens = shares.tolist()
        return {"step": self.step, "loss": loss, "kl": None if math.isnan(kl_value) else kl_value,
                "ce": None if math.isnan(ce) else ce,
                "weight_max": float(maxima[0]), "grad_norm": float(maxima[1]),
                "lr": self.scheduler.get_last_lr()[0], "tokens_step_interval": int(tokens)}

    # ------------------------------------------------------------------ saving
    def save_checkpoint(self) -> None:
        """All processes call this (RNG states are gathered); rank 0 writes."""
        rng = all_gather_objects(capture_rng())
        if self.world.is_main:
            save_checkpoint(self.out, {
                "objective": self.objective, "config_digest": self.cfg.digest(), "config": self.cfg.to_dict(),
                "step": self.step, "rows_consumed": self.rows_consumed, "tokens_seen": self.tokens_seen,
                "train_seconds": self.train_seconds, "probe_kl_start": self.probe_kl_start,
                "warm_start": self.warm_start,
                "trainable": self.student.trainable_state(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "rng": rng,
            })
        barrier()

    def save_adapter(self, meta: dict | None = None, where: str = ADAPTER_DIR) -> Path | None:
        """The block adapter (rank 0): LoRA + sinks via `blockattn.adapter.save_block_adapter`; under full
        fine-tuning the model goes to adapter/model/ beside a sinks-only adapter."""
        from blockattn.adapter import save_block_adapter

        if not self.world.is_main:
            return None
        out = self.out / where
        model = self.student.model
        if not hasattr(model, "peft_config"):
            base_of(model).save_pretrained(str(out / "model"))
        a = self.cfg.adapter
        # tokens and seconds are as of the last log step: a snapshot_every that is a multiple of log_every
        # makes them exact for snapshots
        info = {"base": self.base_name, "objective": self.objective, "steps": self.step,
                "tokens": self.tokens_seen, "train_seconds": round(self.train_seconds, 1),
                "command": " ".join(sys.argv), "recipe": self.cfg.to_dict(), "warm_start": self.warm_start,
                **(meta or {})}
        return save_block_adapter(out, model, self.student.sinks, a.sinks_per_block, a.shared_sink, meta=info)

    @torch.no_grad()
    def probe_kl(self) -> float:
        """Mean KL(teacher ‖ student) over the loss tokens of the held-out probe batches (all processes).
        Runs eagerly on the dense-mask path: a compiled no-grad variant (layers or Flex kernels) would cost a
        compilation for two batches."""
        sums = torch.zeros(2, device=self.world.device, dtype=torch.float64)
        student = BlockStudent(self.student.model, self.student.sinks, "dense")  # same modules, other backend
        teacher = FrozenTeacher(self.teacher.model, "dense")
        self.student.eval()
        with torch.compiler.set_stance("force_eager"), self._autocast():
            for b in self.probe_batches:
                t = teacher.hidden(b.teacher_ids, b.teacher_layout).flatten(0, 1)[b.teacher_index]
                h = student(b.student_ids, b.student_layout).flatten(0, 1)[b.student_index]
                kl = linear_divergence(h, output_weight(self.student.model), t, chunk=self.cfg.loss.chunk_tokens,
                                       compute_dtype=self.compute_dtype,
                                       teacher_weight=self.teacher.output_weight()).kl
                sums += torch.stack([kl.sum().double(), torch.tensor(float(kl.numel()), device=kl.device).double()])
        self.student.train()
        sums = all_reduce_sum(sums)
        return float(sums[0] / sums[1].clamp(min=1))

    def _finish(self, intervals: list[float]) -> dict:
        # the first interval holds start-up and compilation: leave it out of the steady-state rate
        steady = intervals[1:] or intervals
        summary = {"objective": self.objective, "steps": self.step, "tokens": self.tokens_seen,
                   "probe_kl": {"start": self.probe_kl_start, "end": self.probe_kl()},
                   "train_seconds": round(self.train_seconds, 2), "world_size": self.world.size,
                   "tokens_per_s": statistics.median(steady) if steady else None,
                   "tokens_per_s_per_process": statistics.median(steady) / self.world.size if steady else None,
                   "device": str(self.world.device), "precision": self.cfg.train.precision,
                   "warm_start": self.warm_start}
        if self.world.device.type == "cuda":
            summary["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(self.world.device) / 2**30, 2)
        if self.world.is_main:
            records = read_metrics(self.out / "metrics.jsonl")
            if records:
                summary["final"] = {k: records[-1].get(k) for k in ("loss", "kl", "ce")}
                plot_curves(records, self.out / CURVES_FILE, f"{self.objective} ({self.base_name})")
            (self.out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        return summary


def run(cfg: RunConfig, objective: str, out_dir: str | Path, progress: bool = True) -> dict:
    """Set up, train (resuming if OUT holds a checkpoint of this run), save the adapter; the summary."""
    recipe = BlockTrainingRecipe(cfg, objective, out_dir, progress).setup()
    summary = recipe.train()
    recipe.save_adapter()
    barrier()
    return summary
