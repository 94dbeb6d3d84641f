"""The block-attention engine: token ids in, token ids out, block K/V computed once and reused anywhere.

The engine knows nothing about tokenization (nanochat). A request is context blocks + a query block:

    prefill(blocks, query)
      1. key each block by content (`keys.KeySpace`); look it up in the store (GPU → CPU → disk tiers);
         prefill the misses alone at their native positions, batched (`blockprefill`); store them
      2. place every block into a fresh KV buffer at its offset, keys re-rotated (`assemble`)
      3. run the query block over that buffer (`attention.cached_attention`)   → logits of the first new token
    decode_one_token(state, token)  → logits of the next one
    generate(state, sampling, ...)  → the new token ids, one at a time (streaming)

Guarantee (tests/engine/test_exactness.py): the logits equal the uncached block-mode forward
(`attention.block_forward` over [blocks, query]) within 1e-4 in fp32, whether blocks come from the cache or
not, in any order and at any offset, with per-block and shared sinks. Generated tokens are part of the query
block: decoding continues exactly the block-mode sequence.

Full mode (`mode="full"`, requests without documents) is plain causal attention over the concatenated tokens
with the block adapter disabled (PEFT `disable_adapter()`): one copy of the weights serves both modes. With
`merge_adapter` (default on CUDA) block mode instead runs a second copy of the weights with the LoRA merged in,
so it costs what full mode costs (issue 10: the unmerged LoRA added ~45 ms per token), and full mode runs a
plain view of the base weights (`plain_view`: shared tensors, no PEFT layers in its forward or its graphs).

Speed on CUDA (issue 10): SDPA never picks cuDNN (`attention.sdpa_backends`: it re-plans for every new KV
length, 2.5 ms of CPU per call); single-token decode runs as a static-shape step replayed from a CUDA graph
(`decodegraph`), over buffers drawn from a pool in bucketed capacities so graphs are reused; batched decode
(the server's running generations) runs as one static step over an arena of slots, replayed from a graph per
(batch bucket, length bucket) (`batchgraph`). Inside those captured steps (and in eager forwards of 1024+ tokens)
each norm, rotary embedding and SwiGLU is one compiled kernel (`fusedops`, `fused_ops`). A request's missing
blocks are prefilled as one packed sequence through flash's variable-length kernel (`packedprefill`); its query
block replays the graph of its shape, over a buffer the graph owns: lent to the request as its own when no
other request holds it, else a staging buffer copied out after the query (`graphs`). Small host-to-device
inputs go through pinned memory (`cudagraph.upload`), so the host queues a whole prefill without waiting for
the GPU until the first token is chosen.

Thread-safe: model work is serialised by one lock; block computation is de-duplicated across concurrent
callers by the store (a block in flight is awaited, not recomputed).
"""

from __future__ import annotations

import copy
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from blockattn.attention.kv import prefill_shared_sink
from blockattn.attention.rope import RopeSpec
from blockattn.engine.assemble import BlockPlacer
from blockattn.engine.attention import cached_attention, sdpa_backends
from blockattn.engine.batchgraph import BatchDecoder
from blockattn.engine.blockprefill import PrefillGraphs, prefill_blocks
from blockattn.engine.packedprefill import packing_applies
from blockattn.engine.cudagraph import to_device
from blockattn.engine.disk import DiskTier
from blockattn.engine.decodegraph import DecodeGraphs
from blockattn.engine.graphs import QueryGraphs
from blockattn.engine.querypath import AttentionPlan, calibrate_attention
from blockattn.engine.keys import KeySpace
from blockattn.engine.limits import ContextTooLong, EngineLimits  # noqa: F401 - ContextTooLong: re-exported
from blockattn.engine.kvbuffer import BatchKV, BufferPool, SequenceKV, bucket_capacity
from blockattn.engine import flashbuffer, fusedops, staticops
from blockattn.engine.remote import RedisTier
from blockattn.engine.sampling import Sampler, SamplingParams
from blockattn.engine.store import BlockStore, MemoryTier
from blockattn.errors import UserError

MODES = ("block", "full")
GiB = 1 << 30


@dataclass
class EngineConfig:
    gpu_cache_bytes: int | None = None  # GPU tier budget (CUDA); None: `gpu_tier_bytes` decides
    cpu_cache_bytes: int = 4 * GiB  # CPU tier budget
    cache_dir: str | None = None  # disk tier directory (persistent across runs); None: no disk tier
    cache_dir_max_bytes: int | None = None  # disk tier budget, LRU across processes sharing it; None: unbounded
    kv_store: str | None = None  # redis://HOST:PORT/DB of a store shared by replicas; None: no remote tier
    kv_store_bytes: int = 4 * GiB  # our byte budget in that Redis (LRU across every process using it)
    max_batch_tokens: int = 16384  # padded tokens per batched block prefill (bounds activation memory)
    compile_rotation: bool | None = None  # fuse the key re-rotation with torch.compile; None: on CUDA only
    fused_assemble: bool = True  # place blocks with one Triton kernel where it runs (CUDA + Triton; `assemble`)
    cuda_graphs: bool | None = None  # the query-block forward as a static step over the whole buffer, padded to
    #                                  a bucketed length (`graphs`), and small batches of missing blocks at
    #                                  bucketed shapes (`blockprefill`), replayed from CUDA graphs; None: on CUDA
    query_flash_from: int | None = None  # query graphs attend with flash from buffers this long; None: timed
    #                                      against the matmul path at engine start (`querypath`) where flash runs
    time_query_graphs: bool = True  # keep a query shape's graph only if its replay beats a timed eager forward
    decode_graphs: bool | None = None  # single-token decode as a static step (`decodegraph`), graph-replayed on
    #                                    CUDA; None: on CUDA only (on the CPU the plain step is cheaper)
    merge_adapter: bool | None = None  # block mode on a LoRA-merged copy of the weights (2× weight memory);
    #                                    False: one copy, adapter toggled per call; None: on CUDA only
    buffer_pool_bytes: int | None = None  # freed KV buffers kept for reuse (with decode graphs); None: 4 GiB, on
    #                                       CUDA a tenth of the device's memory if more (`pool_bytes`)
    fused_ops: bool | None = None  # norms, rotary and SwiGLU as compiled kernels (`fusedops`); None: on CUDA
    compile_decode: bool = False  # torch.compile the static decode steps (single and batched) before capture:
    #                               fewer, fused kernels per step; costs a compilation per shape
    batch_graphs: bool | None = None  # batched decode as a static step over an arena (`batchgraph`), graph-
    #                                   replayed on CUDA; None: on CUDA only
    decode_arena_tokens: int = 8192  # positions per arena slot (longer requests decode on the eager batched path)
    decode_arena_slots: int = 64  # most requests decoded together from an arena
    decode_arena_bytes: int | None = None  # per mode's arena; None: 15 % of the GPU's memory. Where the slots do
    #                                        not fit it, slots get shorter first (`arena_shape`), then fewer


@dataclass
class Prefilled:
    """A prefilled request, ready to decode."""

    kv: SequenceKV
    logits: torch.Tensor  # (keep, V) logits of the last `keep` prompt positions; [-1] predicts the first new token
    mode: str
    cached_blocks: int = 0  # context blocks this request did not compute (from a tier, or computed by another)
    computed_blocks: int = 0  # context blocks this request prefilled
    timings_ms: dict[str, float] = field(default_factory=dict)  # blocks / assemble / query phases
    finish_reason: str | None = None  # set by `generate`: "stop" (a stop token) or "length" (max tokens)


def model_dims(config) -> tuple[int, int, int]:
    """(n_layers, kv_heads, head_dim) of a Llama-family config."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return config.num_hidden_layers, kv_heads, head_dim


MIN_ARENA_TOKENS = 2048
PREFILL_GRAPH_BYTES = 256 << 20


def arena_shape(dims: tuple[int, int, int], dtype: torch.dtype, capacity: int, slots: int,
                budget: int) -> tuple[int, int]:
    """(positions per slot, slots) of a decode arena within `budget` bytes. Concurrency first: slots are halved
    in length (not below MIN_ARENA_TOKENS) until `slots` of them fit, and only then become fewer. Seen on the
    H200: the Llama-8B shape's 8192-position slots (1 GiB each) fit 13 times in 10 % of the GPU, so 64 streams
    fell back to the eager batched step; at 2048 positions 64 slots fit."""
    while capacity > MIN_ARENA_TOKENS and slots * BatchDecoder.slot_bytes(dims, capacity, dtype) > budget:
        capacity //= 2
    return capacity, min(slots, budget // BatchDecoder.slot_bytes(dims, capacity, dtype))


def gpu_tier_bytes(configured: int | None, device: torch.device) -> int:
    """The GPU tier's byte budget: a quarter of the device memory free once the weights are in, at least 1 GiB.
    It was 8 GB whatever the GPU: the serving benchmark's 4858 paragraphs are ~16 GB of SmolLM2 block K/V, so
    on a 141 GB H200 the tier churned, every request demoting blocks to the CPU tier and promoting others
    (synchronous copies, under the store's lock: the 64-client run's "lookup" phase took 8.4 ms, 2026-12-04)."""
    if configured is not None:
        return configured
    free, _total = torch.cuda.mem_get_info(device)
    return max(1 * GiB, free // 4)


def pool_bytes(configured: int | None, device: torch.device) -> int:
    """The buffer pool's byte budget. A buffer larger than it is never kept, so each request of that shape may
    get a new address, and its decode and query graphs, keyed by the address, are captured again instead of
    replayed: a 32k-token request of the Llama-8B shape with 256 tokens of decode room is 40960 slots, 5.4 GB."""
    if configured is not None:
        return configured
    if device.type == "cuda":
        return max(4 * GiB, torch.cuda.get_device_properties(device).total_memory // 10)
    return 4 * GiB


class BlockEngine:
    def __init__(self, model: nn.Module, model_identity: str, adapter=None, config: EngineConfig | None = None):
        """`model`: the base model; `adapter`: a `blockattn.adapter.BlockAdapter` loaded onto it, or None."""
        self.config = config or EngineConfig()
        self.base = model
        self.model = adapter.model if adapter is not None else model
        # a PEFT wrapper: block mode = adapter on, full mode = off (`model` may be its base or the wrapper itself)
        self._lora = hasattr(self.model, "peft_config")
        on_cuda = model.get_input_embeddings().weight.device.type == "cuda"
        merge = on_cuda if self.config.merge_adapter is None else self.config.merge_adapter
        # block mode's weights: the PEFT model (adapter toggled per call), or a copy with the LoRA merged in
        self.block_model = copy.deepcopy(self.model).merge_and_unload() if (merge and self._lora) else self.model
        self.merged = self.block_model is not self.model
        # full mode's model: with a merged copy for block mode, a plain view of the base weights (no LoRA layers,
        # no PEFT wrapper, no adapter toggling in the hot path: what block mode costs, full mode costs too)
        # (a fully fine-tuned student is a model of its own: full mode stays on the base)
        self.full_model = plain_view(self.model) if self.merged else (self.model if self._lora else model)
        # norms, rotary, SwiGLU as compiled kernels in this engine's forwards (`fusedops.enabled` in `_mode`)
        self.fused_ops = on_cuda if self.config.fused_ops is None else self.config.fused_ops
        if self.fused_ops:
            for tree in {id(m): m for m in (model, self.model, self.block_model, self.full_model)}.values():
                fusedops.install(tree)
        self.sinks = adapter.sinks if adapter is not None else None
        self.n_sinks = adapter.sinks_per_block if adapter is not None else 0
        self.n_shared = adapter.shared_sink if adapter is not None else 0
        weight = model.get_input_embeddings().weight
        self.device, self.dtype = weight.device, weight.dtype
        staticops.probe_fp32_scores(self.device)
        flashbuffer.probe_flash_varlen(self.device)
        self.vocab_size = weight.shape[0]
        self.dims = model_dims(model.config)
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self.limits = EngineLimits(self.vocab_size, self.max_positions, self.n_sinks, self.n_shared)
        self.keys = KeySpace(model=model_identity, adapter=adapter.identity if adapter is not None else "none",
                             dtype=str(self.dtype), sinks_per_block=self.n_sinks, shared_sink=self.n_shared)
        tiers = []
        if on_cuda:
            tiers.append(MemoryTier("gpu", self.device, gpu_tier_bytes(self.config.gpu_cache_bytes, self.device)))
        tiers.append(MemoryTier("cpu", "cpu", self.config.cpu_cache_bytes))
        disk = DiskTier(self.config.cache_dir, self.config.cache_dir_max_bytes) if self.config.cache_dir else None
        remote = RedisTier(self.config.kv_store, self.config.kv_store_bytes) if self.config.kv_store else None
        self.store = BlockStore(tiers, disk, remote)
        compiled = on_cuda if self.config.compile_rotation is None else self.config.compile_rotation
        self.placer = BlockPlacer(RopeSpec.from_model(model), compiled, self.config.fused_assemble)
        query_graphs = on_cuda if self.config.cuda_graphs is None else self.config.cuda_graphs
        heads = model.config.num_attention_heads
        self.graphs = None
        if query_graphs:
            given = self.config.query_flash_from
            self.graphs = QueryGraphs(use_graphs=on_cuda, query_heads=heads,
                                      plan=AttentionPlan(given) if given is not None else None,
                                      time_graphs=self.config.time_query_graphs)
            if on_cuda and given is None:  # where flash starts and how it chunks, timed on this GPU
                self.graphs.plan, self.graphs.calibration = calibrate_attention(
                    heads, self.dims[1], self.dims[2], self.dtype, self.device, self.graphs.plan.flash_from)
        # a graph's K/V output stays allocated with it: at most PREFILL_GRAPH_BYTES each (SmolLM2: ~11k padded
        # tokens, the misses of a whole 8k-token request; Llama-8B: 2k)
        n_layers, kv_heads, head_dim = self.dims
        per_token = n_layers * 2 * kv_heads * head_dim * weight.element_size()
        graph_tokens = max(512, PREFILL_GRAPH_BYTES // per_token)
        self.prefill_graphs = PrefillGraphs(on_cuda, graph_tokens, max_graphs=16) if query_graphs else None
        static = on_cuda if self.config.decode_graphs is None else self.config.decode_graphs
        self.decode_graphs = (DecodeGraphs(use_graphs=on_cuda, compile_step=self.config.compile_decode)
                              if static else None)
        self.pool = BufferPool(pool_bytes(self.config.buffer_pool_bytes, self.device)) if static else None
        self.batch_decoder = self._batch_decoder(on_cuda)
        self._lock = threading.RLock()

    def _batch_decoder(self, on_cuda: bool) -> BatchDecoder | None:
        cfg = self.config
        if not (on_cuda if cfg.batch_graphs is None else cfg.batch_graphs):
            return None
        capacity = cfg.decode_arena_tokens if self.max_positions is None else min(cfg.decode_arena_tokens,
                                                                                  self.max_positions)
        budget = cfg.decode_arena_bytes
        if budget is None:
            budget = int(torch.cuda.get_device_properties(self.device).total_memory * 0.15) if on_cuda else 1 * GiB
        capacity, slots = arena_shape(self.dims, self.dtype, capacity, cfg.decode_arena_slots, budget)
        return BatchDecoder(self.dims, self.dtype, self.device, capacity, slots, use_graphs=on_cuda,
                            compile_step=cfg.compile_decode) if slots else None

    # ---------------------------------------------------------------- checks (`limits.EngineLimits`)
    def check_tokens(self, tokens: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
        return self.limits.check_tokens(tokens, what)

    def positions_needed(self, blocks: Sequence[Sequence[int]], query: Sequence[int], mode: str) -> int:
        return self.limits.positions_needed(blocks, query, mode)

    def check_fits(self, blocks: Sequence[Sequence[int]], query: Sequence[int], mode: str, max_new_tokens: int) -> None:
        self.limits.check_fits(blocks, query, mode, max_new_tokens)

    def _adapter_state(self, mode: str):
        return self.model.disable_adapter() if (mode == "full" and self._lora) else nullcontext()

    def _model_for(self, mode: str) -> nn.Module:
        return self.block_model if mode == "block" else self.full_model

    def _mode(self, mode: str):
        """Everything a forward in `mode` runs under: the adapter state and the SDPA backends (with a merged
        adapter neither mode toggles anything: each has its own plain model)."""
        return _All(nullcontext() if self.merged else self._adapter_state(mode), sdpa_backends(self.device),
                    fusedops.enabled(self.fused_ops))

    # ---------------------------------------------------------------- blocks
    def fetch_blocks(self, blocks: list[np.ndarray], timings_ms: dict[str, float] | None = None
                     ) -> tuple[list[torch.Tensor], torch.Tensor | None, int, int]:
        """K/V of each block (cache or computed) and of the shared sink (None without one).

        Returns (entries in `blocks` order, shared entry, cached count, computed count). `timings_ms`, when
        given, receives "keys" (hashing the blocks' content) and "lookup" (asking the cache tiers), in ms."""
        entries, shared, computed_keys = self._fetch(blocks, timings_ms)
        return entries, shared, len(blocks) - len(computed_keys), len(computed_keys)

    def _fetch(self, blocks: list[np.ndarray], timings_ms: dict[str, float] | None = None
               ) -> tuple[list[torch.Tensor], torch.Tensor | None, set[str]]:
        """`fetch_blocks`, with the keys of the context blocks this call computed (not the shared sink's)."""
        started = time.perf_counter()
        block_keys = [self.keys.block(b) for b in blocks]
        shared_key = self.keys.shared() if self.n_shared else None
        hashed = time.perf_counter()
        lookup = self.store.lookup(block_keys + ([shared_key] if shared_key else []))
        if timings_ms is not None:
            timings_ms.update(keys=(hashed - started) * 1e3, lookup=(time.perf_counter() - hashed) * 1e3)
        found = dict(lookup.found)
        if lookup.claimed:
            tokens_of = dict(zip(block_keys, blocks))
            try:
                computed = self._compute(lookup.claimed, tokens_of, shared_key)
            except BaseException as exc:
                self.store.fail(lookup.claimed, exc)
                raise
            for key, entry in zip(lookup.claimed, computed):
                found[key] = self.store.publish(key, entry)
        for key, future in lookup.waiting.items():
            found[key] = future.result()
        return ([found[k] for k in block_keys], found[shared_key] if shared_key else None,
                set(lookup.claimed) - {shared_key})

    @property
    def packs_blocks(self) -> bool:
        """Whether missing blocks are prefilled as one packed sequence (CUDA, bf16/fp16: `packedprefill`), where
        more blocks in one prefill cost no padding; elsewhere they are padded batches, each padded to its longest."""
        return packing_applies(self.block_model.get_input_embeddings().weight)

    @torch.no_grad()
    def prefetch(self, requests: Sequence[tuple[Sequence[Sequence[int]], Sequence[int], str, int]]) -> list[int]:
        """The missing context blocks of several requests about to be prefilled, computed together in one batched
        prefill and stored, so that each request's own `prefill` then finds all its blocks cached.

        Why: a request's misses are a packed prefill of their own, bound by launching kernels, not by arithmetic
        (a serving-shaped SmolLM2 profile on an H200: 3.7 of a request's 8.9 ms of prefill,
        reports/profile_serve_prefill_h200.json), so the misses of requests admitted together should
        cost little more than one request's. Measured, it did not pay: on an H100 at 64 clients (SmolLM2, ~8k-token
        RAG requests, block mode, ~95 % hits) two grouped runs served 65.8 and 68.6 requests/s against 79.4
        without grouping (reports/bench_serve_h100.json, bench_serve_ab_on2_h100.json,
        bench_serve_nogroup_h100.json), so servers leave it off unless asked (`serve --group-prefill`).

        `requests`: (blocks, query, mode, max_new_tokens) as `prefill` takes them. Returns, per request, how
        many of the blocks computed here it was the first to need (in order), so that its usage can count them
        as computed, not cached. A request `prefill` would refuse (bad tokens, too long) or in full mode is
        skipped: its own prefill raises or runs as before."""
        wanted: dict[str, tuple[int, np.ndarray]] = {}  # block key → (first request needing it, tokens)
        for i, (blocks, query, mode, max_new_tokens) in enumerate(requests):
            if mode != "block":
                continue
            try:
                checked, _query = self._checked(blocks, query, mode, max_new_tokens)
            except UserError:
                continue
            for block in checked:
                wanted.setdefault(self.keys.block(block), (i, block))
        counts = [0] * len(requests)
        if wanted:
            owners = {key: i for key, (i, _block) in wanted.items()}
            _entries, _shared, computed = self._fetch([block for _i, block in wanted.values()])
            for key in computed:
                counts[owners[key]] += 1
        return counts

    @torch.no_grad()
    def _compute(self, keys: list[str], tokens_of: dict[str, np.ndarray], shared_key: str | None) -> list[torch.Tensor]:
        block_keys = [k for k in keys if k != shared_key]
        with self._lock, self._mode("block"):
            entries = dict(zip(block_keys, prefill_blocks(
                self.block_model, [tokens_of[k] for k in block_keys], self.sinks, self.n_sinks, self.n_shared,
                self.config.max_batch_tokens, self.prefill_graphs)))
            if shared_key in keys:
                shared = prefill_shared_sink(self.block_model, self.sinks)
                layers = [torch.stack((k[0], v[0])) for k, v in zip(shared.keys, shared.values)]  # (2, H_kv, s, D)
                entries[shared_key] = torch.stack(layers)  # (n_layers, 2, H_kv, s, D)
        return [entries[k] for k in keys]

    # ---------------------------------------------------------------- prefill / decode
    def _checked(self, blocks: Sequence[Sequence[int]], query: Sequence[int], mode: str,
                 max_new_tokens: int) -> tuple[list[np.ndarray], np.ndarray]:
        """A request's (context blocks, query) checked (tokens, mode, fit: UserError otherwise) as int64 arrays;
        an empty block without sinks holds nothing and is dropped."""
        if mode not in MODES:
            raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        blocks = [self.check_tokens(b, f"block {i}") for i, b in enumerate(blocks)]
        query = self.check_tokens(query, "query")
        if not len(query):
            raise UserError("the query block is empty")
        self.check_fits(blocks, query, mode, max_new_tokens)
        return [b for b in blocks if len(b) or self.n_sinks], query

    @torch.no_grad()
    def prefill(self, blocks: Sequence[Sequence[int]], query: Sequence[int], mode: str = "block",
                max_new_tokens: int = 0, keep_logits: int = 1, sync_timings: bool = False) -> Prefilled:
        """Prefill context `blocks` and the `query` block; room is reserved for `max_new_tokens`.

        `keep_logits`: how many final prompt positions to return logits for (tests compare them all).
        `sync_timings`: synchronise the device between phases so `timings_ms` splits device time (benchmarks).
        `timings_ms` (ms): validate (checking the tokens), blocks (all of fetching the context blocks' K/V: its
        parts keys and lookup, then computing the misses), assemble (placing them), query (the query forward)."""
        clock = _PhaseClock(self.device, sync_timings)
        blocks, query = self._checked(blocks, query, mode, max_new_tokens)
        if mode == "full":
            blocks, query = [], np.concatenate([*blocks, query])
        clock.lap("validate")
        fetch_ms: dict[str, float] = {}
        entries, shared, cached, computed = self.fetch_blocks(blocks, fetch_ms) if blocks else ([], None, 0, 0)
        clock.lap("blocks")
        clock.laps.update(fetch_ms)
        parts: list[tuple[torch.Tensor, int, int]] = []
        if shared is not None:
            parts.append((shared, 0, 0))
        offset = self.n_shared
        for entry in entries:
            parts.append((entry, self.n_shared, offset))
            offset += entry.shape[3]
        n_layers, kv_heads, head_dim = self.dims
        with self._lock, self._mode(mode):
            capacity = offset + len(query) + max_new_tokens
            if self.pool is not None:  # bucketed, so that buffers (and their decode graphs) recur
                capacity = bucket_capacity(capacity)
            kv = SequenceKV(n_layers, kv_heads, head_dim, capacity, self.dtype, self.device, pool=self.pool)
            # with a query graph for this shape: the buffer its graphs read, lent as this request's own when no
            # other request holds it; else the blocks go into its staging scratch, copied out after the query
            staged = None
            if self.graphs is not None:
                lent = self.graphs.lend(kv, offset, len(query), keep_logits, mode)
                if lent is not None:
                    kv = lent
                else:
                    staged = self.graphs.staging(kv, offset, len(query), keep_logits, mode)
            target = kv if staged is None else staged
            self.placer.place(target, parts)
            clock.lap("assemble")
            logits = self._forward(target, query, keep_logits, mode)
            if staged is not None:
                kv.copy_from(staged)
            clock.lap("query")
        return Prefilled(kv=kv, logits=logits, mode=mode, cached_blocks=cached, computed_blocks=computed,
                         timings_ms=clock.laps)

    def _forward(self, kv: SequenceKV, tokens: np.ndarray, keep: int, mode: str) -> torch.Tensor:
        """Run `tokens` at the next positions of `kv`; logits (keep, V) of the last `keep` of them."""
        if self.graphs is not None and len(tokens) > 1:  # one token: the decode step's graphs (`decodegraph`)
            model = self._model_for(mode)

            def call(ids, positions, cache, attention_fn, keep_index):
                return model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True,
                             logits_to_keep=keep_index, attention_fn=attention_fn).logits[0]

            plain = lambda: self._plain_forward(kv, tokens, keep, mode)  # noqa: E731
            return self.graphs.run(call, kv, tokens, keep, mode, plain)
        return self._plain_forward(kv, tokens, keep, mode)

    def _plain_forward(self, kv: SequenceKV, tokens: np.ndarray, keep: int, mode: str) -> torch.Tensor:
        start = kv.length
        ids = to_device(torch.from_numpy(tokens), self.device).unsqueeze(0)  # (1, T), no host stall
        positions = torch.arange(start, start + len(tokens), device=self.device).unsqueeze(0)  # (1, T)
        return self._run_model(kv, ids, positions, keep, mode)

    def _run_model(self, kv: SequenceKV, ids: torch.Tensor, positions: torch.Tensor, keep: int,
                   mode: str = "block") -> torch.Tensor:
        out = self._model_for(mode)(input_ids=ids, position_ids=positions, past_key_values=kv, use_cache=True,
                                    logits_to_keep=keep, attention_fn=cached_attention)
        return out.logits[0]

    @torch.no_grad()
    def decode_one_token(self, state: Prefilled, token: int) -> torch.Tensor:
        """Append `token` to the request; the logits (V,) of the token after it."""
        ids = self.check_tokens([token], "token")
        with self._lock, self._mode(state.mode):
            if self.batch_decoder is not None:
                self.batch_decoder.release(state.kv)  # decoded alone now: its own buffer must be current
            if self.decode_graphs is not None:
                model = self._model_for(state.mode)

                def call(ids, positions, cache, attention_fn):
                    return model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True,
                                 logits_to_keep=1, attention_fn=attention_fn).logits[0]

                return self.decode_graphs.step(call, state.kv, int(ids[0]), state.mode)
            return self._forward(state.kv, ids, 1, state.mode)[-1]

    @torch.no_grad()
    def decode_batch(self, states: Sequence[Prefilled], tokens: Sequence[int]) -> torch.Tensor:
        """Append tokens[i] to request states[i], for all at once; the logits (B, V) of the token after each.

        One forward for the whole batch: the weights are read once for B tokens (decode is bound by reading
        them). With a batch decoder (CUDA default) the requests are decoded from its arena as one static,
        graph-replayed step (`batchgraph`); otherwise (or when they do not fit it) each request's attention
        runs over its own buffer. All states must share one mode (the adapter is on for block mode, off for
        full mode)."""
        if not states or len(states) != len(tokens):
            raise ValueError("decode_batch needs one token per state, and at least one state")
        modes = {s.mode for s in states}
        if len(modes) != 1:
            raise ValueError(f"one batch, one mode; got {sorted(modes)}")
        checked = self.check_tokens(list(tokens), "tokens")
        mode = states[0].mode
        kvs = [s.kv for s in states]
        with self._lock, self._mode(mode):
            model = self._model_for(mode)
            if self.batch_decoder is not None and self.batch_decoder.fits(kvs):
                def call(ids, positions, cache, attention_fn):
                    return model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True,
                                 logits_to_keep=1, attention_fn=attention_fn).logits[:, -1]

                return self.batch_decoder.step(call, kvs, checked.tolist(), mode)
            if self.batch_decoder is not None:
                for kv in kvs:
                    self.batch_decoder.release(kv)
            ids = torch.from_numpy(checked).to(self.device).unsqueeze(1)  # (B, 1)
            positions = torch.tensor([[kv.length] for kv in kvs], device=self.device)  # (B, 1)
            out = model(input_ids=ids, position_ids=positions, past_key_values=BatchKV(kvs),
                        use_cache=True, logits_to_keep=1, attention_fn=cached_attention)
        return out.logits[:, -1]

    def generate(self, state: Prefilled, sampling: SamplingParams, max_new_tokens: int,
                 stop_ids: set[int] | frozenset[int] = frozenset()) -> Iterator[int]:
        """New token ids, one at a time. Ends at a stop id (not yielded; finish_reason "stop") or after
        `max_new_tokens` (finish_reason "length"). Closing the generator early stops all work."""
        sampler = Sampler(sampling)
        logits = state.logits[-1]
        for step in range(max_new_tokens):
            token = sampler(logits)
            if token in stop_ids:
                state.finish_reason = "stop"
                return
            yield token
            if step + 1 == max_new_tokens:
                break
            logits = self.decode_one_token(state, token)
        state.finish_reason = "length"

    def info(self) -> dict:
        return {"device": str(self.device), "dtype": str(self.dtype).removeprefix("torch."),
                "adapter": self.keys.adapter, "sinks_per_block": self.n_sinks, "shared_sink": self.n_shared,
                "compiled_rotation": self.placer.compiled,
                "fused_assemble": self.placer.fused, "fused_assemble_error": self.placer.fused_error,
                "cuda_graphs": self.graphs.info() if self.graphs is not None else None,
                "prefill_graphs": self.prefill_graphs.info() if self.prefill_graphs is not None else None,
                "decode_graphs": self.decode_graphs.info() if self.decode_graphs is not None else None,
                "batch_graphs": self.batch_decoder.info() if self.batch_decoder is not None else None,
                "merged_adapter": self.merged, "fp32_scores_bmm": staticops.FP32_SCORES_BMM,
                "fused_ops": fusedops.info() if self.fused_ops else None,
                "compiled_merge_error": flashbuffer.MERGE_ERROR,
                "max_positions": self.max_positions}


def plain_view(peft_model: nn.Module) -> nn.Module:
    """The base model under a PEFT LoRA wrapper, as a plain model that shares the base weights (no copy): the
    module tree is copied with every parameter and buffer kept as is, then the copy's LoRA layers are replaced
    by their base layers. The PEFT model itself is untouched (it still serves whoever holds it)."""
    shared = {id(t): t for t in [*peft_model.parameters(), *peft_model.buffers()]}
    return copy.deepcopy(peft_model, memo=shared).unload()


class _All:
    """Context managers entered as one, in order (a `with` target kept small for the hot path)."""

    def __init__(self, *managers):
        self.managers = managers

    def __enter__(self):
        for manager in self.managers:
            manager.__enter__()

    def __exit__(self, *exc):
        suppress = False
        for manager in reversed(self.managers):
            suppress = bool(manager.__exit__(*exc)) or suppress
        return suppress


class _PhaseClock:
    """Wall-clock laps (ms) between phases; with `sync`, each lap waits for the device first."""

    def __init__(self, device: torch.device, sync: bool):
        self.device, self.sync = device, sync
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        if self.sync and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.laps[name] = (now - self._last) * 1e3
        self._last = now
