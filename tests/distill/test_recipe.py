"""The training recipe: learning on a fixed batch, both objectives end to end, metrics and plot, and
deterministic resumption after SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from blockattn.distill.config import load_config
from blockattn.distill.losses import linear_divergence
from blockattn.distill.metrics import read_metrics
from blockattn.distill.recipe import BlockTrainingRecipe, lr_factor, run
from blockattn.errors import UserError

from .conftest import TINY


def batch_kl(recipe, batch):
    with torch.no_grad():
        t = recipe.teacher.hidden(batch.teacher_ids, batch.teacher_layout).flatten(0, 1)[batch.teacher_index]
        s = recipe.student(batch.student_ids, batch.student_layout).flatten(0, 1)[batch.student_index]
        return float(linear_divergence(s, recipe.teacher.output_weight(), t).kl.mean())


class TestLearning:
    # gain weighting optimises only where the teacher predicts the true token better: it lowers the KL too,
    # but less on random tokens
    @pytest.mark.parametrize("weighting, factor", [("none", 0.8), ("kl", 0.8), ("gain", 0.95)])
    def test_a_few_distillation_steps_lower_the_kl_on_a_fixed_batch(self, tiny_config, tmp_path, weighting, factor):
        recipe = BlockTrainingRecipe(tiny_config(f"loss.weighting={weighting}"), "distill", tmp_path,
                                     progress=False).setup()
        batch = recipe.loader.batch(0)
        before = batch_kl(recipe, batch)
        for _ in range(8):
            recipe.train_step(batch)
        assert batch_kl(recipe, batch) < factor * before

    def test_block_ft_lowers_the_next_token_loss_on_a_fixed_batch(self, tiny_config, tmp_path):
        recipe = BlockTrainingRecipe(tiny_config(), "block_ft", tmp_path, progress=False).setup()
        batch = recipe.loader.batch(0)
        first, _ = recipe.train_step(batch)
        for _ in range(6):
            last, _ = recipe.train_step(batch)
        assert float(last.loss.detach()) < float(first.loss.detach())


class TestRunDirectory:
    @pytest.mark.parametrize("objective", ["distill", "block_ft"])
    def test_run_writes_metrics_plot_summary_and_adapter(self, tiny_config, tmp_path, objective):
        summary = run(tiny_config(), objective, tmp_path, progress=False)
        records = read_metrics(tmp_path / "metrics.jsonl")
        assert [r["step"] for r in records] == [1, 2, 4, 6]
        assert all({"step", "loss", "kl", "ce", "tokens", "tokens_per_s", "lr"} <= set(r) for r in records)
        assert all(r["kl"] is not None and r["kl"] >= 0 for r in records)  # block-FT measures it on log steps
        assert (tmp_path / "curves.png").stat().st_size > 0
        assert summary["steps"] == 6 and summary["tokens"] == records[-1]["tokens"] > 0
        meta = json.loads((tmp_path / "adapter" / "blockattn_adapter.json").read_text())
        assert meta["objective"] == objective and meta["sinks_per_block"] == 2
        assert json.loads((tmp_path / "summary.json").read_text())["objective"] == objective

    def test_another_runs_checkpoint_is_refused(self, tiny_config, tmp_path):
        run(tiny_config(), "distill", tmp_path, progress=False)
        with pytest.raises(UserError, match="another run"):
            BlockTrainingRecipe(tiny_config("optim.lr=0.5"), "distill", tmp_path, progress=False).setup()
        with pytest.raises(UserError, match="another run"):
            BlockTrainingRecipe(tiny_config(), "block_ft", tmp_path, progress=False).setup()

    def test_time_limit_stops_and_saves(self, tiny_config, tmp_path):
        summary = run(tiny_config("train.steps=500", "train.max_minutes=0.0001"), "distill", tmp_path,
                      progress=False)
        assert summary["steps"] < 500 and (tmp_path / "adapter").is_dir()


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    factors = [lr_factor(s, 4, 20, "cosine", 0.1) for s in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(factors[3:], factors[4:])) and abs(factors[-1] - 0.1) < 0.02
    assert lr_factor(10, 4, 20, "constant", 0.1) == 1.0


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    from blockattn.distill.config import load_config
    from blockattn.distill import recipe as r

    kill_at = int(sys.argv[2])
    step = r.BlockTrainingRecipe.train_step

    def train_step(self, batch, measure_kl=False):
        if self.step == kill_at:  # mid-run, two steps after the last checkpoint: no chance to clean up
            os.kill(os.getpid(), signal.SIGKILL)
        return step(self, batch, measure_kl)

    r.BlockTrainingRecipe.train_step = train_step
    r.run(load_config(None, sys.argv[3:]), "distill", sys.argv[1], progress=False)
""")


class TestResume:
    def test_sigkilled_run_resumes_to_the_same_loss_curve(self, tmp_path):
        overrides = TINY + ["train.steps=10", "train.log_every=1", "train.checkpoint_every=4"]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path / "a"), "6", *overrides],
                                env=env, capture_output=True, text=True)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert [r["step"] for r in read_metrics(tmp_path / "a" / "metrics.jsonl")][-1] == 6
        run(load_config(None, overrides), "distill", tmp_path / "a", progress=False)  # resumes from step 4
        run(load_config(None, overrides), "distill", tmp_path / "b", progress=False)  # never interrupted
        resumed, straight = (read_metrics(tmp_path / d / "metrics.jsonl") for d in ("a", "b"))
        assert [r["step"] for r in resumed] == list(range(1, 11))
        for a, b in zip(resumed, straight):
            for key in ("loss", "kl", "grad_norm", "lr", "tokens"):
                assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-9), (a["step"], key)


class TestWarmStart:
    def test_a_run_continues_from_an_earlier_adapter_and_counts_its_tokens(self, tiny_config, tmp_path):
        first = run(tiny_config(), "distill", tmp_path / "a", progress=False)
        adapter = tmp_path / "a" / "adapter"
        fresh = BlockTrainingRecipe(tiny_config(), "distill", tmp_path / "fresh", progress=False).setup()
        warm = BlockTrainingRecipe(tiny_config(f"adapter.init_from={adapter}"), "distill", tmp_path / "b",
                                   progress=False).setup()
        from safetensors.torch import load_file
        saved = load_file(str(adapter / "block_sinks.safetensors"))["per_block"]
        assert torch.equal(warm.student.sinks.per_block.detach().cpu(), saved)
        assert not torch.equal(fresh.student.sinks.per_block.detach().cpu(), saved)
        lora = {k: v for k, v in warm.student.trainable_state().items() if "lora_B" in k}
        assert lora and any(v.abs().sum() > 0 for v in lora.values())  # fresh LoRA B starts at zero
        assert warm.tokens_seen == first["tokens"] and warm.warm_start["steps"] == first["steps"]
        summary = run(tiny_config(f"adapter.init_from={adapter}"), "distill", tmp_path / "c", progress=False)
        assert summary["steps"] == 6 and summary["tokens"] > first["tokens"]  # its own steps, tokens carried on
        assert summary["warm_start"]["tokens"] == first["tokens"]

    def test_a_mismatched_adapter_is_refused(self, tiny_config, tmp_path):
        run(tiny_config(), "distill", tmp_path / "a", progress=False)
        with pytest.raises(UserError, match="sinks_per_block"):
            BlockTrainingRecipe(tiny_config(f"adapter.init_from={tmp_path / 'a' / 'adapter'}",
                                            "adapter.sinks_per_block=3"), "distill", tmp_path / "b",
                                progress=False).setup()
        with pytest.raises(UserError, match="not a blockattn adapter"):
            BlockTrainingRecipe(tiny_config(f"adapter.init_from={tmp_path}"), "distill", tmp_path / "c",
                                progress=False).setup()
