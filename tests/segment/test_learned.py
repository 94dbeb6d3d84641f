"""The learned segmenter's machinery, with random weights: twins agree, chunking is exact, modes hold."""

import numpy as np
import pytest
import torch

from blockattn.segment.document import Document
from blockattn.segment.learned.config import DecodeConfig, TaggerConfig
from blockattn.segment.learned.features import N_SCALARS, feature_count, unit_count, unit_features
from blockattn.errors import UserError
from blockattn.segment.learned.segmenter import LearnedSegmenter, combine_weights, load_weights, save_weights
from blockattn.segment.learned.tagger import Tagger, TaggerEnsemble
from blockattn.segment.learned.torch_tagger import BoundaryTagger
from blockattn.segment.request import LEVELS, Request


class TestTaggerTwins:
    def test_numpy_forward_equals_torch(self):
        torch.manual_seed(0)
        config = TaggerConfig(in_dim=20, dim=32, layers=2, heads=4, ffn=48, window=24, margin=4)
        model = BoundaryTagger(config).eval()
        tagger = Tagger(config, {k: v.numpy() for k, v in model.state_dict().items()})
        x = np.random.default_rng(0).normal(size=(3, 24, 20)).astype(np.float32)
        expected = model(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(tagger._forward(x), expected, atol=1e-5)

    def test_windowed_logits_equal_one_window_when_the_sequence_fits(self):
        torch.manual_seed(1)
        config = TaggerConfig(in_dim=8, dim=16, layers=1, heads=2, ffn=16, window=64, margin=8)
        tagger = Tagger(config, {k: v.numpy() for k, v in BoundaryTagger(config).state_dict().items()})
        x = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)
        np.testing.assert_allclose(tagger.logits(x), tagger._forward(x[None])[0], atol=1e-6)
        assert tagger.logits(np.tile(x, (5, 1))).shape == (250, 3)


class TestFeatures:
    def test_shape_and_finiteness(self, sample_text, random_embeddings):
        doc = Document(sample_text)
        f = unit_features(doc, random_embeddings)
        assert f.shape == (unit_count(doc), 3 * random_embeddings.dim + N_SCALARS)
        assert np.isfinite(f).all()

    def test_a_slice_equals_the_same_rows_of_the_whole(self, sample_text, random_embeddings):
        doc = Document(sample_text * 3)
        whole = unit_features(doc, random_embeddings)
        np.testing.assert_allclose(unit_features(doc, random_embeddings, 40, 75), whole[40:75], atol=1e-5)


class TestLexicalFeatures:
    WINDOWS = (2, 4, 40)  # 40: wider than the embedding windows, so it sets the margin

    def test_shape_and_slices_are_exact(self, sample_text, random_embeddings):
        doc = Document(sample_text * 3)
        whole = unit_features(doc, random_embeddings, lexical_windows=self.WINDOWS)
        assert whole.shape == (unit_count(doc), feature_count(random_embeddings.dim, self.WINDOWS))
        np.testing.assert_allclose(whole[:, :-3], unit_features(doc, random_embeddings), atol=1e-6)
        np.testing.assert_allclose(unit_features(doc, random_embeddings, 40, 75, self.WINDOWS), whole[40:75],
                                   atol=1e-5)

    def test_a_change_of_vocabulary_scores_low(self, random_embeddings):
        text = "\n\n".join(["apples pears apples plums pears."] * 6 + ["engines gears pistons valves gears."] * 6)
        doc = Document(text)
        lexical = unit_features(doc, random_embeddings, lexical_windows=(4,))[:, -1]
        # unit u starts at candidate u − 1, the blank line before "engines"
        switch = int(np.searchsorted(doc.candidates.offsets, text.index("engines")))
        assert 1 + int(np.argmin(lexical[1:])) == switch  # the lowest cohesion is at the switch ...
        assert lexical[switch] < 0.5 * np.median(lexical[1:])  # ... by far (only "." is shared)

    def test_the_tagger_config_carries_them_through_a_weights_file(self, tmp_path, random_embeddings):
        torch.manual_seed(0)
        config = TaggerConfig(in_dim=feature_count(16, (4, 8)), dim=32, layers=1, heads=4, ffn=32, window=32,
                              margin=8, lexical_windows=[4, 8])
        weights = {k: v.numpy() for k, v in BoundaryTagger(config).state_dict().items()}
        save_weights(tmp_path / "w.safetensors", random_embeddings, weights, config, DecodeConfig())
        _emb, tagger, _decoding = load_weights(tmp_path / "w.safetensors")
        assert tagger.config.lexical_windows == (4, 8)
        doc = Document("A first line.\n\nA second one.\n\nAnd a third.")
        segmenter = LearnedSegmenter(random_embeddings, tagger, DecodeConfig())
        assert segmenter.logits(doc).shape == (unit_count(doc) - 1, 3)


class TestModes:
    def test_levels_nest_and_rise(self, sample_text, random_segmenter):
        doc = Document(sample_text)
        cuts = [set(random_segmenter.cut(doc, Request(level=lv)).tolist()) for lv in LEVELS]
        assert cuts[0] <= cuts[1] <= cuts[2]
        assert len(cuts[0]) < len(cuts[1]) < len(cuts[2])

    def test_target_tokens_sets_the_mean_length(self, sample_text, random_segmenter):
        doc = Document(sample_text)
        cuts = random_segmenter.cut(doc, Request(target_tokens=100))
        assert len(cuts) + 1 == round(doc.total_tokens / 100)

    def test_level_for_count_picks_the_nearest_expected_count(self):
        scores = np.stack([np.full(100, -4.0), np.full(100, -1.0), np.full(100, 2.0)], axis=1)
        assert LearnedSegmenter.level_for_count(scores, 2) == 0
        assert LearnedSegmenter.level_for_count(scores, 90) == 2


class TestWeightsFile:
    def test_round_trip(self, tmp_path, random_segmenter):
        emb, tagger, decoding = random_segmenter.parts
        path = tmp_path / "w.safetensors"
        save_weights(path, emb, tagger.state_arrays(), tagger.config, decoding)
        emb2, tagger2, decoding2 = load_weights(path)
        assert decoding2 == decoding and tagger2.config.levels == tagger.config.levels
        np.testing.assert_array_equal(emb2.codes, emb.codes)
        x = np.random.default_rng(0).normal(size=(10, tagger.config.in_dim)).astype(np.float32)
        np.testing.assert_allclose(tagger2.logits(x), tagger.logits(x), atol=5e-2)  # float16 storage


def _random_tagger(config: TaggerConfig, seed: int) -> Tagger:
    torch.manual_seed(seed)
    return Tagger(config, {k: v.numpy() for k, v in BoundaryTagger(config).state_dict().items()})


class TestEnsemble:
    IN = feature_count(16)  # the random embeddings' width
    CONFIG = TaggerConfig(in_dim=IN, dim=16, layers=1, heads=2, ffn=16, window=32, margin=4)

    def test_logits_are_the_members_mean(self):
        a, b = _random_tagger(self.CONFIG, 0), _random_tagger(self.CONFIG, 1)
        x = np.random.default_rng(0).normal(size=(70, self.IN)).astype(np.float32)  # longer than a window
        np.testing.assert_allclose(TaggerEnsemble([a, b]).logits(x), (a.logits(x) + b.logits(x)) / 2, atol=1e-6)
        np.testing.assert_allclose(TaggerEnsemble([a, a]).logits(x), a.logits(x), atol=1e-6)
        assert TaggerEnsemble([a, b]).parameters == 2 * a.parameters

    def test_members_must_share_an_architecture(self):
        other = TaggerConfig(in_dim=self.IN, dim=16, layers=2, heads=2, ffn=16, window=32, margin=4)
        with pytest.raises(ValueError, match="architecture"):
            TaggerEnsemble([_random_tagger(self.CONFIG, 0), _random_tagger(other, 0)])

    def test_combined_file_loads_as_the_ensemble(self, tmp_path, random_embeddings):
        members = [_random_tagger(self.CONFIG, seed) for seed in (0, 1, 2)]
        paths = []
        for i, tagger in enumerate(members):
            paths.append(tmp_path / f"m{i}.safetensors")
            save_weights(paths[-1], random_embeddings, tagger.state_arrays(), self.CONFIG, DecodeConfig(level_bias={
                "coarse": float(i), "medium": 0.0, "fine": 0.0}))
        # an ensemble of an ensemble and a single file flattens to three members
        assert combine_weights(paths[:2], tmp_path / "pair.safetensors") == 2
        assert combine_weights([tmp_path / "pair.safetensors", paths[2]], tmp_path / "all.safetensors") == 3
        emb, ensemble, decoding = load_weights(tmp_path / "all.safetensors")
        assert isinstance(ensemble, TaggerEnsemble) and len(ensemble.members) == 3
        assert decoding.level_bias["coarse"] == 0.0  # the first file's decoding settings
        np.testing.assert_array_equal(emb.codes, random_embeddings.codes)
        loaded = [load_weights(p)[1] for p in paths]  # float16 round trip: compare against what files hold
        x = np.random.default_rng(3).normal(size=(40, self.IN)).astype(np.float32)
        np.testing.assert_allclose(ensemble.logits(x), np.mean([t.logits(x) for t in loaded], axis=0), atol=1e-5)
        doc = Document("One topic here.\n\nStill the same topic.\n\nA new topic now.\n\nAnd more of it.")
        assert LearnedSegmenter(emb, ensemble, decoding).cut(doc, Request(num_blocks=2)).shape == (1,)

    def test_members_with_other_lexical_windows_read_their_own_feature_columns(self, tmp_path, random_embeddings):
        lexical = TaggerConfig(in_dim=feature_count(16, (8, 4)), dim=16, layers=1, heads=2, ffn=16, window=32,
                               margin=4, lexical_windows=[8, 4])
        paths = [tmp_path / "plain.safetensors", tmp_path / "lexical.safetensors"]
        for path, config in zip(paths, (self.CONFIG, lexical)):
            save_weights(path, random_embeddings, _random_tagger(config, 0).state_arrays(), config, DecodeConfig())
        combine_weights(paths, tmp_path / "mixed.safetensors")
        emb, ensemble, decoding = load_weights(tmp_path / "mixed.safetensors")
        assert ensemble.config.lexical_windows == (4, 8)
        assert [m.config.lexical_windows for m in ensemble.members] == [(), (8, 4)]
        text = "\n\n".join(["apples pears apples plums pears."] * 8 + ["engines gears pistons valves gears."] * 8)
        alone = [LearnedSegmenter(*load_weights(p)).logits(Document(text)) for p in paths]
        np.testing.assert_allclose(LearnedSegmenter(emb, ensemble, decoding).logits(Document(text)),
                                   (alone[0] + alone[1]) / 2, atol=1e-5)

    def test_bad_members_get_a_clear_error(self, tmp_path, random_embeddings):
        path = tmp_path / "m.safetensors"
        save_weights(path, random_embeddings, _random_tagger(self.CONFIG, 0).state_arrays(), self.CONFIG,
                     DecodeConfig())
        with pytest.raises(UserError, match="at least two"):
            combine_weights([path], tmp_path / "out.safetensors")
        with pytest.raises(UserError, match="no such weights file"):
            combine_weights([path, tmp_path / "missing.safetensors"], tmp_path / "out.safetensors")
        other = TaggerConfig(in_dim=self.IN, dim=16, layers=2, heads=2, ffn=16, window=32, margin=4)
        save_weights(tmp_path / "deep.safetensors", random_embeddings, _random_tagger(other, 0).state_arrays(),
                     other, DecodeConfig())
        with pytest.raises(UserError, match="architecture differs"):
            combine_weights([path, tmp_path / "deep.safetensors"], tmp_path / "out.safetensors")
        (tmp_path / "junk.safetensors").write_bytes(b"not a weights file")
        with pytest.raises(UserError, match="not a readable segmenter weights file"):
            load_weights(tmp_path / "junk.safetensors")
        assert not (tmp_path / "out.safetensors").exists()

@pytest.mark.slow
class TestLargeInput:
    def test_ten_megabytes_in_bounded_memory(self, sample_text, random_segmenter):
        import resource

        text = (sample_text * (10_000_000 // len(sample_text) + 1))[:10_000_000]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        doc = Document(text)
        cuts = random_segmenter.cut(doc, Request(level="medium"))
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert len(cuts) > 100 and cuts[-1] < len(text)
        assert grown_mb < 1500, grown_mb
