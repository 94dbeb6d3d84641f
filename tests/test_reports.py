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
