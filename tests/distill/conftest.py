"""Tiny run configs for the trainer tests (random 2-layer model, synthetic tokens, seconds per run)."""

import pytest
import torch

from blockattn.distill.config import load_config

TINY = [
    "model.name=tiny", "model.tiny_init_std=0.2", "data.source=synthetic", "data.synthetic_texts=24",
    "data.synthetic_tokens=300", "data.block_tokens=24", "data.seq_len=128", "data.batch_size=4",
    "data.block_dropout=0.3", "adapter.lora_rank=4", "adapter.sinks_per_block=2", "optim.lr=1e-2",
    "optim.sink_lr=5e-2", "optim.warmup_steps=2", "train.device=cpu", "train.log_every=2",
    "train.checkpoint_every=0", "train.steps=6", "train.cpu_threads=1",
]


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """Tiny models run several times faster on one intra-op thread (less synchronisation, no contention)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_config():
    """tiny_config(*overrides) -> RunConfig."""
    return lambda *overrides: load_config(None, TINY + list(overrides))


@pytest.fixture
def semanticseg(tmp_path):
    """A miniature SemanticSeg directory: 6 train, 3 validation, 8 test texts of 60 lines, medium cuts every
    10 lines."""
    from blockattn.data.parquet import split_file, write_rows

    def rows(split, n):
        out = []
        for i in range(n):
            lines = [f"{split} text {i} line {j} says something about item {j * 7}.\n" for j in range(60)]
            text = "".join(lines)
            cuts = [sum(len(line) for line in lines[:j]) for j in range(10, 60, 10)]
            out.append({"id": f"{split}/{i}", "category": "news", "source": "t", "kind": "natural", "text": text,
                        "n_tokens": len(text), "boundaries": {"coarse": cuts[::2], "medium": cuts, "fine": cuts},
                        "markup": False, "documents": [f"d{i}"]})
        return out

    for split, n in (("train", 6), ("validation", 3), ("test", 8)):
        write_rows(split_file(tmp_path, split, "news"), rows(split, n))
    return tmp_path
