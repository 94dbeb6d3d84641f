"""The disk tier: persistent across instances, verified on read; corrupted entries are dropped and recomputed."""

import pytest
import torch

from blockattn.engine.disk import DiskTier
from blockattn.engine.engine import BlockEngine, EngineConfig
from blockattn.models.tiny import tiny_model

KEY = "ab" + "0" * 62


def test_round_trip_survives_a_new_instance(tmp_path):
    kv = torch.randn(2, 2, 2, 5, 16).bfloat16()
    DiskTier(tmp_path).write(KEY, kv)
    again = DiskTier(tmp_path)
    assert again.stats.entries == 1 and again.stats.bytes > 0
    assert torch.equal(again.read(KEY), kv)
    assert again.stats.hits == 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "bad_header", "empty", "other_key"])
def test_a_corrupted_entry_is_detected_dropped_and_never_used(tmp_path, damage):
    disk = DiskTier(tmp_path)
    kv = torch.randn(2, 2, 2, 5, 16)
    disk.write(KEY, kv)
    path = disk.path(KEY)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-7] ^= 0x40  # inside the tensor bytes: parses fine, fails the checksum
    elif damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(b"not a safetensors file")
    elif damage == "bad_header":  # a right-sized length prefix before a header that is not JSON
        data[8:17] = b"{not json"
    elif damage == "empty":
        data = bytearray()
    path.write_bytes(bytes(data))
    if damage == "other_key":  # a valid entry of another key, stored under this key's name
        other = "cd" + "2" * 62
        disk.write(other, kv)
        disk.path(other).replace(path)
    assert disk.read(KEY) is None
    assert disk.stats.corrupt == 1 and not path.exists()


def test_an_entry_evicted_and_rewritten_during_a_read_is_read_whole(tmp_path, monkeypatch):
    """Another process unlinks the file just after the reader opened it, a third writes the key again: the
    read is served from the descriptor it holds (a hit), nothing is called corrupt and the fresh entry stays.
    (The old read opened the file a second time by name inside safetensors, and under load in CI that second
    open found the file gone and dropped the fresh entry as corrupt.)"""
    import builtins

    from blockattn.engine import disk as disk_module

    disk = DiskTier(tmp_path)
    kv = torch.randn(2, 2, 2, 5, 16)
    disk.write(KEY, kv)
    other = DiskTier(tmp_path)

    def open_then_evicted_and_rewritten(path, *args, **kwargs):
        handle = builtins.open(path, *args, **kwargs)
        disk.path(KEY).unlink()
        other.write(KEY, kv)
        return handle

    monkeypatch.setattr(disk_module, "open", open_then_evicted_and_rewritten, raising=False)
    assert torch.equal(disk.read(KEY), kv)
    monkeypatch.undo()
    assert disk.stats.corrupt == 0 and disk.stats.hits == 1 and disk.path(KEY).exists()


def test_an_entry_evicted_before_the_open_is_a_plain_miss(tmp_path):
    disk = DiskTier(tmp_path)
    disk.write(KEY, torch.randn(2, 2, 2, 5, 16))
    disk.path(KEY).unlink()  # another process's eviction
    assert disk.read(KEY) is None
    assert disk.stats.corrupt == 0 and disk.stats.misses == 1


def test_engine_recomputes_a_corrupted_block_with_identical_output(tmp_path):
    model = tiny_model()
    blocks, query = [[5, 6, 7, 8, 9], [10, 11, 12]], [13, 14]
    first = BlockEngine(model, "tiny", config=EngineConfig(cache_dir=str(tmp_path)))
    expected = first.prefill(blocks, query, keep_logits=2).logits
    restarted = BlockEngine(model, "tiny", config=EngineConfig(cache_dir=str(tmp_path)))
    out = restarted.prefill(blocks, query, keep_logits=2)
    assert out.computed_blocks == 0 and restarted.store.disk.stats.hits == 2
    assert torch.equal(out.logits, expected)
    for path in tmp_path.glob("*/*.safetensors"):  # corrupt every entry
        data = bytearray(path.read_bytes())
        data[-3] ^= 0xFF
        path.write_bytes(bytes(data))
    again = BlockEngine(model, "tiny", config=EngineConfig(cache_dir=str(tmp_path)))
    out = again.prefill(blocks, query, keep_logits=2)
    assert out.computed_blocks == 2 and again.store.disk.stats.corrupt == 2
    assert torch.equal(out.logits, expected)
    assert again.store.disk.stats.writes == 2  # rewritten, verified next time
    verified = BlockEngine(model, "tiny", config=EngineConfig(cache_dir=str(tmp_path)))
    assert verified.prefill(blocks, query).computed_blocks == 0


def test_an_unwritable_directory_is_a_user_error(tmp_path):
    from blockattn.errors import UserError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot create"):
        DiskTier(blocker / "cache")

