"""Block layout: which token belongs to which block, what each block may see, and where it sits.

A sequence is laid out as

    [shared sink S] [S' k₁ B1] [S' k₂ B2] ... [Q]        (S, S' and the k sinks are optional)

and every token gets a *kind*:

    PAD      padding in a batch; attends only to itself, seen by nobody
    CONTEXT  a context block, its k per-block sink tokens included: attends causally inside its own block
    QUERY    a query block: attends causally to every earlier CONTEXT/SHARED token and to its own block,
             never to an earlier QUERY block; no later block attends to it
    SHARED   the shared sink S at position 0: seen by query blocks (and itself), stored once in the cache
    LOCAL    the copy S' of the shared sink in front of each context block: seen by its own block only

Why the shared sink needs local copies: a context block must not depend on its offset, or its KV could not
be reused at any position. A block that saw S at position 0 would see it at a distance that grows with the
block's offset; seeing its own copy S' right in front of it, it sees the sink at the same distance wherever
it sits. The engine computes [S' B] at position 0, keeps B's KV, and stores S once: exactly this forward.

The final block is always a query block. With block dropout (distillation) some earlier blocks are query
blocks too. Positions are global offsets, the positions the tokens will have in the assembled cache
(0..N-1 without a shared sink; local copies S' reuse the positions just before their block): because RoPE is
relative, a block computed alone at position 0 and re-rotated by its offset is the same computation
(see `rope.rerotate_keys`).

Example, 2 context blocks of 3 tokens and a query of 2 (x = attends):

    q\\kv  a a a b b b Q Q
    a      x . . . . . . .
    a      x x . . . . . .
    a      x x x . . . . .
    b      . . . x . . . .
    b      . . . x x . . .
    b      . . . x x x . .
    Q      x x x x x x x .
    Q      x x x x x x x x
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

PAD, SHARED, CONTEXT, QUERY, LOCAL = 0, 1, 2, 3, 4

# Block id of padding and of the shared sink prefix; real blocks are numbered 0, 1, 2, ...
PAD_BLOCK = -1
SHARED_BLOCK = -2


@dataclass(frozen=True)
class BlockSpec:
    """One block of a sequence, before sinks are added."""

    length: int  # content tokens in the block (sinks excluded)
    is_query: bool = False  # a query block sees every earlier context block


@dataclass
class BlockLayout:
    """Per-token block structure of a batch of sequences, as tensors of shape (B, N).

    Build it with `BlockLayout.build` (one sequence) or `BlockLayout.batch` (several, right-padded).
    Masks are built from it by `blockattn.attention.masks` and cached here per device and backend, so a
    forward pass builds its mask once and every layer reuses it.
    """

    block_ids: torch.Tensor  # (B, N) long: block index, PAD_BLOCK for padding, SHARED_BLOCK for the shared sink
    kinds: torch.Tensor  # (B, N) long: PAD / SHARED / CONTEXT / QUERY
    position_ids: torch.Tensor  # (B, N) long: global RoPE positions (= the positions in the assembled cache)
    sink_index: torch.Tensor  # (B, N) long: which per-block sink a token is (-1: not a per-block sink)
    shared_sink_index: torch.Tensor  # (B, N) long: which shared-sink token a token is (-1: not one)
    lengths: list[int]  # true (unpadded) length of each sequence
    # teacher=True gives the full-attention view of the same visible text (distillation targets)
    teacher: bool = False
    _mask_cache: dict = field(default_factory=dict, repr=False, compare=False)

    # ---------------------------------------------------------------- construction
    @staticmethod
    def build(blocks: Sequence[BlockSpec], sinks_per_block: int = 0, shared_sink: int = 0) -> "BlockLayout":
        """Layout of one sequence. The last block must be a query block; context blocks get
        `sinks_per_block` sink tokens in front of them, query blocks get none (at inference the final
        query block has none either). `shared_sink` tokens go at position 0 (seen by query blocks) and,
        as local copies, in front of every context block (seen by that block)."""
        if not blocks:
            raise ValueError("a layout needs at least one block (the query block)")
        if not blocks[-1].is_query:
            raise ValueError("the final block must be a query block")
        if sinks_per_block < 0 or shared_sink < 0:
            raise ValueError("sink counts must be >= 0")
        block_ids: list[int] = [SHARED_BLOCK] * shared_sink
        kinds: list[int] = [SHARED] * shared_sink
        sink_index: list[int] = [-1] * shared_sink
        shared_index: list[int] = list(range(shared_sink))
        positions: list[int] = list(range(shared_sink))
        start = shared_sink  # position of the next block's first (sink or text) token
        for i, spec in enumerate(blocks):
            if spec.length < 0:
                raise ValueError(f"block {i} has negative length")
            n_local = 0 if spec.is_query else shared_sink
            n_sinks = 0 if spec.is_query else sinks_per_block
            kind = QUERY if spec.is_query else CONTEXT
            block_ids += [i] * (n_local + n_sinks + spec.length)
            kinds += [LOCAL] * n_local + [kind] * (n_sinks + spec.length)
            sink_index += [-1] * n_local + list(range(n_sinks)) + [-1] * spec.length
            shared_index += list(range(n_local)) + [-1] * (n_sinks + spec.length)
            # a local sink copy sits just before its block, on positions it shares with the previous
            # block's tail (they never see each other): the block sees it exactly as the cached [S' B] did
            positions += list(range(start - n_local, start + n_sinks + spec.length))
            start += n_sinks + spec.length

        def row(values: list[int]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.long).unsqueeze(0)  # (1, N)

        return BlockLayout(
            block_ids=row(block_ids),
            kinds=row(kinds),
            position_ids=row(positions),
            sink_index=row(sink_index),
            shared_sink_index=row(shared_index),
            lengths=[len(block_ids)],
        )

    @staticmethod
    def batch(layouts: Sequence["BlockLayout"], width: int | None = None) -> "BlockLayout":
        """Right-pad single-sequence layouts into one batch, `width` tokens wide (default: the longest);
        a fixed width keeps shapes static across batches (compiled kernels, Flex masks)."""
        if not layouts:
            raise ValueError("empty batch")
        longest = max(lay.block_ids.shape[1] for lay in layouts)
        if width is not None and width < longest:
            raise ValueError(f"width {width} is shorter than the longest sequence ({longest})")
        n = longest if width is None else width

        def pad(t: torch.Tensor, value: int) -> torch.Tensor:
            return torch.nn.functional.pad(t, (0, n - t.shape[1]), value=value)

        return BlockLayout(
            block_ids=torch.cat([pad(lay.block_ids, PAD_BLOCK) for lay in layouts]),
            kinds=torch.cat([pad(lay.kinds, PAD) for lay in layouts]),
            position_ids=torch.cat([pad(lay.position_ids, 0) for lay in layouts]),
            sink_index=torch.cat([pad(lay.sink_index, -1) for lay in layouts]),
            shared_sink_index=torch.cat([pad(lay.shared_sink_index, -1) for lay in layouts]),
            lengths=[ln for lay in layouts for ln in lay.lengths],
        )

    def as_teacher(self) -> "BlockLayout":
        """The same layout seen with full attention among context blocks (the distillation teacher):
        every token sees all earlier SHARED/CONTEXT tokens and its own block, never an earlier query block."""
        return BlockLayout(self.block_ids, self.kinds, self.position_ids, self.sink_index,
                           self.shared_sink_index, list(self.lengths), teacher=True)

    # ---------------------------------------------------------------- views
    @property
    def batch_size(self) -> int:
        return self.block_ids.shape[0]

    @property
    def seq_len(self) -> int:
        return self.block_ids.shape[1]

    @property
    def has_sinks(self) -> bool:
        return bool((self.sink_index >= 0).any() or (self.shared_sink_index >= 0).any())

    def to(self, device: torch.device | str) -> "BlockLayout":
        """The layout on `device`; itself when already there, so masks cached on it are kept."""
        if self.block_ids.device == torch.device(device):
            return self
        return BlockLayout(self.block_ids.to(device), self.kinds.to(device), self.position_ids.to(device),
                           self.sink_index.to(device), self.shared_sink_index.to(device), list(self.lengths),
                           teacher=self.teacher)

    def content_mask(self) -> torch.Tensor:
        """(B, N) bool: real text tokens (not padding, not sink tokens)."""
        return (self.kinds != PAD) & (self.sink_index < 0) & (self.shared_sink_index < 0)

    def query_token_mask(self) -> torch.Tensor:
        """(B, N) bool: tokens of query blocks."""
        return self.kinds == QUERY


def pack_sequence(blocks: Sequence[Sequence[int]], is_query: Sequence[bool] | None = None,
                  sinks_per_block: int = 0, shared_sink: int = 0,
                  placeholder_id: int = 0) -> tuple[torch.Tensor, BlockLayout]:
    """Token ids of blocks → (input_ids (1, N), layout). By default only the last block is a query block.

    Sink positions hold `placeholder_id`; their embeddings are replaced by `BlockSinks.fill`."""
    flags = list(is_query) if is_query is not None else [False] * (len(blocks) - 1) + [True]
    if len(flags) != len(blocks):
        raise ValueError("is_query must have one flag per block")
    layout = BlockLayout.build([BlockSpec(len(b), q) for b, q in zip(blocks, flags)],
                               sinks_per_block=sinks_per_block, shared_sink=shared_sink)
    ids: list[int] = [placeholder_id] * shared_sink
    for block, q in zip(blocks, flags):
        ids += [placeholder_id] * (0 if q else shared_sink + sinks_per_block) + list(block)
    return torch.tensor(ids, dtype=torch.long).unsqueeze(0), layout


def pack_batch(sequences: Sequence[tuple[torch.Tensor, BlockLayout]], pad_id: int = 0,
               width: int | None = None) -> tuple[torch.Tensor, BlockLayout]:
    """Right-pad several `pack_sequence` results into one batch: (input_ids (B, N), layout), N = `width`
    or the longest sequence."""
    layout = BlockLayout.batch([lay for _, lay in sequences], width=width)
    n = layout.seq_len
    ids = torch.cat([torch.nn.functional.pad(i, (0, n - i.shape[1]), value=pad_id) for i, _ in sequences])
    return ids, layout
