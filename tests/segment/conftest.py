"""Fixtures for the segmenter tests: a small SemanticSeg-shaped dataset and a random-weight learned
segmenter (no training, no MiniLM), so everything here runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest

from blockattn.segment.request import LEVELS

_TOPICS = {
    "bees": "bee hive honey queen worker drone pollen nectar comb colony swarm flower wax larva",
    "ships": "ship sail harbour captain crew anchor mast deck voyage storm wave port cargo hull",
    "stars": "star galaxy planet orbit telescope light comet nebula gravity moon sun cosmos dust",
    "trains": "train rail station engine track carriage signal platform ticket steam journey line",
    "cooking": "bread oven flour butter salt pan recipe dough sugar kitchen bake knife spoon",
}


def _sentence(rng: np.random.Generator, words: list[str]) -> str:
    body = " ".join(rng.choice(words, size=int(rng.integers(6, 14))))
    return body[0].upper() + body[1:] + "."


def make_text(rng: np.random.Generator, n_sections: int = 4, markup: bool = False) -> tuple[str, dict]:
    """A text of topical sections (coarse) made of paragraphs (fine), with gold offsets."""
    topics = list(_TOPICS)
    text, coarse, fine = "", [], []
    for s in range(n_sections):
        words = _TOPICS[topics[(s + int(rng.integers(len(topics)))) % len(topics)]].split()
        if s:
            coarse.append(len(text))
            fine.append(len(text))
        if markup:
            text += f"Section {s + 1}\n\n"
        for p in range(int(rng.integers(2, 4))):
            if p:
                fine.append(len(text))
            text += " ".join(_sentence(rng, words) for _ in range(int(rng.integers(2, 5)))) + "\n\n"
    return text, {"coarse": coarse, "medium": coarse, "fine": fine}


def write_dataset(root, n_per_split: dict[str, int], seed: int = 0) -> None:
    from blockattn.data.parquet import split_file, write_rows

    rng = np.random.default_rng(seed)
    for split, n in n_per_split.items():
        for category in ("prose", "notes"):
            rows = []
            for i in range(n):
                text, bounds = make_text(rng, n_sections=int(rng.integers(3, 6)), markup=category == "notes")
                rows.append({"id": f"{split}-{category}-{i}", "category": category, "source": "fixture",
                             "kind": "concat", "text": text, "n_tokens": len(text.split()),
                             "boundaries": bounds, "markup": category == "notes", "documents": []})
            write_rows(split_file(root, split, category), rows)


@pytest.fixture(scope="session")
def sample_text() -> str:
    """Six topical sections of two or three paragraphs each (about 700 tokens)."""
    return make_text(np.random.default_rng(3), n_sections=6)[0]


@pytest.fixture(scope="session")
def semanticseg(tmp_path_factory):
    root = tmp_path_factory.mktemp("semanticseg")
    write_dataset(root, {"train": 6, "validation": 3, "test": 3})
    return root


@pytest.fixture(scope="session")
def random_embeddings():
    from blockattn.segment.learned.embeddings import StaticEmbeddings
    from blockattn.segment.tokens import load_tokenizer

    rng = np.random.default_rng(0)
    table = rng.normal(size=(load_tokenizer().get_vocab_size(), 16)).astype(np.float32)
    return StaticEmbeddings.quantize(table)


@pytest.fixture(scope="session")
def random_segmenter(random_embeddings):
    """A learned segmenter with random (untrained) weights: exercises every code path but quality."""
    import torch

    from blockattn.segment.learned.config import DecodeConfig, TaggerConfig
    from blockattn.segment.learned.features import N_SCALARS
    from blockattn.segment.learned.segmenter import LearnedSegmenter
    from blockattn.segment.learned.tagger import Tagger
    from blockattn.segment.learned.torch_tagger import BoundaryTagger

    torch.manual_seed(0)
    config = TaggerConfig(in_dim=3 * 16 + N_SCALARS, dim=32, layers=2, heads=4, ffn=64, window=32, margin=8)
    weights = {k: v.numpy() for k, v in BoundaryTagger(config).state_dict().items()}
    lengths = {lv: t for lv, t in zip(LEVELS, (200, 80, 30))}
    decoding = DecodeConfig(level_tokens=lengths, level_mean_tokens=dict(lengths))
    return LearnedSegmenter(random_embeddings, Tagger(config, weights), decoding)


@pytest.fixture
def learned_is_random(monkeypatch, random_segmenter):
    """Make method "learned" the random-weight segmenter (the tests must not depend on shipped weights)."""
    from blockattn.segment import methods

    monkeypatch.setitem(methods._INSTANCES, "learned", random_segmenter)
    return random_segmenter
