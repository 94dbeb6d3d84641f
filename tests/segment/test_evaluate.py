"""`blockattn segment eval` and `train` on a small SemanticSeg-shaped fixture."""

import json

import numpy as np
import pytest

from blockattn.segment.evaluate import distinct_levels, run_evaluation


class TestEvaluate:
    def test_report_plot_and_table(self, semanticseg, tmp_path, learned_is_random, capsys):
        out = tmp_path / "seg.json"
        methods = ["learned", "fixed", "sentence", "paragraph"]
        report = run_evaluation(semanticseg, "test", methods, out, command="test")
        saved = json.loads(out.read_text())
        assert saved["methods"] == methods and saved["n_docs"] == 6
        assert out.with_suffix(".png").is_file()
        assert set(saved["per_category"]) == {"notes", "prose"}
        for m in methods:
            assert 0 <= saved["overall"][m]["windowdiff"] <= 1
        assert saved["gold_boundaries_on_candidates"] == 1.0
        assert saved["levels_rise_on_every_document"] is True
        assert set(saved["free_level_count_ratio"]) <= {"coarse", "medium", "fine"}
        assert all(r["median"] > 0 for r in saved["free_level_count_ratio"].values())
        assert set(saved["level_mean_tokens"]) == {"coarse", "medium", "fine"}
        assert all(r["gold_block_tokens"] > 0 for r in saved["free_level_count_ratio"].values())
        assert "learned_beats_all_baselines" in report
        assert "windowdiff" in capsys.readouterr().out
        # the fixture's "notes" show their markup, its "prose" does not: scored apart
        assert {d["category"]: d["markup"] for d in saved["per_doc"]} == {"notes": True, "prose": False}
        subsets = saved["by_markup"]
        assert set(subsets) == {"with markup", "without markup"}
        assert sum(v["n_docs"] for v in subsets.values()) == 6
        assert subsets["with markup"]["fixed"]["windowdiff"] == pytest.approx(
            saved["per_category"]["notes"]["fixed"]["windowdiff"])  # the notes are exactly the marked-up texts
        from blockattn.reports import render_segmentation

        page = "\n".join(render_segmentation("segmentation_x.json", saved))
        assert "| with markup | " in page and "| without markup | " in page

    def test_no_markup_column_means_no_markup_table(self):
        from blockattn.reports import render_segmentation
        from blockattn.segment.evaluate import by_markup

        scores = {"learned": {"pk": 0.1, "windowdiff": 0.2, "f1": 0.5, "f1_tol1": 0.6}}
        assert by_markup([{"scores": scores}], ["learned"]) == {}
        data = {"methods": ["learned", "fixed"], "split": "test", "data": "/d/x", "n_docs": 1,
                "overall": {m: scores["learned"] for m in ("learned", "fixed")}, "per_category": {}}
        assert "shows its headings" not in "\n".join(render_segmentation("segmentation_x.json", data))

    def test_free_level_counts_are_compared_with_every_levels_gold(self):
        from blockattn.segment.evaluate import level_count_ratios

        per_doc = [{"level_counts": {"coarse": 2, "medium": 4, "fine": 8}, "gold_counts": {"coarse": 2, "fine": 4}},
                   {"level_counts": {"coarse": 3, "medium": 6, "fine": 9}, "gold_counts": {"coarse": 6, "fine": 9}}]
        ratios = level_count_ratios(per_doc)
        assert set(ratios) == {"coarse", "fine"}  # no document has medium gold
        assert ratios["coarse"]["median"] == pytest.approx(0.75) and ratios["fine"]["n_docs"] == 2
        assert ratios["fine"]["median"] == pytest.approx(1.5)

    def test_gold_block_tokens_say_what_a_level_means_in_the_data(self):
        from blockattn.segment.evaluate import level_count_ratios

        per_doc = [{"tokens": 1000, "level_counts": {"coarse": 2, "medium": 4, "fine": 8},
                    "gold_counts": {"coarse": 2, "medium": 4, "fine": 4}},
                   {"tokens": 3000, "level_counts": {"coarse": 3, "medium": 6, "fine": 9},
                    "gold_counts": {"coarse": 3, "medium": 10, "fine": 10}}]
        ratios = level_count_ratios(per_doc)
        assert ratios["coarse"]["gold_block_tokens"] == pytest.approx(750)  # median of 500 and 1000
        assert ratios["fine"]["gold_block_tokens"] == pytest.approx(275)  # median of 250 and 300

    def test_identical_levels_count_once(self):
        assert list(distinct_levels({"coarse": [5], "medium": [5], "fine": [5, 9]})) == ["coarse", "fine"]


@pytest.mark.slow
class TestTrain:
    def test_a_short_run_exports_weights_that_segment(self, semanticseg, tmp_path, random_embeddings,
                                                       sample_text, monkeypatch):
        from blockattn.segment import Document, Request
        from blockattn.segment.learned import train as train_mod
        from blockattn.segment.learned.segmenter import LearnedSegmenter

        work = tmp_path / "work"
        work.mkdir()
        # A random static table stands in for the MiniLM distillation (minutes of CPU).
        np.savez(work / "embeddings.npz", codes=random_embeddings.codes, scales=random_embeddings.scales)
        monkeypatch.setattr(train_mod, "EMBED_DIM", random_embeddings.dim)
        out = train_mod.train(semanticseg, out=tmp_path / "w.safetensors", steps=6, work=work, batch_size=4,
                              eval_every=3, val_per_category=2)
        report = json.loads((work / "train_report.json").read_text())
        assert report["best_step"] in (3, 6) and len(report["history"]) == 2 and report["wall_s"] > 0
        monkeypatch.setenv("BLOCKATTN_SEGMENTER_WEIGHTS", str(out))
        cuts = LearnedSegmenter().cut(Document(sample_text), Request(num_blocks=4))
        assert len(cuts) == 3


class TestReuse:
    def test_scores_of_an_earlier_report_are_taken_not_recomputed(self, semanticseg, tmp_path, monkeypatch,
                                                                  learned_is_random):
        first = run_evaluation(semanticseg, "test", ["fixed"], tmp_path / "a.json")
        from blockattn.segment import methods

        monkeypatch.setitem(methods._INSTANCES, "fixed", None)  # would fail if it were run again
        second = run_evaluation(semanticseg, "test", ["learned", "fixed"], tmp_path / "b.json",
                                reuse=tmp_path / "a.json")
        assert second["reused_from"] == {"fixed": str(tmp_path / "a.json")}
        assert second["overall"]["fixed"] == first["overall"]["fixed"]

    def test_the_learned_segmenter_is_always_run_again(self, semanticseg, tmp_path, learned_is_random):
        run_evaluation(semanticseg, "test", ["learned", "fixed"], tmp_path / "a.json")
        again = run_evaluation(semanticseg, "test", ["learned", "fixed"], tmp_path / "b.json",
                               reuse=tmp_path / "a.json")
        assert again["reused_from"] == {"fixed": str(tmp_path / "a.json")} and "free_level_count_ratio" in again

    def test_a_missing_report_or_different_data_is_a_clear_error(self, semanticseg, tmp_path):
        from blockattn.errors import UserError

        with pytest.raises(UserError, match="not a readable segmentation report"):
            run_evaluation(semanticseg, "test", ["fixed"], tmp_path / "b.json", reuse=tmp_path / "missing.json")
        run_evaluation(semanticseg, "test", ["fixed"], tmp_path / "a.json")
        report = json.loads((tmp_path / "a.json").read_text())
        report["per_doc"][0]["tokens"] += 1  # as if the report scored another build of the data
        (tmp_path / "a.json").write_text(json.dumps(report))
        with pytest.raises(UserError, match="not the same data"):
            run_evaluation(semanticseg, "test", ["fixed"], tmp_path / "c.json", reuse=tmp_path / "a.json")
