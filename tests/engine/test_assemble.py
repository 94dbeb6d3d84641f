"""Placing blocks into a KV buffer: keys re-rotated by each block's own delta (in one pass), values copied;
the buffer grows in place as HF's attention layers append."""

import pytest
import torch

from blockattn.attention import RopeSpec, rerotate_keys
from blockattn.engine.assemble import BlockPlacer
from blockattn.engine.kvbuffer import SequenceKV

ROPE = RopeSpec(1.0 / (10000 ** (torch.arange(0, 16, 2).float() / 16)), 16)


def entry(length, dtype=torch.float32, seed=0):
    return torch.randn(2, 2, 3, length, 16, generator=torch.Generator().manual_seed(seed)).to(dtype)  # (L, K/V, H, T, D)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_each_block_is_moved_by_its_own_delta(dtype):
    blocks = [entry(n, dtype, seed=n) for n in (5, 9, 3)]
    kv = SequenceKV(2, 3, 16, 40, dtype, "cpu")
    parts, offset = [], 2
    parts.append((entry(2, dtype, seed=99), 0, 0))  # a shared-sink-like prefix, already at its place
    for block in blocks:
        parts.append((block, 2, offset))  # computed at positions 2.. (after a 2-token shared sink)
        offset += block.shape[3]
    assert BlockPlacer(ROPE, compiled=False).place(kv, parts) == offset == kv.length
    for block, (_, start, at) in zip(blocks, parts[1:]):
        n = block.shape[3]
        expected = rerotate_keys(block[:, 0], at - start, ROPE)
        tol = 0 if dtype == torch.float32 else 1e-2
        assert (kv.buffer[:, 0, :, at:at + n].float() - expected.float()).abs().max() <= max(tol, 1e-6)
        assert torch.equal(kv.buffer[:, 1, :, at:at + n], block[:, 1])


def test_offsets_must_tile_and_fit():
    placer = BlockPlacer(ROPE, compiled=False)
    with pytest.raises(ValueError, match="tile"):
        placer.place(SequenceKV(2, 3, 16, 40, torch.float32, "cpu"), [(entry(4), 0, 0), (entry(4), 0, 5)])
    with pytest.raises(ValueError, match="capacity"):
        placer.place(SequenceKV(2, 3, 16, 6, torch.float32, "cpu"), [(entry(4), 0, 0), (entry(4), 0, 4)])


def test_update_appends_in_place_and_refuses_overflow():
    kv = SequenceKV(1, 2, 4, 5, torch.float32, "cpu")
    keys, values = kv.update(torch.ones(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), 0)
    assert keys.shape == (1, 2, 3, 4) and keys.data_ptr() == kv.buffer.data_ptr()  # a view: nothing copied
    kv.update(torch.ones(1, 2, 2, 4), torch.zeros(1, 2, 2, 4), 0)
    with pytest.raises(ValueError, match="full"):
        kv.update(torch.ones(1, 2, 1, 4), torch.zeros(1, 2, 1, 4), 0)
