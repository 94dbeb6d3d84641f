"""Entry bytes for byte stores: a round trip is exact for every dtype; any damage is rejected, never used."""

import pytest
import torch

from blockattn.engine.entry import BadEntry, pack, unpack

KEY = "ab" + "0" * 62


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_round_trip_is_bit_exact(dtype):
    kv = torch.randn(2, 2, 2, 5, 16).to(dtype)
    back = unpack(KEY, pack(KEY, kv))
    assert back.dtype == dtype and back.shape == kv.shape and torch.equal(back, kv)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "other_key", "empty"])
def test_damaged_bytes_are_rejected(damage):
    data = bytearray(pack(KEY, torch.randn(2, 3, 4)))
    if damage == "flip":
        data[-5] ^= 0x01
    elif damage == "truncate":
        data = data[:-4]
    elif damage == "garbage":
        data = bytearray(b"BKV1\xff\xff\xff\xffnot json")
    elif damage == "other_key":
        data = bytearray(pack("cd" + "1" * 62, torch.randn(2, 3, 4)))
    elif damage == "empty":
        data = bytearray()
    with pytest.raises(BadEntry):
        unpack(KEY, bytes(data))
