"""The paper's tables render from fixture reports, including reports with missing fields and nulls, and
their verdicts follow the numbers."""

import json

from blockattn import paper_tables, reports


def row(method, contains, facts=(0.9, 0.8, 0.5), delta_ppl=0.5, n=100, **extra):
    return {"method": method, "train_tokens": 1000, "gpu_seconds": 10.0,
            "hotpotqa": {"contains": contains, "em": contains / 2, "n": n, "contains_on_full_correct": None},
            "facts": dict(zip(("4", "8", "16"), facts)), "delta_ppl": delta_ppl, "kl": 0.01, **extra}


def quality(rows, curves=None):
    return {"command": "python -m blockattn.experiments.quality", "commit": "abc", "machine": "H200", "seed": 0,
            "wall_seconds": 1.0, "model": "m", "rows": rows, "curves": curves or {}, "examples": []}


class TestQuality:
    def test_goal_and_winner_follow_the_numbers(self):
        data = quality([row("full", 0.50), row("zero-shot block", 0.20, delta_ppl=3.0), row("distilled", 0.49),
                        row("block-FT", 0.45)])
        text = "\n".join(paper_tables.render_quality("quality_m.json", data))
        assert "Distilled ≥ 95 % of full on HotpotQA: holds (98.0 %)" in text
        assert "HotpotQA: 0.490 vs 0.450 — distillation wins" in text
        assert "83.3 % of the zero-shot gap closed — does not hold" in text

    def test_two_hop_columns_and_verdicts(self):
        hops = lambda *v: dict(zip(("4", "8", "16"), v))  # noqa: E731
        data = quality([row("full", 0.5, multihop=hops(0.8, 0.6, 0.4)),
                        row("distilled", 0.4, multihop=hops(0.8, 0.3, None)), row("block-FT", 0.4)])
        data["report_tag"] = "ablations"
        text = "\n".join(paper_tables.render_quality("quality_m-ablations.json", data))
        assert "— m (ablations)" in text and "| 2-hop 4 | 2-hop 8 | 2-hop 16 | 2-hop % of full |" in text
        assert "| 0.800 | 0.300 | n/a | 91.7 |" in text  # (0.8 + 0.3) / 2 over (0.8 + 0.6 + 0.4) / 3
        assert "Two-hop chains, 8 documents: distilled 50.0 % of full — does not hold" in text
        assert "Two-hop chains, 4 documents: distilled 100.0 % of full — holds" in text

    def test_no_zero_shot_ppl_gap_is_said_not_divided_by(self):
        data = quality([row("full", 0.5), row("zero-shot block", 0.3, delta_ppl=-0.01), row("distilled", 0.4,
                                                                                           delta_ppl=-0.2)])
        verdicts = paper_tables.quality_verdicts(data)
        assert any("no gap to close" in v for v in verdicts)
        assert not any("of the zero-shot gap closed" in v for v in verdicts)

    def test_block_ft_winning_and_free_ablation_are_said(self):
        data = quality([row("full", 0.50), row("distilled", 0.30), row("block-FT", 0.40),
                        row("distilled -sinks", 0.31), row("distilled -rag", 0.10)])
        noisy = quality([row("full", 0.50, n=40), row("distilled", 0.30, n=40), row("block-FT", 0.40, n=40)])
        assert any("block-FT wins, within two standard errors" in v for v in paper_tables.quality_verdicts(noisy))
        verdicts = paper_tables.quality_verdicts(data)
        assert any("does not hold (60.0 %)" in v for v in verdicts)
        assert any("block-FT wins" in v for v in verdicts)
        # 0.31 vs 0.30 on 100 questions is noise; 0.10 vs 0.30 is not
        assert any(v.startswith("Removing block sink tokens: HotpotQA 0.310 without it vs 0.300 with it, within two "
                                "standard errors") for v in verdicts)
        assert any(v.startswith("Removing the RAG-shaped data: HotpotQA costs 0.200") for v in verdicts)

    def test_ablations_are_also_judged_by_held_out_kl(self):
        data = quality([row("full", 0.50), row("distilled", 0.30, kl=0.050), row("block-FT", 0.30, kl=0.080),
                        row("distilled -sinks", 0.30, kl=0.070), row("distilled -dropout", 0.30, kl=0.051)])
        verdicts = paper_tables.quality_verdicts(data)
        assert any("held-out KL 0.0700 without it vs 0.0500 with it (+40 %: it helps)" in v
                   for v in verdicts if v.startswith("Removing block sink tokens"))
        assert any("(+2 %: no clear effect)" in v for v in verdicts if v.startswith("Removing block dropout"))
        assert "Distillation vs block-FT at equal tokens, held-out KL to full attention: 0.0500 vs 0.0800 — " \
               "distillation is closer to full." in verdicts

    def test_missing_fields_and_nulls_render_as_na(self):
        data = {"command": "c", "rows": [{"method": "full", "hotpotqa": None, "facts": {"4": None}},
                                         {"method": "distilled"}], "curves": None}
        text = "\n".join(paper_tables.render_quality("quality_x.json", data))
        assert "| full | n/a |" in text and "No curves in this report yet." in text

    def test_curves_say_who_is_ahead_at_equal_tokens(self):
        curves = {"distilled": [{"tokens": 10, "gpu_seconds": 1, "kl": 0.05, "hotpotqa": 0.3}],
                  "block-FT": [{"tokens": 10, "gpu_seconds": 1, "kl": 0.08, "hotpotqa": 0.4}]}
        text = "\n".join(paper_tables.render_efficiency("q.json", quality([], curves)))
        assert "kl: distilled 0.0500 vs block-FT 0.0800 — distillation is ahead." in text
        assert "hotpotqa: distilled 0.3000 vs block-FT 0.4000 — block-FT is ahead" in text


class TestOtherTables:
    def test_segkl_names_the_lowest_method(self):
        methods = {m: {"zero-shot block": {"kl": kl, "blocks_mean": 5.0}} for m, kl in
                   (("gold", 0.2), ("learned", 0.3), ("fixed", 0.5))}
        text = "\n".join(paper_tables.render_segkl("segkl_m.json", {"command": "c", "methods": methods}))
        assert "lowest KL learned (0.3000), highest fixed (0.5000)" in text and "is the best method" in text

    def test_sensitivity_with_one_null(self):
        ex = {"question": "q?", "answer": "a", "variants": {"zero-shot block": {"kl_text": 0.5, "kl_answer": None},
                                                           "adapter": {"kl_text": 0.2, "kl_answer": 0.1}}}
        text = "\n".join(paper_tables.render_sensitivity("sensitivity_m.json", {"command": "c", "examples": [ex]}))
        assert "| q? | a | 0.500 | n/a | 0.200 | 0.100 |" in text

    def test_unknown_speed_schema_still_renders(self):
        data = {"command": "c", "rows": [{"clients": 8, "p50_ms": 12.5, "nested": {"x": 1}}]}
        text = "\n".join(paper_tables.render_speed_generic("bench_serve_h200.json", data))
        assert "| clients | p50_ms |" in text and "| 8 | 12.50 |" in text

    def test_index_says_what_has_not_been_run(self, tmp_path):
        (tmp_path / "quality_m.json").write_text(json.dumps(quality([row("full", 0.5)])))
        text = reports.build(tmp_path)
        assert "**T2 block-attention quality**: `reports/quality_m.json`" in text
        assert "**T5 speed: serving**: has not been run" in text
        assert "### T2 Block-attention quality — m" in text
        assert "**T3 does segmentation matter (HotpotQA re-cut)**: has not been run" in text  # no "recut" in it

    def test_recut_table_and_its_index_line(self, tmp_path):
        data = quality([row("full", 0.5)])
        data["recut"] = {"variant": "distilled", "n": 10, "methods": {
            "paragraph": {"contains": 0.4, "em": 0.2, "n": 10, "blocks_mean": 10.0, "segment_seconds": 0.1},
            "learned": {"contains": 0.35, "em": 0.2, "n": 10, "blocks_mean": 10.0, "same_as_given": 0.9,
                        "segment_seconds": 0.5},
            "fixed": {"contains": 0.2, "em": 0.1, "n": 10, "blocks_mean": 10.0, "segment_seconds": 0.0}}}
        (tmp_path / "quality_m.json").write_text(json.dumps(data))
        text = reports.build(tmp_path)
        assert "**T3 does segmentation matter (HotpotQA re-cut)**: `reports/quality_m.json`" in text
        assert "| learned | 0.350 | 0.200 | -0.050 | 10.0 | 0.90 | 0.50 |" in text
        assert "Best re-cut: learned (0.350) against the given paragraphs' 0.400." in text
