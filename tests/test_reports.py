"""docs/results.md is generated from reports/*.json: it must be current, and every report must name the command
that produced its numbers."""

import json
from pathlib import Path

from blockattn import reports


def _has_command(value) -> bool:
    if isinstance(value, dict):
        return any(k in ("command", "commands") or _has_command(v) for k, v in value.items())
    return False


def test_every_report_names_its_command():
    paths = sorted(Path(reports.REPORTS).glob("*.json"))
    assert paths
    missing = [p.name for p in paths if not _has_command(json.loads(p.read_text()))]
    assert not missing, f"reports without the command that produced them: {missing}"


def test_results_page_is_up_to_date():
    assert reports.main(["--check"]) == 0, "run `python -m blockattn.reports` and commit docs/results.md"


def test_the_decode_section_shows_every_measured_row_and_the_goals(tmp_path):
    from blockattn.bench.decode import DecodeBenchConfig, run

    cfg = DecodeBenchConfig(models=["tiny"], device="cpu", context_tokens=64, block_tokens=32, question_tokens=8,
                            new_tokens=2, streams=[2], warmup=0, repeat=1, adapter="none", variants=["engine"])
    data = {**run(cfg, log=lambda line: None), "command": "blockattn bench decode --models tiny"}
    text = "\n".join(reports.renderer_for("bench_decode_cpu.json")("bench_decode_cpu.json", data))
    assert "Command: `blockattn bench decode --models tiny`" in text
    assert text.count("| tiny | engine |") == 2  # block and full, one stream each
    assert text.count("| tiny | engine (batched) |") == 1  # 2 streams through decode_batch
    assert "smollm2_64_streams_total_tokens_s ≥ 10000: not measured" in text


def test_the_levels_section_shows_every_category():
    q = {"median": 10.0, "q1": 5.0, "q3": 20.0}
    data = {"command": "blockattn data levels DIR", "sampled_per_category": 5, "seed": 0,
            "categories": {"a": {"instances": 3, "coarse_ne_fine": 2 / 3, "three_distinct": 0.0,
                                 "block_tokens": {"coarse": q, "medium": q, "fine": None}}}}
    text = "\n".join(reports.renderer_for("semanticseg_levels.json")("semanticseg_levels.json", data))
    assert "| a | 3 | 66.7 % | 0.0 % | 10 [5–20] | 10 [5–20] | – |" in text


def test_a_decode_goal_names_each_mode_and_never_counts_an_unmeasured_one_as_met():
    line = reports._decode_goal("single", {"goal": 400, "measured": {"block": 296.8, "full": 282.8},
                                           "measured_compiled": {"block": 605.0, "full": None}})
    assert line == ("single ≥ 400: default steps: block 296.8 (not met), full 282.8 (not met); "
                    "compiled steps: block 605.0 (met), full not measured")
    assert reports._decode_goal("total", {"goal": 10000, "measured": 10531.3}) == \
        "total ≥ 10000: default steps: 10531.3 (met)"


def test_the_query_attention_probe_shows_every_way_and_says_when_flash_was_refused():
    data = {"title": "Query-block attention", "command": "python scripts/gpu/probe_query_attention.py",
            "flash_varlen": False, "flash_varlen_error": "RuntimeError: no kernel image",
            "rows": [{"context": 2048, "capacity": 2560, "matmul_ms": 0.107, "sdpa_error": "RuntimeError: x",
                      "exact_ms": 0.057}]}
    text = "\n".join(reports.render_query_attention("probe_query_attention_h200.json", data))
    assert "| context | buffer slots | matmul | sdpa | exact |" in text
    assert "| 2048 | 2560 | 0.107 | failed | 0.057 |" in text
    assert "not used: RuntimeError: no kernel image" in text


def test_the_ensemble_section_marks_the_best_and_shows_the_paired_differences():
    paired = {"mean": -0.01, "ci95": [-0.02, 0.0], "better": 7, "worse": 3}
    data = {"command": "python scripts/compare_segmenters.py ...", "weights": {"a": "A", "a+b": "A+B"},
            "sets": {"val": {"n_docs": 10, "mean_windowdiff": {"a": 0.2, "a+b": 0.19},
                             "paired_vs_first": {"a+b": paired}}},
            "verdict": "shipped"}
    text = "\n".join(reports.renderer_for("segmentation_ensemble.json")("segmentation_ensemble.json", data))
    assert "| val (10) | 0.2000 | **0.1900** |" in text
    assert "- val: a+b -0.0100 [-0.0200, +0.0000] 7/3" in text
    assert "Verdict: shipped." in text
