"""`blockattn distill` / `blockattn block-ft`: one config for both, overrides, a run directory, a JSON summary."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from blockattn.cli import app

from .conftest import TINY

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "smoke-cpu.yaml"


def sets(*extra):
    return [a for o in [*TINY, "train.steps=3", *extra] for a in ("--set", o)]


@pytest.mark.parametrize("command", ["distill", "block-ft"])
def test_command_trains_and_prints_the_summary(tmp_path, command):
    result = CliRunner().invoke(app, [command, "--config", str(SMOKE), "--out", str(tmp_path), "--no-progress",
                                      *sets()])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["objective"] == command.replace("-", "_") and summary["steps"] == 3
    assert (tmp_path / "metrics.jsonl").is_file() and (tmp_path / "adapter" / "blockattn_adapter.json").is_file()


def test_a_second_call_with_more_steps_continues_the_run(tmp_path):
    runner = CliRunner()
    runner.invoke(app, ["distill", "-c", str(SMOKE), "-o", str(tmp_path), "--no-progress", *sets()])
    result = runner.invoke(app, ["distill", "-c", str(SMOKE), "-o", str(tmp_path), "--no-progress",
                                 *sets("train.steps=5")])
    assert result.exit_code == 0, result.output
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_bad_override_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(app, ["distill", "-c", str(SMOKE), "-o", str(tmp_path), "--set", "loss.nope=1"])
    assert result.exit_code != 0 and "unknown key" in str(result.exception)
