"""`blockattn serve` as a child process (tests and the sharing benchmark): started on a free port, its URL
read from its first stderr line, its /metrics parsed; stopped, or SIGKILLed to simulate a crash."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import httpx


class ServerProcess:
    def __init__(self, *args: str, timeout_s: float = 180.0, device: str = "cpu", threads: int = 1):
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "blockattn", "serve", "--port", "0", "--device", device,
                                      "--log-level", "warning", *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stderr.readline()  # "blockattn: serving ... on http://127.0.0.1:PORT/v1"
        match = re.search(r"http://[\d.]+:\d+", line)
        if not match:
            # let a dying server finish writing its traceback (killing it first kept only the first lines, and
            # hid a missing package on the H200, 2026-12-03); one still running after 30 s is killed
            try:
                rest = self.proc.communicate(timeout=30)[1]
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rest = self.proc.communicate()[1]
            raise RuntimeError(f"server did not start: {line}{rest}")
        self.url = match.group(0)
        # keep reading stderr so a chatty server never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        self.client = httpx.Client(base_url=self.url, timeout=120)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.client.get("/health")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("server did not come up") from None
                time.sleep(0.1)

    def complete(self, documents: list[str], prompt: str = "Answer:", max_tokens: int = 2) -> httpx.Response:
        body = {"model": "default", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                "documents": [{"text": d} for d in documents]}
        return self.client.post("/v1/completions", json=body)

    def metrics(self) -> dict[str, float]:
        """Unlabelled and labelled samples of /metrics: {"name{labels}": value}."""
        values = {}
        for line in self.client.get("/metrics").text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
