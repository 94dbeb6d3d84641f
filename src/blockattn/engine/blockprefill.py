"""Prefilling missing blocks, many at once: each block alone, at its native positions, in padded batches.

Every block is the sequence

    [S' (shared-sink copy, s tokens)] [k sink tokens] [block tokens]     at positions 0, 1, ...

under plain causal attention -- exactly what a context block sees in block mode (`attention.layout`), and the
same K/V as `attention.kv.prefill_block` computes one block at a time (the tests hold the two equal). Blocks
are right-padded into a batch: padding comes after a block's tokens, so causal attention keeps it invisible to
them. S' is dropped from the result (the shared sink is stored once, separately).

On CUDA, small batches run from CUDA graphs (`PrefillGraphs`): an eager forward of SmolLM2 launches ~1300
kernels, ~20 ms of host time whatever the batch holds (measured on the H200, 2026-12-02: 27 ms per request for
its missing blocks in the serving benchmark, more than the full-attention prefill of the whole 8k prompt). The
batch is padded to a bucketed shape (count and length rounded up to powers of two; padding is more right
padding, invisible to every real token), so shapes recur across requests. A shape is captured the second time
it is seen; batches above `max_tokens` padded tokens are bound by arithmetic, not launches, and stay eager.

Where flash's variable-length kernel runs (CUDA, bf16/fp16), the blocks are not padded into batches at all but
laid end to end in one packed sequence, each block a sequence of its own (`packedprefill`): one forward over
their own tokens, graph-replayed per padded total. The padded batches remain for the CPU and fp32.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from blockattn.attention.sinks import BlockSinks
from blockattn.engine.cudagraph import SUPPORTS_CUDA_GRAPHS, GraphCache, upload
from blockattn.engine.packedprefill import Pack, bucket_pow2, groups_by_tokens, packed_forward, packing_applies


def batches_by_tokens(lengths: list[int], max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped longest first so that each batch's padded size (count × longest) stays within
    `max_batch_tokens` (a single longer block forms a batch of its own)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * max(lengths[batches[-1][0]], 1) <= max_batch_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def batches_by_bucket(lengths: list[int], max_batch_tokens: int, least: int = 32) -> list[list[int]]:
    """`batches_by_tokens` within each length bucket (powers of two, at least `least`): a padded graph batch
    pads every block to its bucket, so one long block no longer pads a dozen short ones to its length (the
    serving benchmark's requests mix 32- and 400-token paragraphs)."""
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(bucket_pow2(n, least), []).append(i)
    batches = []
    for members in groups.values():
        batches += [[members[j] for j in batch] for batch in batches_by_tokens([lengths[i] for i in members],
                                                                               max_batch_tokens)]
    return batches


def stack_layers(cache) -> torch.Tensor:
    """A transformers cache → one tensor (n_layers, 2, B, H_kv, N, D)."""
    return torch.stack([torch.stack((layer.keys, layer.values)) for layer in cache.layers])


class PrefillGraphs:
    """Graph-replayed batched block prefills, one graph per (model, sinks, padded count, padded length)."""

    def __init__(self, use_graphs: bool, max_tokens: int = 4096, max_graphs: int = 24, max_seen: int = 256):
        self.use_graphs = use_graphs and SUPPORTS_CUDA_GRAPHS
        self.max_tokens = max_tokens
        self._graphs: GraphCache[tuple] = GraphCache(max_graphs, "block prefill")
        self._seen: dict[tuple, None] = {}
        self.max_seen = max_seen
        self.replays = 0

    @property
    def error(self) -> str | None:
        return self._graphs.error

    def run(self, model: nn.Module, ids: torch.Tensor, prefix_of, n_prefix: int, sinks=None) -> torch.Tensor | None:
        """K/V (n_layers, 2, B', H_kv, n_prefix + L', D) of the padded batch `ids` (B, L) (CPU), its first B
        rows the real blocks; a view of the graph's static output (copy what you keep), or None: run eagerly.
        `sinks`: whose parameters `prefix_of` reads (a graph replays reads of that very object)."""
        if not self.use_graphs or self.error is not None:
            return None
        b, length = ids.shape
        rows, cols = bucket_pow2(b, 1), bucket_pow2(length, 32)
        if rows * (cols + n_prefix) > self.max_tokens:
            return None
        device = model.get_input_embeddings().weight.device
        key = (id(model), id(sinks) if n_prefix else None, n_prefix, rows, cols)

        def capture():
            static_ids = torch.zeros(rows, cols, dtype=torch.long, device=device)
            return self._graphs.capture(key, device, lambda: _forward(model, static_ids, prefix_of()),
                                        lambda graph, kv: (graph, static_ids, kv))

        entry = self._entry(key, capture)
        if entry is None:
            return None
        graph, static_ids, kv = entry
        padded = torch.zeros(rows, cols, dtype=torch.long)
        padded[:b, :length] = ids
        upload(static_ids, padded)
        graph.replay()
        self.replays += 1
        return kv

    def packed(self, model: nn.Module, blocks: list[list[int]], prefix_of, n_prefix: int, sinks=None
               ) -> tuple[torch.Tensor, Pack] | None:
        """`blocks` packed (`packedprefill`), padded to a recurring shape and replayed from its graph: (K/V
        (n_layers, 2, H_kv, N', D), a view of the graph's static output, and the pack saying where each block
        lies), or None: run it eagerly."""
        if not self.use_graphs or self.error is not None:
            return None
        pack = Pack.build(blocks, n_prefix, pad=True)
        if pack.tokens > self.max_tokens:
            return None
        device = model.get_input_embeddings().weight.device
        key = ("packed", id(model), id(sinks) if n_prefix else None, n_prefix, pack.tokens, pack.sequences)

        def capture():
            static = torch.from_numpy(pack.values).to(device)  # the capture's warm-up computes this very pack
            sequences = pack.sequences
            return self._graphs.capture(key, device, lambda: packed_forward(model, static, sequences, prefix_of()),
                                        lambda graph, kv: (graph, static, kv))

        entry = self._entry(key, capture)
        if entry is None:
            return None
        graph, static, kv = entry
        upload(static, torch.from_numpy(pack.values))
        graph.replay()
        self.replays += 1
        return kv, pack

    def _entry(self, key: tuple, capture):
        """The graph entry under `key`: captured (`capture()`) the second time the key is seen, None before
        (one-off shapes never pay for a capture) or when the capture failed."""
        entry = self._graphs.get(key)
        if entry is None:
            if key not in self._seen:
                if len(self._seen) >= self.max_seen:
                    self._seen.clear()
                self._seen[key] = None
                return None
            entry = capture()
        return entry

    def info(self) -> dict:
        return {"graphs": len(self._graphs), "captures": self._graphs.captures, "replays": self.replays,
                "error": self.error}


def _forward(model: nn.Module, ids: torch.Tensor, prefix: torch.Tensor | None) -> torch.Tensor:
    """K/V (n_layers, 2, B, H_kv, N, D) of the batch `ids` (B, L) on the model's device, `prefix` (P, H)
    embeddings (the sinks) in front of every row."""
    embeds = model.get_input_embeddings()(ids)  # (B, L, H)
    if prefix is not None:
        embeds = torch.cat((prefix.unsqueeze(0).expand(ids.shape[0], -1, -1), embeds), dim=1)  # (B, N, H)
    positions = torch.arange(embeds.shape[1], device=ids.device).unsqueeze(0).expand(ids.shape[0], -1)
    result = model(inputs_embeds=embeds, position_ids=positions, use_cache=True, logits_to_keep=1)
    return stack_layers(result.past_key_values)


@torch.no_grad()
def prefill_blocks(model: nn.Module, blocks: list[list[int]], sinks: BlockSinks | None = None, n_sinks: int = 0,
                   n_shared: int = 0, max_batch_tokens: int = 16384,
                   graphs: PrefillGraphs | None = None) -> list[torch.Tensor]:
    """K/V of each block: a list of (n_layers, 2, H_kv, n_sinks + len(block), D) tensors, in `blocks` order,
    at native positions n_shared, n_shared + 1, ..."""
    if (n_sinks or n_shared) and (sinks is None or sinks.n_per_block < n_sinks or sinks.n_shared < n_shared):
        raise ValueError(f"{n_sinks} per-block / {n_shared} shared sink tokens requested but the sinks hold fewer")
    embedding = model.get_input_embeddings()
    device = embedding.weight.device

    def prefix_of() -> torch.Tensor | None:
        """(s + k, H) sink embeddings in front of every block, from the sinks' own parameters: computed inside
        a captured graph, a replay reads them where they live."""
        if not (n_sinks or n_shared):
            return None
        return torch.cat((sinks.shared[:n_shared], sinks.per_block[:n_sinks])).to(embedding.weight.dtype)

    if packing_applies(embedding.weight):
        return _prefill_packed(model, blocks, prefix_of, n_shared, n_sinks, max_batch_tokens, graphs, sinks)
    out: list[torch.Tensor | None] = [None] * len(blocks)
    lengths = [len(b) for b in blocks]
    grouped = graphs is not None and graphs.use_graphs
    for batch in (batches_by_bucket if grouped else batches_by_tokens)(lengths, max_batch_tokens):
        longest = max(len(blocks[i]) for i in batch)
        padded = np.zeros((len(batch), longest), dtype=np.int64)
        for row, i in enumerate(batch):  # blocks: lists or (read-only, shared) int64 arrays
            padded[row, :len(blocks[i])] = blocks[i]
        ids = torch.from_numpy(padded)
        kv = graphs.run(model, ids, prefix_of, n_shared + n_sinks, sinks) if graphs is not None else None
        if kv is None:
            host = ids.pin_memory() if device.type == "cuda" else ids  # no host stall (`cudagraph.upload`)
            kv = _forward(model, host.to(device, non_blocking=True), prefix_of())  # (n_layers, 2, B, H_kv, N, D)
        for row, i in enumerate(batch):
            # always a copy (never `.contiguous()`, which hands back a view when the slice happens to be
            # contiguous): a graph's output is overwritten by its next replay
            out[i] = kv[:, :, row, :, n_shared:n_shared + n_sinks + len(blocks[i])].clone(
                memory_format=torch.contiguous_format)
    return out


def _prefill_packed(model: nn.Module, blocks: list[list[int]], prefix_of, n_shared: int, n_sinks: int,
                    max_tokens: int, graphs: PrefillGraphs | None, sinks) -> list[torch.Tensor]:
    """`prefill_blocks` as packed forwards (`packedprefill`): one per `max_tokens` of blocks."""
    n_prefix = n_shared + n_sinks
    device = model.get_input_embeddings().weight.device
    out: list[torch.Tensor | None] = [None] * len(blocks)
    for group in groups_by_tokens([n_prefix + len(b) for b in blocks], max_tokens):
        members = [blocks[i] for i in group]
        replayed = graphs.packed(model, members, prefix_of, n_prefix, sinks) if graphs is not None else None
        if replayed is None:
            pack = Pack.build(members, n_prefix, pad=False)
            host = torch.from_numpy(pack.values)
            values = host.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else host
            kv = packed_forward(model, values, pack.sequences, prefix_of())
        else:
            kv, pack = replayed
        for i, start, size in zip(group, pack.starts, pack.sizes):
            # a copy: a graph's output is overwritten by its next replay
            out[i] = kv[:, :, :, start + n_shared:start + size].clone(memory_format=torch.contiguous_format)
    return out
