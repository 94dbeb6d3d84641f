"""Segmenters and the distillation pack (built from a miniature SemanticSeg on disk)."""

import pytest

from blockattn.distill import segmenters
from blockattn.distill.config import load_config
from blockattn.distill.pack import build_pack, load_pack
from blockattn.distill.sources import load_corpus
from blockattn.data.needles import NeedleItem


class CharTokenizer:
    """One token per character: enough to check offsets and sizes without a real vocabulary."""

    name_or_path = "chars"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [3 + ord(c) % 400 for c in text]}


def encode(text):
    return CharTokenizer()(text)["input_ids"]


class TestSegmenters:
    def test_fixed_cuts_every_n_tokens(self):
        assert [len(b) for b in segmenters.fixed_blocks("x" * 25, encode, 10)] == [10, 10, 5]

    def test_gold_blocks_follow_the_cuts_merge_short_and_split_long(self):
        text = "ab" + "c" * 30 + "d" * 50 + "e" * 3
        # cuts at 2 (a 2-token heading), 32 and 82 (a 3-token tail)
        blocks = segmenters.gold_blocks(text, [2, 32, 82], encode, max_tokens=40, min_tokens=5)
        assert [len(b) for b in blocks] == [32, 40, 13]  # heading joined forward; tail joined back; long one split
        assert sum(blocks, []) == encode(text)

    def test_missing_level_is_an_error(self):
        with pytest.raises(ValueError):
            segmenters.segment_text("abc", {"coarse": []}, encode, "fine", 10, 1)

    def test_learned_segmenter_cuts_are_used(self, monkeypatch):
        import blockattn.segment as segment
        from blockattn.segment.blocks import Block

        text = "one.\ntwo.\nthree.\n"
        fake = [Block(0, 5, 5, text[:5]), Block(5, 10, 5, text[5:10]), Block(10, len(text), 7, text[10:])]
        monkeypatch.setattr(segment, "segment_text", lambda *a, **k: fake)
        assert segmenters.segment_text(text, None, encode, "learned", 100, 1) == [encode(b.text) for b in fake]


class TestPack:
    def test_build_save_load_round_trip(self, semanticseg, tmp_path):
        pack = build_pack(semanticseg, CharTokenizer(), segmenter="medium", block_tokens=600, min_block_tokens=8,
                          train_tokens=100_000, heldout_tokens=100_000, needle_counts=(4,), needles_per_count=3,
                          doc_tokens=300)
        assert pack.train.n_texts == 6 and pack.heldout.n_texts == 3
        assert len(pack.train.text_spans(0)) == 6  # 5 medium cuts → 6 blocks
        path = pack.save(tmp_path / "p" / "pack.npz")
        back = load_pack(path)
        assert (back.train.tokens == pack.train.tokens).all() and back.meta == pack.meta
        items = [NeedleItem.from_dict(d) for d in back.needles]
        assert len(items) == 3 and all(it.n_docs == 4 for it in items)

    def test_a_run_config_reads_the_pack(self, semanticseg, tmp_path):
        build_pack(semanticseg, CharTokenizer(), needle_counts=(4,), needles_per_count=1).save(tmp_path / "pack.npz")
        cfg = load_config(None, ["data.source=pack", f"data.path={tmp_path / 'pack.npz'}"])
        assert load_corpus(cfg.data, "heldout", 512, 0).n_texts == 3

    def test_missing_pack_is_a_user_error(self, tmp_path):
        from blockattn.errors import UserError

        with pytest.raises(UserError):
            load_pack(tmp_path / "nope.npz")
