"""Text in, text out: the engine with a tokenizer -- what `blockattn generate` and the server run on.

    Service.load(model, adapter, cache_dir)          model + tokenizer + block adapter + BlockEngine
    service.rag_prompt / chat_prompt / completion_prompt  → Prompt (token blocks; block or full mode)
    service.generate(prompt, sampling, max_tokens, stop) → Generation: iterate for text deltas, then read
                                                        finish_reason and usage

Requests with documents run in block mode (documents are context blocks, cached); requests without run in
full mode (plain causal attention, adapter disabled). A service loaded with `mode="full"` runs every request in
full mode on the base weights (no adapter, no block cache): the baseline `bench serve` compares against. The
tokenizer is used under a lock: HF fast tokenizers are not safe to call from several threads at once, and the
server tokenizes off the model thread. A document's tokens are kept by its text (an LRU of
`DOCUMENT_TOKENS_CACHED` documents): the same document in the next request is not tokenized again (issue 10:
an 8k-token request of ~54 HotpotQA paragraphs took 21 ms to tokenize on a CPU core, 0.3 ms once they are known).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from blockattn.engine import prompt as prompts
from blockattn.engine.engine import GiB, BlockEngine, ContextTooLong, EngineConfig, Prefilled
from blockattn.engine.limits import EngineLimits
from blockattn.engine.sampling import Sampler, SamplingParams
from blockattn.engine.segmenting import split_documents
from blockattn.engine.text import TextStream
from blockattn.errors import UserError

if TYPE_CHECKING:
    import torch

# What `--adapter` means when not given: the block adapter shipped for the model, if there is one (distilled
# from the model's own full attention, see assets/adapters/*/README.md), else the base model alone.
DEFAULT_ADAPTER = "default"
SHIPPED_FILE = "shipped.json"  # assets/adapters/shipped.json: model name → assets/adapters/<dir>
DEFAULT_MAX_TOKENS = 256  # new tokens when a request does not say
DOCUMENT_TOKENS_CACHED = 16384  # documents whose tokens a service keeps (by text, least recently used out)
SERVE_MODES = ("block", "full")


def shipped_adapter_dir(name: str) -> Path:
    from importlib import resources

    return Path(str(resources.files("blockattn") / "assets" / "adapters" / name))


def shipped_adapters() -> dict[str, str]:
    """Model name → its shipped adapter's directory name (written by `python -m blockattn.experiments.ship`)."""
    import json

    path = shipped_adapter_dir(SHIPPED_FILE)
    return json.loads(path.read_text()) if path.is_file() else {}


SHIPPED_ADAPTERS = shipped_adapters()


def resolve_adapter(spec: str | None, model: str = "default") -> tuple[Path | None, str | None]:
    """`--adapter default|none|PATH` for `model` → (adapter directory, display name), (None, None) for the
    base model alone. `default` is the shipped adapter of a shipped model; a local model has none."""
    from blockattn.adapter import META_FILE
    from blockattn.models.loader import ALIASES

    if spec is None or spec.strip().lower() in ("", "none"):
        return None, None
    if spec.strip().lower() == "default":
        name = SHIPPED_ADAPTERS.get(ALIASES.get(model, model))
        if name is None:
            return None, None
        path = shipped_adapter_dir(name)
        if not (path / META_FILE).is_file():
            raise UserError(f"the shipped adapter {name!r} is missing from this install ({path}); "
                            "reinstall blockattn, or pass --adapter none")
        return path, name
    path = Path(spec).expanduser()
    if not (path / META_FILE).is_file():
        raise UserError(f"adapter {spec!r}: not a block adapter directory (no {META_FILE}); "
                        "give one written by `blockattn distill`, 'default' or 'none'")
    return path, str(path)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"unknown device {device!r}; choose auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}, but no CUDA device is available")
    return device


@dataclass
class Prompt:
    """A tokenized request."""

    blocks: list  # context blocks, token ids as lists or int64 arrays (the instruction prefix first, if any)
    query: list[int]  # the query block
    mode: str  # "block" (documents → cached blocks) or "full" (plain causal attention over everything)
    n_documents: int = 0  # document blocks among `blocks`
    tokenize_ms: float = 0.0  # time spent turning the request's text into these tokens

    @property
    def context_tokens(self) -> int:
        return sum(len(b) for b in self.blocks)

    @property
    def prompt_tokens(self) -> int:
        return self.context_tokens + len(self.query)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_blocks: int = 0
    computed_blocks: int = 0
    ttft_ms: float = 0.0  # model work from the start of prefill to the first token decided
    total_ms: float = 0.0
    # where the time before the first token went (ms): tokenize (text → tokens, off the model thread), then the
    # prefill's phases: validate, keys (content hashes), lookup (cache tiers), blocks (computing misses),
    # assemble (placing cached K/V), query (the query block's forward, not synchronised)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def openai(self) -> dict:
        """The OpenAI `usage` object, with blockattn's own numbers under "blockattn"."""
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
                "blockattn": {"cached_blocks": self.cached_blocks, "computed_blocks": self.computed_blocks,
                              "ttft_ms": round(self.ttft_ms, 3),
                              "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()}}}


@dataclass
class Generation:
    """One request's generation, as a small state machine that either runs alone or is advanced in a batch:

        start()          prefill, choose the first token      → the text it completes
        advance(logits)  choose the next token from `logits`  → the text it completes
        cancel_now()     end it here                          → any text held back

    `done` says when it has ended; then `finish_reason` ("stop" | "length" | "cancelled") and `usage` are
    set. Alone, iterate it (decoding one token at a time). The server's model thread instead decodes all
    running generations together, one batched step per token (`decode_step`). Setting `cancel` stops it
    between tokens."""

    service: "Service"
    prompt: Prompt
    sampling: SamplingParams
    max_tokens: int
    stop: list[str] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    tokens: list[int] = field(default_factory=list)
    done: bool = False
    state: Prefilled | None = None
    accept_ms: float = 0.0  # a server's time from the request's arrival to handing it to the model thread
    # set by `prefill_together`: blocks it computed that this request was the first to need, and its host ms
    group_computed: int = 0
    group_ms: float | None = None

    def start(self) -> str:
        self.begin()
        return "" if self.done else self.first()

    def begin(self) -> None:
        """The prefill, queued on the device and not waited for: a server begins the next request it admits
        before deciding this one's first token, so the host prepares one while the GPU runs the other."""
        if self.cancel.is_set():  # cancelled while queued: no model work at all
            self.finish_reason, self.done = "cancelled", True
            return
        self._started = time.perf_counter()
        self.state = self.service.engine.prefill(self.prompt.blocks, self.prompt.query, mode=self.prompt.mode,
                                                 max_new_tokens=self.max_tokens)
        # blocks computed for this request by `prefill_together` reach its prefill as cached: counted as computed
        # (capped: one evicted again before this prefill was computed twice, and is counted once)
        blocks = self.state.cached_blocks + self.state.computed_blocks
        computed = min(blocks, self.state.computed_blocks + self.group_computed)
        group = {} if self.group_ms is None else {"group_blocks": self.group_ms}
        self.usage = Usage(prompt_tokens=self.prompt.prompt_tokens, cached_blocks=blocks - computed,
                           computed_blocks=computed,
                           timings_ms={"tokenize": self.prompt.tokenize_ms, **group, **self.state.timings_ms})
        self._sampler = Sampler(self.sampling)
        self._text = TextStream(self.service.decode, self.stop)

    def first(self, greedy_token: int | None = None) -> str:
        """After `begin`: choose the first token (waits for the prefill); the text it completes."""
        return self.advance(self.state.logits[-1], greedy_token)

    def advance(self, logits: torch.Tensor, greedy_token: int | None = None) -> str:
        """Choose the next token from `logits` (V,) -- the model's prediction after the last token.
        `greedy_token`: argmax(logits) when the caller already has it (a batch's argmax is one kernel and one
        device sync for every row, instead of one each); used only by a greedy sampler."""
        token = greedy_token if greedy_token is not None and self.sampling.greedy else self._sampler(logits)
        if token in self.service.stop_ids:
            return self._finish("stop")
        if not self.tokens:
            self.usage.ttft_ms = (time.perf_counter() - self._started) * 1e3
        self.tokens.append(token)
        delta = self._text.push(token)
        if self._text.stopped:
            return delta + self._finish("stop")
        if self.cancel.is_set():
            return delta + self._finish("cancelled")
        if len(self.tokens) == self.max_tokens:
            return delta + self._finish("length")
        return delta

    def cancel_now(self) -> str:
        return self._finish("cancelled")

    def _finish(self, reason: str) -> str:
        self.finish_reason, self.done = reason, True
        self.usage.completion_tokens = len(self.tokens)
        self.usage.total_ms = (time.perf_counter() - self._started) * 1e3
        if not self.tokens:  # stopped before any token: the first (stop) token was still decided
            self.usage.ttft_ms = self.usage.total_ms
        return self._text.finish()

    def __iter__(self) -> Iterator[str]:
        """Run alone, token by token, yielding text deltas."""
        delta = self.start()
        while True:
            if delta:
                yield delta
            if self.done:
                return
            if self.cancel.is_set():
                delta = self.cancel_now()
                continue
            delta = self.advance(self.service.engine.decode_one_token(self.state, self.tokens[-1]))

    def text(self) -> str:
        """Run to the end; the whole generated text."""
        return "".join(self)


def prefill_together(generations: list[Generation], always: bool = False) -> None:
    """The missing blocks of generations about to `begin`, computed as one batched prefill (`BlockEngine.prefetch`)
    instead of one per request: a server calls this for the requests it admits together. Each generation's
    usage still counts the blocks it was the first to need as computed, and gets the shared work's host time as
    "group_blocks" (ms). Only block-mode generations with context blocks take part; fewer than two: nothing to
    share, nothing done.

    Servers do this only with `serve --group-prefill`: on an H100 at 64 clients it served fewer requests/s than
    one prefill each (`BlockEngine.prefetch` has the figures). Unless `always`, only where the engine packs
    blocks (`packs_blocks`: CUDA in bf16/fp16). Elsewhere a batch
    is padded to its longest block, and a group's batches hold more blocks of more lengths: real SmolLM2 on 2 CPU
    cores took 6.5 s per 4 admitted requests grouped against 3.9 s one by one (medians of 15 groups each,
    ~1k-token HotpotQA requests; `scripts/group_prefill_cpu.py`, reports/group_prefill_cpu.json)."""
    members = [g for g in generations if not g.cancel.is_set() and g.prompt.mode == "block" and g.prompt.blocks]
    if len(members) < 2 or not (always or members[0].service.engine.packs_blocks):
        return
    started = time.perf_counter()
    counts = members[0].service.engine.prefetch(
        [(g.prompt.blocks, g.prompt.query, g.prompt.mode, g.max_tokens) for g in members])
    spent = (time.perf_counter() - started) * 1e3
    for generation, count in zip(members, counts):
        generation.group_computed, generation.group_ms = count, spent


def decode_step(generations: list[Generation]) -> list[str]:
    """One token more for every running generation (all of one service), decoded together: one batched forward
    per mode (block mode runs with the adapter, full mode without). The text each one completes, in order."""
    deltas = [""] * len(generations)
    by_mode: dict[str, list[int]] = {}
    for i, g in enumerate(generations):
        by_mode.setdefault(g.prompt.mode, []).append(i)
    for rows in by_mode.values():
        group = [generations[i] for i in rows]
        logits = group[0].service.engine.decode_batch([g.state for g in group], [g.tokens[-1] for g in group])
        # greedy rows: one argmax for the batch (64 streams: one sync per step, not 64)
        greedy = logits.argmax(dim=-1).tolist() if any(g.sampling.greedy for g in group) else [None] * len(group)
        for i, g, row, token in zip(rows, group, logits, greedy):
            deltas[i] = g.advance(row, token)
    return deltas


class Service:
    def __init__(self, engine: BlockEngine | None, tokenizer, model_name: str, adapter_name: str | None,
                 default_max_tokens: int = DEFAULT_MAX_TOKENS, mode: str = "block", *,
                 limits: EngineLimits | None = None, stop_ids: frozenset[int] | None = None):
        """engine None: a service that only builds and checks prompts (by `limits`, the engine's, and `stop_ids`),
        for a process that hands them to an engine elsewhere (`serve --engine-process`)."""
        if mode not in SERVE_MODES:
            raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(SERVE_MODES)}")
        if engine is None and (limits is None or stop_ids is None):
            raise ValueError("a service without an engine needs its limits and stop ids")
        self.mode = mode  # what requests with documents run in
        self.engine = engine
        self.limits = engine.limits if engine is not None else limits
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.adapter_name = adapter_name  # the adapter's display name (shipped name or path), or None
        self.default_max_tokens = default_max_tokens
        self.stop_ids = frozenset(prompts.stop_token_ids(tokenizer, engine.base.config)) if engine is not None \
            else frozenset(stop_ids)
        self._tokenizer_lock = threading.Lock()
        self._document_tokens: OrderedDict[str, list[int]] = OrderedDict()  # under the tokenizer lock

    @staticmethod
    def load(model: str = "default", adapter: str | None = DEFAULT_ADAPTER, cache_dir: str | Path | None = None,
             device: str = "auto", dtype: str = "auto", gpu_cache_gb: float | None = None, cpu_cache_gb: float = 4.0,
             cuda_graphs: bool | None = None, default_max_tokens: int = DEFAULT_MAX_TOKENS,
             cache_dir_max_gb: float | None = None, kv_store: str | None = None,
             kv_store_gb: float = 4.0, mode: str = "block", compile_decode: bool = False) -> "Service":
        """Load a model (name or HF directory), its tokenizer, optionally a block adapter; build the engine.
        `mode="full"`: every request in full attention, so no adapter is loaded (it would never run).
        `compile_decode`: torch.compile the static decode steps (fewer kernels per token; the first request of
        each new shape waits for a compilation)."""
        from blockattn.models import load

        device = resolve_device(device)
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        if dtype not in ("float32", "bfloat16", "float16"):
            raise UserError(f"unknown dtype {dtype!r}; choose auto, float32, bfloat16 or float16")
        if (gpu_cache_gb is not None and gpu_cache_gb < 0) or cpu_cache_gb < 0:
            raise UserError("cache budgets must be >= 0 GB")
        if cache_dir_max_gb is not None and (not cache_dir or cache_dir_max_gb <= 0):
            raise UserError("--cache-dir-max-gb needs --cache-dir and a budget > 0")
        if kv_store_gb <= 0:
            raise UserError("--kv-store-gb must be > 0")
        if kv_store:
            from blockattn.engine.remote import parse_url

            parse_url(kv_store)  # a bad URL fails before the model loads
        if mode not in SERVE_MODES:
            raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(SERVE_MODES)}")
        adapter_path, adapter_name = resolve_adapter(adapter, model) if mode == "block" else (None, None)
        loaded = load(model, dtype=dtype, device=device)
        block_adapter = None
        if adapter_path is not None:
            from blockattn.adapter import load_block_adapter

            block_adapter = load_block_adapter(loaded.model, adapter_path)
        config = EngineConfig(gpu_cache_bytes=None if gpu_cache_gb is None else int(gpu_cache_gb * GiB),
                              cpu_cache_bytes=int(cpu_cache_gb * GiB),
                              cache_dir=str(cache_dir) if cache_dir else None, cuda_graphs=cuda_graphs,
                              cache_dir_max_bytes=int(cache_dir_max_gb * GiB) if cache_dir_max_gb else None,
                              kv_store=kv_store or None, kv_store_bytes=int(kv_store_gb * GiB),
                              compile_decode=compile_decode)
        engine = BlockEngine(loaded.model, loaded.identity, block_adapter, config)
        return Service(engine, loaded.tokenizer, loaded.name, adapter_name, default_max_tokens, mode)

    # ---------------------------------------------------------------- tokenizer (locked)
    def encode(self, text: str) -> list[int]:
        with self._tokenizer_lock:
            return prompts.encode_text(self.tokenizer, text)

    def decode(self, tokens: list[int]) -> str:
        with self._tokenizer_lock:
            return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _documents_locked(self, texts: list[str]) -> list[np.ndarray]:
        """`prompts.encode_documents(texts)` as int64 arrays, each document's kept by its text (the caller holds
        the tokenizer lock). The arrays handed out are shared and read-only."""
        cache = self._document_tokens
        missing = list(dict.fromkeys(text for text in texts if text not in cache))
        for text, tokens in zip(missing, prompts.encode_documents(self.tokenizer, missing)):  # one batched call
            # kept as int64 arrays: the engine checks an array in place, a list it first converts element by
            # element (every request, every document); read-only, being shared
            array = np.asarray(tokens, dtype=np.int64)
            array.setflags(write=False)
            cache[text] = array
        blocks = []
        for text in texts:
            cache.move_to_end(text)
            blocks.append(cache[text])
        while len(cache) > DOCUMENT_TOKENS_CACHED:  # after the lookups: this request's documents are the newest
            cache.popitem(last=False)
        return blocks

    def _with_documents(self, prefix: list[int], documents: list[list[int]], query: list[int],
                        started: float) -> Prompt:
        return Prompt([prefix, *documents], query, self.mode, len(documents),
                      tokenize_ms=(time.perf_counter() - started) * 1e3)

    # ---------------------------------------------------------------- prompts
    def rag_prompt(self, documents: list[str], question: str, mode: str = "block", segment: str = "none") -> Prompt:
        """Documents + a question (`blockattn generate`): [prefix, documents..., question]."""
        if not question or not question.strip():
            raise UserError("the question is empty")
        if not documents:
            raise UserError("no documents given")
        started = time.perf_counter()
        blocks = split_documents(documents, segment)  # outside the lock: the segmenter has its own tokenizer
        with self._tokenizer_lock:
            built = prompts.build_prompt(self.tokenizer, [], question.strip())
            tokens = self._documents_locked(blocks)
        prompt = self._with_documents(built.prefix, tokens, built.query, started)
        prompt.mode = mode
        return prompt

    def chat_prompt(self, messages: list[dict], documents: list[str] | None = None, segment: str = "none") -> Prompt:
        """A chat request; with documents in block mode (the last user message is the query block)."""
        if not messages:
            raise UserError("messages is empty")
        started = time.perf_counter()
        if not documents:
            with self._tokenizer_lock:
                tokens = prompts.build_chat_tokens(self.tokenizer, messages)
            return Prompt([], tokens, "full", tokenize_ms=(time.perf_counter() - started) * 1e3)
        blocks = split_documents(documents, segment)  # outside the lock: the segmenter has its own tokenizer
        with self._tokenizer_lock:
            built = prompts.build_chat_prompt(self.tokenizer, messages, [])
            tokens = self._documents_locked(blocks)
        return self._with_documents(built.prefix, tokens, built.query, started)

    def completion_prompt(self, text_or_ids: str | list[int], documents: list[str] | None = None,
                          segment: str = "none") -> Prompt:
        """A raw completion prompt; documents (if any) are context blocks in front of it."""
        started = time.perf_counter()
        if isinstance(text_or_ids, str):
            if not text_or_ids:
                raise UserError("prompt is empty")
            query = self.encode(text_or_ids)
        else:
            query = list(text_or_ids)
            if not query:
                raise UserError("prompt is empty")
            self.limits.check_tokens(query, "prompt")
        if not documents:
            return Prompt([], query, "full", tokenize_ms=(time.perf_counter() - started) * 1e3)
        texts = split_documents(documents, segment)  # outside the lock: the segmenter has its own tokenizer
        with self._tokenizer_lock:
            blocks = self._documents_locked(texts)
        return Prompt(blocks, query, self.mode, len(blocks), tokenize_ms=(time.perf_counter() - started) * 1e3)

    # ---------------------------------------------------------------- generation
    def max_tokens_for(self, prompt: Prompt, requested: int | None) -> int:
        """`requested` new tokens if they fit the model's window (else UserError); when None, the default
        capped by the room left."""
        if requested is not None and requested < 1:
            raise UserError("max_tokens must be at least 1")
        used = self.limits.positions_needed(prompt.blocks, prompt.query, prompt.mode)
        window = self.limits.max_positions
        if requested is None:
            requested = self.default_max_tokens if window is None else min(self.default_max_tokens, window - used)
            if requested < 1:
                raise ContextTooLong(f"context too long: the prompt needs {used} positions, "
                                     f"the model's window is {window}")
        self.limits.check_fits(prompt.blocks, prompt.query, prompt.mode, requested)
        return requested

    def generate(self, prompt: Prompt, sampling: SamplingParams | None = None, max_tokens: int | None = None,
                 stop: list[str] | None = None) -> Generation:
        """A generation, checked (fits the window) but not started: iterate it to run."""
        return Generation(self, prompt, sampling or SamplingParams(), self.max_tokens_for(prompt, max_tokens),
                          list(stop or []))

    def info(self) -> dict:
        return {"model": self.model_name, "adapter": self.adapter_name, "mode": self.mode, **self.engine.info(),
                "cache": self.engine.store.stats()}
