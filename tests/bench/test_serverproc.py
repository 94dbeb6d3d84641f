"""`bench.serverproc.ServerProcess` when the server dies before serving: the error keeps the whole traceback."""

import os
import stat

import pytest

from blockattn.bench import serverproc


def test_a_server_that_dies_reports_the_end_of_its_traceback(tmp_path, monkeypatch):
    """The last line of a traceback says why (on the H200 a missing package); it comes after the first line by
    a while, and must not be lost by killing the process as soon as the first line is not the URL."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'Traceback (most recent call last):' >&2\nsleep 0.5\n"
                    "echo \"ModuleNotFoundError: No module named 'opentelemetry'\" >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(serverproc.sys, "executable", os.fspath(fake))
    with pytest.raises(RuntimeError, match="No module named 'opentelemetry'"):
        serverproc.ServerProcess("--model", "unused")
