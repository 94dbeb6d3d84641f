"""The quality GPU entry point, end to end on CPU with a tiny random model and the real SmolLM2 tokenizer:
the same code path the H200 runs (teacher pre-pass, distill, block-FT, an ablation, evaluation, curves)."""

import json
import tarfile

import pytest
import torch
from typer.testing import CliRunner

from blockattn.experiments import quality
from blockattn.experiments.pack import add_quality_items
from blockattn.experiments.ragdata import MIX
from blockattn.distill.pack import build_pack

pytestmark = pytest.mark.slow
TINY = ["model.tiny_vocab=49152", "model.tokenizer=smollm2-135m-instruct", "model.dtype=float32",
        "data.seq_len=512", "data.batch_size=2", "train.log_every=2", "train.device=cpu", "train.precision=fp32",
        "train.cpu_threads=1", "adapter.lora_rank=2", "loss.chunk_tokens=512"]


@pytest.fixture
def pack(mini_semanticseg, tmp_path, smollm2_tokenizer):
    built = build_pack(mini_semanticseg, smollm2_tokenizer, "fixed", 96, 8, 20_000, 4_000, needle_counts=(4,),
                       needles_per_count=1, doc_tokens=60)
    built = add_quality_items(built, mini_semanticseg, smollm2_tokenizer, facts_per_count=1, rag_items=6,
                              doc_tokens=60, rag_doc_tokens=40, seed=0)
    return built.save(tmp_path / "pack.npz")


def test_entry_point_runs_every_phase_and_writes_the_contract(pack, mini_hotpotqa, tmp_path):
    out = tmp_path / "out"
    sets = [a for o in TINY for a in ("--set", o)]
    result = CliRunner().invoke(quality.app, [
        "--model", "tiny", "--pack", str(pack), "--out", str(out), "--work", str(tmp_path / "work"),
        "--steps", "4", "--ablations", "rag", "--hotpot-limit", "3", "--hotpotqa", str(mini_hotpotqa),
        "--facts-per-count", "1", "--ppl-rows", "2", "--query-tokens", "32", "--snapshot-every", "2",
        "--curve-hotpot-limit", "2", "--recut-limit", "2", "--rag-items", "6", "--answer-tokens", "6", "--batch-size", "4",
        "--deadline-minutes", "30", "--eval-minutes", "1", *sets])
    assert (out / "quality_tiny.json").is_file(), (result.output, repr(result.exception))
    data = json.loads((out / "quality_tiny.json").read_text())
    assert result.exit_code == 0, {k: v for k, v in data["phases"].items() if v["status"] != "ok"}
    assert [r["method"] for r in data["rows"]] == ["full", "zero-shot block", "distilled", "block-FT",
                                                   "distilled -rag"]
    assert data["teacher"]["answered"] == 6
    assert set(data["recut"]["methods"]) == {"paragraph", "learned", "fixed", "sentence"}
    assert data["recut"]["n"] == 2 and all(r["n"] == 2 for r in data["recut"]["methods"].values())
    rows = {r["method"]: r for r in data["rows"]}
    assert rows["full"]["train_tokens"] is None and rows["full"]["kl"] is None
    assert rows["distilled"]["train_tokens"] > 0 and rows["distilled"]["kl"] >= 0
    assert rows["distilled"]["hotpotqa"]["n"] == 3 and set(rows["distilled"]["facts"]) == {"4", "8", "16"}
    # the held-out two-hop column (one item per count), the evaluation estimate, the stated mix
    assert all(set(r["multihop"]) == {"4", "8", "16"} for r in data["rows"])
    assert all(data["evaluation"][m]["multihop"]["items"] == 3 for m in rows)
    assert data["budget"]["reserve_from"] == "measured" and data["budget"]["eval_estimate"]["total_seconds"] > 0
    assert data["mix"]["rag_kinds"] == MIX and sum(data["teacher"]["answered_kinds"].values()) == 6
    assert list(data["phases"])[:4] == ["teacher", "load_hotpotqa", "eval full", "eval zero-shot block"]
    assert data["distill"]["summary"]["steps"] == data["block_ft"]["summary"]["steps"] == 4
    assert data["ablation_rag"]["summary"]["steps"] == 4
    # snapshots at step 2, then the final adapter (and the zero-shot start of the curve)
    assert [p["tokens"] > 0 for p in data["curves"]["distilled"]] == [False, True, True]
    for key in ("command", "commit", "machine", "seed", "wall_seconds", "model", "examples"):
        assert key in data
    with tarfile.open(out / "adapters_tiny.tar.gz") as tar:
        names = tar.getnames()
    assert "distilled/blockattn_adapter.json" in names and "block-FT/adapter_model.safetensors" in names
    assert sorted(p.name for p in out.iterdir()) == ["adapters_tiny.tar.gz", "quality_tiny.json",
                                                     "quality_tiny.png", "teacher_tiny.json"]
    # shipping is one command: unpack, README from the JSON, registry entry
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "shipped.json").write_text('{"smollm2-135m-instruct": "smollm2-block-distill"}')
    shipped = CliRunner().invoke(ship_app(), [str(out), "--assets", str(assets)])
    assert shipped.exit_code == 0, shipped.output
    registry = json.loads((assets / "shipped.json").read_text())
    assert registry == {"smollm2-135m-instruct": "smollm2-block-distill", "tiny": "tiny-block-distill"}
    readme = (assets / "tiny-block-distill" / "README.md").read_text()
    assert data["command"] in readme and "| distilled |" in readme
    assert (assets / "tiny-block-distill" / "blockattn_adapter.json").is_file()
    # the LoRA weights are shipped in bfloat16, and the adapter still loads and acts like the trained one
    from safetensors import safe_open
    import torch

    from blockattn.adapter import load_block_adapter
    from blockattn.attention import block_forward, pack_sequence
    from blockattn.models.tiny import tiny_model

    with safe_open(str(assets / "tiny-block-distill" / "adapter_model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    logits = []
    for path in (tmp_path / "work" / "distill" / "adapter", assets / "tiny-block-distill"):
        adapter = load_block_adapter(tiny_model(vocab_size=49152), path)
        ids, layout = pack_sequence([[5, 6, 7, 8], [9, 10, 11], [12, 13]], sinks_per_block=adapter.sinks_per_block,
                                    shared_sink=adapter.shared_sink)
        with torch.no_grad():
            logits.append(block_forward(adapter.model, ids, layout, sinks=adapter.sinks).logits)
    assert (logits[0] - logits[1]).abs().max() <= 1e-2 * logits[0].abs().max()
    # the session's main run: continue the distilled adapter; its curve starts at the adapter it continued
    init = tmp_path / "init"
    init.mkdir()
    (init / "distilled").symlink_to(tmp_path / "work" / "distill" / "adapter")
    again = CliRunner().invoke(quality.app, [
        "--model", "tiny", "--pack", str(pack), "--out", str(tmp_path / "out2"), "--work", str(tmp_path / "work2"),
        "--methods", "distill", "--init-from", str(init), "--steps", "2", "--hotpot-limit", "2",
        "--hotpotqa", str(mini_hotpotqa), "--facts-per-count", "1", "--ppl-rows", "2", "--query-tokens", "32",
        "--snapshot-every", "0", "--curve-hotpot-limit", "2", "--rag-items", "3", "--answer-tokens", "4",
        "--batch-size", "4", "--deadline-minutes", "30", *sets])
    cont = json.loads((tmp_path / "out2" / "quality_tiny.json").read_text())
    assert again.exit_code == 0, {k: v for k, v in cont["phases"].items() if v["status"] != "ok"}
    before = data["distill"]["summary"]["tokens"]
    assert [p["tokens"] for p in cont["curves"]["distilled"]][:2] == [0, before]
    assert cont["curves"]["distilled"][-1]["tokens"] > before


def ship_app():
    import typer

    from blockattn.experiments.ship import main

    app = typer.Typer()
    app.command()(main)
    return app


def test_init_from_is_refused_with_ablations_or_without_the_adapter(pack, tmp_path):
    common = ["--model", "tiny", "--pack", str(pack), "--out", str(tmp_path / "out"), "--init-from", str(tmp_path)]
    def said(result) -> str:  # the error box's text, unwrapped
        return " ".join(result.output.replace("│", " ").split())

    with_ablations = CliRunner().invoke(quality.app, [*common, "--ablations", "rag"])
    assert with_ablations.exit_code == 2 and "equal tokens" in said(with_ablations)
    missing = CliRunner().invoke(quality.app, [*common, "--methods", "distill"])
    assert missing.exit_code == 2 and "no distilled/ adapter" in said(missing)


def test_snapshots_keeps_at_most_n_evenly_spaced_with_the_final_last(tmp_path):
    for step in range(10, 110, 10):
        (tmp_path / "snapshots" / f"step{step}").mkdir(parents=True)
        (tmp_path / "snapshots" / f"step{step}" / "blockattn_adapter.json").write_text("{}")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "blockattn_adapter.json").write_text("{}")
    names = lambda most: [p.name for p in quality.snapshots(tmp_path, most)]  # noqa: E731
    assert names(0) == [f"step{s}" for s in range(10, 110, 10)] + ["adapter"]
    assert names(4) == ["step10", "step40", "step80", "adapter"] and names(1) == ["adapter"]


def test_eval_estimate_scales_the_measured_evaluations():
    base = {"full": {"seconds": 60.0, "hotpotqa": {"seconds": 40.0}},
            "zero-shot block": {"seconds": 50.0, "hotpotqa": {"seconds": 30.0}, "ppl_seconds": 8.0}}
    est = quality.eval_estimate(base, n_trained=2, hotpot_n=500, curve_points=5, curve_hotpot_n=100, recut_n=100)
    assert est["variant_seconds"] == pytest.approx(quality.ADAPTER_COST * 60)
    assert est["curve_point_seconds"] == pytest.approx(quality.ADAPTER_COST * (40 * 0.2 + 2), abs=0.1)
    assert est["recut_seconds"] == pytest.approx(quality.ADAPTER_COST * 4 * 40 * 0.2, abs=0.1)
    total = 2 * est["variant_seconds"] + 5 * est["curve_point_seconds"] + est["recut_seconds"]
    assert est["total_seconds"] == pytest.approx(total, abs=0.3)
    assert est["reserve_minutes"] == pytest.approx((quality.EVAL_MARGIN * total + quality.TAIL_SECONDS) / 60, abs=0.01)
    assert quality.eval_estimate({}, 2, 500, 5, 100, 100) is None


def _distill_on_given_answers(pack, tmp_path, tag: str, steps: int, extra_sets=()):
    """One `--methods distill` process on another run's teacher answers (a rag.npz it did not write), as the
    second and third 0.5B processes of a session run: (CLI result, report, out dir, rag.npz path)."""
    from blockattn.distill.ragset import RagSet

    answers = RagSet.from_requests([([[5, 6, 7], [8, 9, 10, 11], [12, 13]], [14, 15, 2])] * 3)
    rag = answers.save(tmp_path / "other" / "rag.npz")
    out = tmp_path / "out"
    sets = [a for o in [*TINY, *extra_sets] for a in ("--set", o)]
    result = CliRunner().invoke(quality.app, [
        "--model", "tiny", "--pack", str(pack), "--out", str(out), "--work", str(tmp_path / "work"),
        "--methods", "distill", "--steps", str(steps), "--hotpot-limit", "0", "--facts-per-count", "1",
        "--ppl-rows", "2", "--query-tokens", "32", "--snapshot-every", "0", "--batch-size", "4",
        "--rag-from", str(rag), "--report-tag", tag, "--deadline-minutes", "30", *sets])
    data = json.loads((out / f"quality_tiny-{tag}.json").read_text())
    assert result.exit_code == 0, {k: v for k, v in data["phases"].items() if v["status"] != "ok"}
    return result, data, out, rag


def test_rag_from_takes_another_runs_answers_after_the_untrained_evaluations(pack, tmp_path):
    """The second 0.5B process of a session: no teacher of its own, the first run's rag.npz instead."""
    _, data, out, rag = _distill_on_given_answers(pack, tmp_path, "ablations", steps=2)
    assert list(data["phases"])[:3] == ["eval full", "eval zero-shot block", "teacher"]
    assert data["teacher"] == {"answered": 3, "from": str(rag)} and data["mix"]["rag_fraction"] == 0.5
    assert [r["method"] for r in data["rows"]] == ["full", "zero-shot block", "distilled"]
    assert not (out / "teacher_tiny-ablations.json").exists()


def test_full_fine_tuning_is_trained_saved_and_evaluated_as_its_own_model(pack, tmp_path):
    """LoRA rank 0: the run trains, scores and archives; the student's weights go to adapter/model/, load back
    as a model of their own (the adapter loader used to ignore model/, so the base was scored), and the
    archive leaves them out."""
    _, data, out, _ = _distill_on_given_answers(pack, tmp_path, "full", steps=3,
                                                extra_sets=("adapter.lora_rank=0", "optim.lr=1e-3"))
    assert [r["method"] for r in data["rows"]] == ["full", "zero-shot block", "distilled"]
    [saved] = [p.parent.parent for p in (tmp_path / "work").rglob("model/config.json") if p.parent.parent.name == "adapter"]
    from blockattn.adapter import load_block_adapter
    from blockattn.models.tiny import tiny_model

    base = tiny_model(vocab_size=49152)
    student = load_block_adapter(base, saved).model
    assert student is not base and any(not torch.equal(a, b) for a, b in zip(student.parameters(), base.parameters()))
    [archive] = out.glob("adapters_*.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "distilled/blockattn_adapter.json" in names and not any("/model/" in n for n in names)
