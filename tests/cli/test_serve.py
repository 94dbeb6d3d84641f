"""`blockattn serve` as a real process: it listens, answers the official client, and refuses bad flags (exit 2)."""

import os
import re
import socket
import subprocess
import sys
import time

import pytest

from blockattn.cli import main


def start(*args):
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.Popen([sys.executable, "-m", "blockattn", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
def test_serves_the_default_model_with_an_api_key():
    import openai

    proc = start("--port", "0", "--api-key", "k", "--adapter", "none", "--device", "cpu", "--log-level", "warning")
    try:
        line = proc.stderr.readline()  # "blockattn: serving ... on http://127.0.0.1:PORT/v1"
        match = re.search(r"http://([\d.]+):(\d+)/v1", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        assert "own process" not in line  # on the CPU the model stays in the server's process by default
        client = openai.OpenAI(base_url=match.group(0), api_key="k", max_retries=0, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            try:
                models = client.models.list()
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline, "server did not come up"
                time.sleep(0.2)
        assert "smollm2-135m-instruct" in [m.id for m in models.data]
        question = [{"role": "user", "content": "Who designed the Bell Rock Lighthouse?"}]
        document = {"text": "The Bell Rock Lighthouse was designed by Robert Stevenson."}
        reply = client.chat.completions.create(model="default", messages=question, max_tokens=12, temperature=0,
                                               extra_body={"documents": [document]})
        assert "Stevenson" in reply.choices[0].message.content
        assert reply.usage.model_extra["blockattn"]["computed_blocks"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_taken_port_is_a_clean_error(monkeypatch, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        monkeypatch.setattr(sys, "argv", ["blockattn", "serve", "--port", str(port)])
        with pytest.raises(SystemExit) as exit_info:
            main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: cannot listen") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["--port", "70000"], ["--max-queue", "0"], ["--log-level", "loud"],
                                  ["--port", "0", "--admit-per-step", "0"],
                                  ["--port", "0", "--kv-store", "http://127.0.0.1:6379/0"],
                                  ["--port", "0", "--kv-store", "redis://127.0.0.1:6379/zero"],
                                  ["--port", "0", "--cache-dir-max-gb", "1"],
                                  ["--port", "0", "--kv-store-gb", "0"]])
def test_bad_flags_exit_2(monkeypatch, capsys, args):
    monkeypatch.setattr(sys, "argv", ["blockattn", "serve", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("device", ["tpu", "cuda"])
def test_a_device_the_machine_lacks_is_a_clean_error_before_anything_starts(monkeypatch, capsys, device):
    """The default --engine-process depends on the device: resolving it must not turn a bad --device into a
    traceback or a spawned engine that dies."""
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setattr(sys, "argv", ["blockattn", "serve", "--port", "0", "--device", device])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and device in err
