"""The claims summary judges each claim from fixture reports: verdicts follow the numbers, tagged experiment
runs do not speak for a model, and missing fields leave a claim out instead of breaking the page."""

from blockattn import paper_claims, reports


def quality_row(method, contains, kl=0.05, facts=(0.9, 0.8, 0.7), n=500):
    return {"method": method, "hotpotqa": {"contains": contains, "n": n},
            "facts": dict(zip(("4", "8", "16"), facts)), "kl": kl}


def verdicts(found: list[dict], claim_start: str) -> list[str]:
    return [c["verdict"] for c in found if c["claim"].startswith(claim_start)]


class TestQualityClaims:
    def test_goal_block_ft_and_noise_follow_the_numbers(self):
        rows = [quality_row("full", 0.40), quality_row("distilled", 0.39, kl=0.05, facts=(0.6, 0.5, 0.4)),
                quality_row("block-FT", 0.30, kl=0.09, facts=(0.9, 0.9, 0.9))]
        found = paper_claims.quality_claims({"quality_m.json": {"model": "m", "rows": rows}})
        assert verdicts(found, "Distilled block mode keeps") == ["holds", "does not hold"]  # 97.5 %; facts 0.5 of 0.8
        assert verdicts(found, "Distillation beats") == ["holds", "does not hold", "holds"]
        close = [quality_row("full", 0.40), quality_row("distilled", 0.31, n=100), quality_row("block-FT", 0.33)]
        found = paper_claims.quality_claims({"quality_m.json": {"model": "m", "rows": close}})
        assert verdicts(found, "Distillation beats")[0] == paper_claims.UNSHOWN  # 0.02 apart on 100 questions

    def test_a_tagged_run_does_not_speak_for_its_model(self):
        rows = [quality_row("full", 0.40), quality_row("distilled", 0.39)]
        found = paper_claims.quality_claims({"quality_m-lr.json": {"model": "m", "report_tag": "lr", "rows": rows}})
        assert found == []

    def test_ablations_are_judged_by_held_out_kl(self):
        rows = [quality_row("full", 0.1), quality_row("distilled", 0.05, kl=0.100),
                quality_row("distilled -sinks", 0.05, kl=0.130), quality_row("distilled -dropout", 0.05, kl=0.102),
                quality_row("distilled -rag", 0.05, kl=0.080)]
        found = paper_claims.ablation_claims({"quality_m-ablations.json": {"model": "m", "report_tag": "ablations",
                                                                           "rows": rows}})
        assert [c["verdict"] for c in found] == ["holds", paper_claims.NO_EFFECT, "does not hold"]


class TestOtherClaims:
    def test_ttft_uses_the_graph_number_and_the_reports_own_goal(self):
        goal = {"model": "8b", "tokens": 32768, "max_cached_pct_of_full": 1.3, "measured_pct": 3.0,
                "measured_graph_pct": 1.2}
        found = paper_claims.ttft_claims({"bench_ttft_x.json": {"goal": goal, "where": "lent H200, 2026-12-04"},
                                          "bench_ttft_cpu.json": {"goal": {**goal, "measured_pct": None,
                                                                           "measured_graph_pct": None}}})
        assert [(c["on"], c["verdict"]) for c in found] == [("8b, 32768 tokens, H200, 2026-12-04", "holds")]
        found = paper_claims.ttft_claims({"bench_ttft_x.json": {"goal": {**goal, "measured_graph_pct": None}}})
        assert found[0]["verdict"] == "does not hold"  # 3.0 % without graphs

    def test_segmentation_goal_depends_on_the_data_being_unseen(self):
        overall = {"learned": {"windowdiff": 0.30}, "paragraph": {"windowdiff": 0.50},
                   "texttiling": {"windowdiff": 0.45}}
        levels = {lv: {"median": m} for lv, m in (("coarse", 0.9), ("medium", 1.1), ("fine", 2.0))}
        found = paper_claims.segmentation_claims({
            "segmentation.json": {"data": "/d/semanticseg", "split": "test", "overall": overall},
            "segmentation_unseen.json": {"data": "/d/unseen-x", "split": "test", "overall": overall,
                                         "free_level_count_ratio": levels},
            "segmentation_speed.json": {"data": "/d/semanticseg"}})
        assert [(c["goal"], c["verdict"]) for c in found] == [
            ("≤ 0.35×", "does not hold"), ("≤ 0.70×", "holds"),  # 0.30 / 0.45 = 0.67×
            ("every level in [0.7, 1.3]×", "does not hold")]  # fine 2.0×

    def test_segkl_compares_learned_with_the_best_other_method_not_gold(self):
        methods = {"gold": {"v": {"kl": 0.1}}, "learned": {"v": {"kl": 0.3}}, "fixed": {"v": {"kl": 0.4}}}
        found = paper_claims.segkl_claims({"segkl_m.json": {"model": "m", "methods": methods}})
        assert [c["verdict"] for c in found] == ["holds"]


def test_the_page_has_the_summary_and_survives_empty_reports():
    assert "No report to judge a claim from yet." in "\n".join(paper_claims.render({}))
    page = reports.build()
    assert page.index("## The paper's claims at a glance") < page.index("## The paper's tables")
